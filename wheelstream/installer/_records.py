"""RECORD: parse it, check it against the digests taken while extracting, write the installed one.

Verification (PEP 376 / PEP 427; pip does none of it): every RECORD row names a staged file whose hash and size
match; every staged file is listed, once. Exempt from both: the RECORD itself and its signatures ``RECORD.jws`` /
``RECORD.p7s`` (signed after RECORD was written, so never listed and never hashed). Every problem is collected
and reported in one :class:`~wheelstream.errors.RecordError`, like pypa/installer's ``records.py`` does.

Hashes: sha256 (what every wheel builder writes) is compared with the digest taken while extracting; a RECORD
may also use another fixed-length algorithm of the sha2 / sha3 / blake2 families (:data:`ACCEPTED_ALGORITHMS`,
the file is hashed again). Everything else is refused: md5, sha1 and sha224 prove too little (pypa/installer
refuses them too), ``shake_*`` has no fixed digest length (``hexdigest()`` wants one), and a name hashlib only
knows through OpenSSL differs from one machine to the next.

Paths written with ``\\`` (a RECORD made on Windows, as some real wheels have it) are read with ``/``, as
pypa/installer reads them; no entry name holds a backslash (the zip parser refuses one), so this never makes
a row name another file. The installed RECORD spells them with ``/``.

Directory rows (``pkg/``, no hash): pip copies them into the installed RECORD as they are, and so do we — but
only a *safe* one, by the rule the zip parser applies to entry names (relative, no ``..`` / ``.`` / empty
component, no backslash, drive letter or NUL). A RECORD naming ``../../etc/`` or ``/`` is refused: the
installed RECORD is what uninstallers and ``importlib.metadata`` walk, and it must never point outside the
target. Every *file* row must name a staged file, which already passed that rule.

Memory: a wheel may have a hundred thousand files, so nothing here keeps a row per file. RECORD is read from
disk a block at a time (once to check it is UTF-8, once to parse it) and checked row by row as it is parsed; a
row spelt the way the staged file's digest spells it (``sha256=<digest>,<size>``: what wheel builders write)
is implied by the staged file afterwards, and only the other rows are kept (:class:`VerifiedRecord`). While
the rows follow the staged files' order (the archive's: builders write both in one pass), being listed once
is checked by walking that order; a row out of it switches to a set of the listed paths.

Writing follows pip's ``get_csv_rows_for_installed`` + ``_normalized_outrows``
(``_internal/operations/install/wheel.py``): rows keep the archive's hash and size strings unless the file was
changed on the way in (``#!python`` scripts), generated files are appended with fresh hashes, files installed
but never listed get ``path,,``, and the whole is sorted and written as :mod:`csv` writes it (``\\r\\n`` line
ends; joined directly when no field needs quoting — the same bytes). :func:`record_blocks` encodes sorted rows
a block at a time, so the installer writes the file without holding it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import functools
import hashlib
import io
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from .._staged import StagedFile, StagedWheel
from ..errors import RecordError, UnsafePath, cut, shown
from ..zip._names import check_safe_name

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "RecordRow",
    "VerifiedRecord",
    "parse_record",
    "read_record",
    "record_blocks",
    "record_bytes",
    "record_hash",
]

#: Hash names a RECORD row may use: fixed-length, in every hashlib (``algorithms_guaranteed``), not weak.
ACCEPTED_ALGORITHMS = frozenset(
    {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"}
)


class RecordRow(NamedTuple):
    """One RECORD line, fields kept as the strings they were (pip copies them verbatim)."""

    path: str
    hash: str
    size: str


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_NEW_ROW = tuple.__new__  # a named tuple from a list without the generated ``__new__``'s argument unpacking
# The characters that make csv's default dialect (QUOTE_MINIMAL, "\r\n") quote a field, and NUL, which Python
# 3.10's writer refuses (cpython#97503): a field holding any of them goes through csv itself. The fields are
# joined with a character that is none of these.
_CSV_SPECIAL = (",", '"', "\r", "\n", "\0")
_FIELD_SEPARATOR = "\x1f"
_READ_BLOCK = 1 << 16  # bytes of RECORD read at a time
_ROW_BLOCK = 1024  # rows parsed, or encoded, at a time


# Asked twice per file (RECORD check, then the installed RECORD). Bounded well below a count bomb's entries:
# a wheel of more files than this recomputes the rest (about a microsecond each) instead of keeping them all.
@functools.lru_cache(maxsize=1 << 14)
def record_hash(sha256_hex: str) -> str:
    """``sha256=<urlsafe b64, unpadded>``: the RECORD spelling of a hex digest."""
    encoded = binascii.b2a_base64(bytes.fromhex(sha256_hex), newline=False).translate(_URLSAFE)
    return "sha256=" + encoded.decode("ascii").rstrip("=")


def _decode_error(exc: UnicodeDecodeError, base: int) -> str:
    """``str(exc)`` as a decode of the whole file says it: ``exc`` came from a block starting at ``base``."""
    start, end = base + exc.start, base + exc.end
    if exc.start < len(exc.object) and exc.end == exc.start + 1:
        return (
            f"'{exc.encoding}' codec can't decode byte 0x{exc.object[exc.start]:02x} in position {start}: "
            f"{exc.reason}"
        )
    return f"'{exc.encoding}' codec can't decode bytes in position {start}-{end - 1}: {exc.reason}"


def _text_blocks(path: Path, filename: str, member: str) -> Iterator[str]:
    """RECORD's text a block at a time: UTF-8 (PEP 376), as pip reads it (it stops with "error decoding"
    otherwise); the error names the byte's position in the file, as decoding it whole would."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes handed to the decoder so far
    with path.open("rb") as stream:
        while True:
            block = stream.read(_READ_BLOCK)
            base = offset - len(decoder.getstate()[0])  # the decoder's input starts with what it held back
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise RecordError(
                    f"not UTF-8: {_decode_error(exc, base)}", wheel=filename, entry=member
                ) from None
            offset += len(block)
            if text:
                yield text
            if not block:
                return


def _cut_after_break(block: str) -> int:
    """Where ``block`` may be cut so that the lines of the two pieces are the lines of the whole: just after
    its last ``\\n``, else after a ``\\r`` that is not its last character (which may be half of ``\\r\\n``);
    0 if neither."""
    cut_at = block.rfind("\n") + 1
    if not cut_at:
        cut_at = block.rfind("\r", 0, len(block) - 1) + 1
    return cut_at


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    """RECORD's lines with their ends, as :mod:`csv` wants them (a file opened with ``newline=""``), a block
    at a time: a line ends at ``\\n``, ``\\r\\n`` or ``\\r`` only. Not ``str.splitlines()`` (pip's way): it
    also breaks at ``\\x0c``, ``\\x85``, ``\\u2028`` ... and drops the ends, so a file name holding one of those,
    or a newline in a quoted field (``csv.writer`` writes a name with a newline so), came apart — harmless for
    pip, which checks nothing against RECORD, but here it refused a valid wheel."""
    pending: list[str] = []
    for block in blocks:
        cut_at = _cut_after_break(block)
        if not cut_at:
            pending.append(block)
            continue
        pending.append(block[:cut_at])
        yield from io.StringIO("".join(pending), newline="")
        pending = [block[cut_at:]]
    yield from io.StringIO("".join(pending), newline="")


def _row_blocks(lines: Iterable[str], filename: str, member: str) -> Iterator[list[RecordRow]]:
    """RECORD's rows, a list of at most :data:`_ROW_BLOCK` at a time; short rows are padded, empty ones
    skipped, rows with more than three fields rejected.

    Every row of a well-formed RECORD has three fields: then a block's rows are made in one pass
    (docs/performance.md#d-record-fast-paths); anything else takes the row-by-row path."""
    reader = csv.reader(lines)
    number = 0  # csv rows before this block, empty ones included (a row's number in the errors)
    while True:
        table: list[list[str]] = []
        try:
            table.extend(itertools.islice(reader, _ROW_BLOCK))  # keeps the rows read before an error
        except csv.Error as exc:
            _rows(table, number, filename, member)  # an earlier row's problem is reported first
            raise RecordError(
                f"row {reader.line_num} cannot be read ({exc})", wheel=filename, entry=member
            ) from None
        if not table:
            return
        if all(len(fields) == 3 for fields in table):
            yield [_NEW_ROW(RecordRow, fields) for fields in table]
        else:
            yield _rows(table, number, filename, member)
        number += len(table)


def _rows(table: list[list[str]], before: int, filename: str, member: str) -> list[RecordRow]:
    rows = []
    for number, fields in enumerate(table, start=before + 1):
        if not fields:
            continue
        if len(fields) > 3:
            raise RecordError(f"row {number} has {len(fields)} fields", wheel=filename, entry=member)
        path, digest, size = [*fields, "", ""][:3]
        rows.append(RecordRow(path, digest, size))
    return rows


def parse_record(text: str, filename: str, member: str) -> list[RecordRow]:
    """Every row of a RECORD's text (what :func:`read_record` checks a block at a time)."""
    return list(itertools.chain.from_iterable(_row_blocks(_lines([text]), filename, member)))


def _exempt(dist_info: str) -> frozenset[str]:
    return frozenset({f"{dist_info}/RECORD", f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"})


def _rehash(path: Path, algorithm: str) -> str:
    """Only for a RECORD hashed with another of :data:`ACCEPTED_ALGORITHMS` than sha256: the staged digest
    cannot answer then."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def _row_problem(row: RecordRow, file: StagedFile, staged: StagedWheel) -> str | None:
    algorithm, sep, expected = row.hash.partition("=")
    if not sep or not expected:
        return f"{cut(row.path)} (no hash)"
    if algorithm == "sha256":
        actual = record_hash(file.sha256)[7:]  # after "sha256="
    elif algorithm not in ACCEPTED_ALGORITHMS:
        return f"{cut(row.path)} (hash algorithm {shown(algorithm, 20)} not accepted)"
    else:
        actual = _rehash(staged.root / row.path, algorithm)
    if actual != expected and actual != expected.rstrip("="):
        return f"{cut(row.path)} (hash mismatch)"
    if row.size and row.size != str(file.size):
        return f"{cut(row.path)} (size {cut(row.size, 20)!r} in RECORD, {file.size} in archive)"
    return None


def _unsafe_dir_row(path: str) -> str | None:
    """Why a directory row may not reach the installed RECORD (the zip parser's rule for entry names)."""
    try:
        check_safe_name(path, 0)
    except UnsafePath as exc:
        return exc.cause
    return None


class VerifiedRecord(NamedTuple):
    """A RECORD that passed :func:`read_record`. Every staged file but the exempt ones is listed, once; a row
    spelt as its staged file spells it is not kept (:meth:`fields` makes it again), only the others are: by
    path, the (hash, size) strings of directory rows, of listed exempt files (RECORD's own ``,,`` row) and of
    rows spelt otherwise (another algorithm, ``=`` padding, no size)."""

    exempt: frozenset[str]
    other: dict[str, tuple[str, str]]

    def fields(self, name: str, file: StagedFile) -> tuple[str, str]:
        """The (hash, size) strings of staged file ``name``'s row; ``("", "")`` for an exempt file RECORD does
        not list (pip's row for a file it installed but found in no row)."""
        kept = self.other.get(name)
        if kept is not None:
            return kept
        if name in self.exempt:
            return "", ""
        return record_hash(file.sha256), str(file.size)

    def directory_rows(self, staged: StagedWheel) -> Iterator[tuple[str, tuple[str, str]]]:
        """The rows that name no staged file (directory rows), as (path, (hash, size))."""
        return ((path, kept) for path, kept in self.other.items() if path not in staged.files)


def read_record(staged: StagedWheel, dist_info: str) -> VerifiedRecord:
    """Read ``<dist_info>/RECORD`` from the staged tree and check it; raise one RecordError listing every
    unsafe, duplicate, mismatching, missing and unlisted row or file (a row that cannot be parsed, or a file
    that is not UTF-8, is an error of its own, as when the whole file is parsed before it is checked)."""
    member = f"{dist_info}/RECORD"
    path, filename = staged.root / member, staged.filename
    for _ in _text_blocks(path, filename, member):
        pass  # not UTF-8 is reported before anything else, as decoding the whole file first would
    problems: list[str] = []
    exempt = _exempt(dist_info)
    files = staged.files
    other: dict[str, tuple[str, str]] = {}
    # Listed once, checked cheaply: while the rows name the staged files in their order, `walk` follows it
    # (`walked` names behind); `listed` holds the paths listed outside the walk and, once a row leaves the
    # order, every listed path.
    walk = (name for name in files if name not in exempt)
    expected = next(walk, None)
    walked = 0
    walking = True
    listed: set[str] = set()
    for rows in _row_blocks(_lines(_text_blocks(path, filename, member)), filename, member):
        for row in rows:
            path_ = row.path
            if "\\" in path_:  # written on Windows; no entry name has a backslash (the parser's rule)
                path_ = path_.replace("\\", "/")
                row = row._replace(path=path_)
            if walking and path_ == expected:
                walked += 1
                expected = next(walk, None)
                file = files[path_]
            else:
                if walking and path_ in files and path_ not in exempt:  # a staged file out of order, or again
                    walking = False
                    listed.update(itertools.islice((name for name in files if name not in exempt), walked))
                if path_ in listed:
                    problems.append(f"{cut(path_)} (listed twice)")
                    continue
                if path_.endswith("/"):  # a directory row: nothing to check but where it points
                    listed.add(path_)
                    unsafe = _unsafe_dir_row(path_)
                    if unsafe is not None:
                        problems.append(f"{cut(path_)} (unsafe directory row: {unsafe})")
                    else:
                        other[path_] = (row.hash, row.size)
                    continue
                found = files.get(path_)
                if found is None:
                    listed.add(path_)
                    problems.append(f"{cut(path_)} (listed but missing)")
                    continue
                file = found
                listed.add(file.name if file.name == path_ else path_)  # the staged name: no second string
                if path_ in exempt:
                    other[file.name if file.name == path_ else path_] = (row.hash, row.size)
                    continue
            if row.hash != record_hash(file.sha256) or row.size != str(file.size):
                # Not the common case (RECORD written the way we write it): look at the row field by field.
                problem = _row_problem(row, file, staged)
                if problem:
                    problems.append(problem)
                else:
                    other[file.name if file.name == path_ else path_] = (row.hash, row.size)
    if walking:
        unlisted = ([expected] if expected is not None else []) + list(walk)
    else:
        unlisted = [name for name in files if name not in listed and name not in exempt]
    problems.extend(f"{cut(name)} (not in RECORD)" for name in sorted(unlisted))
    if problems:
        shown_problems = "; ".join(problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise RecordError(f"RECORD does not match the archive: {shown_problems}{more}", wheel=filename)
    return VerifiedRecord(exempt, other)


def _encoded(rows: list[tuple[str, str, str]]) -> bytes:
    """Rows as csv's default dialect writes them (``\\r\\n`` endings). A row holding no character csv would
    quote is written the same by csv and by joining, so each block of rows decides on its own
    (docs/performance.md#d-record-fast-paths)."""
    everything = _FIELD_SEPARATOR.join(itertools.chain.from_iterable(rows))
    if not any(special in everything for special in _CSV_SPECIAL):
        return "".join([f"{path},{digest},{size}\r\n" for path, digest, size in rows]).encode("utf-8")
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def record_blocks(rows: Iterable[tuple[str, str, str]]) -> Iterator[bytes]:
    """Rows already in order, encoded :data:`_ROW_BLOCK` at a time (what :func:`record_bytes` joins)."""
    iterator = iter(rows)
    while block := list(itertools.islice(iterator, _ROW_BLOCK)):
        yield _encoded(block)


def record_bytes(rows: Iterable[tuple[str, str, str]]) -> bytes:
    """Serialise rows sorted like pip's ``_normalized_outrows``, with csv's default ``\\r\\n`` endings."""
    return b"".join(record_blocks(sorted(rows)))  # named tuples sort as (path, hash, size) tuples
