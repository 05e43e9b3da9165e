"""The tee's two helper threads: the unpack worker (the second stage, DESIGN §8) and the syncer that makes a
periodic checkpoint durable off that worker. Their rules — what a snapshot holds, in which order it is made
durable, how errors reach the network thread in stream order — are the checkpoint essay (``_checkpoints``).
"""

from __future__ import annotations

import functools
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from wheelstream._staged import StagedFile
from wheelstream.zip import LocalEntry

__all__ = [
    "IDLE_AFTER",
    "QUEUE_BLOCKS",
    "Snapshot",
    "Syncer",
    "Unpacker",
    "interruptible",
]

QUEUE_BLOCKS = 4  # bounded: at most ~4 MiB between the network and the disk
IDLE_AFTER = 0.5  # seconds without a block before the worker checkpoints what it has (the network stalled)


def interruptible() -> bool:
    """Can a signal handler raise into this thread at any bytecode — Ctrl-C's ``KeyboardInterrupt``, the CLI's
    SIGTERM? Only on the main thread, and only while SIGINT or SIGTERM has a Python handler. A block parsed
    here instead of on the worker would then be half parsed when the interrupt's checkpoint is written; the
    worker lets the block finish first (``Unpacker.close``). Download threads and worker processes (which
    ignore both signals) never see one."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return any(callable(signal.getsignal(number)) for number in (signal.SIGINT, signal.SIGTERM))


class Snapshot(NamedTuple):
    """A periodic checkpoint as the worker saw it, for the syncer to make durable."""

    checkpoint: int
    entries: list[LocalEntry]
    files: dict[str, StagedFile]
    deferred_at: int | None


class Syncer:
    """Makes one periodic checkpoint at a time durable, off the unpack thread (see the module docstring).

    A thread per checkpoint (a handful per download) keeps the life cycle trivial; ``wait`` joins the one in
    flight and re-raises its error — a checkpoint that could not be written stops the download, as before.
    """

    def __init__(self, write: Callable[[Snapshot], None]) -> None:
        self._write = write
        self._idle = threading.Event()
        self._idle.set()
        self._submitting = threading.Lock()
        self.error: BaseException | None = None

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def try_submit(self, snapshot: Callable[[], Snapshot]) -> bool:
        """Start making ``snapshot()`` durable unless one is in flight (then False, and nothing is called).

        Atomic: the unpack worker submits periodic checkpoints while the network thread may submit the one at
        the end of input; a snapshot is taken only once its turn is certain."""
        with self._submitting:
            if self.error is not None:
                raise self.error
            if not self._idle.is_set():
                return False
            self._idle.clear()
            try:
                threading.Thread(
                    target=self._run, args=(snapshot(),), name="wheelstream-checkpoint", daemon=True
                ).start()
            except BaseException:
                self._idle.set()  # no thread (a pid limit, say): wait() must not block forever on it
                raise
            return True

    def _run(self, snapshot: Snapshot) -> None:
        try:
            self._write(snapshot)
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait() or the next submit()
            self.error = exc
        finally:
            self._idle.set()

    def wait(self, raise_error: bool = True) -> None:
        self._idle.wait()
        if self.error is not None and raise_error:
            raise self.error


class Unpacker:
    """The second stage of the tee: parse, inflate and write on a worker thread (DESIGN §8).

    The network thread hands over ~1 MiB blocks through a bounded queue; isal/zlib, hashing and file writes
    release the GIL, so the two stages overlap on two cores. The worker lives for one ``_pump`` (or until a
    settled checkpoint): ``close`` waits until every block handed over is parsed and written, then re-raises
    the first error the worker hit, so errors surface in stream order as before. After an error the worker
    skips everything queued behind it.
    """

    def __init__(self, work: Callable[[bytes], None], idle: Callable[[], None]) -> None:
        self._work = work
        self._idle = idle  # called on the worker when nothing came for IDLE_AFTER seconds
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self._idle_seconds = 0.0  # the worker waited for a block this long in all ...
        self._idle_since: float | None = None  # ... and has been waiting since then (None: it works)
        self._thread = threading.Thread(target=self._run, name="wheelstream-unpack", daemon=True)
        self._thread.start()

    def idle_seconds(self) -> float:
        """How long the worker has waited for blocks so far, the wait in progress included: when it waits most
        of the time, the network is the bottleneck (``fetch._split.Starving``)."""
        since = self._idle_since
        return self._idle_seconds + (time.monotonic() - since if since is not None else 0.0)

    def _run(self) -> None:
        while True:
            self._idle_since = time.monotonic()
            try:
                item = self._queue.get(timeout=IDLE_AFTER)
            except queue.Empty:
                step: Callable[[], None] = self._idle
            else:
                if item is None:
                    return
                step = functools.partial(self._work, item)
            finally:
                self._idle_seconds += time.monotonic() - self._idle_since
                self._idle_since = None
            if self.error is None:
                try:
                    step()
                except BaseException as exc:  # noqa: BLE001 - handed to the network thread in close()
                    self.error = exc

    def put(self, item: bytes) -> None:
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
