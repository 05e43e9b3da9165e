"""Sources: what the caller gave (a URL, a ``file://`` URL, a path, ``NAME==VERSION``) turned into what to fetch.

A URL's file name is checked here, before anything is fetched (``_urls.wheel_filename_from_url``); an index's
entries are checked where they are read (``_index``).
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from wheelstream._cache import Cache, default_cache_dir
from wheelstream._urls import (
    cache_key,
    checked_wheel_filename,
    redact,
    shown_url,
    split_hash_fragment,
    wheel_filename_from_url,
)
from wheelstream.errors import UsageError, shown

__all__ = ["Resolved", "direct_url", "filename_of", "forget_refused", "resolve"]


class Resolved(NamedTuple):
    source: str
    url: str | None  # http(s) URL to fetch
    path: Path | None  # local file
    sha256: str | None


def resolve(
    source: str,
    hashes: Mapping[str, str],
    index_url: str,
    cache: Cache,
    client: httpx.Client,
    tags: Sequence[object],
) -> Resolved:
    """What to fetch for ``source``. A URL's file name is checked here (``wheel_filename_from_url``), so a
    hostile one fails before anything is downloaded or written; ``resolve_requirement`` checks an index's."""
    expected = hashes.get(source)
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError as exc:  # an unclosed IPv6 bracket, ...
        raise _not_a_url(source, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        _check_http_url(source, parts)
        wheel_filename_from_url(source)
        return Resolved(redact(source), source, None, expected or split_hash_fragment(source)[1])
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(split_hash_fragment(source)[0]).path))
        return Resolved(source, None, path, expected or split_hash_fragment(source)[1])
    if os.path.exists(source) or source.endswith(".whl"):
        return Resolved(source, None, Path(source), expected)
    if "==" in source:
        from wheelstream.index import resolve_requirement

        url, sha = resolve_requirement(source, index_url=index_url, cache=cache, client=client, tags=tags)
        return Resolved(source, url, None, expected or sha)
    raise UsageError(f"not a wheel URL, path or NAME==VERSION: {source}")


def _check_http_url(url: str, parts: urllib.parse.SplitResult) -> None:
    """What the download would trip over later, refused now as the caller's mistake (exit 2, one line): a URL
    httpx cannot parse, a port out of range, no host."""
    try:
        parsed = httpx.URL(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except (httpx.InvalidURL, ValueError) as exc:
        raise _not_a_url(url, str(exc)) from None
    if not parsed.host:
        raise _not_a_url(url, "no host")


def _not_a_url(source: str, why: str) -> UsageError:
    try:
        named = shown_url(source)
    except ValueError:  # too broken to redact: at least no user:password@ reaches the message
        named = shown(re.sub(r"//[^/]*@", "//", source), 200)
    return UsageError(f"not a valid URL: {named} ({shown(why, 200)})")


def forget_refused(item: Resolved, sha256: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """The cache forgets the wheel fetched for ``item`` that the install refused (``Cache.forget_refused``); a
    local file's source has no pin to forget."""
    if item.url is not None:
        cache = Cache(Path(cache_dir) if cache_dir is not None else default_cache_dir())
        cache.forget_refused(cache_key(item.url), sha256)


def filename_of(item: Resolved) -> str:
    """The wheel's file name: a URL's checked one, or a local file's (checked the same way)."""
    if item.url:
        return wheel_filename_from_url(item.url)
    return checked_wheel_filename(item.path.name, source=item.source) if item.path else ""


def direct_url(item: Resolved) -> str | None:
    """PEP 610 is written for URL and path installs, not for index installs (pip does the same)."""
    if item.url is not None and "==" not in item.source:
        return redact(split_hash_fragment(item.url)[0])  # DESIGN §2: no token reaches direct_url.json
    if item.path is not None:
        return item.path.resolve().as_uri()
    return None
