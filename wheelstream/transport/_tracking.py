"""Which connection a request went out on, found by swapping httpcore's private network backend.

What it is for: a cancel must be able to shut the socket a download is blocked on (``_cancel.py``). A
new connection's socket is known from httpcore's connect trace; a request on a pooled keep-alive connection
makes no such trace, and before its response headers arrive nothing in httpx's API names the connection.

What it does: ``track_request_streams(transport)`` wraps the network backend of the transport's connection
pool, so every stream the pool makes is a ``_TrackedStream``, which notes itself, per thread, as the stream a
request was last written to. The download takes it with ``take_request_stream`` at the
``send_request_headers.complete`` trace, on the same thread, a moment later. The same wrapper reads plain TCP
in larger ``recv`` calls than httpcore asks for (see ``_TrackedStream``).

What it touches: two private attributes, ``HTTPTransport._pool`` (httpx 0.27-0.29) and
``ConnectionPool._network_backend`` (httpcore 1.x), and a thread-local of this module.

Fallback: where either attribute is missing (a later httpx or httpcore), the transport is used exactly as
httpx built it and ``take_request_stream`` answers None. Nothing breaks; a cancel on a pooled connection
waits for the read timeout again (``test_ctrl_c_while_a_pooled_connection_waits_for_headers_exits_at_once``
notices) and plain reads are httpcore's size. ``tests/test_http_client.py`` runs that fallback.
Why it is kept: docs/performance.md, D-network-backend.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["take_request_stream", "track_request_streams"]

_written = threading.local()  # .stream: the stream this thread last wrote a request to, until taken


def take_request_stream() -> object | None:
    """The network stream this thread last wrote a request to through a tracked pool, once (see the module
    docstring); None when the request went through a pool that is not tracked."""
    stream = getattr(_written, "stream", None)
    _written.stream = None
    return stream


_PLAIN_READ_BYTES = 1 << 20


class _TrackedStream:
    """An httpcore network stream that notes itself as this thread's request stream when written to.

    On a plain TCP stream it also asks ``recv`` for up to 1 MiB where httpcore asks for 64 KiB: each read is a
    pass through httpcore and h11 in Python, on the thread that holds the GIL the unpack thread needs
    (docs/performance.md, D-plain-read-size). h11 buffers whatever a read returns, so a larger one changes nothing
    else. A TLS stream keeps httpcore's size: a TLS read returns at most one 16 KiB record anyway.
    """

    def __init__(self, inner: Any, *, tls: bool = False) -> None:
        self._inner = inner
        self._least_read = 0 if tls else _PLAIN_READ_BYTES
        self.close = inner.close
        self.get_extra_info = inner.get_extra_info

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._inner.read(max(max_bytes, self._least_read), timeout)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _written.stream = self
        self._inner.write(buffer, timeout)

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> _TrackedStream:
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), tls=True)


class _TrackingBackend:
    """httpcore's network backend, with every stream it makes a ``_TrackedStream``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def track_request_streams(transport: object) -> bool:
    """Make the streams of ``transport``'s connection pool tracked; whether they are (see the module docstring:
    False is the fallback, and the transport is then left exactly as it was)."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:
        return False
    if not isinstance(backend, _TrackingBackend):
        pool._network_backend = _TrackingBackend(backend)  # type: ignore[union-attr]
    return True
