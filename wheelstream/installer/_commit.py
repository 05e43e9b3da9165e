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
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from ._layout import TargetPlan

__all__ = ["Move", "commit"]

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


def commit(plan: TargetPlan, target: Path, aside: Path, move: Move | None = None) -> bool:
    """Apply ``plan``: set replaced items aside, rename new items in; undo everything on any exception.
    Returns whether a Ctrl-C came (and was held) while the moves ran."""
    do_move = move or _rename
    journal: list[tuple[Path, Path]] = []  # (from, to) of each rename done, for undo
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
        except BaseException:
            for origin, moved_to in reversed(journal):
                os.rename(moved_to, origin)
            raise
    return bool(caught)
