"""A cached wheel of an unpinned URL is used only while the server still serves that file (``fetch._revalidate``).

Through real servers on 127.0.0.1: the project's FaultServer (ETag, Last-Modified, faults) and the standard
library's ``http.server`` (Last-Modified only, ``If-Modified-Since`` → 304: what ``python -m http.server`` in a
``dist/`` directory gives a developer).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import FAST, fetch, saved_journal, ws
from pytest_httpserver import HTTPServer

import wheelstream
from fixtures.wellformed import make_wheel
from wheelstream._cache import UrlRecord
from wheelstream.errors import ResourceGone, RetriesExhausted
from wheelstream.fetch._revalidate import Verdict, conditional_headers, judge
from wheelstream.testing import Cut, FaultPlan, FaultServer, NoValidators, Status, since

NAME = "demo-1.0-py3-none-any.whl"
OLD = make_wheel({"demo/__init__.py": b"VERSION = 'old'\n"})
NEW = make_wheel({"demo/__init__.py": b"VERSION = 'new, rebuilt under the same name'\n"})

# -- the table --------------------------------------------------------------------------------------------------

STRONG = UrlRecord("ab" * 32, '"v1"', "Mon, 07 Dec 2026 00:00:00 GMT")


@pytest.mark.parametrize(
    ("status", "headers", "size", "verdict"),
    [
        (304, {}, 10, Verdict.CURRENT),
        (200, {"etag": '"v1"', "content-length": "10"}, 10, Verdict.CURRENT),  # the condition ignored
        (200, {"etag": '"v1"', "content-length": "10"}, None, Verdict.CURRENT),  # only the tree is kept
        (200, {"etag": '"v1"', "content-length": "11"}, 10, Verdict.CHANGED),
        (200, {"etag": '"v2"', "content-length": "10"}, 10, Verdict.CHANGED),
        (200, {"content-length": "10"}, 10, Verdict.CHANGED),  # nothing to compare
        # no ETag now: the date and the length decide, as in the download's table (``transport._table``)
        (200, {"last-modified": STRONG.last_modified, "content-length": "10"}, 10, Verdict.CURRENT),
        (206, {"etag": '"v1"', "content-range": "bytes 0-9/10"}, 10, Verdict.CHANGED),
        (404, {}, 10, Verdict.REFUSED),
        (410, {}, 10, Verdict.REFUSED),
        (403, {}, 10, Verdict.REFUSED),
        (401, {}, 10, Verdict.REFUSED),
        (408, {}, 10, Verdict.UNREACHABLE),
        (429, {}, 10, Verdict.UNREACHABLE),
        (500, {}, 10, Verdict.UNREACHABLE),
        (503, {}, 10, Verdict.UNREACHABLE),
    ],
)
def test_each_answer_has_its_verdict(
    status: int, headers: dict[str, str], size: int | None, verdict: Verdict
) -> None:
    assert judge(status, headers, STRONG, size) is verdict


def test_a_date_alone_recognises_the_file_by_date_and_length() -> None:
    dated = UrlRecord("ab" * 32, None, STRONG.last_modified)
    assert STRONG.last_modified is not None
    same = {"last-modified": STRONG.last_modified, "content-length": "10"}
    assert judge(200, same, dated, 10) is Verdict.CURRENT
    assert judge(200, same, dated, 9) is Verdict.CHANGED
    assert (
        judge(200, {**same, "last-modified": "Tue, 08 Dec 2026 00:00:00 GMT"}, dated, 10) is Verdict.CHANGED
    )


def test_the_request_carries_every_validator_and_asks_for_identity() -> None:
    assert conditional_headers(STRONG) == {
        b"Accept-Encoding": b"identity",
        b"If-None-Match": b'"v1"',
        b"If-Modified-Since": b"Mon, 07 Dec 2026 00:00:00 GMT",
    }
    assert conditional_headers(UrlRecord("ab" * 32, None, None)) == {b"Accept-Encoding": b"identity"}
    assert conditional_headers(UrlRecord("ab" * 32, '"caf\u00e9"', None))[b"If-None-Match"] == b'"caf\xe9"'


def test_the_same_strong_etag_is_the_same_file_when_no_length_says_otherwise() -> None:
    """A server that ignores the condition and answers chunked (no Content-Length), same strong ETag."""
    assert judge(200, {"etag": '"v1"'}, STRONG, 10) is Verdict.CURRENT
    assert judge(200, {"etag": 'W/"v1"'}, UrlRecord("ab" * 32, 'W/"v1"', None), 10) is Verdict.CHANGED


# -- through the project's server ---------------------------------------------------------------------------


def test_an_unchanged_file_costs_one_304_and_no_body(server: FaultServer, tmp_path: Path) -> None:
    url = server.add_file(NAME, OLD)
    first = fetch(url, tmp_path)
    again = fetch(url, tmp_path)
    assert again.from_cache
    assert again.sha256 == first.sha256
    assert [(r.status, r.bytes_sent) for r in server.requests_for(NAME)] == [(200, len(OLD)), (304, 0)]
    asked = server.requests_for(NAME)[1].headers
    assert asked["if-none-match"].startswith('"')
    assert asked["if-modified-since"].endswith("GMT")
    assert (again.staged.root / "demo/__init__.py").read_bytes() == b"VERSION = 'old'\n"


def test_credentials_refused_on_revalidation_are_said_as_such_not_as_a_changed_file(
    server: FaultServer, tmp_path: Path
) -> None:
    """A cached wheel whose server now answers 401 (an expired token): the note said "the file at this URL
    changed since it was cached", then "unexpected HTTP status 401". Now no note, and the error names the
    credentials."""
    from wheelstream.errors import HTTPStatusError
    from wheelstream.testing import FaultPlan, Status, since

    url = server.add_file(NAME, OLD)
    fetch(url, tmp_path)
    server.set_plan(NAME, FaultPlan(Status(401, requests=since(2))))
    seen: list[str] = []
    with pytest.raises(HTTPStatusError, match=r"server answered 401 \(credentials missing or refused"):
        fetch(url, tmp_path, progress=lambda p: seen.append(p.message or ""))
    assert not [message for message in seen if "changed" in message], seen


def test_a_file_rebuilt_under_the_same_url_is_downloaded_again(server: FaultServer, tmp_path: Path) -> None:
    url = server.add_file(NAME, OLD)
    seen: list[str] = []
    first = fetch(url, tmp_path)
    server.replace_file(NAME, NEW)
    again = fetch(url, tmp_path, progress=lambda p: seen.append(p.message or ""))
    assert not again.from_cache
    assert again.sha256 == hashlib.sha256(NEW).hexdigest() != first.sha256
    assert (
        again.staged.root / "demo/__init__.py"
    ).read_bytes() == b"VERSION = 'new, rebuilt under the same name'\n"
    assert "the file at this URL changed since it was cached: downloading it again" in seen
    # ... and from then on the new file is the cached one
    third = fetch(url, tmp_path)
    assert third.from_cache
    assert third.sha256 == again.sha256
    assert [r.status for r in server.requests_for(NAME)] == [200, 200, 200, 304]


def test_a_hash_pinned_url_asks_nothing(server: FaultServer, tmp_path: Path) -> None:
    url = server.add_file(NAME, OLD) + "#sha256=" + hashlib.sha256(OLD).hexdigest()
    fetch(url, tmp_path)
    server.replace_file(NAME, NEW)  # the hash names the file: the server's new one is not it
    again = fetch(url, tmp_path)
    assert again.from_cache
    assert again.sha256 == hashlib.sha256(OLD).hexdigest()
    assert len(server.requests_for(NAME)) == 1


@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_busy_or_broken_server_leaves_the_cached_copy_in_use(
    server: FaultServer, tmp_path: Path, status: int
) -> None:
    url = server.add_file(NAME, OLD)
    fetch(url, tmp_path)
    server.set_plan(NAME, FaultPlan(Status(status, retry_after=30, requests=2)))
    seen: list[str] = []
    started = time.monotonic()
    again = fetch(url, tmp_path, progress=lambda p: seen.append(p.message or ""))
    assert time.monotonic() - started < 5  # no Retry-After wait, no retries: it was only a question
    assert again.from_cache
    assert again.sha256 == hashlib.sha256(OLD).hexdigest()
    assert "the server could not say whether the file changed: using the cached copy" in seen
    assert len(server.requests_for(NAME)) == 2


def test_no_server_at_all_leaves_the_cached_copy_in_use(tmp_path: Path) -> None:
    with FaultServer() as server:
        url = server.add_file(NAME, OLD)
        fetch(url, tmp_path)
    started = time.monotonic()
    again = fetch(url, tmp_path)  # connection refused
    assert time.monotonic() - started < 5
    assert again.from_cache
    assert again.sha256 == hashlib.sha256(OLD).hexdigest()


def test_a_file_gone_from_the_server_fails_as_a_download_would(server: FaultServer, tmp_path: Path) -> None:
    url = server.add_file(NAME, OLD)
    fetch(url, tmp_path)
    server.set_plan(NAME, FaultPlan(Status(404)))  # the question and the download's own request
    with pytest.raises(ResourceGone):
        fetch(url, tmp_path)


def test_without_validators_every_install_downloads_again(server: FaultServer, tmp_path: Path) -> None:
    url = server.add_file(NAME, OLD, plan=FaultPlan(NoValidators()))
    fetch(url, tmp_path)
    seen: list[str] = []
    again = fetch(url, tmp_path, progress=lambda p: seen.append(p.message or ""))
    assert not again.from_cache
    assert again.sha256 == hashlib.sha256(OLD).hexdigest()
    asked = server.requests_for(NAME)
    assert [r.status for r in asked] == [200, 200, 200]  # the download, the question (closed), the download
    assert not any("if-none-match" in r.headers or "if-modified-since" in r.headers for r in asked)
    assert "the cached copy has no ETag or Last-Modified to check it by: downloading it again" in seen


def test_without_validators_and_without_a_server_the_cached_copy_is_used(tmp_path: Path) -> None:
    """A record with nothing to ask by (a server without validators, a cache of an earlier version) still
    serves when the server cannot be reached: only an answer can say the file changed."""
    with FaultServer() as server:
        url = server.add_file(NAME, OLD, plan=FaultPlan(NoValidators()))
        fetch(url, tmp_path)
    again = fetch(url, tmp_path)
    assert again.from_cache
    assert again.sha256 == hashlib.sha256(OLD).hexdigest()


def test_a_half_done_download_of_the_new_file_is_not_traded_for_the_cached_one(
    server: FaultServer, tmp_path: Path
) -> None:
    """The server said the file changed, its download was cut and gave up; the next run, with the server
    busy, must not install the old cached wheel nor drop the new file's partial: it is the file wanted."""
    url = server.add_file(NAME, OLD)
    fetch(url, tmp_path)
    server.replace_file(NAME, NEW)
    # request 2 asks (200: changed), 3 downloads and is cut at half, then the server is busy
    server.set_plan(NAME, FaultPlan(Cut(after=len(NEW) // 2, requests=3), Status(503, requests=since(4))))
    few = replace(FAST, retries=1)
    with pytest.raises(RetriesExhausted):
        fetch(url, tmp_path, few)
    with pytest.raises(RetriesExhausted):  # busy still: the old wheel is not the answer
        fetch(url, tmp_path, few)
    journal = saved_journal(tmp_path, url)
    assert journal is not None
    assert journal["durable"] > 0
    server.set_plan(NAME, FaultPlan())
    done = fetch(url, tmp_path)
    assert done.sha256 == hashlib.sha256(NEW).hexdigest()
    assert done.resumed_at is not None


def test_download_into_a_directory_revalidates_the_file_kept_there(
    server: FaultServer, tmp_path: Path
) -> None:
    url = server.add_file(NAME, OLD)
    dest, cache = tmp_path / "d", tmp_path / "cache"
    wheelstream.download([url], dest, cache_dir=cache)
    wheelstream.download([url], dest, cache_dir=cache)
    assert [r.status for r in server.requests_for(NAME)] == [200, 304]
    server.replace_file(NAME, NEW)
    wheelstream.download([url], dest, cache_dir=cache)
    assert (dest / NAME).read_bytes() == NEW


def test_the_cli_installs_the_rebuilt_wheel_over_the_cached_one(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    url = server.add_file(NAME, OLD)
    assert ws("install", url, "--target", str(tmp_path / "a"), cache=cache).code == 0
    server.replace_file(NAME, NEW)
    run = ws("install", url, "--target", str(tmp_path / "b"), cache=cache)
    assert run.code == 0, run.err
    assert (tmp_path / "b/demo/__init__.py").read_bytes() == b"VERSION = 'new, rebuilt under the same name'\n"
    run = ws("install", url, "--target", str(tmp_path / "c"), cache=cache)
    assert run.code == 0
    assert "from cache" in run.err
    assert (tmp_path / "c/demo/__init__.py").read_bytes() == b"VERSION = 'new, rebuilt under the same name'\n"


# -- through python -m http.server: Last-Modified only --------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, int]]] = []

    def log_request(self, code: object = "-", size: object = "-") -> None:
        type(self).requests.append(
            (self.headers.get("If-Modified-Since", ""), code if isinstance(code, int) else 0)
        )


@pytest.fixture
def dist(tmp_path: Path) -> Iterator[tuple[Path, str, list[tuple[str, int]]]]:
    """A directory served by the standard library's file server, as ``python -m http.server`` would."""
    root = tmp_path / "dist"
    root.mkdir()
    log: list[tuple[str, int]] = []
    handler = type("Handler", (_Quiet,), {"requests": log})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/", log
    finally:
        server.shutdown()
        server.server_close()


def test_a_dev_server_wheel_rebuilt_in_place_is_picked_up(
    dist: tuple[Path, str, list[tuple[str, int]]], tmp_path: Path
) -> None:
    root, base, log = dist
    (root / NAME).write_bytes(OLD)
    os.utime(root / NAME, (1_700_000_000, 1_700_000_000))
    fetch(base + NAME, tmp_path, FAST)
    again = fetch(base + NAME, tmp_path, FAST)
    assert again.from_cache
    assert [code for _, code in log] == [200, 304]
    assert log[1][0].endswith("GMT")  # If-Modified-Since: the recorded Last-Modified
    (root / NAME).write_bytes(NEW)  # rebuilt: a later modification time
    os.utime(root / NAME, (1_700_000_100, 1_700_000_100))
    third = fetch(base + NAME, tmp_path, FAST)
    assert not third.from_cache
    assert third.sha256 == hashlib.sha256(NEW).hexdigest()


def test_an_etag_with_bytes_past_ascii_is_sent_back_as_it_came(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """RFC 9110 lets an ETag hold obs-text (0x80-0xFF); httpx cannot send such a ``str``, so every later
    install of the URL died in a traceback. The validator goes back as the bytes it came as."""
    httpserver.expect_request(f"/{NAME}").respond_with_data(
        OLD, headers={"ETag": '"caf\u00e9"'}, content_type="application/octet-stream"
    )
    url = httpserver.url_for(f"/{NAME}")
    fetch(url, tmp_path)
    again = fetch(url, tmp_path)  # the server ignores the condition: a 200 with the same tag and length
    assert again.from_cache
    (_, _first), (asked, _) = httpserver.log
    assert asked.headers["If-None-Match"] == '"caf\u00e9"'  # werkzeug reads the bytes as latin-1
