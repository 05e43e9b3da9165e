"""What a wheel says about itself: its file name, its tags, its ``WHEEL`` and ``METADATA`` files, its entry points.

Checks follow pip (``_internal/utils/wheel.py``: ``parse_wheel``, ``wheel_dist_info_dir``, ``wheel_version``,
``check_compatibility``; ``_internal/resolution/resolvelib/factory.py``: ``_fail_if_link_is_unsupported_wheel``,
which pip applies to a wheel given by path or URL even with ``--target``), with deliberate tightenings, each a
wheel that is lying about what it is:

* The ``.dist-info`` directory must be ``<name>-<version>.dist-info`` with the file name's project name
  (canonicalised) and version (compared as :class:`~packaging.version.Version`, so ``1.0`` is ``1.0.0``).
  pip checks only that the directory's canonical name *starts with* the project name.
* ``METADATA`` must exist, be UTF-8, and its ``Name`` / ``Version`` must be the file name's, compared the same
  way. pip 26.3 reads ``METADATA`` through ``importlib.metadata`` and its resolver's
  ``_check_metadata_consistency`` ("Requested demo==1.0 ... has inconsistent name: expected 'demo', but metadata
  has 'other'"); for a wheel given by path or URL it checks the name only (the candidate has no version), and a
  missing ``METADATA``, a missing ``Name`` or an invalid ``Version`` end pip in a traceback (``BadMetadata``,
  ``InvalidVersion``). uv rejects both mismatches. Here each is one :class:`~wheelstream.errors.WheelMetadataError`.
  Only the headers are parsed (:class:`email.parser.HeaderParser`): the description body is never looked at.
* ``Wheel-Version`` parts must be ASCII digits (pip's ``int`` also takes spaces around a part and non-ASCII
  digits, and a 5000-digit part is a ``ValueError`` of its own) and the major must be 1 (pip only refuses a
  major above 1).

Every value quoted back in an error is the wheel's own text: it is shortened (:func:`shown`), and the error
itself escapes what a terminal would act on (:func:`wheelstream.errors.one_line`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from email.message import Message
from email.parser import HeaderParser, Parser
from pathlib import Path
from typing import NamedTuple

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename as _PackagingInvalidWheelFilename,
)
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from .._staged import StagedWheel
from ..errors import DiskError, IncompatibleWheel, InvalidWheelFilename, WheelMetadataError, shown

__all__ = [
    "WheelInfo",
    "check_requires_python",
    "check_tags",
    "parse_filename",
    "read_wheel_info",
    "requires_python_in_file",
]

_WHEEL_VERSION_MAX = 100  # characters: a Wheel-Version longer than this is not one
_WHEEL_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")


class WheelName(NamedTuple):
    """The parts of a wheel file name (PEP 427), name already canonical as pip's ``Wheel.name`` is."""

    name: NormalizedName
    version: Version
    tags: frozenset[Tag]


class WheelInfo(NamedTuple):
    """A wheel's identity plus the metadata that steers installing it."""

    filename: str
    name: NormalizedName
    version: Version
    dist_info: str  # top-level directory name, as spelt in the archive
    root_is_purelib: bool
    wheel_version: tuple[int, ...]
    console_scripts: Mapping[str, str]
    gui_scripts: Mapping[str, str]
    requires_python: str | None = None  # METADATA's ``Requires-Python``, as written


def parse_filename(filename: str) -> WheelName:
    """Split a wheel file name with ``packaging`` (as pip does), translating its error to ours."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except _PackagingInvalidWheelFilename as exc:
        raise InvalidWheelFilename(str(exc), wheel=filename) from exc
    except ValueError as exc:  # a version part of more than 4300 digits: ``int`` refuses it before packaging
        raise InvalidWheelFilename(f"invalid version: {exc}", wheel=filename) from None
    return WheelName(name, version, tags)


def check_tags(filename: str, wheel_tags: Iterable[Tag], supported: AbstractSet[Tag], python: str) -> None:
    """Refuse a wheel none of whose tags the target interpreter supports (``Interpreter.supported``: a set,
    so the test costs the wheel's few tags, not the interpreter's ~1,700)."""
    wanted = set(wheel_tags)
    if wanted.isdisjoint(supported):
        shown = ", ".join(sorted(str(t) for t in wanted))
        raise IncompatibleWheel(f"tags {shown} are not supported by {python}", wheel=filename)


def _find_dist_info(staged: StagedWheel, name: WheelName) -> str:
    """The one ``<name>-<version>.dist-info`` directory, whose name and version must be the file name's.

    Every top-level name counts, files too (pip's ``wheel_dist_info_dir``): a root *file* ``zzz-9.9.dist-info``
    beside the real directory was installed, and ``importlib.metadata`` then read it as a distribution."""
    tops = {path.split("/", 1)[0] for path in staged.files}
    found = sorted(top for top in tops if top.endswith(".dist-info"))
    if not found:
        raise WheelMetadataError(".dist-info directory not found", wheel=staged.filename)
    if len(found) > 1:
        shown_dirs = ", ".join(shown(each) for each in found[:5]) + (", ..." if len(found) > 5 else "")
        raise WheelMetadataError(
            f"multiple .dist-info directories found: {shown_dirs}", wheel=staged.filename
        )
    info = found[0]
    project, sep, version = info[: -len(".dist-info")].partition("-")
    if canonicalize_name(project) != name.name:
        raise WheelMetadataError(
            f".dist-info directory {shown(info)} does not match the project name {name.name!r}",
            wheel=staged.filename,
        )
    if not sep or _parse_version(version) != name.version:
        raise WheelMetadataError(
            f".dist-info directory {shown(info)} does not match the version {str(name.version)!r}",
            wheel=staged.filename,
        )
    return info


def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or a number of more than 4300 digits (``int`` refuses it)
        return None


def _read_text(staged: StagedWheel, member: str, *, required: bool) -> str | None:
    if member not in staged.files:
        if required:
            raise WheelMetadataError("file missing", wheel=staged.filename, entry=member)
        return None
    path = staged.root / member
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WheelMetadataError(f"not UTF-8: {exc}", wheel=staged.filename, entry=member) from exc
    except FileNotFoundError as exc:  # listed, so it was there: the cache's unpacked copy, cleaned meanwhile
        raise DiskError(
            f"{path} went before it was read (the cache cleaned meanwhile?) — run the same command again",
            wheel=staged.filename,
        ) from exc
    except OSError as exc:
        raise DiskError(f"cannot read {path}: {exc.strerror or exc}", wheel=staged.filename) from exc


def _wheel_version(text: str | None, filename: str, member: str) -> tuple[int, ...]:
    """Wheel-Version must be 1.x; a newer minor is installed with a warning, like pip does."""
    value = _header(Parser().parsestr(text or ""), "Wheel-Version")
    if value is None:
        raise WheelMetadataError("WHEEL is missing Wheel-Version", wheel=filename, entry=member)
    value = value.strip()
    # ASCII digits, and few enough of them for ``int`` (which refuses more than 4300 digits) to be quick.
    if len(value) > _WHEEL_VERSION_MAX or not _WHEEL_VERSION.fullmatch(value):
        raise WheelMetadataError(f"invalid Wheel-Version {shown(value)}", wheel=filename, entry=member)
    version = tuple(int(part) for part in value.split("."))
    if version[0] != 1:
        raise WheelMetadataError(
            f"Wheel-Version {value} is not supported (major version must be 1)",
            wheel=filename,
            entry=member,
        )
    return version


def _header(message: Message, field: str) -> str | None:
    """A header's first value as text (``compat32`` may hand back a ``Header`` object for odd bytes)."""
    value = message.get(field)
    return None if value is None else str(value)


def _check_metadata(text: str, name: WheelName, filename: str, member: str) -> str | None:
    """``METADATA``'s ``Name`` and ``Version`` must be the file name's (canonical name, :class:`Version` equality,
    as pip's ``_check_metadata_consistency`` compares them); its ``Requires-Python``, when it has one."""
    headers = HeaderParser().parsestr(text)
    meta_name = _header(headers, "Name")
    if meta_name is None:
        raise WheelMetadataError("METADATA has no Name", wheel=filename, entry=member)
    meta_version = _header(headers, "Version")
    if meta_version is None:
        raise WheelMetadataError("METADATA has no Version", wheel=filename, entry=member)
    if canonicalize_name(meta_name) != name.name:
        raise WheelMetadataError(
            f"inconsistent name: the file name has {name.name!r}, METADATA has {shown(meta_name)}",
            wheel=filename,
            entry=member,
        )
    version = _parse_version(meta_version)
    if version is None:
        raise WheelMetadataError(f"invalid Version {shown(meta_version)}", wheel=filename, entry=member)
    if version != name.version:
        raise WheelMetadataError(
            f"inconsistent version: the file name has {str(name.version)!r}, METADATA has {shown(meta_version)}",
            wheel=filename,
            entry=member,
        )
    return _header(headers, "Requires-Python")


_AT_LEAST = re.compile(r"\s*>=\s*(\d{1,4}(?:\.\d{1,4}){0,2})\s*")


def check_requires_python(
    requires: str | None, full_version: str, filename: str, python: str, warn: Callable[[str], None]
) -> None:
    """Refuse a wheel whose ``Requires-Python`` does not admit the target's ``X.Y.Z``, as pip and uv refuse it
    (pip's candidate always carries that requirement, ``--no-deps`` or not). One that is no specifier is
    skipped with a warning, as pip skips it."""
    if not requires or not full_version:
        return
    least = _AT_LEAST.fullmatch(requires)
    if least is not None:  # ``>=3.9``, most wheels' whole value: no need to import the specifiers (~3 ms)
        wanted = tuple(int(part) for part in least.group(1).split("."))
        have = tuple(int(part) for part in full_version.split("."))
        if have + (0,) * (len(wanted) - len(have)) >= wanted + (0,) * (len(have) - len(wanted)):
            return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specifiers = SpecifierSet(requires)
    except InvalidSpecifier:
        warn(f"{filename}: ignoring its invalid Requires-Python {shown(requires)}")
        return
    if not specifiers.contains(Version(full_version), prereleases=True):
        raise IncompatibleWheel(
            f"requires a different Python: {full_version} not in {shown(requires)} ({python})", wheel=filename
        )


def parse_entry_points(text: str) -> dict[str, dict[str, str]]:
    """Parse ``entry_points.txt`` the way ``importlib.metadata`` does (pip reads it through that).

    Lines are stripped; blank lines and ``#`` comments skipped; ``[group]`` opens a section; ``name = value``
    splits at the first ``=``. A later duplicate name overrides the earlier value, keeping its position.
    """
    groups: dict[str, dict[str, str]] = {}
    group: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
            continue
        if group is None:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"invalid entry point line {shown(line)}")
        groups.setdefault(group, {})[name.strip()] = value.strip()
    return groups


def requires_python_in_file(wheel_file: Path, staged: StagedWheel) -> str | None:
    """A wheel's ``Requires-Python`` read from the file itself, for a download (which writes none of the wheel's
    files): its METADATA found and checked as :func:`read_wheel_info` finds and checks it."""
    import zipfile

    name = parse_filename(staged.filename)
    member = f"{_find_dist_info(staged, name)}/METADATA"
    if member not in staged.files:
        raise WheelMetadataError("file missing", wheel=staged.filename, entry=member)
    try:
        with zipfile.ZipFile(wheel_file) as archive:
            data = archive.read(member)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:  # the file the download verified, gone or changed
        raise DiskError(f"cannot read {wheel_file}: {exc}", wheel=staged.filename) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WheelMetadataError(f"not UTF-8: {exc}", wheel=staged.filename, entry=member) from exc
    return _check_metadata(text, name, staged.filename, member)


def read_wheel_info(staged: StagedWheel, name: WheelName) -> WheelInfo:
    """Find the one ``.dist-info`` directory, check ``WHEEL`` and ``METADATA`` and read the script entry points."""
    info = _find_dist_info(staged, name)
    wheel_member = f"{info}/WHEEL"
    wheel_text = _read_text(staged, wheel_member, required=True)
    version = _wheel_version(wheel_text, staged.filename, wheel_member)
    metadata = Parser().parsestr(wheel_text or "")
    metadata_member = f"{info}/METADATA"
    requires_python = _check_metadata(
        _read_text(staged, metadata_member, required=True) or "", name, staged.filename, metadata_member
    )
    ep_member = f"{info}/entry_points.txt"
    ep_text = _read_text(staged, ep_member, required=False) or ""
    try:
        groups = parse_entry_points(ep_text)
    except ValueError as exc:
        raise WheelMetadataError(str(exc), wheel=staged.filename, entry=ep_member) from exc
    return WheelInfo(
        filename=staged.filename,
        name=name.name,
        version=name.version,
        dist_info=info,
        root_is_purelib=(_header(metadata, "Root-Is-Purelib") or "").lower() == "true",
        wheel_version=version,
        console_scripts=groups.get("console_scripts", {}),
        gui_scripts=groups.get("gui_scripts", {}),
        requires_python=requires_python,
    )
