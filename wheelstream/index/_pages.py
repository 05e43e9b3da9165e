"""What a simple repository page lists: PEP 691 JSON and PEP 503 HTML parsed into ``IndexFile`` rows, and the
file name each row may be saved under (checked like every name from the network).
"""

from __future__ import annotations

import codecs
import html.parser
import json
import logging
import urllib.parse
from dataclasses import dataclass

from packaging.utils import (
    parse_wheel_filename,
)

from wheelstream._digests import HEX_DIGITS
from wheelstream._urls import (
    checked_wheel_filename,
    fragment_pairs,
    redact,
    shown_url,
    wheel_filename_from_url,
)
from wheelstream.errors import (
    HTTPStatusError,
    InvalidWheelFilename,
)

# pip's: a server that negotiates strictly and offers only PEP 691's HTML type is reachable too
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1, text/html;q=0.01"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


_log = logging.getLogger("wheelstream")


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
    # The other hashes the page lists (md5, sha1, sha224, sha384, sha512), checked on the finished file: an index
    # that lists no sha256 still pins its files, as pip and uv hold them to it.
    other_hashes: tuple[tuple[str, str], ...] = ()


# -- page parsing ---------------------------------------------------------------------------------------


def _yank(value: object) -> str | None:
    """PEP 691: ``yanked`` is false, true, or a reason string. As pip reads it, a falsy value (``""``, ``0``,
    ``null``) is not yanked: a yanked file is only taken when nothing else fits, so reading one as yanked
    changes which wheel of the version is installed."""
    if not value:
        return None
    return value if isinstance(value, str) else ""


def parse_json(body: bytes, page_url: str) -> list[IndexFile]:
    """A PEP 691 project page. URLs may be relative to the page."""
    try:
        doc = json.loads(body)
        files = doc["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPStatusError(f"index page {redact(page_url)} is not PEP 691 JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise HTTPStatusError(
            f"index page {redact(page_url)} is not PEP 691 JSON: it nests too deeply"
        ) from None
    if not isinstance(files, list):
        raise HTTPStatusError(
            f"index page {redact(page_url)} is not PEP 691 JSON: 'files' is a {type(files).__name__}, not a list"
        )
    meta = doc.get("meta") if isinstance(doc, dict) else None
    api = meta.get("api-version") if isinstance(meta, dict) else None
    if isinstance(api, (int, float)) and not isinstance(api, bool):
        api = str(api)  # a number where PEP 691 says a string: read as one
    if isinstance(api, str) and api.split(".")[0] != "1":  # PEP 629: another major version is a hard failure
        raise HTTPStatusError(f"index page {redact(page_url)} is API version {api}; this installer reads 1.x")
    out = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            continue  # a row no reader could use: skipped, like a link that is not a wheel
        if not isinstance(item.get("url"), str):
            continue
        hashes = item.get("hashes") or {}
        base, _, fragment = _joined(page_url, item["url"]).partition("#")
        if not _fetchable(base):
            continue
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        if not isinstance(sha, str):
            sha = _fragment_sha256(fragment)
        listed = (
            {str(k).lower(): v for k, v in hashes.items() if isinstance(v, str)}
            if isinstance(hashes, dict)
            else {}
        )
        rp = item.get("requires-python")
        out.append(
            IndexFile(
                item["filename"],
                base,
                sha.lower() if sha else None,
                rp if isinstance(rp, str) and rp else None,
                _yank(item.get("yanked")),
                _other_hashes(listed or dict(fragment_pairs(fragment))),
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
            self._close_anchor()  # an <a> never closed is a link all the same (pip's parser keeps it)
            self._open, self._text = dict(attrs), []

    def close(self) -> None:
        # Not ``HTMLParser.close``: it parses an unfinished tail again and again (a 45 KB page of unclosed
        # ``<a `` took 44 s of CPU), and what it would still find is an unfinished tag, no link. pip does not
        # call it either.
        self._close_anchor()

    def _close_anchor(self) -> None:
        if self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_anchor()


def parse_html(
    body: bytes, page_url: str, encoding: str = "utf-8", *, on_disk: bool = False
) -> list[IndexFile]:
    """A PEP 503 project page: one anchor per file, ``#sha256=`` fragments, ``data-*`` attributes. A page read
    from this machine's disk (``--find-links wheels.html``, ``on_disk``) may also link to its files."""
    parser = _Anchors()
    try:
        text = body.decode(_charset(encoding), errors="replace")
    except (UnicodeError, ValueError):  # a codec that refuses some bytes even in "replace" mode
        text = body.decode("utf-8", errors="replace")
    parser.feed(text)
    parser.close()
    base = (
        (_joined(page_url, parser.base) or page_url) if parser.base else page_url
    )  # a broken <base>: ignored
    out = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = _joined(base, href).partition("#")
        if not _fetchable(url, on_disk=on_disk):
            continue
        filename = _url_name(url) or text
        sha = _fragment_sha256(fragment)
        # ``data-yanked="reason"`` or ``=""``: yanked; a bare ``data-yanked`` (None) is not, as pip reads it
        yanked = attrs.get("data-yanked")
        out.append(
            IndexFile(
                filename,
                url,
                sha,
                attrs.get("data-requires-python") or None,
                yanked,
                _other_hashes(dict(fragment_pairs(fragment))),
            )
        )
    return out


_NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "raw-unicode-escape", "unicode-escape"})


def _charset(declared: str) -> str:
    """The codec to read a page in: the one its Content-Type names when that is a character set Python has, else
    UTF-8 (what PEP 503 pages are): ``charset=foobar`` is unknown, and ``idna``, ``punycode`` or ``base64``
    are codecs but not character sets."""
    try:
        info = codecs.lookup(declared)
    except LookupError:
        return "utf-8"
    return "utf-8" if not info._is_text_encoding or info.name in _NOT_CHARSETS else info.name


def _url_name(url: str) -> str | None:
    """The URL's file name, as pip takes a link's (PEP 503: the anchor text must be the same), if it is a
    safe wheel name; else None and the anchor text stands in, only to choose by: a file chosen that way
    fails in ``resolve_requirement`` with its URL named, instead of a confusing "no such version"."""
    try:
        return wheel_filename_from_url(url)
    except InvalidWheelFilename:
        return None


def declared_ok(f: IndexFile) -> bool:
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


def _joined(base: str, link: str) -> str:
    """``link`` made absolute against ``base``; ``""`` (never fetchable) for one too broken to join."""
    try:
        return urllib.parse.urljoin(base, link)
    except ValueError:  # an unclosed IPv6 bracket, ...
        return ""


def _fetchable(url: str, *, on_disk: bool = False) -> bool:
    """An index's file is fetched over HTTP: a ``file://`` (or any other) link on a page from a server is not
    followed — a server has no business naming this machine's files, and no retry could fetch one. A page on
    this machine's disk may name them: whoever wrote it could read them anyway."""
    try:
        return urllib.parse.urlsplit(url).scheme.lower() in (
            ("http", "https", "file") if on_disk else ("http", "https")
        )
    except ValueError:  # an unclosed IPv6 bracket, ...
        return False


_OTHER_HASHES = tuple(name for name in HEX_DIGITS if name != "sha256")  # md5, sha1, sha224, sha384, sha512


def _other_hashes(listed: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The non-sha256 hashes among a file's listed ones (a JSON ``hashes`` table or a link's fragment pairs)."""
    return tuple((name, listed[name].lower()) for name in _OTHER_HASHES if listed.get(name))


def _fragment_sha256(fragment: str) -> str | None:
    """The ``sha256=`` among a link's fragment pairs (``#egg=x&sha256=…`` too), lower-cased; a malformed one is
    kept as it is, to fail the download's hash check by name (an index's link is not the caller's mistake)."""
    return next(
        (value.lower() for name, value in fragment_pairs(fragment) if name == "sha256" and value), None
    )


# -- choosing a file ------------------------------------------------------------------------------------
