"""What servers get wrong above the zip layer, through real servers on 127.0.0.1 (pytest-httpserver and the CLI):
index pages that are not what they claim, an index that is briefly down, pages republished under an ETag,
credentials and the origins they may go to, and redirects no retry can follow.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import sys
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Run, started_server, ws
from packaging.tags import sys_tags
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from wheelstream._cache import Cache
from wheelstream.errors import HTTPStatusError
from wheelstream.index import resolve_requirement
from wheelstream.testing import build_wheel

TAGS = list(sys_tags())
JSON = "application/vnd.pypi.simple.v1+json"


def _page(*filenames: str, base: str = "/files/") -> str:
    return json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "name": "demo",
            "files": [{"filename": n, "url": base + n, "hashes": {}} for n in filenames],
        }
    )


def _resolve(server: HTTPServer, cache: Path, **kwargs: object) -> tuple[str, str | None]:
    with httpx.Client() as client:
        return resolve_requirement(
            "demo==1.0",
            index_url=server.url_for("/simple/"),
            cache=Cache.at(cache),
            client=client,
            tags=TAGS,
            **kwargs,  # type: ignore[arg-type]
        )[:2]


@pytest.mark.parametrize("files", ["5", "null", "true", '{"a": 1}', '"demo.whl"'])
def test_a_json_page_whose_files_are_not_a_list_is_one_error_naming_the_requirement(
    httpserver: HTTPServer, tmp_path: Path, files: str
) -> None:
    httpserver.expect_request("/simple/demo/").respond_with_data(
        '{"meta": {"api-version": "1.0"}, "name": "demo", "files": ' + files + "}", content_type=JSON
    )
    with pytest.raises(HTTPStatusError, match="is not PEP 691 JSON") as info:
        _resolve(httpserver, tmp_path)
    assert info.value.wheel == "demo==1.0"
    assert info.value.exit_code == 3


def test_json_rows_of_the_wrong_types_are_skipped(httpserver: HTTPServer, tmp_path: Path) -> None:
    good = "demo-1.0-py3-none-any.whl"
    rows = [
        5,
        {"filename": 7, "url": "/files/x"},
        {"filename": good, "url": ["/files/" + good]},
        {"filename": good, "url": "/files/" + good, "hashes": {"sha256": 12}, "requires-python": 3},
    ]
    httpserver.expect_request("/simple/demo/").respond_with_data(
        json.dumps({"meta": {"api-version": "1.0"}, "name": "demo", "files": rows}), content_type=JSON
    )
    assert _resolve(httpserver, tmp_path) == (httpserver.url_for("/files/" + good), None)


def test_an_html_page_in_a_charset_python_does_not_know_is_read_as_utf8(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    name = "demo-1.0-py3-none-any.whl"
    httpserver.expect_request("/simple/demo/").respond_with_data(
        f'<a href="/files/{name}">{name}</a>', content_type="text/html; charset=foobar"
    )
    assert _resolve(httpserver, tmp_path)[0] == httpserver.url_for("/files/" + name)


@pytest.mark.parametrize("charset", ["foobar", "idna", "punycode", "undefined", "base64"])
def test_an_html_page_in_a_charset_that_is_no_text_codec_is_read_as_utf8(
    httpserver: HTTPServer, tmp_path: Path, charset: str
) -> None:
    name = "demo-1.0-py3-none-any.whl"
    httpserver.expect_request("/simple/demo/").respond_with_data(
        f'<a href="/files/{name}">{name}</a>', content_type=f"text/html; charset={charset}"
    )
    assert _resolve(httpserver, tmp_path)[0] == httpserver.url_for("/files/" + name)


def test_a_broken_base_href_is_ignored(httpserver: HTTPServer, tmp_path: Path) -> None:
    name = "demo-1.0-py3-none-any.whl"
    httpserver.expect_request("/simple/demo/").respond_with_data(
        f'<base href="http://[bad/"><a href="/files/{name}">{name}</a>', content_type="text/html"
    )
    assert _resolve(httpserver, tmp_path)[0] == httpserver.url_for("/files/" + name)


def test_an_index_redirecting_to_a_file_url_is_not_asked_again(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/simple/demo/").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )
    with pytest.raises(HTTPStatusError, match="redirected to a URL that is not HTTP"):
        _resolve(httpserver, tmp_path)
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    "index",
    [
        "http:///simple/",
        "http://[::1/simple/",
        "http://u:secret@[::1/simple/",
        "http://127.0.0.1:99999/simple/",
    ],
)
def test_an_index_url_no_request_could_go_to_is_a_usage_error(tmp_path: Path, index: str) -> None:
    run = ws("download", "demo==1.0", "-i", index, "-d", str(tmp_path / "d"), cache=tmp_path / "c")
    assert run.code == 2, run.err
    assert run.err.startswith("error: demo==1.0: "), run.err
    assert "Traceback" not in run.err
    assert "secret" not in run.err


def test_a_file_index_url_is_a_usage_error_and_retries_follow_the_option(tmp_path: Path) -> None:
    run = ws(
        "download", "demo==1.0", "-i", "file:///tmp/simple/", "-d", str(tmp_path / "d"), cache=tmp_path / "c"
    )
    assert run.code == 2, run.err
    assert "the index URL must be http(s)" in run.error_line()
    down = ws(
        "download", "demo==1.0", "-i", "http://127.0.0.1:9/simple/", "--retries", "0", "-d", str(tmp_path / "d"),
        cache=tmp_path / "c",
    )  # fmt: skip
    assert down.code == 3, down.err
    assert "retry" not in down.err


def test_an_index_that_answers_503_then_the_page_is_asked_again(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    answers = [Response("down", status=503, headers={"Retry-After": "0"}), Response("busy", status=429)]

    def handler(request: Request) -> Response:
        if answers:
            return answers.pop(0)
        return Response(_page("demo-1.0-py3-none-any.whl"), content_type=JSON)

    httpserver.expect_request("/simple/demo/").respond_with_handler(handler)
    assert _resolve(httpserver, tmp_path)[0].endswith("/files/demo-1.0-py3-none-any.whl")
    assert len(httpserver.log) == 3


def test_an_index_still_down_after_its_retries_gives_up_naming_the_requirement(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/simple/demo/").respond_with_data("down", status=503)
    with pytest.raises(HTTPStatusError, match="answered 503") as info:
        _resolve(httpserver, tmp_path, retries=2)
    assert info.value.wheel == "demo==1.0"
    assert len(httpserver.log) == 3


def test_a_page_with_an_etag_is_revalidated_so_a_new_version_is_seen_at_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """No Cache-Control, an ETag: asked again each time (If-None-Match), not kept ten minutes by a heuristic."""
    pages = {'"v1"': _page("demo-0.9-py3-none-any.whl"), '"v2"': _page("demo-1.0-py3-none-any.whl")}
    current = ['"v1"']

    def handler(request: Request) -> Response:
        etag = current[0]
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(pages[etag], content_type=JSON, headers={"ETag": etag})

    httpserver.expect_request("/simple/demo/").respond_with_handler(handler)
    with httpx.Client() as client:
        ask = {"cache": Cache.at(tmp_path), "client": client, "tags": TAGS}
        resolve_requirement("demo==0.9", index_url=httpserver.url_for("/simple/"), **ask)  # type: ignore[arg-type]
        resolve_requirement("demo==0.9", index_url=httpserver.url_for("/simple/"), **ask)  # type: ignore[arg-type]
        current[0] = '"v2"'  # 1.0 is published
        url, _sha, _other = resolve_requirement("demo==1.0", index_url=httpserver.url_for("/simple/"), **ask)  # type: ignore[arg-type]
    assert url.endswith("/files/demo-1.0-py3-none-any.whl")
    conditional = [entry[0].headers.get("If-None-Match") for entry in httpserver.log]
    assert conditional == [None, '"v1"', '"v1"']
    assert [entry[1].status_code for entry in httpserver.log] == [200, 304, 200]


@pytest.fixture
def other_port(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """A second server on the same host as ``httpserver``, on another port."""
    yield from started_server(host=httpserver.host, port=0)


@pytest.mark.parametrize(
    "validators",
    [
        {"ETag": '"v"'},
        {"ETag": '"v"', "Last-Modified": "Mon, 06 Nov 2023 08:49:37 GMT"},
        {"Last-Modified": "Mon, 06 Nov 2023 08:49:37 GMT"},
        {"Last-Modified": "Mon, 06 Nov 2023 08:49:37 GMT", "Cache-Control": "public"},
        {"ETag": '"v"', "Cache-Control": "private, must-revalidate"},
    ],
)
def test_a_page_with_validators_and_no_freshness_is_revalidated_every_time(
    httpserver: HTTPServer, tmp_path: Path, validators: dict[str, str]
) -> None:
    """A static mirror's page (a Last-Modified years old) would be fresh for days by hishel's heuristic."""
    pages = [
        _page("demo-0.9-py3-none-any.whl"),
        _page("demo-0.9-py3-none-any.whl", "demo-1.0-py3-none-any.whl"),
    ]

    def handler(request: Request) -> Response:
        return Response(pages[0], content_type=JSON, headers=validators)  # no 304: the page is sent whole

    httpserver.expect_request("/simple/demo/").respond_with_handler(handler)
    with httpx.Client() as client:
        ask = {"cache": Cache.at(tmp_path), "client": client, "tags": TAGS}
        resolve_requirement("demo==0.9", index_url=httpserver.url_for("/simple/"), **ask)  # type: ignore[arg-type]
        pages.pop(0)  # 1.0 is published
        url, _sha, _other = resolve_requirement("demo==1.0", index_url=httpserver.url_for("/simple/"), **ask)  # type: ignore[arg-type]
    assert url.endswith("/files/demo-1.0-py3-none-any.whl")
    assert len(httpserver.log) == 2


def test_index_credentials_go_to_its_own_origin_only(
    httpserver: HTTPServer, other_port: HTTPServer, tmp_path: Path
) -> None:
    """A file on another port of the index's host gets no Authorization header; one on the index's own does."""
    other = other_port
    name = "demo-1.0-py3-none-any.whl"
    filename, data = build_wheel("demo", "1.0")
    assert filename == name
    for srv in (httpserver, other):
        srv.expect_request("/files/" + name).respond_with_data(data, content_type="application/octet-stream")
    assert (
        urllib.parse.urlsplit(other.url_for("/")).hostname
        == urllib.parse.urlsplit(httpserver.url_for("/")).hostname
    )
    index = "http://user:s3cret@" + httpserver.url_for("/simple/").removeprefix("http://")
    for srv, cache in ((other, tmp_path / "c1"), (httpserver, tmp_path / "c2")):
        page = json.dumps(
            {
                "meta": {"api-version": "1.0"},
                "name": "demo",
                "files": [{"filename": name, "url": srv.url_for("/files/" + name), "hashes": {}}],
            }
        )
        httpserver.expect_oneshot_request("/simple/demo/").respond_with_data(
            page, content_type=JSON, headers={"Cache-Control": "no-store"}
        )
        run = ws("install", "demo==1.0", "-i", index, "-t", str(tmp_path / f"t-{cache.name}"), cache=cache)
        assert run.code == 0, run.err
    secret = "Basic " + base64.b64encode(b"user:s3cret").decode()
    file_requests = [
        (e[0].host, e[0].headers.get("Authorization")) for e in other.log if "/files/" in e[0].path
    ]
    assert file_requests
    assert all(auth is None for _host, auth in file_requests)
    own = [e[0].headers.get("Authorization") for e in httpserver.log if "/files/" in e[0].path]
    assert own
    assert all(auth == secret for auth in own)


def test_index_credentials_follow_a_redirect_to_the_same_origin(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """An index page redirected to an absolute URL of the same origin (a mirror path): the next hop went without
    the index's credentials and the index answered 401; pip's requests keeps them there."""
    name = "demo-1.0-py3-none-any.whl"
    _filename, data = build_wheel("demo", "1.0")
    secret = "Basic " + base64.b64encode(b"user:s3cret").decode()

    def mirror(request: Request) -> Response:
        if request.headers.get("Authorization") != secret:
            return Response("who are you", status=401)
        page = json.dumps(
            {
                "meta": {"api-version": "1.0"},
                "name": "demo",
                "files": [{"filename": name, "url": httpserver.url_for("/files/" + name), "hashes": {}}],
            }
        )
        return Response(page, content_type=JSON)

    httpserver.expect_request("/simple/demo/").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/mirror/simple/demo/")}
    )
    httpserver.expect_request("/mirror/simple/demo/").respond_with_handler(mirror)
    httpserver.expect_request("/files/" + name).respond_with_data(
        data, content_type="application/octet-stream"
    )
    index = "http://user:s3cret@" + httpserver.url_for("/simple/").removeprefix("http://")
    run = ws("install", "demo==1.0", "-i", index, "-t", str(tmp_path / "t"), cache=tmp_path / "c")
    assert run.code == 0, run.err
    mirrored = [e[0].headers.get("Authorization") for e in httpserver.log if e[0].path.startswith("/mirror/")]
    assert mirrored == [secret]


def test_a_wheel_url_that_redirects_in_a_loop_is_one_line_exit_3(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/demo-1.0-py3-none-any.whl").respond_with_data(
        "", status=302, headers={"Location": "/demo-1.0-py3-none-any.whl"}
    )
    run = ws(
        "install", httpserver.url_for("/demo-1.0-py3-none-any.whl"), "-t", str(tmp_path / "t"), cache=tmp_path
    )
    assert run.code == 3, run.err
    assert run.err.startswith("error: demo-1.0-py3-none-any.whl: too many redirects"), run.err
    assert "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1


def test_a_redirect_to_a_file_url_ends_at_once_without_retries(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/demo-1.0-py3-none-any.whl").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )
    run = ws(
        "install",
        httpserver.url_for("/demo-1.0-py3-none-any.whl"),
        "-t",
        str(tmp_path / "t"),
        cache=tmp_path,
        timeout=20,
    )
    assert run.code == 3, run.err
    assert "redirected to a URL that is not HTTP(S)" in run.err
    assert len(httpserver.log) == 1  # not retried: no retry could follow it
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("page", ["html", "json"])
@pytest.mark.parametrize("right", [True, False])
def test_an_index_that_lists_only_md5_or_sha512_still_pins_its_files(
    page: str, right: bool, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """An index without sha256s (a ``#md5=`` link, a PEP 691 ``sha512``): pip and uv check those; they were
    not read at all, so a file listed with a wrong digest installed."""
    filename, data = build_wheel("demo", "1.0")
    md5 = hashlib.md5(data).hexdigest() if right else "0" * 32
    sha512 = hashlib.sha512(data).hexdigest() if right else "0" * 128
    if page == "html":
        body = f'<a href="/files/{filename}#md5={md5}">{filename}</a>'
        httpserver.expect_request("/simple/demo/").respond_with_data(body, content_type="text/html")
    else:
        row = {"filename": filename, "url": f"/files/{filename}", "hashes": {"sha512": sha512, "md5": md5}}
        doc = {"meta": {"api-version": "1.0"}, "name": "demo", "files": [row]}
        httpserver.expect_request("/simple/demo/").respond_with_data(json.dumps(doc), content_type=JSON)
    httpserver.expect_request(f"/files/{filename}").respond_with_data(data)
    target = tmp_path / "t"
    run = _install_pin(httpserver, tmp_path)
    if right:
        assert run.code == 0, run.err
        assert (target / "demo-1.0.dist-info").is_dir()
        return
    assert run.code == 1, run.err
    assert "the index lists 000" in run.error_line(alone=True)
    assert not target.exists()
    # the refused download is forgotten: the same command fetches it again (and is refused again)
    again = _install_pin(httpserver, tmp_path)
    assert again.code == 1, again.err


@pytest.mark.parametrize("fits", [True, False])
def test_requires_python_is_compared_with_the_full_version_as_pip_does(
    fits: bool, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """``>=3.11.7`` was compared with 3.11 (3.11.0) and refused on 3.11.7; ``<3.11.5`` was accepted there."""
    major, minor, micro = sys.version_info[:3]
    spec = f">={major}.{minor}.{micro}" if fits else f"<{major}.{minor}.{micro}"
    filename, data = build_wheel("demo", "1.0")
    sha = hashlib.sha256(data).hexdigest()
    body = (
        f'<a href="/files/{filename}#sha256={sha}" data-requires-python="{html.escape(spec)}">{filename}</a>'
    )
    httpserver.expect_request("/simple/demo/").respond_with_data(body, content_type="text/html")
    httpserver.expect_request(f"/files/{filename}").respond_with_data(data)
    target = tmp_path / "t"
    run = _install_pin(httpserver, tmp_path)
    assert run.code == (0 if fits else 1), run.err
    assert (target / "demo-1.0.dist-info").is_dir() == fits


def test_an_error_page_stated_fresh_is_not_served_from_the_cache(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """A 503 with ``Cache-Control: max-age=600`` answered every retry from hishel's store (and the next
    command's): one request to the server, exit 3. Errors are never stored; the retry reaches the server."""
    filename, data = build_wheel("demo", "1.0")
    answers = [Response("busy", status=503, headers={"Cache-Control": "max-age=600", "Retry-After": "0"})]

    def page(request: Request) -> Response:
        if answers:
            return answers.pop()
        return Response(f'<a href="/files/{filename}">{filename}</a>', content_type="text/html")

    httpserver.expect_request("/simple/demo/").respond_with_handler(page)
    httpserver.expect_request(f"/files/{filename}").respond_with_data(data)
    run = _install_pin(httpserver, tmp_path)
    assert run.code == 0, run.err
    assert [entry[0].path for entry in httpserver.log].count("/simple/demo/") == 2


def test_a_server_offering_only_pep_691_html_is_reachable(httpserver: HTTPServer, tmp_path: Path) -> None:
    """A server that negotiates strictly and offers only ``application/vnd.pypi.simple.v1+html`` answered both
    of our Accept headers with 406; pip and uv ask for that type too."""
    filename, data = build_wheel("demo", "1.0")
    html_type = "application/vnd.pypi.simple.v1+html"

    def page(request: Request) -> Response:
        if html_type not in request.headers.get("Accept", ""):
            return Response("not acceptable", status=406)
        return Response(f'<a href="/files/{filename}">{filename}</a>', content_type=html_type)

    httpserver.expect_request("/simple/demo/").respond_with_handler(page)
    httpserver.expect_request(f"/files/{filename}").respond_with_data(data)
    run = _install_pin(httpserver, tmp_path)
    assert run.code == 0, run.err


def test_a_page_of_another_major_api_version_is_refused(httpserver: HTTPServer, tmp_path: Path) -> None:
    """PEP 629: a major version the client does not read is a hard failure; v2 was read as v1."""
    filename, _data = build_wheel("demo", "1.0")
    body = json.dumps(
        {
            "meta": {"api-version": "2.0"},
            "name": "demo",
            "files": [{"filename": filename, "url": f"/files/{filename}", "hashes": {}}],
        }
    )
    httpserver.expect_request("/simple/demo/").respond_with_data(
        body, content_type="application/vnd.pypi.simple.v2+json"
    )
    run = _install_pin(httpserver, tmp_path)
    assert run.code == 3, run.err
    assert "this installer reads API version 1" in run.error_line(alone=True)


def test_a_version_published_after_the_page_was_cached_is_found(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """A page kept fresh by its stated lifetime (PyPI's ``max-age=600``) was the only answer for ten minutes:
    a version published since was "not on the index" (pip revalidates every page). A pin the cached page
    lacks asks again."""
    one, one_data = build_wheel("demo", "1.0")
    two, two_data = build_wheel("demo", "1.1")
    listed = [one]

    def page(request: Request) -> Response:
        links = "".join(f'<a href="/files/{n}">{n}</a>' for n in listed)
        return Response(links, content_type="text/html", headers={"Cache-Control": "max-age=600"})

    httpserver.expect_request("/simple/demo/").respond_with_handler(page)
    httpserver.expect_request(f"/files/{one}").respond_with_data(one_data)
    httpserver.expect_request(f"/files/{two}").respond_with_data(two_data)
    index, cache = httpserver.url_for("/simple/"), tmp_path / "c"
    assert ws("install", "demo==1.0", "-i", index, "-t", str(tmp_path / "a"), cache=cache).code == 0
    assert ws("install", "demo==1.0", "-i", index, "-t", str(tmp_path / "b"), cache=cache).code == 0
    pages = [entry[0].path for entry in httpserver.log].count("/simple/demo/")
    assert pages == 1  # the second install took the cached page
    listed.append(two)  # 1.1 is published
    run = ws("install", "demo==1.1", "-i", index, "-t", str(tmp_path / "c1"), cache=cache)
    assert run.code == 0, run.err
    assert (tmp_path / "c1" / "demo-1.1.dist-info").is_dir()


def _install_pin(httpserver: HTTPServer, tmp_path: Path, pin: str = "demo==1.0", into: str = "t") -> Run:
    """``install PIN -i <the server's /simple/> -t tmp/INTO`` with the cache in tmp/c."""
    return ws(
        "install", pin, "-i", httpserver.url_for("/simple/"), "-t", str(tmp_path / into), cache=tmp_path / "c"
    )


def test_a_json_page_nested_too_deeply_is_one_error_not_a_traceback(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """``json.loads`` recursed out of the stack: a RecursionError traceback from a 200 KB page."""
    httpserver.expect_request("/simple/demo/").respond_with_data(
        '{"files": ' + "[" * 100_000 + "]" * 100_000 + "}", content_type=JSON
    )
    run = ws(
        "download",
        "demo==1.0",
        "-i",
        httpserver.url_for("/simple/"),
        "-d",
        str(tmp_path / "d"),
        cache=tmp_path,
    )
    assert run.code == 3, run.err
    assert "is not PEP 691 JSON: it nests too deeply" in run.error_line(alone=True)


def test_a_page_ending_in_thousands_of_unclosed_tags_is_read_at_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """``HTMLParser.close`` parsed the unfinished tail again for each ``<a ``: 45 KB of them took 44 s of CPU
    (quadratic), before the one link on the page was taken."""
    good = "demo-1.0-py3-none-any.whl"
    httpserver.expect_request("/simple/demo/").respond_with_data(
        f'<a href="/files/{good}">{good}</a>' + "<a " * 15_000, content_type="text/html"
    )
    started = time.monotonic()
    assert _resolve(httpserver, tmp_path) == (httpserver.url_for("/files/" + good), None)
    assert time.monotonic() - started < 5  # 44 s before; ~0.1 s now


@pytest.mark.parametrize(
    ("page", "content_type"),
    [
        ("<a href='/files/{any}'>a</a><a href='/files/{cp}' data-yanked>c</a>", "text/html"),
        (
            json.dumps(
                {
                    "meta": {"api-version": "1.0"},
                    "files": [
                        {"filename": "{any}", "url": "/files/{any}", "hashes": {}},
                        {"filename": "{cp}", "url": "/files/{cp}", "hashes": {}, "yanked": ""},
                    ],
                }
            ),
            JSON,
        ),
        (
            json.dumps(
                {
                    "meta": {"api-version": "1.0"},
                    "files": [
                        {"filename": "{any}", "url": "/files/{any}", "hashes": {}},
                        {"filename": "{cp}", "url": "/files/{cp}", "hashes": {}, "yanked": 0},
                    ],
                }
            ),
            JSON,
        ),
    ],
    ids=["a bare data-yanked", "yanked: empty string", "yanked: 0"],
)
def test_a_falsy_yank_is_no_yank_as_pip_reads_it(
    httpserver: HTTPServer, tmp_path: Path, page: str, content_type: str
) -> None:
    """The better-fitting wheel was passed over as yanked, where pip 26.3 takes it (uv too, though it warns
    about ``""`` and refuses ``0``)."""
    best = next(t for t in TAGS if t.interpreter.startswith("cp") and t.abi != "abi3" and t.platform != "any")
    cp = f"demo-1.0-{best.interpreter}-{best.abi}-{best.platform}.whl"
    names = {"{any}": "demo-1.0-py3-none-any.whl", "{cp}": cp}
    for key, value in names.items():
        page = page.replace(key, value)
    httpserver.expect_request("/simple/demo/").respond_with_data(page, content_type=content_type)
    assert _resolve(httpserver, tmp_path) == (httpserver.url_for("/files/" + cp), None)


def test_a_file_republished_under_its_name_is_installed_with_its_new_hash(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """A page with no validators and no lifetime was kept ten minutes by a heuristic: a file republished under
    its name (a private index allowing overwrites) failed every install with "sha256 is …, expected …" until
    the page expired, where pip and uv install the new file."""
    name = "demo-1.0-py3-none-any.whl"
    served = {"data": build_wheel("demo", "1.0", files={"demo/v.txt": b"first"})[1]}

    def page(request: Request) -> Response:
        digest = hashlib.sha256(served["data"]).hexdigest()
        return Response(f'<a href="/files/{name}#sha256={digest}">{name}</a>', content_type="text/html")

    httpserver.expect_request("/simple/demo/").respond_with_handler(page)
    httpserver.expect_request(f"/files/{name}").respond_with_handler(lambda request: Response(served["data"]))
    assert _install_pin(httpserver, tmp_path, into="a").code == 0
    served["data"] = build_wheel("demo", "1.0", files={"demo/v.txt": b"second"})[1]
    run = _install_pin(httpserver, tmp_path, into="b")
    assert run.code == 0, run.err
    assert (tmp_path / "b" / "demo" / "v.txt").read_bytes() == b"second"


def test_an_index_that_answers_401_says_what_it_asks_for(httpserver: HTTPServer, tmp_path: Path) -> None:
    """A wheel's 401 named the credentials; an index page's said only "answered 401"."""
    httpserver.expect_request("/simple/demo/").respond_with_data("who?", status=401)
    run = _install_pin(httpserver, tmp_path)
    assert run.code == 3, run.err
    assert "answered 401 (credentials missing or refused: the URL's user:password@" in run.error_line(
        alone=True
    )


def test_a_page_that_inflates_past_the_limit_is_refused_before_it_is_all_held(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip bomb (1 MB on the wire, 2 GB decoded) was read whole into memory, and a first limit counted
    what httpx had already inflated (one chunk of 866 MiB): the bytes are inflated here, a step at a time.
    The limit is lowered so that the test need not inflate 256 MiB; the bomb is 64 times the limit."""
    import tracemalloc

    from wheelstream.index import _lookup

    monkeypatch.setattr(_lookup, "MAX_PAGE_BYTES", 1 << 20)
    bomb = gzip.compress(b"<a " + b" " * (64 << 20))
    httpserver.expect_request("/simple/demo/").respond_with_data(
        bomb, content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    tracemalloc.start()
    try:
        with pytest.raises(HTTPStatusError, match="is larger than 1 MiB once decoded") as info:
            _resolve(httpserver, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.wheel == "demo==1.0"
    assert peak < 16 << 20, peak  # 64 MiB and more before
    assert len(httpserver.log) == 1  # not asked again: the same bomb would come


def _raw_deflate(body: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=-15)
    return squeeze.compress(body) + squeeze.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate)],
    ids=["gzip", "deflate as zlib data", "raw deflate"],
)
def test_a_page_compressed_although_identity_was_asked_is_read(
    httpserver: HTTPServer, tmp_path: Path, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    good = "demo-1.0-py3-none-any.whl"
    body = f'<a href="/files/{good}">{good}</a>'.encode()
    httpserver.expect_request("/simple/demo/").respond_with_data(
        encode(body), content_type="text/html", headers={"Content-Encoding": encoding}
    )
    assert _resolve(httpserver, tmp_path) == (httpserver.url_for("/files/" + good), None)


@pytest.mark.parametrize(
    ("encoding", "body", "said"),
    [
        ("gzip, gzip", b"", "one gzip or deflate layer is read"),
        ("br", b"", "one gzip or deflate layer is read"),
        ("gzip", b"not gzip at all", "does not decode as the Content-Encoding it names"),
    ],
    ids=["two layers", "brotli", "not gzip"],
)
def test_a_page_in_an_encoding_that_cannot_be_read_is_one_error_at_once(
    httpserver: HTTPServer, tmp_path: Path, encoding: str, body: bytes, said: str
) -> None:
    """Two gzip layers inflated a 1.8 KB answer to 2 GB; a body that was not gzip was asked for five more
    times over 8 s, then "unreachable"."""
    httpserver.expect_request("/simple/demo/").respond_with_data(
        body, content_type="text/html", headers={"Content-Encoding": encoding}
    )
    with pytest.raises(HTTPStatusError, match=said):
        _resolve(httpserver, tmp_path)
    assert len(httpserver.log) == 1
