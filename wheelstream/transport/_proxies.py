"""Which proxy, if any, a request goes through: the environment's settings read as pip (requests) and uv read
them, decided per URL. No I/O: the client asks ``ProxySettings.proxy_for`` and routes the request itself.

Why not httpx's own reading (``trust_env``): it turns ``NO_PROXY`` into URL patterns, which cannot say an
address range, so ``NO_PROXY=10.0.0.0/8`` (what Docker and Kubernetes set) sent an internal mirror's requests
to the proxy where pip and uv go direct; and it raised on ``[::1]``, the spelling curl documents.

The rules, as curl, requests and uv's reqwest have them:

* ``HTTP_PROXY`` / ``HTTPS_PROXY`` for their scheme, else ``ALL_PROXY``; the lower-case spelling wins, an
  empty one unsets, and a CGI script ignores ``HTTP_PROXY`` (``urllib.request.getproxies``, which also reads
  the system settings on macOS and Windows). A proxy without a scheme is ``http://``.
* ``NO_PROXY`` is a comma-separated list; ``*`` bypasses every proxy. An entry is an address range
  (``10.0.0.0/8``, ``fd00::/8``) or address (``127.0.0.1``, ``::1``, ``[::1]``), matched against a URL whose
  host is an address (no name is resolved); or a domain (``example.com``, ``.example.com``,
  ``*.example.com``), matching that host and every name under it, never ``notexample.com``. An entry with a
  port (``host:8080``, ``[::1]:8080``) matches that port only.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import NamedTuple

import httpx

__all__ = ["ProxySettings", "proxy_settings"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Bypass(NamedTuple):
    """One ``NO_PROXY`` entry: a network (an address is a network of one) or a domain, and maybe a port."""

    network: _Network | None
    domain: str
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:  # a name: an address entry never matches one
                return False
        return host == self.domain or host.endswith("." + self.domain)


class ProxySettings(NamedTuple):
    """The proxy for each scheme (``http``, ``https``, ``all``) and the hosts that bypass them."""

    proxies: dict[str, str]
    bypass: tuple[_Bypass, ...] = ()
    bypass_all: bool = False

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy URL a request for ``url`` goes through, or None to go direct."""
        proxy = self.proxies.get(url.scheme) or self.proxies.get("all")
        if proxy is None or self.bypass_all:
            return None
        host = url.host.lower().rstrip(".")
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
        if any(entry.matches(host, port) for entry in self.bypass):
            return None
        return proxy


def proxy_settings() -> ProxySettings | None:
    """The proxy settings in effect here, or None when no proxy is set for ``http``, ``https`` or all."""
    found = urllib.request.getproxies()
    proxies = {
        scheme: value if "://" in value else f"http://{value}"
        for scheme in ("http", "https", "all")
        if (value := found.get(scheme, "").strip())
    }
    if not proxies:
        return None
    entries = [entry.strip().lower() for entry in found.get("no", "").split(",")]
    if "*" in entries:
        return ProxySettings(proxies, bypass_all=True)
    return ProxySettings(proxies, tuple(_bypass(entry) for entry in entries if entry))


def _bypass(entry: str) -> _Bypass:
    network = _network(entry)
    if network is not None:
        return _Bypass(network, "", None)
    host, port = _split_port(entry)
    network = _network(host)
    if network is not None:
        return _Bypass(network, "", port)
    domain = host.removeprefix("*").lstrip(".").rstrip(".")
    return _Bypass(None, domain, port)


def _network(text: str) -> _Network | None:
    try:
        return ipaddress.ip_network(text.removeprefix("[").removesuffix("]"), strict=False)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:8080`` → (``host``, 8080); ``[::1]:8080`` → (``[::1]``, 8080); anything else has no port."""
    head, colon, tail = entry.rpartition(":")
    if colon and tail.isdigit() and (":" not in head or (head.startswith("[") and head.endswith("]"))):
        return head, int(tail)
    return entry, None
