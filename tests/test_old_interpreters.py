"""Python 3.8 and 3.9 targets (``--python``), whose tags are worked out here (``installer/_old_pythons``: our
``packaging`` needs 3.10, so the probe sends the facts it would read there), and an older interpreter refused in
one line that says so (it failed with the probe's bare ``SyntaxError: invalid syntax``)."""

from __future__ import annotations

import dataclasses
import glob
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ws
from packaging.markers import default_environment
from packaging.tags import sys_tags

from wheelstream.errors import UsageError
from wheelstream.installer import _probe, find_environment, probe_interpreter
from wheelstream.installer._environment import _check_old_system_layout
from wheelstream.installer._old_pythons import tags_from_facts
from wheelstream.testing import build_wheel
from wheelstream.testing._wheel import wheel_archive


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


def test_an_interpreter_older_than_3_8_is_refused_saying_so(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "3.7")
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
        f"error: cannot use interpreter {str(python)!r}: it is Python 3.7; wheelstream installs for Python 3.8 "
        "and newer"
    )
    assert not (tmp_path / "t").exists()


def test_a_probe_failing_for_another_reason_keeps_its_own_message(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "3.12")
    with pytest.raises(Exception, match="SyntaxError: invalid syntax"):
        probe_interpreter(str(python))


OLD = sorted(glob.glob("/root/.pyenv/versions/3.[89].*/bin/python"))
OLDER = sorted(glob.glob("/root/.pyenv/versions/3.[67].*/bin/python"))


@pytest.mark.parametrize("found", OLDER[:2] or [None])
def test_a_real_interpreter_older_than_3_8_is_refused_saying_so(found: str | None) -> None:
    if found is None:
        pytest.skip("no Python 3.6 or 3.7 here")
    with pytest.raises(
        Exception, match=r"it is Python 3\.[67]; wheelstream installs for Python 3\.8 and newer"
    ):
        probe_interpreter(found)


def test_the_tags_worked_out_from_facts_are_packagings_own_for_this_interpreter() -> None:
    """The same builders, given what the probe tells of an old Python: for the running one, exactly
    ``sys_tags()`` in its order; and the marker environment spelt out is ``default_environment()``."""
    assert tags_from_facts(_probe._tag_facts(), sys.executable) == list(sys_tags())
    assert _probe._plain_marker_environment() == {k: str(v) for k, v in default_environment().items()}


def test_facts_of_another_platform_are_refused() -> None:
    facts = {**_probe._tag_facts(), "platform": "macosx-11.0-arm64", "platforms": None}  # as from a Mac
    with pytest.raises(
        Exception, match=r"older than 3\.10; wheelstream works out such a Python's tags only for"
    ):
        tags_from_facts(facts, "/x/python")


@pytest.mark.parametrize("found", OLD or [None])
def test_a_real_3_8_or_3_9_gets_the_tags_its_own_pip_computes(found: str | None) -> None:
    """The interpreter's own pip (its vendored, older packaging) as the oracle: every tag it lists is ours,
    and ours adds only ``cpXY-none-any`` (which newer packaging lists for every CPython, 3.11's too)."""
    if found is None:
        pytest.skip("no Python 3.8 or 3.9 here")
    interpreter = probe_interpreter(found)
    theirs = subprocess.run(
        [found, "-I", "-c", "from pip._vendor.packaging import tags; print(*tags.sys_tags(), sep=chr(10))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    ours = [str(tag) for tag in interpreter.tags]
    nodot = f"{interpreter.version[0]}{interpreter.version[1]}"
    assert set(theirs) <= set(ours)
    assert set(ours) - set(theirs) <= {f"cp{nodot}-none-any"}
    # the most preferred platform is this interpreter's own (packaging 26.3 puts linux_* before manylinux)
    assert ours[0].rpartition("-")[2] == str(next(iter(sys_tags()))).rpartition("-")[2]
    markers = interpreter.marker_environment()
    assert markers["python_version"] == f"{interpreter.version[0]}.{interpreter.version[1]}"


@pytest.mark.parametrize("found", OLD[-1:] or [None])
def test_an_old_venvs_own_manylinux_override_counts(found: str | None, tmp_path: Path) -> None:
    """PEP 600: a ``_manylinux`` module on the target's path that says no manylinux. Its platform tags are
    worked out in the target (packaging's ``_manylinux`` reads it there), not taken from this process."""
    if found is None:
        pytest.skip("no Python 3.8 or 3.9 here")
    venv = tmp_path / "venv"
    subprocess.run([found, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    before = [str(tag) for tag in probe_interpreter(str(venv / "bin" / "python")).tags]
    assert any("manylinux" in tag for tag in before)
    site = next(venv.glob("lib/python3.*/site-packages"))
    (site / "_manylinux.py").write_text("def manylinux_compatible(*args):\n    return False\n")
    # another name of the venv's interpreter: ``probe_interpreter`` keeps what it found per path
    after = [str(tag) for tag in probe_interpreter(str(venv / "bin" / "python3")).tags]
    assert [tag for tag in after if "manylinux" in tag] == []
    assert [tag for tag in before if "manylinux" not in tag] == after


@pytest.mark.parametrize("found", OLD or [None])
def test_a_3_8_or_3_9_venv_takes_an_install_a_launcher_and_bytecode_and_refuses_a_3_11_wheel(
    found: str | None, tmp_path: Path
) -> None:
    """As uv installs into it: a venv of an old Python, its packages importable there, its console script
    running under it, bytecode of its own version; a wheel built for this 3.11 refused on its tags."""
    if found is None:
        pytest.skip("no Python 3.8 or 3.9 here")
    venv = tmp_path / "venv"
    subprocess.run([found, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    filename = "demo-1.0-py3-none-any.whl"
    (tmp_path / filename).write_bytes(
        wheel_archive(
            {"demo/__init__.py": b"def main():\n    import sys; print('demo on', sys.version_info[:2])\n"},
            name="demo",
            version="1.0",
            entry_points="[console_scripts]\ndemo = demo:main\n",
        )
    )
    run = ws(
        "install",
        "--python",
        str(python),
        "--compile-bytecode",
        str(tmp_path / filename),
        cache=tmp_path / "c",
    )
    assert run.code == 0, run.err
    version = probe_interpreter(str(python)).version
    out = subprocess.run([str(venv / "bin" / "demo")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"demo on ({version[0]}, {version[1]})"
    site = next(venv.glob("lib/python3.*/site-packages"))
    assert (site / "demo" / "__pycache__" / f"__init__.cpython-{version[0]}{version[1]}.pyc").is_file()

    tag = "cp311-cp311-manylinux_2_17_x86_64"
    other = f"native-1.0-{tag}.whl"
    (tmp_path / other).write_bytes(
        wheel_archive(
            {"native/__init__.py": b""}, name="native", version="1.0", tag=tag, root_is_purelib=False
        )
    )
    refused = ws("install", "--python", str(python), str(tmp_path / other), cache=tmp_path / "c")
    assert refused.code != 0, refused.err
    assert "is not supported" in refused.error_line() or "tag" in refused.error_line(), refused.err


@pytest.mark.parametrize("found", OLD[-1:] or [None])
def test_an_old_system_python_installs_only_where_it_imports_from(found: str | None) -> None:
    """Before 3.10 sysconfig has no preferred scheme: a distribution's Python (Debian's ``dist-packages``) may
    not import from ``posix_prefix``'s directory. This one does (pyenv's); one that did not is refused."""
    if found is None:
        pytest.skip("no Python 3.8 or 3.9 here")
    env = find_environment(found, system=True)
    assert env.kind == "system"
    interpreter = probe_interpreter(found)
    assert interpreter.env_scheme is not None
    assert interpreter.env_scheme.purelib in interpreter.import_path
    elsewhere = dataclasses.replace(interpreter, import_path=("/usr/lib/python3/dist-packages",))
    with pytest.raises(
        UsageError, match=r"which it does not import from .*install into a virtual environment"
    ):
        _check_old_system_layout(elsewhere)
