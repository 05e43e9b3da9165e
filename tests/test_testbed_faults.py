"""One test per fault: what a plain httpx client observes, which is what any installer will observe."""

from __future__ import annotations

import gzip
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest

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
    StatusSequence,
    Throttle,
    WeakETag,
    WrongRangeStart,
    _handler,
    parse_fault,
    since,
)
from wheelstream.testing._spec import NumberSet, parse_size

DATA = bytes(range(256)) * 1024  # 256 KiB
NAME = "demo-1.0-py3-none-any.whl"


@pytest.fixture
def server(server: FaultServer) -> FaultServer:
    """The suite's server, serving ``DATA`` as ``NAME``."""
    server.add_file(NAME, DATA)
    return server


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[httpx.Response, bytes, Exception | None]:
    """Stream like an installer does and keep what arrived before any failure."""
    got = bytearray()
    with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as r:
        try:
            for chunk in r.iter_raw():
                got += chunk
        except httpx.HTTPError as exc:
            return r, bytes(got), exc
    return r, bytes(got), None


def test_cut_after_n_bytes_is_an_incomplete_read(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Cut(after=1000, requests=1)))
    r, got, exc = fetch(server.url_for(NAME))
    assert r.headers["content-length"] == str(len(DATA))  # the full length was promised ...
    assert isinstance(exc, httpx.RemoteProtocolError)  # ... and the peer closed early
    assert got == DATA[:1000]
    assert server.requests[-1].cut
    assert server.bytes_sent(NAME) == 1000
    # request 2 is out of scope: the resume succeeds and fetches only the tail
    r2, tail, exc2 = fetch(server.url_for(NAME), {"Range": "bytes=1000-", "If-Range": r.headers["etag"]})
    assert (r2.status_code, exc2, tail) == (206, None, DATA[1000:])
    assert server.bytes_sent(NAME) == len(DATA)


def test_cut_at_percent(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Cut(percent=50)))
    _, got, exc = fetch(server.url_for(NAME))
    assert isinstance(exc, httpx.RemoteProtocolError)
    assert len(got) == len(DATA) // 2
    _, got, exc = fetch(server.url_for(NAME), {"Range": "bytes=1000-"})  # percent of *this* body
    assert len(got) == (len(DATA) - 1000) // 2


def test_cut_with_reset_is_a_read_error(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Cut(after=0, reset=True)))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(server.url_for(NAME))


def test_cut_every_k_bytes_lets_a_resuming_client_progress(server: FaultServer) -> None:
    k = 100_000
    server.set_plan(NAME, FaultPlan(CutEvery(k)))
    have = b""
    for _ in range(3):
        got = fetch(server.url_for(NAME), {"Range": f"bytes={len(have)}-"} if have else None)[1]
        have += got
    assert have == DATA
    assert [r.bytes_sent for r in server.requests_for(NAME)] == [k, k, len(DATA) - 2 * k]
    assert [r.cut for r in server.requests_for(NAME)] == [True, True, False]


def test_stall_delays_the_body_at_byte_n(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Stall(at=5000, seconds=0.5)))
    client = httpx.Client(timeout=httpx.Timeout(5, read=0.2))
    with client, pytest.raises(httpx.ReadTimeout), client.stream("GET", server.url_for(NAME)) as r:
        for _ in r.iter_raw():
            pass
    t0 = time.monotonic()
    assert httpx.get(server.url_for(NAME), timeout=5).content == DATA
    assert time.monotonic() - t0 >= 0.45


def test_throttle_slows_it(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Throttle(1_000_000)))  # 256 KiB at 1 MB/s ~ 0.26 s
    t0 = time.monotonic()
    assert httpx.get(server.url_for(NAME)).content == DATA
    assert 0.24 <= time.monotonic() - t0 < 2


def test_ignore_range_answers_200_with_everything(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(IgnoreRange()))
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=1000-"})
    assert (r.status_code, r.content) == (200, DATA)
    assert "content-range" not in r.headers
    assert "accept-ranges" not in r.headers


def test_wrong_range_start(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(WrongRangeStart(shift=-100)))
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 900-{len(DATA) - 1}/{len(DATA)}"
    assert r.content == DATA[900:]  # a client that trusts its own offset splices wrong bytes
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=0-"})
    assert r.headers["content-range"].startswith("bytes 100-")  # falls back to the other direction


def test_change_file_after_request_k(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(ChangeFile(after_request=1)))
    first = httpx.get(server.url_for(NAME))
    resumed = httpx.get(
        server.url_for(NAME), headers={"Range": "bytes=10-", "If-Range": first.headers["etag"]}
    )
    assert resumed.status_code == 200  # If-Range failed: the whole new file
    assert resumed.headers["etag"] != first.headers["etag"]
    assert resumed.headers["last-modified"] != first.headers["last-modified"]
    assert len(resumed.content) == len(DATA)
    assert resumed.content != DATA
    by_date = httpx.get(
        server.url_for(NAME), headers={"Range": "bytes=10-", "If-Range": first.headers["last-modified"]}
    )
    assert by_date.status_code == 200
    new = httpx.get(server.url_for(NAME), headers={"Range": "bytes=10-", "If-Range": resumed.headers["etag"]})
    assert (new.status_code, new.content) == (206, resumed.content[10:])


@pytest.mark.parametrize("how", ["change", "replace"])
def test_a_file_just_written_and_then_changed_fails_an_if_range_by_its_date(
    server: FaultServer, tmp_path: Path, how: str
) -> None:
    """A file on disk dated this second: its changed version was dated a second later, in the future, so sent
    under the response's own date — the old one's — and an If-Range by date got the new bytes' tail (206)."""
    path = tmp_path / "fresh.whl"
    path.write_bytes(DATA)
    url = server.add_file(
        "fresh.whl", path, plan=FaultPlan(ChangeFile(after_request=1)) if how == "change" else None
    )
    first = httpx.get(url)
    if how == "replace":
        server.replace_file("fresh.whl", DATA[::-1])
    by_date = httpx.get(url, headers={"Range": "bytes=10-", "If-Range": first.headers["last-modified"]})
    assert by_date.headers["last-modified"] != first.headers["last-modified"]
    assert by_date.status_code == 200
    assert by_date.content != DATA


def test_weak_etag_cannot_resume_by_etag_but_can_by_date(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(WeakETag()))
    r = httpx.head(server.url_for(NAME))
    assert r.headers["etag"].startswith('W/"')
    url = server.url_for(NAME)
    assert httpx.get(url, headers={"Range": "bytes=5-", "If-Range": r.headers["etag"]}).status_code == 200
    assert (
        httpx.get(url, headers={"Range": "bytes=5-", "If-Range": r.headers["last-modified"]}).status_code
        == 206
    )


def test_no_validators(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(NoValidators()))
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=5-"})
    assert r.status_code == 206
    assert "etag" not in r.headers
    assert "last-modified" not in r.headers
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=5-", "If-Range": '"anything"'})
    assert (r.status_code, r.content) == (200, DATA)
    # ``*`` matches any current representation, validators or none (RFC 9110 §13.1.2): it answered 200
    assert httpx.get(server.url_for(NAME), headers={"If-None-Match": "*"}).status_code == 304
    assert httpx.get(server.url_for(NAME), headers={"If-None-Match": '"x"'}).status_code == 200


def test_corrupt_byte_at_offset(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Corrupt(offset=1234, mask=0x01)))
    body = httpx.get(server.url_for(NAME)).content
    assert body[1234] == DATA[1234] ^ 0x01
    assert body[:1234] == DATA[:1234]
    assert body[1235:] == DATA[1235:]
    tail = httpx.get(server.url_for(NAME), headers={"Range": "bytes=1000-"}).content
    assert tail[234] == DATA[1234] ^ 0x01  # file offset, wherever the range starts
    assert httpx.get(server.url_for(NAME), headers={"Range": "bytes=2000-"}).content == DATA[2000:]


@pytest.mark.parametrize("on_disk", [False, True], ids=["bytes", "path"])
def test_corrupt_under_gzip_flips_the_file_byte(tmp_path: Path, on_disk: bool) -> None:
    """``--corrupt N --gzip`` flipped byte N of the gzip stream (a broken stream, or a wrong byte anywhere);
    the doc promises the byte at *file* offset N, so the decoded body must differ from the file there only."""
    path = tmp_path / NAME
    path.write_bytes(DATA)
    with FaultServer() as s:
        s.add_file(NAME, path if on_disk else DATA, plan=FaultPlan(Gzip(), Corrupt(offset=1234, mask=0x01)))
        r, raw, exc = fetch(s.url_for(NAME))
        assert exc is None
        assert r.headers["content-encoding"] == "gzip"
        body = gzip.decompress(raw)
        assert body[1234] == DATA[1234] ^ 0x01
        assert body[:1234] + body[1235:] == DATA[:1234] + DATA[1235:]
        assert s.requests[-1].faults == ("Gzip", "Corrupt")


def test_status_sequence_503_then_429_then_ok(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(StatusSequence((503, 429), retry_after=1)))
    first, second, third = (httpx.get(server.url_for(NAME)) for _ in range(3))
    assert (first.status_code, first.headers["retry-after"]) == (503, "1")
    assert (second.status_code, second.headers["retry-after"]) == (429, "1")
    assert (third.status_code, third.content) == (200, DATA)


def test_status_scoped_by_request_numbers(server: FaultServer) -> None:
    server.set_plan(
        NAME, FaultPlan(Status(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", requests={2, 4}))
    )
    codes = [httpx.get(server.url_for(NAME)).status_code for _ in range(5)]
    assert codes == [200, 503, 200, 503, 200]


def test_gzip_content_encoding(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Gzip()))
    r = httpx.get(server.url_for(NAME), headers={"Accept-Encoding": "identity"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == DATA  # httpx decodes; the wire carried gzip
    raw = fetch(server.url_for(NAME))[1]
    assert gzip.decompress(raw) == DATA
    assert len(raw) < len(DATA)
    assert r.headers["etag"].endswith('-gzip"')


def test_faults_combine_and_scope(server: FaultServer) -> None:
    plan = FaultPlan(Cut(after=10_000, requests=1), Throttle(2_000_000), Status(503, requests=since(3)))
    server.set_plan(NAME, plan)
    _, got, exc = fetch(server.url_for(NAME))
    assert isinstance(exc, httpx.RemoteProtocolError)
    assert len(got) == 10_000
    assert httpx.get(server.url_for(NAME), headers={"Range": "bytes=10000-"}).content == DATA[10_000:]
    assert httpx.get(server.url_for(NAME)).status_code == 503
    assert [r.faults for r in server.requests_for(NAME)] == [("Cut", "Throttle"), ("Throttle",), ("Status",)]


def test_smallest_cut_wins(server: FaultServer) -> None:
    server.set_plan(NAME, FaultPlan(Cut(percent=50), Cut(after=10), CutEvery(100)))
    assert len(fetch(server.url_for(NAME))[1]) == 10


def test_spec_language_matches_python_faults() -> None:
    assert parse_fault("cut=50%@1") == Cut(percent=50, requests=NumberSet(((1, 1),)))
    assert parse_fault("cut=64Ki:reset") == Cut(after=65536, reset=True)
    assert parse_fault("status=503:1@1-2").requests == NumberSet(((1, 2),))  # type: ignore[attr-defined]
    assert parse_fault("status-seq=503,429:1") == StatusSequence((503, 429), retry_after=1)
    assert parse_fault("stall=1k:2.5") == Stall(at=1000, seconds=2.5)
    scope = parse_fault("gzip@2,5-").requests  # type: ignore[attr-defined]
    assert [n for n in range(1, 8) if n in scope] == [2, 5, 6, 7]
    assert parse_size("1M") == 1_000_000
    assert parse_size("1MiB") == 2**20
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("explode")
    with pytest.raises(ValueError, match="bad fault"):
        parse_fault("stall=10")
    # each was taken in silence: "@" with nothing after it as every request, a sequence forcing nothing, and a
    # 206 without the Content-Range a partial answer needs
    for text, said in (
        ("cut=50%@", "nothing after @"),
        ("status-seq=,", "at least one request"),
        ("status=206", "cannot be 206"),
    ):
        with pytest.raises(ValueError, match=said):
            parse_fault(text)


def test_a_stalled_response_ends_when_the_server_stops() -> None:
    """The handler slept out its whole stall after ``stop()`` (8 s here), then wrote an error into the stopped
    server's record: a thread outliving the test that the fixture promises none does."""
    import threading

    with FaultServer() as s:
        s.add_file(NAME, DATA, plan=FaultPlan(Stall(at=10, seconds=30)))
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(s.url_for(NAME), timeout=0.3)
        before = time.monotonic()
    assert time.monotonic() - before < 3
    assert s.in_flight() == 0
    assert not [t for t in threading.enumerate() if t.name.endswith("(process_request_thread)")]


@pytest.mark.parametrize("reset", [False, True])
def test_cut_of_a_file_on_disk_is_byte_exact(tmp_path: Path, reset: bool) -> None:
    """A cut with nothing else shaping the bytes goes out through sendfile: still exactly N bytes, then the end."""
    path = tmp_path / NAME
    path.write_bytes(DATA * 8)  # 2 MiB: several sendfile calls' worth
    at = 1_234_567
    with FaultServer() as s:
        s.add_file(NAME, path, plan=FaultPlan(Cut(after=at, reset=reset, requests=1)))
        _, got, exc = fetch(s.url_for(NAME), {"Range": "bytes=100-"})
        assert isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError))
        assert got == (DATA * 8)[100 : 100 + at]  # a RST comes only once the client has the bytes
        assert s.bytes_sent(NAME) == at
        assert s.requests[-1].cut
        _, rest, exc2 = fetch(s.url_for(NAME), {"Range": f"bytes={100 + at}-"})
        assert exc2 is None
        assert rest == (DATA * 8)[100 + at :]


@pytest.mark.parametrize("on_disk", [False, True], ids=["bytes", "path"])
@pytest.mark.parametrize(
    "fault", [Cut(after=1_000_000, reset=True), CutEvery(1_000_000, reset=True)], ids=["cut", "cut-every"]
)
def test_a_reset_cut_delivers_every_byte_before_the_rst(
    tmp_path: Path, on_disk: bool, fault: Cut | CutEvery
) -> None:
    """The RST follows N bytes the client really has: a linger-0 close right after the write used to drop what
    was still in the send queue (a client got ~128 KB of a 1 MB cut while the record said 1 MB)."""
    data = DATA * 16  # 4 MiB
    path = tmp_path / NAME
    path.write_bytes(data)
    with FaultServer() as s:
        s.add_file(NAME, path if on_disk else data, plan=FaultPlan(fault))
        for _ in range(3):
            _, got, exc = fetch(s.url_for(NAME))
            assert isinstance(exc, httpx.ReadError)  # ECONNRESET, not a clean end
            assert got == data[:1_000_000]
        s.wait_idle()
        records = s.requests_for(NAME)
        assert [(r.bytes_sent, r.sent_range, r.reset) for r in records] == [
            (1_000_000, (0, 999_999), True)
        ] * 3


def test_a_reset_cut_waits_for_a_client_that_does_not_read_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait for the client to take the bytes is bounded: one that does not read gets the RST anyway."""
    monkeypatch.setattr(_handler, "RESET_DRAIN_SECONDS", 0.3)
    data = DATA * 16  # 4 MiB
    with FaultServer() as s:
        s.add_file(NAME, data, plan=FaultPlan(Cut(after=1_000_000, reset=True)))
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(f"GET /{NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            t0 = time.monotonic()
            while not s.requests or s.requests[-1].ended is None:  # nothing read meanwhile
                assert time.monotonic() - t0 < 5, "the server waited for an idle client without a bound"
                time.sleep(0.05)
        record = s.requests[-1]
        assert record.reset
        assert record.ended is not None
        assert 0.3 <= record.ended - record.started < 3  # it did wait, then gave up


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda: Stall(at=100, seconds=-1), "seconds"),
        (lambda: Stall(at=-1, seconds=1), "at"),
        (lambda: Status(99), "200-599"),
        (lambda: Status(600), "200-599"),
        (lambda: StatusSequence((503, 100)), "200-599"),
        (lambda: Corrupt(offset=-1), "offset"),
        (lambda: ChangeFile(after_request=-1), "after_request"),
    ],
    ids=["stall-seconds", "stall-at", "status-99", "status-600", "status-seq-100", "corrupt", "change-after"],
)
def test_fault_values_that_cannot_be_served_are_refused(fault: object, message: str) -> None:
    """``Stall(seconds=-1)`` made every response die of a ValueError halfway (an accidental cut), ``Status(99)``
    sent "HTTP/1.1 99": the dataclass refuses them, so the CLI and the Python API say so up front."""
    with pytest.raises(ValueError, match=message):
        fault()  # type: ignore[operator]


@pytest.mark.parametrize("spec", ["stall=100:-1", "cut=-5", "throttle=-1k", "corrupt=-1", "status=99"])
def test_spec_refuses_negative_sizes_and_impossible_statuses(spec: str) -> None:
    with pytest.raises(ValueError, match="bad fault"):
        parse_fault(spec)


@pytest.mark.parametrize(("spec", "grammar"), [("stall=100", "stall=N:SECONDS"), ("cut", "cut=N|P%[:reset]")])
def test_spec_names_the_grammar_of_a_missing_argument(spec: str, grammar: str) -> None:
    with pytest.raises(ValueError, match="missing argument") as info:
        parse_fault(spec)
    assert grammar in str(info.value)
    assert "list index" not in str(info.value)


@pytest.mark.parametrize(
    "spec",
    ["stall=1:2:3", "cut=10:foo", "cut-every=10:reset:reset", "gzip=1", "throttle=1k:2", "status=503:1:2"],
)
def test_spec_refuses_arguments_a_fault_does_not_take(spec: str) -> None:
    """``stall=1:2:3`` or ``cut=10:foo`` were served as if the extra part were not there."""
    with pytest.raises(ValueError, match="arguments it does not take"):
        parse_fault(spec)


@pytest.mark.parametrize("code", [204, 304])
def test_a_status_without_content_is_sent_without_a_body(server: FaultServer, code: int) -> None:
    """A 304 with a 17-byte body broke keep-alive framing: the body was read as the next response's start."""
    server.set_plan(NAME, FaultPlan(Status(code, retry_after=1)))
    with httpx.Client(timeout=5) as client:
        for _ in range(3):  # one connection: each answer must end exactly where HTTP says it does
            r = client.get(server.url_for(NAME))
            assert (r.status_code, r.content, r.headers["retry-after"]) == (code, b"", "1")
            assert "content-length" not in r.headers
            assert "content-type" not in r.headers
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"GET /{NAME} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(f"HTTP/1.1 {code} ".encode())
    assert raw.endswith(b"\r\n\r\n")  # the head, and nothing after it
    assert [(r.status, r.bytes_sent, r.length) for r in server.requests_for(NAME)] == [(code, 0, 0)] * 4


@pytest.mark.parametrize("on_disk", [False, True], ids=["bytes", "path"])
def test_a_client_that_hangs_up_leaves_what_the_kernel_took(tmp_path: Path, on_disk: bool) -> None:
    """bytes_sent counts what the server handed to the kernel. By path (sendfile) that was so already; by bytes
    (sendall) a failed write counted nothing at all, so the two kinds of file disagreed about the same event."""
    data = DATA * 64  # 16 MiB: more than the socket buffers hold
    path = tmp_path / NAME
    path.write_bytes(data)
    with FaultServer() as s:
        s.add_file(NAME, path if on_disk else data)
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(f"GET /{NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = 0
            while got < 100_000:
                got += len(sock.recv(65536))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # hang up: RST
        assert s.wait_idle()
        [record] = s.requests_for(NAME)
        assert record.error is not None
        assert 100_000 <= record.bytes_sent < len(data)
        assert record.sent_range == (0, record.bytes_sent - 1)


def test_a_wrong_start_past_both_ends_moves_as_far_as_the_file_allows(server: FaultServer) -> None:
    """A shift larger than the file made every answer its last byte, whatever the start asked."""
    server.set_plan(NAME, FaultPlan(WrongRangeStart(shift=-(10**9))))
    size = len(DATA)
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=1000-"})
    assert r.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert r.content == DATA
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=0-99"})  # at the shift's end: the other way
    assert r.headers["content-range"] == f"bytes {size - 1}-{size - 1}/{size}"
    server.set_plan(NAME, FaultPlan(WrongRangeStart(shift=10**9)))
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=1000-1099"})
    assert r.headers["content-range"] == f"bytes {size - 1}-{size - 1}/{size}"
    assert r.content == DATA[-1:]


def test_a_wrong_start_keeps_a_bounded_ranges_length_even_at_the_end(server: FaultServer) -> None:
    """A bounded range that ends at the last byte (uv reads a zip's tail so) was taken for an open one and got
    a byte longer; a suffix range keeps its length too, and the request log reads it."""
    server.set_plan(NAME, FaultPlan(WrongRangeStart(shift=-1)))
    size = len(DATA)
    r = httpx.get(server.url_for(NAME), headers={"Range": f"bytes={size - 100}-{size - 1}"})
    assert r.headers["content-range"] == f"bytes {size - 101}-{size - 2}/{size}"
    assert r.content == DATA[size - 101 : size - 1]
    r = httpx.get(server.url_for(NAME), headers={"Range": "bytes=-100"})
    assert len(r.content) == 100
    assert server.requests_for(NAME)[-1].content_range == (-100, -1)
