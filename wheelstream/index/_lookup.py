"""Asking the index: the page fetched through hishel's cache (revalidated unless the server states a lifetime),
credentials from the index URL passed on as pip does, then ``resolve_requirement``.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple

import httpx
from packaging.tags import Tag

from wheelstream._cache import Cache
from wheelstream._urls import check_http_url, redact, shown_text, with_credentials_of
from wheelstream.errors import (
    HTTPStatusError,
    Interrupted,
    NetworkError,
    UsageError,
    WheelstreamError,
)
from wheelstream.index._body import bounded_body
from wheelstream.index._choose import choose, pin, python_version_of
from wheelstream.index._find_links import Pages, is_page, listed_locally, listed_on_page
from wheelstream.index._pages import ACCEPT, JSON_TYPE, IndexFile, checked_url_name, parse_html, parse_json
from wheelstream.transport import SocketCancel, answered, retry_after_seconds, tls_failure


class Found(NamedTuple):
    """The file an index gives for a pin."""

    url: str
    sha256: str | None
    other_hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, hex) of md5/sha1/sha224/sha384/sha512


_log = logging.getLogger("wheelstream")

_MAX_REDIRECTS = 5
# PyPI's largest project pages are tens of MB; past this a page (or -r file) is a bomb, not a listing.
MAX_PAGE_BYTES = 256 << 20
# Asking for a page again (pip retries its index requests too): these answers, this often, this long apart.
INDEX_RETRIES = 4
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BACKOFF = 0.25  # seconds before the first retry, doubled for each next one
_MAX_RETRY_AFTER = 10.0  # a page is worth waiting for, but not for as long as a wheel's download
_VALIDATORS = ("etag", "last-modified")


class _Origin(httpx.BaseTransport):
    """Below hishel: sends through the caller's client (its auth, proxies, timeouts, transport) to the real
    URL, and decides the freshness of a page that states none. With a validator (``ETag``, ``Last-Modified``)
    it is ``no-cache``: kept, but revalidated every time (a ``304`` costs a header), so a version published a
    minute ago is seen — hishel's own heuristic would keep it for a tenth of its Last-Modified age, days for a
    static mirror's page. Without one it is ``no-store``: fetched whole each time, as pip fetches it. (A
    heuristic ten minutes kept a republished file's old hash: every install of it failed its hash check
    until the page expired.)"""

    def __init__(
        self,
        client: httpx.Client,
        real_url: str,
        auth: httpx.Auth | None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.real_url = real_url
        self.auth = auth
        self.extensions = extensions  # a cancel's trace hook (``transport.SocketCancel.request``)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        outgoing = self.client.build_request(
            request.method, self.real_url, headers=request.headers, extensions=self.extensions
        )
        response = self.client.send(
            outgoing,
            stream=True,
            follow_redirects=False,
            auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code >= 400:
            # An error is never served from the cache: a 503 stated fresh for ten minutes would answer every
            # retry (and the next command's) without asking the server again; pip asks again too.
            response.headers["Cache-Control"] = "no-store"
        elif response.status_code == 200 and not _states_freshness(response.headers):
            # ``Cache-Control: public`` (or ``private``, ``must-revalidate``) states no lifetime either
            given = response.headers.get("cache-control", "")
            added = "no-cache" if any(h in response.headers for h in _VALIDATORS) else "no-store"
            response.headers["Cache-Control"] = f"{given}, {added}" if given.strip() else added
        return response


def _states_freshness(headers: httpx.Headers) -> bool:
    """Whether a response says how long it stays fresh (``Expires``, ``max-age``, ``s-maxage``) or that it may not
    be used unchecked (``no-cache``, ``no-store``); anything else would get hishel's heuristic lifetime."""
    if "expires" in headers:
        return True
    directives = {
        part.split("=", 1)[0].strip().lower() for part in headers.get("cache-control", "").split(",")
    }
    return not directives.isdisjoint({"max-age", "s-maxage", "no-cache", "no-store"})


def _split_credentials(url: str) -> tuple[str, httpx.Auth | None]:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    auth = httpx.BasicAuth(urllib.parse.unquote(user), urllib.parse.unquote(password))
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), auth


def _get(
    url: str,
    accept: str,
    client: httpx.Client,
    cache: Cache,
    *,
    revalidate: bool = False,
    extensions: dict[str, Any] | None = None,
) -> tuple[httpx.Response, bytes, str]:
    """GET ``url`` through hishel (following redirects hop by hop, each cached on its own).

    Returns the final response, its body and the URL it came from (relative links resolve against it).
    ``extensions`` go with each request to the server (a cancel's trace hook).
    """
    import hishel
    from hishel.httpx import CacheTransport

    storage = hishel.SqliteStorage(database_path=cache.root / "http" / "index.db")
    try:
        for _hop in range(_MAX_REDIRECTS + 1):
            plain, auth = _split_credentials(url)
            visible = redact(plain)
            transport = CacheTransport(
                _Origin(client, plain, auth, extensions),
                storage=storage,
                rfc=hishel.CacheOptions(shared=False),
            )
            headers = {"Accept": accept, **({"Cache-Control": "no-cache"} if revalidate else {})}
            request = httpx.Request("GET", visible, headers=headers)
            response = transport.handle_request(request)
            try:
                body = bounded_body(
                    response.iter_raw(), response.headers.get("content-encoding", ""), visible, MAX_PAGE_BYTES
                )
            finally:
                response.close()
            location = response.headers.get("location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                url = with_credentials_of(urllib.parse.urljoin(url, location), url, upgrade=True)
                continue
            return response, body, url
        raise HTTPStatusError(f"too many redirects from {redact(url)}")
    finally:
        storage.close()


class _Asking(NamedTuple):
    """How pages are asked for in one lookup: through which client and cache, how often again, and whether the
    caller has cancelled meanwhile (a library caller's ``cancel``: seen before each attempt and in each wait)."""

    client: httpx.Client
    cache: Cache
    retries: int
    cancelled: Callable[[], bool] | None = None


def _get_page(
    page: str, asking: _Asking, *, revalidate: bool = False, label: str = "index", accept: str = ACCEPT
) -> tuple[httpx.Response, bytes, str]:
    """``_get`` of a project page, JSON preferred, asked again after a connection failure or a ``429``/``5xx``
    (as pip does): up to ``retries`` times, after the server's ``Retry-After`` or a doubling backoff.
    ``label`` says what the page is in messages (an index's, a ``--find-links`` page)."""
    cancelled = asking.cancelled
    # A cancel shuts the socket of a request a silent server holds (else it waited for the read timeout).
    watch = SocketCancel(_Polled(cancelled) if cancelled is not None else None)
    with watch.watching():
        return _asked(page, asking, watch, revalidate, label, accept)


def _asked(
    page: str, asking: _Asking, watch: SocketCancel, revalidate: bool, label: str, accept: str
) -> tuple[httpx.Response, bytes, str]:
    """:func:`_get_page`'s attempts, each request's socket the ``watch``'s to shut."""
    client, cache, retries, cancelled = asking
    attempt = 0
    while True:
        if cancelled is not None and cancelled():
            raise Interrupted("cancelled while asking the index; nothing was downloaded")
        try:
            with watch.request() as extensions:
                response, body, final = _get(
                    page, accept, client, cache, revalidate=revalidate, extensions=extensions
                )
                if (
                    response.status_code == 406 and accept == ACCEPT
                ):  # a server that cannot do JSON, and says so
                    response, body, final = _get(
                        page, "text/html", client, cache, revalidate=revalidate, extensions=extensions
                    )
        except httpx.UnsupportedProtocol as exc:  # redirected to file:// (or worse): no retry can follow it
            raise HTTPStatusError(
                f"{label} {redact(page)} redirected to a URL that is not HTTP(S): {exc}"
            ) from None
        except httpx.HTTPError as exc:
            if cancelled is not None and cancelled():  # the cancel shut it: not the network's failure
                raise Interrupted("cancelled while asking the index; nothing was downloaded") from None
            said = tls_failure(exc)  # a certificate, ours or the server's: the same on every attempt
            if said is not None:
                raise HTTPStatusError(f"{label} {redact(page)}: {said}") from None
            if attempt >= retries:
                raise NetworkError(
                    f"{label} {redact(page)} unreachable: {type(exc).__name__}: {exc}"
                ) from None
            wait, why = _BACKOFF * 2**attempt, f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code not in _RETRY_STATUSES or attempt >= retries:
                return response, body, final
            asked = retry_after_seconds(response.headers)
            wait, why = _BACKOFF * 2**attempt if asked is None else asked, f"answered {response.status_code}"
        attempt += 1
        wait = min(wait, _MAX_RETRY_AFTER)
        _log.warning("%s %s %s; retry %d of %d in %g s", label, redact(page), why, attempt, retries, wait)
        _pause(wait, cancelled)


def read_over_http(url: str, *, cache: Cache, client: httpx.Client, retries: int | None, label: str) -> bytes:
    """The body of a file named by an ``http(s)`` URL that is not a project page — a requirements file
    (``-r https://…``, as pip and uv read one) — asked for as pages are: the URL's credentials as basic auth,
    redirects hop by hop, the same retries, hishel's cache but revalidated every time (the file may have
    changed since, and a ``304`` costs a header). Anything but a ``200`` is an error naming ``label``."""
    check_http_url(url, label=label)
    asking = _Asking(client, cache, INDEX_RETRIES if retries is None else retries)
    response, body, _final = _get_page(
        url, asking, revalidate=True, label=label, accept="text/plain, */*;q=0.5"
    )
    if response.status_code != 200:
        raise HTTPStatusError(f"{label} {redact(url)} {answered(response.status_code)}")
    return body


class _Polled:
    """A caller's ``cancelled()`` as the transport's ``CancelSignal``, which the watcher polls."""

    def __init__(self, cancelled: Callable[[], bool]) -> None:
        self._cancelled = cancelled

    def is_set(self) -> bool:
        return self._cancelled()

    def set(self) -> None:  # the caller's to set, not ours
        raise TypeError("a lookup's cancel is set by its caller")

    def wait(self, timeout: float | None = None) -> bool:
        _pause(float("inf") if timeout is None else timeout, self._cancelled)
        return self._cancelled()


def _pause(seconds: float, cancelled: Callable[[], bool] | None) -> None:
    """Sleep ``seconds``, waking at once (to be seen by the next attempt) when ``cancelled()`` turns true."""
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        if cancelled is not None and cancelled():
            return
        time.sleep(min(left, 0.1))


def resolve_requirement(
    source: str,
    *,
    index_url: str,
    cache: Cache,
    client: httpx.Client,
    tags: Sequence[object],
    python_version: tuple[int, int] | str | None = None,
    retries: int | None = None,
    allowed: Collection[str] = (),
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    no_index: bool = False,
    cancelled: Callable[[], bool] | None = None,
    pages: Pages | None = None,
) -> Found:
    """``NAME==VERSION`` → the wheel's URL, the sha256 hex the index lists or None, and the other hashes it
    lists (checked on the finished file).

    Unless ``no_index``, ``extra_index_urls`` are asked, in order, then ``index_url``; the project is taken
    from the first index that has it, and only from there (uv's first-index rule: pip merges every index's
    files, so a public index could shadow a private one's project with a higher local version that ``==``
    still matches). The wheels ``find_links`` (directories, pages) list are candidates beside that index's
    files, as pip has them; of equals, the one on hand.

    ``tags`` are the target interpreter's supported tags, most preferred first. ``python_version`` is the
    target's version for ``requires-python`` (``"X.Y.Z"``, or ``(major, minor)``); by default ``X.Y`` is read
    off ``tags``. ``retries``: how often (``INDEX_RETRIES`` when None) a page is asked for again after a
    connection failure or a ``429``/``5xx`` (``_get_page``). ``allowed``: the pins the caller allows
    (``_digests``); a file the page lists with one of them is preferred (``choose``). ``pages``: the
    ``--find-links`` pages a call's earlier lookups parsed, to be parsed once for all of its pins (each lookup
    parses its own when None).
    """
    name, version = pin(source)
    indexes = [] if no_index else list(dict.fromkeys((*extra_index_urls, index_url)))
    try:
        for index in indexes:
            check_http_url(index, label="index URL")
    except UsageError as exc:
        exc.with_wheel(source)
        raise
    tag_list = [t for t in tags if isinstance(t, Tag)]
    target_python = python_version_of(tag_list, python_version)

    asking = _Asking(client, cache, INDEX_RETRIES if retries is None else retries, cancelled)
    # (file, the location whose credentials it takes); ``pages``: what the call's earlier pins parsed
    on_hand = _on_hand(find_links, asking, {} if pages is None else pages)
    credited = {id(file): location for file, location in on_hand}
    local = [file for file, _location in on_hand]

    def pick(files: list[IndexFile], where: str) -> IndexFile:
        # The index's files, then those on hand: of equals, ``choose`` takes the last, so an equal wheel on
        # hand is read in place rather than downloaded again.
        return choose(
            [*files, *local], name, version, tag_list, target_python, source, allowed=allowed, where=where
        )

    try:
        listing = _first_listing(indexes, name, asking)
        links = ", ".join(shown_text(f) for f in find_links)
        if listing is None:
            if not local and indexes:
                where = ", ".join(redact(index) for index in indexes)
                raise UsageError(
                    f"no project {name!r} on the index{'es' if len(indexes) > 1 else ''} {where}"
                )
            why = "--no-index: no index asked" if not indexes else "no index lists the project"
            chosen = pick([], f"in the --find-links locations ({links or 'none given'}; {why})")
        else:
            first, page, (files, from_cache) = listing
            where = f"on the index {redact(first)}" + (
                f" or in the --find-links locations ({links})" if local else ""
            )
            if len(indexes) > 1:
                where += f", the first index listing {name!r} and the only one asked for it"
            try:
                chosen = pick(files, where)
            except UsageError:
                if not from_cache:
                    raise
                # A page kept fresh by its stated lifetime (PyPI's ten minutes) may predate the version asked
                # for, published a minute ago: asked again, revalidated, before saying it is not there (pip
                # always asks).
                files, _ = _project_files(page, asking, revalidate=True) or ([], False)
                chosen = pick(files, where)
            credited.setdefault(id(chosen), first)
    except WheelstreamError as exc:
        exc.with_wheel(source)
        raise
    checked_url_name(chosen)  # before anything is fetched: the URL's name is what a download writes
    location = credited.get(id(chosen))  # None: a directory's wheel
    _log.debug("%s: %s from %s", source, chosen.filename, redact(location or chosen.url))
    url = chosen.url if location is None else with_credentials_of(chosen.url, location)
    return Found(url, chosen.sha256, chosen.other_hashes)


def _first_listing(
    indexes: Sequence[str], name: str, asking: _Asking
) -> tuple[str, str, tuple[list[IndexFile], bool]] | None:
    """The first index whose page lists the project, that page, and its files (and whether the page came from
    the cache unasked); None when none does. Only ``404``/``410`` moves on: any other failure ends the lookup,
    or a later index could serve a project the first one holds but failed to answer for."""
    for index in indexes:
        page = index.rstrip("/") + "/" + name + "/"
        listed = _project_files(page, asking, revalidate=False)
        if listed is not None:
            return index, page, listed
    return None


def _on_hand(find_links: Sequence[str], asking: _Asking, pages: Pages) -> list[tuple[IndexFile, str]]:
    """Every wheel the ``--find-links`` locations list, in their order, each with its location. A location
    that cannot be read — a directory not there, a page that fails — is a warning and skipped, as pip skips
    it: the indexes (or, with ``--no-index``, the error naming every location) still follow."""
    listed: list[tuple[IndexFile, str]] = []
    for location in find_links:
        try:
            if is_page(location):
                response, body, final = _get_page(location, asking, label="--find-links page")
                answer = (response.status_code, body, final, response.charset_encoding or "utf-8")
                listed += [(file, location) for file in listed_on_page(location, answer, pages)]
            else:
                listed += [(file, location) for file in listed_locally(location, pages)]
        except Interrupted:
            raise
        except WheelstreamError as exc:
            _log.warning("--find-links %s is skipped: %s", shown_text(location), exc.cause)
    return listed


def _project_files(page: str, asking: _Asking, *, revalidate: bool) -> tuple[list[IndexFile], bool] | None:
    """The files a project page lists, and whether the page came from the cache without asking the server;
    None when the index has no such project (``404``, ``410``)."""
    response, body, final = _get_page(page, asking, revalidate=revalidate)
    status = response.status_code
    if status in (404, 410):
        return None
    if status != 200:
        raise HTTPStatusError(f"index {redact(page)} {answered(status)}")
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    api = re.fullmatch(r"application/vnd\.pypi\.simple\.v(\d+)\+(?:json|html)", ctype)
    if api is not None and api.group(1) != "1":  # PEP 629: an unknown major version is a hard failure
        raise HTTPStatusError(f"index page {redact(final)} is {ctype}; this installer reads API version 1")
    if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json":
        files = parse_json(body, final)
    else:
        files = parse_html(body, final, response.charset_encoding or "utf-8")
    caching = response.extensions.get("caching")  # hishel's CacheStatus, a TypedDict
    from_cache = (
        isinstance(caching, dict) and bool(caching.get("from_cache")) and not caching.get("revalidated")
    )
    return files, from_cache
