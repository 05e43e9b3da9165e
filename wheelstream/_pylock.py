"""Lock files (PEP 751, ``pylock.toml``): which wheels to install, chosen for the *target* interpreter.

``packaging.pylock`` parses and validates the file and applies the spec's installer rules in ``select``: the
lock's ``requires-python`` and ``environments`` must admit the target (else one error naming the lock), each
package's ``marker`` is evaluated with the requested extras and dependency groups (the lock's default groups
when none are named), and of a package's ``wheels`` the one whose tag ranks best for the target is taken —
never a file the lock does not list. What is left here:

* the marker environment and tags are the target interpreter's, probed *in* it;
* a lock-version with another major is an error; a newer minor a warning, as are keys this version of the
  spec does not know (``packaging`` ignores them);
* only wheels are installed: a package the lock gives as an sdist, a VCS checkout, a directory or an archive
  that is not a wheel is a one-line error naming it, before anything is downloaded (there are no build
  backends here); an ``archive`` whose file is a ``.whl`` (how uv and pip lock a ``name @ URL`` wheel) is
  installed like one of ``wheels``, and as a direct URL install (``direct_url.json``), which index wheels are not;
* ``path`` entries are resolved against the lock file's directory; a ``url`` must be http(s) or file;
* every wheel carries its hashes and size: the sha256 is verified while streaming, the size against the
  length the server announces (refused before the body is read) and again, with any other listed hash
  (``verify_locked``), on the finished file, before anything reaches the destination.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.pylock import (
    Package,
    PackageArchive,
    PackageSdist,
    PackageWheel,
    Pylock,
    PylockSelectError,
    PylockUnsupportedVersionError,
    PylockValidationError,
    is_valid_pylock_path,
)
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion

from wheelstream._urls import is_url, shown_url
from wheelstream.errors import DiskError, HashMismatch, UsageError, WheelError, one_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's machines run 3.11
    import tomli as tomllib

__all__ = ["LockedWheel", "is_lock_file", "read_lock", "verify_locked"]

_KNOWN_KEYS = frozenset(
    {
        "lock-version",
        "environments",
        "requires-python",
        "extras",
        "dependency-groups",
        "default-groups",
        "created-by",
        "packages",
        "tool",
    }
)
_SUPPORTED_MINOR = 0
_KINDS = {
    "PackageSdist": "an sdist",
    "PackageVcs": "a vcs checkout",
    "PackageDirectory": "a directory",
    "PackageArchive": "an archive",
}


def _check_asked_for(
    shown: str, lock: Pylock, extras: Collection[str], groups: Collection[str] | None
) -> None:
    """An ``--extra`` or ``--group`` the lock does not declare is a mistake on the command line (exit 2), not
    a lock that cannot be installed here: said before selecting, with what the lock does declare."""
    # PEP 751: a group may be named from either list (default-groups may name groups of their own)
    groups_declared = [*(lock.dependency_groups or ()), *(lock.default_groups or ())]
    for option, asked, declared in (
        ("--extra", extras, lock.extras or ()),
        ("--group", groups or (), groups_declared),
    ):
        unknown = sorted(
            {canonicalize_name(name) for name in asked} - {canonicalize_name(n) for n in declared}
        )
        if unknown:
            have = ", ".join(sorted(set(declared))) or "none"
            raise UsageError(
                f"{shown}: {option} {', '.join(unknown)}: not declared by the lock (it declares: {have})"
            )


class LockError(WheelError):
    """The lock cannot be installed for this interpreter (its environments, requires-python, an sdist)."""


@dataclass(frozen=True, slots=True)
class LockedWheel:
    """One wheel a lock selects: where it is, and everything it must be."""

    name: str  # canonical, as the lock names the package
    version: str | None
    source: str  # a URL, or an absolute path
    filename: str
    size: int | None
    hashes: Mapping[str, str] = field(default_factory=dict)  # algorithm -> hex, every one the lock lists
    direct: bool = False  # an ``archive`` (a direct URL or path reference), not one of an index's ``wheels``

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")


def is_lock_file(path: str | os.PathLike[str]) -> bool:
    """``pylock.toml`` or ``pylock.<name>.toml`` (PEP 751's names)."""
    return is_valid_pylock_path(Path(path))


def read_lock(
    path: Path,
    *,
    markers: Mapping[str, str],
    tags: Collection[Tag],
    extras: Collection[str] = (),
    groups: Collection[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[LockedWheel]:
    """The wheels ``path`` selects for an interpreter with ``markers`` and ``tags`` (see the module docstring)."""
    shown = one_line(str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{shown} is not a TOML file: {exc}") from exc
    except RecursionError:  # tomllib's parser recurses once per nested array or inline table
        raise UsageError(f"{shown} is not a TOML file this reader can take: it nests too deeply") from None
    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise UsageError(f"{shown}: {exc} (this installer reads lock-version 1.x)") from exc
    except PylockValidationError as exc:
        raise UsageError(f"{shown} is not a valid lock file: {exc}") from exc
    if warn is not None:
        _warn_about_newer(shown, lock, data, warn)
    _check_asked_for(shown, lock, extras, groups)
    try:
        selected = list(
            lock.select(environment=dict(markers), tags=list(tags), extras=extras, dependency_groups=groups)  # type: ignore[arg-type]
        )
    except PylockSelectError as exc:
        raise LockError(f"{shown} cannot be installed here: {exc}") from exc
    except (UndefinedEnvironmentName, UndefinedComparison, InvalidMarker) as exc:
        # ``extra`` in a package's marker (PEP 751 spells it ``extras``), ``extras`` in ``environments``
        raise UsageError(f"{shown} is not a valid lock file: a marker cannot be evaluated: {exc}") from None
    # not through symlinks: a path is recorded as pip and uv record it
    base = os.path.dirname(os.path.abspath(path))
    wheels: list[LockedWheel] = []
    for package, chosen in selected:
        what = one_line(f"{package.name} {package.version}" if package.version else str(package.name))
        if isinstance(chosen, PackageWheel):
            chosen = _highest_build(package, chosen, tags)
            filename, direct = chosen.filename, False
        elif isinstance(chosen, PackageArchive) and _archive_name(chosen).endswith(".whl"):
            filename, direct = _archive_name(chosen), True
            if chosen.subdirectory:
                raise LockError(f"{shown}: {what} is locked as a wheel archive with a subdirectory")
        else:
            raise LockError(f"{shown}: {_not_a_wheel(what, package, chosen)}")
        if chosen.url:
            _check_url(shown, what, chosen.url)
        source = chosen.url if chosen.url else os.path.normpath(os.path.join(base, str(chosen.path)))
        _check_wheel_names(shown, what, package, filename, chosen.url or str(chosen.path))
        for earlier in wheels:
            if earlier.source == source:  # one file cannot be two wheels (a download endpoint named twice)
                other = one_line(f"{earlier.name} {earlier.version}" if earlier.version else earlier.name)
                where = shown_url(source) if chosen.url else one_line(source)
                raise LockError(f"{shown}: {what} and {other} are locked as one file, {where}")
        wheels.append(
            LockedWheel(
                name=str(package.name),
                version=str(package.version) if package.version else None,
                source=source,
                filename=filename,
                size=chosen.size,
                hashes=_hashes(shown, what, chosen.hashes),
                direct=direct,
            )
        )
    return wheels


def _highest_build(package: Package, chosen: PackageWheel, tags: Collection[Tag]) -> PackageWheel:
    """Of the package's wheels whose best tag is the chosen one's, the highest build tag (the first listed of
    equals): ``select`` takes the first listed, where uv — and this installer's index lookups, as pip orders
    an index's files — take the highest build."""
    rank = {tag: number for number, tag in reversed(list(enumerate(tags)))}

    def best(wheel: PackageWheel) -> int | None:
        return min(
            (rank[tag] for tag in parse_wheel_filename(wheel.filename)[3] if tag in rank), default=None
        )

    level = best(chosen)
    equals = [wheel for wheel in package.wheels or () if best(wheel) == level]
    return max(equals, key=lambda wheel: parse_wheel_filename(wheel.filename)[2], default=chosen)


def _archive_name(archive: PackageArchive) -> str:
    """The file name an ``archive`` entry's path or URL ends in (PEP 751 gives archives no ``name``)."""
    return _last_segment(archive.url if archive.url else str(archive.path or ""))


def _not_a_wheel(what: str, package: Package, chosen: object) -> str:
    """Why a package that ``select`` gave something other than a wheel cannot be installed."""
    if isinstance(chosen, PackageSdist) and package.wheels:
        # select falls back to the sdist when no listed wheel's tags fit: that, not the sdist, is the news
        return (
            f"none of the wheels locked for {what} fits this interpreter's tags, and its "
            "sdist would need a build (wheelstream runs no build backend)"
        )
    kind = _KINDS.get(type(chosen).__name__, "something other than a wheel")
    if isinstance(chosen, PackageArchive):
        kind = "an archive that is not a wheel"
    return f"{what} is locked as {kind}, and only wheels can be installed (wheelstream runs no build backend)"


def _check_url(shown: str, what: str, url: str) -> None:
    """A lock's ``url`` is an absolute http(s) or file URL: one without a scheme would be taken for a path
    relative to wherever the command runs, neither the lock's directory nor what the lock meant."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        why = f"of scheme {scheme!r}, not http(s) or file" if scheme else "not an absolute URL"
        raise UsageError(f"{shown} is not a valid lock file: {what}'s url {shown_url(url)!r} is {why}")


def _hashes(shown: str, what: str, listed: Mapping[str, str]) -> dict[str, str]:
    """The lock's hashes by lower-case algorithm name. One algorithm listed twice (``sha256`` and
    ``SHA256``) with two values is refused: keeping either would leave the other unchecked; so is an
    algorithm ``hashlib`` does not know (it could not be checked)."""
    hashes: dict[str, str] = {}
    for key, value in listed.items():
        name, hex_value = key.lower(), str(value).lower()
        if hashes.setdefault(name, hex_value) != hex_value:
            raise UsageError(f"{shown} is not a valid lock file: {what} lists two different {name} hashes")
        try:
            hashlib.new(name)
        except ValueError:  # pip refuses it too; checked here, before anything is downloaded
            raise UsageError(
                f"{shown}: {what} lists a {one_line(name)!r} hash, an algorithm this Python does not know"
            ) from None
    return hashes


def _check_wheel_names(shown: str, what: str, package: Package, filename: str, where: str) -> None:
    """The wheel a package is locked with must be that package at that version (a lock naming six with
    idna's URL and hash installs nothing). PEP 751's ``name`` is the file name where the URL or path does not
    end in it (a download endpoint, ``…/files/123/content``): the download is named by it, as uv and pex name
    it. A URL or path that ends in a wheel's name must end in this wheel's, not another's."""
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise LockError(f"{shown}: {what} is locked with {one_line(filename)!r}: {exc}") from None
    if name != canonicalize_name(str(package.name)) or (
        package.version is not None and version != package.version
    ):
        raise LockError(
            f"{shown}: {what} is locked with the wheel {one_line(filename)}, which is {name} {version}"
        )
    own = _last_segment(where)
    try:
        named = parse_wheel_filename(own) if own.endswith(".whl") else None
    except (InvalidWheelFilename, InvalidVersion):
        named = None
    if named is not None and named != parse_wheel_filename(filename):
        kind = "URL" if is_url(where) else "path"
        raise LockError(
            f"{shown}: {what}'s {kind} names the wheel {one_line(own)!r}, not {one_line(filename)}"
        )


def _last_segment(where: str) -> str:
    """The file name a URL's path (percent-decoded) or a path ends in."""
    if is_url(where):
        where = urllib.parse.unquote(urllib.parse.urlsplit(where).path)
    return where.replace("\\", "/").rpartition("/")[2]


def _warn_about_newer(
    shown: str, lock: Pylock, data: Mapping[str, object], warn: Callable[[str], None]
) -> None:
    """PEP 751: a newer minor lock-version, and keys it may have brought, are warnings."""
    version = lock.lock_version
    if version.major == 1 and version.minor > _SUPPORTED_MINOR:
        warn(f"{shown}: lock-version {version} is newer than 1.{_SUPPORTED_MINOR}: what it adds is ignored")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        warn(f"{shown}: unknown keys ignored: {', '.join(one_line(key) for key in unknown)}")


def verify_locked(
    wheel: LockedWheel, file: Path, sha256: str, read: Callable[[Mapping[str, str]], dict[str, str]]
) -> None:
    """The finished wheel file against the lock's ``size`` and every listed hash (sha256 was checked while
    streaming; the others are read here by ``read``, with the sha256 again: ``Cache.unpacked_digests``, which
    raises for a file that is not the bytes unpacked). HashMismatch names what differs. A file gone is no error
    where the lock pins the sha256 the unpack verified (a cached tree, whose file an install of a local wheel
    does not keep): its size and other hashes are those bytes'."""
    others = {name: wheel.hashes[name] for name in wheel.hashes if name != "sha256"}
    if not others and wheel.size is None:
        return
    if wheel.hashes.get("sha256") == sha256 and not file.exists():
        return
    digests = read(others)
    try:
        size = file.stat().st_size  # (of the bytes just read: another file would have had another sha256)
    except OSError as exc:
        raise DiskError(
            f"cannot read {file} to check it: {exc.strerror or exc}", wheel=wheel.filename
        ) from None
    if wheel.size is not None and size != wheel.size:
        raise HashMismatch(f"the file is {size} bytes, the lock says {wheel.size}", wheel=wheel.filename)
    for name, expected in sorted(others.items()):
        if digests[name] != expected:
            raise HashMismatch(f"{name} is {digests[name]}, the lock says {expected}", wheel=wheel.filename)
