"""The fixture corpus is what it claims to be.

Well-formed fixtures: stdlib ``zipfile`` opens them, ``testzip()`` finds nothing, RECORD matches every file,
and a raw walk (fixtures.zipbuild.read_raw + the layout check below) shows the exact on-disk variant each
name promises (descriptor with/without signature, 32/64-bit, ZIP64 extras and end records, no gaps).
Hostile fixtures: each one really carries its defect, shown by stdlib ``zipfile`` or by reading the raw
fields, and names an existing ``wheelstream.errors`` class.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import stat
import struct
import zipfile

import pytest

from fixtures.wellformed import (
    DEFLATED,
    EXECUTABLE_ENTRIES,
    REAL_WHEELS,
    STORED,
    STREAMABLE,
    WELLFORMED,
    make_wheel,
    wheel_filename,
)
from fixtures.zipbuild import (
    DD_SIG,
    FLAG_DESCRIPTOR,
    RawArchive,
    read_local,
    read_raw,
)

# -- helpers -----------------------------------------------------------------------------------------------


def check_record(zf: zipfile.ZipFile) -> None:
    """RECORD lists every file (not directories) with the right sha256 and size, and itself as ``RECORD,,``."""
    records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    assert len(records) == 1, records
    record_name = records[0]
    rows = list(csv.reader(io.StringIO(zf.read(record_name).decode("utf-8"))))
    by_path = {row[0]: row for row in rows}
    assert len(by_path) == len(rows), "duplicate RECORD rows"
    assert by_path.pop(record_name) == [record_name, "", ""]
    files = [i for i in zf.infolist() if not i.is_dir() and i.filename != record_name]
    assert sorted(by_path) == sorted(i.filename for i in files)
    for info in files:
        content = zf.read(info)
        _, hash_, size = by_path[info.filename]
        algo, _, digest = hash_.partition("=")
        assert algo == "sha256"
        expected = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        assert digest == expected, info.filename
        assert int(size) == len(content), info.filename


def layout(data: bytes) -> tuple[RawArchive, dict[bytes, str | None]]:
    """Walk every entry from its local header; return the raw archive and each entry's descriptor kind.

    Kind: None (no descriptor), "sig32", "nosig32", "sig64", "nosig64". Asserts the entries are contiguous
    from offset 0 to the central directory, then CD, [ZIP64 EOCD, locator], EOCD + comment at the very end.
    """
    raw = read_raw(data)
    kinds: dict[bytes, str | None] = {}
    pos = 0
    for c in sorted(raw.central, key=lambda c: c.header_offset):
        assert c.header_offset == pos, f"gap before {c.name!r}"
        lh = read_local(data, pos)
        assert lh.name == c.name
        end = lh.data_offset + c.csize
        if lh.flags & FLAG_DESCRIPTOR:
            assert (lh.crc, lh.csize) == (0, 0xFFFFFFFF if lh.zip64_sizes() else 0)
            wide = lh.zip64_sizes() is not None
            signed = data[end : end + 4] == DD_SIG
            body = struct.unpack_from("<LQQ" if wide else "<LLL", data, end + (4 if signed else 0))
            assert body == (c.crc, c.csize, c.usize), c.name
            kinds[c.name] = ("sig" if signed else "nosig") + ("64" if wide else "32")
            end += (4 if signed else 0) + (20 if wide else 12)
        else:
            sizes = lh.zip64_sizes()
            if sizes is not None:
                assert (lh.csize, lh.usize) == (0xFFFFFFFF, 0xFFFFFFFF)
                assert sizes == (c.usize, c.csize)
            else:
                assert (lh.crc, lh.csize, lh.usize) == (c.crc, c.csize, c.usize)
            kinds[c.name] = None
        pos = end
    assert pos == raw.cd_offset
    assert raw.cd_offset + raw.cd_size == (
        raw.z64_eocd_offset if raw.z64_eocd_offset is not None else raw.eocd_offset
    )
    if raw.z64_eocd_offset is not None:
        assert raw.locator_offset == raw.z64_eocd_offset
    assert raw.eocd_offset + 22 + len(raw.comment) == len(data)
    return raw, kinds


# -- well-formed --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WELLFORMED))
def test_wellformed_opens_and_record_matches(name: str) -> None:
    data = WELLFORMED[name]()
    assert isinstance(data, bytes)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        check_record(zf)
        dist_infos = {n.split("/")[0] for n in zf.namelist() if ".dist-info/" in n}
        assert dist_infos == {"demo-1.0.dist-info"}
        for suffix in ("METADATA", "WHEEL", "RECORD"):
            assert f"demo-1.0.dist-info/{suffix}" in zf.namelist()
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)


# name -> set of descriptor kinds of its *file* entries (directories never have one), ZIP64 EOCD?, local ZIP64?
EXPECTED_LAYOUT: dict[str, tuple[set[str | None], bool, bool | None]] = {
    "deflate": ({None}, False, False),
    "stored": ({None}, False, False),
    "deflate_descriptor": ({"sig32"}, False, False),
    "deflate_descriptor_nosig": ({"nosig32"}, False, False),
    "stored_descriptor": ({"sig32"}, False, False),
    "stored_descriptor_nosig": ({"nosig32"}, False, False),
    "deflate_zip64": ({None}, True, True),
    "stored_zip64": ({None}, True, True),
    "deflate_zip64_descriptor": ({"sig64"}, True, True),
    "deflate_zip64_descriptor_nosig": ({"nosig64"}, True, True),
    "zipstream_deflate": ({"sig32"}, False, False),
    "zipstream_stored": ({"sig32"}, False, False),
    "zipstream_zip64": ({"sig64"}, False, True),
    "zipstream_zip64_stored": ({"sig64"}, False, True),
    "zipstream_directories": ({"sig32"}, False, False),
    "many_entries": ({None}, False, False),
    "big_entry": ({None}, False, False),
    "big_entry_descriptor": ({"sig32"}, False, False),
    "empty_files": ({None, "sig32"}, False, False),
    "directories": ({None}, False, False),
    "executable": ({None}, False, False),
    "mixed": ({None, "sig32", "nosig32", "nosig64"}, True, None),
    "mixed_streamable": ({None, "sig32", "nosig32", "nosig64"}, True, None),
    "unicode_names": ({None}, False, False),
    "archive_comment": ({None}, False, False),
}


def test_every_variant_has_a_layout_expectation() -> None:
    assert set(EXPECTED_LAYOUT) == set(WELLFORMED) == set(STREAMABLE)


@pytest.mark.parametrize("name", sorted(WELLFORMED))
def test_wellformed_layout(name: str) -> None:
    data = WELLFORMED[name]()
    raw, kinds = layout(data)
    want_kinds, want_z64_eocd, want_local_z64 = EXPECTED_LAYOUT[name]
    file_kinds = {kinds[c.name] for c in raw.central if not c.name.endswith(b"/")}
    assert file_kinds == want_kinds
    assert (raw.z64_eocd_offset is not None) == want_z64_eocd
    if want_local_z64 is not None:
        local_z64 = {
            raw.locals_by_offset[c.header_offset].zip64_sizes() is not None
            for c in raw.central
            if not c.name.endswith(b"/")
        }
        assert local_z64 == {want_local_z64}
    stored_dd = any(c.method == STORED and kinds[c.name] is not None for c in raw.central)
    assert STREAMABLE[name] == (not stored_dd)


def test_wellformed_specifics() -> None:
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["many_entries"]())) as zf:
        assert len(zf.infolist()) == 2003
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["big_entry"]())) as zf:
        info = zf.getinfo("demo/big.txt")
        assert info.file_size == 20 * 1024 * 1024
        assert info.compress_type == DEFLATED
        assert 0.15 < info.compress_size / info.file_size < 0.6  # compressible, not trivial
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["empty_files"]())) as zf:
        sizes = {i.filename: (i.file_size, i.compress_size, i.compress_type) for i in zf.infolist()}
        assert sizes["demo/empty_stored.txt"] == (0, 0, STORED)
        assert sizes["demo/__init__.py"] == (0, 2, DEFLATED)
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["directories"]())) as zf:
        dirs = {i.filename for i in zf.infolist() if i.is_dir()}
        assert dirs == {"demo/", "demo/sub/", "demo/empty/"}
        for i in zf.infolist():
            assert stat.S_ISDIR(i.external_attr >> 16) == i.is_dir()
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["executable"]())) as zf:
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        for path, mode in modes.items():
            want = 0o755 if path in EXECUTABLE_ENTRIES["executable"] else 0o644
            assert mode == stat.S_IFREG | want, path
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["unicode_names"]())) as zf:
        assert "demo/donn\u00e9es.txt" in zf.namelist()
        assert all(i.flag_bits & 0x800 for i in zf.infolist() if not i.filename.isascii())
    with zipfile.ZipFile(io.BytesIO(WELLFORMED["archive_comment"]())) as zf:
        assert zf.comment == b"built by wheelstream fixtures"


def test_builders_are_deterministic() -> None:
    for name in (
        "deflate",
        "deflate_zip64_descriptor_nosig",
        "zipstream_deflate",
        "zipstream_zip64",
        "mixed",
    ):
        builder = WELLFORMED[name]
        assert builder.__wrapped__() == builder.__wrapped__() == builder()  # type: ignore[attr-defined]
    files = {"pkg/__init__.py": b"x = 1\n", "pkg/run.sh": b"#!/bin/sh\n"}
    assert make_wheel(files, executable={"pkg/run.sh"}) == make_wheel(files, executable={"pkg/run.sh"})


def test_make_wheel_options() -> None:
    data = make_wheel(
        {
            "my_pkg/__init__.py": b"",
            "my_pkg-2.0.dist-info/entry_points.txt": b"[console_scripts]\nx = my_pkg:main\n",
        },
        name="my-pkg",
        version="2.0",
        tag="py2.py3-none-any",
        compress=STORED,
        root_is_purelib=False,
    )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        check_record(zf)
        wheel = zf.read("my_pkg-2.0.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel
        assert "Tag: py2-none-any" in wheel and "Tag: py3-none-any" in wheel
    assert wheel_filename("my-pkg", "2.0", "py2.py3-none-any") == "my_pkg-2.0-py2.py3-none-any.whl"
    assert wheel_filename(build="1") == "demo-1.0-1-py3-none-any.whl"
    bad = make_wheel({"a/b.py": b"1"}, record=b"a/b.py,sha256=xxx,1\n")
    with zipfile.ZipFile(io.BytesIO(bad)) as zf:
        assert zf.read("demo-1.0.dist-info/RECORD") == b"a/b.py,sha256=xxx,1\n"
    with pytest.raises(ValueError):
        make_wheel({}, writer="zipstream")  # zipstream-ng cannot write sizes in the local header


# -- real wheels --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL_WHEELS))
def test_real_wheels(name: str) -> None:
    path = REAL_WHEELS[name]
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        check_record(zf)
    layout(path.read_bytes())


def test_real_wheels_cover_scripts_and_entry_points() -> None:
    assert sum(p.stat().st_size for p in REAL_WHEELS.values()) < 1024 * 1024
    with zipfile.ZipFile(REAL_WHEELS["jsonpointer"]) as zf:
        info = zf.getinfo("jsonpointer-2.4.data/scripts/jsonpointer")
        assert info.external_attr >> 16 & 0o111
        assert zf.read(info).startswith(b"#!python")
    with zipfile.ZipFile(REAL_WHEELS["wheel"]) as zf:
        assert b"[console_scripts]" in zf.read("wheel-0.45.1.dist-info/entry_points.txt")
