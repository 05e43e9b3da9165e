"""``NAME==VERSION`` → one wheel URL and its sha256, through a simple repository (PEP 503 / PEP 691).

There is **no dependency resolution** here, by design: a pin names one release, and we pick one file of it.

How a file is chosen (pip's ``CandidateEvaluator`` rules, restricted to a single pinned version):

1. Fetch ``<index>/<normalized name>/`` asking for PEP 691 JSON first
   (``Accept: application/vnd.pypi.simple.v1+json, text/html;q=0.1``); whatever comes back is parsed by its
   ``Content-Type`` — JSON (PEP 691), or HTML anchors (PEP 503, with ``data-requires-python`` and
   ``data-yanked``). A server that refuses JSON with 406 is asked again for HTML only.
2. Keep wheels whose file name says this project and exactly this version (``packaging`` parses both, so
   ``1.0`` and ``1.0.0`` are the same version, as for pip).
3. Drop files whose ``requires-python`` excludes the target interpreter's ``X.Y``.
4. PEP 592: a yanked file is only eligible because the requirement pins ``==``/``===`` exactly (the only
   kind we accept); non-yanked files still win, and taking a yanked one warns with the yank reason.
5. Of the rest, the best tag wins: the one whose best tag comes first in the interpreter's priority list
   (``packaging.tags.sys_tags()`` order — what pip ranks by too).

Caching (hishel 2.x, RFC 9111 mode, private cache, sqlite in ``<cache>/http/``): PyPI sends
``Cache-Control: max-age=600`` and an ``ETag``, so a rerun within ten minutes sends nothing and a later one
sends ``If-None-Match`` and gets ``304``. A server that sends no freshness information at all (the test bed,
many simple ``python -m http.server``-style mirrors) gets RFC 9111 §4.2.2 *heuristic* freshness: we add
``max-age=600`` to such a response before hishel sees it, so those reruns also hit the cache instead of
refetching every time. Explicit directives (``no-store``, ``no-cache``, ``max-age=0``) are always obeyed.

Secrets: hishel only ever sees the redacted URL (it stores the request with the entry); credentials from the
index URL's userinfo go out as HTTP basic auth and are passed on to file URLs on the same host, as pip does.
"""

from __future__ import annotations

import email.utils
import html.parser
import json
import logging
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelstream._cache import Cache
from wheelstream._urls import checked_wheel_filename, redact, shown_url, wheel_filename_from_url
from wheelstream.errors import (
    HTTPStatusError,
    IncompatibleWheel,
    InvalidWheelFilename,
    NetworkError,
    UsageError,
)

__all__ = [
    "ACCEPT",
    "HEURISTIC_MAX_AGE",
    "IndexFile",
    "checked_url_name",
    "parse_html",
    "parse_json",
    "resolve_requirement",
]

_log = logging.getLogger("wheelstream")

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HEURISTIC_MAX_AGE = 600  # PyPI's own max-age for simple pages
_MAX_REDIRECTS = 5
_FRESHNESS_HEADERS = ("cache-control", "expires")


@dataclass(frozen=True)
class IndexFile:
    """One file as a project page lists it (absolute URL, no fragment).

    ``filename`` is what the page says the file is called, and only ever used to *choose* a file: the name a
    wheel is written under is always its URL's, checked (``_urls.wheel_filename_from_url``), and
    ``resolve_requirement`` refuses a chosen file whose two names disagree or are not safe.
    """

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: str | None  # None: not yanked; "" or a reason: yanked


# -- page parsing ---------------------------------------------------------------------------------------


def _yank(value: object) -> str | None:
    """PEP 691: ``yanked`` is false, true, or a reason string (truthy means yanked)."""
    if value is None or value is False:
        return None
    return value if isinstance(value, str) else ""


def parse_json(body: bytes, page_url: str) -> list[IndexFile]:
    """A PEP 691 project page. URLs may be relative to the page."""
    try:
        doc = json.loads(body)
        files = doc["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPStatusError(f"index page {redact(page_url)} is not PEP 691 JSON: {exc}") from None
    out = []
    for item in files:
        if not isinstance(item, dict) or "filename" not in item or "url" not in item:
            continue
        hashes = item.get("hashes") or {}
        base, _, fragment = urllib.parse.urljoin(page_url, str(item["url"])).partition("#")
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        if sha is None and fragment.startswith("sha256="):
            sha = fragment[len("sha256=") :]
        rp = item.get("requires-python")
        out.append(
            IndexFile(
                str(item["filename"]),
                base,
                str(sha).lower() if sha else None,
                str(rp) if rp else None,
                _yank(item.get("yanked")),
            )
        )
    return out


class _Anchors(html.parser.HTMLParser):
    """Collects ``<a>`` attributes and honours ``<base href>`` (pip does too)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def parse_html(body: bytes, page_url: str, encoding: str = "utf-8") -> list[IndexFile]:
    """A PEP 503 project page: one anchor per file, ``#sha256=`` fragments, ``data-*`` attributes."""
    parser = _Anchors()
    parser.feed(body.decode(encoding, errors="replace"))
    parser.close()
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    out = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        filename = _url_name(url) or text
        sha = fragment[len("sha256=") :].lower() if fragment.startswith("sha256=") else None
        yanked = attrs.get("data-yanked")
        out.append(
            IndexFile(
                filename,
                url,
                sha,
                attrs.get("data-requires-python") or None,
                None if "data-yanked" not in attrs else (yanked or ""),
            )
        )
    return out


def _url_name(url: str) -> str | None:
    """The URL's file name, as pip takes a link's (PEP 503: the anchor text must be the same), if it is a
    safe wheel name; else None and the anchor text stands in, only to choose by: a file chosen that way
    fails in ``resolve_requirement`` with its URL named, instead of a confusing "no such version"."""
    try:
        return wheel_filename_from_url(url)
    except InvalidWheelFilename:
        return None


def _declared_ok(f: IndexFile) -> bool:
    """Whether the page's name for ``f`` is a safe wheel file name (one that is not is never chosen)."""
    try:
        checked_wheel_filename(f.filename, source=f.url, label="the index's file name")
    except InvalidWheelFilename as exc:
        _log.debug("skipping an index entry: %s", exc)
        return False
    return True


def checked_url_name(chosen: IndexFile) -> str:
    """The name ``chosen`` will be written under: its URL's (what pip uses), checked, and describing the same
    wheel as the page's ``filename`` that chose it (an index cannot pass off one wheel's URL as another's)."""
    url_name = wheel_filename_from_url(chosen.url)
    if parse_wheel_filename(url_name) != parse_wheel_filename(chosen.filename):
        raise InvalidWheelFilename(
            f"the index lists this file as {chosen.filename!r} but its URL names {url_name!r}",
            wheel=shown_url(chosen.url),
        )
    return url_name


# -- choosing a file ------------------------------------------------------------------------------------


def _pin(source: str) -> tuple[str, Version]:
    """``NAME==VERSION`` (or ``===``, extras allowed and ignored) → (normalized name, version)."""
    try:
        req = Requirement(source)
    except InvalidRequirement as exc:
        raise UsageError(f"not a NAME==VERSION requirement: {exc}", wheel=source) from None
    specs = list(req.specifier)
    if (
        req.marker is not None
        or req.url
        or len(specs) != 1
        or specs[0].operator not in ("==", "===")
        or specs[0].version.endswith(".*")
    ):
        raise UsageError(
            "only exact pins (NAME==VERSION) are supported — wheelstream does no dependency resolution",
            wheel=source,
        )
    try:
        return canonicalize_name(req.name), Version(specs[0].version)
    except InvalidVersion as exc:
        raise UsageError(f"invalid version: {exc}", wheel=source) from None


def _python_version(tags: Sequence[Tag], explicit: tuple[int, int] | None) -> str | None:
    """The target's ``X.Y``: given, or read off its first ``pyXY`` tag (packaging always lists one)."""
    if explicit is not None:
        return f"{explicit[0]}.{explicit[1]}"
    for tag in tags:
        match = re.fullmatch(r"py3(\d+)", tag.interpreter)
        if match:
            return f"3.{match.group(1)}"
    return None


def _python_ok(requires: str | None, python: str | None) -> bool:
    if not requires or python is None:
        return True
    try:
        return SpecifierSet(requires).contains(python, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores an unparseable requires-python too


def choose(
    files: Iterable[IndexFile],
    name: str,
    version: Version,
    tags: Sequence[Tag],
    python: str | None,
    source: str,
) -> IndexFile:
    """The best wheel for ``tags`` among ``files`` (see the module docstring for the rules)."""
    rank = {tag: i for i, tag in reversed(list(enumerate(tags)))}
    candidates: list[tuple[bool, int, IndexFile]] = []
    versions: set[str] = set()
    of_version: list[IndexFile] = []
    for f in files:
        if not f.filename.endswith(".whl") or not _declared_ok(f):
            continue
        try:
            wname, wversion, _build, wtags = parse_wheel_filename(f.filename)
        except (
            InvalidVersion
        ):  # pragma: no cover - packaging reports it as an invalid file name, checked above
            continue
        if wname != name:
            continue
        versions.add(str(wversion))
        if wversion != version:
            continue
        of_version.append(f)
        if not _python_ok(f.requires_python, python):
            continue
        best = min((rank[t] for t in wtags if t in rank), default=None)
        if best is not None:
            candidates.append((f.yanked is not None, best, f))
    if not candidates:
        if not of_version:
            known = ", ".join(sorted(versions, key=Version)) or "none"
            raise UsageError(
                f"no wheel for version {version} on the index (wheel versions there: {known})", wheel=source
            )
        listed = ", ".join(f.filename for f in of_version)
        raise IncompatibleWheel(
            f"no wheel of {version} fits the target interpreter (Python {python}, tags "
            f"{tags[0] if tags else '?'}, …) or its requires-python: {listed}",
            wheel=source,
        )
    yanked, _rank, chosen = min(candidates, key=lambda c: (c[0], c[1]))
    if yanked:
        reason = f" (reason: {chosen.yanked})" if chosen.yanked else ""
        _log.warning(
            "%s: %s is yanked%s; installing it because the version is pinned exactly",
            source,
            chosen.filename,
            reason,
        )
    return chosen


# -- fetching, cached ------------------------------------------------------------------------------------


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
    name, version = _pin(source)
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
    chosen = choose(files, name, version, tag_list, _python_version(tag_list, python_version), source)
    checked_url_name(chosen)  # before anything is fetched: the URL's name is what a download writes
    _log.debug("%s: %s from %s (%s)", source, chosen.filename, redact(final), ctype or "no content type")
    return _with_credentials(chosen.url, index_url), chosen.sha256
