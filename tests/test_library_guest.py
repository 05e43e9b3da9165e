"""A library is a guest in its caller's process: ``wheelstream.install`` of several wheels forks nothing
unless the caller asks for worker processes (the CLI, which owns its process, does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_install_support import build_wheel

import wheelstream
from wheelstream.errors import UsageError

# Run in a fresh interpreter: one thread (so processes would be possible), and at-fork hooks that count.
_SCRIPT = """
import os, sys
forks = []
os.register_at_fork(before=lambda: forks.append(os.getpid()))
import wheelstream
kw = {} if sys.argv[1] == "default" else {"workers": sys.argv[1]}
result = wheelstream.install(sys.argv[4:], sys.argv[2], cache_dir=sys.argv[3], **kw)
assert len(result.wheels) == len(sys.argv[4:])
print(len(forks))
"""


@pytest.fixture
def wheels(tmp_path: Path) -> list[str]:
    return [
        str(build_wheel(tmp_path / "w", f"guest{i}-1.0-py3-none-any.whl", {f"guest{i}.py": b"x = 1\n"}))
        for i in range(3)
    ]


def _forks(workers: str, wheels: list[str], tmp_path: Path) -> int:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _SCRIPT,
            workers,
            str(tmp_path / f"t-{workers}"),
            str(tmp_path / "cache"),
            *wheels,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "WHEELSTREAM_PROCESSES"},
        timeout=120,
    )
    return int(proc.stdout.strip())


def test_installing_several_wheels_forks_nothing_by_default(wheels: list[str], tmp_path: Path) -> None:
    assert _forks("default", wheels, tmp_path) == 0
    assert _forks("threads", wheels, tmp_path) == 0
    assert sorted(p.name for p in (tmp_path / "t-default").glob("guest*.py")) == [
        "guest0.py",
        "guest1.py",
        "guest2.py",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")
def test_asking_for_processes_forks_them(wheels: list[str], tmp_path: Path) -> None:
    """The other side: the same count sees the forks when they are asked for (so the test above can fail)."""
    assert _forks("processes", wheels, tmp_path) >= 2


def test_an_unknown_workers_value_is_a_usage_error(wheels: list[str], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown workers 'forks'"):
        wheelstream.install(wheels, tmp_path / "t", cache_dir=tmp_path / "c", workers="forks")  # type: ignore[arg-type]
