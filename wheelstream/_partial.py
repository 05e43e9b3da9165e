"""The on-disk state of an unfinished wheel: raw bytes (``<key>.whl.part``) and a journal (``<key>.json``).

The checkpoint rules (DESIGN §2) — a checkpoint ``C`` is only written when all three hold:

1. every entry before ``C`` is extracted into staging, CRC/size-verified and flushed (the extractor syncs);
2. the partial file durably (fsync) holds ``D >= C`` bytes;
3. the journal records ``C``, the finished entries and ``D`` — written to a temp file, fsynced, renamed.

So after kill -9 or power loss the last journal on disk is the truth: bytes past ``D`` are untrusted and cut
off, staged files not listed are deleted, the parser restarts at ``C`` and is fed ``C..D`` from disk, and
the download continues at ``D``. Credentials never reach this file: URLs are stored redacted and a resume
takes them from the caller again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from wheelstream._staged import StagedFile
from wheelstream.zip import LocalEntry

__all__ = ["Journal", "PartialFile", "read_file_range"]

JOURNAL_VERSION = 1
_ENTRY_FIELDS = tuple(f.name for f in fields(LocalEntry))


@dataclass
class Journal:
    """Everything a later process needs to resume one download, and nothing secret."""

    url: str  # redacted original URL (the cache key is derived from it)
    final_url: str | None = None  # redacted, after redirects
    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None
    expected_sha256: str | None = None
    resumable: bool = True  # False when the server forced a Content-Encoding: ranges would not line up
    checkpoint: int = 0
    durable: int = 0
    deferred_at: int | None = None
    entries: list[LocalEntry] = field(default_factory=list)
    files: list[StagedFile] = field(default_factory=list)

    def save(self, path: Path) -> None:
        # Shallow on purpose: asdict() deep-copies every entry, which made checkpoints of a 12k-entry wheel
        # quadratic (docs/performance.md). The values are plain str/int/bool.
        payload: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        payload["version"] = JOURNAL_VERSION
        payload["entries"] = [[getattr(e, name) for name in _ENTRY_FIELDS] for e in self.entries]
        payload["files"] = [[f.name, f.size, f.sha256, f.executable] for f in self.files]
        text = json.dumps(payload, separators=(",", ":"))  # one C-encoder pass, one write
        tmp = path.with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        """The journal at ``path``, or ``None`` when it is missing, unreadable or from another version."""
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.pop("version", None) != JOURNAL_VERSION:
                return None
            payload["entries"] = [LocalEntry(*row) for row in payload["entries"]]
            payload["files"] = [StagedFile(*row) for row in payload["files"]]
            return cls(**payload)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    @property
    def validator(self) -> str | None:
        """The If-Range value: a strong ETag, else Last-Modified (RFC 9110 §13.1.5 forbids weak ETags)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


def read_file_range(path: Path, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as reader:
        reader.seek(start)
        remaining = end - start
        while remaining > 0:
            data = reader.read(min(chunk, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartialFile:
    """Append-only raw bytes of the wheel; ``sync`` makes what was written durable and returns ``D``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "r+b")
        self._file.seek(0, os.SEEK_END)
        self.length = self._file.tell()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.length += len(data)

    def sync(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        return self.length

    def truncate(self, length: int) -> None:
        self._file.flush()
        self._file.truncate(length)
        self._file.seek(length)
        self.length = length

    def read_range(self, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start..end`` from disk (replay after a resume, re-hashing, deferred entries)."""
        self._file.flush()
        return read_file_range(self.path, start, end)

    def close(self) -> None:
        self._file.close()
