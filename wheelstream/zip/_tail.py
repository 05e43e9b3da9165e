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

from wheelstream.errors import MalformedRecord, TruncatedArchive
from wheelstream.zip._format import CENTRAL_HEADER_SIG, EOCD_SIG, U16_MAX, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG
from wheelstream.zip._format_central import (
    EOCD,
    ZIP64_EOCD,
    ZIP64_LOCATOR,
    CentralRecord,
    parse_central_record,
    parse_eocd,
    parse_zip64_eocd,
    parse_zip64_locator,
)

__all__ = ["TAIL_SIZE", "find_central_directory", "read_central_directory"]

TAIL_SIZE = EOCD.size + U16_MAX + ZIP64_LOCATOR.size + ZIP64_EOCD.size


def find_central_directory(tail: bytes, tail_offset: int) -> tuple[int, int]:
    """``(offset, size)`` of the central directory, from the last ``TAIL_SIZE`` (or fewer) bytes of the file.

    The caller reads exactly ``size`` bytes: a hostile offset must not make it load the whole file.
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
        return parsed64[0].cd_offset, parsed64[0].cd_size
    return eocd.cd_offset, eocd.cd_size


def read_central_directory(data: bytes, data_offset: int) -> list[CentralRecord]:
    """Parse consecutive central records from ``data``, which starts at the central directory."""
    records = []
    pos = 0
    while data[pos : pos + 4] == CENTRAL_HEADER_SIG:
        parsed = parse_central_record(data, pos, data_offset + pos)
        if parsed is None:
            raise TruncatedArchive("central directory ends early", offset=data_offset + pos)
        record, length = parsed
        records.append(record)
        pos += length
    return records
