"""The trail: what a killed process received past its last durable checkpoint, made provable.

After kill -9 the kernel still holds every byte the process wrote to the partial file (the page cache outlives
the process), but nothing says *which* of those bytes are good: a power loss can leave the same region zeroed,
cut short or holding stale blocks. The durable length ``D`` of the journal is the only promise that survives
both. The trail adds a second, cheaper one that holds for process death:

* after each block the tee appends to the partial file, it appends one line ``<length> <state>`` here —
  ``state`` is the whole-file sha256's running state (``_sha256``) over exactly ``0..length``. The line is
  written after the block's ``write`` returned and is never fsynced;
* a resume starts from the state the journal saved at ``D`` and hashes the partial forward, block by block:
  a line is *verified* when the bytes ``previous..length`` on disk bring the state to exactly the one the line
  holds. The first line that does not verify (bytes zeroed or cut by a power loss, a torn line, a line from
  another stream) ends the walk, and everything after it is dropped.

So the verified length ``V >= D`` is a prefix of the bytes the server sent, whatever a crash did to the tail:
a line can only verify if every byte before it is the one that was hashed (SHA-256 chaining), and no mix of
good and bad bytes survives. The hash is computed anyway (it verifies the wheel), so writing the trail costs
one short ``write`` per 1 MiB block; reading it back costs hashing ``D..V`` once, which a resume had to fetch
otherwise. Where the running state cannot be exported (``_sha256.state`` is ``None``) there is no trail and a
resume starts at ``D``, as it always did.

The trail is the journal's third file (``partial/<key>.trail``): created with it, removed with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from wheelstream.unpack import _sha256

__all__ = ["Trail", "Verified", "reach", "trail_path", "verify"]

_MAX_LINE = 512  # a line is a length and a 224-digit state; anything longer is not ours
_MAX_BLOCK = 16 << 20  # the tee writes ~1 MiB blocks: a line further on than this is not one of its


def trail_path(journal_path: Path) -> Path:
    """The trail beside a journal header: ``partial/<key>.trail``."""
    return journal_path.with_suffix(".trail")


class Trail:
    """Appends one line per block written to the partial file (network thread, under the tee's hash lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, length: int, state: str | None) -> None:
        if state is not None:
            os.write(self._fd, f"{length} {state}\n".encode("ascii"))  # O_APPEND: one short write, one line

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class Verified(NamedTuple):
    """How far the trail vouches for the partial file, and the whole-file hash at exactly that length."""

    length: int
    hasher: _sha256.RunningSha256
    trail_bytes: int  # the valid prefix of the trail file: lines past it are cut off before appending again


def _lines(path: Path) -> Iterator[tuple[int, int, str]]:
    """``(length, end of line in the file, state)`` of each well-formed line, stopping at the first that is not."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    end = 0
    for raw in data.split(b"\n")[:-1]:  # the last piece has no newline: a torn line, or nothing
        end += len(raw) + 1
        parts = raw.split(b" ")
        if len(raw) > _MAX_LINE or len(parts) != 2 or not parts[0].isdigit():
            return
        try:
            yield int(parts[0]), end, parts[1].decode("ascii")
        except UnicodeDecodeError:
            return


def reach(trail: Path, limit: int) -> int:
    """The furthest length a line of ``trail`` names within ``limit`` (the partial's size), unverified: what a
    resume could keep at best, for a decision that needs no proof (``fetch._errors.disk_error``)."""
    return max((length for length, _end, _state in _lines(trail) if length <= limit), default=0)


def verify(partial: Path, trail: Path, start: int, hasher: _sha256.RunningSha256) -> Verified:
    """Walk the trail from ``start`` (the journal's ``D``, which ``hasher`` covers exactly) as far as the bytes
    of ``partial`` bear it out; see the module docstring. ``hasher`` is consumed: use the result's."""
    verified = Verified(start, hasher, 0)
    state = hasher.state()
    if state is None:
        return verified
    position = start
    with open(partial, "rb", buffering=0) as file:
        file.seek(start)
        for length, end, expected in _lines(trail):
            if length <= position:
                if position > start:
                    break  # not increasing: not a trail this stream wrote
                verified = Verified(start, hasher, end)  # a line from before D: kept, not needed
                continue
            if length - position > _MAX_BLOCK:
                break  # no block the tee writes is this long
            data = file.read(length - position)
            if len(data) != length - position:
                break  # the file was cut short (a power loss can leave it so)
            candidate = _sha256.restore(state, position)
            if candidate is None:
                break
            candidate.update(data)
            if candidate.state() != expected:
                break
            state, position = expected, length
            verified = Verified(length, candidate, end)
    return verified
