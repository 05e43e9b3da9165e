"""Locales, encodings and paths that are not plain UTF-8: every case is one line on stderr (docs/cli.md), never a
traceback, and a result printed is the path as the file system has it. Real subprocesses, real venvs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, ws
from test_env_support import make_venv

from wheelstream.testing import FaultServer
from wheelstream.testing._wheel import wheel_archive

CONSOLE = "[console_scripts]\nuni-run = uni:main\n"
UNI = {
    "uni/__init__.py": b"def main():\n    print('ran')\n",
    "uni/caf\u00e9.py": b"x = 1\n",
    "uni/\u4e2d.txt": b"z\n",
}


def _uni(directory: Path) -> Path:
    wheel = directory / "uni-1.0-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    wheel.write_bytes(wheel_archive(UNI, name="uni", version="1.0", entry_points=CONSOLE))
    return wheel


def test_entry_names_the_file_system_encoding_cannot_hold_are_one_line_and_keep_the_download(
    tmp_path: Path, server: FaultServer
) -> None:
    """``LC_ALL=C PYTHONUTF8=0``: the file-system encoding is ASCII, and ``uni/café.py`` was a
    ``UnicodeEncodeError`` traceback. The archive is sound: the download is kept, and a UTF-8 rerun resumes."""
    wheel = _uni(tmp_path / "w")
    url = server.add_file(wheel.name, wheel.read_bytes())
    cache, target = tmp_path / "c", tmp_path / "t"
    run = ws("install", url, "-t", str(target), cache=cache, env={"LC_ALL": "C", "PYTHONUTF8": "0"})
    assert run.code == 1, run.err
    line = run.error_line(alone=True)
    assert "this entry's name cannot be a file name here: the file-system encoding is ascii" in line, line
    assert "Traceback" not in run.err
    assert not target.exists()
    run = ws("install", url, "-t", str(target), cache=cache, env={"LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"})
    assert run.code == 0, run.err
    assert (target / "uni" / "caf\u00e9.py").is_file()


def test_printed_paths_are_the_file_systems_bytes(tmp_path: Path) -> None:
    """``download -d DIR`` and ``cache dir`` print paths for scripts: click stripped what looked like an ANSI
    sequence when stdout was not a terminal (``dl\\x1b[1mX`` printed as ``dlX``), wrote ``?`` on an ASCII
    stream, and a Latin-1 stdout with a CJK path was a traceback."""
    wheel = _uni(tmp_path / "w")
    dest = tmp_path / "dl\x1b[1mX"
    run = subprocess.run(
        [*_python_m(), "download", "-q", str(wheel), "-d", str(dest), "--cache-dir", str(tmp_path / "c")],
        capture_output=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == os.fsencode(dest / wheel.name) + b"\n"
    cache = tmp_path / "c \u4e2d \u00e9"
    for env in ({"PYTHONIOENCODING": "latin-1"}, {"LC_ALL": "C", "PYTHONUTF8": "0"}):
        run = subprocess.run(
            [*_python_m(), "cache", "dir", "--cache-dir", str(cache)],
            capture_output=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, **env},
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == os.fsencode(cache) + b"\n"
    run = subprocess.run(
        [*_python_m(), "cache", "list", "--cache-dir", str(cache)],
        capture_output=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "latin-1"},
    )
    assert run.returncode == 1
    assert run.stderr.startswith(b"error: cannot write the output: 'latin-1' codec can't encode"), run.stderr
    assert b"Traceback" not in run.stderr


def test_an_interpreter_a_script_cannot_name_is_one_line_and_the_target_untouched(tmp_path: Path) -> None:
    """A venv whose path is not UTF-8: no ``#!`` line can name it (Python reads a script as UTF-8), and writing
    the console script's was a ``UnicodeEncodeError`` traceback."""
    venv = make_venv(tmp_path / "v")
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/v\xff"))
    venv.rename(odd)
    wheel = _uni(tmp_path / "w")
    target = tmp_path / "t"
    run = ws(
        "install",
        str(wheel),
        "-t",
        str(target),
        "--python",
        str(odd / "bin" / "python"),
        cache=tmp_path / "c",
    )
    assert run.code == 2, run.err
    assert "a script's #! line cannot name the interpreter" in run.error_line(alone=True)
    assert not target.exists() or not any(target.iterdir())


def test_a_venv_path_is_read_back_in_this_processs_utf8_mode(tmp_path: Path) -> None:
    """``PYTHONUTF8=1`` in a Latin-1 locale: the probe ran isolated (``-I`` drops ``PYTHONUTF8``), decoded the
    venv's ``é`` as Latin-1, and this process wrote ``Ã©`` into the launcher's ``#!`` line (exit 0, a console
    script that cannot start)."""
    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run(
        ["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(locales / "en_US.ISO-8859-1")],
        capture_output=True,
        check=False,
    )
    if not (locales / "en_US.ISO-8859-1").is_dir():
        pytest.skip(f"no Latin-1 locale can be made here: {made.stderr!r}")
    venv = make_venv(tmp_path / "v \u00e9")
    wheel = _uni(tmp_path / "w")
    target = tmp_path / "t"
    env = {"LOCPATH": str(locales), "LC_ALL": "en_US.ISO-8859-1", "PYTHONUTF8": "1"}
    python = str(venv / "bin" / "python")
    run = ws("install", str(wheel), "-t", str(target), "--python", python, cache=tmp_path / "c", env=env)
    assert run.code == 0, run.err
    assert os.fsencode(venv) + b"/bin/python" in (target / "bin" / "uni-run").read_bytes()
    ran = subprocess.run(
        [str(target / "bin" / "uni-run")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert ran.stdout == "ran\n", ran.stderr


def _python_m() -> list[str]:
    import sys

    return [sys.executable, "-m", "wheelstream"]
