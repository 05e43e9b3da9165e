"""The only step that touches the target: move finished top-level items in, all or nothing.

Everything before this happened in a temporary directory *inside* the target, so each move is one
``rename(2)`` on one file system: atomic per item. Across items we keep a journal of the renames made; on any
exception — including ``KeyboardInterrupt`` — they are undone in reverse order, so the target ends as it was.
An item being replaced (``--upgrade``) is first renamed aside into the temporary directory, then the new item
is renamed in; the old one is deleted only after every move succeeded.

Signals. SIGINT and SIGTERM (in the main thread; the CLI turns SIGTERM into Ctrl-C) arriving while we move or
roll back are held until we are done, so neither the moves nor the rollback can be cut halfway. ``commit``
returns the signals it held; the caller tidies up, then ``deliver``s them to the handlers that were in place
(Ctrl-C then raises ``KeyboardInterrupt``, which the caller reports as an interrupt after a finished install).
Tests inject failures through ``move``.

A killed process (kill -9, the OOM killer) cannot undo anything; the next install finishes or removes what it
left (:mod:`._recovery`). For that, this module leaves every temporary home in a state that can be judged:

* the temporary directory ``DIR/.wheelstream-tmp-*`` is locked by its process (``.owner.lock``, ``flock``)
  from the moment it exists, and the kernel drops the lock when the process dies; the lock file holds the
  directory's ownership token (:mod:`._ownership`), so a look-alike a wheel planted is never taken for ours;
  the owner signs the lock file while holding the lock and holds it until the directory is retired;
* before the first rename ``commit`` writes its plan (``commit.json``: every move, in order; written to a
  temporary name and renamed, so it is whole or absent);
* a temporary directory is deleted only after being renamed to ``.wheelstream-gone-*``: never half deleted
  under a name recovery would take; its lock file (with the token) is deleted last, so a ``gone`` directory
  a kill left behind still proves whose it is. What refuses deletion (an immutable file, a busy mount point)
  is named in a warning by the command that retired the directory (:func:`undeletable`), and left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, and no recovery
    fcntl = None  # type: ignore[assignment]

from .._interrupts import INTERRUPTS
from .._killpoints import reached
from ._layout import TargetPlan
from ._ownership import home_token, token_matches

__all__ = [
    "GONE_PREFIX",
    "OWNER",
    "PLAN",
    "RESERVED_PREFIX",
    "TMP_PREFIX",
    "Move",
    "PlannedMove",
    "UnfinishedCommit",
    "commit",
    "commit_moves",
    "delete_lock_last",
    "deliver",
    "fingerprint",
    "hold_flock",
    "is_ours",
    "make_parent",
    "own_home",
    "remove_empty_tree",
    "retire",
    "undeletable",
]

RESERVED_PREFIX = (
    ".wheelstream-"  # no wheel may install a top-level item named so (see _checks.refuse_reserved_names)
)
TMP_PREFIX = RESERVED_PREFIX + "tmp-"
GONE_PREFIX = RESERVED_PREFIX + "gone-"  # a temporary directory on its way out: nothing in it is needed
PLAN = "commit.json"
OWNER = ".owner.lock"

Move = Callable[[Path, Path], None]


def _rename(src: Path, dest: Path) -> None:
    os.rename(src, dest)


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT, SIGTERM and SIGHUP for the duration (main thread only, and only those not ignored); the
    list yielded gets the signals that came, for ``deliver``. (SIGHUP, a closed terminal or SSH session, killed
    the process mid-commit, the target half old, half new until the next command.)"""
    caught: list[int] = []
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():

        def hold(signum: int, frame: FrameType | None) -> None:
            caught.append(signum)

        with contextlib.suppress(ValueError):  # not the main interpreter: nothing can be held
            for signum in INTERRUPTS:
                if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                    previous[signum] = signal.signal(signum, hold)
    try:
        yield caught
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)  # type: ignore[arg-type]


# Of the signals a commit holds (``_interrupts``), the two that end a process by default (``kill``, a hang-up).
_ENDING = INTERRUPTS - {signal.SIGINT}


def deliver(signals: list[int]) -> None:
    """Deliver signals ``commit`` held to the handlers in place now (Ctrl-C: ``KeyboardInterrupt``; a default
    SIGTERM or SIGHUP ends the process). Those go first, and every one is delivered even when a handler
    raises."""
    pending = sorted(set(signals), key=lambda signum: signum not in _ENDING)
    if pending:
        try:
            signal.raise_signal(pending[0])
        finally:
            deliver(pending[1:])


class UnfinishedCommit(Exception):
    """A commit failed and undoing it failed too (a file system gone read-only, say): the target holds part
    of the new items; the temporary directory keeps the rest and the plan, for ``finish_interrupted``."""


def hold_flock(path: Path, *, create: bool) -> int | None:
    """A descriptor of ``path`` holding its ``flock``; None when another process holds it, or (unless
    ``create``) when there is no such file."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        # Waiting is for our own fresh directory only: a recovery may hold its lock file a moment, to look.
        fcntl.flock(fd, fcntl.LOCK_EX if create else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def own_home(tmp: Path) -> int | None:
    """Lock the temporary directory ``tmp`` (just made) for this process, and sign it as ours: while this
    process lives ``finish_interrupted`` in another leaves it alone; once it is dead, the token lets recovery
    tell it from a wheel's look-alike. Close the descriptor returned once ``tmp`` is retired."""
    fd = hold_flock(tmp / OWNER, create=True)
    if fd is not None:
        try:
            os.pwrite(fd, home_token(_suffix(tmp.name)), 0)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _suffix(name: str) -> str:
    """What a temporary home's name keeps through ``retire``: ``tmp-X`` and ``gone-X`` share ``X``."""
    return name.removeprefix(TMP_PREFIX).removeprefix(GONE_PREFIX)


def is_ours(tmp: Path, fd: int) -> bool:
    """Whether the locked ``.owner.lock`` behind ``fd`` is still the one in ``tmp`` and carries its token."""
    if os.fstat(fd).st_ino != os.stat(tmp / OWNER).st_ino:
        return False  # the directory changed under us (retired and replaced): look again next time
    return token_matches(_suffix(tmp.name), os.pread(fd, 256, 0))


def retire(tmp: Path) -> bool:
    """Delete a temporary directory of ours, even through Ctrl-C (after an upgrade it holds the replaced items,
    which can take a second); return whether a Ctrl-C came. It is renamed out of ``TMP_PREFIX``'s names
    first, so no recovery can take it while it is half deleted."""
    gone = tmp.with_name(GONE_PREFIX + _suffix(tmp.name))
    interrupted = False
    while True:
        try:
            if os.path.lexists(tmp):
                try:
                    os.rename(tmp, gone)
                except OSError:
                    gone = tmp  # cannot rename (a read-only file system?): delete it where it is
            delete_lock_last(gone)
            return interrupted
        except KeyboardInterrupt:
            interrupted = True


def undeletable(tmp: Path) -> str | None:
    """What keeps a retired ``tmp`` (under its ``gone`` name, or its own) from being gone, as "PATH: why" — the
    first entry there that refuses to be deleted (an immutable file, a directory without write permission), or
    a mount point (not entered here) — or None when nothing of it is left. Only what :func:`retire` had to leave
    is looked at; a file is tried once more, a directory removed only once it is empty."""
    for path in (tmp.with_name(GONE_PREFIX + _suffix(tmp.name)), tmp):
        try:
            top = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(top.st_mode):
            continue
        refused = _first_refusal(path, top.st_dev)
        if refused is not None:
            return refused
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, OWNER))
            os.rmdir(path)
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}"
    return None


def _first_refusal(directory: str | os.PathLike[str], device: int) -> str | None:
    """The first entry under ``directory`` (on ``device``) whose deletion fails, said as "PATH: why"."""
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if info.st_dev != device:
                    return f"{entry.path}: a mount point (another file system)"
                found = _first_refusal(entry.path, device)
                if found is not None:
                    return found
                os.rmdir(entry.path)
            elif entry.name != OWNER:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"{entry.path}: {exc.strerror or exc}"
    return None


def delete_lock_last(path: Path) -> None:
    """Delete a temporary directory with its lock file last: until the very end it still proves whose it is.
    A few passes, in case something appeared in it meanwhile (nothing should: it no longer has a live name)."""
    for _ in range(3):
        try:
            entries = [entry for entry in os.scandir(path) if entry.name != OWNER]
        except OSError:
            break
        if not entries:
            break
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.unlink(path / OWNER)
    with contextlib.suppress(OSError):
        os.rmdir(path)


class PlannedMove(NamedTuple):
    """One step of a commit: ``dest`` (``/``-separated, relative to the target or environment root) is set
    aside into ``tmp/old`` first when ``replace``, then ``source`` (in ``tmp/home``) is renamed to it; with no
    ``source`` the step only sets ``dest`` aside (a file of a distribution being replaced or uninstalled)."""

    dest: str
    source: Path | None
    replace: bool


def target_moves(plan: TargetPlan) -> list[PlannedMove]:
    """A ``--target`` plan's moves: top-level items, each replaced whole."""
    return [PlannedMove(name, source, name in plan.replace) for name, source in plan.moves.items()]


def commit(plan: TargetPlan, target: Path, tmp: Path, move: Move | None = None) -> list[int]:
    """Apply a ``--target`` plan (see :func:`commit_moves`)."""
    return commit_moves(target_moves(plan), target, tmp, move)


def commit_moves(moves: list[PlannedMove], root: Path, tmp: Path, move: Move | None = None) -> list[int]:
    """Apply ``moves`` in order: set replaced paths aside (into ``tmp/old``), rename new ones in; undo
    everything on any exception. Returns the signals held while the moves ran (see ``deliver``)."""
    do_move = move or _rename
    aside = tmp / "old"
    journal: list[tuple[Path, Path]] = []  # (from, to) of each rename done, for undo
    steps = [
        [
            step.dest,
            None if step.source is None else os.path.relpath(step.source, tmp),
            step.replace,
            fingerprint(root / step.dest) if step.replace else None,
        ]
        for step in moves
    ]
    (tmp / (PLAN + ".new")).write_text(json.dumps({"version": 3, "moves": steps}), encoding="utf-8")
    os.rename(tmp / (PLAN + ".new"), tmp / PLAN)  # whole or absent: a kill while writing leaves no plan
    error: BaseException | None = None
    with _signals_held() as caught:
        try:
            for name, source, replace in moves:
                dest = root / name
                if replace:
                    make_parent(aside / name, aside)
                    reached("commit.rename")
                    do_move(dest, aside / name)
                    journal.append((dest, aside / name))
                if source is None:
                    continue
                reached("commit.rename")
                do_move(source, dest)
                journal.append((source, dest))
        except BaseException as failure:  # noqa: BLE001 - undone, then raised again below
            error = _undo(journal, failure, tmp)
    if error is not None:
        try:
            deliver(caught)  # signals held during the rollback: their handlers run now that it is done
        except BaseException:
            if isinstance(error, UnfinishedCommit):
                raise error  # noqa: B904 - the caller must keep the directory, whatever the interrupt says
            raise
        raise error
    return caught


def fingerprint(path: Path) -> list[int] | None:
    """What a replaced item is, as a plan records it: a recovery moves the new item in only over the very item
    the install meant to replace (``_recovery``); None when nothing is there. A file's inode and modification
    time (an inode is reused once freed); a directory's inode alone: its time moves whenever Python writes
    ``__pycache__`` into it, which an import between the kill and the recovery may do."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return [info.st_ino] if stat.S_ISDIR(info.st_mode) else [info.st_ino, info.st_mtime_ns]


def make_parent(path: Path, base: Path) -> None:
    """Create ``path``'s parent directories down from ``base`` (set-aside paths of nested destinations)."""
    if path.parent != base:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        base.mkdir(exist_ok=True)


def _undo(journal: list[tuple[Path, Path]], failure: BaseException, tmp: Path) -> BaseException:
    """Undo the renames in ``journal``; return what the commit raises: ``failure``, or ``UnfinishedCommit``
    when an undo fails too (the plan then stays, for the next install to finish)."""
    try:
        for origin, moved_to in reversed(journal):
            os.rename(moved_to, origin)
    except OSError as undo:
        unfinished = UnfinishedCommit(
            f"{failure or type(failure).__name__}, and undoing it failed too ({undo})"
        )
        unfinished.__cause__ = failure
        return unfinished
    with contextlib.suppress(OSError):  # rolled back: nothing is left for a recovery to finish
        os.unlink(tmp / PLAN)
    remove_empty_tree(tmp / "old")  # the set-aside parents, all empty now
    return failure


def remove_empty_tree(top: Path) -> None:
    """Remove ``top`` if it holds nothing but (nested) directories; leave it whole otherwise. A rollback of an
    environment's plan empties ``old/`` file by file and leaves its nested parents (``old/lib/.../``): the
    rollback removes them with this, and so does a recovery after a kill in between."""
    if top.is_symlink() or not top.is_dir():
        return
    for folder, _dirs, names in os.walk(top, topdown=False):
        if names:
            return
        with contextlib.suppress(OSError):
            os.rmdir(folder)
