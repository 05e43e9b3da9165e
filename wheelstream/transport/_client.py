"""The ``httpx.Client`` every download and index request goes through: pip's credentials, its CAs, its
proxies, our headers, and TLS set up only when it is first spoken.

Building a verifying TLS context loads CA bundles, a cost paid at every start even when every URL is plain
``http`` (a local mirror, the test bed; docs/performance.md, D-deferred-tls). ``_RoutingTransport`` sends
direct ``http`` requests through a transport whose TLS context trusts no certificate at all: it never makes a
TLS connection, and if it ever did, the handshake would fail rather than go unverified. The context that
verifies (``trust_context``: the system's store, certifi's bundle and the ones the environment names, as pip
≥ 24.2 trusts) is built on the first request that speaks TLS.

Proxies are read from the environment and routed here, per request (``_proxies.py`` says why not by httpx).

Our transports' pools name the connection a request went out on (``_tracking.py``), which a cancel needs, and
direct connections pass response bodies through h11 without its copies (``_receive_buffer.py``); a caller's
own client does neither.
"""

from __future__ import annotations

import base64
import importlib.util
import netrc
import os
import ssl
import threading
import urllib.parse

import httpx

from wheelstream import __version__
from wheelstream.errors import UsageError
from wheelstream.transport._proxies import ProxySettings, proxy_settings
from wheelstream.transport._receive_buffer import pass_body_through
from wheelstream.transport._tls import tls_settings, trust_context
from wheelstream.transport._tracking import track_request_streams

__all__ = ["USER_AGENT", "new_client"]

USER_AGENT = f"wheelstream/{__version__}"  # the one version: wheelstream.__version__


class _Credentials:
    """Credentials as pip finds them, for every request *and every redirect hop*: the URL's own
    ``user:password@`` first, else ``~/.netrc`` (or $NETRC) for the host being asked. An ``Authorization``
    header already there wins (the caller's, or the first hop's that httpx kept on a same-origin redirect).

    A request hook, not an ``httpx.Auth``: an auth flow runs once per ``send``, before httpx follows redirects
    inside it, so a redirect to another host (whose ``Authorization`` httpx drops) never got that host's netrc
    entry, where pip's requests re-applies it per hop. The userinfo is moved out of the URL into the header:
    left in, httpx's log line (``HTTP Request: GET http://user:password@…``) printed the password into a
    library caller's logs.
    """

    def __init__(self) -> None:
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        try:
            self._netrc: netrc.netrc | None = netrc.netrc(path) if os.path.isfile(path) else None
        except (OSError, netrc.NetrcParseError):
            self._netrc = None

    def __call__(self, request: httpx.Request) -> None:
        user, password = request.url.username, request.url.password
        if user or password:
            request.url = request.url.copy_with(username=None, password=None)
        # httpx hands a redirect's request the first one's extensions: the first hop's URL stamped there tells
        # a hop from a first request (a retry of the same URL is a first request again).
        first = request.extensions.setdefault(_FIRST_HOP, str(request.url))
        if "Authorization" in request.headers:
            return
        if not (user or password) and self._netrc is not None:
            found = self._from_netrc(request.url, None if first == str(request.url) else httpx.URL(first))
            if found is not None:
                user, password = found
        if user or password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            request.headers["Authorization"] = f"Basic {token}"

    def _from_netrc(self, url: httpx.URL, redirected_from: httpx.URL | None) -> tuple[str, str] | None:
        """The netrc login for ``url``'s host. On a redirect hop, only a ``machine`` entry of that host (never
        the ``default`` one: a server could send the default login wherever it likes), and none at all for a
        hop from ``https`` down to ``http`` (they would travel in clear)."""
        assert self._netrc is not None
        if redirected_from is None:
            found = self._netrc.authenticators(url.host)
        elif redirected_from.scheme == "https" and url.scheme != "https":
            return None
        else:
            found = self._netrc.hosts.get(url.host)
        return (found[0], found[2] or "") if found is not None else None


_FIRST_HOP = "wheelstream.first_hop"  # a request extension: the URL a chain of redirects started from


def _tracked(transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    track_request_streams(transport)  # where httpx keeps its pool elsewhere, the transport is used as it is
    return transport


def _trusts_nothing() -> ssl.SSLContext:
    """Verification on, no CA loaded: cheap to build, and useless for TLS by construction."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _RoutingTransport(httpx.BaseTransport):
    """Each request direct or through its proxy (``_proxies.py``), with TLS set up on first need: plain
    ``http`` direct through a transport that never loads a CA, ``https`` through one built (under a lock:
    downloads run on several threads) when the first ``https`` request comes, and one transport per proxy and
    scheme, given the CAs only where TLS is spoken (to an ``https`` URL, to an ``https`` proxy)."""

    def __init__(self, proxies: ProxySettings | None) -> None:
        self._proxies = proxies
        self._plain = _tracked(httpx.HTTPTransport(verify=_trusts_nothing()))
        self._tls: httpx.HTTPTransport | None = None
        self._trust: ssl.SSLContext | None = None
        self._via: dict[tuple[str, bool], httpx.HTTPTransport] = {}  # (proxy, https URL)
        self._closed = False
        self._lock = threading.Lock()

    def _transport_for(self, url: httpx.URL) -> httpx.HTTPTransport:
        proxy = self._proxies.proxy_for(url) if self._proxies is not None else None
        if proxy is None and url.scheme == "http":
            return self._plain
        to_https_proxy = proxy is not None and proxy.lower().startswith("https:")
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if proxy is None:
                if self._tls is None:
                    self._tls = _tracked(httpx.HTTPTransport(verify=self._trusted()))
                return self._tls
            key = (proxy, url.scheme != "http")
            via = self._via.get(key)
            if via is None:
                # The destination's CAs (``verify``) and the proxy's own (``ssl_context``: else httpcore's
                # defaults, without the system's store or the environment's bundles) are set apart.
                verify = self._trusted() if url.scheme != "http" else _trusts_nothing()
                route = httpx.Proxy(proxy, ssl_context=self._trusted() if to_https_proxy else None)
                via = self._via[key] = _tracked(httpx.HTTPTransport(verify=verify, proxy=route))
            return via

    def _trusted(self) -> ssl.SSLContext:
        """The one verifying context (loading CAs costs ~20 ms; shared by every transport that speaks TLS)."""
        if self._trust is None:
            try:
                self._trust = trust_context()
            except (OSError, ssl.SSLError) as exc:  # a setting names a missing or bad file
                raise UsageError(f"cannot set up TLS: {exc}{tls_settings()}") from exc
        return self._trust

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._transport_for(request.url).handle_request(request)
        pass_body_through(response.stream)  # h11's copies of the body, saved (_receive_buffer.py)
        return response

    def close(self) -> None:
        with self._lock:
            self._closed = True
            transports = [self._plain, *([self._tls] if self._tls is not None else []), *self._via.values()]
            self._tls, self._via = None, {}
        for transport in transports:
            transport.close()


def new_client(timeout: float) -> httpx.Client:
    """The client, or a one-line ``UsageError`` for proxy settings no request could go through (a SOCKS proxy
    without ``socksio``, a proxy of another scheme or with a bad port), each named with the setting to
    change. A CA setting that cannot be loaded is said at the first ``https`` request."""
    proxies = proxy_settings()
    for scheme, proxy in proxies.proxies.items() if proxies is not None else ():
        _check_proxy(f"{scheme.upper()}_PROXY", proxy)
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        event_hooks={"request": [_Credentials()]},
        trust_env=False,  # proxies are routed by _RoutingTransport, CAs come from trust_context()
        transport=_RoutingTransport(proxies),
    )


def _check_proxy(setting: str, proxy: str) -> None:
    """Said in our words: httpx's own quote the URL, its user name and the start of a password holding a
    ``/`` among them."""
    parts = urllib.parse.urlsplit(proxy)
    if parts.scheme not in ("http", "https", "socks5", "socks5h"):
        reason = f"its scheme is {parts.scheme!r}; http, https, socks5 or socks5h are"
    elif parts.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise UsageError(
            f"{setting} names a SOCKS proxy, which needs the socksio package (pip install 'httpx[socks]')"
        )
    else:
        try:
            port = parts.port
            httpx.Proxy(proxy)
        except ValueError:  # httpx.InvalidURL too
            port = -1
        if port is None or 0 < port < 65536:
            return
        reason = "it has no host and port from 1 to 65535 that can be read"
    raise UsageError(f"cannot read the proxy settings: {setting} is not a proxy URL ({reason})")
