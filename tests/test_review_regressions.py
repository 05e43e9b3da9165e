"""Regressions for the findings of the engine review: each was a crafted input or a server behaviour that
got past the parser, looped, leaked state or ignored Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import wait_until

import wheelstream
from fixtures.wellformed import WELLFORMED
from fixtures.zipbuild import STORED, Member, build, dir_attr
from wheelstream import Progress
from wheelstream._cache import Cache
from wheelstream._urls import cache_key
from wheelstream.errors import EntrySetMismatch, Interrupted, MalformedRecord, ResourceGone, RetriesExhausted
from wheelstream.fetch import DownloadOptions, fetch_wheel, unpack_local
from wheelstream.testing import Cut, FaultPlan, FaultServer, Status, WrongRangeStart
from wheelstream.zip import ZipStreamParser

WHEEL = "demo-1.0-py3-none-any.whl"


def test_directory_entry_with_descriptor_cannot_carry_data() -> None:
    data = build([Member("d/", b"payload", descriptor=True, external_attr=dir_attr()), Member("x.py", b"1")])
    with pytest.raises(MalformedRecord, match="directory entry carries data"):
        ZipStreamParser().feed(data)


def test_deferred_entry_without_central_record_is_an_error_not_a_partial_success(tmp_path: Path) -> None:
    members = [
        Member("a.py", b"a = 1\n"),
        Member("b.bin", b"B" * 100, method=STORED, descriptor=True, central={"offset": 1}),
        Member("c.py", b"c = 3\n"),
    ]
    wheel = tmp_path / WHEEL
    wheel.write_bytes(build(members))
    with pytest.raises(EntrySetMismatch):
        unpack_local(wheel, cache=Cache.at(tmp_path / "cache"))
    assert not any((tmp_path / "cache" / "wheels").iterdir())


def test_central_records_are_checked_as_they_arrive() -> None:
    """A directory of bogus records fails at the first one, long before any end record: memory stays small."""
    data = build([Member("a.py", b"1")])
    cd_at = data.index(b"PK\x01\x02")
    bogus = bytearray(data[cd_at : data.index(b"PK\x05\x06")])
    bogus[42:46] = (999).to_bytes(4, "little")  # local header offset pointing nowhere
    parser = ZipStreamParser()
    with pytest.raises(EntrySetMismatch, match="where no entry starts"):
        parser.feed(data[:cd_at] + bytes(bogus) * 1000)


def test_broken_range_support_gives_up_instead_of_restarting_forever(
    server: FaultServer, tmp_path: Path
) -> None:
    data = WELLFORMED["many_entries"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Cut(percent=40), WrongRangeStart(shift=-10)))
    started = time.monotonic()
    with httpx.Client() as client, pytest.raises(RetriesExhausted, match="restarts from zero"):
        fetch_wheel(
            url,
            cache=Cache.at(tmp_path),
            client=client,
            options=DownloadOptions(retries=3, backoff_base=0.01, backoff_max=0.05),
        )
    assert time.monotonic() - started < 10
    assert len(server.requests_for(WHEEL)) <= 2 * 5


def test_gone_discards_the_partial(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=100_000, requests=1), Status(410, requests=2))
    )
    with httpx.Client() as client, pytest.raises(ResourceGone, match="410"):
        fetch_wheel(url, cache=Cache.at(tmp_path), client=client, options=DownloadOptions(backoff_base=0.01))
    key = cache_key(url)
    assert not (tmp_path / "partial" / f"{key}.whl.part").exists()
    assert not (tmp_path / "partial" / f"{key}.json").exists()
    assert not (tmp_path / "staging" / key).exists()


def test_ctrl_c_during_a_long_retry_after_returns_at_once(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["deflate"]()
    url = server.add_file(WHEEL, data, plan=FaultPlan(Status(503, retry_after=20)))
    waiting: list[Progress] = []
    both_waiting = threading.Event()

    def progress(report: Progress) -> None:  # "...; retry 1 of N in 20.0 s" comes right before the wait
        if report.message is not None and "retry 1 of" in report.message:
            waiting.append(report)
            if len(waiting) == 2:
                both_waiting.set()

    def interrupt_once_waiting() -> None:  # only once both downloads sit in their Retry-After sleep
        both_waiting.wait(20)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_waiting, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        wheelstream.download(
            [url, url + "?again"], tmp_path / "d", cache_dir=tmp_path / "c", jobs=2, progress=progress
        )
    assert both_waiting.is_set()
    assert time.monotonic() - started < 10  # the 503s asked for 20 s


def test_failed_downloads_leave_no_thread_behind(server: FaultServer, tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    before = set(threading.enumerate())
    url = server.add_file(
        WHEEL, data, plan=FaultPlan(Cut(after=2_000_000, requests=1), Cut(after=0, requests=range(2, 99)))
    )
    for _ in range(3):
        with httpx.Client() as client, pytest.raises(RetriesExhausted):
            fetch_wheel(
                url,
                cache=Cache.at(tmp_path),
                client=client,
                options=DownloadOptions(retries=0, backoff_base=0.01),
            )
    # a leaked sink (or unpack, or writer) thread would stay; the server's, for closed connections, end too
    wait_until(
        lambda: not [t for t in threading.enumerate() if t not in before and t.is_alive()],
        timeout=10,
        what="every thread the downloads started to end",
    )


def test_ctrl_c_while_the_deferred_tail_unpacks_resumes_without_refetching(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted inside the central-directory fallback: the journal lists only files before its checkpoint,
    so the rerun neither collides with them nor downloads anything again."""
    from fixtures.wellformed import make_wheel
    from wheelstream.unpack._extract import Extractor

    files = {f"demo/m{i:02d}.bin": bytes([i]) * 300_000 for i in range(12)}
    data = make_wheel(files, compress=STORED, sized=False)  # every entry stored + data descriptor
    real_handle = Extractor.handle
    finished = {"n": 0}

    def handle(self: object, event: object) -> None:
        real_handle(self, event)  # type: ignore[arg-type]
        if type(event).__name__ == "EntryFinished":
            finished["n"] += 1
            if finished["n"] == 5:
                raise KeyboardInterrupt

    with httpx.Client() as client:
        url = server.add_file(WHEEL, data)
        monkeypatch.setattr(Extractor, "handle", handle)
        with pytest.raises(Interrupted):
            fetch_wheel(url, cache=Cache.at(tmp_path), client=client)
        monkeypatch.setattr(Extractor, "handle", real_handle)
        sent = server.bytes_sent(WHEEL)
        result = fetch_wheel(url, cache=Cache.at(tmp_path), client=client)
        assert server.bytes_sent(WHEEL) == sent
        assert result.restarts == 0
        assert {n: (result.staged.root / n).read_bytes() for n in files} == files


def test_a_failed_write_is_sticky_and_the_file_is_never_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import wheelstream.unpack._extract as extract
    from fixtures.wellformed import make_wheel

    content = bytes(range(256)) * 40_000  # > 1 MiB: goes through the sink
    data = make_wheel({"demo/a.bin": content, "demo/b.bin": content[::-1]})
    real_open = os.fdopen
    calls = {"n": 0}

    class FailingWriter:
        def __init__(self, raw: object) -> None:
            self.raw = raw

        def write(self, chunk: bytes) -> int:
            calls["n"] += threading.current_thread().name == "wheelstream-sink"
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            return self.raw.write(chunk)  # type: ignore[attr-defined,no-any-return]

        def close(self) -> None:
            self.raw.close()  # type: ignore[attr-defined]

        def flush(self) -> None:
            self.raw.flush()  # type: ignore[attr-defined]

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FailingWriter(real_open(fd, mode)))
    extractor = extract.Extractor(tmp_path / "s", writers=True)
    parser = ZipStreamParser()

    def stream_all() -> None:
        for i in range(0, len(data), 1 << 16):
            extractor.handle_all(parser.feed(data[i : i + (1 << 16)]))
        extractor.handle_all(parser.feed(b""))
        extractor.drain()

    with pytest.raises(OSError, match="No space left"):
        stream_all()
    with pytest.raises(OSError, match="No space left"):
        extractor.drain()  # sticky: every later drain says so too
    assert "demo/a.bin" not in extractor.files
    assert "demo/b.bin" not in extractor.files
    with contextlib.suppress(OSError):
        extractor.close()
