"""The pending checkpoint: what a checkpoint still on its way to disk proves after a kill.

A checkpoint counts once it is durable, in the order staging → partial → journal (DESIGN §2). The first step,
``syncfs`` of staging, writes back everything extracted since the last one: for torch up to ~700 MB, 0.1-3 s
on ext4. A kill -9 inside it used to cost everything since the last *durable* checkpoint, and that one can be
far behind: while the parser inflates a large entry, the writers are still working through thousands of
small files, and a periodic checkpoint stops at the first file not yet written. Seen: a kill in a stall, while
the idle checkpoint synced, left C = 28 MB with D = 172 MB, and the rerun extracted 144 MB of the archive
again (docs/performance.md, D-pending-checkpoint).

So before that sync the syncer writes, unsynced, the snapshot's log lines where the journal's next save will
write them, and then this record, ``partial/<key>.pending``::

    {"base_bytes": B, "base_lines": N, "end_bytes": E, "lines": n, "sha256": <hex of log bytes B..E>,
     "checkpoint": C', "deferred_at": null}

A resume (``fetch._resume``) takes it only when all of this holds, and otherwise ignores it:

* its base is exactly the durable header's log (``log_bytes``, ``log_lines``): it is the snapshot that came
  right after the durable checkpoint, and not one a later durable save has made stale;
* the log bytes ``B..E`` hash to its ``sha256`` and parse as ``n`` entries in stream order, the first at the
  journal's ``C``, all before ``C'``; ``deferred_at`` is the journal's;
* ``C'`` lies within the bytes the trail proves the partial holds (``_trail``: ``V``);

and then only as far as staging bears it out (:func:`verified_count`): each file it lists must be a regular
file of the recorded size whose bytes hash to the recorded sha256, read back from disk. The first entry whose
file does not becomes the checkpoint: its local header is a record boundary with every entry before it
written, the same boundary a periodic checkpoint stops at. Entries from there on are extracted again.

Why this is safe: after a process death the page cache still holds every file, line and record the process
wrote, and the hashes prove which. After a power loss any of them may be missing, zeroed, cut short or stale;
then a check fails and the resume starts at the journal's ``C`` as before, or at the first file that did not
survive. The files adopted this way were never synced, so the resumed stream syncs staging before its first
checkpoint records them (``Checkpoints.staging_unsynced``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from wheelstream._staged import StagedFile
from wheelstream.errors import UnsafePath
from wheelstream.unpack._paths import StagingPaths
from wheelstream.zip import LocalEntry

__all__ = ["PendingRecord", "pending_path", "read_record", "remove_record", "verified_count", "write_record"]

_MAX_RECORD = 4096  # the record is a few hundred bytes; anything longer is not ours
# O_NONBLOCK: a FIFO where a file should be must not hang the resume (it then fails the regular-file check).
_READ_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
)
_HASH_BLOCK = 1 << 20
_VERIFIERS = 2  # threads reading back files (docs/performance.md, D-pending-checkpoint)
_LARGE = 1 << 20  # a file this large is a task of its own
_BATCH = 256  # small files per task


def pending_path(journal_path: Path) -> Path:
    """The record beside a journal header: ``partial/<key>.pending``."""
    return journal_path.with_suffix(".pending")


def _written_path(journal_path: Path) -> Path:
    """Where :func:`write_record` writes the record before renaming it into place."""
    return journal_path.with_suffix(".pending.tmp")


def remove_record(journal_path: Path) -> None:
    """The record, and what a kill in the middle of writing one left beside it."""
    pending_path(journal_path).unlink(missing_ok=True)
    _written_path(journal_path).unlink(missing_ok=True)


class PendingRecord(NamedTuple):
    """What the record says, types checked; what it names is checked by the journal and by staging."""

    base_bytes: int
    base_lines: int
    end_bytes: int
    lines: int
    sha256: str
    checkpoint: int
    deferred_at: int | None


def write_record(journal_path: Path, record: PendingRecord) -> None:
    """Replace the record, unsynced: it only has to outlive the process (a power loss may spoil it, and then
    it does not parse, or names lines that do not hash to it). Written beside it and renamed over it, so a
    kill never leaves a torn record where a good one was (a resumed process rewrites the one it took)."""
    text = json.dumps(record._asdict(), separators=(",", ":")).encode("ascii")
    tmp = _written_path(journal_path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text)  # a few hundred bytes: one write
    finally:
        os.close(fd)
    os.replace(tmp, pending_path(journal_path))


def read_record(journal_path: Path) -> PendingRecord | None:
    """The record if there is one of exactly the shape :func:`write_record` writes, else None."""
    try:
        with open(pending_path(journal_path), "rb") as file:
            data = file.read(_MAX_RECORD + 1)
        payload = json.loads(data) if len(data) <= _MAX_RECORD else None
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or set(payload) != set(PendingRecord._fields):
        return None
    counts = [payload[k] for k in ("base_bytes", "base_lines", "end_bytes", "lines", "checkpoint")]
    deferred_at = payload["deferred_at"]
    if (
        not all(type(n) is int and n >= 0 for n in counts)
        or not (deferred_at is None or (type(deferred_at) is int and deferred_at >= 0))
        or type(payload["sha256"]) is not str
        or len(payload["sha256"]) != 64
    ):
        return None
    return PendingRecord(**payload)


def verified_count(root: Path, rows: list[tuple[LocalEntry, StagedFile | None]]) -> int:
    """How many of ``rows``, from the first, staging bears out: every file among them is there, a regular file
    of its recorded size and sha256 (a directory entry has nothing to check: directories are made again as
    files need them).

    The files are read and hashed on ``_VERIFIERS`` threads (hashing releases the GIL): a torch checkpoint can
    list 700 MB of them, one of 434 MB, and the rerun waits for this before it fetches anything. Large files
    go first, one task each, so the longest hash starts at once; small ones in batches of ``_BATCH``."""
    paths = StagingPaths(os.fspath(root), ())

    def first_bad(indices: list[int]) -> int | None:
        for index in indices:
            staged = rows[index][1]
            if staged is not None and not _file_matches(paths, staged):
                return index
        return None

    sizes = [staged.size if staged is not None else 0 for _entry, staged in rows]
    large = sorted((i for i, size in enumerate(sizes) if size >= _LARGE), key=lambda i: -sizes[i])
    small = [i for i, size in enumerate(sizes) if size < _LARGE]
    tasks = [[i] for i in large] + [small[at : at + _BATCH] for at in range(0, len(small), _BATCH)]
    pool = ThreadPoolExecutor(_VERIFIERS, thread_name_prefix="wheelstream-verify")
    try:
        bad = [index for index in pool.map(first_bad, tasks) if index is not None]
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: only the files being read are finished
    return min(bad, default=len(rows))


def _file_matches(paths: StagingPaths, staged: StagedFile) -> bool:
    try:
        fd = os.open(paths.path_for(staged.name), _READ_FLAGS)  # a symlink is refused, not followed
    except (OSError, UnsafePath):
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != staged.size:
            return False
        digest = hashlib.sha256()
        remaining = staged.size
        while remaining > 0:
            data = os.read(fd, min(remaining, _HASH_BLOCK))
            if not data:
                return False  # cut short under us
            digest.update(data)
            remaining -= len(data)
        return digest.hexdigest() == staged.sha256
    except OSError:
        return False
    finally:
        os.close(fd)
