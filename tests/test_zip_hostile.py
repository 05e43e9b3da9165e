"""Every hostile archive (DESIGN §4) is rejected with its own error type, one line naming entry and offset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.hostile import HOSTILE
from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream._download import DownloadOptions, unpack_local
from wheelstream._extract import Extractor
from wheelstream.zip import DEFAULT_MAX_UNPACKED_SIZE, ZipStreamParser


def feed_through_extractor(data: bytes, staging: Path, chunk: int, limit: int | None) -> None:
    parser = ZipStreamParser(max_unpacked_size=limit or DEFAULT_MAX_UNPACKED_SIZE)
    extractor = Extractor(staging)
    for pos in range(0, len(data), chunk):
        extractor.handle_all(parser.feed(data[pos : pos + chunk]))
    extractor.handle_all(parser.feed(b""))


def all_paths(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, names in os.walk(root) for n in dirs + names}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("chunk", [7, 65536])
def test_hostile_archive_is_rejected_with_its_error(name: str, chunk: int, tmp_path: Path) -> None:
    case = HOSTILE[name]
    staging = tmp_path / "staging"
    error_type = getattr(errors, case.error)
    with pytest.raises(error_type) as info:
        feed_through_extractor(case.data, staging, chunk, case.max_unpacked_size)
    message = str(info.value)
    assert "\n" not in message
    assert "offset" in message
    if case.entry is not None:
        assert repr(case.entry) in message
    outside = all_paths(tmp_path) - {"staging"} - {f"staging{os.sep}{p}" for p in all_paths(staging)}
    assert not outside, f"written outside staging: {outside}"


@pytest.mark.parametrize("name", ["bomb", "path_dotdot", "crc_mismatch", "trailing_bytes"])
def test_local_unpack_names_the_wheel_and_leaves_no_staging(name: str, tmp_path: Path) -> None:
    case = HOSTILE[name]
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(case.data)
    cache = Cache.at(tmp_path / "cache")
    with pytest.raises(getattr(errors, case.error)) as info:
        unpack_local(wheel, cache=cache, options=DownloadOptions())
    assert str(info.value).startswith("demo-1.0-py3-none-any.whl: ")
    assert not any((tmp_path / "cache" / "staging").iterdir())
    assert not any((tmp_path / "cache" / "wheels").iterdir())


def test_bomb_stops_inflating_right_past_the_declared_size() -> None:
    case = HOSTILE["bomb"]
    parser = ZipStreamParser()
    produced = 0
    with pytest.raises(errors.SizeMismatch):
        for event in parser.feed(case.data):
            produced += len(getattr(event, "data", b""))
    assert produced <= 1024 + 1
