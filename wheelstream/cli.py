"""The ``wheelstream`` command line (DESIGN §6): ``install``, ``download``, ``cache``, ``testbed``.

A thin layer over :func:`wheelstream.install` / :func:`wheelstream.download`; what it adds is the shell's
contract:

- **Exit codes** come from the error tree (``WheelstreamError.exit_code``): 0 ok · 1 bad archive, hash or
  install conflict · 2 usage · 3 network gave up (partial kept) · 130 interrupted (partial kept).
- **Errors** are one line on stderr, ``error: <wheel>: <cause>``, never a traceback for anything expected
  (our errors, OS errors such as a full disk, click's usage errors).
- **SIGTERM is Ctrl-C**: the handler raises ``KeyboardInterrupt`` in the main thread, so the library's
  interrupt path (checkpoint, keep the partial) runs for both, and both exit 130 with how far it got.
- ``-r FILE`` reads the subset of pip's requirements syntax that makes sense without a resolver: one source
  per line, ``--hash=sha256:…`` (repeatable) per line, ``#`` comments, blank lines, ``\\`` continuations,
  environment markers, nested ``-r`` and ``--index-url``.

We run click with ``standalone_mode=False`` because click's own handling turns Ctrl-C into "Aborted!" and
exit 1; everything click would have done for usage errors (message + exit 2) is done in :func:`main`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

# This module is the wheelstream program. httpx's own command-line client is never run here, but httpx's
# __init__ imports it whenever click and rich are installed — rich's syntax highlighting and pygments with it,
# ~25 ms of every run. So the program blocks that one module (an import of it raises ImportError, which httpx
# expects and answers with a stub), and only if httpx is not imported yet: a host that already uses httpx, or
# imports wheelstream as a library, keeps it as it was.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from wheelstream import __version__
from wheelstream._api import DEFAULT_INDEX_URL, DEFAULT_JOBS, InstallResult
from wheelstream._cache import Cache, try_lock
from wheelstream._partial import Journal
from wheelstream._ui import ConsoleProgress, escape, human_size, stderr_console
from wheelstream.errors import HashMismatch, Interrupted, UsageError, WheelstreamError, one_line
from wheelstream.installer import LinkMode, probe_interpreter

__all__ = ["cli", "main", "parse_requirements", "parse_size"]

_HASH = re.compile(r"^sha256[:=]([0-9a-fA-F]{64})$")


# -- argument parsing helpers ------------------------------------------------------------------------------


_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
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
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _parse_hash(text: str, where: str) -> str:
    match = _HASH.match(text.strip())
    if not match:
        raise UsageError(f"{where}: --hash must be sha256:<64 hex digits>, got {text!r}")
    return match.group(1).lower()


@dataclass
class Requirements:
    """What ``-r`` files contributed: sources in order, their allowed hashes, an index URL if one was set."""

    sources: list[str] = field(default_factory=list)
    hashes: dict[str, list[str]] = field(default_factory=dict)
    index_url: str | None = None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with ``\\`` continuations joined and comments removed (pip: ``#`` at start or after blanks)."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined, pending = (pending + line).strip(), ""
        if joined:
            yield start, joined
    if pending.strip():
        yield start, pending.strip()


def parse_requirements(path: Path, into: Requirements | None = None, _depth: int = 0) -> Requirements:
    """Read a requirements file (see the module docstring for the supported subset)."""
    reqs = into if into is not None else Requirements()
    if _depth > 10:
        raise UsageError(f"{path}: requirement files nest too deeply")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read requirements file {path}: {exc.strerror or exc}") from None
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        # pip's split: the requirement (with any "; marker") comes first, options after the first " -"
        requirement, options = _split_options(line)
        try:
            words = shlex.split(options, posix=True)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        source: str | None = requirement or None
        hashes: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            option, eq, value = word.partition("=")
            takes_value = option in ("--hash", "-r", "--requirement", "-i", "--index-url")
            if takes_value and not eq:
                if i + 1 >= len(words):
                    raise UsageError(f"{where}: {option} needs a value")
                value, i = words[i + 1], i + 1
            if option == "--hash":
                hashes.append(_parse_hash(value, where))
            elif option in ("-r", "--requirement"):
                parse_requirements(path.parent / value, reqs, _depth + 1)
            elif option in ("-i", "--index-url"):
                reqs.index_url = value
            else:
                raise UsageError(f"{where}: unsupported option {word!r} (supported: --hash, -r, --index-url)")
            i += 1
        if source is None:
            if hashes:
                raise UsageError(f"{where}: --hash without a requirement")
            continue
        source = _apply_marker(source, where)
        if source is None:
            continue
        if _is_local(source) and not os.path.isabs(source) and "://" not in source:
            source = str(path.parent / source)  # relative paths are relative to the file, as in pip
        reqs.sources.append(source)
        if hashes:
            reqs.hashes.setdefault(source, []).extend(hashes)
    return reqs


def _split_options(line: str) -> tuple[str, str]:
    """``REQ [; MARKER] [OPTIONS]`` → (requirement with its marker, options)."""
    if line.startswith("-"):
        return "", line
    match = re.search(r"\s+(?=--?[A-Za-z])", line)
    if match is None:
        return line.strip(), ""
    return line[: match.start()].strip(), line[match.end():]


def _is_local(source: str) -> bool:
    return source.endswith(".whl") and "://" not in source


def _apply_marker(source: str, where: str) -> str | None:
    """``REQ ; MARKER``: keep REQ when the marker holds for this interpreter, drop the line otherwise."""
    req, sep, marker = source.partition(";")
    if not sep or "://" in req and not req.endswith(" "):
        return source.strip()
    from packaging.markers import InvalidMarker, Marker

    try:
        keep = Marker(marker.strip()).evaluate()
    except InvalidMarker as exc:
        raise UsageError(f"{where}: {exc}") from None
    return req.strip() if keep else None


# -- output, signals, errors --------------------------------------------------------------------------------


_INTERRUPTED = "interrupted — run the same command again to resume (nothing finished is lost)"


def _fail(ui: ConsoleProgress | None, exc: BaseException | str, code: int) -> NoReturn:
    """Print the one ``error:`` line and exit. ``escape`` keeps it one line and shows any terminal control or
    bidi override the message carries (a wheel's name, an OS error's file name) as an escape."""
    message = str(exc).strip() or type(exc).__name__
    console = ui.console if ui is not None else stderr_console()
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def _sigterm_as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGTERM takes the Ctrl-C path: checkpoint, keep the partial, exit 130."""
    raise KeyboardInterrupt


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


@dataclass
class _Common:
    """Options shared by install and download, gathered into library keyword arguments."""

    sources: list[str]
    hashes: dict[str, str]
    index_url: str


def _gather(
    sources: Sequence[str], requirements: Sequence[str], hash_values: Sequence[str], index_url: str | None,
    python: str | None, cache_dir: str | None,
) -> _Common:
    reqs = Requirements()
    for name in requirements:
        parse_requirements(Path(name), reqs)
    if hash_values and len(hash_values) != len(sources):
        raise UsageError(
            f"--hash was given {len(hash_values)} time(s) for {len(sources)} source(s) on the command line; "
            "give one per source, in order (or use --hash=… lines in a -r file)"
        )
    all_sources = list(sources) + reqs.sources
    if not all_sources:
        raise UsageError("nothing to do: give at least one SRC or -r FILE")
    allowed: dict[str, list[str]] = {s: list(v) for s, v in reqs.hashes.items()}
    for source, value in zip(sources, hash_values):
        allowed.setdefault(source, []).append(_parse_hash(value, "--hash"))
    index = index_url or reqs.index_url or DEFAULT_INDEX_URL
    return _Common(all_sources, _one_hash_each(allowed, index, python, cache_dir), index)


def _one_hash_each(
    allowed: dict[str, list[str]], index_url: str, python: str | None, cache_dir: str | None
) -> dict[str, str]:
    """The library checks one sha256 per source; pip allows several (one per platform's wheel).

    With several, the one that can match is known before downloading: a URL's ``#sha256=`` fragment, or
    what the index lists for the wheel a ``NAME==VERSION`` resolves to (that lookup is cached by hishel, so
    the library's own lookup moments later costs no request).
    """
    out: dict[str, str] = {}
    for source, hashes in allowed.items():
        unique = sorted(set(hashes))
        if len(unique) == 1:
            out[source] = unique[0]
            continue
        known = _known_hash(source, index_url, python, cache_dir)
        if known is None:
            raise UsageError(f"{source}: several --hash values; give the URL a #sha256= fragment to pick one")
        if known not in unique:
            raise HashMismatch(f"sha256 {known} is none of the {len(unique)} allowed hashes", wheel=source)
        out[source] = known
    return out


def _known_hash(source: str, index_url: str, python: str | None, cache_dir: str | None) -> str | None:
    from wheelstream._urls import split_hash_fragment

    if "://" in source:
        return split_hash_fragment(source)[1]
    if "==" not in source or _is_local(source):
        return None
    from wheelstream._http_client import new_client
    from wheelstream._index import resolve_requirement

    interpreter = probe_interpreter(python)
    with new_client(30.0) as client:
        _url, sha = resolve_requirement(source, index_url=index_url, cache=_cache(cache_dir), client=client,
                                        tags=interpreter.tags, python_version=interpreter.version)
    return sha


def _cache(cache_dir: str | None) -> Cache:
    return Cache.at(cache_dir)


def _run(
    verb: str,
    quiet: int,
    verbose: int,
    no_progress: bool,
    call: Callable[[ConsoleProgress], InstallResult],
) -> InstallResult:
    """Run one library call with the UI, the signal handler and the error contract around it."""
    ui = ConsoleProgress(bars=not no_progress, quiet=quiet > 0)
    handler = _WarningsToUI(ui, verbose > 0)
    logging.getLogger("wheelstream").setLevel(logging.DEBUG if verbose else logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("wheelstream", "hishel")]
    propagates = [each.propagate for each in loggers]
    previous = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    for each in loggers:
        each.addHandler(handler)
        each.propagate = False
    started = time.monotonic()
    result: InstallResult | None = None
    try:
        ui.start()
        try:
            result = call(ui)
        finally:
            ui.stop()
        resumed = sum(1 for w in result.wheels if w.resumed_at is not None)
        cached = sum(1 for w in result.wheels if w.from_cache)
        if quiet == 0:
            ui.console.print(
                ui.summary(verb, result.wheels, result.bytes_fetched, result.bytes_reused, resumed, cached,
                           time.monotonic() - started),
                highlight=False, soft_wrap=True,
            )
    except (Interrupted, KeyboardInterrupt) as exc:
        if result is not None or getattr(exc, "installed", False):  # the work was done when it came
            _fail(ui, f"interrupted after every wheel was {verb.lower()} — nothing is left to do",
                  Interrupted.exit_code)
        _fail(ui, ui.interrupted_message(), Interrupted.exit_code)
    except WheelstreamError as exc:
        if verbose > 1:
            ui.console.print_exception()
        _fail(ui, exc, exc.exit_code)
    except OSError as exc:
        _fail(ui, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for each, propagate in zip(loggers, propagates):
            each.removeHandler(handler)
            each.propagate = propagate
    return result


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options install and download share, in the order ``--help`` lists them."""
    options = [
        click.argument("sources", nargs=-1, metavar="SRC..."),
        click.option("-r", "--requirement", "requirements", multiple=True, type=click.Path(dir_okay=False),
                     metavar="FILE", help="Read sources (and --hash lines) from FILE. Repeatable."),
        click.option("--hash", "hash_values", multiple=True, metavar="sha256:HEX",
                     help="Expected sha256 of the wheel; one per SRC, in order."),
        click.option("--index-url", "-i", default=None, metavar="URL",
                     help=f"Simple index for NAME==VERSION (PEP 691/503). [default: {DEFAULT_INDEX_URL}]"),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
                     help="Cache root [default: $WHEELSTREAM_CACHE_DIR or the user cache dir]."),
        click.option("--jobs", "-j", default=DEFAULT_JOBS, show_default=True, type=click.IntRange(1, 64),
                     help="Wheels downloaded in parallel."),
        click.option("--retries", default=5, show_default=True, type=click.IntRange(0),
                     help="Attempts in a row without progress before giving up (exit 3)."),
        click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0, min_open=True),
                     metavar="S", help="Connect/read timeout in seconds."),
        click.option("--max-unpacked-size", default="16GiB", show_default=True, type=_Size(),
                     help="Refuse a wheel that inflates past SIZE (zip-bomb guard)."),
        click.option("-q", "--quiet", count=True, help="Only errors and warnings."),
        click.option("-v", "--verbose", count=True, help="Say more (-vv: tracebacks)."),
        click.option("--no-progress", is_flag=True, help="No progress bars (the summary still prints)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


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


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "-V", "--version", prog_name="wheelstream")
def cli() -> None:
    """Get Python wheels from a URL onto disk, resuming download and unpack after any interruption.

    No dependency resolution: every wheel you want is named on the command line or in -r files.
    """


_LINK_MODES: dict[str, LinkMode] = {"move": "move", "copy": "copy", "hardlink": "hardlink"}


@cli.command("install")
@click.option("--target", "-t", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Install into DIR (pip install --target semantics).")
@click.option("--upgrade", "-U", is_flag=True, help="Replace items the target already has.")
@click.option("--python", default=None, metavar="PATH", help="Target interpreter (tags, shebangs, layout).")
@click.option("--link-mode", type=click.Choice(["move", "copy", "hardlink"]), default="move", show_default=True,
              help="move: unpack once and move the files in (the cache keeps the wheel file); copy/hardlink: "
                   "keep the unpacked wheel in the cache and copy or hardlink from it.")
@click.option("--compile-bytecode", is_flag=True, help="Write .pyc files, as pip does without --no-compile.")
@click.option("--ignore-tags", is_flag=True, help="Install even if the wheel's tags do not fit --python.")
@_common_options
def install_cmd(
    sources: tuple[str, ...], requirements: tuple[str, ...], hash_values: tuple[str, ...],
    index_url: str | None, cache_dir: str | None, jobs: int, retries: int, timeout: float,
    max_unpacked_size: int, quiet: int, verbose: int, no_progress: bool, target: str, upgrade: bool,
    python: str | None, link_mode: str, compile_bytecode: bool, ignore_tags: bool,
) -> None:
    """Install wheels into a directory, like `pip install --no-deps --target DIR`, resumably.

    SRC is an http(s) URL (optionally #sha256=HEX), a file:// URL, a local .whl path, or NAME==VERSION.
    """
    from wheelstream._api import install as do_install

    def call(ui: ConsoleProgress) -> InstallResult:
        common = _gather(sources, requirements, hash_values, index_url, python, cache_dir)
        return do_install(
            common.sources, target, cache_dir=cache_dir, hashes=common.hashes, index_url=common.index_url,
            upgrade=upgrade, jobs=jobs, retries=retries, timeout=timeout, python=python,
            link_mode=_LINK_MODES[link_mode], compile_bytecode=compile_bytecode,
            ignore_tags=ignore_tags, max_unpacked_size=max_unpacked_size, progress=ui, on_warning=ui.warn,
            workers="processes",  # the command owns its process (library calls stay on threads)
        )

    result = _run("Installed", quiet, verbose, no_progress, call)
    if verbose and result.report is not None:
        for item in result.report.installed:
            click.echo(f"installed {one_line(item)}", err=True)  # a wheel names its items


@cli.command("download")
@click.option("--dest", "-d", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Put the verified .whl files here.")
@_common_options
def download_cmd(
    sources: tuple[str, ...], requirements: tuple[str, ...], hash_values: tuple[str, ...],
    index_url: str | None, cache_dir: str | None, jobs: int, retries: int, timeout: float,
    max_unpacked_size: int, quiet: int, verbose: int, no_progress: bool, dest: str,
) -> None:
    """Download wheels into DIR, resumably, verifying every zip entry (CRC, sizes, central directory).

    Prints the path of each wheel on stdout.
    """
    from wheelstream._api import download as do_download

    def call(ui: ConsoleProgress) -> InstallResult:
        common = _gather(sources, requirements, hash_values, index_url, None, cache_dir)
        return do_download(
            common.sources, dest, cache_dir=cache_dir, hashes=common.hashes, index_url=common.index_url,
            jobs=jobs, retries=retries, timeout=timeout, max_unpacked_size=max_unpacked_size, progress=ui,
            workers="processes",
        )

    result = _run("Downloaded", quiet, verbose, no_progress, call)
    for wheel in result.wheels:
        if wheel.path is not None:
            click.echo(str(wheel.path))


# -- cache -----------------------------------------------------------------------------------------------


@cli.group()
def cache() -> None:
    """Inspect or empty the cache (partial downloads, unpacked wheels, index pages)."""


_cache_dir_option = click.option("--cache-dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
                                 help="Cache root [default: $WHEELSTREAM_CACHE_DIR or the user cache dir].")


@cache.command("dir")
@_cache_dir_option
def cache_dir_cmd(cache_dir: str | None) -> None:
    """Print the cache directory."""
    from wheelstream._cache import default_cache_dir

    click.echo(str(Path(cache_dir) if cache_dir else default_cache_dir()))


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _age(path: Path) -> str:
    try:
        seconds = max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


@dataclass(frozen=True)
class _PartialInfo:
    key: str
    url: str
    durable: int
    length: int | None
    journal: Path

    @property
    def percent(self) -> str:
        return f"{100 * self.durable / self.length:.0f}%" if self.length else "?%"


def _partials(root: Path) -> list[_PartialInfo]:
    out = []
    for journal_path in sorted((root / "partial").glob("*.json")):
        journal = Journal.load(journal_path)
        key = journal_path.name[: -len(".json")]
        if journal is None:
            out.append(_PartialInfo(key, "(unreadable journal)", 0, None, journal_path))
        else:
            out.append(_PartialInfo(key, journal.url, journal.durable, journal.length, journal_path))
    return out


def _wheels(root: Path) -> list[tuple[str, str, int, Path]]:
    """``(filename, sha256, unpacked bytes, dir)`` of every finished wheel in the cache."""
    from wheelstream._staged import StagedWheel

    out = []
    for path in sorted((root / "wheels").iterdir()) if (root / "wheels").is_dir() else []:
        if not path.is_dir():
            continue
        try:
            staged = StagedWheel.read_manifest(path)
            out.append((staged.filename, path.name, sum(f.size for f in staged.files.values()), path))
        except (OSError, ValueError, KeyError, TypeError):
            out.append(("(no manifest)", path.name, _tree_size(path), path))
    return out


def _wheel_files(root: Path) -> list[tuple[str, str, int, Path]]:
    """``(filename, sha256, size, path)`` of every wheel file kept in the cache (named by sha256 there)."""
    names: dict[str, str] = {}
    for remembered in (root / "urls").glob("*.json"):
        try:
            payload = json.loads(remembered.read_text())
            names[str(payload["sha256"])] = str(payload["filename"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    out = []
    for path in sorted((root / "wheels").glob("*.whl")):
        sha = path.name[: -len(".whl")]
        with contextlib.suppress(OSError):
            out.append((names.get(sha, "(unknown name)"), sha, path.stat().st_size, path))
    return out


@cache.command("list")
@_cache_dir_option
def cache_list(cache_dir: str | None) -> None:
    """Partial downloads (% done, age) and unpacked wheels (size)."""
    root = _cache(cache_dir).root
    partials = _partials(root)
    wheels = _wheels(root)
    click.echo(f"cache: {root}")
    click.echo(f"partial downloads: {len(partials)}")
    for p in partials:
        name = urllib.parse.unquote(p.url.rsplit("/", 1)[-1]) or p.url  # shown only, never a path
        click.echo(f"  {one_line(name)}  {p.percent}  {human_size(p.durable)} of {human_size(p.length)}  "
                   f"{_age(p.journal)}  {one_line(p.url)}")
    click.echo(f"unpacked wheels: {len(wheels)}")
    for filename, sha, size, _path in wheels:
        click.echo(f"  {one_line(filename)}  {human_size(size)}  sha256:{sha[:16]}…")
    files = _wheel_files(root)
    click.echo(f"wheel files: {len(files)}")
    for filename, sha, size, _path in files:
        click.echo(f"  {one_line(filename)}  {human_size(size)}  sha256:{sha[:16]}…")
    index_db = root / "http"
    click.echo(f"index cache: {human_size(_tree_size(index_db))}")


def _locked(lock_path: Path) -> bool:
    """True when another process is downloading this key right now (its filelock is held)."""
    if not lock_path.exists():
        return False
    lock = try_lock(lock_path)
    if lock is None:
        return True
    lock.release()
    return False


@cache.command("clean")
@_cache_dir_option
@click.option("--partial", "partial_only", is_flag=True,
              help="Only partial downloads (and their staging dirs); keep unpacked wheels and index pages.")
def cache_clean(cache_dir: str | None, partial_only: bool) -> None:
    """Remove cached data and say what was removed. Downloads in progress elsewhere are left alone."""
    root = _cache(cache_dir).root  # Cache.at also sweeps the trees of move installs that were killed
    removed_partials = removed_bytes = busy = 0
    for p in _partials(root):
        if _locked(root / "partial" / f"{p.key}.lock"):
            busy += 1
            continue
        part = root / "partial" / f"{p.key}.whl.part"
        removed_bytes += part.stat().st_size if part.exists() else 0
        part.unlink(missing_ok=True)
        Journal.remove(p.journal)  # the header and its entries log
        (root / "partial" / f"{p.key}.lock").unlink(missing_ok=True)
        shutil.rmtree(root / "staging" / p.key, ignore_errors=True)
        removed_partials += 1
    for stray in (root / "staging").iterdir() if (root / "staging").is_dir() else []:
        if not (root / "partial" / f"{stray.name}.json").exists() and not _locked(
                root / "partial" / f"{stray.name}.lock"):
            shutil.rmtree(stray, ignore_errors=True)
    click.echo(f"removed {removed_partials} partial download(s) ({human_size(removed_bytes)})")
    if busy:
        click.echo(f"kept {busy} partial download(s) in use by another wheelstream process")
    if partial_only:
        return
    wheels = _wheels(root)
    wheel_bytes = sum(size for _f, _s, size, _p in wheels)
    for _f, _s, _size, path in wheels:
        shutil.rmtree(path, ignore_errors=True)
    click.echo(f"removed {len(wheels)} unpacked wheel(s) ({human_size(wheel_bytes)})")
    files = _wheel_files(root)
    for _f, _s, _size, path in files:
        path.unlink(missing_ok=True)
    click.echo(f"removed {len(files)} wheel file(s) ({human_size(sum(size for _f, _s, size, _p in files))})")
    index_bytes = _tree_size(root / "http")
    for sub in ("http", "urls"):
        shutil.rmtree(root / sub, ignore_errors=True)
        (root / sub).mkdir(mode=0o700, exist_ok=True)
    click.echo(f"removed the index cache ({human_size(index_bytes)})")


# The cyclic collector's thresholds while a command runs: a young collection every 100k new container objects
# (CPython's default is 700), older ones ten and a hundred times rarer.
_GC_THRESHOLDS = (100_000, 10, 10)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``wheelstream`` script and ``python -m wheelstream``.

    The cyclic garbage collector runs rarely while a command runs. Installing torch allocates ~100k small
    records (parser entries, journal lines, staged files) that all live until the command ends; with the
    default thresholds the collector's passes over them cost ~65 ms per run (two full ones 45 ms), each on
    whichever thread triggered it, holding the GIL (measured with ``gc.callbacks``, docs/performance.md).
    With young collections every 100k allocations they cost ~15 ms, and the cyclic garbage there is (an httpx
    response and its stream, a caught exception's traceback) is still collected, so a long command does not
    accumulate it. The caller's thresholds come back on return; the library API leaves its host's collector
    alone.

    Without ``argv`` this is the process's own command line, and the process ends when the command does: the
    objects still alive are then frozen (``gc.freeze``), so the interpreter's final collection does not walk
    them all once more only to free them — 50-100 ms after installing torch (docs/performance.md).
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        _main(argv)
    finally:
        gc.set_threshold(*thresholds)
        if argv is None:
            gc.freeze()


def _main(argv: Sequence[str] | None) -> NoReturn:
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="wheelstream",
                        standalone_mode=False)
    except click.ClickException as exc:  # usage errors: click's message, exit 2
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (click.exceptions.Abort, KeyboardInterrupt):  # before a command's own handling, or a second Ctrl-C
        _fail(None, _INTERRUPTED, Interrupted.exit_code)  # while it wrapped up
    except UsageError as exc:
        _fail(None, exc, exc.exit_code)
    raise SystemExit(code if isinstance(code, int) else 0)
