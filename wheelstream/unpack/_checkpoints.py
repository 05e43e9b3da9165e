"""Taking the tee's checkpoints (DESIGN §2): what a checkpoint records, on which thread, and in which order it is
made durable. ``Checkpoints`` is mixed into the ``Tee`` dataclass, which holds every field named here.

Checkpoints come in three kinds, all made durable by ``Checkpoints._make_durable`` while the parser is
quiet (every event of the blocks it was given handled), in the order staging → partial → journal:

* **Periodic** (every 32 MB / 1 s; ``maybe_checkpoint``): the network thread only marks one owed and goes on reading.
  The worker takes it after the block it is parsing (not behind the blocks queued since: behind writers slower than
  the network, those took the whole download): it collects what the extractor's writers have written (without waiting
  for the rest: behind a backlog of small files the parser may be inflating a large entry meanwhile), and snapshots
  ``C`` — the parser's checkpoint, or the local header of the first finished entry whose file is not written yet,
  whichever comes first — the entries finished before ``C`` with their digests, and ``deferred_at``. A ``Syncer``
  thread then makes the snapshot durable in rule order: ``syncfs`` of staging (rule 1: it covers every write that
  returned before it), an fsync of the partial (rule 2: every byte the worker parsed was written to the partial
  *before* it was queued, so ``D`` >= what the parser consumed >= ``C``; ``D`` and the whole-file hash state are read
  together, under the lock the network thread holds while it writes and hashes a block, so the journal's state covers
  exactly ``0..D``), then the journal appends the snapshot's entries and replaces its small header (rule 3). The
  unpack thread is the bottleneck, so it pays only O(new entries); the syncs — on ext4 0.5-1.5 s per torch download —
  happen beside it. One snapshot is in flight at a time: a checkpoint due while the last is still syncing is owed, and
  taken after the first block parsed once the syncer is free; everything that settles the stream waits for the syncer
  first.
* **Idle** (the worker found nothing to do for ``IDLE_AFTER`` seconds: the network stalled): the worker takes
  a periodic checkpoint on its own, waiting for the writers this time, if entries were finished since the last
  one or the partial file holds bytes past ``D`` (inside a large entry nothing finishes; not past a deferred
  entry, where the worker parses nothing and only counts the bytes against the budget), and none is syncing.
  A stall is when people give up and kill the process; without this the last checkpoint could be ~32 MB / 1 s
  older than what had arrived when the bytes stopped coming (seen: 20 MB re-fetched after a kill 1 s into a
  stall, because the checkpoint before the stall was still syncing and nothing came to trigger another). What
  the network thread has not handed over yet (under one 1 MiB block) is not in the partial file: it is
  fetched again.
* **Settled** (``checkpoint``: interruption, error, giving up, before a wait): ``settle`` drains the queue
  and stops the worker first, then the same steps run on the calling thread. Rare; correctness first.

Two checkpoints move only ``D`` (``_bytes_only``: ``C`` and its entries as last made durable, so no syncfs of
staging), submitted by the network thread: the first, after one block (not after 32 MB / 1 s), and the one at
the end of input when at least ``_tee._TAIL_CHECKPOINT`` bytes are not yet durable (``Tee.end_of_input``).

Either way the journal never records an entry the extractor has not written.

Before staging's sync, a checkpoint that moves ``C`` writes its log lines and a pending record, unsynced
(``Journal.save_pending``, ``_pending``): a kill during the syncs then costs nothing the record and staging can
prove. A resume that takes files from such a record sets ``staging_unsynced``, and the next checkpoint syncs
staging before it records them, even one that moves only ``D``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from wheelstream._killpoints import reached
from wheelstream.unpack import _sha256
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal, PartialFile
from wheelstream.unpack._stages import Snapshot, Syncer, Unpacker
from wheelstream.zip import ZipStreamParser

__all__ = ["Checkpoints"]


_SNAPSHOT_ENTRIES = 8192  # entries one periodic checkpoint records at most (see Checkpoints._snapshot)


class Checkpoints:
    """The checkpoint-taking half of the tee. Not a dataclass: the fields below are declared (and documented)
    by ``Tee``, which mixes this in, so the constructor and the field order stay the tee's."""

    block_size: ClassVar[int]  # the tee's blocks (``_tee._BLOCK``): the first checkpoint is due after one
    journal_path: Path
    journal: Journal
    partial: PartialFile
    parser: ZipStreamParser
    extractor: Extractor
    hasher: _sha256.RunningSha256
    position: int
    last_checkpoint_at: float
    last_checkpoint_bytes: int
    _unpacker: Unpacker | None
    _syncer: Syncer
    _handed_over: int
    _checkpoints: int
    _owed: bool
    _durable_deferred_at: int | None
    _hashed: threading.Lock
    # Staging holds files a checkpoint may record that were never synced: those a resume adopted from a pending
    # checkpoint (``_pending``). The next checkpoint syncs staging first, even one that moves only D.
    staging_unsynced: bool
    pieces: Callable[[], list[tuple[int, int]]] | None
    # The tee's own methods these rules call: write out the buffered bytes and hand them to the worker
    # (``Tee._flush``); wait until the worker and the syncer caught up (``Tee.settle``).
    _flush: Callable[[], None]
    settle: Callable[[], None]

    def maybe_checkpoint(self, every_bytes: int, every_seconds: float) -> None:
        """A periodic checkpoint, taken by the worker between two blocks: the network thread goes on reading."""
        now = time.monotonic()
        since = self.position - self.last_checkpoint_bytes
        if not self._checkpoints and since >= self.block_size:
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
            # Owed, not queued behind the blocks handed over: the worker takes it after the block it is parsing.
            # Queued, it waited for up to QUEUE_BLOCKS more blocks, and the network thread for room to queue it:
            # behind writers slower than the network (many tiny files) that was the whole download, and a kill
            # cost every file unpacked so far.
            self._owed = True
        else:
            self._write_checkpoint()  # no worker (nothing handed over since the last settle): the parser is quiet
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
        deferred entry the worker parses nothing (it only counts the bytes against the budget) and nothing
        finishes: the periodic checkpoints cover that phase."""
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
        journal = self.journal
        moves_c = bool(snapshot.entries) or snapshot.checkpoint != journal.checkpoint
        journal.add_finished(snapshot.entries, snapshot.files)
        if moves_c or self.staging_unsynced:  # a checkpoint that moves only D has no need of staging
            if moves_c and not self.extractor.verify_only:  # (nothing written, nothing for staging to prove)
                # What a kill during the syncs below would otherwise lose: provable without them (_pending).
                journal.save_pending(self.journal_path, snapshot.checkpoint, snapshot.deferred_at)
            reached("checkpoint.staging-sync")
            self.extractor.flush_to_disk()  # 1b. staging on disk
            self.staging_unsynced = False
        with self._hashed:  # the hash state of exactly the first D bytes (the network thread may go on)
            durable, state, digest = self.partial.length, self.hasher.state(), self.hasher.hexdigest()
        # Pieces past D other connections wrote (a segmented download): written before this sync, so it
        # covers them too.
        pieces = (
            self.pieces
        )  # once: the download's thread may drop it meanwhile (a fall back to one connection)
        held = [[max(start, durable), end] for start, end in pieces() if end > durable] if pieces else []
        self.partial.sync()  # 2. >= D, and D >= every byte the parser consumed, so >= C
        journal.checkpoint = snapshot.checkpoint
        journal.durable = durable
        journal.sha256_state = state
        journal.prefix_sha256 = digest
        journal.held = held
        journal.save(self.journal_path, deferred_at=snapshot.deferred_at)  # 3. log, then header
        self._durable_deferred_at = snapshot.deferred_at

    def _write_checkpoint(self) -> None:
        """A checkpoint written on the calling thread, with the parser quiet (after ``settle``, or with no
        worker running)."""
        self._syncer.wait()
        self.extractor.drain()
        self._make_durable(self._snapshot())
