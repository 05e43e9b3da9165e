"""The hand-off between unpacking and installing: an unpacked wheel on disk plus what we learnt while writing it.

The extractor fills a directory with the archive's files (names exactly as in the zip, ``/`` separated) and
records each file's sha256 and size *as it wrote them*, so nothing downstream ever re-reads a file to hash it.
The installer consumes a :class:`StagedWheel` — from the unpacked-wheel cache (``wheels/<sha256>/``, shared:
copy or hardlink from it, never write it) or freshly claimed by this process (``movable``: its files may be
moved into the target, whole directories at a time).
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["StagedFile", "StagedWheel", "current_umask", "pip_dir_mode", "pip_file_mode", "tree_intact"]


def current_umask() -> int:
    """The process umask, read without changing it where the system can say (Linux 4.7+: ``/proc/self/status``).

    pip's ``current_umask`` sets it to 0 and back: in a library that is a window in which a file any other
    thread of the caller creates is world-writable (an install read it five times). Only where ``/proc`` cannot
    answer is it read that way.
    """
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
        try:
            status = os.read(fd, 1024)  # "Umask:" is the second line
        finally:
            os.close(fd)
        at = status.find(b"\nUmask:")
        if at >= 0:
            return int(status[at + 7 : status.find(b"\n", at + 7)], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pip_file_mode(executable: bool, umask: int) -> int:
    """The mode pip gives an extracted file: the umask's default, or ``0o777 & ~umask | 0o111`` when the
    archive marked it executable (``set_extracted_file_to_default_mode_plus_executable``). Staging and the
    installer both keep to it, so a staged file can be moved or linked into a target as it is."""
    return (0o777 & ~umask | 0o111) if executable else (0o666 & ~umask)


def pip_dir_mode(umask: int) -> int:
    """The mode of a directory ``os.makedirs`` creates."""
    return 0o777 & ~umask


class StagedFile(NamedTuple):
    """One regular file of the archive as it was written into the staging tree."""

    name: str  # archive name, '/'-separated, validated safe
    size: int
    sha256: str  # hex digest of the inflated content
    executable: bool  # pip sets u+x (and g/o+x) when the zip's external attributes had any x bit


@dataclass(frozen=True)
class StagedWheel:
    """An unpacked wheel: ``root / name`` holds each file of ``files``."""

    filename: str  # the wheel's file name, e.g. ``six-1.16.0-py2.py3-none-any.whl``
    root: Path
    files: Mapping[str, StagedFile]
    movable: bool = False  # this process owns ``root``: the installer may move files out of it
    # Directories that exist in ``root`` only because of a directory entry (no file below them). pip creates
    # no directory for a directory entry, so a whole-directory move must not carry these along.
    empty_dirs: frozenset[str] = frozenset()

    def write_manifest(self, path: Path) -> None:
        """Persist the digests so a cached tree can be installed without re-hashing, and each file's
        modification time as it lies in the tree now (:func:`tree_intact`). ``path`` lies *beside* the tree,
        never in it: every name inside the tree is the wheel's to choose, and a wheel file named like the
        manifest must not be able to overwrite it (or be overwritten by it)."""
        base = os.fspath(self.root)
        payload = {
            "filename": self.filename,
            "files": [
                [f.name, f.size, f.sha256, f.executable, os.lstat(f"{base}/{f.name}").st_mtime_ns]
                for f in self.files.values()
            ],
        }
        # a name of this writer's own: two processes that publish the same bytes may both write it
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read_manifest(cls, root: Path, path: Path) -> StagedWheel:
        """The tree at ``root`` as the manifest at ``path`` describes it."""
        payload = json.loads(path.read_text(encoding="utf-8"))
        files = {
            name: StagedFile(name, int(size), str(sha), bool(x))
            for name, size, sha, x, *_ in payload["files"]
        }
        return cls(filename=str(payload["filename"]), root=root, files=files)


def tree_intact(root: Path, manifest: Path) -> StagedWheel | None:
    """The tree at ``root`` as ``manifest`` describes it, if every file it names is still a regular file of its
    size and modification time there; else None (a torn manifest too).

    A cached tree is installed without reading its files again (that is what the cache is for): this is what
    can be known from a ``stat`` each. It catches a file deleted or truncated, and one edited in place — through
    the hard link a ``--link-mode hardlink`` install made, say — whose new time the edit sets; not an edit that
    puts the old time back, which takes intent in an owner-only cache. Manifests from before the times were
    kept are held to the sizes alone. (Names are joined as strings: a ``Path`` per file costs more than its
    ``lstat``, docs/performance.md#d-cached-tree-check.)"""
    try:
        payload = json.loads(manifest.read_text(encoding="utf-8"))
        base = os.fspath(root)
        files = {}
        for name, size, sha, executable, *stamp in payload["files"]:
            info = os.lstat(f"{base}/{name}")
            if not stat.S_ISREG(info.st_mode) or info.st_size != int(size):
                return None
            if stamp and info.st_mtime_ns != int(stamp[0]):
                return None
            files[name] = StagedFile(name, int(size), str(sha), bool(executable))
        return StagedWheel(filename=str(payload["filename"]), root=root, files=files)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def empty_directory_entries(entry_names: Iterable[str], files: Iterable[str]) -> frozenset[str]:
    """The directory entries (``name/``) with no file below them, as ``/``-separated names without the slash."""
    dirs = [name.rstrip("/") for name in entry_names if name.endswith("/")]
    if not dirs:
        return frozenset()  # the common case (setuptools and flit write no directory entries): no walk
    parents: set[str] = set()
    for name in files:
        parts = name.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(d for d in dirs if d not in parents)
