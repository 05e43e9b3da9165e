"""``wheelstream cache dir|list|clean``: what the cache holds, and emptying it.

Listed and cleaned by kind: partial downloads (journal + ``.whl.part`` + staging dir), unpacked wheels (kept
by ``--link-mode copy|hardlink``), wheel files (named by sha256) and the index cache. A partial download whose
file lock another process holds is in use: it is kept and reported. Every name shown passes
:func:`~wheelstream.errors.one_line`, since a URL or a wheel chose it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import click

from wheelstream._cache import Cache, default_cache_dir, in_use, try_lock
from wheelstream._progress import human_size
from wheelstream.cli._options import UserPath
from wheelstream.errors import DiskError, one_line
from wheelstream.unpack._partial import Journal

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """Inspect or empty the cache (partial downloads, unpacked wheels, index pages)."""


_cache_dir_option = click.option(
    "--cache-dir",
    default=None,
    type=UserPath(file_okay=False),
    metavar="DIR",
    help="Cache root [default: $WHEELSTREAM_CACHE_DIR or the user cache dir].",
)


@cache.command("dir")
@_cache_dir_option
def cache_dir_cmd(cache_dir: str | None) -> None:
    """Print the cache directory."""
    from wheelstream.cli._ui import echo_path

    echo_path(Path(cache_dir) if cache_dir else default_cache_dir())


@cache.command("list")
@_cache_dir_option
def cache_list(cache_dir: str | None) -> None:
    """List what the cache holds: partial downloads (% on disk, unpacked so far, age, URL), unpacked wheels,
    wheel files, the unpacked trees running installs are moving into place, and the index cache's size."""
    # ``Cache.at`` first reclaims what killed processes left, so every unpacked tree is listed: a partial
    # download's, a cached wheel's, or one a running install holds. A cache this user cannot write is listed
    # as it is (listing needs no write; a traceback it was).
    try:
        root = Cache.at(cache_dir).root
    except DiskError:
        root = Path(cache_dir) if cache_dir else default_cache_dir()
    partials = _partials(root)
    wheels = _wheels(root)
    click.echo(f"cache: {root}")
    click.echo(f"partial downloads: {len(partials)}")
    for p in partials:
        name = urllib.parse.unquote(p.url.rsplit("/", 1)[-1]) or p.url  # shown only, never a path
        unpacked = _tree_size(root / "staging" / p.key)
        busy = (
            "  in use by another wheelstream process" if _locked(root / "partial" / f"{p.key}.lock") else ""
        )
        click.echo(
            f"  {one_line(name)}  {p.percent}  {human_size(p.on_disk)} of {human_size(p.length)}  "
            f"(unpacked so far {human_size(unpacked)})  {_age(p.journal)}  {one_line(p.url)}{busy}"
        )
    click.echo(f"unpacked wheels: {len(wheels)}")
    for filename, sha, size, _path in wheels:
        click.echo(f"  {one_line(filename)}  {human_size(size)}  sha256:{sha[:16]}…")
    files = _wheel_files(root)
    click.echo(f"wheel files: {len(files)}")
    for filename, sha, size, _path in files:
        click.echo(f"  {one_line(filename)}  {human_size(size)}  sha256:{sha[:16]}…")
    claimed = [p for p in (root / "claimed").iterdir() if p.is_dir()] if (root / "claimed").is_dir() else []
    click.echo(f"unpacked trees in use by running installs: {len(claimed)}")
    for tree in claimed:
        click.echo(f"  {tree.name}  {human_size(_tree_size(tree))}")
    index_db = root / "http"
    click.echo(f"index cache: {human_size(_tree_size(index_db))}")


@cache.command("clean")
@_cache_dir_option
@click.option(
    "--partial",
    "partial_only",
    is_flag=True,
    help="Only partial downloads (and their staging dirs); keep unpacked wheels and index pages.",
)
def cache_clean(cache_dir: str | None, partial_only: bool) -> None:
    """Remove cached data and say what was removed. Waits for the installs and downloads using the cache;
    ``--partial`` does not wait, and leaves the partial downloads in progress elsewhere alone."""
    from wheelstream.cli._contract import fail

    def waiting() -> None:
        click.echo(
            "waiting for the wheelstream commands using the cache to finish (Ctrl-C to stop)", err=True
        )

    try:
        root = Cache.at(cache_dir).root  # Cache.at also sweeps the trees of move installs that were killed
        if partial_only:  # each partial's own lock is enough: no install reads a partial another one holds
            _clean(root, partial_only)
        else:  # a tree an install is copying from is not taken from under it (uv waits the same way)
            with in_use(root, only=True, waiting=waiting):
                _clean(root, partial_only)
    except DiskError as exc:  # the cache's directories cannot be made: one line (it was a traceback)
        fail(None, f"cannot clean the cache: {exc}", 1)
    except OSError as exc:  # a cache this user cannot write: one line, what was removed so far said above
        where = f" ({exc.filename})" if exc.filename else ""
        fail(None, f"cannot clean the cache: {exc.strerror or exc}{where}", 1)


def _clean(root: Path, partial_only: bool) -> None:
    removed_partials = removed_bytes = busy = 0
    for p in _partials(root):
        # Taken, not only looked at: a download that starts meanwhile waits for the discard instead of
        # resuming into files going away. The lock file stays (removed, a process waiting on it would hold a
        # lock on a file nobody else opens, and a third would take a new one: two writers of one partial).
        lock = try_lock(root / "partial" / f"{p.key}.lock")
        if lock is None:
            busy += 1
            continue
        try:
            part = root / "partial" / f"{p.key}.whl.part"
            removed_bytes += part.lstat().st_size if part.is_file() and not part.is_symlink() else 0
            Cache(root).discard(p.key)  # partial (a directory there too), journal, staging
        finally:
            lock.release()
        removed_partials += 1
    for stray in (root / "staging").iterdir() if (root / "staging").is_dir() else []:
        if not (root / "partial" / f"{stray.name}.json").exists() and not _locked(
            root / "partial" / f"{stray.name}.lock"
        ):
            shutil.rmtree(stray, ignore_errors=True)
    click.echo(f"removed {removed_partials} partial download(s) ({human_size(removed_bytes)})")
    if busy:
        click.echo(f"kept {busy} partial download(s) in use by another wheelstream process")
    if partial_only:
        return
    _remove_idle_locks(root / "partial")
    wheels = _wheels(root)
    wheel_bytes = sum(size for _f, _s, size, _p in wheels)
    for _f, _s, _size, path in wheels:
        if path.name.startswith("."):  # one a killed clean (or drop) had already moved aside
            shutil.rmtree(path, ignore_errors=True)
        else:  # its manifest first, then the tree moved aside whole: a kill leaves no half tree under its name
            Cache(root).drop_tree(path.name)
    leftovers = ("*.manifest.json", "*.manifest.json.*.tmp", ".*.publish.lock")
    for pattern in leftovers if (root / "wheels").is_dir() else ():
        # a manifest whose tree is gone vouches for nothing; a killed writer's temporary one; the locks a publish
        # over part of a tree took (none is held: this clean holds the cache alone)
        for alone in (root / "wheels").glob(pattern):
            alone.unlink(missing_ok=True)
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


def _remove_idle_locks(partial: Path) -> None:
    """The URL locks of downloads no longer there: one empty file per URL ever fetched (2,001 after 1,000
    installs). Only here, with the cache held exclusively: no install or download of any process runs, so none
    waits on a lock file that goes (a waiter on a removed file and a newcomer on a new one would both hold
    "the" lock). Each is taken before it goes, for the ``clean --partial`` or ``cache list`` that may look at it
    meanwhile."""
    for lock_path in partial.glob("*.lock") if partial.is_dir() else []:
        key = lock_path.name[: -len(".lock")]
        if (partial / f"{key}.json").exists() or (partial / f"{key}.whl.part").exists():
            continue
        lock = try_lock(lock_path)
        if lock is None:
            continue
        try:
            lock_path.unlink(missing_ok=True)
        finally:
            lock.release()


# -- what the cache holds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PartialInfo:
    key: str
    url: str
    on_disk: int  # the partial's size: what a rerun keeps (D, and past it what the trail proves) or less
    length: int | None
    journal: Path

    @property
    def percent(self) -> str:
        return f"{100 * self.on_disk / self.length:.0f}%" if self.length else "?%"


def _partials(root: Path) -> list[_PartialInfo]:
    out = []
    for journal_path in sorted((root / "partial").glob("*.json")):
        journal = Journal.load(journal_path)
        key = journal_path.name[: -len(".json")]
        try:
            info = (root / "partial" / f"{key}.whl.part").stat()
            # Allocated, not the size: a segmented download writes pieces further on, leaving holes.
            on_disk = min(info.st_size, getattr(info, "st_blocks", info.st_size // 512 + 1) * 512)
        except OSError:
            on_disk = 0
        if journal is None:
            out.append(_PartialInfo(key, "(unreadable journal)", on_disk, None, journal_path))
        else:
            out.append(_PartialInfo(key, journal.url, on_disk, journal.length, journal_path))
    return out


def _wheels(root: Path) -> list[tuple[str, str, int, Path]]:
    """``(filename, sha256, unpacked bytes, dir)`` of every finished wheel in the cache."""
    from wheelstream._staged import StagedWheel

    out = []
    for path in sorted((root / "wheels").iterdir()) if (root / "wheels").is_dir() else []:
        if not path.is_dir():
            continue
        try:
            staged = StagedWheel.read_manifest(path, path.with_name(f"{path.name}.manifest.json"))
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


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):  # removed while we counted
                total += os.lstat(os.path.join(dirpath, name)).st_size
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


def _locked(lock_path: Path) -> bool:
    """True when another process is downloading this key right now (its filelock is held)."""
    if not lock_path.exists():
        return False
    lock = try_lock(lock_path)
    if lock is None:
        return True
    lock.release()
    return False
