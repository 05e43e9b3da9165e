"""RECORD is read, checked and written a block at a time (so that a count bomb's memory stays flat): each piece
gives what doing it whole gives — the lines of ``str.splitlines``, the ``UnicodeDecodeError`` text of decoding
the whole file, the bytes of ``csv.writer``, and the problems a set of every listed path finds, in every row
order (a RECORD that follows the archive's order is checked without that set)."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_install_support import record_hash

from wheelstream._staged import StagedFile, StagedWheel
from wheelstream.errors import RecordError
from wheelstream.installer import _records
from wheelstream.installer._records import parse_record, read_record, record_blocks

_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(["ab", ",", "\r\n", *_BREAKS]), max_size=20).map("".join),
    st.lists(st.integers(0, 40), max_size=8),
)
def test_lines_in_blocks_are_the_lines_csv_reads(text: str, cuts: list[int]) -> None:
    """However RECORD is cut into blocks, the lines are those of the whole file opened with ``newline=""``
    (what :mod:`csv` reads): ends kept, and only ``\n``, ``\r\n`` and ``\r`` end one."""
    edges = sorted({0, len(text), *(min(cut, len(text)) for cut in cuts)})
    blocks = [text[start:end] for start, end in itertools.pairwise(edges)]
    assert list(_records._lines(blocks)) == list(io.StringIO(text, newline=""))


@settings(max_examples=200)
@given(st.binary(max_size=24), st.integers(1, 8))
def test_a_decode_error_names_the_position_in_the_whole_file(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block: int
) -> None:
    path = tmp_path_factory.mktemp("record") / "RECORD"
    path.write_bytes(data)
    saved, _records._READ_BLOCK = _records._READ_BLOCK, block
    try:
        try:
            expected, error = data.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            expected, error = None, f"not UTF-8: {exc}"
        if error is None:
            assert "".join(_records._text_blocks(path, "w.whl", "d/RECORD")) == expected
        else:
            with pytest.raises(RecordError) as caught:
                list(_records._text_blocks(path, "w.whl", "d/RECORD"))
            assert caught.value.cause == error
    finally:
        _records._READ_BLOCK = saved


_FIELD = st.text(alphabet=st.sampled_from(list('ab/.=_-0189 ,"\r\né')), max_size=6)


@given(st.lists(st.tuples(_FIELD, _FIELD, _FIELD), max_size=12), st.integers(1, 4))
def test_rows_written_in_blocks_are_what_csv_writes(rows: list[tuple[str, str, str]], block: int) -> None:
    """A block with a field csv quotes goes through csv, the others are joined: the same bytes."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(sorted(rows))
    saved, _records._ROW_BLOCK = _records._ROW_BLOCK, block
    try:
        assert b"".join(record_blocks(sorted(rows))) == buffer.getvalue().encode("utf-8")
    finally:
        _records._ROW_BLOCK = saved


_DIST_INFO = "p-1.0.dist-info"
_NAMES = [f"p/f{i}.py" for i in range(5)] + [f"{_DIST_INFO}/RECORD", f"{_DIST_INFO}/RECORD.jws"]


def _reference_problems(text: str, staged: StagedWheel) -> str | None:
    """The check as it was made before it was streamed: every row parsed, then one set of listed paths."""
    problems: list[str] = []
    listed: set[str] = set()
    exempt = {f"{_DIST_INFO}/RECORD", f"{_DIST_INFO}/RECORD.jws", f"{_DIST_INFO}/RECORD.p7s"}
    for row in parse_record(text, staged.filename, f"{_DIST_INFO}/RECORD"):
        if row.path in listed:
            problems.append(f"{row.path} (listed twice)")
            continue
        listed.add(row.path)
        if row.path.endswith("/"):
            if row.path.startswith("../"):
                problems.append(f"{row.path} (unsafe directory row: ")
            continue
        file = staged.files.get(row.path)
        if file is None:
            problems.append(f"{row.path} (listed but missing)")
        elif row.path in exempt:
            continue
        elif row.hash != record_hash(f"{row.path}".encode()) or row.size != str(file.size):
            problems.append(f"{row.path} (no hash)")
    problems.extend(f"{name} (not in RECORD)" for name in sorted(set(staged.files) - listed - exempt))
    return "; ".join(problems) if problems else None


_ROW = st.one_of(
    st.sampled_from(_NAMES).map(lambda name: f"{name},{record_hash(name.encode())},{len(name)}"),
    st.sampled_from(_NAMES[:2]).map(lambda name: f"{name},,"),  # no hash
    st.sampled_from(["p/", "../up/", "p/gone.py,sha256=x,1"]).map(
        lambda row: row if "," in row else f"{row},,"
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ROW, max_size=12), st.sampled_from([1, 2, 3, 1024]))
def test_record_check_in_any_row_order_finds_what_a_set_finds(
    tmp_path_factory: pytest.TempPathFactory, rows: list[str], block: int
) -> None:
    root = tmp_path_factory.mktemp("staged")
    (root / _DIST_INFO).mkdir()
    text = "\n".join(rows) + "\n"
    (root / _DIST_INFO / "RECORD").write_text(text, encoding="utf-8")
    files = {
        name: StagedFile(name, len(name), hashlib.sha256(name.encode()).hexdigest(), False)
        for name in _NAMES[:-1]
    }  # RECORD.jws is exempt and absent: nothing to find about it
    staged = StagedWheel("p-1.0-py3-none-any.whl", root, files)
    expected = _reference_problems(text, staged)
    saved, _records._ROW_BLOCK = _records._ROW_BLOCK, block
    try:
        if expected is None:
            verified = read_record(staged, _DIST_INFO)
            listed = {row.path: (row.hash, row.size) for row in parse_record(text, "w", "RECORD")}
            for name, file in files.items():
                assert verified.fields(name, file) == listed.get(name, ("", ""))
            assert dict(verified.directory_rows(staged)) == {
                p: f for p, f in listed.items() if p not in files
            }
        else:
            with pytest.raises(RecordError) as caught:
                read_record(staged, _DIST_INFO)
            got = caught.value.cause.removeprefix("RECORD does not match the archive: ").split("; ")
            want = expected.split("; ")
            assert len(got) == len(want)
            for part, wanted in zip(got, want, strict=True):  # an unsafe row's reason: the zip rule's words
                assert (
                    part.startswith(wanted) if wanted.endswith("(unsafe directory row: ") else part == wanted
                )
    finally:
        _records._ROW_BLOCK = saved
