"""The tee: every received byte goes to the partial file, the whole-file hash and — on a second thread —
the parser and extractor, in order (DESIGN §1, §8).

The network thread coalesces chunks into 1 MiB blocks, appends them to the partial file and the sha256, and
hands them through a bounded queue to ``Unpacker``, which runs the parser and the extractor. isal/zlib,
hashing and file writes release the GIL, so the two stages overlap on two cores.

Checkpoints (DESIGN §2) — their three kinds, the owed ones, the ones that move only ``D`` — are taken by the
``Checkpoints`` half mixed into ``Tee`` (``_checkpoints``, whose essay gives the rules); this module keeps what
feeds them: the blocks, the worker's hand-over, settling, replay and the end of input.

Beside the checkpoints, every block written to the partial also appends the hash state to the trail
(``_trail``): what a *killed* process wrote past ``D`` is then provable by the next one, which resumes past it.

A worker's first error — from a block or from a checkpoint — is raised on the network thread in stream order
(by the next hand-over or by ``settle``), exactly as a single-threaded loop would raise it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from wheelstream._killpoints import reached
from wheelstream.errors import ArchiveError, EntrySetMismatch
from wheelstream.unpack import _sha256
from wheelstream.unpack._checkpoints import Checkpoints
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal, PartialFile
from wheelstream.unpack._stages import Syncer, Unpacker, interruptible
from wheelstream.unpack._trail import Trail
from wheelstream.zip import EntryDeferred, ZipStreamParser
from wheelstream.zip._tail import TAIL_SIZE, find_central_directory, read_central_directory

__all__ = ["Tee", "finish_deferred", "parse_block"]


_BLOCK = 1 << 20  # coalesce iter_raw()'s <= 64 KiB chunks before the partial write and the hand-over
_TAIL_CHECKPOINT = 8 << 20  # unsynced bytes at the end of input worth a checkpoint of their own


@dataclass
class Tee(Checkpoints):
    """The tee and everything it feeds, for one attempt sequence of one wheel."""

    block_size: ClassVar[int] = _BLOCK  # the first checkpoint is due after one (``Checkpoints``)

    wheel: str
    journal_path: Path  # where the journal's header lives (its entries log beside it)
    journal: Journal
    partial: PartialFile
    parser: ZipStreamParser
    extractor: Extractor
    hasher: _sha256.RunningSha256
    trail: Trail | None = None  # one line per block written: what a kill -9 leaves is provable (``_trail``)
    # A segmented download's pieces past ``position`` already in the partial (``fetch._segmented``): what the
    # journal records as ``held``. None: one connection, nothing past ``position``.
    pieces: Callable[[], list[tuple[int, int]]] | None = None
    position: int = 0
    # Files a resume adopted from a pending checkpoint were never synced: the next checkpoint syncs staging first.
    staging_unsynced: bool = False
    last_checkpoint_at: float = field(default_factory=time.monotonic)
    last_checkpoint_bytes: int = 0
    _pending: list[bytes] = field(default_factory=list)
    _pending_size: int = 0
    _unpacker: Unpacker | None = None
    _syncer: Syncer = field(init=False)
    _handed_over: int = field(init=False)  # parser entries already given to the journal (or a snapshot)
    _checkpoints: int = 0  # taken by this stream: the first is due after one block, not a whole interval
    _owed: bool = False  # a periodic checkpoint is due: the worker takes it after its block, the syncer free
    _durable_deferred_at: int | None = field(init=False)  # ``deferred_at`` as of the last durable checkpoint
    # Held while a block goes to the partial and the hash, so a checkpoint reads the two at the same length.
    _hashed: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # The syncer calls back through a weak proxy: with a bound method every Tee would be a reference cycle,
        # and all it holds (parser, extractor, journal: memory in proportion to the wheel's entries) would
        # outlive the download until the cyclic collector ran — which the CLI makes rare.
        this = weakref.proxy(self)
        self._syncer = Syncer(lambda snapshot: this._make_durable(snapshot))
        self._handed_over = len(self.journal.entries)
        self._durable_deferred_at = self.journal.deferred_at
        self.journal.entries = []  # the parser has them now (``prior_entries``), as compact rows

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
        self._take(block, self.partial.write)

    def take_written(self, block: bytes) -> None:
        """Tee one block another connection already wrote into the partial at ``position`` (a segmented
        download): it is hashed, trailed and parsed like a received one, and not written again."""
        self._flush()
        self.position += len(block)
        self._take(block, lambda data: self.partial.adopt(len(data)))

    def _take(self, block: bytes, append: Callable[[bytes], None]) -> None:
        with self._hashed:
            append(block)
            self.hasher.update(block)
            if self.trail is not None:
                self.trail.append(self.partial.length, self.hasher.state())
        if self._unpacker is None:
            if self.position == self.journal.length and not interruptible():
                # The rest of the file in one block (a small wheel's all of it): a worker would have nothing to
                # overlap, only a thread to start and a hand-over each way (docs/performance.md,
                # D-inline-last-block). Parsed here, at once; its error is raised here too.
                self._work(block)
                return
            self._unpacker = Unpacker(self._work, self._idle_checkpoint)
        self._unpacker.put(block)  # only now: the partial holds every byte the worker will ever parse

    def unpacker_idle(self) -> float:
        """Seconds the unpack worker of this response has waited for blocks (0 before the first block)."""
        return self._unpacker.idle_seconds() if self._unpacker is not None else 0.0

    def settle(self, *, wait_for_syncer: bool = True) -> None:
        """Write out what is buffered and wait until the parser, the extractor and (unless told not to) the
        syncer caught up (errors re-raised).

        ``wait_for_syncer=False`` is for the end of one response: after a dropped connection the next request
        goes out at once on the same in-memory state, and a checkpoint still syncing (``syncfs``: ~0.1 s or
        more on ext4) need not hold it up. Every step that needs the disk quiet — a settled checkpoint, the end
        of input, ``abandon`` — waits for the syncer itself.
        """
        try:
            try:
                self._flush()
            finally:
                if self._unpacker is not None:
                    try:
                        self._unpacker.close()
                    finally:
                        self._unpacker = None
        except BaseException:
            if wait_for_syncer:
                self._syncer.wait(raise_error=False)  # the stream's own error wins over a checkpoint's
            raise
        if wait_for_syncer:
            self._syncer.wait()  # no syncer may touch the partial or the journal after this

    def abandon(self) -> None:
        """Stop the workers and close files: at the end of every download, however it ended, and before a
        restart throws this stream's state away."""
        with contextlib.suppress(Exception):
            self.settle()
        with contextlib.suppress(Exception):
            self.extractor.close()
        self.partial.close()
        if self.trail is not None:
            self.trail.close()

    def begin(self) -> None:
        """The response the partial file now follows is known (URL, validators, length): write the journal's
        header at once, so that a process killed before its first checkpoint still leaves a journal the trail
        can be replayed against. Not synced: it promises nothing durable yet (``durable`` is still 0), and a
        header a power loss spoils is one ``load`` refuses."""
        self._syncer.wait()
        if self.journal.durable == 0:
            nothing = _sha256.new()
            self.journal.sha256_state = nothing.state()  # the hash of nothing: the trail starts from it
            self.journal.prefix_sha256 = nothing.hexdigest()
        self.journal.save(self.journal_path, sync=False)

    def _work(self, block: bytes) -> None:
        """One step of the worker: parse a block, then take the periodic checkpoint owed, if any."""
        try:
            self._parse(block)
            if self._owed and not self._syncer.busy:
                self._snapshot_checkpoint()
        except BaseException:
            with contextlib.suppress(Exception):
                self.extractor.close()  # no writer may touch staging once the error is on its way out
            raise

    def _parse(self, chunk: bytes) -> None:
        """Parse one block completely: afterwards no event is pending, so a checkpoint may follow."""
        if self.journal.deferred_at is not None:
            # Past a stored+descriptor entry only the partial file grows until the end; the parser counts the
            # bytes against its unpacked-size budget (an endless entry is refused there).
            self.parser.receive_data(chunk)
            return
        self.journal.deferred_at = parse_block(self.parser, self.extractor, chunk)

    def replay(self, start: int, end: int) -> None:
        """Feed bytes already on disk to the parser only (resume in a new process; the caller abandons the
        stream on an error, which stops the extractor's writers)."""
        for chunk in self.partial.read_range(start, end):
            self._parse(chunk)

    def ends_an_archive(self) -> bool:
        """Do the bytes so far end with a zip's end records? For a body whose server declared no length (HTTP/1.0
        read to the close, chunked): its end is the file's end only if it is the archive's; a connection cut
        there was taken for the end, and the wheel for a truncated archive (discarded, exit 1) instead of a
        download to resume. Reads the tail of the partial (after writing out what is buffered)."""
        self._flush()
        start = max(0, self.position - TAIL_SIZE)
        tail = b"".join(self.partial.read_range(start, self.position))
        try:
            find_central_directory(tail, start)
        except ArchiveError:
            return False
        return True

    def end_of_input(self) -> None:
        """All bytes are here: finish the parse, including entries that had to wait for the end.

        Before the tail is unpacked, the bytes since the last checkpoint are made durable on the syncer, beside
        the unpacking: the checkpoint ``C`` and its entries stay as they were (the worker may still be behind),
        only ``D`` and the hash state move to the end. A power loss while the tail unpacks then costs no
        download; a kill costs none anyway (the trail). Not for a short tail (``_TAIL_CHECKPOINT``): the fsync
        is waited for before publishing, and a small wheel's download would pay it for little."""
        self._flush()
        reached("download.end-of-input")
        if self.position - self.journal.durable >= _TAIL_CHECKPOINT:
            while True:  # the worker may submit one of its own meanwhile: then wait for that one too
                self._syncer.wait()
                if self._syncer.try_submit(self._bytes_only):
                    break
        self.settle()
        try:
            if self.journal.deferred_at is None:
                parse_block(self.parser, self.extractor, b"")  # cannot defer now: the input has ended
            else:
                self.parser = finish_deferred(
                    self.partial.read_range,
                    self.position,
                    self.journal.deferred_at,
                    self.parser,
                    self.extractor,
                )
                self.journal.deferred_at = None  # the parser now in charge went past it with known sizes
        finally:
            self.extractor.close()  # every finished file on disk (or, after an error, no writer left running)


def parse_block(parser: ZipStreamParser, extractor: Extractor, chunk: bytes) -> int | None:
    """Feed one block and hand every event it completes to the extractor; the offset of a stored entry with
    a data descriptor if one stopped the parse (``EntryDeferred``: only the end of the file can delimit it)."""
    parser.receive_data(chunk)
    try:
        for event in parser.events():
            if isinstance(event, EntryDeferred):
                return event.header.offset
            extractor.handle(event)
    except ArchiveError:
        extractor.drain()  # a packed entry before this one may be bad too: the writers' error comes first
        raise
    return None


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
    records = read_central_directory(read_range(cd_offset, cd_offset + cd_size), cd_offset)
    second = ZipStreamParser(
        deferred_at,
        prior_entries=parser.finished_since(0),  # finish order: the journal's cursor stays valid
        compressed_sizes={r.local_header_offset: r.compressed_size for r in records},
        max_unpacked_size=parser.max_unpacked_size,
        pack_up_to=parser.pack_up_to,
        max_entries=parser.max_entries,
    )
    for chunk in read_range(deferred_at, length):
        parse_block(second, extractor, chunk)
    parse_block(second, extractor, b"")
    if not second.done:  # it deferred again: that entry has no central record to take its size from
        raise EntrySetMismatch(
            "stored entry with a data descriptor has no central directory record", offset=second.checkpoint
        )
    return second
