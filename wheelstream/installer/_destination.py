"""The destination role: write files into the temporary home and remember what each one now holds.

Like pypa/installer's ``destinations.py``, this is the only place that creates installed files, so the rules
live here once:

* Modes follow pip: a file is created with the umask's default (``0o666 & ~umask``); a file the archive marked
  executable gets ``0o777 & ~umask | 0o111`` (``set_extracted_file_to_default_mode_plus_executable`` in
  ``_internal/utils/unpacking.py``); a launcher gets ``| 0o555`` after creation (distlib
  ``FileOperator.set_executable_mode``). Directories come from ``os.makedirs`` with the umask.
* A path that already exists is unlinked before writing, as pip does, so a hardlink into the unpacked-wheel
  cache is never written *through*.
* ``hardlink`` mode links a staged file only when its inode already has the mode the installed file must have
  (a link cannot get its own mode without changing the cache) and falls back to copying across file systems.
* ``move`` mode renames the files of a tree this process owns (``StagedWheel.movable``) — whole directories
  at a time where the installer allows it — so the cold path creates every file once, like pip; a shared
  cache tree is copied instead. Across file systems it copies.
* Every written path gets its final RECORD hash and size, taken from the staged digest or from the bytes we
  wrote — never by reading a file back.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .._staged import StagedFile, current_umask, pip_file_mode
from ._records import record_hash

__all__ = ["HomeWriter", "LinkMode"]

LinkMode = Literal["move", "copy", "hardlink"]
Mode = Literal["default", "executable", "launcher"]

_CROSS_DEVICE = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP}


def _same_file_system(operation: Callable[[Path, Path], None], src: Path, dest: Path) -> bool:
    """Rename or link ``src`` to ``dest``; False when that cannot be done here (another file system, a file
    system without hardlinks, too many links), so the caller copies instead."""
    try:
        operation(src, dest)
    except OSError as exc:
        if exc.errno not in _CROSS_DEVICE:
            raise
        return False
    return True


@dataclass
class HomeWriter:
    """Writes into ``home``; ``written`` maps home-relative ``/`` paths to their final (RECORD hash, size)."""

    home: Path
    link_mode: LinkMode = "copy"
    umask: int = field(default_factory=current_umask)
    written: dict[str, tuple[str, int]] = field(default_factory=dict)
    bytes_written: int = 0
    linked: int = 0
    moved: int = 0
    _made_dirs: set[Path] = field(default_factory=set)  # 12k files share a few hundred dirs: mkdir once each

    def _path(self, rel: str) -> Path:
        path = self.home / rel
        if os.path.isabs(rel) or rel == ".." or rel.startswith("../") or "/../" in rel:
            raise ValueError(f"refusing to write outside the install home: {rel!r}")
        return path

    def _make_parent(self, path: Path) -> None:
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(path.parent)

    def _prepare(self, rel: str) -> Path:
        path = self._path(rel)
        self._make_parent(path)
        if rel in self.written:  # the home starts empty: only our own earlier write can be in the way
            path.unlink()
        return path

    def _file_mode(self, executable: bool) -> int:
        return pip_file_mode(executable, self.umask)

    def _record_staged(self, rel: str, file: StagedFile) -> None:
        """A file taken from staging as it is: its RECORD hash is the digest computed while unpacking."""
        self.written[rel] = (record_hash(file.sha256), file.size)

    def install_staged(self, src: Path, file: StagedFile, rel: str, movable: bool = False) -> None:
        """Materialise one staged file at ``rel`` by rename (a tree we own), hardlink (when allowed) or copy."""
        dest = self._prepare(rel)
        wanted = self._file_mode(file.executable)
        if movable and self.link_mode == "move" and _same_file_system(os.rename, src, dest):
            if (os.stat(dest).st_mode & 0o7777) != wanted:
                os.chmod(dest, wanted)
            self.moved += 1
        elif (
            self.link_mode == "hardlink"
            and (os.stat(src).st_mode & 0o7777) == wanted
            and _same_file_system(os.link, src, dest)
        ):
            self.linked += 1
        else:
            shutil.copyfile(src, dest)
            if file.executable:
                os.chmod(dest, wanted)
            self.bytes_written += file.size
        self._record_staged(rel, file)

    def move_dir(self, src: Path, rel: str, files: list[tuple[str, StagedFile]]) -> bool:
        """Rename a whole staged directory to ``rel`` (which must not exist yet); ``files`` are the home paths
        and digests of every file in it. False (nothing moved) across file systems."""
        dest = self._path(rel)
        self._make_parent(dest)
        if not _same_file_system(os.rename, src, dest):
            return False
        for home_rel, file in files:
            self._record_staged(home_rel, file)
        self.moved += len(files)
        return True

    def write_bytes(self, rel: str, data: bytes, mode: Mode = "default") -> None:
        """Create ``rel`` fresh with ``data`` (rewritten scripts, launchers, metadata)."""
        dest = self._prepare(rel)
        with open(dest, "xb") as stream:
            stream.write(data)
        if mode == "executable":
            os.chmod(dest, self._file_mode(True))
        elif mode == "launcher":
            os.chmod(dest, (os.stat(dest).st_mode | 0o555) & 0o7777)
        self.bytes_written += len(data)
        self.written[rel] = (record_hash(hashlib.sha256(data).hexdigest()), len(data))
