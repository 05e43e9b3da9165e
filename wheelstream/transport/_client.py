"""The ``httpx.Client`` every download and index request goes through: pip's credentials, our headers, and
TLS set up only when an ``https`` URL is first requested.

Building httpx's default transport loads the CA bundle, a cost paid at every start even when every URL is
plain ``http`` (a local mirror, the test bed; docs/performance.md, D-deferred-tls). ``_SchemeTransport`` sends
``http`` requests through a transport whose TLS context trusts no certificate at all: it never makes a TLS
connection, and if it ever did, the handshake would fail rather than go unverified. The transport for
``https`` is httpx's own default (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` from the environment; or,
as pip reads them, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``), built on the first ``https`` request.

Proxies: httpx reads them from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``,
the system settings on macOS and Windows) only when it builds its own transport. So when the standard library
sees any proxy configured (``urllib.request.getproxies()``, where httpx looks too), the client is httpx's own,
exactly as it would be without the deferred TLS: the saving is for the common case, never a change of route.

Both of our transports' pools name the connection a request went out on (``_tracking.py``), which a cancel
needs, and pass response bodies through h11 without its copies (``_receive_buffer.py``); httpx's own client
(with a proxy) and a caller's client do neither.
"""

from __future__ import annotations

import base64
import netrc
import os
import ssl
import threading
import urllib.request

import httpx

from wheelstream import __version__
from wheelstream._urls import shown_text  # httpx masks a proxy's password in its errors, not its user
from wheelstream.errors import UsageError
from wheelstream.transport._receive_buffer import pass_body_through
from wheelstream.transport._tracking import track_request_streams

__all__ = ["USER_AGENT", "ca_settings_in_use", "new_client"]

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


class _SchemeTransport(httpx.BaseTransport):
    """``http`` through a transport that never needs a CA bundle; ``https`` through httpx's default one,
    built (under a lock: downloads run on several threads) when the first ``https`` request comes."""

    def __init__(self) -> None:
        self._plain = _tracked(httpx.HTTPTransport(verify=_trusts_nothing()))
        self._tls: httpx.HTTPTransport | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _tls_transport(self) -> httpx.HTTPTransport:
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if self._tls is None:
                try:
                    self._tls = _tracked(httpx.HTTPTransport(verify=_verify(), trust_env=True))
                except (OSError, ssl.SSLError) as exc:  # e.g. SSL_CERT_FILE names a missing or bad file
                    raise UsageError(
                        f"cannot set up TLS certificate verification: {exc}{_ca_settings()}"
                    ) from exc
            return self._tls

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._plain if request.url.scheme == "http" else self._tls_transport()
        response = transport.handle_request(request)
        pass_body_through(response.stream)  # h11's copies of the body, saved (_receive_buffer.py)
        return response

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
    """The client, or a one-line ``UsageError`` for settings httpx cannot build one from (it raised them raw,
    a traceback): a SOCKS proxy without ``socksio``, a ``NO_PROXY`` entry it cannot parse (``[::1]``), a CA
    file that is not there — each named with the setting to change."""
    try:
        return httpx.Client(
            follow_redirects=True,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            event_hooks={"request": [_Credentials()]},
            trust_env=True,
            verify=_verify() if _proxies_configured() else True,  # (ours builds its own on the first https)
            transport=None if _proxies_configured() else _SchemeTransport(),
        )
    except ImportError as exc:  # httpx: "Using SOCKS proxy, but the 'socksio' package is not installed"
        raise UsageError(f"{exc} (the proxy comes from ALL_PROXY, HTTP_PROXY or HTTPS_PROXY)") from None
    except (httpx.InvalidURL, ValueError) as exc:  # ValueError: a proxy of another scheme (ftp://…)
        raise UsageError(
            f"cannot read the proxy settings (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY): {shown_text(str(exc))}"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot set up TLS certificate verification: {exc}{_ca_settings()}") from exc


# Where the CAs to trust come from, first set first: httpx's own two, then the two pip honours through requests
# (a CA bundle set for pip was ignored here: "certificate verify failed" where pip installed).
CA_SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _verify() -> ssl.SSLContext | bool:
    """``True`` (httpx: ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else certifi) unless only a requests-style bundle
    is set, which then names the CAs."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return True
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        bundle = os.environ.get(name)
        if bundle:
            if os.path.isdir(bundle):
                return ssl.create_default_context(capath=bundle)
            return ssl.create_default_context(cafile=bundle)
    return True


def ca_settings_in_use() -> str:
    """``SSL_CERT_FILE=…, REQUESTS_CA_BUNDLE=…``: the CA settings set here, for the messages that name them."""
    return ", ".join(f"{name}={os.environ[name]}" for name in CA_SETTINGS if os.environ.get(name))


def _ca_settings() -> str:
    """`` (SSL_CERT_FILE=…)``: the settings a bad CA bundle comes from, for its message."""
    named = ca_settings_in_use()
    return f" ({named})" if named else ""
