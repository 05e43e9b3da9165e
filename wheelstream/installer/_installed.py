"""What an environment already holds: its distributions, found by their ``.dist-info``, and what removing
one takes, read from its RECORD as pip's uninstall reads it.

pip's rules, kept (``_internal/req/req_uninstall.py``):

* a distribution is removed by its RECORD: every listed file, and for each ``.py`` the bytecode beside it
  (``x.pyc``, ``x.pyo``) and in ``__pycache__`` (``x.*.pyc`` — every interpreter's, where pip removes only its
  own); its ``.dist-info`` directory goes whole; directories left empty go too;
* without a RECORD a distribution cannot be removed: a one-line error names it and the tool that installed
  it (``INSTALLER``); nothing is touched;
* files RECORD does not list are left alone.

And one pip does not have: a RECORD row that points outside the environment's root — lexically (``../``) or
through a symlink — is never followed; it is left out and named in a warning.
"""

from __future__ import annotations

import csv
import email.parser
import functools
import json
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ..errors import InstallConflict, one_line
from ._environment import Environment

__all__ = ["Installed", "Removal", "find_installed", "installed_distributions", "real_relative", "removal"]


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed distribution."""

    name: str  # as METADATA spells it (else the directory)
    version: str
    dist_info: Path  # or a legacy ``.egg-info``, or the ``.egg-link`` of a setuptools develop install
    installer: str  # INSTALLER's first line, "" when there is none

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def direct_url_record(self) -> dict[str, object] | None:
        """Its ``direct_url.json`` (PEP 610), when it has one that reads as a JSON object: what it was installed
        from, for a path or URL install."""
        try:
            with open(self.dist_info / "direct_url.json", encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def editable(self) -> bool:
        """An editable install (PEP 660: ``direct_url.json`` with ``dir_info.editable``). A wheel of the same
        version named by a path or URL replaces it, as pip's and uv's do; one an index gives does not."""
        info = (self.direct_url_record or {}).get("dir_info")
        return isinstance(info, dict) and info.get("editable") is True

    def installed_from(self, url: str, sha256: str | None) -> bool:
        """Whether it is the install of the wheel archive at ``url`` (credentials aside), of that ``sha256`` where
        both sides know one: what a lock's ``archive`` asks of an installed distribution (uv's rule)."""
        recorded = self.direct_url_record or {}
        info = recorded.get("archive_info")
        where = recorded.get("url")
        if not isinstance(info, dict) or not isinstance(where, str) or _bare(where) != _bare(url):
            return False
        hashes = info.get("hashes")
        known = hashes.get("sha256") if isinstance(hashes, dict) else None
        legacy = info.get("hash")
        if known is None and isinstance(legacy, str) and legacy.startswith("sha256="):
            known = legacy.removeprefix("sha256=")
        return sha256 is None or not isinstance(known, str) or known.lower() == sha256.lower()


def _bare(url: str) -> str:
    """What two records of one archive share: a ``file:`` URL's real path (uv writes ``+`` where
    ``Path.as_uri`` writes ``%2B``, and either may name a symlink), else the URL without its userinfo and
    fragment, its scheme and host lower-cased and a default port dropped."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return os.path.realpath(urllib.request.url2pathname(parts.path))
    host = parts.netloc.rpartition("@")[2].lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default is not None and host.endswith(default):
        host = host.removesuffix(default)
    return urllib.parse.urlunsplit((scheme, host, parts.path, parts.query, ""))


def _read_metadata(dist_info: Path, file: str = "METADATA") -> tuple[str, str] | None:
    """Name and Version from the metadata file (an ``.egg-info`` may be that file itself)."""
    path = dist_info / file if dist_info.is_dir() else dist_info
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            headers = email.parser.Parser().parse(handle, headersonly=True)
    except OSError:
        return None
    name, version = headers.get("Name"), headers.get("Version")
    return (str(name), str(version)) if name and version else None


def _develop_install(egg_link: Path) -> Installed | None:
    """A setuptools ``develop`` install (``pip install -e`` before PEP 660): ``<name>.egg-link`` names the
    project directory, whose ``<name>.egg-info`` holds the metadata. pip lists these and removes them; seen
    here so that they are listed, and never silently left beside a wheel of the same name."""
    try:
        with open(egg_link, encoding="utf-8", errors="replace") as handle:
            location = handle.readline().strip()
    except OSError:
        return None
    key = canonicalize_name(egg_link.name[: -len(".egg-link")])
    project = egg_link.parent / location  # relative to the lib directory, as setuptools resolves it
    try:
        candidates = sorted(entry for entry in os.listdir(project) if entry.endswith(".egg-info"))
    except OSError:
        candidates = []
    for entry in candidates:
        metadata = _read_metadata(project / entry, "PKG-INFO")
        if metadata is not None and canonicalize_name(metadata[0]) == key:
            return Installed(metadata[0], metadata[1], egg_link, "")
    return Installed(egg_link.name[: -len(".egg-link")], "(develop)", egg_link, "") if key else None


def installed_distributions(env: Environment) -> list[Installed]:
    """Every ``*.dist-info`` — and legacy ``*.egg-info`` and ``*.egg-link`` — in the environment's lib
    directories, by name (a ``.dist-info`` wins over an ``.egg-info`` of the same name)."""
    return distributions_in(env.lib_dirs)


def distributions_in(directories: Iterable[Path]) -> list[Installed]:
    """:func:`installed_distributions` of any directories (a ``--target``'s, say)."""
    found: dict[str, Installed] = {}
    for lib in directories:
        try:
            names = sorted(os.listdir(lib))
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".egg-link"):
                develop = _develop_install(lib / entry)
                if develop is not None:
                    found.setdefault(develop.key, develop)
                continue
            legacy = entry.endswith(".egg-info")
            if not (entry.endswith(".dist-info") and (lib / entry).is_dir()) and not legacy:
                continue
            stem = entry.rsplit(".", 1)[0]
            name, _, version = stem.partition("-") if legacy else stem.rpartition("-")
            version = version.split("-py", 1)[0] if legacy else version  # name-1.0-py3.11.egg-info
            metadata = _read_metadata(lib / entry, "PKG-INFO" if legacy else "METADATA")
            if metadata is not None:
                name, version = metadata
            if not name:
                continue
            try:
                installer = (lib / entry / "INSTALLER").read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                installer = ""
            dist = Installed(name, version, lib / entry, installer.splitlines()[0] if installer else "")
            earlier = found.setdefault(dist.key, dist)
            if earlier is not dist and not legacy and earlier.dist_info.suffix in (".egg-info", ".egg-link"):
                found[dist.key] = dist  # ``up-0.9-py3.11.egg-info`` sorts before ``up-1.0.dist-info``
    return sorted(found.values(), key=lambda d: d.key)


def find_installed(env: Environment, name: str) -> Installed | None:
    key = canonicalize_name(name)
    return next((d for d in installed_distributions(env) if d.key == key), None)


@dataclass(frozen=True, slots=True)
class Removal:
    """What removing one distribution takes: existing files, ``/`` paths relative to the root's real path (see
    :func:`real_relative`), sorted."""

    dist: Installed
    files: tuple[str, ...]
    outside: tuple[str, ...]  # RECORD rows not followed: they point outside the root


class _Bytecode:
    """The compiled forms of a source file that may lie beside it: ``x.pyc``, ``x.pyo``, and the
    ``__pycache__/x.<tag>[.opt-N].pyc`` files — each ``__pycache__`` listed once, not globbed per source (a
    glob lists the whole directory every time: uninstalling a package of 10,000 compiled modules took a
    minute), and matched exactly (``x.*.pyc`` also took ``x.y.<tag>.pyc``, module ``x.y``'s)."""

    _CACHED = re.compile(r"(.+?)\.[A-Za-z0-9_-]+(?:\.opt-[0-9]+)?\.pyc")

    def __init__(self) -> None:
        self._by_folder: dict[str, dict[str, list[str]]] = {}

    def of(self, path: str) -> Iterator[str]:
        folder, file = os.path.split(path)
        base = file[: -len(".py")]
        yield os.path.join(folder, base + ".pyc")
        yield os.path.join(folder, base + ".pyo")
        cached = os.path.join(folder, "__pycache__")
        yield from (os.path.join(cached, name) for name in self._listed(cached).get(base, ()))

    def _listed(self, cached: str) -> dict[str, list[str]]:
        by_base = self._by_folder.get(cached)
        if by_base is None:
            by_base = self._by_folder[cached] = {}
            try:
                names = os.listdir(cached)
            except OSError:  # none there (or not a directory)
                names = []
            for name in names:
                match = self._CACHED.fullmatch(name)
                if match is not None:
                    by_base.setdefault(match.group(1), []).append(name)
        return by_base


def removal(env: Environment, dist: Installed, warn: Callable[[str], None] | None = None) -> Removal:
    """The files removing ``dist`` takes (see the module docstring); InstallConflict when it has no RECORD."""
    if dist.dist_info.name.endswith(".egg-link"):
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}: it is a setuptools develop install "
            f"({one_line(dist.dist_info.name)}); remove it with pip first"
        )
    if dist.dist_info.name.endswith(".egg-info"):
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}: it was installed as an .egg-info "
            "(setuptools' legacy format), whose files wheelstream cannot tell apart; remove it with pip first"
        )
    record = dist.dist_info / "RECORD"
    if not record.is_file():
        by = f" (installed by {one_line(dist.installer)})" if dist.installer else ""
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}{by}: it has no RECORD, so what it "
            "installed is unknown; remove it with the tool that installed it"
        )
    root = os.path.abspath(env.root)
    real_root = os.path.realpath(root)
    real_dist_info = os.path.realpath(dist.dist_info)
    if not _inside(real_dist_info, real_root):  # a link out of the environment: pip leaves such a one too
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}: its {one_line(dist.dist_info.name)} "
            f"is outside {one_line(root)} (it leads to {one_line(real_dist_info)}); remove it by hand"
        )
    base = str(dist.dist_info.parent)
    files: set[str] = set()
    outside: list[str] = []
    try:
        # Strictly UTF-8 (PEP 376/627): a RECORD in another encoding names its non-ASCII files by other bytes
        # than the disk does, and removing by it would leave them behind in silence (pip refuses it too).
        with open(record, encoding="utf-8", newline="") as handle:
            rows = [row[0] for row in csv.reader(handle) if row and row[0]]
    except UnicodeDecodeError as exc:
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}: its RECORD is not UTF-8 "
            f"(byte {exc.start}), so its non-ASCII file names cannot be told; remove its files by hand"
        ) from None
    except csv.Error as exc:  # a RECORD zeroed by a power loss, a quote left open
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}: its RECORD cannot be read ({exc}); "
            "its files must be removed by hand (no installer can tell which they are)"
        ) from exc
    if (
        not rows
    ):  # a RECORD emptied by a power loss: removing the .dist-info alone would leave the files untracked
        raise InstallConflict(
            f"cannot remove {one_line(dist.name)} {one_line(dist.version)}: its RECORD lists no file, so what it "
            "installed is unknown; remove it with the tool that installed it"
        )
    candidates: list[str] = []
    bytecode = _Bytecode()
    realpath = functools.cache(os.path.realpath)  # a folder's real path, resolved once for all its files

    def inside(path: str) -> bool:
        return _inside(path, root) and _inside(realpath(os.path.dirname(path)), real_root)

    for row in rows:
        full = os.path.normpath(os.path.join(base, row))
        if not inside(full):
            outside.append(row)
            continue
        candidates.append(full)
        if full.endswith(".py"):  # a __pycache__ that is a link out of the environment is not followed either
            candidates.extend(compiled for compiled in bytecode.of(full) if inside(compiled))
    for folder, _dirs, names in os.walk(dist.dist_info):  # the .dist-info goes whole: what of it is inside
        candidates.extend(path for name in names if inside(path := os.path.join(folder, name)))
    for full in candidates:
        if (os.path.lexists(full) and not os.path.isdir(full)) or os.path.islink(full):
            files.add(real_relative(full, real_root, realpath))
    if outside and warn is not None:
        shown = ", ".join(one_line(row) for row in outside[:3]) + (" …" if len(outside) > 3 else "")
        warn(f"{one_line(dist.name)}: RECORD rows outside {root} are not followed: {shown}")
    return Removal(dist, tuple(sorted(files)), tuple(outside))


def real_relative(path: str, real_root: str, realpath: Callable[[str], str] = os.path.realpath) -> str:
    """``path`` relative to the environment's real root, its directory's symlinks resolved: one spelling per file,
    whichever name reached it (a venv's ``lib64`` is often a link to ``lib``, and platlib says ``lib64``).
    ``realpath``: a cached one, where many files share their folders."""
    folder, name = os.path.split(path)
    return os.path.relpath(os.path.join(realpath(folder), name), real_root).replace(os.sep, "/")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
