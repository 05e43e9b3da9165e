"""RECORD is checked against the digests taken while extracting; any mismatch stops the install untouched."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_install_support import build_wheel, snapshot, stage

from wheelstream.errors import RecordError, WheelMetadataError
from wheelstream.installer import install_staged
from wheelstream.installer._records import RecordRow, parse_record, record_bytes

FILES = {"pkg/__init__.py": b"x = 1\n", "pkg/mod.py": b"y = 2\n", "pkg-1.0.data/data/share/a.txt": b"a\n"}


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A target that already holds something, so 'untouched' means more than 'still empty'."""
    target = tmp_path / "target"
    (target / "other").mkdir(parents=True)
    (target / "other" / "keep.txt").write_text("keep\n")
    return target


def attempt(tmp_path: Path, target: Path, **kwargs: object) -> RecordError:
    wheel = build_wheel(tmp_path / "w", "pkg-1.0-py3-none-any.whl", FILES, **kwargs)  # type: ignore[arg-type]
    before = snapshot(target)
    with pytest.raises(RecordError) as caught:
        install_staged(stage(wheel, tmp_path / "staged"), target)
    assert snapshot(target) == before
    assert "\n" not in str(caught.value)
    assert "pkg-1.0-py3-none-any.whl" in str(caught.value)
    return caught.value


def test_wrong_hash(tmp_path: Path, target: Path) -> None:
    error = attempt(tmp_path, target, tamper={"pkg/mod.py": b"y = 3\n"})
    assert "pkg/mod.py (hash mismatch)" in str(error)


def test_wrong_size(tmp_path: Path, target: Path) -> None:
    rows = "pkg/__init__.py,{h},99\n"
    from test_install_support import record_hash

    record = rows.format(h=record_hash(FILES["pkg/__init__.py"]))
    error = attempt(tmp_path, target, record=record)
    assert "pkg/__init__.py (size '99' in RECORD, 6 in archive)" in str(error)


def test_listed_but_missing(tmp_path: Path, target: Path) -> None:
    error = attempt(tmp_path, target, extra_record_rows=("pkg/gone.py,sha256=AAAA,3",))
    assert "pkg/gone.py (listed but missing)" in str(error)


def test_unlisted_file(tmp_path: Path, target: Path) -> None:
    error = attempt(tmp_path, target, drop_from_record=("pkg/mod.py",))
    assert "pkg/mod.py (not in RECORD)" in str(error)


def test_every_problem_in_one_line(tmp_path: Path, target: Path) -> None:
    error = attempt(
        tmp_path,
        target,
        tamper={"pkg/mod.py": b"tampered\n"},
        drop_from_record=("pkg-1.0.data/data/share/a.txt",),
        extra_record_rows=("pkg/gone.py,sha256=AAAA,3",),
    )
    for needle in ("pkg/mod.py (hash mismatch)", "a.txt (not in RECORD)", "pkg/gone.py (listed but missing)"):
        assert needle in str(error)


def test_missing_hash_and_weak_hash(tmp_path: Path, target: Path) -> None:
    record = "pkg/__init__.py,,6\npkg/mod.py,md5=AAAA,6\n"
    error = attempt(tmp_path, target, record=record, drop_from_record=())
    assert "pkg/__init__.py (no hash)" in str(error)
    assert "pkg/mod.py (hash algorithm 'md5' not accepted)" in str(error)


def test_missing_record_is_a_metadata_error(tmp_path: Path, target: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "pkg-1.0-py3-none-any.whl", FILES)
    staged = stage(wheel, tmp_path / "staged")
    files = {k: v for k, v in staged.files.items() if not k.endswith("RECORD")}
    with pytest.raises(WheelMetadataError, match="RECORD"):
        install_staged(type(staged)(staged.filename, staged.root, files), target)


def test_signatures_need_no_row(tmp_path: Path) -> None:
    """RECORD.jws is signed after RECORD is written: it is never listed, and that is fine."""
    wheel = build_wheel(tmp_path / "w", "pkg-1.0-py3-none-any.whl", FILES, drop_from_record=())
    staged = stage(wheel, tmp_path / "staged")
    (staged.root / "pkg-1.0.dist-info" / "RECORD.jws").write_bytes(b"{}")
    from wheelstream._staged import StagedFile

    files = {
        **staged.files,
        "pkg-1.0.dist-info/RECORD.jws": StagedFile("pkg-1.0.dist-info/RECORD.jws", 2, "0" * 64, False),
    }
    install_staged(type(staged)(staged.filename, staged.root, files), tmp_path / "t")
    assert (tmp_path / "t" / "pkg-1.0.dist-info" / "RECORD.jws").is_file()


def test_other_accepted_spellings_pass(tmp_path: Path) -> None:
    """Rows that miss the fast compare (padded base64, no size, sha512) are still accepted, as before."""
    import base64
    import hashlib

    def b64(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).decode()

    init, mod = FILES["pkg/__init__.py"], FILES["pkg/mod.py"]
    rows = (
        f"pkg/__init__.py,sha256={b64(hashlib.sha256(init).digest())},",  # padded, no size
        f"pkg/mod.py,sha512={b64(hashlib.sha512(mod).digest()).rstrip('=')},{len(mod)}",
    )
    wheel = build_wheel(
        tmp_path / "w",
        "pkg-1.0-py3-none-any.whl",
        {k: v for k, v in FILES.items() if k.startswith("pkg/")},
        drop_from_record=("pkg/__init__.py", "pkg/mod.py"),
        extra_record_rows=rows,
    )
    install_staged(stage(wheel, tmp_path / "staged"), tmp_path / "t")
    installed = (tmp_path / "t" / "pkg-1.0.dist-info" / "RECORD").read_text()
    assert "pkg/mod.py,sha512=" in installed  # kept verbatim, as pip keeps it


_FIELD = st.text(alphabet=st.sampled_from(list('ab/.=_-0189 ,"\r\n\t\0é')), max_size=12)


@given(st.lists(st.tuples(_FIELD, _FIELD, _FIELD), max_size=8))
def test_record_bytes_is_what_csv_writes(rows: list[tuple[str, str, str]]) -> None:
    """The joined fast path and csv.writer give the same bytes, quoting or not."""
    records = [RecordRow(*row) for row in rows]
    buffer = io.StringIO(newline="")
    try:
        csv.writer(buffer).writerows(sorted(rows))
    except csv.Error:  # Python 3.10 refuses NUL: so must the fast path
        with pytest.raises(csv.Error):
            record_bytes(records)
        return
    assert record_bytes(records) == buffer.getvalue().encode("utf-8")


@given(st.lists(st.lists(_FIELD, min_size=1, max_size=3), max_size=6))
def test_parse_record_round_trips_and_pads(rows: list[list[str]]) -> None:
    buffer = io.StringIO(newline="")
    try:
        csv.writer(buffer).writerows(rows)
    except csv.Error:  # Python 3.10 cannot write NUL: no RECORD to read
        return
    text = buffer.getvalue()
    # what csv.writer wrote comes back: a field holding a line break too (a file name may hold one)
    expected = [RecordRow(*[*fields, "", ""][:3]) for fields in rows if fields]
    assert parse_record(text, "w.whl", "d/RECORD") == expected


def test_parse_record_rejects_a_fourth_field() -> None:
    with pytest.raises(RecordError, match="row 2 has 4 fields"):
        parse_record("a,sha256=x,1\nb,sha256=y,2,extra\n", "w.whl", "d/RECORD")


def test_unreadable_record_is_a_record_error_after_earlier_rows() -> None:
    """csv's own errors become RecordError (one line, no traceback); an earlier bad row is still named first."""
    huge = "x" * 200_000  # past csv's field size limit
    with pytest.raises(RecordError, match=r"row 2 cannot be read \(field larger than field limit"):
        parse_record(f"a,sha256=x,1\n{huge},h,1\n", "w.whl", "d/RECORD")
    with pytest.raises(RecordError, match="row 1 has 4 fields"):
        parse_record(f"a,sha256=x,1,extra\n{huge},h,1\n", "w.whl", "d/RECORD")
