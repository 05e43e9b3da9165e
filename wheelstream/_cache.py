"""Where wheelstream keeps its state (DESIGN §1, "Cache").

    <root>/partial/<key>.whl.part    raw bytes of an unfinished download
    <root>/partial/<key>.json        its journal header (see _partial.py)
    <root>/partial/<key>.entries     the journal's append-only log of finished entries
    <root>/partial/<key>.trail       what was received past the last checkpoint, provably (_trail.py)
    <root>/partial/<key>.pieces      ... and what other connections wrote further on (_piece_trail.py)
    <root>/partial/<key>.pending     the checkpoint being made durable, provable after a kill (_pending.py)
    <root>/partial/<key>.lock        filelock: one writer per key, across processes
    <root>/staging/<key>/            entries unpacked so far
    <root>/wheels/<sha256>/          finished, verified, unpacked wheels, kept by ``--link-mode copy|hardlink``
    <root>/wheels/<sha256>.manifest.json   installs: the digests of its files (beside it: the tree's names are
                                     all the wheel's)
    <root>/wheels/<sha256>.whl       every finished wheel file: a later install unpacks it without the network
    <root>/claimed/<token>/          a freshly unpacked tree one process took for itself, to move its files
    <root>/claimed/<token>.lock        into a target (``--link-mode move``); held while the tree exists
    <root>/claimed/<token>.handed    the tree is on its way from a worker process to its parent
    <root>/urls/<key>.json           which sha256 a URL gave last time, and the validators it came with: a
                                     re-install downloads nothing while the server answers 304 (``fetch._fetch``)
    <root>/http/                     hishel's cache of index pages
    <root>/hosts/<key>.<i>.lock      a host's connections beyond each download's first (fetch/_host_slots.py)
    <root>/cache.lock                held shared by every install and download while it uses the cache, and
                                     exclusively by ``cache clean`` (``in_use``), as uv's cache lock is

``<key>`` is :func:`wheelstream._urls.cache_key` of the original URL. Everything is created owner-only.

Claims: a move-mode install must own the tree it empties, or a second process could be copying from it (or
resuming into it) meanwhile. So the finished staging dir is renamed, under the URL's lock, to
``claimed/<token>/`` while this process holds ``claimed/<token>.lock`` (an OS lock, released if the process
dies). Whatever a killed process left there is swept by the next :meth:`Cache.at` that can take its lock.

Nothing unpacked is left behind by a kill: every :meth:`Cache.at` reclaims a claimed tree whose lock it can
take (the owner locked before the tree got its name, so a free lock means a dead owner — unless the tree is
being handed over, which a ``.handed`` marker says), and a staging tree that has no journal and whose URL lock
it can take (a kill between the journal's removal and the tree's publication or claim).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import filelock
import platformdirs

from wheelstream._digests import verified_digests
from wheelstream.errors import DiskError, HashMismatch, UsageError
from wheelstream.unpack._partial import Journal

__all__ = [
    "Cache",
    "Claim",
    "UrlRecord",
    "default_cache_dir",
    "download_lock",
    "downloads_held_here",
    "file_lock",
    "in_use",
    "try_lock",
]

_SWEEP_AFTER = 60.0  # seconds


def default_cache_dir() -> Path:
    env = os.environ.get("WHEELSTREAM_CACHE_DIR")
    return Path(env).expanduser() if env else platformdirs.user_cache_path("wheelstream")


class UrlRecord(NamedTuple):
    """What the cache remembers of a URL's last finished download: the file it gave, and the validators its
    response carried, to ask the server whether it still serves that file (``fetch._revalidate``)."""

    sha256: str
    etag: str | None
    last_modified: str | None


_QUIET_WAIT = 0.5  # seconds a download waits for another process's lock before it says so
_CANCEL_POLL = 0.1  # seconds between looks at a cancel while it waits longer
_SUBDIRECTORIES = ("partial", "staging", "wheels", "urls", "http", "claimed")


@dataclass(frozen=True)
class Cache:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Cache:
        """The cache at ``root`` (the default place when None), its directories made. One that cannot be made —
        a file in the way, a read-only or missing mount — is a :class:`~wheelstream.errors.DiskError` naming
        it, as every other write the cache does (``FileExistsError`` came out of the library raw)."""
        cache = cls.made(root)
        cache.sweep_claims()
        cache.sweep_staging()
        return cache

    @classmethod
    def made(cls, root: str | os.PathLike[str] | None = None) -> Cache:
        """The cache at ``root`` with its directories made, nothing swept (:meth:`at` without the sweeps)."""
        cache = cls(Path(root) if root is not None else default_cache_dir())
        try:
            cache.root.parent.mkdir(parents=True, exist_ok=True)
            cache.root.mkdir(
                exist_ok=True, mode=0o700
            )  # a root we create is owner-only too; an existing one is kept
            for sub in _SUBDIRECTORIES:
                (cache.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            cache._check_one_file_system()
        except OSError as exc:
            where = (
                "" if exc.filename is None or str(exc.filename) == str(cache.root) else f"{exc.filename}: "
            )
            raise DiskError(
                f"cannot use the cache directory {cache.root}: {where}{exc.strerror or exc}"
            ) from exc
        return cache

    def _check_one_file_system(self) -> None:
        """Every directory of the cache on the root's file system: a partial becomes the wheel file, a staging
        tree a kept one or a claim, by ``rename``, which cannot cross file systems. One linked elsewhere
        failed every install after the first with "Invalid cross-device link" and no wheel named; this says
        which directory, before anything is fetched."""
        root = os.stat(self.root).st_dev
        for sub in _SUBDIRECTORIES:
            if os.stat(self.root / sub).st_dev != root:
                raise DiskError(
                    f"cannot use the cache directory {self.root}: its {sub}/ is on another file system, and "
                    "the cache moves files between its directories by renaming them (keep it on one)"
                )

    def partial(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.whl.part"

    def journal(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.json"

    def lock(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.lock"

    def staging(self, key: str) -> Path:
        return self.root / "staging" / key

    def wheel_dir(self, sha256: str) -> Path:
        return self.root / "wheels" / sha256

    def wheel_manifest(self, sha256: str) -> Path:
        """The digests of ``wheel_dir(sha256)``'s files, kept beside the tree (a wheel owns every name in it)."""
        return self.root / "wheels" / f"{sha256}.manifest.json"

    def wheel_file(self, sha256: str) -> Path:
        return self.root / "wheels" / f"{sha256}.whl"

    def remembered_sha256(self, key: str) -> str | None:
        """The sha256 this URL produced last time, if its unpacked tree or its wheel file is still cached."""
        record = self.remembered(key)
        return record.sha256 if record is not None else None

    def remembered(self, key: str) -> UrlRecord | None:
        """What this URL gave last time, if its unpacked tree or its wheel file is still cached."""
        record = self.url_record(key)
        if record is None:
            return None
        sha = record.sha256
        return record if self.wheel_dir(sha).is_dir() or self.wheel_file(sha).is_file() else None

    def last_sha256(self, key: str) -> str | None:
        """The sha256 this URL produced last time, wherever its file went (``download -d`` keeps it elsewhere)."""
        record = self.url_record(key)
        return record.sha256 if record is not None else None

    def url_record(self, key: str) -> UrlRecord | None:
        """What this URL gave last time, wherever its file went; None if never (or the record is unreadable)."""
        try:
            data = json.loads((self.root / "urls" / f"{key}.json").read_text())
            etag, modified = data.get("etag"), data.get("last_modified")  # absent in records of 2026-12-06
            return UrlRecord(
                str(data["sha256"]),
                etag if isinstance(etag, str) else None,
                modified if isinstance(modified, str) else None,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def remember(
        self,
        key: str,
        url: str,
        sha256: str,
        filename: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """Record what ``url`` gave, with the validators of the response it came in (none for a local file)."""
        target = self.root / "urls" / f"{key}.json"
        tmp = target.with_suffix(".tmp")
        record = {"url": url, "sha256": sha256, "filename": filename}
        record.update({k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v})
        tmp.write_text(json.dumps(record))
        tmp.replace(target)

    def forget_url(self, key: str, sha256: str) -> None:
        """The URL no longer gives these bytes from the cache: its record goes when it names them, so the next
        run asks the server afresh (it may have fixed the file; a revalidation against the refused copy's own
        validators could be answered 304 forever) instead of failing the same way offline. For bytes a caller's
        hashes refused, which are not wrong in themselves: they stay, reachable by their exact sha256, and
        another call may be copying from their unpacked tree this very moment."""
        if self.last_sha256(key) == sha256:
            (self.root / "urls" / f"{key}.json").unlink(missing_ok=True)

    def unpacked_digests(
        self, key: str | None, sha256: str, file: Path, wheel: str, expected: Mapping[str, str]
    ) -> dict[str, str]:
        """The digests of the wheel file at ``file`` by the algorithms ``expected`` names, sha256 first, read
        when the unpack is over — of the very bytes unpacked (``verified_digests``): a file that is not those
        bytes is ``unverified_copy``'s error, one that cannot be read a DiskError. ``key``: the URL's cache key,
        None for a local source."""
        try:
            digests = verified_digests(file, sha256, expected)
        except OSError as exc:
            raise DiskError(
                f"cannot read {file} to check its hashes: {exc.strerror or exc}", wheel=wheel
            ) from None
        if digests is None:
            raise self.unverified_copy(key, sha256, file, wheel)
        return digests

    def unverified_copy(self, key: str | None, sha256: str, file: Path, wheel: str) -> HashMismatch:
        """The error for a wheel file read after its unpack that is not the bytes unpacked: gone, or its sha256
        no longer ``sha256``. A local source (``key`` None) changed since: refused. The cache's copy (not synced:
        a crash can spoil it) goes, with the URL's record, so that the next download that needs the file
        fetches it afresh (``Job.needs_file``); never the unpacked tree, which its manifest vouches for and
        another call may be copying from this very moment."""
        if key is None:
            return HashMismatch(
                f"{file} changed while it was read (its sha256 is no longer {sha256}); refused", wheel=wheel
            )
        with contextlib.suppress(OSError):  # the error to report is this one, not a failed clean-up
            self.wheel_file(sha256).unlink(missing_ok=True)
            self.forget_url(key, sha256)
        return HashMismatch(
            "the cache's copy of the wheel file is gone or spoilt: the cache forgot it, and running the command "
            "again downloads it afresh",
            wheel=wheel,
        )

    def forget_refused(self, key: str, sha256: str) -> None:
        """A wheel the install's checks refused (its RECORD, its metadata) goes whole: its URL's record
        (``forget_url``), the wheel's file and its unpacked tree (``--link-mode copy|hardlink``) — no call can
        use it."""
        self.forget_url(key, sha256)
        self.wheel_file(sha256).unlink(missing_ok=True)
        self.drop_tree(sha256)

    def drop_tree(self, sha256: str) -> None:
        """Remove an unpacked tree that no longer matches its manifest: the manifest first (nothing uses a tree
        without one), then the tree, renamed out of ``wheels/<sha256>`` before it is deleted, so that a publish
        of the same bytes meanwhile takes the name afresh instead of blessing what is left."""
        self.wheel_manifest(sha256).unlink(missing_ok=True)
        tree = self.wheel_dir(sha256)
        gone = tree.with_name(f".{sha256}.dropped-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.rename(tree, gone)
        except OSError:
            return  # gone already (another process dropped it), or never there
        shutil.rmtree(gone, ignore_errors=True)

    def sweep_staging(self) -> None:
        """Remove staging trees with no journal whose URL lock can be taken: a download killed after removing
        its journal and before publishing or claiming its tree (see ``fetch/_publish.py``). A live download
        holds the lock, so nothing in use is touched."""
        staging = self.root / "staging"
        for key in os.listdir(staging) if staging.is_dir() else []:
            if self.journal(key).exists():
                continue  # a resumable download's
            lock = try_lock(self.lock(key))
            if lock is None:
                continue
            try:
                if not self.journal(key).exists():
                    self.discard(key)
            finally:
                lock.release()

    def reclaim(self, key: str) -> None:
        """A finished wheel serves this URL from the cache: what a download of it left (a journal whose
        partial became the wheel file, a staging tree) is of no further use. Under the URL's lock."""
        if self.journal(key).exists() or os.path.lexists(self.staging(key)):
            self.discard(key)

    def discard(self, key: str) -> None:
        """Forget an unfinished download: partial, journal and staging. A directory where the partial belongs
        (no code of ours makes one) goes too: left, it failed every later download of the URL, and ``clean``."""
        partial = self.partial(key)
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
        partial.unlink(missing_ok=True)
        Journal.remove(self.journal(key))  # the header and its entries log
        staging = self.staging(key)
        if staging.is_symlink():
            staging.unlink()  # the link only: whatever it points to is not ours (rmtree refuses links anyway)
        shutil.rmtree(staging, ignore_errors=True)

    def claim(self, tree: Path) -> Claim:
        """Take ``tree`` (a finished staging dir) for this process alone; see the module docstring."""
        token = secrets.token_hex(8)
        # not thread-local: a download thread claims, the main thread releases after the install
        lock = file_lock(self.root / "claimed" / f"{token}.lock", thread_local=False)
        lock.acquire()
        root = self.root / "claimed" / token
        try:
            os.replace(tree, root)
        except BaseException:
            _unlock(lock)
            raise
        return Claim(root, lock)

    def adopt_claim(self, root: Path) -> Claim:
        """Take over a claim another process handed over (:meth:`Claim.hand_over`): a worker process unpacks,
        this one installs. The lock file stayed and was touched, so no sweep removes the tree for a minute;
        the caller adopts as soon as the worker's result arrives."""
        lock = try_lock(root.parent / f"{root.name}.lock")
        if lock is None:
            raise OSError(f"a claimed tree is still locked by another process: {root}")
        if not root.is_dir():
            _unlock(lock)
            raise FileNotFoundError(f"a claimed tree was removed before this process adopted it: {root}")
        _handed(root).unlink(missing_ok=True)  # locked again: an ordinary claim from here on
        return Claim(root, lock)

    def sweep_claims(self) -> None:
        """Remove claimed trees whose owner is gone, and what is left of claims that never got a tree.

        A tree whose lock can be taken goes at once: its owner locked before renaming it in, so only a dead
        owner — or one handing it over to another process (``Claim.hand_over``), which leaves a ``.handed``
        marker for a minute — lets go of it. Lock files and markers without a tree go only once a minute old:
        a claim creates its lock file and locks it a moment apart, and a sweep that unlinked the new file in
        that moment would leave the owner locking a file nobody else can see.
        """
        claimed = self.root / "claimed"
        names = set(os.listdir(claimed)) if claimed.is_dir() else set()
        now = time.time()
        for name in names:
            if name.endswith((".lock", ".handed")):
                token = name.rsplit(".", 1)[0]
                mtime = _mtime(claimed / name)
                if token not in names and mtime is not None and now - mtime > _SWEEP_AFTER:
                    self._sweep(claimed / token)  # a lone lock file or marker
            elif not _recently(_handed(claimed / name), now):
                self._sweep(claimed / name)

    @staticmethod
    def _sweep(tree: Path) -> None:
        lock = try_lock(tree.parent / f"{tree.name}.lock")
        if lock is None:
            return  # its owner is alive and will remove it
        if _recently(_handed(tree), time.time()):
            lock.release()  # handed over since we looked: the adopter is on its way, and needs the lock file
            return
        try:
            shutil.rmtree(tree, ignore_errors=True)
            _handed(tree).unlink(missing_ok=True)
        finally:
            _unlock(lock)


@dataclass(frozen=True)
class Claim:
    """An unpacked tree this process owns: the installer may move files out of it; ``release`` removes it."""

    root: Path
    _lock: filelock.BaseFileLock

    def release(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        _handed(self.root).unlink(missing_ok=True)
        _unlock(self._lock)

    def hand_over(self) -> Path:
        """Let another process adopt the tree (:meth:`Cache.adopt_claim`): unlock, keeping tree and lock file.

        A ``.handed`` marker is written first: for a minute no sweep (``Cache.sweep_claims``) takes the
        unlocked tree for abandoned, and the adopter takes the lock well within it.
        """
        _handed(self.root).touch()
        self._lock.release()
        return self.root


def _handed(tree: Path) -> Path:
    return tree.parent / f"{tree.name}.handed"


def _recently(path: Path, now: float) -> bool:
    mtime = _mtime(path)
    return mtime is not None and now - mtime <= _SWEEP_AFTER


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def file_lock(path: Path, *, timeout: float = -1, thread_local: bool = True) -> filelock.FileLock:
    """A lock file of the cache's own (the cache is its user's alone: its directories are 0700). The mode
    matters for speed: with the default 0o666, filelock (4.x) first probes the directory for ``flock`` with a
    throwaway ``O_TMPFILE`` inode on every acquire of a new lock file, one more inode made and freed per
    download and per claim (docs/performance.md, D-lock-mode)."""
    return filelock.FileLock(path, timeout=timeout, thread_local=thread_local, mode=0o600)


@contextlib.contextmanager
def download_lock(
    cache: Cache,
    key: str,
    wheel: str,
    waiting: Callable[[], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """The per-URL lock a download holds throughout; one that cannot be taken (a read-only cache, no descriptors
    left) is a one-line :class:`~wheelstream.errors.DiskError` naming the wheel — it was a bare
    ``…/partial/<key>.lock: Read-only file system`` — and nothing of the download is touched. ``waiting`` is
    called once if another process holds it past half a second (its whole download, maybe): the wait is said,
    not silent. ``cancelled()`` true ends the wait as Ctrl-C (``KeyboardInterrupt``): a Ctrl-C or SIGTERM
    waited for the other process's whole download."""
    held = _held_here()
    if key in held:  # this thread's own download of it (``_fetch_many`` says it for a callback's call)
        raise UsageError(
            "it is being downloaded by this very thread: it would wait for itself forever", wheel=wheel
        )
    lock = file_lock(cache.lock(key))

    def taken(timeout: float) -> bool:
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            return False
        except OSError as exc:
            raise DiskError(
                f"cannot lock {cache.lock(key)}: {exc.strerror or exc}; what earlier runs kept is untouched — "
                "run the same command again once that is fixed",
                wheel=wheel,
            ) from exc
        return True

    if not taken(_QUIET_WAIT):
        if waiting is not None:
            waiting()  # (outside the lock's OSError: a caller's callback failing is not the cache's disk error)
        while not taken(_CANCEL_POLL):
            if cancelled is not None and cancelled():
                raise KeyboardInterrupt from None
    held.add(key)
    try:
        yield
    finally:
        held.discard(key)
        lock.release()


_THIS_THREAD = threading.local()  # the URL keys whose download lock this thread holds


def downloads_held_here() -> frozenset[str]:
    """The URL keys whose download lock the calling thread holds (a progress callback runs on that thread)."""
    return frozenset(_held_here())


def _held_here() -> set[str]:
    held: set[str] | None = getattr(_THIS_THREAD, "keys", None)
    if held is None:
        held = _THIS_THREAD.keys = set()
    return held


@contextlib.contextmanager
def in_use(
    root: str | os.PathLike[str] | None, *, only: bool = False, waiting: Callable[[], None] | None = None
) -> Iterator[None]:
    """The cache at ``root`` held while a command uses it: shared by installs and downloads (from the first
    lookup to the last file copied out of its trees), exclusively (``only``) by ``cache clean``, which would
    otherwise delete a tree an install is copying or hard-linking from. Blocks until it is granted, calling
    ``waiting`` first if it must wait. A flock on ``<root>/cache.lock``: the kernel drops it with the process, so a kill
    leaves nothing to sweep; where the file system has no ``flock`` the cache goes unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows)
        yield
        return
    where = Cache.made(root).root
    with _HELD_LOCK:  # opened and registered with no fork between: a child closes every registered copy
        try:
            fd = os.open(where / "cache.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise DiskError(f"cannot use the cache directory {where}: {exc.strerror or exc}") from exc
        _HELD.add(fd)
    try:
        mode = fcntl.LOCK_EX if only else fcntl.LOCK_SH
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                fcntl.flock(fd, mode)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise DiskError(f"cannot lock {where / 'cache.lock'}: {exc.strerror or exc}") from exc
        yield
    finally:
        with _HELD_LOCK:  # unlocked before it is closed: a child forked meanwhile may hold a copy of it
            if fd in _HELD:  # (else a fork's child closed its copy: the number may be another file's now)
                _HELD.discard(fd)
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


# The descriptors ``in_use`` holds, for a forked child to close: a flock belongs to the open file, which a fork
# shares, so a child of a host that forks mid-install (multiprocessing, a preforking server) held the cache
# until it exited, and ``cache clean`` waited for it. Closing the child's copy leaves the parent's lock held.
_HELD: set[int] = set()
_HELD_LOCK = threading.Lock()


def _close_held_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
    _HELD_LOCK.release()  # taken before the fork (``before``), so that no thread was mid-change then


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_HELD_LOCK.acquire, after_in_parent=_HELD_LOCK.release, after_in_child=_close_held_in_child
    )


def try_lock(path: Path) -> filelock.BaseFileLock | None:
    """Take the lock at ``path`` now if nobody holds it; ``None`` when a live process (or another holder in this
    one) does. Not thread-local: an adopted claim is taken on the executor's thread and released on the caller's,
    a host slot (``fetch._host_slots``) taken on one connection's thread and released on another's."""
    lock = file_lock(path, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None
    return lock


def _unlock(lock: filelock.BaseFileLock) -> None:
    lock.release()
    with contextlib.suppress(OSError):
        os.unlink(lock.lock_file)
