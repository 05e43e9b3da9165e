"""The plugin works in a fresh project (entry point only, no conftest), and so does the CLI server."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wheelstream.testing import FaultPlan, FaultServer, build_wheel
from wheelstream.testing.plugin import WheelSite

pytest_plugins = ["pytester"]


def test_fixtures_from_a_fresh_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx
        from wheelstream.testing import Cut, FaultPlan

        def test_cut_then_resume(faulty_server):
            url = faulty_server.add_file("a-1.0-py3-none-any.whl", b"x" * 5000,
                                         plan=FaultPlan(Cut(after=100, requests=1)))
            try:
                httpx.get(url)
            except httpx.RemoteProtocolError:
                pass
            r = httpx.get(url, headers={"Range": "bytes=100-"})
            assert r.status_code == 206 and len(r.content) == 4900
            assert faulty_server.bytes_sent("a-1.0-py3-none-any.whl") == 5000

        def test_wheel_server(wheel_server):
            assert httpx.get(wheel_server.url).content == wheel_server.data
        """
    )
    # A subprocess loads plugins exactly as a user's `pytest` would: from the pytest11 entry point.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert not list(pytester.path.glob("conftest.py"))


def test_wheel_server_fixture(wheel_server: WheelSite) -> None:
    wheel_server.server.set_plan(wheel_server.name, FaultPlan())
    assert wheel_server.name == "demo-1.0-py3-none-any.whl"
    assert httpx.get(wheel_server.url).content == wheel_server.data


def test_faulty_server_fixture_is_started(faulty_server: FaultServer) -> None:
    assert httpx.get(faulty_server.url + "/simple/").status_code == 200


def _wheelstream() -> list[str]:
    script = Path(sys.executable).with_name("wheelstream")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from wheelstream.cli import main; main()"]


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[tuple[str, bytes, str]]:
    name, data = build_wheel("Demo_Pkg", "2.0", payload_size=50_000)
    (tmp_path / name).write_bytes(data)
    cmd = [*_wheelstream(), "testbed", "serve", str(tmp_path), "--port", "0", "--cut", "50%@1", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else url
        yield url, data, name
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_cli_serves_files_with_faults_and_an_index(cli_server: tuple[str, bytes, str]) -> None:
    url, data, name = cli_server
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url + name)  # request 1: cut at 50 %
    assert httpx.get(url + name).content == data  # request 2: out of scope
    index = httpx.get(url + "simple/")
    assert 'href="demo-pkg/"' in index.text
    page = httpx.get(url + "simple/demo-pkg/")
    assert f"../../{name}#sha256={hashlib.sha256(data).hexdigest()}" in page.text
    j = httpx.get(url + "simple/demo-pkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert j.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    assert j.json()["files"][0]["filename"] == name
    assert httpx.get(url + "simple/Demo_Pkg/", follow_redirects=True).url.path == "/simple/demo-pkg/"


def test_cli_rejects_a_bad_fault(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [*_wheelstream(), "testbed", "serve", str(tmp_path), "--fault", "explode"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 2
    assert "unknown fault" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--change-after", "1@3"],
        ["-f", "change-after=1@3"],
        ["--status-seq", "503@2"],
        ["-f", "status-seq=503,429:1@2"],
    ],
)
def test_cli_refuses_a_scope_on_faults_whose_argument_is_the_scope(tmp_path: Path, args: list[str]) -> None:
    """``--change-after 1@3`` served the changed file from request 2 and ``--status-seq 503@2`` answered
    request 1 with 503: the suffix was accepted and ignored. It is a usage error now, before anything serves."""
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [*_wheelstream(), "testbed", "serve", str(tmp_path), "--port", "0", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=15, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""  # no URL: it never served
    [line] = [line for line in proc.stderr.splitlines() if "@REQUESTS" in line]
    name = args[1].partition("=")[0] if args[0] == "-f" else args[0].removeprefix("--")
    assert f"{name} takes no @REQUESTS" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stall", "100:-1"], "Stall(seconds=) must be a finite number >= 0"),
        (["--stall", "100"], "missing argument (stall=N:SECONDS[@REQUESTS])"),
        (["--status", "99"], "Status(code=) must be a final status, 200-599"),
        (["--corrupt", "-1"], "not a size"),
    ],
)
def test_cli_refuses_values_it_cannot_serve(tmp_path: Path, args: list[str], message: str) -> None:
    """``--stall 100:-1`` started and then killed each response with a ValueError; ``--status 99`` sent
    "HTTP/1.1 99"; ``--stall 100`` said "list index out of range". Each is a usage error before serving."""
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [*_wheelstream(), "testbed", "serve", str(tmp_path), "--port", "0", *args]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=15, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert message in proc.stderr


def test_cli_says_in_one_line_that_its_port_is_taken(tmp_path: Path) -> None:
    """A busy port was a traceback ending in ``OSError: [Errno 98]``."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [*_wheelstream(), "testbed", "serve", str(tmp_path), "--port", str(port)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=15)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_stops_cleanly_on_a_signal_right_after_the_url(tmp_path: Path, sig: signal.Signals) -> None:
    """A script that reads the URL and stops the server at once: the handlers used to be installed after the
    URL was printed, so about one run in five SIGINT gave the install command's "interrupted" (exit 130) and
    SIGTERM killed it without "stopped" (exit -15)."""
    cmd = [*_wheelstream(), "testbed", "serve", str(tmp_path), "--port", "0", "--cut", "50%@1"]
    for _ in range(10):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert (proc.returncode, err.splitlines()[-1:]) == (0, ["stopped"]), err
        assert err.index("faults: FaultPlan(Cut(") < err.index("stopped")


def test_public_names_are_sorted_and_importable() -> None:
    from wheelstream import testing

    assert testing.__all__ == sorted(testing.__all__)
    for name in testing.__all__:
        assert getattr(testing, name) is not None
