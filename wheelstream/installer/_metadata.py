"""What a wheel says about itself: its file name, its tags, its ``WHEEL`` file, its entry points.

Checks follow pip (``_internal/utils/wheel.py``: ``parse_wheel``, ``wheel_dist_info_dir``, ``wheel_version``,
``check_compatibility``; ``_internal/resolution/resolvelib/factory.py``: ``_fail_if_link_is_unsupported_wheel``,
which pip applies to a wheel given by path or URL even with ``--target``), with one deliberate tightening: the
``.dist-info`` directory's project name must *equal* the file name's, where pip only checks a prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.parser import Parser

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
from ..errors import IncompatibleWheel, InvalidWheelFilename, WheelMetadataError

__all__ = ["WheelInfo", "check_tags", "parse_filename", "read_wheel_info"]


@dataclass(frozen=True, slots=True)
class WheelName:
    """The parts of a wheel file name (PEP 427), name already canonical as pip's ``Wheel.name`` is."""

    name: NormalizedName
    version: Version
    tags: frozenset[Tag]


@dataclass(frozen=True, slots=True)
class WheelInfo:
    """A wheel's identity plus the metadata that steers installing it."""

    filename: str
    name: NormalizedName
    version: Version
    dist_info: str  # top-level directory name, as spelt in the archive
    root_is_purelib: bool
    wheel_version: tuple[int, ...]
    console_scripts: Mapping[str, str]
    gui_scripts: Mapping[str, str]


def parse_filename(filename: str) -> WheelName:
    """Split a wheel file name with ``packaging`` (as pip does), translating its error to ours."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except _PackagingInvalidWheelFilename as exc:
        raise InvalidWheelFilename(str(exc), wheel=filename) from exc
    return WheelName(name, version, tags)


def check_tags(filename: str, wheel_tags: Iterable[Tag], supported: Iterable[Tag], python: str) -> None:
    """Refuse a wheel none of whose tags the target interpreter supports."""
    wanted = set(wheel_tags)
    if not any(tag in wanted for tag in supported):
        shown = ", ".join(sorted(str(t) for t in wanted))
        raise IncompatibleWheel(f"tags {shown} are not supported by {python}", wheel=filename)


def _find_dist_info(staged: StagedWheel, name: NormalizedName) -> str:
    tops = {path.split("/", 1)[0] for path in staged.files if "/" in path}
    found = sorted(top for top in tops if top.endswith(".dist-info"))
    if not found:
        raise WheelMetadataError(".dist-info directory not found", wheel=staged.filename)
    if len(found) > 1:
        raise WheelMetadataError(
            f"multiple .dist-info directories found: {', '.join(found)}", wheel=staged.filename
        )
    info = found[0]
    if canonicalize_name(info[: -len(".dist-info")].split("-", 1)[0]) != name:
        raise WheelMetadataError(
            f".dist-info directory {info!r} does not match the project name {name!r}", wheel=staged.filename
        )
    return info


def _read_text(staged: StagedWheel, member: str, *, required: bool) -> str | None:
    if member not in staged.files:
        if required:
            raise WheelMetadataError("file missing", wheel=staged.filename, entry=member)
        return None
    try:
        return (staged.root / member).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WheelMetadataError(f"not UTF-8: {exc}", wheel=staged.filename, entry=member) from exc


def _wheel_version(text: str | None, filename: str, member: str) -> tuple[int, ...]:
    """Wheel-Version must be 1.x; a newer minor is installed with a warning, like pip does."""
    value = Parser().parsestr(text or "")["Wheel-Version"]
    if value is None:
        raise WheelMetadataError("WHEEL is missing Wheel-Version", wheel=filename, entry=member)
    try:
        version = tuple(int(part) for part in value.strip().split("."))
    except ValueError:
        raise WheelMetadataError(
            f"invalid Wheel-Version {value.strip()!r}", wheel=filename, entry=member
        ) from None
    if version[0] != 1:
        raise WheelMetadataError(
            f"Wheel-Version {value.strip()} is not supported (major version must be 1)",
            wheel=filename,
            entry=member,
        )
    return version


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
            raise ValueError(f"invalid entry point line {line!r}")
        groups.setdefault(group, {})[name.strip()] = value.strip()
    return groups


def read_wheel_info(staged: StagedWheel, name: WheelName) -> WheelInfo:
    """Find the one ``.dist-info`` directory, check ``WHEEL`` and read the script entry points."""
    info = _find_dist_info(staged, name.name)
    wheel_member = f"{info}/WHEEL"
    wheel_text = _read_text(staged, wheel_member, required=True)
    version = _wheel_version(wheel_text, staged.filename, wheel_member)
    metadata = Parser().parsestr(wheel_text or "")
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
        root_is_purelib=metadata.get("Root-Is-Purelib", "").lower() == "true",
        wheel_version=version,
        console_scripts=groups.get("console_scripts", {}),
        gui_scripts=groups.get("gui_scripts", {}),
    )
