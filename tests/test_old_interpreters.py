"""An interpreter older than the probe can run in (our ``packaging``'s syntax needs Python 3.10) is refused in
one line that says so; it failed with the probe's bare ``SyntaxError: invalid syntax``."""

from __future__ import annotations

import glob
import stat
from pathlib import Path

import pytest
from conftest import ws

from wheelstream.installer import probe_interpreter
from wheelstream.testing import build_wheel


def fake_python(tmp_path: Path, version: str) -> Path:
    """A stand-in for an old interpreter: the probe fails on its syntax, the version query answers."""
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-E" ]; then printf "{version}"; exit 0; fi\n'
        'echo "  File \\"tags.py\\", line 932" >&2\n'
        'echo "SyntaxError: invalid syntax" >&2\n'
        "exit 1\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python


def test_an_interpreter_older_than_3_10_is_refused_saying_so(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "3.9")
    filename, data = build_wheel("demo", "1.0")
    (tmp_path / filename).write_bytes(bytes(data))
    run = ws(
        "install",
        "--python",
        str(python),
        "--target",
        str(tmp_path / "t"),
        str(tmp_path / filename),
        cache=tmp_path / "c",
    )
    assert run.code == 2, run.err
    assert run.error_line() == (
        f"error: cannot use interpreter {str(python)!r}: it is Python 3.9; wheelstream installs for Python 3.10 "
        "and newer"
    )
    assert not (tmp_path / "t").exists()


def test_a_probe_failing_for_another_reason_keeps_its_own_message(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "3.12")
    with pytest.raises(Exception, match="SyntaxError: invalid syntax"):
        probe_interpreter(str(python))


@pytest.mark.parametrize(
    "found", sorted(glob.glob("/root/.pyenv/versions/3.[6-9].*/bin/python"))[:2] or [None]
)
def test_a_real_old_interpreter_is_refused_saying_so(found: str | None, tmp_path: Path) -> None:
    if found is None:
        pytest.skip("no Python older than 3.10 here")
    with pytest.raises(
        Exception, match=r"it is Python 3\.[6-9]; wheelstream installs for Python 3\.10 and newer"
    ):
        probe_interpreter(found)
