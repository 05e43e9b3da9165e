"""The one checked way from a URL or index data to a file name (``_urls.wheel_filename_from_url``).

``download`` writes ``<dest>/<name>``; a name that percent-decodes to ``../x.whl`` once wrote outside
``dest``. Every encoding trick we know of is in the table; hypothesis covers the rest: whatever the segment,
the result is refused or is one safe component that is a wheel file name.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

from wheelstream._urls import checked_wheel_filename, wheel_filename_from_url, wheel_path_in
from wheelstream.errors import InvalidWheelFilename, UsageError, WheelError
from wheelstream.index import IndexFile, checked_url_name, choose, parse_html, parse_json

GOOD = "demo-1.0-py3-none-any.whl"
H = "http://127.0.0.1:8000/files/"

# (URL, the cause the message must give). Each must be refused.
REFUSED = [
    (H + "a%2F..%2F..%2F..%2Fescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "a%2f..%2f..%2fescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "%2E%2E%2Fescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "%2e%2e%2f%2e%2e%2fescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "..%5C..%5Cescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "a%5cescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "%2Ftmp%2Fescaped-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "..", "is not a single path component"),
    (H + "%2E%2E", "is not a single path component"),
    (H + ".", "is not a single path component"),
    (H + "%2e", "is not a single path component"),
    (H + "x-1.0-py3-none-any/..%5C..%5Cy.whl", "is not a single path component"),
    (H, "is empty"),
    (H + GOOD + "/", "is empty"),
    ("http://127.0.0.1:8000", "is empty"),
    ("http://127.0.0.1:8000/", "is empty"),
    (H + "?x=" + GOOD, "is empty"),
    (H + "demo-1.0-py3-none-any.whl%00", "contains a control character"),
    (H + "demo-1.0-py3-none-any.whl%00.png", "contains a control character"),
    (H + "demo-1.0-py3-none-any.whl%0A", "contains a control character"),
    (H + "demo-1.0-py3%0D-none-any.whl", "contains a control character"),
    (H + "%1B[31mdemo-1.0-py3-none-any.whl", "contains a control character"),
    (H + "demo-1.0-py3-none-any%7F.whl", "contains a control character"),
    (H + "demo-1.0-py3-none-%C2%85any.whl", "contains a control character"),  # C1: NEL
    (H + "demo-1.0-py3-none-%C2%9Bany.whl", "contains a control character"),  # C1: CSI
    (H + "%C0%AF..%C0%AFescaped-1.0-py3-none-any.whl", "is not valid UTF-8"),  # overlong '/'
    (H + "%C0%AE%C0%AE", "is not valid UTF-8"),  # overlong '..'
    (H + "demo-1.0-py3-none-any%FF.whl", "is not valid UTF-8"),
    (H + "demo-1.0-py3-none-any%E2%88.whl", "is not valid UTF-8"),  # truncated sequence
    (H + "%ED%A0%80demo-1.0-py3-none-any.whl", "is not valid UTF-8"),  # an encoded surrogate
    (H + "C:demo-1.0-py3-none-any.whl", "contains ':'"),
    (H + "C%3A%5Cdemo-1.0-py3-none-any.whl", "is not a single path component"),
    (H + "demo-1.0-py3-none-any.whl%3A%3A%24DATA", "contains ':'"),
    (H + "x" * 300 + "-1.0-py3-none-any.whl", "is longer than 255 bytes"),
    (H + "%C3%A9" * 130 + "-1.0-py3-none-any.whl", "is longer than 255 bytes"),  # 130 chars, 260+ bytes
    # Double encoding is decoded once only: the literal '%2F' that is left is refused as no wheel name.
    (H + "a%252F..%252F..%252Fescaped-1.0-py3-none-any.whl", "is not a wheel file name"),
    (H + "%252E%252E", "is not a wheel file name"),
    (H + "%25%32%46escaped-1.0-py3-none-any.whl", "is not a wheel file name"),
    # Look-alike slashes are no separators to the OS, but no wheel name has them either.
    (H + "x-1.0-py3-none-any%EF%BC%8F..%EF%BC%8Fy.whl", "is not a wheel file name"),  # U+FF0F
    (H + "%E2%88%95..%E2%88%95escaped-1.0-py3-none-any.whl", "is not a wheel file name"),  # U+2215
    (H + "x-1.0-py3-none-any%E2%81%84y.whl", "is not a wheel file name"),  # U+2044 fraction slash
    (H + "%EF%BC%8E%EF%BC%8E", "is not a wheel file name"),  # fullwidth '..'
    (H + "d%C3%A9mo-1.0-py3-none-any.whl", "is not a wheel file name"),  # packaging's \w would take it
    (H + "demo-1.0-py3-none-any.whl%E2%80%AE", "is not a wheel file name"),  # bidi override
    (H + "demo-1.0-py3-none-any%20.whl", "is not a wheel file name"),
    (H + "-demo-1.0-py3-none-any.whl", "is not a wheel file name"),  # reads as an option
    (H + ".demo-1.0-py3-none-any.whl", "is not a wheel file name"),  # hidden
    (H + GOOD + ";type=a", "is not a wheel file name"),  # urlsplit keeps ;params in the path
    (H + "demo;x-1.0-py3-none-any.whl", "is not a wheel file name"),
    (H + "demo-1.0-py3-none-any.tar.gz", "extension must be '.whl'"),
    (H + "demo-1.0.whl", "wrong number of parts"),
    (H + "demo-1.0-py3-none-any.WHL", "extension must be '.whl'"),
    (H + "demo-notaversion!-py3-none-any.whl", "invalid version"),
    (H + "demo-1.0-x1-py3-none-any.whl", "invalid build number"),
    (H + "demo-1.0-py3-none-a..b.whl", "invalid tag component"),
    (H + "download", "extension must be '.whl'"),
    (H + "demo-1.0-py3-none.whl", "wrong number of parts"),
]


@pytest.mark.parametrize(("url", "cause"), REFUSED, ids=[u.removeprefix(H)[:60] or "-" for u, _ in REFUSED])
def test_refused(url: str, cause: str) -> None:
    with pytest.raises(InvalidWheelFilename) as info:
        wheel_filename_from_url(url)
    message = str(info.value)
    assert cause in message
    assert message.startswith("http://127.0.0.1:8000")
    assert ": the URL's file name " in message
    _assert_one_clean_line(message)
    assert isinstance(info.value, WheelError)
    assert info.value.exit_code == 1


ACCEPTED = [
    (H + GOOD, GOOD),
    (H + GOOD + "#sha256=" + "ab" * 32, GOOD),
    (H + GOOD + "#md5=x/../../y", GOOD),
    (H + GOOD + "?x=../../../etc", GOOD),
    (H + GOOD + "?x=..%2F..%2F#frag/../z", GOOD),
    ("https://u:s3cret@host/a/b/" + GOOD, GOOD),
    ("http://127.0.0.1:8000/" + GOOD, GOOD),
    (H + "..%2F/" + GOOD, GOOD),  # only the last segment names the file
    (H + "torch-2.0.0%2Bcpu-cp311-cp311-linux_x86_64.whl", "torch-2.0.0+cpu-cp311-cp311-linux_x86_64.whl"),
    (H + "demo-1%212.0-py3-none-any.whl", "demo-1!2.0-py3-none-any.whl"),
    (
        H + "Demo_Pkg-1.0.post1.dev2-7abc-py2.py3-none-any.whl",
        "Demo_Pkg-1.0.post1.dev2-7abc-py2.py3-none-any.whl",
    ),
    (
        H + "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ),
    (H + "%64emo-1.0-py3-none-any.whl", GOOD),  # an encoded ordinary character is that character
    (H + "a" * 234 + "-1.0-py3-none-any.whl", "a" * 234 + "-1.0-py3-none-any.whl"),  # exactly 255 bytes
]


@pytest.mark.parametrize(("url", "name"), ACCEPTED, ids=[u.removeprefix(H)[:60] for u, _ in ACCEPTED])
def test_accepted(url: str, name: str) -> None:
    assert wheel_filename_from_url(url) == name
    assert len(name.encode()) <= 255


def _assert_one_clean_line(message: str) -> None:
    assert "\n" not in message
    assert "\r" not in message
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", message), repr(message)


def test_the_message_names_the_redacted_url_and_never_its_credentials() -> None:
    url = "https://alice:s3cret@idx.example/f/a%2F..%2Fescaped-1.0-py3-none-any.whl?token=t0k&x=1"
    with pytest.raises(InvalidWheelFilename) as info:
        wheel_filename_from_url(url)
    message = str(info.value)
    assert message == (
        "https://idx.example/f/a%2F..%2Fescaped-1.0-py3-none-any.whl?token=***&x=1: the URL's file"
        " name 'a/../escaped-1.0-py3-none-any.whl' is not a single path component"
    )
    assert "s3cret" not in message
    assert "alice" not in message
    assert "t0k" not in message


def test_an_escape_sequence_never_reaches_the_terminal_through_the_message() -> None:
    with pytest.raises(InvalidWheelFilename) as info:
        wheel_filename_from_url("http://h/x/%1B]0;pwned%07%1B[2J-1.0-py3-none-any.whl")
    _assert_one_clean_line(str(info.value))
    assert "\\x1b" in str(info.value)
    # and a URL that carries raw control characters (a hostile index) is shown percent-encoded
    with pytest.raises(InvalidWheelFilename) as info:
        wheel_filename_from_url("http://h/\x1b[31m/\x1b[0m")
    _assert_one_clean_line(str(info.value))


def test_a_very_long_name_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidWheelFilename) as info:
        wheel_filename_from_url(H + "a" * 5000 + "-1.0-py3-none-any.whl")
    assert f": the URL's file name '{'a' * 80}…' is longer than 255 bytes" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b-1.0-py3-none-any.whl",
        "..\\x-1.0-py3-none-any.whl",
        "x-1.0-py3-none-any.whl\x00",
        "/etc/x-1.0-py3-none-any.whl",
        "C:x-1.0-py3-none-any.whl",
        "x.whl",
        "x-1.0-py3-none-any.whl\u2028",
    ],
)
def test_checked_wheel_filename_refuses(name: str) -> None:
    with pytest.raises(InvalidWheelFilename, match=r"^/some/where: the file name "):
        checked_wheel_filename(name, source="/some/where")


def test_checked_wheel_filename_returns_a_good_name_unchanged() -> None:
    assert checked_wheel_filename(GOOD, source="x") == GOOD


# -- the second line of defence at the write site -------------------------------------------------------


def test_wheel_path_in_is_a_direct_child_of_the_resolved_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert wheel_path_in(tmp_path / "link", GOOD, source="s") == real / GOOD
    assert (
        wheel_path_in(tmp_path / "not-yet" / "made", GOOD, source="s") == tmp_path / "not-yet" / "made" / GOOD
    )
    for bad in ("../" + GOOD, "/tmp/" + GOOD, "..", "", "a\\..\\" + GOOD):
        with pytest.raises(InvalidWheelFilename):
            wheel_path_in(tmp_path / "link", bad, source="s")


# -- index data --------------------------------------------------------------------------------------------

EVIL = "a%2F..%2F..%2F..%2Fescaped-1.0-py3-none-any.whl"
HARMLESS = "escaped-1.0-py3-none-any.whl"
TAGS = list(sys_tags())


def _json_page(*files: dict[str, object]) -> bytes:
    return json.dumps({"meta": {"api-version": "1.0"}, "name": "escaped", "files": list(files)}).encode()


def test_json_harmless_filename_with_escaping_url_is_refused_naming_the_url() -> None:
    files = parse_json(
        _json_page({"filename": HARMLESS, "url": "../../files/" + EVIL, "hashes": {}}),
        "http://idx/simple/escaped/",
    )
    chosen = choose(files, "escaped", parse_wheel_filename(HARMLESS)[1], TAGS, None, "escaped==1.0")
    with pytest.raises(InvalidWheelFilename) as info:
        checked_url_name(chosen)
    assert str(info.value) == (
        f"http://idx/files/{EVIL}: the URL's file name 'a/../../../{HARMLESS}' is not a single path component"
    )


def test_html_anchor_text_stands_in_only_to_choose_and_the_url_is_refused() -> None:
    page = f'<html><body><a href="/files/{EVIL}#sha256={"ab" * 32}">{HARMLESS}</a></body></html>'.encode()
    files = parse_html(page, "http://idx/simple/escaped/")
    assert files[0].filename == HARMLESS
    assert files[0].url == f"http://idx/files/{EVIL}"
    chosen = choose(files, "escaped", parse_wheel_filename(HARMLESS)[1], TAGS, None, "escaped==1.0")
    with pytest.raises(InvalidWheelFilename, match="is not a single path component"):
        checked_url_name(chosen)


def test_html_takes_the_urls_name_over_the_anchor_text_as_pip_does() -> None:
    page = f'<a href="/files/{HARMLESS}">something else</a>'.encode()
    assert parse_html(page, "http://idx/simple/escaped/")[0].filename == HARMLESS


def test_a_json_filename_that_is_not_a_safe_name_is_never_chosen() -> None:
    files = [
        IndexFile(f"../../{HARMLESS}", f"http://idx/f/{HARMLESS}", None, None, None),
        IndexFile(
            f"escaped-1.0-py3-none-any{chr(0xFF0F)}x.whl", f"http://idx/f/{HARMLESS}", None, None, None
        ),
    ]
    with pytest.raises(UsageError, match="no wheel for version"):
        choose(files, "escaped", parse_wheel_filename(HARMLESS)[1], TAGS, None, "escaped==1.0")


def test_a_url_naming_another_wheel_than_the_index_says_is_refused() -> None:
    other = "escaped-2.0-cp27-cp27m-win32.whl"
    chosen = IndexFile(HARMLESS, f"http://idx/f/{other}", None, None, None)
    with pytest.raises(
        InvalidWheelFilename, match=f"lists this file as '{HARMLESS}' but its URL names '{other}'"
    ):
        checked_url_name(chosen)
    assert checked_url_name(IndexFile(HARMLESS, f"http://idx/f/{HARMLESS}", None, None, None)) == HARMLESS


# -- properties ----------------------------------------------------------------------------------------------

_SEPARATORS = set("/\\\x00")


def _assert_safe(name: str) -> None:
    assert name not in ("", ".", "..")
    assert not _SEPARATORS & set(name)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", name)
    assert ":" not in name
    assert not name.startswith(("-", "."))
    assert len(name.encode("utf-8")) <= 255
    assert os.path.basename(name) == name
    assert Path(name).name == name
    parse_wheel_filename(name)


# Text biased towards what matters: separators, dots, percent signs, controls, look-alikes, wheel-ish parts.
_PIECES = st.sampled_from(
    [
        "/",
        "\\",
        ".",
        "..",
        "%",
        "%2F",
        "%25",
        "\x00",
        "\n",
        "\x1b",
        "\x85",
        ":",
        "-",
        "\uff0f",
        "\u2215",
        "demo",
        "1.0",
        "py3",
        "none",
        "any",
        ".whl",
        "-1.0-py3-none-any.whl",
    ]
)
_SEGMENTS = st.one_of(st.text(), st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=12).map("".join))


@settings(max_examples=400, deadline=None)
@given(_SEGMENTS)
def test_any_quoted_segment_is_refused_or_safe(segment: str) -> None:
    url = "http://h/dir/" + urllib.parse.quote(segment, safe="")
    try:
        name = wheel_filename_from_url(url)
    except InvalidWheelFilename as exc:
        _assert_one_clean_line(str(exc))
        return
    _assert_safe(name)
    assert name == segment  # quoted once, decoded once: the same text


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=40), _SEGMENTS.map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_any_raw_or_double_encoded_segment_is_refused_or_safe(raw: bytes) -> None:
    for segment in (
        urllib.parse.quote_from_bytes(raw, safe=""),
        urllib.parse.quote(urllib.parse.quote_from_bytes(raw, safe=""), safe=""),
        urllib.parse.quote_from_bytes(raw, safe="/%\\;:?"),
    ):
        try:
            name = wheel_filename_from_url("http://h/dir/" + segment + "#sha256=" + "0" * 64)
        except InvalidWheelFilename as exc:
            _assert_one_clean_line(str(exc))
            continue
        _assert_safe(name)


_NAME = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda n: "__" not in n
)
_VERSION = st.from_regex(
    r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc)[0-9])?(\.post[0-9])?(\+[a-z0-9]{1,5})?", fullmatch=True
)
_TAG = st.sampled_from(
    ["py3-none-any", "py2.py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp312-abi3-win_amd64"]
)


@settings(max_examples=200, deadline=None)
@given(_NAME, _VERSION, st.one_of(st.none(), st.from_regex(r"[0-9]{1,3}[a-z]{0,3}", fullmatch=True)), _TAG)
def test_every_ordinary_wheel_name_round_trips(name: str, version: str, build: str | None, tag: str) -> None:
    filename = "-".join([name, version, *([build] if build else []), tag]) + ".whl"
    assert wheel_filename_from_url("https://files.example/x/" + urllib.parse.quote(filename)) == filename
