"""What a previous run left, and the stream a download starts from: fresh, or rebuilt from the journal.

Within one process a dropped connection costs nothing: parser, extractor and hash keep their state and the
next request simply asks for ``bytes=D-`` (``_attempts.py``). Across processes (Ctrl-C, kill -9, reboot) the
journal is the truth (DESIGN §2, "Resume"), and ``restore`` rebuilds the stream from it, in this order:

1. the journal header alone: it must name this URL (redacted) and this expected hash, be resumable, and the
   partial must hold at least its durable length ``D`` (with the checkpoint ``C ≤ D``);
2. on a thread, beside steps 3-5: the whole-file hash of ``0..D`` continues from the state the journal saved
   with ``D`` (``_sha256``), or, where none can be trusted, is re-read from the partial; then it is carried
   along the trail (``_trail``) to ``V ≥ D``, the end of what a killed process provably received;
3. the entries log: every entry it lists finished before ``C``; then, if the killed process left a pending
   checkpoint (``wheelstream.unpack._pending``) that follows this header, lies within ``V`` (so this step waits
   for step 2) and whose files staging bears out (read back and hashed), ``C`` moves on to it, or to the first
   of its files that did not survive;
4. staging, walked once: every listed file is there as a regular file of its recorded size, every directory a
   real one (a symlink means the tree is not ours); a file the log does not list (an entry after ``C``) is
   deleted; modes are brought to this process's umask;
5. the bytes ``C..D``, then ``D..V``, are replayed from the partial through a parser restarted at ``C`` (it
   checks every entry's CRC-32 and sizes again); a deferred entry must be found where the journal says;
6. only then are the partial cut to ``V`` and the trail to its verified lines: nothing past them is trusted
   but the pieces a segmented download's other connections wrote: those the journal lists as ``held`` (made
   durable by the fsync that made ``D`` durable) and those the piece trail proves (``_piece_trail``); with
   any, the partial keeps its size and only the holes between them are fetched again (``_segmented``).

Any disagreement discards it all and starts fresh, after the hash thread has stopped reading the partial. So
bytes on disk are never fetched again, and nothing the journal or the trail does not vouch for is kept. After
a power loss the trail proves nothing past what survived intact, and the resume starts at ``D``.
"""

from __future__ import annotations

import abc
import contextlib
import os
import stat
import threading
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import NamedTuple

from wheelstream._staged import current_umask, pip_dir_mode, pip_file_mode
from wheelstream.errors import ArchiveError, UnpackedLimitExceeded
from wheelstream.fetch._options import Job
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal, PartialFile, entries_log
from wheelstream.unpack._pending import pending_path, remove_record, verified_count
from wheelstream.unpack._piece_trail import merged, piece_trail_path, proven_pieces
from wheelstream.unpack._rehash import prefix_sha256
from wheelstream.unpack._sha256 import new as new_sha256
from wheelstream.unpack._sha256 import restore as restore_sha256
from wheelstream.unpack._tee import Tee
from wheelstream.unpack._trail import Trail, Verified, trail_path, verify
from wheelstream.zip import ZipStreamParser

__all__ = ["PrefixAudit", "PrefixHash", "Restored", "fresh_stream", "restore", "usable_journal"]


class _PartialReader(abc.ABC):
    """A thread that reads the partial file beside the resume: its result or its error, and a way to stop it
    early. The partial may be discarded meanwhile (a restart): ``cancel`` returns once nothing reads it."""

    def __init__(self, name: str, partial: Path, durable: int) -> None:
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, args=(partial, durable), name=name, daemon=True)

    def _guarded(self, partial: Path, durable: int) -> None:
        try:
            self._read(partial, durable)
        except BaseException as exc:  # noqa: BLE001 - re-raised by _joined()
            self._error = exc

    @abc.abstractmethod
    def _read(self, partial: Path, durable: int) -> None:
        """What this reader reads and keeps, on its thread (``_stop`` set: give up)."""

    def _joined(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Stop early (the resume or its stream was abandoned) and wait until the thread no longer reads."""
        self._stop.set()
        self._thread.join()


class PrefixHash(_PartialReader):
    """The whole-file sha256 of the bytes a resume keeps, and how many it keeps, worked out on a thread beside
    parsing the entries log, the staging check and the replay of ``C..D``: the state the journal saved at
    ``D`` (or, where none is usable — see ``wheelstream.unpack._sha256`` — ``0..D`` read again:
    docs/performance.md, D-resume-rehash), then carried along the trail as far as the partial bears it out
    (``wheelstream.unpack._trail``).
    """

    def __init__(self, partial: Path, trail: Path, durable: int, saved_state: str | None) -> None:
        super().__init__("wheelstream-rehash", partial, durable)
        self._trail = trail
        self._saved_state = saved_state
        self._result: Verified | None = None
        saved = restore_sha256(saved_state, durable)
        self.rehashing = saved is None
        self.rehashed_digest: str | None = None  # of 0..D as read again, when rehashing
        self.saved_digest = None if saved is None else saved.hexdigest()  # of 0..D, as the journal vouches
        self._thread.start()

    def _read(self, partial: Path, durable: int) -> None:
        hasher = restore_sha256(self._saved_state, durable)
        if hasher is None:
            hasher = prefix_sha256(partial, durable, self._stop)
            self.rehashed_digest = hasher.hexdigest()
        if not self._stop.is_set():
            self._result = verify(partial, self._trail, durable, hasher)

    def result(self) -> Verified:
        self._joined()
        assert self._result is not None
        return self._result


_AUDIT_BLOCK = 1 << 20


class PrefixAudit(_PartialReader):
    """The kept prefix ``0..D`` read again and hashed on a thread of its own, awaited only before the wheel is
    published (``check_complete``).

    The resume went on from the hash state the journal saved at ``D`` without reading those bytes
    (docs/performance.md, D-sha256-state). The replay of ``C..D`` checks every entry's CRC, but not what has none
    — a central record's mode bits — and nothing rechecks ``0..C``: a disk that spoilt the kept bytes, or a hand
    that changed them, would reach the install and the cache's wheel file under a sha256 that is not theirs, a
    pinned one included. DESIGN §2 re-hashes the prefix; this does, beside the download instead of before it.
    """

    def __init__(self, partial: Path, durable: int, expected: str) -> None:
        super().__init__("wheelstream-prefix-audit", partial, durable)
        self._expected = expected  # the digest of 0..D the journal's saved state gives
        self._found: str | None = None
        self._thread.start()

    def _read(self, partial: Path, durable: int) -> None:
        # Small reads: nothing waits on this thread until the end, and 16 MiB ones would be peak RSS.
        self._found = prefix_sha256(partial, durable, self._stop, block=_AUDIT_BLOCK).hexdigest()

    def intact(self) -> bool:
        """Whether ``0..D`` on disk still hashes to what the journal saved."""
        self._joined()
        return self._found == self._expected


class Restored(NamedTuple):
    """The stream a download starts from, and what of it an earlier run left."""

    stream: Tee
    reused: int = (
        0  # bytes of the partial kept (D, or further along the trail, and pieces): not fetched again
    )
    # The hash went on from the journal's state, the kept bytes unread: they are read again beside the download.
    audit: PrefixAudit | None = None
    held: tuple[tuple[int, int], ...] = ()  # pieces past the stream's position a segmented download left


def _new_stream(job: Job, journal: Journal) -> Tee:
    partial = PartialFile(job.cache.partial(job.key))
    verify_only = job.options.verify_only
    journal.unwritten = journal.unwritten or verify_only  # said by its next save
    try:
        extractor = Extractor(
            job.cache.staging(job.key),
            {f.name: f for f in journal.files},
            writers=True,
            source=partial.read_at if partial.can_read_at else None,
            verify_only=verify_only,
        )
    except BaseException:
        partial.close()
        raise
    return Tee(
        wheel=job.wheel,
        journal_path=job.cache.journal(job.key),
        journal=journal,
        partial=partial,
        parser=ZipStreamParser(
            journal.checkpoint,
            prior_entries=journal.entries,
            max_unpacked_size=job.options.max_unpacked_size,
            max_entries=job.options.max_entries,
            pack_up_to=extractor.pack_up_to,  # small entries are inflated by the writers
        ),
        extractor=extractor,
        hasher=new_sha256(),
        trail=Trail(trail_path(job.cache.journal(job.key))),
    )


def fresh_stream(job: Job) -> Tee:
    """A stream from byte 0, with whatever an earlier run left discarded."""
    job.cache.discard(job.key)
    return _new_stream(job, Journal(url=job.redacted, expected_sha256=job.expected))


def usable_journal(job: Job) -> Journal | None:
    """The header of the journal a download of ``job`` would resume from (step 1 of the module docstring), or
    None when it would start fresh. Reads only: a dry run asks it too (``wheelstream._plan``)."""
    journal = Journal.load_header(job.cache.journal(job.key))
    partial_path = job.cache.partial(job.key)
    if (
        journal is None
        or journal.url != job.redacted
        or not journal.resumable
        or (job.expected is not None and journal.expected_sha256 not in (None, job.expected))
        or partial_path.is_symlink()  # not a file this code made (a resume would write where it points)
        or not partial_path.is_file()
        or partial_path.stat().st_size < max([journal.durable, *(end for _start, end in journal.held)])
        or journal.checkpoint > journal.durable
    ):
        return None
    return journal


def restore(job: Job) -> Restored:
    """Resume from the journal if it is trustworthy, else start fresh (the module docstring)."""
    journal_path = job.cache.journal(job.key)
    partial_path = job.cache.partial(job.key)
    journal = usable_journal(job)
    if journal is None:
        return Restored(fresh_stream(job))
    prefix = PrefixHash(partial_path, trail_path(journal_path), journal.durable, journal.sha256_state)
    try:
        stream = _resume(job, journal, journal_path, prefix)
    except BaseException:
        prefix.cancel()  # Ctrl-C, a full disk: no thread may still read the partial after this call
        raise
    if stream is None:
        prefix.cancel()  # ... nor when it is about to be discarded
        return Restored(fresh_stream(job))
    held = tuple((max(start, stream.position), end) for start, end in journal.held if end > stream.position)
    expected = prefix.saved_digest
    return Restored(
        stream,
        reused=stream.position + sum(end - start for start, end in held),
        audit=None if expected is None else PrefixAudit(partial_path, journal.durable, expected),
        held=held,
    )


def _resume(job: Job, journal: Journal, journal_path: Path, prefix: PrefixHash) -> Tee | None:
    """The stream at the journal's checkpoint, or None when the log, the staging tree or the bytes kept
    disagree with the header (then nothing of it is worth keeping)."""
    if not journal.load_entries(journal_path) or any(
        entry.offset >= journal.checkpoint for entry in journal.entries
    ):
        return None
    if journal.unwritten and not job.options.verify_only:
        _unpack_again(journal, journal_path)
    written_by = _journal_written(journal_path)  # before adopting: that may rewrite the log
    verify_only = (
        job.options.verify_only
    )  # needs no staged file: what staging lacks costs no byte of the partial
    adopted = not (journal.unwritten or verify_only) and _adopt_pending(job, journal, journal_path, prefix)
    if not _staging_matches(job.cache.staging(job.key), journal, written_by, need_files=not verify_only):
        return None
    stream = _new_stream(job, journal)
    stream.last_checkpoint_bytes = journal.durable
    stream.staging_unsynced = adopted
    deferred, journal.deferred_at = journal.deferred_at, None
    start = journal.checkpoint  # past D when a pending checkpoint was adopted (then V >= C)
    try:
        stream.replay(start, max(start, journal.durable))
        kept = prefix.result()
        if prefix.rehashing and journal.prefix_sha256 not in (None, prefix.rehashed_digest):
            # Read again because no saved state could be used: the bytes must be those the journal hashed (a
            # disk or a hand may have changed them, and nothing else would see it before C), or start afresh.
            # (A journal older than the digest has none to match: its bytes are taken as they are, as before.)
            stream.abandon()
            return None
        # ... then what the trail proves a killed process received
        stream.replay(max(start, journal.durable), kept.length)
        stream.hasher = kept.hasher
        stream.position = kept.length
        if journal.length is not None:  # what other connections wrote past the last checkpoint, provably
            proven = proven_pieces(
                stream.partial.path, piece_trail_path(journal_path), kept.length, journal.length
            )
            journal.held = [list(piece) for piece in merged([*journal.held, *proven])]
        if any(end > kept.length for _start, end in journal.held):
            stream.partial.rewind(kept.length)  # held pieces lie further on; bytes between are fetched again
        else:
            stream.partial.truncate(kept.length)  # bytes past the last fsync the trail cannot prove: gone
        os.truncate(trail_path(journal_path), kept.trail_bytes)  # its lines past them too, before appending
    except UnpackedLimitExceeded:
        stream.abandon()
        raise  # the caller's limit, smaller than an earlier run's: the bytes stay for a larger one
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


def _unpack_again(journal: Journal, journal_path: Path) -> None:
    """A ``download``'s journal (its files checked, not written) taken by an install: the unpack starts again at
    byte 0, over the bytes the partial holds (none is fetched again). The header says so before anything else
    is written, so a kill from here on finds an empty log, ``C`` = 0 and files to write."""
    journal.entries.clear()
    journal.files.clear()
    journal.checkpoint, journal.deferred_at, journal.unwritten = 0, None, False
    journal.log_bytes = journal.log_lines = 0
    remove_record(journal_path)  # a pending checkpoint's rows are the download's too
    journal.save(journal_path)


def _adopt_pending(job: Job, journal: Journal, journal_path: Path, prefix: PrefixHash) -> bool:
    """Move the journal's checkpoint on to the pending one a killed process was making durable, as far as
    staging proves its entries (``wheelstream.unpack._pending``); True if it moved. Only when the partial
    provably holds every byte up to it (the trail's ``V``): so this waits for the prefix hash, which otherwise
    runs beside the staging check and the replay."""
    pending = journal.load_pending(journal_path)
    if pending is None:
        return False
    checkpoint, rows = pending
    if checkpoint > prefix.result().length:
        return False
    count = verified_count(job.cache.staging(job.key), rows)
    if count == 0:
        return False
    if count < len(rows):
        checkpoint = rows[count][0].offset  # the first entry staging does not bear out: extracted again
    journal.adopt(rows[:count], checkpoint)
    return True


def _journal_written(journal_path: Path) -> int:
    """When the journal was last written (``st_mtime_ns``: its header, entries log or pending record, the newest):
    every staged file it lists was finished before, so one modified later was changed by something else."""
    newest = 0
    for path in (journal_path, entries_log(journal_path), pending_path(journal_path)):
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(path).st_mtime_ns)
    return newest


def _staging_matches(root: Path, journal: Journal, written_by: int, *, need_files: bool = True) -> bool:
    """Delete staged files the journal does not list; check the listed ones are all there, of their size, and
    not modified after the journal was written (``written_by``: a listed file is never written again, so a
    later time means a hand or a disk changed it — its digest in the journal would be installed with other
    bytes; a ``stat`` each, which the walk makes anyway: the full re-read was rejected, docs/performance.md).

    Modes are brought to this process's umask on the way: an earlier process may have run under another
    one, and a move install renames whole directories without touching their modes, so what pip would
    create (``0o666 & ~umask`` files, ``0o777 & ~umask`` directories) must already be there. Executable
    bits come back when the central directory is read again.

    A download (``need_files=False``) writes and reads none of them: unlisted files still go, but a listed one
    missing or changed is no reason to throw the partial away. (Its journal says so from its first save on; a
    kill before that leaves the header as it was, which an install then holds staging to, as always.)
    """
    # a download's files were never written: staging holds none of them (a verify-only resume writes none either)
    listed = {} if journal.unwritten else {f.name: f.size for f in journal.files}
    if root.is_symlink():
        return False  # not a tree this code made; a resume would write wherever it points
    if not root.is_dir():
        return not listed
    try:
        found = _settle_staging(os.fspath(root), listed, written_by)
    except OSError:
        return False  # a file vanished or cannot be changed: resuming is only worth it when all is well
    return found == len(listed) or not need_files


def _walk_at(base: str) -> Generator[tuple[str, list[str], list[str], int | None], None, None]:
    """``os.fwalk`` where there is one: each name is then looked at relative to its directory's descriptor (one
    ``fstatat``, no walk down the whole path per file: docs/performance.md, D-staging) and nothing
    follows a symlink. Elsewhere (Windows) ``os.walk``, with no descriptor: names resolve against the path."""
    if hasattr(os, "fwalk"):
        yield from os.fwalk(base)
    else:  # pragma: no cover - not run on the project's machines
        for dirpath, dirs, names in os.walk(base):
            yield dirpath, dirs, names, None


def _settle_mode(
    name: str,
    dir_fd: int | None,
    mode: int,
    is_kind: Callable[[int], bool],
    size: int | None = None,
    written_by: int | None = None,
) -> bool:
    """Check ``name`` (in ``dir_fd``, not followed) is the kind and size expected, modified no later than
    ``written_by``, and give it ``mode``."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not is_kind(info.st_mode) or (size is not None and info.st_size != size):
        return False
    if written_by is not None and info.st_mtime_ns > written_by:
        return False
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(name, mode, dir_fd=dir_fd)  # a real file or directory (just checked): nothing to follow
    return True


def _settle_staging(base: str, listed: Mapping[str, int], written_by: int) -> int:
    """How many listed files ``base`` holds as expected; -1 at the first that is not (``_staging_matches``)."""
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
                elif not _settle_mode(at, dir_fd, file_mode, stat.S_ISREG, size, written_by):
                    return -1
                else:
                    found += 1
    return found
