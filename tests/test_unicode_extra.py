"""Info-ZIP Unicode Path extra fields (0x7075): accepted only when every reader ends up with the same name.

The hostile variants (a field naming another path in the local header, the central record or both, by case,
with ``..``, with a stale CRC, malformed) are ``fixtures.hostile.DIFFERENTIAL`` and run through
``test_zip_hostile``;
here: what is accepted, and that accepted names are the names the field-honouring readers would use.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from fixtures.hostile import DIFFERENTIAL, unicode_path_extra
from fixtures.zipbuild import Member, build, read_raw
from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, unpack_local
from wheelstream.zip import EntryFinished, ZipStreamParser

_FLAG_UTF8 = 0x800


def _reference_names(data: bytes) -> dict[str, list[str]]:
    """What each reader would name every central record: the name field (this parser, zipfile <= 3.11),
    zipfile >= 3.12 (field used when version 1 and CRC match, whatever bit 11) and uv's reader (the same, but
    only when bit 11 is clear). A model of the documented rules, for a differential check."""
    names: dict[str, list[str]] = {"field": [], "zipfile312": [], "uv": []}
    for record in read_raw(data).central:
        plain = record.name.decode("utf-8" if record.flags & _FLAG_UTF8 else "cp437")
        override = None
        pos = 0
        while pos + 4 <= len(record.extra):
            header_id, size = struct.unpack_from("<HH", record.extra, pos)
            body = record.extra[pos + 4 : pos + 4 + size]
            if (
                header_id == 0x7075
                and body[:1] == b"\x01"
                and struct.unpack_from("<I", body, 1)[0] == zlib.crc32(record.name)
            ):
                override = body[5:].decode("utf-8") or None
            pos += 4 + size
        names["field"].append(plain)
        names["zipfile312"].append(override or plain)
        names["uv"].append(override if override and not record.flags & _FLAG_UTF8 else plain)
    return names


def _parsed_names(data: bytes) -> list[str]:
    parser = ZipStreamParser()
    events = parser.feed(data) + parser.feed(b"")
    assert parser.done
    return [e.entry.name for e in events if isinstance(e, EntryFinished)]


def _archive(
    name: bytes, extra: bytes, *, flags: int | None = None, where: tuple[str, ...] = ("local", "central")
) -> bytes:
    member = Member(name, b"x = 1\n")
    for part in where:
        getattr(member, part)["extra"] = extra
        if flags is not None:
            getattr(member, part)["flags"] = flags
    return build([member, Member("other.py", b"y = 2\n")])


@pytest.mark.parametrize("where", [("local",), ("central",), ("local", "central")])
def test_a_field_repeating_the_name_is_accepted(where: tuple[str, ...]) -> None:
    data = _archive(b"demo/mod.py", unicode_path_extra("demo/mod.py", b"demo/mod.py"), where=where)
    assert _parsed_names(data) == ["demo/mod.py", "other.py"]
    assert (
        set(_reference_names(data)["zipfile312"])
        == set(_reference_names(data)["uv"])
        == {"demo/mod.py", "other.py"}
    )


def test_a_stale_field_repeating_the_name_is_accepted() -> None:
    """A stale CRC makes zipfile and uv ignore the field; with the same name it is harmless to everyone."""
    data = _archive(b"demo/mod.py", unicode_path_extra("demo/mod.py", b"demo/mod.py", crc=1))
    assert _parsed_names(data) == ["demo/mod.py", "other.py"]


def test_a_cp437_name_with_its_utf8_field_is_accepted() -> None:
    """A legacy writer's name field in CP437 (bit 11 clear) with the same name in the field: every reader
    says 'café.py' (old zipfile through CP437, new zipfile and uv through the field)."""
    raw = "demo/café.py".encode("cp437")
    data = _archive(raw, unicode_path_extra("demo/café.py", raw), flags=0)
    assert _parsed_names(data) == ["demo/café.py", "other.py"]
    references = _reference_names(data)
    assert references["field"] == references["zipfile312"] == references["uv"] == ["demo/café.py", "other.py"]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist()[0] == "demo/café.py"


def test_utf8_bytes_without_the_flag_plus_a_field_is_refused() -> None:
    """What Info-ZIP's zip writes on Linux: raw UTF-8 in the name field, bit 11 clear, and a 0x7075 field.
    zipfile <= 3.11 (and the name field) read CP437 mojibake, zipfile >= 3.12 and uv read 'café.py': pip on two
    Pythons would install two different files. Refused, naming the entry as we decode it."""
    raw = "demo/café.py".encode()
    data = _archive(raw, unicode_path_extra("demo/café.py", raw), flags=0)
    references = _reference_names(data)
    assert references["field"][0] != references["zipfile312"][0] == references["uv"][0] == "demo/café.py"
    with pytest.raises(errors.UnsafePath, match="0x7075") as caught:
        _parsed_names(data)
    assert caught.value.entry == raw.decode("cp437")
    assert caught.value.offset == 0


def test_a_directory_field_without_its_slash_is_refused() -> None:
    data = build(
        [
            Member("demo/", b"", method=0, local={"extra": unicode_path_extra("demo", b"demo/")}),
            Member("demo/mod.py", b"x = 1\n"),
        ]
    )
    with pytest.raises(errors.UnsafePath, match="names another path, 'demo'"):
        _parsed_names(data)


def test_the_unicode_comment_field_is_ignored() -> None:
    """0x6375 (APPNOTE 4.6.8) is a comment: no reader takes a name from it, whatever it says."""
    body = struct.pack("<BI", 1, 0) + b"demo/evil.py"
    extra = struct.pack("<HH", 0x6375, len(body)) + body
    data = _archive(b"demo/mod.py", extra)
    assert _parsed_names(data) == ["demo/mod.py", "other.py"]


@pytest.mark.parametrize("name", ["unicode_path_central", "unicode_path_both", "unicode_path_dotdot"])
def test_the_refused_central_fields_are_real_differentials(name: str) -> None:
    """The model of the other readers says these archives install another file than the name field says."""
    references = _reference_names(DIFFERENTIAL[name].data)
    assert "demo/mod.py" in references["field"]
    assert "demo/mod.py" not in references["zipfile312"]
    assert "demo/mod.py" not in references["uv"]


@pytest.mark.parametrize("name", ["unicode_path_central", "unicode_path_local", "unicode_path_too_short"])
def test_a_local_install_names_the_wheel_and_leaves_nothing(name: str, tmp_path: Path) -> None:
    case = DIFFERENTIAL[name]
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(case.data)
    with pytest.raises(getattr(errors, case.error)) as caught:
        unpack_local(wheel, cache=Cache.at(tmp_path / "cache"), options=DownloadOptions())
    message = str(caught.value)
    assert message.startswith("demo-1.0-py3-none-any.whl: ")
    assert "'demo/mod.py'" in message
    assert "\n" not in message
    assert not any((tmp_path / "cache" / "staging").iterdir())
