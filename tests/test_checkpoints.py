"""Checkpoints (DESIGN §2, issue #8): the append-only entries log beside the journal header, and periodic
checkpoints taken by the unpack worker between two blocks instead of draining the pipeline.

What is checked here is behaviour: what a crash leaves on disk can always be resumed (or is refused and
restarted from zero), a checkpoint lists only entries that are completely written, and what a checkpoint
writes does not grow with the number of entries finished before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from functools import cache
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import FAST, contents, fetch, pending_files, tree, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import wheelstream.unpack._stages as stages
import wheelstream.unpack._tee as tee
from fixtures.wellformed import WELLFORMED, make_wheel
from wheelstream._cache import Cache
from wheelstream._progress import Progress
from wheelstream._staged import StagedFile
from wheelstream._urls import cache_key
from wheelstream.errors import DiskError, Interrupted
from wheelstream.fetch import DownloadResult, fetch_wheel
from wheelstream.testing import Cut, FaultPlan, FaultServer, Stall, Throttle
from wheelstream.unpack import _sha256
from wheelstream.unpack._partial import Journal, PartialFile, entries_log
from wheelstream.zip import LocalEntry, ZipStreamParser

WHEEL = "demo-1.0-py3-none-any.whl"
OFTEN = dataclasses.replace(FAST, checkpoint_bytes=16 << 10, checkpoint_seconds=0.01)


@cache
def mixed_wheel() -> bytes:
    """~1,500 small files, empty directory entries and four incompressible 1.5 MB files between them: small
    entries finish in every block, large ones span many blocks (and go through the extractor's sink)."""
    rng = random.Random(8)
    files: dict[str, bytes] = {}
    for i in range(1500):
        files[f"demo/p{i // 100:02d}/m{i:04d}.py"] = f"N = {i}\n".encode() * (i % 40)
        if i % 375 == 200:
            files[f"demo/blob{i // 375}.bin"] = rng.randbytes(1_500_000)
            files[f"demo/empty{i // 375}/"] = b""
    return make_wheel(files)


def journal_path(cache_dir: Path, url: str) -> Path:
    return cache_dir / "partial" / f"{cache_key(url)}.json"


def interrupted_halfway(server: FaultServer, cache_dir: Path) -> tuple[bytes, str, Journal]:
    """A download of 2,000 entries stopped by Ctrl-C halfway, after many (worker) checkpoints. Paced (0.5 s for
    the whole file), so that a progress report (at most every 50 ms) comes between the middle and the end."""
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) * 2, requests=1)))

    def interrupt(progress: Progress) -> None:
        if progress.bytes_done > len(data) // 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        fetch(url, cache_dir, OFTEN, progress=interrupt)
    journal = Journal.load(journal_path(cache_dir, url))
    assert journal is not None
    assert journal.log_lines > 100
    assert entries_log(journal_path(cache_dir, url)).stat().st_size == journal.log_bytes
    assert server.wait_idle(10)  # the abandoned response's bytes are counted before a rerun starts
    return data, url, journal


def assert_resumed_from(
    result: DownloadResult,
    journal: Journal,
    data: bytes,
    server: FaultServer,
    sent: int,
    at: int | None = None,
    adopted: int = 0,
) -> None:
    """The rerun resumed at ``at`` (default: the durable length ``D``) and fetched nothing it held; it inflated
    again no file the journal lists, nor the ``adopted`` files of a pending checkpoint."""
    at = journal.durable if at is None else at
    assert tree(result) == contents(data)
    assert result.bytes_reused == at
    assert server.bytes_sent(WHEEL) - sent == len(data) - at  # nothing on disk fetched again
    assert result.files_unpacked == len(contents(data)) - len(journal.files) - adopted


# -- the log on disk --------------------------------------------------------------------------------------


def garbage_cases(log: bytes) -> dict[str, bytes]:
    last_line = log[:-1].rsplit(b"\n", 1)[-1] + b"\n"
    return {
        "binary": b"\x00\xff\xfe garbage",
        "torn-line": b'[123456,"demo/x.py",0,8',  # an append cut short by the crash
        "whole-line": last_line,  # a complete line the header never vouched for (a duplicate, if it were read)
    }


@pytest.mark.parametrize("case", ["binary", "torn-line", "whole-line"])
def test_bytes_after_the_recorded_log_length_are_ignored(
    server: FaultServer, tmp_path: Path, case: str
) -> None:
    """A crash between appending to the log and replacing the header leaves bytes the header does not count."""
    data, url, journal = interrupted_halfway(server, tmp_path)
    log = entries_log(journal_path(tmp_path, url))
    with log.open("ab") as handle:
        handle.write(garbage_cases(log.read_bytes())[case])
    again = Journal.load(journal_path(tmp_path, url))
    assert again is not None
    assert again.entries == journal.entries
    assert again.files == journal.files
    sent = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path, OFTEN)
    assert_resumed_from(result, journal, data, server, sent)
    assert not log.exists()
    assert not journal_path(tmp_path, url).exists()


def test_the_next_save_cuts_off_what_a_crash_left_after_the_log(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    journal = Journal(url="u")
    journal.add_finished([_entry(0), _entry(100)], {"f0": StagedFile("f0", 1, "a" * 64, False)})
    journal.save(path)
    with entries_log(path).open("ab") as handle:
        handle.write(b"[999,garbage\n")
    loaded = Journal.load(path)
    assert loaded is not None
    loaded.add_finished([_entry(200)], {})
    loaded.save(path)
    reread = Journal.load(path)
    assert reread is not None
    assert [e.offset for e in reread.entries] == [0, 100, 200]
    assert entries_log(path).stat().st_size == reread.log_bytes
    assert b"garbage" not in entries_log(path).read_bytes()


@pytest.mark.parametrize("damage", ["shorter", "missing", "garbled", "more-lines"])
def test_a_log_that_disagrees_with_its_header_starts_fresh(
    server: FaultServer, tmp_path: Path, damage: str
) -> None:
    data, url, _journal = interrupted_halfway(server, tmp_path)
    log = entries_log(journal_path(tmp_path, url))
    raw = log.read_bytes()
    if damage == "shorter":
        os.truncate(log, len(raw) - 10)
    elif damage == "missing":
        log.unlink()
    elif damage == "garbled":
        log.write_bytes(b"{" + raw[1:])  # same length, not a line we write
    else:  # same bytes, but a newline where a comma was: the count of lines no longer matches
        log.write_bytes(raw.replace(b",", b"\n", 1))
    assert Journal.load(journal_path(tmp_path, url)) is None
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert result.bytes_reused == 0
    assert server.requests_for(WHEEL)[-1].range is None
    assert result.files_unpacked == len(contents(data))


@pytest.mark.parametrize(
    "header",
    [
        {"version": 1},
        {"log_bytes": -1},
        {"log_lines": "3"},
        {"entries": []},  # version 1 kept the entries inside the header
    ],
    ids=["old-version", "negative-length", "string-count", "unknown-key"],
)
def test_a_malformed_header_is_not_a_journal(tmp_path: Path, header: dict[str, object]) -> None:
    path = tmp_path / "k.json"
    Journal(url="u").save(path)
    payload = json.loads(path.read_text())
    payload.update(header)
    path.write_text(json.dumps(payload))
    assert Journal.load(path) is None


def test_the_log_holds_names_sizes_and_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    journal = Journal(url="https://host/demo.whl")
    staged = StagedFile("demo/a.py", 3, "ab" * 32, True)
    journal.add_finished(
        [LocalEntry(0, "demo/a.py", 0, 8, 7, 5, 3), LocalEntry(60, "demo/d/", 0, 0, 0, 0, 0)],
        {"demo/a.py": staged},
    )
    journal.save(path)
    lines = entries_log(path).read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        [0, "demo/a.py", 0, 8, 7, 5, 3, 3, "ab" * 32, True],
        [60, "demo/d/", 0, 0, 0, 0, 0],
    ]
    assert os.stat(entries_log(path)).st_mode & 0o077 == 0
    loaded = Journal.load(path)
    assert loaded is not None
    assert loaded.files == [staged]
    assert len(loaded.entries) == 2


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(min_size=1, max_size=40),
    numbers=st.lists(st.integers(min_value=0, max_value=2**64), min_size=6, max_size=6),
    staged=st.one_of(
        st.none(), st.tuples(st.integers(min_value=0, max_value=2**64), st.text(max_size=64), st.booleans())
    ),
)
def test_a_log_line_is_the_json_of_its_row_and_reads_back(
    name: str, numbers: list[int], staged: tuple[int, str, bool] | None
) -> None:
    """Log lines are built by hand (speed): they must be byte for byte what ``json.dumps`` writes, and one line
    each whatever the name holds (newlines, quotes, backslashes, non-ASCII, lone surrogates)."""
    entry = LocalEntry(numbers[0], name, *numbers[1:])
    files = {} if staged is None else {name: StagedFile(name, *staged)}
    journal = Journal(url="https://host/demo.whl")
    journal.add_finished([entry], files)
    row = [*entry, *files[name][1:]] if files else [*entry]  # the staged name is the entry's
    with tempfile.TemporaryDirectory() as directory:  # (hypothesis runs this body many times per tmp_path)
        path = Path(directory) / "k.json"
        journal.save(path)
        log = entries_log(path).read_bytes()
    assert log == (json.dumps(row, separators=(",", ":")) + "\n").encode("ascii")
    assert json.loads(log) == row


def test_discard_and_cache_clean_remove_the_log(server: FaultServer, tmp_path: Path) -> None:
    _data, url, _journal = interrupted_halfway(server, tmp_path / "a")
    Cache.at(tmp_path / "a").discard(cache_key(url))
    assert [p.name for p in (tmp_path / "a" / "partial").iterdir()] == [f"{cache_key(url)}.lock"]
    interrupted_halfway(server, tmp_path / "b")
    from wheelstream.cli import cli

    run = CliRunner().invoke(cli, ["cache", "clean", "--partial", "--cache-dir", str(tmp_path / "b")])
    assert run.exit_code == 0, run.output
    # The lock file stays, as ``discard`` leaves it: removed, a process waiting on it would hold a lock nobody
    # else takes (``cache clean`` deletes under it).
    assert [p.name for p in (tmp_path / "b" / "partial").iterdir()] == [f"{cache_key(url)}.lock"]


# -- what a checkpoint costs -----------------------------------------------------------------------------


def _entry(offset: int) -> LocalEntry:
    return LocalEntry(offset, f"f{offset}", 0, 8, 1, 2, 3)


def _bytes_of_one_save(tmp_path: Path, finished_before: int) -> tuple[int, int]:
    """(log bytes appended, header size) of a save that adds the same 3 entries after ``finished_before``."""
    path = tmp_path / f"{finished_before}.json"
    journal = Journal(url="u")
    journal.add_finished((_entry(i) for i in range(finished_before)), {})
    journal.save(path)
    before = entries_log(path).stat().st_size if finished_before else 0
    journal.add_finished(
        [_entry(10**8 + i) for i in range(3)], {f"f{10**8}": StagedFile(f"f{10**8}", 3, "c" * 64, False)}
    )
    journal.save(path)
    return entries_log(path).stat().st_size - before, path.stat().st_size


def test_a_save_writes_only_what_is_new(tmp_path: Path) -> None:
    few = _bytes_of_one_save(tmp_path, 10)
    many = _bytes_of_one_save(tmp_path, 20_000)
    assert few[0] == many[0] < 300  # the same three lines, whatever came before
    assert abs(few[1] - many[1]) <= 8  # the header differs by the digits of two counters


def test_checkpoint_cost_does_not_grow_with_finished_entries(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real download with dozens of checkpoints: each appends exactly the lines of the entries finished
    since the previous one, and the header stays the same size."""
    data = WELLFORMED["many_entries"]()
    # paced: ~100 network chunks of ~3 KB, each one past the 2 KiB checkpoint interval
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) // 2)))
    saves: list[tuple[int, int, int]] = []  # (lines before, new lines, bytes appended)
    headers: list[int] = []
    real_save = Journal.save

    def save(self: Journal, path: Path, *, sync: bool = True, **as_of: object) -> None:
        lines, size = self.log_lines, self.log_bytes
        real_save(self, path, sync=sync, **as_of)
        saves.append((lines, self.log_lines - lines, self.log_bytes - size))
        headers.append(path.stat().st_size)

    monkeypatch.setattr(Journal, "save", save)
    options = dataclasses.replace(OFTEN, checkpoint_bytes=2 << 10, checkpoint_seconds=60)
    result = fetch(url, tmp_path, options)
    assert tree(result) == contents(data)
    assert len(saves) >= 10
    assert saves[-1][0] + saves[-1][1] > 1900
    line = max(
        len(json.dumps([2000, "demo/pkg19/m1999.py", 0, 8, 2**32, 10**5, 10**5, 10**5, "0" * 64, False])), 1
    )
    for _before, new, appended in saves:
        assert appended <= new * line  # O(new entries), however many came before
        assert new == 0 or appended >= new * 40
    late = [appended / new for before, new, appended in saves if new and before > 1000]
    early = [appended / new for before, new, appended in saves if new and before < 500]
    assert late
    assert early
    assert max(late) < 1.2 * max(early)
    assert max(headers) - min(headers) <= 24  # the digits of four counters (the first header has all zeros)


def test_parser_hands_out_only_entries_finished_since_a_count() -> None:
    data = WELLFORMED["many_entries"]()
    parser = ZipStreamParser()
    parser.receive_data(data[: len(data) // 2])
    list(parser.events())
    first = parser.finished_count
    assert first > 10
    assert parser.finished_since(first) == []
    assert parser.finished_since(0) == list(parser.finished_entries)
    resumed = ZipStreamParser(parser.checkpoint, prior_entries=parser.finished_since(0))
    assert resumed.finished_count == first
    resumed.receive_data(data[parser.checkpoint :])
    resumed.receive_data(b"")
    list(resumed.events())
    new = resumed.finished_since(first)
    assert new
    assert all(e.offset >= parser.checkpoint for e in new)
    assert resumed.finished_since(0)[:first] == parser.finished_since(0)


# -- who takes the checkpoint ------------------------------------------------------------------------------


def never_skip_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """A periodic checkpoint due while the last one still syncs is owed and taken later (by design); tests that
    count or break specific checkpoints make the worker wait for the syncer instead, so every request is
    taken when it comes."""
    real = tee.Tee._snapshot_checkpoint

    def waiting(self: tee.Tee, *, drain: bool = False) -> None:
        self._syncer.wait()
        real(self, drain=drain)

    monkeypatch.setattr(tee.Tee, "_snapshot_checkpoint", waiting)


def test_periodic_checkpoints_run_on_the_worker_without_restarting_it(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker snapshots each periodic checkpoint between two blocks; the syncer makes it durable. (Several
    coming due before the worker is done with its block, or while the last syncs, are one: so the download is
    paced over 1.5 s, or a loaded machine whose fsyncs take longer than the whole transfer coalesces them all.)"""
    data = mixed_wheel()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) * 2 // 3, requests=1))
    )
    snapshots: list[str] = []
    durable: list[str] = []
    workers = 0
    real_snapshot, real_durable, real_init = (
        tee.Tee._snapshot_checkpoint,
        tee.Tee._make_durable,
        stages.Unpacker.__init__,
    )

    def snapshot(self: tee.Tee, *, drain: bool = False) -> None:
        snapshots.append(threading.current_thread().name)
        real_snapshot(self, drain=drain)

    def make_durable(self: tee.Tee, shot: stages.Snapshot) -> None:
        durable.append(threading.current_thread().name)
        real_durable(self, shot)

    def init(self: stages.Unpacker, *args: object) -> None:
        nonlocal workers
        workers += 1
        real_init(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tee.Tee, "_snapshot_checkpoint", snapshot)
    monkeypatch.setattr(tee.Tee, "_make_durable", make_durable)
    monkeypatch.setattr(stages.Unpacker, "__init__", init)
    result = fetch(url, tmp_path, dataclasses.replace(OFTEN, checkpoint_bytes=256 << 10))
    assert tree(result) == contents(data)
    assert len(snapshots) >= 3
    assert set(snapshots) == {"wheelstream-unpack"}
    assert durable
    assert set(durable) == {"wheelstream-checkpoint"}
    assert workers == 1  # one attempt, one worker: no checkpoint drained the pipeline and restarted it


def test_every_checkpoint_lists_only_files_already_complete_on_disk(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked at the moment each journal is written: the small-file writers are slowed down so that they
    lag behind the parser, and still every file the journal lists is whole on disk, and the partial holds D.
    The periodic checkpoints do not wait for the writers: they stop at the first file not written yet (and
    the parser goes on meanwhile); the download is paced so that the writers progress between them."""
    import wheelstream.unpack._extract as extract

    data = mixed_wheel()
    expected = contents(data)
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data))))
    real_write, real_save, real_snapshot = extract._write_file, Journal.save, tee.Tee._snapshot
    lagging = []

    def snapshot(self: tee.Tee, *, drained: bool = True) -> object:
        taken = real_snapshot(self, drained=drained)
        if taken.checkpoint < self.parser.checkpoint and taken.entries:
            lagging.append(taken.checkpoint)  # behind the parser, yet with progress since the last one
        return taken

    staging = tmp_path / "staging" / cache_key(url)
    partial = tmp_path / "partial" / f"{cache_key(url)}.whl.part"
    checked = {"files": 0, "saves": 0}

    def slow_write(path: str, chunks: list[bytes], name: str, offset: int) -> object:
        time.sleep(0.001)
        return real_write(path, chunks, name, offset)

    def save(self: Journal, path: Path, *, sync: bool = True, **as_of: object) -> None:
        assert self.checkpoint <= self.durable <= partial.stat().st_size
        for staged in self.files[checked["files"] :]:  # earlier ones were checked by earlier saves
            content = (staging / staged.name).read_bytes()
            assert content == expected[staged.name]
            assert hashlib.sha256(content).hexdigest() == staged.sha256
        checked["files"] = len(self.files)
        checked["saves"] += 1
        real_save(self, path, sync=sync, **as_of)

    monkeypatch.setattr(extract, "_write_file", slow_write)
    monkeypatch.setattr(Journal, "save", save)
    monkeypatch.setattr(tee.Tee, "_snapshot", snapshot)
    never_skip_checkpoints(monkeypatch)
    result = fetch(url, tmp_path, dataclasses.replace(OFTEN, checkpoint_bytes=128 << 10))
    assert tree(result) == expected
    # Behind slowed writers the last periodic checkpoints lag, so fewer than all 1,500 files get listed
    # before the download ends (the journal is then removed); each save above checked what it listed.
    assert checked["saves"] >= 10
    assert checked["files"] > 300
    assert len(lagging) >= 3
    assert lagging == sorted(lagging)


def test_small_files_read_back_from_the_partial_file_survive_a_cut_and_an_interrupt(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no memory budget every small file is read back from the partial file by its writer: through a
    dropped connection (same process) and a Ctrl-C then a new attempt (a resume from the journal), the result
    is the wheel's, and the rerun fetches only what the first attempt had not made durable."""
    import wheelstream.unpack._extract as extract

    monkeypatch.setattr(extract, "_MAX_PENDING", 0)
    data = mixed_wheel()
    reads = []
    real_read_at = PartialFile.read_at

    def read_at(self: PartialFile, offset: int, size: int) -> bytes:
        reads.append(offset)
        return real_read_at(self, offset, size)

    monkeypatch.setattr(PartialFile, "read_at", read_at)
    url = server.add_file(
        WHEEL,
        data,
        plan=FaultPlan(Cut(percent=30, requests=1), Throttle(bytes_per_second=len(data) * 2, requests=2)),
    )

    def interrupt(progress: Progress) -> None:
        if progress.bytes_done > len(data) * 2 // 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        fetch(url, tmp_path, OFTEN, progress=interrupt)
    journal = Journal.load(journal_path(tmp_path, url))
    assert journal is not None
    assert journal.files
    assert journal.durable > len(data) // 2
    assert server.wait_idle(10)
    sent = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path, OFTEN)
    assert tree(result) == contents(data)
    assert server.bytes_sent(WHEEL) - sent == len(data) - journal.durable
    assert len(reads) > 1000  # the writers did read the small files back


def test_periodic_checkpoints_move_past_a_few_small_files_followed_by_large_ones(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nvidia-style: three small files, then large ones. The small files fill no batch of their own; a periodic
    checkpoint sends what is there, so the next one can move past them (a kill -9 then redoes only the last
    large files, not all). Watched while the download runs (it stalls near the end, so it is watched past
    the last periodic checkpoint), with no idle checkpoint to help."""
    monkeypatch.setattr(stages, "IDLE_AFTER", 3600.0)
    never_skip_checkpoints(monkeypatch)  # the last request before the stall is taken, however slow the disk
    rng = random.Random(3)
    files = {f"demo/small{i}.py": f"X = {i}\n".encode() * 10 for i in range(3)}
    files.update({f"demo/big{i}.bin": rng.randbytes(2_000_000) for i in range(6)})
    data = make_wheel(files)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        offsets = {i.filename: i.header_offset for i in archive.infolist()}
    url = server.add_file(WHEEL, data, plan=FaultPlan(Stall(at=len(data) * 9 // 10, seconds=2, requests=1)))
    outcome: dict[str, object] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=fetch(url, tmp_path, OFTEN)))
    thread.start()
    checkpoints: list[int] = []

    def past_the_small_files() -> bool:  # read while the download runs: once it ends, the journal is gone
        journal = Journal.load(journal_path(tmp_path, url))
        checkpoints.append(journal.checkpoint if journal is not None else -1)
        return checkpoints[-1] >= offsets["demo/big3.bin"] or not thread.is_alive()

    try:
        wait_until(past_the_small_files, timeout=20, what="a checkpoint past the small files")
    finally:
        thread.join(20)
    assert max(checkpoints) >= offsets["demo/big3.bin"], checkpoints
    assert tree(outcome["result"]) == contents(data)  # type: ignore[arg-type]


def test_a_failed_checkpoint_on_the_worker_surfaces_and_the_last_good_one_resumes(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = mixed_wheel()
    url = server.add_file(WHEEL, data)
    real_save = Journal.save
    calls = {"n": 0}

    def save(self: Journal, path: Path, *, sync: bool = True, **as_of: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            assert threading.current_thread() is not threading.main_thread()  # beside the download, not in it
            raise OSError(28, "No space left on device (injected)")
        real_save(self, path, sync=sync, **as_of)

    monkeypatch.setattr(Journal, "save", save)
    never_skip_checkpoints(monkeypatch)
    with pytest.raises(DiskError, match="injected") as raised:
        fetch(url, tmp_path, dataclasses.replace(OFTEN, checkpoint_bytes=256 << 10))
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == 28
    assert "kept — run the same command again to resume" in str(raised.value)
    assert not [t for t in threading.enumerate() if t.name == "wheelstream-unpack" and t.is_alive()]
    assert server.wait_idle(10)  # the abandoned response's bytes are counted before the rerun starts
    monkeypatch.setattr(Journal, "save", real_save)
    journal = Journal.load(journal_path(tmp_path, url))
    assert journal is not None
    assert journal.durable > 0
    sent = server.bytes_sent(WHEEL)
    at = received_before_the_kill(tmp_path, url, journal)  # the bytes written past D are proven by the trail
    assert at > journal.durable
    # The failed checkpoint had written its pending record before the failing save: its files are taken too.
    adopted = pending_files(tmp_path, url, journal, at)
    assert_resumed_from(fetch(url, tmp_path), journal, data, server, sent, at, adopted)


# -- kill -9 -------------------------------------------------------------------------------------------------

KILL_SCRIPT = """
import sys, httpx
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client,
                options=DownloadOptions(checkpoint_bytes=64 * 1024, checkpoint_seconds=0.02))
print("finished")
"""

# Killed by its own hand between appending to the log and replacing the header of checkpoint N.
KILL_IN_SAVE_SCRIPT = """
import os, signal, sys, threading, httpx
import wheelstream.unpack._partial as partial
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
real, calls = partial._replace, [0]
def replace(path, text, *, sync=True):
    calls[0] += sync  # durable saves only (the header written at the first response is not one)
    if sync and calls[0] == int(sys.argv[3]):
        print(threading.current_thread().name, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, text, sync=sync)
partial._replace = replace
import wheelstream.unpack._tee as tee
real_snapshot = tee.Tee._snapshot_checkpoint
def waiting(self, *, drain=False):  # take every checkpoint when due (a busy syncer would owe some): N exists
    self._syncer.wait()
    real_snapshot(self, drain=drain)
tee.Tee._snapshot_checkpoint = waiting
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client,
                options=DownloadOptions(checkpoint_bytes=64 * 1024, checkpoint_seconds=0.02))
print("finished")
"""


def assert_checkpoint_is_sound(cache_dir: Path, url: str, data: bytes) -> Journal:
    """What the last checkpoint on disk lists is complete: each file whole, with the digest it records."""
    journal = Journal.load(journal_path(cache_dir, url))
    assert journal is not None
    partial = cache_dir / "partial" / f"{cache_key(url)}.whl.part"
    assert journal.checkpoint <= journal.durable <= partial.stat().st_size
    assert all(entry.offset < journal.checkpoint for entry in journal.entries)
    assert len({entry.name for entry in journal.entries}) == len(journal.entries)
    expected = contents(data)
    staging = cache_dir / "staging" / cache_key(url)
    for staged in journal.files:
        content = (staging / staged.name).read_bytes()
        assert content == expected[staged.name], staged.name
        assert (len(content), hashlib.sha256(content).hexdigest()) == (staged.size, staged.sha256)
    assert {f.name for f in journal.files} <= {e.name for e in journal.entries}
    return journal


def received_before_the_kill(cache_dir: Path, url: str, journal: Journal) -> int:
    """Where a rerun must resume after a kill -9: the end of the last block whose trail line was written (the
    process died after the write, so the page cache holds it), or ``D`` when none lies past it."""
    trail = journal_path(cache_dir, url).with_suffix(".trail")
    partial = cache_dir / "partial" / f"{cache_key(url)}.whl.part"
    lengths = [int(line.split()[0]) for line in trail.read_text().splitlines()] if trail.exists() else []
    return max([journal.durable, *(n for n in lengths if n <= partial.stat().st_size)])


def rerun_and_check(server: FaultServer, cache_dir: Path, url: str, data: bytes, journal: Journal) -> None:
    assert server.wait_idle(10)  # the killed connection's bytes are counted before the rerun starts
    sent = server.bytes_sent(WHEEL)
    at = received_before_the_kill(cache_dir, url, journal)
    adopted = pending_files(cache_dir, url, journal, at)
    result = fetch(url, cache_dir)
    assert_resumed_from(result, journal, data, server, sent, at, adopted)
    if at < len(data):
        assert server.requests_for(WHEEL)[-1].range == f"bytes={at}-"


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_at_a_random_point_leaves_a_sound_checkpoint(
    server: FaultServer, tmp_path: Path, seed: int
) -> None:
    """Killed at a random byte of the download (not right after a checkpoint): whatever the worker was
    doing, the journal on disk lists only entries whose files are complete, and the rerun resumes there."""
    data = mixed_wheel()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) // 2, requests=1)))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, str(tmp_path)], stdout=subprocess.PIPE)
    partial = tmp_path / "partial" / f"{cache_key(url)}.whl.part"
    kill_after = int(len(data) * (0.15 + 0.7 * random.Random(seed).random()))
    # a progress point, independent of when checkpoints happen
    wait_until(
        lambda: partial.exists() and partial.stat().st_size >= kill_after,
        timeout=30,
        what=f"{kill_after} bytes in the partial file",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    journal = assert_checkpoint_is_sound(tmp_path, url, data)
    assert 0 < journal.durable < len(data)
    assert journal.files
    rerun_and_check(server, tmp_path, url, data, journal)


@pytest.mark.parametrize("nth", [3, 9])
def test_sigkill_between_log_append_and_header_resumes_from_the_previous_checkpoint(
    server: FaultServer, tmp_path: Path, nth: int
) -> None:
    data = mixed_wheel()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) * 2, requests=1)))
    proc = subprocess.run(
        [sys.executable, "-c", KILL_IN_SAVE_SCRIPT, url, str(tmp_path), str(nth)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.split() == [
        "wheelstream-checkpoint"
    ]  # a periodic checkpoint, made durable beside the worker
    journal = assert_checkpoint_is_sound(tmp_path, url, data)
    log = entries_log(journal_path(tmp_path, url))
    # The killed save's lines (if any) lie past the header's count. Periodic checkpoints list only entries
    # already written, so the first saves may have listed none, and then no log file exists yet.
    assert (log.stat().st_size if log.exists() else 0) >= journal.log_bytes
    rerun_and_check(server, tmp_path, url, data, journal)


def test_a_syncer_that_cannot_start_its_thread_fails_loudly_and_never_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pid limit refusing the thread: the error reaches the worker, and a later ``wait`` returns at once."""
    syncer = stages.Syncer(lambda snapshot: None)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start"):
        syncer.try_submit(lambda: stages.Snapshot(0, [], {}, None))
    assert not syncer.busy
    syncer.wait()


def test_the_streams_own_error_wins_over_a_failed_checkpoint(tmp_path: Path) -> None:
    """A bad archive found by the worker and a checkpoint that failed on the syncer: the caller hears about
    the archive (what the user must fix), and the syncer is still waited for."""
    from wheelstream.errors import StrayData

    stream = bare_stream(tmp_path)
    stream._syncer.error = OSError(28, "No space left on device (injected)")
    stream.feed(b"not a zip at all" * 100_000)  # > one block: handed to the worker, which fails on it
    with pytest.raises(StrayData):
        stream.settle()
    with pytest.raises(OSError, match="injected"):
        stream.settle()  # nothing else pending: now the checkpoint's error is what is left to say
    stream.abandon()


def bare_stream(tmp_path: Path) -> tee.Tee:
    """A tee of its own, fed by the test (no download around it)."""
    from wheelstream.unpack._extract import Extractor
    from wheelstream.unpack._partial import PartialFile

    cache = Cache.at(tmp_path / "cache")
    return tee.Tee(
        wheel="demo-1.0-py3-none-any.whl",
        journal_path=cache.journal("k"),
        journal=Journal(url="http://x/demo.whl"),
        partial=PartialFile(cache.partial("k")),
        parser=ZipStreamParser(),
        extractor=Extractor(cache.staging("k"), writers=True),
        hasher=_sha256.new(),
    )


def test_a_checkpoint_due_while_the_last_one_syncs_is_taken_as_soon_as_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The syncer is held inside the first checkpoint while the second comes due: the second is owed, not
    skipped, and taken after the next block once the syncer is free — not an interval later."""
    data = mixed_wheel()
    stream = bare_stream(tmp_path)
    release, saved = threading.Event(), list[int]()
    real = tee.Tee._make_durable

    def held(self: tee.Tee, snapshot: stages.Snapshot) -> None:
        if not saved:
            release.wait(10)  # the first checkpoint syncs until the test lets it go
        real(self, snapshot)
        saved.append(self.journal.durable)

    monkeypatch.setattr(tee.Tee, "_make_durable", held)
    block = 1 << 20
    stream.feed(data[:block])
    stream.maybe_checkpoint(block, 1e9)  # the first: taken, then held in the syncer
    wait_until(lambda: stream._syncer.busy, what="the first checkpoint syncing")
    stream.feed(data[block : 2 * block])
    stream.maybe_checkpoint(block, 1e9)  # due while the first still syncs: owed
    wait_until(lambda: stream._owed, what="the second checkpoint owed")
    release.set()
    wait_until(lambda: not stream._syncer.busy, what="the first checkpoint written")
    stream.feed(data[2 * block : 3 * block])  # the next block: the owed checkpoint goes now
    wait_until(lambda: len(saved) == 2, what="the owed checkpoint written")
    assert saved[1] >= 2 * block
    stream.abandon()


def test_a_dropped_connection_resumes_without_waiting_for_a_checkpoint_to_sync(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a drop the next request goes out at once on the in-memory state; a periodic checkpoint still
    syncing (held here until the second request has started, 5 s at most) must not hold it up. The download
    still ends complete and correct, with the held checkpoint finished before anything is renamed."""
    from wheelstream.unpack._extract import Extractor

    data = mixed_wheel()
    # Paced (~0.5 s to the cut), so that periodic checkpoints with written entries — the ones that sync — come
    # before the drop even when the writers are slow: unpaced, the 1 MiB blocks before the cut gave a loaded
    # machine only two or three checkpoints, none with a file written yet, and nothing was syncing at the drop.
    plan = FaultPlan(Throttle(bytes_per_second=len(data) * 3 // 2, requests=1), Cut(percent=70, requests=1))
    url = server.add_file(WHEEL, data, plan=plan)
    syncing = threading.Event()
    release = threading.Event()
    seen_while_syncing: list[bool] = []
    real_flush = Extractor.flush_to_disk

    def slow_flush(self: Extractor) -> None:
        syncing.set()
        try:
            release.wait(5)
            real_flush(self)
        finally:
            syncing.clear()

    def on_request(request: httpx.Request) -> None:
        if "Range" in request.headers:  # the request after the drop
            seen_while_syncing.append(syncing.is_set())
            release.set()

    monkeypatch.setattr(Extractor, "flush_to_disk", slow_flush)
    with httpx.Client(timeout=10, event_hooks={"request": [on_request]}) as client:
        result = fetch_wheel(
            url,
            cache=Cache.at(tmp_path),
            client=client,
            options=dataclasses.replace(OFTEN, checkpoint_bytes=256 << 10),
        )
    assert tree(result) == contents(data)
    assert result.resumed_at is not None
    assert seen_while_syncing == [True]


def test_past_a_deferred_entry_the_idle_worker_takes_no_checkpoints_while_bytes_flow(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a stored entry with a data descriptor the worker is handed nothing until the end, so it looks idle
    every 0.5 s while the download goes on at full speed. An idle checkpoint there would sync the disk for
    nothing (the network has not stalled); the periodic ones — off here — are what cover that phase."""
    files = {f"demo/m{i:02d}.bin": bytes([i]) * 300_000 for i in range(12)}
    data = make_wheel(
        files, compress=0, sized=False
    )  # every entry stored + data descriptor: deferred at once
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) // 2, requests=1)))
    real_save = Journal.save
    by_worker: list[int] = []

    def save(self: Journal, path: Path, *, sync: bool = True, **as_of: object) -> None:
        if threading.current_thread() is not threading.main_thread():  # not the download's own (final) save
            by_worker.append(self.durable)
        real_save(self, path, sync=sync, **as_of)

    monkeypatch.setattr(Journal, "save", save)
    options = dataclasses.replace(FAST, checkpoint_bytes=1 << 40, checkpoint_seconds=1e9)
    result = fetch(url, tmp_path, options)  # ~2 s of download, nearly all of it past the deferred entry
    assert tree(result) == contents(data)
    # Only the first checkpoint (after one block) and the one at the end of input; none while bytes flow.
    assert len(by_worker) <= 2
    assert all(durable <= 2 << 20 or durable == len(data) for durable in by_worker), by_worker
