"""What a person at a terminal sees: one rich bar per wheel, resume/restart notes, one summary line.

The downloader calls :class:`ConsoleProgress` from worker threads (``--jobs``), so ``__call__`` only updates
a small per-wheel record under a lock and forwards to rich's ``Progress``, which is thread-safe and redraws
on its own refresh thread (10 Hz) — the download loop never waits for the terminal.

The same object also *remembers* how far each wheel got. That is what makes the interrupt message exact
("interrupted at 12.0 MB of 24.8 MB — run the same command again to resume") even when no bars are drawn
(``-q``, ``--no-progress``, a pipe), because the library's own ``Interrupted`` is raised from the main thread,
which does not know the byte counts.

Rules: bars only when stderr is a terminal and neither ``-q`` nor ``--no-progress``; without bars the notes
("resumed at …", "restarting from zero: …") are plain lines so logs keep them; ``-q`` prints only errors
and warnings. Everything goes to stderr; stdout is for results a script may read (``cache dir`` etc.).

Every line printed here may carry text a wheel chose (its file name, entry names, RECORD paths, entry-point
names), so it passes :func:`escape` first: one line, terminal controls and bidi overrides shown as escapes
(:func:`wheelstream.errors.one_line`; rich's own ``markup.escape`` only guards its markup, not the terminal),
then rich markup escaped.

rich is imported only when something is drawn or printed: a quiet run that succeeds never needs it, and
importing it is a noticeable part of a short run's start-up (docs/performance.md#d-lazy-imports).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, cast

from wheelstream._progress import Progress, human_size
from wheelstream.errors import one_line

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

__all__ = ["ConsoleProgress", "echo_path", "stderr_console"]


_MIN_BAR_WIDTH = 40


def echo_path(path: str | os.PathLike[str]) -> None:
    """A path as a result on stdout, byte for byte as the file system has it: ``click.echo`` strips what looks
    like an ANSI sequence when stdout is not a terminal and writes ``?`` for what an ASCII stream cannot hold,
    so ``download -d DIR | xargs`` got paths that do not exist."""
    sys.stdout.flush()
    raw = getattr(sys.stdout, "buffer", None)
    if raw is None:  # a host's text stream (``main(argv)`` under ``redirect_stdout(io.StringIO())``)
        sys.stdout.write(os.fsdecode(path) + "\n")
    else:
        raw.write(os.fsencode(path) + b"\n")


def stderr_console() -> Console:
    """The console everything the CLI says goes to (stderr; stdout is for results). A stderr that cannot be
    written (``2>/dev/full``, a closed pipe) loses the words, never the work: a note that failed to print had
    aborted the install it was about, and a summary line turned a finished install into exit 1."""
    import sys

    from rich.console import Console

    # emoji=False: a wheel names its entries and entry points, and rich read ``:fire:`` in them as an emoji
    return Console(
        file=cast("TextIO", _Unbreakable(sys.stderr)), highlight=False, soft_wrap=True, emoji=False
    )


class _Unbreakable:
    """A text stream whose write and flush errors are dropped (the exit code still says how the command ended);
    everything else is the stream's own (``isatty``, ``fileno``, ``encoding``: what rich asks)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # ValueError: written after it was closed
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def escape(text: str) -> str:
    """``text`` made safe to print as it reads: one line, controls as escapes (:func:`one_line`), rich's markup
    characters escaped — so a wheel name with ``\\x1b[2J`` or ``[red]`` in it is shown, not obeyed."""
    from rich.markup import escape as rich_escape

    return rich_escape(one_line(text))


@dataclass
class _Wheel:
    done: int = 0
    total: int | None = None
    entries: int = 0
    finished: bool = False
    resumed_at: int | None = None
    task: TaskID | None = None
    connections: int = 1  # as last reported (-v)
    most_connections: int = 1  # a line is printed when a wheel first gets more


class ConsoleProgress:
    """The :class:`~wheelstream.ProgressCallback` of the CLI; also its warning printer and byte counter."""

    def __init__(
        self, console: Console | None = None, *, bars: bool, quiet: bool, verbose: bool = False
    ) -> None:
        self._console = console  # made (stderr_console) when first needed, by whichever thread prints first
        self._console_lock = threading.Lock()
        self.quiet = quiet
        self.verbose = verbose  # say how many connections fetch a wheel (its bar and a line when it changes)
        # A dumb terminal cannot move the cursor back: rich would print one bar, late and garbled. Below
        # ``_MIN_BAR_WIDTH`` columns a bar cannot be one line (a name, a bar and "12.3/45.6 MB"): no bars, the
        # notes still print.
        self.bars = (
            bars
            and not quiet
            and self.console.is_terminal
            and not self.console.is_dumb_terminal
            and self.console.width >= _MIN_BAR_WIDTH
        )
        self._name_width = 40
        self._lock = threading.Lock()
        self._wheels: dict[str, _Wheel] = {}
        self._rich: RichProgress | None = None
        self._wanted = False  # start() was called: draw from the first report
        self._drawing = False
        if self.bars:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            # One line a wheel at any width (a wrapped bar cut its figures to "…" below ~110 columns): the name
            # shortens with the terminal, and narrower ones drop the file count and ETA, then the rate.
            width = self.console.width
            self._name_width = max(14, min(40, width - 64))
            columns = [
                TextColumn("[bold]{task.description}", justify="left"),
                BarColumn(bar_width=None),
                DownloadColumn(),  # decimal, as the rate beside it and every message (human_size)
            ]
            if width >= 70:
                columns.append(TransferSpeedColumn())
            if width >= 110:
                columns += [TimeRemainingColumn(), TextColumn("{task.fields[entries]} files")]
            columns.append(TextColumn("[cyan]{task.fields[note]}"))
            self._rich = RichProgress(*columns, console=self.console, transient=False, expand=True)

    @property
    def console(self) -> Console:
        with self._console_lock:
            if self._console is None:
                self._console = stderr_console()
            return self._console

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bars are drawn from the first report on: rich's refresh thread starts only then, so an install of
        several wheels can still fork its worker processes from a process with one thread (``_workers``)."""
        self._wanted = self._rich is not None

    def stop(self) -> None:
        with self._lock:
            self._wanted = False
            if self._drawing and self._rich is not None:
                self._rich.stop()
                self._drawing = False

    # -- the callback (worker threads) -------------------------------------------------------------------

    def __call__(self, progress: Progress, /) -> None:
        with self._lock:
            if self._wanted and not self._drawing and self._rich is not None:
                self._rich.start()
                self._drawing = True
            wheel = self._wheels.get(progress.wheel)
            if wheel is None:
                wheel = self._wheels[progress.wheel] = _Wheel()
                if self._rich is not None:
                    label = escape(_short(one_line(progress.wheel), self._name_width))  # markup is rendered
                    wheel.task = self._rich.add_task(label, total=None, entries=0, note="")
            message = progress.message
            restarted = message is not None and message.startswith("restarting from zero")
            if message is None or progress.bytes_done or progress.finished:
                wheel.done = progress.bytes_done if not restarted else 0
                wheel.total = progress.total if progress.total is not None else wheel.total
                wheel.entries = max(wheel.entries, progress.entries_done) if not restarted else 0
            if restarted:
                wheel.done, wheel.entries = 0, 0
            wheel.finished = wheel.finished or progress.finished
            first_resume = progress.resumed_at is not None and wheel.resumed_at is None
            if first_resume:
                wheel.resumed_at = progress.resumed_at
            task = wheel.task
            done, total, entries = wheel.done, wheel.total, wheel.entries
            connections = (
                progress.connections if self.verbose and not progress.finished else wheel.connections
            )
            more = connections != wheel.connections
            wheel.connections = connections
            first_more = connections > wheel.most_connections
            wheel.most_connections = max(connections, wheel.most_connections)
            resumed_at = wheel.resumed_at
            # Of several wheels, a finished one's bar goes: with more wheels than rows, rich hid the running
            # ones under "..." while the finished stayed (the summary counts them all at the end).
            drop = progress.finished and task is not None and len(self._wheels) > 1
            if drop:
                wheel.task = None
        if message:
            self._note(progress.wheel, message)
        if first_more:
            self._note(progress.wheel, f"{connections} connections")
        if self._rich is None or task is None:
            return
        if drop:
            self._rich.remove_task(task)
            return
        if message == "from cache":
            self._rich.update(task, total=1, completed=1, note="from cache", entries=progress.entries_done)
        elif restarted or first_resume:
            # reset drops rich's speed samples: a resume's jump to 600 MB is not a download rate
            note = "restarted" if restarted else f"resumed at {human_size(progress.resumed_at)}"
            self._rich.reset(task, total=total, completed=done, entries=entries, note=note)
        elif more:  # -v: the bar says how many connections fetch it
            note = f"resumed at {human_size(resumed_at)} " if resumed_at is not None else ""
            note += f"×{connections}" if connections > 1 else ""
            self._rich.update(task, total=total, completed=done, entries=entries, note=note.strip())
        else:
            self._rich.update(task, total=total, completed=done, entries=entries)

    def _note(self, wheel: str, message: str) -> None:
        if self.quiet:
            return
        line = f"{escape(wheel)}: {escape(message)}"
        style = _note_style(message)
        self.console.print(f"[{style}]{line}[/]" if style else line, highlight=False, soft_wrap=True)

    # -- everything else the CLI prints -------------------------------------------------------------------

    def warn(self, message: str) -> None:
        """Warnings print even with ``-q`` (pip does the same)."""
        self.console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False, soft_wrap=True)

    def where(self) -> tuple[int, int | None]:
        """Bytes held and total bytes of the wheels that have not finished (total None if any is unknown)."""
        with self._lock:
            open_ = [w for w in self._wheels.values() if not w.finished]
        done = sum(w.done for w in open_)
        totals = [w.total for w in open_]
        total = None if not totals or any(t is None for t in totals) else sum(t for t in totals if t)
        return done, total

    def interrupted_message(self) -> str:
        """The contract's ``<wheel>: <cause>``: the wheel still open (the first, and how many more, when several
        are), and the bytes they hold of their total: what the same command resumes from. Once every download
        has finished, the wheels being installed."""
        with self._lock:
            names = list(self._wheels)
            open_names = [name for name, wheel in self._wheels.items() if not wheel.finished]
        if not names:
            return "interrupted before any download started"
        if not open_names:  # the install's own phase: it names what it was installing, as the contract asks
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            return (
                f"{names[0]}{more}: interrupted after every download finished — run the same command again "
                "(nothing is fetched twice)"
            )
        done, total = self.where()
        more = f" and {len(open_names) - 1} more" if len(open_names) > 1 else ""
        return (
            f"{open_names[0]}{more}: interrupted at {human_size(done)} of {human_size(total)} — run the same "
            "command again to resume"
        )

    def summary(
        self,
        verb: str,
        wheels: Sequence[object],
        fetched: int,
        reused: int,
        resumed: int,
        from_cache: int,
        seconds: float,
    ) -> str:
        """One line: ``Installed 2 wheels in 3.1 s: 24.8 MB fetched, 12.0 MB reused (1 resumed, 1 from cache)``;
        ``Installed nothing in 0.2 s`` when every wheel was there already (the lines after it say which)."""
        n = len(wheels)
        if n == 0:
            return f"{verb} nothing in {seconds:.1f} s"
        extra = [f"{resumed} resumed"] if resumed else []
        if from_cache:
            extra.append(f"{from_cache} from cache")
        tail = f" ({', '.join(extra)})" if extra else ""
        return (
            f"{verb} {n} wheel{'s' if n != 1 else ''} in {seconds:.1f} s: {human_size(fetched)} fetched, "
            f"{human_size(reused)} reused{tail}"
        )


# A note's colour says whether it is news to be glad of or trouble the download is working around: a retry was
# green, like a resume. The texts are the downloader's own (``fetch._errors.retrying``, ``_attempts``).
_GOOD = ("resumed at", "from cache")
_TROUBLE = ("restarting from zero", "server ignored Range")


def _note_style(message: str) -> str:
    if message.startswith(_TROUBLE) or "; retry " in message:
        return "yellow"
    return "green" if message.startswith(_GOOD) else ""


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
