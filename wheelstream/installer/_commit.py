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

A killed process (kill -9, the OOM killer) cannot undo anything. So:

* the temporary directory ``DIR/.wheelstream-tmp-*`` is locked by its process (``.owner.lock``, ``flock``)
  from the moment it exists, and the kernel drops the lock when the process dies; the lock file holds the
  directory's ownership token (:mod:`._ownership`), so a look-alike a wheel planted is never taken for ours;
* before the first rename ``commit`` writes its plan (``commit.json``: every move, in order; written to a
  temporary name and renamed, so it is whole or absent);
* the next install into ``DIR`` (``finish_interrupted``) takes every unlocked one at once, whatever its age:
  the owner signs the lock file while holding the lock and holds it until the directory is retired, so a
  free lock with a token that verifies means a dead owner. With a plan, it moves in each item whose source is
  still there (the install had passed every check and its files were complete before the first rename),
  setting aside what it replaces; without one (killed before its commit), it is removed. Only an *empty*
  directory (killed between making it and creating its lock file) waits ``_FRESH`` seconds: it may be a live
  install's, a moment before its lock;
* a temporary directory is deleted only after being renamed to ``.wheelstream-gone-*``: never half deleted
  under a name recovery would take; its lock file (with the token) is deleted last, so a ``gone`` directory
  a kill left behind still proves whose it is.

Recovery opens an existing lock file and never creates one: a directory without it, or whose token does not
verify, is not ours to judge (a wheel's look-alike, an older wheelstream's, which may hold the only copy of
replaced items in ``old/``), and is left alone, as are directories whose plan cannot be read or would reach
outside (a warning names them). Recovery
covers a killed process; after a power loss it relies on the file system keeping the plan's rename ahead of
the renames that follow it (ext4's ordered journal does), as nothing here is fsynced.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, and no recovery
    fcntl = None  # type: ignore[assignment]

from .._killpoints import reached
from ._layout import TargetPlan
from ._ownership import home_token, token_matches

__all__ = [
    "RESERVED_PREFIX",
    "TMP_PREFIX",
    "Move",
    "PlannedMove",
    "UnfinishedCommit",
    "commit",
    "commit_moves",
    "deliver",
    "finish_interrupted",
    "own_home",
    "retire",
]

RESERVED_PREFIX = (
    ".wheelstream-"  # no wheel may install a top-level item named so (see _checks.refuse_reserved_names)
)
TMP_PREFIX = RESERVED_PREFIX + "tmp-"
_GONE_PREFIX = RESERVED_PREFIX + "gone-"  # a temporary directory on its way out: nothing in it is needed
_PLAN = "commit.json"
_OWNER = ".owner.lock"
_FRESH = 10.0  # seconds: an empty directory younger than this may be a live install's, not locked yet

Move = Callable[[Path, Path], None]


def _rename(src: Path, dest: Path) -> None:
    os.rename(src, dest)


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM for the duration (main thread only, and only those not ignored); the list
    yielded gets the signals that came, for ``deliver``."""
    caught: list[int] = []
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():

        def hold(signum: int, frame: FrameType | None) -> None:
            caught.append(signum)

        with contextlib.suppress(ValueError):  # not the main interpreter: nothing can be held
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                    previous[signum] = signal.signal(signum, hold)
    try:
        yield caught
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)  # type: ignore[arg-type]


def deliver(signals: list[int]) -> None:
    """Deliver signals ``commit`` held to the handlers in place now (Ctrl-C: ``KeyboardInterrupt``; a default
    SIGTERM ends the process). SIGTERM goes first, and every one is delivered even when a handler raises."""
    pending = sorted(set(signals), key=lambda signum: signum != signal.SIGTERM)
    if pending:
        try:
            signal.raise_signal(pending[0])
        finally:
            deliver(pending[1:])


class UnfinishedCommit(Exception):
    """A commit failed and undoing it failed too (a file system gone read-only, say): the target holds part
    of the new items; the temporary directory keeps the rest and the plan, for ``finish_interrupted``."""


def _flock(path: Path, *, create: bool) -> int | None:
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
    fd = _flock(tmp / _OWNER, create=True)
    if fd is not None:
        try:
            os.pwrite(fd, home_token(_suffix(tmp.name)), 0)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _suffix(name: str) -> str:
    """What a temporary home's name keeps through ``retire``: ``tmp-X`` and ``gone-X`` share ``X``."""
    return name.removeprefix(TMP_PREFIX).removeprefix(_GONE_PREFIX)


def _ours(tmp: Path, fd: int) -> bool:
    """Whether the locked ``.owner.lock`` behind ``fd`` is still the one in ``tmp`` and carries its token."""
    if os.fstat(fd).st_ino != os.stat(tmp / _OWNER).st_ino:
        return False  # the directory changed under us (retired and replaced): look again next time
    return token_matches(_suffix(tmp.name), os.pread(fd, 256, 0))


def retire(tmp: Path) -> bool:
    """Delete a temporary directory of ours, even through Ctrl-C (after an upgrade it holds the replaced items,
    which can take a second); return whether a Ctrl-C came. It is renamed out of ``TMP_PREFIX``'s names
    first, so no recovery can take it while it is half deleted."""
    gone = tmp.with_name(_GONE_PREFIX + _suffix(tmp.name))
    interrupted = False
    while True:
        try:
            if os.path.lexists(tmp):
                try:
                    os.rename(tmp, gone)
                except OSError:
                    gone = tmp  # cannot rename (a read-only file system?): delete it where it is
            _delete_lock_last(gone)
            return interrupted
        except KeyboardInterrupt:
            interrupted = True


def _delete_lock_last(path: Path) -> None:
    """Delete a temporary directory with its lock file last: until the very end it still proves whose it is.
    A few passes, in case something appeared in it meanwhile (nothing should: it no longer has a live name)."""
    for _ in range(3):
        try:
            entries = [entry for entry in os.scandir(path) if entry.name != _OWNER]
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
        os.unlink(path / _OWNER)
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
        [step.dest, None if step.source is None else os.path.relpath(step.source, tmp), step.replace]
        for step in moves
    ]
    (tmp / (_PLAN + ".new")).write_text(json.dumps({"version": 2, "moves": steps}), encoding="utf-8")
    os.rename(tmp / (_PLAN + ".new"), tmp / _PLAN)  # whole or absent: a kill while writing leaves no plan
    error: BaseException | None = None
    with _signals_held() as caught:
        try:
            for name, source, replace in moves:
                dest = root / name
                if replace:
                    _make_parent(aside / name, aside)
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


def _make_parent(path: Path, base: Path) -> None:
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
        os.unlink(tmp / _PLAN)
    if os.path.isdir(tmp / "old"):
        for dirpath, _dirs, _files in sorted(os.walk(tmp / "old"), reverse=True):  # empty set-aside parents
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    return failure


def finish_interrupted(target: Path, warn: Callable[[str], None]) -> list[str]:
    """Finish the commits of killed installs into ``target`` and remove what they left; return the items
    moved in (see the module docstring). Nothing here stops the install that asks: a directory that cannot
    be judged or finished is named in a warning and left as it is."""
    finished: list[str] = []
    try:
        names = sorted(n for n in os.listdir(target) if n.startswith((TMP_PREFIX, _GONE_PREFIX)))
    except OSError:
        return finished
    for name in names:
        path = target / name
        try:
            if name.startswith(_GONE_PREFIX):
                _sweep_gone(path)  # its deleter was killed (or is still at it)
            else:
                finished += _recover(path, target)
        except FileNotFoundError:
            continue  # retired by its owner while we looked
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warn(
                f"{path} looks like what an interrupted install left, but cannot be finished ({exc}); "
                "it is left as it is"
            )
    return finished


def _recover(tmp: Path, target: Path) -> list[str]:
    if tmp.is_symlink() or not tmp.is_dir():
        return []
    stale = time.time() - os.stat(tmp).st_mtime >= _FRESH
    if stale:
        with contextlib.suppress(OSError):
            os.rmdir(tmp)  # empty: killed between making it and locking it
            return []
    fd = _flock(tmp / _OWNER, create=False)
    if fd is None:
        return []  # a live install's, or no lock file: not a directory this code can judge
    try:
        if not _ours(tmp, fd):
            return []  # not signed by this user's wheelstream (a wheel's look-alike?), or replaced meanwhile
        if not os.path.lexists(tmp / _PLAN):
            with contextlib.suppress(OSError):
                os.rmdir(tmp / "old")  # empty: killed between a rollback's last two steps
            if os.path.lexists(tmp / "old"):
                return []  # holding replaced items nobody planned: not ours to delete
            moved = []
        else:
            moved = _roll_forward(_read_plan(tmp / _PLAN, tmp), target, tmp)
        if retire(tmp):
            raise KeyboardInterrupt  # held while the directory went, so that none is left half deleted
        return moved
    finally:
        os.close(fd)


def _sweep_gone(gone: Path) -> None:
    """Finish deleting a retired directory whose deleter died — only one that proves it is ours (a wheel can
    ship a directory named ``.wheelstream-gone-*`` too). A lock file that is gone means the deletion had
    reached its very end: only an empty directory is left to remove then."""
    if gone.is_symlink() or not gone.is_dir():
        return
    fd = _flock(gone / _OWNER, create=False)
    if fd is None:
        with contextlib.suppress(OSError):
            os.rmdir(gone)
        return
    try:
        if _ours(gone, fd):
            _delete_lock_last(gone)
    finally:
        os.close(fd)


def _checked_dest(name: object, version: int) -> str:
    """A plan's destination: one component (version 1: a ``--target`` item), or (2) a normalized relative
    ``/`` path with no ``..``; anything else raises ValueError."""
    if not isinstance(name, str) or not name or "\0" in name or os.sep in name.replace("/", ""):
        raise ValueError(f"bad item name {name!r} in the plan")
    parts = name.split("/")
    if (version == 1 and len(parts) != 1) or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"bad item name {name!r} in the plan")
    return name


def _read_plan(path: Path, tmp: Path) -> list[tuple[str, Path | None, bool]]:
    """The moves of a plan read back from disk, each checked: a destination stays below the root (see
    ``_checked_dest``), a source lies in ``tmp/home`` below real directories (anything else raises
    ValueError)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    version = payload.get("version")
    if version not in (1, 2):
        raise ValueError(f"unknown plan version {version!r}")
    if os.path.islink(tmp / "home"):
        raise ValueError(f"{tmp / 'home'} is a symlink")
    home = os.path.realpath(tmp / "home")
    moves: list[tuple[str, Path | None, bool]] = []
    for name, source_rel, replace in payload["moves"]:
        dest = _checked_dest(name, version)
        if not isinstance(replace, bool) or not (
            isinstance(source_rel, str) or (version == 2 and source_rel is None)
        ):
            raise TypeError(f"bad move for {dest!r} in the plan")
        if source_rel is None:
            moves.append((dest, None, replace))
            continue
        source = tmp / source_rel
        parent = os.path.realpath(source.parent)
        inside = parent == home or parent.startswith(home + os.sep)
        if posixpath.normpath(source_rel) != source_rel or os.path.isabs(source_rel) or not inside:
            raise ValueError(f"the plan's source for {dest!r} is outside {tmp / 'home'}")
        moves.append((dest, source, replace))
    if os.path.islink(tmp / "old"):
        raise ValueError(f"{tmp / 'old'} is a symlink")
    return moves


def _roll_forward(moves: list[tuple[str, Path | None, bool]], target: Path, tmp: Path) -> list[str]:
    """Do the moves whose source is still in ``tmp``, as ``commit`` would have; set aside what a step without a
    source removes, unless it is gone already."""
    moved: list[str] = []
    for name, source, replace in moves:
        dest, aside = target / name, tmp / "old" / name
        if source is None:
            if replace and os.path.lexists(dest) and not os.path.lexists(aside):
                _make_parent(aside, tmp / "old")
                os.rename(dest, aside)
            continue
        if not os.path.lexists(source):
            continue  # moved in before the process died
        if os.path.lexists(dest):
            if not replace or os.path.lexists(aside):
                continue  # something else is there now (and the old item is already aside): leave both
            _make_parent(aside, tmp / "old")
            os.rename(dest, aside)
        os.rename(source, dest)
        moved.append(name)
    return moved
