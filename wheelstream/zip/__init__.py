"""Streaming, hardened ZIP reading: a sans-I/O parser and the records it reports."""

from wheelstream.zip._entries import CentralRecords, executable_files
from wheelstream.zip._entry_data import unpack_entry
from wheelstream.zip._events import (
    NEED_DATA,
    ArchiveFinished,
    CentralDirectory,
    EntryData,
    EntryDeferred,
    EntryFinished,
    EntryPacked,
    EntryStarted,
    Event,
    NeedData,
)
from wheelstream.zip._format import LocalEntry, LocalHeader
from wheelstream.zip._format_central import CentralRecord
from wheelstream.zip._inflate import BACKEND as INFLATE_BACKEND
from wheelstream.zip._parser import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE, ZipStreamParser
from wheelstream.zip._tail import find_central_directory, read_central_directory

__all__ = [
    "ArchiveFinished",
    "CentralDirectory",
    "CentralRecord",
    "CentralRecords",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_UNPACKED_SIZE",
    "EntryData",
    "EntryDeferred",
    "EntryFinished",
    "EntryPacked",
    "EntryStarted",
    "Event",
    "INFLATE_BACKEND",
    "LocalEntry",
    "LocalHeader",
    "NEED_DATA",
    "NeedData",
    "ZipStreamParser",
    "executable_files",
    "find_central_directory",
    "read_central_directory",
    "unpack_entry",
]
