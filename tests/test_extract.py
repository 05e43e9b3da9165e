"""Extractor: files, bytes and modes as pip's zipfile extraction gives them; digests computed while writing."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from fixtures.wellformed import REAL_WHEELS, WELLFORMED, make_wheel
from wheelstream._cache import Cache
from wheelstream.errors import ChecksumMismatch, CorruptData, DuplicateEntry, SizeMismatch, UnsafePath
from wheelstream.fetch import DownloadOptions, unpack_local
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import PartialFile
from wheelstream.unpack._tee import parse_block
from wheelstream.zip import ZipStreamParser

CORPUS = {name: build for name, build in WELLFORMED.items()}
CORPUS.update({f"real:{name}": path.read_bytes for name, path in REAL_WHEELS.items()})


def expected_tree(data: bytes) -> dict[str, tuple[bytes, bool]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {
            i.filename: (archive.read(i), bool((i.external_attr >> 16) & 0o111))
            for i in archive.infolist()
            if not i.is_dir()
        }


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_unpack_matches_zipfile_bytes_and_exec_bits(name: str, tmp_path: Path) -> None:
    data = CORPUS[name]()
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(data)
    result = unpack_local(wheel, cache=Cache.at(tmp_path / "cache"), options=DownloadOptions(chunk_size=7777))
    staged = result.staged
    expected = expected_tree(data)
    assert set(staged.files) == set(expected)
    for entry, (content, executable) in expected.items():
        path = staged.root / entry
        assert path.read_bytes() == content
        assert staged.files[entry].sha256 == hashlib.sha256(content).hexdigest()
        assert staged.files[entry].size == len(content)
        assert staged.files[entry].executable == executable
        assert bool(path.stat().st_mode & stat.S_IXUSR) == executable
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_extractor_refuses_names_escaping_root_even_if_parser_let_them_through(tmp_path: Path) -> None:
    extractor = Extractor(tmp_path / "root")
    os.symlink(tmp_path, tmp_path / "root" / "link")
    with pytest.raises(UnsafePath):
        extractor.path_for("link/evil.py")


@pytest.mark.parametrize("writers", [False, True])
def test_a_symlinked_directory_in_staging_is_never_followed(tmp_path: Path, writers: bool) -> None:
    """Staging is ours, but a resume finds directories an earlier process left: each must be a real
    directory, or nothing is written through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "demo").mkdir(parents=True)
    os.symlink(outside, root / "demo" / "sub")
    data = make_wheel({"demo/sub/evil.py": b"x = 1\n"})
    extractor = Extractor(root, writers=writers)
    parser = ZipStreamParser()
    with pytest.raises(UnsafePath, match="symbolic link"):
        extractor.handle_all(parser.feed(data))
    extractor.close()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("create_system", "mode", "executable"),
    [
        (3, 0o100755, True),
        (3, 0o755, False),  # no S_IFREG: pip's zip_item_is_executable says no
        (0, 0o100755, True),  # made by MS-DOS, but pip reads the high bits anyway
        (3, 0o100644, False),
    ],
)
def test_exec_bit_follows_pips_rule(create_system: int, mode: int, executable: bool, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("demo/tool")
        info.create_system = create_system
        info.external_attr = mode << 16
        archive.writestr(info, b"#!/bin/sh\n")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(buf.getvalue())
    staged = unpack_local(wheel, cache=Cache.at(tmp_path / "cache")).staged
    assert staged.files["demo/tool"].executable is executable


@pytest.mark.parametrize("writers", [False, True])
def test_existing_file_in_staging_is_never_overwritten(tmp_path: Path, writers: bool) -> None:
    """Two entries that land on one path (``A.py``/``a.py`` on a case-insensitive disk) must not overwrite."""
    data = WELLFORMED["deflate"]()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        first = archive.namelist()[0]
    root = tmp_path / "staging"
    (root / first).parent.mkdir(parents=True)
    (root / first).write_bytes(b"already here")
    extractor = Extractor(root, writers=writers)
    parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)  # with writers the entry comes packed

    def unpack() -> None:  # the collision may surface at any of the three steps (writers or not)
        extractor.handle_all(parser.feed(data))
        extractor.handle_all(parser.feed(b""))
        extractor.close()

    with pytest.raises(DuplicateEntry):
        unpack()
    assert (root / first).read_bytes() == b"already here"


def test_a_ctrl_c_while_draining_leaves_every_finished_entry_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser counts packed entries as finished before their writer has verified and written them. A
    Ctrl-C while waiting for the writers must not lose them: the batches in flight are finished and recorded
    before the interrupt goes on, so the checkpoint that follows finds every file with its digest."""
    import threading

    data = WELLFORMED["many_entries"]()
    extractor = Extractor(tmp_path / "staging", writers=True)
    parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)
    extractor.handle_all(parser.feed(data[: len(data) // 2]))  # entries finished, none drained yet
    assert extractor._queue.in_flight or extractor._queue.batch.files
    interrupted = threading.Event()
    real_wait = threading.Event.wait

    def wait_once_interrupted(self: threading.Event, timeout: float | None = None) -> bool:
        if not interrupted.is_set():
            interrupted.set()
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", wait_once_interrupted)
    with pytest.raises(KeyboardInterrupt):
        extractor.drain()
    monkeypatch.undo()
    assert interrupted.is_set()
    extractor.drain()  # nothing failed: a later drain (the checkpoint's) goes through
    expected = expected_tree(data)
    finished = {e.name for e in parser.finished_entries if not e.name.endswith("/")}
    assert finished <= set(extractor.files)
    for name in finished:
        staged = extractor.files[name]
        assert staged.sha256 == hashlib.sha256(expected[name][0]).hexdigest(), name
    extractor.close()


def _small_files() -> bytes:
    return make_wheel({f"demo/p{i // 50}/m{i:03d}.py": f"N = {i}\n".encode() * (i % 40) for i in range(300)})


def _extract_from_memory(data: bytes, extractor: Extractor, step: int = 4096) -> None:
    parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)
    for position in range(0, len(data), step):
        parse_block(parser, extractor, data[position : position + step])
    parse_block(parser, extractor, b"")
    extractor.close()


def test_packed_entries_past_the_memory_budget_are_read_back_from_the_source(tmp_path: Path) -> None:
    """With no memory budget left, every packed entry goes to the writers as an offset into the source (the
    partial file of a download), and they read it back: the same files, the same digests."""
    data = _small_files()
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, size: int) -> bytes:
        reads.append((offset, size))
        return data[offset : offset + size]

    extractor = Extractor(tmp_path / "staging", writers=True, max_pending=0, source=read_at)
    _extract_from_memory(data, extractor)
    expected = expected_tree(data)
    assert set(extractor.files) == set(expected)
    for name, (content, _executable) in expected.items():
        assert (tmp_path / "staging" / name).read_bytes() == content
        assert extractor.files[name].sha256 == hashlib.sha256(content).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        stored = sorted(
            (
                i.header_offset + 30 + len(i.filename.encode()) + len(i.extra),
                i.compress_size,
            )  # data offset, size
            for i in archive.infolist()
            if i.compress_size and not i.is_dir()
        )
    assert sorted(reads) == stored  # every packed entry with bytes, each read once, exactly its data


def test_bytes_read_back_are_verified_like_any_others(tmp_path: Path) -> None:
    """The writers inflate and CRC-check what they read back: a source that returns other bytes is caught, the
    entry named, and its file never created."""
    data = _small_files()

    def read_at(offset: int, size: int) -> bytes:
        return bytes(size)  # zeros: not the deflate stream that was there

    extractor = Extractor(tmp_path / "staging", writers=True, max_pending=0, source=read_at)
    with pytest.raises((ChecksumMismatch, CorruptData, SizeMismatch)) as caught:
        _extract_from_memory(data, extractor)
    assert caught.value.entry is not None
    assert caught.value.entry.startswith("demo/")
    assert not (tmp_path / "staging" / caught.value.entry).exists()


def test_reading_back_past_the_end_of_a_partial_file_is_an_error(tmp_path: Path) -> None:
    partial = PartialFile(tmp_path / "w.part")
    try:
        partial.write(b"0123456789")
        assert partial.read_at(2, 5) == b"23456"
        assert partial.read_at(10, 0) == b""
        with pytest.raises(OSError, match="ends before byte 12"):
            partial.read_at(8, 4)
    finally:
        partial.close()


@pytest.mark.parametrize("name", sorted(WELLFORMED))
def test_a_verify_only_extractor_records_what_the_writing_one_writes_and_writes_nothing(
    name: str, tmp_path: Path
) -> None:
    """``download``'s extractor: every entry inflated, checked and hashed as an install's is, nothing created."""
    data = WELLFORMED[name]()
    records = {}
    for verify_only in (False, True):
        root = tmp_path / ("verified" if verify_only else "written")
        extractor = Extractor(root, writers=True, verify_only=verify_only)
        parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)
        for pos in range(0, len(data), 65536):
            parse_block(parser, extractor, data[pos : pos + 65536])
        parse_block(parser, extractor, b"")
        extractor.close()
        records[verify_only] = dict(extractor.files)
    assert records[True] == records[False]
    assert list((tmp_path / "verified").iterdir()) == []
