"""The threads that create and write staged files, and how far the parser may run ahead of them.

Two ways out of the unpack thread, both so that it only parses (and inflates large entries):

* Small files go in batches (:class:`Batch`) to the process-wide writer threads (:func:`submit`), which
  inflates and verifies packed entries, hashes, creates, writes and closes each file. :class:`WriterQueue` keeps
  the batches in flight in stream order, records their digests, and is the back-pressure: the batches may hold
  ``max_pending`` bytes in memory; past that, a packed entry whose bytes can be read back from a ``source`` (the
  partial file of a download) is queued as an :class:`Unread` without them, and the parser waits only at
  ``_MAX_BATCHES`` batches (docs/performance.md#d-parser-runs-ahead, docs/performance.md#d-pending-budget).
* The chunks of a large file go to :class:`Sink`, one thread that hashes and writes them in order while the
  unpack thread inflates the next chunk (docs/performance.md#d-sink-thread).

A writer's error is raised on the unpack thread, in stream order, and stays: nothing after a failed write is
recorded.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple, TypeAlias

from wheelstream._interrupts import INTERRUPTS
from wheelstream._staged import StagedFile
from wheelstream.zip import EntryPacked, LocalHeader

__all__ = [
    "Batch",
    "Content",
    "ReadAt",
    "Sink",
    "Unread",
    "WriteFile",
    "WriterQueue",
    "idle_writer_threads",
    "submit",
]

# Tuning, each with its evidence in docs/performance.md: #d-writer-threads (file creation is kernel-CPU bound:
# more writers only add contention), #d-writer-batches (a batch goes at this many files or bytes of work),
# #d-parser-runs-ahead (batches in flight while packed entries can be read back from a source: far enough for
# the parser to pass torch's small files and reach its large library while the writers catch up).
_WRITERS = 2
_BATCH_FILES = 64
_BATCH_BYTES = 1 << 20
_MAX_BATCHES = 256
_MAX_BATCHES_IN_MEMORY = 64  # without a source every batch holds its bytes: a tighter bound

# ``read_at(offset, size)``: exactly ``size`` bytes of the archive from ``offset`` (or OSError), from any thread.
ReadAt: TypeAlias = "Callable[[int, int], bytes]"
# Inflated chunks, or a whole entry still compressed (in memory, or left in the source).
Content: TypeAlias = "list[bytes] | EntryPacked | Unread"
# ``write(path, content, name, offset)``: create one file, return its sha256 — what a writer does per file.
WriteFile: TypeAlias = "Callable[[str, Content, str, int], str]"
_WRITTEN: list[bytes] = []  # what a batch keeps of a file once it is written


class Unread(NamedTuple):
    """A packed entry whose compressed bytes were left in the source file (the archive being extracted: the
    partial file of a download) because the memory budget was spent; its writer reads them back."""

    header: LocalHeader
    end_offset: int
    read_at: ReadAt

    def load(self) -> EntryPacked:
        header = self.header
        return EntryPacked(header, self.read_at(header.data_offset, header.compressed_size), self.end_offset)


class Batch:
    """Small finished files handed to the writer pool together: one queue hand-off per batch instead of a
    ``ThreadPoolExecutor.submit`` (a Future, a work item, a lock dance) per file
    (docs/performance.md#d-writer-batches)."""

    __slots__ = ("cancelled", "digests", "done", "error", "files", "held", "size", "write")

    def __init__(self, write: WriteFile) -> None:
        self.write = write
        self.files: list[tuple[str, Content, str, int]] = []  # (path, content, archive name, offset)
        self.size = 0  # the work in it: bytes to inflate and write
        self.held = 0  # memory it holds until written: compressed bytes of packed entries, inflated chunks
        self.digests: list[str] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cancelled = False  # abandoned: the files not yet written are skipped

    def run(self) -> None:
        files, write = self.files, self.write
        try:
            for index, (path, content, name, offset) in enumerate(files):
                if self.cancelled:
                    break
                self.digests.append(write(path, content, name, offset))
                files[index] = (path, _WRITTEN, name, offset)  # a batch waiting to be collected holds no data
        except BaseException as exc:  # noqa: BLE001 - re-raised on the extractor's thread, in stream order
            self.error = exc
        finally:
            self.done.set()


_POOL: queue.SimpleQueue[Batch] | None = None
_POOL_LOCK = threading.Lock()  # guards the three below, and every put (see _writer_loop)
_alive = 0  # writer threads that have not decided to leave
_busy = 0  # of them, running a batch
_IDLE_EXIT = 2.0  # seconds a writer waits for work before it leaves


def _writer_loop(work: queue.SimpleQueue[Batch]) -> None:
    """Run batches; leave after ``_IDLE_EXIT`` s without one. The decision to leave is taken under the lock
    every put holds, with the queue empty: a batch is never put for a writer that has gone (``submit`` starts
    another then)."""
    global _alive, _busy
    while True:
        try:
            batch = work.get(timeout=_IDLE_EXIT)
        except queue.Empty:
            with _POOL_LOCK:
                if work.empty():
                    _alive -= 1
                    return
            continue
        with _POOL_LOCK:
            _busy += 1
        try:
            batch.run()
        finally:
            with _POOL_LOCK:
                _busy -= 1


def submit(batch: Batch) -> None:
    """Hand ``batch`` to the process-wide writer threads (``wheelstream-write_N``), starting them as needed.

    What it touches: a module-global queue, up to ``_WRITERS`` daemon threads and, at import, an
    ``os.register_at_fork`` hook. Why shared: every extractor in the process uses the same writers, since more
    would only contend in the kernel (docs/performance.md#d-writer-threads). Why they leave when idle: a
    library's threads should not outlive its calls by more than a moment — kept for good, they also made the
    next call that may fork (``_workers``) run on threads. A forked child inherits the queue but not the
    threads; the hook makes it start its own (docs/performance.md#d-writer-pool-at-fork).
    """
    global _POOL, _alive
    with _interrupts_held(), _POOL_LOCK:
        if _POOL is None:
            _POOL = queue.SimpleQueue()
        while _alive < _WRITERS:
            try:
                threading.Thread(
                    target=_writer_loop, args=(_POOL,), name=f"wheelstream-write_{_alive}", daemon=True
                ).start()
            except RuntimeError:  # no thread can start (a process or memory limit)
                if _alive == 0:
                    raise  # no writer would ever take the batch: the caller must not wait for it
                break  # those alive take it
            _alive += 1
        _POOL.put(batch)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """On the main thread, Ctrl-C (and what a command takes as Ctrl-C) waits until the batch is handed over: a
    ``KeyboardInterrupt`` inside a writer's ``Thread.start`` left the batch counted in flight but never queued,
    and whoever then waited for it (an abandon, a drain) waited for good. Blocked, not dropped: the signal is
    delivered when the mask comes back."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def idle_writer_threads() -> int:
    """Writer threads waiting for work: they hold no lock a forked child could need (``_workers`` may fork
    beside them; the child starts writers of its own)."""
    with _POOL_LOCK:
        return _alive - _busy


def _before_fork() -> None:
    _POOL_LOCK.acquire()  # released by the hooks below: in the parent; the child gets a new lock


def _after_fork_in_parent() -> None:
    _POOL_LOCK.release()


def _after_fork_in_child() -> None:
    """After ``fork`` the child has the queue but not the threads: it must start its own."""
    global _POOL, _POOL_LOCK, _alive, _busy
    _POOL, _POOL_LOCK, _alive, _busy = None, threading.Lock(), 0, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


class WriterQueue:
    """The batches of one extractor: filled in stream order, sent to the pool, collected oldest first.

    ``files`` is the extractor's record: each file is listed there (digest ``""``) before it is queued, and its
    digest is filled in when its batch is collected. ``write`` is what a writer does per file.
    """

    def __init__(
        self, files: dict[str, StagedFile], write: WriteFile, *, max_pending: int, source: ReadAt | None
    ) -> None:
        self._files = files
        self._write = write
        self._source = source
        self.max_pending = max_pending  # bytes the batches in flight may hold in memory
        self._max_batches = _MAX_BATCHES if source is not None else _MAX_BATCHES_IN_MEMORY
        self.batch = Batch(write)  # the one filling up
        self.in_flight: collections.deque[Batch] = collections.deque()
        self.in_flight_bytes = 0  # held in memory by the batches in flight
        self.failed: BaseException | None = None  # a writer's error: sticky

    def add_packed(self, path: str, event: EntryPacked, name: str, offset: int) -> None:
        """A whole small entry, still compressed. Held until written: its compressed bytes (the inflated ones
        exist only inside a writer, one file at a time). Past the budget they stay in the source, if there is
        one, and the parser need not wait."""
        held = len(event.data)
        content: Content = event
        if self._source is not None and self.in_flight_bytes + self.batch.held + held > self.max_pending:
            content, held = Unread(event.header, event.end_offset, self._source), 0
        self.add(path, content, name, offset, event.header.uncompressed_size + len(event.data), held)

    def add(self, path: str, content: Content, name: str, offset: int, size: int, held: int) -> None:
        """Queue one file (``size``: the work, ``held``: the memory it keeps until written)."""
        if self.failed is not None:
            raise self.failed
        batch = self.batch
        batch.files.append((path, content, name, offset))
        batch.size += size
        batch.held += held
        if len(batch.files) >= _BATCH_FILES or batch.size >= _BATCH_BYTES:
            self.send()

    def send(self) -> None:
        """Send the batch filling up, if it holds anything; then wait while over the budget."""
        self._collect_done()  # what is written no longer counts against the budget (nor waits for a checkpoint)
        batch, self.batch = self.batch, Batch(self._write)
        if not batch.files:
            return
        # Submitted first, so that a batch no writer took (none could start) is never waited for; counted under
        # the same mask, so that a Ctrl-C held while it was queued lands after it is counted, not in between.
        with _interrupts_held():
            submit(batch)
            self.in_flight.append(batch)
            self.in_flight_bytes += batch.held
        while self.in_flight_bytes > self.max_pending or len(self.in_flight) > self._max_batches:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        """Wait for the oldest batch and record its digests; its error (DuplicateEntry, OSError) is raised
        here, on the extractor's thread, and stays: nothing after a failed write is recorded."""
        batch = self.in_flight[0]
        batch.done.wait()  # interrupted (Ctrl-C): the batch stays in flight, and drain's cleanup waits for it
        self.in_flight.popleft()
        self.in_flight_bytes -= batch.held
        if self.failed is None and batch.error is not None:
            self.failed = batch.error
        if self.failed is not None:
            raise self.failed
        files = self._files
        for (_path, _chunks, name, _offset), digest in zip(batch.files, batch.digests, strict=True):
            files[name] = StagedFile(name, files[name].size, digest, False)

    def _collect_done(self) -> None:
        """Record every batch already written, oldest first, up to the first still with the writers."""
        while self.in_flight and self.in_flight[0].done.is_set():
            self._collect_oldest()

    def collect_written(self) -> None:
        """Send the batch filling up, record the batches already written; re-raise a writer's error."""
        self.send()
        if self.failed is not None:
            raise self.failed

    def wait_all(self) -> None:
        """Collect every batch in flight (the batch filling up must be sent first); re-raise a writer's error."""
        while self.in_flight:
            self._collect_oldest()
        if self.failed is not None:
            raise self.failed

    def finish_after_interrupt(self) -> None:
        """Collect every batch in flight, holding further Ctrl-Cs; nothing to do after a writer's error (it stays
        in ``failed``, for the next drain)."""
        if self.failed is not None:
            return
        while self.in_flight:
            try:
                self._collect_oldest()
            except KeyboardInterrupt:
                continue  # the batch is still in flight: _collect_oldest removes it only once it is done
            except BaseException:  # noqa: BLE001 - sticky in failed: the next drain raises it
                return

    def abandon(self) -> None:
        """After an error: skip what the batches in flight have not written yet, let each stop, then forget them
        (their files are not recorded; forgotten even if a Ctrl-C ends the wait, since a cancelled batch's
        digests no longer match its files)."""
        for batch in self.in_flight:
            batch.cancelled = True
        try:
            for batch in self.in_flight:
                batch.done.wait()
        finally:
            self.in_flight.clear()
            self.in_flight_bytes = 0


class Sink:
    """Hashes and writes the chunks of large files on its own thread, in order.

    Inflating (isal), hashing (OpenSSL) and writing all release the GIL, so with the sink the unpack thread
    inflates the next chunk while this one hashes and writes the last: on torch most bytes are in a few huge
    shared libraries, where these three used to run one after the other. Errors are kept and re-raised, in
    stream order, by the next ``put`` or by ``drain``.
    """

    def __init__(self, record: Callable[[StagedFile], None]) -> None:
        self._record = record
        self._queue: queue.Queue[tuple[BinaryIO, Any, bytes | StagedFile] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None  # sticky: after a failed write nothing more is written
        # Started by the first chunk: most wheels have no file over the inline limit, and a thread started and
        # stopped for nothing is a measurable part of a small download's fixed cost (docs/performance.md#d-sink-thread).
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                handle, digest, payload = item
                if self.error is not None:
                    continue  # a file after a failed write could only be recorded with a wrong digest
                if isinstance(payload, StagedFile):
                    handle.close()
                    self._record(StagedFile(payload.name, payload.size, digest.hexdigest(), False))
                else:
                    digest.update(payload)
                    handle.write(payload)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the extractor's thread
                self.error = exc
            finally:
                self._queue.task_done()

    def put(self, handle: BinaryIO, digest: Any, payload: bytes | StagedFile) -> None:
        """A chunk of the open file ``handle`` to hash and write; or its ``StagedFile`` (digest ``""``): close it
        and record it with its digest."""
        if self.error is not None:
            raise self.error
        if self._thread is None:
            thread = threading.Thread(target=self._run, name="wheelstream-sink", daemon=True)
            thread.start()  # may raise (no threads left): then nothing is queued and the sink stays unstarted
            self._thread = thread
        self._queue.put((handle, digest, payload))  # the queue counts it only once it is really queued

    def drain(self) -> None:
        self._queue.join()  # an interrupted join leaves the count intact: the next drain waits again
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
