"""Property: whatever a wheel says about itself, the command line stays safe (issue #19).

Wheels are generated with arbitrary entry names, entry-point names, RECORD rows and METADATA values (control
characters, NUL, separators, ``..``, bidi overrides, wheelstream's own reserved names, very long names) and
installed by the real ``wheelstream install`` into a target that already holds the user's files. Whatever
the wheel, the command:

* exits 0, or exits non-zero with exactly one ``error:`` line and no traceback;
* prints no control character (an ESC from a wheel would drive the user's terminal);
* writes nothing outside the target and the cache;
* leaves what the target held untouched (it was not asked to ``--upgrade``).
"""

from __future__ import annotations

import os
import unicodedata
import zipfile
from pathlib import Path

import pytest
from conftest import ws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_install_support import record_hash, snapshot

# Characters a hostile wheel reaches for: separators, dots, controls, bidi overrides, look-alike slashes,
# and ordinary ones so that some names are also valid.
_NASTY = [
    "/",
    "\\",
    ".",
    "..",
    "\x00",
    "\x1b",
    "\x1b[31m",
    "\r",
    "\n",
    "\x7f",
    "\x9b",
    "\u202e",
    "\u2066",
    "\uff0f",
    "\u2215",
    ":",
    "C:",
    "~",
    " ",
    "-",
    "=",
    "[",
    "]",
    "#",
    ",",
    '"',
    ".wheelstream-tmp-x",
    ".wheelstream-gone-y",
    "é",
    "\ud7ff",
    "a",
    "b",
    "pkg",
    "mod.py",
    "__init__.py",
]
_piece = st.one_of(st.sampled_from(_NASTY), st.text(min_size=1, max_size=6))
_nasty_text = st.lists(_piece, min_size=0, max_size=6).map("".join)
_nasty_path = st.lists(_piece, min_size=1, max_size=5).map("/".join)
_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
_plain_path = st.lists(_word, min_size=1, max_size=3).map(lambda parts: "pkg/" + "/".join(parts) + ".py")


def _mostly(plain: st.SearchStrategy[str], nasty: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Plain two times in three: one hostile field per wheel gets past the earlier checks to the later ones."""
    return st.one_of(plain, plain, nasty)


_text = _mostly(_word, _nasty_text)
_path = _mostly(_plain_path, _nasty_path)


@st.composite
def hostile_wheels(draw: st.DrawFn) -> tuple[dict[str, bytes], list[str]]:
    """``(members, extra RECORD rows)`` of a wheel named ``demo-1.0`` whose content is mostly hostile."""
    info = "demo-1.0.dist-info"
    members: dict[str, bytes] = {"demo/__init__.py": b"x = 1\n"}
    for name in draw(st.lists(_path, max_size=4)):
        members[name] = draw(st.binary(max_size=16))
    meta_name = draw(_mostly(st.sampled_from(["demo", "Demo", "DEMO"]), _nasty_text))
    meta_version = draw(_mostly(st.sampled_from(["1.0", "1.0.0", "1!1.0"]), _nasty_text))
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {meta_name}\nVersion: {meta_version}\n".encode(
            "utf-8", "surrogatepass"
        )
    )
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    scripts = draw(st.lists(st.tuples(_text, _mostly(st.just("demo:main"), _nasty_text)), max_size=3))
    if scripts:
        lines = "".join(f"{name} = {value}\n" for name, value in scripts)
        members[f"{info}/entry_points.txt"] = ("[console_scripts]\n" + lines).encode("utf-8", "surrogatepass")
    extra_rows = [",".join(row) for row in draw(st.lists(st.tuples(_path, _text, _text), max_size=3))]
    return members, extra_rows


def _write(directory: Path, members: dict[str, bytes], extra_rows: list[str]) -> Path:
    info = "demo-1.0.dist-info"
    rows = [f"{name},{record_hash(data)},{len(data)}" for name, data in members.items()]
    record = "\n".join([*rows, *extra_rows, f"{info}/RECORD,,"]) + "\n"
    members = {**members, f"{info}/RECORD": record.encode("utf-8", "surrogatepass")}
    out = directory / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                continue  # a lone surrogate cannot be written into a zip at all
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return out


def _controls(text: str) -> list[str]:
    return [c for c in text if c not in "\n" and (unicodedata.category(c) in ("Cc", "Cf", "Cs"))]


@pytest.mark.timeout(600)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(wheel=hostile_wheels())
def test_a_hostile_wheel_never_harms_the_terminal_the_target_or_anything_outside(
    wheel: tuple[dict[str, bytes], list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("hostile")
    sandbox = work / "sandbox"  # target, cache and wheel all live here; its siblings must not change
    target = sandbox / "deep" / "target"
    (target / "keep").mkdir(parents=True)
    (target / "keep" / "data.txt").write_text("the user's\n")
    (target / "mine.txt").write_text("mine\n")
    (work / "neighbour.txt").write_text("outside\n")
    wheel_dir = sandbox / "wheels"
    wheel_dir.mkdir()
    path = _write(wheel_dir, *wheel)
    outside_before = {
        p.relative_to(work) for p in work.rglob("*") if sandbox not in p.parents and p != sandbox
    }
    target_before = snapshot(target)

    run = ws("install", "-v", str(path), "--target", str(target), cache=sandbox / "cache", timeout=120)
    err, out = run.err, run.out

    assert "Traceback" not in err, err
    assert not _controls(err), (err, out)
    assert not _controls(out), (err, out)
    if run.code != 0:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, err
        assert run.code in (1, 2), err
    outside_after = {
        p.relative_to(work) for p in work.rglob("*") if sandbox not in p.parents and p != sandbox
    }
    assert outside_after == outside_before
    assert (work / "neighbour.txt").read_text() == "outside\n"
    after = snapshot(target)
    assert {k: v for k, v in after.items() if k in target_before} == target_before
    for root, dirs, files in os.walk(target):
        for name in dirs + files:
            assert not os.path.islink(os.path.join(root, name))
    for stray in (sandbox / "deep").iterdir():
        assert stray.name == "target", f"written beside the target: {stray}"
