"""Every hostile archive (DESIGN §4) is rejected with its own error type, one line naming entry and offset."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import wheelstream
from fixtures.hostile import ALL_HOSTILE, DEFERRED, HOSTILE, _find, base_members
from fixtures.wellformed import wheel_files
from fixtures.zipbuild import build, read_raw
from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, unpack_local
from wheelstream.testing import FaultServer
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._tee import parse_block
from wheelstream.zip import DEFAULT_MAX_UNPACKED_SIZE, ZipStreamParser

# How entries reach the disk: the parser inflates everything ("streamed"); small entries are packed and the
# writer threads inflate them ("writers", as a download does); packed but inflated on the caller's thread;
# as "writers", but nothing written ("verify", as ``download`` checks a wheel).
MODES = ("streamed", "writers", "packed-inline", "verify")


def feed_through_extractor(
    data: bytes, staging: Path, chunk: int, limit: int | None, mode: str = "streamed"
) -> None:
    extractor = Extractor(staging, writers=mode in ("writers", "verify"), verify_only=mode == "verify")
    pack = {
        "streamed": 0,
        "writers": extractor.pack_up_to,
        "packed-inline": 1 << 20,
        "verify": extractor.pack_up_to,
    }[mode]
    parser = ZipStreamParser(max_unpacked_size=limit or DEFAULT_MAX_UNPACKED_SIZE, pack_up_to=pack)
    try:
        for pos in range(0, len(data), chunk):
            parse_block(parser, extractor, data[pos : pos + chunk])
        parse_block(parser, extractor, b"")
    except BaseException:
        with contextlib.suppress(Exception):
            extractor.close()  # as the download does: the error on its way out is the one reported
        raise
    extractor.close()  # the writers' errors surface here at the latest


def all_paths(root: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, n), root) for d, dirs, names in os.walk(root) for n in dirs + names
    }


@pytest.mark.parametrize("name", sorted(ALL_HOSTILE))
@pytest.mark.parametrize("chunk", [7, 65536])
@pytest.mark.parametrize("mode", MODES)
def test_hostile_archive_is_rejected_with_its_error(name: str, chunk: int, mode: str, tmp_path: Path) -> None:
    case = ALL_HOSTILE[name]
    staging = tmp_path / "staging"
    error_type = getattr(errors, case.error)
    with pytest.raises(error_type) as info:
        feed_through_extractor(case.data, staging, chunk, case.max_unpacked_size, mode)
    message = str(info.value)
    assert "\n" not in message
    assert "offset" in message
    if case.entry is not None:
        assert repr(case.entry) in message
    outside = all_paths(tmp_path) - {"staging"} - {f"staging{os.sep}{p}" for p in all_paths(staging)}
    assert not outside, f"written outside staging: {outside}"
    if mode == "verify":
        assert all_paths(staging) == set()


@pytest.mark.parametrize("name", ["bomb", "path_dotdot", "crc_mismatch", "trailing_bytes"])
def test_local_unpack_names_the_wheel_and_leaves_no_staging(name: str, tmp_path: Path) -> None:
    case = HOSTILE[name]
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(case.data)
    cache = Cache.at(tmp_path / "cache")
    with pytest.raises(getattr(errors, case.error)) as info:
        unpack_local(wheel, cache=cache, options=DownloadOptions())
    assert str(info.value).startswith("demo-1.0-py3-none-any.whl: ")
    assert not any((tmp_path / "cache" / "staging").iterdir())
    assert not any((tmp_path / "cache" / "wheels").iterdir())


@pytest.mark.parametrize("name", sorted(DEFERRED))
def test_end_records_read_from_the_tail_are_held_to_the_parsers_rules(
    name: str, tmp_path: Path, server: FaultServer
) -> None:
    """A stored entry sized by its descriptor makes the download read the end records from the file's tail
    (``zip._tail``), which took the ZIP64 record without checking the classic one or their order, and followed a
    directory offset past the file (a traceback). Local file and download alike."""
    import wheelstream

    case = DEFERRED[name]
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(case.data)
    with pytest.raises(getattr(errors, case.error)) as info:
        unpack_local(wheel, cache=Cache.at(tmp_path / "cache"), options=DownloadOptions())
    assert str(info.value).startswith("demo-1.0-py3-none-any.whl: ")
    assert not any((tmp_path / "cache" / "staging").iterdir())
    url = server.add_file(wheel.name, case.data)
    with pytest.raises(getattr(errors, case.error)) as info:
        wheelstream.download([url], tmp_path / "d", cache_dir=tmp_path / "c2")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_a_directory_as_large_as_the_file_is_not_read_into_memory_whole() -> None:
    """An end record saying the directory starts at 0 and runs to the end records: the tail reader joined the
    whole file into one string and refused it after (855 MB of RSS for a 400 MB wheel). Now it stops reading at
    the first bytes that are no central record: one block."""
    from wheelstream.zip import read_central_directory

    blocks_read = 0

    def blocks() -> Iterator[bytes]:
        nonlocal blocks_read
        for _ in range(400):
            blocks_read += 1
            yield b"PK\x03\x04" + bytes(1 << 20)

    assert read_central_directory(blocks(), 0) == []
    assert blocks_read == 1


def test_bomb_stops_inflating_right_past_the_declared_size() -> None:
    case = HOSTILE["bomb"]
    parser = ZipStreamParser()
    produced = 0

    def inflate_all() -> None:
        nonlocal produced
        for event in parser.feed(case.data):
            produced += len(getattr(event, "data", b""))

    with pytest.raises(errors.SizeMismatch):
        inflate_all()
    assert produced <= 1024 + 1


@pytest.mark.parametrize(
    "name",
    sorted(n for n, c in HOSTILE.items() if c.error in ("ChecksumMismatch", "CorruptData", "SizeMismatch")),
)
def test_a_packed_entry_fails_as_the_streamed_one_does(name: str, tmp_path: Path) -> None:
    """The writers' checks (``unpack_entry``) are the parser's: same error, same message, for every bad entry."""
    case = HOSTILE[name]
    raised = {}
    for mode in MODES:
        with pytest.raises(errors.ArchiveError) as info:
            feed_through_extractor(case.data, tmp_path / mode, 65536, case.max_unpacked_size, mode)
        raised[mode] = (type(info.value), info.value.entry, str(info.value).split(" (entry")[0])
    assert raised["writers"] == raised["packed-inline"] == raised["streamed"]


def test_a_bad_packed_entry_is_reported_before_a_later_defect(tmp_path: Path) -> None:
    """Errors keep stream order: the writers' verdict on an early entry wins over the parser's on a later one."""
    members = base_members()
    _find(members, "demo/mod.py").crc = zlib.crc32(b"something else")
    _find(members, "demo/util.py").trailer = b"JUNK" * 4  # stray bytes: the parser itself fails here
    data = build(members)
    for mode in MODES:
        with pytest.raises(errors.ArchiveError) as info:
            feed_through_extractor(data, tmp_path / mode, len(data), None, mode)
        assert isinstance(info.value, errors.ChecksumMismatch), (mode, info.value)
        assert info.value.entry == "demo/mod.py"


def test_a_local_file_reports_its_earliest_bad_entry_even_at_the_end(tmp_path: Path) -> None:
    """A bad packed entry early, a truncated end record late: the local-file path reports the entry, as the
    download path does (the end of input drains the writers before the parser's own error goes out)."""
    members = base_members()
    _find(members, "demo/mod.py").crc = zlib.crc32(b"something else")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(build(members)[:-10])
    with pytest.raises(errors.ChecksumMismatch, match=r"demo/mod\.py"):
        unpack_local(wheel, cache=Cache.at(tmp_path / "cache"), options=DownloadOptions())


def test_packed_entries_count_their_compressed_bytes_while_in_flight(tmp_path: Path) -> None:
    """An entry that declares 0 bytes may still carry up to ``pack_up_to`` of deflate: what the writers hold
    is bounded by what they really hold, and a written batch keeps no data."""
    empty_blocks = (
        b"\x00\x00\x00\xff\xff" * 100_000 + b"\x03\x00"
    )  # 500 kB of empty stored blocks, then the end
    members = base_members({**{f"demo/z{i}.bin": b"" for i in range(40)}})
    for i in range(40):
        _find(members, f"demo/z{i}.bin").payload = empty_blocks
    data = build(members)
    extractor = Extractor(tmp_path / "staging", writers=True)
    parser = ZipStreamParser(pack_up_to=extractor.pack_up_to)
    peak = 0
    for event in parser.feed(data) + parser.feed(b""):
        extractor.handle(event)
        peak = max(peak, extractor._in_flight_bytes)
        assert extractor._in_flight_bytes <= extractor._max_pending + (1 << 20)
    assert all(
        batch.files and not any(content for _p, content, _n, _o in batch.files)
        for batch in extractor._in_flight
        if batch.done.wait(5)
    )
    extractor.close()
    assert peak > 0
    assert all((tmp_path / "staging" / f"demo/z{i}.bin").read_bytes() == b"" for i in range(40))


def _endless_stored_entry(megabytes: int) -> Iterator[bytes]:
    """A local header of a stored entry whose sizes come after its data (flag bit 3), then zeros that never
    reach a data descriptor: only the end of the file could tell where the entry ends, and there is none."""
    name = b"demo/big.bin"
    yield struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x08, 0, 0, 0x5021, 0, 0, 0, len(name), 0) + name
    for _ in range(megabytes):
        yield bytes(1 << 20)


def test_bytes_past_a_deferred_entry_count_against_the_unpacked_budget() -> None:
    """The budget's bytes plus room for the structure of the entries still allowed (512 bytes each, 64 KiB for
    the end records), and not one byte more."""
    parser = ZipStreamParser(max_unpacked_size=3 << 20, max_entries=10)
    stream = _endless_stored_entry(8)
    parser.receive_data(next(stream))
    assert [type(event).__name__ for event in parser.events()] == ["EntryDeferred"]
    for _ in range(3):
        parser.receive_data(next(stream))  # 3 MiB: the budget
    parser.receive_data(bytes((64 << 10) + 512 * 9))  # the structure of the nine entries still allowed
    with pytest.raises(errors.UnpackedLimitExceeded) as caught:
        parser.receive_data(b"\0")
    assert caught.value.entry == "demo/big.bin"
    assert caught.value.offset == 0
    assert parser.failed
    with pytest.raises(errors.UnpackedLimitExceeded):
        parser.next_event()  # and stays broken


def test_a_deferred_entry_that_fits_the_budget_exactly_is_not_refused(tmp_path: Path) -> None:
    """Its descriptor, the later entries' headers and the central directory are no unpacked bytes: a wheel whose
    files add up to exactly the limit installs, stored entry with a data descriptor or not."""
    raw = io.BytesIO()
    with zipfile.ZipFile(_Unseekable(raw), "w", zipfile.ZIP_STORED) as archive:  # unseekable: descriptors
        archive.writestr("demo/data.bin", b"d" * 1000)
        for i in range(50):
            archive.writestr(f"demo/long/path/to/module_number_{i:03d}.py", b"x")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(raw.getvalue())
    assert zipfile.ZipFile(wheel).testzip() is None
    options = DownloadOptions(max_unpacked_size=1050)
    result = unpack_local(wheel, cache=Cache.at(tmp_path / "cache"), options=options)
    assert result.staged.files["demo/data.bin"].size == 1000
    with pytest.raises(errors.UnpackedLimitExceeded):
        unpack_local(
            wheel, cache=Cache.at(tmp_path / "cache2"), options=DownloadOptions(max_unpacked_size=1049)
        )


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_entry_whose_crc_looks_like_the_descriptor_signature_is_read(
    method: int, tmp_path: Path, server: FaultServer
) -> None:
    """An entry whose CRC-32 is 0x08074b50 (the descriptor's optional signature), behind a signed descriptor
    (zipfile writing to an unseekable stream): the reader took the signature for the CRC, read the sizes 4 bytes
    early, and refused a valid wheel ("unpacks to 15 bytes, 17 declared"). pip installs it."""
    content = b"VALUE = 1\n#\xb6W\xd3\xef"
    assert zlib.crc32(content) == 0x08074B50
    raw = io.BytesIO()
    with zipfile.ZipFile(_Unseekable(raw), "w", method) as archive:
        for name, data in wheel_files({"demo/value.py": content, "demo/other.py": b"x = 1\n"}).items():
            archive.writestr(name, data)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(raw.getvalue())
    assert zipfile.ZipFile(wheel).read("demo/value.py") == content
    result = unpack_local(wheel, cache=Cache.at(tmp_path / "cache"), options=DownloadOptions())
    assert (result.staged.root / "demo" / "value.py").read_bytes() == content
    for chunk in (7, 65536) if method == zipfile.ZIP_DEFLATED else ():  # (a stored one waits for the tail)
        staging = tmp_path / f"staging-{chunk}"
        feed_through_extractor(raw.getvalue(), staging, chunk, None)
        assert (staging / "demo" / "value.py").read_bytes() == content
    url = server.add_file(wheel.name, raw.getvalue())
    fetched = wheelstream.download([url], tmp_path / "d", cache_dir=tmp_path / "c2")
    assert fetched.wheels[0].path is not None


def test_a_zip64_end_record_beside_a_classic_one_of_the_same_values_is_read(tmp_path: Path) -> None:
    """The classic end record may hold the ordinary values rather than the placeholders (zipfile writes them
    when they fit): only a value that differs from the ZIP64 record's is refused."""
    members = base_members()
    data = build(members, zip64_eocd=True)
    raw = read_raw(data)
    exact = {"count": len(members), "cd_size": raw.cd_size, "cd_offset": raw.cd_offset}
    for chunk in (7, 65536):
        feed_through_extractor(
            build(members, zip64_eocd=True, eocd=exact), tmp_path / f"s{chunk}", chunk, None
        )
        assert (tmp_path / f"s{chunk}" / "demo" / "mod.py").is_file()


class _Unseekable(io.RawIOBase):
    """Where zipfile must write data descriptors (it cannot seek back to fill in the sizes)."""

    def __init__(self, sink: io.BytesIO) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return self._sink.write(data)  # type: ignore[arg-type]


def test_an_endless_deferred_entry_is_refused_at_the_budget_not_at_a_full_disk(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    sent = []

    def endless(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for chunk in _endless_stored_entry(200):  # bounded only so that a failing test ends
                sent.append(len(chunk))
                yield chunk

        return Response(body(), content_type="application/octet-stream")

    httpserver.expect_request("/demo-1.0-py3-none-any.whl").respond_with_handler(endless)
    url = httpserver.url_for("/demo-1.0-py3-none-any.whl")
    cache = tmp_path / "cache"
    with pytest.raises(errors.UnpackedLimitExceeded, match=r"demo/big\.bin"):
        wheelstream.install(
            [url], tmp_path / "target", cache_dir=cache, max_unpacked_size=4 << 20, max_entries=100, retries=0
        )
    assert not (tmp_path / "target").exists()
    kept = sum(path.stat().st_size for path in cache.rglob("*") if path.is_file())
    assert kept < 16 << 20  # the budget and a block or two in flight, not the 200 MB the server would send


@pytest.mark.parametrize("name", sorted(ALL_HOSTILE))
@pytest.mark.parametrize("mode", ["streamed", "writers"])
def test_the_same_archive_gets_the_same_message_however_it_is_read(
    name: str, mode: str, tmp_path: Path
) -> None:
    """A rerun (or a resume) reads the same bytes in other pieces: its error, offset included, must be the
    same — the fuzz audit found "inflates past its declared N bytes" at offset 3465844 on one run and 3465845
    on the next, the offset of the read in which the output crossed the size."""
    case = ALL_HOSTILE[name]
    said = set()
    for number, chunk in enumerate([7, 4093, 65536, len(case.data)]):
        with pytest.raises(getattr(errors, case.error)) as info:
            feed_through_extractor(case.data, tmp_path / f"s{number}", chunk, case.max_unpacked_size, mode)
        said.add(str(info.value))
    assert len(said) == 1, said
