"""Progress under a pseudo-terminal: the rich bars appear, and so does the "resumed at" marker.

``pexpect`` gives the child a real pty, so rich sees a terminal exactly as in an interactive shell; the same
command with a pipe (``test_cli.py``) draws no bars.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from wheelstream.testing import Cut, FaultPlan, FaultServer, Throttle, build_wheel

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def spawn(args: list[str], cache: Path) -> tuple[int, str]:
    env = {**os.environ, "WHEELSTREAM_CACHE_DIR": str(cache), "COLUMNS": "160", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wheelstream", *args],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 160),
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None
    return child.exitstatus, ANSI.sub("", child.before or "")


@pytest.mark.timeout(120)
def test_bars_and_resume_marker_under_a_pty(tmp_path: Path) -> None:
    filename, data = build_wheel("demo", "1.0", payload_size=3 * 1024 * 1024)
    with FaultServer() as server:
        url = server.add_file(
            filename, data, plan=FaultPlan(Throttle(4 * 1024 * 1024), Cut(percent=40, requests=1))
        )
        code, screen = spawn(["install", url, "--target", str(tmp_path / "t")], tmp_path / "cache")
    assert code == 0, screen
    assert re.search(r"demo-1\.0-py3-none-any\.whl: resumed at 1\.3 MB", screen), screen
    assert "━" in screen  # rich's bar
    assert re.search(r"\d+(\.\d+)?/3\.1 MB", screen), screen  # bytes column: decimal, as the messages
    assert re.search(r"\d+ files", screen), screen  # entries column
    assert "Installed 1 wheel in" in screen


def test_no_progress_and_quiet_under_a_pty(tmp_path: Path) -> None:
    filename, data = build_wheel("demo", "1.0", payload_size=256 * 1024)
    with FaultServer() as server:
        url = server.add_file(filename, data)
        code, screen = spawn(["install", url, "-t", str(tmp_path / "a"), "--no-progress"], tmp_path / "c1")
        assert code == 0
        assert "━" not in screen
        assert "Installed 1 wheel in" in screen
        code, screen = spawn(["install", url, "-t", str(tmp_path / "b"), "-q"], tmp_path / "c2")
        assert code == 0, screen
        assert screen.strip() == "", screen
