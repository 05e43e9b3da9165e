"""Command-line options more than one command takes, and the ``SIZE`` type they read.

``common_options`` are install's and download's: they reach the command packed into one ``SharedOptions``, so
each command's signature lists only its own options and a new shared option is added in one place.
``environment_options`` are every command that works on an environment (install, sync, uninstall, list), so all of
them find it alike (``find_env``: the active venv when the options name none). In a ``SIZE`` a bare unit
letter is binary (``16G`` = 16 GiB), as are ``KiB``/``MiB``/...; ``kB``/``MB``/... are decimal.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import click

from wheelstream._api import DEFAULT_INDEX_URL, DEFAULT_JOBS, MAX_CONNECTIONS, MAX_JOBS
from wheelstream.installer import Environment, LinkMode, TargetPython
from wheelstream.zip import DEFAULT_MAX_ENTRIES

__all__ = [
    "LINK_MODES",
    "OUTPUT_OPTIONS",
    "PLACEMENT_OPTIONS",
    "RUN_OPTIONS",
    "SharedOptions",
    "UserPath",
    "common_options",
    "environment_options",
    "find_env",
    "lock_options",
    "parse_size",
    "with_options",
]


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 10**3,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 10**6,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 10**9,
    "t": 1 << 40,
    "tib": 1 << 40,
    "tb": 10**12,
}


def parse_size(text: str) -> int:
    """``16GiB``, ``16G`` (binary), ``500MB`` (decimal), ``1048576`` → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 16GiB, 500M, 1000000)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class _Size(click.ParamType):  # type: ignore[type-arg]  # generic only in click ≥ 8.2 stubs
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size < 1:
            self.fail(f"{value!r} is not a size of at least one byte", param, ctx)
        return size


class UserPath(click.Path):
    """A path option whose leading ``~`` is the user's home, as pip reads its path options: the shell expands
    ``~`` only at the start of a word, so ``--target=~/site`` would otherwise make a directory named ``~``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            value = os.path.expanduser(value)
        return super().convert(value, param, ctx)


INDEX_URL_SETTING = (
    "WHEELSTREAM_INDEX_URL"  # the environment's index (a mirror), as PIP_INDEX_URL and UV_INDEX_URL
)

_SOURCE_OPTIONS = [
    click.argument("sources", nargs=-1, metavar="SRC..."),
    click.option(
        "-r",
        "--requirement",
        "requirements",
        multiple=True,
        type=UserPath(dir_okay=False),
        metavar="FILE",
        help="Read sources (and --hash lines) from FILE (a path, or an http(s) URL). Repeatable.",
    ),
    click.option(
        "--require-hashes",
        is_flag=True,
        help="Every source needs a hash (--hash, or a URL's #sha256=), as one --hash already asks (pip's).",
    ),
    click.option(
        "--hash",
        "hash_values",
        multiple=True,
        metavar="ALGORITHM:HEX",
        help="Expected hash of the wheel (sha256:, sha384: or sha512:); one per SRC, in order.",
    ),
    click.option(
        "--index-url",
        "-i",
        default=None,
        metavar="URL",
        help=f"Simple index for NAME==VERSION (PEP 691/503). [default: a -r file's --index-url, else "
        f"${INDEX_URL_SETTING}, else {DEFAULT_INDEX_URL}]",
    ),
    click.option(
        "--extra-index-url",
        "extra_index_urls",
        multiple=True,
        metavar="URL",
        help="Another index, asked before --index-url (repeatable, in order); a project comes from the first "
        "index that lists it (uv's rule).",
    ),
    click.option(
        "--find-links",
        "-f",
        "find_links",
        multiple=True,
        metavar="DIR|FILE|URL",
        help="Wheels on hand for NAME==VERSION: a directory's, a .whl file, or those an HTML page (a URL or an "
        ".html file) links to (repeatable); "
        "candidates beside the index's (of equals, the one on hand is read in place).",
    ),
    click.option(
        "--no-index", is_flag=True, help="Ask no index: NAME==VERSION comes from --find-links only."
    ),
]

# How a command that fetches runs: its cache, parallelism, patience and output.
RUN_OPTIONS = [
    click.option(
        "--cache-dir",
        default=None,
        type=UserPath(file_okay=False),
        metavar="DIR",
        help="Cache root [default: $WHEELSTREAM_CACHE_DIR or the user cache dir].",
    ),
    click.option(
        "--no-cache",
        "--no-cache-dir",
        "no_cache",
        is_flag=True,
        envvar="WHEELSTREAM_NO_CACHE",
        help="A throwaway cache, removed when the command ends (uv's --no-cache, pip's --no-cache-dir): "
        "nothing is left behind, and a later command cannot resume what this one did not finish.",
    ),
    click.option(
        "--jobs",
        "-j",
        default=DEFAULT_JOBS,
        show_default=True,
        type=click.IntRange(1, MAX_JOBS),
        help="Wheels downloaded in parallel.",
    ),
    click.option(
        "--retries",
        default=5,
        show_default=True,
        type=click.IntRange(0),
        help="Attempts in a row without progress before giving up (exit 3).",
    ),
    click.option(
        "--timeout",
        default=30.0,
        show_default=True,
        type=click.FloatRange(0, 1e9, min_open=True, max_open=True),
        metavar="S",
        help="Connect/read timeout in seconds.",
    ),
    click.option(
        "--connections",
        default=None,
        type=click.IntRange(1, MAX_CONNECTIONS),
        metavar="N",
        # click adds the range: "[1<=x<=8]"
        help="Connections per big wheel [default: automatic: up to 4 when one connection is the bottleneck].",
    ),
]

_LIMIT_OPTIONS = [
    click.option(
        "--max-unpacked-size",
        default="16GiB",
        show_default=True,
        type=_Size(),
        help="Refuse a wheel that inflates past SIZE (zip-bomb guard).",
    ),
    click.option(
        "--max-entries",
        default=DEFAULT_MAX_ENTRIES,
        show_default=True,
        type=click.IntRange(1),
        metavar="N",
        help="Refuse a wheel of more than N entries (memory grows with them).",
    ),
]

OUTPUT_OPTIONS = [
    click.option("-q", "--quiet", count=True, help="Only errors and warnings."),
    click.option("-v", "--verbose", count=True, help="Say more (-vv: tracebacks)."),
    click.option("--no-progress", is_flag=True, help="No progress bars (the summary still prints)."),
]

# How files reach an install's destination (install and sync).
PLACEMENT_OPTIONS = [
    click.option(
        "--link-mode",
        type=click.Choice(["move", "copy", "hardlink"]),
        default="move",
        show_default=True,
        help="move: unpack once and move the files in (the cache keeps the wheel file); copy/hardlink: "
        "keep the unpacked wheel in the cache and copy or hardlink from it.",
    ),
    click.option(
        "--compile-bytecode", is_flag=True, help="Write .pyc files, as pip does without --no-compile."
    ),
]

LINK_MODES: dict[str, LinkMode] = {"move": "move", "copy": "copy", "hardlink": "hardlink"}


def with_options(options: list[Callable[[Any], Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator applying ``options`` in the order ``--help`` lists them."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def throwaway_cache(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--no-cache``: the command runs with ``cache_dir`` a new temporary directory, removed when it ends
    (however it ends: a failure or Ctrl-C too; a kill leaves it to the system's temporary files). Goes between
    ``RUN_OPTIONS`` and the command."""

    @functools.wraps(fn)
    def choosing(**kwargs: Any) -> Any:
        if not kwargs.pop("no_cache"):
            return fn(**kwargs)
        if kwargs["cache_dir"] is not None:
            raise click.UsageError("--no-cache and --cache-dir: give one")
        import tempfile

        from wheelstream.cli._contract import cache_thrown_away

        with (
            cache_thrown_away(),
            tempfile.TemporaryDirectory(prefix="wheelstream-cache-", ignore_cleanup_errors=True) as cache_dir,
        ):
            kwargs["cache_dir"] = cache_dir
            return fn(**kwargs)

    return choosing


# pip's options whose point always holds here, accepted (and not listed by --help) so that a ``pip install``
# line works as it is, as a -r file's do (``_requirements._HELD_ANYWAY``): no dependencies are installed
# (--no-deps), only wheels (--only-binary, whatever it names; --prefer-binary), an exact pin takes a
# pre-release it names (--pre), bytecode only with --compile-bytecode (--no-compile), and --trusted-host
# asks for no trust an http index needs.
_HELD_ANYWAY = [
    click.option("--no-deps", "held_no_deps", is_flag=True, hidden=True),
    click.option("--only-binary", "held_only_binary", multiple=True, hidden=True),
    click.option("--prefer-binary", "held_prefer_binary", is_flag=True, hidden=True),
    click.option("--pre", "held_pre", is_flag=True, hidden=True),
    click.option("--no-compile", "held_no_compile", is_flag=True, hidden=True),
    click.option("--trusted-host", "held_trusted_host", multiple=True, hidden=True),
]


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options install and download share, handed to the command as one :class:`SharedOptions`."""

    @functools.wraps(fn)
    def packed(**kwargs: Any) -> Any:
        shared = SharedOptions(**{name: kwargs.pop(name) for name in _SHARED_NAMES})
        for name in [name for name in kwargs if name.startswith("held_")]:
            del kwargs[name]
        return fn(shared, **kwargs)

    options = [*_SOURCE_OPTIONS, *RUN_OPTIONS, *_LIMIT_OPTIONS, *OUTPUT_OPTIONS, *_HELD_ANYWAY]
    return with_options(options)(throwaway_cache(packed))


class SharedOptions(NamedTuple):
    """What ``common_options`` read from the command line, handed to the command as one argument."""

    sources: tuple[str, ...]
    requirements: tuple[str, ...]
    hash_values: tuple[str, ...]
    index_url: str | None
    extra_index_urls: tuple[str, ...]
    find_links: tuple[str, ...]
    no_index: bool
    require_hashes: bool
    cache_dir: str | None
    jobs: int
    retries: int
    timeout: float
    connections: int | None
    max_unpacked_size: int
    max_entries: int
    quiet: int
    verbose: int
    no_progress: bool


_SHARED_NAMES = SharedOptions._fields


# What ``--python`` and ``--prefix`` do, in each command's own words: (--python's help, --prefix's verb).
_ACTIVE = "[default: the active virtual environment, else a .venv here or above]"
_ENVIRONMENT_HELP = {
    "install": (
        f"Interpreter whose environment to install into {_ACTIVE}; with --target, the one the install is for "
        "(tags, shebangs, --home layout) [default: the one running wheelstream].",
        "Install into",
    ),
    "sync": (f"Interpreter whose environment to sync {_ACTIVE}.", "Sync"),
    "uninstall": (f"Interpreter whose environment to remove distributions from {_ACTIVE}.", "Remove from"),
    "list": (f"Interpreter whose environment to list {_ACTIVE}.", "List"),
}


def environment_options(
    command: Literal["install", "sync", "uninstall", "list"],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Where ``command`` (install, sync, uninstall or list) finds its environment: pip's and uv's options, the
    active venv when they name none. Each command's help says what it does there (``list`` only reads, so
    ``--break-system-packages`` changes nothing for it)."""
    python_help, prefix_verb = _ENVIRONMENT_HELP[command]
    breaking = (
        "Accepted for symmetry: listing only reads, so an EXTERNALLY-MANAGED (PEP 668) environment is listed "
        "anyway."
        if command == "list"
        else "Allow an environment marked EXTERNALLY-MANAGED (PEP 668)."
    )
    options = [
        click.option(
            "--python",
            default=None,
            type=UserPath(),
            metavar="PATH",
            help=python_help,
        ),
        click.option(
            "--prefix",
            default=None,
            type=UserPath(file_okay=False),
            metavar="DIR",
            help=f"{prefix_verb} DIR with pip's --prefix scheme (lib/pythonX.Y/site-packages, bin, ...).",
        ),
        click.option(
            "--system", is_flag=True, help="Allow an interpreter that is not in a virtual environment."
        ),
        click.option("--break-system-packages", is_flag=True, help=breaking),
    ]
    return with_options(options)


def find_env(
    python: str | None, prefix: str | None, system: bool, break_system_packages: bool
) -> Environment:
    """The environment the options name (the active venv when they name none)."""
    from wheelstream.installer import find_environment

    return find_environment(python, prefix=prefix, system=system, break_system_packages=break_system_packages)


def lock_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What a lock file (PEP 751) installs: its extras and dependency groups."""
    options = [
        click.option(
            "--extra", "extras", multiple=True, metavar="NAME", help="A lock's extra to install (repeatable)."
        ),
        click.option(
            "--group",
            "groups",
            multiple=True,
            metavar="NAME",
            help="A lock's dependency group to install (repeatable) [default: the lock's default groups].",
        ),
    ]
    return with_options(options)(fn)


def target_python_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """pip's options for wheels meant for another machine, handed to the command as one ``target_python``
    (:class:`~wheelstream.installer.TargetPython`, or None when none is given)."""

    @functools.wraps(fn)
    def packed(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in ("version", "platforms", "implementation", "abis")}
        kwargs["target_python"] = TargetPython(**given) if any(given.values()) else None
        return fn(**kwargs)

    machine = "the machine the wheels are for, as pip's option"
    own = "[default: the interpreter's: --python's, else the running one]"
    options = [
        click.option(
            "--python-version",
            "version",
            metavar="X.Y",
            help=f"Python version of {machine} (3.12, 312 or 3.12.1): tags, Requires-Python, markers {own}.",
        ),
        click.option(
            "--platform",
            "platforms",
            multiple=True,
            metavar="TAG",
            help=f"Platform tag of {machine} (repeatable): manylinux_2_28_x86_64 (older glibc's too, as uv "
            f"takes it), macosx_11_0_arm64, win_amd64 {own}.",
        ),
        click.option(
            "--implementation",
            metavar="NAME",
            help=f"Python implementation of {machine}: cp, pp, graalpy, … or py (implementation-agnostic "
            f"wheels only) {own}.",
        ),
        click.option(
            "--abi",
            "abis",
            multiple=True,
            metavar="TAG",
            help="ABI tag the wheels may have (repeatable): cp312, abi3, none [default: the version's].",
        ),
    ]
    return with_options(options)(packed)
