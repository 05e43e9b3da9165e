"""Socket-level execution of a :class:`~wheelstream.testing._engine.Decision`.

This is the only place that touches sockets, and it exists because byte-exact faults cannot be expressed
through a WSGI server (pytest-httpserver's werkzeug): WSGI owns the connection, buffers, and finishes or
aborts a response on its own terms. Here a cut is "send exactly N body bytes, then FIN (or RST)", and the
no-fault path is one ``socket.sendfile`` so the same server is fast enough for benchmarks (plus one byte
on its own, so the server knows the moment before a client can have the whole response: ``send_body``).
The threaded server class lives here too: it tracks the open sockets so ``stop`` can close idle ones.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Protocol

try:
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows: no SIOCOUTQ through fcntl
    fcntl = None  # type: ignore[assignment]

from wheelstream.testing._engine import Decision

__all__ = ["FaultHandler", "HTTPServer", "RecordSink", "abort", "send_body"]

_CHUNK = 256 * 1024
# A reset cut waits at most this long for the client to take the bytes already written (docs/testbed.md):
# a client that does not read within it gets the RST with bytes still unsent, as on a real network.
RESET_DRAIN_SECONDS = 5.0
_DRAIN_POLL = 0.001


class RecordSink(Protocol):
    """What the writer reports to: the request's record, updated *before* bytes leave (see send_body)."""

    bytes_sent: int


def _paced_chunk(rate: int | None) -> int:
    if rate is None:
        return _CHUNK
    return max(1, min(64 * 1024, rate // 50))


def send_body(
    sock: socket.socket,
    d: Decision,
    record: RecordSink,
    finishing: Callable[[], None],
    stopping: threading.Event | None = None,
) -> None:
    """Write ``d.send`` body bytes; call ``finishing`` just before the last one leaves.

    ``record.bytes_sent`` is raised before each write and lowered again if the write fails: a client that
    has just read the last byte and asserts on the counter must never see a stale value. ``finishing`` is
    the same promise for the connection limit: the server frees the request's slot there, so a client that
    has read a whole response and at once asks for the next is never refused for the one it just finished.
    The last byte goes in a write of its own for that (one more syscall; the rest is still one sendfile).
    ``stopping`` ends a stall or a throttle's pause the moment the server stops (the response is abandoned).
    """
    if d.send <= 0:
        finishing()
        return
    version = d.version
    if d.plain and d.data is None and version is not None and version.path is not None:
        with open(version.path, "rb") as f:
            f.seek(d.offset)  # sendfile moves the position only once it sent something
            record.bytes_sent += d.send
            try:
                if d.send > 1:
                    sock.sendfile(f, d.offset, d.send - 1)
                finishing()
                sock.sendfile(f, d.offset + d.send - 1, 1)
            finally:
                done = f.tell() - d.offset
                record.bytes_sent -= d.send - done
        return
    if d.plain:
        if d.data is not None:
            body = memoryview(d.data)[d.offset : d.offset + d.send]
        else:
            assert version is not None
            body = memoryview(version.read(d.offset, d.send))
        _send_last(sock, body, record, finishing)
        return
    _send_faulty(sock, d, record, finishing, stopping or threading.Event())


def _pause(stopping: threading.Event, seconds: float) -> None:
    """A stall's or a throttle's wait, cut short by the server stopping: a stalled response's thread outlived
    the server (and a test) by the rest of its stall, then wrote an error into a stopped server's record."""
    if stopping.wait(seconds):
        raise ConnectionAbortedError("the server stopped")


def _send_counted(sock: socket.socket, body: memoryview, record: RecordSink) -> None:
    """``sendall`` that, if the connection fails, leaves ``record.bytes_sent`` at what the kernel took.

    That is what sendfile's file position says too, so a client that hangs up mid-body leaves the same kind
    of count whether the file is on disk or in memory (sendall cannot say how much it wrote before failing).
    """
    record.bytes_sent += len(body)
    done = 0
    try:
        while done < len(body):
            done += sock.send(body[done:])
    except OSError:
        record.bytes_sent -= len(body) - done
        raise


def _send_last(
    sock: socket.socket, body: memoryview, record: RecordSink, finishing: Callable[[], None]
) -> None:
    """The response's final write: all but its last byte, ``finishing()``, the last byte."""
    if len(body) > 1:
        _send_counted(sock, body[:-1], record)
    finishing()
    _send_counted(sock, body[-1:], record)


def _reader(d: Decision) -> tuple[Callable[[int, int], bytes], IO[bytes] | None]:
    if d.data is not None:
        data = d.data
        return (lambda off, n: data[off : off + n]), None
    assert d.version is not None
    if d.version.path is None:
        vdata = d.version.data
        assert vdata is not None
        return (lambda off, n: vdata[off : off + n]), None
    f = open(d.version.path, "rb")  # noqa: SIM115 - closed by _send_faulty's finally

    def read(off: int, n: int) -> bytes:
        f.seek(off)
        return f.read(n)

    return read, f


def _send_faulty(
    sock: socket.socket,
    d: Decision,
    record: RecordSink,
    finishing: Callable[[], None],
    stopping: threading.Event,
) -> None:
    read, handle = _reader(d)
    try:
        chunk = _paced_chunk(d.rate)
        stalls = list(d.stalls)
        pos = 0
        t0 = time.monotonic()
        while pos < d.send:
            while stalls and stalls[0][0] <= pos:
                seconds = stalls.pop(0)[1]
                _pause(stopping, seconds)
                t0 += seconds  # a stall is not bandwidth to catch up on
            limit = min(d.send, stalls[0][0]) if stalls else d.send
            n = min(chunk, limit - pos)
            start = d.offset + pos
            buf = bytearray(read(start, n))
            for offset, mask in d.corrupt:
                if start <= offset < start + n:
                    buf[offset - start] ^= mask
            if d.rate is not None:
                delay = t0 + pos / d.rate - time.monotonic()
                if delay > 0:
                    _pause(stopping, delay)
            if pos + n < d.send:
                _send_counted(sock, memoryview(buf), record)
            else:
                _send_last(sock, memoryview(buf), record, finishing)
            pos += n
        if d.rate is not None:  # the last chunk also takes its time, so totals match the rate
            delay = t0 + pos / d.rate - time.monotonic()
            if delay > 0:
                _pause(stopping, delay)
    finally:
        if handle is not None:
            handle.close()


def abort(handler: BaseHTTPRequestHandler, reset: bool) -> None:
    """End the connection the way a broken network does: FIN without a complete body, or RST."""
    handler.close_connection = True
    sock = handler.connection
    if reset:
        _drain(sock, RESET_DRAIN_SECONDS)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.rfile.close()  # drop makefile's reference, or close() would not release the socket
        sock.close()
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _unacknowledged(sock: socket.socket) -> int | None:
    """Bytes written to ``sock`` that the peer has not acknowledged yet (Linux ``SIOCOUTQ``); None: unknown."""
    if fcntl is None or not hasattr(termios, "TIOCOUTQ"):
        return None
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return None


def _drain(sock: socket.socket, limit: float) -> None:
    """Wait (at most ``limit`` s) until the client has every byte written so far.

    A close with ``SO_LINGER`` 0 makes the kernel drop whatever is still in the send queue, so without this
    wait a reset cut after N bytes delivered far fewer than N while the record said N: sendfile/sendall
    return once the kernel has the bytes, not once the client does. Where the queue cannot be asked about,
    the RST goes at once (the old behaviour).
    """
    deadline = time.monotonic() + limit
    while True:
        queued = _unacknowledged(sock)
        if not queued or time.monotonic() >= deadline:
            return
        time.sleep(_DRAIN_POLL)


class FaultHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; routing and decisions belong to the server's ``dispatch``."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections die eventually even if a client forgets them
    server_version = "wheelstream-testbed"
    # TCP_NODELAY, as real servers set it (nginx's ``tcp_nodelay on``): the headers go out in one send and the
    # body in another, and with Nagle's algorithm a body smaller than a segment waited for the client's
    # delayed ACK of the headers, which made every small wheel (and every range request a client makes for
    # metadata) look slow (docs/performance.md#d-testbed-server). Byte-exact faults are unaffected: they count
    # bytes, not segments.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._skip_body()
        self.server.dispatch(self, "GET")  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self._skip_body()
        self.server.dispatch(self, "HEAD")  # type: ignore[attr-defined]

    def _skip_body(self) -> None:
        """A request's body is read (and ignored) before the answer, as RFC 9112 §6.3 asks: left unread, it was
        taken for the next request on the connection. One whose length is not a number, over 1 MiB, or sent
        chunked ends the connection after the answer instead."""
        if self.headers.get("Transfer-Encoding") is not None:
            # chunked (it overrides Content-Length, RFC 9112 §6.3): its chunk lines were read as the next request
            self.close_connection = True
            return
        declared = self.headers.get("Content-Length")
        if declared is None:
            return
        if declared.strip().isascii() and declared.strip().isdigit() and int(declared) <= 1 << 20:
            self.rfile.read(int(declared))
        else:
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: the server logs one richer line per request (``RequestRecord.summary``)."""

    def log_message(self, format: str, *args: object) -> None:
        log = getattr(self.server, "log", None)
        if log is not None:
            log(f"{self.address_string()} - {format % args}")

    def write_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Status line and headers in one write, so a cut at byte 0 still delivers complete headers."""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()


class HTTPServer(ThreadingHTTPServer):
    """One thread per connection, each request handed to ``dispatch``; remembers its connections so that
    :meth:`close_connections` can end kept-alive ones when a test is over."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's listen backlog is 5: a burst of 16 connections had some wait ~1 s for a SYN retry, a delay
    # no fault asked for (a parallel installer opens that many at once)
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Callable[[FaultHandler, str], None],
        log: Callable[[str], None] | None,
    ) -> None:
        self.dispatch = dispatch
        self.log = log
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.stopping = threading.Event()  # set by close_connections: stalls and throttles stop waiting
        self.threads: set[threading.Thread] = set()  # one per open connection
        super().__init__(address, FaultHandler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
            self.threads.add(threading.current_thread())
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.connections.discard(request)
                self.threads.discard(threading.current_thread())

    def join_connections(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s in all) for the connections' threads to end, after
        :meth:`close_connections`: a test's server leaves no thread behind it."""
        deadline = time.monotonic() + timeout
        with self.conn_lock:
            threads = list(self.threads)
        for thread in threads:
            if (
                thread is not threading.current_thread()
            ):  # (stopped from a handler: it cannot wait for itself)
                thread.join(max(0.0, deadline - time.monotonic()))

    def close_connections(self) -> None:
        """Shut every open connection down, so no client hangs on a stopped server."""
        self.stopping.set()
        with self.conn_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-body is routine here, not worth a traceback
