"""Resumable download *and* unpack of one wheel: transport -> tee -> (partial file, sha256, parser -> staging).

The loop, per attempt::

    GET url  [Range: bytes=D-  If-Range: validator]      (D = bytes we already hold)
    decide(status, headers)                               (_http_table.py, DESIGN §3)
    for chunk in body:  partial.write · sha256.update     (network thread, 1 MiB blocks)
                        -> parser -> extractor            (_Unpacker thread, bounded queue)
    every 32 MB / 1 s: checkpoint                         (worker snapshots, syncer thread makes it durable:
                                                           _tee.py, _partial.py, DESIGN §2)

When all bytes are in, the wheel file moves to ``wheels/<sha256>.whl`` and the unpacked tree is either
published to ``wheels/<sha256>/`` (copy/hardlink installs; synced first, since later installs trust its
manifest) or claimed by this process for a move install (``keep_unpacked=False``; not synced: like pip's and
uv's installs, the target's files are left to the kernel's writeback).

Within one process a dropped connection costs nothing: parser, extractor and hash keep their state and the
next request simply asks for ``bytes=D-``. Across processes (Ctrl-C, kill -9, reboot) the journal is the
truth: the partial is cut to its durable length, staging is cut back to the finished entries, the parser
restarts at the checkpoint and is fed the bytes between checkpoint and durable length from disk, the
whole-file hash continues from the state the journal saved with that length (``_sha256``; re-read from the
partial only where no saved state can be trusted), and the download continues where the disk ends. Bytes
on disk are never fetched again and finished entries are never inflated again.

The retry budget counts attempts that made **no progress** (no byte beyond the furthest point reached); an
attempt that advanced resets it, so a slow but moving download is never abandoned. Restarts from zero have a
budget of their own, so a server with broken Range support cannot keep us looping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import random
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import filelock
import httpx

from wheelstream._cache import Cache, Claim
from wheelstream._extract import Extractor
from wheelstream._http_client import take_request_stream
from wheelstream._http_table import Action, Decision, Known, decide, retry_after_seconds
from wheelstream._partial import Journal, PartialFile, read_file_range
from wheelstream._progress import Progress, ProgressCallback
from wheelstream._sha256 import RunningSha256
from wheelstream._sha256 import new as new_sha256
from wheelstream._sha256 import restore as restore_sha256
from wheelstream._staged import (
    StagedWheel,
    current_umask,
    empty_directory_entries,
    pip_dir_mode,
    pip_file_mode,
)
from wheelstream._tee import Tee, file_sha256, finish_deferred, parse_block, prefix_sha256
from wheelstream._urls import cache_key, redact, split_hash_fragment, wheel_filename_from_url, wheel_path_in
from wheelstream.errors import (
    ArchiveError,
    DiskError,
    HashMismatch,
    HTTPStatusError,
    Interrupted,
    NetworkError,
    ResourceGone,
    RetriesExhausted,
    TruncatedArchive,
    WheelstreamError,
)
from wheelstream.zip import DEFAULT_MAX_UNPACKED_SIZE, ZipStreamParser

__all__ = ["CancelSignal", "DownloadOptions", "DownloadResult", "fetch_wheel", "unpack_local"]

_MB = 1024 * 1024


class CancelSignal(Protocol):
    """Set by someone else to stop a download like Ctrl-C would: a ``threading.Event`` (another thread) or a
    ``_workers.PipeSignal`` (the parent of a worker process)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class DownloadOptions:
    timeout: float = 30.0
    retries: int = 5  # attempts in a row without progress before giving up
    chunk_size: int = 256 * 1024
    checkpoint_bytes: int = 32 * _MB  # each checkpoint syncs the disk and pauses the pipeline
    checkpoint_seconds: float = 1.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE


@dataclass(frozen=True)
class DownloadResult:
    staged: StagedWheel
    sha256: str
    bytes_fetched: int  # body bytes received over the network in this call
    bytes_reused: int  # bytes taken from an earlier partial download instead of the network
    resumed_at: int | None  # offset the first request of this call resumed at, if it resumed
    restarts: int  # times the download had to start over (file changed, broken Range support)
    from_cache: bool  # the wheel (unpacked or as a file) was already in the cache: no network at all
    files_unpacked: int = 0  # files inflated and written by this call (a resume skips finished ones)
    claim: Claim | None = None  # ``staged`` is a tree this process owns (``keep_unpacked=False``): release it


class _PrefixHash:
    """The whole-file sha256 of the bytes a resume keeps: continued from the state the journal saved, or —
    where none is usable (see ``wheelstream._sha256``) — by re-reading ``0..D`` on a thread of its own (torch's
    172 MB: 0.12-0.2 s of a core), beside parsing the entries log, the staging check and the replay.
    """

    def __init__(self, path: Path, length: int, saved_state: str | None) -> None:
        restored = restore_sha256(saved_state, length)
        self._hasher = restored if restored is not None else new_sha256()  # else replaced by the thread's
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if restored is None:
            self._thread = threading.Thread(
                target=self._run, args=(path, length), name="wheelstream-rehash", daemon=True
            )
            self._thread.start()

    @property
    def rehashing(self) -> bool:
        return self._thread is not None

    def _run(self, path: Path, length: int) -> None:
        try:
            self._hasher = prefix_sha256(path, length, self._stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._error = exc

    def result(self, raise_error: bool = True) -> RunningSha256:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None and raise_error:
            raise self._error
        return self._hasher

    def cancel(self) -> None:
        """Stop early (the resume was abandoned) and wait until the thread no longer reads the partial."""
        self._stop.set()
        self.result(raise_error=False)


def _missing(path: Path) -> bool:
    """Whether ``path`` is known not to exist (an error looking means: cannot tell)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def _walk_at(base: str) -> Generator[tuple[str, list[str], list[str], int | None], None, None]:
    """``os.fwalk`` where there is one: each name is then looked at relative to its directory's descriptor (one
    ``fstatat``, no walk down the whole path per file: 42 vs 69 ms for torch's 11.6k staged files) and nothing
    follows a symlink. Elsewhere (Windows) ``os.walk``, with no descriptor: names resolve against the path."""
    if hasattr(os, "fwalk"):
        yield from os.fwalk(base)
    else:  # pragma: no cover - not run on the project's machines
        for dirpath, dirs, names in os.walk(base):
            yield dirpath, dirs, names, None


def _settle_mode(
    name: str, dir_fd: int | None, mode: int, is_kind: Callable[[int], bool], size: int | None = None
) -> bool:
    """Check ``name`` (in ``dir_fd``, not followed) is the kind and size expected, and give it ``mode``."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not is_kind(info.st_mode) or (size is not None and info.st_size != size):
        return False
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(name, mode, dir_fd=dir_fd)  # a real file or directory (just checked): nothing to follow
    return True


_CANCEL_POLL = 0.1  # seconds: how soon a cancel cuts a stalled read short


def _shut(sock: socket.socket | None) -> None:
    """End a blocking ``recv`` on ``sock`` in another thread: it returns as if the peer had closed."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _backoff(attempt: int, options: DownloadOptions) -> float:
    """Exponential backoff with full jitter; the first retry after progress is immediate."""
    if attempt <= 0:
        return 0.0
    ceiling = min(options.backoff_max, options.backoff_base * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def _human(size: int | None) -> str:
    return "?" if size is None else f"{size / _MB:.1f} MB"


class _Download:
    """One wheel URL through the decision table until it is complete, gives up, or is interrupted."""

    stream: Tee

    def __init__(
        self,
        url: str,
        cache: Cache,
        client: httpx.Client,
        options: DownloadOptions,
        expected_sha256: str | None,
        progress: ProgressCallback | None,
        keep_wheel_in: Path | None,
        cancel: CancelSignal | None = None,
        keep_unpacked: bool = True,
    ) -> None:
        self.url, fragment_hash = split_hash_fragment(url)
        self.redacted = redact(self.url)
        self.wheel = wheel_filename_from_url(self.url)  # checked: it names the file kept in -d
        self.key = cache_key(self.url)
        self.cache = cache
        self.client = client
        self.options = options
        self.expected = (expected_sha256 or fragment_hash or "").lower() or None
        self.progress = progress
        self.keep_wheel_in = keep_wheel_in
        self.keep_unpacked = keep_unpacked
        self.cancel = cancel  # set by another thread (Ctrl-C in the main thread): stop like Ctrl-C here
        self._socket: socket.socket | None = None  # our descriptor of the request in flight's connection
        self._socket_lock = threading.Lock()
        self.fetched = 0
        self.reused = 0
        self.restarts = 0
        self.resumed_at: int | None = None
        self.unpacked_before = 0  # files written by streams discarded by a restart
        self.completed = False  # the unpacked wheel is published: an interrupt has nothing to save
        self.prefix_unread = False  # the hash went on from the journal's state: the kept bytes were not re-read
        self._callback_error: BaseException | None = None  # what the progress callback raised, if it did
        self._reported_at = 0.0

    # -- state ---------------------------------------------------------------------------------------

    def _new_stream(self, journal: Journal) -> Tee:
        partial = PartialFile(self.cache.partial(self.key))
        try:
            extractor = Extractor(
                self.cache.staging(self.key), {f.name: f for f in journal.files}, writers=True,
                source=partial.read_at if partial.can_read_at else None,
            )
        except BaseException:
            partial.close()
            raise
        return Tee(
            wheel=self.wheel,
            cache=self.cache,
            key=self.key,
            journal=journal,
            partial=partial,
            parser=ZipStreamParser(
                journal.checkpoint,
                prior_entries=journal.entries,
                max_unpacked_size=self.options.max_unpacked_size,
                pack_up_to=extractor.pack_up_to,  # small entries are inflated by the writers
            ),
            extractor=extractor,
            hasher=new_sha256(),
        )

    def _fresh(self) -> Tee:
        self.cache.discard(self.key)
        return self._new_stream(Journal(url=self.redacted, expected_sha256=self.expected))

    def _restore(self) -> Tee:
        """Resume from the journal if it is trustworthy, else start fresh (DESIGN §2, "Resume")."""
        journal_path = self.cache.journal(self.key)
        journal = Journal.load_header(journal_path)
        partial_path = self.cache.partial(self.key)
        if (
            journal is None
            or journal.url != self.redacted
            or not journal.resumable
            or (self.expected is not None and journal.expected_sha256 not in (None, self.expected))
            or not partial_path.exists()
            or partial_path.stat().st_size < journal.durable
            or journal.checkpoint > journal.durable
        ):
            return self._fresh()
        prefix = _PrefixHash(partial_path, journal.durable, journal.sha256_state)
        try:
            stream = self._resume(journal, journal_path, prefix)
        except BaseException:
            prefix.cancel()  # Ctrl-C, a full disk: no thread may still read the partial after this call
            raise
        if stream is None:
            prefix.cancel()  # ... nor when it is about to be discarded
            return self._fresh()
        self.reused = journal.durable
        self.prefix_unread = not prefix.rehashing
        return stream

    def _resume(self, journal: Journal, journal_path: Path, prefix: _PrefixHash) -> Tee | None:
        """The stream at the journal's checkpoint, or None when the log, the staging tree or the bytes kept
        disagree with the header (then nothing of it is worth keeping)."""
        if (
            not journal.load_entries(journal_path)
            or any(entry.offset >= journal.checkpoint for entry in journal.entries)
            or not self._staging_matches(journal)
        ):
            return None
        stream = self._new_stream(journal)
        stream.position = stream.last_checkpoint_bytes = journal.durable
        deferred, journal.deferred_at = journal.deferred_at, None
        try:
            stream.replay(journal.checkpoint, journal.durable)
            stream.hasher = prefix.result()
            stream.partial.truncate(journal.durable)  # bytes after the last fsync are not trusted
        except ArchiveError:
            stream.abandon()
            return None  # the bytes on disk are bad (or disagree with staging)
        except BaseException:
            stream.abandon()  # Ctrl-C while replaying: no worker or descriptor may outlive this call
            raise
        if deferred is not None and journal.deferred_at != deferred:
            stream.abandon()
            return None  # the replay disagrees with the journal: trust neither
        return stream

    def _staging_matches(self, journal: Journal) -> bool:
        """Delete staged files the journal does not list; check the listed ones are all there.

        Modes are brought to this process's umask on the way: an earlier process may have run under another
        one, and a move install renames whole directories without touching their modes, so what pip would
        create (``0o666 & ~umask`` files, ``0o777 & ~umask`` directories) must already be there. Executable
        bits come back when the central directory is read again.
        """
        root = self.cache.staging(self.key)
        listed = {f.name: f.size for f in journal.files}
        if root.is_symlink():
            return False  # not a tree this code made; a resume would write wherever it points
        if not root.is_dir():
            return not listed
        try:
            return self._settle_staging(os.fspath(root), listed) == len(listed)
        except OSError:
            return False  # a file vanished or cannot be changed: resuming is only worth it when all is well

    @staticmethod
    def _settle_staging(base: str, listed: Mapping[str, int]) -> int:
        """How many listed files ``base`` holds as expected; -1 at the first that is not (see above)."""
        umask = current_umask()
        file_mode, dir_mode = pip_file_mode(False, umask), pip_dir_mode(umask)
        found = 0
        with contextlib.closing(_walk_at(base)) as walk:  # fwalk's descriptors closed on every way out
            for dirpath, dirs, names, dir_fd in walk:
                prefix = dirpath[len(base) + 1 :].replace(os.sep, "/")
                prefix += "/" if prefix else ""
                for name in dirs:
                    at = name if dir_fd is not None else os.path.join(dirpath, name)
                    if not _settle_mode(at, dir_fd, dir_mode, stat.S_ISDIR):
                        return -1  # a symlink where a directory should be: not a tree this code made
                for name in names:
                    at = name if dir_fd is not None else os.path.join(dirpath, name)
                    size = listed.get(prefix + name)
                    if size is None:
                        os.unlink(at, dir_fd=dir_fd)  # the entry in flight, or one finished after the checkpoint
                    elif not _settle_mode(at, dir_fd, file_mode, stat.S_ISREG, size):
                        return -1
                    else:
                        found += 1
        return found

    def _restart(self, reason: str) -> None:
        """Discard everything of the old file: partial, staging, journal, parser, hash."""
        self._note(f"restarting from zero: {reason}")
        self.stream.abandon()
        self.restarts += 1
        self.reused = 0
        self.prefix_unread = False
        self.unpacked_before += self.stream.extractor.written
        self.stream = self._fresh()

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> DownloadResult:
        with self._cancel_watch():
            return self._run()

    @contextlib.contextmanager
    def _cancel_watch(self) -> Iterator[None]:
        """A cancel must not wait for a stalled server. The body is read in blocking ``recv`` calls (up to
        ``timeout`` each, 30 s by default), and the cancel is looked at between chunks; so a watcher shuts the
        socket down as soon as the cancel is set. The read then ends like a dropped connection, and the
        attempt loop, seeing the cancel, checkpoints and raises — as Ctrl-C between two chunks would."""
        if self.cancel is None:
            yield
            return
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(finished,), name="wheelstream-cancel", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            finished.set()
            watcher.join()

    def _watch(self, finished: threading.Event) -> None:
        assert self.cancel is not None
        while not finished.wait(_CANCEL_POLL):
            if self.cancel.is_set():
                with self._socket_lock:
                    _shut(self._socket)
                return

    def _register(self, stream: object) -> None:
        """Tell the cancel watcher which connection the request in flight uses (see ``_cancel_watch``).

        It keeps its own descriptor of the socket (``dup``): the TLS handshake detaches the plain socket it
        wraps, and a shutdown through any descriptor ends the connection itself."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        if not isinstance(sock, socket.socket) or sock.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            own = socket.socket(fileno=os.dup(sock.fileno()))
            with self._socket_lock:
                previous, self._socket = self._socket, own
                if self.cancel is not None and self.cancel.is_set():
                    _shut(own)  # cancelled before the socket was known: the watcher has returned
            if previous is not None:
                previous.close()

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: the request's socket is known before any response is (a server that accepts
        and never answers, stalls the TLS handshake, or says nothing after a request on a pooled keep-alive
        connection must not hold a cancel either). A new connection names its stream when it is made; our
        own client's pools name the stream a request is written to (``_http_client.take_request_stream``)."""
        if event.endswith("connect_tcp.complete"):
            self._register(info.get("return_value"))
        elif event == "http11.send_request_headers.started":
            take_request_stream()  # nothing an earlier request on this thread left may be taken for this one
        elif event == "http11.send_request_headers.complete":
            stream = take_request_stream()
            if stream is not None:
                self._register(stream)

    @contextlib.contextmanager
    def _abortable(self) -> Iterator[dict[str, Any]]:
        """The request's extensions; until the request is over, its connection is the watcher's to shut.

        Through a client of the caller's, a request on a pooled keep-alive connection makes no trace that names
        its stream: its socket is known from the response on, so a server that stalls *before* the response
        headers there still holds a cancel until the read timeout."""
        try:
            yield {"trace": self._trace}
        finally:
            with self._socket_lock:
                own, self._socket = self._socket, None
            if own is not None:
                own.close()  # our descriptor only: the connection stays with the pool

    def _run(self) -> DownloadResult:
        try:
            self.stream = self._restore()
            try:
                return self._run_restored()
            finally:
                # Every thread of the stream stopped (a checkpoint still syncing included: review found the
                # partial closed under it on error paths) and every descriptor closed, whatever happened.
                self.stream.abandon()
        except OSError as exc:  # the network's errors are httpx's: this is the local disk ...
            if exc is self._callback_error:
                raise  # ... or the caller's progress callback, whose error is the caller's own
            raise self._disk_error(exc) from exc

    def _run_restored(self) -> DownloadResult:
        try:
            try:
                return self._attempts()
            except (ArchiveError, HashMismatch) as exc:
                if not self.reused:
                    raise
                # Part of the file came from an earlier process's partial: disks and crashes can spoil
                # bytes the journal vouched for. Give the network one clean chance before blaming the file.
                self._restart(f"verification failed on resumed bytes ({exc})")
                return self._attempts()
        except KeyboardInterrupt:
            if self.completed:
                raise  # the wheel is already in the cache: nothing to checkpoint
            self.stream.checkpoint()
            with contextlib.suppress(Exception, KeyboardInterrupt):  # (a callback may raise the Ctrl-C itself)
                self._report()  # the UI's last word then is where the next run resumes, not the last report
            raise Interrupted(
                f"interrupted at {_human(self.stream.position)} of {_human(self.stream.journal.length)}"
                " — run the same command again to resume",
            ) from None
        except (ArchiveError, HashMismatch, ResourceGone):
            self.stream.abandon()
            with contextlib.suppress(OSError):  # the bad bytes are the error to report, not a failed clean-up
                self.cache.discard(self.key)  # the bytes are bad, or the server no longer has this file
            raise
        except NetworkError:
            self.stream.checkpoint()
            raise

    def _disk_error(self, exc: OSError) -> DiskError:
        """The partial, the journal or a staged file could not be written (or read back). No new checkpoint is
        tried (the pipeline is broken somewhere: a writer's file, or a block the partial holds only part
        of); the last one on disk is consistent by construction and is what the next run resumes from.
        Without a journal, what was written cannot be resumed: it is removed, since on a full disk it is
        space nothing can use. A journal that exists but cannot be read now is kept: it may be fine later.
        Called once ``_run`` has abandoned the stream: no worker writes on."""
        stream: Tee | None = getattr(self, "stream", None)  # unset when the restore itself failed
        journal_path = self.cache.journal(self.key)
        journal = Journal.load_header(journal_path)
        if journal is not None and journal.durable > 0:
            kept = f"{_human(journal.durable)} kept — run the same command again to resume once that is fixed"
        elif journal is None and _missing(journal_path):
            with contextlib.suppress(OSError):
                self.cache.discard(self.key)
            kept = "nothing kept"
        else:
            kept = "the partial download is kept — run the same command again once that is fixed"
        where = f" {exc.filename}" if exc.filename else f" in {self.cache.root}"
        return DiskError(f"cannot write{where}: {exc.strerror or exc}; {kept}", wheel=self.wheel,
                         offset=stream.position if stream is not None else None)

    def _attempts(self) -> DownloadResult:
        """Attempts until done. Only attempts that bring bytes never held before count as progress; a
        restart from zero brings none, and restarts have a budget of their own (both ``options.retries``)."""
        without_progress = 0
        high_water = self.stream.position
        while True:
            self._sleep(0)
            restarts = self.restarts
            try:
                outcome = self._attempt()
            except httpx.TransportError as exc:
                self._stop_if_cancelled()  # the watcher shut the connection: not a network failure
                outcome = _Retry(f"{type(exc).__name__}: {exc}".rstrip(": "))
                if not self.stream.journal.resumable:
                    self._restart(f"{outcome.reason}, and the server's encoding prevents a resume")
                    outcome = _RESTARTED
            if outcome is _DONE:
                return self._complete()
            if self.restarts != restarts:
                high_water = 0
                if self.restarts > self.options.retries:
                    raise RetriesExhausted(f"gave up after {self.restarts} restarts from zero")
            if self.stream.position > high_water:
                high_water = self.stream.position
                without_progress = 0
                continue  # a drop after progress: resume at once (the periodic checkpoints go on)
            if outcome is _RESTARTED:
                self._sleep(_backoff(self.restarts - 1, self.options))
                continue
            assert isinstance(outcome, _Retry)
            without_progress += 1
            if without_progress > self.options.retries:
                raise RetriesExhausted(
                    f"gave up after {without_progress} attempts without progress ({outcome.reason}); "
                    f"partial kept at {_human(self.stream.position)} — run the same command again to resume"
                )
            wait = outcome.wait if outcome.wait is not None else _backoff(without_progress, self.options)
            wait = min(wait, _MAX_RETRY_AFTER)
            self.stream.checkpoint()  # about to wait: make what we hold durable (a sync costs ~1 s on ext4)
            self._note(f"{outcome.reason}; retry {without_progress} of {self.options.retries} in {wait:.1f} s")
            self._sleep(wait)

    def _stop_if_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise KeyboardInterrupt

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up for a cancel (Ctrl-C in the main thread while this runs on a worker)."""
        if self.cancel is None:
            time.sleep(seconds)
        elif self.cancel.wait(seconds):
            raise KeyboardInterrupt

    def _request_headers(self) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity"}
        if self.stream.position > 0:
            headers["Range"] = f"bytes={self.stream.position}-"
            validator = self.stream.journal.validator
            if validator:
                headers["If-Range"] = validator
        return headers

    def _attempt(self) -> object:
        """One request: returns _DONE, _RESTARTED, or a _Retry saying why it stopped short."""
        journal = self.stream.journal
        if journal.length is not None and 0 < journal.length == self.stream.position:
            return _DONE  # everything is on disk already (e.g. killed right before the end)
        known = Known(self.stream.position, journal.length, journal.etag, journal.last_modified)
        headers = self._request_headers()
        with (
            self._abortable() as extensions,
            self.client.stream(
                "GET", self.url, headers=headers, timeout=self.options.timeout, extensions=extensions
            ) as response,
        ):
            if self._socket is None:  # a pooled connection: no connect trace
                self._register(response.extensions.get("network_stream"))
            decision = decide(response.status_code, response.headers, known)
            action = decision.action
            if action is Action.RETRY:
                return _Retry(decision.reason, retry_after_seconds(response.headers))
            if action is Action.GONE:
                raise ResourceGone(f"{decision.reason}; the partial download was discarded")
            if action is Action.FAIL:
                raise HTTPStatusError(decision.reason)
            if action is Action.COMPLETE:
                return _DONE
            if action is Action.RESTART:
                self._restart(decision.reason)
                return _RESTARTED
            if action is Action.RESTART_WITH_BODY:
                self._restart(decision.reason)
            if action in (Action.START, Action.RESTART_WITH_BODY):
                self._adopt(response, decision)
            else:
                self._resumed(action)
            skip = self.stream.position if action is Action.SKIP else 0
            # No chunk_size: httpx would hold back up to a chunk of received bytes and lose it on a drop.
            body = response.iter_raw() if decision.resumable else response.iter_bytes()
            self._pump(body, skip)
        self._stop_if_cancelled()  # a body read until close ends early when the watcher shuts it
        length = self.stream.journal.length
        if length is None or length == self.stream.position:
            return _DONE  # an unknown length ends with the body; a known one when it is reached
        return _Retry("the connection closed before the end of the body")

    def _pump(self, body: Iterator[bytes], skip: int) -> None:
        stream = self.stream
        try:
            for chunk in body:
                self._stop_if_cancelled()
                self.fetched += len(chunk)
                if skip:
                    drop = min(skip, len(chunk))
                    skip -= drop
                    chunk = chunk[drop:]
                    if not chunk:
                        continue
                stream.feed(chunk)
                stream.maybe_checkpoint(self.options.checkpoint_bytes, self.options.checkpoint_seconds)
                now = time.monotonic()
                if now - self._reported_at >= _REPORT_EVERY:  # not per 64 KiB chunk: a rich bar update holds
                    self._reported_at = now  # the GIL the unpack thread needs; 20 updates a second are plenty
                    self._report()
        except BaseException:
            # A bad entry the worker found came first in the stream: its error wins. The syncer is not waited
            # for: after a drop the next request goes out at once (see Tee.settle).
            stream.settle(wait_for_syncer=False)
            raise
        stream.settle(wait_for_syncer=False)

    def _resumed(self, action: Action) -> None:
        position = self.stream.position
        if self.resumed_at is None:
            self.resumed_at = position
        if action is Action.SKIP:
            self._note(f"server ignored Range: reading the first {_human(position)} again, nothing re-extracted")
        else:
            self._report(message=f"resumed at {_human(position)} (saved {_human(position)})")

    def _adopt(self, response: httpx.Response, decision: Decision) -> None:
        """Record the validators of the response the partial file now follows."""
        journal = self.stream.journal
        journal.final_url = redact(str(response.url))
        journal.etag = response.headers.get("etag")
        journal.last_modified = response.headers.get("last-modified")
        journal.length = decision.length
        journal.resumable = decision.resumable
        if not decision.resumable:
            self._note(decision.reason)
        self._report()

    def _complete(self) -> DownloadResult:
        stream = self.stream
        stream.end_of_input()
        if not stream.parser.done:
            raise TruncatedArchive("archive ended before its end of central directory", offset=stream.position)
        sha256 = stream.hasher.hexdigest()
        if self.expected is not None and sha256 != self.expected:
            raise HashMismatch(f"sha256 is {sha256}, expected {self.expected}; the download was discarded")
        if self.keep_wheel_in is not None and self.prefix_unread and file_sha256(stream.partial.path) != sha256:
            # The hash covers the bytes as they arrived; the kept ones were not read again on resume (their
            # state came from the journal). A file handed to the caller must be what we report: a disk that
            # spoilt it costs a fresh download (run() restarts on this error). The cache's own copy is checked
            # every time it is used instead (_from_wheel_file), so installs do not pay this read.
            raise HashMismatch("the kept part of the download changed on disk since it was hashed")
        staged = _finished_tree(
            self.wheel, self.cache.staging(self.key), stream.parser, stream.extractor, self.keep_unpacked
        )
        self.completed = True  # from here an interrupt writes no checkpoint: skipping one is always safe
        stream.partial.close()
        # Renames only, in an order where a crash between two of them never leaves a journal pointing at what
        # has moved away: the journal goes first (then at worst the next run fetches again), then the wheel
        # file goes to the cache — where a later install unpacks it without the network, unless the caller
        # wants it elsewhere; it is not fsynced, every use re-checks its sha256 — and is remembered, and only
        # then is the tree published or claimed.
        Journal.remove(self.cache.journal(self.key))  # the header and its entries log
        keep = self.cache.wheel_file(sha256)
        if self.keep_wheel_in is not None:  # the caller's directory: the name is checked again as it is joined
            keep = wheel_path_in(self.keep_wheel_in, self.wheel, source=self.redacted)
        keep.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.cache.partial(self.key), keep)
        self.cache.remember(self.key, self.redacted, sha256, self.wheel)
        final, claim = _settle_tree(self.cache, staged, sha256, self.keep_unpacked)
        try:
            self._report(finished=True)
        except BaseException:
            if claim is not None:
                claim.release()  # nobody else will: the result carrying it is never returned
            raise
        unpacked = self.unpacked_before + stream.extractor.written
        return DownloadResult(
            final, sha256, self.fetched, self.reused, self.resumed_at, self.restarts, False, unpacked, claim
        )

    # -- reporting -----------------------------------------------------------------------------------

    def _tell(self, progress: Progress) -> None:
        """Call the caller's progress callback; remember what it raised, which is the caller's own error."""
        assert self.progress is not None
        try:
            self.progress(progress)
        except BaseException as exc:
            self._callback_error = exc
            raise

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self._tell(Progress(self.wheel, 0, None, 0, None, message=message))

    def _report(self, *, message: str | None = None, finished: bool = False) -> None:
        if self.progress is None:
            return
        stream = self.stream
        self._tell(
            Progress(
                self.wheel,
                stream.position,
                stream.journal.length,
                len(stream.extractor.files),
                self.resumed_at,
                message=message,
                finished=finished,
            )
        )


_REPORT_EVERY = 0.05  # seconds between progress reports while bytes flow
_DONE = object()
_RESTARTED = object()
_MAX_RETRY_AFTER = 600.0  # honour Retry-After (DESIGN §3), but never sleep longer than this


@dataclass(frozen=True)
class _Retry:
    """An attempt that stopped short: why, and how long the server asked us to wait, if it did."""

    reason: str
    wait: float | None = None


def _publish(cache: Cache, staged: StagedWheel, sha256: str) -> StagedWheel:
    """Move a finished staging tree to ``wheels/<sha256>/`` (atomic rename; first writer wins)."""
    staged.write_manifest()
    target = cache.wheel_dir(sha256)
    try:
        os.replace(staged.root, target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staged.root, ignore_errors=True)  # another process published the same bytes
    return StagedWheel.read_manifest(target)


def _finished_tree(
    filename: str, root: Path, parser: ZipStreamParser, extractor: Extractor, keep_unpacked: bool
) -> StagedWheel:
    """The unpacked wheel once every entry is in (the extractor closed, so ``files`` has every digest)."""
    empty = empty_directory_entries((entry.name for entry in parser.finished_entries), extractor.files)
    if keep_unpacked:
        extractor.sync()  # the cache's tree must survive a power loss: installs trust its manifest
    return StagedWheel(filename, root, dict(extractor.files), empty_dirs=empty)


def _settle_tree(
    cache: Cache, staged: StagedWheel, sha256: str, keep_unpacked: bool
) -> tuple[StagedWheel, Claim | None]:
    """Where a finished staging tree goes: the shared cache (copy/hardlink installs) or this process's claim
    (move installs: nothing is kept unpacked, the wheel file is)."""
    if keep_unpacked:
        return _publish(cache, staged, sha256), None
    claim = cache.claim(staged.root)
    return dataclasses.replace(staged, root=claim.root, movable=True), claim


def fetch_wheel(
    url: str,
    *,
    cache: Cache,
    client: httpx.Client,
    expected_sha256: str | None = None,
    options: DownloadOptions = DownloadOptions(),
    progress: ProgressCallback | None = None,
    keep_wheel_in: Path | None = None,
    cancel: CancelSignal | None = None,
    keep_unpacked: bool = True,
) -> DownloadResult:
    """Download and unpack one wheel URL into the cache, resuming whatever an earlier attempt left.

    Holds the per-URL file lock for the whole download: a second process asking for the same URL waits,
    then finds the wheel in the cache and fetches nothing. ``keep_unpacked=False`` (move installs) returns a
    tree claimed for this process instead of publishing it in the cache; release ``result.claim`` after use.
    """
    download = _Download(url, cache, client, options, expected_sha256, progress, keep_wheel_in, cancel,
                         keep_unpacked)
    with filelock.FileLock(cache.lock(download.key)):
        if keep_wheel_in is None:
            cached = _from_cache(cache, download)
            if cached is not None:
                return cached
        try:
            return download.run()
        except WheelstreamError as exc:
            exc.with_wheel(download.wheel)
            raise  # as it was raised: its cause (a DiskError's OSError) stays


def _from_cache(cache: Cache, download: _Download) -> DownloadResult | None:
    sha = download.expected if download.expected else cache.remembered_sha256(download.key)
    if sha is None:
        return None
    return _cached(cache, sha, download.wheel, download.progress) or _from_wheel_file(cache, sha, download)


def _cached(cache: Cache, sha256: str, wheel: str, progress: ProgressCallback | None) -> DownloadResult | None:
    """The unpacked wheel ``wheels/<sha256>/`` as a result that fetched and unpacked nothing, if it is there."""
    if not (cache.wheel_dir(sha256) / StagedWheel.MANIFEST).is_file():
        return None
    staged = StagedWheel.read_manifest(cache.wheel_dir(sha256))
    if progress is not None:
        progress(Progress(wheel, 0, 0, len(staged.files), None, message="from cache", finished=True))
    return DownloadResult(staged, sha256, 0, 0, None, 0, True)


def _from_wheel_file(cache: Cache, sha256: str, download: _Download) -> DownloadResult | None:
    """Unpack the wheel file an earlier download left in the cache: no network, like pip's wheel cache.

    The file was never fsynced (a crash may have spoilt it), so it must hash to ``sha256``; one that does not,
    or is not a valid archive, is deleted and the caller downloads again.
    """
    path = cache.wheel_file(sha256)
    if not path.is_file():
        return None
    if download.progress is not None:
        download.progress(Progress(download.wheel, 0, None, 0, None, message="unpacking the cached wheel"))
    try:
        result = _unpack_file(path, download.wheel, cache, sha256, download.options, download.progress,
                              download.keep_unpacked)
    except (ArchiveError, HashMismatch):
        path.unlink(missing_ok=True)
        return None
    return dataclasses.replace(result, bytes_reused=0, from_cache=True)


_T = TypeVar("_T")


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")  # the caller's ``with`` closes it


def _unreadable(path: Path, filename: str, exc: OSError) -> DiskError:
    """An OSError reading the local wheel ``path``, told as that (not as the cache's)."""
    return DiskError(f"cannot read {path}: {exc.strerror or exc}", wheel=filename)


def _reading(path: Path, filename: str, call: Callable[..., _T], *args: object) -> _T:
    """``call(*args)``, reading the local wheel: see ``_unreadable``."""
    try:
        return call(*args)
    except OSError as exc:
        raise _unreadable(path, filename, exc) from exc


def _read_wheel_range(path: Path, filename: str, start: int, end: int) -> Iterator[bytes]:
    """``read_file_range`` of the local wheel: see ``_unreadable``."""
    try:
        yield from read_file_range(path, start, end)
    except OSError as exc:
        raise _unreadable(path, filename, exc) from exc


def unpack_local(
    path: Path,
    *,
    cache: Cache,
    expected_sha256: str | None = None,
    options: DownloadOptions = DownloadOptions(),
    progress: ProgressCallback | None = None,
    keep_unpacked: bool = True,
) -> DownloadResult:
    """Local files and ``file://`` URLs go through the same parser and extractor, without a partial file."""
    return _unpack_file(path, path.name, cache, expected_sha256, options, progress, keep_unpacked)


def _unpack_file(
    path: Path,
    filename: str,
    cache: Cache,
    expected_sha256: str | None,
    options: DownloadOptions,
    progress: ProgressCallback | None,
    keep_unpacked: bool,
) -> DownloadResult:
    key = cache_key(path.resolve().as_uri())
    staging = cache.staging(key)
    with filelock.FileLock(cache.lock(key)):
        known = cache.remembered_sha256(key)
        if known is not None and _reading(path, filename, file_sha256, path) == known:  # ~10x cheaper than inflating
            cached = _cached(cache, known, filename, progress)
            if cached is not None:
                return cached
        shutil.rmtree(staging, ignore_errors=True)
        extractor = Extractor(staging, writers=True)
        parser = ZipStreamParser(max_unpacked_size=options.max_unpacked_size, pack_up_to=extractor.pack_up_to)
        hasher = hashlib.sha256()
        deferred: int | None = None
        try:
            with _reading(path, filename, _open_binary, path) as source:
                while chunk := _reading(path, filename, source.read, options.chunk_size):
                    hasher.update(chunk)
                    if deferred is None:
                        deferred = parse_block(parser, extractor, chunk)
            if deferred is None:
                parse_block(parser, extractor, b"")
            else:
                parser = finish_deferred(
                    functools.partial(_read_wheel_range, path, filename),
                    _reading(path, filename, os.path.getsize, path), deferred, parser, extractor
                )
            extractor.close()
            sha256 = hasher.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256.lower():
                raise HashMismatch(f"sha256 is {sha256}, expected {expected_sha256}")
        except WheelstreamError as exc:
            with contextlib.suppress(Exception):
                extractor.close()
            shutil.rmtree(staging, ignore_errors=True)
            exc.with_wheel(filename)
            raise
        except OSError as exc:  # reading the wheel is mapped by _reading: this is writing the cache
            with contextlib.suppress(Exception):
                extractor.close()
            shutil.rmtree(staging, ignore_errors=True)  # a local file is unpacked again whole: keep nothing
            raise DiskError(f"cannot write in {cache.root}: {exc.strerror or exc}", wheel=filename) from exc
        except BaseException:
            with contextlib.suppress(Exception):
                extractor.close()  # Ctrl-C: no sink thread or descriptor may outlive the call
            raise
        fresh = _finished_tree(filename, staging, parser, extractor, keep_unpacked)
        staged, claim = _settle_tree(cache, fresh, sha256, keep_unpacked)
        if keep_unpacked:
            cache.remember(key, path.resolve().as_uri(), sha256, filename)
        size = path.stat().st_size
        if progress is not None:
            progress(Progress(filename, size, size, len(staged.files), None, finished=True))
        return DownloadResult(staged, sha256, 0, size, None, 0, False, extractor.written, claim)
