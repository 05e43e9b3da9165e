"""The library API: ``install`` and ``download`` many sources, in parallel, with one result object.

A source is an ``http(s)://`` URL (optionally ``#sha256=<hex>``), a ``file://`` URL, ``NAME @ URL`` (the URL's
wheel, its name checked), a local path, or ``NAME==VERSION`` resolved through simple indexes and wheels on hand.
Every source is fetched and unpacked into the cache first (``wheels/<sha256>/``); only when *all* of them succeeded
is anything installed, in one transaction: into a ``target`` directory (pip's ``--target`` semantics) or an
:class:`~wheelstream.installer.Environment` (pip's plain install, replacing other versions; see
:mod:`wheelstream.installer`). So a failing or interrupted download never leaves the destination half-installed,
and the next run resumes what was interrupted."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import httpx

from wheelstream._cache import in_use
from wheelstream._fetch_many import MAX_CONNECTIONS, Workers, fetch_all
from wheelstream._parallel import release
from wheelstream._progress import ProgressCallback
from wheelstream._sources import Indexes, LockedFile, Resolved, direct_url, filename_of, forget_refused
from wheelstream._urls import direct_reference, shown_text
from wheelstream.errors import Interrupted, RecordError, UsageError, WheelMetadataError
from wheelstream.fetch import DownloadResult
from wheelstream.installer import (
    Environment,
    EnvironmentReport,
    InstallReport,
    Interpreter,
    LinkMode,
    TargetPython,
    WheelToInstall,
    check_target,
    install_staged_many,
    probe_interpreter,
)
from wheelstream.installer._checks import Checks, Warnings
from wheelstream.installer._metadata import parse_filename
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

if TYPE_CHECKING:
    from wheelstream.installer import Installed
    from wheelstream.installer._env_install import Removals

__all__ = [
    "DEFAULT_INDEX_URL",
    "DEFAULT_JOBS",
    "MAX_CONNECTIONS",
    "MAX_JOBS",
    "InstallResult",
    "WheelOutcome",
    "Workers",
    "download",
    "install",
    "install_sources",
]


DEFAULT_INDEX_URL = "https://pypi.org/simple/"
# Every download is a two-stage pipeline (network + unpack threads) that keeps about one core busy when the
# server is fast: more downloads than cores only adds GIL contention (docs/performance.md#d-default-jobs).
# At least 2, so one slow server never holds the rest back; at most 8.
DEFAULT_JOBS = max(2, min(8, os.cpu_count() or 2))
MAX_JOBS = 64  # the command's --jobs range too: more only adds threads (or processes) that wait
_MAX_TIMEOUT = 1e9  # seconds: an infinite timeout overflows the socket's (its C type), 31 years does not


def check_arguments(
    sources: Sequence[str | os.PathLike[str]] | str,
    hashes: Mapping[str, str | Collection[str]] | None,
    jobs: int,
    retries: int,
    timeout: float,
    max_unpacked_size: int,
    max_entries: int,
) -> None:
    """What the command line's option types refuse, refused for library callers too, as a ``UsageError`` before
    anything is fetched: a ``NAME @ URL`` source that names no wheel of NAME, a ``hashes`` key that is none of
    the sources (it would check nothing, in silence), and ``jobs``, ``retries``, ``timeout`` or the two limits
    out of the command's ranges (``jobs=0`` would fetch nothing, a negative ``retries`` or a zero ``timeout``
    give up before the first byte, an infinite ``timeout`` overflows the socket's; a limit of 0 was found out at
    the first entry, as a bad wheel, and that threw the partial download away)."""
    names = {sources} if isinstance(sources, str) else {os.fspath(s) for s in sources}
    for name in names:
        direct_reference(name)  # a NAME @ URL that is no wheel, or another project's: refused here
    for key in hashes or {}:
        if key not in names:
            raise UsageError(
                f"hashes names {shown_text(str(key))!r}, which is none of the sources "
                "(a key is a source exactly as given)"
            )
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"jobs must be between 1 and {MAX_JOBS}, not {jobs!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UsageError(f"retries must be 0 or more, not {retries!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < _MAX_TIMEOUT:
        raise UsageError(f"timeout must be a number of seconds above 0 and below 1e9, not {timeout!r}")
    for name, limit in (("max_unpacked_size", max_unpacked_size), ("max_entries", max_entries)):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"{name} must be a whole number of 1 or more, not {limit!r}")


def check_objects(
    *,
    environment: object = None,
    client: object = None,
    cancel: object = None,
) -> None:
    """The arguments a type checker would refuse, refused at run time too before anything is touched: each came
    out as an ``AttributeError`` or ``TypeError`` from deep inside (a path given as ``environment``, an
    ``httpx.AsyncClient``, ``index_url=None``)."""
    if environment is not None and not isinstance(environment, Environment):
        raise UsageError(
            f"environment must be an Environment (wheelstream.find_environment), not {type(environment).__name__}"
        )
    if client is not None and not isinstance(client, httpx.Client):
        raise UsageError(f"client must be an httpx.Client, not {type(client).__name__}")
    if client is not None and client.is_closed:  # else httpx's RuntimeError, deep inside the first request
        raise UsageError("client is closed: pass an open httpx.Client (or none, for wheelstream's own)")
    if cancel is not None and not isinstance(cancel, threading.Event):
        raise UsageError(f"cancel must be a threading.Event, not {type(cancel).__name__}")


def indexes_of(index_url: object, extra_index_urls: object, find_links: object, no_index: object) -> Indexes:
    """Where ``NAME==VERSION`` is looked up, checked as :func:`check_objects` checks (a URL string is a
    sequence of strings too: ``extra_index_urls="https://…"`` would have asked each of its characters)."""
    if not isinstance(index_url, str):
        raise UsageError(f"index_url must be a URL (str), not {type(index_url).__name__}")
    if not isinstance(extra_index_urls, (list, tuple)) or not all(
        isinstance(u, str) for u in extra_index_urls
    ):
        raise UsageError(f"extra_index_urls must be a list or tuple of URLs (str), not {extra_index_urls!r}")
    if not isinstance(find_links, (list, tuple)) or not all(
        isinstance(f, (str, os.PathLike)) for f in find_links
    ):
        raise UsageError(f"find_links must be a list or tuple of paths or URLs, not {find_links!r}")
    return Indexes(
        index_url, tuple(extra_index_urls), tuple(os.fspath(f) for f in find_links), bool(no_index)
    )


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


_Report = TypeVar("_Report", covariant=True)


@dataclass(frozen=True)
class InstallResult(Generic[_Report]):
    """What a call did: each wheel's outcome, and the install's report — an :class:`InstallReport` (a target)
    or an :class:`EnvironmentReport` (an environment; always for ``sync``), None for ``download``. The type
    says which, so ``result.report.installed`` type-checks where it can be read."""

    wheels: tuple[WheelOutcome, ...]
    report: _Report

    @property
    def bytes_fetched(self) -> int:
        return sum(w.bytes_fetched for w in self.wheels)

    @property
    def bytes_reused(self) -> int:
        return sum(w.bytes_reused for w in self.wheels)

    @property
    def resumed(self) -> bool:
        return any(w.resumed_at is not None for w in self.wheels)


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
        # the source's own name, as _fetch_many._place keeps it (the same bytes may be cached under another)
        path=(keep / filename_of(item)) if keep is not None else None,
    )


def _given(item: Resolved) -> str:
    """The source as given: an http(s) URL unredacted (``item.source`` is redacted), a file:// URL or a path as
    they were written (``item.path`` is already converted)."""
    return item.url if item.url is not None else item.source


def target_interpreter(
    python: str | None, target_python: TargetPython | None, *, compile_bytecode: bool = False
) -> Interpreter:
    """The interpreter a target directory or a download is for: ``python``'s (None: the running one), standing
    for the machine ``target_python`` describes when it is given. ``compile_bytecode`` for a machine of another
    Python version is refused: the bytecode is the installing interpreter's, which that version would not read."""
    interpreter = probe_interpreter(python)
    if target_python is None:
        return interpreter
    version = target_python.version_info or interpreter.version
    if compile_bytecode and version[:2] != interpreter.version:
        raise UsageError(
            f"bytecode is compiled by {interpreter.executable} (Python {interpreter.version_text}), which "
            f"Python {target_python.version} would not read: compile none, or install with a Python "
            f"{target_python.version}"
        )
    return target_python.applied_to(interpreter)


def check_target_python(target_python: TargetPython | None, environment: Environment | None) -> None:
    """Another machine is for a target directory or a download: an environment is installed for the
    interpreter it has (its files, its scripts, its bytecode), so a wheel for another would not run there."""
    if target_python is not None and environment is not None:
        raise UsageError(
            "target_python (pip's --platform, --python-version, --implementation, --abi) is for a target "
            "directory: an environment has its own interpreter"
        )


def install_url(item: Resolved, locked: Mapping[str, LockedFile] | None) -> str | None:
    """``direct_url.json``'s URL: a path's or URL's, not an index's file (a lock's ``wheels`` among them)."""
    lock = locked.get(_given(item)) if locked is not None else None
    return None if lock is not None and lock.index_file else direct_url(item)


def not_installed(
    present: Mapping[str, Installed],
    reinstall: bool,
    skipped: list[str],
    *,
    locked: Mapping[str, LockedFile] | None = None,
) -> Callable[[Resolved], bool]:
    """Which resolved wheels an install into an environment holding ``present`` (by key) takes: not one whose
    version is there already (named in ``skipped``), unless ``reinstall``, or unless what is there is an
    editable install and the wheel is named outright (pip's rule). ``locked`` (the sources are a lock's): a
    wheel it names outright (its ``archive``) is there only as the install of that archive — same URL, same
    sha256 where both are known — as ``uv pip sync`` holds it: a lock pins bytes, not a version."""
    from wheelstream.installer import same_version

    def wanted(item: Resolved) -> bool:
        name = parse_filename(filename_of(item))
        old = present.get(name.name)
        if old is None or reinstall or not same_version(old.version, str(name.version)):
            return True
        given = install_url(item, locked)
        if given is not None and (
            old.editable or (locked is not None and not old.installed_from(given, item.sha256))
        ):
            return True
        skipped.append(f"{old.name} {old.version}")
        return False

    return wanted


def install(
    sources: Sequence[str | os.PathLike[str]] | str,
    target: str | os.PathLike[str] | None = None,
    *,
    environment: Environment | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str | Collection[str]] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str | os.PathLike[str]] = (),
    no_index: bool = False,
    upgrade: bool = False,
    reinstall: bool = False,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    connections: int | None = None,
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
    cancel: threading.Event | None = None,
    target_python: TargetPython | None = None,
) -> InstallResult[InstallReport | EnvironmentReport]:
    """Install wheels, resumably, into ``target`` like ``pip install --no-deps --no-compile --target`` or into
    ``environment`` like ``pip install --no-deps --no-compile`` (give exactly one).

    ``environment`` comes from :func:`wheelstream.find_environment` (a venv, a prefix, an interpreter's own):
    another version of a wheel's distribution there is replaced in the same transaction; the same version is
    skipped without being downloaded, unless ``reinstall``. ``upgrade`` and ``python`` are ``target``'s
    (``--target --upgrade``, the interpreter the install is for); an environment has its interpreter, and
    ``upgrade`` changes nothing there (another version is replaced anyway, as ``pip install -U`` does).
    ``target_python`` (``target`` only) says the directory is for another machine, as pip's ``--platform``,
    ``--python-version``, ``--implementation`` and ``--abi`` do: its tags choose and check the wheels, its
    version their ``Requires-Python``; the files are written as for ``python`` all the same.

    ``NAME==VERSION`` is looked up on each of ``extra_index_urls`` in order, then on ``index_url``, and taken
    from the first index that lists the project, only from there (uv's first-index rule; pip merges them all,
    which lets a public index shadow a private project); the wheels of ``find_links`` (directories, pages) are
    candidates beside that index's files, as in pip, and with ``no_index`` the only ones.

    ``hashes`` maps a source (as given) to its expected sha256 hex, or to several of which the wheel must
    match one (pip's repeated ``--hash``: a file an index lists with one of them is preferred); a value may
    also be ``sha256:HEX``, ``sha384:HEX`` or ``sha512:HEX``, pip's ``--hash`` algorithms (any one matching
    is enough, as in pip; a sha256 is checked while the wheel streams, the others on the finished file). Raises a
    :class:`~wheelstream.errors.WheelstreamError`; on any error the destination is untouched and interrupted
    downloads are kept in the cache for the next call to resume.

    ``link_mode``: ``"move"`` (default) unpacks each wheel once and moves the files into place — the cache
    keeps the wheel *file*, so a later install needs no network but unpacks again; ``"copy"`` and
    ``"hardlink"`` keep the unpacked tree in the cache and copy or hardlink from it (a hardlinked file edited
    in the destination changes the cache too, as with uv).

    ``workers``: several downloads run on threads of this process unless ``"processes"`` is asked for: then,
    where it is possible (Linux, a client of wheelstream's own, this process running one thread), each runs in
    a forked worker process with a GIL of its own — faster on many wheels, but it forks the caller.

    ``cancel``: an event the caller sets, from any thread, to stop the call as Ctrl-C would — a call running
    on a thread of its own (``asyncio.to_thread``) cannot be interrupted otherwise. An index lookup stops at
    once, a page in flight too; the downloads stop at their next chunk (a stalled one at once) and keep their
    checkpoints; the call raises
    :class:`~wheelstream.errors.Interrupted`. Set before the install starts, nothing is installed; once the
    install has begun it runs to its end, as the destination is never left half-changed.

    ``connections``: ranged HTTP connections for one big wheel, each writing its piece into the partial file
    while the wheel still unpacks as it streams. None (default) is automatic: one for a small file or a server
    without usable ranges; for a big one (16 MiB or more left) the download watches its one connection for a
    second and, when it mostly waits on the network, goes on with up to 4. ``1`` never splits; ``N`` (2 to
    ``MAX_CONNECTIONS``, 8) uses up to N from the first request on, which asks for one 4 MiB piece (its answer
    says whether the server serves ranges; if not, one connection). Another value raises
    :class:`~wheelstream.errors.UsageError`.
    """
    return install_sources(
        sources,
        target,
        environment=environment,
        cache_dir=cache_dir,
        hashes=hashes,
        index_url=index_url,
        extra_index_urls=extra_index_urls,
        find_links=find_links,
        no_index=no_index,
        upgrade=upgrade,
        reinstall=reinstall,
        jobs=jobs,
        retries=retries,
        timeout=timeout,
        connections=connections,
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
        cancel=cancel,
        target_python=target_python,
    )


def install_sources(
    sources: Sequence[str | os.PathLike[str]] | str,
    target: str | os.PathLike[str] | None = None,
    *,
    environment: Environment | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str | Collection[str]] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str | os.PathLike[str]] = (),
    no_index: bool = False,
    upgrade: bool = False,
    reinstall: bool = False,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    connections: int | None = None,
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
    cancel: threading.Event | None = None,
    verify: Callable[[str, DownloadResult], None] | None = None,
    remove: Removals = (),
    locked: Mapping[str, LockedFile] | None = None,
    target_python: TargetPython | None = None,
) -> InstallResult[InstallReport | EnvironmentReport]:
    """:func:`install`, and what a lock adds: ``verify(where, result)`` checks each fetched wheel before
    anything is installed (``where``: the source as given — a URL with its credentials, a file:// URL, a
    path), ``remove`` names distributions to uninstall in the same transaction (or is a function of those
    installed that names them: see ``installer.install_into``), and ``locked`` says what the lock says of
    each source's file (:class:`~wheelstream._sources.LockedFile`): its size, checked before a body is read;
    its name, where the URL or path does not end in it; whether it is an index's file, installed as pip and
    uv install from an index (no ``direct_url.json``); and that a wheel already installed is kept only as
    :func:`not_installed` says."""
    if (target is None) == (environment is None):
        raise UsageError("say where to install: a target directory or an environment (exactly one)")
    check_objects(environment=environment, client=client, cancel=cancel)
    indexes = indexes_of(index_url, extra_index_urls, find_links, no_index)
    if target is not None:
        check_target(target)  # before anything is fetched, as pip checks it
    check_arguments(sources, hashes, jobs, retries, timeout, max_unpacked_size, max_entries)
    check_target_python(target_python, environment)
    skipped: list[str] = []
    wanted: Callable[[Resolved], bool] | None = None
    if environment is not None:
        from wheelstream.installer import installed_now

        present = installed_now(environment, on_warning)  # a killed command's install finished first
        wanted = not_installed(present, reinstall, skipped, locked=locked)
        interpreter = environment.interpreter
    else:
        interpreter = target_interpreter(python, target_python, compile_bytecode=compile_bytecode)
    checks = Checks(interpreter, ignore_tags, Warnings(on_warning))

    def to_install(item: Resolved, result: DownloadResult) -> WheelToInstall:
        return WheelToInstall(result.staged, install_url(item, locked), result.sha256)

    def arrived(item: Resolved, result: DownloadResult) -> None:
        """Each wheel as its download ends, while the others go on: the lock's verdict first (a tampered wheel
        is named as such, not by what its metadata gets wrong), then every check the install makes."""
        if verify is not None:
            verify(_given(item), result)
        try:
            checks.add(to_install(item, result))
        except (RecordError, WheelMetadataError):
            # The wheel itself is bad: the cache must not serve it again.
            forget_refused(item, result.sha256, cache_dir)
            raise

    # The cache held shared until the last file is out of its trees: `cache clean` waits for the install.
    with in_use(cache_dir):
        fetched = fetch_all(
            sources,
            cache_dir=cache_dir,
            client=client,
            hashes=hashes,
            indexes=indexes,
            jobs=jobs,
            retries=retries,
            timeout=timeout,
            connections=connections,
            max_unpacked_size=max_unpacked_size,
            max_entries=max_entries,
            progress=progress,
            ignore_tags=ignore_tags,
            interpreter=interpreter,
            keep_wheels_in=None,
            workers=workers,
            cancel=cancel,
            keep_unpacked=link_mode != "move",
            wanted=wanted,
            on_fetched=arrived,
            locked=locked,
        )
        results = [result for _item, result in fetched]
        cancelled = cancel.is_set if cancel is not None else None  # up to the destination's lock, held
        where = target if environment is None else environment.root
        items = [to_install(item, result) for item, result in fetched]
        try:
            report: InstallReport | EnvironmentReport
            if environment is None:
                assert target is not None
                report = install_staged_many(
                    items,
                    Path(target),
                    interpreter=interpreter,
                    upgrade=upgrade,
                    link_mode=link_mode,
                    compile_bytecode=compile_bytecode,
                    ignore_tags=ignore_tags,
                    checks=checks,
                    cancelled=cancelled,
                )
            else:
                from wheelstream.installer import install_into

                report = install_into(
                    items,
                    environment,
                    reinstall=reinstall,
                    link_mode=link_mode,
                    compile_bytecode=compile_bytecode,
                    ignore_tags=ignore_tags,
                    remove=remove,
                    checks=checks,
                    cancelled=cancelled,
                    locked=locked is not None,
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
        except (
            KeyboardInterrupt
        ):  # the install is complete: the interrupt says so (left claims are swept later)
            raise Interrupted.after_install(where) from None
        return InstallResult(tuple(_outcome(i, r, None) for i, r in fetched), report)


def download(
    sources: Sequence[str | os.PathLike[str]] | str,
    dest: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    hashes: Mapping[str, str | Collection[str]] | None = None,
    index_url: str = DEFAULT_INDEX_URL,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str | os.PathLike[str]] = (),
    no_index: bool = False,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    connections: int | None = None,
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    progress: ProgressCallback | None = None,
    client: httpx.Client | None = None,
    workers: Workers = "threads",
    cancel: threading.Event | None = None,
    target_python: TargetPython | None = None,
) -> InstallResult[None]:
    """Resumably download wheels into ``dest`` and verify each archive completely (every entry inflated
    and CRC-checked, central directory cross-checked) — ``pip download`` with zip verification; a zip that is
    not a wheel (no ``.dist-info`` directory with its ``WHEEL`` and ``METADATA``) is refused, as pip
    refuses it, and not left in ``dest``. ``workers`` and ``connections`` as for :func:`install`.

    ``NAME==VERSION`` takes the index's file that best fits this interpreter, and a wheel named outright is
    taken whatever its tags. With ``target_python`` (pip's ``--platform``, …) both are for that machine: the
    chosen file fits it, a wheel that does not is refused before anything is fetched, and one whose
    ``Requires-Python`` excludes that machine's version once it is (it does not reach ``dest``)."""
    check_objects(client=client, cancel=cancel)
    indexes = indexes_of(index_url, extra_index_urls, find_links, no_index)
    check_arguments(sources, hashes, jobs, retries, timeout, max_unpacked_size, max_entries)
    if not os.fspath(dest):
        raise UsageError("dest is empty (it would be the current directory)")
    dest_path = Path(dest)
    if dest_path.exists() and not dest_path.is_dir():
        raise UsageError(f"dest is not a directory: {dest_path}")
    with in_use(cache_dir):  # shared: `cache clean` waits until the wheels are copied out
        fetched = fetch_all(
            sources,
            cache_dir=cache_dir,
            client=client,
            hashes=hashes,
            indexes=indexes,
            jobs=jobs,
            retries=retries,
            timeout=timeout,
            connections=connections,
            max_unpacked_size=max_unpacked_size,
            max_entries=max_entries,
            progress=progress,
            ignore_tags=target_python is None,
            interpreter=target_interpreter(None, target_python),
            keep_wheels_in=dest_path,
            workers=workers,
            cancel=cancel,
            keep_unpacked=False,  # only the wheel file is kept ...
            verify_only=True,  # ... and no file of its tree is written: every entry is checked all the same
        )
        release(r for _, r in fetched)
    return InstallResult(tuple(_outcome(i, r, dest_path) for i, r in fetched), None)
