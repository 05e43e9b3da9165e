"""The ``wheelstream`` script and ``python -m wheelstream``: the command line, with the signal contract kept from
the program's first line.

Importing the command line (click, and the command's modules) takes a tenth of a second or more on a busy
machine. A Ctrl-C in that time was Python's ``KeyboardInterrupt`` traceback (exit 1 or -2), and a SIGTERM or
SIGHUP killed the process without a word, where docs/cli.md promises one ``error:`` line and exit 130. Until
the command's own handling takes over (``cli._run_command`` for Ctrl-C, ``cli._ending_signals_as_ctrl_c`` for
the others), such a signal ends the program here: nothing has started that could be resumed or left
half-done.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn

__all__ = ["main"]

_ENDING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _before_the_command(signum: int, frame: FrameType | None) -> None:
    try:
        sys.stderr.write("error: interrupted before the command started\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


def main() -> NoReturn:
    """Run the command line; the signals that end it are this module's until the command's own are set."""
    held = {}
    for signum in _ENDING:
        # one the caller ignores (``nohup``) stays ignored; one set in C (None) is left alone
        if signal.getsignal(signum) not in (signal.SIG_IGN, None):
            held[signum] = signal.signal(signum, _before_the_command)
    from wheelstream.cli import main as command

    for signum, handler in held.items():  # the command sets its own at once; these would outlive it
        signal.signal(signum, handler)
    command()


if __name__ == "__main__":
    main()
