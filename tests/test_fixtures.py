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
import zlib
from typing import Any

import pytest

import fixtures.hostile as _hostile
from fixtures.hostile import HostileCase
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
    CENTRAL_SIG,
    DD_SIG,
    EOCD_SIG,
    FLAG_DESCRIPTOR,
    FLAG_ENCRYPTED,
    LOCAL_SIG,
    Z64_EOCD_SIG,
    CentralRecord,
    LocalRecord,
    RawArchive,
    build,
    read_local,
    read_raw,
)
from wheelstream import errors

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
    assert pos == raw.cd_offset == raw.cd_real_offset
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
    "long_runs": ({None}, False, False),
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
        assert "Tag: py2-none-any" in wheel
        assert "Tag: py3-none-any" in wheel
    assert wheel_filename("my-pkg", "2.0", "py2.py3-none-any") == "my_pkg-2.0-py2.py3-none-any.whl"
    assert wheel_filename(build="1") == "demo-1.0-1-py3-none-any.whl"
    bad = make_wheel({"a/b.py": b"1"}, record=b"a/b.py,sha256=xxx,1\n")
    with zipfile.ZipFile(io.BytesIO(bad)) as zf:
        assert zf.read("demo-1.0.dist-info/RECORD") == b"a/b.py,sha256=xxx,1\n"
    with pytest.raises(ValueError, match="zipstream-ng always writes signed data descriptors"):
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


# -- hostile ------------------------------------------------------------------------------------------------

BASE = _hostile.base_members


def local_walk(data: bytes, start: int = 0) -> list[LocalRecord]:
    """Follow sized local headers from ``start`` until something that is not a local header."""
    out = []
    pos = start
    while data[pos : pos + 4] == LOCAL_SIG:
        lh = read_local(data, pos)
        assert not lh.flags & FLAG_DESCRIPTOR
        out.append(lh)
        pos = lh.data_offset + lh.csize
    return out


def inflate_len_crc(payload: bytes, limit: int = 1 << 30) -> tuple[int, int]:
    """Inflate raw deflate in bounded steps; return (total length, crc32) without holding the output."""
    d = zlib.decompressobj(-15)
    total = crc = 0
    buf = payload
    while buf and not d.eof:
        chunk = d.decompress(buf, 1 << 20)
        total += len(chunk)
        crc = zlib.crc32(chunk, crc)
        buf = d.unconsumed_tail
        assert total <= limit
    chunk = d.flush()
    return total + len(chunk), zlib.crc32(chunk, crc)


def central(raw: RawArchive, name: str) -> CentralRecord:
    (c,) = [c for c in raw.central if c.name == name.encode()]
    return c


def descriptor_at(data: bytes, raw: RawArchive, name: str) -> tuple[int, int, int]:
    c = central(raw, name)
    lh = raw.locals_by_offset[c.header_offset]
    pos = lh.data_offset + c.csize
    assert data[pos : pos + 4] == DD_SIG
    return struct.unpack_from("<LLL", data, pos + 4)


def check_header_mismatch(case: HostileCase, field: str) -> None:
    raw = read_raw(case.data)
    c = central(raw, "demo/mod.py") if field != "name" else raw.central[1]
    lh = raw.locals_by_offset[c.header_offset]
    truth = _hostile._BASE_FILES["demo/mod.py"]
    assert lh.name == b"demo/mod.py"
    payload = case.data[lh.data_offset : lh.data_offset + lh.csize]
    got = payload if lh.method == STORED else zlib.decompress(payload, -15)
    assert got == truth
    assert lh.crc == zlib.crc32(truth)
    assert lh.usize == len(truth)
    assert getattr(lh, field) != getattr(c, field)
    for other in ("name", "method", "crc", "csize", "usize", "flags"):
        if other != field:
            assert getattr(lh, other) == getattr(c, other), other


def names(records: list[Any]) -> list[bytes]:
    return [r.name for r in records]


def check_case(name: str, case: HostileCase) -> None:
    data = case.data
    if name in ("name_mismatch", "method_mismatch", "csize_mismatch", "usize_mismatch", "flags_mismatch"):
        check_header_mismatch(case, name.split("_")[0])
        if name == "name_mismatch":
            with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(zipfile.BadZipFile, match="differ"):
                zf.read("demo/mod.pyx")
    elif name == "crc_header_mismatch":
        check_header_mismatch(case, "crc")
    elif name == "descriptor_flag_local_only":
        raw = read_raw(data)
        c = central(raw, "demo/mod.py")
        lh = raw.locals_by_offset[c.header_offset]
        assert lh.flags & FLAG_DESCRIPTOR
        assert not c.flags & FLAG_DESCRIPTOR
        assert (
            data[lh.data_offset + lh.csize : lh.data_offset + lh.csize + 4] == b"PK\x03\x04"
        )  # no descriptor
    elif name in ("descriptor_crc_mismatch", "descriptor_size_mismatch"):
        raw = read_raw(data)
        truth = _hostile._BASE_FILES["demo/mod.py"]
        crc, csize, usize = descriptor_at(data, raw, "demo/mod.py")
        assert (crc, usize) == (zlib.crc32(truth), len(truth))
        c = central(raw, "demo/mod.py")
        assert (c.crc, c.usize) != (crc, usize)
        assert c.csize == csize
    elif name == "local_only":
        raw = read_raw(data)
        only = set(names(local_walk(data))) - set(names(raw.central))
        assert only == {b"demo/extra.py"}
    elif name == "central_only":
        raw = read_raw(data)
        only = set(names(raw.central)) - set(names(local_walk(data)))
        assert only == {b"demo/gone.py"}
        assert central(raw, "demo/gone.py").header_offset == raw.cd_offset
        assert raw.cd_offset not in raw.locals_by_offset
    elif name == "duplicate_name":
        raw = read_raw(data)
        assert names(raw.central).count(b"demo/mod.py") == 2
        assert names(local_walk(data)).count(b"demo/mod.py") == 2
    elif name == "slash_backslash_pair":
        lhs = names(local_walk(data))
        assert lhs[0] == b"demo\\mod.py"
        assert b"demo/mod.py" in lhs
    elif name == "cd_offset_wrong":
        raw = read_raw(data)
        real = raw.eocd_offset - raw.cd_size
        assert data[real : real + 4] == CENTRAL_SIG
        assert raw.cd_offset != real == raw.cd_real_offset
        assert raw.z64_eocd_offset is None
    elif name == "zip64_locator_offset_wrong":
        raw = read_raw(data)
        assert raw.z64_eocd_offset is not None
        assert raw.locator_offset is not None
        assert raw.locator_offset != raw.z64_eocd_offset
        assert data[raw.z64_eocd_offset : raw.z64_eocd_offset + 4] == Z64_EOCD_SIG
        assert data[raw.locator_offset : raw.locator_offset + 4] != Z64_EOCD_SIG
        real = raw.z64_eocd_offset - raw.cd_size
        assert raw.cd_offset == real
    elif name == "zip64_eocd_cd_offset_wrong":
        raw = read_raw(data)
        assert raw.z64_eocd_offset is not None
        assert raw.locator_offset == raw.z64_eocd_offset
        real = raw.z64_eocd_offset - raw.cd_size
        assert data[real : real + 4] == CENTRAL_SIG
        assert raw.cd_offset != real == raw.cd_real_offset
    elif name == "trailing_bytes":
        raw = read_raw(data)
        assert raw.comment == b""
        assert raw.eocd_offset + 22 < len(data)
        layout(data[: raw.eocd_offset + 22])  # without the suffix it is a valid archive
    elif name == "leading_bytes":
        assert data[:4] != LOCAL_SIG
        raw = read_raw(data)
        first = min(c.header_offset for c in raw.central)
        assert first == 30
        assert data[first : first + 4] == LOCAL_SIG
        assert len(local_walk(data, first)) == len(raw.central)
    elif name == "stray_between_entries":
        raw = read_raw(data)
        walked = local_walk(data)
        assert len(walked) == 1  # the walk hits junk after the first entry
        end = walked[0].data_offset + walked[0].csize
        assert data[end : end + 16] == b"JUNK" * 4
        assert raw.central[1].header_offset == end + 16
    elif name in ("crc_mismatch", "crc_mismatch_descriptor"):
        raw = read_raw(data)
        c = central(raw, "demo/mod.py")
        lh = raw.locals_by_offset[c.header_offset]
        length, crc = inflate_len_crc(data[lh.data_offset : lh.data_offset + c.csize])
        assert length == c.usize
        assert crc != c.crc
        if name == "crc_mismatch":
            assert lh.crc == c.crc
        else:
            assert descriptor_at(data, raw, "demo/mod.py")[0] == c.crc
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.testzip() == "demo/mod.py"
    elif name == "corrupt_deflate":
        raw = read_raw(data)
        c = central(raw, "demo/mod.py")
        lh = raw.locals_by_offset[c.header_offset]
        assert lh.crc == c.crc
        assert lh.csize == c.csize == 41
        with pytest.raises(zlib.error, match="invalid block type"):
            zlib.decompress(data[lh.data_offset : lh.data_offset + c.csize], -15)
        with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(zlib.error):
            zf.read("demo/mod.py")
    elif name in ("bomb", "bomb_descriptor"):
        raw = read_raw(data)
        c = central(raw, "demo/bomb.bin")
        lh = raw.locals_by_offset[c.header_offset]
        assert c.usize == _hostile.BOMB_DECLARED_SIZE
        if name == "bomb":
            assert lh.usize == c.usize
        else:
            assert descriptor_at(data, raw, "demo/bomb.bin")[2] == c.usize
        length, _ = inflate_len_crc(data[lh.data_offset : lh.data_offset + c.csize])
        assert length == _hostile.BOMB_INFLATED_SIZE
        assert c.crc == zlib.crc32(bytes(_hostile.BOMB_DECLARED_SIZE))
        assert c.csize < 200_000
    elif name == "size_short":
        raw = read_raw(data)
        c = central(raw, "demo/short.bin")
        lh = raw.locals_by_offset[c.header_offset]
        length, crc = inflate_len_crc(data[lh.data_offset : lh.data_offset + c.csize])
        assert lh.usize == c.usize == 2 * length
        assert crc == c.crc
    elif name == "unpacked_limit":
        assert case.max_unpacked_size == _hostile.UNPACKED_LIMIT
        raw = read_raw(data)
        running = 0
        crossing = None
        for c in sorted(raw.central, key=lambda c: c.header_offset):
            running += c.usize
            if crossing is None and running > case.max_unpacked_size:
                crossing = c.name.decode()
        assert crossing == case.entry
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.testzip() is None
    elif name.startswith("path_"):
        assert case.entry is not None
        raw = read_raw(data)
        assert case.entry.encode() in names(raw.central)
        assert case.entry.encode() in names(local_walk(data))
    elif name == "symlink":
        raw = read_raw(data)
        c = central(raw, "demo/link")
        assert stat.S_ISLNK(c.external_attr >> 16)
        assert c.made_by >> 8 == 3
    elif name in ("method_bzip2", "method_lzma"):
        raw = read_raw(data)
        c = central(raw, "demo/mod.py")
        assert (
            c.method == raw.locals_by_offset[c.header_offset].method == (12 if name == "method_bzip2" else 14)
        )
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.read("demo/mod.py") == _hostile._BASE_FILES["demo/mod.py"]
            assert zf.testzip() is None
    elif name == "encrypted":
        raw = read_raw(data)
        c = central(raw, "demo/mod.py")
        assert c.flags & FLAG_ENCRYPTED
        assert raw.locals_by_offset[c.header_offset].flags & FLAG_ENCRYPTED
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert (
                zf.read("demo/mod.py", pwd=_hostile.ENCRYPTION_PASSWORD)
                == _hostile._BASE_FILES["demo/mod.py"]
            )
            with pytest.raises(RuntimeError, match="encrypted"):
                zf.read("demo/mod.py")
    elif name.startswith("truncated_"):
        whole = build(BASE())
        assert whole.startswith(data)
        assert len(data) < len(whole)
        assert EOCD_SIG not in data
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(data))
    elif name == "comment_hides_directory":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # zipfile trusts the last end record: the fake one
            assert len(zf.namelist()) == 1
        assert len(local_walk(data)) == len(BASE())
    elif name == "zip64_extensible_data":
        record = data.rindex(b"PK\x06\x06")
        assert struct.unpack_from("<Q", data, record + 4)[0] == 44 + 56
        with pytest.raises(ValueError, match="no ZIP64 EOCD before the locator"):
            read_raw(data)  # a reader that assumes no extensible data (as zipfile does) reads garbage
    elif name.startswith("central_record_after_zip64_"):
        z64, locator, eocd = (
            data.rindex(b"PK\x06\x06"),
            data.rindex(b"PK\x06\x07"),
            data.rindex(b"PK\x05\x06"),
        )
        stray = data.rindex(b"PK\x01\x02")
        if name.endswith("end_record"):
            assert z64 < stray < locator < eocd
        else:
            assert z64 < locator < stray < eocd
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(data))
    elif name.startswith("zip64_locator_o"):  # on another disk, of two disks: what the locator's fields say
        locator = data.rindex(b"PK\x06\x07")
        disk, _offset, disks = struct.unpack_from("<IQI", data, locator + 4)
        assert (disk, disks) == ((1, 1) if name.endswith("another_disk") else (0, 2))
        with pytest.raises(zipfile.BadZipFile, match="span multiple disks"):
            zipfile.ZipFile(io.BytesIO(data))
    elif name == "patched_data_flag":
        raw = read_raw(data)
        assert [c.flags & 0x20 for c in raw.central if c.name == b"demo/mod.py"] == [0x20]
        with (
            zipfile.ZipFile(io.BytesIO(data)) as archive,
            pytest.raises(NotImplementedError, match="patched"),
        ):
            archive.read("demo/mod.py")
    elif name == "version_needed_too_new":
        with pytest.raises(NotImplementedError, match=r"zip file version 25\.5"):
            zipfile.ZipFile(io.BytesIO(data))
    elif name.startswith("zip64_classic_end_record_disagrees"):
        eocd = data.rindex(b"PK\x05\x06")
        z64 = data.rindex(b"PK\x06\x06")
        classic_count = struct.unpack_from("<H", data, eocd + 10)[0]
        zip64_count = struct.unpack_from("<Q", data, z64 + 32)[0]
        assert classic_count not in (0xFFFF, zip64_count)  # an ordinary value, another one
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # zipfile follows the ZIP64 record: all of them
            assert len(zf.namelist()) == zip64_count
    elif name.startswith("zip64_end_records_swapped"):
        assert data.rindex(b"PK\x06\x07") < data.rindex(b"PK\x06\x06") < data.rindex(b"PK\x05\x06")
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(data))  # so pip refuses it
    else:
        raise AssertionError(f"no check for hostile case {name!r}")


@pytest.mark.parametrize("name", sorted(_hostile.HOSTILE))
def test_hostile_case_has_its_defect(name: str) -> None:
    case = _hostile.HOSTILE[name]
    assert isinstance(case.data, bytes)
    error = getattr(errors, case.error)
    assert issubclass(error, errors.ArchiveError)
    if case.entry is not None:
        raw = read_raw(case.data)
        raw_names = set(names(raw.central)) | set(names(list(raw.locals_by_offset.values())))
        if not any(lh.flags & FLAG_DESCRIPTOR for lh in raw.locals_by_offset.values()):
            raw_names |= set(names(local_walk(case.data)))
        assert case.entry.encode() in raw_names or name == "name_mismatch"
    check_case(name, case)


def test_hostile_covers_every_design_row() -> None:
    errors_used = {case.error for case in _hostile.HOSTILE.values()}
    assert errors_used == {
        "HeaderMismatch",
        "MalformedRecord",
        "EntrySetMismatch",
        "DuplicateEntry",
        "OffsetMismatch",
        "StrayData",
        "ChecksumMismatch",
        "CorruptData",
        "SizeMismatch",
        "UnpackedLimitExceeded",
        "UnsafePath",
        "SymlinkEntry",
        "UnsupportedEntry",
        "TruncatedArchive",
    }
    assert all(c.max_unpacked_size is None for n, c in _hostile.HOSTILE.items() if n != "unpacked_limit")
