"""The entry cap (issue #19, "memory grows with the entry count"): a wheel of more entries than allowed is
refused with one line, through every way a wheel arrives, before anything reaches the target."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ws
from test_install_support import build_wheel, snapshot

import wheelstream
from wheelstream.errors import RetriesExhausted, UnpackedLimitExceeded, UsageError
from wheelstream.testing import Cut, FaultPlan, FaultServer, Status, since
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


def test_a_limit_the_caller_chose_keeps_the_partial_and_the_cached_wheel(
    server: FaultServer, tmp_path: Path
) -> None:
    """A limit is the caller's, not a fault of the bytes: a call with too small a one deleted the partial
    download (the next call fetched it all again) and the cache's wheel file."""
    data = _many(tmp_path / "w", 200).read_bytes()
    plan = FaultPlan(Cut(percent=60, requests=1), Status(503, requests=since(2)))
    url = server.add_file("many-1.0-py3-none-any.whl", data, plan=plan)
    cache = tmp_path / "c"
    with pytest.raises(RetriesExhausted):
        wheelstream.install([url], tmp_path / "t", cache_dir=cache, retries=1)
    server.set_plan("many-1.0-py3-none-any.whl", FaultPlan())
    (partial,) = (cache / "partial").glob("*.whl.part")
    kept = partial.stat().st_size
    assert kept > len(data) // 2
    for limits in ({"max_entries": 20}, {"max_unpacked_size": 1000}):
        with pytest.raises(UnpackedLimitExceeded):
            wheelstream.install([url], tmp_path / "t", cache_dir=cache, **limits)  # type: ignore[arg-type]
        assert partial.stat().st_size >= kept, limits
    server.clear_log()
    result = wheelstream.install([url], tmp_path / "t", cache_dir=cache)
    assert result.wheels[0].resumed_at is not None
    assert [r.range for r in server.requests] == [f"bytes={result.wheels[0].resumed_at}-"]
    # The cache's wheel file (kept by the default move install) survives a smaller limit too.
    (wheel_file,) = (cache / "wheels").rglob("*.whl")
    with pytest.raises(UnpackedLimitExceeded):
        wheelstream.install([url], tmp_path / "t2", cache_dir=cache, max_entries=20)
    assert wheel_file.is_file()
    server.clear_log()
    wheelstream.install([url], tmp_path / "t2", cache_dir=cache)
    assert not server.requests or all(r.status in (200, 304) and r.bytes_sent == 0 for r in server.requests)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_entries": 0}, "max_entries must be a whole number of 1 or more, not 0"),
        ({"max_unpacked_size": -1}, "max_unpacked_size must be a whole number of 1 or more, not -1"),
        ({"max_entries": None}, "max_entries must be a whole number of 1 or more, not None"),
        ({"max_unpacked_size": 1.5}, "max_unpacked_size must be a whole number of 1 or more, not 1.5"),
        ({"timeout": float("inf")}, "timeout must be a number of seconds above 0 and below 1e9, not inf"),
    ],
)
def test_limits_out_of_range_are_refused_before_anything_is_fetched(
    server: FaultServer, tmp_path: Path, limits: dict[str, object], message: str
) -> None:
    url = server.add_file("many-1.0-py3-none-any.whl", _many(tmp_path / "w", 5).read_bytes())
    for call in (wheelstream.install, wheelstream.download):
        with pytest.raises(UsageError) as raised:
            call([url], tmp_path / "t", cache_dir=tmp_path / "c", **limits)  # type: ignore[arg-type]
        assert str(raised.value) == message
    assert not server.requests
