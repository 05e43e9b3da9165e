"""The entry cap (issue #19, "memory grows with the entry count"): a wheel of more entries than allowed is
refused with one line, through every way a wheel arrives, before anything reaches the target."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ws
from test_install_support import build_wheel, snapshot

import wheelstream
from wheelstream.errors import UnpackedLimitExceeded
from wheelstream.testing import FaultServer
from wheelstream.zip import DEFAULT_MAX_ENTRIES


def _many(directory: Path, count: int) -> Path:
    return build_wheel(directory, "many-1.0-py3-none-any.whl", {f"many/m{i}.py": b"" for i in range(count)})


@pytest.fixture
def target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    target.mkdir()
    (target / "mine.txt").write_text("mine\n")
    return target


def test_the_command_refuses_a_wheel_over_the_limit_in_one_line(tmp_path: Path, target: Path) -> None:
    wheel = _many(tmp_path / "w", 50)
    before = snapshot(target)
    run = ws("install", str(wheel), "--target", str(target), "--max-entries", "20", cache=tmp_path / "c")
    assert run.code == 1
    line = run.error_line(alone=True)
    assert line.startswith("error: many-1.0-py3-none-any.whl: archive has more than the 20-entry limit")
    assert snapshot(target) == before
    ok = ws("install", str(wheel), "--target", str(target), "--max-entries", "60", cache=tmp_path / "c")
    assert ok.code == 0, ok.err


def test_a_download_over_the_limit_fails_the_same_way(server: FaultServer, tmp_path: Path) -> None:
    url = server.add_file("many-1.0-py3-none-any.whl", _many(tmp_path / "w", 50).read_bytes())
    with pytest.raises(UnpackedLimitExceeded, match="more than the 20-entry limit"):
        wheelstream.download([url], tmp_path / "d", cache_dir=tmp_path / "c", max_entries=20)
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())
    result = wheelstream.download([url], tmp_path / "d", cache_dir=tmp_path / "c", max_entries=60)
    assert result.wheels[0].files_unpacked > 50


def test_the_default_leaves_room_for_the_biggest_real_wheels() -> None:
    assert (
        DEFAULT_MAX_ENTRIES >= 100_000
    )  # torch has ~12k entries; the biggest wheels known tens of thousands
