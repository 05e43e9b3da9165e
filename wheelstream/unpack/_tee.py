"""The tee: every received byte goes to the partial file, the whole-file hash and — on a second thread —
the parser and extractor, in order (DESIGN §1, §8).

The network thread coalesces chunks into 1 MiB blocks, appends them to the partial file and the sha256, and
hands them through a bounded queue to ``Unpacker``, which runs the parser and the extractor. isal/zlib,
hashing and file writes release the GIL, so the two stages overlap on two cores.

Checkpoints (DESIGN §2) come in three kinds, all written by ``Tee._write_checkpoint`` while the parser is
quiet (every event of the blocks it was given handled), in the order staging → partial → journal:

* **Periodic** (every 32 MB / 1 s; ``maybe_checkpoint``): the network thread only
  queues a request behind the blocks it has handed over and goes on reading. The worker takes it between two
  blocks: it collects what the extractor's writers have written (without waiting for the rest: behind a
  backlog of small files the parser may be inflating a large entry meanwhile), and snapshots ``C`` — the
  parser's checkpoint, or the local header of the first finished entry whose file is not written yet,
  whichever comes first — the entries finished before ``C`` with their digests, and ``deferred_at``. A
  ``Syncer`` thread then makes the snapshot durable in rule order: ``syncfs`` of staging (rule 1: it covers
  every write that returned before it), an fsync of the partial (rule 2: every byte the worker parsed was
  written to the partial *before* it was queued, so ``D`` >= what the parser consumed >= ``C``; ``D`` and the
  whole-file hash state are read together, under the lock the network thread holds while it writes and hashes
  a block, so the journal's state covers exactly ``0..D``), then the journal appends the snapshot's entries
  and replaces its small header (rule 3). The unpack thread is the bottleneck, so it pays only O(new entries);
  the syncs — on ext4 0.5-1.5 s per torch download — happen beside it. One snapshot is in flight at a time: a
  checkpoint due while the last is still syncing is owed, and taken after the first block parsed once the
  syncer is free; everything that settles the stream waits for the syncer first.
* **Idle** (the worker found nothing to do for ``IDLE_AFTER`` seconds: the network stalled): the worker takes
  a periodic checkpoint on its own, waiting for the writers this time, if entries were finished since the last
  one or the partial file holds bytes past ``D`` (inside a large entry nothing finishes; not past a deferred
  entry, where the worker is handed nothing by design), and none is syncing.
  A stall is when people give up and kill the process; without this the last checkpoint could be ~32 MB / 1 s
  older than what had arrived when the bytes stopped coming (seen: 20 MB re-fetched after a kill 1 s into a
  stall, because the checkpoint before the stall was still syncing and nothing came to trigger another). What
  the network thread has not handed over yet (under one 1 MiB block) is not in the partial file: it is
  fetched again.
* **Settled** (``checkpoint``: interruption, error, giving up, before a wait): ``settle`` drains the queue
  and stops the worker first, then the same steps run on the calling thread. Rare; correctness first.

Two checkpoints move only ``D`` (``_bytes_only``: ``C`` and its entries as last made durable, so no syncfs of
staging), submitted by the network thread: the first, after one block (not after 32 MB / 1 s), and the one at
the end of input when at least ``_TAIL_CHECKPOINT`` bytes are not yet durable.

Beside the checkpoints, every block written to the partial also appends the hash state to the trail
(``_trail``): what a *killed* process wrote past ``D`` is then provable by the next one, which resumes past it.

Either way the journal never records an entry the extractor has not written, and a worker's first error —
from a block or from a checkpoint — is raised on the network thread in stream order (by the next hand-over
or by ``settle``), exactly as a single-threaded loop would raise it.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wheelstream._killpoints import reached
from wheelstream.errors import ArchiveError, EntrySetMismatch
from wheelstream.unpack import _sha256
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal, PartialFile
from wheelstream.unpack._stages import CHECKPOINT, Snapshot, Syncer, Unpacker, Work
from wheelstream.unpack._trail import Trail
from wheelstream.zip import EntryDeferred, ZipStreamParser
from wheelstream.zip._tail import TAIL_SIZE, find_central_directory, read_central_directory

__all__ = ["Tee", "finish_deferred", "parse_block"]


_SNAPSHOT_ENTRIES = 8192  # entries one periodic checkpoint records at most (see Tee._snapshot)
_BLOCK = 1 << 20  # coalesce iter_raw()'s <= 64 KiB chunks before the partial write and the hand-over
_TAIL_CHECKPOINT = 8 << 20  # unsynced bytes at the end of input worth a checkpoint of their own


@dataclass
class Tee:
    """The tee and everything it feeds, for one attempt sequence of one wheel."""

    wheel: str
    journal_path: Path  # where the journal's header lives (its entries log beside it)
    journal: Journal
    partial: PartialFile
    parser: ZipStreamParser
    extractor: Extractor
    hasher: _sha256.RunningSha256
    trail: Trail | None = None  # one line per block written: what a kill -9 leaves is provable (``_trail``)
    position: int = 0
    last_checkpoint_at: float = field(default_factory=time.monotonic)
    last_checkpoint_bytes: int = 0
    _pending: list[bytes] = field(default_factory=list)
    _pending_size: int = 0
    _unpacker: Unpacker | None = None
    _syncer: Syncer = field(init=False)
    _handed_over: int = field(init=False)  # parser entries already given to the journal (or a snapshot)
    _checkpoints: int = 0  # taken by this stream: the first is due after one block, not a whole interval
    _owed: bool = False  # a periodic checkpoint came due while the last was syncing: take it once it is done
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
        with self._hashed:
            self.partial.write(block)
            self.hasher.update(block)
            if self.trail is not None:
                self.trail.append(self.partial.length, self.hasher.state())
        if self.journal.deferred_at is not None:
            return  # past a stored+descriptor entry: only the partial file grows until the end
        if self._unpacker is None:
            self._unpacker = Unpacker(self._work, self._idle_checkpoint)
        self._unpacker.put(block)  # only now: the partial holds every byte the worker will ever parse

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
            self.journal.sha256_state = _sha256.new().state()  # the hash of nothing: the trail starts from it
        self.journal.save(self.journal_path, sync=False)

    def _work(self, item: Work) -> None:
        """One step of the worker: parse a block, or take a checkpoint between two blocks."""
        try:
            if isinstance(item, bytes):
                self._parse(item)
                if self._owed and not self._syncer.busy:
                    self._snapshot_checkpoint()  # the one skipped while its predecessor synced
            else:
                self._snapshot_checkpoint()
        except BaseException:
            with contextlib.suppress(Exception):
                self.extractor.close()  # no writer may touch staging once the error is on its way out
            raise

    def _parse(self, chunk: bytes) -> None:
        """Parse one block completely: afterwards no event is pending, so a checkpoint may follow."""
        if self.journal.deferred_at is not None:
            return  # past a stored+descriptor entry: only the partial file grows until the end
        self.journal.deferred_at = parse_block(self.parser, self.extractor, chunk)

    def replay(self, start: int, end: int) -> None:
        """Feed bytes already on disk to the parser only (resume in a new process; the caller abandons the
        stream on an error, which stops the extractor's writers)."""
        for chunk in self.partial.read_range(start, end):
            self._parse(chunk)

    def maybe_checkpoint(self, every_bytes: int, every_seconds: float) -> None:
        """A periodic checkpoint, taken by the worker between two blocks: the network thread goes on reading."""
        now = time.monotonic()
        since = self.position - self.last_checkpoint_bytes
        if not self._checkpoints and since >= _BLOCK:
            # The first comes after one block, not after 32 MB / 1 s. It moves only D (no entries, so no
            # syncfs of staging): what it saves from a power loss is download, and it costs one small fsync.
            self._flush()
            if self._syncer.try_submit(self._bytes_only):
                self._checkpointed()
            return
        if since < every_bytes and now - self.last_checkpoint_at < every_seconds:
            return
        self._flush()
        if self._unpacker is not None:
            self._unpacker.put(CHECKPOINT)  # behind every block handed over; the worker takes it in order
        else:
            self._write_checkpoint()  # no worker (past a deferred entry, or nothing new): the parser is quiet
        self._checkpointed()

    def checkpoint(self) -> None:
        """A settled checkpoint: drain the pipeline, then write (interruptions, errors, waits — rare)."""
        self.settle()
        self._write_checkpoint()
        self._checkpointed()

    def _checkpointed(self) -> None:
        self._checkpoints += 1
        self.last_checkpoint_at = time.monotonic()
        self.last_checkpoint_bytes = self.position

    def _snapshot(self, *, drained: bool = True) -> Snapshot:
        """The checkpoint as of now; the parser must be quiet, and the extractor drained unless ``drained`` is
        False.

        Only entries this parser finished, so only files of entries before C (rule 1): while the deferred tail
        is unpacked by a second parser the extractor already holds files past this parser's checkpoint, and
        those must be redone on resume. ``_handed_over`` is the cursor: the parser lists entries in the same
        order, prior (journal) entries first. O(entries finished since the last checkpoint).

        Not drained (a periodic checkpoint), the writers may still be behind the parser: C is then the local
        header of the first finished entry whose file is not written yet — a record boundary with nothing open,
        every entry before it written — and the entries from there on wait for the next checkpoint. A resume
        from that C deletes their files, if any were written meanwhile, and writes them again from the
        partial file (``_download._Download._staging_matches``).

        A periodic checkpoint also stops after ``_SNAPSHOT_ENTRIES`` entries, at the local header of the next
        one (the same kind of boundary): the first checkpoint of a fast download of a wheel of many tiny
        files would otherwise hold every entry at once as tuples and log lines. The next one goes on from
        there; a drained (settled or idle) checkpoint takes everything, so an interruption still records all.
        """
        entries = self.parser.finished_since(self._handed_over, None if drained else _SNAPSHOT_ENTRIES + 1)
        files = self.extractor.files
        checkpoint = self.parser.checkpoint
        if len(entries) > _SNAPSHOT_ENTRIES:
            checkpoint = entries[_SNAPSHOT_ENTRIES].offset
            del entries[_SNAPSHOT_ENTRIES:]
        for index, entry in enumerate(entries):  # never record an entry without its written file (rule 1)
            staged = files.get(entry.name)
            if not entry.name.endswith("/") and (staged is None or not staged.sha256):
                if drained:
                    raise RuntimeError(
                        f"checkpoint refused: finished entry {entry.name!r} has no written file"
                    )
                checkpoint = entry.offset
                del entries[index:]
                break
        self._handed_over += len(entries)
        return Snapshot(
            checkpoint,
            entries,
            {e.name: files[e.name] for e in entries if e.name in files},
            self.journal.deferred_at,
        )

    def _idle_checkpoint(self) -> None:
        """The network went quiet with every block parsed: checkpoint now what arrived since the last
        checkpoint (on the worker, as a periodic one: see the module docstring), waiting for the writers —
        the worker has nothing else to do, and a stall is when people give up. Bytes count as well as
        finished entries: inside a large entry nothing finishes, yet a next run resumes its Range at D, so
        without this a kill -9 in a stall there cost it everything since the last periodic checkpoint. Past a
        deferred entry the worker is given nothing while the bytes keep coming, so there idle says nothing
        about the network: the periodic checkpoints (on the network thread) cover that phase."""
        unsynced = self.journal.deferred_at is None and self.partial.length > self.journal.durable
        if self.parser.finished_count > self._handed_over or unsynced:
            self._snapshot_checkpoint(drain=True)

    def _snapshot_checkpoint(self, *, drain: bool = False) -> None:
        """A checkpoint on the worker, between two blocks: collect what the writers finished (or, with ``drain``,
        wait for all of it), snapshot, hand to the syncer."""

        def snapshot() -> Snapshot:
            # 1a. the entries it records are written (the syncer's syncfs flushes them). Not waiting for the
            # rest keeps the parser going: behind a backlog of small files it may be inflating a large one.
            if drain:
                self.extractor.drain()
            else:
                self.extractor.collect_written()
            return self._snapshot(drained=drain)

        # Busy: do not stall the bottleneck thread. The checkpoint is owed, and taken after the first block
        # parsed once the syncer is done (or by the idle or settled ones).
        self._owed = not self._syncer.try_submit(snapshot)

    def _bytes_only(self) -> Snapshot:
        """A checkpoint that moves only ``D``: the last durable ``C`` and its entries, unchanged."""
        return Snapshot(self.journal.checkpoint, [], {}, self._durable_deferred_at)

    def _make_durable(self, snapshot: Snapshot) -> None:
        """Rules 1-3 of DESIGN §2 for one snapshot, in order (on the syncer thread, or the caller's)."""
        if snapshot.entries or snapshot.checkpoint != self.journal.checkpoint:
            self.extractor.flush_to_disk()  # 1b. staging on disk (a checkpoint that moves only D has no need)
        with self._hashed:  # the hash state of exactly the first D bytes (the network thread may go on)
            durable, state = self.partial.length, self.hasher.state()
        self.partial.sync()  # 2. >= D, and D >= every byte the parser consumed, so >= C
        journal = self.journal
        journal.add_finished(snapshot.entries, snapshot.files)
        journal.checkpoint = snapshot.checkpoint
        journal.durable = durable
        journal.sha256_state = state
        journal.save(self.journal_path, deferred_at=snapshot.deferred_at)  # 3. log, then header
        self._durable_deferred_at = snapshot.deferred_at

    def _write_checkpoint(self) -> None:
        """A checkpoint written on the calling thread, with the parser quiet (after ``settle``, or with no
        worker running)."""
        self._syncer.wait()
        self.extractor.drain()
        self._make_durable(self._snapshot())

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
    records = read_central_directory(
        b"".join(read_range(cd_offset, min(length, cd_offset + cd_size))), cd_offset
    )
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
