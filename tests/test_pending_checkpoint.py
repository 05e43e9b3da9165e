"""A kill while a checkpoint is being made durable (``wheelstream.unpack._pending``): the rerun keeps what the
pending checkpoint proves, as far as staging bears it out, and nothing else.

Every kill here is a real SIGKILL of a real download from the project's fault server, at the named kill point
``checkpoint.staging-sync`` (the pending record written, staging's sync not yet begun, the journal still at
the last durable checkpoint): the moment a kill in a stall used to cost everything extracted since that
checkpoint. What a rerun extracts again is counted (``files_unpacked``) against the archive's own local
header offsets, read with ``zipfile``; what it fetches again is counted on the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import contents, fetch, pending_record, tree

from fixtures.wellformed import make_wheel
from wheelstream._staged import StagedFile
from wheelstream._urls import cache_key
from wheelstream.testing import FaultPlan, FaultServer, Throttle
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal, entries_log
from wheelstream.unpack._pending import pending_path
from wheelstream.zip import LocalEntry

WHEEL = "pending-1.0-py3-none-any.whl"

# A download with checkpoints every 64 KiB / 20 ms on ``argv[3]`` connections, killed at the N-th sync of staging.
KILL_SCRIPT = """
import sys, httpx
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client,
                options=DownloadOptions(checkpoint_bytes=64 * 1024, checkpoint_seconds=0.02,
                                        connections=int(sys.argv[3])))
print("finished")
"""


@cache
def wheel() -> bytes:
    """~1,200 small files around three incompressible 256 KB ones and empty directories, then a 2 MB one:
    checkpoints fall among small files and inside large ones, and a rerun after any kill here still has more
    than one 1 MiB block to fetch (its first checkpoint is due after one)."""
    rng = random.Random(11)
    files: dict[str, bytes] = {}
    for i in range(1200):  # lines of random hex: ~300 bytes a file in the archive, so a run of them lasts
        lines = (f"N{j} = 0x{rng.getrandbits(64):016x}\n" for j in range(1 + i % 30))
        files[f"pending/p{i // 100:02d}/m{i:04d}.py"] = "".join(lines).encode()
        if i % 400 == 150:
            files[f"pending/blob{i // 400}.bin"] = rng.randbytes(1 << 18)
            files[f"pending/empty{i // 400}/"] = b""
    files["pending/tail.bin"] = rng.randbytes(2 << 20)
    return make_wheel(files)


def file_offsets(data: bytes) -> dict[str, int]:
    """Each regular file's local header offset, as zipfile reads the central directory."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: i.header_offset for i in archive.infolist() if not i.is_dir()}


def files_from(data: bytes, offset: int) -> int:
    """How many files a parser restarted at ``offset`` extracts."""
    return sum(at >= offset for at in file_offsets(data).values())


class Killed:
    """One download killed at the N-th staging sync, and what it left in the cache."""

    def __init__(self, server: FaultServer, cache_dir: Path, nth: int, connections: int = 1) -> None:
        data = wheel()
        self.server, self.cache_dir, self.data, self.connections = server, cache_dir, data, connections
        # 400 KB/s: the runs of small files between the blobs (40, 105, 106 and 67 KB), which are what move the
        # checkpoint, last long enough for several 20 ms checkpoints each even when every sync waits for a busy
        # disk. (At a pace of the whole wheel in two seconds, where the runs lasted 5-85 ms, a loaded CI machine
        # finished before the sixth staging sync.) A kill comes before the tail: the throttle costs ~1-2 s.
        self.url = server.add_file(
            WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=400_000, requests=1))
        )
        key = cache_key(self.url)
        self.journal_path = cache_dir / "partial" / f"{key}.json"
        self.staging = cache_dir / "staging" / key
        self.kill_at(nth)

    def kill_at(self, nth: int) -> None:
        """Run the download (again), killed at the N-th staging sync of this process; read what it left."""
        env = {**os.environ, "WHEELSTREAM_KILL_AT": f"checkpoint.staging-sync@{nth}"}
        proc = subprocess.run(
            [sys.executable, "-c", KILL_SCRIPT, self.url, str(self.cache_dir), str(self.connections)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert proc.returncode == -9, proc.stdout + proc.stderr
        journal = Journal.load(self.journal_path)
        assert journal is not None
        self.journal = journal
        self.record = json.loads(pending_path(self.journal_path).read_text())
        # Whether a rerun takes it, judged now: a rerun replaces the record and the log it names.
        self.taken = pending_record(self.cache_dir, self.url, journal, len(self.data))
        assert self.server.wait_idle(10)
        self.sent = self.server.bytes_sent(WHEEL)

    def pending_rows(self) -> list[tuple[LocalEntry, StagedFile | None]]:
        rows = self.journal.load_pending(self.journal_path)
        assert rows is not None
        return rows[1]

    def expected_unpacked(self) -> int:
        """What a rerun extracts when every file is whole: from the pending checkpoint if a rerun takes it
        (then every file it lists is there), else from the journal's."""
        if self.taken is not None:
            return files_from(self.data, self.taken[0]["checkpoint"])
        return len(file_offsets(self.data)) - len(self.journal.files)

    def rerun(self) -> int:
        """Resume; the files it extracted again. The tree is the archive's, and no byte already in the partial
        file (as far as its trail proves) is fetched again."""
        result = fetch(self.url, self.cache_dir)
        assert tree(result) == contents(self.data)
        assert self.server.bytes_sent(WHEEL) - self.sent == len(self.data) - result.bytes_reused
        assert result.bytes_reused >= self.journal.durable
        return result.files_unpacked


@pytest.mark.parametrize(("nth", "connections"), [(1, 1), (3, 1), (6, 1), (3, 4)])
def test_a_kill_while_staging_syncs_keeps_the_pending_checkpoint(
    server: FaultServer, tmp_path: Path, nth: int, connections: int
) -> None:
    killed = Killed(server, tmp_path, nth, connections)
    pending = killed.record["checkpoint"]
    assert pending > killed.journal.checkpoint  # the kill came before the journal could record it
    assert killed.rerun() == files_from(killed.data, pending)


@pytest.mark.parametrize("again", [1, 2])
def test_a_resumed_process_killed_again_leaves_what_it_took_provable(
    server: FaultServer, tmp_path: Path, again: int
) -> None:
    """The second process took the first one's pending checkpoint, and is killed at its own first (or second)
    staging sync: its files, the taken ones too, were never synced, and its record must still cover them."""
    killed = Killed(server, tmp_path, 3)
    first = killed.record["checkpoint"]
    server.set_plan(WHEEL, FaultPlan(Throttle(bytes_per_second=len(killed.data) * 2)))  # slow enough to kill
    killed.kill_at(again)
    assert killed.record["checkpoint"] >= first
    assert killed.rerun() == killed.expected_unpacked()
    assert killed.expected_unpacked() <= files_from(killed.data, first)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _zeroed(path: Path) -> None:  # what a power loss can leave: the size kept, the bytes not
    path.write_bytes(bytes(path.stat().st_size))


def _removed(path: Path) -> None:
    path.unlink()


def _made_a_symlink(path: Path) -> None:
    target = path.with_name(path.name + ".elsewhere")
    path.rename(target)
    path.symlink_to(target.name)


def _made_a_fifo(path: Path) -> None:  # opened for reading, a FIFO would wait for a writer forever
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize(
    "spoil", [_flip_a_byte, _cut_short, _zeroed, _removed, _made_a_symlink, _made_a_fifo]
)
def test_the_first_pending_file_staging_does_not_bear_out_is_where_the_rerun_restarts(
    server: FaultServer, tmp_path: Path, spoil: Callable[[Path], None]
) -> None:
    killed = Killed(server, tmp_path, 3)
    files = [(entry, staged) for entry, staged in killed.pending_rows() if staged and staged.size > 1]
    assert files
    entry, staged = files[len(files) // 2]
    spoil(killed.staging / staged.name)
    assert killed.rerun() == files_from(killed.data, entry.offset)


def _record_edit(**changes: Callable[[dict[str, Any]], object]) -> Callable[[Killed], None]:
    """A record that still parses, one of its fields changed (from its value)."""

    def edit(killed: Killed) -> None:
        record = dict(killed.record)
        record.update({name: change(killed.record) for name, change in changes.items()})
        pending_path(killed.journal_path).write_text(json.dumps(record))

    edit.__name__ = "record-" + "-".join(changes)
    return edit


def _plus(name: str, amount: int) -> Callable[[dict[str, Any]], object]:
    return lambda record: int(record[name]) + amount


def _log_byte_flipped(killed: Killed) -> None:
    log = entries_log(killed.journal_path)
    data = bytearray(log.read_bytes())
    data[killed.record["base_bytes"] + 3] ^= 0x01  # inside the first pending line: its hash no longer holds
    log.write_bytes(bytes(data))


def _log_cut(killed: Killed) -> None:
    log = entries_log(killed.journal_path)
    log.write_bytes(log.read_bytes()[: killed.record["end_bytes"] - 1])


def _record_torn(killed: Killed) -> None:
    path = pending_path(killed.journal_path)
    path.write_bytes(path.read_bytes()[:-7])


def _checkpoint_past_the_kept_bytes(killed: Killed) -> None:
    """What a power loss can leave: the partial and its trail back at the durable length ``D``, and a pending
    checkpoint past it, so past every byte a rerun may keep (a kill alone cannot: the parser only ever sees
    bytes already written and trailed)."""
    partial = killed.cache_dir / "partial" / f"{cache_key(killed.url)}.whl.part"
    os.truncate(partial, killed.journal.durable)
    killed.journal_path.with_suffix(".trail").write_bytes(b"")
    checkpoint = max(killed.record["checkpoint"], killed.journal.durable + 1)
    _record_edit(checkpoint=lambda record: checkpoint)(killed)


@pytest.mark.parametrize(
    "tamper",
    [
        _record_edit(sha256=lambda record: "0" * 64),
        _record_edit(base_bytes=_plus("base_bytes", 1)),
        _record_edit(base_lines=_plus("base_lines", 1)),
        _record_edit(checkpoint=lambda record: 0),
        _record_edit(deferred_at=lambda record: 5),
        _record_edit(lines=_plus("lines", 1)),
        _record_edit(end_bytes=_plus("end_bytes", 10**6)),
        _record_edit(checkpoint=lambda record: "far"),
        _log_byte_flipped,
        _log_cut,
        _record_torn,
        _checkpoint_past_the_kept_bytes,
    ],
    ids=lambda tamper: tamper.__name__,
)
def test_a_pending_record_that_does_not_agree_is_ignored(
    server: FaultServer, tmp_path: Path, tamper: Callable[[Killed], None]
) -> None:
    """The rerun starts at the durable checkpoint, exactly as if no record were there."""
    killed = Killed(server, tmp_path, 3)
    tamper(killed)
    assert killed.rerun() == len(file_offsets(killed.data)) - len(killed.journal.files)


def test_a_completed_checkpoint_makes_its_pending_record_stale(tmp_path: Path) -> None:
    """After the durable save the record's base is no longer the header's log: a later resume ignores it."""
    journal_path = tmp_path / "k.json"
    journal = Journal(url="https://example.invalid/w.whl")
    entry = LocalEntry(0, "a.py", 0, 8, 1, 3, 4)
    journal.add_finished([entry], {"a.py": StagedFile("a.py", 4, hashlib.sha256(b"abcd").hexdigest(), False)})
    journal.save_pending(journal_path, 100, None)
    log_before_save = entries_log(journal_path).read_bytes()
    header = Journal(url=journal.url)
    assert header.load_pending(journal_path) == (100, [(entry, journal.files[0])])
    journal.checkpoint = 100
    journal.save(journal_path)
    assert (
        entries_log(journal_path).read_bytes() == log_before_save
    )  # the lines were only synced, not rewritten
    reloaded = Journal.load(journal_path)
    assert reloaded is not None
    assert reloaded.checkpoint == 100
    assert reloaded.load_pending(journal_path) is None


def test_lines_queued_after_the_pending_write_are_written_by_the_save(tmp_path: Path) -> None:
    """A save whose queue grew since the pending write writes every line (not only syncs the old ones)."""
    journal_path = tmp_path / "k.json"
    journal = Journal(url="https://example.invalid/w.whl")
    first, second = LocalEntry(0, "a/", 0, 0, 0, 0, 0), LocalEntry(40, "b/", 0, 0, 0, 0, 0)
    journal.add_finished([first], {})
    journal.save_pending(journal_path, 40, None)
    journal.add_finished([second], {})
    journal.checkpoint = 80
    journal.save(journal_path)
    reloaded = Journal.load(journal_path)
    assert reloaded is not None
    assert reloaded.entries == [first, second]


def test_files_taken_from_a_pending_checkpoint_are_synced_before_a_checkpoint_records_them(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were never synced by the killed process. Even a checkpoint that moves only ``D`` (the resumed
    stream's first, after one block) would record them in the journal: staging's sync must come first."""
    killed = Killed(server, tmp_path, 3)
    order: list[str] = []
    real_flush, real_save = Extractor.flush_to_disk, Journal.save

    def flush(self: Extractor) -> None:
        order.append("staging synced")
        real_flush(self)

    def save(self: Journal, path: Path, *, sync: bool = True, **as_of: object) -> None:
        if sync:
            order.append(f"journal saved at C={self.checkpoint}")
        real_save(self, path, sync=sync, **as_of)

    monkeypatch.setattr(Extractor, "flush_to_disk", flush)
    monkeypatch.setattr(Journal, "save", save)
    assert killed.rerun() < len(file_offsets(killed.data)) - len(killed.journal.files)  # it took some
    assert order[0] == "staging synced", order
    # ... and the first save records them: its checkpoint is at least the one taken
    saved_at = int(next(event for event in order if event.startswith("journal")).rpartition("=")[2])
    assert saved_at >= killed.record["checkpoint"], order
