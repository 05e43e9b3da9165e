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

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

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
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, name: str) -> Path:
        """The staging path of an archive name, refusing anything that would leave ``root``."""
        path = self.root.joinpath(*name.rstrip("/").split("/"))
        real = os.path.realpath(path)
        if os.path.commonpath([real, self._resolved_root]) != self._resolved_root or real == self._resolved_root:
            raise UnsafePath("entry would be written outside the staging directory", entry=name)
        return path

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
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open = open(path, "wb")  # noqa: SIM115 - closed in _finish or discard_unfinished
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
        """Flush the finished files to disk: part of writing a checkpoint (DESIGN §2 rule 1)."""
        if self._open is not None:
            self._open.flush()
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if hasattr(os, "sync"):
            os.sync()

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
