"""Regressions for the findings of the engine review: each was a crafted input or a server behaviour that
got past the parser, looped, leaked state or ignored Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

import wheelstream
from fixtures.wellformed import WELLFORMED
from fixtures.zipbuild import STORED, Member, build, dir_attr
from wheelstream._cache import Cache
from wheelstream._download import DownloadOptions, fetch_wheel, unpack_local
from wheelstream._urls import cache_key
from wheelstream.errors import EntrySetMismatch, Interrupted, MalformedRecord, ResourceGone, RetriesExhausted
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


def test_broken_range_support_gives_up_instead_of_restarting_forever(tmp_path: Path) -> None:
    data = WELLFORMED["many_entries"]()
    with FaultServer() as server:
        url = server.add_file(WHEEL, data, plan=FaultPlan(Cut(percent=40), WrongRangeStart(shift=-10)))
        started = time.monotonic()
        with httpx.Client() as client, pytest.raises(RetriesExhausted, match="restarts from zero"):
            fetch_wheel(url, cache=Cache.at(tmp_path), client=client,
                        options=DownloadOptions(retries=3, backoff_base=0.01, backoff_max=0.05))
        assert time.monotonic() - started < 10
        assert len(server.requests_for(WHEEL)) <= 2 * 5


def test_gone_discards_the_partial(tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    with FaultServer() as server:
        url = server.add_file(WHEEL, data, plan=FaultPlan(Cut(after=100_000, requests=1), Status(410, requests=2)))
        with httpx.Client() as client, pytest.raises(ResourceGone, match="410"):
            fetch_wheel(url, cache=Cache.at(tmp_path), client=client, options=DownloadOptions(backoff_base=0.01))
    key = cache_key(url)
    assert not (tmp_path / "partial" / f"{key}.whl.part").exists()
    assert not (tmp_path / "partial" / f"{key}.json").exists()
    assert not (tmp_path / "staging" / key).exists()


def test_ctrl_c_during_a_long_retry_after_returns_at_once(tmp_path: Path) -> None:
    data = WELLFORMED["deflate"]()
    with FaultServer() as server:
        url = server.add_file(WHEEL, data, plan=FaultPlan(Status(503, retry_after=20)))
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            wheelstream.download([url, url + "?again"], tmp_path / "d", cache_dir=tmp_path / "c", jobs=2)
        assert time.monotonic() - started < 5
