"""Smaller rules: scripts, direct_url.json, metadata checks, bytecode, a foreign ``--python``, public API."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import marshal
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_install_equivalence import assert_same_install, finish, pip
from test_install_support import build_wheel, full_wheel, stage

import wheelstream.installer
from wheelstream.errors import IncompatibleWheel, InvalidWheelFilename, WheelMetadataError
from wheelstream.installer import install_staged, probe_interpreter
from wheelstream.installer._direct_url import direct_url_json, redact_url
from wheelstream.installer._scripts import Launcher, fix_shebang, launcher_bytes, shebang


def test_all_is_sorted_and_complete() -> None:
    assert wheelstream.installer.__all__ == sorted(wheelstream.installer.__all__)
    for name in wheelstream.installer.__all__:
        assert hasattr(wheelstream.installer, name)


def test_fix_shebang_replaces_the_whole_first_line() -> None:
    interp = dataclasses.replace(probe_interpreter(), executable="/opt/py/bin/python", linesep="\n")
    assert fix_shebang(b"#!python -u\nbody\n", interp) == b"#!/opt/py/bin/python\nbody\n"
    assert fix_shebang(b"#!pythonw\r\nbody", interp) == b"#!/opt/py/bin/python\nbody"
    assert fix_shebang(b"#!/usr/bin/python\nbody", interp) is None
    assert fix_shebang(b"#!python", interp) == b"#!/opt/py/bin/python\n"


def test_long_or_spaced_interpreter_uses_sh_trampoline() -> None:
    base = probe_interpreter()
    spaced = dataclasses.replace(base, executable="/opt/my py/bin/python")
    assert shebang(spaced) == b"#!/bin/sh\n'''exec' \"/opt/my py/bin/python\" \"$0\" \"$@\"\n' '''\n"
    long = dataclasses.replace(base, executable="/" + "x" * 130 + "/python", platform="linux")
    assert shebang(long).startswith(b"#!/bin/sh\n'''exec' /xxx")
    short = dataclasses.replace(base, executable="/usr/bin/python3.11")
    script = launcher_bytes(Launcher("t", "pkg.mod", "obj.run", gui=False), short)
    assert script == (
        b"#!/usr/bin/python3.11\nimport sys\nfrom pkg.mod import obj\nif __name__ == '__main__':\n"
        b"    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n    sys.exit(obj.run())\n"
    )


def test_direct_url_redacts_credentials_like_pip() -> None:
    assert redact_url("https://user:tok@host/x.whl#sha256=ab") == "https://host/x.whl"
    assert redact_url("https://${USER}:${PASS}@host/x.whl") == "https://${USER}:${PASS}@host/x.whl"
    assert redact_url("https://git@host/x.whl?a=1") == "https://git@host/x.whl?a=1"
    assert json.loads(direct_url_json("https://u:p@h/x.whl", "ab")) == {
        "archive_info": {"hash": "sha256=ab", "hashes": {"sha256": "ab"}},
        "url": "https://h/x.whl",
    }
    assert direct_url_json("file:///x.whl", None) == b'{"archive_info": {}, "url": "file:///x.whl"}'


def small(tmp_path: Path, filename: str = "pkg-1.0-py3-none-any.whl", **kwargs: object) -> Path:
    name = filename.split("-")[0]
    return build_wheel(tmp_path / "w", filename, {f"{name}/__init__.py": b""}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        (
            {"filename": "pkg-1.0-cp27-cp27m-win32.whl", "tag": "cp27-cp27m-win32"},
            IncompatibleWheel,
            "not supported",
        ),
        ({"entry_points": "[console_scripts]\nx = pkg\n"}, WheelMetadataError, "module:callable"),
        ({"entry_points": "[console_scripts]\n../x = pkg:main\n"}, WheelMetadataError, "outside the scripts"),
    ],
)
def test_rejections(tmp_path: Path, kwargs: dict[str, object], error: type[Exception], text: str) -> None:
    wheel = small(tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error, match=text):
        install_staged(stage(wheel, tmp_path / "s"), tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_wheel_version_and_dist_info(tmp_path: Path) -> None:
    wheel = small(tmp_path)
    staged = stage(wheel, tmp_path / "s")
    wheel_file = staged.root / "pkg-1.0.dist-info" / "WHEEL"
    wheel_file.write_text(
        "Wheel-Version: 2.0\n"
    )  # metadata is read from the tree; RECORD is not consulted for it
    with pytest.raises(WheelMetadataError, match="major version must be 1"):
        install_staged(staged, tmp_path / "t")
    with pytest.raises(InvalidWheelFilename):
        install_staged(dataclasses.replace(staged, filename="nope.whl"), tmp_path / "t")
    with pytest.raises(WheelMetadataError, match="does not match"):
        install_staged(dataclasses.replace(staged, filename="other-1.0-py3-none-any.whl"), tmp_path / "t")


def test_ignore_tags(tmp_path: Path) -> None:
    wheel = small(tmp_path, "pkg-1.0-cp27-cp27m-win32.whl", tag="cp27-cp27m-win32")
    install_staged(stage(wheel, tmp_path / "s"), tmp_path / "t", ignore_tags=True)
    assert (tmp_path / "t" / "pkg" / "__init__.py").is_file()


def test_compile_bytecode_records_like_pip(tmp_path: Path) -> None:
    wheel = full_wheel(tmp_path / "w")
    proc = pip("install", "--no-deps", "--no-index", "--target", str(tmp_path / "pip"), str(wheel))
    install_staged(stage(wheel, tmp_path / "s"), tmp_path / "ours", compile_bytecode=True)
    finish(proc)
    rows = {}
    for tree in ("pip", "ours"):
        (record,) = (tmp_path / tree).glob("*.dist-info/RECORD")
        rows[tree] = {r[0]: r for r in csv.reader(record.read_text().splitlines())}
    pyc = {p for p in rows["pip"] if p.endswith(".pyc")}
    assert pyc
    assert pyc == {p for p in rows["ours"] if p.endswith(".pyc")}
    assert all(rows["ours"][p][1:] == ["", ""] for p in pyc)
    compiled = next((tmp_path / "ours" / "full_pkg" / "__pycache__").glob("tool.*.pyc"))
    code = marshal.loads(compiled.read_bytes()[16:])
    assert code.co_filename == str(
        tmp_path / "ours" / "full_pkg" / "tool.py"
    )  # the final path, not a temp one


def test_a_library_call_compiles_without_touching_the_callers_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """pip's way, ``warnings.catch_warnings()`` around the compile, sets the filters of the whole process for
    the while: a caller's other threads lost their own warnings (thousands in the audit's run). A library call
    compiles in a child; a source that warns (an invalid escape) warns there, not on the caller's stderr."""
    import warnings

    import wheelstream

    wheel = build_wheel(
        tmp_path / "w",
        "pkg-1.0-py3-none-any.whl",
        {"pkg/__init__.py": b"PATTERN = '\\d+\\.\\d'\nX = '\\d'\n"},
    )
    from wheelstream.installer import _compile

    # a test before this one in the same worker may have run the program in-process (main(argv)), which sets
    # the switch for the process's life, as the program owns its process
    monkeypatch.setattr(_compile, "_in_this_process", False)
    touched: list[str] = []
    for name in ("filterwarnings", "catch_warnings", "simplefilter"):
        original = getattr(warnings, name)

        def recorded(*args: object, _name: str = name, _original: Any = original, **kwargs: object) -> Any:
            touched.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(warnings, name, recorded)
    wheelstream.install([str(wheel)], tmp_path / "t", cache_dir=tmp_path / "c", compile_bytecode=True)
    monkeypatch.undo()
    assert touched == []
    assert list((tmp_path / "t" / "pkg" / "__pycache__").glob("__init__.*.pyc"))
    assert "Warning" not in capfd.readouterr().err


def other_python() -> str | None:
    """A non-venv interpreter of another version, to exercise ``--python`` (pip re-executes under it)."""
    for candidate in sorted(Path.home().glob(".pyenv/versions/3.1[023]*/bin/python3")):
        return str(candidate)
    for version in ("3.12", "3.13", "3.10"):
        found = shutil.which(f"python{version}")
        if found and "shims" not in found:
            return found
    return None


def test_foreign_python_matches_pip_python(tmp_path: Path) -> None:
    python = other_python()
    if python is None:
        pytest.skip("no second interpreter on this machine")
    interp = probe_interpreter(python)
    assert not interp.in_venv
    assert interp.scheme.include == "include/python"
    wheel = full_wheel(tmp_path / "w")
    proc = pip(
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "--no-compile",
        "--target",
        str(tmp_path / "pip"),
        str(wheel),
    )
    install_staged(
        stage(wheel, tmp_path / "s"),
        tmp_path / "ours",
        python=python,
        direct_url=wheel.resolve().as_uri(),
        url_hash=hashlib.sha256(wheel.read_bytes()).hexdigest(),
    )
    finish(proc)
    assert_same_install(tmp_path / "pip", tmp_path / "ours")
    assert (tmp_path / "ours" / "include" / "python" / "full-pkg" / "full.h").is_file()
    assert (
        (tmp_path / "ours" / "bin" / "fulltool").read_bytes().startswith(b"#!" + interp.executable.encode())
    )


def test_files_pip_target_leaves_behind_are_one_warning_naming_the_wheel(tmp_path: Path) -> None:
    """``.data/data/lib/...`` lands under ``lib``, which pip's --target loop takes for its lib directory and
    never moves: one warning per wheel (tbb has 43 such files), naming the wheel, not one line per file."""
    files = {"tbblike/__init__.py": b""}
    files.update({f"tbblike-1.0.data/data/lib/libpart{i}.so": b"\x7fELF" for i in range(5)})
    wheel = build_wheel(tmp_path / "w", "tbblike-1.0-py3-none-any.whl", files)
    report = install_staged(stage(wheel, tmp_path / "s"), tmp_path / "t")
    dropped = [w for w in report.warnings if "not installed" in w]
    assert dropped == [
        "tbblike-1.0-py3-none-any.whl: 5 file(s) not installed (pip --target leaves them behind too): "
        "lib/libpart0.so, lib/libpart1.so, lib/libpart2.so and 2 more"
    ]
    assert not (tmp_path / "t" / "lib").exists()


def test_the_bytecode_of_a_module_is_its_own_and_not_a_dotted_neighbours(tmp_path: Path) -> None:
    """``__pycache__/x.*.pyc`` also took ``x.y.<tag>.pyc`` (module ``x.y``'s); and each source globbed the
    whole ``__pycache__``, which made uninstalling 10,000 compiled modules of one directory take a minute."""
    from wheelstream.installer._installed import _Bytecode

    cached = tmp_path / "__pycache__"
    cached.mkdir()
    names = [
        "x.cpython-311.pyc",
        "x.cpython-311.opt-1.pyc",
        "x.pypy310.pyc",
        "x.y.cpython-311.pyc",
        "xy.cpython-311.pyc",
    ]
    for name in names:
        (cached / name).write_bytes(b"")
    found = sorted(Path(p).name for p in _Bytecode().of(str(tmp_path / "x.py")))
    assert found == ["x.cpython-311.opt-1.pyc", "x.cpython-311.pyc", "x.pyc", "x.pyo", "x.pypy310.pyc"]
    assert [Path(p).name for p in _Bytecode().of(str(tmp_path / "x.y.py"))][2:] == ["x.y.cpython-311.pyc"]


def _whole_directories_by_scanning(
    real_root: str, removed: set[str], incoming: set[str], keep: set[str]
) -> list[str]:
    """The rule as it was first written, one scan per folder: the reference the set-based one must agree with."""
    from wheelstream.installer._env_install import _below

    chosen: list[str] = []
    for folder in sorted({path.rpartition("/")[0] for path in removed} - keep, key=lambda d: (len(d), d)):
        if not folder or any(folder.startswith(c + "/") for c in chosen):
            continue
        if any(path == folder or path.startswith(folder + "/") for path in incoming):
            continue
        if all(path in removed for path in _below(real_root, folder)):
            chosen.append(folder)
    inside = tuple(c + "/" for c in chosen)
    return sorted([*chosen, *(path for path in removed if not path.startswith(inside))])


def test_whole_directories_agree_with_the_scanning_rule_on_random_trees() -> None:
    import random
    import tempfile

    from wheelstream.installer._env_install import _whole_directories

    generator = random.Random(7)
    for _round in range(200):
        with tempfile.TemporaryDirectory() as root:
            paths: set[str] = set()
            for _ in range(generator.randint(1, 25)):
                depth = generator.randint(1, 4)
                path = (
                    "/".join(generator.choice("abc") for _ in range(depth)) + f"/f{generator.randint(0, 3)}"
                )
                if any(other.startswith(path + "/") or path.startswith(other + "/") for other in paths):
                    continue  # a name cannot be a file and a directory at once
                paths.add(path)
                Path(root, path).parent.mkdir(parents=True, exist_ok=True)
                Path(root, path).write_bytes(b"")
            removed = {p for p in paths if generator.random() < 0.7}
            incoming = {p for p in paths if generator.random() < 0.1} | {"a/new", "c/b/new"}
            keep = {"", "a"} if generator.random() < 0.5 else {""}
            expected = _whole_directories_by_scanning(root, removed, incoming, keep)
            assert _whole_directories(root, removed, incoming, keep) == expected, (removed, incoming, keep)
