"""RECORD is checked against the digests taken while extracting; any mismatch stops the install untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_install_support import build_wheel, snapshot, stage

from wheelstream.errors import RecordError, WheelMetadataError
from wheelstream.installer import install_staged

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
    assert "\n" not in str(caught.value) and "pkg-1.0-py3-none-any.whl" in str(caught.value)
    return caught.value


def test_wrong_hash(tmp_path: Path, target: Path) -> None:
    error = attempt(tmp_path, target, tamper={"pkg/mod.py": b"y = 3\n"})
    assert "pkg/mod.py (hash mismatch)" in str(error)


def test_wrong_size(tmp_path: Path, target: Path) -> None:
    rows = "pkg/__init__.py,{h},99\n"
    from test_install_support import record_hash

    record = rows.format(h=record_hash(FILES["pkg/__init__.py"]))
    error = attempt(tmp_path, target, record=record)
    assert "pkg/__init__.py (size 99 in RECORD, 6 in archive)" in str(error)


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
