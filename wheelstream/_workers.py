"""Worker processes for installs of several wheels: one GIL per download.

Why: a download is a pipeline of threads (network + tee, unpack, writers, sink) whose heavy parts — inflate,
sha256, file writes — release the GIL, but whose glue — per entry: parse a header, hand the entry on, create
the file — needs it. Two downloads in one process share one GIL, and threads of one process never use much
more than 1.5 cores whatever the machine has. Measured on 2 cores (ten real wheels, benchmark (b), tmpfs):
one process 1.6-1.9 s; the same wheels split over two processes 1.3-1.5 s (docs/performance.md).

How, and the rules kept:

* **fork, Linux only, and only from a process with one thread** (counted in ``/proc/self/task``): a worker
  starts with everything imported (spawned ones would pay the ~0.2 s of imports again), and no lock another
  thread held at the fork stays held forever in the child. Elsewhere, with a client of the caller's (it cannot
  cross a process), without shared semaphores (no ``/dev/shm``) or with ``WHEELSTREAM_PROCESSES=0``, the
  caller runs the same fetch on threads.
* **Same semantics as threads**: the worker runs the caller's (module-level) fetch function with a client of
  its own; results and errors travel back pickled — an error that would not survive pickling comes back as a
  ``RuntimeError`` with its message (else the pool would break) — and the caller handles them in the same
  order as with threads. A worker that dies (OOM killer, a signal) breaks the pool; the caller reports that as
  ``WorkerDied`` naming the wheel.
* **Signals stay with the parent**: workers ignore SIGINT and SIGTERM (blocked during the forks, so none lands
  in a child before it ignores it). Ctrl-C reaches the whole process group; the parent answers it by setting
  the shared cancel event, which a download answers with a checkpoint — what a download thread does. A worker
  dies with its parent (``PR_SET_PDEATHSIG``, SIGKILL) as a thread would on kill -9: the last checkpoint is
  what the next run resumes from.
* **Progress** reports travel over a pipe to a relay thread in the parent, which calls the caller's callback;
  a callback that raises cancels every download (and the pipe is still drained, so no worker blocks on it).
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
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from typing import Any

import httpx

from wheelstream._download import CancelSignal, DownloadResult
from wheelstream._http_client import new_client
from wheelstream._progress import Progress, ProgressCallback

__all__ = ["Fetch", "ProcessPool", "processes_available"]

# fetch(item, *args, client=, progress=, cancel=): one download, run in a worker
Fetch = Callable[..., DownloadResult]
_PR_SET_PDEATHSIG = 1


def processes_available() -> bool:
    """Whether worker processes may be forked here and now (see the module docstring). Threads are counted
    by the kernel: ``threading`` does not see those a C library started (BLAS, gRPC)."""
    if not sys.platform.startswith("linux") or os.environ.get("WHEELSTREAM_PROCESSES", "1") == "0":
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class _Worker:
    """What a worker process keeps between its downloads."""

    client: httpx.Client | None = None
    cancel: CancelSignal | None = None
    progress: ProgressCallback | None = None


_STOPPING = {signal.SIGINT, signal.SIGTERM}


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl: nobody would ever collect this worker
        os._exit(1)


def _start_worker(parent: int, cancel: CancelSignal, reports: SimpleQueue[Progress | None] | None,
                  timeout: float) -> None:
    for number in _STOPPING:  # the parent turns both into the cancel event; they were blocked since the fork
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)
    _die_with_parent(parent)
    _Worker.cancel = cancel
    _Worker.progress = reports.put if reports is not None else None
    _Worker.client = new_client(timeout)


def _run(fetch: Fetch, args: tuple[Any, ...]) -> tuple[DownloadResult, Path | None]:
    """In the worker: one download; a claimed tree goes back unlocked, for the parent to adopt."""
    assert _Worker.client is not None
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
    """Downloads in ``workers`` forked processes; ``close`` (``contextlib.closing``) waits for them.

    ``submit`` returns a future of ``(result, handed-over claim root or None)``; ``cancel`` stops every
    download like Ctrl-C would (they checkpoint and raise ``Interrupted``). The caller's progress callback runs
    on a relay thread; if it raises, every download is cancelled and ``callback_error`` holds what it raised.
    """

    def __init__(self, workers: int, *, timeout: float, progress: ProgressCallback | None) -> None:
        """Raises ``OSError`` / ``NotImplementedError`` where shared semaphores are missing (no ``/dev/shm``)."""
        context = multiprocessing.get_context("fork")
        self.cancel: CancelSignal = context.Event()
        self.callback_error: BaseException | None = None
        self._progress = progress
        self._reports: SimpleQueue[Progress | None] | None = context.SimpleQueue() if progress else None
        self._relay: threading.Thread | None = None
        self._forked = False
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(os.getpid(), self.cancel, self._reports, timeout),
        )

    def submit(self, fetch: Fetch, *args: Any) -> Future[tuple[DownloadResult, Path | None]]:
        if self._forked:
            return self._executor.submit(_run, fetch, args)
        # The first submit forks every worker. A Ctrl-C must not land in a child before it ignores SIGINT,
        # nor halfway through the forks: both signals wait, blocked, until the workers exist.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        try:
            future = self._executor.submit(_run, fetch, args)
            self._forked = True
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if self._reports is not None:  # a thread only after the forks
            self._relay = threading.Thread(target=self._relay_reports, name="wheelstream-progress", daemon=True)
            self._relay.start()
        return future

    def _relay_reports(self) -> None:
        assert self._reports is not None and self._progress is not None
        while (report := self._reports.get()) is not None:
            if self.callback_error is not None:
                continue  # keep the pipe drained: a worker blocked in put would never see the cancel
            try:
                self._progress(report)
            except BaseException as exc:  # noqa: BLE001 - raised for the caller by _api, after the cancel
                self.callback_error = exc
                self.cancel.set()

    def kill(self) -> None:
        """SIGKILL every worker still alive: after one died, the pool's queues may be unusable and the others,
        ignoring SIGTERM, would wait on them forever. Their last checkpoints are kept, as after kill -9."""
        for process in list(getattr(self._executor, "_processes", None) or {}.values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.kill()

    def close(self) -> None:
        """Wait for the workers to finish and exit (after ``cancel``, at their next chunk)."""
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            if self._relay is not None and self._reports is not None:
                self._reports.put(None)  # behind every report the workers sent before they finished
                self._relay.join()
