"""What the parser remembers per entry: finished local entries and their central records, compactly.

A wheel can have any number of entries, and everything the parser knows about one must stay until the central
directory has been cross-checked against it (DESIGN §4). Kept as objects — a ``LocalEntry`` tuple, its int
fields, a dict slot by offset, a set slot for the name, then a ``CentralRecord`` with its own copy of the name
— that was most of an install's memory for a wheel of many tiny files. Here an entry is one fixed-width row in
a ``bytearray`` (the numbers), one slot in a list (the name, the very string the local header gave: the
extractor's records share it), and one dict slot (the name, for duplicates); its central record adds one more
row. Tuples are built only when asked for (``entry``, ``since``, ``CentralRecords``).

Central records are matched to their entry as they are read. Writers put the central directory in the
order of the entries, so the next record is expected to point at the next unmatched entry — one compare, no
lookup. A directory in another order switches, for good, to an index by offset and a flag per entry, built
then (so only such archives pay for them).
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from wheelstream.errors import DuplicateEntry, EntrySetMismatch, HeaderMismatch
from wheelstream.zip._format import LocalEntry
from wheelstream.zip._format_central import CentralRecord

__all__ = ["CentralRecords", "EntryTable", "executable_files", "name_key"]

# A LocalEntry without its name, in LocalEntry's field order: offset, flags, method, crc, csize, usize.
_LOCAL_ROW = struct.Struct("<QHHIQQ")
# A central record beyond what its entry already says: where it is, which entry it matched, its attributes.
_CENTRAL_ROW = struct.Struct("<QQII")  # offset, entry index, external attributes, creating system


def name_key(name: str) -> str:
    """A file ``a`` and a directory ``a/`` cannot both exist on disk: they count as one name."""
    return name.rstrip("/")


class EntryTable:
    """Finished local entries in finish order (which is offset order), and the central records matched to them."""

    __slots__ = ("_by_offset", "_central", "_cursor", "_matched", "_rows", "keys", "names", "unpacked_total")

    def __init__(self, prior: Iterable[LocalEntry] = ()) -> None:
        self._rows = bytearray()
        self.names: list[str] = []
        # Name keys of every entry started, finished or not (duplicates). A dict of None, not a set: a set's
        # table grows fourfold at a time and stays mostly empty after each growth, a dict's entries stay dense.
        self.keys: dict[str, None] = {}
        self.unpacked_total = 0  # of the prior entries
        self._central = bytearray()
        self._cursor = 0  # in-order matching: every entry before this one has its central record
        self._matched: bytearray | None = None  # out-of-order matching: one flag per entry
        self._by_offset: dict[int, int] | None = None
        for entry in prior:
            self.keys[name_key(entry.name)] = None
            self.add(*entry)
            self.unpacked_total += entry.uncompressed_size

    def __len__(self) -> int:
        return len(self.names)

    def add(self, offset: int, name: str, flags: int, method: int, crc: int, csize: int, usize: int) -> None:
        """A finished entry (its name key was added to ``keys`` when its header was read)."""
        self._rows += _LOCAL_ROW.pack(offset, flags, method, crc, csize, usize)
        self.names.append(name)

    def entry(self, index: int) -> LocalEntry:
        offset, flags, method, crc, csize, usize = _LOCAL_ROW.unpack_from(self._rows, index * _LOCAL_ROW.size)
        return LocalEntry(offset, self.names[index], flags, method, crc, csize, usize)

    def since(self, count: int, limit: int | None = None) -> list[LocalEntry]:
        """The entries finished after the first ``count``, in finish order (at most ``limit`` of them)."""
        end = len(self.names) if limit is None else min(len(self.names), count + limit)
        return [self.entry(index) for index in range(count, end)]

    def _offset(self, index: int) -> int:
        offset: int = _LOCAL_ROW.unpack_from(self._rows, index * _LOCAL_ROW.size)[0]
        return offset

    # -- the central directory ------------------------------------------------------------------------

    @property
    def central_count(self) -> int:
        return len(self._central) // _CENTRAL_ROW.size

    def match(self, record: CentralRecord) -> None:
        """Check a central record against the entry it points at, and remember it; raise at the first
        disagreement: no such entry, another field, or an entry that already has its record (a duplicate)."""
        index = self._find(record)
        row = _LOCAL_ROW.unpack_from(self._rows, index * _LOCAL_ROW.size)
        if self.names[index] != record.name or row[1:] != record[2:7]:
            self._mismatch(record, index)
        matched = self._matched
        if matched is not None:
            if matched[index]:
                raise DuplicateEntry(
                    "two central records share this name", entry=record.name, offset=record.offset
                )
            matched[index] = 1
        self._central += _CENTRAL_ROW.pack(record.offset, index, record.external_attr, record.create_system)

    def _find(self, record: CentralRecord) -> int:
        """The index of the entry ``record`` points at; switches to out-of-order matching when needed."""
        index = self._cursor
        if self._matched is None:
            if index < len(self.names) and self._offset(index) == record.local_header_offset:
                self._cursor = index + 1
                return index
            self._matched = bytearray(len(self.names))
            self._matched[:index] = b"\x01" * index
            self._by_offset = {self._offset(i): i for i in range(len(self.names))}
        assert self._by_offset is not None
        found = self._by_offset.get(record.local_header_offset)
        if found is None:
            raise EntrySetMismatch(
                f"central record points at {record.local_header_offset}, where no entry starts",
                entry=record.name,
                offset=record.offset,
            )
        return found

    def _is_matched(self, index: int) -> bool:
        return bool(self._matched[index]) if self._matched is not None else index < self._cursor

    def _mismatch(self, record: CentralRecord, index: int) -> None:
        """Raise for a record that disagrees with the entry it points at (error path: may scan)."""
        if record.name != self.names[index]:
            for other, name in enumerate(self.names):
                if name == record.name and other != index and self._is_matched(other):
                    raise DuplicateEntry(
                        "two central records share this name", entry=record.name, offset=record.offset
                    )
        _compare(self.entry(index), record)

    def check_all_matched(self) -> None:
        """Every entry has a central record (each record was matched to its own entry as it was read)."""
        missing = self._cursor if self._matched is None else self._matched.find(0)
        if 0 <= missing < len(self.names):
            raise EntrySetMismatch(
                "entry has no central directory record",
                entry=self.names[missing],
                offset=self._offset(missing),
            )

    def release_lookups(self) -> None:
        """Drop what only matching needed (the name set, the offset index, the flags), once the directory is
        complete: the rows stay, for ``entry``, ``since`` and the records."""
        self.keys.clear()
        self._by_offset = None
        self._matched = None
        self._cursor = len(self.names)

    def central_records(self) -> CentralRecords:
        """The records matched so far (all of them once the directory is complete: it never grows after)."""
        return CentralRecords(self, self._central)

    def central_record(self, rows: bytes | bytearray, position: int) -> CentralRecord:
        offset, index, external, create_system = _CENTRAL_ROW.unpack_from(rows, position * _CENTRAL_ROW.size)
        local, flags, method, crc, csize, usize = _LOCAL_ROW.unpack_from(self._rows, index * _LOCAL_ROW.size)
        return CentralRecord(
            offset, self.names[index], flags, method, crc, csize, usize, local, create_system, external
        )

    def executable_files(self, rows: bytes | bytearray) -> list[str]:
        """Names of the regular files whose central record has an x bit (pip's rule; see ``CentralRecord``)."""
        names = self.names
        found = []
        for _offset, index, external, _system in _CENTRAL_ROW.iter_unpack(rows):
            mode = external >> 16
            if mode & 0o111 and stat.S_ISREG(mode) and not names[index].endswith("/"):
                found.append(names[index])
        return found


class CentralRecords(Sequence[CentralRecord]):
    """The central directory's records, in directory order, as a read-only sequence of ``CentralRecord``.

    Each record is built when it is read (two rows, no per-record object kept); equal to, and hashed like, the
    tuple of the same records."""

    __slots__ = ("_rows", "_table")

    def __init__(self, table: EntryTable, rows: bytes | bytearray) -> None:
        self._table = table
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows) // _CENTRAL_ROW.size

    @overload
    def __getitem__(self, index: int) -> CentralRecord: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[CentralRecord, ...]: ...

    def __getitem__(self, index: int | slice) -> CentralRecord | tuple[CentralRecord, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("central record index out of range")
        return self._table.central_record(self._rows, index)

    def __iter__(self) -> Iterator[CentralRecord]:
        table, rows = self._table, self._rows
        return (table.central_record(rows, i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (CentralRecords, tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"<CentralRecords: {len(self)} records>"

    def executable_files(self) -> list[str]:
        return self._table.executable_files(self._rows)


def executable_files(records: Sequence[CentralRecord]) -> list[str]:
    """Names of the regular files the central directory marks executable (any x bit, as pip decides)."""
    if isinstance(records, CentralRecords):
        return records.executable_files()
    return [record.name for record in records if record.is_executable and not record.is_dir]


_COMPARED = ("name", "method", "flags", "crc", "compressed_size", "uncompressed_size")


def _compare(local: LocalEntry, record: CentralRecord) -> None:
    """Name the first field in which an entry and its central record differ."""
    for field in _COMPARED:
        ours, theirs = getattr(local, field), getattr(record, field)
        if ours != theirs:
            raise HeaderMismatch(
                f"local header and central directory disagree on {field.replace('_', ' ')}: "
                f"{ours!r} vs {theirs!r}",
                entry=record.name,
                offset=local.offset,
            )
