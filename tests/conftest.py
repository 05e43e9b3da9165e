"""What many test files share: settings, servers, the command in a subprocess, and waiting for a state.

* The tests never touch the user's own wheelstream state (``WHEELSTREAM_STATE_DIR`` below).
* Fixtures: ``server`` (a started :class:`~wheelstream.testing.FaultServer`, from the public pytest plugin) and
  ``cache`` (a cache directory for one test's commands).
* ``ws`` / ``ws_start`` run ``python -m wheelstream`` as a user would; :class:`Run` checks the one-line
  ``error:`` contract of DESIGN §6.
* ``wait_until`` waits for a state with a deadline — a test never sleeps to wait for one; ``saved_journal``
  reads the state a download has made durable (its journal header).
* ``fetch``, ``contents`` and ``tree``: one download through ``fetch_wheel``, and what it must unpack to.

Helpers are imported from here (``from conftest import ws``), as ``test_install_support`` is.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from wheelstream._cache import Cache
from wheelstream._urls import cache_key
from wheelstream.fetch import DownloadOptions, DownloadResult, fetch_wheel
from wheelstream.testing import FaultServer

# The ownership key (wheelstream.installer._ownership) lives in the user's state directory; the suite and the
# processes it starts share one of their own, so a kill test's rerun verifies what the killed run signed.
# Made by the first process of a run (pytest-xdist's workers inherit it) and removed when that process ends.
if "WHEELSTREAM_STATE_DIR" not in os.environ:
    _STATE_DIR = tempfile.mkdtemp(prefix="wheelstream-test-state-")
    os.environ["WHEELSTREAM_STATE_DIR"] = _STATE_DIR
    atexit.register(shutil.rmtree, _STATE_DIR, ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
FAST = DownloadOptions(backoff_base=0.01, backoff_max=0.05, timeout=10)


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
def server(faulty_server: FaultServer) -> FaultServer:
    """A started FaultServer on 127.0.0.1 (the plugin's ``faulty_server``), stopped after the test."""
    return faulty_server


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """The cache directory of this test's commands (created by the first one)."""
    return tmp_path / "cache"


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """What the code under test drops must be freed by reference counting alone, as in the CLI (which
    collects rarely): a memory bound measured with the collector running could hide a reference cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- the command in a subprocess -----------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str

    def error_line(self, *, alone: bool = False) -> str:
        """The contract: exactly one ``error: `` line, and no traceback; ``alone``: nothing else on stderr."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert "Traceback" not in self.err, self.err
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1, self.err
        assert not alone or len(lines) == 1, self.err
        return errors[0]


def ws_env(cache: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a command: this one's, a wide terminal, ``cache`` as the cache (None: the command
    line says where, or the default), then ``extra``."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("WHEELSTREAM_CACHE_DIR", None)
    if cache is not None:
        env["WHEELSTREAM_CACHE_DIR"] = str(cache)
    return {**env, **extra}


def ws(
    *args: str,
    cache: Path | None,
    timeout: float = 60,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> Run:
    """``python -m wheelstream *args`` to its end; ``env`` adds to :func:`ws_env`, ``popen`` goes to
    :func:`subprocess.run`. Output that is not UTF-8 shows as U+FFFD instead of failing the test."""
    proc = subprocess.run(
        [sys.executable, "-m", "wheelstream", *args],
        check=False,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=ws_env(cache, **(env or {})),
        timeout=timeout,
        cwd=cwd or ROOT,
        **popen,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def ws_start(
    *args: str, cache: Path | None, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """``python -m wheelstream *args`` started, stdout and stderr piped (text), for a test to signal or watch."""
    return subprocess.Popen(
        [sys.executable, "-m", "wheelstream", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        env=ws_env(cache, **(env or {})),
        cwd=ROOT,
        **popen,
    )


# -- waiting for a state -------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], *, timeout: float = 10, what: str = "the condition") -> None:
    """Return as soon as ``predicate()`` is true; fail the test if it is still false after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def saved_journal(cache_dir: Path, url: str) -> dict[str, Any] | None:
    """The journal header of ``url``'s partial download in ``cache_dir`` as last saved (``checkpoint``,
    ``durable``, ...); None while there is none, or none whole."""
    try:
        header = json.loads((cache_dir / "partial" / f"{cache_key(url)}.json").read_text())
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def pending_record(cache_dir: Path, url: str, journal: Any, at: int) -> tuple[dict[str, Any], bytes] | None:
    """The pending checkpoint a kill left, and its log lines, if a rerun takes it: its record follows the
    durable header and its checkpoint lies within the ``at`` bytes a rerun keeps (a kill leaves every file
    whole: no power loss here); else None. Read here from the files themselves, not by the code under test."""
    try:
        record = json.loads((cache_dir / "partial" / f"{cache_key(url)}.pending").read_text())
    except (FileNotFoundError, ValueError):
        return None  # none, or none whole: a rerun ignores it
    if (record["base_bytes"], record["base_lines"]) != (journal.log_bytes, journal.log_lines):
        return None  # a later save made it stale
    if not journal.checkpoint < record["checkpoint"] <= at:
        return None
    log = (cache_dir / "partial" / f"{cache_key(url)}.entries").read_bytes()[
        record["base_bytes"] : record["end_bytes"]
    ]
    assert hashlib.sha256(log).hexdigest() == record["sha256"]
    return record, log


def pending_files(cache_dir: Path, url: str, journal: Any, at: int) -> int:
    """How many files a rerun takes from the pending checkpoint a kill left (:func:`pending_record`)."""
    taken = pending_record(cache_dir, url, journal, at)
    if taken is None:
        return 0
    return sum(len(json.loads(line)) == 10 for line in taken[1].splitlines())  # a file's line has 10 fields


# -- one download --------------------------------------------------------------------------------------------


def contents(data: bytes) -> dict[str, bytes]:
    """Every file of the archive ``data``, by name, as zipfile reads it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


def tree(result: DownloadResult) -> dict[str, bytes]:
    """Every file a download unpacked, by name."""
    return {name: (result.staged.root / name).read_bytes() for name in result.staged.files}


def fetch(url: str, cache_dir: Path, options: DownloadOptions = FAST, **kw: Any) -> DownloadResult:
    """``fetch_wheel`` with a client of its own, the cache at ``cache_dir`` and quick retries."""
    with httpx.Client(timeout=10) as client:
        return fetch_wheel(url, cache=Cache.at(cache_dir), client=client, options=options, **kw)


def started_server(**options: Any) -> Iterator[HTTPServer]:
    """A pytest-httpserver ``HTTPServer(**options)`` of a test's own (another host, port or TLS than the shared
    ``httpserver`` fixture), started for the test and stopped after it: ``yield from`` it in a fixture."""
    server = HTTPServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()
