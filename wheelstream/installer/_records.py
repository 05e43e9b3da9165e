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

Directory rows (``pkg/``, no hash): pip copies them into the installed RECORD as they are, and so do we — but
only a *safe* one, by the rule the zip parser applies to entry names (relative, no ``..`` / ``.`` / empty
component, no backslash, drive letter or NUL). A RECORD naming ``../../etc/`` or ``/`` is refused: the
installed RECORD is what uninstallers and ``importlib.metadata`` walk, and it must never point outside the
target. Every *file* row must name a staged file, which already passed that rule.

Writing follows pip's ``get_csv_rows_for_installed`` + ``_normalized_outrows``
(``_internal/operations/install/wheel.py``): rows keep the archive's hash and size strings unless the file was
changed on the way in (``#!python`` scripts), generated files are appended with fresh hashes, files installed
but never listed get ``path,,``, and the whole is sorted and written as :mod:`csv` writes it (``\\r\\n`` line
ends; joined directly when no field needs quoting — the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import hashlib
import io
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from .._staged import StagedWheel
from ..errors import RecordError, UnsafePath
from ..zip._format import check_safe_name
from ._metadata import cut, shown

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "RecordRow",
    "decode_record",
    "installed_rows",
    "parse_record",
    "record_bytes",
    "record_hash",
    "verify_record",
]

#: Hash names a RECORD row may use: fixed-length, in every hashlib (``algorithms_guaranteed``), not weak.
ACCEPTED_ALGORITHMS = frozenset(
    {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"}
)


class RecordRow(NamedTuple):
    """One RECORD line, fields kept as the strings they were (pip copies them verbatim). A named tuple: a
    wheel's RECORD is read into, and written from, one of these per file (12k for torch)."""

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


@functools.lru_cache(maxsize=1 << 16)  # asked twice per file (RECORD check, then the installed RECORD)
def record_hash(sha256_hex: str) -> str:
    """``sha256=<urlsafe b64, unpadded>``: the RECORD spelling of a hex digest."""
    encoded = binascii.b2a_base64(bytes.fromhex(sha256_hex), newline=False).translate(_URLSAFE)
    return "sha256=" + encoded.decode("ascii").rstrip("=")


def decode_record(data: bytes, filename: str, member: str) -> str:
    """RECORD's text: UTF-8 (PEP 376), as pip reads it (it stops with "error decoding" otherwise)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"not UTF-8: {exc}", wheel=filename, entry=member) from None


def parse_record(text: str, filename: str, member: str) -> list[RecordRow]:
    """Rows of a RECORD file; short rows are padded, rows with more than three fields rejected.

    Every row of a well-formed RECORD has three fields: then the rows are made in one pass
    (docs/performance.md#d-record-fast-paths); anything else takes the row-by-row path."""
    reader = csv.reader(text.splitlines())
    table: list[list[str]] = []
    try:
        table.extend(reader)  # keeps the rows read before an error
    except csv.Error as exc:
        _rows(table, filename, member)  # an earlier row's problem is reported first, as row by row would
        raise RecordError(f"row {reader.line_num} cannot be read ({exc})", wheel=filename, entry=member) from None
    if all(len(fields) == 3 for fields in table):
        return [_NEW_ROW(RecordRow, fields) for fields in table]
    return _rows(table, filename, member)


def _rows(table: list[list[str]], filename: str, member: str) -> list[RecordRow]:
    rows = []
    for number, fields in enumerate(table, start=1):
        if not fields:
            continue
        if len(fields) > 3:
            raise RecordError(f"row {number} has {len(fields)} fields", wheel=filename, entry=member)
        path, digest, size = (fields + ["", ""])[:3]
        rows.append(RecordRow(path, digest, size))
    return rows


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


def _row_problem(row: RecordRow, staged: StagedWheel) -> str | None:
    file = staged.files[row.path]
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
        return f"{cut(row.path)} (size {cut(row.size, 20)} in RECORD, {file.size} in archive)"
    return None


def _unsafe_dir_row(path: str) -> str | None:
    """Why a directory row may not reach the installed RECORD (the zip parser's rule for entry names)."""
    try:
        check_safe_name(path, 0)
    except UnsafePath as exc:
        return exc.cause
    return None


def verify_record(rows: Iterable[RecordRow], staged: StagedWheel, dist_info: str) -> None:
    """Raise one RecordError listing every unsafe, duplicate, mismatching, missing and unlisted row or file."""
    problems: list[str] = []
    listed: set[str] = set()
    exempt = _exempt(dist_info)
    files = staged.files
    for row in rows:
        path = row.path
        if path in listed:
            problems.append(f"{cut(path)} (listed twice)")
            continue
        listed.add(path)
        if path.endswith("/"):  # a directory row: nothing to check but where it points
            unsafe = _unsafe_dir_row(path)
            if unsafe is not None:
                problems.append(f"{cut(path)} (unsafe directory row: {unsafe})")
            continue
        file = files.get(path)
        if file is None:
            problems.append(f"{cut(path)} (listed but missing)")
        elif path in exempt:
            continue
        elif row.hash != record_hash(file.sha256) or row.size != str(file.size):
            # Not the common case (RECORD written the way we write it): look at the row field by field.
            problem = _row_problem(row, staged)
            if problem:
                problems.append(problem)
    unlisted = [name for name in files if name not in listed and name not in exempt]
    problems.extend(f"{cut(name)} (not in RECORD)" for name in sorted(unlisted))
    if problems:
        shown_problems = "; ".join(problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise RecordError(f"RECORD does not match the archive: {shown_problems}{more}", wheel=staged.filename)


def installed_rows(
    old_rows: Iterable[RecordRow],
    installed: Mapping[str, str],
    changed: Mapping[str, tuple[str, int]],
    generated: Iterable[tuple[str, str, int]],
) -> list[RecordRow]:
    """The installed RECORD's rows, computed as pip's ``get_csv_rows_for_installed`` does.

    ``installed`` maps archive names (and pyc keys) to installed record paths, in install order; ``changed``
    maps installed record paths that were rewritten to their final (hash, size); ``generated`` lists
    (record path, hash, size) of files we created (launchers, INSTALLER, ...).
    """
    pending = dict(installed)
    out: list[RecordRow] = []
    for row in old_rows:
        new_path = pending.pop(row.path, row.path)
        if new_path in changed:
            digest, size = changed[new_path]
            out.append(RecordRow(new_path, digest, str(size)))
        elif new_path == row.path:
            out.append(row)  # the usual case: a file below the lib dir keeps its row as it was
        else:
            out.append(RecordRow(new_path, row.hash, row.size))
    out.extend(RecordRow(path, digest, str(size)) for path, digest, size in generated)
    out.extend(RecordRow(path, "", "") for path in pending.values())
    return out


def record_bytes(rows: Iterable[RecordRow]) -> bytes:
    """Serialise rows sorted like pip's ``_normalized_outrows``, with csv's default ``\\r\\n`` endings.

    When no field holds a character csv would quote, the lines are joined directly: the same bytes as
    ``csv.writer`` (a property test checks it), without its per-row cost
    (docs/performance.md#d-record-fast-paths)."""
    ordered = sorted(rows)  # named tuples sort as (path, hash, size) tuples
    everything = _FIELD_SEPARATOR.join(itertools.chain.from_iterable(ordered))
    if not any(special in everything for special in _CSV_SPECIAL):
        return "".join([f"{path},{digest},{size}\r\n" for path, digest, size in ordered]).encode("utf-8")
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(ordered)
    return buffer.getvalue().encode("utf-8")
