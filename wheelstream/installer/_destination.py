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
* Every written path gets its final RECORD hash and size, taken from the staged digest (which the caller
  holds) or from the bytes we wrote — never by reading a file back.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable
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
    """Writes into ``home``; ``written`` maps the home-relative ``/`` paths of the files it *made* (rewritten
    scripts, launchers, metadata) to their final (RECORD hash, size). A file taken from staging as it is has
    the staged digest, which the caller holds already: none is kept per staged file, as a wheel may have a
    hundred thousand of them."""

    home: Path
    link_mode: LinkMode = "copy"
    umask: int = field(default_factory=current_umask)
    written: dict[str, tuple[str, int]] = field(default_factory=dict)
    files_written: int = 0  # distinct files in the home
    bytes_written: int = 0
    linked: int = 0
    moved: int = 0
    # Set by the caller once a wheel is in the home: a later wheel's staged file may land where an earlier
    # one's is (within one wheel it never does: the installer refuses two files at one path), so it looks.
    shared: bool = False
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
        return path

    def _unlink_earlier(self, path: Path) -> bool:
        """Remove an earlier wheel's file at ``path`` (the home starts empty: only our own earlier write can be
        in the way), so a hardlink into the cache is never written through; whether there was one."""
        if not self.shared:
            return False
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                return False  # not a file: the write that follows fails as it would have
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def _file_mode(self, executable: bool) -> int:
        return pip_file_mode(executable, self.umask)

    def install_staged(self, src: Path, file: StagedFile, rel: str, movable: bool = False) -> None:
        """Materialise one staged file at ``rel`` by rename (a tree we own), hardlink (when allowed) or copy.
        Its RECORD hash is the digest computed while unpacking."""
        dest = self._prepare(rel)
        replaced = self._unlink_earlier(dest)
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
        if not replaced:
            self.files_written += 1

    def move_dir(self, src: Path, rel: str, files: int) -> bool:
        """Rename a whole staged directory of ``files`` files to ``rel`` (which must not exist yet). False
        (nothing moved) across file systems."""
        dest = self._path(rel)
        self._make_parent(dest)
        if not _same_file_system(os.rename, src, dest):
            return False
        self.files_written += files
        self.moved += files
        return True

    def write_bytes(self, rel: str, data: bytes, mode: Mode = "default") -> None:
        """Create ``rel`` fresh with ``data`` (rewritten scripts, launchers, metadata)."""
        self.write_blocks(rel, (data,), mode)

    def write_blocks(self, rel: str, blocks: Iterable[bytes], mode: Mode = "default") -> None:
        """Create ``rel`` fresh with the concatenation of ``blocks``, written as they come (the installed
        RECORD of a wheel with very many files is never held whole)."""
        dest = self._prepare(rel)
        try:
            stream = open(dest, "xb")  # noqa: SIM115 - closed below
            replaced = False
        except FileExistsError:  # our own earlier file (the archive's RECORD, an earlier wheel's file)
            if stat.S_ISDIR(os.lstat(dest).st_mode):
                raise
            os.unlink(dest)
            stream = open(dest, "xb")  # noqa: SIM115 - closed below
            replaced = True
        digest = hashlib.sha256()
        size = 0
        with stream:
            for block in blocks:
                stream.write(block)
                digest.update(block)
                size += len(block)
        if mode == "executable":
            os.chmod(dest, self._file_mode(True))
        elif mode == "launcher":
            os.chmod(dest, (os.stat(dest).st_mode | 0o555) & 0o7777)
        self.bytes_written += size
        if not replaced:
            self.files_written += 1
        self.written[rel] = (record_hash(digest.hexdigest()), size)
