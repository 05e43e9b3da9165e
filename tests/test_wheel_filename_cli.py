"""A hostile wheel file name through the real CLI and a real HTTP server on 127.0.0.1: ``download`` once
wrote ``<dest>/a/../../../escaped-1.0-py3-none-any.whl``, outside ``-d``; ``install --ignore-tags`` skipped
the tag check that was its only guard. Now both fail at resolve time: exit 1, one ``error:`` line naming the
(redacted) URL and the cause, nothing fetched, nothing written outside the directories given, ``-d`` not
even created and ``--target`` untouched. The same through a PEP 691 and a PEP 503 index page that pair a
harmless ``filename`` with an escaping ``url``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Run
from conftest import ws as run_command
from pytest_httpserver import HTTPServer

import wheelstream
from fixtures.wellformed import make_wheel
from wheelstream.errors import InvalidWheelFilename

HARMLESS = "escaped-1.0-py3-none-any.whl"
WHEEL = make_wheel({"escaped/__init__.py": b"X = 1\n"}, name="escaped", version="1.0")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"

# URL path segments, each one segment on the wire, each naming a file outside -d once decoded.
ESCAPES = [
    "a%2F..%2F..%2F..%2F" + HARMLESS,
    "a%2f..%2f..%2f..%2f" + HARMLESS,
    "%2E%2E%2F%2E%2E%2F" + HARMLESS,
    "..%5C..%5C" + HARMLESS,
    "..%2F" * 12 + "tmp%2F" + HARMLESS,
    "%C0%AF..%C0%AF" + HARMLESS,
    "a%252F..%252F..%252F" + HARMLESS,
    "x-1.0-py3-none-any%EF%BC%8F..%EF%BC%8F" + HARMLESS,
    HARMLESS + "%00.png",
]


def ws(*args: str, cwd: Path) -> Run:
    """The command with its cache on the command line, on a wide terminal without colours."""
    return run_command(*args, cache=None, cwd=cwd, timeout=120, env={"COLUMNS": "400", "NO_COLOR": "1"})


@dataclass
class Layout:
    """``tmp/work/out/d`` for -d (deep, so that ``a/../../..`` still lands inside ``tmp``), a target with a
    file in it, the cache next to them. ``snapshot`` is everything except the cache, plus ``tmp``'s parent."""

    tmp: Path

    @property
    def dest(self) -> Path:
        return self.tmp / "work" / "out" / "d"

    @property
    def target(self) -> Path:
        return self.tmp / "work" / "out" / "t"

    @property
    def cache(self) -> Path:
        return self.tmp / "cache"

    def snapshot(self) -> tuple[frozenset[str], frozenset[str]]:
        inside = frozenset(
            str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*") if self.cache not in (p, *p.parents)
        )
        return inside, frozenset(os.listdir(self.tmp.parent))

    def assert_nothing_escaped(self) -> None:
        names = [p.name for p in self.tmp.rglob("*")] + os.listdir(self.tmp.parent) + os.listdir("/tmp")
        assert not [n for n in names if "escaped" in n and not n.endswith(".dist-info")], names


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path)
    lay.target.mkdir(parents=True)
    (lay.target / "keep.txt").write_text("mine\n")
    return lay


@pytest.fixture
def wheel_server(httpserver: HTTPServer) -> HTTPServer:
    """Serves the wheel at *any* ``.whl`` path, as a hostile server would: only our checks stop the write."""
    httpserver.expect_request(re.compile(r".*\.whl.*")).respond_with_data(
        WHEEL, content_type="application/octet-stream"
    )
    return httpserver


def _wheel_requests(server: HTTPServer) -> list[str]:
    return [request.path for request, _response in server.log if ".whl" in request.path]


def _assert_refused(
    run: Run,
    shown_url: str,
    lay: Layout,
    before: tuple[frozenset[str], frozenset[str]],
    cause: str = "the URL's file name",
) -> None:
    line = run.error_line(alone=True)
    assert run.code == 1, (run.code, run.err)
    assert line.startswith(f"error: {shown_url}: "), line
    assert cause in line, line
    assert run.out == ""
    assert lay.snapshot() == before
    assert not lay.dest.exists()
    assert sorted(os.listdir(lay.target)) == ["keep.txt"]
    assert (lay.target / "keep.txt").read_text() == "mine\n"
    lay.assert_nothing_escaped()


# -- a URL given directly ------------------------------------------------------------------------------------


@pytest.mark.parametrize("segment", ESCAPES)
@pytest.mark.parametrize("command", ["download", "install"])
def test_a_url_whose_name_escapes_is_refused_before_anything_is_fetched(
    command: str, segment: str, wheel_server: HTTPServer, layout: Layout
) -> None:
    url = wheel_server.url_for("/files/") + segment
    where = (
        ("-d", str(layout.dest))
        if command == "download"
        else ("--target", str(layout.target), "--ignore-tags")
    )
    before = layout.snapshot()
    run = ws(command, url, *where, "--cache-dir", str(layout.cache), cwd=layout.tmp)
    _assert_refused(run, url, layout, before)
    assert _wheel_requests(wheel_server) == []


def test_the_error_names_the_url_without_its_credentials(wheel_server: HTTPServer, layout: Layout) -> None:
    url = wheel_server.url_for("/files/" + ESCAPES[0]).replace("http://", "http://alice:s3cret@")
    before = layout.snapshot()
    run = ws(
        "download",
        url + "?token=t0k3n",
        "-d",
        str(layout.dest),
        "--cache-dir",
        str(layout.cache),
        cwd=layout.tmp,
    )
    _assert_refused(
        run,
        wheel_server.url_for("/files/" + ESCAPES[0]) + "?token=***",
        layout,
        before,
        "is not a single path component",
    )
    assert "s3cret" not in run.err + run.out
    assert "alice" not in run.err
    assert "t0k3n" not in run.err


def test_one_bad_url_among_good_ones_fails_them_all_before_any_download(
    wheel_server: HTTPServer, layout: Layout
) -> None:
    good = wheel_server.url_for("/files/" + HARMLESS)
    bad = wheel_server.url_for("/files/") + ESCAPES[0]
    before = layout.snapshot()
    run = ws("download", good, bad, "-d", str(layout.dest), "--cache-dir", str(layout.cache), cwd=layout.tmp)
    _assert_refused(run, bad, layout, before)
    assert _wheel_requests(wheel_server) == []


def test_a_good_url_still_downloads_under_its_decoded_name(wheel_server: HTTPServer, layout: Layout) -> None:
    url = wheel_server.url_for("/files/escaped-1.0%2Blocal-py3-none-any.whl")
    run = ws("download", url, "-d", str(layout.dest), "--cache-dir", str(layout.cache), cwd=layout.tmp)
    assert run.code == 0, run.err
    assert os.listdir(layout.dest) == ["escaped-1.0+local-py3-none-any.whl"]
    assert (layout.dest / "escaped-1.0+local-py3-none-any.whl").read_bytes() == WHEEL


# -- through an index ----------------------------------------------------------------------------------------


def _json_page(filename: str, url: str) -> str:
    return json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "name": "escaped",
            "files": [{"filename": filename, "url": url, "hashes": {}}],
        }
    )


def _html_page(filename: str, url: str) -> str:
    return f'<!DOCTYPE html><html><body><a href="{url}">{filename}</a></body></html>'


def _serve_index(server: HTTPServer, kind: str, filename: str, url: str) -> None:
    if kind == "json":
        server.expect_request("/simple/escaped/").respond_with_data(
            _json_page(filename, url), content_type=JSON_TYPE
        )
    else:
        server.expect_request("/simple/escaped/").respond_with_data(
            _html_page(filename, url), content_type="text/html"
        )


def _from_index(command: str, server: HTTPServer, layout: Layout, *where: str) -> Run:
    """``wheelstream COMMAND escaped==1.0`` against the index ``server`` serves, into ``where`` (default
    ``-d <dest>``)."""
    return ws(
        command,
        "escaped==1.0",
        "--index-url",
        server.url_for("/simple/"),
        *(where or ("-d", str(layout.dest))),
        "--cache-dir",
        str(layout.cache),
        cwd=layout.tmp,
    )


INDEX_CASES = [
    ("json", "../../files/" + ESCAPES[0]),
    ("json", "/files/" + ESCAPES[3]),
    ("json", "ABSOLUTE/files/" + ESCAPES[4]),
    ("json", "/files/" + ESCAPES[6]),
    ("html", "../../files/" + ESCAPES[0]),
    ("html", "/files/" + ESCAPES[2]),
    ("html", "ABSOLUTE/files/" + ESCAPES[7]),
]


@pytest.mark.parametrize(("kind", "href"), INDEX_CASES)
@pytest.mark.parametrize("command", ["download", "install"])
def test_an_index_pairing_a_harmless_filename_with_an_escaping_url_is_refused(
    command: str, kind: str, href: str, wheel_server: HTTPServer, layout: Layout
) -> None:
    href = href.replace("ABSOLUTE", wheel_server.url_for("").rstrip("/"))
    _serve_index(wheel_server, kind, HARMLESS, href)
    where = (
        ("-d", str(layout.dest))
        if command == "download"
        else ("--target", str(layout.target), "--ignore-tags")
    )
    before = layout.snapshot()
    run = _from_index(command, wheel_server, layout, *where)
    shown = urllib.parse.urljoin(wheel_server.url_for("/simple/escaped/"), href)
    _assert_refused(run, shown, layout, before)
    assert _wheel_requests(wheel_server) == []


@pytest.mark.parametrize("kind", ["json", "html"])
def test_an_index_url_naming_another_wheel_than_its_filename_is_refused(
    kind: str, wheel_server: HTTPServer, layout: Layout
) -> None:
    other = "other-6.6-py3-none-any.whl"
    _serve_index(wheel_server, kind, HARMLESS, "/files/" + other)
    before = layout.snapshot()
    run = _from_index("download", wheel_server, layout)
    if kind == "json":  # PEP 691 names the file twice: the two must agree
        _assert_refused(
            run,
            wheel_server.url_for("/files/" + other),
            layout,
            before,
            f"the index lists this file as '{HARMLESS}' but its URL names '{other}'",
        )
    else:  # PEP 503: the URL's name is the file's name (as for pip), so there is no escaped 1.0 at all
        assert run.code == 2
        assert "no wheel for version 1.0" in run.error_line(alone=True)
        assert lay_unchanged(layout, before)
    assert _wheel_requests(wheel_server) == []


def lay_unchanged(layout: Layout, before: tuple[frozenset[str], frozenset[str]]) -> bool:
    layout.assert_nothing_escaped()
    return layout.snapshot() == before and not layout.dest.exists()


@pytest.mark.parametrize(
    "filename",
    [
        f"../../{HARMLESS}",
        f"a%2F..%2F{HARMLESS}",
        f"..\\{HARMLESS}",
        f"escaped-1.0-py3-none-any\uff0f..\uff0f{HARMLESS}",
    ],
)
def test_an_unsafe_json_filename_is_never_used_even_with_a_harmless_url(
    filename: str, wheel_server: HTTPServer, layout: Layout
) -> None:
    _serve_index(wheel_server, "json", filename, "/files/" + HARMLESS)
    before = layout.snapshot()
    run = _from_index("download", wheel_server, layout)
    assert run.code == 2
    assert "no wheel for version 1.0" in run.error_line(alone=True)
    assert lay_unchanged(layout, before)
    assert _wheel_requests(wheel_server) == []


@pytest.mark.parametrize("kind", ["json", "html"])
def test_a_harmless_index_entry_still_downloads(kind: str, wheel_server: HTTPServer, layout: Layout) -> None:
    _serve_index(wheel_server, kind, HARMLESS, "../../files/" + HARMLESS)
    run = _from_index("download", wheel_server, layout)
    assert run.code == 0, run.err
    assert os.listdir(layout.dest) == [HARMLESS]


# -- local files, through the API ----------------------------------------------------------------------------


def test_a_local_file_is_checked_like_a_url_before_it_is_copied_into_dest(layout: Layout) -> None:
    odd = layout.tmp / "x.whl"
    odd.write_bytes(WHEEL)
    with pytest.raises(
        InvalidWheelFilename, match=r"x\.whl: the file name 'x\.whl' is not a wheel file name"
    ):
        wheelstream.download([str(odd)], layout.dest, cache_dir=layout.cache)
    assert not layout.dest.exists()
    good = layout.tmp / HARMLESS
    good.write_bytes(WHEEL)
    result = wheelstream.download([str(good), good.as_uri()], layout.dest, cache_dir=layout.cache)
    assert os.listdir(layout.dest) == [HARMLESS]
    assert (layout.dest / HARMLESS).read_bytes() == WHEEL
    assert [w.path for w in result.wheels] == [layout.dest / HARMLESS] * 2


def test_a_local_copy_replaces_a_symlink_in_dest_instead_of_writing_through_it(layout: Layout) -> None:
    good = layout.tmp / HARMLESS
    good.write_bytes(WHEEL)
    victim = layout.tmp / "victim.txt"
    victim.write_text("untouched\n")
    layout.dest.mkdir(parents=True)
    (layout.dest / HARMLESS).symlink_to(victim)
    wheelstream.download([str(good)], layout.dest, cache_dir=layout.cache)
    assert victim.read_text() == "untouched\n"
    assert not (layout.dest / HARMLESS).is_symlink()
    assert (layout.dest / HARMLESS).read_bytes() == WHEEL
