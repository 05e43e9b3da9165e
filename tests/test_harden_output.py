"""Hardening round 2, what reaches a terminal: wheel-chosen text is printed as it reads, never obeyed.

A wheel chooses its file name, entry names, RECORD paths, entry-point names and metadata values; all of them
end up in errors and warnings. :func:`wheelstream.errors.one_line` (used by ``WheelstreamError`` itself, so
library users get safe messages too) and ``wheelstream.cli._ui.escape`` (every CLI error, warning, note and
progress label) turn controls, bidi overrides and surrogates into escapes and keep a message on one line.

The property tests feed arbitrary entry-point names, RECORD rows and METADATA values to the library: it either
installs or raises a :class:`~wheelstream.errors.WheelstreamError` whose text is one printable line, and nothing
is ever written outside the target.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rich.console import Console
from test_harden_output_support import (
    CONTROL,
    DI,
    assert_refused,
    cli_install,
    demo_members,
    metadata,
    prepared_target,
    wheel_bytes,
    write,
)
from test_install_support import snapshot

import wheelstream
from fixtures.wellformed import record_line
from wheelstream._progress import Progress
from wheelstream.cli._contract import fail
from wheelstream.cli._ui import ConsoleProgress, escape
from wheelstream.errors import RecordError, UnsafePath, WheelMetadataError, WheelstreamError, one_line

# -- one_line and the error text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("a\x1b[31mb", "a\\x1b[31mb"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "\\x1b]8;;http://x\\x1b\\link\\x1b]8;;\\x1b\\"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1 \x9b31m \x80 \x9f", "c1 \\x9b31m \\x80 \\x9f"),
        ("bidi \u202a\u202b\u202c\u202d\u202e", "bidi \\u202a\\u202b\\u202c\\u202d\\u202e"),
        ("isolates \u2066\u2067\u2068\u2069", "isolates \\u2066\\u2067\\u2068\\u2069"),
        ("marks \u200e\u200f\u061c", "marks \\u200e\\u200f\\u061c"),
        ("surrogate \udcff", "surrogate \\udcff"),
        ("two\nlines\r\nthree", "two lines three"),
        ("  tabs\tand\x0bvt\x0cff  ", "tabs and vt ff"),
        ("fs\x1cgs\x1drs\x1eus\x1f", "fs gs rs us"),  # str.split() takes these as whitespace
        ("nel\x85 ls\u2028 ps\u2029", "nel ls ps"),
        ("unicode é ツ \u00a0nbsp", "unicode é ツ nbsp"),
        ("", ""),
    ],
    ids=ascii,
)
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected
    assert one_line(expected) == expected  # idempotent
    assert not CONTROL.search(one_line(text))
    assert "\n" not in one_line(text)


def test_error_text_is_safe_in_every_part() -> None:
    error = WheelMetadataError("cause \x1b[2J\nnext", wheel="w\u202egnp.whl", entry="e\x00\x1b")
    assert str(error) == "w\\u202egnp.whl: cause \\x1b[2J next (entry 'e\\x00\\x1b')"
    assert error.args == (str(error),)
    later = RecordError("c\x1b")
    later.with_wheel("x\x1b.whl")
    assert str(later) == "x\\x1b.whl: c\\x1b"
    assert later.args == (str(later),)


def test_an_error_line_stays_readable_however_long_what_it_names() -> None:
    """A 20,000-part entry name or a 100 kB URL from an index: the line keeps its start, the entry's file
    name and the offset, and stays short enough for a terminal."""
    deep = "/".join(["d"] * 20_000) + "/last.py"
    error = UnsafePath(
        "path is too deep", wheel="https://host/" + "x" * 100_000 + ".whl", entry=deep, offset=7
    )
    line = str(error)
    assert len(line) <= 1000
    assert line.startswith("https://host/xxx")
    assert "last.py" in line
    assert line.endswith("offset 7)")
    short = UnsafePath("bad", wheel="w.whl", entry="a/b.py", offset=1)
    assert str(short) == "w.whl: bad (entry 'a/b.py', offset 1)"  # nothing cut when nothing is long


def test_ui_escape_also_escapes_rich_markup() -> None:
    assert escape("[red]x\x1b[0m[/red]") == "\\[red]x\\x1b[0m\\[/red]"


def printed(capsys: pytest.CaptureFixture[str], call: object) -> str:
    with pytest.raises(SystemExit):
        call()  # type: ignore[operator]
    return capsys.readouterr().err


def test_fail_prints_one_safe_line(capsys: pytest.CaptureFixture[str]) -> None:
    err = printed(capsys, lambda: fail(None, OSError(28, "No space\x1b[2J", "/t/\u202ex"), 1))
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert not CONTROL.search(err)
    err = printed(capsys, lambda: fail(None, WheelMetadataError("a\x1bb\nc", wheel="[bold]w.whl"), 1))
    assert err == "error: [bold]w.whl: a\\x1bb c\n"
    err = printed(capsys, lambda: fail(None, "  \n ", 1))
    assert err == "error: str\n"


def test_warnings_and_notes_are_escaped() -> None:
    buffer = io.StringIO()
    ui = ConsoleProgress(Console(file=buffer, force_terminal=False, width=200), bars=False, quiet=False)
    ui.warn("Target directory /t/\x1b[31mred\u202e already exists")
    ui(Progress("w\x1b]0;x\x07.whl", 0, None, 0, None, message="resumed at\n1 MB"))
    out = buffer.getvalue()
    assert out.count("\n") == 2
    assert not CONTROL.search(out)
    assert "\\x1b[31mred\\u202e" in out
    assert "w\\x1b]0;x\\x07.whl: resumed at 1 MB" in out


def test_progress_labels_are_escaped() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    ui = ConsoleProgress(console, bars=True, quiet=False)
    ui.start()
    ui(Progress("[bold]\x1b[2Jw.whl", 10, 100, 1, None))
    ui.stop()
    screen = buffer.getvalue()
    assert "\x1b[2J" not in screen  # the wheel's escape never reaches the terminal ...
    assert "[bold]\\x1b[2Jw.whl" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # ... its label is text


# -- through the CLI -----------------------------------------------------------------------------------------


def test_record_path_with_terminal_controls_in_an_error(tmp_path: Path) -> None:
    name = "demo/\x1b]0;pwned\x07\x1b[2J\u202ex.py"
    members = demo_members({name: b"content"})
    rows = [record_line(p, b"other" if p == name else d) for p, d in members.items()] + [f"{DI}/RECORD,,"]
    wheel = write(tmp_path / "w", wheel_bytes(members, record=("\n".join(rows) + "\n").encode()))
    line = assert_refused(wheel, tmp_path / "run", "hash mismatch")
    assert "demo/\\x1b]0;pwned\\x07\\x1b[2J\\u202ex.py (hash mismatch)" in line


def test_metadata_value_with_bidi_override_in_an_error(tmp_path: Path) -> None:
    members = demo_members({f"{DI}/METADATA": metadata("\u202eomed\u202c")})
    assert_refused(write(tmp_path / "w", wheel_bytes(members)), tmp_path / "run", "'\\u202eomed\\u202c'")


def test_hostile_wheel_file_name_is_printed_safely(tmp_path: Path) -> None:
    wheel = write(tmp_path / "w", wheel_bytes(demo_members()), filename="de\x1b[2Jmo-1.0-py3-none-any.whl")
    run = cli_install(wheel, prepared_target(tmp_path / "run"), tmp_path / "cache")
    assert run.code in (1, 2), run
    lines = run.err.splitlines()
    assert len(lines) == 1, ascii(run.err)
    assert lines[0].startswith("error: "), ascii(run.err)
    assert not CONTROL.search(run.err), ascii(run.err)


def test_warnings_about_wheel_named_items_are_escaped(tmp_path: Path) -> None:
    """A second install skips the items the first one made, with a warning naming each: the names are the
    wheel's, so they may hold escape sequences or rich markup; both are shown, not obeyed."""
    members = demo_members({"\x1b[31mred\u202e/__init__.py": b"", "[bold]x/__init__.py": b""})
    wheel = write(tmp_path / "w", wheel_bytes(members))
    target = tmp_path / "target"
    first = cli_install(wheel, target, tmp_path / "cache")
    assert first.code == 0, first
    assert (target / "\x1b[31mred\u202e" / "__init__.py").is_file()
    second = cli_install(wheel, target, tmp_path / "cache")
    assert second.code == 0, second
    warnings = [line for line in second.err.splitlines() if line.startswith("warning: ")]
    assert any("\\x1b[31mred\\u202e already exists" in w for w in warnings), second.err
    assert any("[bold]x already exists" in w for w in warnings), second.err
    assert not CONTROL.search(second.err), ascii(second.err)


# -- properties: any wheel-chosen text either installs or fails with one printable line ---------------------

NASTY = st.sampled_from(
    [
        "\x00",
        "\x1b",
        "\x1b[2J",
        "\x07",
        "\x7f",
        "\x9b",
        "\u202e",
        "\u2066",
        "\n",
        "\r",
        "\t",
        " ",
        "/",
        "\\",
        "..",
        ".",
        "-",
        "=",
        "[",
        "]",
        ":",
        ",",
        '"',
        "#",
        "é",
        "ツ",
        "\udcff"[:0] + "x",
        "demo",
        "main",
    ]
)
TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=16),
    st.lists(NASTY, max_size=8).map("".join),
)


def _try_install(root: Path, members: dict[str, bytes], extra_rows: tuple[str, ...] = ()) -> None:
    """Install into a fresh target under ``root``; check the property; leave ``root`` as it was."""
    before_root = sorted(os.listdir(root))
    with tempfile.TemporaryDirectory(dir=root) as directory:
        base = Path(directory)
        wheel = write(base / "w", wheel_bytes(members, extra_rows=extra_rows))
        target = prepared_target(base)
        before = snapshot(target)
        try:
            wheelstream.install([str(wheel)], target, cache_dir=base / "cache", ignore_tags=True)
        except WheelstreamError as exc:
            text = str(exc)
            assert "\n" not in text, ascii(text)
            assert not CONTROL.search(text), ascii(text)
            assert text.startswith(wheel.name + ": "), text
            assert snapshot(target) == before
        else:
            bin_dir = target / "bin"
            for launcher in bin_dir.iterdir() if bin_dir.exists() else []:
                assert launcher.parent == bin_dir
                assert launcher.is_file()
        assert sorted(os.listdir(base)) == ["cache", "target", "w"]
        assert sorted(os.listdir(root)) == sorted([*before_root, base.name])
    assert sorted(os.listdir(root)) == before_root


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(
    names=st.lists(TEXT, min_size=1, max_size=3),
    value=st.one_of(st.just("demo:main"), TEXT),
    group=st.sampled_from(["console_scripts", "gui_scripts"]),
)
def test_any_entry_point_name(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], value: str, group: str
) -> None:
    text = f"[{group}]\n" + "".join(f"{name} = {value}\n" for name in names)
    _try_install(tmp_path_factory.getbasetemp(), demo_members(entry_points=text))


def _csv_row(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


@PROPERTY
@given(
    rows=st.lists(st.tuples(TEXT, st.one_of(st.just(""), TEXT), st.one_of(st.just(""), TEXT)), max_size=3),
    directory=st.booleans(),
)
def test_any_record_rows(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str]], directory: bool
) -> None:
    try:
        extra = tuple(
            _csv_row([path + ("/" if directory else ""), hash_, size]) for path, hash_, size in rows
        )
    except csv.Error:  # Python 3.10's csv cannot write NUL: no RECORD to try
        assume(False)
    _try_install(tmp_path_factory.getbasetemp(), demo_members(), extra)


@PROPERTY
@given(name=st.one_of(st.just("demo"), TEXT), version=st.one_of(st.just("1.0"), TEXT), extra=TEXT)
def test_any_metadata_values(
    tmp_path_factory: pytest.TempPathFactory, name: str, version: str, extra: str
) -> None:
    content = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {extra}\n\n{extra}\n"
    _try_install(tmp_path_factory.getbasetemp(), demo_members({f"{DI}/METADATA": content.encode("utf-8")}))


@PROPERTY
@given(value=TEXT, purelib=TEXT)
def test_any_wheel_file_values(tmp_path_factory: pytest.TempPathFactory, value: str, purelib: str) -> None:
    content = f"Wheel-Version: {value}\nRoot-Is-Purelib: {purelib}\nTag: py3-none-any\n"
    _try_install(tmp_path_factory.getbasetemp(), demo_members({f"{DI}/WHEEL": content.encode("utf-8")}))
