"""The central directory and the end records: each central record matched to its entry, then the totals.

Sections relied on (PKWARE APPNOTE 6.3.10):

* 4.3.12 central directory — one file header per entry, pointing back at its local header.
* 4.3.14 ZIP64 end of central directory record, 4.3.15 its locator: when present, their values are the
  ones to trust.
* 4.3.16 end of central directory record — where the directory starts, its size, and how many records.

Hardening (DESIGN §4) happens here for what only the directory can tell: each record must agree with a
local entry and be its only record (as it is read: see :func:`_match_record`), no symlinks, and the end
record must put the directory exactly where it was and count exactly its records. The CENTRAL_DIRECTORY
reader is a function of the parser (see "Readers" in ``_parser``'s docstring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wheelstream.errors import EntrySetMismatch, MalformedRecord, OffsetMismatch, StrayData, SymlinkEntry
from wheelstream.zip import _format as fmt
from wheelstream.zip._events import CentralDirectory, Event
from wheelstream.zip._format_central import (
    ZIP64_LOCATOR,
    CentralRecord,
    EndOfCentralDirectory,
    check_classic_fields,
    parse_central_record,
    parse_eocd,
    parse_zip64_eocd,
    parse_zip64_locator,
)
from wheelstream.zip._state import State

if TYPE_CHECKING:
    from wheelstream.zip._parser import ZipStreamParser

__all__ = ["read_central_directory"]


def read_central_directory(parser: ZipStreamParser) -> Event | None:
    buf = parser._buf  # receive_data never runs while this loop does
    while True:
        # _peek_signature, inline: torch has 12k records, and this loop is most of a resumed run's tail.
        pos = parser._pos
        if len(buf) - pos < 4:
            return _incomplete(parser, "the central directory")
        if buf.startswith(fmt.CENTRAL_HEADER_SIG, pos) and parser._cd_end is None:
            parsed = parse_central_record(buf, pos, parser._base + pos)
            if parsed is None:
                return _incomplete(parser, "the central directory")
            _match_record(parser, parsed[0])
            parser._pos = pos + parsed[1]
            continue
        sig = bytes(buf[pos : pos + 4])
        if sig == fmt.EOCD_SIG:
            return _read_eocd(parser)
        elif not _read_end_record(parser, sig):
            return _incomplete(parser, "the central directory")


def _read_end_record(parser: ZipStreamParser, sig: bytes) -> bool:
    """Consume the ZIP64 end record or its locator; False if it is not all buffered yet."""
    if parser._cd_end is None:
        parser._cd_end = parser.offset
    if sig == fmt.ZIP64_EOCD_SIG and parser._zip64_eocd is None:
        if parser._zip64_locator is not None:
            # 4.3.6: record, locator, end record, in that order (zipfile looks for each just before the next;
            # it refuses another order, so pip does too)
            raise MalformedRecord(
                "ZIP64 end of central directory record after its locator", offset=parser.offset
            )
        parsed64 = parse_zip64_eocd(parser._buf, parser._pos, parser.offset)
        if parsed64 is None:
            return False
        parser._zip64_eocd, length = parsed64
        parser._pos += length
        return True
    if sig == fmt.ZIP64_LOCATOR_SIG and parser._zip64_locator is None:
        locator = parse_zip64_locator(parser._buf, parser._pos, parser.offset)
        if locator is None:
            return False
        parser._zip64_locator = locator
        parser._pos += ZIP64_LOCATOR.size
        return True
    raise StrayData(f"unexpected bytes {sig!r} in the central directory", offset=parser.offset)


def _read_eocd(parser: ZipStreamParser) -> Event | None:
    if parser._cd_end is None:
        parser._cd_end = parser.offset
    parsed = parse_eocd(parser._buf, parser._pos, parser.offset)
    if parsed is None:
        return _incomplete(parser, "the end of central directory record")
    eocd, length = parsed
    _verify_central_directory(parser, eocd)
    parser._table.release_lookups()
    parser._pos += length
    parser._state = State.TRAILER
    assert parser._cd_start is not None
    return CentralDirectory(parser._table.central_records(), parser._cd_start)


def _incomplete(parser: ZipStreamParser, what: str) -> Event | None:
    if parser._eof:
        raise parser._truncated(what)
    return None


def _verify_central_directory(parser: ZipStreamParser, eocd: EndOfCentralDirectory) -> None:
    assert parser._cd_start is not None
    assert parser._cd_end is not None
    effective = _end_record(parser, eocd)
    if effective.disk or effective.cd_disk:
        raise MalformedRecord("multi-disk archives are not supported", offset=eocd.offset)
    if effective.cd_offset != parser._cd_start:
        raise OffsetMismatch(
            f"end record puts the central directory at {effective.cd_offset}, it starts at {parser._cd_start}",
            offset=eocd.offset,
        )
    if effective.cd_size != parser._cd_end - parser._cd_start:
        raise OffsetMismatch(
            f"end record says the central directory is {effective.cd_size} bytes, "
            f"it is {parser._cd_end - parser._cd_start}",
            offset=eocd.offset,
        )
    count = parser._table.central_count
    if effective.entries != count or effective.entries_on_disk != count:
        raise EntrySetMismatch(
            f"end record counts {effective.entries} entries ({effective.entries_on_disk} on this disk), "
            f"the central directory has {count}",
            offset=eocd.offset,
        )
    parser._table.check_all_matched()


def _end_record(parser: ZipStreamParser, eocd: EndOfCentralDirectory) -> EndOfCentralDirectory:
    """The EOCD values to trust: the ZIP64 record's when one is present (4.3.14), after checking its locator."""
    if parser._zip64_eocd is None:
        if parser._zip64_locator is not None:
            raise MalformedRecord("ZIP64 end of central directory record missing", offset=eocd.offset)
        # Without one, all ones are ordinary values, as zipfile reads them: CPython's zipfile and Rust's zip
        # write exactly 65,535 entries as 0xFFFF with no ZIP64 record. They must still be the true values.
        return eocd
    if parser._zip64_locator is None:
        raise MalformedRecord("ZIP64 end of central directory locator missing", offset=eocd.offset)
    where = parser._zip64_locator
    zip64 = parser._zip64_eocd
    if where != zip64.offset:
        raise OffsetMismatch(
            f"ZIP64 locator points at {where}, the ZIP64 end record is at {zip64.offset}",
            offset=eocd.offset,
        )
    check_classic_fields(eocd, zip64)
    return zip64


def _match_record(parser: ZipStreamParser, record: CentralRecord) -> None:
    """Check a central record the moment it is read: one local entry that agrees with it and has no other
    record (see ``EntryTable.match``).

    Checking as we go (not when the end record arrives) bounds memory: a directory can never hold more
    records than there are local entries, whatever the archive claims.
    """
    if record.is_symlink:
        raise SymlinkEntry("symbolic link entries are not allowed", entry=record.name, offset=record.offset)
    parser._table.match(record)
