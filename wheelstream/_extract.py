"""Turn parser events into files in a staging directory — the I/O edge behind ``ZipStreamParser``.

Rules this module keeps:

* Nothing is written outside ``root``: names were validated by the parser, and every join is checked again
  here (defence in depth; a parser bug must not become a path traversal).
* Each file's sha256 and size are computed from the bytes as they are written, never by reading back
  (DESIGN §1, §8). They become :class:`~wheelstream._staged.StagedFile` records for RECORD verification.
* Only finished entries count. A file whose entry is in flight when the stream stops is deleted on resume
  (``discard_unfinished``): the checkpoint rule is that staging holds exactly the finished entries.
* Exec bits exist only in the central directory (external attributes), so they are applied when it arrives,
  the way pip applies them: ``0o777 & ~umask | 0o111`` for any entry with an x bit.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO, cast

from wheelstream._staged import StagedFile
from wheelstream.errors import DuplicateEntry, UnsafePath
from wheelstream.zip import (
    CentralDirectory,
    EntryData,
    EntryFinished,
    EntryStarted,
    Event,
)

__all__ = ["Extractor"]


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast("Callable[[int], int]", function)


_SYNCFS = _load_syncfs()
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _syncfs(fd: int) -> bool:
    """``syncfs(2)``: write back the one filesystem holding ``fd``; False when unavailable or failed."""
    return _SYNCFS is not None and _SYNCFS(fd) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Extractor:
    """Consumes :mod:`wheelstream.zip` events and writes the entries below ``root``."""

    def __init__(self, root: Path, finished: Mapping[str, StagedFile] | None = None) -> None:
        self.root = root
        self.files: dict[str, StagedFile] = dict(finished or {})
        self.executables: set[str] = set()
        self.written = 0  # files this extractor wrote (a resume's work, for reporting and tests)
        self._open: BinaryIO | None = None
        self._open_name: str | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._resolved_root = os.path.realpath(root)
        self._real_dirs: dict[str, str] = {}  # directory -> its realpath, for directories this extractor made
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, name: str) -> Path:
        """The staging path of an archive name, refusing anything that would leave ``root``."""
        path = self.root.joinpath(*name.rstrip("/").split("/"))
        parent = str(path.parent)
        real_parent = self._real_dirs.get(parent)
        if real_parent is None:
            real_parent = os.path.realpath(parent)
        real = os.path.join(real_parent, path.name)  # the leaf itself is opened with O_NOFOLLOW
        if os.path.commonpath([real, self._resolved_root]) != self._resolved_root or real == self._resolved_root:
            raise UnsafePath("entry would be written outside the staging directory", entry=name)
        return path

    def _make_parent(self, path: Path) -> None:
        """``mkdir -p`` the parent once per directory (12k entries share a few hundred directories)."""
        parent = str(path.parent)
        if parent not in self._real_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._real_dirs[parent] = os.path.realpath(parent)

    def handle(self, event: Event) -> None:
        if isinstance(event, EntryData):
            assert self._open is not None
            self._open.write(event.data)
            self._hash.update(event.data)
            self._size += len(event.data)
        elif isinstance(event, EntryStarted):
            self._start(event.header.name, event.header.offset)
        elif isinstance(event, EntryFinished):
            self._finish(event.entry.name)
        elif isinstance(event, CentralDirectory):
            self.apply_modes(r.name for r in event.records if r.is_executable and not r.is_dir)

    def handle_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.handle(event)

    def _start(self, name: str, offset: int) -> None:
        path = self.path_for(name)
        try:
            if name.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
                return
            self._make_parent(path)
            try:
                fd = os.open(path, _CREATE_FLAGS, 0o666)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise UnsafePath("entry is a symbolic link in the staging directory", entry=name) from None
            self._open = os.fdopen(fd, "wb")  # closed in _finish or discard_unfinished
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise DuplicateEntry("entry collides with a file or directory of another entry", entry=name,
                                 offset=offset) from None
        self._open_name = name
        self._hash = hashlib.sha256()
        self._size = 0

    def _finish(self, name: str) -> None:
        if self._open is None:  # directory entry
            return
        self._open.close()
        self._open = None
        self._open_name = None
        self.files[name] = StagedFile(name, self._size, self._hash.hexdigest(), executable=False)
        self.written += 1

    def sync(self) -> None:
        """Flush the finished files to disk: part of writing a checkpoint (DESIGN §2 rule 1).

        One ``syncfs`` of the staging filesystem instead of ``os.sync()`` (every filesystem on the machine)
        or one ``fsync`` per file (a journal commit each: 12k of them for torch).
        """
        if self._open is not None:
            self._open.flush()
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if not _syncfs(fd):
                os.fsync(fd)
                if hasattr(os, "sync"):
                    os.sync()
        finally:
            os.close(fd)

    def discard_unfinished(self) -> None:
        """Delete the entry in flight, if any, so staging holds only finished entries."""
        if self._open is not None:
            self._open.close()
            self._open = None
        if self._open_name is not None:
            self.path_for(self._open_name).unlink(missing_ok=True)
            self._open_name = None

    def apply_modes(self, executable_names: Iterable[str]) -> None:
        mode = 0o777 & ~_umask() | 0o111
        for name in executable_names:
            staged = self.files.get(name)
            if staged is None:
                continue
            os.chmod(self.path_for(name), mode)
            self.files[name] = StagedFile(staged.name, staged.size, staged.sha256, executable=True)
            self.executables.add(name)
