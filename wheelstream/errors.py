"""Every error wheelstream raises on purpose.

The tree (each leaf is raised somewhere; catch a branch, not a leaf, unless you care)::

    WheelstreamError                    root; ``exit_code`` says what the CLI exits with
    ├── ArchiveError                    the bytes are not a wheel we accept (exit 1)
    │   ├── TruncatedArchive            input ended before the end of central directory
    │   ├── MalformedRecord             a signature or header field is impossible
    │   ├── UnsupportedEntry            compression method, encryption, ... we do not support
    │   ├── HeaderMismatch              local header and central directory disagree
    │   ├── EntrySetMismatch            an entry in one of local headers / central directory only
    │   ├── DuplicateEntry              two entries share a name (also ``a/b`` vs ``a\\b``)
    │   ├── OffsetMismatch              CD / ZIP64 locator offset is not where the record really is
    │   ├── StrayData                   bytes before the first header, between records or after EOCD
    │   ├── CorruptData                 an entry's compressed bytes are not a valid deflate stream
    │   ├── ChecksumMismatch            CRC-32 of the inflated data differs from the declared one
    │   ├── SizeMismatch                inflated/compressed size differs from the declared one (bomb guard)
    │   ├── UnpackedLimitExceeded       the whole archive inflates past ``max_unpacked_size``
    │   ├── UnsafePath                  absolute, ``..``, drive letter, NUL, backslash, escapes the root
    │   └── SymlinkEntry                an entry whose mode says it is a symlink
    ├── WheelError                      a valid zip, but not an installable wheel (exit 1)
    │   ├── InvalidWheelFilename
    │   ├── IncompatibleWheel           tags do not match the target interpreter
    │   ├── WheelMetadataError          WHEEL / dist-info problems
    │   ├── RecordError                 RECORD disagrees with the files (missing, extra, hash, size)
    │   └── InstallConflict             target already has it and we may not replace it
    ├── HashMismatch                    whole-file sha256 differs from the expected one (exit 1)
    ├── NetworkError                    transport failed for good (exit 3; the partial is kept)
    │   ├── RetriesExhausted            too many attempts without progress
    │   ├── ResourceGone                404/410/416: the URL no longer serves this file
    │   └── HTTPStatusError             any other status we cannot act on
    ├── UsageError                      the caller asked for something impossible (exit 2)
    ├── ExternallyManaged               PEP 668: the interpreter's environment is its distributor's (exit 1)
    ├── DiskError                       the cache could not be written: disk full, permissions, I/O (exit 1)
    ├── WorkerDied                      the worker process of a download was killed (exit 1)
    └── Interrupted                     Ctrl-C / SIGTERM after a clean checkpoint (exit 130)

Messages are one line: ``<wheel>: <cause> (entry <name>, offset <n>)``. The parser does not know the wheel's
name; :meth:`WheelstreamError.with_wheel` lets the layer that does add it without losing the type.

Most of a message is text the wheel chose (its file name, entry names, RECORD paths, entry-point names, metadata
values), so a message is also made *safe to print*: :func:`one_line` turns every run of whitespace into one
space and every other character a terminal acts on into a visible escape, for library users as for the CLI.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "ChecksumMismatch",
    "CorruptData",
    "DiskError",
    "DuplicateEntry",
    "EntrySetMismatch",
    "ExternallyManaged",
    "HTTPStatusError",
    "HashMismatch",
    "HeaderMismatch",
    "IncompatibleWheel",
    "InstallConflict",
    "Interrupted",
    "InvalidWheelFilename",
    "MalformedRecord",
    "NetworkError",
    "OffsetMismatch",
    "RecordError",
    "ResourceGone",
    "RetriesExhausted",
    "SizeMismatch",
    "StrayData",
    "SymlinkEntry",
    "TruncatedArchive",
    "UnpackedLimitExceeded",
    "UnsafePath",
    "UnsupportedEntry",
    "UsageError",
    "WheelError",
    "WheelMetadataError",
    "WheelstreamError",
    "WorkerDied",
]  # classes only (tests/test_api.py walks it); :func:`one_line` is imported by name

# What a terminal acts on rather than shows, or shows as nothing: C0 controls, DEL, C1 controls (ESC ``[`` and
# CSI start escape sequences that recolour, move the cursor, retitle the window or write hyperlinks), the
# bidirectional controls that reorder what follows (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069: "Trojan
# Source"), invisible format characters (U+00AD, U+200B), lone surrogates (a file name decoded with
# ``surrogateescape``, which no UTF-8 stream can encode), private-use and unassigned code points. That is
# every character Python's ``str.isprintable`` refuses, and ``repr`` escapes: the same rule, the same spelling.


def _escape_char(char: str) -> str:
    """``char`` as ``repr`` spells it inside a string (``\x1b``, ``\u202e``, ``\U000e0001``), without quotes."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: str) -> str:
    """``text`` as one line that prints as it reads: whitespace runs (newlines included) become one space, and
    every character that is not printable becomes an escape. Idempotent: an escape is plain text."""
    line = " ".join(text.split())
    if line.isprintable():
        return line
    return "".join(char if char.isprintable() else _escape_char(char) for char in line)


_SHOWN_LIMIT = (
    100  # characters of a wheel- or server-chosen value quoted in a message (a 1 MB "name" stays readable)
)


def cut(value: str, limit: int = _SHOWN_LIMIT) -> str:
    """A value someone else chose, cut to ``limit`` characters for a message (a RECORD field may be 128 KiB)."""
    return value if len(value) <= limit else value[:limit] + "…"


_ENTRY_LIMIT = 240  # an entry name in a message: deep paths stay whole, a 40 KB one does not
_MESSAGE_LIMIT = 1000


def _elided(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters in the middle: a path's start and its file name, a message's start
    and its ``(entry …, offset …)`` both stay."""
    if len(text) <= limit:
        return text
    tail = limit // 3
    return text[: limit - tail - 1] + "…" + text[-tail:]


def shown(value: str, limit: int = _SHOWN_LIMIT) -> str:
    """``repr`` of a value someone else chose, for a message, cut to ``limit`` characters first."""
    return repr(cut(value, limit))


class WheelstreamError(Exception):
    """Root of every error wheelstream raises deliberately."""

    exit_code: int = 1

    def __init__(
        self,
        cause: str,
        *,
        wheel: str | None = None,
        entry: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.cause = cause
        self.wheel = wheel
        self.entry = entry
        self.offset = offset
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.entry is not None:
            where.append(f"entry {_elided(self.entry, _ENTRY_LIMIT)!r}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        text = self.cause + (f" ({', '.join(where)})" if where else "")
        # Always one line and safe for a terminal, whatever the wheel's name, the cause or the entry carried;
        # and of a length a terminal can show, however long the name or the URL a wheel or an index chose.
        return _elided(one_line(f"{self.wheel}: {text}" if self.wheel else text), _MESSAGE_LIMIT)

    def with_wheel(self, wheel: str) -> WheelstreamError:
        """Name the wheel once the layer that knows it sees the error; keeps type and traceback."""
        if self.wheel is None:
            self.wheel = wheel
            self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class ArchiveError(WheelstreamError):
    """The bytes are not a zip archive wheelstream accepts."""


class TruncatedArchive(ArchiveError):
    """The input ended before the end-of-central-directory record."""


class MalformedRecord(ArchiveError):
    """A signature, header length or field value is impossible."""


class UnsupportedEntry(ArchiveError):
    """An entry uses a compression method or feature we do not support (bzip2, lzma, encryption)."""


class HeaderMismatch(ArchiveError):
    """A local file header and its central directory record disagree."""


class EntrySetMismatch(ArchiveError):
    """An entry appears among the local headers or the central directory but not both."""


class DuplicateEntry(ArchiveError):
    """Two entries share one name, or differ only by ``/`` versus ``\\``."""


class OffsetMismatch(ArchiveError):
    """A recorded offset (central directory, ZIP64 locator, local header) is not where the record is."""


class StrayData(ArchiveError):
    """Bytes where the format allows none: before the first header, between records, after the EOCD."""


class CorruptData(ArchiveError):
    """An entry's compressed bytes are not a valid deflate stream (the inflater gave up on them)."""


class ChecksumMismatch(ArchiveError):
    """CRC-32 of an entry's inflated bytes differs from the declared CRC."""


class SizeMismatch(ArchiveError):
    """An entry inflates (or is stored) to another size than declared; raised the moment it overshoots."""


class UnpackedLimitExceeded(ArchiveError):
    """The archive's entries add up to more than the configured unpacked-size limit."""


class UnsafePath(ArchiveError):
    """An entry name that is absolute, climbs with ``..``, has a drive letter, NUL or backslash."""


class SymlinkEntry(ArchiveError):
    """An entry whose external attributes mark it as a symbolic link."""


class WheelError(WheelstreamError):
    """A well-formed zip that is not an installable wheel."""


class InvalidWheelFilename(WheelError):
    """The file name does not follow the wheel naming convention (PEP 427)."""


class IncompatibleWheel(WheelError):
    """The wheel's tags, or its ``Requires-Python``, do not admit the target interpreter."""


class WheelMetadataError(WheelError):
    """The ``.dist-info`` directory or its WHEEL file is missing or invalid."""


class RecordError(WheelError):
    """RECORD disagrees with the archive: missing, extra or mismatching files."""


class InstallConflict(WheelError):
    """The target already holds an item and replacing it was not allowed."""


class HashMismatch(WheelstreamError):
    """The whole-file sha256 differs from the expected hash."""


class NetworkError(WheelstreamError):
    """The transport gave up; the partial download is kept for the next attempt."""

    exit_code = 3


class RetriesExhausted(NetworkError):
    """Too many consecutive attempts made no progress."""


class ResourceGone(NetworkError):
    """The server says the file is gone or no longer the one we were downloading."""


class HTTPStatusError(NetworkError):
    """The server answered with a status the decision table cannot act on."""


class UsageError(WheelstreamError):
    """The caller asked for something impossible or contradictory."""

    exit_code = 2


class ExternallyManaged(WheelstreamError):
    """The interpreter's environment is marked ``EXTERNALLY-MANAGED`` (PEP 668): refused, as pip refuses it,
    unless the caller passes ``break_system_packages``."""


class DiskError(WheelstreamError):
    """Writing the download's partial file, journal or staged files failed (``ENOSPC``, ``EACCES``, ``EIO``).
    The last checkpoint on disk is kept (the same command resumes there once the disk is fixed); when there
    is none, the partial and staged files are removed — on a full disk they are space nothing can use."""


class Interrupted(WheelstreamError):
    """Ctrl-C or SIGTERM arrived; a checkpoint was written first. ``installed`` is True when it came after
    the install had already finished (while its temporary directory was removed): nothing is left to do."""

    exit_code = 130
    installed = False

    @classmethod
    def after_install(cls, target: object, *, uninstall: bool = False) -> Interrupted:
        """The interrupt that came once everything was in ``target`` (``uninstall``: once everything asked
        was out of it): nothing is left to do."""
        if uninstall:
            error = cls(f"interrupted after the uninstall finished: nothing is left to do in {target}")
        else:
            error = cls(f"interrupted after the install finished: everything is in {target}")
        error.installed = True
        return error


class WorkerDied(WheelstreamError):
    """The worker process downloading a wheel died (a signal, the OOM killer); its last checkpoint is kept."""
