"""Many sources, resolved then fetched in parallel: what ``install`` and ``download`` share before either
touches a destination.

Every source is resolved first (``NAME==VERSION`` through the index, names checked), then every tag checked,
so a wheel that cannot be installed fails before anything is downloaded, as pip fails. Downloads run on
threads of this process, or — only when asked (``workers="processes"``) and only with a client of our own,
which can cross the fork — in worker processes (``_workers``); results come back in source order, and the
first failure stops the rest (``_parallel.collect``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx

from wheelstream._cache import Cache, downloads_held_here
from wheelstream._digests import disjoint_algorithms, other_algorithms
from wheelstream._parallel import Arrived, collect, fetch_in_processes, fetch_one, process_pool
from wheelstream._progress import ProgressCallback
from wheelstream._sources import (
    Indexes,
    LockedFile,
    Resolved,
    allowed_hashes,
    check_allowed,
    check_local_file,
    check_other_hashes,
    filename_of,
    forget_refused,
    named_wheel,
    narrow,
    pin_of,
    resolve,
)
from wheelstream._staged import current_umask
from wheelstream._urls import cache_key, credited, direct_reference, shown_text, wheel_path_in
from wheelstream.errors import (
    DiskError,
    HashMismatch,
    InstallConflict,
    Interrupted,
    UsageError,
    WheelMetadataError,
    WheelstreamError,
)
from wheelstream.fetch import DownloadOptions, DownloadResult
from wheelstream.fetch._split import MAX_CONNECTIONS
from wheelstream.installer import Interpreter
from wheelstream.installer._metadata import (
    check_requires_python,
    check_tags,
    parse_filename,
    requires_python_in_file,
)
from wheelstream.transport import new_client

__all__ = ["MAX_CONNECTIONS", "Workers", "check_connections", "fetch_all", "resolve_all"]

# Where several downloads run: threads of the caller's process (the default: a library is a guest, and forking
# its host is not a guest's call), or forked worker processes, one GIL each (Linux, from a process with one
# thread; see wheelstream._workers) — the CLI, which owns its process, asks for them.
Workers = Literal["threads", "processes"]


def check_connections(connections: int | None) -> int | None:
    """``connections`` as the fetch takes it, or a ``UsageError``: None (automatic: more than one only while
    one connection starves the unpacker, for a big file on a server with usable ranges), 1 (never more), or
    up to N at once for N in 2..``MAX_CONNECTIONS``."""
    if connections is None:
        return None
    if (
        isinstance(connections, bool)
        or not isinstance(connections, int)
        or not 1 <= connections <= MAX_CONNECTIONS
    ):
        raise UsageError(
            f"connections must be between 1 and {MAX_CONNECTIONS} (or None for automatic), not {connections!r}"
        )
    return connections


def fetch_all(
    sources: Sequence[str | os.PathLike[str]] | str,
    *,
    cache_dir: str | os.PathLike[str] | None,
    client: httpx.Client | None,
    hashes: Mapping[str, str | Collection[str]] | None,
    indexes: Indexes,
    jobs: int,
    retries: int,
    timeout: float,
    connections: int | None,
    max_unpacked_size: int,
    max_entries: int,
    progress: ProgressCallback | None,
    ignore_tags: bool,
    interpreter: Interpreter,
    keep_wheels_in: Path | None,
    workers: Workers,
    keep_unpacked: bool = True,
    wanted: Callable[[Resolved], bool] | None = None,
    on_fetched: Arrived | None = None,
    locked: Mapping[str, LockedFile] | None = None,
    cancel: threading.Event | None = None,
    verify_only: bool = False,
) -> list[tuple[Resolved, DownloadResult]]:
    """Resolve and fetch every source (in parallel), with a client of our own unless one is given; a source
    ``wanted`` refuses is resolved but not fetched (already installed). ``interpreter``: the one the wheels are
    for (its tags choose an index's file and, unless ``ignore_tags``, check each wheel). ``connections``:
    per wheel (``check_connections``). ``on_fetched(item, result)``: on this thread, for each download as it
    succeeds, while the others go on (``_parallel.collect``). ``locked``: what a lock says of its sources'
    files (:class:`LockedFile`): the size a download must announce, the file name its URL or path may not end
    in. ``verify_only``: every entry checked, no file written (``download``, which keeps the wheel files
    only)."""
    if workers not in ("threads", "processes"):
        raise UsageError(f"unknown workers {workers!r} (use 'threads' or 'processes')")
    names = _distinct(sources)
    options = DownloadOptions(
        timeout=timeout,
        retries=retries,
        max_unpacked_size=max_unpacked_size,
        max_entries=max_entries,
        connections=check_connections(connections),
        verify_only=verify_only,
    )
    cache = Cache.at(cache_dir)
    # A caller's client stays the caller's (and cannot cross into a worker process); else one of our own.
    with contextlib.nullcontext(client) if client is not None else new_client(timeout) as chosen:
        return _fetch_with(
            names,
            cache,
            chosen,
            _allowed(hashes),
            indexes,
            jobs,
            options,
            progress,
            ignore_tags,
            interpreter,
            keep_wheels_in,
            keep_unpacked,
            processes=client is None and workers == "processes",
            wanted=wanted,
            on_fetched=on_fetched,
            locked=locked,
            cancel_by=cancel,
        )


def resolve_all(
    sources: Sequence[str | os.PathLike[str]] | str,
    *,
    cache: Cache,
    client: httpx.Client | None,
    hashes: Mapping[str, str | Collection[str]] | None,
    indexes: Indexes,
    retries: int,
    timeout: float,
    ignore_tags: bool,
    interpreter: Interpreter,
    wanted: Callable[[Resolved], bool] | None = None,
    locked: Mapping[str, LockedFile] | None = None,
    cancel: threading.Event | None = None,
) -> list[Resolved]:
    """:func:`fetch_all`'s first half alone, for an install (``--dry-run``): every source resolved and checked
    as the install checks it, nothing fetched."""
    with contextlib.nullcontext(client) if client is not None else new_client(timeout) as chosen:
        return _resolve_sources(
            _distinct(sources),
            cache,
            chosen,
            _allowed(hashes),
            indexes,
            retries=retries,
            ignore_tags=ignore_tags,
            interpreter=interpreter,
            keep_wheels_in=None,
            wanted=wanted,
            locked=locked,
            stop=cancel.is_set if cancel is not None else None,
        )


def _distinct(sources: Sequence[str | os.PathLike[str]] | str) -> list[str]:
    """A source given twice is fetched (and installed) once, as pip takes a requirement given twice."""
    return [sources] if isinstance(sources, str) else list(dict.fromkeys(os.fspath(s) for s in sources))


def _allowed(hashes: Mapping[str, str | Collection[str]] | None) -> dict[str, frozenset[str]]:
    return {source: allowed_hashes(value, source) for source, value in (hashes or {}).items()}


def _check_is_a_wheel(item: Resolved, result: DownloadResult, cache: Cache) -> None:
    """What ``download`` asks of a zip besides its archive checks, as pip download does: a ``.dist-info``
    directory with its ``WHEEL`` and ``METADATA``. One without is forgotten by the cache."""
    files = result.staged.files
    tops = {name.partition("/")[0] for name in files if name.partition("/")[0].endswith(".dist-info")}
    if not any(f"{top}/WHEEL" in files and f"{top}/METADATA" in files for top in tops):
        forget_refused(item, result.sha256, cache.root)
        raise WheelMetadataError(
            "not a wheel: no .dist-info directory with WHEEL and METADATA; nothing was kept",
            wheel=result.staged.filename,
        )


def _unsaid(message: str) -> None:
    """A download's warnings go nowhere (an invalid ``Requires-Python`` is skipped, as the install says it)."""


def _place(item: Resolved, result: DownloadResult, cache: Cache, directory: Path) -> None:
    """A finished, checked wheel into ``download -d``'s directory: only once every check passed, so a wheel
    refused — or left unchecked because another source failed first — never reaches it, and a file already
    there is replaced only by a good one. Copied from the cache's wheel file or the local source, as pip
    download writes a file of its own: a hard link would share one inode among every directory the wheel was
    downloaded into and the cache (a chmod or an edit in one shows in all). Through a temporary name renamed
    into place: the name never holds half a wheel, and nothing is written through a symlink left there. The
    caller's own file, when ``-d`` is where it already is, stays as it is. The copy is hashed as it is made: it
    must be the bytes the download verified (a cache's file is not synced, a local one may be rewritten), and
    every check of the file before it vouched for those bytes alone."""
    source = item.path if item.path is not None else cache.wheel_file(result.sha256)
    # The source's own name (the same bytes may be cached under another), checked again as it is joined.
    target = wheel_path_in(directory, filename_of(item), source=item.source)
    try:
        if os.path.samefile(source, target):
            return
    except OSError:
        pass  # no file there yet
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if _copy_hashing(source, temporary) != result.sha256:
            key = cache_key(item.url) if item.url is not None else None
            raise cache.unverified_copy(key, result.sha256, source, filename_of(item))
        # The cache's files are its user's alone (0600, in 0700 directories); a wheelhouse gets the mode pip
        # download gives a new file.
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):  # (not there: a parent that is a file fails the unlink too)
            temporary.unlink(missing_ok=True)
        if (
            isinstance(exc, FileNotFoundError)
            and exc.filename is not None
            and str(exc.filename) == str(source)
        ):
            # What went is the file copied from (the cache's, cleaned meanwhile), not anything -d holds
            raise DiskError(
                f"{source} went before it was copied into {directory} (the cache cleaned meanwhile?) — run the "
                "same command again",
                wheel=result.staged.filename,
            ) from None
        where = exc.filename2 or exc.filename or target
        raise DiskError(
            f"cannot write {where}: {exc.strerror or exc}", wheel=result.staged.filename
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise


def _copy_hashing(source: Path, copy: Path) -> str:
    """Copy ``source`` to ``copy`` (a new file) and return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(copy, "xb") as writer:
        while block := reader.read(1 << 20):
            digest.update(block)
            writer.write(block)
    return digest.hexdigest()


def _one_wheel_per_distribution(resolved: Sequence[Resolved]) -> list[Resolved]:
    """An install takes one wheel of each distribution, as pip's resolver insists: two (two versions, or one
    version from two places) would leave two ``.dist-info`` directories and each other's files, and the
    environment's record of neither. Refused before anything is fetched. One wheel named twice is taken once,
    as pip takes it."""
    first: dict[str, Resolved] = {}
    kept: list[Resolved] = []
    for item in resolved:
        filename = filename_of(item)
        name = parse_filename(filename).name
        earlier = first.setdefault(name, item)
        if earlier is item:
            kept.append(item)
            continue
        # the same file twice — ``six==1.17`` and ``Six==1.17.0``, or a pin and the URL the index gives for it —
        # is one, held to the hashes of both (a pin beside a wheel named outright never gets here:
        # :func:`_pins_named_outright`)
        same_file = (earlier.fetched, earlier.path) == (item.fetched, item.path)
        if same_file:
            merged = _both_pins(earlier, item)
            if merged is None:
                raise HashMismatch(
                    f"{earlier.source} and {item.source} name this file with hashes that have none in common; "
                    "nothing was downloaded",
                    wheel=filename,
                )
            first[name] = kept[kept.index(earlier)] = merged
            continue
        earlier_name = filename_of(earlier)
        if earlier_name != filename:
            both = f"{earlier_name} and {filename}"
        else:
            both = f"{filename} from {earlier.source} and from {item.source}"
        raise InstallConflict(
            f"{both} are both {name}: an install takes one wheel of a distribution", wheel=filename
        )
    return kept


def _both_pins(earlier: Resolved, item: Resolved) -> Resolved | None:
    """One file named twice, held to what both ask — each a sha256 the download checks, pins allowed, other
    hashes named, or nothing — or None when nothing could satisfy both (a source's hashes were dropped when
    another named the same file). Pins allowed intersect, as pip's ``Hashes`` do."""
    named = {side.sha256 for side in (earlier, item) if side.sha256}
    if len(named) > 1:
        return None
    alloweds = [side.allowed for side in (earlier, item) if side.allowed]
    allowed = frozenset.intersection(*alloweds) if alloweds else frozenset()
    if alloweds and not allowed:
        return None
    narrowed = narrow(next(iter(named), None), allowed)
    if narrowed is None:
        return None
    others = tuple(dict.fromkeys((*earlier.other_hashes, *item.other_hashes)))
    return earlier._replace(sha256=narrowed[0], allowed=narrowed[1], other_hashes=others)


def _pins_named_outright(
    sources: Sequence[str], hashes: Mapping[str, frozenset[str]]
) -> tuple[list[str], dict[str, frozenset[str]]]:
    """The sources without the ``NAME==VERSION`` pins that a wheel named by a path or URL satisfies, and the
    hashes with each such pin's ``--hash`` values moved onto that wheel. pip's resolver takes the file it is
    given when it satisfies the pin, without asking the index (which may not list it); the pin's hashes must
    allow the file (none in common with the wheel's own: refused here, before anything is fetched)."""
    filenames = {source: named_wheel(source) for source in sources}
    named: dict[str, list[tuple[str, str]]] = {}  # name -> (version, source) of each wheel named outright
    for source, filename in filenames.items():
        if filename is not None:
            try:
                parsed = parse_filename(filename)
            except WheelstreamError:
                continue  # said when it is resolved
            named.setdefault(parsed.name, []).append((str(parsed.version), source))
    kept: list[str] = []
    merged = dict(hashes)
    for source in sources:
        pinned = pin_of(source) if named and filenames[source] is None else None
        wheel = None
        if pinned is not None:
            wheel = next(
                (s for v, s in named.get(pinned[0], []) if pinned[1].contains(v, prereleases=True)), None
            )
        if wheel is None:
            kept.append(source)
            continue
        wanted = hashes.get(source)
        if wanted:
            allowed = merged[wheel] & wanted if merged.get(wheel) else wanted
            if not allowed:
                why = disjoint_algorithms(merged[wheel], wanted)
                raise HashMismatch(
                    f"{shown_text(wheel)} is the wheel for {source}, whose --hash values and the wheel's own "
                    f"have none in common{f' ({why})' if why else ''}; nothing was downloaded",
                    wheel=filenames[wheel],
                )
            merged[wheel] = allowed
    return kept, merged


_CANCELLED = "cancelled before any download started"


def _refuse_downloads_held_here(resolved: Sequence[Resolved]) -> None:
    """A call made from a progress callback, for a wheel the calling download is fetching: that download holds
    the URL's lock on this very thread, waiting for the callback to return, and the call's own download would
    wait for the lock — for itself, forever."""
    held = downloads_held_here()
    for item in resolved:
        url = (
            item.url
            if item.url is not None
            else item.path.resolve().as_uri()
            if item.path is not None
            else None
        )
        if url is not None and cache_key(url) in held:
            raise UsageError(
                "it is being downloaded by the call whose progress callback asked for it again: it would wait "
                "for itself forever",
                wheel=filename_of(item),
            )


def _resolve_sources(
    sources: Sequence[str],
    cache: Cache,
    client: httpx.Client,
    hashes: Mapping[str, frozenset[str]],
    indexes: Indexes,
    *,
    retries: int,
    ignore_tags: bool,
    interpreter: Interpreter,
    keep_wheels_in: Path | None,
    wanted: Callable[[Resolved], bool] | None,
    locked: Mapping[str, LockedFile] | None,
    stop: Callable[[], bool] | None,
) -> list[Resolved]:
    """Every source resolved, and refused here when a download could not be installed (two wheels of one
    distribution, tags that do not fit, a name ``download -d`` cannot take): what to fetch, of what ``wanted``
    takes."""
    if keep_wheels_in is None:
        sources, hashes = _pins_named_outright(sources, hashes)
    indexes = indexes.for_one_call()  # a --find-links page is parsed once for all the call's pins
    lenders = _lenders(sources, indexes)
    resolved = []
    for source in sources:
        if stop is not None and stop():
            raise Interrupted(_CANCELLED)
        lock = locked.get(source) if locked is not None else None
        found = resolve(
            source,
            hashes,
            indexes,
            cache,
            client,
            interpreter.tags,
            retries,
            interpreter.full_version or None,
            stop,
            lock.filename if lock is not None else None,
        )
        lent = credited(found.url, lenders) if found.url is not None and lenders else found.url
        size = lock.size if lock is not None else None
        reads_file = (  # what the checks of a finished wheel read besides its sha256 (``Resolved.needs_file``)
            bool(other_algorithms(found.allowed))
            or keep_wheels_in is not None
            or (found.sha256 is None and (bool(found.other_hashes) or size is not None))
        )
        resolved.append(
            found._replace(fetch_url=lent if lent != found.url else None, size=size, needs_file=reads_file)
        )
    if keep_wheels_in is None:
        resolved = _one_wheel_per_distribution(resolved)
    if wanted is not None:
        resolved = [item for item in resolved if wanted(item)]
    if not resolved:
        return []
    _refuse_downloads_held_here(resolved)
    for item in resolved:  # a path that is no file fails before anything is fetched, as pip fails
        check_local_file(item)
    if keep_wheels_in is not None:  # download -d: every name is one it can take, before anything is fetched
        for item in resolved:
            wheel_path_in(keep_wheels_in, filename_of(item), source=item.source)
    if not ignore_tags:
        for item in resolved:  # fail before downloading anything, as pip does
            name = filename_of(item)
            check_tags(name, parse_filename(name).tags, interpreter.supported, interpreter.described)
    return resolved


def _lenders(sources: Sequence[str], indexes: Indexes) -> list[str]:
    """The call's URLs that carry credentials — its indexes, ``--find-links`` pages and wheel URLs, in that
    order — whose credentials go to the call's other wheel URLs of their origin (``_urls.credited``), as pip
    and uv send what they have seen for a host to every request there."""
    urls = [indexes.index_url, *indexes.extra_index_urls, *indexes.find_links]
    for source in sources:
        with contextlib.suppress(UsageError):  # said where the source is resolved
            urls.append(direct_reference(source) or source)
    return [url for url in urls if "@" in url]  # (``credited`` reads each one's userinfo)


def _fetch_with(
    sources: Sequence[str],
    cache: Cache,
    client: httpx.Client,
    hashes: Mapping[str, frozenset[str]],
    indexes: Indexes,
    jobs: int,
    options: DownloadOptions,
    progress: ProgressCallback | None,
    ignore_tags: bool,
    interpreter: Interpreter,
    keep_wheels_in: Path | None,
    keep_unpacked: bool,
    processes: bool,
    wanted: Callable[[Resolved], bool] | None = None,
    on_fetched: Arrived | None = None,
    locked: Mapping[str, LockedFile] | None = None,
    cancel_by: threading.Event | None = None,
) -> list[tuple[Resolved, DownloadResult]]:
    """``processes``: worker processes were asked for, and the client is ours (a caller's cannot cross)."""
    stop = cancel_by.is_set if cancel_by is not None else None  # the caller's cancel, seen as Ctrl-C is
    resolved = _resolve_sources(
        sources,
        cache,
        client,
        hashes,
        indexes,
        retries=options.retries,
        ignore_tags=ignore_tags,
        interpreter=interpreter,
        keep_wheels_in=keep_wheels_in,
        wanted=wanted,
        locked=locked,
        stop=stop,
    )
    if not resolved:
        return []  # nothing asked for (a requirements file whose markers all say no), or all installed
    args = (cache, options, keep_unpacked)
    workers = min(max(1, jobs), len(resolved))

    def arrived(item: Resolved, result: DownloadResult) -> None:
        wheel_file = item.path if item.path is not None else cache.wheel_file(result.sha256)
        check_allowed(item, result.sha256, wheel_file, cache.root)  # of several allowed pins, one must match
        check_other_hashes(item, wheel_file, result.sha256, cache.root)
        if keep_wheels_in is not None:  # download -d: a checked wheel, and only a checked one, goes there
            _check_is_a_wheel(item, result, cache)  # an install checks far more, later
            if not ignore_tags:  # for another machine (target_python): its Requires-Python too, as pip's
                requires = requires_python_in_file(wheel_file, result.staged)
                filename = result.staged.filename
                check_requires_python(
                    requires, interpreter.full_version, filename, interpreter.described, _unsaid
                )
            _place(item, result, cache, keep_wheels_in)
        if on_fetched is not None:
            on_fetched(item, result)

    pool = process_pool(workers, options.timeout, progress) if processes else None
    if pool is not None:
        return fetch_in_processes(pool, resolved, cache, args, arrived, stop)
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wheelstream") as threads:

        def submit_to_thread(item: Resolved) -> Future[DownloadResult]:
            return threads.submit(fetch_one, item, *args, client=client, progress=progress, cancel=cancel)

        return collect(resolved, submit_to_thread, cancel, Future.result, on_done=arrived, stop=stop)
