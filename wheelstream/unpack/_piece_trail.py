"""The piece trail: what a segmented download's connections wrote past the prefix since the last checkpoint,
made provable after kill -9.

The journal records the pieces past ``D`` (``held``) at every checkpoint: durable, but up to a checkpoint
interval old — and with several connections that interval holds several times the bytes. The prefix has its
trail (``_trail``); the pieces have this one, by the same reasoning:

* after each write a connection makes into the partial at an offset, it appends one line
  ``<offset> <length> <crc32>`` here. Never fsynced; lines of several connections interleave, each whole
  (one ``write`` on an ``O_APPEND`` descriptor, under a lock);
* a resume reads every line back and keeps the bytes a line names only if they are on disk and their CRC-32 is
  the one the line holds. Lines are independent (pieces are written in any order), so a bad one — zeroed or
  cut by a power loss, torn by the kill — drops that write alone.

What can be at an offset of the partial is the file's byte there (every piece is checked against the
download's validators before it is written) or garbage a crash left: CRC-32 tells the two apart, and what it
cannot catch the whole-file sha256 and every entry's CRC-32 still do. Writing costs a CRC of bytes already in
hand and one short write per 256 KiB; reading back costs one pass over the pieces a resume keeps.

The piece trail is the journal's fourth file (``partial/<key>.pieces``): created with the first piece, removed
with the journal.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["PieceTrail", "merged", "piece_trail_path", "proven_pieces"]

_MAX_LINE = 64  # two numbers and eight hex digits: anything longer is not ours
_MAX_PIECE = 64 << 20  # a connection writes at most 256 KiB at once: a longer line is not one of its


def piece_trail_path(journal_path: Path) -> Path:
    """The piece trail beside a journal header: ``partial/<key>.pieces``."""
    return journal_path.with_suffix(".pieces")


class PieceTrail:
    """Appends one line per piece write; thread-safe (every connection writes here)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def append(self, offset: int, data: bytes) -> None:
        line = f"{offset} {len(data)} {zlib.crc32(data):08x}\n".encode("ascii")
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _lines(path: Path, start: int, length: int) -> list[tuple[int, int, int]]:
    """``(offset, size, crc)`` of each well-formed line naming bytes within ``start..length``."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    found = []
    for raw in data.split(b"\n")[:-1]:  # the last piece has no newline: torn, or nothing
        parts = raw.split(b" ")
        if len(raw) > _MAX_LINE or len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        offset, size = int(parts[0]), int(parts[1])
        try:
            crc = int(parts[2], 16)
        except ValueError:
            continue
        if 0 < size <= _MAX_PIECE and start <= offset and offset + size <= length:
            found.append((offset, size, crc))
    return found


def proven_pieces(partial: Path, trail: Path, start: int, length: int) -> list[tuple[int, int]]:
    """The intervals within ``start..length`` of ``partial`` whose bytes the trail's lines bear out, merged and
    in order (see the module docstring)."""
    lines = sorted(_lines(trail, start, length))
    if not lines:
        return []
    proven: list[tuple[int, int]] = []
    covered = 0  # the furthest end proven so far; lines come in offset order
    with contextlib.suppress(OSError), open(partial, "rb", buffering=0) as file:
        for offset, size, crc in lines:
            if offset + size <= covered:
                continue  # inside what is proven already (a piece written twice: a steal's overlap)
            file.seek(offset)
            data = file.read(size)
            if len(data) == size and zlib.crc32(data) == crc:
                proven.append((offset, offset + size))
                covered = max(covered, offset + size)
    return merged(proven)


def merged(intervals: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """``(start, end)`` intervals, sorted, with the overlapping and touching ones joined."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted((interval[0], interval[1]) for interval in intervals):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined
