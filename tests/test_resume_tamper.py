"""A resume when the cache is not as the journal left it: the result is the server's file and its clean install,
or a fresh start — never bytes the journal vouches for that are not the ones on disk, never a traceback.

Each case: a download through a real server that gives up at ~60 % (the partial and a checkpoint kept), the cache
changed by hand, then the same call again with the server healthy.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from conftest import saved_journal

import wheelstream
from wheelstream._urls import cache_key
from wheelstream.errors import RetriesExhausted
from wheelstream.testing import Cut, FaultPlan, FaultServer, Status, build_wheel, since

NAME = "tamper-1.0-py3-none-any.whl"


def _wheel() -> bytes:
    files = {f"tamper/part{i:03}.bin": bytes([i]) * 20_000 + os.urandom(12_000) for i in range(120)}
    return build_wheel("tamper", "1.0", payload_size=0, files=files)[1]


def _gave_up(server: FaultServer, cache: Path) -> tuple[str, bytes, dict[str, object]]:
    """``NAME`` served, an install of it given up at 60 % (partial, checkpoint and staged files kept), the server
    healed. (An install, not a download: a download writes no staged file to tamper with.)"""
    data = _wheel()
    url = server.add_file(
        NAME, data, plan=FaultPlan(Cut(percent=60, requests=1), Status(503, requests=since(2)))
    )
    with pytest.raises(RetriesExhausted):
        wheelstream.install([url], cache / "t0", cache_dir=cache, retries=1)
    server.set_plan(NAME, FaultPlan())
    journal = saved_journal(cache, url)
    assert journal is not None
    assert journal["checkpoint"] > 0, journal
    server.clear_log()
    return url, data, journal


def _downloaded(url: str, cache: Path, dest: Path) -> bytes:
    result = wheelstream.download([url], dest, cache_dir=cache)
    path = result.wheels[0].path
    assert path is not None
    return path.read_bytes()


def test_a_staged_file_changed_after_its_checkpoint_is_not_installed(
    server: FaultServer, tmp_path: Path
) -> None:
    """A staged file of the same size edited after the journal listed it went into the target under the
    journal's digest, and RECORD with it (the installed file hashed to something RECORD did not say)."""
    cache = tmp_path / "c"
    url, data, _journal = _gave_up(server, cache)
    staged = sorted((cache / "staging" / cache_key(url)).rglob("part*.bin"))
    assert staged
    victim = staged[0]
    spoilt = bytearray(victim.read_bytes())
    spoilt[10:18] = bytes(b ^ 0xFF for b in spoilt[10:18])
    victim.write_bytes(bytes(spoilt))  # same size; its modification time is now
    wheelstream.install([url], tmp_path / "t", cache_dir=cache)
    (tmp_path / "w.whl").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "w.whl") as archive:
        for info in archive.infolist():
            if info.filename.startswith("tamper/"):
                assert (tmp_path / "t" / info.filename).read_bytes() == archive.read(info), info.filename


@pytest.mark.parametrize("state", [None, "garbage", "00" * 112])
def test_kept_bytes_changed_before_the_checkpoint_are_found_without_a_saved_hash_state(
    server: FaultServer, tmp_path: Path, state: str | None
) -> None:
    """Without a usable saved hash state the resume hashes the kept bytes again, and went on from whatever
    they were: a byte flipped before the checkpoint reached the downloaded wheel (a bad CRC in it) under a
    sha256 the server never served. The re-hash must match the digest the journal saved, or start afresh."""
    cache = tmp_path / "c"
    url, data, journal = _gave_up(server, cache)
    header = cache / "partial" / f"{cache_key(url)}.json"
    edited = json.loads(header.read_text())
    edited["sha256_state"] = state
    header.write_text(json.dumps(edited))
    partial = cache / "partial" / f"{cache_key(url)}.whl.part"
    with open(partial, "r+b") as handle:
        at = int(journal["checkpoint"]) // 2  # type: ignore[call-overload]
        handle.seek(at)
        byte = handle.read(1)
        handle.seek(at)
        handle.write(bytes([byte[0] ^ 0x55]))
    got = _downloaded(url, cache, tmp_path / "d")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"etag": 12},
        {"length": "38121143"},
        {"length": 100},
        {"resumable": "yes"},
        {"url": None},
        {"deferred_at": -4},
        {"prefix_sha256": ["a"]},
    ],
    ids=repr,
)
def test_a_journal_of_the_wrong_types_is_a_fresh_start_not_a_traceback(
    server: FaultServer, tmp_path: Path, change: dict[str, object]
) -> None:
    """Valid JSON of other types (``"etag": 12``, a ``length`` as a string or below what is kept) was a
    traceback on this and every later call, until the cache was cleaned."""
    cache = tmp_path / "c"
    url, data, _journal = _gave_up(server, cache)
    header = cache / "partial" / f"{cache_key(url)}.json"
    header.write_text(json.dumps({**json.loads(header.read_text()), **change}))
    assert _downloaded(url, cache, tmp_path / "d") == data
    assert [r.range for r in server.requests] == [None]  # from byte 0: nothing of the journal was trusted


def test_a_directory_or_a_symlink_where_the_partial_belongs(server: FaultServer, tmp_path: Path) -> None:
    """A directory there failed this and every later download of the URL ("Is a directory"), and ``cache
    clean`` too; a symlink there was followed, and the download written into whatever it named."""
    cache = tmp_path / "c"
    url, data, _journal = _gave_up(server, cache)
    partial = cache / "partial" / f"{cache_key(url)}.whl.part"
    partial.unlink()
    partial.mkdir()
    (partial / "inside").write_text("x")
    assert _downloaded(url, cache, tmp_path / "d1") == data

    url2, data2, _journal = _gave_up(server, tmp_path / "c2")
    partial2 = tmp_path / "c2" / "partial" / f"{cache_key(url2)}.whl.part"
    outside = tmp_path / "outside.bin"
    outside.write_bytes(partial2.read_bytes())
    partial2.unlink()
    partial2.symlink_to(outside)
    kept = outside.read_bytes()
    assert _downloaded(url2, tmp_path / "c2", tmp_path / "d2") == data2
    assert outside.read_bytes() == kept
    assert not any(path.is_symlink() for path in (tmp_path / "c2").rglob("*"))


def test_cache_clean_takes_a_directory_where_a_partial_belongs(server: FaultServer, tmp_path: Path) -> None:
    from conftest import ws

    cache = tmp_path / "c"
    url, _data, _journal = _gave_up(server, cache)
    partial = cache / "partial" / f"{cache_key(url)}.whl.part"
    partial.unlink()
    partial.mkdir()
    run = ws("cache", "clean", "--partial", cache=cache)
    assert run.code == 0, run.err
    assert "removed 1 partial download(s)" in run.out
    assert not partial.exists()


def test_a_cached_wheel_file_cleaned_between_the_look_and_the_open_is_fetched_again(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cache clean`` took the kept wheel file after the install had seen it: the fallback ("downloaded
    again") never ran, because the read error came wrapped, and the install failed ("cannot read …")."""
    from wheelstream.fetch import _local

    data = _wheel()
    url = server.add_file(NAME, data)
    cache = tmp_path / "c"
    wheelstream.install([url], tmp_path / "t1", cache_dir=cache)  # move mode: the cache keeps the wheel file
    opened = _local._open_binary

    def cleaned_first(path: Path):  # type: ignore[no-untyped-def]
        path.unlink()  # what a concurrent ``cache clean`` does
        return opened(path)

    monkeypatch.setattr(_local, "_open_binary", cleaned_first)
    server.clear_log()
    result = wheelstream.install([url], tmp_path / "t2", cache_dir=cache)
    assert result.wheels[0].bytes_fetched == len(data)
    assert (tmp_path / "t2" / "tamper" / "part000.bin").is_file()


def test_an_unpacked_copy_cleaned_while_it_is_copied_is_named_as_what_went(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy install whose cached tree a ``cache clean`` took meanwhile said "cannot install into T: No such
    file or directory": the target was blamed for what the cache lost."""
    import shutil

    from wheelstream.errors import DiskError
    from wheelstream.fetch._publish import cached as found

    url = server.add_file(NAME, _wheel())
    cache = tmp_path / "c"
    wheelstream.install([url], tmp_path / "t1", cache_dir=cache, link_mode="copy")

    def cleaned_after(cache_: object, sha256: str, *args: object):  # type: ignore[no-untyped-def]
        result = found(cache_, sha256, *args)  # type: ignore[arg-type]
        shutil.rmtree(cache / "wheels" / sha256)  # what a concurrent ``cache clean`` does
        return result

    monkeypatch.setattr("wheelstream.fetch._fetch.cached", cleaned_after)  # the name the download calls
    target = tmp_path / "t2"
    with pytest.raises(DiskError) as raised:
        wheelstream.install([url], target, cache_dir=cache, link_mode="copy")
    message = str(raised.value)
    assert " went " in message, message
    assert "(the cache cleaned meanwhile?)" in message, message
    assert "run the same command again" in message
    assert not target.exists() or not any(target.iterdir())


def test_a_download_lock_that_cannot_be_taken_is_one_line_naming_the_wheel(
    server: FaultServer, tmp_path: Path
) -> None:
    """A lock file that cannot be opened (a read-only cache, no descriptors left; here a directory in its place)
    came out as a bare ``…/partial/<key>.lock: Is a directory``, naming no wheel."""
    from conftest import ws

    url = server.add_file(NAME, _wheel())
    cache = tmp_path / "c"
    (cache / "partial" / f"{cache_key(url)}.lock").mkdir(parents=True)
    run = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1, run.err
    line = run.error_line(alone=True)
    assert line.startswith(f"error: {NAME}: cannot lock "), line
    assert "Is a directory; what earlier runs kept is untouched" in line
    assert server.requests == []


@pytest.mark.parametrize("link_mode", ["move", "copy"])
def test_a_pin_naming_another_cached_wheel_does_not_serve_it_under_this_wheels_name(
    server: FaultServer, tmp_path: Path, link_mode: str
) -> None:
    """``alpha-1.0….whl#sha256=<beta's>`` with beta in the cache: the hash names a cached file, so it was served —
    ``download`` wrote beta's bytes as ``alpha-1.0-py3-none-any.whl``, rc 0. The pin must fail on alpha's bytes,
    as it does with nothing cached."""
    from wheelstream.errors import HashMismatch

    alpha = build_wheel("alpha", "1.0", payload_size=2000)[1]
    beta = build_wheel("beta", "1.0", payload_size=2000)[1]
    alpha_url = server.add_file("alpha-1.0-py3-none-any.whl", alpha)
    beta_url = server.add_file("beta-1.0-py3-none-any.whl", beta)
    cache = tmp_path / "c"
    wheelstream.install([beta_url], tmp_path / "t0", cache_dir=cache, link_mode=link_mode)  # type: ignore[arg-type]
    beta_sha = hashlib.sha256(beta).hexdigest()
    with pytest.raises(HashMismatch):
        wheelstream.download([f"{alpha_url}#sha256={beta_sha}"], tmp_path / "d", cache_dir=cache)
    assert not (tmp_path / "d" / "alpha-1.0-py3-none-any.whl").exists()
    with pytest.raises(HashMismatch):
        wheelstream.install([alpha_url], tmp_path / "t", cache_dir=cache, hashes={alpha_url: beta_sha})
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())
    pinned = wheelstream.download([f"{beta_url}#sha256={beta_sha}"], tmp_path / "d2", cache_dir=cache)
    assert pinned.wheels[0].from_cache  # the right pin is still served from the cache


def test_a_download_waiting_for_another_process_says_so(server: FaultServer, tmp_path: Path) -> None:
    """The second of two processes fetching one URL waited on its lock in silence for the whole of the first's
    download; after half a second it says what it waits for."""
    import threading

    from wheelstream._cache import file_lock
    from wheelstream._progress import Progress

    url = server.add_file(NAME, _wheel())
    cache = tmp_path / "c"
    seen: list[Progress] = []
    lock = file_lock(cache / "partial" / f"{cache_key(url)}.lock", thread_local=False)
    (cache / "partial").mkdir(parents=True)
    lock.acquire()
    try:
        worker = threading.Thread(
            target=lambda: wheelstream.download([url], tmp_path / "d", cache_dir=cache, progress=seen.append)
        )
        worker.start()
        deadline = time.monotonic() + 10
        while not any(p.message and "waiting for another" in p.message for p in seen):
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
    finally:
        lock.release()
    worker.join(timeout=30)
    assert (tmp_path / "d" / NAME).is_file()


def test_a_pin_naming_another_platforms_cached_wheel_of_the_same_version_is_not_served(
    server: FaultServer, tmp_path: Path
) -> None:
    """Same project, same version, other tags (a Linux wheel's hash pinned to the pure one's URL): served, the
    file name said ``py3-none-any`` over a ``cp311-…-linux`` wheel's bytes, and its tag check passed."""
    from fixtures.wellformed import make_wheel
    from wheelstream.errors import HashMismatch

    files = {"demo/__init__.py": b"X = 1\n"}
    pure = make_wheel(files, tag="py3-none-any")
    linux = make_wheel({**files, "demo/_speed.so": b"\x7fELF"}, tag="cp311-cp311-linux_x86_64")
    pure_url = server.add_file("demo-1.0-py3-none-any.whl", pure)
    linux_url = server.add_file("demo-1.0-cp311-cp311-linux_x86_64.whl", linux)
    cache = tmp_path / "c"
    wheelstream.download([linux_url], tmp_path / "d0", cache_dir=cache)
    with pytest.raises(HashMismatch):
        wheelstream.download(
            [f"{pure_url}#sha256={hashlib.sha256(linux).hexdigest()}"], tmp_path / "d", cache_dir=cache
        )
