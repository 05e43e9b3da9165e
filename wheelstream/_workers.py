"""Worker processes for installs of several wheels: one GIL per download.

Why: a download is a pipeline of threads (network + tee, unpack, writers, sink) whose heavy parts — inflate,
sha256, file writes — release the GIL, but whose glue — per entry: parse a header, hand the entry on, create
the file — needs it. Two downloads in one process share one GIL, and threads of one process never use much
more than 1.5 cores whatever the machine has. Measured on 2 cores (ten real wheels, benchmark (b), tmpfs):
one process 1.6-1.9 s; the same wheels split over two processes 1.3-1.5 s (docs/performance.md).

How, and the rules kept:

* **fork, Linux only, and only from a process with no other thread**: a worker starts with everything
  imported (spawned ones would pay the ~0.2 s of imports again), and nothing another thread held at the fork
  can be held forever in the child. Elsewhere, or with a client of the caller's (it cannot cross a process),
  the caller runs the same fetch on threads. ``WHEELSTREAM_PROCESSES=0`` forces threads.
* **Same semantics as threads**: the worker runs the caller's (module-level, picklable) fetch function with a
  client of its own; errors travel back pickled (``WheelstreamError.__reduce__``) and the caller handles them
  in the same order as with threads.
* **Signals stay with the parent**: workers ignore SIGINT and SIGTERM. Ctrl-C reaches the whole process group;
  the parent answers it by setting the shared cancel event, which a worker checks at its next chunk and
  checkpoints — what a download thread does. A worker dies with its parent (``PR_SET_PDEATHSIG``, SIGKILL) as
  a thread would on kill -9: the last checkpoint is what the next run resumes from.
* **Progress** reports travel over a pipe to a relay thread in the parent, which calls the caller's callback.
* **Claims** (move installs): a worker claims the tree it unpacked and hands it over with the result —
  unlocked, lock file kept, so no sweep takes it meanwhile; the parent adopts it (``Cache.adopt_claim``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
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
    """Whether worker processes may be forked here and now (see the module docstring)."""
    return (
        sys.platform.startswith("linux")
        and threading.active_count() == 1
        and os.environ.get("WHEELSTREAM_PROCESSES", "1") != "0"
    )


class _Worker:
    """What a worker process keeps between its downloads."""

    client: httpx.Client | None = None
    cancel: CancelSignal | None = None
    progress: ProgressCallback | None = None


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl: nobody would ever collect this worker
        os._exit(1)


def _start_worker(parent: int, cancel: CancelSignal, reports: SimpleQueue[Progress | None] | None,
                  timeout: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns both into the cancel event
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent)
    _Worker.cancel = cancel
    _Worker.progress = reports.put if reports is not None else None
    _Worker.client = new_client(timeout)


def _run(fetch: Fetch, args: tuple[Any, ...]) -> tuple[DownloadResult, Path | None]:
    """In the worker: one download; a claimed tree goes back unlocked, for the parent to adopt."""
    assert _Worker.client is not None
    result = fetch(*args, client=_Worker.client, progress=_Worker.progress, cancel=_Worker.cancel)
    if result.claim is None:
        return result, None
    return dataclasses.replace(result, claim=None), result.claim.hand_over()


class ProcessPool:
    """Downloads in ``workers`` forked processes; ``close`` (``contextlib.closing``) waits for them.

    ``submit`` returns a future of ``(result, handed-over claim root or None)``; ``cancel`` stops every
    download like Ctrl-C would (they checkpoint and raise ``Interrupted``).
    """

    def __init__(self, workers: int, *, timeout: float, progress: ProgressCallback | None) -> None:
        context = multiprocessing.get_context("fork")
        self.cancel: CancelSignal = context.Event()
        self._progress = progress
        self._reports: SimpleQueue[Progress | None] | None = context.SimpleQueue() if progress else None
        self._relay: threading.Thread | None = None
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(os.getpid(), self.cancel, self._reports, timeout),
        )

    def submit(self, fetch: Fetch, *args: Any) -> Future[tuple[DownloadResult, Path | None]]:
        future = self._executor.submit(_run, fetch, args)  # the first submit forks every worker
        if self._reports is not None and self._relay is None:  # a thread only after the forks
            self._relay = threading.Thread(target=self._relay_reports, name="wheelstream-progress", daemon=True)
            self._relay.start()
        return future

    def _relay_reports(self) -> None:
        assert self._reports is not None and self._progress is not None
        while (report := self._reports.get()) is not None:
            self._progress(report)

    def close(self) -> None:
        """Wait for the workers to finish and exit (after ``cancel``, at their next chunk)."""
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            if self._relay is not None and self._reports is not None:
                self._reports.put(None)  # behind every report the workers sent before they finished
                self._relay.join()
