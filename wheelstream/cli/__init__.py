"""The ``wheelstream`` command line (DESIGN §6): ``install``, ``uninstall``, ``list``, ``download``, ``cache``,
``testbed``.

A thin layer over :func:`wheelstream.install` / :func:`wheelstream.download`; what it adds is the shell's
contract (exit codes, one ``error:`` line, SIGTERM as Ctrl-C: ``_contract``). The modules:

- ``_install``: ``install`` and ``download``, gathered into library arguments;
- ``_options``: the options commands share (install/download's, and the environment's: ``--python``, ...);
- ``_environment_commands``: ``uninstall`` and ``list``;
- ``_requirements``: ``-r FILE``, the part of pip's requirements syntax that needs no resolver;
- ``_cache_commands``: ``cache dir|list|clean``;
- ``_ui``: what a person at a terminal sees (rich, imported only to draw or print);
- ``_process``: process-wide tuning the program may do because it owns its process.

We run click with ``standalone_mode=False`` because click's own handling turns Ctrl-C into "Aborted!" and
exit 1; everything click would have done for usage errors (message + exit 2) is done in :func:`main`.
"""

from __future__ import annotations

from wheelstream.cli._process import rare_gc, skip_httpx_cli

# This package is the program's first import, so it decides what is imported before httpx is: the call comes
# before the imports that bring httpx in (``_install`` imports the library).
skip_httpx_cli()

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click

from wheelstream import __version__
from wheelstream.errors import Interrupted, UsageError

__all__ = ["cli", "main"]

# command -> (module, attribute): each command's module (and the library behind it: httpx, the installer, the
# fault server) is imported only when that command runs, or when --help lists them all. ``--version`` imports
# none of them (docs/performance.md#d-lazy-imports).
_COMMANDS = {
    "install": ("wheelstream.cli._install", "install_cmd"),
    "uninstall": ("wheelstream.cli._environment_commands", "uninstall_cmd"),
    "list": ("wheelstream.cli._environment_commands", "list_cmd"),
    "sync": ("wheelstream.cli._environment_commands", "sync_cmd"),
    "download": ("wheelstream.cli._install", "download_cmd"),
    "cache": ("wheelstream.cli._cache_commands", "cache"),
    "testbed": ("wheelstream.testing.cli", "testbed"),
}


class _Interrupted(Exception):
    """A command interrupted outside its library call; ``args[0]`` names the command."""


class _Commands(click.Group):
    """Loads a command's module when the command is asked for (see ``_COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def invoke(self, ctx: click.Context) -> Any:
        """A Ctrl-C (or SIGTERM, SIGHUP) that escapes a command — one that is no library call under
        ``_contract.run``: ``uninstall``, a waiting ``cache clean`` — leaves as :class:`_Interrupted`: as a
        ``KeyboardInterrupt``, click printed a blank line before the contract's one ``error:`` line."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted(ctx.invoked_subcommand) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = _COMMANDS.get(cmd_name)
        if where is None:
            return None
        command = getattr(importlib.import_module(where[0]), where[1])
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, "-V", "--version", prog_name="wheelstream")
def cli() -> None:
    """Get Python wheels from a URL onto disk, resuming download and unpack after any interruption.

    No dependency resolution: every wheel you want is named on the command line or in -r files.
    """


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The command line, for the ``wheelstream`` script and ``python -m wheelstream`` (``wheelstream.__main__``,
    which keeps the signal contract while this package imports) and for a host calling in-process.

    The command runs with the cyclic collector running rarely (:func:`~wheelstream.cli._process.rare_gc`);
    the caller's thresholds come back on return. Without ``argv`` this is the process's own command line and
    the process ends when the command does, so the heap is frozen on the way out; with ``argv`` (a host or a
    test calling in-process) it is left alone.
    """
    if argv is None:  # the process is the command's: its streams and limits are ours to set
        _own_process()
    with rare_gc(freeze_on_exit=argv is None):
        _main(argv)


def _own_process() -> None:
    """What a command owning its process sets before anything runs.

    * A standard stream the caller closed (``>&-``, ``2>&-``) is ``/dev/null``: Python makes it None, and the
      first write after a finished install was a traceback and exit 1 (pip and uv exit 0).
    * The soft limit of open files goes up to the hard one, as uv raises it: each unpacked tree holds a lock
      file until the commit, so a 250-wheel lock failed at macOS's default 256 ("Too many open files").
    * A working directory that was deleted is said at once (exit 2), as uv says it: paths relative to it
      failed later as "cannot install into DIR: No such file or directory", naming neither.
    """
    import os
    import sys

    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115 - for the process's life
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # uv's cap (children inherit it); macOS refuses more than kern.maxfilesperproc (10240 by default) even
        # under an unlimited hard limit: that is tried next
        for wanted in (min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else 1 << 20, 10240):
            if soft == resource.RLIM_INFINITY or soft >= wanted:
                break
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                break
            except (ValueError, OSError):
                continue
    except ImportError:  # no resource module (Windows)
        pass
    try:
        os.getcwd()
    except FileNotFoundError:
        print("error: the current directory no longer exists: cd to one that does", file=sys.stderr)
        raise SystemExit(2) from None


def _main(argv: Sequence[str] | None) -> NoReturn:
    with _ending_signals_as_ctrl_c():
        _run_command(argv)


@contextlib.contextmanager
def _ending_signals_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, ``docker stop``, ``timeout``) and SIGHUP (a closed terminal) take the Ctrl-C path in
    every command, as docs/cli.md says: exit 130 with one line. Only ``install``/``download``/``sync`` did; an
    ``uninstall`` or a waiting ``cache clean`` died with 143 and no word. A signal the caller ignores
    (``nohup``) stays ignored; the handlers in place come back on return (``main(argv)`` in-process)."""
    import signal

    from wheelstream._interrupts import INTERRUPTS

    previous: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread: nothing to set
        for signum in INTERRUPTS - {signal.SIGINT}:
            # ignored (``nohup``) stays ignored; one a host set in C (None) cannot be given back: left alone
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                previous[signum] = signal.signal(signum, _as_ctrl_c)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _as_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_command(argv: Sequence[str] | None) -> NoReturn:
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="wheelstream", standalone_mode=False
        )
        _flush_stdout()
    except (OSError, UnicodeEncodeError) as exc:
        # the results could not be written: stdout on a full disk (click takes EPIPE itself), or a stdout
        # whose encoding cannot hold what is printed (PYTHONIOENCODING=latin-1 and a CJK path)
        _stdout_failed(exc)
    except click.ClickException as exc:  # usage errors: click's message, exit 2
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (click.exceptions.Abort, KeyboardInterrupt, _Interrupted) as exc:
        # before a command's own handling, a second Ctrl-C while it wrapped up, or a command of no library call
        from wheelstream.cli._contract import INTERRUPTED, fail  # (imported here: --version does without)

        resumable = not isinstance(exc, _Interrupted) or exc.args[0] in ("install", "download", "sync")
        fail(None, INTERRUPTED if resumable else "interrupted", Interrupted.exit_code)
    except UsageError as exc:
        from wheelstream.cli._contract import fail

        fail(None, exc, exc.exit_code)
    raise SystemExit(code if isinstance(code, int) else 0)


def _flush_stdout() -> None:
    import sys

    sys.stdout.flush()  # here, where a failure is one line, not at the interpreter's exit (a traceback)


def _stdout_failed(exc: OSError | UnicodeEncodeError) -> NoReturn:
    """stdout could not take the results (``> /dev/full``): one line on stderr, exit 1 — it was a traceback. What
    is still buffered goes to ``/dev/null``, so the interpreter's last flush does not print one either."""
    import os
    import sys

    from wheelstream.cli._contract import fail

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    why = exc.strerror if isinstance(exc, OSError) else None
    fail(None, f"cannot write the output: {why or exc}", 1)
