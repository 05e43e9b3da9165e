"""``wheelstream uninstall NAME...``, ``wheelstream list`` and ``wheelstream sync LOCK``: an environment's
distributions, as pip and uv show, remove and sync them. The environment is found as ``install`` finds it
(the active venv, ``--python``, ``--prefix``); removing is one transaction (:func:`wheelstream.installer.
uninstall`), so a kill in the middle is finished by the next command, and a distribution without RECORD is a
one-line error before anything goes. ``sync`` installs and uninstalls in one transaction too
(:mod:`wheelstream._lock_api`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from wheelstream.cli._contract import fail, guarded, run
from wheelstream.cli._dry_run import DRY_RUN_HELP, told
from wheelstream.cli._install import tell_what_changed
from wheelstream.cli._options import (
    LINK_MODES,
    OUTPUT_OPTIONS,
    PLACEMENT_OPTIONS,
    RUN_OPTIONS,
    UserPath,
    environment_options,
    find_env,
    lock_options,
    throwaway_cache,
    with_options,
)
from wheelstream.cli._ui import ConsoleProgress
from wheelstream.errors import WheelstreamError, one_line

if TYPE_CHECKING:
    from wheelstream.cli._contract import Outcome

__all__ = ["list_cmd", "sync_cmd", "uninstall_cmd"]


@click.command("uninstall")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@environment_options("uninstall")
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
        keep: set[str] = set()
        from wheelstream._lock_api import own_distributions, runs_this_program

        if runs_this_program(env):
            # what this program imports (h11 gone, every later command was a traceback); itself may go
            keep = own_distributions() - {"wheelstream"}
        report = uninstall(list(names), env, on_warning=warn, keep=keep)
    except WheelstreamError as exc:
        fail(None, exc, exc.exit_code)
    except OSError as exc:  # the environment cannot be read or changed (permissions, a read-only file system)
        fail(None, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)
    if not quiet:
        for item in report.removed:
            click.echo(f"removed {one_line(item)}", err=True)
        click.echo(
            f"Uninstalled {len(report.removed)} distribution(s) from {report.root}: "
            f"{report.files_removed} file(s) removed",
            err=True,
        )


@click.command("list")
@environment_options("list")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["columns", "freeze", "json"]),
    default="columns",
    show_default=True,
    help="columns: a table; freeze: NAME==VERSION lines (an -r file); json: [{name, version, installer}], "
    "as pip list --format.",
)
def list_cmd(
    python: str | None, prefix: str | None, system: bool, break_system_packages: bool, output_format: str
) -> None:
    """The distributions of an environment: name, version and the installer that put each there."""
    from wheelstream.installer import installed_distributions
    from wheelstream.installer._recovery import unfinished

    try:
        env = find_env(python, prefix, system, break_system_packages=True)
    except WheelstreamError as exc:
        fail(None, exc, exc.exit_code)
    if unfinished(env.root):  # listing only reads: finishing it is the next install's or uninstall's work
        click.echo(
            f"warning: {one_line(str(env.root))}: an install was interrupted (or is running): what is listed may "
            "be part old, part new until the next install or uninstall into it finishes it",
            err=True,
        )
    dists = installed_distributions(env)
    if output_format == "json":
        import json

        # pip's keys, and ours: the name and version as written (JSON escapes what one_line would)
        rows = [{"name": d.name, "version": d.version, "installer": d.installer} for d in dists]
        click.echo(json.dumps(rows))
        return
    if output_format == "freeze":
        # ``pip list --format=freeze``: pins an -r file reads back (``pip freeze`` writes ``NAME @ URL`` too)
        for d in dists:
            click.echo(f"{one_line(d.name)}=={one_line(d.version)}")
        return
    rows_shown = [(one_line(d.name), one_line(d.version), one_line(d.installer) or "-") for d in dists]
    widths = [
        max([len(title), *(len(row[i]) for row in rows_shown)]) for i, title in enumerate(("Name", "Version"))
    ]
    click.echo(f"{'Name':<{widths[0]}}  {'Version':<{widths[1]}}  Installer")
    click.echo(f"{'-' * widths[0]}  {'-' * widths[1]}  ---------")
    for name, version, installer in rows_shown:
        click.echo(f"{name:<{widths[0]}}  {version:<{widths[1]}}  {installer}")


@click.command("sync")
@click.argument("lock", type=UserPath(dir_okay=False), metavar="LOCK")
@environment_options("sync")
@lock_options
@click.option(
    "--reinstall",
    "--force-reinstall",
    "reinstall",
    is_flag=True,
    help="Install every locked wheel again, even one already there.",
)
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@with_options([*PLACEMENT_OPTIONS, *RUN_OPTIONS, *OUTPUT_OPTIONS])
@throwaway_cache
def sync_cmd(
    lock: str,
    python: str | None,
    prefix: str | None,
    system: bool,
    break_system_packages: bool,
    extras: tuple[str, ...],
    groups: tuple[str, ...],
    reinstall: bool,
    dry_run: bool,
    link_mode: str,
    compile_bytecode: bool,
    cache_dir: str | None,
    jobs: int,
    retries: int,
    timeout: float,
    connections: int | None,
    quiet: int,
    verbose: int,
    no_progress: bool,
) -> None:
    """Make an environment hold exactly what a pylock.toml (PEP 751) selects, like `uv pip sync`: install what
    is missing or different, uninstall what the lock does not list, leave what matches. One transaction."""
    from wheelstream._lock_api import install_lock, plan_lock

    def chosen(ui: ConsoleProgress) -> dict[str, Any]:
        """What ``install_lock`` and ``plan_lock`` both take for a sync."""
        return {
            "environment": find_env(python, prefix, system, break_system_packages),
            "extras": extras,
            "groups": groups or None,
            "sync": True,
            "cache_dir": cache_dir,
            "reinstall": reinstall,
            "retries": retries,
            "timeout": timeout,
            "on_warning": ui.warn,
        }

    if dry_run:
        guarded(
            "Planned", quiet, verbose, True, lambda ui: plan_lock(lock, **chosen(ui)), told(quiet, verbose)
        )
        return

    def call(ui: ConsoleProgress) -> Outcome:
        return install_lock(
            lock,
            **chosen(ui),
            link_mode=LINK_MODES[link_mode],
            compile_bytecode=compile_bytecode,
            jobs=jobs,
            connections=connections,
            progress=ui,
            workers="processes",
        )

    result = run("Installed", quiet, verbose, no_progress, call)
    tell_what_changed(result, quiet, verbose, removed="removed or replaced")
