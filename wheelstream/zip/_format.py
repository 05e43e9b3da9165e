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
* 4.6.9  Info-ZIP Unicode Path extra field (id 0x7075): version (1 byte, 1), CRC-32 of the header's name
  field (4 bytes), the name in UTF-8. See :func:`check_unicode_path` for why it must repeat the name.

Nothing here keeps state: callers pass a buffer and a position and get a record plus its length back, or
``None`` when the buffer does not hold the whole record yet.
"""

from __future__ import annotations

import re
import stat
import struct
from dataclasses import dataclass
from typing import NamedTuple

from wheelstream.errors import MalformedRecord, StrayData, UnsafePath

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
UNICODE_PATH_EXTRA_ID = 0x7075  # 4.6.9; the Unicode Comment field (0x6375, 4.6.8) names nothing: ignored
# Extra fields whose content decides what an entry is. A second copy of one is read by some readers and not
# by others (zipfile applies every copy in turn, the last wins; most others take the first): refused.
_INTERPRETED_EXTRA_IDS = frozenset((ZIP64_EXTRA_ID, UNICODE_PATH_EXTRA_ID))
U32_MAX = 0xFFFFFFFF
U16_MAX = 0xFFFF
_RECORD_SIGNATURES = (LOCAL_HEADER_SIG, CENTRAL_HEADER_SIG, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG, EOCD_SIG)


# The per-entry records are named tuples, not frozen dataclasses: a wheel has one of each per entry (12k for
# torch, and again on every resume), and a named tuple is built in ~0.8 us where a frozen dataclass takes ~3.


class LocalHeader(NamedTuple):
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


class LocalEntry(NamedTuple):
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


def decode_name(raw: bytes | bytearray, flags: int, offset: int) -> str:
    """Decode an entry name the way zipfile and pip do: UTF-8 when bit 11 is set, else CP437.

    An ASCII name reads the same in both, and decoding it as UTF-8 is done in C; Python's cp437 codec is
    Python-level code (``encodings/cp437.py``), and most wheels (torch included) leave bit 11 clear."""
    try:
        return raw.decode("utf-8") if flags & FLAG_UTF8 or raw.isascii() else raw.decode("cp437")
    except UnicodeDecodeError:
        raise MalformedRecord(
            "entry name is not valid UTF-8", entry=repr(bytes(raw))[2:-1], offset=offset
        ) from None


_DRIVE = re.compile(r"^[A-Za-z]:")

# Hardening limits on entry names (DESIGN §4 spirit: refuse what no real wheel has before it reaches a file
# system). Real wheels nest a few dozen directories at most, in names of a few hundred bytes; these limits are
# far above that and far below what breaks: NAME_MAX (255 bytes per component on every common Unix file
# system), PATH_MAX (4096 bytes for the whole staged path, cache directory included) and the recursion of tools
# that walk a tree with one frame per level (Python 3.11's ``os.walk`` and ``shutil.rmtree``). With them the
# outcome does not depend on the cache directory's own path, unless that path alone nears PATH_MAX.
MAX_NAME_BYTES = 1024
MAX_NAME_COMPONENTS = 128
MAX_COMPONENT_BYTES = 255
# A name of at most this many characters cannot break a limit above (UTF-8 spends at most 4 bytes on one).
_SHORT_NAME = MAX_COMPONENT_BYTES // 4


def check_safe_name(name: str, offset: int) -> None:
    """Reject every name that could land outside the extraction root or be read two ways (DESIGN §4), and
    names past the length limits above."""
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
        elif len(parts) > MAX_NAME_COMPONENTS:
            reason = f"entry name has {len(parts)} components, more than the {MAX_NAME_COMPONENTS} allowed"
        elif len(name) > _SHORT_NAME:
            reason = _too_long(name, parts)
    if reason is not None:
        raise UnsafePath(reason, entry=name, offset=offset)


def _too_long(name: str, parts: list[str]) -> str | None:
    """Why a long name breaks a byte limit (UTF-8, as it is written to disk), or ``None``."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"entry name is {size} bytes long, more than the {MAX_NAME_BYTES} allowed"
    for part in parts:
        if len(part) > _SHORT_NAME:
            part_size = len(part.encode("utf-8", "surrogatepass"))
            if part_size > MAX_COMPONENT_BYTES:
                return f"entry name has a {part_size}-byte component, more than the {MAX_COMPONENT_BYTES} allowed"
    return None


def check_unicode_path(body: bytes, name: str, offset: int) -> None:
    """An Info-ZIP Unicode Path extra field (4.6.9) must name exactly the header's name.

    Readers disagree about it: CPython's zipfile (3.12+, so pip there) extracts to the field's name when its
    version is 1 and its CRC matches the name field, whatever bit 11 says; uv's reader takes it only when bit 11
    is clear; older zipfile, and this parser, use the name field. A field naming another path would put a file
    in one place for one installer and elsewhere for another (or for a scanner), so it is refused — even with a
    stale CRC that today's readers ignore, since a reader that does not check the CRC would not. One that names
    the same path is harmless to every reader and accepted. A field zipfile cannot read (shorter than 5 bytes)
    or would refuse (invalid UTF-8), or one of an unknown version, is refused as malformed.
    """
    if len(body) < 5 or body[0] != 1:
        what = "too short" if len(body) < 5 else f"version {body[0]}"
        raise MalformedRecord(
            f"malformed Info-ZIP Unicode Path extra field (0x7075): {what}", entry=name, offset=offset
        )
    try:
        unicode_name = body[5:].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRecord(
            "Info-ZIP Unicode Path extra field (0x7075) is not valid UTF-8", entry=name, offset=offset
        ) from None
    if unicode_name != name:
        shown = unicode_name if len(unicode_name) <= 200 else unicode_name[:200] + "..."
        raise UnsafePath(
            f"Info-ZIP Unicode Path extra field (0x7075) names another path, {shown!r}, where readers that "
            "honour it (zipfile on Python 3.12+, uv) may install this entry",
            entry=name,
            offset=offset,
        )


def _extra_fields(extra: bytes, offset: int, name: str) -> dict[int, bytes]:
    """Split an extra field into (id -> body), rejecting a field that claims more bytes than exist.

    zipfile raises "Corrupt extra field" in that case; accepting it would let the two readers differ.
    Up to 3 trailing bytes are ignored, as zipfile ignores them. A second copy of a field we interpret is
    refused (see ``_INTERPRETED_EXTRA_IDS``); other ids keep their first copy and mean nothing to us.
    """
    fields: dict[int, bytes] = {}
    if not extra:
        return fields  # most records (torch: every central one) have none
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + size > len(extra):
            raise MalformedRecord(f"corrupt extra field {header_id:04x}", entry=name, offset=offset)
        if header_id in fields and header_id in _INTERPRETED_EXTRA_IDS:
            raise MalformedRecord(f"extra field {header_id:04x} appears twice", entry=name, offset=offset)
        fields.setdefault(header_id, extra[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return fields


_ZIP64_WIDTHS = {"usize": 8, "csize": 8, "offset": 8, "disk": 4}


def _zip64_values(body: bytes, wanted: list[str], offset: int, name: str) -> dict[str, int]:
    """Pull the values named in ``wanted`` from a ZIP64 extra field body (4.5.3), in order."""
    values: dict[str, int] = {}
    pos = 0
    for key in wanted:
        width = _ZIP64_WIDTHS[key]
        if pos + width > len(body):
            raise MalformedRecord("ZIP64 extra field too short", entry=name, offset=offset)
        values[key] = int.from_bytes(body[pos : pos + width], "little")
        pos += width
    return values


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
    name = decode_name(buf[start : start + name_len], flags, offset)
    if not extra_len:  # most local headers (torch: every one) have no extra field
        return LocalHeader(offset, name, flags, method, crc, csize, usize, False, total)
    fields = _extra_fields(bytes(buf[start + name_len : start + name_len + extra_len]), offset, name)
    if UNICODE_PATH_EXTRA_ID in fields:
        check_unicode_path(fields[UNICODE_PATH_EXTRA_ID], name, offset)
    zip64 = ZIP64_EXTRA_ID in fields
    if zip64:
        values = _zip64_values(fields[ZIP64_EXTRA_ID], ["usize", "csize"], offset, name)
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
    (
        _sig,
        _version,
        create_system,
        _needed,
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
        _extra_fields(bytes(buf[start + name_len : start + name_len + extra_len]), offset, name)
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
        values = _zip64_values(fields[ZIP64_EXTRA_ID], wanted, offset, name)
        usize = values.get("usize", usize)
        csize = values.get("csize", csize)
        local_offset = values.get("offset", local_offset)
        disk = values.get("disk", disk)
    if disk != 0:
        raise MalformedRecord("multi-disk archives are not supported", entry=name, offset=offset)
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
    needs_zip64 = U16_MAX in (disk, cd_disk, on_disk, entries) or U32_MAX in (cd_size, cd_offset)
    eocd = EndOfCentralDirectory(
        offset, disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment_len, needs_zip64
    )
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
    record = EndOfCentralDirectory(offset, disk, cd_disk, on_disk, entries, cd_size, cd_offset, 0, False)
    return record, total


def parse_zip64_locator(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """Parse 4.3.15; returns (disk, offset of the ZIP64 EOCD record) or ``None`` if incomplete."""
    if len(buf) - pos < ZIP64_LOCATOR.size:
        return None
    _sig, disk, eocd64_offset, _total_disks = ZIP64_LOCATOR.unpack_from(buf, pos)
    return disk, eocd64_offset
