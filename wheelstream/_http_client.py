"""The ``httpx.Client`` every download and index request goes through: pip's credentials, our headers, and
TLS set up only when an ``https`` URL is first requested.

Building httpx's default transport loads the CA bundle: ~30 ms of every start (cProfile of a resumed
install), paid even when every URL is plain ``http`` (a local mirror, the test bed). ``_SchemeTransport``
sends ``http`` requests through a transport whose TLS context trusts no certificate at all: it never makes a
TLS connection, and if it ever did, the handshake would fail rather than go unverified. The transport for
``https`` is httpx's own default (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` from the environment),
built on the first ``https`` request.

Proxies: httpx reads them from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``,
the system settings on macOS and Windows) only when it builds its own transport. So when the standard library
sees any proxy configured (``urllib.request.getproxies()``, where httpx looks too), the client is httpx's own,
exactly as before this module deferred TLS: the saving is for the common case, never a change of route.

Which connection a request went out on (``take_request_stream``): a cancel must be able to shut the socket a
download is blocked on (``_download._Download._cancel_watch``). A new connection's socket is known from
httpcore's connect trace; a request on a pooled keep-alive connection makes no such trace, and before its
response headers arrive nothing in httpx's API names the connection. So our transports' connection pools
create their streams through ``_TrackingBackend``, which notes, per thread, the stream a request was last
written to; the download takes it at the ``send_request_headers.complete`` trace, on the same thread, a
moment later. Swapping the backend touches two private attributes (``HTTPTransport._pool``,
``ConnectionPool._network_backend``): where they are missing the pool is left as it is, and the only loss is
that a cancel on a pooled connection waits for the read timeout again
(``test_ctrl_c_while_a_pooled_connection_waits_for_headers_exits_at_once`` notices).
"""

from __future__ import annotations

import base64
import netrc
import os
import ssl
import threading
import urllib.request
from collections.abc import Generator, Iterable
from typing import Any

import httpx

from wheelstream.errors import UsageError

__all__ = ["USER_AGENT", "new_client", "take_request_stream"]

USER_AGENT = "wheelstream/0.1.0"


class _CredentialsAuth(httpx.Auth):
    """Credentials as pip finds them: the URL's own ``user:password@`` first, else ``~/.netrc`` (or $NETRC).

    httpx ignores URL userinfo once a client has an auth of its own, and never reads netrc by itself, so both
    live here. An ``Authorization`` header set by the caller wins over either.
    """

    def __init__(self) -> None:
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        try:
            self._netrc: netrc.netrc | None = netrc.netrc(path) if os.path.isfile(path) else None
        except (OSError, netrc.NetrcParseError):
            self._netrc = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "Authorization" not in request.headers:
            user, password = request.url.username, request.url.password
            if not (user or password) and self._netrc is not None:
                found = self._netrc.authenticators(request.url.host)
                if found is not None:
                    user, password = found[0], found[2] or ""
            if user or password:
                token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
                request.headers["Authorization"] = f"Basic {token}"
        yield request


_written = threading.local()  # .stream: the stream this thread last wrote a request to, until taken


def take_request_stream() -> object | None:
    """The network stream this thread last wrote a request to through one of our pools, once (see the
    module docstring); None when the request went through another client's pool."""
    stream = getattr(_written, "stream", None)
    _written.stream = None
    return stream


_PLAIN_READ_BYTES = 1 << 20


class _TrackedStream:
    """An httpcore network stream that notes itself as this thread's request stream when written to.

    On a plain TCP stream it also asks ``recv`` for up to 1 MiB where httpcore asks for 64 KiB: each read
    costs a pass through httpcore and h11 in Python, on the thread that holds the GIL the unpack thread needs
    (torch: ~3,000 reads become ~200; process CPU -0.12 s, docs/performance.md). h11 buffers whatever a read
    returns, so a larger one changes nothing else. A TLS stream keeps httpcore's size: a TLS read returns at
    most one 16 KiB record anyway.
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

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> _TrackedStream:
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), tls=True)


class _TrackingBackend:
    """httpcore's network backend, with every stream it makes a ``_TrackedStream``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _tracking(transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    """``transport`` with its pool's streams tracked, when its pool is where httpx 0.27-0.28 keep it."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is not None and not isinstance(backend, _TrackingBackend):
        pool._network_backend = _TrackingBackend(backend)  # type: ignore[union-attr]
    return transport


def _trusts_nothing() -> ssl.SSLContext:
    """Verification on, no CA loaded: cheap to build, and useless for TLS by construction."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _SchemeTransport(httpx.BaseTransport):
    """``http`` through a transport that never needs a CA bundle; ``https`` through httpx's default one,
    built (under a lock: downloads run on several threads) when the first ``https`` request comes."""

    def __init__(self) -> None:
        self._plain = _tracking(httpx.HTTPTransport(verify=_trusts_nothing()))
        self._tls: httpx.HTTPTransport | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _tls_transport(self) -> httpx.HTTPTransport:
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if self._tls is None:
                try:
                    self._tls = _tracking(httpx.HTTPTransport(verify=True, trust_env=True))
                except (OSError, ssl.SSLError) as exc:  # e.g. SSL_CERT_FILE names a missing or bad file
                    raise UsageError(f"cannot set up TLS certificate verification: {exc}") from exc
            return self._tls

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return self._plain.handle_request(request)
        return self._tls_transport().handle_request(request)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            tls, self._tls = self._tls, None
        try:
            self._plain.close()
        finally:
            if tls is not None:
                tls.close()


def _proxies_configured() -> bool:
    return any(key in ("http", "https", "all") for key in urllib.request.getproxies())


def new_client(timeout: float) -> httpx.Client:
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        auth=_CredentialsAuth(),
        trust_env=True,
        transport=None if _proxies_configured() else _SchemeTransport(),
    )
