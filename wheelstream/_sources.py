"""Sources: what the caller gave (a URL, a ``file://`` URL, a path, ``NAME==VERSION``) turned into what to fetch.

A URL's file name is checked here, before anything is fetched (``_urls.wheel_filename_from_url``); an index's
entries are checked where they are read (``_index``).
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

from wheelstream._cache import Cache, default_cache_dir
from wheelstream._digests import matching, normal_pin, other_algorithms
from wheelstream._urls import (
    cache_key,
    check_http_url,
    checked_wheel_filename,
    direct_reference,
    not_a_url,
    recorded_url,
    redact,
    shown_text,
    shown_url,
    split_hash_fragment,
    wheel_filename_from_url,
)
from wheelstream.errors import HashMismatch, UsageError

if TYPE_CHECKING:  # an annotation only: packaging.specifiers is a pin's import, not every install's
    from packaging.specifiers import Specifier

__all__ = [
    "LockedFile",
    "Resolved",
    "allowed_hashes",
    "check_allowed",
    "check_other_hashes",
    "direct_url",
    "filename_of",
    "forget_refused",
    "narrow",
    "resolve",
]


class LockedFile(NamedTuple):
    """What a lock file (PEP 751) says of one of its wheels besides its hashes, which the download and the
    install hold it to (keyed by the source as given: the lock's URL or path)."""

    filename: str  # the lock's ``name``, or its URL's or path's last segment
    size: int | None  # the bytes the file must have: a server announcing another length is refused
    index_file: (
        bool  # one of the lock's ``wheels`` (an index's file, no ``direct_url.json``), not an ``archive``
    )


class Resolved(NamedTuple):
    source: str
    url: str | None  # http(s) URL to fetch
    path: Path | None  # local file
    sha256: str | None  # checked by the download itself
    # The pins the caller allows (pip's repeated --hash; ``_digests``: a sha256's hex, ``sha512:…``) where none
    # could be picked before downloading: the finished wheel must be one of them (``check_allowed``).
    allowed: frozenset[str] = frozenset()
    # The bytes the file must have (a lock's ``size``): a server announcing another length is refused.
    size: int | None = None
    # (algorithm, hex) of the md5/sha1/sha224/sha384/sha512 an index lists or a URL's fragment names: checked on
    # the finished file (``check_other_hashes``).
    other_hashes: tuple[tuple[str, str], ...] = ()
    # ``NAME==VERSION``, the file an index chose: a wheel named outright of that version is taken instead.
    pinned: bool = False
    # ``url`` with the credentials another of the call's URLs lends it (``_urls.credited``), when it does: what
    # is fetched. ``url`` stays as given: a lock's entries are looked up by it.
    fetch_url: str | None = None
    # A check reads the finished wheel file (``check_allowed``'s other pins, ``download -d``, a lock's size or
    # other hashes that its sha256 does not settle): a cached tree without its file will not do (``fetch_wheel``).
    needs_file: bool = False
    # The wheel's file name where ``url`` or ``path`` does not end in it (a lock's ``name``, PEP 751: a download
    # endpoint), checked; None: the URL's or path's own.
    filename: str | None = None

    @property
    def fetched(self) -> str | None:
        """The URL a download asks for."""
        return self.fetch_url or self.url


def allowed_hashes(value: str | Collection[str], source: str) -> frozenset[str]:
    """What ``hashes`` gives for a source — one pin or several: a sha256's 64 hex digits, or ``sha256:HEX``,
    ``sha384:HEX``, ``sha512:HEX`` as pip's ``--hash`` takes them — as a set of pins (``_digests``); an empty
    collection is a mistake (it would turn the check off), not a wish."""
    try:
        given = [value] if isinstance(value, str) else list(value)
    except TypeError:  # None, a number: not one hash nor several
        raise UsageError(
            f"hashes: {value!r} is neither a hash nor a collection of them", wheel=shown_text(source)
        ) from None
    if not given:
        raise UsageError("hashes: the allowed hashes may not be empty", wheel=shown_text(source))
    allowed = set()
    for each in given:
        # A digest of the wrong length could match no file, and would be found out only after the download
        # (which it then discarded).
        normal = normal_pin(str(each), bare_sha256=True)
        if normal is None:
            raise UsageError(
                f"hashes: {each!r} is not a sha256 (64 hex digits, or sha256:HEX), sha384:HEX or sha512:HEX",
                wheel=shown_text(source),
            )
        allowed.add(normal)
    return frozenset(allowed)


class Indexes(NamedTuple):
    """Where ``NAME==VERSION`` is looked up: ``resolve_requirement``'s keywords, carried as one."""

    index_url: str
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    # The --find-links pages parsed so far in this call (``index._find_links.Pages``): one dict per call, made
    # by ``for_one_call``, so that a library host keeps none of them after it.
    pages: dict[Any, Any] | None = None

    def for_one_call(self) -> Indexes:
        return self._replace(pages={})


def resolve(
    source: str,
    hashes: Mapping[str, frozenset[str]],
    indexes: Indexes,
    cache: Cache,
    client: httpx.Client,
    tags: Sequence[object],
    retries: int | None = None,
    python_version: str | None = None,
    cancelled: Callable[[], bool] | None = None,
    filename: str | None = None,
) -> Resolved:
    """What to fetch for ``source``. A URL's file name is checked here (``wheel_filename_from_url``), so a
    hostile one fails before anything is downloaded or written; ``resolve_requirement`` checks an index's (and
    asks for its page again ``retries`` times, its own default when None). ``filename``: the wheel's file name
    where a URL or path source does not end in it (a lock's ``name``), checked the same way.

    ``hashes``: the pins the caller allows for a source (``_digests``). One sha256 is what the download checks.
    Of several, the sha256 the URL's ``#sha256=`` or the index names is, when it is among them (an index file
    listed with an allowed hash is preferred, as pip does); one named that cannot be any of them fails here,
    before any download; else the finished wheel is checked against them all (``check_allowed``)."""
    allowed = hashes.get(source, frozenset())
    url = direct_reference(source)  # ``NAME @ URL``: the wheel at URL, checked to be NAME's
    if url is not None:
        found = resolve(url, {url: allowed}, indexes, cache, client, tags, retries, python_version, cancelled)
        return found._replace(source=shown_text(source))
    given = (
        None
        if filename is None
        else checked_wheel_filename(filename, source=source, label="the wheel's file name")
    )
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError as exc:  # an unclosed IPv6 bracket, ...
        raise not_a_url(source, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        check_http_url(source)
        # (its other hashes, ``#sha512=``: checked by ``fetch_wheel``, which reads the fragment too)
        wheel = given or wheel_filename_from_url(source)
        named = split_hash_fragment(source, wheel=wheel)[1]
        return _pinned(redact(source), source, None, named, allowed, "URL's #sha256=", given)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):  # pip: "non-local file URIs are not supported"
            raise UsageError(
                f"a file:// URL of another host ({parts.netloc}) is not a local file: {shown_url(source)}"
            )
        path = Path(urllib.request.url2pathname(parts.path))  # the fragment is not part of it
        _base, named, others = split_hash_fragment(source, wheel=given or path.name)
        found = _pinned(source, None, path, named, allowed, "URL's #sha256=", given)
        return found._replace(other_hashes=others)
    if len(scheme) > 1 and source[len(scheme) : len(scheme) + 3] == "://" and not os.path.exists(source):
        # ``ftp://x/a.whl`` read as a path said "no such file: ftp:/x/a.whl" (the ``//`` gone)
        raise UsageError(
            f"unsupported URL scheme {scheme!r} (http, https and file are fetched): {shown_url(source)}"
        )
    if os.path.exists(source) or source.endswith(".whl") or given is not None:
        # (a path named by its caller is one whatever it ends in: missing, ``check_local_file`` says so)
        return _pinned(source, None, Path(source), None, allowed, "", given)
    if "==" in source:
        from wheelstream.index import resolve_requirement

        url, sha, other = resolve_requirement(
            source,
            **indexes._asdict(),
            cancelled=cancelled,
            cache=cache,
            client=client,
            tags=tags,
            allowed=allowed,
            retries=retries,
            python_version=python_version,
        )
        if url.startswith("file:"):  # a wheel on hand (--find-links): read in place, hashed as it is read
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
            found = _pinned(source, None, path, sha, allowed, "--find-links page's")
            return found._replace(other_hashes=other, pinned=True)
        return _pinned(source, url, None, sha, allowed, "index's")._replace(other_hashes=other, pinned=True)
    raise UsageError(f"not a wheel URL, path or NAME==VERSION: {shown_text(source)}")


def check_local_file(item: Resolved) -> None:
    """A path source must be a regular file (a directory or a device, ``/dev/zero``, is no wheel either): a
    ``UsageError`` naming it otherwise."""
    if item.path is not None and not item.path.is_file():
        raise UsageError(f"{'not a regular file' if item.path.exists() else 'no such file'}: {item.path}")


def named_wheel(source: str) -> str | None:
    """The wheel file name a path or URL source names outright (nothing is read), or None for a pin or what
    :func:`resolve` would refuse."""
    try:
        source = direct_reference(source) or source  # ``NAME @ URL`` names the URL's wheel
    except UsageError:
        return None
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https", "file"):
        name = urllib.parse.unquote(parts.path.rpartition("/")[2])
    elif len(scheme) > 1 and "://" in source:
        return None
    elif os.path.exists(source) or source.endswith(".whl"):
        name = Path(source).name
    else:
        return None
    return name if name.endswith(".whl") else None


def pin_of(source: str) -> tuple[str, Specifier] | None:
    """``(normalized name, specifier)`` of a ``NAME==VERSION`` source that names no wheel outright
    (:func:`named_wheel` is None), or None for anything :func:`resolve` would not send to the index (its errors
    are said there)."""
    if "==" not in source or "://" in source:
        return None
    from wheelstream.index import pin

    try:
        return pin(source)
    except UsageError:
        return None


def _pinned(
    source: str,
    url: str | None,
    path: Path | None,
    named: str | None,
    allowed: frozenset[str],
    by: str,
    filename: str | None = None,
) -> Resolved:
    """The sha256 the download checks: the caller's one allowed sha256, else the one ``by`` named (a URL's
    fragment, the index's listing); see :func:`resolve`. A named sha256 the caller's pins rule out fails here,
    before a byte is downloaded: the file it names cannot be the one allowed. ``filename``: the wheel's, given
    (``Resolved.filename``)."""
    narrowed = narrow(named.lower() if named is not None else None, allowed)
    if narrowed is None:
        which = "not the allowed hash" if len(allowed) == 1 else f"none of the {len(allowed)} allowed hashes"
        raise HashMismatch(
            f"the {by} sha256 {named} is {which}; nothing was downloaded",
            wheel=filename or (wheel_filename_from_url(url) if url else source),
        )
    return Resolved(source, url, path, *narrowed, filename=filename)


def narrow(sha256: str | None, allowed: frozenset[str]) -> tuple[str | None, frozenset[str]] | None:
    """The download's own sha256 check and what is left to check on the finished file, for a file that must
    have ``sha256`` (when named) and be one of the ``allowed`` pins (when any): a sha256 among them settles
    them; one sha256 allowed alone is the download's check; None when no file can be both (a sha256 named that
    none of the pins is, and no pin of another algorithm that could still match)."""
    if not allowed:
        return sha256, allowed
    if sha256 is not None:
        if sha256 in allowed:
            return sha256, frozenset()
        return (sha256, allowed) if any(":" in each for each in allowed) else None
    if len(allowed) == 1 and ":" not in (only := next(iter(allowed))):
        return only, frozenset()
    return None, allowed


def check_other_hashes(
    item: Resolved, wheel_file: Path, sha256: str, cache_dir: str | os.PathLike[str] | None
) -> None:
    """The other hashes an index lists for the file (an index without sha256s pins its files with md5 or
    sha512, and pip and uv hold the file to them), or a URL's fragment names, read off the finished wheel file
    (``verified_digests``: the bytes unpacked). A mismatch refuses the wheel, and the URL's cache record
    forgets it (``forget_url_of``)."""
    if not item.other_hashes or (item.sha256 is not None and not wheel_file.is_file()):
        return  # (a tree cached without its file, whose sha256 the index or the URL named outright: it holds)
    by = "the index lists" if item.pinned else "the URL names"
    digests = _digests_of(item, wheel_file, sha256, {name for name, _hex in item.other_hashes}, cache_dir)
    for name, expected in item.other_hashes:
        if digests[name] != expected:
            forget_url_of(item, sha256, cache_dir)
            raise HashMismatch(
                f"{name} is {digests[name]}, {by} {expected}; refused", wheel=filename_of(item)
            )


def check_allowed(
    item: Resolved, sha256: str, wheel_file: Path, cache_dir: str | os.PathLike[str] | None
) -> None:
    """A finished wheel that none of the caller's several allowed pins is (``Resolved.allowed``; the file is
    read when one of another algorithm than sha256 must decide) is refused, and the URL's cache record forgets
    it (``forget_url_of``: the bytes stay, for a call that may be copying from their tree)."""
    if not item.allowed or sha256 in item.allowed:
        return
    others = other_algorithms(item.allowed)
    digests = _digests_of(item, wheel_file, sha256, others, cache_dir) if others else {"sha256": sha256}
    if not matching(item.allowed, digests):
        forget_url_of(item, sha256, cache_dir)
        compared = ", ".join(f"{name} is {value}" for name, value in digests.items())
        raise HashMismatch(
            f"{compared}, none of the {len(item.allowed)} allowed hashes; refused", wheel=filename_of(item)
        )


def _digests_of(
    item: Resolved,
    wheel_file: Path,
    sha256: str,
    algorithms: Collection[str],
    cache_dir: str | os.PathLike[str] | None,
) -> dict[str, str]:
    """The finished file's digests, sha256 first, of the very bytes that were unpacked
    (``Cache.unpacked_digests``)."""
    key = cache_key(item.url) if item.url is not None else None
    expected = dict.fromkeys(algorithms, "")
    return _cache_of(cache_dir).unpacked_digests(key, sha256, wheel_file, filename_of(item), expected)


def forget_url_of(item: Resolved, sha256: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """The cache's record of ``item``'s URL forgets the wheel a caller's hashes refused (``Cache.forget_url``)."""
    if item.url is not None:
        _cache_of(cache_dir).forget_url(cache_key(item.url), sha256)


def forget_refused(item: Resolved, sha256: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """The cache forgets the wheel fetched for ``item`` that the install refused (``Cache.forget_refused``); a
    local file's source has no pin to forget."""
    if item.url is not None:
        _cache_of(cache_dir).forget_refused(cache_key(item.url), sha256)


def _cache_of(cache_dir: str | os.PathLike[str] | None) -> Cache:
    """The cache at ``cache_dir`` (None: the default), as it is: nothing made, nothing swept (``Cache.at``)."""
    return Cache(Path(cache_dir) if cache_dir is not None else default_cache_dir())


def filename_of(item: Resolved) -> str:
    """The wheel's file name: the one given for it, else a URL's checked one, or a local file's (checked the
    same way)."""
    if item.filename is not None:
        return item.filename
    if item.url:
        return wheel_filename_from_url(item.url)
    return checked_wheel_filename(item.path.name, source=item.source) if item.path else ""


def direct_url(item: Resolved) -> str | None:
    """PEP 610 is written for URL and path installs, not for index installs (pip does the same): the URL as
    given (a ``file:`` one too: ``file://localhost/...`` stays so), a path as its ``file:`` URL. DESIGN §2: no
    token reaches direct_url.json (:func:`recorded_url`; the writer drops the userinfo PEP 610 does not allow)."""
    if item.url is not None and not item.pinned:
        return recorded_url(item.url)
    if item.path is not None and not item.pinned:  # a pin found in --find-links is no direct reference
        if item.source[:5].lower() == "file:":
            return recorded_url(item.source)
        # As pip records it: absolute and normalised, not through the symlinks it may pass (resolve would)
        return Path(os.path.normpath(os.path.abspath(item.path))).as_uri()
    return None
