"""``NAME==VERSION`` resolution: page parsing, the choice rules, and hishel caching (RFC 9111).

Servers are ``httpx.MockTransport`` handlers where the exact headers matter (ETag → If-None-Match → 304),
and the real test bed for its own ``simple/`` pages.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from packaging.tags import Tag, sys_tags
from packaging.version import Version

from wheelstream._cache import Cache
from wheelstream.errors import HTTPStatusError, IncompatibleWheel, NetworkError, UsageError
from wheelstream.index import ACCEPT, IndexFile, choose, parse_html, parse_json, resolve_requirement
from wheelstream.index._body import bounded_body
from wheelstream.testing import FaultServer, build_wheel

TAGS = [
    Tag("cp311", "cp311", "manylinux_2_17_x86_64"),
    Tag("cp311", "abi3", "manylinux_2_17_x86_64"),
    Tag("py311", "none", "any"),
    Tag("py3", "none", "any"),
]
SHA = "ab" * 32


def f(filename: str, *, rp: str | None = None, yanked: str | None = None, sha: str | None = SHA) -> IndexFile:
    return IndexFile(filename, f"https://files.example/{filename}", sha, rp, yanked)


# -- parsing ---------------------------------------------------------------------------------------------


def test_parse_json_resolves_relative_urls_and_reads_yank_and_requires_python() -> None:
    doc = {
        "meta": {"api-version": "1.0"},
        "name": "demo",
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "../../files/demo-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA.upper()},
                "requires-python": ">=3.8",
                "yanked": "broken",
            },
            {
                "filename": "demo-1.1-py3-none-any.whl",
                "url": "https://cdn/demo-1.1-py3-none-any.whl#sha256=" + SHA,
                "hashes": {},
                "yanked": False,
            },
            {"filename": "demo-1.2.tar.gz", "url": "x", "hashes": {}, "yanked": True},
        ],
    }
    files = parse_json(json.dumps(doc).encode(), "https://idx/simple/demo/")
    assert files[0] == IndexFile(
        "demo-1.0-py3-none-any.whl", "https://idx/files/demo-1.0-py3-none-any.whl", SHA, ">=3.8", "broken"
    )
    assert files[1].sha256 == SHA
    assert files[1].yanked is None
    assert files[1].url == "https://cdn/demo-1.1-py3-none-any.whl"
    assert files[2].yanked == ""


def test_parse_json_rejects_garbage() -> None:
    with pytest.raises(HTTPStatusError):
        parse_json(b"<html>", "https://idx/simple/demo/")


def test_parse_html_pep503_attributes_and_base_href() -> None:
    page = b"""<!DOCTYPE html><html><head><base href="https://mirror/pkgs/"></head><body>
      <a href="demo-1.0-py3-none-any.whl#sha256=%s" data-requires-python="&gt;=3.9">demo-1.0-py3-none-any.whl</a>
      <a href="demo-1.1-py3-none-any.whl" data-yanked="">demo-1.1-py3-none-any.whl</a>
      <a href="demo-1.2-py3-none-any.whl" data-yanked="security">x</a>
      <a>no href</a>
    </body></html>""" % SHA.encode()
    files = parse_html(page, "https://idx/simple/demo/")
    assert [x.url for x in files] == [f"https://mirror/pkgs/demo-1.{i}-py3-none-any.whl" for i in range(3)]
    assert files[0].sha256 == SHA
    assert files[0].requires_python == ">=3.9"
    assert files[0].yanked is None
    assert files[1].sha256 is None
    assert files[1].yanked == ""
    assert files[2].yanked == "security"


def test_links_an_index_may_not_follow_and_pins_anywhere_in_the_fragment() -> None:
    """A page from a server may not point into this machine's files (``file://``) or elsewhere than HTTP; the
    sha256 is read wherever it sits in the fragment, as pip reads it."""
    page = b"""<html><body>
      <a href="file:///etc/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>
      <a href="ftp://host/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>
      <a href="http://[::1/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>
      <a href="demo-1.1-py3-none-any.whl#egg=demo&amp;sha256=%s">demo-1.1-py3-none-any.whl</a>
    </body></html>""" % SHA.upper().encode()
    files = parse_html(page, "https://idx/simple/demo/")
    assert [(x.url, x.sha256) for x in files] == [("https://idx/simple/demo/demo-1.1-py3-none-any.whl", SHA)]
    doc = {
        "meta": {"api-version": "1.0"},
        "files": [
            {
                "filename": "demo-1.0-py3-none-any.whl",
                "url": "file:///etc/demo-1.0-py3-none-any.whl",
                "hashes": {},
            },
            {
                "filename": "demo-1.1-py3-none-any.whl",
                "url": f"demo-1.1-py3-none-any.whl#sha256={SHA}",
                "hashes": {},
            },
        ],
    }
    files = parse_json(json.dumps(doc).encode(), "https://idx/simple/demo/")
    assert [(x.url, x.sha256) for x in files] == [("https://idx/simple/demo/demo-1.1-py3-none-any.whl", SHA)]


# -- choosing ----------------------------------------------------------------------------------------------


def test_best_tag_wins_and_other_versions_and_projects_are_ignored() -> None:
    files = [
        f("demo-1.0-py3-none-any.whl"),
        f("demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl"),
        f("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        f("demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        f("demo-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        f("demox-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        f("demo-1.0.tar.gz"),
    ]
    chosen = choose(files, "demo", Version("1.0"), TAGS, "3.11", "demo==1.0")
    assert chosen.filename == "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert (
        choose(files[:2], "demo", Version("1.0.0"), TAGS, "3.11", "demo==1.0.0").filename == files[1].filename
    )


def test_a_pin_matches_local_versions_as_pep440_says_and_the_highest_wins() -> None:
    """``torch==2.13.0`` on a CPU index names ``2.13.0+cpu``; with both listed pip takes the higher, the local."""
    files = [
        f("demo-2.0-py3-none-any.whl"),
        f("demo-2.0+cpu-cp311-cp311-manylinux_2_17_x86_64.whl"),
        f("demo-2.0+cu1-py3-none-any.whl", yanked=""),
        f("demo-2.1+cpu-py3-none-any.whl"),
    ]
    assert choose(files, "demo", Version("2.0"), TAGS, "3.11", "s").filename == files[1].filename
    assert choose(files[1:2], "demo", Version("2.0.0"), TAGS, "3.11", "s").filename == files[1].filename
    assert (
        choose(files, "demo", Version("2.0+cu1"), TAGS, "3.11", "s").filename == files[2].filename
    )  # yanked
    with pytest.raises(UsageError, match=r"no wheel for version 2\.0 .*2\.1\+cpu"):
        choose(files[3:], "demo", Version("2.0"), TAGS, "3.11", "s")


def test_a_local_version_is_found_through_the_test_bed_index(tmp_path: Path) -> None:
    with FaultServer() as srv:
        srv.add_file("demo-2.0+cpu-py3-none-any.whl", build_wheel("demo", "2.0+cpu", payload_size=10)[1])
        with httpx.Client() as client:
            url, sha, _other = resolve_requirement(
                "demo==2.0",
                index_url=srv.url + "/simple/",
                cache=Cache.at(tmp_path),
                client=client,
                tags=TAGS,
            )
    assert url.endswith("/demo-2.0+cpu-py3-none-any.whl") or url.endswith("/demo-2.0%2Bcpu-py3-none-any.whl")
    assert sha is not None


def test_requires_python_excludes_a_file() -> None:
    files = [f("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", rp=">=3.12"), f("demo-1.0-py3-none-any.whl")]
    assert choose(files, "demo", Version("1.0"), TAGS, "3.11", "s").filename == "demo-1.0-py3-none-any.whl"
    with pytest.raises(IncompatibleWheel, match="requires-python"):
        choose(files[:1], "demo", Version("1.0"), TAGS, "3.11", "s")


def test_yanked_loses_to_unyanked_and_warns_when_it_is_all_there_is(caplog: pytest.LogCaptureFixture) -> None:
    files = [
        f("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", yanked="bad build"),
        f("demo-1.0-py3-none-any.whl"),
    ]
    with caplog.at_level(logging.WARNING, "wheelstream"):
        assert (
            choose(files, "demo", Version("1.0"), TAGS, "3.11", "s").filename == "demo-1.0-py3-none-any.whl"
        )
        assert not caplog.records
        chosen = choose(files[:1], "demo", Version("1.0"), TAGS, "3.11", "demo==1.0")
    assert chosen.yanked == "bad build"
    assert "is yanked (reason: bad build)" in caplog.records[0].getMessage()


def test_no_such_version_is_a_usage_error_listing_what_exists() -> None:
    with pytest.raises(UsageError, match=r"wheel versions there: 1.0, 2.0"):
        choose(
            [f("demo-2.0-py3-none-any.whl"), f("demo-1.0-py3-none-any.whl")],
            "demo",
            Version("3"),
            TAGS,
            "3.11",
            "demo==3",
        )


def test_no_compatible_tag_is_incompatible_wheel() -> None:
    with pytest.raises(IncompatibleWheel, match=r"demo==1\.0: no wheel of 1\.0 fits"):
        choose(
            [f("demo-1.0-cp27-cp27mu-manylinux1_x86_64.whl")],
            "demo",
            Version("1.0"),
            TAGS,
            "3.11",
            "demo==1.0",
        )


@pytest.mark.parametrize(
    "spec",
    [
        "demo>=1.0",
        "demo==1.*",
        "demo",
        "demo==1.0,<2",
        "demo @ https://x/y.whl",
        "demo==1.0; python_version>'3'",
    ],
)
def test_only_exact_pins(spec: str, tmp_path: Path) -> None:
    with httpx.Client() as client, pytest.raises(UsageError, match=r"no dependency resolution|NAME==VERSION"):
        resolve_requirement(
            spec, index_url="http://127.0.0.1:9/simple/", cache=Cache.at(tmp_path), client=client, tags=TAGS
        )


# -- fetching and caching -----------------------------------------------------------------------------------


def _project_json(*names: str) -> bytes:
    return json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "name": "demo",
            "files": [{"filename": n, "url": f"/files/{n}", "hashes": {"sha256": SHA}} for n in names],
        }
    ).encode()


def _client(handler: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]) -> httpx.Client:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.Client(transport=httpx.MockTransport(record))


def test_etag_revalidation_is_a_conditional_request_answered_304(tmp_path: Path) -> None:
    """PyPI-style: an ETag and a freshness that has run out → If-None-Match → 304 → the cached page."""
    body = _project_json("demo-1.0-py3-none-any.whl")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {
            "ETag": '"v1"',
            "Cache-Control": "max-age=0",
            "Date": email.utils.formatdate(usegmt=True),
            "Content-Type": "application/vnd.pypi.simple.v1+json",
        }
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, headers=headers, content=body)

    cache = Cache.at(tmp_path)
    with _client(handler, seen) as client:
        first = resolve_requirement(
            "Demo==1.0", index_url="https://idx.example/simple", cache=cache, client=client, tags=TAGS
        )
        second = resolve_requirement(
            "demo==1.0", index_url="https://idx.example/simple", cache=cache, client=client, tags=TAGS
        )
    assert first == second == ("https://idx.example/files/demo-1.0-py3-none-any.whl", SHA, ())
    assert [str(r.url) for r in seen] == ["https://idx.example/simple/demo/"] * 2
    assert seen[0].headers["accept"] == ACCEPT
    assert "if-none-match" not in seen[0].headers
    assert seen[1].headers["if-none-match"] == '"v1"'


def test_fresh_response_means_no_request_at_all(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=_project_json("demo-1.0-py3-none-any.whl"),
            headers={
                "Cache-Control": "max-age=600, public",
                "Date": email.utils.formatdate(usegmt=True),
                "Content-Type": "application/vnd.pypi.simple.v1+json",
            },
        )

    with _client(handler, seen) as client:
        for _ in range(3):
            resolve_requirement(
                "demo==1.0",
                index_url="https://idx/simple/",
                cache=Cache.at(tmp_path),
                client=client,
                tags=TAGS,
            )
    assert len(seen) == 1


def test_no_store_is_obeyed(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=_project_json("demo-1.0-py3-none-any.whl"),
            headers={"Cache-Control": "no-store", "Content-Type": "application/vnd.pypi.simple.v1+json"},
        )

    with _client(handler, seen) as client:
        for _ in range(2):
            resolve_requirement(
                "demo==1.0",
                index_url="https://idx/simple/",
                cache=Cache.at(tmp_path),
                client=client,
                tags=TAGS,
            )
    assert len(seen) == 2


def test_html_answer_406_fallback_redirects_and_credentials(tmp_path: Path) -> None:
    """An HTML-only index that refuses JSON (406), a redirect, and credentials kept out of the cache."""
    seen: list[httpx.Request] = []
    html = (
        b'<html><body><a href="/f/demo-1.0-py3-none-any.whl#sha256='
        + SHA.encode()
        + b'">demo-1.0-py3-none-any.whl</a></body></html>'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/simple/demo/":
            return httpx.Response(301, headers={"Location": "/other/demo/"})
        if "json" in request.headers["accept"]:
            return httpx.Response(406)
        return httpx.Response(200, content=html, headers={"Content-Type": "text/html"})

    with _client(handler, seen) as client:
        url, sha, _other = resolve_requirement(
            "demo==1.0",
            index_url="https://user:s3cret@idx/simple/",
            cache=Cache.at(tmp_path),
            client=client,
            tags=TAGS,
        )
    assert url == "https://user:s3cret@idx/f/demo-1.0-py3-none-any.whl"
    assert sha == SHA
    assert all(r.headers["authorization"].startswith("Basic ") for r in seen)
    assert all("s3cret" not in str(r.url) for r in seen)
    assert b"s3cret" not in (tmp_path / "http" / "index.db").read_bytes()


def test_missing_project_and_unreachable_index(tmp_path: Path) -> None:
    with _client(lambda r: httpx.Response(404), []) as client, pytest.raises(UsageError, match="no project"):
        resolve_requirement(
            "demo==1.0", index_url="https://idx/simple/", cache=Cache.at(tmp_path), client=client, tags=TAGS
        )

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with _client(down, []) as client, pytest.raises(NetworkError, match="unreachable") as info:
        resolve_requirement(
            "demo==1.0", index_url="https://idx/simple/", cache=Cache.at(tmp_path), client=client, tags=TAGS
        )
    assert info.value.exit_code == 3


def test_test_bed_pages_json_and_asked_for_again(tmp_path: Path) -> None:
    """Against the real test bed: it answers JSON to our Accept and sends no validators (nor a lifetime), so
    the rerun asks for the page again, as pip does: nothing could tell a cached copy stale."""
    with FaultServer() as srv:
        for tag_name in ("demo-1.0-py3-none-any.whl", "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"):
            srv.add_file(tag_name, build_wheel("demo", "1.0", payload_size=100)[1])
        with httpx.Client() as client:
            results = [
                resolve_requirement(
                    "demo==1.0",
                    index_url=srv.url + "/simple/",
                    cache=Cache.at(tmp_path),
                    client=client,
                    tags=list(sys_tags()),
                )
                for _ in range(2)
            ]
        pages = [r for r in srv.requests if r.path.startswith("/simple/")]
    assert results[0] == results[1]
    assert results[0][1] == srv.version(results[0][0].rsplit("/", 1)[1]).sha256
    assert [page.status for page in pages] == [200, 200]


def test_of_one_version_and_tag_the_highest_build_tag_wins_and_of_equals_the_last_listed() -> None:
    """pip's sort key ends with the build tag (none lowest); ``max`` took the first of equals, pip the last."""
    built = [f("bt-1.0-1-py3-none-any.whl"), f("bt-1.0-2-py3-none-any.whl"), f("bt-1.0-py3-none-any.whl")]
    assert choose(built, "bt", Version("1.0"), TAGS, "3.11", "s").filename == "bt-1.0-2-py3-none-any.whl"
    equal = [f("demo-1.0-py3-none-any.whl"), f("demo-1.0.0-py3-none-any.whl")]
    assert choose(equal, "demo", Version("1.0"), TAGS, "3.11", "s").filename == "demo-1.0.0-py3-none-any.whl"
    assert (
        choose(equal[::-1], "demo", Version("1.0"), TAGS, "3.11", "s").filename == "demo-1.0-py3-none-any.whl"
    )


def test_requires_python_takes_the_full_version() -> None:
    files = [f("demo-1.0-py3-none-any.whl", rp=">=3.11.7")]
    assert choose(files, "demo", Version("1.0"), TAGS, "3.11.7", "s").filename == files[0].filename
    with pytest.raises(IncompatibleWheel):
        choose(files, "demo", Version("1.0"), TAGS, "3.11.6", "s")


def test_an_anchor_never_closed_is_a_link_all_the_same() -> None:
    body = (
        b'<a href="/f/demo-1.0-py3-none-any.whl#sha256=' + SHA.encode() + b'">demo-1.0<br>\n'
        b'<a href="/f/demo-2.0-py3-none-any.whl">demo-2.0\n'
    )
    names = [each.filename for each in parse_html(body, "https://idx.example/simple/demo/")]
    assert names == ["demo-1.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl"]


@pytest.mark.parametrize("version", ['"2.0"', "2.0", "2"], ids=["a string", "a number", "an integer"])
def test_a_json_page_of_another_major_api_version_is_refused(version: str) -> None:
    body = b'{"meta": {"api-version": ' + version.encode() + b'}, "name": "demo", "files": []}'
    with pytest.raises(HTTPStatusError, match=r"API version 2"):
        parse_json(body, "https://idx.example/simple/demo/")


def _pieces(data: bytes, *sizes: int) -> list[bytes]:
    """``data`` cut after each of ``sizes`` bytes, as a server's chunks may come."""
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    return [*out, data[at:]]


def _raw_deflate(data: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=-15)
    return squeeze.compress(data) + squeeze.flush()


@pytest.mark.parametrize(
    ("encoding", "raw"),
    [
        ("gzip", _pieces(gzip.compress(b"<a>one</a>") + gzip.compress(b"<a>two</a>"), 5)),
        ("deflate", _pieces(_raw_deflate(b"<a>one</a><a>two</a>"), 1)),
        ("deflate", _pieces(zlib.compress(b"<a>one</a><a>two</a>"), 1, 1)),
        ("", [b"<a>one</a>", b"<a>two</a>"]),
        ("gzip", [gzip.compress(b"<a>one</a><a>two</a>") + bytes(16)]),
    ],
    ids=[
        "two gzip members",
        "raw deflate, its first byte alone",
        "zlib data byte by byte",
        "identity",
        "zero padding",
    ],
)
def test_a_page_body_is_decoded_whole(encoding: str, raw: list[bytes]) -> None:
    """A second gzip member was dropped; raw deflate whose first chunk was one byte failed."""
    assert bounded_body(raw, encoding, "page", 1 << 20) == b"<a>one</a><a>two</a>"


@pytest.mark.parametrize(
    ("encoding", "raw", "said"),
    [
        ("gzip", [gzip.compress(b"<a>" * 1000)[:40]], "ends before its compressed stream does"),
        ("gzip", [gzip.compress(b"<a>" * 1000)[:-4]], "ends before its compressed stream does"),
        ("deflate", [zlib.compress(b"x") + b"junk"], "data after the end"),
        ("gzip", [b"x"], "does not decode"),
    ],
    ids=["cut in half", "no trailer", "junk after deflate", "one byte"],
)
def test_a_page_body_cut_or_padded_is_refused(encoding: str, raw: list[bytes], said: str) -> None:
    """A truncated gzip body was taken as it was (half a page, silently)."""
    with pytest.raises(HTTPStatusError, match=said):
        bounded_body(raw, encoding, "page", 1 << 20)


def test_a_page_body_past_the_limit_is_refused_as_it_inflates() -> None:
    bomb = gzip.compress(b" " * (8 << 20))
    with pytest.raises(HTTPStatusError, match="page is larger than 1 MiB once decoded"):
        bounded_body([bomb], "gzip", "page", 1 << 20)
