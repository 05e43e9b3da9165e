"""The signals that interrupt wheelstream as Ctrl-C does: SIGINT, and SIGTERM and SIGHUP, which the command takes
as Ctrl-C (``cli._main``). One set for everywhere that treats them alike: a commit holds them until it is whole
(``installer._commit``), a worker process ignores them (its parent turns them into the cancel: ``_workers``),
and handing a batch to the writers masks them for that moment (``unpack._writers``)."""

from __future__ import annotations

import signal

__all__ = ["INTERRUPTS"]

INTERRUPTS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
