"""The only step that touches the target: move finished top-level items in, all or nothing.

Everything before this happened in a temporary directory *inside* the target, so each move is one
``rename(2)`` on one file system: atomic per item. Across items we keep a journal of the renames made; on any
exception — including ``KeyboardInterrupt`` — they are undone in reverse order, so the target ends as it was.
An item being replaced (``--upgrade``) is first renamed aside into the temporary directory, then the new item
is renamed in; the old one is deleted only after every move succeeded.

A real Ctrl-C (SIGINT in the main thread) arriving while we move or roll back is held until we are done, so
neither the moves nor the rollback can be interrupted halfway. After a rollback the failure is raised as
usual; after a complete commit ``commit`` returns True, and the caller reports the interrupt knowing the
install is done (``Interrupted.installed``). Tests inject failures through ``move``.

A process killed (kill -9, the OOM killer) between two renames cannot undo anything. So before the first
rename ``commit`` writes its plan into the temporary directory (``commit.json``: every move, in order), and
the next install into the same target finishes it (``finish_interrupted``): every item whose source is still
in the temporary directory is moved in — the install had passed every check, and its files were complete
before the first rename. A temporary directory is recognised as abandoned by its owner lock
(``.owner.lock``, held by the installing process from the moment it exists: the kernel drops it when the
process dies); one without a plan is what a process killed before its commit left, and is removed. Recovery
covers a killed process; after a power loss it relies on the file system keeping the plan's creation ahead
of the renames that follow it (ext4's ordered journal does), as nothing here is fsynced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import filelock

from .._cache import try_lock
from ._layout import TargetPlan

__all__ = ["TMP_PREFIX", "Move", "UnfinishedCommit", "commit", "finish_interrupted", "own_home"]

TMP_PREFIX = ".wheelstream-tmp-"
_PLAN = "commit.json"
_OWNER = ".owner.lock"
_FRESH = 10.0  # seconds: an unlocked directory younger than this may be one whose owner is about to lock it

Move = Callable[[Path, Path], None]


def _rename(src: Path, dest: Path) -> None:
    os.rename(src, dest)


@contextlib.contextmanager
def _sigint_held() -> Iterator[list[int]]:
    """Hold SIGINT for the duration (main thread only); the list yielded holds the signals that came."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main interpreter
        yield caught
        return
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


class UnfinishedCommit(Exception):
    """A commit failed and undoing it failed too (a file system gone read-only, say): the target holds part
    of the new items; the temporary directory keeps the rest and the plan, for ``finish_interrupted``."""


def own_home(tmp: Path) -> filelock.BaseFileLock:
    """Mark the temporary directory ``tmp`` (just made) as this live process's: ``finish_interrupted`` in
    another process leaves it alone until the lock is released or the process dies."""
    lock = try_lock(tmp / _OWNER)
    if lock is None:  # pragma: no cover - a directory mkdtemp made a moment ago
        raise RuntimeError(f"{tmp} is locked by another process")
    return lock


def commit(plan: TargetPlan, target: Path, tmp: Path, move: Move | None = None) -> bool:
    """Apply ``plan``: set replaced items aside (into ``tmp/old``), rename new items in; undo everything on any
    exception. Returns whether a Ctrl-C came (and was held) while the moves ran."""
    do_move = move or _rename
    aside = tmp / "old"
    journal: list[tuple[Path, Path]] = []  # (from, to) of each rename done, for undo
    moves = [[name, os.path.relpath(source, tmp), name in plan.replace] for name, source in plan.moves.items()]
    (tmp / _PLAN).write_text(json.dumps({"version": 1, "moves": moves}), encoding="utf-8")
    with _sigint_held() as caught:
        try:
            for name, source in plan.moves.items():
                dest = target / name
                if name in plan.replace:
                    aside.mkdir(exist_ok=True)
                    do_move(dest, aside / name)
                    journal.append((dest, aside / name))
                do_move(source, dest)
                journal.append((source, dest))
        except BaseException as failure:
            try:
                for origin, moved_to in reversed(journal):
                    os.rename(moved_to, origin)
            except OSError as undo:
                raise UnfinishedCommit(f"{failure or type(failure).__name__}, and undoing it failed too ({undo})"
                                       ) from failure
            raise
    return bool(caught)


def finish_interrupted(target: Path) -> list[str]:
    """Finish the commits of killed installs into ``target`` and remove what they left; return the items
    moved in (see the module docstring)."""
    finished: list[str] = []
    try:
        candidates = sorted(p for p in target.iterdir() if p.name.startswith(TMP_PREFIX))
    except OSError:
        return finished
    for tmp in candidates:
        if tmp.is_symlink() or not tmp.is_dir():
            continue
        plan = tmp / _PLAN
        if not plan.exists() and time.time() - tmp.stat().st_mtime < _FRESH:
            continue  # maybe a live install's, made a moment ago and not locked yet
        lock = try_lock(tmp / _OWNER)
        if lock is None:
            continue  # a live install's
        try:
            if plan.exists():
                finished += _roll_forward(json.loads(plan.read_text(encoding="utf-8")), target, tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            lock.release()
    return finished


def _roll_forward(plan: dict[str, list[list[object]]], target: Path, tmp: Path) -> list[str]:
    """Do the moves of ``plan`` whose source is still in ``tmp``, as ``commit`` would have."""
    moved: list[str] = []
    for name, source_rel, replace in plan["moves"]:
        source, dest, aside = tmp / str(source_rel), target / str(name), tmp / "old" / str(name)
        if not os.path.lexists(source):
            continue  # moved in before the process died
        if os.path.lexists(dest):
            if not replace or os.path.lexists(aside):
                continue  # something else is there now (and the old item is already aside): leave both
            aside.parent.mkdir(exist_ok=True)
            os.rename(dest, aside)
        os.rename(source, dest)
        moved.append(str(name))
    return moved
