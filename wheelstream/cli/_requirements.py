"""``-r FILE``: the subset of pip's requirements syntax that makes sense without a resolver.

One source per line, ``--hash=sha256:…`` per line (repeatable, as pip-compile and
``uv pip compile --generate-hashes`` write them), ``#`` comments, blank lines, ``\\`` continuations,
environment markers, ``${VAR}``, nested ``-r``, ``--index-url``, ``--extra-index-url``, ``--find-links``,
``--no-index``, ``--require-hashes``; ``--only-binary``, ``--prefer-binary``, ``--pre`` and ``--trusted-host``
are accepted (what they ask always holds here: wheels only, exact pins, verified https). Anything else is a
:class:`~wheelstream.errors.UsageError` naming the file and line.

A file is read as pip reads one (``pip/_internal/req/req_file.py``): decoded by its BOM, else by a PEP 263
``coding:`` line in its first two lines, else as UTF-8; continuation lines are joined first (a ``\\`` at the
end of a comment continues it too), then comments go (``#`` at the start or after blanks), then ``${NAME}``
(upper case, digits, ``_``) is replaced by the environment variable when it is set. A URL's marker follows
``; `` (a ``;`` inside a URL is the URL's). A relative path is taken beside the file when it is there, else
in the current directory (pip and uv take the current directory only): the same file installs the same wheels
from wherever it is run, and one written for pip still works. A file may be named by an ``http(s)`` URL, as pip
and uv read one (``read_url`` fetches it); a nested ``-r`` in it is relative to its URL, its other relative
paths to the current directory, as pip takes them. Hash-checking mode (every source needs a hash)
comes on with any ``--hash``, one on a line its marker leaves out included, as pip counts it.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wheelstream._digests import disjoint_algorithms, normal_pin
from wheelstream._urls import credited, direct_reference, is_url, redact, shown_text
from wheelstream.errors import UsageError

__all__ = [
    "Requirements",
    "is_local",
    "is_remote",
    "parse_hash",
    "parse_requirements",
    "pinned_with",
    "with_marker",
]

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
_MAX_DEPTH = 100  # nested -r files: a chain this long is a mistake even without a cycle


def parse_hash(text: str, where: str) -> str:
    """``ALGORITHM:HEX`` (or ``ALGORITHM=HEX``) of pip's algorithms for ``--hash`` — sha256, sha384, sha512 —
    as a pin (``_digests``); ``where`` starts the error message."""
    normal = normal_pin(text)
    if normal is None:
        raise UsageError(
            f"{where}: --hash must be sha256:, sha384: or sha512: and the digest's 64, 96 or 128 hex digits, "
            f"got {text!r}"
        )
    return normal


# The options of a requirements file that take a value (``--opt value`` or ``--opt=value``).
_TAKING_VALUES = frozenset(
    {
        "--hash",
        "-r",
        "--requirement",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--only-binary",
        "--trusted-host",
    }
)
# pip's options whose point always holds here: only wheels are installed (``--only-binary``, whatever it
# names, and ``--prefer-binary``), an exact pin takes a pre-release it names (``--pre``), and ``--trusted-host``
# (pip-compile writes it for an http index) asks for no trust an http index needs or https is given.
_HELD_ANYWAY = frozenset({"--only-binary", "--prefer-binary", "--pre", "--trusted-host"})


@dataclass
class Requirements:
    """What ``-r`` files contributed: sources in order, their allowed hashes, an index URL if one was set."""

    sources: list[str] = field(default_factory=list)
    hashes: dict[str, list[str]] = field(default_factory=dict)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    require_hashes: bool = False
    # A line its marker leaves out had a --hash: hash-checking mode all the same.
    hashed_elsewhere: bool = False
    # The files read from URLs with credentials (``https://user:token@host/r.txt``): pip and uv send what they
    # have seen for a host to every request there, so the command's URLs of that origin get them (``lent``).
    credentials: list[str] = field(default_factory=list)

    def lent(self, source: str) -> str:
        """``source`` — a URL, or ``NAME @ URL`` — with the credentials of a file read from its origin
        (``_urls.credited``); any other source as it is."""
        if not self.credentials:
            return source
        try:
            url = direct_reference(source)
        except UsageError:  # said where the source is resolved
            return source
        if url is not None and "://" in url:
            start = source.rindex(url)
            return source[:start] + credited(url, self.credentials) + source[start + len(url) :]
        return credited(source, self.credentials)


def pinned_with(hashes: dict[str, list[str]], source: str, new: list[str], where: str) -> None:
    """Add one occurrence's ``--hash`` values for ``source``: a source named twice must match a hash of each
    occurrence that has any (pip intersects them), so a second line cannot widen what the first allows."""
    if not new:
        return
    earlier = hashes.get(source)
    if earlier is None:
        hashes[source] = sorted(set(new))
        return
    common = sorted(set(earlier) & set(new))
    if not common:
        why = disjoint_algorithms(earlier, new) or "no file can match both"
        raise UsageError(
            f"{where}: {shown_text(source)}: its --hash values and those given for it before have none in common: "
            f"{why}"
        )
    hashes[source] = common


def is_remote(location: str) -> bool:
    """A requirements file named by an ``http(s)`` URL."""
    return location.lower().startswith(("http://", "https://"))


def parse_requirements(
    location: str | os.PathLike[str],
    into: Requirements | None = None,
    *,
    markers: Callable[[], Mapping[str, str]] | None = None,
    read_url: Callable[[str], bytes] | None = None,
    _including: tuple[str, ...] = (),
) -> Requirements:
    """Read a requirements file, a path or an ``http(s)`` URL (fetched by ``read_url``); see the module
    docstring for the supported subset. A line's ``; MARKER`` is evaluated for ``markers()`` — the interpreter
    the install is for (``--python``, the environment's), asked only when a line has one — or for the running
    interpreter when None."""
    reqs = into if into is not None else Requirements()
    remote = is_remote(str(location))
    path = Path(location)
    shown = redact(str(location)) if remote else str(path)
    real = str(location) if remote else os.path.realpath(path)
    if real in _including:
        names = " -> ".join(
            redact(each) if is_remote(each) else os.path.basename(each.rstrip("/")) for each in _including
        )
        raise UsageError(f"{shown} references itself (through {names})")
    if len(_including) >= _MAX_DEPTH:
        raise UsageError(f"{shown}: requirement files nest more than {_MAX_DEPTH} deep")
    if remote:
        if read_url is None:
            raise UsageError(f"{shown}: a requirements file named by URL cannot be read here")
        data = read_url(reqs.lent(str(location)))
        if "@" in urllib.parse.urlsplit(str(location)).netloc:
            reqs.credentials.append(str(location))
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read requirements file {path}: {exc.strerror or exc}") from None
    for number, line in _logical_lines(_decode(data, shown)):
        where = f"{shown}:{number}"
        # pip's split: the requirement (with any "; marker") comes first, options after the first " -"
        requirement, options = _split_options(line)
        try:
            words = shlex.split(options, posix=True)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        hashes: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            option, eq, value = word.partition("=")
            takes_value = option in _TAKING_VALUES
            if takes_value and not eq:
                if i + 1 >= len(words):
                    raise UsageError(f"{where}: {option} needs a value")
                value, i = words[i + 1], i + 1
            if option == "--hash":
                hashes.append(parse_hash(value, where))
            elif option in ("-r", "--requirement"):
                # pip's rule: a URL as it is, else relative to this file — its URL's or its directory's
                nested: str | Path = (
                    value
                    if is_remote(value)
                    else urllib.parse.urljoin(str(location), value)
                    if remote
                    else path.parent / value
                )
                parse_requirements(
                    nested, reqs, markers=markers, read_url=read_url, _including=(*_including, real)
                )
            elif option in ("-i", "--index-url"):
                reqs.index_url = value
            elif option == "--extra-index-url":
                reqs.extra_index_urls.append(value)
            elif option in ("-f", "--find-links"):
                local = "://" not in value and not remote
                reqs.find_links.append(_relative_to(path, value, missing_beside=False) if local else value)
            elif option == "--no-index" and not eq:
                reqs.no_index = True
            elif option == "--require-hashes" and not eq:
                reqs.require_hashes = True
            elif option in _HELD_ANYWAY and (option in _TAKING_VALUES or not eq):
                pass  # what they ask of pip always holds here (_HELD_ANYWAY)
            else:
                raise UsageError(
                    f"{where}: unsupported option {shown_text(word)!r} (supported: --hash, -r, --index-url, "
                    "--extra-index-url, --find-links, --no-index, --require-hashes; --only-binary, "
                    "--prefer-binary, --pre and --trusted-host always hold)"
                )
            i += 1
        if not requirement:
            if hashes:
                raise UsageError(f"{where}: --hash without a requirement")
            continue
        source = with_marker(requirement, where, markers)
        if source is None:
            # pip's hash-checking mode counts every line, those whose marker leaves them out too: else one
            # hashed line for another platform let the rest of the file install unchecked
            reqs.hashed_elsewhere = reqs.hashed_elsewhere or bool(hashes)
            continue
        source = _direct_reference(source, where)
        _check_form(source, where)
        if is_local(source) and not os.path.isabs(source) and not remote:
            source = _relative_to(path, source, missing_beside=True)
        reqs.sources.append(source)
        pinned_with(reqs.hashes, source, hashes, where)
    return reqs


def is_local(source: str) -> bool:
    """A local ``.whl`` path (not a URL, not ``NAME==VERSION``)."""
    return source.endswith(".whl") and not is_url(source)


def _decode(data: bytes, path: str) -> str:
    """The file's text, decoded as pip decodes it (``pip._internal.utils.encoding.auto_decode``)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decoded(data[len(bom) :], encoding, path)
    for line in data.split(b"\n")[:2]:
        match = _CODING.search(line)
        if line.lstrip().startswith(b"#") and match:
            return _decoded(data, match.group(1).decode("ascii"), path)
    return _decoded(data, "utf-8", path)


def _decoded(data: bytes, encoding: str, path: str) -> str:
    try:
        return data.decode(encoding)
    except LookupError:
        raise UsageError(f"{path}: unknown encoding {encoding!r} in its coding line") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not {encoding} text (byte {exc.start}); save it as UTF-8, or say its encoding in a "
            "'# -*- coding: NAME -*-' first line"
        ) from None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's preprocessing: continuations joined (a line ending in ``\\`` that is not a whole-line comment),
    then comments removed, then ``${NAME}`` expanded; numbered by their first physical line."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending.append(raw.strip("\\"))
            continue
        if _COMMENT.match(raw):
            raw = " " + raw  # a whole-line comment ends a continuation, and goes with it
        joined = "".join([*pending, raw])
        pending = []
        line = _expand(_COMMENT.sub("", joined).strip())
        if line:
            yield start, line
    if pending:
        line = _expand(_COMMENT.sub("", "".join(pending)).strip())
        if line:
            yield start, line


def _expand(line: str) -> str:
    """``${NAME}`` → the environment variable's value when it is set (and not empty), as pip does; left as
    written otherwise."""
    return _ENV_VAR.sub(lambda match: os.environ.get(match.group(1)) or match.group(0), line)


def _split_options(line: str) -> tuple[str, str]:
    """``REQ [; MARKER] [OPTIONS]`` → (requirement with its marker, options)."""
    if line.startswith("-"):
        return "", line
    match = re.search(r"\s+(?=--?[A-Za-z])", line)
    if match is None:
        return line.strip(), ""
    return line[: match.start()].strip(), line[match.end() :]


def _relative_to(path: Path, value: str, *, missing_beside: bool) -> str:
    """pip's rule for a relative location in the requirements file ``path`` (a wheel path, a ``--find-links``):
    beside the file when it is there, else the working directory's. Where neither has it, ``missing_beside``
    names it beside the file (a wheel: its error then says where it was looked for), else as it was given (a
    find-links location: its warning quotes it)."""
    beside = path.parent / value
    if beside.exists() or (missing_beside and not os.path.exists(value)):
        return str(beside)
    return value


def _direct_reference(source: str, where: str) -> str:
    """``NAME @ URL`` → the URL (``_urls.direct_reference``), as ``uv pip compile`` and pip-compile write a URL
    dependency; anything else as it is."""
    try:
        return direct_reference(source) or source
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.cause}") from None


def _check_form(source: str, where: str) -> None:
    """The forms an install takes without a resolver, said with the file and line: a URL, a ``.whl`` path, an
    exact pin. (The command line's sources get the same words from the library.)"""
    shaped = is_url(source) or source.endswith(".whl") or "==" in source
    if shaped and " @ " not in source:
        return
    raise UsageError(
        f"{where}: {shown_text(source)!r} is not a wheel URL, path, NAME @ URL or NAME==VERSION (without a "
        "resolver, neither ranges nor bare names can be installed: give the exact pin)"
    )


def with_marker(source: str, where: str, markers: Callable[[], Mapping[str, str]] | None) -> str | None:
    """``REQ ; MARKER``: REQ when the marker holds for the target interpreter, None when it does not (the line
    is skipped). A URL's marker follows ``; `` as in pip, so a ``;`` inside the URL stays the URL's."""
    if source.rstrip().endswith(".whl"):
        return source.strip()  # a path or URL with nothing after it (a ";" in a directory name is the path's)
    found = re.search(r";\s|\s;", source) if is_url(source) else re.search(";", source)
    if found is None:
        return source.strip()
    req, marker = source[: found.start()], source[found.end() :]
    from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName

    try:
        keep = Marker(marker.strip().lstrip(";").strip()).evaluate(
            dict(markers()) if markers is not None else None
        )
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
        raise UsageError(f"{where}: the marker cannot be evaluated: {exc}") from None
    return req.strip() if keep else None
