"""The records after the last entry — central directory and end records — as pure functions over bytes.

Sections relied on (PKWARE APPNOTE 6.3.10):

* 4.3.12 central directory file header — ``PK\\1\\2``, 46 fixed bytes, then name, extra field and comment.
* 4.3.14 ZIP64 end of central directory record, 4.3.15 its locator, 4.3.16 end of central directory record.
* 4.5.3  ZIP64 extended information extra field (id 0x0001): in a central record only the fields whose
  32-bit value is 0xFFFFFFFF are present, in the order usize, csize, offset, disk.

The shared pieces (signatures, flags, extra-field splitting, name decoding) are in ``_format``. Nothing here
keeps state, as there: a record plus its length, or ``None`` when the buffer does not hold it all yet.
"""

from __future__ import annotations

import stat
import struct
from typing import NamedTuple

from wheelstream.errors import MalformedRecord, StrayData, UnsupportedEntry
from wheelstream.zip._format import (
    CENTRAL_HEADER_SIG,
    EOCD_SIG,
    LOCAL_HEADER_SIG,
    U16_MAX,
    U32_MAX,
    UNICODE_PATH_EXTRA_ID,
    ZIP64_EOCD_SIG,
    ZIP64_EXTRA_ID,
    ZIP64_LOCATOR_SIG,
    decode_name,
    extra_fields,
    zip64_values,
)
from wheelstream.zip._names import check_unicode_path

__all__ = [
    "CENTRAL_HEADER",
    "EOCD",
    "ZIP64_EOCD",
    "ZIP64_LOCATOR",
    "CentralRecord",
    "EndOfCentralDirectory",
    "check_classic_fields",
    "parse_central_record",
    "parse_eocd",
    "parse_zip64_eocd",
    "parse_zip64_locator",
]

MAX_VERSION_NEEDED = 63  # APPNOTE 6.3, the version zipfile (pip) reads up to: "version needed to extract"
CENTRAL_HEADER = struct.Struct("<4sBBHHHHHIIIHHHHHII")  # 46 bytes
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes

_RECORD_SIGNATURES = (LOCAL_HEADER_SIG, CENTRAL_HEADER_SIG, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG, EOCD_SIG)


# A named tuple, not a frozen dataclass, for the reason given in ``_format``: there is one per entry.
class CentralRecord(NamedTuple):
    """One central directory file header (4.3.12)."""

    offset: int  # where this record itself starts
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    uncompressed_size: int
    local_header_offset: int
    create_system: int
    external_attr: int

    @property
    def unix_mode(self) -> int:
        # pip and zipfile read the high 16 bits whatever system made the archive; so do we.
        return self.external_attr >> 16

    @property
    def is_symlink(self) -> bool:
        return stat.S_IFMT(self.external_attr >> 16) == stat.S_IFLNK  # asked of every record

    @property
    def is_executable(self) -> bool:
        # pip's zip_item_is_executable: a regular-file mode with any x bit (the umask is applied later).
        mode = self.unix_mode
        return bool(mode and stat.S_ISREG(mode) and mode & 0o111)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


class EndOfCentralDirectory(NamedTuple):
    """4.3.16, with the ZIP64 values (4.3.14) folded in where the 32-bit fields overflowed."""

    offset: int
    disk: int
    cd_disk: int
    entries_on_disk: int
    entries: int
    cd_size: int
    cd_offset: int
    comment_length: int


def parse_central_record(buf: bytes | bytearray, pos: int, offset: int) -> tuple[CentralRecord, int] | None:
    """Parse 4.3.12 at ``buf[pos:]``; returns the record and its length, or ``None`` if incomplete."""
    if len(buf) - pos < CENTRAL_HEADER.size:
        return None
    (
        _sig,
        _version,
        create_system,
        needed,
        flags,
        method,
        _time,
        _date,
        crc,
        csize,
        usize,
        name_len,
        extra_len,
        comment_len,
        disk,
        _internal,
        external,
        local_offset,
    ) = CENTRAL_HEADER.unpack_from(buf, pos)
    total = CENTRAL_HEADER.size + name_len + extra_len + comment_len
    if len(buf) - pos < total:
        return None
    start = pos + CENTRAL_HEADER.size
    name = decode_name(buf[start : start + name_len], flags, offset)
    # Checked whenever present, as zipfile checks it; most central records (torch: every one) have none.
    fields = (
        extra_fields(bytes(buf[start + name_len : start + name_len + extra_len]), offset, name)
        if extra_len
        else {}
    )
    if UNICODE_PATH_EXTRA_ID in fields:
        check_unicode_path(fields[UNICODE_PATH_EXTRA_ID], name, offset)
    if U32_MAX in (usize, csize, local_offset) or disk == U16_MAX:  # 4.5.3: these values are in ZIP64 extra
        wanted = [
            key
            for key, value in (("usize", usize), ("csize", csize), ("offset", local_offset), ("disk", disk))
            if value == (U16_MAX if key == "disk" else U32_MAX)
        ]
        if ZIP64_EXTRA_ID not in fields:
            raise MalformedRecord(
                "central record needs a ZIP64 extra field it lacks", entry=name, offset=offset
            )
        values = zip64_values(fields[ZIP64_EXTRA_ID], wanted, offset, name)
        usize = values.get("usize", usize)
        csize = values.get("csize", csize)
        local_offset = values.get("offset", local_offset)
        disk = values.get("disk", disk)
    if disk != 0:
        raise MalformedRecord("multi-disk archives are not supported", entry=name, offset=offset)
    if needed & 0xFF > MAX_VERSION_NEEDED:  # 4.4.3: its low byte; zipfile reads no archive past 6.3 either
        raise UnsupportedEntry(
            f"zip version {(needed & 0xFF) / 10:.1f} is needed to extract this entry "
            f"({MAX_VERSION_NEEDED / 10:.1f} is the newest supported)",
            entry=name,
            offset=offset,
        )
    record = CentralRecord(
        offset, name, flags, method, crc, csize, usize, local_offset, create_system, external
    )
    return record, total


def parse_eocd(buf: bytes | bytearray, pos: int, offset: int) -> tuple[EndOfCentralDirectory, int] | None:
    """Parse 4.3.16 at ``buf[pos:]``, comment included; ``None`` if incomplete."""
    if len(buf) - pos < EOCD.size:
        return None
    _sig, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment_len = EOCD.unpack_from(buf, pos)
    total = EOCD.size + comment_len
    if len(buf) - pos < total:
        return None
    comment = bytes(buf[pos + EOCD.size : pos + total])
    if any(sig in comment for sig in _RECORD_SIGNATURES):
        # zipfile trusts the *last* end record in the file: a second one hidden in the comment would make
        # pip see another archive than the one we unpack.
        raise StrayData("archive comment contains a zip record signature", offset=offset)
    eocd = EndOfCentralDirectory(offset, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment_len)
    return eocd, total


def parse_zip64_eocd(
    buf: bytes | bytearray, pos: int, offset: int
) -> tuple[EndOfCentralDirectory, int] | None:
    """Parse 4.3.14 (its extensible data is skipped); ``None`` if incomplete."""
    if len(buf) - pos < ZIP64_EOCD.size:
        return None
    (_sig, record_size, _made_by, _needed, disk, cd_disk, on_disk, entries, cd_size, cd_offset) = (
        ZIP64_EOCD.unpack_from(buf, pos)
    )
    total = 12 + record_size
    if record_size != ZIP64_EOCD.size - 12:
        # zipfile assumes no extensible data (it reads the record 56 bytes before the locator); bytes hidden
        # there would be read two ways. Wheels never need it.
        raise MalformedRecord(
            f"ZIP64 end of central directory record is {total} bytes, {ZIP64_EOCD.size} expected",
            offset=offset,
        )
    if len(buf) - pos < total:
        return None
    record = EndOfCentralDirectory(offset, disk, cd_disk, on_disk, entries, cd_size, cd_offset, 0)
    return record, total


def parse_zip64_locator(buf: bytes | bytearray, pos: int, offset: int) -> int | None:
    """Parse 4.3.15 (the locator at archive ``offset``); returns the offset of the ZIP64 EOCD record, or
    ``None`` if incomplete. Its disk fields must say one disk, as every other record's do (zipfile refuses a
    locator on disk ≠ 0 or of more than one disk: an archive pip cannot read is not one we install)."""
    if len(buf) - pos < ZIP64_LOCATOR.size:
        return None
    _sig, disk, eocd64_offset, total_disks = ZIP64_LOCATOR.unpack_from(buf, pos)
    if disk != 0 or total_disks > 1:
        raise MalformedRecord(
            f"multi-disk archives are not supported (ZIP64 locator: disk {disk} of {total_disks})",
            offset=offset,
        )
    return int(eocd64_offset)


# 4.4.1.4: a field of the classic end record that overflowed holds all ones, and the ZIP64 record the value.
_PLACEHOLDERS = {"disk": 0xFFFF, "cd_disk": 0xFFFF, "entries_on_disk": 0xFFFF, "entries": 0xFFFF}
_PLACEHOLDERS.update(cd_size=0xFFFFFFFF, cd_offset=0xFFFFFFFF)


def check_classic_fields(eocd: EndOfCentralDirectory, zip64: EndOfCentralDirectory) -> None:
    """Each field of the classic end record is its placeholder or the ZIP64 record's value. A reader that trusts
    the classic record (Info-ZIP's unzip, Go's archive/zip) follows ordinary values that differ, to a directory
    of its own: an archive read two ways (as Java's ZipFile, this refuses it)."""
    for field, placeholder in _PLACEHOLDERS.items():
        classic, wide = getattr(eocd, field), getattr(zip64, field)
        if classic not in (placeholder, wide):
            raise MalformedRecord(
                f"end record's {field.replace('_', ' ')} {classic} is neither the ZIP64 record's {wide} nor "
                "the placeholder",
                offset=eocd.offset,
            )
