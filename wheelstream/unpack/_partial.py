"""The on-disk state of an unfinished wheel: raw bytes (``<key>.whl.part``) and a journal (``<key>.json`` plus
its entries log ``<key>.entries``).

The checkpoint rules (DESIGN §2) — a checkpoint ``C`` is only written when all three hold:

1. every entry before ``C`` is extracted into staging, CRC/size-verified and flushed (the extractor syncs);
2. the partial file durably (fsync) holds ``D >= C`` bytes;
3. the journal records ``C``, the finished entries and ``D``: the entries finished since the last checkpoint
   are appended to the log and fsynced, then the header (``<key>.json``) is written to a temp file, fsynced
   and renamed. The header says how many bytes and lines of the log are valid.

So after kill -9 or power loss the last header on disk is the truth: log bytes past its ``log_bytes`` are
untrusted (a crash between the append and the header leaves them) and are cut off by the next append, bytes
of the partial past ``D`` are cut off too, staged files not listed are deleted, the parser restarts at ``C``
and is fed ``C..D`` from disk, and the download continues at ``D``. A log shorter than its header says, or
any malformed line, makes the whole journal unreadable (``load`` returns ``None``: start fresh).

Why a log: a checkpoint used to rewrite every finished entry as one JSON document, so each cost O(entries
so far) and a 12k-entry wheel paid quadratically. Appending costs O(entries since the last checkpoint); the
header is small and of constant size.

Log format: one compact JSON array per line and per finished entry, in the order the parser finished them
(= offset order): the :class:`~wheelstream.zip.LocalEntry` fields, then, for a regular file, the size,
sha256 and executable bit of its :class:`~wheelstream._staged.StagedFile` (a directory has none). The
executable bit is the one known when the line was written; a resume re-reads the central directory, which
sets it again. Credentials never reach either file: URLs are stored redacted (the log holds only archive
names, sizes and hashes) and a resume takes them from the caller again.

``PartialFile`` writes with plain ``os.write`` (no user-space buffer), so the unpack worker may ``sync`` it
while the network thread appends: the fsync covers every byte whose write returned before it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from wheelstream._staged import StagedFile
from wheelstream.unpack import _pending
from wheelstream.unpack._piece_trail import piece_trail_path
from wheelstream.unpack._trail import trail_path
from wheelstream.zip import LocalEntry

__all__ = ["Journal", "PartialFile", "entries_log", "read_file_range", "write_all"]

JOURNAL_VERSION = 2  # 2: finished entries in the append-only log; 1 had them inside the JSON
_ENTRY_FIELDS = LocalEntry._fields
# The exact types of a log line's fields (``bool`` is not ``int`` here): one ``tuple(map(type, row))``
# compare checks a whole line, a third of what checking field by field cost on torch's 11.6k lines.
_ENTRY_TYPES = tuple(str if name == "name" else int for name in _ENTRY_FIELDS)
_FILE_TYPES = (*_ENTRY_TYPES, int, str, bool)  # ... then the staged file's size, sha256, executable
_ENTRY_LENGTH = len(_ENTRY_FIELDS)
_new_tuple = tuple.__new__
# A log line is the JSON array ``json.dumps(row, separators=(",", ":"))`` would write, built by hand: one
# encoder call per line was most of a checkpoint's cost on torch's 12k entries. Strings are escaped by the
# encoder's own C function (ASCII only, so a raw newline only ends a line); the other fields are ints and one
# bool, whose JSON is their repr (and ``true``/``false``).
_quote = json.encoder.encode_basestring_ascii
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation under os.write
_LINES_PER_WRITE = 4096


def entries_log(journal_path: Path) -> Path:
    """The log of finished entries beside a journal header: ``partial/<key>.entries``."""
    return journal_path.with_suffix(".entries")


@dataclass
class Journal:
    """Everything a later process needs to resume one download, and nothing secret.

    On disk the finished entries live in the log, and only the lines of entries added (:meth:`add_finished`)
    since the last :meth:`save` are written by the next one. In memory ``files`` lists every staged file (the
    extractor's own records: a pointer each), while ``entries`` holds only what :meth:`load` read: a live
    download's parser already keeps its entries compactly, and a second copy as tuples would cost more than
    its rows. A stream resuming from a loaded journal hands ``entries`` to its parser and empties the list
    (``Tee``).
    """

    url: str  # redacted original URL (the cache key is derived from it)
    final_url: str | None = None  # redacted, after redirects
    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None
    expected_sha256: str | None = None
    resumable: bool = True  # False when the server forced a Content-Encoding: ranges would not line up
    checkpoint: int = 0
    durable: int = 0
    sha256_state: str | None = (
        None  # the whole-file hash of 0..durable, saved (wheelstream.unpack._sha256), or None
    )
    # The sha256 of 0..durable, hex: what a resume that cannot use ``sha256_state`` (no libcrypto state here, or
    # one it cannot trust) must find when it re-hashes those bytes, or start afresh (``fetch._resume``).
    prefix_sha256: str | None = None
    deferred_at: int | None = None
    # Pieces past ``durable`` that a segmented download's other connections wrote, as ``[start, end]`` pairs
    # in order: made durable by the same fsync as ``0..durable`` (``_checkpoints``), kept by a resume.
    held: list[list[int]] = field(default_factory=list)
    # The files the log lists were checked, not all written: staging lacks them (a ``download``'s extractor,
    # ``verify_only``). An install resuming it unpacks again from byte 0 (``fetch._resume``).
    unwritten: bool = False
    log_bytes: int = 0  # valid prefix of the entries log, as of the last save
    log_lines: int = 0  # ... and how many entries it holds
    entries: list[LocalEntry] = field(default_factory=list)
    files: list[StagedFile] = field(default_factory=list)
    _unlogged: list[str] = field(default_factory=list, init=False, repr=False, compare=False)  # log lines
    # (lines, end bytes) of ``_unlogged`` as ``save_pending`` wrote them, unsynced: a save then only syncs them
    _pending_written: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)

    def add_finished(self, entries: Iterable[LocalEntry], files: Mapping[str, StagedFile]) -> None:
        """Take the entries finished since the last call, each with its staged file from ``files`` (a
        directory has none). Only these become log lines in the next :meth:`save`."""
        for entry in entries:
            offset, name, flags, method, crc, compressed_size, uncompressed_size = entry
            line = f"[{offset},{_quote(name)},{flags},{method},{crc},{compressed_size},{uncompressed_size}"
            staged = files.get(name)
            if staged is not None:
                self.files.append(staged)
                executable = "true" if staged.executable else "false"
                line = f"{line},{staged.size},{_quote(staged.sha256)},{executable}"
            self._unlogged.append(line + "]\n")

    def save(self, path: Path, *, sync: bool = True, **as_of: Any) -> None:
        """Append the new log lines and fsync them, then replace the header (rule 3 of DESIGN §2).

        ``sync=False`` writes a header that promises nothing durable (``Tee.begin``: no entries, ``D`` = 0)
        without the fsyncs: a process death keeps it, a power loss may spoil it, and ``load`` refuses that.

        ``as_of`` overrides header fields with the values they had when the checkpoint was taken (a
        checkpoint made durable on another thread must not record, say, a ``deferred_at`` found later).
        A failure anywhere leaves the previous header in charge and the lines queued for the next save,
        which writes them again at the same place.
        """
        log_bytes, log_lines = self._append_log(entries_log(path))
        payload: dict[str, Any] = {name: getattr(self, name) for name in _HEADER_FIELDS}
        payload.update(as_of)
        payload.update(version=JOURNAL_VERSION, log_bytes=log_bytes, log_lines=log_lines)
        _replace(path, json.dumps(payload, separators=(",", ":")), sync=sync)
        self.log_bytes, self.log_lines = log_bytes, log_lines
        self._unlogged.clear()

    def save_pending(self, path: Path, checkpoint: int, deferred_at: int | None) -> None:
        """Write the queued log lines where the next :meth:`save` will write them, and the pending record that
        names them with ``checkpoint``, none of it synced: what a kill during the checkpoint's syncs leaves
        provable (``_pending``). A failure leaves no record (the next save writes the lines anyway)."""
        if not self._unlogged:
            return
        try:
            digest = hashlib.sha256()
            end_bytes, end_lines = self._append_log(entries_log(path), sync=False, digest=digest)
            self._pending_written = (len(self._unlogged), end_bytes)
            _pending.write_record(
                path,
                _pending.PendingRecord(
                    self.log_bytes,
                    self.log_lines,
                    end_bytes,
                    end_lines - self.log_lines,
                    digest.hexdigest(),
                    checkpoint,
                    deferred_at,
                ),
            )
        except OSError:
            _pending.remove_record(path)  # no claim is better than a stale one; the checkpoint goes on

    def load_pending(self, path: Path) -> tuple[int, list[tuple[LocalEntry, StagedFile | None]]] | None:
        """The pending checkpoint that followed this (durable) header, and the entries it adds in stream order,
        if its record, its log lines and this header agree exactly (``_pending``); else None. Call after
        :meth:`load_entries`."""
        record = _pending.read_record(path)
        if (
            record is None
            or (record.base_bytes, record.base_lines) != (self.log_bytes, self.log_lines)
            or record.deferred_at != self.deferred_at
            or record.checkpoint <= self.checkpoint
            or not 0 < record.lines <= record.end_bytes - record.base_bytes
        ):
            return None
        try:
            with open(entries_log(path), "rb") as log:
                log.seek(record.base_bytes)
                data = log.read(record.end_bytes - record.base_bytes)
            if (
                len(data) != record.end_bytes - record.base_bytes
                or hashlib.sha256(data).hexdigest() != record.sha256
            ):
                return None
            rows = _log_rows(data, record.lines)
        except (OSError, ValueError, TypeError, IndexError):
            return None
        if rows[0][0].offset != self.checkpoint or rows[-1][0].offset >= record.checkpoint:
            return None
        return record.checkpoint, rows

    def adopt(self, rows: list[tuple[LocalEntry, StagedFile | None]], checkpoint: int) -> None:
        """Take entries past the durable checkpoint that staging proved (a pending checkpoint's), and
        ``checkpoint`` with them. In memory only, queued for the next save like newly finished ones."""
        self.entries.extend(entry for entry, _staged in rows)
        self.add_finished(
            (entry for entry, _staged in rows), {s.name: s for _entry, s in rows if s is not None}
        )
        self.checkpoint = checkpoint

    def _append_log(self, path: Path, *, sync: bool = True, digest: Any = None) -> tuple[int, int]:
        """Write the queued lines right after the valid prefix, then cut off whatever lies past them (what a
        crash left there).

        Written over what is there, not truncated first: past the prefix may lie a pending checkpoint's lines
        (``_pending``) that a resumed process took and now writes again, byte for byte; a kill meanwhile must
        not destroy them. In slices of ``_LINES_PER_WRITE``: the first checkpoint of a fast download may queue
        every entry of the wheel, and one joined copy of them all (then its encoded copy) would briefly double
        the queue."""
        unlogged = self._unlogged
        if not unlogged:
            return self.log_bytes, self.log_lines
        already, self._pending_written = self._pending_written, None
        written = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _O_BINARY, 0o600)
        try:
            if sync and already is not None and already[0] == len(unlogged):
                os.fsync(fd)  # save_pending wrote exactly these lines already, and nothing wrote since
                return already[1], self.log_lines + len(unlogged)
            os.lseek(fd, self.log_bytes, os.SEEK_SET)
            for start in range(0, len(unlogged), _LINES_PER_WRITE):
                data = "".join(unlogged[start : start + _LINES_PER_WRITE]).encode("ascii")
                write_all(fd, data)
                written += len(data)
                if digest is not None:
                    digest.update(data)
            os.ftruncate(fd, self.log_bytes + written)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return self.log_bytes + written, self.log_lines + len(unlogged)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        """The journal at ``path``, or ``None`` when it is missing, unreadable, from another version, or its
        log is shorter than the header says or malformed (the caller then starts fresh)."""
        journal = cls.load_header(path)
        if journal is None or not journal.load_entries(path):
            return None
        return journal

    @classmethod
    def load_header(cls, path: Path) -> Journal | None:
        """The header alone, entries not read: enough to decide whether and from where to resume. Parsing the
        log of a 12k-entry wheel takes ~50 ms, which a resume without a saved hash state spends re-hashing the
        kept bytes meanwhile."""
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(payload, dict) or payload.pop("version", None) != JOURNAL_VERSION:
                return None
            payload.setdefault("sha256_state", None)  # older headers have none: the resume re-hashes
            payload.setdefault("prefix_sha256", None)  # ... nor this: then the re-hash has nothing to match
            payload.setdefault("held", [])  # ... nor pieces: they come from single-connection downloads
            payload.setdefault("unwritten", False)  # ... nor this: every file they list was written
            if set(payload) != set(_HEADER_FIELDS) or not _header_ok(payload):
                return None
            return cls(**payload)
        except (OSError, ValueError, TypeError):
            return None

    def load_entries(self, path: Path) -> bool:
        """Read the entries log the header describes; False (and no entries) when it is not exactly that."""
        try:
            self._read_log(entries_log(path))
            return True
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            self.entries.clear()
            self.files.clear()
            return False

    def _read_log(self, path: Path) -> None:
        """Read exactly the valid prefix; raise ValueError if it is not ``log_lines`` well-formed lines."""
        if self.log_bytes == 0:
            if self.log_lines:
                raise ValueError("entries log: lines without bytes")
            return
        with open(path, "rb") as log:
            data = log.read(self.log_bytes)
        if len(data) != self.log_bytes:
            raise ValueError("entries log is shorter than its header says")
        for entry, staged in _log_rows(data, self.log_lines):
            self.entries.append(entry)
            if staged is not None:
                self.files.append(staged)

    @staticmethod
    def remove(path: Path) -> None:
        """Delete the journal at ``path``: the header first (without it the rest means nothing), then the
        entries log and the trails."""
        path.unlink(missing_ok=True)
        entries_log(path).unlink(missing_ok=True)
        trail_path(path).unlink(missing_ok=True)
        piece_trail_path(path).unlink(missing_ok=True)
        _pending.remove_record(path)

    @property
    def validator(self) -> str | None:
        """The If-Range value: a strong ETag, else Last-Modified (RFC 9110 §13.1.5 forbids weak ETags)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


_HEADER_FIELDS = tuple(
    f.name for f in fields(Journal) if f.name not in ("entries", "files") and not f.name.startswith("_")
)


def _header_ok(payload: dict[str, Any]) -> bool:
    """Every field of the type and range ``save`` writes: a header edited into valid JSON of other types (an
    ``etag`` of ``12``, a ``length`` of ``"38121143"`` or below ``durable``) was a traceback on every later
    download of the URL, until the cache was cleaned. Anything else is unreadable: the download starts afresh."""
    counts = (payload["log_bytes"], payload["log_lines"], payload["checkpoint"], payload["durable"])
    if not all(type(n) is int and n >= 0 for n in counts):
        return False
    if type(payload["url"]) is not str or type(payload["resumable"]) is not bool:
        return False
    if type(payload["unwritten"]) is not bool:
        return False
    for name in ("final_url", "etag", "last_modified", "expected_sha256", "sha256_state", "prefix_sha256"):
        if payload[name] is not None and type(payload[name]) is not str:
            return False
    for name in ("length", "deferred_at"):
        if payload[name] is not None and (type(payload[name]) is not int or payload[name] < 0):
            return False
    length = payload["length"]
    held = payload["held"]
    if not _pieces_ok(held, payload["durable"]):
        return False
    return length is None or max([payload["durable"], *(end for _start, end in held)]) <= length


def _pieces_ok(held: Any, durable: int) -> bool:
    """``held`` is what ``save`` writes: ``[start, end]`` pairs of ints, past ``durable``, in order, apart."""
    if type(held) is not list:
        return False
    previous = durable
    for piece in held:
        if type(piece) is not list or len(piece) != 2 or not all(type(n) is int for n in piece):
            return False
        start, end = piece
        if not previous <= start < end:
            return False
        previous = end
    return True


def _log_rows(data: bytes, lines: int) -> list[tuple[LocalEntry, StagedFile | None]]:
    """``data``, exactly ``lines`` log lines, parsed: each entry (and its file); ValueError (or TypeError,
    IndexError) when it is not that many lines of what we write, in stream order."""
    if not lines and not data:
        return []
    if not data.endswith(b"\n") or data.count(b"\n") != lines:
        raise ValueError("entries log holds another number of lines than its header says")
    # One JSON document for all lines (no line holds a raw newline or stands alone as anything but an
    # array): a single C-level parse instead of one ``json.loads`` per entry.
    rows = json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
    if len(rows) != lines:
        raise ValueError("entries log holds another number of lines than its header says")
    parsed = [_parse_line(row) for row in rows]
    previous = -1
    for entry, _staged in parsed:
        if entry.offset <= previous:
            raise ValueError("entries log is not in stream order")
        previous = entry.offset
    return parsed


def _parse_line(row: Any) -> tuple[LocalEntry, StagedFile | None]:
    """One log line back into its entry (and file); ValueError when it is not exactly what we write."""
    if type(row) is not list:
        raise ValueError("malformed entries log line")
    kinds = tuple(map(type, row))
    # The types are checked whole, so the tuples are built without the generated __new__ (a resume reads one
    # line per finished entry: 11.6k for torch).
    if kinds == _FILE_TYPES:
        entry = _new_tuple(LocalEntry, row[:_ENTRY_LENGTH])
        return entry, _new_tuple(StagedFile, (entry.name, *row[_ENTRY_LENGTH:]))
    if kinds == _ENTRY_TYPES:
        return _new_tuple(LocalEntry, row), None
    raise ValueError("malformed entries log line")


def _replace(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to a temp file, rename it over ``path``; with ``sync``, fsync the file first and the
    directory after."""
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if sync:
        _fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a single call may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_file_range(path: Path, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as reader:
        reader.seek(start)
        remaining = end - start
        while remaining > 0:
            data = reader.read(min(chunk, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX); Windows cannot open a directory, and NTFS journals renames."""
    if os.name == "nt":  # pragma: no cover - not run on the project's machines
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartialFile:
    """The raw bytes of the wheel: ``0..length`` appended in order by the tee, and — in a segmented download —
    pieces further on written at their offsets by other connections (``write_at``); ``sync`` makes everything
    written durable.

    Thread-safe for one writer and one syncer: ``write`` (network thread) is an unbuffered ``os.write`` at
    the end and advances ``length`` only after the bytes are in the kernel; a checkpoint reads ``length`` as
    ``D`` *before* calling ``sync`` (another thread), so every byte below ``D`` is durable once it returns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Not through a symlink: the cache's own file or none (a link was followed, and the download written into
        # whatever it named). ``restore`` starts afresh instead of opening one.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_BINARY | _O_NOFOLLOW, 0o600)
        self.length = os.lseek(self._fd, 0, os.SEEK_END)

    def write(self, data: bytes) -> None:
        """Append ``data`` at ``length`` (not at the descriptor's position: other connections of a segmented
        download write further on, at their own offsets)."""
        self.write_at(self.length, data)
        self.length += len(data)

    def write_at(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``, from any thread; ``length`` is not moved (``adopt`` does that)."""
        if not self.can_write_at:  # pragma: no cover - not run on the project's machines
            os.lseek(self._fd, offset, os.SEEK_SET)
            write_all(self._fd, data)
            return
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def adopt(self, count: int) -> None:
        """The next ``count`` bytes past ``length`` were written by ``write_at``: they now count as appended."""
        self.length += count

    def rewind(self, length: int) -> None:
        """Count only ``0..length`` as appended, keeping the bytes past it (pieces a segmented download holds);
        what is there is overwritten, at its offsets, when fetched again."""
        self.length = length

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, length: int) -> None:
        os.ftruncate(self._fd, length)
        os.lseek(self._fd, length, os.SEEK_SET)
        self.length = length

    def read_range(self, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start..end`` from disk (replay after a resume, re-hashing, deferred entries)."""
        return read_file_range(self.path, start, end)

    def read_at(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes from ``offset``, from any thread (``pread``: the file position, where the
        network thread appends, is not touched). The extractor's writers read back packed entries this way; the
        tee writes every block here before the parser sees it, so what they ask for is always here."""
        parts = []
        while size > 0:
            data = os.pread(self._fd, size, offset)
            if not data:
                cut = f"{self.path} was cut short under this download: it ends before byte {offset + size}"
                raise OSError(errno.EIO, cut)
            parts.append(data)
            offset += len(data)
            size -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def can_read_at(self) -> bool:
        return hasattr(os, "pread")  # not on Windows: there the extractor keeps packed entries in memory

    @property
    def can_write_at(self) -> bool:
        return hasattr(os, "pwrite")  # not on Windows: there a download uses one connection

    def close(self) -> None:
        """Close once. The descriptor is forgotten first: Linux frees it even when ``close`` reports an error
        (EIO; ENOSPC on NFS), and closing the number again could close another file that reused it."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
