"""The HTTP decision table (DESIGN §3) as a pure function, and the rows a real server rarely produces
driven through ``httpx.MockTransport``."""

from __future__ import annotations

import email.utils
import hashlib
import io
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from fixtures.wellformed import WELLFORMED
from wheelstream._cache import Cache
from wheelstream._urls import cache_key
from wheelstream.errors import HTTPStatusError, ResourceGone
from wheelstream.fetch import DownloadOptions, fetch_wheel
from wheelstream.transport import Action, Known, PieceAction, decide, decide_piece, retry_after_seconds
from wheelstream.unpack._partial import Journal

ETAG = '"abc"'
MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
RESUME = Known(start=100, length=1000, etag=ETAG, last_modified=MODIFIED)


@pytest.mark.parametrize(
    ("status", "headers", "known", "action"),
    [
        (206, {"Content-Range": "bytes 100-999/1000"}, RESUME, Action.CONTINUE),
        (206, {"Content-Range": "bytes 90-999/1000"}, RESUME, Action.RESTART),
        (206, {"Content-Range": "bytes 100-1999/2000"}, RESUME, Action.RESTART),
        (206, {}, RESUME, Action.RESTART),
        (206, {"Content-Range": "bytes 100-99/1000"}, RESUME, Action.RESTART),  # backwards: invalid
        (206, {"Content-Range": "bytes 100-1000/1000"}, RESUME, Action.RESTART),  # past the end: invalid
        (200, {"Content-Length": "1000"}, Known(0, None, None, None), Action.START),
        (200, {"Content-Length": "1000", "ETag": ETAG}, RESUME, Action.SKIP),
        (
            200,
            {"Content-Length": "1000", "Last-Modified": MODIFIED},
            Known(100, 1000, None, MODIFIED),
            Action.SKIP,
        ),
        (200, {"Content-Length": "1000", "ETag": '"new"'}, RESUME, Action.RESTART_WITH_BODY),
        (200, {"Content-Length": "1200", "ETag": ETAG}, RESUME, Action.RESTART_WITH_BODY),
        (
            200,
            {"Content-Length": "1000", "ETag": 'W/"abc"'},
            Known(100, 1000, 'W/"abc"', None),
            Action.RESTART_WITH_BODY,
        ),
        (200, {"Content-Length": "1000"}, RESUME, Action.RESTART_WITH_BODY),
        (200, {"Content-Encoding": "gzip"}, Known(0, None, None, None), Action.START),
        (416, {"Content-Range": "bytes */1000"}, Known(1000, 1000, ETAG, None), Action.COMPLETE),
        (416, {"Content-Range": "bytes */900"}, RESUME, Action.GONE),
        (416, {"Content-Range": "bytes */100"}, Known(100, None, None, None), Action.COMPLETE),
        (416, {}, Known(100, None, None, None), Action.GONE),
        (
            200,
            {"Content-Length": "1000", "ETag": 'W/"a"', "Last-Modified": MODIFIED},
            Known(100, 1000, 'W/"a"', MODIFIED),
            Action.SKIP,
        ),
        (404, {}, RESUME, Action.GONE),
        (410, {}, RESUME, Action.GONE),
        (429, {}, RESUME, Action.RETRY),
        (503, {}, RESUME, Action.RETRY),
        (500, {}, RESUME, Action.RETRY),
        (403, {}, RESUME, Action.FAIL),
    ],
)
def test_decision_table(status: int, headers: dict[str, str], known: Known, action: Action) -> None:
    assert decide(status, headers, known).action is action


def test_forced_encoding_disables_resume() -> None:
    decision = decide(200, {"Content-Encoding": "gzip"}, Known(0, None, None, None))
    assert not decision.resumable
    assert "resume is impossible" in decision.reason


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds({"Retry-After": later}) or 0) <= 31
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_journal_validator_prefers_strong_etag() -> None:
    assert Journal(url="u", etag=ETAG, last_modified=MODIFIED).validator == ETAG
    assert Journal(url="u", etag='W/"x"', last_modified=MODIFIED).validator == MODIFIED
    assert Journal(url="u").validator is None


URL = "http://wheels.invalid/demo-1.0-py3-none-any.whl"


def test_416_with_everything_on_disk_finishes_from_disk(tmp_path: Path) -> None:
    """Killed after the last byte reached the disk but before the end: the rerun gets 416 and finishes."""
    data = WELLFORMED["deflate"]()
    cache = Cache.at(tmp_path)
    key = cache_key(URL)
    cache.partial(key).write_bytes(data)
    Journal(url=URL, etag=ETAG, length=len(data), durable=len(data)).save(cache.journal(key))
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = fetch_wheel(URL, cache=cache, client=client)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.bytes_fetched == 0
    assert result.bytes_reused == len(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert set(result.staged.files) == {n for n in archive.namelist() if not n.endswith("/")}
    assert requests == []  # the journal's length says it is all there: no request needed at all


def test_416_for_a_shorter_file_is_gone_and_discards(tmp_path: Path) -> None:
    data = WELLFORMED["big_entry"]()
    cache = Cache.at(tmp_path)
    key = cache_key(URL)
    cache.partial(key).write_bytes(data[:5000])
    Journal(url=URL, etag=ETAG, length=len(data), durable=5000).save(cache.journal(key))

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Range"] == "bytes=5000-"
        assert request.headers["If-Range"] == ETAG
        return httpx.Response(416, headers={"Content-Range": "bytes */10"})

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(ResourceGone, match="416"),
    ):
        fetch_wheel(URL, cache=cache, client=client)


def test_unexpected_status_is_a_network_error(tmp_path: Path) -> None:
    forbidden = httpx.MockTransport(lambda r: httpx.Response(403))
    with (
        httpx.Client(transport=forbidden) as client,
        pytest.raises(
            HTTPStatusError, match=r"^demo-1.0-py3-none-any.whl: server answered 403 \(forbidden: "
        ),
    ):
        fetch_wheel(URL, cache=Cache.at(tmp_path), client=client, options=DownloadOptions(retries=0))


@pytest.mark.parametrize(
    ("content_range", "action"),
    [
        ("bytes 100-199/1000", PieceAction.WRITE),
        ("bytes 100-99/1000", PieceAction.NO_RANGES),  # last before first: RFC 9110 §14.4, invalid
        ("bytes 100-1000/1000", PieceAction.NO_RANGES),  # at the complete length: invalid
        ("bytes 100-199/*", PieceAction.CHANGED),  # no total to match the known length
    ],
)
def test_piece_table_refuses_an_invalid_content_range(content_range: str, action: PieceAction) -> None:
    headers = {"Content-Range": content_range, "ETag": ETAG}
    assert decide_piece(206, headers, RESUME)[0] is action


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Content-Length": "999", "ETag": ETAG}, "the file changed on the server (999 bytes, not 1000)"),
        (
            {"Content-Length": "1000", "ETag": '"other"'},
            "the file changed on the server (its validators differ)",
        ),
        (
            {"Content-Length": "1000"},
            "the server ignored Range and sent nothing to show the file is the same",
        ),
    ],
    ids=["another length", "another ETag", "no validator"],
)
def test_a_200_to_a_range_says_why_it_is_another_file(headers: dict[str, str], reason: str) -> None:
    """ "the file changed on the server" was said six times over a server that only ignored Range and sent
    no validator (nothing shows it changed, nor that it did not)."""
    decision = decide(200, headers, RESUME)
    assert decision.action is Action.RESTART_WITH_BODY
    assert decision.reason == reason


@pytest.mark.parametrize(
    ("headers", "known"),
    [
        ({"ETag": ETAG}, RESUME),  # the same strong ETag, but no length to match
        (
            {"ETag": "W/" + ETAG, "Content-Length": "1000"},
            RESUME._replace(etag="W/" + ETAG, last_modified=None),
        ),
    ],
    ids=["a strong ETag equal, no length", "equal weak ETags"],
)
def test_equal_validators_that_cannot_prove_the_file_are_not_said_to_differ(
    headers: dict[str, str], known: Known
) -> None:
    decision = decide(200, headers, known)
    assert decision.action is Action.RESTART_WITH_BODY
    assert decision.reason == "the server ignored Range and sent nothing to show the file is the same"
