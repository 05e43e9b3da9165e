"""The ZIP records wheelstream reads, as pure functions over bytes (PKWARE APPNOTE 6.3.10).

Sections relied on:

* 4.3.7  local file header — ``PK\\3\\4``, 30 fixed bytes, then name and extra field.
* 4.3.9  data descriptor — crc, compressed size, uncompressed size after the data when flag bit 3 is set;
  the ``PK\\7\\8`` signature is optional (4.3.9.3) and sizes are 8 bytes when the entry is ZIP64 (4.3.9.2).
* 4.3.12 central directory file header — ``PK\\1\\2``, 46 fixed bytes, then name, extra field and comment.
* 4.3.14 ZIP64 end of central directory record, 4.3.15 its locator, 4.3.16 end of central directory record.
* 4.4.4  general purpose flags: bit 0 encrypted, bit 3 data descriptor, bit 6 strong encryption,
  bit 11 UTF-8 names, bit 13 masked local headers.
* 4.5.3  ZIP64 extended information extra field (id 0x0001): in a local header both sizes are present; in
  a central record only the fields whose 32-bit value is 0xFFFFFFFF, in the order usize, csize, offset, disk.

Nothing here keeps state: callers pass a buffer and a position and get a record plus its length back, or
``None`` when the buffer does not hold the whole record yet.
"""

from __future__ import annotations

import re
import stat
import struct
from dataclasses import dataclass

from wheelstream.errors import MalformedRecord, UnsafePath

LOCAL_HEADER_SIG = b"PK\x03\x04"
CENTRAL_HEADER_SIG = b"PK\x01\x02"
DATA_DESCRIPTOR_SIG = b"PK\x07\x08"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
EOCD_SIG = b"PK\x05\x06"

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
CENTRAL_HEADER = struct.Struct("<4sBBHHHHHIIIHHHHHII")  # 46 bytes
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes

FLAG_ENCRYPTED = 1 << 0
FLAG_DATA_DESCRIPTOR = 1 << 3
FLAG_STRONG_ENCRYPTION = 1 << 6
FLAG_UTF8 = 1 << 11
FLAG_MASKED_HEADERS = 1 << 13

METHOD_STORED = 0
METHOD_DEFLATE = 8
METHOD_NAMES = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 95: "xz"}

ZIP64_EXTRA_ID = 0x0001
U32_MAX = 0xFFFFFFFF
U16_MAX = 0xFFFF
CREATE_SYSTEM_UNIX = 3


@dataclass(frozen=True, slots=True)
class LocalHeader:
    """A local file header as read from the stream; sizes are 0 when a data descriptor follows."""

    offset: int
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    uncompressed_size: int
    zip64: bool  # a ZIP64 extra field was present: the data descriptor then has 8-byte sizes
    header_length: int

    @property
    def has_data_descriptor(self) -> bool:
        return bool(self.flags & FLAG_DATA_DESCRIPTOR)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_length


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """What an entry really was once its data (and descriptor) were read: the values checked against the CD.

    The journal persists these so that a parser restarted at a checkpoint can still cross-check entries
    that were finished before it.
    """

    offset: int
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    uncompressed_size: int


@dataclass(frozen=True, slots=True)
class CentralRecord:
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
        return (self.external_attr >> 16) if self.create_system == CREATE_SYSTEM_UNIX else 0

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.unix_mode)

    @property
    def is_executable(self) -> bool:
        # pip: any of the x bits in the unix mode makes the installed file u+x/g+x/o+x (umask applied).
        return bool(self.unix_mode & 0o111)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(frozen=True, slots=True)
class EndOfCentralDirectory:
    """4.3.16, with the ZIP64 values (4.3.14) folded in where the 32-bit fields overflowed."""

    offset: int
    disk: int
    cd_disk: int
    entries_on_disk: int
    entries: int
    cd_size: int
    cd_offset: int
    comment_length: int
    needs_zip64: bool


def decode_name(raw: bytes, flags: int, offset: int) -> str:
    """Decode an entry name the way zipfile and pip do: UTF-8 when bit 11 is set, else CP437."""
    try:
        return raw.decode("utf-8") if flags & FLAG_UTF8 else raw.decode("cp437")
    except UnicodeDecodeError:
        raise MalformedRecord("entry name is not valid UTF-8", entry=repr(raw)[2:-1], offset=offset) from None


_DRIVE = re.compile(r"^[A-Za-z]:")


def check_safe_name(name: str, offset: int) -> None:
    """Reject every name that could land outside the extraction root or be read two ways (DESIGN §4)."""
    reason = None
    if not name:
        reason = "empty entry name"
    elif "\x00" in name:
        reason = "entry name contains NUL"
    elif "\\" in name:
        reason = "entry name contains a backslash"
    elif name.startswith("/"):
        reason = "absolute entry name"
    elif _DRIVE.match(name):
        reason = "entry name starts with a drive letter"
    else:
        parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
        if ".." in parts:
            reason = "entry name climbs out with '..'"
        elif "" in parts or "." in parts:
            reason = "entry name is not canonical (empty or '.' component)"
    if reason is not None:
        raise UnsafePath(reason, entry=name, offset=offset)


def _zip64_values(extra: bytes, wanted: list[str], offset: int, name: str) -> dict[str, int]:
    """Pull the 8-byte values named in ``wanted`` from the ZIP64 extra field (4.5.3), in order."""
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if len(body) != size:
            break
        if header_id == ZIP64_EXTRA_ID:
            if len(body) < 8 * len(wanted):
                raise MalformedRecord("ZIP64 extra field too short", entry=name, offset=offset)
            return {key: struct.unpack_from("<Q", body, 8 * i)[0] for i, key in enumerate(wanted)}
        pos += 4 + size
    return {}


def has_zip64_extra(extra: bytes) -> bool:
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        if header_id == ZIP64_EXTRA_ID:
            return True
        pos += 4 + size
    return False


def parse_local_header(buf: bytes | bytearray, pos: int, offset: int) -> LocalHeader | None:
    """Parse 4.3.7 at ``buf[pos:]`` (stream offset ``offset``); ``None`` if the buffer is too short."""
    if len(buf) - pos < LOCAL_HEADER.size:
        return None
    (_sig, _version, flags, method, _time, _date, crc, csize, usize, name_len, extra_len) = (
        LOCAL_HEADER.unpack_from(buf, pos)
    )
    total = LOCAL_HEADER.size + name_len + extra_len
    if len(buf) - pos < total:
        return None
    start = pos + LOCAL_HEADER.size
    name = decode_name(bytes(buf[start : start + name_len]), flags, offset)
    extra = bytes(buf[start + name_len : start + name_len + extra_len])
    zip64 = has_zip64_extra(extra)
    if zip64:
        values = _zip64_values(extra, ["usize", "csize"], offset, name)
        # 4.5.3: in a local header both sizes are present, but writers only mean them when the 32-bit
        # field overflowed; keep the 32-bit value otherwise.
        if usize == U32_MAX:
            usize = values["usize"]
        if csize == U32_MAX:
            csize = values["csize"]
    return LocalHeader(offset, name, flags, method, crc, csize, usize, zip64, total)


def parse_central_record(buf: bytes | bytearray, pos: int, offset: int) -> tuple[CentralRecord, int] | None:
    """Parse 4.3.12 at ``buf[pos:]``; returns the record and its length, or ``None`` if incomplete."""
    if len(buf) - pos < CENTRAL_HEADER.size:
        return None
    (_sig, _version, create_system, _needed, flags, method, _time, _date, crc, csize, usize, name_len,
     extra_len, comment_len, disk, _internal, external, local_offset) = CENTRAL_HEADER.unpack_from(buf, pos)
    total = CENTRAL_HEADER.size + name_len + extra_len + comment_len
    if len(buf) - pos < total:
        return None
    start = pos + CENTRAL_HEADER.size
    name = decode_name(bytes(buf[start : start + name_len]), flags, offset)
    extra = bytes(buf[start + name_len : start + name_len + extra_len])
    wanted = [
        key
        for key, value in (("usize", usize), ("csize", csize), ("offset", local_offset), ("disk", disk))
        if value == (U16_MAX if key == "disk" else U32_MAX)
    ]
    if wanted:
        values = _zip64_values(extra, wanted, offset, name)
        if len(values) != len(wanted):
            raise MalformedRecord("central record needs a ZIP64 extra field it lacks", entry=name, offset=offset)
        usize = values.get("usize", usize)
        csize = values.get("csize", csize)
        local_offset = values.get("offset", local_offset)
        disk = values.get("disk", disk)
    if disk != 0:
        raise MalformedRecord("multi-disk archives are not supported", entry=name, offset=offset)
    record = CentralRecord(offset, name, flags, method, crc, csize, usize, local_offset, create_system, external)
    return record, total


def parse_eocd(buf: bytes | bytearray, pos: int, offset: int) -> tuple[EndOfCentralDirectory, int] | None:
    """Parse 4.3.16 at ``buf[pos:]``, comment included; ``None`` if incomplete."""
    if len(buf) - pos < EOCD.size:
        return None
    _sig, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment_len = EOCD.unpack_from(buf, pos)
    total = EOCD.size + comment_len
    if len(buf) - pos < total:
        return None
    needs_zip64 = U16_MAX in (disk, cd_disk, on_disk, entries) or U32_MAX in (cd_size, cd_offset)
    eocd = EndOfCentralDirectory(
        offset, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment_len, needs_zip64
    )
    return eocd, total


def parse_zip64_eocd(buf: bytes | bytearray, pos: int, offset: int) -> tuple[EndOfCentralDirectory, int] | None:
    """Parse 4.3.14 (its extensible data is skipped); ``None`` if incomplete."""
    if len(buf) - pos < ZIP64_EOCD.size:
        return None
    (_sig, record_size, _made_by, _needed, disk, cd_disk, on_disk, entries, cd_size, cd_offset) = (
        ZIP64_EOCD.unpack_from(buf, pos)
    )
    total = 12 + record_size
    if record_size < ZIP64_EOCD.size - 12:
        raise MalformedRecord("ZIP64 end of central directory record too short", offset=offset)
    if len(buf) - pos < total:
        return None
    record = EndOfCentralDirectory(offset, disk, cd_disk, on_disk, entries, cd_size, cd_offset, 0, False)
    return record, total


def parse_zip64_locator(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """Parse 4.3.15; returns (disk, offset of the ZIP64 EOCD record) or ``None`` if incomplete."""
    if len(buf) - pos < ZIP64_LOCATOR.size:
        return None
    _sig, disk, eocd64_offset, _total_disks = ZIP64_LOCATOR.unpack_from(buf, pos)
    return disk, eocd64_offset
