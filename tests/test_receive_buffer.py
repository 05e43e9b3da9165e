"""h11's receive buffer, passing body reads through: the same parse as h11's own on any sequence of reads, bodies
byte-for-byte through a real server on 127.0.0.1 (lengths, chunks, keep-alive), and the fallback."""

from __future__ import annotations

import os
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from h11._receivebuffer import ReceiveBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from wheelstream.transport import new_client
from wheelstream.transport._receive_buffer import PassThroughBuffer, pass_body_through

BODY = os.urandom(3 << 20)


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


RESPONSES = {
    b"/length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(BODY, 70_000),
    b"/small": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
}


class _Handler(socketserver.StreamRequestHandler):
    """Answers each request on a connection from ``RESPONSES``, in one ``sendall``: headers and the start of
    the body reach the client together, as from a real server."""

    def handle(self) -> None:
        while True:
            request_line = self.rfile.readline()
            if not request_line:
                return
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            self.server.requests += 1  # type: ignore[attr-defined]
            self.wfile.write(RESPONSES[request_line.split()[1]])


@pytest.fixture
def server() -> Iterator[socketserver.ThreadingTCPServer]:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler) as srv:
        srv.daemon_threads = True
        srv.requests = 0  # type: ignore[attr-defined]
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        try:
            yield srv
        finally:
            srv.shutdown()


def _url(server: socketserver.ThreadingTCPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _receive_buffer(response: httpx.Response) -> object:
    """The chain ``pass_body_through`` walks, spelt out (``response.stream`` is the client's wrapper of it)."""
    transport_stream: Any = getattr(response.stream, "_stream")  # noqa: B009 - private, on purpose
    return transport_stream._httpcore_stream._stream._connection._h11_state._receive_buffer


def test_bodies_arrive_whole_over_one_kept_alive_connection(server: socketserver.ThreadingTCPServer) -> None:
    paths = [("/length", BODY), ("/chunked", BODY), ("/small", b"hello"), ("/length", BODY)]
    with new_client(10.0) as client:
        for path, expected in paths:
            with client.stream("GET", _url(server, path)) as response:
                assert response.status_code == 200
                got = b"".join(response.iter_raw())
                buffer = _receive_buffer(response)
            assert got == expected, path
            assert isinstance(buffer, PassThroughBuffer)  # the chain is found with the pinned versions
    assert server.requests == len(paths)  # type: ignore[attr-defined]  # one connection, kept alive


def test_a_read_taken_whole_is_the_object_received() -> None:
    buffer = PassThroughBuffer()
    read = b"x" * 1000
    buffer += read
    assert len(buffer) == 1000
    assert buffer.maybe_extract_at_most(5000) is read
    assert len(buffer) == 0
    assert not buffer
    assert buffer.maybe_extract_at_most(5000) is None


def test_the_fallback_leaves_anything_else_alone() -> None:
    assert pass_body_through(object()) is False
    assert pass_body_through(None) is False


# One operation on a receive buffer: what it returns, as plain bytes, to compare the two classes by.
_OPERATIONS = st.one_of(
    st.tuples(st.just("add"), st.binary(max_size=64), st.booleans()),
    st.tuples(st.just("at_most"), st.integers(min_value=0, max_value=80)),
    st.tuples(st.just("line")),
    st.tuples(st.just("lines")),
    st.tuples(st.just("invalid_request_line")),
    st.tuples(st.just("bytes")),
)


def _apply(buffer: ReceiveBuffer, operation: tuple[object, ...]) -> object:
    kind = operation[0]
    if kind == "add":
        data, as_bytearray = bytes(operation[1]), operation[2]  # type: ignore[call-overload]
        buffer += bytearray(data) if as_bytearray else data
        return len(buffer)
    if kind == "at_most":
        out = buffer.maybe_extract_at_most(int(operation[1]))  # type: ignore[call-overload]
        return None if out is None else bytes(out)
    if kind == "line":
        line = buffer.maybe_extract_next_line()
        return None if line is None else bytes(line)
    if kind == "lines":
        lines = buffer.maybe_extract_lines()
        return None if lines is None else [bytes(line) for line in lines]
    if kind == "invalid_request_line":
        return buffer.is_next_line_obviously_invalid_request_line() if len(buffer) else None
    return bytes(buffer)


@settings(max_examples=300, deadline=None)
@given(st.lists(_OPERATIONS, max_size=30), st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"a\r\n\r\nb"]))
def test_it_parses_exactly_as_h11s_own_buffer(operations: list[tuple[object, ...]], before: bytes) -> None:
    ours = PassThroughBuffer.taking_over(_fed(ReceiveBuffer(), before))
    theirs = _fed(ReceiveBuffer(), before)
    for operation in operations:
        assert _apply(ours, operation) == _apply(theirs, operation), operation
        assert (len(ours), bool(ours)) == (len(theirs), bool(theirs))
    assert bytes(ours) == bytes(theirs)


def _fed(buffer: ReceiveBuffer, data: bytes) -> ReceiveBuffer:
    buffer += data
    return buffer


def test_nothing_else_in_h11_reaches_into_the_buffer() -> None:
    """The subclass overrides every method h11's ``ReceiveBuffer`` has (a new one would bypass ``_settle``)."""
    public = {name for name in vars(ReceiveBuffer) if not name.startswith("_")}
    public |= {"__iadd__", "__bytes__", "__len__", "__bool__"}
    overridden = set(vars(PassThroughBuffer)) | {"__bool__"}  # h11's __bool__ asks __len__
    assert public <= overridden, public - overridden
