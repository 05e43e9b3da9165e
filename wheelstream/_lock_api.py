"""``install_lock`` and ``sync``: a ``pylock.toml`` (PEP 751) installed as one transaction.

The lock is read and every package chosen for the destination's interpreter first (:mod:`wheelstream._pylock`:
an sdist or an environment the lock does not cover fails here, before any download); then its wheels go
through :func:`wheelstream._api.install`'s pipeline with each wheel's sha256 expected while streaming, and the
lock's size and other hashes checked on each finished file before anything is installed. A wheel that fails
them is dropped from the cache. ``sync`` also uninstalls, in the same transaction, every distribution of the
environment the lock does not select (as ``uv pip sync`` does); what already matches is left as it is.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import NamedTuple

from packaging.utils import canonicalize_name

from wheelstream._api import (
    DEFAULT_JOBS,
    InstallResult,
    Workers,
    check_objects,
    check_target_python,
    install_sources,
    target_interpreter,
)
from wheelstream._cache import Cache
from wheelstream._plan import InstallPlan, plan_sources
from wheelstream._progress import ProgressCallback
from wheelstream._pylock import LockedWheel, read_lock, verify_locked
from wheelstream._sources import LockedFile
from wheelstream._urls import cache_key, is_url
from wheelstream.errors import HashMismatch, UsageError
from wheelstream.fetch import DownloadResult
from wheelstream.installer import Environment, EnvironmentReport, InstallReport, LinkMode, TargetPython
from wheelstream.installer._env_install import Removals
from wheelstream.installer._installed import Installed
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

__all__ = ["install_lock", "own_distributions", "plan_lock", "sync"]

# What ``sync`` leaves in an environment whose lock does not list it (see ``install_lock``'s ``unlisted``).
_PACKAGING_TOOLS = frozenset({"pip", "setuptools", "wheel"})


def runs_this_program(environment: Environment) -> bool:
    """Whether ``environment`` is the one this program runs from — its interpreter's own (the root is
    ``sys.prefix``), or the one whose site-packages its dependencies are imported from — so that its
    ``own_distributions`` must stay. Not by the interpreter alone: ``--prefix DIR`` with no ``--python`` has the
    running one, and another directory."""
    import filelock
    import packaging

    if os.path.realpath(environment.root) == os.path.realpath(sys.prefix):
        return True
    ours = {os.path.realpath(Path(module.__file__ or "").parent.parent) for module in (packaging, filelock)}
    return any(os.path.realpath(lib) in ours for lib in environment.lib_dirs)


def own_distributions() -> set[str]:
    """wheelstream's distribution and what it requires, in the running environment: a sync there must not take
    away the program doing it (uv keeps itself too)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    keep: set[str] = set()
    todo = ["wheelstream"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in keep:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        keep.add(name)
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return keep


def _local_path(source: str) -> Path | None:
    """The file a local source names (a path, or a ``file://`` URL): it is not copied into the cache."""
    if not is_url(source):
        return Path(source)
    if urllib.parse.urlsplit(source).scheme.lower() == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    return None


def _verifier(wheels: list[LockedWheel], cache: Cache) -> Callable[[str, DownloadResult], None]:
    by_source = {wheel.source: wheel for wheel in wheels}

    def verify(source: str, result: DownloadResult) -> None:
        wheel = by_source[source]
        local = _local_path(source)
        file = local if local is not None else cache.wheel_file(result.sha256)
        key = cache_key(source) if local is None else None

        def read(expected: Mapping[str, str]) -> dict[str, str]:
            return cache.unpacked_digests(key, result.sha256, file, wheel.filename, expected)

        try:
            verify_locked(wheel, file, result.sha256, read)
        except HashMismatch:
            if key is not None:  # the download is not the locked file: its URL must not serve it again
                # (the URL's record only, not the bytes: another lock may want them)
                cache.forget_url(key, result.sha256)
            raise

    return verify


class _Selected(NamedTuple):
    """A lock's wheels for one interpreter, as ``install_sources`` (and ``plan_sources``) take them."""

    wheels: list[LockedWheel]
    remove: Removals  # what a ``sync`` uninstalls

    @property
    def sources(self) -> list[str]:
        return [wheel.source for wheel in self.wheels]

    @property
    def hashes(self) -> dict[str, str]:
        return {wheel.source: wheel.sha256 for wheel in self.wheels if wheel.sha256}

    @property
    def locked(self) -> dict[str, LockedFile]:
        """What the lock says of each wheel's file besides its hashes: its name (the lock's ``name`` where its
        URL or path does not end in it), its size, and whether it is one of an index's files (the lock's
        ``wheels``, not its ``archive`` URLs)."""
        return {w.source: LockedFile(w.filename, w.size, index_file=not w.direct) for w in self.wheels}


def _selected(
    lock: str | os.PathLike[str],
    environment: Environment | None,
    extras: Collection[str],
    groups: Collection[str] | None,
    sync: bool,
    python: str | None,
    target_python: TargetPython | None,
    on_warning: Callable[[str], None] | None,
    *,
    compile_bytecode: bool = False,
) -> _Selected:
    """The lock's wheels for the destination's interpreter, and what a ``sync`` uninstalls."""
    check_objects(environment=environment)
    check_target_python(target_python, environment)
    for option, names in (("extras", extras), ("groups", groups)):
        if isinstance(names, str):  # a str is a Collection[str] of its letters
            raise UsageError(f"{option}: a collection of names, not one string ({names!r})")
    if sync and environment is None:
        raise UsageError(
            "sync needs an environment: a target directory has no installed distributions to sync"
        )
    interpreter = (
        environment.interpreter
        if environment is not None
        else target_interpreter(python, target_python, compile_bytecode=compile_bytecode)
    )
    wheels = read_lock(
        Path(lock),
        markers=interpreter.marker_environment(),
        tags=interpreter.tags,
        extras=extras,
        groups=groups,
        warn=on_warning,
    )
    remove: Removals = ()
    if sync:
        assert environment is not None
        locked = {canonicalize_name(wheel.name) for wheel in wheels}
        ours = own_distributions() if runs_this_program(environment) else frozenset()

        def unlisted(present: list[Installed]) -> list[str]:
            """What the lock does not list, asked under the environment's lock once an interrupted install is
            finished (asked before, it would miss what that install brings, and race other commands). The
            packaging tools a venv is made with stay unless the lock lists them, as ``uv pip sync`` and
            pip-tools' ``pip-sync`` keep them: a lock rarely names pip, and a venv without it surprises."""
            names = [dist.name for dist in present if dist.key not in locked]
            kept = sorted(name for name in names if canonicalize_name(name) in ours)
            if kept and on_warning is not None:
                on_warning(f"not removed, as wheelstream runs from them: {', '.join(kept)}")
            return [name for name in names if canonicalize_name(name) not in ours | _PACKAGING_TOOLS]

        remove = unlisted
    return _Selected(wheels, remove)


def install_lock(
    lock: str | os.PathLike[str],
    target: str | os.PathLike[str] | None = None,
    *,
    environment: Environment | None = None,
    extras: Collection[str] = (),
    groups: Collection[str] | None = None,
    sync: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    reinstall: bool = False,
    upgrade: bool = False,
    python: str | None = None,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    connections: int | None = None,
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
    workers: Workers = "threads",
    cancel: threading.Event | None = None,
    target_python: TargetPython | None = None,
) -> InstallResult[InstallReport | EnvironmentReport]:
    """Install what ``lock`` selects for the destination's interpreter (``extras``; ``groups``: the lock's
    default groups when None) into ``target`` or ``environment``; with ``sync``, also uninstall what it does
    not select (environments only). One transaction; resumable like every install. The other options are
    :func:`wheelstream.install`'s (``target_python``: the lock's markers and tags are that machine's too)."""
    selected = _selected(
        lock,
        environment,
        extras,
        groups,
        sync,
        python,
        target_python,
        on_warning,
        compile_bytecode=compile_bytecode,
    )
    return install_sources(
        selected.sources,
        target,
        environment=environment,
        cache_dir=cache_dir,
        hashes=selected.hashes,
        reinstall=reinstall,
        upgrade=upgrade,
        retries=retries,
        timeout=timeout,
        connections=connections,
        max_unpacked_size=max_unpacked_size,
        max_entries=max_entries,
        python=python if environment is None else None,
        link_mode=link_mode,
        compile_bytecode=compile_bytecode,
        progress=progress,
        on_warning=on_warning,
        jobs=jobs,
        workers=workers,
        cancel=cancel,
        verify=_verifier(selected.wheels, Cache.at(cache_dir)),
        remove=selected.remove,
        locked=selected.locked,
        target_python=target_python,
    )


def sync(
    lock: str | os.PathLike[str],
    environment: Environment,
    *,
    extras: Collection[str] = (),
    groups: Collection[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    reinstall: bool = False,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    jobs: int = DEFAULT_JOBS,
    retries: int = 5,
    timeout: float = 30.0,
    connections: int | None = None,
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
    workers: Workers = "threads",
    cancel: threading.Event | None = None,
) -> InstallResult[EnvironmentReport]:
    """Make ``environment`` hold exactly what ``lock`` selects (``uv pip sync``): install what is missing or
    different, uninstall what the lock does not list, leave what matches. The options are
    :func:`install_lock`'s that apply to an environment, spelt out so that a misspelt one is this function's
    ``TypeError`` (with ``**options`` it named ``install_lock``) and editors can offer them."""
    result = install_lock(
        lock,
        environment=environment,
        sync=True,
        extras=extras,
        groups=groups,
        cache_dir=cache_dir,
        reinstall=reinstall,
        link_mode=link_mode,
        compile_bytecode=compile_bytecode,
        jobs=jobs,
        retries=retries,
        timeout=timeout,
        connections=connections,
        max_unpacked_size=max_unpacked_size,
        max_entries=max_entries,
        progress=progress,
        on_warning=on_warning,
        workers=workers,
        cancel=cancel,
    )
    report = result.report
    assert isinstance(report, EnvironmentReport)  # an environment's install reports as one
    return InstallResult(result.wheels, report)


def plan_lock(
    lock: str | os.PathLike[str],
    target: str | os.PathLike[str] | None = None,
    *,
    environment: Environment | None = None,
    extras: Collection[str] = (),
    groups: Collection[str] | None = None,
    sync: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    reinstall: bool = False,
    upgrade: bool = False,
    python: str | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    on_warning: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    target_python: TargetPython | None = None,
) -> InstallPlan:
    """What :func:`install_lock` would do with the same arguments (with ``sync``, what :func:`sync` would),
    without doing it: see :func:`wheelstream.plan_install`. Its warnings include the lock's."""
    said: list[str] = []

    def warn(message: str) -> None:
        said.append(message)
        if on_warning is not None:
            on_warning(message)

    selected = _selected(lock, environment, extras, groups, sync, python, target_python, warn)
    plan = plan_sources(
        selected.sources,
        target,
        environment=environment,
        cache_dir=cache_dir,
        hashes=selected.hashes,
        upgrade=upgrade,
        reinstall=reinstall,
        retries=retries,
        timeout=timeout,
        python=python if environment is None else None,
        on_warning=warn,
        cancel=cancel,
        remove=selected.remove,
        locked=selected.locked,
        target_python=target_python,
    )
    return dataclasses.replace(plan, warnings=tuple(said))
