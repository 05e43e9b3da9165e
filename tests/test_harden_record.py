"""Hardening round 2, RECORD: its encoding, its hash names, its directory rows, and one row per installed file.

Refused wheels go through the real CLI (:func:`assert_refused`: exit 1, one ``error:`` line, no traceback or
terminal control, target untouched). Accepted ones are installed with the library and their installed RECORD
checked by :func:`assert_record_sound`: one row per path, every path inside the install, every hash right.
Directory rows pip keeps are compared with pip 26.3's RECORD byte for byte.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import posixpath
import sys
from pathlib import Path

import pytest
from test_harden_output_support import (
    DI,
    assert_refused,
    demo_members,
    metadata,
    prepared_target,
    wheel_bytes,
    write,
)
from test_install_equivalence import finish, ours, pip_install
from test_install_support import build_wheel

import wheelstream
from fixtures.wellformed import record_line
from wheelstream.errors import RecordError
from wheelstream.installer._records import ACCEPTED_ALGORITHMS, parse_record

RECORD = f"{DI}/RECORD"
INIT = b"X = 1\n"
LIB = "lib/python"  # pip's --target home: RECORD paths are relative to <home>/lib/python


def digest(algorithm: str, data: bytes) -> str:
    raw = hashlib.new(algorithm, data).digest()
    return f"{algorithm}=" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# Python 3.10's csv reader refuses NUL ("line contains NUL"); 3.11 reads it. Either way the wheel is refused.
NUL_UNREADABLE = sys.version_info < (3, 11)


def refused(tmp_path: Path, members: dict[str, bytes], *needles: str, **record_kw: object) -> str:
    wheel = write(tmp_path / "w", wheel_bytes(members, **record_kw))  # type: ignore[arg-type]
    record = record_kw.get("record", b"")
    rows = record_kw.get("extra_rows", ())
    text = record.decode("utf-8", errors="replace") if isinstance(record, bytes) else ""
    has_nul = ("\x00" in text and "\ufffd" not in text) or any("\x00" in row for row in rows)  # type: ignore[attr-defined]
    if NUL_UNREADABLE and has_nul:
        needles = ("cannot be read (line contains NUL)",)
    return assert_refused(wheel, tmp_path / "run", *needles)


def install(tmp_path: Path, members: dict[str, bytes], **kwargs: object) -> Path:
    record_kw = {k: kwargs.pop(k) for k in ("record", "extra_rows") if k in kwargs}
    wheel = write(tmp_path / "w", wheel_bytes(members, **record_kw))  # type: ignore[arg-type]
    target = prepared_target(tmp_path / "run")
    wheelstream.install([str(wheel)], target, cache_dir=tmp_path / "cache", ignore_tags=True, **kwargs)  # type: ignore[arg-type]
    return target


def record_rows(target: Path) -> list[list[str]]:
    (record,) = target.glob("*.dist-info/RECORD")
    return list(csv.reader(record.read_text(encoding="utf-8").splitlines()))


def assert_record_sound(target: Path) -> list[list[str]]:
    """One row per path; each resolves inside the install (``../../bin/x`` is pip's spelling of ``bin/x``);
    each hashed row matches the installed file."""
    rows = record_rows(target)
    paths = [row[0] for row in rows]
    assert len(paths) == len(set(paths)), paths
    for path, hash_, size in rows:
        home = posixpath.normpath(posixpath.join(LIB, path))
        assert not home.startswith(("..", "/")), path
        installed = target / (home[len(LIB) + 1 :] if home.startswith(LIB + "/") else home)
        if path.endswith("/"):
            continue
        assert installed.is_file(), path
        if hash_:
            algorithm = hash_.partition("=")[0]
            assert hash_ == digest(algorithm, installed.read_bytes()), path
            assert size == str(installed.stat().st_size), path
    return rows


# -- encoding and parsing ------------------------------------------------------------------------------------


def correct_rows() -> list[str]:
    return [record_line(p, d) for p, d in demo_members().items()]


@pytest.mark.parametrize(
    ("record", "needles"),
    [
        ("\n".join(correct_rows()).encode() + b"\n\xff\xfe\n", ("not UTF-8", RECORD)),
        (b"\xed\xa0\x80,,\n", ("not UTF-8",)),  # an encoded surrogate is not UTF-8 either
        ("\n".join(correct_rows()).encode("utf-16"), ("not UTF-8",)),
        (
            ("\ufeff" + "\n".join(correct_rows())).encode(),
            ("listed but missing",),
        ),  # a BOM is part of the path
        ("\n".join([*correct_rows(), "a,b,c,d"]).encode(), ("has 4 fields",)),
        ("\n".join([*correct_rows(), '"x' + "y" * 200_000 + '"']).encode(), ("cannot be read", RECORD)),
        ("\n".join([*correct_rows(), 'x"\x00,,']).encode(), ("listed but missing", "\\x00")),
        ("\n".join(correct_rows()[1:]).encode(), ("demo/__init__.py (not in RECORD)",)),
        (b"", ("not in RECORD",)),
    ],
    ids=lambda value: None if isinstance(value, tuple) else repr(value)[:30],
)
def test_bad_record_text_is_one_line(tmp_path: Path, record: bytes, needles: tuple[str, ...]) -> None:
    refused(tmp_path, demo_members(), *needles, record=record)


# -- hash algorithms -----------------------------------------------------------------------------------------


def rows_with(algorithm_field: str) -> bytes:
    rows = [record_line(p, d) for p, d in demo_members().items() if p != "demo/__init__.py"]
    rows += [f"demo/__init__.py,{algorithm_field},{len(INIT)}", f"{RECORD},,"]
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize(
    ("field", "needles"),
    [
        ("shake_128=" + "A" * 43, ("hash algorithm 'shake_128' not accepted",)),  # hexdigest needs a length
        ("shake_256=" + "A" * 43, ("hash algorithm 'shake_256' not accepted",)),
        (digest("md5", INIT), ("'md5' not accepted",)),
        (digest("sha1", INIT), ("'sha1' not accepted",)),
        (digest("sha224", INIT), ("'sha224' not accepted",)),
        ("SHA256=" + digest("sha256", INIT)[7:], ("'SHA256' not accepted",)),
        ("whirlpool=AAAA", ("'whirlpool' not accepted",)),
        ("sha512_256=AAAA", ("'sha512_256' not accepted",)),
        ("ripemd160=AAAA", ("'ripemd160' not accepted",)),
        ("sm3=AAAA", ("'sm3' not accepted",)),
        ("=" + digest("sha256", INIT)[7:], ("'' not accepted",)),
        ("sha256", ("(no hash)",)),
        ("sha256=", ("(no hash)",)),
        ("x" * 500 + "=AAAA", ("not accepted", "…")),
        ("\x1b[2J=AAAA", ("\\x1b[2J",)),
        (digest("sha512", b"other"), ("demo/__init__.py (hash mismatch)",)),
        ("sha3_256=%%%", ("demo/__init__.py (hash mismatch)",)),
    ],
    ids=lambda value: None if isinstance(value, tuple) else repr(value)[:30],
)
def test_refused_hash_algorithms(tmp_path: Path, field: str, needles: tuple[str, ...]) -> None:
    refused(tmp_path, demo_members(), *needles, record=rows_with(field))


@pytest.mark.parametrize("algorithm", sorted(ACCEPTED_ALGORITHMS))
def test_accepted_hash_algorithms_install_and_keep_the_row(tmp_path: Path, algorithm: str) -> None:
    field = digest(algorithm, INIT)
    target = install(tmp_path, demo_members(), record=rows_with(field))
    rows = assert_record_sound(target)
    assert ["demo/__init__.py", field, str(len(INIT))] in rows  # pip copies the archive's row


def test_accepted_algorithms_are_fixed_length_and_guaranteed() -> None:
    for algorithm in ACCEPTED_ALGORITHMS:
        assert algorithm in hashlib.algorithms_guaranteed
        assert hashlib.new(algorithm).digest_size >= 32


# -- directory rows and unsafe rows --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        "../../x/,,",
        "../../../../../../etc/,,",
        "/,,",
        "/etc/,,",
        "a/../../,,",
        "demo/../../,,",
        "..\\..\\/,,",  # read with "/" (a RECORD written on Windows): still outside
        "C:\\x\\,,",
        "C:/x/,,",
        "c:/,,",
        "a//b/,,",
        "//,,",
        "./,,",
        "demo/./x/,,",
        '"a\x00/",,',
        "../,sha256=AAAA,5",
    ],
    ids=ascii,
)
def test_unsafe_directory_rows_are_refused(tmp_path: Path, row: str) -> None:
    refused(tmp_path, demo_members(), "unsafe directory row", extra_rows=(row,))


@pytest.mark.parametrize(
    "row",
    [
        "../x.py,sha256=AAAA,3",
        "/etc/passwd,,",
        "demo/../../x.py,,",
        "demo//__init__.py,,",
        "./demo/__init__.py,,",
        "C:\\x.py,,",
        '"demo/\x00x.py",,',
    ],
    ids=ascii,
)
def test_unsafe_file_rows_are_refused(tmp_path: Path, row: str) -> None:
    refused(tmp_path, demo_members(), "listed but missing", extra_rows=(row,))


@pytest.mark.parametrize(
    "rows",
    [
        ("demo/__init__.py,sha256=AAAA,6",),
        ("demo/,,", "demo/,,"),
        (f"{RECORD},,",),
        ("demo\\__init__.py,,",),  # the same path, written on Windows
        ("demo\\,,", "demo/,,"),
    ],
    ids=ascii,
)
def test_a_path_listed_twice_is_refused(tmp_path: Path, rows: tuple[str, ...]) -> None:
    refused(tmp_path, demo_members(), "listed twice", extra_rows=rows)


def test_safe_directory_rows_are_kept_byte_for_byte_like_pip(tmp_path: Path) -> None:
    """pip's get_csv_rows_for_installed copies every row it does not know: a directory row stays as it was."""
    files = {
        "pkg/__init__.py": b"",
        "pkg/sub/m.py": b"M = 1\n",
        "pkg-1.0.data/purelib/extra/e.py": b"E = 1\n",
    }
    extra = ("pkg/,,", "pkg/sub/,,", "pkg-1.0.data/purelib/extra/,,", "nowhere/,,", "x\x1by/,,")
    wheel = build_wheel(tmp_path / "w", "pkg-1.0-py3-none-any.whl", files, extra_record_rows=extra)
    proc = pip_install(wheel, tmp_path / "pip")
    ours(wheel, tmp_path / "ours", tmp_path)
    finish(proc)

    def lines(tree: Path) -> list[bytes]:
        record = (tree / "pkg-1.0.dist-info" / "RECORD").read_bytes()
        return [
            line for line in record.split(b"\r\n") if not line.startswith(b"pkg-1.0.dist-info/INSTALLER,")
        ]

    assert lines(tmp_path / "ours") == lines(tmp_path / "pip")
    assert {b"pkg/sub/,,", b"nowhere/,,", b"x\x1by/,,"} <= set(lines(tmp_path / "ours"))


def test_parse_record_keeps_directory_rows() -> None:
    rows = parse_record("pkg/,,\npkg/a.py,sha256=x,1\n", "w.whl", "RECORD")
    assert [row.path for row in rows] == ["pkg/", "pkg/a.py"]
    with pytest.raises(RecordError, match="row 1 has 4 fields"):
        parse_record("a,b,c,d\n", "w.whl", "RECORD")


# -- one installed path, one archive entry -------------------------------------------------------------------


D = "demo-1.0.data"


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (
            {"demo/x.py": b"1", f"{D}/purelib/demo/x.py": b"2"},
            ("two archive entries", "'demo/x.py'", f"'{D}/purelib/demo/x.py'"),
        ),
        (
            {f"{D}/platlib/demo/x.py": b"2", "demo/x.py": b"1"},
            ("two archive entries", f"'{D}/platlib/demo/x.py'"),
        ),
        ({f"{D}/purelib/y.py": b"1", f"{D}/platlib/y.py": b"2"}, ("two archive entries",)),
        ({f"{D}/data/lib/python/demo/__init__.py": b"2"}, ("two archive entries", "'demo/__init__.py'")),
        ({f"{D}/scripts/tool": b"1", f"{D}/data/bin/tool": b"2"}, ("two archive entries",)),
        (
            {f"{D}/purelib/demo": b"file"},
            ("installs a file where", "needs a directory", f"'{D}/purelib/demo'"),
        ),
        ({f"{D}/data/lib": b"file"}, ("installs a file where", "needs a directory")),
        ({f"{D}/data/bin": b"file", f"{D}/scripts/s": b"#!/bin/sh\n"}, ("needs a directory",)),
        ({"demo/x.py/y": b"1", f"{D}/purelib/demo/x.py": b"2"}, ("needs a directory",)),
    ],
    ids=lambda value: None if isinstance(value, tuple) else "+".join(value)[:60],
)
def test_two_entries_on_one_path_are_refused(
    tmp_path: Path, extra: dict[str, bytes], needles: tuple[str, ...]
) -> None:
    refused(tmp_path, {**extra, **demo_members()}, *needles)


def test_a_data_file_where_a_launcher_needs_bin_is_refused(tmp_path: Path) -> None:
    members = demo_members({f"{D}/data/bin": b"file"}, entry_points="[console_scripts]\ntool = demo:main\n")
    refused(tmp_path, members, "needs a directory", "the launcher of entry point 'tool'")


@pytest.mark.parametrize("member", ["INSTALLER", "REQUESTED", "direct_url.json"])
def test_generated_files_replace_archive_files_with_one_row(tmp_path: Path, member: str) -> None:
    """pip writes the archive's file, then its own over it, and keeps both rows (one with a stale hash)."""
    target = install(tmp_path, demo_members({f"{DI}/{member}": b"from the archive\n"}))
    rows = assert_record_sound(target)
    assert [row[0] for row in rows].count(f"{DI}/{member}") == 1
    assert (target / DI / member).read_bytes() != b"from the archive\n"
    assert (target / DI / "INSTALLER").read_bytes() == b"wheelstream\n"


def test_launcher_replaces_a_data_file_of_its_name(tmp_path: Path) -> None:
    members = demo_members(
        {f"{D}/data/bin/tool": b"data file\n"}, entry_points="[console_scripts]\ntool = demo:main\n"
    )
    target = install(tmp_path, members)
    rows = assert_record_sound(target)
    assert [row[0] for row in rows].count("../../bin/tool") == 1
    assert b"from demo import main" in (target / "bin" / "tool").read_bytes()


def test_wrapper_script_of_an_entry_point_is_dropped_as_pip_does(tmp_path: Path) -> None:
    members = demo_members(
        {f"{D}/scripts/tool": b"#!python\nold\n"}, entry_points="[console_scripts]\ntool = demo:main\n"
    )
    target = install(tmp_path, members)
    rows = record_rows(target)
    assert [row[0] for row in rows].count("../../bin/tool") == 1
    assert b"from demo import main" in (target / "bin" / "tool").read_bytes()


def test_compiled_bytecode_replaces_an_archive_pyc_with_one_row(tmp_path: Path) -> None:
    pyc = importlib.util.cache_from_source("demo/__init__.py")
    target = install(tmp_path, demo_members({pyc: b"stale bytecode"}), compile_bytecode=True)
    rows = record_rows(target)
    assert [row for row in rows if row[0] == pyc] == [[pyc, "", ""]]  # pip's pyc rows have no hash
    assert (target / pyc).read_bytes()[:4] == importlib.util.MAGIC_NUMBER
    paths = [row[0] for row in rows]
    assert len(paths) == len(set(paths))


def test_every_installed_file_has_exactly_one_right_row(tmp_path: Path) -> None:
    members = demo_members(
        {
            "demo/sub/a.py": b"A\n",
            f"{D}/purelib/demo/p.py": b"P\n",
            f"{D}/platlib/plat.py": b"Q\n",
            f"{D}/scripts/run": b"#!python\nprint(1)\n",
            f"{D}/data/share/x.txt": b"x\n",
            f"{DI}/METADATA": metadata(),
        },
        entry_points="[console_scripts]\ntool = demo:main\n[gui_scripts]\ngtool = demo:main\n",
    )
    target = install(tmp_path, members, extra_rows=("demo/,,", "demo/sub/,,"))
    rows = assert_record_sound(target)
    assert {"../../bin/run", "../../bin/tool", "../../bin/gtool", "demo/"} <= {row[0] for row in rows}


def test_two_wheels_of_one_install_sharing_a_path_warn_only_when_contents_differ(tmp_path: Path) -> None:
    """Shared files are normal (every nvidia-* wheel ships the same nvidia/__init__.py) and pass in silence;
    a path two wheels fill with different bytes is installed as pip installs it — the file of the name that
    sorts first, whatever order they were named in (pip's installation order; the last named won here, so
    ``opencv-python`` named after ``opencv-contrib-python`` left another ``cv2`` than pip) — with a warning,
    since the other wheel's RECORD then names a hash its file no longer has."""
    import wheelstream

    def wheel(name: str, body: bytes) -> str:
        return str(
            build_wheel(
                tmp_path / "w",
                f"{name}-1.0-py3-none-any.whl",
                {"shared/__init__.py": b"", "shared/x.py": body, f"{name}.py": b""},
            )
        )

    same = wheelstream.install(
        [wheel("aaa", b"A\n"), wheel("bbb", b"A\n")], tmp_path / "t1", cache_dir=tmp_path / "c"
    )
    assert same.report is not None
    assert same.report.warnings == ()
    ccc, ddd = wheel("ccc", b"C\n"), wheel("ddd", b"D\n")
    proc = pip_install(Path(ccc), tmp_path / "pip", ddd)  # pip is given ddd, then ccc
    for n, order in enumerate([[ccc, ddd], [ddd, ccc]]):
        differ = wheelstream.install(order, tmp_path / f"t2-{n}", cache_dir=tmp_path / "c")
        assert differ.report is not None
        expected = (
            "ccc-1.0-py3-none-any.whl overwrites 'shared/x.py', which "
            "ddd-1.0-py3-none-any.whl installs with other contents"
        )
        assert differ.report.warnings == (expected,)
        assert (tmp_path / f"t2-{n}" / "shared" / "x.py").read_bytes() == b"C\n"
    finish(proc)
    assert (tmp_path / "pip" / "shared" / "x.py").read_bytes() == b"C\n"


# Not "\r": builders write RECORD with lineterminator "\n", and csv quotes no field for a "\r" then, which its
# own reader takes for a line end — such a RECORD cannot say which file it means.
@pytest.mark.parametrize("odd", ["x\ny", "x\x0cy", "x\u2028y", "x\x85y"], ids=repr)
def test_a_file_name_with_a_line_break_in_it_installs_as_with_pip(tmp_path: Path, odd: str) -> None:
    """csv.writer quotes a name holding ``\\n`` or ``\\r`` (and writes ``\\x0c``, ``\\u2028`` ... as they are):
    RECORD is read as csv reads a file, so such a name is the archive's, and the wheel installs — it was refused
    as "listed but missing" (pip, which checks nothing against RECORD, installs it)."""
    files = {"pkg/__init__.py": b"", f"pkg/{odd}.txt": b"odd\n"}
    wheel = build_wheel(tmp_path / "w", "pkg-1.0-py3-none-any.whl", files)
    proc = pip_install(wheel, tmp_path / "pip")
    ours(wheel, tmp_path / "ours", tmp_path)
    finish(proc)
    assert (tmp_path / "ours" / "pkg" / f"{odd}.txt").read_bytes() == b"odd\n"
    assert (tmp_path / "pip" / "pkg" / f"{odd}.txt").read_bytes() == b"odd\n"


def test_a_record_written_with_backslashes_installs_with_slashes(tmp_path: Path) -> None:
    """A RECORD made on Windows (``demo\\__init__.py``, as some real wheels have it): pip and pypa/installer
    install it; every row was "listed but missing" and every file "not in RECORD"."""
    members = demo_members({"demo/sub/m.py": b"M = 1\n"})
    rows = [record_line(p.replace("/", "\\"), d) for p, d in members.items()]
    record = ("\n".join([*rows, "demo\\sub\\,,", f"{RECORD},,"]) + "\n").encode()
    target = install(tmp_path, members, record=record)
    rows_now = assert_record_sound(target)
    assert not any("\\" in path for path, _hash, _size in rows_now), rows_now
    assert ["demo/sub/", "", ""] in rows_now  # a directory row keeps its place, in the installed spelling
    assert (target / "demo" / "sub" / "m.py").read_bytes() == b"M = 1\n"


def test_a_root_file_named_like_a_dist_info_directory_is_refused_as_pip_refuses_it(tmp_path: Path) -> None:
    """pip counts every top-level name: a *file* ``zzz-9.9.dist-info`` beside the real directory was installed,
    and ``importlib.metadata`` then found a distribution ``zzz 9.9`` that no RECORD lists."""
    members = demo_members({"zzz-9.9.dist-info": b"Name: zzz\nVersion: 9.9\n"})
    wheel = write(tmp_path / "w", wheel_bytes(members))
    assert_refused(wheel, tmp_path / "run", "multiple .dist-info directories found", "zzz-9.9.dist-info")
