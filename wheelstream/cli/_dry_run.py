"""``--dry-run``: what ``install`` or ``sync`` would do, said as uv says it, on stdout (it is the command's
result, as ``download`` prints its paths there): a line of counts, then one line per distribution, ``-`` for
what goes and ``+`` for what comes. What the library's plan cannot promise is said in its warnings
(:mod:`wheelstream._plan`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from packaging.utils import canonicalize_name

from wheelstream._progress import human_size
from wheelstream.errors import one_line

if TYPE_CHECKING:
    from collections.abc import Callable

    from wheelstream._plan import InstallPlan
    from wheelstream.cli._ui import ConsoleProgress

__all__ = ["DRY_RUN_HELP", "tell_plan", "told"]

DRY_RUN_HELP = (
    "Say what would be installed, replaced and removed, and what would be downloaded, without fetching a "
    "wheel or changing anything (indexes are still asked)."
)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def tell_plan(plan: InstallPlan, quiet: int, verbose: int) -> None:
    """The plan on stdout; the wheels already installed on stderr, as an install says them (not with ``-q``)."""
    if not quiet:
        for item in plan.skipped:
            click.echo(f"already installed: {one_line(item)} (--reinstall installs it again)", err=True)
    if not plan.install and not plan.remove:
        click.echo("Would change nothing")
        return
    if plan.install:
        click.echo(f"Would install {_count(len(plan.install), 'wheel')}{_fetching(plan)}")
    if plan.remove:
        click.echo(f"Would uninstall {_count(len(plan.remove), 'distribution')}")
    for gone in (*(w.replaces for w in plan.install if w.replaces), *plan.remove):
        name, _, version = gone.partition(" ")  # as installed: normalized, as the + lines are
        click.echo(f" - {one_line(canonicalize_name(name))}=={one_line(version)}")
    for wheel in plan.install:
        line = f" + {one_line(wheel.name)}=={one_line(wheel.version)}"
        if verbose:
            line += f"  {one_line(wheel.filename)} from {one_line(wheel.source)}"
        click.echo(line)


def told(quiet: int, verbose: int) -> Callable[[ConsoleProgress, InstallPlan], None]:
    """:func:`tell_plan` as ``_contract.guarded``'s ``after``: said inside the command's contract, so a Ctrl-C
    while it prints is the contract's one line."""
    return lambda _ui, plan: tell_plan(plan, quiet, verbose)


def _fetching(plan: InstallPlan) -> str:
    """``: 2 to download (12.3 MB), 1 to resume (600.0 MB held), 1 from the cache, 1 local file``."""
    parts = []
    new = [w for w in plan.install if w.fetch == "download"]
    if new:
        sizes = [w.size for w in new]
        known = f" ({human_size(sum(s for s in sizes if s is not None))})" if None not in sizes else ""
        parts.append(f"{len(new)} to download{known}")
    resumed = [w for w in plan.install if w.fetch == "resume"]
    if resumed:
        parts.append(f"{len(resumed)} to resume ({human_size(sum(w.held for w in resumed))} held)")
    cached = sum(1 for w in plan.install if w.fetch == "cached")
    if cached:
        parts.append(f"{cached} from the cache")
    local = sum(1 for w in plan.install if w.fetch == "local")
    if local:
        parts.append(_count(local, "local file"))
    return ": " + ", ".join(parts)
