"""URL handling that keeps secrets out of everything we persist or print (DESIGN §2, "Secrets").

Private indexes put credentials in the userinfo (``https://user:token@host/``) or in the query
(``?token=...``). The redacted form is what the journal, the cache key, logs and errors see;
``direct_url.json`` records the URL as given with the same secrets masked (``recorded_url``), keeping the
userinfo PEP 610 allows; the real URL only ever reaches the HTTP client.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import httpx
from packaging.utils import InvalidWheelFilename as _PackagingInvalidWheelFilename
from packaging.utils import parse_wheel_filename

from wheelstream._digests import HEX_DIGITS
from wheelstream.errors import InvalidWheelFilename, UsageError, shown

__all__ = [
    "check_http_url",
    "not_a_url",
    "cache_key",
    "checked_wheel_filename",
    "credited",
    "direct_reference",
    "fragment_pairs",
    "is_url",
    "recorded_url",
    "redact",
    "shown_text",
    "shown_url",
    "split_hash_fragment",
    "wheel_filename_from_url",
    "wheel_path_in",
    "with_credentials_of",
]

# Over-matching costs a masked harmless value in a log line; under-matching leaks a credential.
_SECRET_QUERY_KEYS = re.compile(
    r"(token|tok$|key|secret|password|passwd|pwd|auth|signature|sig|credential|session|jwt)", re.IGNORECASE
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_url(source: str) -> bool:
    """A URL — ``file:`` ones included, with or without ``//`` (a scheme is case-insensitive) — not a path or
    a pin."""
    return "://" in source or source[:5].lower() == "file:"


def redact(url: str) -> str:
    """Drop ``user:password@`` (pip keeps nothing of it either) and mask secret-looking query values."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, …: shown for what it is, without what userinfo it holds
        return _USERINFO.sub("//", url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = urllib.parse.urlencode(
            [(k, "***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*"
        )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def recorded_url(url: str) -> str:
    """``url`` as ``direct_url.json`` records it: as given (pip records the link), its fragment dropped, and a
    query holding a secret-looking key masked as :func:`redact` masks it. The userinfo is left to the writer,
    which keeps only what PEP 610 allows (``git``, ``${VAR}``: ``installer._direct_url.redact_url``)."""
    parts = urllib.parse.urlsplit(url)
    query = parts.query
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if any(_SECRET_QUERY_KEYS.search(key) for key, _value in pairs):
        query = urllib.parse.urlsplit(redact(url)).query
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def fragment_pairs(fragment: str) -> list[tuple[str, str]]:
    """A link's fragment as pip reads it: ``&``-separated ``name=value`` pairs, names lower-cased."""
    pairs = []
    for pair in fragment.split("&") if fragment else ():
        name, _, value = pair.partition("=")
        pairs.append((name.strip().lower(), value))
    return pairs


def split_hash_fragment(
    url: str, *, wheel: str | None = None
) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """``(url without fragment, the sha256 hex its fragment pins or None, its other hashes)``.

    The fragment is read as pip reads a link's (:func:`fragment_pairs`), the pins anywhere among its pairs
    (``#egg=demo&sha256=…``). The sha256 is checked while streaming; the others pip reads there (``md5``,
    ``sha1``, ``sha224``, ``sha384``, ``sha512``), as ``(name, hex)``, on the finished file. A pin is never
    dropped in silence: one whose hex has not its digest's length, or two different ones of an algorithm, is a
    UsageError, naming ``wheel`` (the file name, where the caller knows it), else the URL.
    """
    base, _, fragment = url.partition("#")
    named = wheel if wheel is not None else shown_url(base)
    pinned: dict[str, str] = {}
    for name, value in fragment_pairs(fragment):
        digits = HEX_DIGITS.get(name)
        if digits is None:
            continue
        if len(value) != digits or not _HEX.fullmatch(value):
            raise UsageError(f"#{name}= must be {digits} hex digits, not {shown(value, 80)}", wheel=named)
        if pinned.setdefault(name, value.lower()) != value.lower():
            raise UsageError(f"the fragment pins two different {name} hashes", wheel=named)
    sha256 = pinned.pop("sha256", None)
    return base, sha256, tuple(pinned.items())


def with_credentials_of(url: str, credited: str, *, upgrade: bool = False) -> str:
    """``url`` with the credentials of ``credited`` where they may go: the same origin — scheme, host and port
    (pip keys them by network location, uv by realm) — and, with ``upgrade`` (a redirect, as requests keeps
    them), the same host moving from ``http`` on 80 to ``https`` on 443. Not to another port of the host, nor
    over plain HTTP from HTTPS. Never persisted. An index's go on to its files; a hop's to where it redirects
    (an absolute ``Location`` has no userinfo, and the index answered the next hop 401 where pip installed);
    any URL's of a command to its other URLs (:func:`credited`)."""
    was, now = urllib.parse.urlsplit(credited), urllib.parse.urlsplit(url)
    if "@" not in was.netloc or "@" in now.netloc:
        return url
    before, after = _origin(was), _origin(now)
    upgraded = (
        upgrade and before[0::2] == ("http", 80) and after[0::2] == ("https", 443) and before[1] == after[1]
    )
    if before != after and not upgraded:
        return url
    return urllib.parse.urlunsplit(now._replace(netloc=was.netloc.rpartition("@")[0] + "@" + now.netloc))


def credited(url: str, sources: Iterable[str]) -> str:
    """``url`` with the credentials of the first of ``sources`` (URLs a command was given: its index, its
    ``-r`` files, its wheels) that has any for its origin, as pip and uv send the credentials they have seen
    for a host to every later request there; ``url`` itself when it has its own or none apply. A source that
    is no URL (a path, a pin) has none."""
    for source in sources:
        if "@" not in source or "://" not in source:
            continue
        try:
            given = with_credentials_of(url, source)
        except ValueError:  # a source no URL parser takes: said where it is resolved
            continue
        if given != url:
            return given
    return url


def _origin(parts: urllib.parse.SplitResult) -> tuple[str, str | None, int | None]:
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port out of range: never the index's
        return scheme, None, -1
    return scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS.get(scheme)


def cache_key(url: str) -> str:
    """sha256 of the normalised, redacted URL without fragment: the same file gets the same partial."""
    base = redact(url).partition("#")[0]
    parts = urllib.parse.urlsplit(base)
    normal = urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


# -- the file name a wheel is written under ---------------------------------------------------------------
#
# ``download`` writes ``<dest>/<name>`` and the name comes from whoever serves the URL or the index page, so
# it is hostile input: ``a%2F..%2F..%2Fx.whl`` is one URL path segment that decodes to a path climbing out of
# ``<dest>``. Every place that turns a URL or index data into a file name goes through
# ``wheel_filename_from_url`` / ``checked_wheel_filename``, and the write sites check the joined path again
# (``wheel_path_in``).
#
# The rules, and why:
#
# * The last path segment is taken *before* decoding, then percent-decoded exactly once, as UTF-8, strictly
#   (``%C0%AF``, the overlong ``/``, and any other invalid UTF-8 is refused rather than replaced). One decode
#   is what pip and every HTTP server do; the result is never decoded again, so ``%252F`` becomes the
#   literal ``%2F`` -- harmless to the OS, and refused anyway because ``%`` cannot occur in a wheel name.
# * The name must be one ordinary path component: not empty, not ``.``/``..``, no ``/`` or ``\`` (a separator
#   on Windows), no NUL or other control character (C0, DEL, C1: they also reach terminals through our
#   messages), no ``:`` (a drive ``C:`` or an NTFS stream), at most 255 bytes (NAME_MAX almost everywhere).
# * It must be a PEP 427 wheel name, and be spelt in the characters such names are made of: ASCII letters
#   and digits plus ``._+!-`` (PEP 508 names, PEP 440 versions, PEP 425 tags), starting with a letter or
#   digit (so never a hidden file or something a shell tool reads as an option). ``packaging`` alone is not
#   enough: its project-name pattern is Unicode ``\w`` and it does not look inside platform tags. So
#   look-alikes such as U+FF0F FULLWIDTH SOLIDUS or U+2215 DIVISION SLASH, which are no separator to the OS
#   but are mapped to ``/`` by Windows' "best fit" code pages, never get through.

_NAME_MAX = 255
_WHEEL_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN_MAX = 80


def shown_url(url: str) -> str:
    """``url`` as an error names it: redacted, and anything unprintable percent-encoded (one line, no
    terminal escapes from whoever wrote an index page)."""
    return "".join(c if c.isprintable() and c != " " else urllib.parse.quote(c, safe="") for c in redact(url))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
_USERINFO = re.compile(r"//[^/\s]*@")  # up to the last "@" before the path, as urlsplit reads userinfo


def shown_text(text: str) -> str:
    """A line a user wrote (a requirements file's, a source as given) as an error quotes it: every URL in it as
    :func:`shown_url` shows one, so a ``demo @ https://user:token@host/…`` or ``--extra-index-url=https://…``
    that is refused does not print its password."""
    # userinfo first, whatever it holds: a quote is legal there (RFC 3986) and would end the URL's match
    return _URL_IN_TEXT.sub(lambda found: shown_url(found.group(0)), _USERINFO.sub("//", text))


def check_http_url(url: str, *, label: str = "URL") -> None:
    """Refuse, as the caller's mistake (``UsageError``: exit 2, one line), an ``http(s)`` URL no request could be
    made to — one httpx cannot parse, a port out of range, no host, another scheme — before anything is fetched:
    a wheel's URL, an index's (``label`` names which)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise not_a_url(url, str(exc), label=label) from None
    if parts.scheme.lower() not in ("http", "https") or not parsed.host:
        raise UsageError(f"the {label} must be http(s) with a host: {shown_url(url)}")


def not_a_url(url: str, why: str, *, label: str = "URL") -> UsageError:
    """The error naming a URL that is no valid ``label``, redacted (``redact`` drops the userinfo of one too
    broken to parse)."""
    return UsageError(f"not a valid {label}: {shown_url(url)} ({shown(why, 200)})")


def _refuse(name: str, why: str, *, source: str, label: str) -> InvalidWheelFilename:
    return InvalidWheelFilename(f"{label} {shown(name, _SHOWN_MAX)} {why}", wheel=shown_url(source))


def checked_wheel_filename(name: str, *, source: str, label: str = "the file name") -> str:
    """``name`` if it is safe to create in a directory of ours and is a wheel file name, else raise.

    ``source`` (a URL, redacted here, or a path) is what the error names; ``label`` says whose name it is
    ("the URL's file name", "the index's file name"). Raises :class:`~wheelstream.errors.InvalidWheelFilename`.
    """
    if not name:
        raise _refuse(name, "is empty (nothing follows the last '/')", source=source, label=label)
    if name in (".", "..") or "/" in name or "\\" in name:
        raise _refuse(name, "is not a single path component", source=source, label=label)
    if _CONTROL.search(name):
        raise _refuse(name, "contains a control character", source=source, label=label)
    if len(name.encode("utf-8", "surrogatepass")) > _NAME_MAX:
        raise _refuse(name, f"is longer than {_NAME_MAX} bytes", source=source, label=label)
    if ":" in name:
        raise _refuse(name, "contains ':' (a drive or stream name on Windows)", source=source, label=label)
    if not _WHEEL_CHARS.fullmatch(name):
        raise _refuse(
            name,
            "is not a wheel file name (PEP 427 names are ASCII letters, digits and ._+!-, "
            "starting with a letter or digit)",
            source=source,
            label=label,
        )
    try:
        parse_wheel_filename(name)
    except _PackagingInvalidWheelFilename as exc:
        cause = str(exc).partition(":")[0].removeprefix("Invalid wheel filename ").strip("()")
        raise _refuse(
            name, f"is not a wheel file name ({cause.lower()})", source=source, label=label
        ) from None
    return name


def wheel_filename_from_url(url: str) -> str:
    """The checked file name of the wheel at ``url``: its last path segment, percent-decoded once.

    Query and fragment (``#sha256=``) are not part of it. Raises
    :class:`~wheelstream.errors.InvalidWheelFilename` naming the redacted URL (see the rules above).
    """
    path = urllib.parse.urlsplit(url.partition("#")[0]).path
    segment = path.rpartition("/")[2]
    label = "the URL's file name"
    try:
        name = urllib.parse.unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(segment, "is not valid UTF-8 once percent-decoded", source=url, label=label) from None
    return checked_wheel_filename(name, source=url, label=label)


# PEP 508's ``NAME [EXTRAS] @ URL``: how pip, uv and their lock and compile outputs name a URL dependency.
_DIRECT_REFERENCE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*@\s*(\S+://\S*|file:\S+)")
# ``NAME @ ./dist/x.whl``: uv's direct reference to a wheel on disk (PEP 508 asks for a URL; pip refuses it)
_DIRECT_PATH = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*@\s*([^\s:]\S*\.whl)")


def direct_reference(source: str) -> str | None:
    """``NAME @ URL`` → the URL, when it names a wheel of that project (extras add nothing without
    dependencies), and ``NAME @ PATH`` → the path of a ``.whl``, as uv takes it; None for a source of any
    other form. A URL that is no wheel (a source archive, a repository: each needs a build) or is another
    project's wheel is a ``UsageError``."""
    match = _DIRECT_REFERENCE.fullmatch(source.strip()) or _DIRECT_PATH.fullmatch(source.strip())
    if match is None:
        return None
    name, url = match.groups()
    try:
        # a path's name is checked as a URL's is
        wheel = (
            wheel_filename_from_url(url)
            if is_url(url)
            else checked_wheel_filename(Path(url).name, source=url)
        )
    except ValueError as exc:  # an unclosed IPv6 bracket, …
        raise not_a_url(url, str(exc)) from None
    except InvalidWheelFilename:
        raise UsageError(
            f"{shown_url(url)} is not a wheel: NAME @ URL installs a .whl here (a source archive or a "
            "repository needs a build, which wheelstream does not do)"
        ) from None
    from packaging.utils import canonicalize_name

    project = parse_wheel_filename(wheel)[0]
    if canonicalize_name(name) != project:
        raise UsageError(f"{name} @ … names {name!r}, but the wheel {wheel} is {project!r}")
    return url


def wheel_path_in(directory: Path, name: str, *, source: str) -> Path:
    """``directory / name`` for writing a wheel, after checking ``name`` and that the path stays inside.

    The second line of defence behind ``checked_wheel_filename``: whatever a future caller passes, the file
    written is a direct child of ``directory`` (resolved, so symlinked parents are compared as they are).
    """
    checked_wheel_filename(name, source=source)
    base = directory.resolve()
    path = base / name
    if path.parent.resolve() != base or path.name != name:
        raise _refuse(name, f"would be written outside {directory}", source=source, label="the file name")
    return path
