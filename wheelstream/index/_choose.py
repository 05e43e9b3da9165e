"""Which file of a pinned release to take: pip's ``CandidateEvaluator`` rules for one version (see the package
docstring), with nothing resolved beyond the pin.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from wheelstream._digests import pin as hash_pin
from wheelstream._urls import shown_text
from wheelstream.errors import (
    IncompatibleWheel,
    UsageError,
)
from wheelstream.index._pages import IndexFile, declared_ok

_log = logging.getLogger("wheelstream")


def pin(source: str) -> tuple[str, Specifier]:
    """``NAME==VERSION`` (or ``===``, extras allowed and ignored) → (normalized name, the pin). A pin matches
    as PEP 440 says: ``==2.0`` takes ``2.0+cpu`` too (a local label the pin does not name) and ``2.0.0``."""
    try:
        req = Requirement(source)
    except InvalidRequirement as exc:
        raise UsageError(f"not a NAME==VERSION requirement: {exc}", wheel=shown_text(source)) from None
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
            wheel=shown_text(source),
        )
    if specs[0].operator == "==":
        try:
            Version(specs[0].version)
        except InvalidVersion as exc:
            raise UsageError(f"invalid version: {exc}", wheel=shown_text(source)) from None
    return canonicalize_name(req.name), specs[0]


def python_version_of(tags: Sequence[Tag], explicit: tuple[int, int] | str | None) -> str | None:
    """The target's version for ``requires-python``: given (``X.Y.Z``, as pip compares it: ``>=3.11.7`` holds
    on 3.11.7, ``<3.11.5`` does not), else ``X.Y`` read off its first ``pyXY`` tag (packaging always lists one)."""
    if isinstance(explicit, str):
        return explicit
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
    wanted: Version | Specifier,
    tags: Sequence[Tag],
    python: str | None,
    source: str,
    *,
    allowed: Collection[str] = (),
    where: str = "on the index",
) -> IndexFile:
    """The best wheel for ``tags`` among ``files`` whose version the pin ``wanted`` matches (a bare version is
    ``==`` it): as pip orders candidates, one not yanked first, then the highest version (``2.0+cpu`` over
    ``2.0`` for ``==2.0``), then the interpreter's most preferred tag, then the highest build tag, then the
    last listed (``1.0`` and ``1.0.0`` are one version: pip takes the later). With ``allowed`` pins (``_digests``; pip's
    ``--hash``), only files listed with one of them are candidates, if any is (pip's
    ``filter_unallowed_hashes``: any hash it lists, of any algorithm); else the download's own check decides."""
    spec = wanted if isinstance(wanted, Specifier) else Specifier(f"=={wanted}")
    version = spec.version
    rank = {tag: i for i, tag in reversed(list(enumerate(tags)))}
    candidates: list[tuple[bool, Version, int, tuple[int, str] | tuple[()], int, IndexFile]] = []
    versions: set[str] = set()
    of_version: list[IndexFile] = []
    for f in files:
        # A wheel's name is its first field (packaging reads it so): others are passed over before the full
        # parse, twice per file, which was most of the time a pin took over a page of 30,000 links.
        if not f.filename.endswith(".whl") or canonicalize_name(f.filename.partition("-")[0]) != name:
            continue
        if not declared_ok(f):
            continue
        try:
            wname, wversion, build, wtags = parse_wheel_filename(f.filename)
        except (
            InvalidVersion
        ):  # pragma: no cover - packaging reports it as an invalid file name, checked above
            continue
        if wname != name:
            continue
        versions.add(str(wversion))
        if not spec.contains(wversion, prereleases=True):
            continue
        of_version.append(f)
        if not _python_ok(f.requires_python, python):
            continue
        best = min((rank[t] for t in wtags if t in rank), default=None)
        if best is not None:
            candidates.append((f.yanked is not None, wversion, best, build, len(candidates), f))
    if not candidates:
        if not of_version:
            known = ", ".join(sorted(versions, key=Version)) or "none"
            raise UsageError(
                f"no wheel for version {version} {where} (wheel versions there: {known})", wheel=source
            )
        listed = ", ".join(f.filename for f in of_version)
        raise IncompatibleWheel(
            f"no wheel of {version} fits the target interpreter (Python {python}, tags "
            f"{tags[0] if tags else '?'}, …) or its requires-python: {listed}",
            wheel=source,
        )
    hashed = [c for c in candidates if any(each in allowed for each in _pins_of(c[-1]))]
    # pip's sort key: then the highest build tag (none sorts lowest), and of equals the last listed
    yanked, _version, _rank, _build, _order, chosen = max(
        hashed or candidates, key=lambda c: (not c[0], c[1], -c[2], c[3], c[4])
    )
    if yanked:
        reason = f" (reason: {chosen.yanked})" if chosen.yanked else ""
        _log.warning(
            "%s: %s is yanked%s; installing it because the version is pinned exactly",
            source,
            chosen.filename,
            reason,
        )
    return chosen


def _pins_of(listed: IndexFile) -> list[str]:
    """The pins (``_digests``) of every hash a page lists for a file."""
    pins = [hash_pin(name, value) for name, value in listed.other_hashes]
    return [listed.sha256, *pins] if listed.sha256 is not None else pins


# -- fetching, cached ------------------------------------------------------------------------------------
