"""Reading one entry's data: inflate under a cap, count, checksum, then check it against what was declared.

Sections relied on (PKWARE APPNOTE 6.3.10):

* 4.3.8  file data — the entry's bytes follow its local header, stored or deflated (4.4.5, methods 0 and 8).
* 4.3.9  data descriptor — crc, compressed size, uncompressed size after the data when flag bit 3 is set;
  the ``PK\\7\\8`` signature is optional (4.3.9.3) and sizes are 8 bytes when the entry is ZIP64 (4.3.9.2).
* 4.4.7  CRC-32, 4.4.8 compressed size, 4.4.9 uncompressed size — from the local header, or from the data
  descriptor when bit 3 is set; what came out must match them exactly.

Hardening (DESIGN §4): inflation stops one byte past what may legally come out — the declared size, or,
when the sizes come after the data, what is left of the unpacked-size budget — so a zip bomb is caught
before it costs more than an honest entry would. The ENTRY_DATA and DATA_DESCRIPTOR readers are functions
of the parser (see "Readers" in ``_parser``'s docstring); :func:`unpack_entry` applies the same checks,
with the same errors, to an entry handed out whole (``EntryPacked``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wheelstream.errors import ChecksumMismatch, CorruptData, MalformedRecord, SizeMismatch
from wheelstream.zip import _format as fmt
from wheelstream.zip._events import EntryData, EntryFinished, EntryPacked, Event
from wheelstream.zip._format import LocalEntry, LocalHeader
from wheelstream.zip._inflate import INFLATE_ERRORS, Inflater, crc32, new_inflater
from wheelstream.zip._state import State

if TYPE_CHECKING:
    from wheelstream.zip._parser import ZipStreamParser

__all__ = ["OpenEntry", "read_data_descriptor", "read_entry_data", "unpack_entry"]

_MAX_OUTPUT_PER_EVENT = 1 << 20  # bounds memory per EntryData whatever the compression ratio
_MAX_INPUT_PER_EVENT = 1 << 20
_MAX_INFLATE_INPUT = 256 << 10  # deflate rarely beats 4:1 on wheels: ~1 MiB out per call


class OpenEntry:
    """Counters for the entry whose data is being read."""

    __slots__ = ("compressed_size", "consumed", "crc", "header", "inflater", "produced")

    def __init__(self, header: LocalHeader, compressed_size: int | None) -> None:
        self.header = header
        self.compressed_size = compressed_size  # None: unknown until the deflate stream ends
        self.consumed = 0
        self.produced = 0
        self.crc = 0
        self.inflater: Inflater | None = new_inflater() if header.method == fmt.METHOD_DEFLATE else None


# -- ENTRY_DATA ---------------------------------------------------------------------------------------


def read_entry_data(parser: ZipStreamParser) -> Event | None:
    entry = parser._entry
    assert entry is not None
    while True:
        if entry.inflater is not None and entry.inflater.eof:
            return _end_of_data(parser, entry)  # never feed a finished inflater: it hoards unused_data
        if entry.compressed_size is not None:
            remaining = entry.compressed_size - entry.consumed
            if remaining == 0:
                if entry.inflater is not None:
                    out = _drain(parser, entry)
                    if out:
                        return _entry_data(parser, entry, out)
                return _end_of_data(parser, entry)
            take = min(remaining, parser._available(), _MAX_INPUT_PER_EVENT)
        else:
            take = min(parser._available(), _MAX_INPUT_PER_EVENT)
        if take == 0:
            if parser._eof:
                raise parser._truncated("entry data")
            return None
        inflater = entry.inflater
        if inflater is None:
            out, used = parser._copy(parser._pos, parser._pos + take), take
        else:
            # A view, not a copy: the buffer is never resized while it is exported (the view is released
            # before this function returns). Input is capped near what fits the output cap, so the
            # inflater does not copy a large unconsumed tail on every call.
            take = min(take, _MAX_INFLATE_INPUT)
            with memoryview(parser._buf) as whole, whole[parser._pos : parser._pos + take] as view:
                out = _inflate(parser, entry, inflater, view)
            used = take - len(inflater.unconsumed_tail) - len(inflater.unused_data)
        parser._pos += used
        entry.consumed += used
        if out:
            return _entry_data(parser, entry, out)


def _drain(parser: ZipStreamParser, entry: OpenEntry) -> bytes:
    """Output the inflater still holds once every compressed byte is in: isal takes input ahead of the output
    cap, so a run that inflates well (zeros) can end with the input used up and up to a cap of output to come."""
    assert entry.inflater is not None
    return _inflate(parser, entry, entry.inflater, b"")


def _inflate(
    parser: ZipStreamParser, entry: OpenEntry, inflater: Inflater, data: bytes | memoryview
) -> bytes:
    """``data`` through the entry's inflater, under the output cap; bytes that are not deflate name the entry."""
    try:
        return inflater.decompress(data, _output_cap(parser, entry))
    except INFLATE_ERRORS as exc:
        # where the entry's data starts, as for a packed entry: where the bad bytes were met depends on how
        # the stream was cut into reads, and the same wheel must get the same message every time
        raise _corrupt(entry.header, exc, entry.header.offset + entry.header.header_length) from None


def _entry_data(parser: ZipStreamParser, entry: OpenEntry, out: bytes) -> EntryData:
    _count_output(parser, entry, len(out))
    entry.crc = crc32(out, entry.crc)
    return EntryData(entry.header.name, out, parser.offset)


def _output_cap(parser: ZipStreamParser, entry: OpenEntry) -> int:
    """Inflate at most one byte past what may legally come out: the zip-bomb guard (DESIGN §4)."""
    if entry.header.has_data_descriptor:
        allowed = parser._max_unpacked - parser._unpacked_total
    else:
        allowed = entry.header.uncompressed_size - entry.produced  # already counted in the total
    return max(1, min(_MAX_OUTPUT_PER_EVENT, allowed + 1))


def _count_output(parser: ZipStreamParser, entry: OpenEntry, count: int) -> None:
    header = entry.header
    if header.is_dir:
        raise MalformedRecord("directory entry carries data", entry=header.name, offset=header.offset)
    entry.produced += count
    if not header.has_data_descriptor:
        if entry.produced > header.uncompressed_size:
            raise _inflates_past(header, header.offset)  # (not where it did: that depends on the reads)
    else:
        parser._reserve_unpacked(header, count)


def _end_of_data(parser: ZipStreamParser, entry: OpenEntry) -> Event | None:
    header = entry.header
    if entry.inflater is not None and not entry.inflater.eof:
        if entry.compressed_size is not None and entry.consumed >= entry.compressed_size:
            raise _continues_past(header, parser.offset)
        return None
    if entry.compressed_size is not None and entry.consumed != entry.compressed_size:
        raise _ends_early(header, entry.consumed, entry.compressed_size, parser.offset)
    if header.has_data_descriptor:
        parser._state = State.DATA_DESCRIPTOR
        return read_data_descriptor(parser)
    _verify_entry(entry, header.crc, header.compressed_size, header.uncompressed_size)
    return _finish_entry(parser, entry)


def _verify_entry(entry: OpenEntry, crc: int, compressed: int, uncompressed: int) -> None:
    _verify(entry.header, entry.produced, entry.consumed, entry.crc, crc, compressed, uncompressed)


def _finish_entry(parser: ZipStreamParser, entry: OpenEntry) -> Event:
    header = entry.header
    done = LocalEntry(
        header.offset, header.name, header.flags, header.method, entry.crc, entry.consumed, entry.produced
    )
    parser._record_finished(*done)
    parser._entry = None
    parser._state = State.RECORD
    return EntryFinished(done, parser.offset)


# -- DATA_DESCRIPTOR (4.3.9) --------------------------------------------------------------------------


def read_data_descriptor(parser: ZipStreamParser) -> Event | None:
    entry = parser._entry
    assert entry is not None
    signed = parser._available() >= 4 and bytes(parser._buf[parser._pos : parser._pos + 4]) == (
        fmt.DATA_DESCRIPTOR_SIG
    )
    # 4.3.9.3: the signature is optional, so bytes that look like it are it or the CRC-32. When the CRC-32 is
    # 0x08074b50, both readings are tried (signed first); the one that matches what was read is taken.
    starts = [parser._pos + 4] if signed else [parser._pos]
    if signed and entry.crc == int.from_bytes(fmt.DATA_DESCRIPTOR_SIG, "little"):
        starts.append(parser._pos)
    size_widths = (8, 4) if entry.header.zip64 else (4, 8)
    longest = (starts[0] - parser._pos) + 4 + 2 * max(size_widths)
    if parser._available() < longest and not parser._eof:
        return None
    candidates = []
    for start in starts:
        for width in size_widths:
            end = start + 4 + 2 * width
            if end > len(parser._buf):
                continue
            crc = int.from_bytes(parser._buf[start : start + 4], "little")
            compressed = int.from_bytes(parser._buf[start + 4 : start + 4 + width], "little")
            uncompressed = int.from_bytes(parser._buf[start + 4 + width : end], "little")
            candidates.append((end, crc, compressed, uncompressed))
    if not candidates:
        raise parser._truncated("a data descriptor")
    for end, crc, compressed, uncompressed in candidates:  # noqa: B007 - the match is read after the loop
        if (crc, compressed, uncompressed) == (entry.crc, entry.consumed, entry.produced):
            break
    else:
        _no_descriptor_there(parser)
        end, crc, compressed, uncompressed = candidates[0]
    _verify_entry(entry, crc, compressed, uncompressed)
    parser._pos = end
    return _finish_entry(parser, entry)


def _no_descriptor_there(parser: ZipStreamParser) -> None:
    """A local header or a central directory record where the descriptor should be: the local header's flag
    promised one that is not there (an unsigned descriptor starting with those bytes would have matched what was
    read: its CRC-32 field is the entry's). Said as such, not as the nonsense sizes the record's bytes make."""
    entry = parser._entry
    assert entry is not None
    found = bytes(parser._buf[parser._pos : parser._pos + 4])
    what = {fmt.LOCAL_HEADER_SIG: "a local header", fmt.CENTRAL_HEADER_SIG: "a central directory record"}
    if found in what:
        raise MalformedRecord(
            f"no data descriptor after the entry's data, though its local header's flags say one follows: "
            f"{what[found]} starts there",
            entry=entry.header.name,
            offset=parser.offset,
        )


# -- packed entries, and the checks both paths share --------------------------------------------------


def unpack_entry(packed: EntryPacked) -> bytes:
    """Inflate and verify a packed entry (see "Packed entries" in ``_parser``'s docstring): bytes in, bytes
    out, so any thread may run it. It raises what the streaming path raises for the same bytes — the output
    is capped one byte past the declared size (the zip-bomb guard), the deflate stream must end exactly at
    the declared compressed size, and the size and CRC-32 must match the local header."""
    header, data = packed.header, packed.data
    if header.method == fmt.METHOD_STORED:
        out, consumed = data, len(data)  # the header check made stored sizes agree
    else:
        inflater = new_inflater()
        try:
            out = inflater.decompress(data, header.uncompressed_size + 1)
        except INFLATE_ERRORS as exc:
            raise _corrupt(
                header, exc, header.offset + header.header_length
            ) from None  # where the data starts
        if len(out) > header.uncompressed_size:
            raise _inflates_past(header, header.offset)
        consumed = len(data) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
        if not inflater.eof:
            raise _continues_past(header, packed.end_offset)
        if consumed != header.compressed_size:
            raise _ends_early(header, consumed, header.compressed_size, header.offset)
    _verify(
        header, len(out), consumed, crc32(out), header.crc, header.compressed_size, header.uncompressed_size
    )
    return out


def _verify(
    header: LocalHeader,
    produced: int,
    consumed: int,
    crc: int,
    declared_crc: int,
    compressed: int,
    uncompressed: int,
) -> None:
    """What came out of an entry against what was declared (local header or data descriptor)."""
    name, offset = header.name, header.offset
    if produced != uncompressed:
        raise SizeMismatch(
            f"entry unpacks to {produced} bytes, {uncompressed} declared", entry=name, offset=offset
        )
    if consumed != compressed:
        raise SizeMismatch(
            f"entry has {consumed} compressed bytes, {compressed} declared", entry=name, offset=offset
        )
    if crc != declared_crc:
        raise ChecksumMismatch(f"CRC-32 is {crc:08x}, {declared_crc:08x} declared", entry=name, offset=offset)


def _corrupt(header: LocalHeader, exc: Exception, offset: int) -> CorruptData:
    return CorruptData(f"compressed data is not valid deflate ({exc})", entry=header.name, offset=offset)


def _inflates_past(header: LocalHeader, offset: int) -> SizeMismatch:
    return SizeMismatch(
        f"entry inflates past its declared {header.uncompressed_size} bytes", entry=header.name, offset=offset
    )


def _continues_past(header: LocalHeader, offset: int) -> SizeMismatch:
    return SizeMismatch(
        "deflate stream continues past the declared compressed size", entry=header.name, offset=offset
    )


def _ends_early(header: LocalHeader, consumed: int, compressed: int, offset: int) -> SizeMismatch:
    return SizeMismatch(
        f"deflate stream ends after {consumed} of {compressed} compressed bytes",
        entry=header.name,
        offset=offset,
    )
