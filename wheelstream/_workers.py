"""Worker processes for installs of several wheels: one GIL per download.

Why: a download is a pipeline of threads (network + tee, unpack, writers, sink) whose heavy parts — inflate,
sha256, file writes — release the GIL, but whose glue — per entry: parse a header, hand the entry on, create
the file — needs it. Two downloads in one process share one GIL, and threads of one process never use much
more than 1.5 cores whatever the machine has; one GIL per download pays on several wheels
(docs/performance.md#d-worker-processes).

How, and the rules kept:

* **fork, Linux only, and only from a process with one thread** (counted in ``/proc/self/task``; idle writer
  threads of an earlier download aside): a worker
  starts with everything imported (spawned ones would pay the imports again), and no lock another
  thread held at the fork stays held forever in the child. Elsewhere, with a client of the caller's (it cannot
  cross a process), without shared semaphores (no ``/dev/shm``) or with ``WHEELSTREAM_PROCESSES=0``, the
  caller runs the same fetch on threads.
* **Same semantics as threads**: the worker runs the caller's (module-level) fetch function with a client of
  its own; results and errors travel back pickled — an error that would not survive pickling comes back as a
  ``RuntimeError`` with its message (else the pool would break) — and the caller handles them in the same
  order as with threads. A worker that dies (OOM killer, a signal) breaks the pool; the caller reports that as
  ``WorkerDied`` naming the wheel it was on, gives the others 5 s to checkpoint, and SIGKILLs the rest.
* **Nothing shared holds a lock a dead worker could keep**: the cancel is a pipe, set once readable
  (``PipeSignal``; a ``multiprocessing`` event is a condition variable, and a worker killed while waiting on
  it in a retry's back-off hung every later ``set``), and reports go over one pipe in single writes of at most
  4,000 bytes, which Linux never interleaves.
* **Signals stay with the parent**: workers ignore SIGINT and SIGTERM (blocked during the forks, so none lands
  in a child before it ignores it). Ctrl-C reaches the whole process group; the parent answers it by setting
  the cancel, which a download answers with a checkpoint — what a download thread does. A worker dies with its
  parent (``PR_SET_PDEATHSIG``, SIGKILL) as a thread would on kill -9: the last checkpoint is what the next
  run resumes from.
* **Reports**: which wheel each worker starts, and progress, which a relay thread in the parent hands to the
  caller's callback; a callback that raises cancels every download (and the pipe is still drained).
* **Claims** (move installs): a worker claims the tree it unpacked and hands it over with the result —
  unlocked, lock file kept and touched, so no sweep takes it for a minute; the parent adopts it
  (``Cache.adopt_claim``) the moment the result arrives.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any

import httpx

from wheelstream._interrupts import INTERRUPTS
from wheelstream._progress import Progress, ProgressCallback
from wheelstream.fetch import CancelSignal, DownloadResult
from wheelstream.transport import new_client
from wheelstream.unpack._writers import idle_writer_threads

__all__ = ["Fetch", "PipeSignal", "ProcessPool", "processes_available"]

# fetch(item, *args, client=, progress=, cancel=): one download, run in a worker
Fetch = Callable[..., DownloadResult]
_PR_SET_PDEATHSIG = 1


def processes_available() -> bool:
    """Whether worker processes may be forked here and now (see the module docstring). Threads are counted
    by the kernel: ``threading`` does not see those a C library started (BLAS, gRPC). An earlier download's
    writer threads, idle, are not counted: they wait on a queue and hold nothing a child needs (the fork hooks
    of ``unpack._writers``)."""
    if not sys.platform.startswith("linux") or os.environ.get("WHEELSTREAM_PROCESSES", "1") == "0":
        return False
    try:
        return len(os.listdir("/proc/self/task")) - idle_writer_threads() == 1
    except OSError:
        return False


class _Worker:
    """What a worker process keeps between its downloads."""

    client: httpx.Client | None = None
    cancel: CancelSignal | None = None
    reports: Connection | None = None
    progress: ProgressCallback | None = None


# What the parent turns into the cancel and a worker ignores (``_interrupts``). A closed terminal sends SIGHUP to
# the whole process group: a worker that took it raised KeyboardInterrupt wherever it was (once inside a writer's
# start, and the install hung for good).
_STOPPING = INTERRUPTS
_ATOMIC = 4000  # bytes: a pipe write up to PIPE_BUF (4096 on Linux) is atomic, so writers need no shared lock


class PipeSignal:
    """The shared cancel: set when its pipe is readable. No lock and no waiter list — a ``multiprocessing``
    event is a condition variable, and a worker killed while waiting on it (a retry's back-off) or holding its
    lock would block every ``set`` and ``is_set`` after it, for good."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    def set(self) -> None:
        if self._write < 0:
            return  # closed: nobody waits on it any more (and its number may belong to another file now)
        with contextlib.suppress(OSError):  # full: set many times over, it is set either way
            os.write(self._write, b"!")

    def is_set(self) -> bool:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> bool:
        poller = select.poll()  # one per call: a poll object must not be shared between threads
        poller.register(self._read, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, round(timeout * 1000))))

    def fileno(self) -> int:
        """Readable once set: for ``select`` / ``multiprocessing.connection.wait``."""
        return self._read

    def close(self) -> None:
        """Idempotent: a second call must not close descriptors that have since been given to other files."""
        if self._read < 0:
            return
        os.close(self._read)
        os.close(self._write)
        self._read = self._write = -1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl: nobody would ever collect this worker
        os._exit(1)


def _start_worker(
    parent: int, cancel: CancelSignal, reports: Connection, relay: bool, timeout: float
) -> None:
    for number in _STOPPING:  # the parent turns them into the cancel; they were blocked since the fork
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)
    _die_with_parent(parent)
    _Worker.cancel = cancel
    _Worker.reports = reports
    _Worker.progress = _send_progress if relay else None
    _Worker.client = new_client(timeout)


def _send(message: tuple[Any, ...]) -> None:
    assert _Worker.reports is not None
    payload = pickle.dumps(message)
    if len(payload) <= _ATOMIC:  # larger could interleave with another worker's write: not sent
        _Worker.reports.send_bytes(payload)


def _send_progress(report: Progress) -> None:
    if report.message is not None and len(report.message) > 1000:
        report = dataclasses.replace(report, message=report.message[:1000] + "…")
    _send(("progress", report))


def _run(fetch: Fetch, label: str, args: tuple[Any, ...]) -> tuple[DownloadResult, Path | None]:
    """In the worker: one download; a claimed tree goes back unlocked, for the parent to adopt."""
    assert _Worker.client is not None
    _send(("start", os.getpid(), label))  # so the parent can name the wheel if this process dies
    try:
        result = fetch(*args, client=_Worker.client, progress=_Worker.progress, cancel=_Worker.cancel)
    except Exception as exc:  # noqa: BLE001 - every error goes back to the parent, made portable
        raise _portable(exc) from None
    if result.claim is None:
        return result, None
    return dataclasses.replace(result, claim=None), result.claim.hand_over()


def _portable(error: Exception) -> Exception:
    """``error``, or — when it would not survive the trip to the parent (an exception whose ``__init__`` wants
    other arguments than its ``args``) — a ``RuntimeError`` saying the same, so the parent does not get a
    ``BrokenProcessPool`` instead."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure to round-trip
        return RuntimeError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")
    return error


class ProcessPool:
    """Downloads in ``workers`` forked processes: ``start`` forks them, ``submit`` queues a download (a future
    of ``(result, handed-over claim root or None)``), ``cancel`` stops them all like Ctrl-C would (they
    checkpoint and raise ``Interrupted``), ``close`` (``contextlib.closing``) waits for them.

    Workers report over one pipe, without a shared lock (each message is one atomic write): which wheel each
    process is on, and progress for the caller's callback, which runs on a relay thread here; a callback that
    raises cancels every download, and ``callback_error`` holds what it raised.
    """

    def __init__(self, workers: int, *, timeout: float, progress: ProgressCallback | None) -> None:
        """Raises ``OSError`` / ``NotImplementedError`` where the executor's semaphores are missing."""
        context = multiprocessing.get_context("fork")
        self.cancel = PipeSignal()
        self.callback_error: BaseException | None = None
        self._progress = progress
        self._reader, writer = context.Pipe(duplex=False)
        self._running: dict[int, str] = {}  # worker pid -> the wheel it started last
        self._stopping = PipeSignal()  # a pipe, so the relay can wait on it and on the reports at once
        self._relay: threading.Thread | None = None
        self._closed = False
        try:
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(os.getpid(), self.cancel, writer, progress is not None, timeout),
            )
        except BaseException:  # the caller falls back to threads: no pipe of ours may stay open
            for pipe in (self._reader, writer, self.cancel, self._stopping):
                pipe.close()
            raise

    def start(self) -> None:
        """Fork the workers. A Ctrl-C must not land in a child before it ignores SIGINT, nor halfway through
        the forks: both signals wait, blocked, until the workers exist (a pending one is raised here, before
        any download was queued)."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        try:
            try:
                self._executor.submit(os.getpid)  # the first submit forks every worker
            except BaseException:
                self._abandon()
                raise
            self._relay = threading.Thread(
                target=self._relay_reports, name="wheelstream-reports", daemon=True
            )
            self._relay.start()  # a thread only after the forks
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _abandon(self) -> None:
        """A fork failed halfway (``EMFILE``, ``EAGAIN``): the executor raised before it started its manager
        thread, so nothing would ever tell the workers already forked to exit — they wait on the call queue, and
        closing the pool waited for them for good (Ctrl-C did not end it). They are killed here, the executor
        shut, every pipe of ours closed; the caller runs the downloads on threads."""
        self._closed = True
        for process in self._processes().values():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.kill()
                process.join()
        with contextlib.suppress(Exception):
            self._executor.shutdown(wait=False, cancel_futures=True)
        initargs = getattr(self._executor, "_initargs", ())  # the reports' writing end, kept for the workers
        for pipe in (self._reader, self.cancel, self._stopping, *initargs[2:3]):
            with contextlib.suppress(OSError):
                pipe.close()

    def submit(self, fetch: Fetch, label: str, *args: Any) -> Future[tuple[DownloadResult, Path | None]]:
        return self._executor.submit(_run, fetch, label, args)

    def _relay_reports(self) -> None:
        """Until ``close``, and then until every report sent is handled. Waits on the reports and the stop
        together: a poll with a timeout would keep every install of several wheels waiting up to that long after
        its last download."""
        stop = self._stopping.fileno()
        while True:
            if self._reader not in wait_for([self._reader, stop]):
                return  # stopped, and nothing is left to read (the reports are looked at first)
            message = pickle.loads(self._reader.recv_bytes())
            if message[0] == "start":
                self._running[message[1]] = message[2]
            elif self._progress is not None and self.callback_error is None:
                try:
                    self._progress(message[1])
                except BaseException as exc:  # noqa: BLE001 - raised for the caller by _api, after the cancel
                    self.callback_error = exc
                    self.cancel.set()

    def _processes(self) -> dict[int, Any]:
        """The executor's worker processes by pid (its private ``_processes``: there is no public way)."""
        return dict(getattr(self._executor, "_processes", None) or {})

    def died(self) -> str | None:
        """After the pool broke, before the others are cancelled: the wheel a dead worker was on, when known.

        Found by its sentinel (ready once the process has exited), not its exit code: the pool reports the
        death as soon as the sentinel is ready, a moment before ``waitpid`` can see the process."""
        processes = self._processes()
        ready = set(wait_for([process.sentinel for process in processes.values()], timeout=1.0))
        for pid, process in processes.items():
            if process.sentinel in ready and process.exitcode != 0 and pid in self._running:  # 0: an idle
                return self._running[pid]  # worker the broken pool told to exit; None: not reaped yet
        return None

    def kill(self, grace: float) -> None:
        """After a worker died: give the others ``grace`` seconds to checkpoint (the cancel is set), then
        SIGKILL those still alive — the pool's queues may be unusable, and they ignore the SIGTERM a broken
        pool sends. What they had checkpointed is kept, as after kill -9."""
        deadline = time.monotonic() + grace
        processes = list(self._processes().values())
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.kill()

    def _shutdown_executor(self) -> None:
        """``shutdown(wait=True, cancel_futures=True)``, without its ``Thread.join`` of the executor's manager
        thread: on Python 3.11 a join interrupted by a signal handler's exception (a second Ctrl-C) can mark the
        thread as stopped while it still runs (bpo-45274's fix releases the lock the running thread holds), and
        the interpreter's exit then stops waiting for it and closes the queue it is about to send the workers'
        stop on: the exit hangs, waiting for workers that never get it (seen ~1 in 20 under load). So the
        executor is told to shut down with both signals held, and the wait is on the workers' sentinels and
        ``is_alive`` (no blocking acquire of the thread's lock), which an interrupt leaves intact. The manager
        thread and the result queue are the executor's private attributes, like ``_processes``."""
        manager = getattr(self._executor, "_executor_manager_thread", None)
        results = getattr(self._executor, "_result_queue", None)
        processes = list(self._processes().values())
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        try:
            self._executor.shutdown(wait=False, cancel_futures=True)  # marks it and wakes its manager
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        sentinels = [process.sentinel for process in processes]
        while sentinels:
            ready = wait_for(sentinels)
            sentinels = [sentinel for sentinel in sentinels if sentinel not in ready]
        while manager is not None and manager.is_alive():
            time.sleep(0.001)  # it has joined the workers, which just exited: a moment
        if results is not None:
            results.close()  # what shutdown(wait=True) closes once the manager is done with it

    def close(self) -> None:
        """Wait for the workers to finish and exit (after ``cancel``, at their next chunk), then for the
        reports they sent. A second call does nothing.

        Interrupted while waiting (a second Ctrl-C), it leaves the relay running and the pipes open: the
        workers are still checkpointing and may still report, and a worker whose report found the pipe full
        would block there, and the interpreter's exit with it (it waits for the executor's processes). The
        relay is a daemon; it and the pipes end with this process."""
        if self._closed:
            return
        self._closed = True
        self._shutdown_executor()
        self._stopping.set()
        if self._relay is not None:
            self._relay.join()
        self._reader.close()
        self.cancel.close()
        self._stopping.close()
