"""The library API: ``install`` and ``download`` many sources, in parallel, with one result object.

A source is an ``http(s)://`` URL (optionally ``#sha256=<hex>``), a ``file://`` URL, a local path, or
``NAME==VERSION`` resolved through a simple index. Every source is fetched and unpacked into the cache
first (``wheels/<sha256>/``); only when *all* of them succeeded is anything installed, in one transaction
(pip's ``--target`` semantics, see :mod:`wheelstream.installer`). So a failing or interrupted download never
leaves the target half-installed, and the next run resumes what was interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, BrokenExecutor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from wheelstream._cache import Cache
from wheelstream._progress import ProgressCallback
from wheelstream._urls import (
    checked_wheel_filename,
    redact,
    split_hash_fragment,
    wheel_filename_from_url,
    wheel_path_in,
)
from wheelstream.errors import Interrupted, UsageError, WorkerDied
from wheelstream.fetch import CancelSignal, DownloadOptions, DownloadResult, fetch_wheel, unpack_local
from wheelstream.installer import (
    InstallReport,
    LinkMode,
    WheelToInstall,
    install_staged_many,
    probe_interpreter,
)
from wheelstream.installer._metadata import check_tags, parse_filename
from wheelstream.transport import new_client
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

if TYPE_CHECKING:
    from wheelstream._workers import ProcessPool

__all__ = ["DEFAULT_INDEX_URL", "InstallResult", "WheelOutcome", "Workers", "download", "install"]

# Where several downloads run: threads of the caller's process (the default: a library is a guest, and forking
# its host is not a guest's call), or forked worker processes, one GIL each (Linux, from a process with one
# thread; see wheelstream._workers) — the CLI, which owns its process, asks for them.
Workers = Literal["threads", "processes"]

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
# Every download is a two-stage pipeline (network + unpack threads) that keeps about one core busy when the
# server is fast: more downloads than cores only adds GIL contention (docs/performance.md#d-default-jobs).
# At least 2, so one slow server never holds the rest back; at most 8.
DEFAULT_JOBS = max(2, min(8, os.cpu_count() or 2))


@dataclass(frozen=True)
class WheelOutcome:
    """What happened to one source."""

    source: str  # as given, credentials redacted
    filename: str
    sha256: str
    bytes_fetched: int
    bytes_reused: int
    resumed_at: int | None
    restarts: int
    from_cache: bool
    files_unpacked: int
    path: Path | None = None  # the wheel file, for ``download``


@dataclass(frozen=True)
class InstallResult:
    wheels: tuple[WheelOutcome, ...]
    report: InstallReport | None  # None for ``download``

    @property
    def bytes_fetched(self) -> int:
        return sum(w.bytes_fetched for w in self.wheels)

    @property
    def bytes_reused(self) -> int:
        return sum(w.bytes_reused for w in self.wheels)

    @property
    def resumed(self) -> bool:
        return any(w.resumed_at is not None for w in self.wheels)


@dataclass(frozen=True)
class _Resolved:
    source: str
    url: str | None  # http(s) URL to fetch
    path: Path | None  # local file
    sha256: str | None


def _resolve(
    source: str,
    hashes: Mapping[str, str],
    index_url: str,
    cache: Cache,
    client: httpx.Client,
    tags: Sequence[object],
) -> _Resolved:
    """What to fetch for ``source``. A URL's file name is checked here (``wheel_filename_from_url``), so a
    hostile one fails before anything is downloaded or written; ``resolve_requirement`` checks an index's."""
    expected = hashes.get(source)
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        wheel_filename_from_url(source)
        return _Resolved(redact(source), source, None, expected or split_hash_fragment(source)[1])
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(split_hash_fragment(source)[0]).path))
        return _Resolved(source, None, path, expected or split_hash_fragment(source)[1])
    if os.path.exists(source) or source.endswith(".whl"):
        return _Resolved(source, None, Path(source), expected)
    if "==" in source:
        from wheelstream._index import resolve_requirement

        url, sha = resolve_requirement(source, index_url=index_url, cache=cache, client=client, tags=tags)
        return _Resolved(source, url, None, expected or sha)
    raise UsageError(f"not a wheel URL, path or NAME==VERSION: {source}")


def _fetch_all(
    sources: Sequence[str | os.PathLike[str]] | str,
    *,
    cache_dir: str | os.PathLike[str] | None,
    client: httpx.Client | None,
    hashes: Mapping[str, str] | None,
    index_url: str,
    jobs: int,
    retries: int,
    timeout: float,
    max_unpacked_size: int,
    max_entries: int,
    progress: ProgressCallback | None,
    ignore_tags: bool,
    python: str | None,
    keep_wheels_in: Path | None,
    workers: Workers,
    keep_unpacked: bool = True,
) -> list[tuple[_Resolved, DownloadResult]]:
    """Resolve and fetch every source (in parallel), with a client of our own unless one is given."""
    if workers not in ("threads", "processes"):
        raise UsageError(f"unknown workers {workers!r} (use 'threads' or 'processes')")
    names = [sources] if isinstance(sources, str) else [os.fspath(s) for s in sources]
    options = DownloadOptions(
        timeout=timeout, retries=retries, max_unpacked_size=max_unpacked_size, max_entries=max_entries
    )
    cache = Cache.at(cache_dir)
    if client is not None:
        return _fetch_with(
            names,
            cache,
            client,
            hashes or {},
            index_url,
            jobs,
            options,
            progress,
            ignore_tags,
            python,
            keep_wheels_in,
            keep_unpacked,
            processes=False,
        )
    with new_client(timeout) as own:
        return _fetch_with(
            names,
            cache,
            own,
            hashes or {},
            index_url,
            jobs,
            options,
            progress,
            ignore_tags,
            python,
            keep_wheels_in,
            keep_unpacked,
            processes=workers == "processes",
        )


def _fetch_with(
    sources: Sequence[str],
    cache: Cache,
    client: httpx.Client,
    hashes: Mapping[str, str],
    index_url: str,
    jobs: int,
    options: DownloadOptions,
    progress: ProgressCallback | None,
    ignore_tags: bool,
    python: str | None,
    keep_wheels_in: Path | None,
    keep_unpacked: bool,
    processes: bool,
) -> list[tuple[_Resolved, DownloadResult]]:
    """``processes``: worker processes were asked for, and the client is ours (a caller's cannot cross)."""
    interpreter = probe_interpreter(python)
    resolved = [_resolve(s, hashes, index_url, cache, client, interpreter.tags) for s in sources]
    if not ignore_tags and keep_wheels_in is None:
        for item in resolved:  # fail before downloading anything, as pip does
            name = _filename(item)
            check_tags(name, parse_filename(name).tags, interpreter.tags, interpreter.executable)
    args = (cache, options, keep_wheels_in, keep_unpacked)
    workers = min(max(1, jobs), len(resolved))
    pool = _process_pool(workers, options.timeout, progress) if processes else None
    if pool is not None:
        return _fetch_in_processes(pool, resolved, cache, args)
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wheelstream") as threads:

        def submit_to_thread(item: _Resolved) -> Future[DownloadResult]:
            return threads.submit(_fetch_one, item, *args, client=client, progress=progress, cancel=cancel)

        return _collect(resolved, submit_to_thread, cancel, Future.result)


def _fetch_in_processes(
    processes: ProcessPool, resolved: Sequence[_Resolved], cache: Cache, args: tuple[Any, ...]
) -> list[tuple[_Resolved, DownloadResult]]:
    """``_collect`` over worker processes: claims adopted as results arrive, a dead worker's pool killed (after
    a grace period for the others to checkpoint), the progress callback's error raised as the callback's."""
    with contextlib.closing(processes):
        processes.start()
        adopter = _Adopter(cache)

        def submit_to_worker(item: _Resolved) -> Future[tuple[DownloadResult, Path | None]]:
            future = processes.submit(_fetch_one, _filename(item), item, *args)
            future.add_done_callback(adopter.adopt)  # at once: see Claim.hand_over
            return future

        try:
            fetched = _collect(resolved, submit_to_worker, processes.cancel, adopter, processes.died)
        except WorkerDied:
            processes.kill(grace=5.0)  # the others ignore the SIGTERM a broken pool sends
            raise
        except BaseException:
            if processes.callback_error is not None:  # the cancel that stopped them was the callback's
                raise processes.callback_error from None
            raise
    if processes.callback_error is not None:  # it raised after the last download had finished
        _release([result for _item, result in fetched])
        raise processes.callback_error
    return fetched


def _process_pool(workers: int, timeout: float, progress: ProgressCallback | None) -> ProcessPool | None:
    """Worker processes for several downloads where they are possible (``_workers``), else None: threads.
    Imported here: multiprocessing is start-up a one-wheel install never needs (docs/performance.md#d-lazy-imports)."""
    if workers < 2:
        return None
    from wheelstream._workers import ProcessPool, processes_available

    if not processes_available():
        return None
    try:
        return ProcessPool(workers, timeout=timeout, progress=progress)
    except (OSError, NotImplementedError):  # no shared semaphores here (no /dev/shm): threads still work
        return None


def _fetch_one(
    item: _Resolved,
    cache: Cache,
    options: DownloadOptions,
    keep_wheels_in: Path | None,
    keep_unpacked: bool,
    *,
    client: httpx.Client,
    progress: ProgressCallback | None,
    cancel: CancelSignal,
) -> DownloadResult:
    """One source into the cache; on a download thread, or in a worker process (so: module level)."""
    if cancel.is_set():
        raise Interrupted("interrupted before this download started")
    if item.url is not None:
        return fetch_wheel(
            item.url,
            cache=cache,
            client=client,
            expected_sha256=item.sha256,
            options=options,
            progress=progress,
            keep_wheel_in=keep_wheels_in,
            cancel=cancel,
            keep_unpacked=keep_unpacked,
        )
    assert item.path is not None
    if not item.path.is_file():
        raise UsageError(f"no such file: {item.path}")
    # A local name is one component the OS gave us, but it becomes a name in the caller's -d like a URL's
    # does, so it passes the same check (as pip refuses to download a wheel whose name is not a wheel's).
    target = (
        None if keep_wheels_in is None else wheel_path_in(keep_wheels_in, item.path.name, source=item.source)
    )
    result = unpack_local(
        item.path,
        cache=cache,
        expected_sha256=item.sha256,
        options=options,
        progress=progress,
        keep_unpacked=keep_unpacked,
    )
    if target is not None and target.resolve() != item.path.resolve():
        _copy_into(item.path, target)
    return result


def _copy_into(source: Path, target: Path) -> None:
    """Copy through a new temporary file and rename it over ``target``: never writes through a symlink left at
    ``target``, never leaves half a wheel there, and two copies of one file at once cannot collide."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(source.read_bytes())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


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


def _collect(
    resolved: Sequence[_Resolved],
    submit: Callable[[_Resolved], _F],
    cancel: CancelSignal,
    result_of: Callable[[_F], DownloadResult],
    who_died: Callable[[], str | None] = lambda: None,
) -> list[tuple[_Resolved, DownloadResult]]:
    """Every download's result in source order — or, at the first failure in time (or Ctrl-C), stop the rest
    (they checkpoint: their partials are kept for the next run), release what succeeded, and raise."""
    futures: list[_F] = []
    try:
        for item in resolved:
            futures.append(submit(item))
        error = _wait_first_error(futures)
    except KeyboardInterrupt:
        _stop_all(futures, cancel)
        _release_succeeded(futures, result_of)
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


def _filename(item: _Resolved) -> str:
    """The wheel's file name: a URL's checked one, or a local file's (checked the same way)."""
    if item.url:
        return wheel_filename_from_url(item.url)
    return checked_wheel_filename(item.path.name, source=item.source) if item.path else ""


def _release(fetched: Sequence[DownloadResult]) -> None:
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
                _release([result_of(future)])


def _stop_all(futures: Sequence[Future[Any]], cancel: CancelSignal) -> None:
    """Stop the running downloads at their next chunk (they checkpoint) and never start the queued ones."""
    cancel.set()
    for future in futures:
        future.cancel()
    wait(futures)


def _wait_first_error(futures: Sequence[Future[Any]]) -> BaseException | None:
    """Wait until all succeed or one fails; return the first failure *in time*.

    The wait polls: a signal (Ctrl-C, SIGTERM) may be delivered to any thread, and Python runs its handler
    only when the main thread executes bytecode — a main thread blocked in one long ``wait`` would not notice
    it until every download had finished.
    """
    pending: set[Future[Any]] = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
        for future in futures:  # in source order among those that failed together
            if future in done and (error := future.exception()) is not None:
                return error
    return None


def _outcome(item: _Resolved, result: DownloadResult, keep: Path | None) -> WheelOutcome:
    return WheelOutcome(
        source=item.source,
        filename=result.staged.filename,
        sha256=result.sha256,
        bytes_fetched=result.bytes_fetched,
        bytes_reused=result.bytes_reused,
        resumed_at=result.resumed_at,
        restarts=result.restarts,
        from_cache=result.from_cache,
        files_unpacked=result.files_unpacked,
        path=(keep / result.staged.filename) if keep is not None else None,
    )


def install(
    sources: Sequence[str | os.PathLike[str]] | str,
    target: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    upgrade: bool = False,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    python: str | None = None,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    ignore_tags: bool = False,
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
    client: httpx.Client | None = None,
    workers: Workers = "threads",
) -> InstallResult:
    """Install wheels into ``target`` like ``pip install --no-deps --no-compile --target``, resumably.

    ``hashes`` maps a source (as given) to its expected sha256 hex. Raises a
    :class:`~wheelstream.errors.WheelstreamError`; on any error the target is untouched and interrupted
    downloads are kept in the cache for the next call to resume.

    ``link_mode``: ``"move"`` (default) unpacks each wheel once and moves the files into the target — the
    cache keeps the wheel *file*, so a later install needs no network but unpacks again; ``"copy"`` and
    ``"hardlink"`` keep the unpacked tree in the cache and copy or hardlink from it (a hardlinked file edited
    in the target changes the cache too, as with uv).

    ``workers``: several downloads run on threads of this process unless ``"processes"`` is asked for: then,
    where it is possible (Linux, a client of wheelstream's own, this process running one thread), each runs in
    a forked worker process with a GIL of its own — faster on many wheels, but it forks the caller.
    """
    fetched = _fetch_all(
        sources,
        cache_dir=cache_dir,
        client=client,
        hashes=hashes,
        index_url=index_url,
        jobs=jobs,
        retries=retries,
        timeout=timeout,
        max_unpacked_size=max_unpacked_size,
        max_entries=max_entries,
        progress=progress,
        ignore_tags=ignore_tags,
        python=python,
        keep_wheels_in=None,
        workers=workers,
        keep_unpacked=link_mode != "move",
    )
    results = [result for _item, result in fetched]
    try:
        report = install_staged_many(
            [WheelToInstall(result.staged, _direct_url(item), result.sha256) for item, result in fetched],
            Path(target),
            python=python,
            upgrade=upgrade,
            link_mode=link_mode,
            compile_bytecode=compile_bytecode,
            ignore_tags=ignore_tags,
            on_warning=on_warning,
        )
    except BaseException as failure:
        try:
            _release(results)
        except KeyboardInterrupt:
            if not getattr(failure, "installed", False):
                raise
            # a second Ctrl-C: the install is still complete, which is what the first one's error says
        raise
    try:
        _release(results)
    except KeyboardInterrupt:  # the install is complete: the interrupt says so (left claims are swept later)
        raise Interrupted.after_install(target) from None
    return InstallResult(tuple(_outcome(i, r, None) for i, r in fetched), report)


def _direct_url(item: _Resolved) -> str | None:
    """PEP 610 is written for URL and path installs, not for index installs (pip does the same)."""
    if item.url is not None and "==" not in item.source:
        return redact(split_hash_fragment(item.url)[0])  # DESIGN §2: no token reaches direct_url.json
    if item.path is not None:
        return item.path.resolve().as_uri()
    return None


def download(
    sources: Sequence[str | os.PathLike[str]] | str,
    dest: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    progress: ProgressCallback | None = None,
    client: httpx.Client | None = None,
    workers: Workers = "threads",
) -> InstallResult:
    """Resumably download wheels into ``dest`` and verify each archive completely (every entry inflated
    and CRC-checked, central directory cross-checked) — ``pip download`` with zip verification. ``workers``
    as for :func:`install`."""
    dest_path = Path(dest)
    fetched = _fetch_all(
        sources,
        cache_dir=cache_dir,
        client=client,
        hashes=hashes,
        index_url=index_url,
        jobs=jobs,
        retries=retries,
        timeout=timeout,
        max_unpacked_size=max_unpacked_size,
        max_entries=max_entries,
        progress=progress,
        ignore_tags=True,
        python=None,
        keep_wheels_in=dest_path,
        workers=workers,
    )
    return InstallResult(tuple(_outcome(i, r, dest_path) for i, r in fetched), None)
