"""The tee: every received byte goes to the partial file, the whole-file hash and — on a second thread —
the parser and extractor, in order (DESIGN §1, §8).

The network thread coalesces chunks into 1 MiB blocks, appends them to the partial file and the sha256, and
hands them through a bounded queue to ``_Unpacker``, which runs the parser and the extractor. isal/zlib,
hashing and file writes release the GIL, so the two stages overlap on two cores.

Checkpoints (DESIGN §2) come in two kinds, both written by ``Tee._write_checkpoint`` while the parser is
quiet (every event of the blocks it was given handled), in the order staging → partial → journal:

* **Periodic** (every 32 MB / 1 s, ``maybe_checkpoint``): the network thread only queues a request behind
  the blocks it has handed over and goes on reading. The worker takes it between two blocks: the extractor
  drains and syncs staging (rule 1); the partial is fsynced (rule 2: every byte the worker parsed was written
  to the partial *before* it was queued, so ``D`` >= what the parser consumed >= ``C``); the journal appends
  the entries finished since the last checkpoint and replaces its small header (rule 3). No pipeline bubble:
  the queue keeps filling meanwhile and the worker is not restarted. The unpack thread is the bottleneck,
  so this costs it only the syncs and O(new entries) of encoding, never O(all entries).
* **Settled** (``checkpoint``: interruption, error, giving up, before a wait): ``settle`` drains the queue
  and stops the worker first, then the same steps run on the calling thread. Rare; correctness first.

Either way the journal never records an entry the extractor has not written, and a worker's first error —
from a block or from a checkpoint — is raised on the network thread in stream order (by the next hand-over
or by ``settle``), exactly as a single-threaded loop would raise it.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from wheelstream._cache import Cache
from wheelstream._extract import Extractor
from wheelstream._partial import Journal, PartialFile, read_file_range
from wheelstream.errors import EntrySetMismatch
from wheelstream.zip import EntryDeferred, ZipStreamParser
from wheelstream.zip._tail import TAIL_SIZE, find_central_directory, read_central_directory

__all__ = ["Tee", "file_sha256", "finish_deferred"]


class _CheckpointRequest:
    """Queued behind the blocks handed over so far: take a checkpoint once they are all parsed."""


_CHECKPOINT = _CheckpointRequest()
_Work: TypeAlias = "bytes | _CheckpointRequest"


class _Unpacker:
    """The second stage of the tee: parse, inflate and write on a worker thread (DESIGN §8).

    The network thread hands over ~1 MiB blocks (and periodic checkpoint requests, in stream order) through a
    bounded queue; isal/zlib, hashing and file writes release the GIL, so the two stages overlap on two cores.
    The worker lives for one ``_pump`` (or until a settled checkpoint): ``close`` waits until every block
    handed over is parsed and written, then re-raises the first error the worker hit, so errors surface in
    stream order as before. After an error the worker skips everything queued behind it.
    """

    def __init__(self, work: Callable[[_Work], None]) -> None:
        self._work = work
        self._queue: queue.Queue[_Work | None] = queue.Queue(maxsize=_QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wheelstream-unpack", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._work(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the network thread in close()
                    self.error = exc

    def put(self, item: _Work) -> None:
        if self.error is not None:
            raise self.error  # stop downloading at the first bad entry, as the single-threaded loop did
        self._queue.put(item)

    def _stop(self) -> None:
        self._queue.put(None)

    def close(self) -> None:
        """Wait for the worker to finish every block; a Ctrl-C meanwhile is held until it has (a checkpoint
        taken while the worker still changes parser and extractor would record unsynced files)."""
        interrupted = False
        steps: tuple[Callable[[], None], ...] = (self._stop, self._thread.join)
        for step in steps:
            while True:
                try:
                    step()
                    break
                except KeyboardInterrupt:
                    interrupted = True
        if self.error is not None:
            raise self.error
        if interrupted:
            raise KeyboardInterrupt


_BLOCK = 1 << 20  # coalesce iter_raw()'s <= 64 KiB chunks before the partial write and the hand-over
_QUEUE_BLOCKS = 4  # bounded: at most ~4 MiB between the network and the disk


@dataclass
class Tee:
    """The tee and everything it feeds, for one attempt sequence of one wheel."""

    wheel: str
    cache: Cache
    key: str
    journal: Journal
    partial: PartialFile
    parser: ZipStreamParser
    extractor: Extractor
    hasher: hashlib._Hash
    position: int = 0
    last_checkpoint_at: float = field(default_factory=time.monotonic)
    last_checkpoint_bytes: int = 0
    _pending: list[bytes] = field(default_factory=list)
    _pending_size: int = 0
    _unpacker: _Unpacker | None = None

    def feed(self, chunk: bytes) -> None:
        """Tee one network chunk. Bytes reach the partial file, the hash and the parser in order; the
        parser may lag behind on its thread until :meth:`settle` (every checkpoint settles first)."""
        self.position += len(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= _BLOCK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        block = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self.partial.write(block)
        self.hasher.update(block)
        if self.journal.deferred_at is not None:
            return  # past a stored+descriptor entry: only the partial file grows until the end
        if self._unpacker is None:
            self._unpacker = _Unpacker(self._work)
        self._unpacker.put(block)  # only now: the partial holds every byte the worker will ever parse

    def settle(self) -> None:
        """Write out what is buffered and wait until the parser and extractor caught up (errors re-raised)."""
        try:
            self._flush()
        finally:
            if self._unpacker is not None:
                try:
                    self._unpacker.close()
                finally:
                    self._unpacker = None

    def abandon(self) -> None:
        """Stop the workers and close files before this stream's state is thrown away (restart, error)."""
        with contextlib.suppress(Exception):
            self.settle()
        with contextlib.suppress(Exception):
            self.extractor.close()
        self.partial.close()

    def _work(self, item: _Work) -> None:
        """One step of the worker: parse a block, or take a checkpoint between two blocks."""
        try:
            if isinstance(item, bytes):
                self._parse(item)
            else:
                self._write_checkpoint()
        except BaseException:
            with contextlib.suppress(Exception):
                self.extractor.close()  # no writer may touch staging once the error is on its way out
            raise

    def _parse(self, chunk: bytes) -> None:
        """Parse one block completely: afterwards no event is pending, so a checkpoint may follow."""
        if self.journal.deferred_at is not None:
            return  # past a stored+descriptor entry: only the partial file grows until the end
        self.parser.receive_data(chunk)
        for event in self.parser.events():
            if isinstance(event, EntryDeferred):
                self.journal.deferred_at = event.header.offset
                return
            self.extractor.handle(event)

    def replay(self, start: int, end: int) -> None:
        """Feed bytes already on disk to the parser only (resume in a new process; the caller abandons the
        stream on an error, which stops the extractor's writers)."""
        for chunk in self.partial.read_range(start, end):
            self._parse(chunk)

    def maybe_checkpoint(self, every_bytes: int, every_seconds: float) -> None:
        """A periodic checkpoint, taken by the worker between two blocks: the network thread goes on reading."""
        now = time.monotonic()
        if self.position - self.last_checkpoint_bytes < every_bytes and now - self.last_checkpoint_at < every_seconds:
            return
        self._flush()
        if self._unpacker is not None:
            self._unpacker.put(_CHECKPOINT)  # behind every block handed over; the worker takes it in order
        else:
            self._write_checkpoint()  # no worker (past a deferred entry, or nothing new): the parser is quiet
        self._checkpointed()

    def checkpoint(self) -> None:
        """A settled checkpoint: drain the pipeline, then write (interruptions, errors, waits — rare)."""
        self.settle()
        self._write_checkpoint()
        self._checkpointed()

    def _checkpointed(self) -> None:
        self.last_checkpoint_at = time.monotonic()
        self.last_checkpoint_bytes = self.position

    def _write_checkpoint(self) -> None:
        """Write a checkpoint in the order DESIGN §2 requires — staging, then partial, then journal — while
        the parser is quiet: on the worker between two blocks, or on the caller's thread after ``settle``.

        Apart from the syncs it costs O(entries finished since the last checkpoint), not O(all entries).
        """
        self.extractor.sync()  # 1. every finished entry written and flushed (the writers drained first)
        durable = self.partial.sync()  # 2. >= every byte the parser consumed, so >= C
        journal = self.journal
        # Entries this parser finished, so only files of entries before C (rule 1): while the deferred tail is
        # unpacked by a second parser the extractor already holds files past this parser's checkpoint, and
        # those must be redone on resume. ``journal.entries`` is the cursor: the parser lists entries in the
        # same order, prior (journal) entries first.
        journal.add_finished(self.parser.finished_since(len(journal.entries)), self.extractor.files)
        journal.checkpoint = self.parser.checkpoint
        journal.durable = durable
        journal.save(self.cache.journal(self.key))  # 3. append to the log, then replace the header

    def end_of_input(self) -> None:
        """All bytes are here: finish the parse, including entries that had to wait for the end."""
        self.settle()
        try:
            if self.journal.deferred_at is None:
                self.parser.receive_data(b"")
                self.extractor.handle_all(self.parser.events())
            else:
                self.parser = finish_deferred(
                    self.partial.read_range, self.position, self.journal.deferred_at, self.parser, self.extractor
                )
                self.journal.deferred_at = None  # the parser now in charge went past it with known sizes
        finally:
            self.extractor.close()  # every finished file on disk (or, after an error, no writer left running)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in read_file_range(path, 0, path.stat().st_size):
        digest.update(chunk)
    return digest.hexdigest()


def finish_deferred(
    read_range: Callable[[int, int], Iterator[bytes]],
    length: int,
    deferred_at: int,
    parser: ZipStreamParser,
    extractor: Extractor,
) -> ZipStreamParser:
    """Read the central directory from the finished file, then parse from the deferred entry on (DESIGN §4)."""
    tail_start = max(0, length - TAIL_SIZE)
    cd_offset, cd_size = find_central_directory(b"".join(read_range(tail_start, length)), tail_start)
    records = read_central_directory(b"".join(read_range(cd_offset, min(length, cd_offset + cd_size))), cd_offset)
    second = ZipStreamParser(
        deferred_at,
        prior_entries=parser.finished_since(0),  # finish order: the journal's cursor stays valid
        compressed_sizes={r.local_header_offset: r.compressed_size for r in records},
        max_unpacked_size=parser.max_unpacked_size,
    )
    for chunk in read_range(deferred_at, length):
        extractor.handle_all(second.feed(chunk))
    extractor.handle_all(second.feed(b""))
    if not second.done:  # it deferred again: that entry has no central record to take its size from
        raise EntrySetMismatch("stored entry with a data descriptor has no central directory record",
                               offset=second.checkpoint)
    return second
