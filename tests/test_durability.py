"""``unpack._durability``: one ``syncfs`` of the staging file system, and its fallback where there is none."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fixtures.wellformed import make_wheel
from wheelstream.unpack import _durability
from wheelstream.unpack._extract import Extractor
from wheelstream.zip import ZipStreamParser


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``os.fsync`` and ``os.sync`` still run, and say so."""
    seen: list[str] = []
    real_fsync, real_sync = os.fsync, getattr(os, "sync", None)

    def fsync(fd: int) -> None:
        seen.append("fsync")
        real_fsync(fd)

    def sync() -> None:
        seen.append("sync")
        if real_sync is not None:
            real_sync()

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "sync", sync, raising=False)
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_on_linux_one_syncfs_is_all_it_takes(tmp_path: Path, calls: list[str]) -> None:
    assert _durability._load_syncfs() is not None
    _durability.sync_file_system(str(tmp_path))
    assert calls == []


def test_without_syncfs_it_falls_back_to_fsync_and_sync(
    tmp_path: Path, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_durability, "_SYNCFS", None)
    _durability.sync_file_system(str(tmp_path))
    assert calls == ["fsync", "sync"]


def test_a_failing_syncfs_falls_back_too(
    tmp_path: Path, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_durability, "_SYNCFS", lambda fd: -1)
    _durability.sync_file_system(str(tmp_path))
    assert calls == ["fsync", "sync"]


def test_syncfs_is_only_looked_for_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _durability._load_syncfs() is None


def test_an_extractor_syncs_through_the_fallback(
    tmp_path: Path, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_durability, "_SYNCFS", None)
    files = {f"demo/m{i}.py": f"N = {i}\n".encode() for i in range(100)}
    data = make_wheel(files)
    extractor = Extractor(tmp_path / "staging", writers=True)
    parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)
    try:
        extractor.handle_all(parser.feed(data))
        extractor.sync()
        assert calls == ["fsync", "sync"]
        assert all(extractor.files[name].sha256 for name in files)
        assert {n: (tmp_path / "staging" / n).read_bytes() for n in files} == files
    finally:
        extractor.close()
