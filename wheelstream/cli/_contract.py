"""The shell's contract around one library call: exit codes, the one ``error:`` line, how it is interrupted.

- **Exit codes** come from the error tree (``WheelstreamError.exit_code``): 0 ok · 1 bad archive, hash or
  install conflict · 2 usage · 3 network gave up (partial kept) · 130 interrupted (partial kept).
- **Errors** are one line on stderr, ``error: <wheel>: <cause>``, never a traceback for anything expected
  (our errors, OS errors such as a full disk); ``-vv`` adds one.
- **SIGTERM and SIGHUP are Ctrl-C** (set for every command by ``cli._main``): the handler raises
  ``KeyboardInterrupt`` in the main thread, so the library's interrupt path (checkpoint, keep the partial)
  runs for all three, and all exit 130 with how far it got.
- **Library log records** print through the UI, above the bars; loggers are given back as they were found.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn, TypeVar

from wheelstream.cli._ui import ConsoleProgress, escape, stderr_console
from wheelstream.errors import Interrupted, WheelstreamError

if TYPE_CHECKING:
    from wheelstream._api import InstallResult
    from wheelstream.installer import EnvironmentReport, InstallReport

    # What a command's library call returns: an install's result, or a download's (no report).
    Outcome = InstallResult[InstallReport | EnvironmentReport | None]

__all__ = ["INTERRUPTED", "fail", "guarded", "run"]

INTERRUPTED = "interrupted — run the same command again to resume (nothing finished is lost)"


# ``--no-cache``: the cache goes with the command, so no message may offer a resume from it.
_throwaway_cache = False
_RESUME_HINT = " — run the same command again"


@contextlib.contextmanager
def cache_thrown_away() -> Iterator[None]:
    """While ``--no-cache``'s command runs (``main(argv)`` in-process may run another one after it)."""
    global _throwaway_cache
    _throwaway_cache = True
    try:
        yield
    finally:
        _throwaway_cache = False


def _nothing_kept(message: str) -> str:
    """A message without what it says is kept to resume from: "18.2 MB kept — run the same command again to
    resume once that is fixed" was false under ``--no-cache``, whose cache was gone by then. Only a message
    that offers a resume changes; "the target is unchanged — run the same command again" stays true."""
    at = message.find(_RESUME_HINT)
    if at < 0 or not re.search(r"\bkept\b|\bresume\b|\bon disk\b", message):
        return message
    head = re.sub(r"(?:; |, )?[^;,:—]*\bkept\b[^;,:—]*$", "", message[:at])
    return f"{head} (--no-cache: nothing is kept to resume from)"


def fail(ui: ConsoleProgress | None, exc: BaseException | str, code: int) -> NoReturn:
    """Print the one ``error:`` line and exit. ``escape`` keeps it one line and shows any terminal control or
    bidi override the message carries (a wheel's name, an OS error's file name) as an escape."""
    message = str(exc).strip() or type(exc).__name__
    if _throwaway_cache:
        message = _nothing_kept(message)
    console = ui.console if ui is not None else stderr_console()
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


class _WarningsToUI(logging.Handler):
    """Library warnings (e.g. a yanked file) go through the UI, so they print above the bars. hishel's too: it
    logs a storage failure (the index cache on a full disk) with its traceback and goes on uncached, and
    Python's last-resort handler would print that traceback; here it is one warning line with the cause."""

    def __init__(self, ui: ConsoleProgress, verbose: bool) -> None:
        super().__init__(logging.DEBUG if verbose else logging.WARNING)
        self.ui = ui

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            cause = record.exc_info[1] if record.exc_info else None
            self.ui.warn(record.getMessage() + (f" ({type(cause).__name__}: {cause})" if cause else ""))
        else:
            self.ui.console.print(f"[dim]{escape(record.getMessage())}[/]", highlight=False, soft_wrap=True)


def run(
    verb: str,
    quiet: int,
    verbose: int,
    no_progress: bool,
    call: Callable[[ConsoleProgress], Outcome],
) -> Outcome:
    """Run one library call with the UI, the signal handler and the error contract around it, and say what it
    did in one line (unless ``quiet``)."""
    started = time.monotonic()

    def summary(ui: ConsoleProgress, result: Outcome) -> None:
        if quiet:
            return
        resumed = sum(1 for w in result.wheels if w.resumed_at is not None)
        cached = sum(1 for w in result.wheels if w.from_cache)
        ui.console.print(
            ui.summary(
                verb,
                result.wheels,
                result.bytes_fetched,
                result.bytes_reused,
                resumed,
                cached,
                time.monotonic() - started,
            ),
            highlight=False,
            soft_wrap=True,
        )

    return guarded(verb, quiet, verbose, no_progress, call, summary)


_Result = TypeVar("_Result")


def guarded(
    verb: str,
    quiet: int,
    verbose: int,
    no_progress: bool,
    call: Callable[[ConsoleProgress], _Result],
    after: Callable[[ConsoleProgress, _Result], None] | None = None,
) -> _Result:
    """Run one library call with the UI, the signal handler and the error contract around it; ``after`` is
    given its result once the bars are gone (an interrupt then says the work was done). The command owns its
    process: bytecode is compiled in it (``installer._compile.compile_in_this_process``)."""
    from wheelstream.installer._compile import (
        compile_in_this_process,  # the call imports the installer anyway
    )

    compile_in_this_process()
    ui = ConsoleProgress(bars=not no_progress, quiet=quiet > 0, verbose=verbose > 0)
    handler = _WarningsToUI(ui, verbose > 0)
    logging.getLogger("wheelstream").setLevel(logging.DEBUG if verbose else logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("wheelstream", "hishel")]
    # packaging's lock reader logs "pylock minor version 1.9 is not supported" through Python's last-resort
    # handler, ahead of wheelstream's own warning that says what is done about it: not shown.
    silenced = logging.getLogger("packaging")
    nothing = logging.NullHandler()
    propagates = [each.propagate for each in (*loggers, silenced)]
    for each in loggers:
        each.addHandler(handler)
        each.propagate = False
    silenced.addHandler(nothing)
    silenced.propagate = False
    done = False
    result: _Result
    try:
        ui.start()
        try:
            result = call(ui)
            done = True
        finally:
            ui.stop()
        if after is not None:
            after(ui, result)
    except (Interrupted, KeyboardInterrupt) as exc:
        if done or getattr(exc, "installed", False):  # the work was done when it came
            fail(
                ui,
                f"interrupted after every wheel was {verb.lower()} — nothing is left to do",
                Interrupted.exit_code,
            )
        fail(ui, ui.interrupted_message(), Interrupted.exit_code)
    except WheelstreamError as exc:
        if verbose > 1:
            ui.console.print_exception()
        fail(ui, exc, exc.exit_code)
    except OSError as exc:
        if verbose > 1:  # -vv: the traceback too, as for every other error (docs/cli.md)
            ui.console.print_exception()
        fail(ui, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)
    except (MemoryError, RuntimeError) as exc:
        # A limit of the process's (``ulimit -v``, ``-u``): no thread or no memory left. What was downloaded is
        # kept, as after any failure; a traceback said nothing more. Any other RuntimeError is a bug: raised.
        if isinstance(exc, RuntimeError) and "can't start new thread" not in str(exc):
            raise
        if verbose > 1:
            ui.console.print_exception()
        what = "out of memory" if isinstance(exc, MemoryError) else "no new thread could start"
        fail(
            ui,
            f"{what} (a limit on this process's memory or processes?); run the same command again once that is fixed",
            1,
        )
    finally:
        for each, propagate in zip((*loggers, silenced), propagates, strict=True):
            each.removeHandler(handler)
            each.propagate = propagate
        silenced.removeHandler(nothing)
    return result
