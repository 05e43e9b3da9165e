"""Named points where a test bed can have this process killed with SIGKILL, to prove crash recovery phase
by phase (the kill-anywhere tests, and anyone testing an installer built on this one).

``WHEELSTREAM_KILL_AT=NAME`` kills the process the first time it reaches the point ``NAME``;
``NAME@N`` the N-th time; ``NAME[@N]:SIGNAL`` sends that signal instead of SIGKILL (``commit.rename@2:SIGHUP``:
a terminal closed mid-commit). Read once, when this module is imported; unset — always, outside a test bed —
:func:`reached` is one comparison. Nothing else ever kills the caller's process: a library is a guest, and
this is the caller asking.

The points, in the order a move install of one URL passes them:

===========================  ===================================================================================
``checkpoint.staging-sync``  a checkpoint's pending record written (``unpack/_pending``), staging not yet synced
``download.end-of-input``    every byte received and written to the partial file; the tail still unpacking
``publish.remembered``       the URL's sha256 recorded; the partial and its journal untouched
``publish.wheel-moved``      the partial renamed to ``wheels/<sha256>.whl``; the journal still there
``publish.journal-removed``  the journal gone; the unpacked tree still in staging
``publish.settled``          the tree published (copy/hardlink) or claimed (move); nothing in the target yet
``install.home-written``     every wheel written into the temporary home in the target; no plan yet
``commit.rename``            before each rename into the target (``@N``: the N-th; an upgrade's set-aside counts)
``commit.retire``            every item moved in; the temporary home (with what an upgrade replaced) not yet gone
===========================  ===================================================================================
"""

from __future__ import annotations

import os
import signal

__all__ = ["reached"]


def _parse(value: str | None) -> tuple[str, int, int] | None:
    if not value:
        return None
    value, _, sent = value.partition(":")
    name, _, nth = value.partition("@")
    default = getattr(signal, "SIGKILL", signal.SIGTERM)
    if sent and not isinstance(getattr(signal, sent, None), signal.Signals):
        raise ValueError(f"WHEELSTREAM_KILL_AT: {sent!r} is not a signal name (SIGHUP, SIGTERM, ...)")
    return name, int(nth) if nth.isdigit() else 1, getattr(signal, sent) if sent else default


_AT = _parse(os.environ.get("WHEELSTREAM_KILL_AT"))
_seen: dict[str, int] = {}


def reached(name: str) -> None:
    """This process has reached the point ``name``: die here if the test bed asked for it."""
    if _AT is None or _AT[0] != name:
        return
    _seen[name] = count = _seen.get(name, 0) + 1
    if count == _AT[1]:
        os.kill(os.getpid(), _AT[2])
