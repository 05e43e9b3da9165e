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
DEFERRED              bytes only counted (stored + descriptor)   terminal; see ``EntryDeferred``
DONE / ERROR          nothing                                    terminal
====================  =========================================  ======================================

Readers
-------
The parser holds the state — buffer, counters, entry table — and drives it: ``receive_data``,
``next_event``, the RECORD and TRAILER readers, the budgets and the checkpoint. The other readers live beside
the records they read, one module each, headed by the APPNOTE sections they rely on: ``_entry_start`` (a
local header: checks and budgets, then the entry is opened, deferred or packed), ``_entry_data`` (ENTRY_DATA
and DATA_DESCRIPTOR, and :func:`unpack_entry`), ``_central`` (CENTRAL_DIRECTORY and the end records). They
are plain functions of the parser, as ``_READERS`` wants every reader, and read and advance its private
fields directly: this class's own code split by job, not an interface, and no call deeper than a method.

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

from collections.abc import Callable, Iterable, Iterator, Mapping

from wheelstream.errors import ArchiveError, StrayData, TruncatedArchive, UnpackedLimitExceeded, UsageError
from wheelstream.zip import _format as fmt
from wheelstream.zip._central import read_central_directory
from wheelstream.zip._entries import EntryTable
from wheelstream.zip._entry_data import OpenEntry, read_data_descriptor, read_entry_data
from wheelstream.zip._entry_start import read_local_header
from wheelstream.zip._events import NEED_DATA, ArchiveFinished, Event, NeedData
from wheelstream.zip._format import LocalEntry, LocalHeader
from wheelstream.zip._format_central import EndOfCentralDirectory
from wheelstream.zip._state import State

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_MAX_UNPACKED_SIZE", "ZipStreamParser"]

DEFAULT_MAX_UNPACKED_SIZE = 16 * 1024**3
# Entries one archive may have: the count bomb's guard, as DEFAULT_MAX_UNPACKED_SIZE is the size bomb's. Each
# entry costs memory until the install ends (parser rows, staged-file records, RECORD rows) and a file on disk.
# The biggest real wheels have tens of thousands of entries: the default leaves them ample room while bounding
# what a wheel of tiny files can make us hold.
DEFAULT_MAX_ENTRIES = 500_000
_COMPACT_AT = 1 << 20
_COPY_THROUGH_VIEW = 16 << 10
# Past a deferred entry (``_defer``): room for the end records, and for each entry still allowed a local header,
# a data descriptor and a central record with a name of a couple of hundred bytes twice over.
_STRUCTURE = 64 << 10
_STRUCTURE_PER_ENTRY = 512


class ZipStreamParser:
    """Turn zip bytes, fed in any chunking, into :mod:`~wheelstream.zip._events` events.

    ``offset``: stream offset of the first byte that will be fed (0, or a checkpoint).
    ``prior_entries``: entries finished before ``offset`` (from the journal), for the final cross-check.
    ``compressed_sizes``: local-header offset -> compressed size, from the central directory of a finished
    file; lets the parser delimit stored entries that have a data descriptor instead of deferring them.
    ``pack_up_to``: entries declaring at most this many bytes (packed and unpacked) come out whole and still
    compressed, as ``EntryPacked`` (see the module docstring); 0, the default, streams every entry.
    ``max_entries``: the most entries (files and directories, ``prior_entries`` included) the archive may
    have; one more is an :class:`~wheelstream.errors.UnpackedLimitExceeded` at its local header. Both limits
    hold for ``prior_entries`` too: past one, the constructor raises (a resume under a smaller limit).
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
        self._state = State.RECORD
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
        self._entry: OpenEntry | None = None
        self._deferred: LocalHeader | None = None  # the entry that stopped the parse (DEFERRED)
        self._deferred_left = 0  # bytes that may still come past it (``_count_deferred``)
        self._cd_start: int | None = None
        self._cd_end: int | None = None
        self._zip64_eocd: EndOfCentralDirectory | None = None
        self._zip64_locator: int | None = None  # where the ZIP64 locator says the ZIP64 end record is
        self._check_prior_within_limits()

    def _check_prior_within_limits(self) -> None:
        """The limits hold for ``prior_entries`` too: they were finished by a run under wider limits, and a
        resume whose remaining bytes start no entry (the central directory alone) checked nothing — a wheel of
        200 entries was installed under ``max_entries=20``. Raised at the first prior entry past a limit."""
        table = self._table
        if len(table) > self._max_entries:
            (over,) = table.since(self._max_entries, 1)
            raise UnpackedLimitExceeded(
                f"archive has more than the {self._max_entries}-entry limit",
                entry=over.name,
                offset=over.offset,
            )
        if table.unpacked_total > self._max_unpacked:
            total = 0
            for entry in table.since(0):
                total += entry.uncompressed_size
                if total > self._max_unpacked:
                    raise UnpackedLimitExceeded(
                        f"archive unpacks to more than the {self._max_unpacked}-byte limit",
                        entry=entry.name,
                        offset=entry.offset,
                    )

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
        return self._state is State.ERROR

    @property
    def done(self) -> bool:
        return self._state is State.DONE

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes; ``b""`` marks the end of input. Does no parsing (call :meth:`next_event`)."""
        if self._eof:
            if data:
                raise UsageError("received data after end of input")
            return
        if not data:
            self._eof = True
            return
        if self._deferred is not None:
            # Past a stored entry whose end only the central directory tells (``EntryDeferred``): nothing is
            # parsed or kept (the caller has the bytes), but they are counted as they come (``_count_deferred``).
            try:
                self._count_deferred(len(data))
            except ArchiveError as exc:
                self._state = State.ERROR  # broken for good, as after an error from ``next_event``
                self._error = exc
                raise
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
            self._state = State.ERROR
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

    def _copy(self, start: int, end: int) -> bytes:
        """``_buf[start:end]`` as bytes. Slicing the bytearray then ``bytes()`` copies twice, into fresh memory
        each time; a view copies once, but below ``_COPY_THROUGH_VIEW`` costs more to set up than the second copy
        (docs/performance.md, D-parser-copies)."""
        if end - start < _COPY_THROUGH_VIEW:
            return bytes(self._buf[start:end])
        with memoryview(self._buf) as whole, whole[start:end] as part:
            return part.tobytes()

    def _peek_signature(self, what: str) -> bytes | None:
        if not self._need(4, what):
            return None
        return bytes(self._buf[self._pos : self._pos + 4])

    # -- RECORD: a local header, or the start of the central directory ------------------------------

    def _read_record(self) -> Event | None:
        if self._buf.startswith(fmt.LOCAL_HEADER_SIG, self._pos):  # the common case, without copying 4 bytes
            return read_local_header(self)
        if self._available() == 0 and self._eof:
            raise TruncatedArchive("archive ends before the end of central directory", offset=self.offset)
        sig = self._peek_signature("a record signature")
        if sig is None:
            return None
        if sig == fmt.LOCAL_HEADER_SIG:
            return read_local_header(self)
        if sig in (fmt.CENTRAL_HEADER_SIG, fmt.EOCD_SIG, fmt.ZIP64_EOCD_SIG):
            self._cd_start = self.offset
            self._state = State.CENTRAL_DIRECTORY
            return read_central_directory(self)
        if self.offset == 0:
            raise StrayData("bytes before the first local header (not a plain zip)", offset=0)
        raise StrayData(f"unexpected bytes {sig!r} where a zip record should start", offset=self.offset)

    # -- what the readers share: the unpacked-size budget, the finished entries, the checkpoint -----

    def _defer(self, header: LocalHeader) -> None:
        """Stop at ``header``, a stored entry whose end only the central directory tells; from here on the input
        is only counted. What may still come: the unpacked bytes the budget has left (the entry's own bytes
        are unpacked bytes, and later entries' compressed bytes rarely outgrow theirs), plus the structure
        around them — headers, descriptors, the central directory — at ``_STRUCTURE_PER_ENTRY`` for each
        entry the archive may still have. So an endless entry is refused near the budget, not at a full disk,
        and a wheel that fits its budget is not refused here (``finish_deferred``'s parser then counts exactly)."""
        self._state = State.DEFERRED
        self._deferred = header
        entries_left = max(0, self._max_entries - len(self._names))
        self._deferred_left = (
            self._max_unpacked - self._unpacked_total + _STRUCTURE + _STRUCTURE_PER_ENTRY * entries_left
        )
        self._count_deferred(self._available())

    def _count_deferred(self, size: int) -> None:
        self._deferred_left -= size
        if self._deferred_left < 0:
            assert self._deferred is not None
            raise UnpackedLimitExceeded(
                f"archive unpacks to more than the {self._max_unpacked}-byte limit "
                "(counted past an entry whose size comes after its data)",
                entry=self._deferred.name,
                offset=self._deferred.offset,
            )

    def _reserve_unpacked(self, header: LocalHeader, size: int) -> None:
        self._unpacked_total += size
        if self._unpacked_total > self._max_unpacked:
            raise UnpackedLimitExceeded(
                f"archive unpacks to more than the {self._max_unpacked}-byte limit",
                entry=header.name,
                offset=header.offset,
            )

    def _record_finished(
        self, offset: int, name: str, flags: int, method: int, crc: int, csize: int, usize: int
    ) -> None:
        self._table.add(offset, name, flags, method, crc, csize, usize)
        self._checkpoint = self._base + self._pos  # the record after it starts here: nothing is open

    # -- TRAILER ------------------------------------------------------------------------------------

    def _read_trailer(self) -> Event | None:
        if self._available():
            raise StrayData("bytes after the end of central directory record", offset=self.offset)
        if not self._eof:
            return None
        self._state = State.DONE
        return ArchiveFinished(self.offset)


def _offset(entry: LocalEntry) -> int:
    return entry.offset


# The reader of each state, as plain functions: bound methods kept on the instance would make every parser a
# reference cycle, and all it holds (a row per entry) would then wait for the cyclic collector after use.
_READERS: dict[State, Callable[[ZipStreamParser], Event | None]] = {
    State.RECORD: ZipStreamParser._read_record,
    State.ENTRY_DATA: read_entry_data,
    State.DATA_DESCRIPTOR: read_data_descriptor,
    State.CENTRAL_DIRECTORY: read_central_directory,
    State.TRAILER: ZipStreamParser._read_trailer,
}
