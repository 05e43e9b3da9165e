"""``--connections N`` / ``connections=``: from the command line and the library down to
``DownloadOptions.connections`` (segmented downloads, issue #24).

* In-process (``wheelstream.cli.main``): every command that fetches (install, download, ``install -r
  pylock.toml``, sync) hands the value it was given — or None, automatic — to the ``DownloadOptions`` its
  downloads run with; a value outside 1..8 is a usage error (exit 2) on the command line and a ``UsageError``
  in the library, before anything is fetched.
* Through a real subprocess against the test bed (so with worker processes, which get the options pickled):
  ``--connections 1`` fetches a big wheel with one GET; ``--connections 3`` splits it over ranged requests,
  never more than 3 at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ws

import wheelstream
from wheelstream import _fetch_many
from wheelstream.cli import main
from wheelstream.errors import UsageError
from wheelstream.fetch import DownloadOptions
from wheelstream.testing import FaultPlan, FaultServer, Gzip, Throttle, build_wheel

_MiB = 1 << 20
# Big enough to be split over three connections: the first request's rest is halved for the second, and a half
# is halved again for the third, each part at least ``piece_bytes`` (4 MiB).
BIG = 20 * _MiB
_big_wheels: dict[str, tuple[str, bytes]] = {}


def big_wheel() -> tuple[str, bytes]:
    """``(filename, bytes)`` of a wheel of about ``BIG`` bytes, its payload incompressible (stored random
    bytes); built once per process."""
    if "big" not in _big_wheels:
        _big_wheels["big"] = build_wheel("big", "1.0", payload_size=BIG, seed=24)
    return _big_wheels["big"]


# -- the value reaches DownloadOptions -------------------------------------------------------------------------


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[DownloadOptions]:
    """Every ``DownloadOptions`` the library builds for a call's downloads, as they are built."""
    seen: list[DownloadOptions] = []

    def recording(**kwargs: Any) -> DownloadOptions:
        options = DownloadOptions(**kwargs)
        seen.append(options)
        return options

    monkeypatch.setattr(_fetch_many, "DownloadOptions", recording)  # where fetch_all builds them
    return seen


def run_main(*argv: str) -> int:
    """``wheelstream *argv`` in this process; its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    assert isinstance(code, int)
    return code


def _local_wheel(tmp_path: Path) -> Path:
    filename, data = build_wheel("demo", "1.0", payload_size=4096)
    path = tmp_path / "wheels" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _lock(tmp_path: Path) -> Path:
    wheel = _local_wheel(tmp_path)
    data = wheel.read_bytes()
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "wheelstream tests"\n\n[[packages]]\nname = "demo"\n'
        f'version = "1.0"\nwheels = [{{ path = "wheels/{wheel.name}", size = {len(data)}, '
        f'hashes = {{ sha256 = "{hashlib.sha256(data).hexdigest()}" }} }}]\n'
    )
    return lock


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "install": lambda tmp: ["install", str(_local_wheel(tmp)), "--target", str(tmp / "target")],
    "download": lambda tmp: ["download", str(_local_wheel(tmp)), "--dest", str(tmp / "dest")],
    "install-lock": lambda tmp: ["install", "-r", str(_lock(tmp)), "--target", str(tmp / "target")],
    "sync": lambda tmp: ["sync", str(_lock(tmp)), "--prefix", str(tmp / "prefix")],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("connections", [None, 1, 3, 8])
def test_every_fetching_command_passes_connections_on(
    command: str, connections: int | None, built: list[DownloadOptions], tmp_path: Path
) -> None:
    given = [] if connections is None else ["--connections", str(connections)]
    argv = [*COMMANDS[command](tmp_path), *given, "--cache-dir", str(tmp_path / "cache"), "-q"]
    assert run_main(*argv) == 0
    assert [options.connections for options in built] == [connections]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("bad", ["0", "9", "-1", "many"])
def test_the_command_line_refuses_a_count_outside_1_to_8(
    command: str, bad: str, built: list[DownloadOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*COMMANDS[command](tmp_path), "--connections", bad, "--cache-dir", str(tmp_path / "cache")]
    assert run_main(*argv) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--connections'" in err, err
    assert "Traceback" not in err
    assert built == []  # refused before any download was set up


def test_help_shows_the_option_and_its_range(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("install", "download", "sync"):
        assert run_main(command, "--help") == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "--connections N Connections per big wheel [default: automatic: up to 4" in out, out
        assert "[1<=x<=8]" in out


@pytest.mark.parametrize("bad", [0, 9, -1, True])
def test_the_library_refuses_a_count_outside_1_to_8(bad: int, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/demo-1.0-py3-none-any.whl"  # never asked: the check comes first
    calls: list[Callable[[], object]] = [
        lambda: wheelstream.download([url], tmp_path / "dest", cache_dir=tmp_path / "c", connections=bad),
        lambda: wheelstream.install([url], tmp_path / "target", cache_dir=tmp_path / "c", connections=bad),
    ]
    for call in calls:
        with pytest.raises(UsageError) as refused:
            call()
        assert str(refused.value) == (
            f"connections must be between 1 and 8 (or None for automatic), not {bad!r}"
        )
        assert refused.value.exit_code == 2
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "target").exists()


def test_the_lock_api_passes_connections_on(built: list[DownloadOptions], tmp_path: Path) -> None:
    lock = _lock(tmp_path)
    wheelstream.install_lock(lock, tmp_path / "t", cache_dir=tmp_path / "c", connections=2)
    env = wheelstream.find_environment(prefix=str(tmp_path / "prefix"))
    wheelstream.sync(lock, env, cache_dir=tmp_path / "c", connections=5)
    assert [options.connections for options in built] == [2, 5]
    with pytest.raises(UsageError, match="not 12"):
        wheelstream.install_lock(lock, tmp_path / "t2", cache_dir=tmp_path / "c", connections=12)


# -- what the server sees ---------------------------------------------------------------------------------------


def _downloaded(dest: Path, filename: str, data: bytes) -> None:
    assert hashlib.sha256((dest / filename).read_bytes()).digest() == hashlib.sha256(data).digest()


def test_one_connection_fetches_a_big_wheel_with_one_get(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    filename, data = big_wheel()
    url = server.add_file(filename, data, plan=FaultPlan(Throttle(40 * _MiB)))
    run = ws("download", url, "--dest", str(tmp_path / "dest"), "--connections", "1", cache=cache)
    assert run.code == 0, run.err
    _downloaded(tmp_path / "dest", filename, data)
    requests = server.requests_for(filename)
    assert [(r.method, r.range) for r in requests] == [("GET", None)], [r.summary() for r in requests]


def test_three_connections_split_a_big_wheel_three_ways_at_most(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    filename, data = big_wheel()
    url = server.add_file(filename, data, plan=FaultPlan(Throttle(16 * _MiB)))
    # A second wheel: two downloads run in worker processes, which get the options pickled.
    small_name, small = build_wheel("small", "1.0", payload_size=1500)
    small_url = server.add_file(small_name, small)
    run = ws(
        "download", url, small_url, "--dest", str(tmp_path / "dest"), "--connections", "3", "-j", "2",
        cache=cache,
    )  # fmt: skip
    assert run.code == 0, run.err
    _downloaded(tmp_path / "dest", filename, data)
    _downloaded(tmp_path / "dest", small_name, small)
    requests = server.requests_for(filename)
    summary = [r.summary() for r in requests]
    assert requests[0].range == "bytes=0-4194303", summary  # the first request asks for one piece
    assert len([r for r in requests if r.range is not None]) >= 2, summary
    assert server.peak_in_flight(filename) == 3, summary
    assert [(r.method, r.range) for r in server.requests_for(small_name)] == [("GET", "bytes=0-4194303")]


def test_a_server_that_gzips_its_pieces_is_read_whole_on_one_connection(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``--connections 4`` asks for a first piece; a 206 gzip-encoded cannot be one (its ranges address the
    compressed bytes). The download goes on as one plain GET of the decoded body, instead of asking for the
    same piece until it gives up."""
    filename, data = big_wheel()
    url = server.add_file(filename, data, plan=FaultPlan(Gzip()))
    run = ws("download", url, "--dest", str(tmp_path / "dest"), "--connections", "4", cache=cache)
    assert run.code == 0, run.err
    _downloaded(tmp_path / "dest", filename, data)
    requests = server.requests_for(filename)
    assert [r.range for r in requests] == ["bytes=0-4194303", None], [r.summary() for r in requests]
