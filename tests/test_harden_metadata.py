"""Hardening round 2, what a wheel says about itself: METADATA, the .dist-info name, WHEEL, entry points.

Every hostile variant goes through the real CLI (``python -m wheelstream install``) and must end in one
``error:`` line, exit 1, no traceback, no terminal control, the target untouched and nothing written beside it
(:func:`assert_refused`). The accepted variants check what pip accepts too (``1.0`` is ``1.0.0``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import ws
from test_harden_output_support import (
    DI,
    assert_refused,
    demo_members,
    metadata,
    prepared_target,
    wheel_bytes,
    write,
)
from test_install_support import build_wheel, stage

import wheelstream
from wheelstream.errors import InvalidWheelFilename, WheelMetadataError, one_line, shown
from wheelstream.installer import install_staged
from wheelstream.installer._metadata import parse_filename
from wheelstream.installer._scripts import check_script_name, parse_entry_point

META = f"{DI}/METADATA"
WHEEL = f"{DI}/WHEEL"
EP = f"{DI}/entry_points.txt"


def refused(tmp_path: Path, members: dict[str, bytes], *needles: str, dist_info: str = DI) -> str:
    wheel = write(tmp_path / "w", wheel_bytes(members, dist_info=dist_info))
    return assert_refused(wheel, tmp_path / "run", *needles)


def installs(tmp_path: Path, members: dict[str, bytes], dist_info: str = DI) -> Path:
    wheel = write(tmp_path / "w", wheel_bytes(members, dist_info=dist_info))
    target = prepared_target(tmp_path / "run")
    wheelstream.install([str(wheel)], target, cache_dir=tmp_path / "cache", ignore_tags=True)
    return target


# -- METADATA ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (None, ("file missing", META)),
        (metadata("other"), ("inconsistent name", "'demo'", "'other'", META)),
        (metadata("demo2"), ("inconsistent name", "'demo2'")),
        (metadata("de-mo-x"), ("inconsistent name",)),
        (metadata("de mo"), ("inconsistent name",)),
        (
            metadata("demo "),
            ("inconsistent name",),
        ),  # pip: canonicalize_name keeps the space, so it differs too
        (metadata(version="2.0"), ("inconsistent version", "'1.0'", "'2.0'", META)),
        (metadata(version="1.0.1"), ("inconsistent version",)),
        (metadata(version="1.0a1"), ("inconsistent version",)),
        (metadata(version="1.0.post1"), ("inconsistent version",)),
        (metadata(version="1.0+local"), ("inconsistent version",)),
        (metadata(version="1!1.0"), ("inconsistent version",)),
        (metadata(version="not a version"), ("invalid Version", "'not a version'")),
        (metadata(version=""), ("invalid Version",)),
        (metadata(version="9" * 5000), ("invalid Version", "…")),  # int() refuses 4300+ digits: a ValueError
        (b"Metadata-Version: 2.1\nVersion: 1.0\n\n", ("METADATA has no Name",)),
        (b"Metadata-Version: 2.1\nName: demo\n\n", ("METADATA has no Version",)),
        (b"", ("METADATA has no Name",)),
        (b"\n\nName: demo\nVersion: 1.0\n", ("METADATA has no Name",)),  # headers end at the first blank line
        (metadata(extra="Summary: \xff").replace(b"\xc3\xbf", b"\xff"), ("not UTF-8", META)),
        (metadata() + b"\nbody \xff\xfe\n", ("not UTF-8",)),  # pip decodes the whole file, so do we
        (
            metadata(extra="Summary: \udcff".replace("\udcff", "x")).replace(b"x\n", b"\xed\xb3\xbf\n"),
            ("not UTF-8",),
        ),
        (metadata("de\x1b[31mmo"), ("inconsistent name", "\\x1b[31m")),
        (metadata("demo\u202e"), ("inconsistent name", "\\u202e")),
        (metadata("d" * 10_000), ("inconsistent name", "…")),
        (metadata(version="1.0\x00"), ("invalid Version", "\\x00")),
    ],
    ids=lambda value: None if isinstance(value, tuple) else repr(value)[:40],
)
def test_bad_metadata_is_one_line(tmp_path: Path, content: bytes | None, needles: tuple[str, ...]) -> None:
    refused(tmp_path, demo_members({META: content}), *needles)


@pytest.mark.parametrize(
    "content",
    [
        metadata("Demo", "1.0.0"),  # Version objects: 1.0 == 1.0.0, as pip compares them
        metadata("DEMO", "1.0"),
        metadata("demo", "v1.0"),
        metadata("demo", " 1.0 "),  # packaging strips the version
        metadata("demo", "1.00"),
        b"Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0\r\n\r\nDescription with \xc3\xa9\r\n",
        metadata(extra="Name: other"),  # the first Name counts, as in importlib.metadata
    ],
)
def test_consistent_metadata_installs(tmp_path: Path, content: bytes) -> None:
    target = installs(tmp_path, demo_members({META: content}))
    assert (target / "demo" / "__init__.py").is_file()
    assert (target / DI / "METADATA").read_bytes() == content


# -- the .dist-info directory --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dist_info", "needles"),
    [
        ("demo-2.0.dist-info", ("does not match the version '1.0'", "'demo-2.0.dist-info'")),
        ("demo-1.0.1.dist-info", ("does not match the version",)),
        ("demo.dist-info", ("does not match the version",)),
        ("demo-.dist-info", ("does not match the version",)),
        ("demo-x.y.dist-info", ("does not match the version",)),
        ("demo-1.0-2.dist-info", ("does not match the version",)),  # 1.0-2 is 1.0.post2
        ("demo-" + "9" * 200 + ".dist-info", ("does not match the version",)),
        ("demox-1.0.dist-info", ("does not match the project name",)),
        ("other-1.0.dist-info", ("does not match the project name",)),
        ("de\x1bmo-1.0.dist-info", ("does not match the project name", "\\x1b")),
    ],
)
def test_dist_info_must_match_the_file_name(tmp_path: Path, dist_info: str, needles: tuple[str, ...]) -> None:
    members = {
        "demo/__init__.py": b"",
        f"{dist_info}/METADATA": metadata(),
        f"{dist_info}/WHEEL": demo_members()[WHEEL],
    }
    refused(tmp_path, members, *needles, dist_info=dist_info)


@pytest.mark.parametrize("dist_info", ["Demo-1.0.0.dist-info", "demo-1.0.dist-info", "DEMO-1.00.dist-info"])
def test_equivalent_dist_info_installs(tmp_path: Path, dist_info: str) -> None:
    members = {
        "demo/__init__.py": b"",
        f"{dist_info}/METADATA": metadata(),
        f"{dist_info}/WHEEL": demo_members()[WHEEL],
    }
    target = installs(tmp_path, members, dist_info=dist_info)
    assert (target / dist_info / "RECORD").is_file()


def test_huge_version_in_the_file_name_is_an_invalid_file_name() -> None:
    with pytest.raises(InvalidWheelFilename, match="invalid version"):
        parse_filename(f"demo-{'9' * 5000}-py3-none-any.whl")


def test_consistency_through_install_staged(tmp_path: Path) -> None:
    """The same checks for library callers that stage wheels themselves (test_install_support's builder)."""
    wheel = build_wheel(tmp_path / "w", "pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b""})
    staged = stage(wheel, tmp_path / "s")
    (staged.root / "pkg-1.0.dist-info" / "METADATA").write_text("Name: pkg\nVersion: 1.1\n")
    with pytest.raises(WheelMetadataError, match="inconsistent version"):
        install_staged(staged, tmp_path / "t")
    assert not (tmp_path / "t").exists()


# -- WHEEL ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (None, ("file missing", WHEEL)),
        (b"Wheel-Version: 1.0\nGenerator: \xff\n", ("not UTF-8", WHEEL)),
        (b"Generator: x\n", ("missing Wheel-Version",)),
        (b"Wheel-Version: \n", ("invalid Wheel-Version",)),
        (b"Wheel-Version: 1.x\n", ("invalid Wheel-Version '1.x'",)),
        (b"Wheel-Version: 1.\n", ("invalid Wheel-Version",)),
        (b"Wheel-Version: -1.0\n", ("invalid Wheel-Version",)),
        ("Wheel-Version: \u0661.0\n".encode(), ("invalid Wheel-Version",)),  # int() would read Arabic-Indic 1
        (b"Wheel-Version: " + b"9" * 5000 + b"\n", ("invalid Wheel-Version", "…")),
        (b"Wheel-Version: 1." + b"9" * 5000 + b"\n", ("invalid Wheel-Version",)),
        (b"Wheel-Version: 2.0\n", ("not supported",)),
        (b"Wheel-Version: 0.9\n", ("not supported",)),
        (b"Wheel-Version: 1\x1b[2J\n", ("invalid Wheel-Version", "\\x1b[2J")),
    ],
    ids=lambda value: None if isinstance(value, tuple) else repr(value)[:40],
)
def test_bad_wheel_file_is_one_line(tmp_path: Path, content: bytes | None, needles: tuple[str, ...]) -> None:
    refused(tmp_path, demo_members({WHEEL: content}), *needles)


@pytest.mark.parametrize("value", ["TRUE", "yes", "", "\x1b", "true false", "1"])
def test_odd_root_is_purelib_values_install(tmp_path: Path, value: str) -> None:
    content = f"Wheel-Version: 1.0\nRoot-Is-Purelib: {value}\nTag: py3-none-any\n".encode()
    target = installs(tmp_path, demo_members({WHEEL: content}))
    assert (target / "demo" / "__init__.py").is_file()


def test_newer_minor_wheel_version_installs_with_a_warning(tmp_path: Path) -> None:
    wheel = write(tmp_path / "w", wheel_bytes(demo_members({WHEEL: b"Wheel-Version: 1.9\n"})))
    warnings: list[str] = []
    result = wheelstream.install(
        [str(wheel)], tmp_path / "t", cache_dir=tmp_path / "c", ignore_tags=True, on_warning=warnings.append
    )
    assert result.wheels
    assert any("newer Wheel-Version (1.9)" in w for w in warnings)


# -- entry points --------------------------------------------------------------------------------------------


HOSTILE_NAMES = [
    "a\x00b",
    "../../x",
    "../x",
    "a/../../x",
    "/etc/x",
    "a/b",
    "a\\b",
    "..\\..\\x",
    ".",
    "..",
    "-rf",
    "--help",
    "a\x1b[31mb",
    "\x1b]0;owned\x07",
    "a\x7fb",
    "a\x9bb",
    "a\u202eb",
    "a\u2066b",
    "\u200fx",
    "a\x01",
    "x" * 256,
    "é" * 128,  # 256 bytes
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=ascii)
@pytest.mark.parametrize("group", ["console_scripts", "gui_scripts"])
def test_hostile_entry_point_names(tmp_path: Path, name: str, group: str) -> None:
    line = refused(
        tmp_path,
        demo_members(entry_points=f"[{group}]\n{name} = demo:main\n"),
        "invalid script entry point",
        EP,
    )
    assert one_line(shown(name)) in line  # the name as repr spells it, cut to 100 characters


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[console_scripts]\n = demo:main\n", ("invalid script entry point",)),
        ("[console_scripts]\nx = demo\n", ("module:callable",)),
        ("[console_scripts]\nx = demo:\n", ("invalid script entry point",)),
        ("[console_scripts]\nx = :main\n", ("invalid script entry point",)),
        ("[console_scripts]\nx = demo:a:b\n", ("module:callable",)),
        # distlib's pattern is anchored at the end: pip refuses these (it installed a launcher here)
        ("[console_scripts]\nx = demo:main [bad extra\n", ("invalid script entry point",)),
        ("[console_scripts]\nx = demo:main trailing\n", ("invalid script entry point",)),
        ("[console_scripts]\nx\n", ("invalid entry point line 'x'",)),
        ("[console_scripts]\n[gui_scripts\nx = demo:main\n", ("invalid entry point line '[gui_scripts'",)),
        ("[console_scripts]\nx = \x1b[2Jdemo:main\n", ("invalid script entry point", "\\x1b[2J")),
        ("[console_scripts]\n" + "y" * 5000 + "\n", ("invalid entry point line", "…")),
        (
            "[console_scripts]\ntool = demo:main\n[gui_scripts]\ntool = demo:main\n",
            ("two script entry points",),
        ),
        (
            "[console_scripts]\npip = demo:main\n[gui_scripts]\npip3 = demo:main\n",
            ("two script entry points",),
        ),
    ],
    ids=ascii,
)
def test_bad_entry_points_are_one_line(tmp_path: Path, text: str, needles: tuple[str, ...]) -> None:
    refused(tmp_path, demo_members(entry_points=text), *needles, EP)


def test_entry_points_not_utf8(tmp_path: Path) -> None:
    members = demo_members({EP: b"[console_scripts]\nt\xffool = demo:main\n"})
    refused(tmp_path, members, "not UTF-8", EP)


@pytest.mark.parametrize(
    "text", ["[console_scripts\nx = demo:main\n", "x = demo:main\n", "[other]\n../x = y\n"]
)
def test_lines_outside_the_script_groups_are_ignored(tmp_path: Path, text: str) -> None:
    """Like importlib.metadata (which pip reads them with): a line before any section, or in another group."""
    target = installs(tmp_path, demo_members(entry_points=text))
    assert not (target / "bin").exists()


@pytest.mark.parametrize(
    "name", ["tool", "tool.py", "a-b", "a_b", "pip3.11", "x" * 255, "é" * 127, "ツール", ".hidden"]
)
def test_ordinary_entry_point_names_install(tmp_path: Path, name: str) -> None:
    target = installs(tmp_path, demo_members(entry_points=f"[console_scripts]\n{name} = demo:main\n"))
    assert (target / "bin" / name).is_file()
    assert sorted(p.name for p in (target / "bin").iterdir()) == [name]


def test_check_script_name_reasons() -> None:
    assert check_script_name("tool") is None
    assert check_script_name("../x") == "it would be installed outside the scripts directory"
    assert check_script_name("a\x00b") == "it holds whitespace, a control or a bidi character"
    assert check_script_name("-x") == "it starts with '-'"
    assert check_script_name("x" * 256) == "it is longer than 255 bytes"
    with pytest.raises(WheelMetadataError) as caught:
        parse_entry_point("a\x1bb", "m:f", gui=False, wheel="w.whl", entry="w-1.dist-info/entry_points.txt")
    assert str(caught.value) == (
        "w.whl: invalid script entry point name 'a\\x1bb': it holds whitespace, a control or a bidi character "
        "(entry 'w-1.dist-info/entry_points.txt')"
    )


# -- Requires-Python -----------------------------------------------------------------------------------------


def _requiring(tmp_path: Path, requires: str) -> Path:
    return write(
        tmp_path / "w", wheel_bytes(demo_members({META: metadata(extra=f"Requires-Python: {requires}")}))
    )


@pytest.mark.parametrize("requires", [">=3.99", "<3", "==2.7.*", ">3.8,<3.9"])
def test_a_wheel_whose_requires_python_excludes_the_interpreter_is_refused(
    tmp_path: Path, requires: str
) -> None:
    """As pip (its candidate carries ``Requires-Python``, ``--no-deps`` or not) and uv refuse it: a wheel file or
    URL was installed whatever its METADATA asked for (the index path filtered only listed files). Exit 1, one
    line with the interpreter's version and the specifier, nothing installed; ``--ignore-tags`` installs it."""
    wheel = _requiring(tmp_path, requires)
    full = ".".join(map(str, sys.version_info[:3]))
    run = ws("install", str(wheel), "--target", str(tmp_path / "t"), cache=tmp_path / "c")
    assert run.code == 1, run.err
    assert run.error_line(alone=True) == (
        f"error: {wheel.name}: requires a different Python: {full} not in '{requires}' ({sys.executable})"
    )
    assert not (tmp_path / "t").exists()
    forced = ws("install", str(wheel), "--target", str(tmp_path / "t"), "--ignore-tags", cache=tmp_path / "c")
    assert forced.code == 0, forced.err
    assert (tmp_path / "t" / "demo" / "__init__.py").is_file()


@pytest.mark.parametrize("requires", [">=3.8", ">=3", "!=3.0.*", "  >= 3.10 "])
def test_a_wheel_whose_requires_python_admits_the_interpreter_installs(tmp_path: Path, requires: str) -> None:
    wheel = _requiring(tmp_path, requires)
    report = wheelstream.install([str(wheel)], tmp_path / "t", cache_dir=tmp_path / "c")
    assert report.report is not None
    assert (tmp_path / "t" / "demo" / "__init__.py").is_file()


def test_an_invalid_requires_python_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """pip logs "invalid Requires-Python" and goes on; so does this install, saying so."""
    wheel = _requiring(tmp_path, "not a specifier")
    seen: list[str] = []
    wheelstream.install([str(wheel)], tmp_path / "t", cache_dir=tmp_path / "c", on_warning=seen.append)
    assert (tmp_path / "t" / "demo" / "__init__.py").is_file()
    assert f"{wheel.name}: ignoring its invalid Requires-Python 'not a specifier'" in seen


@pytest.mark.parametrize(
    "requires", [">=3", ">=3.8", ">=3.11", ">=3.11.7", ">=3.11.8", " >= 3.12 ", ">=4", ">=3.11.0"]
)
@pytest.mark.parametrize("full", ["3.11.7", "3.8.0", "3.12.1", "4.0.0"])
def test_the_quick_at_least_reading_agrees_with_packaging(requires: str, full: str) -> None:
    """``>=X.Y`` is read without importing the specifiers; it must say what ``SpecifierSet`` says."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from wheelstream.errors import IncompatibleWheel
    from wheelstream.installer._metadata import check_requires_python

    admitted = SpecifierSet(requires).contains(Version(full), prereleases=True)
    try:
        check_requires_python(requires, full, "demo-1.0-py3-none-any.whl", "python", print)
        refused = False
    except IncompatibleWheel:
        refused = True
    assert refused is not admitted
