"""Turn parser events into files in a staging directory — the I/O edge behind ``ZipStreamParser``.

Rules this module keeps:

* Nothing is written outside ``root``: names were validated by the parser, and every join is checked again
  here (defence in depth; a parser bug must not become a path traversal).
* Each file's sha256 and size are computed from the bytes as they are written, never by reading back
  (DESIGN §1, §8). They become :class:`~wheelstream._staged.StagedFile` records for RECORD verification.
* Only finished entries count. A file whose entry is in flight when the stream stops is deleted on resume
  (``_download._Download._staging_matches``): the checkpoint rule is that staging holds exactly the finished
  entries the journal lists.
* Exec bits exist only in the central directory (external attributes), so they are applied when it arrives,
  the way pip applies them: ``0o777 & ~umask | 0o111`` for any entry with an x bit.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import hashlib
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeAlias, cast

from wheelstream._staged import StagedFile, current_umask, pip_file_mode
from wheelstream.errors import DiskError, DuplicateEntry, UnsafePath
from wheelstream.unpack._partial import write_all
from wheelstream.zip import (
    CentralDirectory,
    EntryData,
    EntryFinished,
    EntryPacked,
    EntryStarted,
    Event,
    LocalHeader,
    executable_files,
    unpack_entry,
)

__all__ = ["Extractor"]


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast("Callable[[int], int]", function)


_SYNCFS = _load_syncfs()
# O_EXCL: staging only ever holds finished entries (resume deletes the rest), so an existing file means two
# entries map to one path — e.g. ``A.py`` and ``a.py`` on a case-insensitive filesystem — and that must not
# silently overwrite a file whose digest was already recorded.
# O_BINARY: on Windows a descriptor is in text mode without it, and every b"\n" written becomes b"\r\n".
_CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


def _syncfs(fd: int) -> bool:
    """``syncfs(2)``: write back the one filesystem holding ``fd``; False when unavailable or failed."""
    return _SYNCFS is not None and _SYNCFS(fd) == 0


def _collision(name: str, offset: int) -> DuplicateEntry:
    return DuplicateEntry("entry collides with a file or directory of another entry", entry=name, offset=offset)


def _outside(name: str) -> UnsafePath:
    return UnsafePath("entry would be written outside the staging directory", entry=name)


def _symlink(name: str) -> UnsafePath:
    return UnsafePath("entry is a symbolic link in the staging directory", entry=name)


def _too_long(name: str, offset: int) -> DiskError:
    """``ENAMETOOLONG``: the parser's name limits keep every entry far below the file system's, so only a cache
    directory with a path of thousands of bytes gets here — one line naming the entry, not a traceback."""
    return DiskError("the staged path of this entry is too long for the file system (ENAMETOOLONG); "
                     "use a cache directory with a shorter path", entry=name, offset=offset)


def _open_error(exc: OSError, name: str, offset: int) -> Exception:
    if isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError)):
        return _collision(name, offset)
    if exc.errno == errno.ELOOP:
        return _symlink(name)
    if exc.errno == errno.ENAMETOOLONG:
        return _too_long(name, offset)
    return exc


class _Batch:
    """Small finished files handed to the writer pool together: one queue hand-off per ~64 files instead of
    a ``ThreadPoolExecutor.submit`` (a Future, a work item, a lock dance) per file — on torch's 12k files that
    was a tenth of the unpack thread's time. The writer inflates and verifies packed entries, hashes
    (sha256), creates, writes and closes each file, so the unpack thread does none of it."""

    __slots__ = ("digests", "done", "error", "files", "held", "size")

    def __init__(self) -> None:
        self.files: list[tuple[str, _Content, str, int]] = []  # (path, content, archive name, offset)
        self.size = 0  # the work in it: bytes to inflate and write
        self.held = 0  # the memory it holds until written: compressed bytes of packed entries, inflated chunks
        self.digests: list[str] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        files = self.files
        try:
            for index, (path, content, name, offset) in enumerate(files):
                self.digests.append(_write_file(path, content, name, offset))
                files[index] = (path, _WRITTEN, name, offset)  # a batch waiting to be collected holds no data
        except BaseException as exc:  # noqa: BLE001 - re-raised on the extractor's thread, in stream order
            self.error = exc
        finally:
            self.done.set()


class _Unread(NamedTuple):
    """A packed entry whose compressed bytes were left in the source file (the archive being extracted: the
    partial file of a download) because the extractor's memory budget was spent; its writer reads them back."""

    header: LocalHeader
    end_offset: int
    read_at: ReadAt

    def load(self) -> EntryPacked:
        header = self.header
        return EntryPacked(header, self.read_at(header.data_offset, header.compressed_size), self.end_offset)


# ``read_at(offset, size)``: exactly ``size`` bytes of the archive from ``offset`` (or OSError), from any thread.
ReadAt: TypeAlias = "Callable[[int, int], bytes]"
_Content: TypeAlias = "list[bytes] | EntryPacked | _Unread"  # inflated chunks, or a whole entry still compressed
_WRITTEN: list[bytes] = []  # what a batch keeps of a file once it is written


def _write_file(path: str, content: _Content, name: str, offset: int) -> str:
    """Create one small file: inflate + verify a packed entry (before the file exists: a bad entry leaves
    nothing behind), open (the slow part on ext4: ~0.1-0.5 ms), hash + write, close; its sha256."""
    if isinstance(content, _Unread):
        content = content.load()
    chunks = [unpack_entry(content)] if isinstance(content, EntryPacked) else content
    try:
        fd = os.open(path, _CREATE_FLAGS, 0o666)
    except OSError as exc:
        raise _open_error(exc, name, offset) from None
    digest = hashlib.sha256()
    try:
        for chunk in chunks:
            digest.update(chunk)
            write_all(fd, chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


_WRITERS = 2  # file creation is kernel-CPU bound here: more writers only add lock contention (docs/performance.md)
_BATCH_FILES = 64
_BATCH_BYTES = 1 << 20
# Batches in flight: with a source to read packed entries back from, the parser may run this far ahead of
# the writers (~16k small files; ~0.4 KB of bookkeeping each) — far enough for torch's 11k small files before
# its 434 MB shared library, which the parser then inflates while the writers catch up (docs/performance.md).
_MAX_BATCHES = 256
_MAX_BATCHES_IN_MEMORY = 64  # without a source every batch holds its bytes: the old, tighter bound
# Bytes the batches in flight may hold in memory (compressed, or inflated small files). With a source the
# parser need not wait at this budget, so it only trades RSS for preads: torch's peak RSS read 93-95 MB at
# 8 MiB, 80-87 MB at 2 MiB (3 runs each, tmpfs; about the old code's), at no measurable cost in time.
_MAX_PENDING = 2 << 20
_POOL: queue.SimpleQueue[_Batch] | None = None
_POOL_LOCK = threading.Lock()


def _writer_loop(work: queue.SimpleQueue[_Batch]) -> None:
    while True:
        work.get().run()


def _forget_pool() -> None:
    """After ``fork`` the child has the queue but not the threads: it must start its own."""
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> queue.SimpleQueue[_Batch]:
    """The process-wide writer threads (daemons: they only ever wait for work between batches)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = queue.SimpleQueue()
            for number in range(_WRITERS):
                threading.Thread(
                    target=_writer_loop, args=(_POOL,), name=f"wheelstream-write_{number}", daemon=True
                ).start()
        return _POOL


class _Sink:
    """Hashes and writes the chunks of large files on its own thread, in order.

    Inflating (isal), hashing (OpenSSL) and writing all release the GIL, so with the sink the unpack thread
    inflates the next chunk while this one hashes and writes the last: on torch most bytes are in a few huge
    shared libraries, where these three used to run one after the other. Errors are kept and re-raised, in
    stream order, by the next ``put`` or by ``drain``.
    """

    def __init__(self, record: Callable[[StagedFile], None]) -> None:
        self._record = record
        self._queue: queue.Queue[tuple[BinaryIO, Any, bytes | StagedFile] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None  # sticky: after a failed write nothing more is written
        self._thread = threading.Thread(target=self._run, name="wheelstream-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                handle, digest, payload = item
                if self.error is not None:
                    continue  # a file after a failed write could only be recorded with a wrong digest
                if isinstance(payload, StagedFile):
                    handle.close()
                    self._record(StagedFile(payload.name, payload.size, digest.hexdigest(), False))
                else:
                    digest.update(payload)
                    handle.write(payload)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the extractor's thread
                self.error = exc
            finally:
                self._queue.task_done()

    def put(self, handle: BinaryIO, digest: Any, payload: bytes | StagedFile) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((handle, digest, payload))  # the queue counts it only once it is really queued

    def drain(self) -> None:
        self._queue.join()  # an interrupted join leaves the count intact: the next drain waits again
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._queue.put(None)


class Extractor:
    """Consumes :mod:`wheelstream.zip` events and writes the entries below ``root``.

    Small files (``≤ inline_limit``) are kept in memory until their entry is finished and verified, then
    hashed and created by the writer pool (``writers=True``) in batches: creating 12k files one after the
    other is what made unpacking torch slow, not inflating it. With writers, small entries need not even be
    inflated on the calling thread: a parser built with ``pack_up_to=extractor.pack_up_to`` hands them over
    whole (``EntryPacked``) and the writers inflate and verify them too, beside the parser. Large files are
    opened on the calling thread (so collisions are found in stream order) and hashed + written by the
    ``_Sink`` thread, overlapping inflation. ``files`` lists every finished file in stream order; a file's
    digest is there only after :meth:`drain` (called by :meth:`sync`, the central directory, and
    :meth:`close`) or, for the files already written, :meth:`collect_written`; until then it is ``""``.

    How far the parser may run ahead of the writers: the batches in flight hold at most ``max_pending`` bytes
    in memory. With a ``source`` (``read_at``: the archive's bytes by offset, e.g. the partial file) packed
    entries past that budget are queued without their bytes, and the writers read them back, so the parser
    runs up to ``_MAX_BATCHES`` batches ahead — through torch's 11k small files to its 434 MB library, which it
    inflates while the writers catch up. Without a source it waits for the writers at the budget, or at
    ``_MAX_BATCHES_IN_MEMORY`` batches.

    Paths are plain strings here: ``pathlib`` objects cost several microseconds each to build and print, and
    this code runs a few times per entry.
    """

    def __init__(
        self,
        root: Path,
        finished: Mapping[str, StagedFile] | None = None,
        *,
        writers: bool = False,
        inline_limit: int = 1 << 20,
        max_pending: int | None = None,
        source: ReadAt | None = None,
    ) -> None:
        self.root = root
        self.files: dict[str, StagedFile] = dict(finished or {})
        self.written = 0  # files this extractor wrote (a resume's work, for reporting and tests)
        self._root = os.fspath(root)
        self._prefix = os.path.join(self._root, "")  # root and one separator, however root was spelt
        self._open: BinaryIO | None = None
        self._open_name: str | None = None
        self._open_path = ""
        self._open_offset = 0
        self._chunks: list[bytes] | None = None  # the entry in flight, while it is small enough to buffer
        self._hash: Any = None  # sha256 of a large entry in flight (small ones are hashed by the writers)
        self._size = 0
        self._inline_limit = inline_limit if writers else 0
        self._max_pending = _MAX_PENDING if max_pending is None else max_pending
        self._source = source
        self._max_batches = _MAX_BATCHES if source is not None else _MAX_BATCHES_IN_MEMORY
        self._batch = _Batch()
        self._in_flight: collections.deque[_Batch] = collections.deque()
        self._in_flight_bytes = 0  # held in memory by the batches in flight
        self._failed: BaseException | None = None  # a writer's error: sticky, like the sink's
        self._resolved_root = os.path.realpath(root)
        self._dirs: dict[str, str] = {}  # archive dir name -> staging dir made or checked by ``_dir``
        self._sink = _Sink(self._record) if writers else None  # large files: hash + write off this thread
        root.mkdir(parents=True, exist_ok=True)

    @property
    def pack_up_to(self) -> int:
        """The ``pack_up_to`` for this extractor's parser: packed entries up to the inline limit go to the
        writers whole; without writers (0) the parser inflates everything itself."""
        return self._inline_limit

    def _join(self, name: str) -> str:
        """The same string ``os.path.join(root, *parts)`` gives, for a validated archive name (no empty, ``.``
        or ``..`` part): a resume builds one per finished file, 11.6k for torch."""
        return self._prefix + name.rstrip("/").replace("/", os.sep)

    def path_for(self, name: str) -> str:
        """The staging path of an archive name, refusing anything that would leave ``root``."""
        parent_name, _, leaf = name.rstrip("/").rpartition("/")
        if leaf in ("", ".", ".."):
            raise _outside(name)
        made = self._dirs.get(parent_name) if parent_name else self._root
        if made is not None:  # a directory this extractor made or checked, component by component
            return os.path.join(made, leaf)
        path = self._join(name)
        real = os.path.join(os.path.realpath(os.path.dirname(path)), leaf)  # the leaf is opened O_NOFOLLOW
        if os.path.commonpath([real, self._resolved_root]) != self._resolved_root or real == self._resolved_root:
            raise _outside(name)
        return path

    def _dir(self, dir_name: str, name: str, offset: int) -> str:
        """``mkdir -p`` of an archive directory, once per directory and one component at a time.

        Each component is created here or, when it exists already (a resume), must be a real directory
        (``lstat``: never a symlink) — so everything below it is inside ``root`` without a ``realpath`` (a
        dozen ``lstat`` calls) per directory. A component named like an earlier entry's file (``files``: the
        file may still be queued for a writer) is the collision ``mkdir`` would find.

        A loop, not a recursion: how deep a name goes is the archive's choice (the parser caps it, but this
        code must not be where a deep name turns into a ``RecursionError``).
        """
        made = self._dirs.get(dir_name)
        if made is not None:
            return made
        missing = [dir_name]  # the directory, then each missing parent, up to one already made (or the root)
        parent = self._root
        above = dir_name.rpartition("/")[0]
        while above:
            made = self._dirs.get(above)
            if made is not None:
                parent = made
                break
            missing.append(above)
            above = above.rpartition("/")[0]
        for sub in reversed(missing):
            parent = self._make_dir(parent, sub, name, offset)
        return parent

    def _make_dir(self, parent: str, dir_name: str, name: str, offset: int) -> str:
        """One component of ``_dir``: ``dir_name``'s last part, made (or found) in ``parent``."""
        leaf = dir_name.rpartition("/")[2]
        if leaf in ("", ".", ".."):
            raise _outside(name)
        if dir_name in self.files:
            raise _collision(name, offset)
        path = os.path.join(parent, leaf)
        try:
            os.mkdir(path)
        except FileExistsError:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                raise _symlink(name) from None
            if not stat.S_ISDIR(info.st_mode):
                raise _collision(name, offset) from None
        except NotADirectoryError:
            raise _collision(name, offset) from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise _too_long(name, offset) from None
            raise
        self._dirs[dir_name] = path
        return path

    def handle(self, event: Event) -> None:
        if type(event) is EntryPacked:  # the most frequent event (torch: 12k of 13k), so asked first
            self._packed(event)
        elif isinstance(event, EntryData):
            data = event.data
            self._size += len(data)
            if self._chunks is not None:
                self._chunks.append(data)
                if self._size > self._inline_limit:
                    self._spill()
            elif self._sink is not None:
                assert self._open is not None
                self._sink.put(self._open, self._hash, data)
            else:
                assert self._open is not None
                self._hash.update(data)
                self._open.write(data)
        elif isinstance(event, EntryStarted):
            self._start(event.header.name, event.header.offset)
        elif isinstance(event, EntryFinished):
            self._finish(event.entry.name)
        elif isinstance(event, CentralDirectory):
            self.drain()
            self.apply_modes(executable_files(event.records))

    def handle_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.handle(event)

    def _start(self, name: str, offset: int) -> None:
        if name.endswith("/"):
            self._dir(name.rstrip("/"), name, offset)
            return
        path = self._new_file(name, offset)
        self._open_name = name
        self._open_path = path
        self._open_offset = offset
        self._size = 0
        if self._inline_limit:
            self._chunks = []
        else:
            self._open_now()

    def _new_file(self, name: str, offset: int) -> str:
        """The staging path for a file entry, its directories made. The file is claimed by its name going into
        ``files`` (its ``StagedFile``, digest or not), which ``_dir`` checks: no later directory can take it."""
        parent_name, _, leaf = name.rpartition("/")
        if leaf in (".", ".."):
            raise _outside(name)
        if parent_name:  # os.path.join's result: ``_dir`` paths never end in a separator
            path = self._dir(parent_name, name, offset) + os.sep + leaf
        else:
            path = self._prefix + leaf
        if name in self._dirs:
            raise _collision(name, offset)
        return path

    def _packed(self, event: EntryPacked) -> None:
        """A whole small entry, still compressed: the writers inflate, verify, hash and create it (the parser
        only packs when this extractor asked for it, so there are writers; without them it is done here)."""
        name, offset, size = event.header.name, event.header.offset, event.header.uncompressed_size
        path = self._new_file(name, offset)
        if self._inline_limit:
            self.files[name] = StagedFile(name, size, "", False)  # its place, until the digest comes
            # Held until written: its compressed bytes (the inflated ones exist only inside a writer, one file at
            # a time). Past the budget they stay in the source, if there is one, and the parser need not wait.
            held = len(event.data)
            content: _Content = event
            if self._source is not None and self._in_flight_bytes + self._batch.held + held > self._max_pending:
                content, held = _Unread(event.header, event.end_offset, self._source), 0
            self._add_to_batch(path, content, name, offset, size + len(event.data), held)
        else:
            self._record(StagedFile(name, size, _write_file(path, event, name, offset), executable=False))
        self.written += 1

    def _open_now(self) -> None:
        assert self._open_name is not None
        try:
            fd = os.open(self._open_path, _CREATE_FLAGS, 0o666)
        except OSError as exc:
            raise _open_error(exc, self._open_name, self._open_offset) from None
        self._open = os.fdopen(fd, "wb")  # closed in _finish (by the sink when there is one) or close
        self._hash = hashlib.sha256()

    def _spill(self) -> None:
        """The entry outgrew the buffer: write it from this thread, streaming, like a large file."""
        chunks, self._chunks = self._chunks or [], None
        self._open_now()
        assert self._open is not None
        if self._sink is not None:
            for chunk in chunks:
                self._sink.put(self._open, self._hash, chunk)
        else:
            for chunk in chunks:
                self._hash.update(chunk)
                self._open.write(chunk)

    def _finish(self, name: str) -> None:
        if self._open_name is None:  # directory entry
            return
        # A digest-less record keeps the file's place (stream order) until its writer reports the digest.
        pending = StagedFile(name, self._size, "", executable=False)
        if self._chunks is not None:
            chunks, self._chunks = self._chunks, None
            self.files[name] = pending
            self._add_to_batch(self._open_path, chunks, name, self._open_offset, self._size, self._size)
        elif self._sink is not None:
            handle, self._open = self._open, None  # from here the sink owns it: it closes it, in order
            assert handle is not None
            self.files[name] = pending
            self._sink.put(handle, self._hash, pending)  # ... and records the digest
        else:
            assert self._open is not None
            self._open.close()
            self._open = None
            self._record(StagedFile(name, self._size, self._hash.hexdigest(), executable=False))
        self._open_name = None
        self.written += 1

    def _record(self, staged: StagedFile) -> None:
        self.files[staged.name] = staged

    def _add_to_batch(self, path: str, content: _Content, name: str, offset: int, size: int, held: int) -> None:
        if self._failed is not None:
            raise self._failed
        batch = self._batch
        batch.files.append((path, content, name, offset))
        batch.size += size
        batch.held += held
        if len(batch.files) >= _BATCH_FILES or batch.size >= _BATCH_BYTES:
            self._send_batch()

    def _send_batch(self) -> None:
        self._collect_done()  # what is written no longer counts against the budget (nor waits for a checkpoint)
        batch, self._batch = self._batch, _Batch()
        if not batch.files:
            return
        self._in_flight.append(batch)
        self._in_flight_bytes += batch.held
        _pool().put(batch)
        while self._in_flight_bytes > self._max_pending or len(self._in_flight) > self._max_batches:
            self._collect_oldest()

    def _collect_oldest(self) -> None:
        """Wait for the oldest batch and record its digests; its error (DuplicateEntry, OSError) is raised
        here, on the extractor's thread, and stays: nothing after a failed write is recorded."""
        batch = self._in_flight[0]
        batch.done.wait()  # interrupted (Ctrl-C): the batch stays in flight, and drain's cleanup waits for it
        self._in_flight.popleft()
        self._in_flight_bytes -= batch.held
        if self._failed is None and batch.error is not None:
            self._failed = batch.error
        if self._failed is not None:
            raise self._failed
        for (_path, _chunks, name, _offset), digest in zip(batch.files, batch.digests):
            self.files[name] = StagedFile(name, self.files[name].size, digest, False)

    def collect_written(self) -> None:
        """Record the digests of the batches already written, oldest first, without waiting for the others
        (a periodic checkpoint takes what is on disk and leaves the rest to the next one); re-raise a
        writer's error.

        The batch still filling up is sent first: its files would otherwise wait for 64 more (or a drain),
        and a checkpoint stops at the first file not written — behind a few small files followed by large
        ones (nvidia-style wheels) it would never move."""
        self._send_batch()
        if self._failed is not None:
            raise self._failed

    def _collect_done(self) -> None:
        """Record every batch already written, oldest first, up to the first still with the writers."""
        while self._in_flight and self._in_flight[0].done.is_set():
            self._collect_oldest()

    def drain(self) -> None:
        """Wait until every finished file is on disk (in the page cache); re-raise a writer's error."""
        try:
            self._send_batch()
            if self._sink is not None:
                self._sink.drain()
            while self._in_flight:
                self._collect_oldest()
            if self._failed is not None:
                raise self._failed
        except KeyboardInterrupt:
            if self._failed is None:
                # Ctrl-C while waiting: the parser counts these entries as finished (a packed one is verified
                # only by its writer), so let the writers finish and record them before the interrupt goes on
                # — the checkpoint that follows must find every finished entry's file, or a writer's error.
                self._finish_in_flight()
            raise
        except BaseException:
            for batch in self._in_flight:  # after an error: let the others finish, then forget them
                batch.done.wait()
            self._in_flight.clear()
            self._in_flight_bytes = 0
            for name in [n for n, f in self.files.items() if not f.sha256]:
                del self.files[name]  # unwritten, or written past an error: not a finished file
            raise

    def _finish_in_flight(self) -> None:
        """Collect every batch in flight, holding further Ctrl-Cs (a writer's error stays in ``_failed``)."""
        while self._in_flight:
            try:
                self._collect_oldest()
            except KeyboardInterrupt:
                continue  # the batch is still in flight: _collect_oldest removes it only once it is done
            except BaseException:  # noqa: BLE001 - sticky in _failed: the next drain raises it
                return

    def close(self) -> None:
        """Drain the writers and stop the sink; for the end of the input, an error or an interruption
        (nothing may write into staging later, and no thread or descriptor may outlive the extractor)."""
        try:
            self.drain()
        finally:
            if self._sink is not None:
                with contextlib.suppress(Exception):
                    self._sink.drain()  # after an error: let queued writes finish before staging goes
                self._sink.stop()
                self._sink = None
            if self._open is not None:  # the entry in flight: unfinished, so nothing to flush for it
                with contextlib.suppress(OSError):
                    self._open.close()
                self._open = None

    def sync(self) -> None:
        """Flush the finished files to disk: part of writing a checkpoint (DESIGN §2 rule 1).

        One ``syncfs`` of the staging filesystem instead of ``os.sync()`` (every filesystem on the machine)
        or one ``fsync`` per file (a journal commit each: 12k of them for torch).
        """
        self.drain()
        if self._open is not None:
            self._open.flush()
        self.flush_to_disk()

    def flush_to_disk(self) -> None:
        """The ``syncfs`` half of :meth:`sync`, for a checkpoint made durable on another thread: it covers
        every file whose writes returned before the call (so drain first, on the extractor's thread).

        Windows can neither open a directory nor sync a whole file system from user space: there the files are
        left to the system's write-back, and a power loss may cost the checkpoint (a kill -9 does not).
        """
        if os.name == "nt":  # pragma: no cover - not run on the project's machines
            return
        fd = os.open(self._root, os.O_RDONLY)
        try:
            if not _syncfs(fd):
                os.fsync(fd)
                if hasattr(os, "sync"):
                    os.sync()
        finally:
            os.close(fd)

    def apply_modes(self, executable_names: Iterable[str]) -> None:
        self.drain()
        mode = pip_file_mode(True, current_umask())
        for name in executable_names:
            staged = self.files.get(name)
            if staged is None:
                continue
            os.chmod(self.path_for(name), mode)
            self.files[name] = StagedFile(staged.name, staged.size, staged.sha256, executable=True)
