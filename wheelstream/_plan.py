"""What an install would do, without doing it: ``install --dry-run`` and ``sync --dry-run`` (pip's and uv's
``--dry-run``).

Every source is resolved as the install resolves it — indexes asked, names, tags and hashes checked, a path
looked at — so a source the install would refuse before downloading is refused here too, with the same error;
so is a distribution it could not replace or uninstall (no RECORD: ``installer.removal``). Each wheel's
distribution is then compared with what the destination holds, read as it is now (a killed command's unfinished
install is not finished here: the plan warns instead), and the cache is asked what it holds of each file the
way a download asks it (``fetch._resume.usable_journal``, ``fetch._fetch.newer_partial``): the wheel itself,
or part of it to resume. Nothing is downloaded, and nothing is written but what any lookup writes: index pages
in the HTTP cache, the cache's directories where they are missing, and its sweep of what dead processes left.

What cannot be known without the wheel is not promised: which top-level items a ``--target`` install would skip
or replace, RECORD's verdict, a hash that is checked only on the finished file. Sizes are known only where a
lock gives them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from packaging.utils import canonicalize_name

from wheelstream._api import (
    DEFAULT_INDEX_URL,
    check_arguments,
    check_objects,
    check_target_python,
    indexes_of,
    not_installed,
    target_interpreter,
)
from wheelstream._cache import Cache
from wheelstream._fetch_many import resolve_all
from wheelstream._sources import LockedFile, Resolved, filename_of
from wheelstream.errors import UsageError, WheelstreamError
from wheelstream.fetch._fetch import newer_partial
from wheelstream.fetch._options import DownloadOptions, Job
from wheelstream.fetch._resume import usable_journal
from wheelstream.installer import Environment, Installed, TargetPython, check_target
from wheelstream.installer._env_install import Removals
from wheelstream.installer._installed import distributions_in, installed_distributions, removal
from wheelstream.installer._metadata import parse_filename
from wheelstream.installer._recovery import unfinished
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

__all__ = ["Fetch", "InstallPlan", "PlannedWheel", "plan_install", "plan_sources"]

# Where a wheel's bytes would come from: a local file, the cache (a URL's file is still revalidated with its
# server), a partial download the cache holds (resumed), or the network from the first byte.
Fetch = Literal["local", "cached", "resume", "download"]


@dataclass(frozen=True)
class PlannedWheel:
    """One wheel an install would put in place."""

    source: str  # as given, credentials redacted
    filename: str
    name: str  # the distribution's name, normalized (PEP 503), as uv prints it
    version: str
    fetch: Fetch
    held: int  # bytes a partial download holds already ("resume"), else 0
    size: int | None  # the file's bytes, where a lock says
    replaces: str | None  # "name version" of the distribution it replaces, if one is installed


@dataclass(frozen=True)
class InstallPlan:
    """What an install would do: ``install`` in order, ``remove`` (a sync's "name version" of what the lock does
    not list; a version a wheel replaces is that wheel's ``replaces``), ``skipped`` ("name version" already
    installed), and ``warnings`` said while planning."""

    install: tuple[PlannedWheel, ...]
    remove: tuple[str, ...]
    skipped: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def to_download(self) -> tuple[PlannedWheel, ...]:
        """The wheels whose bytes, or some of them, would come over the network."""
        return tuple(w for w in self.install if w.fetch in ("download", "resume"))


def plan_install(
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
    retries: int = 5,
    timeout: float = 30.0,
    python: str | None = None,
    ignore_tags: bool = False,
    on_warning: Callable[[str], None] | None = None,
    client: httpx.Client | None = None,
    cancel: threading.Event | None = None,
    target_python: TargetPython | None = None,
) -> InstallPlan:
    """What :func:`wheelstream.install` would do with the same arguments, without doing it (the options that
    only change how it is done — jobs, connections, link mode, bytecode, limits — are not asked for). Raises
    what the install would raise before its first download."""
    return plan_sources(
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
        retries=retries,
        timeout=timeout,
        python=python,
        ignore_tags=ignore_tags,
        on_warning=on_warning,
        client=client,
        cancel=cancel,
        target_python=target_python,
    )


def plan_sources(
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
    retries: int = 5,
    timeout: float = 30.0,
    python: str | None = None,
    ignore_tags: bool = False,
    on_warning: Callable[[str], None] | None = None,
    client: httpx.Client | None = None,
    cancel: threading.Event | None = None,
    target_python: TargetPython | None = None,
    remove: Removals = (),
    locked: Mapping[str, LockedFile] | None = None,
) -> InstallPlan:
    """:func:`plan_install`, and what a lock adds (:func:`wheelstream.plan_lock`): ``remove`` (an
    environment's only) and ``locked`` as :func:`wheelstream._api.install_sources` takes them."""
    if (target is None) == (environment is None):
        raise UsageError("say where to install: a target directory or an environment (exactly one)")
    if target is not None and remove:
        raise UsageError(
            "remove uninstalls from an environment: a target directory has no distributions to sync"
        )
    check_objects(environment=environment, client=client, cancel=cancel)
    indexes = indexes_of(index_url, extra_index_urls, find_links, no_index)
    if target is not None:
        check_target(target)
    # (the options a plan does not take are checked at their defaults)
    check_arguments(sources, hashes, 1, retries, timeout, DEFAULT_MAX_UNPACKED_SIZE, DEFAULT_MAX_ENTRIES)
    check_target_python(target_python, environment)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    where = environment.root if environment is not None else Path(target or "")
    if unfinished(where):
        warn(
            f"a command that installed into {where} was interrupted in its commit: the next install finishes it "
            "first, so what is installed there may change before this plan's wheels are compared with it"
        )
    skipped: list[str] = []
    if environment is not None:
        present = {dist.key: dist for dist in installed_distributions(environment)}
        interpreter = environment.interpreter
        wanted = not_installed(present, reinstall, skipped, locked=locked)
    else:
        present = {dist.key: dist for dist in distributions_in([where])}
        interpreter = target_interpreter(python, target_python)
        wanted = None  # a --target install takes every wheel (what it keeps of the target is item by item)
    cache = Cache.at(cache_dir)
    resolved = resolve_all(
        sources,
        cache=cache,
        client=client,
        hashes=hashes,
        indexes=indexes,
        retries=retries,
        timeout=timeout,
        ignore_tags=ignore_tags,
        interpreter=interpreter,
        wanted=wanted,
        locked=locked,
        cancel=cancel,
    )
    planned = []
    for item in resolved:
        filename = filename_of(item)
        name = parse_filename(filename)
        old = present.get(name.name)
        replaces = None
        if old is not None and environment is not None:
            try:
                removal(environment, old)  # refused (no RECORD, an .egg-info) as the install would refuse it
            except WheelstreamError as exc:
                exc.with_wheel(filename)
                raise
            replaces = f"{old.name} {old.version}"
        elif old is not None:
            kept = _kept_in_target(filename, old, str(name.version), upgrade)
            if kept:
                warn(kept)
            replaces = f"{old.name} {old.version}" if upgrade and old.version == str(name.version) else None
        fetch, held = _where_from(item, cache)
        planned.append(
            PlannedWheel(
                item.source, filename, name.name, str(name.version), fetch, held, item.size, replaces
            )
        )
    removals = _removals(environment, remove, present, {w.name for w in planned})
    return InstallPlan(tuple(planned), removals, tuple(skipped), tuple(warnings))


def _kept_in_target(filename: str, old: Installed, version: str, upgrade: bool) -> str:
    """What a ``--target`` install keeps of a distribution the target has: pip's rule is item by item."""
    if not upgrade:
        return (
            f"{filename}: the target has {old.name} {old.version}; without --upgrade, the items it has already "
            "are kept, not replaced"
        )
    if old.version == version:
        return ""  # the same items, replaced one by one
    return (
        f"{filename}: the target has {old.name} {old.version}; --upgrade replaces its items of the same names, "
        f"but {old.dist_info.name} and what only {old.version} has stay (pip's --target does the same)"
    )


def _where_from(item: Resolved, cache: Cache) -> tuple[Fetch, int]:
    """Where the install would take a wheel's bytes from, and how many a partial download holds, as the
    download decides it (``fetch._fetch``: a pinned file in the cache; an unpinned URL's cached file unless a
    newer one was being downloaded; else what its journal lets a resume keep)."""
    if item.path is not None:
        return "local", 0
    assert item.url is not None
    job = Job.of(
        item.url,
        cache,
        DownloadOptions(),
        item.sha256,
        keep_unpacked=True,
        needs_file=item.needs_file,
        filename=item.filename,
    )
    if job.expected is not None:  # the file, or the tree where it will do (``fetch._from_cache``)
        if cache.wheel_file(job.expected).is_file() or (
            job.takes_tree(job.expected) and cache.wheel_dir(job.expected).is_dir()
        ):
            return "cached", 0
    else:
        record = cache.remembered(job.key)
        if record is not None and job.takes_tree(record.sha256) and not newer_partial(job, record):
            return "cached", 0  # revalidated with the server when installed: a changed file is fetched again
    journal = usable_journal(job)
    held = journal.durable + sum(end - start for start, end in journal.held) if journal is not None else 0
    return ("resume", held) if held else ("download", 0)


def _removals(
    environment: Environment | None, remove: Removals, present: Mapping[str, Installed], planned: set[str]
) -> tuple[str, ...]:
    """A sync's uninstalls, as "name version" (a distribution a planned wheel replaces is not among them), each
    one the install could uninstall (``removal`` refuses one without RECORD)."""
    if environment is None:
        return ()
    names = remove(list(present.values())) if callable(remove) else remove
    out = []
    for name in names:
        dist = present.get(canonicalize_name(name))
        if dist is not None and dist.key not in planned:
            removal(environment, dist)
            out.append(f"{dist.name} {dist.version}")
    return tuple(out)
