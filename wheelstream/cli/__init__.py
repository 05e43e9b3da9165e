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

from collections.abc import Sequence
from typing import NoReturn

import click

from wheelstream import __version__
from wheelstream.cli._cache_commands import cache
from wheelstream.cli._contract import INTERRUPTED, fail
from wheelstream.cli._environment_commands import list_cmd, sync_cmd, uninstall_cmd
from wheelstream.cli._install import download_cmd, install_cmd
from wheelstream.errors import Interrupted, UsageError

__all__ = ["cli", "main"]


class _Commands(click.Group):
    """Loads ``testbed`` (the fault server: a dozen modules) only when it is asked for, so ``install``
    does not pay for importing it on every start."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "testbed"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "testbed":
            from wheelstream.testing.cli import testbed

            return testbed
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, "-V", "--version", prog_name="wheelstream")
def cli() -> None:
    """Get Python wheels from a URL onto disk, resuming download and unpack after any interruption.

    No dependency resolution: every wheel you want is named on the command line or in -r files.
    """


cli.add_command(install_cmd)
cli.add_command(uninstall_cmd)
cli.add_command(list_cmd)
cli.add_command(sync_cmd)
cli.add_command(download_cmd)
cli.add_command(cache)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``wheelstream`` script and ``python -m wheelstream``.

    The command runs with the cyclic collector running rarely (:func:`~wheelstream.cli._process.rare_gc`);
    the caller's thresholds come back on return. Without ``argv`` this is the process's own command line and
    the process ends when the command does, so the heap is frozen on the way out; with ``argv`` (a host or a
    test calling in-process) it is left alone.
    """
    with rare_gc(freeze_on_exit=argv is None):
        _main(argv)


def _main(argv: Sequence[str] | None) -> NoReturn:
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="wheelstream", standalone_mode=False
        )
    except click.ClickException as exc:  # usage errors: click's message, exit 2
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (click.exceptions.Abort, KeyboardInterrupt):  # before a command's own handling, or a second Ctrl-C
        fail(None, INTERRUPTED, Interrupted.exit_code)  # while it wrapped up
    except UsageError as exc:
        fail(None, exc, exc.exit_code)
    raise SystemExit(code if isinstance(code, int) else 0)
