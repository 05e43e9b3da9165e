"""Finishing what killed installs left in a target: the next install into ``DIR`` runs ``finish_interrupted``
before its own commit.

It takes every unlocked ``DIR/.wheelstream-tmp-*`` at once, whatever its age: the owner signs the lock file
while holding the lock and holds it until the directory is retired (:mod:`._commit`), so a free lock with a
token that verifies means a dead owner. With a plan, it moves in each item whose source is still there (the
install had passed every check and its files were complete before the first rename), setting aside what it
replaces; without one (killed before its commit), it is removed. But only over what the install left: a
plan records what each replaced item was (inode, modification time) and that each new one's place was free,
and if anything another tool did since stands where a step still has to go (``pip install`` run to repair
the environment, an item deleted by hand), the whole rest of the plan is dropped with a warning — finishing
it would put the killed install's files over the other tool's and leave RECORDs that lie. Only an *empty*
directory (killed between making it and creating its lock file) waits ``_FRESH`` seconds: it may be a live
install's, a moment before its lock. A ``.wheelstream-gone-*`` directory whose deleter was killed is deleted,
lock file last.

Recovery opens an existing lock file and never creates one: a directory without it, or whose token does not
verify, is not ours to judge (a wheel's look-alike, an older wheelstream's, which may hold the only copy of
replaced items in ``old/``), and is left alone, as are directories whose plan cannot be read or would reach
outside (a warning names them). Recovery covers a killed process; after a power loss it relies on the file
system keeping the plan's rename ahead of the renames that follow it (ext4's ordered journal does), as nothing
here is fsynced.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ._commit import (
    GONE_PREFIX,
    OWNER,
    PLAN,
    TMP_PREFIX,
    delete_lock_last,
    fingerprint,
    hold_flock,
    is_ours,
    make_parent,
    remove_empty_tree,
    retire,
)
from ._ownership import state_dir

__all__ = ["Finished", "finish_interrupted", "unfinished"]

_FRESH = 10.0  # seconds: an empty directory younger than this may be a live install's, not locked yet


def unfinished(target: Path) -> list[str]:
    """The temporary directories of installs into ``target`` not finished yet — a killed one's, or one running
    now — which the next install or uninstall finishes (:func:`finish_interrupted`): for a command that only
    reads the target, to say that what it reads may be half old, half new."""
    return _left_in(target, (TMP_PREFIX,))


def _left_in(target: Path, prefixes: tuple[str, ...]) -> list[str]:
    """The names in ``target`` that start with one of ``prefixes``, sorted; none where it cannot be listed."""
    try:
        return sorted(name for name in os.listdir(target) if name.startswith(prefixes))
    except OSError:
        return []


class Finished(NamedTuple):
    """What finishing killed commits did to the root: items moved in, and items (of uninstalled or replaced
    distributions) set aside and deleted — a killed uninstall finishes with removals alone."""

    moved: list[str]
    removed: list[str]


def finish_interrupted(target: Path, warn: Callable[[str], None]) -> Finished:
    """Finish the commits of killed installs into ``target`` and remove what they left; return what that did
    (see the module docstring). Nothing here stops the install that asks: a directory that cannot be judged
    or finished is named in a warning and left as it is."""
    finished = Finished([], [])
    for name in _left_in(target, (TMP_PREFIX, GONE_PREFIX)):
        path = target / name
        try:
            if name.startswith(GONE_PREFIX):
                _sweep_gone(path)  # its deleter was killed (or is still at it)
            else:
                done = _recover(path, target, warn)
                finished.moved.extend(done.moved)
                finished.removed.extend(done.removed)
        except FileNotFoundError:
            continue  # retired by its owner while we looked
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warn(
                f"{path} looks like what an interrupted install left, but cannot be finished ({exc}); "
                "it is left as it is"
            )
    return finished


def _recover(tmp: Path, target: Path, warn: Callable[[str], None]) -> Finished:
    nothing = Finished([], [])
    if tmp.is_symlink() or not tmp.is_dir():
        return nothing
    stale = time.time() - os.stat(tmp).st_mtime >= _FRESH
    if stale:
        with contextlib.suppress(OSError):
            os.rmdir(tmp)  # empty: killed between making it and locking it
            return nothing
    fd = hold_flock(tmp / OWNER, create=False)
    if fd is None:
        return nothing  # a live install's, or no lock file: not a directory this code can judge
    try:
        if not is_ours(tmp, fd):
            if os.path.lexists(tmp / PLAN):  # a killed commit's, as far as one can see: say why it stays
                raise ValueError(
                    "its signature does not check out — the key in "
                    f"{state_dir()} is missing or could not be written, or another user's wheelstream made it"
                )
            if stale and _only_an_unsigned_lock(tmp, fd):
                # Killed between locking its lock file and signing it (``own_home``): nothing else was ever
                # written there, and left, it stayed for good (every ``list`` warned of an unfinished install).
                os.unlink(tmp / OWNER)
                os.rmdir(tmp)
            return nothing  # not signed by this user's wheelstream (a wheel's look-alike?), or replaced meanwhile
        if not os.path.lexists(tmp / PLAN):
            remove_empty_tree(
                tmp / "old"
            )  # killed between a rollback's last steps: only directories are left
            if os.path.lexists(tmp / "old"):
                return nothing  # holding replaced items nobody planned: not ours to delete
            done = nothing
        else:
            moves = _read_plan(tmp / PLAN, tmp)
            changed = _changed_since(moves, target, tmp)
            if changed is None:
                done = _roll_forward(moves, target, tmp)
            else:
                warn(
                    f"a command that changed {target} (an install, uninstall or sync) was interrupted, and "
                    f"{changed} since: the rest of it is dropped (finishing it would overwrite that); run it again"
                )
                done = nothing
        if retire(tmp):
            raise KeyboardInterrupt  # held while the directory went, so that none is left half deleted
        return done
    finally:
        os.close(fd)


def _only_an_unsigned_lock(tmp: Path, fd: int) -> bool:
    """``tmp`` holds its lock file alone, and that is empty: all a home killed before it was signed has. (A
    look-alike with anything more in it, or any byte in its lock, is never deleted.)"""
    return os.fstat(fd).st_size == 0 and os.listdir(tmp) == [OWNER]


def _sweep_gone(gone: Path) -> None:
    """Finish deleting a retired directory whose deleter died — only one that proves it is ours (a wheel can
    ship a directory named ``.wheelstream-gone-*`` too). A lock file that is gone means the deletion had
    reached its very end: only an empty directory is left to remove then."""
    if gone.is_symlink() or not gone.is_dir():
        return
    fd = hold_flock(gone / OWNER, create=False)
    if fd is None:
        with contextlib.suppress(OSError):
            os.rmdir(gone)
        return
    try:
        if is_ours(gone, fd):
            delete_lock_last(gone)
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


class _Step(NamedTuple):
    """One move of a plan read back: where, from where (None: only set ``dest`` aside), whether it replaces
    what is there, and what that was (``fingerprint``; ``_UNKNOWN`` in plans from before they kept it)."""

    dest: str
    source: Path | None
    replace: bool
    seen: list[int] | str | None


_UNKNOWN = "unknown"


def _read_plan(path: Path, tmp: Path) -> list[_Step]:
    """The moves of a plan read back from disk, each checked: a destination stays below the root (see
    ``_checked_dest``), a source lies in ``tmp/home`` below real directories (anything else raises
    ValueError)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    version = payload.get("version")
    if version not in (1, 2, 3):
        raise ValueError(f"unknown plan version {version!r}")
    if os.path.islink(tmp / "home"):
        raise ValueError(f"{tmp / 'home'} is a symlink")
    home = os.path.realpath(tmp / "home")
    moves: list[_Step] = []
    for row in payload["moves"]:
        name, source_rel, replace, *rest = row
        seen = rest[0] if version >= 3 and len(rest) == 1 else _UNKNOWN
        dest = _checked_dest(name, version)
        if (
            not isinstance(replace, bool)
            or not (isinstance(source_rel, str) or (version >= 2 and source_rel is None))
            or (version >= 3 and len(rest) != 1)
            or not (
                seen in (None, _UNKNOWN) or (isinstance(seen, list) and all(isinstance(n, int) for n in seen))
            )
        ):
            raise TypeError(f"bad move for {dest!r} in the plan")
        if source_rel is None:
            moves.append(_Step(dest, None, replace, seen))
            continue
        source = tmp / source_rel
        parent = os.path.realpath(source.parent)
        inside = parent == home or parent.startswith(home + os.sep)
        if posixpath.normpath(source_rel) != source_rel or os.path.isabs(source_rel) or not inside:
            raise ValueError(f"the plan's source for {dest!r} is outside {tmp / 'home'}")
        moves.append(_Step(dest, source, replace, seen))
    if os.path.islink(tmp / "old"):
        raise ValueError(f"{tmp / 'old'} is a symlink")
    return moves


def _changed_since(moves: list[_Step], target: Path, tmp: Path) -> str | None:
    """What stands where a step still to be done has to go that the install did not leave there — an item it
    meant to replace is another (or gone), a free place is taken — said for the warning; None when each is
    as the plan left it (a plan from before fingerprints: always None, as before)."""
    for step in moves:
        if step.seen == _UNKNOWN or (step.source is not None and not os.path.lexists(step.source)):
            continue  # done before the process died (a removal is checked: it has no source)
        if "__pycache__" in step.dest.split("/"):
            continue  # bytecode Python itself writes (an import, the interpreter's probe): not another tool
        dest, aside = target / step.dest, tmp / "old" / step.dest
        now = fingerprint(dest)
        if step.replace and step.seen is not None:
            if now is None:
                if step.source is not None and not os.path.lexists(aside):
                    return f"{step.dest} was removed"
            elif now != step.seen and not (step.source is None and os.path.lexists(aside)):
                return f"{step.dest} was changed"
        elif now is not None and step.source is not None:
            return f"{step.dest} was created"
    return None


def _roll_forward(moves: list[_Step], target: Path, tmp: Path) -> Finished:
    """Do the moves whose source is still in ``tmp``, as ``commit`` would have; set aside what a step without a
    source removes, unless it is gone already."""
    done = Finished([], [])
    moved = done.moved
    for name, source, replace, _seen in moves:
        dest, aside = target / name, tmp / "old" / name
        if source is None:
            if replace and os.path.lexists(dest) and not os.path.lexists(aside):
                make_parent(aside, tmp / "old")
                os.rename(dest, aside)
                done.removed.append(name)
            continue
        if not os.path.lexists(source):
            continue  # moved in before the process died
        if os.path.lexists(dest):
            if not replace or os.path.lexists(aside):
                continue  # something else is there now (and the old item is already aside): leave both
            make_parent(aside, tmp / "old")
            os.rename(dest, aside)
        os.rename(source, dest)
        moved.append(name)
    return done
