"""``download`` checks every entry and writes none (``DownloadOptions.verify_only``): the wheel file is what it
keeps. Killed, it resumes like any download — and an install that takes its partial over unpacks again from
byte 0 of what the partial holds, since the download wrote none of the files its journal lists
(``Journal.unwritten``); the other way round, a download takes an install's partial and goes on without
writing. Real kills (SIGKILL at a checkpoint's kill point) of real downloads from the fault server."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FAST, contents, fetch, tree
from test_pending_checkpoint import WHEEL, wheel

from wheelstream._cache import Cache
from wheelstream._staged import StagedFile
from wheelstream._urls import cache_key
from wheelstream.errors import DuplicateEntry, UsageError
from wheelstream.fetch import DownloadOptions, unpack_local
from wheelstream.testing import FaultPlan, FaultServer, Throttle
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal
from wheelstream.unpack._pending import pending_path

VERIFY = replace(FAST, verify_only=True)

# A download with checkpoints every 64 KiB / 20 ms, killed at its N-th staging sync; argv[3]: "verify" or not.
KILL_SCRIPT = """
import sys, httpx
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
verify = sys.argv[3] == "verify"
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client, keep_unpacked=not verify,
                options=DownloadOptions(checkpoint_bytes=64 * 1024, checkpoint_seconds=0.02, verify_only=verify))
print("finished")
"""


def _run_killing(url: str, cache: Path, how: str, nth: int) -> subprocess.CompletedProcess[str]:
    """``KILL_SCRIPT`` for ``url`` ("verify" or not), killed at its ``nth`` staging sync."""
    return subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, url, str(cache), how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WHEELSTREAM_KILL_AT": f"checkpoint.staging-sync@{nth}"},
    )


def _killed(server: FaultServer, cache: Path, how: str) -> tuple[str, Journal]:
    """The wheel served at 400 KB/s, its download killed at the third staging sync: its URL and journal."""
    url = server.add_file(WHEEL, wheel(), plan=FaultPlan(Throttle(bytes_per_second=400_000, requests=1)))
    proc = _run_killing(url, cache, how, 3)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    journal = Journal.load_header(cache / "partial" / f"{cache_key(url)}.json")
    assert journal is not None
    assert journal.durable > 0
    assert server.wait_idle(10)
    return url, journal


def _files_in(root: Path) -> list[str]:
    return [name for _dirs, _subdirs, names in os.walk(root) for name in names]


def test_a_killed_download_wrote_no_file_and_resumes_as_a_download(
    server: FaultServer, tmp_path: Path
) -> None:
    url, journal = _killed(server, tmp_path, "verify")
    assert journal.unwritten
    assert _files_in(tmp_path / "staging" / cache_key(url)) == []
    # no pending checkpoint either: with nothing written there is nothing for staging to prove
    assert not pending_path(tmp_path / "partial" / f"{cache_key(url)}.json").exists()
    sent = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path, VERIFY, keep_unpacked=False)
    assert result.bytes_reused >= journal.durable
    assert server.bytes_sent(WHEEL) - sent == len(wheel()) - result.bytes_reused
    assert set(result.staged.files) == set(contents(wheel()))
    assert _files_in(result.staged.root) == []
    assert (tmp_path / "wheels" / f"{result.sha256}.whl").read_bytes() == wheel()
    assert result.claim is not None
    result.claim.release()


def test_an_install_takes_a_killed_downloads_bytes_and_unpacks_them_all(
    server: FaultServer, tmp_path: Path
) -> None:
    url, journal = _killed(server, tmp_path, "verify")
    sent = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path)
    assert result.bytes_reused >= journal.durable  # not a byte the download kept is fetched again ...
    assert server.bytes_sent(WHEEL) - sent == len(wheel()) - result.bytes_reused
    assert result.files_unpacked == len(contents(wheel()))  # ... and every file is written, from byte 0
    assert tree(result) == contents(wheel())


def test_a_download_takes_a_killed_installs_bytes_and_writes_nothing_more(
    server: FaultServer, tmp_path: Path
) -> None:
    url, journal = _killed(server, tmp_path, "install")
    assert not journal.unwritten
    staged = set(_files_in(tmp_path / "staging" / cache_key(url)))
    sent = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path, VERIFY, keep_unpacked=False)
    assert result.bytes_reused >= journal.durable
    assert server.bytes_sent(WHEEL) - sent == len(wheel()) - result.bytes_reused
    assert set(_files_in(result.staged.root)) <= staged  # what the install wrote, and nothing since
    assert set(result.staged.files) == set(contents(wheel()))
    assert result.claim is not None
    result.claim.release()


def test_a_download_keeps_an_installs_bytes_even_when_its_staged_files_are_spoilt(
    server: FaultServer, tmp_path: Path
) -> None:
    """A download needs none of the files an interrupted install staged: one of them gone or edited threw the
    whole partial away (an install must refuse them; a download can ignore them)."""
    url, journal = _killed(server, tmp_path, "install")
    staged = sorted((tmp_path / "staging" / cache_key(url)).rglob("*.py"))
    assert staged
    staged[0].unlink()
    staged[-1].write_text("edited")
    sent = server.bytes_sent(WHEEL)
    result = fetch(url, tmp_path, VERIFY, keep_unpacked=False)
    assert result.bytes_reused >= journal.durable
    assert server.bytes_sent(WHEEL) - sent == len(wheel()) - result.bytes_reused
    assert set(result.staged.files) == set(contents(wheel()))
    assert result.claim is not None
    result.claim.release()


@pytest.mark.parametrize("first", ["verify", "install"])
def test_killed_twice_across_modes_an_install_still_gets_the_whole_tree(
    server: FaultServer, tmp_path: Path, first: str
) -> None:
    """A download killed, an install killed on its heels (or the other way round): the install after them has
    every file, whatever each run wrote."""
    url, _ = _killed(server, tmp_path, first)
    other = "install" if first == "verify" else "verify"
    server.set_plan(WHEEL, FaultPlan(Throttle(bytes_per_second=400_000)))
    proc = _run_killing(url, tmp_path, other, 2)
    assert proc.returncode in (-9, 0), proc.stdout + proc.stderr  # (0: it had little left, and finished)
    server.set_plan(WHEEL, FaultPlan())
    assert tree(fetch(url, tmp_path)) == contents(wheel())


def test_the_download_command_keeps_only_the_wheel(server: FaultServer, tmp_path: Path) -> None:
    import wheelstream

    url = server.add_file(WHEEL, wheel())
    done = wheelstream.download([url], tmp_path / "d", cache_dir=tmp_path / "c")
    assert (tmp_path / "d" / WHEEL).read_bytes() == wheel()
    assert done.wheels[0].files_unpacked == len(contents(wheel()))  # every entry checked
    assert _files_in(tmp_path / "c" / "staging") == []
    assert _files_in(tmp_path / "c" / "claimed") == []


def test_a_tree_cannot_be_kept_when_nothing_is_written(tmp_path: Path) -> None:
    """``verify_only`` with ``keep_unpacked`` (the default) ran to its end and failed as a disk error, leaving
    an empty tree published in the cache."""
    assert DownloadOptions().verify_only is False
    wheel_file = tmp_path / WHEEL
    wheel_file.write_bytes(wheel())
    with pytest.raises(UsageError, match="keep_unpacked=False"):
        unpack_local(wheel_file, cache=Cache.at(tmp_path / "c"), options=VERIFY)
    with pytest.raises(UsageError, match="keep_unpacked=False"):
        fetch("http://127.0.0.1:9/x-1.0-py3-none-any.whl", tmp_path / "c", VERIFY)


def test_a_resumed_check_knows_the_directories_of_the_files_before_its_checkpoint(tmp_path: Path) -> None:
    """A file named like the directory of a file finished before the checkpoint: the writing extractor finds
    the directory on disk; one that writes nothing must know it, or a resumed ``download`` kept a wheel that
    every install refuses."""
    finished = {"pkg/sub/first.py": StagedFile("pkg/sub/first.py", 1, "0" * 64, False)}
    extractor = Extractor(tmp_path / "s", finished, writers=True, verify_only=True)
    with pytest.raises(DuplicateEntry):
        extractor._start("pkg/sub", 1000)
    extractor.close()
