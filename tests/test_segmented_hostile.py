"""Segmented downloads against servers that misbehave per connection, in ways the test bed's faults do not
cover: an empty 206, a 206 that sends more than its Content-Range says, weakened ETags, a signed redirect
that expires. Unit tests of the piece table's consequences through ``httpx.MockTransport``; the behaviours
the test bed can produce (cuts, stalls, limits, a changed file) are in ``test_segmented.py``."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import FAST, contents, saved_journal, tree
from test_segmented import _cancel_at, _served, _wheel

from wheelstream._cache import Cache
from wheelstream.errors import Interrupted, RetriesExhausted
from wheelstream.fetch import DownloadOptions, DownloadResult, fetch_wheel
from wheelstream.testing import FaultPlan, FaultServer, IgnoreRange, Throttle

NAME = "seg-1.0-py3-none-any.whl"
URL = f"http://files.example/{NAME}"
OPTIONS = replace(FAST, connections=4, piece_bytes=256 << 10, retries=3)
Piece = Callable[[int, int, bytes], httpx.Response]  # (start, end inclusive, the file) -> a piece's response


class _Files:
    """A file server in a function: the first request (the probe, from byte 0) is answered correctly; every
    later one by ``piece``."""

    def __init__(self, data: bytes, piece: Piece, etag: str = '"v1"') -> None:
        self.data, self.piece, self.etag = data, piece, etag
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            first = len(self.requests) == 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        if match is None:  # a plain GET (one connection, from zero)
            headers = {"etag": self.etag, "accept-ranges": "bytes", "content-length": str(len(self.data))}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(self.data))
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(self.data) - 1
        if first:
            return partial_content(self.data, start, end, self.etag)
        return self.piece(start, end, self.data)


def partial_content(
    data: bytes, start: int, end: int, etag: str, *, declared_end: int | None = None
) -> httpx.Response:
    last = end if declared_end is None else declared_end
    return httpx.Response(
        206,
        headers={
            "content-range": f"bytes {start}-{last}/{len(data)}",
            "etag": etag,
            "accept-ranges": "bytes",
        },
        stream=httpx.ByteStream(data[start : end + 1]),  # read as it streams, as a real body is
    )


def _fetch(files: _Files, cache: Path, options: DownloadOptions = OPTIONS, **kw: object) -> DownloadResult:
    with httpx.Client(transport=httpx.MockTransport(files)) as client:
        return fetch_wheel(URL, cache=Cache.at(cache), client=client, options=options, **kw)  # type: ignore[arg-type]


def test_an_empty_206_for_a_piece_counts_against_the_retries_instead_of_looping(tmp_path: Path) -> None:
    data = _wheel()
    files = _Files(data, lambda start, end, d: partial_content(d, start, start - 1, '"v1"', declared_end=end))
    started = time.monotonic()
    with pytest.raises(RetriesExhausted):
        _fetch(files, tmp_path)
    assert time.monotonic() - started < 10
    assert len(files.requests) < 40  # the budget, not a loop


def test_a_206_longer_than_its_content_range_writes_only_what_it_declares(tmp_path: Path) -> None:
    """Each piece's response declares its first 1,000 bytes and sends the whole piece: only the declared
    bytes are kept, the rest is asked for again."""
    data = _wheel()

    def lying(start: int, end: int, d: bytes) -> httpx.Response:
        return partial_content(d, start, end, '"v1"', declared_end=min(end, start + 999))

    files = _Files(data, lying)
    result = _fetch(files, tmp_path, replace(OPTIONS, piece_bytes=64 << 10))
    assert tree(result) == contents(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_pieces_with_a_weakened_etag_are_the_same_file(tmp_path: Path) -> None:
    """A proxy passes the server's strong ETag on weakened for ranged answers; the server matched our
    If-Range to send them, so they are pieces of the same file: no restart."""
    data = _wheel()
    files = _Files(data, lambda start, end, d: partial_content(d, start, end, 'W/"v1"'))
    result = _fetch(files, tmp_path)
    assert tree(result) == contents(data)
    assert result.restarts == 0


def test_validators_that_disagree_between_connections_restart_once_then_use_one(tmp_path: Path) -> None:
    data = _wheel()
    files = _Files(data, lambda start, end, d: partial_content(d, start, end, '"other"'))
    result = _fetch(files, tmp_path)
    assert tree(result) == contents(data)
    assert result.restarts == 1


def test_pieces_go_to_the_url_as_given_not_to_an_expiring_redirect(tmp_path: Path) -> None:
    """The wheel URL redirects to a signed URL that expires after its first use (as release-asset CDNs do
    after minutes): every piece must be asked of the URL as given, and so redirected afresh."""
    data = _wheel()
    signatures = iter(range(1000))
    used: set[str] = set()
    lock = threading.Lock()

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.host == "files.example":
            with lock:
                signed = f"http://cdn.example/{NAME}?sig={next(signatures)}"
            return httpx.Response(302, headers={"location": signed})
        with lock:
            if str(request.url) in used:
                return httpx.Response(403)
            used.add(str(request.url))
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers["range"])
        assert match is not None
        return partial_content(data, int(match.group(1)), int(match.group(2)), '"v1"')

    with httpx.Client(transport=httpx.MockTransport(server), follow_redirects=True) as client:
        result = fetch_wheel(URL, cache=Cache.at(tmp_path), client=client, options=OPTIONS)
    assert tree(result) == contents(data)


def test_a_slow_but_steady_connection_is_not_cut_as_stalled(server: FaultServer, tmp_path: Path) -> None:
    """100 kB/s per connection, a 3 s read timeout: a piece of 256 KiB takes longer than a third of it, yet
    bytes keep coming, so no connection is cut."""
    url, data = _served(server, FaultPlan(Throttle(100_000)), _wheel(blobs=0))
    notes: list[str] = []
    with httpx.Client() as client:
        result = fetch_wheel(
            url,
            cache=Cache.at(tmp_path),
            client=client,
            options=replace(OPTIONS, timeout=3, piece_bytes=128 << 10),
            progress=lambda p: notes.append(p.message or ""),
        )
    assert tree(result) == contents(data)
    assert not [n for n in notes if "brought nothing" in n], notes


def test_falling_back_to_one_connection_does_not_count_the_pieces_as_reused(
    server: FaultServer, tmp_path: Path
) -> None:
    url, data = _served(server, FaultPlan(Throttle(4 << 20)))
    cancel, progress = _cancel_at(0.6, len(data))
    with httpx.Client() as client, pytest.raises(Interrupted):
        fetch_wheel(
            url, cache=Cache.at(tmp_path), client=client, options=OPTIONS, cancel=cancel, progress=progress
        )
    journal = saved_journal(tmp_path, url)
    assert journal is not None
    assert journal["held"]
    server.set_plan(NAME, FaultPlan(IgnoreRange()))  # now every Range is ignored: back to one connection
    with httpx.Client() as client:
        result = fetch_wheel(url, cache=Cache.at(tmp_path), client=client, options=OPTIONS)
    assert tree(result) == contents(data)
    assert result.bytes_reused <= journal["durable"] + (1 << 20)  # the prefix at most, never the pieces
