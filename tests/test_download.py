"""Resumable download + unpack through a real server on 127.0.0.1 (the project's fault server).

Every scenario of issue 4 / DESIGN §3: drops within one command, kill -9 between processes, servers that
ignore Range, change the file, answer the wrong range, are busy; concurrent processes; corruption.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import contents, fetch, pending_files, saved_journal, tree, wait_until

from fixtures.hostile import HOSTILE
from fixtures.wellformed import STORED, WELLFORMED, make_wheel
from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream._progress import Progress
from wheelstream._urls import cache_key
from wheelstream.errors import (
    ChecksumMismatch,
    HashMismatch,
    Interrupted,
    ResourceGone,
    RetriesExhausted,
)
from wheelstream.fetch import DownloadOptions, DownloadResult
from wheelstream.testing import (
    ChangeFile,
    Corrupt,
    Cut,
    CutEvery,
    FaultPlan,
    FaultServer,
    Gzip,
    IgnoreRange,
    NoValidators,
    Stall,
    Status,
    Throttle,
    WeakETag,
    WrongRangeStart,
    since,
)
from wheelstream.unpack._partial import Journal

WHEEL = "demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize("seed", range(4))
def test_drops_at_random_offsets_in_one_command(server: FaultServer, tmp_path: Path, seed: int) -> None:
    data = WELLFORMED["mixed_streamable" if seed % 2 else "many_entries"]()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 8))
    # request k is cut after (cuts[k] - cuts[k-1]) body bytes: the server drops at each absolute offset
    plan = FaultPlan(
        *[Cut(after=b - a, requests=i + 1) for i, (a, b) in enumerate(itertools.pairwise([0, *cuts]))]
    )
    url = server.add_file(WHEEL, data, plan=plan)
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert server.bytes_sent(WHEEL) == len(data)  # nothing fetched twice
    assert len(server.requests_for(WHEEL)) == len(cuts) + 1
    assert result.files_unpacked == len(contents(data))  # nothing inflated twice
    assert all(r.range == f"bytes={c}-" for r, c in zip(server.requests_for(WHEEL)[1:], cuts, strict=True))


def test_a_download_endpoint_named_by_its_caller_resumes_under_that_name(
    server: FaultServer, tmp_path: Path
) -> None:
    """``filename``: a URL that does not end in the wheel's name (a registry's ``…/content``, as a lock's PEP 751
    ``name`` gives it) downloads, resumes after a cut and unpacks under the given name; without it, the URL's
    last segment is refused before any request."""
    data = WELLFORMED["many_entries"]()
    url = server.add_file("files/7/content", data, plan=FaultPlan(Cut(after=len(data) // 2, requests=1)))
    with pytest.raises(errors.InvalidWheelFilename, match="the URL's file name 'content' is not a wheel"):
        fetch(url, tmp_path)
    assert server.requests == []
    result = fetch(url, tmp_path, filename=WHEEL)
    assert result.staged.filename == WHEEL
    assert tree(result) == contents(data)
    assert server.bytes_sent("files/7/content") == len(data)  # the cut's bytes kept
    assert [r.range for r in server.requests_for("files/7/content")] == [None, f"bytes={len(data) // 2}-"]
    with pytest.raises(errors.InvalidWheelFilename, match="is not a single path component"):
        fetch(url, tmp_path / "other", filename=f"../{WHEEL}")


def test_progress_moving_download_is_never_abandoned(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(CutEvery(len(data) // 25)))
    result = fetch(url, tmp_path, options=DownloadOptions(retries=1, backoff_base=0.01))
    assert tree(result) == contents(data)
    assert len(server.requests_for(WHEEL)) >= 25


def test_no_progress_gives_up_and_keeps_partial(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=100_000, requests=1), Cut(after=0, requests=range(2, 99)))
    )
    with pytest.raises(RetriesExhausted, match=r"demo-1.0-py3-none-any.whl: gave up after 3 attempts"):
        fetch(url, tmp_path, options=DownloadOptions(retries=2, backoff_base=0.01))
    key = cache_key(url)
    journal = json.loads((tmp_path / "partial" / f"{key}.json").read_text())
    assert journal["durable"] == 100_000
    assert (tmp_path / "partial" / f"{key}.whl.part").stat().st_size == 100_000
    # the same call again resumes where the disk ends and finishes
    server.set_plan(WHEEL, FaultPlan())
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert result.bytes_reused == 100_000
    assert result.resumed_at == 100_000


def test_server_ignoring_range_with_same_etag_does_not_reextract(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Cut(percent=60, requests=1), IgnoreRange(requests=2)))
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert result.restarts == 0
    assert result.files_unpacked == len(contents(data))
    assert server.requests_for(WHEEL)[1].status == 200


def test_file_changed_midway_restarts_clean_with_the_new_file(server: FaultServer, tmp_path: Path) -> None:
    old = WELLFORMED["mixed_streamable"]()
    new = make_wheel({"demo/__init__.py": b"NEW = True\n" * 500, "demo/other.py": b"x = 2\n"})
    url = server.add_file(
        WHEEL, old, plan=FaultPlan(Cut(percent=50, requests=1), ChangeFile(after_request=1, data=new))
    )
    notes: list[str] = []
    result = fetch(url, tmp_path, progress=lambda p: notes.append(p.message or ""))
    assert tree(result) == contents(new)
    assert result.sha256 == hashlib.sha256(new).hexdigest()
    assert result.restarts == 1
    assert any("the file changed on the server" in n for n in notes)


def test_a_file_changed_under_a_server_without_validators_is_fetched_again_whole(
    server: FaultServer, tmp_path: Path
) -> None:
    """Nothing tells the resume the file changed (no ETag, no Last-Modified, same length), so the two versions
    are joined and the first entry's local header disagrees with the new central directory: the same run gives
    the network one clean chance, as a rerun would."""
    rest = {f"demo/m{i}.py": bytes([65 + i % 26]) * 4000 for i in range(60)}
    old = make_wheel({"demo/a.py": b"A = 1\n" * 500, **rest}, compress=STORED)
    new = make_wheel({"demo/a.py": b"A = 2\n" * 500, **rest}, compress=STORED)
    assert len(old) == len(new)
    url = server.add_file(
        WHEEL,
        old,
        plan=FaultPlan(Cut(percent=30, requests=1), ChangeFile(after_request=1, data=new), NoValidators()),
    )
    result = fetch(url, tmp_path)
    assert tree(result) == contents(new)
    assert result.restarts == 1
    assert [r.range is None for r in server.requests_for(WHEEL)] == [True, False, True]


def test_wrong_content_range_start_restarts(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["mixed_streamable"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(percent=40, requests=1), WrongRangeStart(shift=-10, requests=2))
    )
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert result.restarts == 1
    assert server.requests_for(WHEEL)[2].range is None  # the restart asked for the whole file


def test_busy_server_retry_after_is_honoured(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["deflate"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Status(503, retry_after=1, requests=1)))
    started = time.monotonic()
    result = fetch(url, tmp_path, options=DownloadOptions(backoff_max=5))
    assert time.monotonic() - started >= 0.95
    assert tree(result) == contents(data)
    assert [r.status for r in server.requests_for(WHEEL)] == [503, 200]


def test_gone_is_a_clear_error(server: FaultServer, tmp_path: Path) -> None:
    url = server.url_for("missing-1.0-py3-none-any.whl")
    with pytest.raises(ResourceGone, match=r"^missing-1.0-py3-none-any.whl: server answered 404"):
        fetch(url, tmp_path)


@pytest.mark.parametrize("fault", [WeakETag(), NoValidators()], ids=["weak-etag", "no-validators"])
def test_resume_without_strong_etag(server: FaultServer, tmp_path: Path, fault: object) -> None:
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(fault, Cut(percent=30, requests=1)))  # type: ignore[arg-type]
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    resume = server.requests_for(WHEEL)[1]
    assert resume.if_range is None or not resume.if_range.startswith("W/")


def test_forced_gzip_encoding_is_read_decoded_and_restarts_on_drop(
    server: FaultServer, tmp_path: Path
) -> None:
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Gzip(), Cut(after=20_000, requests=1)))
    notes: list[str] = []
    result = fetch(url, tmp_path, progress=lambda p: notes.append(p.message or ""))
    assert tree(result) == contents(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert any("resume is impossible" in n for n in notes)
    assert server.requests_for(WHEEL)[1].range is None


def test_corrupt_byte_in_data_fails_and_discards(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["stored"]()
    offset = data.index(b"PK\x03\x04", 1) - 5  # inside the first entry's stored data
    url = server.add_file(WHEEL, data, plan=FaultPlan(Corrupt(offset=offset)))
    with pytest.raises(ChecksumMismatch, match=r"^demo-1.0-py3-none-any.whl: CRC-32"):
        fetch(url, tmp_path, expected_sha256=hashlib.sha256(data).hexdigest())
    assert not list((tmp_path / "partial").glob("*.part"))
    assert not any((tmp_path / "staging").iterdir())
    assert not any((tmp_path / "wheels").iterdir())


@pytest.mark.parametrize("case", ["corrupt_deflate", "crc_mismatch", "bomb"])
def test_a_bad_small_entry_fails_the_download_naming_it(
    server: FaultServer, tmp_path: Path, case: str
) -> None:
    """Small entries are inflated and checked by the writer threads (packed); their errors still stop the
    download, name the wheel and the entry, and leave nothing behind."""
    hostile = HOSTILE[case]
    url = server.add_file(WHEEL, hostile.data)
    with pytest.raises(getattr(errors, hostile.error)) as info:
        fetch(url, tmp_path)
    assert str(info.value).startswith(f"{WHEEL}: ")
    assert f"entry {hostile.entry!r}" in str(info.value)
    assert not list((tmp_path / "partial").glob("*.part"))
    assert not any((tmp_path / "staging").iterdir())
    assert not any((tmp_path / "wheels").iterdir())


def test_corrupt_byte_outside_entries_is_a_hash_error(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["archive_comment"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Corrupt(offset=len(data) - 2)))
    with pytest.raises(HashMismatch, match="expected"):
        fetch(url + "#sha256=" + hashlib.sha256(data).hexdigest(), tmp_path)
    assert not list((tmp_path / "partial").glob("*.part"))
    assert not any((tmp_path / "wheels").iterdir())


def test_second_fetch_comes_from_cache(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["deflate"]()
    url = server.add_file(WHEEL, data)
    fetch(url, tmp_path)
    sent = server.bytes_sent(WHEEL)
    again = fetch(url, tmp_path)
    assert again.from_cache
    assert server.bytes_sent(WHEEL) == sent
    assert tree(again) == contents(data)


def test_ctrl_c_checkpoints_and_resumes(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["many_entries"]()
    # paced over ~1 s: progress is reported at most every 50 ms, so a fast local download would end first
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data))))
    seen = 0

    def interrupt(progress: Progress) -> None:
        nonlocal seen
        seen += 1
        if progress.bytes_done > len(data) // 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"interrupted at .* [kM]B — run the same command again to resume"):
        fetch(url, tmp_path, progress=interrupt)
    journal = Journal.load(tmp_path / "partial" / f"{cache_key(url)}.json")
    assert journal is not None
    durable, finished = journal.durable, len(journal.files)
    assert durable > len(data) // 2
    assert finished > 0
    sent_before = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert server.bytes_sent(WHEEL) - sent_before == len(data) - durable
    assert result.files_unpacked == len(contents(data)) - finished


KILL_SCRIPT = """
import sys, httpx
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client,
                options=DownloadOptions(checkpoint_bytes=64 * 1024, checkpoint_seconds=0.05))
print("finished")
"""


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_then_rerun_fetches_only_the_tail(server: FaultServer, tmp_path: Path, seed: int) -> None:
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) // 2, requests=1)))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, str(tmp_path)], stdout=subprocess.PIPE)
    journal_path = tmp_path / "partial" / f"{cache_key(url)}.json"
    kill_after = int(len(data) * (0.1 + 0.7 * random.Random(seed).random()))
    # kill at a progress point, not a wall-clock one: load-independent
    wait_until(
        lambda: (saved_journal(tmp_path, url) or {}).get("durable", 0) >= kill_after,
        timeout=30,
        what=f"{kill_after} bytes made durable",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert server.wait_idle(10)  # the killed connection's bytes are counted before the rerun starts
    journal = Journal.load(journal_path)
    assert journal is not None
    durable, finished = journal.durable, len(journal.files)
    assert 0 < durable < len(data)
    sent_before = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    # From D on, or further: the trail (unpack/_trail.py) proves what reached the partial after the last
    # checkpoint when the kill came between a block's write and the checkpoint that would have covered it.
    asked = server.requests_for(WHEEL)[-1].range
    assert asked is not None
    assert asked.startswith("bytes=")
    assert asked.endswith("-")
    start = int(asked[len("bytes=") : -1])
    assert durable <= start < len(data)
    assert server.bytes_sent(WHEEL) - sent_before == len(data) - start
    # only files not finished at the checkpoint are inflated again (the one in flight, or a few in C..D), nor
    # those of a checkpoint the kill caught while it synced (its pending record: unpack/_pending.py)
    adopted = pending_files(tmp_path, url, journal, start)
    assert result.files_unpacked == len(contents(data)) - finished - adopted
    assert result.files_unpacked < len(contents(data))


CONCURRENT_SCRIPT = """
import sys, httpx
from wheelstream._cache import Cache
from wheelstream.fetch import fetch_wheel
with httpx.Client() as client:
    r = fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client)
print(r.sha256, r.from_cache)
"""


def test_two_processes_one_cache_one_download(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Throttle(bytes_per_second=len(data) * 2)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_SCRIPT, url, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert {o[0] for o in outputs} == {hashlib.sha256(data).hexdigest()}
    assert sorted(o[1] for o in outputs) == ["False", "True"]
    assert server.bytes_sent(WHEEL) == len(data)


def test_credentials_never_reach_the_journal(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=100_000, requests=1), Cut(after=0, requests=range(2, 99)))
    )
    url = server.url_for(WHEEL).replace("http://", "http://alice:s3cret@") + "?token=hunter2"
    with pytest.raises(RetriesExhausted) as info:
        fetch(url, tmp_path, options=DownloadOptions(retries=0, backoff_base=0.01, checkpoint_bytes=1))
    stored = "".join(p.read_text(errors="replace") for p in (tmp_path / "partial").glob("*.json"))
    stored += "".join(p.read_text(errors="replace") for p in (tmp_path / "partial").glob("*.entries"))
    assert stored
    assert "s3cret" not in stored
    assert "hunter2" not in stored
    assert "alice" not in stored
    assert "s3cret" not in str(info.value)
    assert "hunter2" not in str(info.value)
    assert os.stat(next((tmp_path / "partial").glob("*.json"))).st_mode & 0o077 == 0


def test_stall_hits_the_read_timeout_and_resumes(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Stall(at=len(data) // 3, seconds=3, requests=1)))
    started = time.monotonic()
    result = fetch(url, tmp_path, options=DownloadOptions(timeout=0.5, backoff_base=0.01))
    assert time.monotonic() - started < 3
    assert tree(result) == contents(data)
    assert server.requests_for(WHEEL)[1].range == f"bytes={len(data) // 3}-"


def test_partial_corrupted_on_disk_is_discarded_on_resume(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=3_000_000, requests=1), Cut(after=0, requests=range(2, 9)))
    )
    with pytest.raises(RetriesExhausted):
        fetch(url, tmp_path, options=DownloadOptions(retries=0, backoff_base=0.01, checkpoint_bytes=1 << 40))
    partial = tmp_path / "partial" / f"{cache_key(url)}.whl.part"
    raw = bytearray(partial.read_bytes())
    raw[2_000_000] ^= 0xFF  # inside the entry in flight, between checkpoint and durable length
    partial.write_bytes(bytes(raw))
    server.set_plan(WHEEL, FaultPlan())
    result = fetch(url, tmp_path)
    assert tree(result) == contents(data)
    assert result.bytes_reused == 0
    assert server.requests_for(WHEEL)[-1].range is None


def test_kept_bytes_spoilt_before_the_checkpoint_are_caught_before_anything_is_published(
    server: FaultServer, tmp_path: Path
) -> None:
    """The resume goes on from the hash state the journal saved, without reading the kept prefix, and the replay
    covers only ``C..D``: a byte spoilt before ``C`` (in an entry already unpacked) is found by the prefix's
    audit, beside the download, and the same run fetches the file again clean — the wheel file the cache keeps
    hashes to its name, a pin is honoured."""
    data = WELLFORMED["many_entries"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(percent=70, requests=1), Cut(after=0, requests=range(2, 9)))
    )
    with pytest.raises(RetriesExhausted):
        fetch(url, tmp_path, options=DownloadOptions(retries=0, backoff_base=0.01, checkpoint_bytes=1))
    journal = saved_journal(tmp_path, url)
    assert journal is not None
    assert journal["checkpoint"] > len(data) // 2
    partial = tmp_path / "partial" / f"{cache_key(url)}.whl.part"
    raw = bytearray(partial.read_bytes())
    raw[len(data) // 5] ^= 0x01  # inside an entry unpacked before the checkpoint
    partial.write_bytes(bytes(raw))
    server.set_plan(WHEEL, FaultPlan())
    sha256 = hashlib.sha256(data).hexdigest()
    result = fetch(url + f"#sha256={sha256}", tmp_path)
    assert result.sha256 == sha256
    assert result.restarts == 1
    assert tree(result) == contents(data)
    kept = Cache.at(tmp_path).wheel_file(sha256)
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == sha256


@pytest.mark.parametrize("length", [0, 1, 5_000_000, 9_999_999, 10_000_000, 12_000_000])
def test_the_resume_hash_covers_exactly_the_kept_prefix(
    tmp_path: Path, length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole-file hash a resume continues from: the first ``length`` bytes (all there is when the file is
    shorter), read in blocks — small ones here, so block boundaries are crossed."""
    from wheelstream.unpack import _rehash

    monkeypatch.setattr(_rehash, "HASH_BLOCK", 1 << 20)
    data = random.Random(length).randbytes(10_000_000)
    path = tmp_path / "part"
    path.write_bytes(data)
    assert _rehash.prefix_sha256(path, length).hexdigest() == hashlib.sha256(data[:length]).hexdigest()
    stop = threading.Event()
    stop.set()
    assert (
        _rehash.prefix_sha256(path, length, stop).hexdigest() == hashlib.sha256().hexdigest()
    )  # gave up at once


def _interrupted_download(server: FaultServer, tmp_path: Path) -> tuple[bytes, str, Path]:
    """A download cut at 3 MB that gave up, leaving its partial and journal: (data, url, journal header)."""
    data = WELLFORMED["big_entry"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=3_000_000, requests=1), Cut(after=0, requests=range(2, 9)))
    )
    with pytest.raises(RetriesExhausted):
        fetch(url, tmp_path, options=DownloadOptions(retries=0, backoff_base=0.01))
    server.set_plan(WHEEL, FaultPlan())
    return data, url, Cache.at(tmp_path).journal(cache_key(url))


def test_a_resume_goes_on_from_the_saved_hash_and_reads_the_kept_prefix_only_beside_the_download(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume does not wait for the kept prefix to be hashed again (the journal saved the state at ``D``):
    the prefix is read once, by its audit, and only while the rest is being fetched."""
    import wheelstream.fetch._resume as resume
    from wheelstream.unpack import _rehash, _sha256

    if _sha256._LIB is None:
        pytest.skip("no libcrypto with SHA256_* in this process: resumes re-hash here")
    data, url, header = _interrupted_download(server, tmp_path)
    saved = json.loads(header.read_text())
    assert saved["sha256_state"]
    assert saved["durable"] > 0
    audited: list[int] = []
    real = _rehash.prefix_sha256

    def once_the_rest_is_asked_for(
        path: Path, length: int, stop: threading.Event | None = None, **kw: int
    ) -> object:
        # A resume that waited for this read would never send its request: the wait would time out.
        wait_until(
            lambda: any(r.range == f"bytes={saved['durable']}-" for r in server.requests_for(WHEEL)),
            what="the resumed request",
        )
        audited.append(length)
        return real(path, length, stop, **kw)

    monkeypatch.setattr(resume, "prefix_sha256", once_the_rest_is_asked_for)
    result = fetch(url, tmp_path, expected_sha256=hashlib.sha256(data).hexdigest())
    assert result.bytes_reused == saved["durable"]
    assert result.restarts == 0
    assert tree(result) == contents(data)
    assert audited == [saved["durable"]]
    assert server.requests_for(WHEEL)[-1].range == f"bytes={saved['durable']}-"


@pytest.mark.parametrize("state", ["00" * 112, "not hex", None])
def test_a_saved_hash_that_does_not_fit_the_partial_is_recomputed(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str | None
) -> None:
    """A state for another length (or none, as older journals have): the kept bytes are hashed again, the
    download still resumes, and the digest is right."""
    import wheelstream.fetch._resume as resume
    from wheelstream.unpack import _rehash

    data, url, header = _interrupted_download(server, tmp_path)
    saved = json.loads(header.read_text())
    header.write_text(json.dumps({**saved, "sha256_state": state}))
    reread: list[int] = []
    real = _rehash.prefix_sha256

    def counting(path: Path, length: int, stop: object = None) -> object:
        reread.append(length)
        return real(path, length, stop)  # type: ignore[arg-type]

    monkeypatch.setattr(resume, "prefix_sha256", counting)
    result = fetch(url, tmp_path)
    assert reread == [saved["durable"]]
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.bytes_reused == saved["durable"]
    assert tree(result) == contents(data)


def _fetch_through_a_stall(
    server: FaultServer, tmp_path: Path, data: bytes, stall_at: int
) -> tuple[DownloadResult, list[tuple[int, int]]]:
    """Fetch ``data`` with the server stalling 2 s at ``stall_at`` and periodic checkpoints off; return the
    result and every (checkpoint, durable) the journal header showed meanwhile (read every 50 ms)."""
    url = server.add_file(WHEEL, data, plan=FaultPlan(Stall(at=stall_at, seconds=2, requests=1)))
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            saved = saved_journal(tmp_path, url)
            if saved is not None:
                seen.append((saved["checkpoint"], saved["durable"]))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        options = DownloadOptions(checkpoint_bytes=1 << 40, checkpoint_seconds=1e9, timeout=10)
        result = fetch(url, tmp_path, options=options)
    finally:
        done.set()
        watcher.join()
    return result, seen


def test_a_stalled_download_checkpoints_what_it_has_parsed(server: FaultServer, tmp_path: Path) -> None:
    """When the bytes stop coming, the unpack worker checkpoints on its own (periodic checkpoints are off
    here): a process killed during the stall resumes from what had arrived, not from ~32 MB before it."""
    rng = random.Random(7)
    data = make_wheel({f"demo/m{i:03}.bin": rng.randbytes(20_000) for i in range(200)})  # ~4 MB, stored as is
    result, seen = _fetch_through_a_stall(server, tmp_path, data, stall_at=3_000_000)
    assert tree(result) == contents(data)
    # Blocks of 1 MiB go to the worker: before the stall it had all of the first two, so the checkpoint is
    # the last entry boundary below 2 MiB (entries are ~20 KB apart).
    assert max((checkpoint for checkpoint, _ in seen), default=0) > (2 << 20) - 30_000


def test_a_download_stalled_inside_a_large_entry_makes_the_bytes_it_has_durable(
    server: FaultServer, tmp_path: Path
) -> None:
    """Inside one large entry nothing finishes, so a stall there has no entries to checkpoint; the bytes still
    count: the journal's durable length D moves up to what was handed over, and a process killed during the
    stall resumes its Range there instead of at the last periodic checkpoint (here: none, so at zero)."""
    rng = random.Random(11)
    data = make_wheel({"demo/big.bin": rng.randbytes(5_000_000), "demo/after.py": b"X = 1\n"})
    result, seen = _fetch_through_a_stall(server, tmp_path, data, stall_at=3_000_000)  # inside demo/big.bin
    assert tree(result) == contents(data)
    # Blocks of 1 MiB reach the partial file: before the stall it had the first two. C stays at the entry.
    assert max((durable for _, durable in seen), default=0) >= 2 << 20, seen
    assert {checkpoint for checkpoint, _ in seen} <= {0}


def test_a_kept_prefix_spoilt_on_disk_never_reaches_the_caller(server: FaultServer, tmp_path: Path) -> None:
    """The resumed hash covers the bytes as they arrived (its state came from the journal), not as they lie on
    disk now. The wheel file kept in the cache (what ``download -d`` hands out, what a later install trusts by
    its name) must hash to its name: one spoilt before the checkpoint — where neither the parser nor the hash
    reads again — costs a fresh download instead."""
    data, url, _header = _interrupted_download(server, tmp_path)
    cache = Cache.at(tmp_path)
    part = cache.partial(cache_key(url))
    raw = bytearray(part.read_bytes())
    raw[10] ^= 0xFF  # the first local header's time field: only the whole-file hash covers it
    part.write_bytes(bytes(raw))
    sha256 = hashlib.sha256(data).hexdigest()
    result = fetch(url, tmp_path, expected_sha256=sha256)
    assert cache.wheel_file(sha256).read_bytes() == data
    assert result.restarts == 1
    assert tree(result) == contents(data)


def test_a_cancel_in_a_stall_is_an_interrupt_not_a_network_failure(
    server: FaultServer, tmp_path: Path
) -> None:
    """The cancel watcher shuts the connection; the attempt loop must read that as the cancel it is — not as a
    drop to retry (no retry budget left here) — and checkpoint (the partial is kept)."""
    data = WELLFORMED["big_entry"]()
    first = 3 * 1024 * 1024  # past the first 1 MiB blocks: finished entries to checkpoint
    url = server.add_file(
        WHEEL,
        data,
        plan=FaultPlan(
            Cut(after=first, requests=1), Cut(after=0, requests=2), Stall(at=0, seconds=60, requests=since(3))
        ),
    )
    cancel = threading.Event()
    with pytest.raises(RetriesExhausted):  # the first attempt's cut, with no retry allowed: partial kept
        fetch(url, tmp_path, options=DownloadOptions(retries=0, backoff_base=0.01))
    outcome: list[BaseException] = []
    resumed = threading.Event()

    def progress(report: Progress) -> None:
        if (report.message or "").startswith("resumed at"):
            resumed.set()  # the 206 arrived: the resumed request waits for its first body byte

    def resume() -> None:
        try:
            fetch(
                url,
                tmp_path,
                options=DownloadOptions(retries=0, backoff_base=0.01),
                cancel=cancel,
                progress=progress,
            )
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    worker = threading.Thread(target=resume)
    worker.start()
    assert resumed.wait(20), outcome
    cancel.set()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the cancel waited for the stalled server"
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], errors.Interrupted), outcome
    assert Journal.load(tmp_path / "partial" / f"{cache_key(url)}.json") is not None


# -- a disk that fails -------------------------------------------------------------------------------------


def _failing_partial_writes(monkeypatch: pytest.MonkeyPatch, after: int, error: int) -> None:
    """The partial file refuses every write once it holds ``after`` bytes (what EIO or a full disk does)."""
    import errno as errnos

    import wheelstream.unpack._partial as partial

    real_write = partial.PartialFile.write

    def write(self: partial.PartialFile, data: bytes) -> None:
        if self.length + len(data) > after:
            raise OSError(error, os.strerror(error) or errnos.errorcode[error])
        real_write(self, data)

    monkeypatch.setattr(partial.PartialFile, "write", write)


def test_a_disk_error_keeps_a_journal_it_cannot_read_now(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: the journal header that decides what is kept may be unreadable at that moment (EIO, no free
    descriptors); "cannot read it" must not be taken for "there is none" and the download deleted."""
    import errno

    data = WELLFORMED["big_entry"]()
    url = server.add_file(WHEEL, data)
    _failing_partial_writes(monkeypatch, 3 << 20, errno.EIO)
    monkeypatch.setattr(Journal, "load_header", classmethod(lambda cls, path: None))
    with pytest.raises(errors.DiskError, match="Input/output error; the partial download is kept"):
        fetch(url, tmp_path, options=DownloadOptions(checkpoint_bytes=256 << 10, retries=0))
    key = cache_key(url)
    assert (tmp_path / "partial" / f"{key}.json").exists()
    assert (tmp_path / "partial" / f"{key}.whl.part").exists()


def test_a_resume_whose_replay_cannot_write_is_a_disk_error_that_keeps_the_journal(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: the resume (replaying C..D into staging) ran outside the disk-error mapping: a bare OSError
    with no wheel named. The journal it resumes from is still good: kept, and the next call resumes."""
    import errno

    import wheelstream.unpack._tee as tee

    data = WELLFORMED["big_entry"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=3 << 20, requests=1), Cut(after=0, requests=2))
    )
    with pytest.raises(RetriesExhausted):
        fetch(
            url, tmp_path, options=DownloadOptions(retries=0, backoff_base=0.01, checkpoint_bytes=256 << 10)
        )

    def replay(self: object, start: int, end: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(tee.Tee, "replay", replay)
        with pytest.raises(
            errors.DiskError,
            match=rf"^{WHEEL}: cannot write in .*: No space left on device; "
            r"[0-9.]+ MB kept",
        ):
            fetch(url, tmp_path)
    result = fetch(url, tmp_path)
    assert result.resumed_at is not None
    assert result.resumed_at > 0
    assert tree(result) == contents(data)


def test_an_oserror_from_the_progress_callback_is_the_callers_own(
    server: FaultServer, tmp_path: Path
) -> None:
    """Review: a callback raising BrokenPipeError (its terminal went away) was reported as a disk error and
    the download deleted. The caller gets its own error, as with any other exception from the callback."""
    data = WELLFORMED["big_entry"]()
    url = server.add_file(WHEEL, data)
    calls = [0]

    def progress(update: Progress) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        fetch(url, tmp_path, progress=progress)


def test_a_local_wheel_that_cannot_be_read_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import wheelstream.fetch._local as local
    from wheelstream.fetch import unpack_local

    wheel = tmp_path / WHEEL
    wheel.write_bytes(WELLFORMED["deflate"]())

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local, "_open_binary", lambda path: Failing())
    with pytest.raises(errors.DiskError, match=rf"^{WHEEL}: cannot read {wheel}: Input/output error$"):
        unpack_local(wheel, cache=Cache.at(tmp_path / "cache"))
    assert list((tmp_path / "cache" / "staging").iterdir()) == []


def test_a_partial_file_is_closed_once_even_when_close_reports_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: Linux frees a descriptor even when close() reports EIO (or ENOSPC on NFS); the partial file
    closed the number again on the next close — by then maybe another download's file."""
    import errno

    import wheelstream.unpack._partial as partial

    part = partial.PartialFile(tmp_path / "x.part")
    part.write(b"abc")
    real_close = os.close
    closed: list[int] = []

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "close", close)
    with pytest.raises(OSError, match="Input/output"):
        part.close()
    part.close()
    part.close()
    assert len(closed) == 1


def test_bad_bytes_stay_the_error_when_discarding_them_fails(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a failed clean-up (EACCES on the cache) turned a hash mismatch into a disk error."""
    import errno

    data = WELLFORMED["deflate"]()
    url = server.add_file(WHEEL, data)

    real_discard = Cache.discard
    calls = [0]

    def discard(self: Cache, key: str) -> None:
        calls[0] += 1
        if calls[0] == 1:
            real_discard(self, key)  # the fresh start's
            return
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Cache, "discard", discard)
    with pytest.raises(errors.HashMismatch):
        fetch(url, tmp_path, expected_sha256="0" * 64)


def test_a_local_wheel_that_cannot_be_read_back_for_a_deferred_entry_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored entry with a data descriptor is unpacked from the file once it is read whole: a read error
    then is the wheel's, not the cache's (review)."""
    import errno

    import wheelstream.fetch._local as local
    from wheelstream.fetch import unpack_local

    wheel = tmp_path / WHEEL
    wheel.write_bytes(WELLFORMED["stored_descriptor"]())

    def unreadable(path: Path, start: int, end: int) -> object:
        raise OSError(errno.EIO, "Input/output error")
        yield b""  # a generator, like the real one

    monkeypatch.setattr(local, "read_file_range", unreadable)
    with pytest.raises(errors.DiskError, match=rf"^{WHEEL}: cannot read {wheel}: Input/output error$"):
        unpack_local(wheel, cache=Cache.at(tmp_path / "cache"))


def test_fetch_exports_are_sorted_and_resolve() -> None:
    import wheelstream.fetch

    names = wheelstream.fetch.__all__
    assert list(names) == sorted(names)
    assert all(getattr(wheelstream.fetch, name) is not None for name in names)


def test_a_download_is_named_to_its_progress_before_its_request_goes_out(tmp_path: Path) -> None:
    """A server that takes the request and never answers holds a download all the same: a UI told of it only
    when an answer came could not name it (a Ctrl-C then said no download had started)."""
    order: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/{WHEEL}"

        def hold_one_request() -> None:
            held, _ = silent.accept()
            with held:
                held.settimeout(20)
                held.recv(1, socket.MSG_PEEK)
                order.append("request in")
                while held.recv(4096):  # until the client gives up on it
                    pass

        server = threading.Thread(target=hold_one_request)
        server.start()
        options = DownloadOptions(timeout=0.5, retries=0)
        with pytest.raises(errors.WheelstreamError):
            fetch(url, tmp_path, options, progress=lambda p: order.append(p.wheel))
        server.join(20)
    assert order[:2] == [WHEEL, "request in"]
