"""Events the streaming parser emits; every one carries the absolute stream offset it is about.

Offsets are what make checkpoints exact: a consumer that has handled every event up to and including an
``EntryFinished`` knows that the archive up to ``end_offset`` is done with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wheelstream.zip._format import LocalEntry, LocalHeader
from wheelstream.zip._format_central import CentralRecord

__all__ = [
    "NEED_DATA",
    "ArchiveFinished",
    "CentralDirectory",
    "EntryData",
    "EntryDeferred",
    "EntryFinished",
    "EntryPacked",
    "EntryStarted",
    "Event",
    "NeedData",
]


class Event:
    """Base of all parser events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class EntryStarted(Event):
    """A local header was read; its data follows. ``header.offset`` is where the header begins."""

    header: LocalHeader


@dataclass(frozen=True, slots=True)
class EntryData(Event):
    """A chunk of an entry's *inflated* content. ``offset`` is the stream offset of the input consumed so far."""

    name: str
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class EntryFinished(Event):
    """The entry's data (and data descriptor) ended; CRC and sizes were verified against what was declared."""

    entry: LocalEntry
    end_offset: int  # where the next record begins


@dataclass(frozen=True, slots=True)
class EntryPacked(Event):
    """A whole small entry, still compressed: only from a parser built with ``pack_up_to`` (see there).

    It stands for ``EntryStarted`` + ``EntryData``... + ``EntryFinished``, except that nothing was inflated or
    verified yet: :func:`~wheelstream.zip.unpack_entry` does both, with the same checks and errors, on
    whichever thread the consumer likes. The parser counts the entry as finished (its checkpoint moves past
    it), so a consumer must unpack every ``EntryPacked`` before it records a checkpoint.
    """

    header: LocalHeader
    data: bytes  # the entry's compressed bytes, exactly ``header.compressed_size`` of them
    end_offset: int  # where the next record begins


@dataclass(frozen=True, slots=True)
class EntryDeferred(Event):
    """A stored entry with a data descriptor: its end cannot be found while streaming (DESIGN §4).

    The parser stops here. The consumer keeps downloading, then reads the central directory from the finished
    file and restarts a parser at ``header.offset`` with ``compressed_sizes`` taken from it.
    """

    header: LocalHeader


@dataclass(frozen=True, slots=True)
class CentralDirectory(Event):
    """The central directory and end records were read and cross-checked against every local entry.

    ``records`` is a read-only sequence in directory order (built from the parser's compact rows as it is
    read; it compares equal to a tuple of the same records)."""

    records: Sequence[CentralRecord]
    offset: int


@dataclass(frozen=True, slots=True)
class ArchiveFinished(Event):
    """End of input arrived right after the end of central directory record: the archive is complete."""

    size: int


class NeedData:
    """Sentinel type: the parser needs more bytes (or the end-of-input marker) to produce an event."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
