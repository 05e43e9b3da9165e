"""The library API: ``install`` and ``download`` many sources, in parallel, with one result object.

A source is an ``http(s)://`` URL (optionally ``#sha256=<hex>``), a ``file://`` URL, a local path, or
``NAME==VERSION`` resolved through a simple index. Every source is fetched and unpacked into the cache
first (``wheels/<sha256>/``); only when *all* of them succeeded is anything installed, in one transaction:
into a ``target`` directory (pip's ``--target`` semantics) or an :class:`~wheelstream.installer.Environment`
(pip's plain install, replacing other versions; see :mod:`wheelstream.installer`). So a failing or interrupted
download never leaves the destination half-installed, and the next run resumes what was interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from wheelstream._cache import Cache
from wheelstream._parallel import collect, fetch_in_processes, fetch_one, process_pool, release
from wheelstream._progress import ProgressCallback
from wheelstream._sources import Resolved, direct_url, filename_of, resolve
from wheelstream.errors import Interrupted, UsageError
from wheelstream.fetch import DownloadOptions, DownloadResult
from wheelstream.installer import (
    Environment,
    EnvironmentReport,
    InstallReport,
    LinkMode,
    WheelToInstall,
    install_into,
    install_staged_many,
    installed_distributions,
    probe_interpreter,
    same_version,
)
from wheelstream.installer._metadata import check_tags, parse_filename
from wheelstream.transport import new_client
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

__all__ = [
    "DEFAULT_INDEX_URL",
    "DEFAULT_JOBS",
    "InstallResult",
    "WheelOutcome",
    "Workers",
    "download",
    "install",
    "install_sources",
]

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
    report: InstallReport | EnvironmentReport | None  # None for ``download``

    @property
    def bytes_fetched(self) -> int:
        return sum(w.bytes_fetched for w in self.wheels)

    @property
    def bytes_reused(self) -> int:
        return sum(w.bytes_reused for w in self.wheels)

    @property
    def resumed(self) -> bool:
        return any(w.resumed_at is not None for w in self.wheels)


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
    wanted: Callable[[str], bool] | None = None,
) -> list[tuple[Resolved, DownloadResult]]:
    """Resolve and fetch every source (in parallel), with a client of our own unless one is given; a source
    whose wheel file name ``wanted`` refuses is resolved but not fetched (already installed)."""
    if workers not in ("threads", "processes"):
        raise UsageError(f"unknown workers {workers!r} (use 'threads' or 'processes')")
    names = [sources] if isinstance(sources, str) else [os.fspath(s) for s in sources]
    options = DownloadOptions(
        timeout=timeout, retries=retries, max_unpacked_size=max_unpacked_size, max_entries=max_entries
    )
    cache = Cache.at(cache_dir)
    # A caller's client stays the caller's (and cannot cross into a worker process); else one of our own.
    with contextlib.nullcontext(client) if client is not None else new_client(timeout) as chosen:
        return _fetch_with(
            names,
            cache,
            chosen,
            hashes or {},
            index_url,
            jobs,
            options,
            progress,
            ignore_tags,
            python,
            keep_wheels_in,
            keep_unpacked,
            processes=client is None and workers == "processes",
            wanted=wanted,
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
    wanted: Callable[[str], bool] | None = None,
) -> list[tuple[Resolved, DownloadResult]]:
    """``processes``: worker processes were asked for, and the client is ours (a caller's cannot cross)."""
    interpreter = probe_interpreter(python)
    resolved = [resolve(s, hashes, index_url, cache, client, interpreter.tags) for s in sources]
    if wanted is not None:
        resolved = [item for item in resolved if wanted(filename_of(item))]
        if not resolved:
            return []
    if not ignore_tags and keep_wheels_in is None:
        for item in resolved:  # fail before downloading anything, as pip does
            name = filename_of(item)
            check_tags(name, parse_filename(name).tags, interpreter.tags, interpreter.executable)
    args = (cache, options, keep_wheels_in, keep_unpacked)
    workers = min(max(1, jobs), len(resolved))
    pool = process_pool(workers, options.timeout, progress) if processes else None
    if pool is not None:
        return fetch_in_processes(pool, resolved, cache, args)
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wheelstream") as threads:

        def submit_to_thread(item: Resolved) -> Future[DownloadResult]:
            return threads.submit(fetch_one, item, *args, client=client, progress=progress, cancel=cancel)

        return collect(resolved, submit_to_thread, cancel, Future.result)


def _outcome(item: Resolved, result: DownloadResult, keep: Path | None) -> WheelOutcome:
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
    target: str | os.PathLike[str] | None = None,
    *,
    environment: Environment | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    upgrade: bool = False,
    reinstall: bool = False,
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
    """Install wheels, resumably, into ``target`` like ``pip install --no-deps --no-compile --target`` or into
    ``environment`` like ``pip install --no-deps --no-compile`` (give exactly one).

    ``environment`` comes from :func:`wheelstream.find_environment` (a venv, a prefix, an interpreter's own):
    another version of a wheel's distribution there is replaced in the same transaction; the same version is
    skipped without being downloaded, unless ``reinstall``. ``upgrade`` and ``python`` are ``target``'s
    (``--target --upgrade``, the interpreter the install is for); an environment has its interpreter.

    ``hashes`` maps a source (as given) to its expected sha256 hex. Raises a
    :class:`~wheelstream.errors.WheelstreamError`; on any error the destination is untouched and interrupted
    downloads are kept in the cache for the next call to resume.

    ``link_mode``: ``"move"`` (default) unpacks each wheel once and moves the files into place — the cache
    keeps the wheel *file*, so a later install needs no network but unpacks again; ``"copy"`` and
    ``"hardlink"`` keep the unpacked tree in the cache and copy or hardlink from it (a hardlinked file edited
    in the destination changes the cache too, as with uv).

    ``workers``: several downloads run on threads of this process unless ``"processes"`` is asked for: then,
    where it is possible (Linux, a client of wheelstream's own, this process running one thread), each runs in
    a forked worker process with a GIL of its own — faster on many wheels, but it forks the caller.
    """
    return install_sources(
        sources,
        target,
        environment=environment,
        cache_dir=cache_dir,
        hashes=hashes,
        index_url=index_url,
        upgrade=upgrade,
        reinstall=reinstall,
        jobs=jobs,
        retries=retries,
        timeout=timeout,
        python=python,
        link_mode=link_mode,
        compile_bytecode=compile_bytecode,
        ignore_tags=ignore_tags,
        max_unpacked_size=max_unpacked_size,
        max_entries=max_entries,
        progress=progress,
        on_warning=on_warning,
        client=client,
        workers=workers,
    )


def install_sources(
    sources: Sequence[str | os.PathLike[str]] | str,
    target: str | os.PathLike[str] | None = None,
    *,
    environment: Environment | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    upgrade: bool = False,
    reinstall: bool = False,
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
    verify: Callable[[str, DownloadResult], None] | None = None,
    remove: Sequence[str] = (),
) -> InstallResult:
    """:func:`install`, and what a lock adds: ``verify(source, result)`` checks each fetched wheel before
    anything is installed, ``remove`` names distributions to uninstall in the same transaction."""
    if (target is None) == (environment is None):
        raise UsageError("say where to install: a target directory or an environment (exactly one)")
    skipped: list[str] = []
    wanted: Callable[[str], bool] | None = None
    if environment is not None:
        python = environment.interpreter.executable
        present = {dist.key: dist for dist in installed_distributions(environment)}

        def wanted(filename: str) -> bool:
            name = parse_filename(filename)
            old = present.get(name.name)
            if old is None or reinstall or not same_version(old.version, str(name.version)):
                return True
            skipped.append(f"{old.name} {old.version}")
            return False

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
        wanted=wanted,
    )
    results = [result for _item, result in fetched]
    if verify is not None:
        try:
            for item, result in fetched:
                verify(item.source, result)
        except BaseException:
            release(results)
            raise
    where = target if environment is None else environment.root
    items = [WheelToInstall(result.staged, direct_url(item), result.sha256) for item, result in fetched]
    try:
        report: InstallReport | EnvironmentReport
        if environment is None:
            assert target is not None
            report = install_staged_many(
                items,
                Path(target),
                python=python,
                upgrade=upgrade,
                link_mode=link_mode,
                compile_bytecode=compile_bytecode,
                ignore_tags=ignore_tags,
                on_warning=on_warning,
            )
        else:
            report = install_into(
                items,
                environment,
                reinstall=reinstall,
                link_mode=link_mode,
                compile_bytecode=compile_bytecode,
                ignore_tags=ignore_tags,
                remove=remove,
                on_warning=on_warning,
            )
            report = dataclasses.replace(report, skipped=(*skipped, *report.skipped))
    except BaseException as failure:
        try:
            release(results)
        except KeyboardInterrupt:
            if not getattr(failure, "installed", False):
                raise
            # a second Ctrl-C: the install is still complete, which is what the first one's error says
        raise
    try:
        release(results)
    except KeyboardInterrupt:  # the install is complete: the interrupt says so (left claims are swept later)
        raise Interrupted.after_install(where) from None
    return InstallResult(tuple(_outcome(i, r, None) for i, r in fetched), report)


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
