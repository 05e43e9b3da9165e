"""Local headers and data descriptors, and what every ZIP record shares, as pure functions over bytes.

Sections relied on (PKWARE APPNOTE 6.3.10):

* 4.3.7  local file header — ``PK\\3\\4``, 30 fixed bytes, then name and extra field.
* 4.3.9  data descriptor — crc, compressed size, uncompressed size after the data when flag bit 3 is set;
  the ``PK\\7\\8`` signature is optional (4.3.9.3) and sizes are 8 bytes when the entry is ZIP64 (4.3.9.2).
* 4.4.4  general purpose flags: bit 0 encrypted, bit 3 data descriptor, bit 5 compressed patched data,
  bit 6 strong encryption, bit 11 UTF-8 names, bit 13 masked local headers.
* 4.5.3  ZIP64 extended information extra field (id 0x0001): in a local header both sizes are present; in
  a central record only the fields whose 32-bit value is 0xFFFFFFFF, in the order usize, csize, offset, disk.
* 4.6.9  Info-ZIP Unicode Path extra field (id 0x7075): checked against the name in ``_names``.

The central directory and end records (4.3.12 - 4.3.16) are in ``_format_central``; which names are refused
is in ``_names``. Nothing here keeps state: callers pass a buffer and a position and get a record plus its
length back, or ``None`` when the buffer does not hold the whole record yet.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from wheelstream.errors import MalformedRecord
from wheelstream.zip._names import check_unicode_path

__all__ = [
    "CENTRAL_HEADER_SIG",
    "DATA_DESCRIPTOR_SIG",
    "EOCD_SIG",
    "FLAG_DATA_DESCRIPTOR",
    "FLAG_ENCRYPTED",
    "FLAG_MASKED_HEADERS",
    "FLAG_PATCHED",
    "FLAG_STRONG_ENCRYPTION",
    "FLAG_UTF8",
    "LOCAL_HEADER",
    "LOCAL_HEADER_SIG",
    "LocalEntry",
    "LocalHeader",
    "METHOD_DEFLATE",
    "METHOD_NAMES",
    "METHOD_STORED",
    "U16_MAX",
    "U32_MAX",
    "UNICODE_PATH_EXTRA_ID",
    "ZIP64_EOCD_SIG",
    "ZIP64_EXTRA_ID",
    "ZIP64_LOCATOR_SIG",
    "decode_name",
    "extra_fields",
    "parse_local_header",
    "zip64_values",
]

LOCAL_HEADER_SIG = b"PK\x03\x04"
CENTRAL_HEADER_SIG = b"PK\x01\x02"
DATA_DESCRIPTOR_SIG = b"PK\x07\x08"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
EOCD_SIG = b"PK\x05\x06"

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes

FLAG_ENCRYPTED = 1 << 0
FLAG_DATA_DESCRIPTOR = 1 << 3
FLAG_PATCHED = 1 << 5
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


def extra_fields(extra: bytes, offset: int, name: str) -> dict[int, bytes]:
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


def zip64_values(body: bytes, wanted: list[str], offset: int, name: str) -> dict[str, int]:
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
    fields = extra_fields(bytes(buf[start + name_len : start + name_len + extra_len]), offset, name)
    if UNICODE_PATH_EXTRA_ID in fields:
        check_unicode_path(fields[UNICODE_PATH_EXTRA_ID], name, offset)
    zip64 = ZIP64_EXTRA_ID in fields
    if zip64:
        values = zip64_values(fields[ZIP64_EXTRA_ID], ["usize", "csize"], offset, name)
        # 4.5.3: in a local header both sizes are present, but writers only mean them when the 32-bit
        # field overflowed; keep the 32-bit value otherwise.
        if usize == U32_MAX:
            usize = values["usize"]
        if csize == U32_MAX:
            csize = values["csize"]
    return LocalHeader(offset, name, flags, method, crc, csize, usize, zip64, total)
