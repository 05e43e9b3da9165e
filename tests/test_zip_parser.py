"""ZipStreamParser through real archives: every chunking gives zipfile's result; cut anywhere, resume exact."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.wellformed import REAL_WHEELS, STREAMABLE, WELLFORMED
from fixtures.zipbuild import Member, build, read_raw
from wheelstream.errors import (
    DuplicateEntry,
    EntrySetMismatch,
    HeaderMismatch,
    StrayData,
    TruncatedArchive,
    UsageError,
)
from wheelstream.zip import (
    NEED_DATA,
    ArchiveFinished,
    CentralDirectory,
    EntryData,
    EntryDeferred,
    EntryFinished,
    EntryPacked,
    EntryStarted,
    Event,
    ZipStreamParser,
    executable_files,
    find_central_directory,
    read_central_directory,
    unpack_entry,
)
from wheelstream.zip._tail import TAIL_SIZE

CORPUS = {name: build for name, build in WELLFORMED.items()}
CORPUS.update({f"real:{name}": path.read_bytes for name, path in REAL_WHEELS.items()})


def chunked(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        out.append(data[pos:])
    return out


def parse_all(
    data: bytes, chunks: list[bytes], parser: ZipStreamParser | None = None
) -> tuple[dict[str, bytes], list[Event]]:
    """Feed ``chunks`` then EOF; resolve a deferred entry the way the download loop does (packed entries are
    unpacked as they come)."""
    parser = parser or ZipStreamParser()
    files: dict[str, bytearray] = {}
    events: list[Event] = []
    deferred = None
    for chunk in [*chunks, b""]:
        for event in parser.feed(chunk):
            events.append(event)
            if isinstance(event, EntryDeferred):
                deferred = event.header.offset
                break
            if isinstance(event, EntryStarted) and not event.header.is_dir:
                files[event.header.name] = bytearray()
            elif isinstance(event, EntryData):
                files[event.name] += event.data
            elif isinstance(event, EntryPacked):
                files[event.header.name] = bytearray(unpack_entry(event))
        if deferred is not None:
            break
    if deferred is not None:
        start = max(0, len(data) - TAIL_SIZE)
        cd, size = find_central_directory(data[start:], start)
        records = read_central_directory(data[cd : cd + size], cd)
        second = ZipStreamParser(
            deferred,
            prior_entries=parser.finished_entries,
            compressed_sizes={r.local_header_offset: r.compressed_size for r in records},
            pack_up_to=parser.pack_up_to,
        )
        for chunk in [*chunked(data[deferred:], [4096] * len(data)), b""]:
            for event in second.feed(chunk):
                events.append(event)
                if isinstance(event, EntryStarted) and not event.header.is_dir:
                    files[event.header.name] = bytearray()
                elif isinstance(event, EntryData):
                    files[event.name] += event.data
                elif isinstance(event, EntryPacked):
                    files[event.header.name] = bytearray(unpack_entry(event))
        parser = second
    assert parser.done
    return {k: bytes(v) for k, v in files.items()}, events


def zipfile_contents(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("chunking", ["whole", "1", "7", "64k", "random"])
def test_every_chunking_gives_zipfiles_result(name: str, chunking: str) -> None:
    data = CORPUS[name]()
    if chunking == "1" and len(data) > 400_000:
        pytest.skip("byte-by-byte on multi-MB archives adds minutes and nothing new (7-byte covers it)")
    sizes: Iterable[int] = {
        "whole": [len(data)],
        "1": [1] * len(data),
        "7": [7] * (len(data) // 7 + 1),
        "64k": [65536] * (len(data) // 65536 + 1),
        "random": (random.Random(name).randint(1, 5000) for _ in range(len(data))),
    }[chunking]
    files, events = parse_all(data, chunked(data, sizes))
    assert files == zipfile_contents(data)
    assert isinstance(events[-1], ArchiveFinished)
    assert events[-1].size == len(data)
    assert any(isinstance(e, EntryDeferred) for e in events) == (not STREAMABLE.get(name, True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(CORPUS)), st.floats(0, 1), st.integers(1, 9000), st.sampled_from([0, 300, 1 << 20])
)
def test_cut_anywhere_then_resume_at_checkpoint(name: str, where: float, chunk: int, pack: int) -> None:
    """Cut at byte N, restart a fresh parser at the reported checkpoint: same result, nothing re-extracted —
    whether small entries stream or come out packed (``pack``: 0 streams all, 300 packs some, 1 MiB most)."""
    data = CORPUS[name]()
    cut = int(where * len(data))
    first = ZipStreamParser(pack_up_to=pack)
    before: dict[str, bytes] = {}
    current: dict[str, bytearray] = {}
    deferred = False
    for piece in chunked(data[:cut], [chunk] * (cut // chunk + 1)):
        for event in first.feed(piece):
            if isinstance(event, EntryDeferred):
                deferred = True
            elif isinstance(event, EntryStarted):
                current[event.header.name] = bytearray()
            elif isinstance(event, EntryData):
                current[event.name] += event.data
            elif isinstance(event, EntryFinished) and not event.entry.name.endswith("/"):
                before[event.entry.name] = bytes(current.pop(event.entry.name))
            elif isinstance(event, EntryPacked):
                before[event.header.name] = unpack_entry(event)
        if deferred:
            break
    checkpoint = first.checkpoint
    finished = first.finished_entries
    assert all(e.offset < checkpoint for e in finished)
    # Only entries finished before the checkpoint are kept; the one in flight is redone.
    kept = {e.name: before[e.name] for e in finished if not e.name.endswith("/")}
    resumed = ZipStreamParser(checkpoint, prior_entries=finished, pack_up_to=pack)
    rest, _events = parse_all(data, chunked(data[checkpoint:], [chunk] * len(data)), resumed)
    assert not set(rest) & set(kept), "an entry before the checkpoint was extracted twice"
    assert {**kept, **rest} == zipfile_contents(data)


def test_checkpoint_is_a_record_boundary() -> None:
    data = WELLFORMED["mixed_streamable"]()
    parser = ZipStreamParser()
    boundaries = set()
    for byte in chunked(data, [1] * len(data)):
        parser.feed(byte)
        boundaries.add(parser.checkpoint)
    assert all(data[b : b + 4] in (b"PK\x03\x04", b"PK\x01\x02") for b in boundaries)
    assert len(boundaries) > 3


def test_end_of_input_inside_an_entry_is_a_truncation_naming_the_entry() -> None:
    data = WELLFORMED["deflate"]()
    parser = ZipStreamParser()
    parser.receive_data(data[:200])
    parser.receive_data(b"")
    with pytest.raises(TruncatedArchive, match=r"offset \d+"):
        list(parser.events())


def test_parser_stays_broken_after_an_error() -> None:
    parser = ZipStreamParser()
    with pytest.raises(StrayData):
        parser.feed(b"MZ\x90\x00" + b"\x00" * 100)
    with pytest.raises(StrayData):
        parser.next_event()


def test_data_after_end_marker_is_misuse() -> None:
    parser = ZipStreamParser()
    parser.receive_data(b"")
    with pytest.raises(UsageError):
        parser.receive_data(b"PK")


def test_need_data_until_input_arrives() -> None:
    parser = ZipStreamParser()
    assert parser.next_event() is NEED_DATA
    data = WELLFORMED["deflate"]()
    parser.receive_data(data[:10])
    assert parser.next_event() is NEED_DATA


def test_events_carry_offsets() -> None:
    data = WELLFORMED["mixed_streamable"]()
    _files, events = parse_all(data, [data])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        offsets = {i.filename: i.header_offset for i in archive.infolist()}
    started = {e.header.name: e.header.offset for e in events if isinstance(e, EntryStarted)}
    assert started == offsets
    cd = next(e for e in events if isinstance(e, CentralDirectory))
    assert data[cd.offset : cd.offset + 4] == b"PK\x01\x02"


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("chunking", ["whole", "7", "64k"])
@pytest.mark.parametrize("pack", [300, 1 << 20])
def test_packed_entries_unpack_to_zipfiles_result(name: str, chunking: str, pack: int) -> None:
    data = CORPUS[name]()
    if chunking == "7" and len(data) > 400_000:
        pytest.skip("7-byte chunks of multi-MB archives add minutes; 64k and whole cover the big entries")
    size = {"whole": len(data), "7": 7, "64k": 65536}[chunking]
    files, events = parse_all(
        data, chunked(data, [size] * (len(data) // size + 1)), ZipStreamParser(pack_up_to=pack)
    )
    assert files == zipfile_contents(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = {i.filename: i for i in archive.infolist()}
    packed = {e.header.name for e in events if isinstance(e, EntryPacked)}
    streamed = {e.header.name for e in events if isinstance(e, EntryStarted)}
    assert packed | streamed == set(infos)
    assert not packed & streamed
    for name_, info in infos.items():  # packed exactly when the local header vouches for small sizes
        small = info.compress_size <= pack and info.file_size <= pack
        assert (name_ in packed) == (small and not info.is_dir() and not info.flag_bits & 0x08), name_


def test_a_packed_entry_moves_the_checkpoint_and_counts_as_finished() -> None:
    data = WELLFORMED["mixed_streamable"]()
    parser = ZipStreamParser(pack_up_to=1 << 20)
    events = parser.feed(data)
    packed = [e for e in events if isinstance(e, EntryPacked)]
    assert packed, "the corpus archive has small entries"
    first = packed[0]
    assert first.end_offset == first.header.offset + first.header.header_length + first.header.compressed_size
    assert len(first.data) == first.header.compressed_size
    assert any(e.name == first.header.name for e in parser.finished_entries)
    assert parser.checkpoint >= packed[-1].end_offset


def test_end_of_input_inside_a_packed_entry_is_a_truncation_naming_the_entry() -> None:
    data = WELLFORMED["deflate"]()
    parser = ZipStreamParser(pack_up_to=1 << 20)
    parser.receive_data(data[:200])
    parser.receive_data(b"")
    with pytest.raises(TruncatedArchive, match=r"inside entry data \(entry '[^']+', offset \d+\)"):
        list(parser.events())


def _renamed(placeholder: str, raw_name: bytes, utf8_flag: bool) -> bytes:
    """A one-file zip whose name bytes are ``raw_name`` in both headers (zipfile would set bit 11 itself)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(placeholder, b"hello\n")
    data = buffer.getvalue()
    assert len(raw_name) == len(placeholder)
    assert data.count(placeholder.encode()) == 2
    data = data.replace(placeholder.encode(), raw_name)
    if utf8_flag:
        for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.index(signature) + flags_at
            data = (
                data[:at]
                + (int.from_bytes(data[at : at + 2], "little") | 0x800).to_bytes(2, "little")
                + data[at + 2 :]
            )
    return data


@pytest.mark.parametrize(
    ("raw_name", "utf8_flag"),
    [(b"caf\x82.txt", False), ("café.txt".encode(), True), (b"plain.txt", False), (b"plain.txt", True)],
    ids=["cp437", "utf8", "ascii", "ascii-flagged"],
)
def test_names_decode_as_zipfile_decodes_them(raw_name: bytes, utf8_flag: bool) -> None:
    data = _renamed("x" * (len(raw_name) - 4) + ".txt", raw_name, utf8_flag)
    (expected,) = zipfile.ZipFile(io.BytesIO(data)).namelist()
    files, _events = parse_all(data, chunked(data, [7] * 100))
    assert list(files) == [expected]


def test_a_flagged_name_that_is_not_utf8_is_refused() -> None:
    from wheelstream.errors import MalformedRecord

    data = _renamed("xxx.txt", b"ca\xff.txt", utf8_flag=True)
    with pytest.raises(MalformedRecord, match=r"entry name is not valid UTF-8") as caught:
        parse_all(data, [data])
    assert caught.value.entry == "ca\\xff.txt"
    assert caught.value.offset == 0


def test_input_ending_at_a_central_record_boundary_is_truncated() -> None:
    data = WELLFORMED[next(iter(WELLFORMED))]()
    boundary = read_raw(data).central[1].offset  # the end of the first central record
    with pytest.raises(TruncatedArchive, match="inside the central directory") as caught:
        parse_all(data[:boundary], chunked(data[:boundary], [4096] * 1000))
    assert caught.value.offset == boundary


def _central_directory(data: bytes) -> CentralDirectory:
    parser = ZipStreamParser()
    events = parser.feed(data) + parser.feed(b"")
    assert parser.done
    return next(e for e in events if isinstance(e, CentralDirectory))


def _with_records(data: bytes, order: list[int]) -> bytes:
    """``data`` (no ZIP64 end records) with its central records rearranged (or repeated) in ``order``."""
    raw = read_raw(data)
    bounds = [r.offset for r in raw.central] + [raw.eocd_offset]
    records = [data[bounds[i] : bounds[i + 1]] for i in range(len(raw.central))]
    return data[: bounds[0]] + b"".join(records[i] for i in order) + data[raw.eocd_offset :]


def _members(count: int = 6, **first: object) -> list[Member]:
    members = [Member(f"demo/m{i}.py", f"VALUE = {i}\n".encode()) for i in range(count)]
    for key, value in first.items():
        setattr(members[0], key, value)
    return members


def test_central_records_read_like_the_tuple_of_the_records() -> None:
    """The event's records are built from the parser's compact rows: a sequence equal to what the central
    directory says, record for record, with tuple-like indexing."""
    data = WELLFORMED["executable"]()
    cd = _central_directory(data)
    start = max(0, len(data) - TAIL_SIZE)
    offset, size = find_central_directory(data[start:], start)
    expected = tuple(read_central_directory(data[offset : offset + size], offset))
    assert cd.records == expected
    assert tuple(cd.records) == expected
    assert len(cd.records) == len(expected)
    assert cd.records[0] == expected[0]
    assert cd.records[-1] == expected[-1]
    assert cd.records[1:3] == expected[1:3]
    assert hash(cd.records) == hash(expected)
    with pytest.raises(IndexError):
        cd.records[len(expected)]
    assert executable_files(cd.records) == [r.name for r in expected if r.is_executable and not r.is_dir]
    assert executable_files(cd.records) == executable_files(expected)


def test_a_central_directory_in_another_order_is_matched() -> None:
    shuffled = _with_records(build(_members()), [5, 1, 2, 3, 4, 0])
    cd = _central_directory(shuffled)
    assert [r.name for r in cd.records] == zipfile.ZipFile(io.BytesIO(shuffled)).namelist()
    assert [r.offset for r in cd.records] == sorted(r.offset for r in cd.records)


def test_a_central_record_given_twice_is_a_duplicate() -> None:
    with pytest.raises(DuplicateEntry, match="two central records share this name") as caught:
        _central_directory(_with_records(build(_members()), [0, 1, 2, 0, 4, 5]))
    assert caught.value.entry == "demo/m0.py"


def test_two_central_records_naming_one_entry_are_a_duplicate() -> None:
    later = build([Member("a.py", b"1"), Member("b.py", b"2", central={"name": b"a.py"})])
    with pytest.raises(DuplicateEntry, match="two central records share this name") as caught:
        _central_directory(later)
    assert caught.value.entry == "a.py"
    earlier = build([Member("a.py", b"1", central={"name": b"b.py"}), Member("b.py", b"2")])
    with pytest.raises(HeaderMismatch, match="disagree on name"):
        _central_directory(earlier)


def test_a_local_entry_without_a_record_is_named_whatever_the_order() -> None:
    data = build(_members(in_central=False))  # demo/m0.py: a local entry only
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]):
        with pytest.raises(EntrySetMismatch, match="entry has no central directory record") as caught:
            _central_directory(_with_records(data, order))
        assert caught.value.entry == "demo/m0.py"
        assert caught.value.offset == 0


def test_a_file_cut_before_its_end_record_says_where_it_ends() -> None:
    """A stored entry with a data descriptor has its central directory read from the file's end; a file cut
    short has none there, and the error gives the offset where the file ends, as every archive error does."""
    data = WELLFORMED["stored_descriptor"]()
    cut = data[: len(data) // 2]
    start = max(0, len(cut) - TAIL_SIZE)
    with pytest.raises(TruncatedArchive, match="no end of central directory record") as raised:
        find_central_directory(cut[start:], start)
    assert raised.value.offset == len(cut)


def test_exactly_65535_entries_without_a_zip64_record_are_read_as_zipfile_reads_them() -> None:
    """CPython's zipfile (and Rust's zip) write 65,535 entries as a count of 0xFFFF with no ZIP64 record; the
    reader took the all-ones count for a ZIP64 placeholder and refused ("ZIP64 end of central directory
    record missing") what zipfile and pip read."""
    from wheelstream.zip import CentralDirectory, find_central_directory

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
        for i in range(0xFFFF):
            archive.writestr(zipfile.ZipInfo(f"{i:x}", date_time=(2020, 1, 1, 0, 0, 0)), b"")
    data = raw.getvalue()
    assert b"PK\x06\x06" not in data[-200:]  # no ZIP64 end record
    assert zipfile.ZipFile(io.BytesIO(data)).namelist()[-1] == "fffe"
    parser = ZipStreamParser(max_entries=0x10000)
    found = [e for chunk in [*chunked(data, [1 << 20] * 8), b""] for e in parser.feed(chunk)]
    (directory,) = [e for e in found if isinstance(e, CentralDirectory)]
    assert len(directory.records) == 0xFFFF
    tail = data[-(22 + 20 + 56) :]
    assert find_central_directory(tail, len(data) - len(tail)) == (
        directory.offset,
        len(data) - 22 - directory.offset,
    )
