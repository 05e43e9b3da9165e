"""A download whose whole rest arrives as one block is parsed on its own thread, not handed to an unpack worker
(``Tee._take``; docs/performance.md, D-inline-last-block) — unless a signal handler could raise into that thread
mid-parse (``_stages.interruptible``): then the worker lets the block finish, as a Ctrl-C's checkpoint needs.

Through a real server on 127.0.0.1, with real wheels; the worker is counted, not mocked away.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import contents, fetch, tree

from fixtures.hostile import HOSTILE
from fixtures.wellformed import WELLFORMED
from wheelstream import errors
from wheelstream.testing import FaultServer
from wheelstream.unpack import _stages, _tee

WHEEL = "demo-1.0-py3-none-any.whl"
T = TypeVar("T")


@pytest.fixture
def workers_started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many unpack workers the tee started."""
    started: list[int] = []

    class Counted(_stages.Unpacker):
        def __init__(self, *args: Any) -> None:
            started.append(1)
            super().__init__(*args)

    monkeypatch.setattr(_tee, "Unpacker", Counted)
    return started


def on_a_thread(call: Callable[[], T]) -> T:
    """``call()`` on a thread of its own, as install and download run every download; its error re-raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - re-raised below, on the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert outcome, "the download did not end"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]


def test_a_small_wheel_on_a_download_thread_starts_no_worker(
    server: FaultServer, tmp_path: Path, workers_started: list[int]
) -> None:
    data = WELLFORMED["many_entries"]()  # 333 KB: one block
    url = server.add_file(WHEEL, data)
    result = on_a_thread(lambda: fetch(url, tmp_path))
    assert tree(result) == contents(data)
    assert workers_started == []


def test_a_wheel_of_several_blocks_still_unpacks_beside_the_download(
    server: FaultServer, tmp_path: Path, workers_started: list[int]
) -> None:
    data = WELLFORMED["big_entry"]()  # 6 MB: the worker inflates while the next blocks arrive
    url = server.add_file(WHEEL, data)
    result = on_a_thread(lambda: fetch(url, tmp_path))
    assert tree(result) == contents(data)
    assert workers_started == [1]


def test_on_the_main_thread_with_a_ctrl_c_handler_the_worker_parses(
    server: FaultServer, tmp_path: Path, workers_started: list[int]
) -> None:
    """Here a KeyboardInterrupt can come at any bytecode: the block is parsed whole on the worker first."""
    assert callable(signal.getsignal(signal.SIGINT))  # pytest's (or Python's default) handler
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data)
    assert tree(fetch(url, tmp_path)) == contents(data)
    assert workers_started == [1]


def test_interruptible_only_on_the_main_thread_while_a_handler_can_raise() -> None:
    assert _stages.interruptible()  # the test's main thread, SIGINT handled in Python
    assert not on_a_thread(_stages.interruptible)
    old_int, old_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a worker process ignores both
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        assert not _stages.interruptible()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


@pytest.mark.parametrize("case", ["corrupt_deflate", "crc_mismatch", "bomb"])
def test_a_bad_small_entry_parsed_on_the_download_thread_fails_naming_it(
    server: FaultServer, tmp_path: Path, case: str, workers_started: list[int]
) -> None:
    """The same error, the same clean-up as through the worker (test_download's twin of this test)."""
    hostile = HOSTILE[case]
    url = server.add_file(WHEEL, hostile.data)
    with pytest.raises(getattr(errors, hostile.error)) as info:
        on_a_thread(lambda: fetch(url, tmp_path))
    assert workers_started == []
    assert str(info.value).startswith(f"{WHEEL}: ")
    assert f"entry {hostile.entry!r}" in str(info.value)
    assert not list((tmp_path / "partial").glob("*.part"))
    assert not any((tmp_path / "staging").iterdir())
    assert not any((tmp_path / "wheels").iterdir())
