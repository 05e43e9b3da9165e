"""The installer keeps nothing per file beyond the staged tree it is given: its memory is flat in the file count.

A wheel of very many tiny files (a count bomb) multiplies whatever the installer holds per file. Measured with
tracemalloc around ``install_staged`` of a staged tree of one-byte files (move mode, as ``wheelstream
install`` runs; the staged tree itself is allocated before the measurement), the installer used to hold, at
its peak, the RECORD's rows parsed and then formatted and joined, a placement, destination, RECORD path and
written-hash entry per file and a set of the moved ones: the bound below is several times smaller than that.
Now its peak is the blocks RECORD is read and written in, whatever the file count, plus the sorted list of
installed paths (shared strings); ``_PEAK_PER_FILE`` and ``_FIXED`` leave room above it for other Python
versions' object sizes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_install_support import record_hash

from wheelstream._staged import StagedFile, StagedWheel
from wheelstream.installer import install_staged

_FILES = 20_000
_PEAK_PER_FILE = 60
_FIXED = 2 << 20  # the blocks RECORD is read and written in
_DIST_INFO = "bomb-1.0.dist-info"


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs when there is one (20k files are made and moved quickly there), else the test's directory."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    with tempfile.TemporaryDirectory(dir=parent, prefix="wheelstream-installer-memory-") as root:
        yield Path(root)


def _staged_bomb(root: Path, count: int) -> StagedWheel:
    """A staged (unpacked and hashed) wheel of ``count`` one-byte files in 20 directories, as the extractor
    hands it over for a move install."""
    data = b"x"
    digest = hashlib.sha256(data).hexdigest()
    files: dict[str, StagedFile] = {}
    rows: list[str] = []
    for i in range(20):
        (root / "bomb" / f"d{i:02d}").mkdir(parents=True)
    for i in range(count):
        name = f"bomb/d{i % 20:02d}/f{i:06d}.py"
        (root / name).write_bytes(data)
        files[name] = StagedFile(name, 1, digest, False)
        rows.append(f"{name},{record_hash(data)},1")
    metadata = {
        "METADATA": b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n",
        "WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    (root / _DIST_INFO).mkdir()
    for base, content in metadata.items():
        name = f"{_DIST_INFO}/{base}"
        (root / name).write_bytes(content)
        files[name] = StagedFile(name, len(content), hashlib.sha256(content).hexdigest(), False)
        rows.append(f"{name},{record_hash(content)},{len(content)}")
    record = "\n".join([*rows, f"{_DIST_INFO}/RECORD,,"]).encode() + b"\n"
    (root / _DIST_INFO / "RECORD").write_bytes(record)
    files[f"{_DIST_INFO}/RECORD"] = StagedFile(
        f"{_DIST_INFO}/RECORD", len(record), hashlib.sha256(record).hexdigest(), False
    )
    return StagedWheel("bomb-1.0-py3-none-any.whl", root, files, movable=True)


@pytest.mark.usefixtures("no_cyclic_gc")
def test_installer_memory_per_file_stays_small(scratch: Path) -> None:
    staged = _staged_bomb(scratch / "staged", _FILES)
    install_staged(_staged_bomb(scratch / "warm", 10), scratch / "warm-target")  # the probe, imports, caches
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        report = install_staged(staged, scratch / "target")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert report.files_written == _FILES + 5  # and METADATA, WHEEL, RECORD, INSTALLER, REQUESTED
    assert peak < _FILES * _PEAK_PER_FILE + _FIXED, f"peak {peak / _FILES:.0f} bytes per file"
    record = (scratch / "target" / _DIST_INFO / "RECORD").read_bytes().split(b"\r\n")
    assert len(record) == _FILES + 6  # every file, INSTALLER and REQUESTED, and the empty line after the last
    assert record[5] == f"bomb/d00/f000000.py,{record_hash(b'x')},1".encode()  # after the .dist-info's rows
