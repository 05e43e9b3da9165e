"""A sans-I/O streaming ZIP parser: bytes in, events out (model: h11's ``receive_data`` / ``next_event``).

Theory of operation
-------------------
A zip is read front to back as a sequence of records (APPNOTE 4.3.6)::

    [local header][data][descriptor?] ... [central record] ... [zip64 eocd][zip64 locator] [eocd][comment] EOF

The parser is a small state machine; each state has a reader that looks at the buffer and returns an event,
``None`` for "need more bytes", or raises an :class:`~wheelstream.errors.ArchiveError`. Anything not
expected in a state is an error, and after an error the parser stays broken (every later call re-raises).

====================  =========================================  ======================================
state                 expects                                    next
====================  =========================================  ======================================
RECORD                local header / central record / eocd       ENTRY_DATA, DEFERRED, CENTRAL_DIRECTORY
ENTRY_DATA            compressed bytes of the open entry         DATA_DESCRIPTOR or RECORD
DATA_DESCRIPTOR       crc + sizes, with or without ``PK\\7\\8``  RECORD
CENTRAL_DIRECTORY     central records, zip64 eocd/locator, eocd  TRAILER
TRAILER               end of input only                          DONE
DEFERRED              nothing more (stored entry + descriptor)   terminal; see ``EntryDeferred``
DONE / ERROR          nothing                                    terminal
====================  =========================================  ======================================

Checkpoints
-----------
``checkpoint`` is the stream offset of the last record boundary at which no entry was open: a fresh parser
built with ``ZipStreamParser(offset=checkpoint, prior_entries=parser.finished_entries)`` and fed the stream
from there produces exactly the events the original would have produced from that point on. Nothing
before the checkpoint is needed again except the ``LocalEntry`` summaries, which the journal keeps so the
central directory can still be cross-checked against every local header (DESIGN §2, §4). Every finished
entry lies before ``checkpoint``. The journal appends them incrementally: ``finished_since(n)`` hands out
only the entries finished after the first ``n`` (a cursor, ``finished_count``), in the order they finished.

Packed entries
--------------
With ``pack_up_to=N`` an entry whose local header declares both sizes at most ``N`` (no data descriptor, not
a directory) is not inflated here: once all its compressed bytes are buffered it comes out whole, as one
``EntryPacked``, and :func:`unpack_entry` inflates and verifies it — with the checks and errors the streaming
path would apply — on whatever thread the consumer chooses. Torch has 12k such entries holding a quarter of
its bytes; inflating them beside the thread that parses (docs/performance.md) is what this is for. Everything
else about the entry is settled here, as for any entry: name, method, duplicates, the unpacked-size budget
(from the declared size, which ``unpack_entry`` enforces), and its place among the finished entries, so the
checkpoint moves past it. That last part is the consumer's duty to honour: unpack (and so verify) every
packed entry before recording a checkpoint that covers it.

Hardening (DESIGN §4) happens where the information first exists: names and methods at the local header,
CRC and sizes as data is inflated (inflation stops one byte past the declared size), local-vs-central
agreement, offsets and duplicates when the central directory is complete, trailing bytes at end of input.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping

from wheelstream.errors import (
    ArchiveError,
    ChecksumMismatch,
    CorruptData,
    DuplicateEntry,
    EntrySetMismatch,
    MalformedRecord,
    OffsetMismatch,
    SizeMismatch,
    StrayData,
    SymlinkEntry,
    TruncatedArchive,
    UnpackedLimitExceeded,
    UnsupportedEntry,
    UsageError,
)
from wheelstream.zip import _format as fmt
from wheelstream.zip._entries import EntryTable, name_key
from wheelstream.zip._events import (
    NEED_DATA,
    ArchiveFinished,
    CentralDirectory,
    EntryData,
    EntryDeferred,
    EntryFinished,
    EntryPacked,
    EntryStarted,
    Event,
    NeedData,
)
from wheelstream.zip._format import CentralRecord, EndOfCentralDirectory, LocalEntry, LocalHeader
from wheelstream.zip._inflate import INFLATE_ERRORS, Inflater, crc32, new_inflater

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_MAX_UNPACKED_SIZE", "ZipStreamParser", "unpack_entry"]

DEFAULT_MAX_UNPACKED_SIZE = 16 * 1024**3
# Entries one archive may have: the count bomb's guard, as DEFAULT_MAX_UNPACKED_SIZE is the size bomb's. Each
# entry costs memory until the install ends (parser rows, staged-file records, RECORD rows) and a file on disk.
# The biggest real wheels have tens of thousands of entries: the default leaves them ample room while bounding
# what a wheel of tiny files can make us hold.
DEFAULT_MAX_ENTRIES = 500_000
_MAX_OUTPUT_PER_EVENT = 1 << 20  # bounds memory per EntryData whatever the compression ratio
_MAX_INPUT_PER_EVENT = 1 << 20
_MAX_INFLATE_INPUT = 256 << 10  # deflate rarely beats 4:1 on wheels: ~1 MiB out per call
_COMPACT_AT = 1 << 20
_ENCRYPTION_FLAGS = fmt.FLAG_ENCRYPTED | fmt.FLAG_STRONG_ENCRYPTION | fmt.FLAG_MASKED_HEADERS
_METHODS = (fmt.METHOD_STORED, fmt.METHOD_DEFLATE)


class _State(enum.Enum):
    RECORD = "record"
    ENTRY_DATA = "entry data"
    DATA_DESCRIPTOR = "data descriptor"
    CENTRAL_DIRECTORY = "central directory"
    TRAILER = "trailer"
    DEFERRED = "deferred"
    DONE = "done"
    ERROR = "error"


class _OpenEntry:
    """Counters for the entry whose data is being read."""

    __slots__ = ("compressed_size", "consumed", "crc", "header", "inflater", "produced")

    def __init__(self, header: LocalHeader, compressed_size: int | None) -> None:
        self.header = header
        self.compressed_size = compressed_size  # None: unknown until the deflate stream ends
        self.consumed = 0
        self.produced = 0
        self.crc = 0
        self.inflater: Inflater | None = new_inflater() if header.method == fmt.METHOD_DEFLATE else None


class ZipStreamParser:
    """Turn zip bytes, fed in any chunking, into :mod:`~wheelstream.zip._events` events.

    ``offset``: stream offset of the first byte that will be fed (0, or a checkpoint).
    ``prior_entries``: entries finished before ``offset`` (from the journal), for the final cross-check.
    ``compressed_sizes``: local-header offset -> compressed size, from the central directory of a finished
    file; lets the parser delimit stored entries that have a data descriptor instead of deferring them.
    ``pack_up_to``: entries declaring at most this many bytes (packed and unpacked) come out whole and still
    compressed, as ``EntryPacked`` (see the module docstring); 0, the default, streams every entry.
    ``max_entries``: the most entries (files and directories, ``prior_entries`` included) the archive may
    have; one more is an :class:`~wheelstream.errors.UnpackedLimitExceeded` at its local header.
    """

    def __init__(
        self,
        offset: int = 0,
        *,
        prior_entries: Iterable[LocalEntry] = (),
        compressed_sizes: Mapping[int, int] | None = None,
        max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE,
        pack_up_to: int = 0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._buf = bytearray()
        self._pos = 0  # index into _buf of the next unread byte
        self._base = offset  # stream offset of _buf[0]
        self._eof = False
        self._state = _State.RECORD
        self._error: ArchiveError | None = None
        self._start = offset
        self._table = EntryTable(prior_entries)  # finished entries, prior first, then in stream order
        self._names = self._table.keys  # name keys of every entry seen (duplicates)
        self._unpacked_total = self._table.unpacked_total
        self._max_unpacked = max_unpacked_size
        self._max_entries = max_entries
        self._compressed_sizes = compressed_sizes or {}
        self._pack_up_to = pack_up_to
        self._checkpoint = offset
        self._entry: _OpenEntry | None = None
        self._cd_start: int | None = None
        self._cd_end: int | None = None
        self._zip64_eocd: EndOfCentralDirectory | None = None
        self._zip64_locator: tuple[int, int] | None = None

    # -- public API ---------------------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Stream offset of the next byte the parser will look at."""
        return self._base + self._pos

    @property
    def checkpoint(self) -> int:
        """Offset of the last record boundary at which no entry was open (see module docstring)."""
        return self._checkpoint

    @property
    def finished_entries(self) -> tuple[LocalEntry, ...]:
        """Every entry finished so far, including ``prior_entries``, in offset order.

        Built on each call (the parser keeps entries as compact rows): ask :attr:`finished_names` when the
        names are all that is needed."""
        return tuple(sorted(self._table.since(0), key=_offset))

    @property
    def finished_names(self) -> tuple[str, ...]:
        """The names of the finished entries, ``prior_entries`` first, then in stream order."""
        return tuple(self._table.names)

    @property
    def finished_count(self) -> int:
        """How many entries are finished, ``prior_entries`` included: a cursor for :meth:`finished_since`."""
        return len(self._table)

    def finished_since(self, count: int, limit: int | None = None) -> list[LocalEntry]:
        """The entries finished after the first ``count`` (``prior_entries`` first, then in stream order), at
        most ``limit`` of them.

        A checkpoint asks only for what is new since the last one: sorting every entry each time, as
        :attr:`finished_entries` does, made checkpoints grow with the entries already done.
        """
        return self._table.since(count, limit)

    @property
    def max_unpacked_size(self) -> int:
        return self._max_unpacked

    @property
    def pack_up_to(self) -> int:
        return self._pack_up_to

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def failed(self) -> bool:
        """True once an error was raised: the parser will only raise it again."""
        return self._state is _State.ERROR

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes; ``b""`` marks the end of input. Does no parsing (call :meth:`next_event`)."""
        if self._eof:
            if data:
                raise UsageError("received data after end of input")
            return
        if not data:
            self._eof = True
            return
        if self._pos >= _COMPACT_AT and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """Return the next event, or :data:`NEED_DATA` if more input (or the end marker) is needed."""
        if self._error is not None:
            raise self._error
        reader = _READERS.get(self._state)
        if reader is None:
            return NEED_DATA  # DONE / DEFERRED: nothing further will ever come out
        try:
            event = reader(self)
        except ArchiveError as exc:
            self._state = _State.ERROR
            self._error = exc
            raise
        return NEED_DATA if event is None else event

    def events(self) -> Iterator[Event]:
        """Drain every event the buffered input allows."""
        while True:
            event = self.next_event()
            if isinstance(event, NeedData):
                return
            yield event

    def feed(self, data: bytes) -> list[Event]:
        """``receive_data`` then drain: the convenient form for consumers that do not interleave."""
        self.receive_data(data)
        return list(self.events())

    # -- helpers ------------------------------------------------------------------------------------

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def _truncated(self, what: str) -> TruncatedArchive:
        entry = self._entry.header.name if self._entry is not None else None
        return TruncatedArchive(f"input ended inside {what}", entry=entry, offset=self.offset)

    def _need(self, count: int, what: str) -> bool:
        """True when ``count`` bytes are buffered; raises if input already ended."""
        if self._available() >= count:
            return True
        if self._eof:
            raise self._truncated(what)
        return False

    def _peek_signature(self, what: str) -> bytes | None:
        if not self._need(4, what):
            return None
        return bytes(self._buf[self._pos : self._pos + 4])

    # -- RECORD: a local header, or the start of the central directory ------------------------------

    def _read_record(self) -> Event | None:
        if self._buf.startswith(fmt.LOCAL_HEADER_SIG, self._pos):  # the common case, without copying 4 bytes
            return self._read_local_header()
        if self._available() == 0 and self._eof:
            raise TruncatedArchive("archive ends before the end of central directory", offset=self.offset)
        sig = self._peek_signature("a record signature")
        if sig is None:
            return None
        if sig == fmt.LOCAL_HEADER_SIG:
            return self._read_local_header()
        if sig in (fmt.CENTRAL_HEADER_SIG, fmt.EOCD_SIG, fmt.ZIP64_EOCD_SIG):
            self._cd_start = self.offset
            self._state = _State.CENTRAL_DIRECTORY
            return self._read_central_directory()
        if self.offset == 0:
            raise StrayData("bytes before the first local header (not a plain zip)", offset=0)
        raise StrayData(f"unexpected bytes {sig!r} where a zip record should start", offset=self.offset)

    def _read_local_header(self) -> Event | None:
        header = fmt.parse_local_header(self._buf, self._pos, self._base + self._pos)
        if header is None:
            if self._eof:
                raise self._truncated("a local file header")
            return None
        self._check_local_header(header)
        pack_up_to = self._pack_up_to
        if (
            header.compressed_size <= pack_up_to
            and header.uncompressed_size <= pack_up_to
            and pack_up_to > 0
            and not header.has_data_descriptor
            and not header.is_dir
        ):
            return self._read_packed(header)
        self._pos += header.header_length
        self._names[name_key(header.name)] = None
        if header.has_data_descriptor:
            known = self._compressed_sizes.get(header.offset)
            if header.method == fmt.METHOD_STORED and known is None:
                self._state = _State.DEFERRED
                return EntryDeferred(header)
        else:
            known = header.compressed_size
            self._reserve_unpacked(header, header.uncompressed_size)
        self._entry = _OpenEntry(header, known)
        self._state = _State.ENTRY_DATA
        return EntryStarted(header)

    def _read_packed(self, header: LocalHeader) -> Event | None:
        """A whole small entry, once every compressed byte is buffered; finished, but not inflated here."""
        start = self._pos + header.header_length
        end = start + header.compressed_size
        if end > len(self._buf):
            if self._eof:
                raise TruncatedArchive(
                    "input ended inside entry data", entry=header.name, offset=self._base + len(self._buf)
                )
            return None
        self._reserve_unpacked(header, header.uncompressed_size)
        data = bytes(self._buf[start:end])
        self._pos = end
        self._names[name_key(header.name)] = None
        self._record_finished(*header[:7])  # LocalEntry's fields lead LocalHeader's
        return EntryPacked(header, data, self._base + end)

    def _check_local_header(self, header: LocalHeader) -> None:
        name, offset = header.name, header.offset
        fmt.check_safe_name(name, offset)
        if header.flags & _ENCRYPTION_FLAGS:
            raise UnsupportedEntry("encrypted entries are not supported", entry=name, offset=offset)
        if header.method not in _METHODS:
            method = fmt.METHOD_NAMES.get(header.method, f"method {header.method}")
            raise UnsupportedEntry(f"compression {method} is not supported", entry=name, offset=offset)
        if name_key(name) in self._names:
            raise DuplicateEntry("two entries share this name", entry=name, offset=offset)
        if len(self._names) >= self._max_entries:  # every entry started so far, prior ones included
            raise UnpackedLimitExceeded(
                f"archive has more than the {self._max_entries}-entry limit", entry=name, offset=offset
            )
        if (
            header.method == fmt.METHOD_STORED
            and not header.has_data_descriptor
            and header.compressed_size != header.uncompressed_size
        ):
            raise SizeMismatch(
                f"stored entry declares {header.compressed_size} bytes stored but "
                f"{header.uncompressed_size} unpacked",
                entry=name,
                offset=offset,
            )
        if header.is_dir and not header.has_data_descriptor and header.uncompressed_size:
            raise MalformedRecord("directory entry carries data", entry=name, offset=offset)

    def _reserve_unpacked(self, header: LocalHeader, size: int) -> None:
        self._unpacked_total += size
        if self._unpacked_total > self._max_unpacked:
            raise UnpackedLimitExceeded(
                f"archive unpacks to more than the {self._max_unpacked}-byte limit",
                entry=header.name,
                offset=header.offset,
            )

    # -- ENTRY_DATA ---------------------------------------------------------------------------------

    def _read_entry_data(self) -> Event | None:
        entry = self._entry
        assert entry is not None
        while True:
            if entry.inflater is not None and entry.inflater.eof:
                return self._end_of_data(entry)  # never feed a finished inflater: it hoards unused_data
            if entry.compressed_size is not None:
                remaining = entry.compressed_size - entry.consumed
                if remaining == 0:
                    return self._end_of_data(entry)
                take = min(remaining, self._available(), _MAX_INPUT_PER_EVENT)
            else:
                take = min(self._available(), _MAX_INPUT_PER_EVENT)
            if take == 0:
                if self._eof:
                    raise self._truncated("entry data")
                return None
            inflater = entry.inflater
            if inflater is None:
                out, used = bytes(self._buf[self._pos : self._pos + take]), take
            else:
                # A view, not a copy: the buffer is never resized while it is exported (the view is released
                # before this method returns). Input is capped near what fits the output cap, so the
                # inflater does not copy a large unconsumed tail on every call.
                take = min(take, _MAX_INFLATE_INPUT)
                with memoryview(self._buf) as whole, whole[self._pos : self._pos + take] as view:
                    try:
                        out = inflater.decompress(view, self._output_cap(entry))
                    except INFLATE_ERRORS as exc:
                        raise _corrupt(entry.header, exc, self.offset) from None
                used = take - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            self._pos += used
            entry.consumed += used
            if out:
                self._count_output(entry, len(out))
                entry.crc = crc32(out, entry.crc)
                return EntryData(entry.header.name, out, self.offset)

    def _output_cap(self, entry: _OpenEntry) -> int:
        """Inflate at most one byte past what may legally come out: the zip-bomb guard (DESIGN §4)."""
        if entry.header.has_data_descriptor:
            allowed = self._max_unpacked - self._unpacked_total
        else:
            allowed = entry.header.uncompressed_size - entry.produced  # already counted in the total
        return max(1, min(_MAX_OUTPUT_PER_EVENT, allowed + 1))

    def _count_output(self, entry: _OpenEntry, count: int) -> None:
        header = entry.header
        if header.is_dir:
            raise MalformedRecord("directory entry carries data", entry=header.name, offset=self.offset)
        entry.produced += count
        if not header.has_data_descriptor:
            if entry.produced > header.uncompressed_size:
                raise _inflates_past(header, self.offset)
        else:
            self._reserve_unpacked(header, count)

    def _end_of_data(self, entry: _OpenEntry) -> Event | None:
        header = entry.header
        if entry.inflater is not None and not entry.inflater.eof:
            if entry.compressed_size is not None and entry.consumed >= entry.compressed_size:
                raise _continues_past(header, self.offset)
            return None
        if entry.compressed_size is not None and entry.consumed != entry.compressed_size:
            raise _ends_early(header, entry.consumed, entry.compressed_size, self.offset)
        if header.has_data_descriptor:
            self._state = _State.DATA_DESCRIPTOR
            return self._read_data_descriptor()
        self._verify_entry(entry, header.crc, header.compressed_size, header.uncompressed_size)
        return self._finish_entry(entry)

    def _verify_entry(self, entry: _OpenEntry, crc: int, compressed: int, uncompressed: int) -> None:
        _verify(entry.header, entry.produced, entry.consumed, entry.crc, crc, compressed, uncompressed)

    def _finish_entry(self, entry: _OpenEntry) -> Event:
        header = entry.header
        done = LocalEntry(
            header.offset, header.name, header.flags, header.method, entry.crc, entry.consumed, entry.produced
        )
        self._record_finished(*done)
        self._entry = None
        self._state = _State.RECORD
        return EntryFinished(done, self.offset)

    def _record_finished(
        self, offset: int, name: str, flags: int, method: int, crc: int, csize: int, usize: int
    ) -> None:
        self._table.add(offset, name, flags, method, crc, csize, usize)
        self._checkpoint = self._base + self._pos  # the record after it starts here: nothing is open

    # -- DATA_DESCRIPTOR (4.3.9) --------------------------------------------------------------------

    def _read_data_descriptor(self) -> Event | None:
        entry = self._entry
        assert entry is not None
        signed = self._available() >= 4 and bytes(self._buf[self._pos : self._pos + 4]) == (
            fmt.DATA_DESCRIPTOR_SIG
        )
        if signed and entry.crc == int.from_bytes(fmt.DATA_DESCRIPTOR_SIG, "little"):
            signed = False  # the CRC itself looks like the signature; 4.3.9.3 allows either
        size_widths = (8, 4) if entry.header.zip64 else (4, 8)
        start = self._pos + (4 if signed else 0)
        longest = (start - self._pos) + 4 + 2 * max(size_widths)
        if self._available() < longest and not self._eof:
            return None
        candidates = []
        for width in size_widths:
            end = start + 4 + 2 * width
            if end > len(self._buf):
                continue
            crc = int.from_bytes(self._buf[start : start + 4], "little")
            compressed = int.from_bytes(self._buf[start + 4 : start + 4 + width], "little")
            uncompressed = int.from_bytes(self._buf[start + 4 + width : end], "little")
            candidates.append((end, crc, compressed, uncompressed))
        if not candidates:
            raise self._truncated("a data descriptor")
        for end, crc, compressed, uncompressed in candidates:  # noqa: B007 - the match is read after the loop
            if (crc, compressed, uncompressed) == (entry.crc, entry.consumed, entry.produced):
                break
        else:
            end, crc, compressed, uncompressed = candidates[0]
        self._verify_entry(entry, crc, compressed, uncompressed)
        self._pos = end
        return self._finish_entry(entry)

    # -- CENTRAL_DIRECTORY and end records (4.3.12 - 4.3.16) ------------------------------------------

    def _read_central_directory(self) -> Event | None:
        buf = self._buf  # receive_data never runs while this loop does
        while True:
            # _peek_signature, inline: torch has 12k records, and this loop is most of a resumed run's tail.
            pos = self._pos
            if len(buf) - pos < 4:
                return self._incomplete("the central directory")
            if buf.startswith(fmt.CENTRAL_HEADER_SIG, pos) and self._cd_end is None:
                parsed = fmt.parse_central_record(buf, pos, self._base + pos)
                if parsed is None:
                    return self._incomplete("the central directory")
                self._match_record(parsed[0])
                self._pos = pos + parsed[1]
                continue
            sig = bytes(buf[pos : pos + 4])
            if sig == fmt.EOCD_SIG:
                return self._read_eocd()
            elif not self._read_end_record(sig):
                return self._incomplete("the central directory")

    def _read_end_record(self, sig: bytes) -> bool:
        """Consume the ZIP64 end record or its locator; False if it is not all buffered yet."""
        if self._cd_end is None:
            self._cd_end = self.offset
        if sig == fmt.ZIP64_EOCD_SIG and self._zip64_eocd is None:
            parsed64 = fmt.parse_zip64_eocd(self._buf, self._pos, self.offset)
            if parsed64 is None:
                return False
            self._zip64_eocd, length = parsed64
            self._pos += length
            return True
        if sig == fmt.ZIP64_LOCATOR_SIG and self._zip64_locator is None:
            locator = fmt.parse_zip64_locator(self._buf, self._pos)
            if locator is None:
                return False
            self._zip64_locator = locator
            self._pos += fmt.ZIP64_LOCATOR.size
            return True
        raise StrayData(f"unexpected bytes {sig!r} in the central directory", offset=self.offset)

    def _read_eocd(self) -> Event | None:
        if self._cd_end is None:
            self._cd_end = self.offset
        parsed = fmt.parse_eocd(self._buf, self._pos, self.offset)
        if parsed is None:
            return self._incomplete("the end of central directory record")
        eocd, length = parsed
        self._verify_central_directory(eocd)
        self._table.release_lookups()
        self._pos += length
        self._state = _State.TRAILER
        assert self._cd_start is not None
        return CentralDirectory(self._table.central_records(), self._cd_start)

    def _incomplete(self, what: str) -> Event | None:
        if self._eof:
            raise self._truncated(what)
        return None

    def _verify_central_directory(self, eocd: EndOfCentralDirectory) -> None:
        assert self._cd_start is not None
        assert self._cd_end is not None
        effective = self._end_record(eocd)
        if effective.disk or effective.cd_disk:
            raise MalformedRecord("multi-disk archives are not supported", offset=eocd.offset)
        if effective.cd_offset != self._cd_start:
            raise OffsetMismatch(
                f"end record puts the central directory at {effective.cd_offset}, it starts at {self._cd_start}",
                offset=eocd.offset,
            )
        if effective.cd_size != self._cd_end - self._cd_start:
            raise OffsetMismatch(
                f"end record says the central directory is {effective.cd_size} bytes, "
                f"it is {self._cd_end - self._cd_start}",
                offset=eocd.offset,
            )
        count = self._table.central_count
        if effective.entries != count or effective.entries_on_disk != count:
            raise EntrySetMismatch(
                f"end record counts {effective.entries} entries, the central directory has {count}",
                offset=eocd.offset,
            )
        self._table.check_all_matched()

    def _end_record(self, eocd: EndOfCentralDirectory) -> EndOfCentralDirectory:
        """The EOCD values to trust: the ZIP64 record's when one is present (4.3.14), after checking its locator."""
        if self._zip64_eocd is None:
            if eocd.needs_zip64 or self._zip64_locator is not None:
                raise MalformedRecord("ZIP64 end of central directory record missing", offset=eocd.offset)
            return eocd
        if self._zip64_locator is None:
            raise MalformedRecord("ZIP64 end of central directory locator missing", offset=eocd.offset)
        _disk, where = self._zip64_locator
        if where != self._zip64_eocd.offset:
            raise OffsetMismatch(
                f"ZIP64 locator points at {where}, the ZIP64 end record is at {self._zip64_eocd.offset}",
                offset=eocd.offset,
            )
        return self._zip64_eocd

    def _match_record(self, record: CentralRecord) -> None:
        """Check a central record the moment it is read: one local entry that agrees with it and has no other
        record (see ``EntryTable.match``).

        Checking as we go (not when the end record arrives) bounds memory: a directory can never hold more
        records than there are local entries, whatever the archive claims.
        """
        if record.is_symlink:
            raise SymlinkEntry(
                "symbolic link entries are not allowed", entry=record.name, offset=record.offset
            )
        self._table.match(record)

    # -- TRAILER ------------------------------------------------------------------------------------

    def _read_trailer(self) -> Event | None:
        if self._available():
            raise StrayData("bytes after the end of central directory record", offset=self.offset)
        if not self._eof:
            return None
        self._state = _State.DONE
        return ArchiveFinished(self.offset)


def unpack_entry(packed: EntryPacked) -> bytes:
    """Inflate and verify a packed entry (see the module docstring): bytes in, bytes out, so any thread may
    run it. It raises what the streaming path raises for the same bytes — the output is capped one byte past
    the declared size (the zip-bomb guard), the deflate stream must end exactly at the declared compressed
    size, and the size and CRC-32 must match the local header."""
    header, data = packed.header, packed.data
    if header.method == fmt.METHOD_STORED:
        out, consumed = data, len(data)  # the header check made stored sizes agree
    else:
        inflater = new_inflater()
        try:
            out = inflater.decompress(data, header.uncompressed_size + 1)
        except INFLATE_ERRORS as exc:
            raise _corrupt(
                header, exc, header.offset + header.header_length
            ) from None  # where the data starts
        if len(out) > header.uncompressed_size:
            raise _inflates_past(header, header.offset)
        consumed = len(data) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
        if not inflater.eof:
            raise _continues_past(header, packed.end_offset)
        if consumed != header.compressed_size:
            raise _ends_early(header, consumed, header.compressed_size, header.offset)
    _verify(
        header, len(out), consumed, crc32(out), header.crc, header.compressed_size, header.uncompressed_size
    )
    return out


def _verify(
    header: LocalHeader,
    produced: int,
    consumed: int,
    crc: int,
    declared_crc: int,
    compressed: int,
    uncompressed: int,
) -> None:
    """What came out of an entry against what was declared (local header or data descriptor)."""
    name, offset = header.name, header.offset
    if produced != uncompressed:
        raise SizeMismatch(
            f"entry unpacks to {produced} bytes, {uncompressed} declared", entry=name, offset=offset
        )
    if consumed != compressed:
        raise SizeMismatch(
            f"entry has {consumed} compressed bytes, {compressed} declared", entry=name, offset=offset
        )
    if crc != declared_crc:
        raise ChecksumMismatch(f"CRC-32 is {crc:08x}, {declared_crc:08x} declared", entry=name, offset=offset)


def _corrupt(header: LocalHeader, exc: Exception, offset: int) -> CorruptData:
    return CorruptData(f"compressed data is not valid deflate ({exc})", entry=header.name, offset=offset)


def _inflates_past(header: LocalHeader, offset: int) -> SizeMismatch:
    return SizeMismatch(
        f"entry inflates past its declared {header.uncompressed_size} bytes", entry=header.name, offset=offset
    )


def _continues_past(header: LocalHeader, offset: int) -> SizeMismatch:
    return SizeMismatch(
        "deflate stream continues past the declared compressed size", entry=header.name, offset=offset
    )


def _ends_early(header: LocalHeader, consumed: int, compressed: int, offset: int) -> SizeMismatch:
    return SizeMismatch(
        f"deflate stream ends after {consumed} of {compressed} compressed bytes",
        entry=header.name,
        offset=offset,
    )


def _offset(entry: LocalEntry) -> int:
    return entry.offset


# The reader of each state, as plain functions: bound methods kept on the instance would make every parser a
# reference cycle, and all it holds (a row per entry) would then wait for the cyclic collector after use.
_READERS: dict[_State, Callable[[ZipStreamParser], Event | None]] = {
    _State.RECORD: ZipStreamParser._read_record,
    _State.ENTRY_DATA: ZipStreamParser._read_entry_data,
    _State.DATA_DESCRIPTOR: ZipStreamParser._read_data_descriptor,
    _State.CENTRAL_DIRECTORY: ZipStreamParser._read_central_directory,
    _State.TRAILER: ZipStreamParser._read_trailer,
}
