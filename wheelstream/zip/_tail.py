"""Random-access reading of the central directory, for the one case streaming cannot handle.

A *stored* entry with a data descriptor (flag bit 3, method 0) has no length anywhere before its data, and
its end cannot be found by scanning (the descriptor signature is optional, 4.3.9.3, and may occur inside
the data). DESIGN §4: keep downloading into the partial file, then read the central directory from the
end of the finished file and restart the streaming parser at the deferred entry with the compressed sizes
known. These helpers are pure: the caller reads the bytes.

Relies on APPNOTE 4.3.16 (EOCD, at most 22 + 65535 bytes from the end), 4.3.15 (ZIP64 locator, 20 bytes
just before the EOCD) and 4.3.14 (ZIP64 EOCD record, where the locator says).
"""

from __future__ import annotations

from collections.abc import Iterable

from wheelstream.errors import MalformedRecord, OffsetMismatch, TruncatedArchive
from wheelstream.zip._format import CENTRAL_HEADER_SIG, EOCD_SIG, U16_MAX, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG
from wheelstream.zip._format_central import (
    EOCD,
    ZIP64_EOCD,
    ZIP64_LOCATOR,
    CentralRecord,
    check_classic_fields,
    parse_central_record,
    parse_eocd,
    parse_zip64_eocd,
    parse_zip64_locator,
)

__all__ = ["TAIL_SIZE", "find_central_directory", "read_central_directory"]

TAIL_SIZE = EOCD.size + U16_MAX + ZIP64_LOCATOR.size + ZIP64_EOCD.size


def find_central_directory(tail: bytes, tail_offset: int) -> tuple[int, int]:
    """``(offset, size)`` of the central directory, from the last ``TAIL_SIZE`` (or fewer) bytes of the file.

    The end records must be what the streaming parser demands of them (``_central``): the ZIP64 record just
    before its locator, the locator just before the end record, the classic fields placeholders or the ZIP64
    values, and the directory ending exactly where the end records start. So ``size`` is what lies between
    ``offset`` and the end records: a hostile offset can neither point past the file (a ``seek`` raised
    ``ValueError``) nor make the caller read the archive twice over.
    """
    at = tail.rfind(EOCD_SIG)
    while at >= 0:
        parsed = parse_eocd(tail, at, tail_offset + at)
        if parsed is not None and at + parsed[1] == len(tail):
            eocd = parsed[0]
            break
        at = tail.rfind(EOCD_SIG, 0, at)
    else:
        raise TruncatedArchive(
            "no end of central directory record at the end of the file", offset=tail_offset + len(tail)
        )
    directory, ends_at = eocd, tail_offset + at
    locator_at = at - ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == ZIP64_LOCATOR_SIG:
        located = parse_zip64_locator(tail, locator_at, tail_offset + locator_at)
        assert located is not None
        record_at = located - tail_offset
        if record_at < 0:
            raise MalformedRecord("ZIP64 end record lies outside the file tail", offset=located)
        parsed64 = parse_zip64_eocd(tail, record_at, located)
        if parsed64 is None or tail[record_at : record_at + 4] != ZIP64_EOCD_SIG:
            raise MalformedRecord("ZIP64 locator does not point at a ZIP64 end record", offset=located)
        if record_at + parsed64[1] != locator_at:
            raise MalformedRecord("ZIP64 end record is not just before its locator", offset=located)
        check_classic_fields(eocd, parsed64[0])
        directory, ends_at = parsed64[0], located
    else:
        swapped = at - ZIP64_EOCD.size - ZIP64_LOCATOR.size  # [locator][ZIP64 record][end record]
        record_at = swapped + ZIP64_LOCATOR.size
        if (
            swapped >= 0
            and tail[swapped : swapped + 4] == ZIP64_LOCATOR_SIG
            and tail[record_at : record_at + 4] == ZIP64_EOCD_SIG
        ):
            raise MalformedRecord(
                "ZIP64 end of central directory record after its locator", offset=tail_offset + swapped
            )
    if directory.cd_offset + directory.cd_size != ends_at:
        raise OffsetMismatch(
            f"end record puts the central directory at {directory.cd_offset} ({directory.cd_size} bytes); the "
            f"end records start at {ends_at}",
            offset=eocd.offset,
        )
    return directory.cd_offset, directory.cd_size


def read_central_directory(chunks: bytes | Iterable[bytes], data_offset: int) -> list[CentralRecord]:
    """Parse consecutive central records from ``chunks`` (bytes, or blocks of them), read from the central
    directory's start on; stops at the first bytes that are not one, reading no further: a directory "as large
    as the file" costs one block, not the file twice in memory."""
    if isinstance(chunks, (bytes, bytearray, memoryview)):
        chunks = [bytes(chunks)]
    records: list[CentralRecord] = []
    buf = bytearray()
    pos = 0  # in buf
    consumed = 0  # bytes of the directory dropped from buf's front
    for chunk in chunks:
        buf += chunk
        while len(buf) - pos >= 4:
            if buf[pos : pos + 4] != CENTRAL_HEADER_SIG:
                return records  # not a central record: the directory ends here
            parsed = parse_central_record(buf, pos, data_offset + consumed + pos)
            if parsed is None:
                break  # the rest of this record is in the next chunk
            records.append(parsed[0])
            pos += parsed[1]
        del buf[:pos]
        consumed += pos
        pos = 0
    if len(buf) >= 4:  # only a record's start can be left over: anything else returned above
        raise TruncatedArchive("central directory ends early", offset=data_offset + consumed)
    return records
