"""A wheel of very many tiny entries: memory per entry stays small, and the entry cap stops a count bomb.

Per-entry memory is what such a wheel multiplies. Measured (Python 3.11, tracemalloc) while parsing and
extracting 20k tiny entries with the writer threads, as an install does: ~530 bytes per entry at the peak,
~375 retained at the end, ~290 once the parser is dropped — the extractor's ``StagedFile`` per file with its
hex digest, the name and a dict slot. Before the parser kept its entries as rows (and before it stopped being
a reference cycle), the same run peaked at ~1,400 bytes per entry and the parser's ~950 stayed after use until
a full collection. The bounds below sit between the two with room for other Python versions' object sizes:
``_PEAK_PER_ENTRY`` plus fixed costs (the parser's buffer, up to 2 MiB, and the writers' batches in flight,
2 MiB by ``_MAX_PENDING``), and ``_KEPT_PER_ENTRY`` for what outlives the parser. Both fail on the old code.
"""

from __future__ import annotations

import io
import os
import tempfile
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.zipbuild import Member, build
from wheelstream.errors import UnpackedLimitExceeded
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._tee import parse_block
from wheelstream.zip import DEFAULT_MAX_ENTRIES, ZipStreamParser

_ENTRIES = 20_000
_PEAK_PER_ENTRY = 900
_KEPT_PER_ENTRY = 450
_FIXED = 5 << 20


def _tiny_entries(count: int) -> bytes:
    """``count`` empty deflated files in 20 directories (zipfile: it writes them fastest)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            archive.writestr(f"many/d{i % 20:02d}/f{i:06d}.py", b"")
    return buffer.getvalue()


@pytest.fixture
def staging_root(tmp_path: Path) -> Iterator[Path]:
    """Where 20k files are created and deleted quickly: a tmpfs when there is one (empty files take no pages
    there), else the test's temporary directory. Removed by the test, not left to pytest's later clean-up."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    with tempfile.TemporaryDirectory(dir=parent, prefix="wheelstream-count-") as root:
        yield Path(root)


@pytest.mark.usefixtures("no_cyclic_gc")
def test_memory_per_entry_stays_small(staging_root: Path) -> None:
    data = _tiny_entries(_ENTRIES)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        extractor = Extractor(staging_root / "staging", writers=True)
        parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)
        for pos in range(0, len(data), 1 << 20):
            parse_block(parser, extractor, data[pos : pos + (1 << 20)])
        parse_block(parser, extractor, b"")
        extractor.close()
        assert parser.done
        assert len(extractor.files) == _ENTRIES
        peak = tracemalloc.get_traced_memory()[1] - base
        del parser
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert peak < _ENTRIES * _PEAK_PER_ENTRY + _FIXED, f"peak {peak / _ENTRIES:.0f} bytes per entry"
    assert kept < _ENTRIES * _KEPT_PER_ENTRY, f"kept {kept / _ENTRIES:.0f} bytes per entry"
    assert extractor.files[f"many/d00/f{_ENTRIES - 20:06d}.py"].size == 0


def _entries(count: int) -> bytes:
    return build([Member(f"e{i}.py", b"") for i in range(count)])


def test_the_entry_cap_allows_exactly_max_entries() -> None:
    parser = ZipStreamParser(max_entries=50)
    parser.feed(_entries(50))
    parser.feed(b"")
    assert parser.done
    assert parser.max_entries == 50


def test_one_entry_past_the_cap_is_refused_at_its_header() -> None:
    data = _entries(51)
    parser = ZipStreamParser(max_entries=50)
    with pytest.raises(UnpackedLimitExceeded, match="more than the 50-entry limit") as caught:
        parser.feed(data)
    assert caught.value.entry == "e50.py"
    assert caught.value.offset == data.index(b"e50.py") - 30  # its local header: 30 bytes, then the name


def test_the_cap_counts_entries_finished_before_a_checkpoint() -> None:
    data = _entries(51)
    first = ZipStreamParser(max_entries=50)
    first.feed(data[: len(data) // 3])
    resumed = ZipStreamParser(first.checkpoint, prior_entries=first.finished_since(0), max_entries=50)
    with pytest.raises(UnpackedLimitExceeded):
        resumed.feed(data[first.checkpoint :])


def test_the_default_cap_is_far_above_real_wheels() -> None:
    assert DEFAULT_MAX_ENTRIES >= 100_000  # torch: 12k entries; the biggest real wheels stay under ~65k
