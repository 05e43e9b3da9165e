"""The ``wheelstream`` command line (DESIGN §6)."""

from __future__ import annotations

import click

from wheelstream import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wheelstream")
def cli() -> None:
    """Get Python wheels from a URL onto disk, resuming download and unpack after any interruption."""


def _register_testbed() -> None:
    from wheelstream.testing.cli import testbed

    cli.add_command(testbed)


_register_testbed()


def main() -> None:
    cli()
