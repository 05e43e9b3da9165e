"""Install into an environment (a venv, a prefix, an interpreter's own) and remove from it, in one transaction.

pip installs a wheel straight into the scheme paths and, when another version is there, uninstalls it first
(stashing its files, committing the stash at the end). Here the order is safer and the result the same:

1. every wheel is checked, and every distribution it replaces is read (its RECORD: :mod:`._installed`), before
   anything is written — a replaced distribution without a RECORD fails the install whole;
2. the wheels are written into one temporary home *inside the environment's root*, laid out with the
   environment's own scheme relative to that root (:class:`~._environment.Environment`), so RECORD paths,
   launchers and bytecode are already what they will be;
3. the plan: the home is merged into the root — a path the root lacks moves in whole (``torch/`` is one
   rename), an existing directory is descended into, an existing file is set aside and replaced — then every
   file of a replaced distribution that no new file covers is set aside;
4. :func:`~._commit.commit_moves` runs the plan (undone whole on any error; a killed one finished by the next
   command, exactly as for ``--target``); directories the replaced files leave empty are removed; the
   temporary home, holding everything set aside, is retired.

Uninstalling is steps 1, 3 and 4 with nothing to write. The same name and version already installed is skipped
("already satisfied") unless ``reinstall``; files RECORD does not list are never touched.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TypeAlias

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .._killpoints import reached
from ..errors import InstallConflict, UsageError, WheelMetadataError, WheelstreamError
from ._checks import (
    CheckedWheel,
    Checks,
    Warnings,
    WheelToInstall,
    install_order,
)
from ._commit import (
    Move,
    PlannedMove,
)
from ._destination import HomeWriter, LinkMode
from ._environment import Environment, EnvironmentReport
from ._home import write_wheel
from ._installed import Installed, Removal, installed_distributions, real_relative, removal
from ._ownership import destination_lock
from ._recovery import finish_interrupted, unfinished
from ._transaction import Transaction, cannot_install

__all__ = ["Removals", "install_into", "installed_now", "same_version", "uninstall"]

# What a transaction uninstalls besides the versions it replaces: names, or a function of what is installed
# (evaluated under the environment's lock: ``install_into``).
Removals: TypeAlias = "Sequence[str] | Callable[[list[Installed]], Sequence[str]]"


def same_version(installed: str, wanted: str) -> bool:
    """PEP 440 equality (``1.0`` is ``1.0.0``); plain text when either does not parse."""
    try:
        return Version(installed) == Version(wanted)
    except InvalidVersion:
        return installed == wanted


def _merge(home: Path, root: Path, removed: set[str]) -> tuple[list[PlannedMove], list[str]]:
    """The moves that put the home's tree into ``root`` (step 3 of the module docstring), and the directories
    they set aside whole: a replaced distribution's directory where the new version has a file (real-path
    relative, as ``removed``'s paths are: :func:`~._installed.real_relative`)."""
    real_root = os.path.realpath(root)
    moves: list[PlannedMove] = []
    replaced_dirs: list[str] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        for name in sorted(os.listdir(home / rel) if rel else os.listdir(home), reverse=True):
            path = f"{rel}/{name}" if rel else name
            source, dest = home / path, root / path
            if not os.path.lexists(dest):
                moves.append(PlannedMove(path, source, False))
            elif source.is_dir() and not source.is_symlink():
                if dest.is_dir():  # merge into it (a symlinked directory such as lib64 too, as pip does)
                    pending.append(path)
                elif real_relative(str(dest), real_root) in removed:
                    moves.append(PlannedMove(path, source, True))  # a replaced file becomes a directory
                else:
                    raise _InTheWay(f"{dest} is a file where the install needs a directory", path)
            elif dest.is_dir() and not dest.is_symlink():
                folder = real_relative(str(dest), real_root)
                below = list(_below(real_root, folder))
                if not below or not all(each in removed for each in below):
                    raise _InTheWay(f"{dest} is a directory where the install puts a file", path)
                moves.append(PlannedMove(path, source, True))  # set aside whole: all it holds is replaced
                replaced_dirs.append(folder)
            else:
                moves.append(PlannedMove(path, source, True))
    moves.reverse()
    return moves, replaced_dirs


class _InTheWay(InstallConflict):
    """Something in the environment where the install puts ``path`` (root-relative); ``_transaction`` names the
    wheel that puts it there."""

    def __init__(self, cause: str, path: str) -> None:
        super().__init__(cause)
        self.path = path


def _wheel_placing(checked: Sequence[CheckedWheel], path: str, scripts: str) -> tuple[str, str] | None:
    """The file name of the wheel that installs ``path`` (root-relative), or a file below it, and the entry
    that goes there (a message that names the wheel names the entry too): an archive file, or a console
    script's launcher in ``scripts``, whose entry is ``entry_points.txt``."""
    for wheel in checked:
        for member, dest, _script in wheel.placed():
            if dest == path or dest.startswith(path + "/"):
                return wheel.item.staged.filename, member
        for launcher in wheel.launchers:
            if posixpath.normpath(posixpath.join(scripts, launcher.name)) == path:
                return wheel.item.staged.filename, f"{wheel.info.dist_info}/entry_points.txt"
    return None


def _below(real_root: str, folder: str) -> Iterator[str]:
    """Every file and symlink below ``folder`` (real-root-relative), as paths relative to ``real_root``."""
    return (
        os.path.relpath(os.path.join(top, name), real_root).replace(os.sep, "/")
        for top, dirs, names in os.walk(os.path.join(real_root, folder))
        for name in (*names, *(d for d in dirs if os.path.islink(os.path.join(top, d))))
    )


def _kept_directories(env: Environment) -> set[str]:
    """The scheme's directories and every parent of theirs, root-relative: never removed, even when emptied."""
    scheme = env.interpreter.scheme
    keep = {""}
    for path in (scheme.purelib, scheme.platlib, scheme.scripts, scheme.data, scheme.include):
        parts = [] if path in ("", ".") else path.split("/")
        keep.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return keep


def _whole_directories(real_root: str, removed: set[str], incoming: set[str], keep: set[str]) -> list[str]:
    """What setting ``removed`` aside takes, as pip's ``compress_for_rename`` has it: the directory a removed
    file is in goes whole — one rename, and nothing left empty, after a kill too (a recovery sets aside the same
    paths) — when every file below it is being removed and nothing new comes into it; every other file goes
    alone. Only the files' own directories are candidates (pip's rule: a parent that merely ends up empty, such as
    ``share/``, stays), never ``keep``'s (the scheme's directories and their parents)."""
    # Sets of whole paths and their ancestors, not scans of one list per folder: both were quadratic in the
    # files (an upgrade of 40,000 files took a minute of CPU).
    entered = {*incoming, *(folder for path in incoming for folder in _ancestors(path))}
    chosen: set[str] = set()
    for folder in sorted({path.rpartition("/")[0] for path in removed} - keep, key=lambda d: (len(d), d)):
        if not folder or folder in entered or not chosen.isdisjoint(_ancestors(folder)):
            continue
        if all(path in removed for path in _below(real_root, folder)):
            chosen.add(folder)
    return sorted([*chosen, *(path for path in removed if chosen.isdisjoint(_ancestors(path)))])


def _ancestors(path: str) -> Iterator[str]:
    """``a/b/c`` → ``a/b``, ``a``."""
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def _transaction(
    env: Environment,
    checked: Sequence[CheckedWheel],
    removals: Sequence[Removal],
    link_mode: LinkMode,
    compile_bytecode: bool,
    warn: Warnings,
    move: Move | None,
) -> tuple[HomeWriter, int]:
    """Steps 2-4; returns the writer and the number of files removed."""
    root = env.root
    with Transaction(root, "environment", uninstall=not checked) as tx:
        writer = HomeWriter(tx.home, link_mode)
        for wheel in install_order(checked):  # pip's: the same file wins where two ship one
            try:
                write_wheel(wheel, writer, env.interpreter, root, compile_bytecode, mirror=True)
            except OSError as exc:
                raise tx.cannot(exc, wheel.item.staged.filename) from exc
            writer.shared = True
        reached("install.home-written")
        # Both sides by real path: a removed file found through ``lib`` is the one a move writes through ``lib64``.
        real_root = os.path.realpath(root)
        removed = {path for r in removals for path in r.files}
        try:
            moves, replaced_dirs = _merge(writer.home, root, removed)
        except _InTheWay as conflict:
            owner = _wheel_placing(checked, conflict.path, env.interpreter.scheme.scripts)
            if owner is not None:
                conflict.entry = owner[1]
                conflict.with_wheel(owner[0])
            raise
        incoming = {real_relative(str(root / m.dest), real_root) for m in moves}
        keep = {real_relative(str(root / d), real_root) if d else "" for d in _kept_directories(env)}
        inside = tuple(folder + "/" for folder in replaced_dirs)  # set aside with their directory already
        left = {path for path in removed - incoming if not path.startswith(inside)}
        gone = _whole_directories(real_root, left, incoming, keep)
        moves.extend(PlannedMove(path, None, True) for path in gone)
        tx.commit(moves, move)
        tx.retire(warn)
    tx.deliver()
    return writer, len(removed)


def environment_lock(
    env: Environment, warn: Callable[[str], None], cancelled: Callable[[], bool] | None = None
) -> contextlib.AbstractContextManager[None]:
    """The environment's :func:`~._ownership.destination_lock`, held by every command that changes it."""
    return destination_lock(env.root, warn, cancelled)


def installed_now(env: Environment, on_warning: Callable[[str], None] | None = None) -> dict[str, Installed]:
    """What ``env`` holds, by key: what an install compares its wheels with before downloading. Where a command
    left its work unfinished (killed in its commit, or running now), that is finished first, under the
    environment's lock, so that a version it was putting in place is not taken for the one still there; else
    no lock is taken (a download does not wait for another command's commit)."""
    if not unfinished(env.root):
        return {dist.key: dist for dist in installed_distributions(env)}
    warn = Warnings(on_warning)
    with environment_lock(env, warn):
        return _prepare(env, warn)


def _prepare(env: Environment, warn: Warnings, *, create: bool = True) -> dict[str, Installed]:
    """The root made (an uninstall, ``create=False``, makes nothing: a root that is not there holds nothing) and
    what a killed command left there finished; the distributions installed."""
    if not create and not env.root.is_dir():
        return {}
    try:
        env.root.mkdir(parents=True, exist_ok=True)
        finished = finish_interrupted(env.root, warn)
    except OSError as exc:
        raise cannot_install(exc, env.root, "environment") from exc
    if finished.moved or finished.removed:
        done = [
            f"{len(paths)} path(s) {how}"
            for paths, how in ((finished.moved, "moved in"), (finished.removed, "removed"))
            if paths
        ]
        warn(f"an earlier command in {env.root} was killed halfway; finished it: {', '.join(done)}")
    return {dist.key: dist for dist in installed_distributions(env)}


def _another_archive(old: Installed, item: WheelToInstall) -> bool:
    """A lock's archive, and ``old`` is not its install."""
    return item.direct_url is not None and not old.installed_from(item.direct_url, item.url_hash)


def install_into(
    wheels: Sequence[WheelToInstall],
    env: Environment,
    *,
    reinstall: bool = False,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    ignore_tags: bool = False,
    remove: Removals = (),
    on_warning: Callable[[str], None] | None = None,
    checks: Checks | None = None,
    cancelled: Callable[[], bool] | None = None,
    locked: bool = False,
    _move: Move | None = None,
) -> EnvironmentReport:
    """Install wheels into ``env`` as one ``pip install --no-deps`` would, replacing other versions of them;
    in the same transaction, uninstall the distributions named in ``remove`` (a lock's sync). ``remove`` may
    instead be a function of the distributions installed, which then names them: it is called under the
    environment's lock, after an interrupted command's install was finished, so a sync sees what is really
    there. ``checks`` as for :func:`~._core.install_staged_many` (made for ``env``'s interpreter), and
    ``cancelled`` too. ``locked``: the wheels are a lock's, and one with a ``direct_url`` (its ``archive``)
    replaces a same-version install that is not of that archive (``Installed.installed_from``: uv's rule)."""
    if link_mode not in ("move", "copy", "hardlink"):
        raise UsageError(f"unknown link mode {link_mode!r} (use 'move', 'copy' or 'hardlink')")
    if checks is None:
        checks = Checks(env.interpreter, ignore_tags, Warnings(on_warning))
    warn = checks.warn
    checked = checks.all(wheels)
    for wheel in checked:
        _refuse_interpreter_names(wheel, env)
    with environment_lock(env, warn, cancelled):
        present = _prepare(env, warn)
        writing, removals, skipped = [], [], []
        for wheel in checked:
            old = present.get(canonicalize_name(wheel.info.name))
            if (
                old is not None
                and same_version(old.version, str(wheel.info.version))
                and not reinstall
                and not (wheel.item.direct_url is not None and old.editable)
                and not (locked and _another_archive(old, wheel.item))
            ):
                skipped.append(f"{old.name} {old.version}")
                continue
            if old is not None:
                try:
                    removals.append(removal(env, old, warn))
                except WheelstreamError as exc:
                    exc.with_wheel(wheel.item.staged.filename)
                    raise
            writing.append(wheel)
        for name in remove(list(present.values())) if callable(remove) else remove:
            dist = present.get(canonicalize_name(name))
            if dist is not None and all(r.dist.key != dist.key for r in removals):
                removals.append(removal(env, dist, warn))
        writer: HomeWriter | None = None
        files_removed = 0
        if writing or removals:
            writer, files_removed = _transaction(
                env, writing, removals, link_mode, compile_bytecode, warn, _move
            )
    return EnvironmentReport(
        root=env.root,
        installed=tuple(f"{w.info.name} {w.info.version}" for w in writing),
        removed=tuple(f"{r.dist.name} {r.dist.version}" for r in removals),
        skipped=tuple(skipped),
        files_written=writer.files_written if writer else 0,
        files_removed=files_removed,
        warnings=tuple(warn.seen),
        files_linked=writer.linked if writer else 0,
        files_moved=writer.moved if writer else 0,
        bytes_written=writer.bytes_written if writer else 0,
    )


def _refuse_interpreter_names(wheel: CheckedWheel, env: Environment) -> None:
    """An environment's scripts directory holds its interpreter: a console script or a file installed there
    (``.data/scripts``, or ``.data/data/bin`` in a venv) named ``python`` (``python3``, ``pythonX.Y``,
    ``pythonw``, or the interpreter's own name) would replace it, a launcher would run itself, and the
    environment would be unusable. pip installs such a wheel; uv refuses it; so does this, before anything is
    touched (a ``--target`` directory has no interpreter: there the wheel installs as with pip)."""
    scripts = env.interpreter.scheme.scripts
    major, minor = env.interpreter.version
    reserved = {"python", "pythonw", f"python{major}", f"python{major}.{minor}"}
    executable = Path(env.interpreter.executable)
    if executable.parent.resolve() == (env.root / scripts).resolve():
        reserved.add(executable.name)
    reserved |= {f"{name}.exe" for name in reserved}
    named: list[tuple[str, str | None]] = [(launcher.name, None) for launcher in wheel.launchers]
    named += [
        (posixpath.basename(dest), member)
        for member, dest, _script in wheel.placed()
        if posixpath.dirname(dest) == scripts  # a .data/scripts file, or a .data/data/bin one
    ]
    for name, member in named:
        if name.lower() in reserved:
            what = "it" if member else f"the entry point {name!r}"
            raise WheelMetadataError(
                f"{what} would replace the environment's interpreter ({scripts}/{name})",
                wheel=wheel.item.staged.filename,
                entry=member or f"{wheel.info.dist_info}/entry_points.txt",
            )


def uninstall(
    names: Sequence[str] | str,
    env: Environment,
    *,
    on_warning: Callable[[str], None] | None = None,
    keep: Collection[str] = (),
) -> EnvironmentReport:
    """Remove the named distributions from ``env`` in one transaction; a name not installed is a warning
    (pip's "Skipping X as it is not installed"), one without a RECORD an error before anything is touched.
    One string is one name, as one source is to ``install`` (a ``str`` is a sequence of its letters: "six"
    removed ``s`` and ``x``). A name is read as a requirement (``six==1.16``, ``six[extra]``: six). ``keep``
    names distributions left in place even when named, with a warning: the command keeps those it runs from."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(env, Environment):
        raise UsageError(
            f"env must be an Environment (wheelstream.find_environment), not {type(env).__name__}"
        )
    keys = [_requirement_name(name) for name in names]  # every one read before anything is touched
    kept = {canonicalize_name(name) for name in keep}
    warn = Warnings(on_warning)
    with environment_lock(env, warn):
        present = _prepare(env, warn, create=False)
        removals: list[Removal] = []
        for name, key in zip(names, keys, strict=True):
            dist = present.get(key)
            if dist is None:
                warn(f"skipping {name}: it is not installed in {env.root}")
                continue
            if key in kept:
                warn(f"not removed, as wheelstream runs from it: {dist.name} (pip uninstall removes it)")
                continue
            if all(r.dist.key != dist.key for r in removals):
                removals.append(removal(env, dist, warn))
        files_removed = 0
        if removals:
            _writer, files_removed = _transaction(env, [], removals, "move", False, warn, None)
    return EnvironmentReport(
        root=env.root,
        installed=(),
        removed=tuple(f"{r.dist.name} {r.dist.version}" for r in removals),
        skipped=(),
        files_written=0,
        files_removed=files_removed,
        warnings=tuple(warn.seen),
    )


def _requirement_name(text: str) -> str:
    """The distribution an argument names, read as pip uninstall reads it, as a requirement: ``up==1.0``,
    ``up[extra]``, ``Up>=1`` and ``up @ URL`` are all ``up`` (nothing but the name is looked at). Taken as a
    bare name, each was "not installed" and the command went on, exit 0, leaving ``up`` in place."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise UsageError(
            f"cannot uninstall {text!r}: not a distribution name or requirement ({reason})"
        ) from None
