"""The life of one temporary home around one commit, for both destinations (a ``--target`` directory and an
environment): made and locked inside the root, written, committed, retired.

The rules (:mod:`._commit` has the why of each): the home is locked and signed before anything is put in it;
on any error before or during the commit it is retired and the root is as it was — except after a commit
whose undo failed too, when it keeps what was not moved and the plan for the next command to finish; signals
held during the renames are delivered only once the home is retired and its lock closed, and a Ctrl-C after
the last rename says the install finished.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .._killpoints import reached
from ..errors import DiskError, Interrupted
from ._commit import (
    TMP_PREFIX,
    Move,
    PlannedMove,
    UnfinishedCommit,
    commit_moves,
    deliver,
    own_home,
    retire,
    undeletable,
)

__all__ = ["Transaction", "cannot_install"]


def cannot_install(
    exc: OSError, root: Path, what: str, wheel: str | None = None, *, act: str = "install into"
) -> DiskError:
    """A disk full, a permission, an I/O error while installing: one line naming the destination (the file is
    often the staged source of a copy, which says little to the user), the cause, and what it touched.
    ``what`` is "target" or "environment"; ``act`` "install into", or "uninstall from" for a removal alone."""
    touched = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.EXDEV:
        # The install is staged in a temporary home in the root and renamed into place; a directory of the root
        # mounted (or linked) from another file system cannot take a rename. Said so, not "Invalid cross-device".
        where = exc.filename2 or exc.filename or "a directory"  # a rename's destination, where it has one
        return DiskError(
            f"cannot {act} {root}: {where} is on another file system than {root}, and an install moves "
            f"its files in by renaming them; the {what} is unchanged",
            wheel=wheel,
        )
    if isinstance(exc, FileNotFoundError) and exc.filename is not None and not _below(exc.filename, root):
        # What went is what was being copied, not the destination: the cache's unpacked copy, cleaned meanwhile.
        return DiskError(
            f"cannot {act} {root}: {exc.filename} went while it was copied (the cache cleaned "
            f"meanwhile?); the {what} is unchanged — run the same command again",
            wheel=wheel,
        )
    return DiskError(
        f"cannot {act} {root}: {exc.strerror or exc}{touched}; the {what} is unchanged", wheel=wheel
    )


def _below(path: str | os.PathLike[str], root: Path) -> bool:
    top = os.path.abspath(root)
    return os.path.commonpath([os.path.abspath(path), top]) == top


class Transaction:
    """``with Transaction(root, "target") as tx:`` write into ``tx.home``, ``tx.commit(moves)``,
    ``tx.retire(warn)``; after the block, ``tx.deliver()``."""

    def __init__(self, root: Path, what: str, *, uninstall: bool = False) -> None:
        self.root = root
        self._what = what  # "target" or "environment", for the message of a commit that could not be undone
        self._uninstall = uninstall  # nothing comes in, distributions only go: what a late Ctrl-C says
        self._committed = False
        self.tmp: Path | None = None
        self._owner: int | None = None
        self._kept = False
        self._retired = False
        self._held: list[int] = []
        self._interrupted = False

    def __enter__(self) -> Transaction:
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.root))
            self._owner = own_home(self.tmp)
            self.home.mkdir()
        except OSError as exc:
            self.__exit__(type(exc), exc, None)
            raise self.cannot(exc) from exc
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def cannot(self, exc: OSError, wheel: str | None = None) -> DiskError:
        """``exc`` told as this install's (:func:`cannot_install`)."""
        act = "uninstall from" if self._uninstall else "install into"
        return cannot_install(exc, self.root, self._what, wheel, act=act)

    @property
    def home(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "home"

    def commit(self, moves: list[PlannedMove], move: Move | None = None) -> None:
        assert self.tmp is not None
        try:
            self._held = commit_moves(moves, self.root, self.tmp, move)
        except UnfinishedCommit as exc:
            self._kept = True
            finisher = "install into it" if self._what == "target" else "wheelstream command there"
            raise DiskError(
                f"cannot install into {self.root}: {exc}; the {self._what} holds part of this install, and the "
                f"next {finisher} finishes it ({self.tmp.name} holds the rest)"
            ) from exc
        except OSError as exc:
            raise self.cannot(exc) from exc
        self._committed = True

    def retire(self, warn: Callable[[str], None]) -> None:
        """Every move is done: delete the home (and what it set aside), even through Ctrl-C. What cannot be
        deleted is named in a warning: the install is whole, but the directory stays in the root."""
        assert self.tmp is not None
        reached("commit.retire")
        self._retired = True
        self._interrupted = retire(self.tmp)
        why = undeletable(self.tmp)
        if why is not None:
            warn(
                f"could not delete {why}; it is in what an install set aside (nothing there is needed any "
                "more): delete it by hand"
            )

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is not None and not self._kept and not self._retired and self.tmp is not None:
                retire(self.tmp)
        finally:
            if self._owner is not None:
                os.close(self._owner)
                self._owner = None
        if self._committed and isinstance(error, KeyboardInterrupt):
            # A Ctrl-C after the last rename (and its held signals' block) but before ``retire``: the commit
            # is whole and the home is gone now, so this is the finished command's interrupt, not a half one.
            raise self._after() from None

    def deliver(self) -> None:
        """The signals held during the renames, to their handlers; a Ctrl-C now says the install finished."""
        try:
            deliver(self._held)
        except KeyboardInterrupt:
            self._interrupted = True
        if self._interrupted:
            raise self._after()

    def _after(self) -> Interrupted:
        return Interrupted.after_install(self.root, uninstall=self._uninstall)
