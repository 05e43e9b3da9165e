"""``wheelstream uninstall NAME...`` and ``wheelstream list``: an environment's distributions, as pip and uv
show and remove them. The environment is found as ``install`` finds it (the active venv, ``--python``,
``--prefix``); removing is one transaction (:func:`wheelstream.installer.uninstall`), so a kill in the middle
is finished by the next command, and a distribution without RECORD is a one-line error before anything goes.
"""

from __future__ import annotations

import click

from wheelstream.cli._contract import fail
from wheelstream.cli._options import environment_options, find_env
from wheelstream.errors import WheelstreamError, one_line

__all__ = ["list_cmd", "uninstall_cmd"]


@click.command("uninstall")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@environment_options
@click.option("-q", "--quiet", count=True, help="Only errors and warnings.")
def uninstall_cmd(
    names: tuple[str, ...],
    python: str | None,
    prefix: str | None,
    system: bool,
    break_system_packages: bool,
    quiet: int,
) -> None:
    """Remove distributions from an environment by their RECORD, like `pip uninstall -y`."""
    from wheelstream.installer import uninstall

    def warn(message: str) -> None:
        click.echo(f"warning: {one_line(message)}", err=True)

    try:
        env = find_env(python, prefix, system, break_system_packages)
        report = uninstall(list(names), env, on_warning=warn)
    except WheelstreamError as exc:
        fail(None, exc, exc.exit_code)
    if not quiet:
        for item in report.removed:
            click.echo(f"removed {one_line(item)}", err=True)
        click.echo(
            f"Uninstalled {len(report.removed)} distribution(s) from {report.root}: "
            f"{report.files_removed} file(s) removed",
            err=True,
        )


@click.command("list")
@environment_options
def list_cmd(python: str | None, prefix: str | None, system: bool, break_system_packages: bool) -> None:
    """The distributions of an environment: name, version and the installer that put each there."""
    from wheelstream.installer import installed_distributions

    try:
        env = find_env(python, prefix, system, break_system_packages=True)
    except WheelstreamError as exc:
        fail(None, exc, exc.exit_code)
    dists = installed_distributions(env)
    rows = [(one_line(d.name), one_line(d.version), one_line(d.installer) or "-") for d in dists]
    widths = [
        max([len(title), *(len(row[i]) for row in rows)]) for i, title in enumerate(("Name", "Version"))
    ]
    click.echo(f"{'Name':<{widths[0]}}  {'Version':<{widths[1]}}  Installer")
    click.echo(f"{'-' * widths[0]}  {'-' * widths[1]}  ---------")
    for name, version, installer in rows:
        click.echo(f"{name:<{widths[0]}}  {version:<{widths[1]}}  {installer}")
