"""Where an entry starts: its local header is checked and counted, then it is opened, deferred or packed.

Sections relied on (PKWARE APPNOTE 6.3.10):

* 4.3.7  local file header — everything known about an entry before its data.
* 4.4.4  general purpose flags: bits 0, 6 and 13 (encryption of any kind) are refused; bit 3 puts the crc
  and sizes in a data descriptor after the data.
* 4.4.5  compression method: 0 (stored) and 8 (deflate) only.
* 4.4.8 / 4.4.9 sizes: a stored entry's two must agree, and a directory's must be 0.

Hardening (DESIGN §4) happens here for what the local header is the first to tell: the name, the method, a
duplicate, the entry-count and unpacked-size budgets. The RECORD state hands a local header to
:func:`read_local_header`, a function of the parser (see "Readers" in ``_parser``'s docstring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wheelstream.errors import (
    DuplicateEntry,
    MalformedRecord,
    SizeMismatch,
    TruncatedArchive,
    UnpackedLimitExceeded,
    UnsupportedEntry,
)
from wheelstream.zip import _format as fmt
from wheelstream.zip._entries import name_key
from wheelstream.zip._entry_data import OpenEntry
from wheelstream.zip._events import EntryDeferred, EntryPacked, EntryStarted, Event
from wheelstream.zip._format import LocalHeader
from wheelstream.zip._names import check_safe_name
from wheelstream.zip._state import State

if TYPE_CHECKING:
    from wheelstream.zip._parser import ZipStreamParser

__all__ = ["read_local_header"]

_ENCRYPTION_FLAGS = fmt.FLAG_ENCRYPTED | fmt.FLAG_STRONG_ENCRYPTION | fmt.FLAG_MASKED_HEADERS
_METHODS = (fmt.METHOD_STORED, fmt.METHOD_DEFLATE)


def read_local_header(parser: ZipStreamParser) -> Event | None:
    header = fmt.parse_local_header(parser._buf, parser._pos, parser._base + parser._pos)
    if header is None:
        if parser._eof:
            raise parser._truncated("a local file header")
        return None
    _check_local_header(parser, header)
    pack_up_to = parser._pack_up_to
    if (
        header.compressed_size <= pack_up_to
        and header.uncompressed_size <= pack_up_to
        and pack_up_to > 0
        and not header.has_data_descriptor
        and not header.is_dir
    ):
        return _read_packed(parser, header)
    parser._pos += header.header_length
    parser._names[name_key(header.name)] = None
    if header.has_data_descriptor:
        known = parser._compressed_sizes.get(header.offset)
        if header.method == fmt.METHOD_STORED and known is None:
            parser._defer(header)
            return EntryDeferred(header)
    else:
        known = header.compressed_size
        parser._reserve_unpacked(header, header.uncompressed_size)
    parser._entry = OpenEntry(header, known)
    parser._state = State.ENTRY_DATA
    return EntryStarted(header)


def _read_packed(parser: ZipStreamParser, header: LocalHeader) -> Event | None:
    """A whole small entry, once every compressed byte is buffered; finished, but not inflated here."""
    start = parser._pos + header.header_length
    end = start + header.compressed_size
    if end > len(parser._buf):
        if parser._eof:
            raise TruncatedArchive(
                "input ended inside entry data", entry=header.name, offset=parser._base + len(parser._buf)
            )
        return None
    parser._reserve_unpacked(header, header.uncompressed_size)
    data = parser._copy(start, end)
    parser._pos = end
    parser._names[name_key(header.name)] = None
    parser._record_finished(*header[:7])  # LocalEntry's fields lead LocalHeader's
    return EntryPacked(header, data, parser._base + end)


def _check_local_header(parser: ZipStreamParser, header: LocalHeader) -> None:
    name, offset = header.name, header.offset
    check_safe_name(name, offset)
    if header.flags & _ENCRYPTION_FLAGS:
        raise UnsupportedEntry("encrypted entries are not supported", entry=name, offset=offset)
    if header.flags & fmt.FLAG_PATCHED:  # 4.4.4 bit 5: the data patches another file's (zipfile refuses it)
        raise UnsupportedEntry(
            "compressed patched data (flag bit 5) is not supported", entry=name, offset=offset
        )
    if header.method not in _METHODS:
        method = fmt.METHOD_NAMES.get(header.method, f"method {header.method}")
        raise UnsupportedEntry(f"compression {method} is not supported", entry=name, offset=offset)
    if name_key(name) in parser._names:
        raise DuplicateEntry("two entries share this name", entry=name, offset=offset)
    if len(parser._names) >= parser._max_entries:  # every entry started so far, prior ones included
        raise UnpackedLimitExceeded(
            f"archive has more than the {parser._max_entries}-entry limit", entry=name, offset=offset
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
