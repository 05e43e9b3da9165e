"""Turn parser events into files in a staging directory — the I/O edge behind ``ZipStreamParser``.

Rules this module keeps:

* Nothing is written outside ``root``: names were validated by the parser, and every join is checked again
  (:mod:`._paths`: defence in depth; a parser bug must not become a path traversal).
* Each file's sha256 and size are computed from the bytes as they are written, never by reading back
  (DESIGN §1, §8). They become :class:`~wheelstream._staged.StagedFile` records for RECORD verification.
* Only finished entries count. A file whose entry is in flight when the stream stops is deleted on resume
  (``fetch._resume._staging_matches``): the checkpoint rule is that staging holds exactly the finished entries
  the journal lists.
* Exec bits exist only in the central directory (external attributes), so they are applied when it arrives,
  the way pip applies them: ``0o777 & ~umask | 0o111`` for any entry with an x bit.

``verify_only`` (``download``'s extractor, which keeps the wheel file, not its files) does all of it but the
writing: every entry is inflated, checked and hashed, every name claimed and checked for collisions in memory
(``StagingPaths(make=False)``), and nothing is created in ``root``. Its records are the same, so a journal's
rows are too (``Journal.unwritten`` says that staging does not hold them).

Who does what: :mod:`._paths` makes directories and refuses unsafe paths, :mod:`._writers` runs the threads that
write (and how far the parser may run ahead of them), :mod:`._durability` makes the files durable; the
:class:`Extractor` here routes each event to them.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from wheelstream._staged import StagedFile, current_umask, pip_file_mode
from wheelstream.unpack._durability import sync_file_system
from wheelstream.unpack._partial import write_all
from wheelstream.unpack._paths import StagingPaths, create
from wheelstream.unpack._writers import Batch, Content, ReadAt, Sink, Unread, WriterQueue
from wheelstream.zip import (
    CentralDirectory,
    EntryData,
    EntryFinished,
    EntryPacked,
    EntryStarted,
    Event,
    executable_files,
    unpack_entry,
)

__all__ = ["Extractor"]

# Bytes the batches in flight may hold in memory (compressed, or inflated small files); with a source the parser
# need not wait at this budget, so it trades RSS for reads back (docs/performance.md#d-pending-budget).
_MAX_PENDING = 2 << 20


def _write_file(path: str, content: Content, name: str, offset: int) -> str:
    """What a writer does per small file: inflate + verify a packed entry (before the file exists: a bad entry
    leaves nothing behind), create the file (the slow part), hash + write, close; its sha256."""
    if isinstance(content, Unread):
        content = content.load()
    chunks = [unpack_entry(content)] if isinstance(content, EntryPacked) else content
    fd = create(path, name, offset)
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            write_all(fd, chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _verify_file(path: str, content: Content, name: str, offset: int) -> str:
    """:func:`_write_file` without the file: inflate + verify, hash; its sha256."""
    if isinstance(content, Unread):
        content = content.load()
    chunks = [unpack_entry(content)] if isinstance(content, EntryPacked) else content
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


class _Unwritten:
    """A large entry's file, when nothing is written (``verify_only``): the sink hashes what it is given."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Extractor:
    """Consumes :mod:`wheelstream.zip` events and writes the entries below ``root``.

    Small files (``≤ inline_limit``) are kept in memory until their entry is finished and verified, then
    hashed and created by the writer pool (``writers=True``) in batches: creating many small files one after
    the other is what made unpacking torch slow, not inflating it. With writers, small entries need not even be
    inflated on the calling thread: a parser built with ``pack_up_to=extractor.pack_up_to`` hands them over
    whole (``EntryPacked``) and the writers inflate and verify them too, beside the parser. Large files are
    opened on the calling thread (so collisions are found in stream order) and hashed + written by the sink
    thread, overlapping inflation. ``files`` lists every finished file in stream order; a file's digest is
    there only after :meth:`drain` (called by :meth:`sync`, the central directory, and :meth:`close`) or, for
    the files already written, :meth:`collect_written`; until then it is ``""``.

    How far the parser may run ahead of the writers: the batches in flight hold at most ``max_pending`` bytes
    in memory. With a ``source`` (``read_at``: the archive's bytes by offset, e.g. the partial file) packed
    entries past that budget are queued without their bytes, and the writers read them back, so the parser
    runs far ahead — through torch's small files to its large library, which it inflates while the writers
    catch up. Without a source it waits for the writers at the budget (:class:`._writers.WriterQueue`).
    """

    def __init__(
        self,
        root: Path,
        finished: Mapping[str, StagedFile] | None = None,
        *,
        writers: bool = False,
        inline_limit: int = 1 << 20,
        max_pending: int | None = None,
        source: ReadAt | None = None,
        verify_only: bool = False,
    ) -> None:
        self.root = root
        self.verify_only = verify_only
        self.files: dict[str, StagedFile] = dict(finished or {})
        self.written = 0  # files this extractor wrote (a resume's work, for reporting and tests)
        self._root = os.fspath(root)
        # a name in ``files`` is claimed by a file
        self._paths = StagingPaths(self._root, self.files, make=not verify_only)
        if verify_only:
            self._paths.claim_parents(self.files)
        self._open: BinaryIO | None = None
        self._open_name: str | None = None
        self._open_path = ""
        self._open_offset = 0
        self._chunks: list[bytes] | None = None  # the entry in flight, while it is small enough to buffer
        self._hash: Any = None  # sha256 of a large entry in flight (small ones are hashed by the writers)
        self._size = 0
        self._inline_limit = inline_limit if writers else 0
        pending = _MAX_PENDING if max_pending is None else max_pending
        self._write = _verify_file if verify_only else _write_file
        self._queue = WriterQueue(self.files, self._write, max_pending=pending, source=source)
        self._sink = Sink(self._record) if writers else None  # large files: hash + write off this thread
        root.mkdir(parents=True, exist_ok=True)

    @property
    def pack_up_to(self) -> int:
        """The ``pack_up_to`` for this extractor's parser: packed entries up to the inline limit go to the
        writers whole; without writers (0) the parser inflates everything itself."""
        return self._inline_limit

    def path_for(self, name: str) -> str:
        """The staging path of an archive name, refusing anything that would leave ``root``."""
        return self._paths.path_for(name)

    def handle(self, event: Event) -> None:
        if type(event) is EntryPacked:  # the most frequent event by far, so asked first
            self._packed(event)
        elif isinstance(event, EntryData):
            data = event.data
            self._size += len(data)
            if self._chunks is not None:
                self._chunks.append(data)
                if self._size > self._inline_limit:
                    self._spill()
            elif self._sink is not None:
                assert self._open is not None
                self._sink.put(self._open, self._hash, data)
            else:
                assert self._open is not None
                self._hash.update(data)
                self._open.write(data)
        elif isinstance(event, EntryStarted):
            self._start(event.header.name, event.header.offset)
        elif isinstance(event, EntryFinished):
            self._finish(event.entry.name)
        elif isinstance(event, CentralDirectory):
            self.drain()
            self.apply_modes(executable_files(event.records))

    def handle_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.handle(event)

    def _start(self, name: str, offset: int) -> None:
        if name.endswith("/"):
            self._paths.directory(name.rstrip("/"), name, offset)
            return
        self._open_path = self._paths.new_file(name, offset)
        self._open_name = name
        self._open_offset = offset
        self._size = 0
        if self._inline_limit:
            self._chunks = []
        else:
            self._open_now()

    def _packed(self, event: EntryPacked) -> None:
        """A whole small entry, still compressed: the writers inflate, verify, hash and create it (the parser
        only packs when this extractor asked for it, so there are writers; without them it is done here)."""
        name, offset, size = event.header.name, event.header.offset, event.header.uncompressed_size
        path = self._paths.new_file(name, offset)
        if self._inline_limit:
            self.files[name] = StagedFile(name, size, "", False)  # its place, until the digest comes
            self._queue.add_packed(path, event, name, offset)
        else:
            self._record(StagedFile(name, size, self._write(path, event, name, offset), executable=False))
        self.written += 1

    def _open_now(self) -> None:
        assert self._open_name is not None
        if self.verify_only:
            self._open = cast("BinaryIO", _Unwritten())
        else:
            fd = create(self._open_path, self._open_name, self._open_offset)
            self._open = os.fdopen(fd, "wb")  # closed in _finish (by the sink when there is one) or close
        self._hash = hashlib.sha256()

    def _spill(self) -> None:
        """The entry outgrew the buffer: write it from this thread, streaming, like a large file."""
        chunks, self._chunks = self._chunks or [], None
        self._open_now()
        assert self._open is not None
        if self._sink is not None:
            for chunk in chunks:
                self._sink.put(self._open, self._hash, chunk)
        else:
            for chunk in chunks:
                self._hash.update(chunk)
                self._open.write(chunk)

    def _finish(self, name: str) -> None:
        if self._open_name is None:  # directory entry
            return
        # A digest-less record keeps the file's place (stream order) until its writer reports the digest.
        pending = StagedFile(name, self._size, "", executable=False)
        if self._chunks is not None:
            chunks, self._chunks = self._chunks, None
            self.files[name] = pending
            self._queue.add(self._open_path, chunks, name, self._open_offset, self._size, self._size)
        elif self._sink is not None:
            handle, self._open = self._open, None  # from here the sink owns it: it closes it, in order
            assert handle is not None
            self.files[name] = pending
            self._sink.put(handle, self._hash, pending)  # ... and records the digest
        else:
            assert self._open is not None
            self._open.close()
            self._open = None
            self._record(StagedFile(name, self._size, self._hash.hexdigest(), executable=False))
        self._open_name = None
        self.written += 1

    def _record(self, staged: StagedFile) -> None:
        self.files[staged.name] = staged

    def collect_written(self) -> None:
        """Record the digests of the batches already written, oldest first, without waiting for the others
        (a periodic checkpoint takes what is on disk and leaves the rest to the next one); re-raise a
        writer's error.

        The batch still filling up is sent first: its files would otherwise wait for a full batch (or a drain),
        and a checkpoint stops at the first file not written — behind a few small files followed by large
        ones (nvidia-style wheels) it would never move."""
        self._queue.collect_written()

    def drain(self) -> None:
        """Wait until every finished file is on disk (in the page cache); re-raise a writer's error."""
        try:
            self._queue.send()
            if self._sink is not None:
                self._sink.drain()
            self._queue.wait_all()
        except KeyboardInterrupt:
            # Ctrl-C while waiting: the parser counts these entries as finished (a packed one is verified only by
            # its writer), so let the writers finish and record them before the interrupt goes on — the
            # checkpoint that follows must find every finished entry's file, or a writer's error.
            self._queue.finish_after_interrupt()
            raise
        except BaseException:
            self._queue.abandon()
            for name in [n for n, f in self.files.items() if not f.sha256]:
                del self.files[name]  # unwritten, or written past an error: not a finished file
            raise

    def close(self) -> None:
        """Drain the writers and stop the sink; for the end of the input, an error or an interruption
        (nothing may write into staging later, and no thread or descriptor may outlive the extractor)."""
        try:
            self.drain()
        finally:
            self._stop()

    def abandon(self) -> None:
        """Stop now, keeping nothing: the writers skip the files they have not written (a Ctrl-C while a local
        or cached wheel file unpacks, which a rerun unpacks again whole: :meth:`close` wrote all of a 30,000-file
        wheel's batches in flight first, seconds). Staging is the caller's to remove."""
        try:
            self._queue.abandon()
        finally:
            self._stop()

    def _stop(self) -> None:
        """The sink stopped and the entry in flight closed: what both ways of closing end with."""
        if self._sink is not None:
            with contextlib.suppress(Exception):
                self._sink.drain()  # after an error: let queued writes finish before staging goes
            self._sink.stop()
            self._sink = None
        if self._open is not None:  # the entry in flight: unfinished, so nothing to flush for it
            with contextlib.suppress(OSError):
                self._open.close()
            self._open = None

    def sync(self) -> None:
        """Flush the finished files to disk: part of writing a checkpoint (DESIGN §2 rule 1)."""
        self.drain()
        if self._open is not None:
            self._open.flush()
        self.flush_to_disk()

    def flush_to_disk(self) -> None:
        """The file-system half of :meth:`sync` (:func:`._durability.sync_file_system`), for a checkpoint made
        durable on another thread: it covers every file whose writes returned before the call (so drain first,
        on the extractor's thread). Nothing to flush when nothing is written."""
        if not self.verify_only:
            sync_file_system(self._root)

    def apply_modes(self, executable_names: Iterable[str]) -> None:
        """Mark the files the central directory calls executable, with pip's mode (after a drain: every file
        must exist)."""
        self.drain()
        mode = pip_file_mode(True, current_umask())
        for name in executable_names:
            staged = self.files.get(name)
            if staged is None:
                continue
            if not self.verify_only:
                os.chmod(self.path_for(name), mode)
            self.files[name] = StagedFile(staged.name, staged.size, staged.sha256, executable=True)

    # Read by tests written against the single-module extractor (tests/test_zip_hostile.py,
    # tests/test_deep_paths.py); the state lives in ``_queue`` and ``_paths``.
    @property
    def _in_flight(self) -> collections.deque[Batch]:
        return self._queue.in_flight

    @property
    def _in_flight_bytes(self) -> int:
        return self._queue.in_flight_bytes

    @property
    def _max_pending(self) -> int:
        return self._queue.max_pending

    def _dir(self, dir_name: str, name: str, offset: int) -> str:
        return self._paths.directory(dir_name, name, offset)
