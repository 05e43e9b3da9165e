"""Several downloads at once: on threads, or in worker processes when the caller asked for them.

One rule for both: every result comes back in source order, or — at the first failure in time, or Ctrl-C —
the rest are stopped (they checkpoint: their partials are kept for the next run), what succeeded is released,
and the failure is raised. A worker process's claim on its unpacked tree is adopted by this process as soon
as its result arrives (``_Adopter``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, BrokenExecutor, Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from wheelstream._cache import Cache
from wheelstream._progress import ProgressCallback
from wheelstream._sources import Resolved, check_local_file, filename_of
from wheelstream.errors import Interrupted, WorkerDied
from wheelstream.fetch import CancelSignal, DownloadOptions, DownloadResult, fetch_wheel, unpack_local

if TYPE_CHECKING:
    from wheelstream._workers import ProcessPool

__all__ = ["Arrived", "collect", "fetch_in_processes", "fetch_one", "process_pool", "release"]


def fetch_in_processes(
    processes: ProcessPool,
    resolved: Sequence[Resolved],
    cache: Cache,
    args: tuple[Any, ...],
    on_done: Arrived | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[tuple[Resolved, DownloadResult]]:
    """``collect`` over worker processes: claims adopted as results arrive, a dead worker's pool killed (after
    a grace period for the others to checkpoint), the progress callback's error raised as the callback's."""
    with contextlib.closing(processes):
        adopter = _Adopter(cache)

        def submit_to_worker(item: Resolved) -> Future[tuple[DownloadResult, Path | None]]:
            future = processes.submit(fetch_one, filename_of(item), item, *args)
            future.add_done_callback(adopter.adopt)  # at once: see Claim.hand_over
            return future

        try:
            fetched = collect(
                resolved, submit_to_worker, processes.cancel, adopter, processes.died, on_done, stop
            )
        except WorkerDied:
            processes.kill(grace=5.0)  # the others ignore the SIGTERM a broken pool sends
            raise
        except BaseException:
            if processes.callback_error is not None:  # the cancel that stopped them was the callback's
                raise processes.callback_error from None
            raise
    if processes.callback_error is not None:  # it raised after the last download had finished
        release([result for _item, result in fetched])
        raise processes.callback_error
    return fetched


def process_pool(workers: int, timeout: float, progress: ProgressCallback | None) -> ProcessPool | None:
    """Worker processes for several downloads where they are possible (``_workers``), started, else None: threads.
    Imported here: multiprocessing is start-up a one-wheel install never needs (docs/performance.md#d-lazy-imports)."""
    if workers < 2:
        return None
    from wheelstream._workers import ProcessPool, processes_available

    if not processes_available():
        return None
    try:
        pool = ProcessPool(workers, timeout=timeout, progress=progress)
    except (OSError, NotImplementedError):  # no shared semaphores here (no /dev/shm): threads still work
        return None
    try:
        pool.start()
    except OSError:  # a fork failed (too many open files, no processes left): the pool is abandoned, threads
        return None
    except (
        BaseException
    ):  # a Ctrl-C held during the forks, raised as they end: the workers stop with the pool
        pool.close()
        raise
    return pool


def fetch_one(
    item: Resolved,
    cache: Cache,
    options: DownloadOptions,
    keep_unpacked: bool,
    *,
    client: httpx.Client,
    progress: ProgressCallback | None,
    cancel: CancelSignal,
) -> DownloadResult:
    """One source into the cache; on a download thread, or in a worker process (so: module level)."""
    if cancel.is_set():
        raise Interrupted("interrupted before this download started")
    if item.fetched is not None:
        return fetch_wheel(
            item.fetched,
            cache=cache,
            client=client,
            expected_sha256=item.sha256,
            expected_size=item.size,
            options=options,
            progress=progress,
            cancel=cancel,
            keep_unpacked=keep_unpacked,
            needs_file=item.needs_file,
            filename=item.filename,
        )
    assert item.path is not None
    check_local_file(item)  # again: checked before any download, it may have gone since
    return unpack_local(
        item.path,
        cache=cache,
        expected_sha256=item.sha256,
        options=options,
        progress=progress,
        keep_unpacked=keep_unpacked,
        cancel=cancel,
        filename=item.filename,
    )


class _Adopter:
    """A worker's result as the caller sees it: its handed-over claim adopted by this process, exactly once
    and as soon as the result arrives (``adopt``, a done-callback on the executor's thread)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._results: dict[Future[tuple[DownloadResult, Path | None]], DownloadResult | BaseException] = {}

    def adopt(self, future: Future[tuple[DownloadResult, Path | None]]) -> None:
        with contextlib.suppress(
            BaseException
        ):  # kept for __call__ (a callback's error would only be logged)
            self(future)

    def __call__(self, future: Future[tuple[DownloadResult, Path | None]]) -> DownloadResult:
        with self._lock:
            if future not in self._results:
                try:
                    result, claimed = future.result()
                    if claimed is not None:
                        result = dataclasses.replace(result, claim=self._cache.adopt_claim(claimed))
                    self._results[future] = result
                except Exception as exc:  # noqa: BLE001 - the same error for every caller
                    self._results[future] = exc
            outcome = self._results[future]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


_F = TypeVar("_F", bound="Future[Any]")
# What a caller of ``collect`` does with each download as it succeeds (``on_done``).
Arrived = Callable[[Resolved, DownloadResult], None]


def collect(
    resolved: Sequence[Resolved],
    submit: Callable[[Resolved], _F],
    cancel: CancelSignal,
    result_of: Callable[[_F], DownloadResult],
    who_died: Callable[[], str | None] = lambda: None,
    on_done: Arrived | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[tuple[Resolved, DownloadResult]]:
    """Every download's result in source order — or, at the first failure in time (or Ctrl-C), stop the rest
    (they checkpoint: their partials are kept for the next run), release what succeeded, and raise.

    ``on_done(item, result)`` runs on this thread for each download as it succeeds, while the others go on (an
    install checks each wheel there); its error is a failure like a download's. ``stop()`` true (a library
    caller's cancel, looked at as often as a signal is) stops them all as Ctrl-C does."""
    futures: list[_F] = []
    try:
        for item in resolved:
            if stop is not None and stop():
                raise _Stopped
            futures.append(submit(item))
        arrived = None if on_done is None else _Arrivals(resolved, futures, result_of, on_done)
        error = _wait_first_error(futures, arrived, stop)
    except KeyboardInterrupt as interrupt:
        _stop_all(futures, cancel)
        _release_succeeded(futures, result_of)
        if isinstance(interrupt, _Stopped):
            raise Interrupted(
                "cancelled; the downloads keep their checkpoints — the same call resumes them"
            ) from None
        raise Interrupted("interrupted — run the same command again to resume") from None
    if error is not None:
        # A worker process died (OOM killer, a signal): every download still running failed with it, so name
        # the one whose process died — asked before the others are stopped, while only that one has exited.
        wheel = who_died() if isinstance(error, BrokenExecutor) else None
        _stop_all(futures, cancel)
        _release_succeeded(futures, result_of)
        if isinstance(error, BrokenExecutor):
            cause = "the process unpacking it died" if wheel else "a worker process died"
            raise WorkerDied(
                f"{cause} (killed by a signal?); the other downloads were stopped", wheel=wheel
            ) from None
        raise error
    try:
        return [(item, result_of(future)) for item, future in zip(resolved, futures, strict=True)]
    except BaseException:  # a claim could not be adopted: nothing is installed, so none is kept
        _release_succeeded(futures, result_of)
        raise


def release(fetched: Iterable[DownloadResult]) -> None:
    """Remove the trees claimed for a move install (what the install left in them, or all after a failure)."""
    for result in fetched:
        if result.claim is not None:
            result.claim.release()


def _release_succeeded(futures: Sequence[_F], result_of: Callable[[_F], DownloadResult]) -> None:
    """After a failure: release the claims of the downloads that finished, each on its own — one that cannot
    be adopted or removed must not hide the failure being raised, nor keep the others."""
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is None:
            with contextlib.suppress(Exception):
                release([result_of(future)])


def _stop_all(futures: Sequence[Future[Any]], cancel: CancelSignal) -> None:
    """Stop the running downloads at their next chunk (they checkpoint) and never start the queued ones."""
    cancel.set()
    for future in futures:
        future.cancel()
    wait(futures)


class _Arrivals:
    """``collect``'s ``on_done``, called once per download that succeeded, in the order they finish."""

    def __init__(
        self,
        resolved: Sequence[Resolved],
        futures: Sequence[Future[Any]],
        result_of: Callable[[Any], DownloadResult],
        on_done: Arrived,
    ) -> None:
        self._items = dict(zip(futures, resolved, strict=True))
        self._result_of = result_of
        self._on_done = on_done

    def __call__(self, future: Future[Any]) -> None:
        self._on_done(self._items[future], self._result_of(future))


class _Stopped(KeyboardInterrupt):
    """``collect``'s caller asked it to stop (a library caller's ``cancel``): handled as Ctrl-C, said as a cancel."""


def _wait_first_error(
    futures: Sequence[Future[Any]],
    arrived: Callable[[Future[Any]], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> BaseException | None:
    """Wait until all succeed or one fails; return the first failure *in time* (``arrived``'s error included:
    it is called for each success as it comes).

    The wait polls: a signal (Ctrl-C, SIGTERM) may be delivered to any thread, and Python runs its handler
    only when the main thread executes bytecode — a main thread blocked in one long ``wait`` would not notice
    it until every download had finished.
    """
    pending: set[Future[Any]] = set(futures)
    while pending:
        if stop is not None and stop():
            raise _Stopped
        done, pending = wait(
            pending, timeout=0.1, return_when=FIRST_COMPLETED if arrived else FIRST_EXCEPTION
        )
        for future in futures:  # in source order among those that finished together
            if future not in done:
                continue
            if (error := future.exception()) is not None:
                return error
            if arrived is not None:
                try:
                    arrived(future)
                except Exception as exc:  # noqa: BLE001 - the first failure, like a download's: stops the rest
                    return exc
    return None
