"""``make demo`` stays green: run ``demo/run_demo.py`` as a subprocess, as the Makefile does (~10 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(90)
def test_demo_runs_green() -> None:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run_demo.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=80,
        check=False,
        cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "resumed at" in out
    assert "(saved " in out
    assert "error: bigdemo-1.0-py3-none-any.whl: interrupted " in out
    assert "run the same command again to resume" in out
    assert "ok: the rerun asked only for what was missing" in out
    assert "bigdemo 1.0: corpus 28.0 MB" in out
