"""Install unpacked wheels into ``--target`` with the result ``pip install --no-deps --target`` gives.

How pip does ``--target`` (pip 26.3, verified by reading the source and by the equivalence tests)
------------------------------------------------------------------------------------------------------

``_internal/commands/install.py`` ``InstallCommand.run`` makes a temporary directory and installs every wheel
into it as a ``--home`` (``install_given_reqs(..., home=target_temp_dir)``). The scheme is
``_internal/locations/_sysconfig.py`` ``get_scheme(name, home=...)``: sysconfig's preferred *home* scheme
(POSIX ``posix_home``) with every base variable set to the home, so

    purelib = platlib = <home>/lib/python        scripts = <home>/bin        data = <home>
    headers = <home>/include/python/<name>       or, when pip runs in a virtualenv,
              <home>/include/site/pythonX.Y/<name>                  (X.Y of that interpreter)

``<name>`` is the requirement name, which for a wheel given by path or URL is the *canonical* name from the file
name (``_internal/req/constructors.py`` builds ``f"{wheel.name}=={wheel.version}"`` from ``parse_wheel_filename``).

``_internal/operations/install/wheel.py`` ``_install_wheel`` then writes, in archive order, root files into the
lib dir (purelib if ``Root-Is-Purelib: true``, else platlib), ``<x>.data/<key>/...`` into the scheme path of
``key``, and ``<x>.data/scripts/*`` last (minus setuptools' entry-point wrappers), fixing ``#!python`` lines;
generates console/gui launchers into ``scripts``; writes ``INSTALLER``, ``direct_url.json``, ``REQUESTED`` and
RECORD. RECORD paths are relative to the lib dir, so scripts appear as ``../../bin/x``; pip never rewrites them
after the move below, and neither do we (the rows match pip's byte for byte).

Finally ``InstallCommand._handle_target_dir`` moves the *items* of purelib, of platlib (if it differs) and of the
data dir (= the home) into the target, skipping data items that are a string prefix of a lib dir (``lib``).
So: lib contents → target root, ``.data/data/*`` → target root, scripts → ``target/bin``, headers →
``target/include/...``. For each item: if the target has it already, it is skipped with a warning, unless
``--upgrade``, which deletes the old item (never a symlink: those are skipped with a warning) and moves the new.

What we do differently (same result, safer)
--------------------------------------------

* Every check first, and one installed file, one RECORD row: a wheel that fails a check, or two of whose files
  would be one, writes nothing (:mod:`._checks` lists the checks and what pip does instead).
* The temporary home lives *inside the target* (``DIR/.wheelstream-tmp-*``) so the final moves are renames on
  one file system; the move plan is computed in full before the first rename, and :mod:`._commit` undoes a
  partial commit. pip's ``shutil.move`` loop can die halfway.
* Files come from a :class:`~wheelstream._staged.StagedWheel`: a tree this process claimed is moved, whole
  top-level directories at a time where it can be; the shared unpacked-wheel cache is copied or hardlinked and
  never written. ``INSTALLER`` says ``wheelstream``; bytecode records the final path (:mod:`._home`).
* Memory stays flat in the file count beyond the staged tree itself (a count bomb has a hundred thousand
  files): a root file's destination and RECORD path follow from its name and its row from its staged digest,
  so only ``.data`` files, files not installed and rows spelt otherwise are kept; RECORD is read, checked and
  written a block at a time (:mod:`._records`).

One transaction (:func:`install_staged_many`)
----------------------------------------------

Every wheel is checked (:func:`~._checks.check_wheel`) before the target is touched; then each is written
into the one temporary home (:func:`~._home.write_wheel`, through :class:`~._destination.HomeWriter`), pip's
``_handle_target_dir`` is replayed over the finished home (:func:`~._layout.plan_target`), and the plan is
renamed into the target (:func:`~._commit.commit`). Where a file lands in the home is the interpreter's home
scheme (:class:`~._interpreter.HomeScheme`, mapped by :mod:`._layout`); where a home path ends up in the target
is pip's ``--target`` rule, in :mod:`._layout` too (``target_item``, ``plan_target``), used by the reserved-name
check, by bytecode's recorded path (``_home._final_dir``) and here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._killpoints import reached
from .._staged import StagedWheel
from ..errors import DiskError, UsageError
from ._checks import (
    CheckedWheel,
    Checks,
    Warnings,
    WheelToInstall,
    install_order,
)
from ._commit import Move, target_moves
from ._destination import HomeWriter, LinkMode
from ._home import write_wheel
from ._interpreter import Interpreter, probe_interpreter
from ._layout import TargetPlan, plan_target
from ._ownership import destination_lock
from ._recovery import finish_interrupted
from ._transaction import Transaction, cannot_install

__all__ = ["InstallReport", "check_target", "install_staged", "install_staged_many"]

_NAMED = 10  # items a warning names before it counts the rest


@dataclass(frozen=True, slots=True)
class InstallReport:
    """What an install did to the target."""

    installed: tuple[str, ...]  # top-level items moved into the target
    replaced: tuple[str, ...]  # of those, items that replaced existing ones (upgrade)
    skipped: tuple[str, ...]  # top-level items left alone because the target had them
    files_written: int  # files created in the install tree (moved, copied, linked or generated)
    files_linked: int  # of those, hardlinks to the staged tree
    bytes_written: int  # bytes copied or generated (moves and hardlinks cost none)
    warnings: tuple[str, ...]
    files_moved: int = 0  # of ``files_written``, files renamed out of a tree this process owned


def check_target(target: str | os.PathLike[str]) -> None:
    """A ``--target`` that exists must be a directory (pip refuses the rest before downloading, and so does
    ``install`` now, before anything is fetched); a symlink to nothing is named as that, a target that cannot
    be made or written (under a file, on a read-only mount) too — the whole wheel was downloaded first."""
    if not os.fspath(target):
        raise UsageError("target path is empty (it would be the current directory)")
    path = Path(os.path.abspath(target))
    if path.is_symlink() and not path.exists():
        raise UsageError(f"target path is a symlink to nothing: {path} -> {os.readlink(path)}")
    if os.path.lexists(path) and not path.is_dir():
        raise UsageError(f"target path exists but is not a directory: {path}")
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent  # the directory the target would be made in
    if not existing.is_dir():
        raise UsageError(f"target path cannot be made: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):  # a read-only mount says so here too, even to root
        raise DiskError(f"cannot install into {path}: {existing} cannot be written; nothing was fetched")


def _warn_about_dropped(
    dropped: Sequence[Path], home: Path, checked: Sequence[CheckedWheel], warn: Warnings
) -> None:
    """One warning per wheel for the files pip's ``--target`` loop never moves (``.data/data/lib/...`` lands
    under ``lib``, which pip takes for its own lib directory): tbb has 43 of them."""
    owners = {p.dest: c.item.staged.filename for c in checked for p in c.special.values()}
    by_wheel: dict[str, list[str]] = {}
    for lost in dropped:
        rel = lost.relative_to(home).as_posix()
        by_wheel.setdefault(owners.get(rel, "a wheel of this install"), []).append(rel)
    for wheel, paths in by_wheel.items():
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        warn(f"{wheel}: {len(paths)} file(s) not installed (pip --target leaves them behind too): {shown}")


def install_staged_many(
    wheels: Sequence[WheelToInstall],
    target: Path,
    *,
    interpreter: Interpreter | None = None,
    upgrade: bool = False,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    ignore_tags: bool = False,
    on_warning: Callable[[str], None] | None = None,
    checks: Checks | None = None,
    cancelled: Callable[[], bool] | None = None,
    _move: Move | None = None,
) -> InstallReport:
    """Install several wheels in one transaction, as one ``pip install --target`` command would.

    They share one temporary home, so two wheels that both ship scripts share ``bin/`` exactly as in pip
    (installing them one by one would skip the second ``bin/`` as an existing item). ``interpreter``: the one
    the install is for (:func:`probe_interpreter`; None: the running one). ``checks``: the
    transaction's, some perhaps run already (made for that interpreter and ``ignore_tags``; its
    warnings go where its ``Warnings`` sends them, not to ``on_warning``). ``cancelled()`` true while the
    target's lock is awaited, or once it is taken, ends the call before anything changes (a library caller's
    ``cancel``). ``_move`` is a test seam for the final renames.
    """
    if link_mode not in ("move", "copy", "hardlink"):
        raise UsageError(f"unknown link mode {link_mode!r} (use 'move', 'copy' or 'hardlink')")
    interpreter = interpreter if interpreter is not None else probe_interpreter(None)
    if checks is None:
        checks = Checks(interpreter, ignore_tags, Warnings(on_warning))
    warn = checks.warn
    checked = checks.all(wheels)

    target = Path(os.path.abspath(target))
    check_target(target)
    with destination_lock(target, warn, cancelled):  # one command at a time changes a target (recovery too)
        plan, tx, writer = _install_locked(
            checked, target, interpreter, link_mode, compile_bytecode, upgrade, warn, _move
        )
    tx.deliver()  # Ctrl-C or SIGTERM held during the renames: their handlers run now
    return InstallReport(
        installed=tuple(plan.moves),
        replaced=tuple(sorted(plan.replace)),
        skipped=tuple(plan.skipped),
        files_written=writer.files_written,
        files_linked=writer.linked,
        bytes_written=writer.bytes_written,
        files_moved=writer.moved,
        warnings=tuple(warn.seen),
    )


def _install_locked(
    checked: Sequence[CheckedWheel],
    target: Path,
    interpreter: Interpreter,
    link_mode: LinkMode,
    compile_bytecode: bool,
    upgrade: bool,
    warn: Warnings,
    _move: Move | None,
) -> tuple[TargetPlan, Transaction, HomeWriter]:
    """Finish what a killed install left, write the home, commit: all under the target's lock."""
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        finished = finish_interrupted(target, warn)
    except OSError as exc:
        raise cannot_install(exc, target, "target") from exc
    if finished.moved or finished.removed:
        names = [*finished.moved, *(f"{name} (removed)" for name in finished.removed)]
        # a few names, then a count: a killed upgrade of 20,000 top-level items made a 203 KB warning line
        done = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")
        warn(f"an earlier install into {target} was killed halfway; finished it: {done}")

    try:
        with Transaction(target, "target") as tx:
            writer = HomeWriter(tx.home, link_mode)
            for wheel in install_order(checked):  # pip's: the same file wins where two ship one
                try:
                    write_wheel(wheel, writer, interpreter, target, compile_bytecode)
                except OSError as exc:
                    raise tx.cannot(exc, wheel.item.staged.filename) from exc
                writer.shared = True  # the next wheel's files may land on this one's
            reached("install.home-written")
            plan = plan_target(writer.home, interpreter.scheme, target, upgrade, warn)
            _warn_about_dropped(plan.dropped, writer.home, checked, warn)
            tx.commit(target_moves(plan), _move)
            tx.retire(warn)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                target.rmdir()
        raise
    return plan, tx, writer


def install_staged(
    staged: StagedWheel,
    target: Path,
    *,
    python: str | None = None,
    upgrade: bool = False,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    ignore_tags: bool = False,
    direct_url: str | None = None,
    url_hash: str | None = None,
    on_warning: Callable[[str], None] | None = None,
    _move: Move | None = None,
) -> InstallReport:
    """Install one unpacked wheel into ``target``: checks, build in a temporary home, atomic moves.

    ``python`` is the interpreter the install is for (tags, shebangs, header path, bytecode); ``None`` means
    the running one. ``direct_url`` is the URL or path the wheel came from (written to ``direct_url.json``,
    credentials removed); ``url_hash`` the sha256 hex of the wheel file. Warnings (skipped items, ...) go to
    ``on_warning`` as they happen and are listed in the report.
    """
    return install_staged_many(
        [WheelToInstall(staged, direct_url, url_hash)],
        target,
        interpreter=probe_interpreter(python),
        upgrade=upgrade,
        link_mode=link_mode,
        compile_bytecode=compile_bytecode,
        ignore_tags=ignore_tags,
        on_warning=on_warning,
        _move=_move,
    )
