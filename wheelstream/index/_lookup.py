"""Asking the index: the page fetched through hishel's cache (heuristic freshness for servers that send none),
credentials from the index URL passed on as pip does, then ``resolve_requirement``.
"""

from __future__ import annotations

import email.utils
import logging
import urllib.parse
from collections.abc import Sequence

import httpx
from packaging.tags import Tag

from wheelstream._cache import Cache
from wheelstream._urls import redact
from wheelstream.errors import (
    HTTPStatusError,
    NetworkError,
    UsageError,
)
from wheelstream.index._choose import choose, pin, python_version_of
from wheelstream.index._pages import ACCEPT, JSON_TYPE, checked_url_name, parse_html, parse_json

_log = logging.getLogger("wheelstream")

HEURISTIC_MAX_AGE = 600  # PyPI's own max-age for simple pages
_MAX_REDIRECTS = 5
_FRESHNESS_HEADERS = ("cache-control", "expires")


class _Origin(httpx.BaseTransport):
    """Below hishel: sends through the caller's client (its auth, proxies, timeouts, transport) to the real
    URL, and gives responses without freshness information a heuristic ``max-age`` (RFC 9111 §4.2.2)."""

    def __init__(self, client: httpx.Client, real_url: str, auth: httpx.Auth | None) -> None:
        self.client = client
        self.real_url = real_url
        self.auth = auth

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        outgoing = self.client.build_request(request.method, self.real_url, headers=request.headers)
        response = self.client.send(
            outgoing,
            stream=True,
            follow_redirects=False,
            auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code == 200 and not any(h in response.headers for h in _FRESHNESS_HEADERS):
            response.headers["Cache-Control"] = f"max-age={HEURISTIC_MAX_AGE}"
            if "date" not in response.headers:  # hishel takes a missing Date as age 0, forever
                response.headers["Date"] = email.utils.formatdate(usegmt=True)
        return response


def _split_credentials(url: str) -> tuple[str, httpx.Auth | None]:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    auth = httpx.BasicAuth(urllib.parse.unquote(user), urllib.parse.unquote(password))
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), auth


def _with_credentials(file_url: str, index_url: str) -> str:
    """pip passes the index's credentials on to files on the same host; so do we (never persisted)."""
    index, file = urllib.parse.urlsplit(index_url), urllib.parse.urlsplit(file_url)
    if "@" not in index.netloc or "@" in file.netloc or file.hostname != index.hostname:
        return file_url
    return urllib.parse.urlunsplit(file._replace(netloc=index.netloc.rpartition("@")[0] + "@" + file.netloc))


def _get(url: str, accept: str, client: httpx.Client, cache: Cache) -> tuple[httpx.Response, bytes, str]:
    """GET ``url`` through hishel (following redirects hop by hop, each cached on its own).

    Returns the final response, its body and the URL it came from (relative links resolve against it).
    """
    import hishel
    from hishel.httpx import CacheTransport

    storage = hishel.SqliteStorage(database_path=cache.root / "http" / "index.db")
    try:
        for _hop in range(_MAX_REDIRECTS + 1):
            plain, auth = _split_credentials(url)
            visible = redact(plain)
            transport = CacheTransport(
                _Origin(client, plain, auth), storage=storage, rfc=hishel.CacheOptions(shared=False)
            )
            request = httpx.Request("GET", visible, headers={"Accept": accept})
            response = transport.handle_request(request)
            try:
                body = response.read()
            finally:
                response.close()
            location = response.headers.get("location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                continue
            return response, body, url
        raise HTTPStatusError(f"too many redirects from {redact(url)}")
    finally:
        storage.close()


def resolve_requirement(
    source: str,
    *,
    index_url: str,
    cache: Cache,
    client: httpx.Client,
    tags: Sequence[object],
    python_version: tuple[int, int] | None = None,
) -> tuple[str, str | None]:
    """``NAME==VERSION`` → (wheel URL, sha256 hex from the index or None).

    ``tags`` are the target interpreter's supported tags, most preferred first. ``python_version`` is the
    target's ``(major, minor)`` for ``requires-python``; by default it is read off ``tags``.
    """
    name, version = pin(source)
    tag_list = [t for t in tags if isinstance(t, Tag)]
    page = index_url.rstrip("/") + "/" + name + "/"
    try:
        response, body, final = _get(page, ACCEPT, client, cache)
        if response.status_code == 406:  # a server that cannot do JSON and says so
            response, body, final = _get(page, "text/html", client, cache)
    except httpx.HTTPError as exc:
        raise NetworkError(
            f"index {redact(page)} unreachable: {type(exc).__name__}: {exc}", wheel=source
        ) from None
    status = response.status_code
    if status in (404, 410):
        raise UsageError(f"no project {name!r} on the index {redact(index_url)}", wheel=source)
    if status != 200:
        raise HTTPStatusError(f"index {redact(page)} answered {status}", wheel=source)
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json":
        files = parse_json(body, final)
    else:
        files = parse_html(body, final, response.charset_encoding or "utf-8")
    chosen = choose(files, name, version, tag_list, python_version_of(tag_list, python_version), source)
    checked_url_name(chosen)  # before anything is fetched: the URL's name is what a download writes
    _log.debug("%s: %s from %s (%s)", source, chosen.filename, redact(final), ctype or "no content type")
    return _with_credentials(chosen.url, index_url), chosen.sha256
