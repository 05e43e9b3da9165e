"""What an install would do, without doing it: ``install --dry-run`` and ``sync --dry-run`` (pip's and uv's
``--dry-run``).

Every source is resolved as the install resolves it — indexes asked, names, tags and hashes checked — so a
source the install would refuse before downloading is refused here too, with the same error. Each wheel's
distribution is then compared with what the destination holds, read as it is now (a killed command's unfinished
install is not finished here: the plan warns instead), and the cache is asked what it holds of each file: the
wheel itself, or part of it to resume. Nothing is downloaded and nothing is written, except what any index
lookup writes (its pages in the HTTP cache).

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

from wheelstream._api import DEFAULT_INDEX_URL, check_arguments, check_objects, indexes_of
from wheelstream._cache import Cache
from wheelstream._fetch_many import resolve_all
from wheelstream._sources import Resolved, direct_url, filename_of
from wheelstream._urls import cache_key
from wheelstream.errors import UsageError
from wheelstream.installer import Environment, Installed, check_target, same_version
from wheelstream.installer._env_install import Removals
from wheelstream.installer._installed import distributions_in, installed_distributions
from wheelstream.installer._metadata import parse_filename
from wheelstream.installer._recovery import unfinished
from wheelstream.unpack._partial import Journal
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

__all__ = ["Fetch", "InstallPlan", "PlannedWheel", "plan_install"]

# Where a wheel's bytes would come from: a local file, the cache (a URL's file is still revalidated with its
# server), a partial download the cache holds (resumed), or the network from the first byte.
Fetch = Literal["local", "cached", "resume", "download"]


@dataclass(frozen=True)
class PlannedWheel:
    """One wheel an install would put in place."""

    source: str  # as given, credentials redacted
    filename: str
    name: str  # the distribution's name, as the file name spells it
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
    remove: Removals = (),
    index_files: Collection[str] = (),
    sizes: Mapping[str, int] | None = None,
) -> InstallPlan:
    """What :func:`wheelstream.install` would do with the same arguments, without doing it (the options that
    only change how it is done — jobs, connections, link mode, bytecode, limits — are not asked for). Raises
    what the install would raise before its first download. ``remove``, ``index_files`` and ``sizes`` as
    :func:`wheelstream._api.install_sources` takes them from a lock (:func:`wheelstream.plan_lock`)."""
    if (target is None) == (environment is None):
        raise UsageError("say where to install: a target directory or an environment (exactly one)")
    check_objects(environment=environment, client=client, cancel=cancel)
    indexes = indexes_of(index_url, extra_index_urls, find_links, no_index)
    if target is not None:
        check_target(target)
    # (the options a plan does not take are checked at their defaults)
    check_arguments(sources, hashes, 1, retries, timeout, DEFAULT_MAX_UNPACKED_SIZE, DEFAULT_MAX_ENTRIES)
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
    if environment is not None:
        present = {dist.key: dist for dist in installed_distributions(environment)}
        python = environment.interpreter.executable
    else:
        present = {dist.key: dist for dist in distributions_in([where])}
    skipped: list[str] = []

    def wanted(item: Resolved) -> bool:
        if environment is None:
            return True  # a --target install takes every wheel (what it keeps of the target is item by item)
        name = parse_filename(filename_of(item))
        old = present.get(name.name)
        if old is None or reinstall or not same_version(old.version, str(name.version)):
            return True
        named_outright = (item.url or item.source) not in index_files and direct_url(item) is not None
        if old.editable and named_outright:
            return True  # a wheel named outright replaces an editable install of its version (pip's rule)
        skipped.append(f"{old.name} {old.version}")
        return False

    resolved = resolve_all(
        sources,
        cache_dir=cache_dir,
        client=client,
        hashes=hashes,
        indexes=indexes,
        retries=retries,
        timeout=timeout,
        ignore_tags=ignore_tags,
        python=python,
        wanted=wanted,
        sizes=sizes,
        cancel=cancel,
    )
    cache = Cache.at(cache_dir)
    planned = []
    for item in resolved:
        filename = filename_of(item)
        name = parse_filename(filename)
        old = present.get(name.name)
        replaces = f"{old.name} {old.version}" if old is not None else None
        if environment is None and old is not None and not upgrade:
            warn(
                f"{filename}: the target has {old.name} {old.version}; without --upgrade, the items it has "
                "already are kept, not replaced"
            )
            replaces = None
        fetch, held = _where_from(item, cache)
        planned.append(
            PlannedWheel(
                item.source, filename, name.name, str(name.version), fetch, held, item.size, replaces
            )
        )
    removals = _removals(remove, present, {w.name for w in planned})
    return InstallPlan(tuple(planned), removals, tuple(skipped), tuple(warnings))


def _where_from(item: Resolved, cache: Cache) -> tuple[Fetch, int]:
    """Where the install would take a wheel's bytes from, and how many a partial download holds."""
    if item.path is not None:
        return "local", 0
    assert item.url is not None
    if item.sha256 is not None and (
        cache.wheel_file(item.sha256).is_file() or cache.wheel_dir(item.sha256).is_dir()
    ):
        return "cached", 0
    key = cache_key(item.url)
    if item.sha256 is None and cache.remembered(key) is not None:
        return "cached", 0  # revalidated with the server when installed: a changed file is fetched again
    journal = Journal.load_header(cache.journal(key))
    held = journal.durable + sum(end - start for start, end in journal.held) if journal is not None else 0
    return ("resume", held) if held else ("download", 0)


def _removals(remove: Removals, present: Mapping[str, Installed], planned: set[str]) -> tuple[str, ...]:
    """A sync's uninstalls, as "name version" (a distribution a planned wheel replaces is not among them)."""
    names = remove(list(present.values())) if callable(remove) else remove
    out = []
    for name in names:
        dist = present.get(canonicalize_name(name))
        if dist is not None and dist.key not in planned:
            out.append(f"{dist.name} {dist.version}")
    return tuple(out)
