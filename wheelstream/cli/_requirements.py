"""``-r FILE``: the subset of pip's requirements syntax that makes sense without a resolver.

One source per line, ``--hash=sha256:…`` per line (repeatable, as pip-compile and
``uv pip compile --generate-hashes`` write them), ``#`` comments, blank lines, ``\\`` continuations,
environment markers, nested ``-r`` and ``--index-url``. Anything else is a
:class:`~wheelstream.errors.UsageError` naming the file and line.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wheelstream.errors import UsageError

__all__ = ["Requirements", "is_local", "parse_hash", "parse_requirements"]

_HASH = re.compile(r"^sha256[:=]([0-9a-fA-F]{64})$")


def parse_hash(text: str, where: str) -> str:
    """``sha256:HEX`` (or ``sha256=HEX``) → the lower-case hex digest; ``where`` starts the error message."""
    match = _HASH.match(text.strip())
    if not match:
        raise UsageError(f"{where}: --hash must be sha256:<64 hex digits>, got {text!r}")
    return match.group(1).lower()


@dataclass
class Requirements:
    """What ``-r`` files contributed: sources in order, their allowed hashes, an index URL if one was set."""

    sources: list[str] = field(default_factory=list)
    hashes: dict[str, list[str]] = field(default_factory=dict)
    index_url: str | None = None


def parse_requirements(
    path: Path,
    into: Requirements | None = None,
    _depth: int = 0,
    *,
    markers: Callable[[], Mapping[str, str]] | None = None,
) -> Requirements:
    """Read a requirements file (see the module docstring for the supported subset). A line's ``; MARKER`` is
    evaluated for ``markers()`` — the interpreter the install is for (``--python``, the environment's), asked
    only when a line has one — or for the running interpreter when None."""
    reqs = into if into is not None else Requirements()
    if _depth > 10:
        raise UsageError(f"{path}: requirement files nest too deeply")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read requirements file {path}: {exc.strerror or exc}") from None
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        # pip's split: the requirement (with any "; marker") comes first, options after the first " -"
        requirement, options = _split_options(line)
        try:
            words = shlex.split(options, posix=True)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        source: str | None = requirement or None
        hashes: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            option, eq, value = word.partition("=")
            takes_value = option in ("--hash", "-r", "--requirement", "-i", "--index-url")
            if takes_value and not eq:
                if i + 1 >= len(words):
                    raise UsageError(f"{where}: {option} needs a value")
                value, i = words[i + 1], i + 1
            if option == "--hash":
                hashes.append(parse_hash(value, where))
            elif option in ("-r", "--requirement"):
                parse_requirements(path.parent / value, reqs, _depth + 1, markers=markers)
            elif option in ("-i", "--index-url"):
                reqs.index_url = value
            else:
                raise UsageError(f"{where}: unsupported option {word!r} (supported: --hash, -r, --index-url)")
            i += 1
        if source is None:
            if hashes:
                raise UsageError(f"{where}: --hash without a requirement")
            continue
        source = _apply_marker(source, where, markers)
        if source is None:
            continue
        if is_local(source) and not os.path.isabs(source) and "://" not in source:
            source = str(path.parent / source)  # relative paths are relative to the file, as in pip
        reqs.sources.append(source)
        if hashes:
            reqs.hashes.setdefault(source, []).extend(hashes)
    return reqs


def is_local(source: str) -> bool:
    """A local ``.whl`` path (not a URL, not ``NAME==VERSION``)."""
    return source.endswith(".whl") and "://" not in source


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with ``\\`` continuations joined and comments removed (pip: ``#`` at start or after blanks)."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined, pending = (pending + line).strip(), ""
        if joined:
            yield start, joined
    if pending.strip():
        yield start, pending.strip()


def _split_options(line: str) -> tuple[str, str]:
    """``REQ [; MARKER] [OPTIONS]`` → (requirement with its marker, options)."""
    if line.startswith("-"):
        return "", line
    match = re.search(r"\s+(?=--?[A-Za-z])", line)
    if match is None:
        return line.strip(), ""
    return line[: match.start()].strip(), line[match.end() :]


def _apply_marker(source: str, where: str, markers: Callable[[], Mapping[str, str]] | None) -> str | None:
    """``REQ ; MARKER``: keep REQ when the marker holds for the target interpreter, drop the line otherwise."""
    req, sep, marker = source.partition(";")
    if not sep or ("://" in req and not req.endswith(" ")):
        return source.strip()
    from packaging.markers import InvalidMarker, Marker

    try:
        parsed = Marker(marker.strip())
    except InvalidMarker as exc:
        raise UsageError(f"{where}: {exc}") from None
    keep = parsed.evaluate(dict(markers()) if markers is not None else None)
    return req.strip() if keep else None
