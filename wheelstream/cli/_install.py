"""``wheelstream install`` and ``download``: their options (:mod:`wheelstream.cli._options`) gathered into
library arguments.

Sources come from the command line and ``-r`` files (:mod:`wheelstream.cli._requirements`); each gets at most
one sha256, because the library checks one. The call itself runs under :func:`wheelstream.cli._contract.run`.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wheelstream._api import DEFAULT_INDEX_URL
from wheelstream._digests import HEX_DIGITS
from wheelstream._urls import fragment_pairs, redact, shown_text
from wheelstream.cli._contract import guarded, run
from wheelstream.cli._dry_run import DRY_RUN_HELP, told
from wheelstream.cli._options import (
    INDEX_URL_SETTING,
    LINK_MODES,
    PLACEMENT_OPTIONS,
    SharedOptions,
    UserPath,
    common_options,
    environment_options,
    find_env,
    lock_options,
    target_python_options,
    with_options,
)
from wheelstream.cli._requirements import (
    Requirements,
    is_remote,
    parse_hash,
    parse_requirements,
    pinned_with,
    with_marker,
)
from wheelstream.cli._ui import ConsoleProgress, echo_path
from wheelstream.errors import UsageError, one_line
from wheelstream.installer import EnvironmentReport, TargetPython

if TYPE_CHECKING:
    import httpx

    from wheelstream._cache import Cache
    from wheelstream._plan import InstallPlan
    from wheelstream.cli._contract import Outcome

__all__ = ["download_cmd", "install_cmd"]


# -- sources and hashes ------------------------------------------------------------------------------------


@dataclass
class _Common:
    """Options shared by install and download, gathered into library keyword arguments."""

    sources: list[str]
    hashes: dict[str, list[str]]  # a source's allowed sha256s: one, or several of which one must match
    index_url: str
    extra_index_urls: tuple[str, ...]  # asked first, in order
    find_links: tuple[str, ...]  # looked at before any index
    no_index: bool


def _library_arguments(shared: SharedOptions, common: _Common) -> dict[str, Any]:
    """The keyword arguments ``install`` and ``download`` share."""
    return {
        "cache_dir": shared.cache_dir,
        "hashes": common.hashes,
        "index_url": common.index_url,
        "extra_index_urls": common.extra_index_urls,
        "find_links": common.find_links,
        "no_index": common.no_index,
        "jobs": shared.jobs,
        "retries": shared.retries,
        "timeout": shared.timeout,
        "connections": shared.connections,
        "max_unpacked_size": shared.max_unpacked_size,
        "max_entries": shared.max_entries,
        "workers": "processes",  # the command owns its process (library calls stay on threads)
    }


def _gather(shared: SharedOptions, python: str | None, target_python: TargetPython | None) -> _Common:
    """Sources from the command line and ``-r`` files (whose markers hold for ``python``, the interpreter the
    install is for, or the machine ``target_python`` describes), each with the sha256s it allows, and where
    their ``NAME==VERSION`` are looked up."""
    sources, requirements, hash_values = shared.sources, shared.requirements, shared.hash_values
    reqs = Requirements()

    def markers() -> dict[str, str]:  # the interpreter the install is for: its probe is cached
        from wheelstream._api import target_interpreter

        return target_interpreter(python, target_python).marker_environment()

    if not sources and not requirements:
        raise UsageError("nothing to do: give at least one SRC or -r FILE")
    with _UrlReader(shared) as read_url:
        for name in requirements:
            parse_requirements(name, reqs, markers=markers, read_url=read_url)
    if hash_values and len(hash_values) != len(sources):
        raise UsageError(
            f"--hash was given {len(hash_values)} time(s) for {len(sources)} source(s) on the command line; "
            "give one per source, in order (or use --hash=… lines in a -r file)"
        )
    allowed = reqs.hashes  # several on one line (pip-compile writes one per platform's wheel): any may match
    given: list[str] = []
    for number, source in enumerate(sources):
        # pip takes "NAME==V ; MARKER" here too
        kept = with_marker(source, f"SRC {shown_text(source)!r}", markers)
        if kept is None:
            continue
        given.append(kept)
        if hash_values:
            pinned_with(allowed, kept, [parse_hash(hash_values[number], "command line")], "--hash")
    all_sources = given + reqs.sources
    _require_hashes_of_all(
        all_sources, allowed, shared.require_hashes or reqs.require_hashes, hashed=reqs.hashed_elsewhere
    )
    index = (
        shared.index_url
        or reqs.index_url
        or os.environ.get(INDEX_URL_SETTING, "").strip()
        or DEFAULT_INDEX_URL
    )
    # The command line's first, as its --index-url wins over a file's.
    extras = (*shared.extra_index_urls, *reqs.extra_index_urls)
    links = (*shared.find_links, *reqs.find_links)
    if reqs.credentials:  # a -r URL's credentials go to the command's other URLs of its origin
        lent: dict[str, list[str]] = {}
        for source, values in allowed.items():  # two sources one once lent: both their hashes hold
            pinned_with(lent, reqs.lent(source), values, "--hash")
        all_sources, allowed = [reqs.lent(source) for source in all_sources], lent
        index, extras, links = reqs.lent(index), tuple(map(reqs.lent, extras)), tuple(map(reqs.lent, links))
    return _Common(all_sources, allowed, index, extras, links, shared.no_index or reqs.no_index)


class _UrlReader:
    """Reads ``-r https://…`` files through the index's machinery (``index.read_over_http``): the command's
    timeout and retries, the cache's HTTP store. The client is made at the first URL: a command of local
    files never imports httpx's."""

    def __init__(self, shared: SharedOptions) -> None:
        self._shared = shared
        self._client: httpx.Client | None = None
        self._cache: Cache | None = None

    def __enter__(self) -> Callable[[str], bytes]:
        return self._read

    def __exit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.close()

    def _read(self, url: str) -> bytes:
        from wheelstream._cache import Cache
        from wheelstream.index import read_over_http
        from wheelstream.transport import new_client

        if self._client is None or self._cache is None:  # the first URL: made once for every -r file after it
            self._client = new_client(self._shared.timeout)
            self._cache = Cache.made(self._shared.cache_dir)
        return read_over_http(
            url,
            cache=self._cache,
            client=self._client,
            retries=self._shared.retries,
            label="requirements file",
        )


def _require_hashes_of_all(
    sources: Sequence[str], allowed: Mapping[str, list[str]], required: bool, *, hashed: bool = False
) -> None:
    """pip's hash-checking mode, which one ``--hash`` turns on (or ``--require-hashes``): then every source needs
    one (its own ``--hash``, or a hash in a URL's fragment, ``#sha256=`` or another pip reads there), or a file
    that pins most of its wheels installs one unchecked."""
    if not allowed and not required and not hashed:
        return
    missing = [s for s in dict.fromkeys(sources) if s not in allowed and not _fragment_pins(s)]
    if missing:
        shown = ", ".join(shown_text(s) for s in missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        why = "a --hash is given" if allowed or hashed else "--require-hashes is given"
        raise UsageError(f"{why}, so every source needs one (pip's hash-checking mode); none for: {shown}")


def _fragment_pins(source: str) -> bool:
    """Whether a source's URL fragment names a hash (checked, whatever it is, when the source is resolved)."""
    return any(name in HEX_DIGITS for name, _value in fragment_pairs(source.partition("#")[2]))


# -- the commands ------------------------------------------------------------------------------------------


@click.command("install")
@click.option(
    "--target",
    "-t",
    default=None,
    type=UserPath(file_okay=False),
    metavar="DIR",
    help="Install into DIR (pip install --target semantics). Without it: the environment (see --python).",
)
@click.option(
    "--upgrade",
    "-U",
    is_flag=True,
    help="--target: replace items the target already has. An environment install replaces another version "
    "anyway (as pip install -U does there); the same version needs --reinstall.",
)
@click.option(
    "--reinstall",
    "--force-reinstall",
    "reinstall",
    is_flag=True,
    help="Install even a version the environment already has (replacing it).",
)
@environment_options("install")
@with_options(PLACEMENT_OPTIONS)
@click.option(
    "--ignore-tags",
    is_flag=True,
    help="Install even if the wheel's tags or Requires-Python do not fit --python (or --platform's machine).",
)
@target_python_options
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@lock_options
@common_options
def install_cmd(
    shared: SharedOptions,
    target: str | None,
    upgrade: bool,
    reinstall: bool,
    python: str | None,
    prefix: str | None,
    system: bool,
    break_system_packages: bool,
    link_mode: str,
    compile_bytecode: bool,
    ignore_tags: bool,
    target_python: TargetPython | None,
    dry_run: bool,
    extras: tuple[str, ...],
    groups: tuple[str, ...],
) -> None:
    """Install wheels, resumably: into the active virtual environment (or --python's, or --prefix), like
    `pip install --no-deps`, replacing other versions; or into a directory, like `pip install --no-deps
    --target DIR`.

    SRC is an http(s) URL (optionally #sha256=HEX), a file:// URL, a local .whl path, or NAME==VERSION.
    `-r pylock.toml` (PEP 751) installs what the lock selects for the interpreter (--extra, --group).
    """
    from wheelstream._api import install as do_install

    if target is not None and (prefix is not None or system or break_system_packages or reinstall):
        raise UsageError(
            "--target installs into a directory: --prefix, --system, --break-system-packages "
            "and --reinstall are for environments"
        )
    if target is None and target_python is not None:
        raise UsageError(
            "--python-version, --platform, --implementation and --abi describe another machine: they need "
            "--target DIR (an environment has its own interpreter; --dry-run too)"
        )

    lock = lock_file(shared.sources, shared.requirements, shared.hash_values)
    if lock is None and (extras or groups):
        raise UsageError("--extra and --group select from a lock file: give -r pylock.toml")
    if lock is not None and (
        ignore_tags or shared.index_url or shared.extra_index_urls or shared.find_links or shared.no_index
    ):
        raise UsageError(
            "a lock file names its wheels: --ignore-tags, --index-url, --extra-index-url, --find-links and "
            "--no-index do not apply to it"
        )

    def from_lock(ui: ConsoleProgress) -> dict[str, Any]:
        """What ``install_lock`` and ``plan_lock`` both take from the command line."""
        return {
            "extras": extras,
            "groups": groups or None,
            "cache_dir": shared.cache_dir,
            "reinstall": reinstall,
            "upgrade": upgrade,
            "python": python,
            "target_python": target_python,
            "retries": shared.retries,
            "timeout": shared.timeout,
            "on_warning": ui.warn,
        }

    def plan(ui: ConsoleProgress) -> InstallPlan:
        """``--dry-run``: the library's plan for the same command (:mod:`wheelstream._plan`)."""
        environment = None if target is not None else find_env(python, prefix, system, break_system_packages)
        if compile_bytecode and target_python is not None:  # refused as the install would refuse it
            from wheelstream._api import target_interpreter

            target_interpreter(python, target_python, compile_bytecode=True)
        if lock is not None:
            from wheelstream._lock_api import plan_lock

            return plan_lock(lock, target, environment=environment, **from_lock(ui))
        from wheelstream._plan import plan_install

        common = _gather(
            shared, python if environment is None else environment.interpreter.executable, target_python
        )
        return plan_install(
            common.sources,
            target,
            environment=environment,
            cache_dir=shared.cache_dir,
            hashes=common.hashes,
            index_url=common.index_url,
            extra_index_urls=common.extra_index_urls,
            find_links=common.find_links,
            no_index=common.no_index,
            upgrade=upgrade,
            reinstall=reinstall,
            retries=shared.retries,
            timeout=shared.timeout,
            python=python if environment is None else None,
            ignore_tags=ignore_tags,
            on_warning=ui.warn,
            target_python=target_python,
        )

    if dry_run:
        guarded("Planned", shared.quiet, shared.verbose, True, plan, told(shared.quiet, shared.verbose))
        return

    def call(ui: ConsoleProgress) -> Outcome:
        environment = None if target is not None else find_env(python, prefix, system, break_system_packages)
        if lock is not None:
            from wheelstream._lock_api import install_lock

            return install_lock(
                lock,
                target,
                environment=environment,
                **from_lock(ui),
                link_mode=LINK_MODES[link_mode],
                compile_bytecode=compile_bytecode,
                jobs=shared.jobs,
                connections=shared.connections,
                max_unpacked_size=shared.max_unpacked_size,
                max_entries=shared.max_entries,
                progress=ui,
                workers="processes",
            )
        common = _gather(
            shared, python if environment is None else environment.interpreter.executable, target_python
        )
        return do_install(
            common.sources,
            target,
            environment=environment,
            **_library_arguments(shared, common),
            upgrade=upgrade,
            reinstall=reinstall,
            python=python if environment is None else None,
            link_mode=LINK_MODES[link_mode],
            compile_bytecode=compile_bytecode,
            ignore_tags=ignore_tags,
            progress=ui,
            on_warning=ui.warn,
            target_python=target_python,
        )

    result = run("Installed", shared.quiet, shared.verbose, shared.no_progress, call)
    tell_what_changed(result, shared.quiet, shared.verbose)


def tell_what_changed(result: Outcome, quiet: int, verbose: int, removed: str = "replaced") -> None:
    """The lines after the summary: what was already there, what was replaced (or removed), what went in."""
    report = result.report
    if isinstance(report, EnvironmentReport) and not quiet:
        for item in report.skipped:
            click.echo(f"already installed: {one_line(item)} (--reinstall installs it again)", err=True)
        for item in report.removed:
            click.echo(f"{removed} {one_line(item)}", err=True)
    if verbose and report is not None:
        for item in report.installed:
            click.echo(f"installed {one_line(item)}", err=True)  # a wheel names its items


def lock_file(sources: Sequence[str], requirements: Sequence[str], hashes: Sequence[str]) -> str | None:
    """The ``-r pylock.toml`` of the command line, if one is given; a lock is installed alone."""
    if not any(Path(name).name.startswith("pylock.") or name.endswith(".toml") for name in requirements):
        return None  # not even named like a lock: the lock machinery (packaging.pylock, tomllib) stays unimported
    from wheelstream._pylock import is_lock_file

    for name in requirements:
        if is_remote(name) and is_lock_file(urllib.parse.urlsplit(name).path):
            raise UsageError(
                f"a lock file is read from disk: download {redact(name)} first (a requirements file may be a URL)"
            )
    locks = [name for name in requirements if is_lock_file(name)]
    for name in requirements:
        if name not in locks and name.endswith(".toml"):
            # read as a requirements file, its first TOML line would be "not a wheel URL": say what is wrong
            raise UsageError(
                f"{Path(name).name}: a lock file is named pylock.toml or pylock.<name>.toml, with no dot in "
                "<name> (PEP 751)"
            )
    if not locks:
        return None
    if len(locks) > 1 or len(requirements) > 1 or sources or hashes:
        raise UsageError("a lock file (-r pylock.toml) is installed alone: no other SRC, -r or --hash")
    return locks[0]


@click.command("download")
@click.option(
    "--dest",
    "-d",
    required=True,
    type=UserPath(file_okay=False),
    metavar="DIR",
    help="Put the verified .whl files here.",
)
@target_python_options
@common_options
def download_cmd(shared: SharedOptions, dest: str, target_python: TargetPython | None) -> None:
    """Download wheels into DIR, resumably, verifying every zip entry (CRC, sizes, central directory).

    Prints the path of each wheel on stdout.
    """
    from wheelstream._api import download as do_download

    if lock_file([], shared.requirements, []) is not None:
        raise UsageError(
            "download reads wheel sources and requirement files; a lock file (-r pylock.toml) is read by install "
            "and sync"
        )

    def call(ui: ConsoleProgress) -> Outcome:
        common = _gather(shared, None, target_python)
        return do_download(
            common.sources,
            dest,
            **_library_arguments(shared, common),
            progress=ui,
            target_python=target_python,
        )

    result = run("Downloaded", shared.quiet, shared.verbose, shared.no_progress, call)
    for wheel in result.wheels:
        if wheel.path is not None:
            echo_path(wheel.path)
