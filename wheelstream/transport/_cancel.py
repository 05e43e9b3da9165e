"""A cancel that does not wait for a stalled server: the socket of the request in flight is shut from outside
(a download's, ``fetch``; an index page's, ``index._lookup``).

The body is read in blocking ``recv`` calls (up to the read timeout each, 30 s by default), and the cancel is
looked at between chunks. So while a download runs, a watcher thread (``SocketCancel.watching``) waits for the
cancel and, the moment it is set, shuts the socket down. The read then ends like a dropped connection, and the
attempt loop, which reads a transport error after a cancel as the cancel (``raise_if_cancelled``),
checkpoints and raises, as Ctrl-C between two chunks would.

What it touches. Which socket a request uses is learnt through httpcore's ``trace`` request extension:
``connect_tcp.complete`` names a new connection's stream; on a pooled keep-alive connection (no connect
trace) ``http11.send_request_headers.complete`` is when our own client's pools have noted the stream the
request was written to (``wheelstream.transport.take_request_stream``); failing both, the response's
``network_stream`` extension names it once headers arrive. From the stream, ``get_extra_info("socket")``.
The watcher keeps a descriptor of its own (``dup``): the TLS handshake detaches the plain socket it wraps,
and a shutdown through any descriptor ends the connection itself. Only that descriptor is ever closed here;
the connection stays with the pool.

Fallback. When no socket can be learnt (trace names changed, a transport without sockets, a caller's client
on a pooled connection before the response), the cancel is still seen between chunks, at the next timeout,
or at the next wait between attempts: slower, never wrong.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import httpx

from wheelstream.transport._tracking import take_request_stream

__all__ = ["CancelSignal", "SocketCancel", "socket_of"]

_CANCEL_POLL = 0.1  # seconds: how soon a cancel cuts a stalled read short


class CancelSignal(Protocol):
    """Set by someone else to stop a download like Ctrl-C would: a ``threading.Event`` (another thread) or a
    ``_workers.PipeSignal`` (the parent of a worker process)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _shut(sock: socket.socket | None) -> None:
    """End a blocking ``recv`` on ``sock`` in another thread: it returns as if the peer had closed."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def socket_of(stream: object) -> socket.socket | None:
    """The socket under an httpcore network stream (``get_extra_info("socket")``), if it has one."""
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if get_extra_info is not None else None
    return sock if isinstance(sock, socket.socket) else None


class SocketCancel:
    """One download's side of a ``CancelSignal`` (None: never cancelled): the watcher, the socket of the request
    in flight, and the waits that wake up for a cancel."""

    def __init__(self, cancel: CancelSignal | None) -> None:
        self.cancel = cancel
        self._socket: socket.socket | None = None  # our descriptor of the request in flight's connection
        self._lock = threading.Lock()

    def raise_if_cancelled(self) -> None:
        """A cancel is Ctrl-C for the download: ``KeyboardInterrupt``, whatever thread it runs on."""
        if self.cancel is not None and self.cancel.is_set():
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up for a cancel (Ctrl-C in the main thread while this runs on a worker)."""
        if self.cancel is None:
            time.sleep(seconds)
        elif self.cancel.wait(seconds):
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """While the download runs, a watcher shuts the request's socket as soon as the cancel is set."""
        if self.cancel is None:
            yield
            return
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(finished,), name="wheelstream-cancel", daemon=True
        )
        watcher.start()
        try:
            yield
        finally:
            finished.set()
            watcher.join()

    def _watch(self, finished: threading.Event) -> None:
        assert self.cancel is not None
        while not finished.wait(_CANCEL_POLL):
            if self.cancel.is_set():
                with self._lock:
                    _shut(self._socket)
                return

    @contextlib.contextmanager
    def request(self) -> Iterator[dict[str, Any]]:
        """The extensions for one request; until the request is over, its connection is the watcher's to shut.

        Through a client of the caller's, a request on a pooled keep-alive connection makes no trace that names
        its stream: its socket is known from the response on (``response_arrived``), so a server that stalls
        *before* the response headers there still holds a cancel until the read timeout."""
        try:
            yield {"trace": self._trace}
        finally:
            self.let_go()

    def let_go(self) -> None:
        """Close our descriptor of the request's socket. At the end of every request — and before its
        response is handed to another thread (a segmented download), which watches it itself: a descriptor
        kept here would keep the connection open after that thread closed the response, the server sending
        into it until this request ended."""
        with self._lock:
            own, self._socket = self._socket, None
        if own is not None:
            own.close()  # our descriptor only: the connection stays with the pool

    def response_arrived(self, response: httpx.Response) -> None:
        """A pooled connection no trace named is known from its response on."""
        if self._socket is None:
            self._register(response.extensions.get("network_stream"))

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: the request's socket is known before any response is (a server that accepts
        and never answers, stalls the TLS handshake, or says nothing after a request on a pooled keep-alive
        connection must not hold a cancel either)."""
        if event.endswith("connect_tcp.complete"):
            self._register(info.get("return_value"))
        elif event == "http11.send_request_headers.started":
            take_request_stream()  # nothing an earlier request on this thread left may be taken for this one
        elif event == "http11.send_request_headers.complete":
            stream = take_request_stream()
            if stream is not None:
                self._register(stream)

    def _register(self, stream: object) -> None:
        """Keep a descriptor of ``stream``'s socket for the watcher (see the module docstring)."""
        sock = socket_of(stream)
        if sock is None or sock.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            own = socket.socket(fileno=os.dup(sock.fileno()))
            with self._lock:
                previous, self._socket = self._socket, own
                if self.cancel is not None and self.cancel.is_set():
                    _shut(own)  # cancelled before the socket was known: the watcher has returned
            if previous is not None:
                previous.close()
