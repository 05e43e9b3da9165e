"""Segmented downloads (``wheelstream.fetch._segmented``): several ranged connections for one wheel, unpacked
as it streams, resumed piece by piece. Every test runs through the test bed's real server on 127.0.0.1 and
counts on its side what was sent."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, contents, fetch, saved_journal, tree, wait_until, ws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from test_install_equivalence import assert_same_install
from werkzeug import Request, Response

from wheelstream._progress import Progress
from wheelstream._progress import human_size as human
from wheelstream.errors import Interrupted
from wheelstream.fetch import DownloadResult
from wheelstream.testing import (
    ChangeFile,
    Cut,
    FaultPlan,
    FaultServer,
    IgnoreRange,
    RequestRecord,
    Stall,
    Status,
    Throttle,
    since,
)
from wheelstream.testing._wheel import wheel_archive
from wheelstream.unpack._partial import Journal

NAME = "seg-1.0-py3-none-any.whl"
PIECE = 256 << 10
FOUR = replace(FAST, connections=4, piece_bytes=PIECE)


@functools.cache
def _wheel(blobs: int = 3, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    files = {f"seg/m{i:03d}.py": f"X = {rng.random()!r}\n".encode() * 30 for i in range(200)}
    for i in range(blobs):  # incompressible: most of the bytes, so pieces start inside large entries
        files[f"seg/blob{i}.bin"] = rng.randbytes(1_500_000)
    return wheel_archive(files, name="seg", version="1.0")


def _served(
    server: FaultServer, plan: FaultPlan | None = None, data: bytes | None = None
) -> tuple[str, bytes]:
    data = data or _wheel()
    return server.add_file(NAME, data, plan=plan), data


def test_four_throttled_connections_are_faster_fetch_each_byte_once_and_unpack_the_same(
    server: FaultServer, tmp_path: Path
) -> None:
    rate = 2 << 20
    url, data = _served(server, FaultPlan(Throttle(rate)))
    started = time.monotonic()
    one = fetch(url, tmp_path / "one", replace(FAST, connections=1))
    single = time.monotonic() - started
    assert len(server.requests_for(NAME)) == 1
    server.clear_log()
    started = time.monotonic()
    four = fetch(url, tmp_path / "four", FOUR)
    segmented = time.monotonic() - started
    assert tree(four) == tree(one) == contents(data)
    assert four.sha256 == hashlib.sha256(data).hexdigest()
    # Four paced connections against one: ~4x on a quiet machine; 2x leaves room for a loaded one (a full run
    # measured 2.48x once), and still fails if the pieces are fetched one after another.
    assert single / segmented >= 2.0, (single, segmented)
    assert server.bytes_sent(NAME) <= 1.02 * len(data)
    ranged = [r for r in server.requests_for(NAME) if r.range]
    assert len(ranged) >= 3
    assert server.peak_in_flight(NAME) <= 4


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(2, 9), st.integers(1, 95)), min_size=1, max_size=5))
def test_cuts_of_single_connections_anywhere_change_nothing(
    server: FaultServer, tmp_path_factory: pytest.TempPathFactory, cuts: list[tuple[int, int]]
) -> None:
    """Any request (the first and the pieces') cut at any point: the same tree, and only what was in flight
    when a connection stopped early is fetched twice (a 15 MB wheel: the ratio is for big ones; what is in
    flight grows with the rate and the machine's load, not with the file)."""
    faults = [Cut(percent=percent, requests=number) for number, percent in dict(cuts).items()]
    url, data = _served(server, FaultPlan(Throttle(8 << 20), *faults), _wheel(blobs=10))
    server.clear_log()
    result = fetch(url, tmp_path_factory.mktemp("cache"), replace(FOUR, piece_bytes=1 << 20))
    assert tree(result) == contents(data)
    assert server.bytes_sent(NAME) <= 1.03 * len(data)


def _range_start(record: RequestRecord) -> int:
    assert record.range is not None
    return int(record.range.removeprefix("bytes=").split("-")[0])


def _cancel_at(share: float, length: int) -> tuple[threading.Event, Callable[[Progress], None]]:
    cancel = threading.Event()

    def progress(p: Progress) -> None:
        if p.bytes_done >= share * length:
            cancel.set()

    return cancel, progress


def _interrupted(server: FaultServer, cache: Path, share: float) -> tuple[str, bytes, dict[str, Any]]:
    """A four-connection download Ctrl-C'ed once ``share`` of the file is on disk: its URL, bytes and journal
    (which holds pieces past its prefix: the first response, the prefix, is paced four times slower than the
    pieces', or a loaded machine could let it catch up with every piece done); the server's log is cleared
    for what follows."""
    url, data = _served(
        server, FaultPlan(Throttle(1 << 20, requests=1), Throttle(4 << 20, requests=range(2, 1000)))
    )
    cancel, progress = _cancel_at(share, len(data))
    with pytest.raises(Interrupted):
        fetch(url, cache, FOUR, cancel=cancel, progress=progress)
    journal = saved_journal(cache, url)
    assert journal is not None
    assert journal["held"], journal
    server.clear_log()
    return url, data, journal


def test_an_interrupted_download_resumes_only_its_holes(server: FaultServer, tmp_path: Path) -> None:
    url, data, journal = _interrupted(server, tmp_path, 0.6)
    kept = journal["durable"] + sum(end - start for start, end in journal["held"])
    result = fetch(url, tmp_path, FOUR)
    assert tree(result) == contents(data)
    assert result.bytes_reused == kept
    assert server.bytes_sent(NAME) == len(data) - kept  # the holes, each byte once
    for record in server.requests_for(NAME):  # no request asked for a byte that was held
        assert record.range is not None
        first, last = map(int, record.range.removeprefix("bytes=").split("-"))
        assert not any(start <= last and first < end for start, end in journal["held"])


def test_a_resume_from_pieces_is_reported_as_a_resume(server: FaultServer, tmp_path: Path) -> None:
    """The rerun of a segmented download says it resumed (``resumed_at``, the message), as one on one
    connection does: it is the case a slow CDN makes."""
    url, _data, journal = _interrupted(server, tmp_path, 0.6)
    kept = journal["durable"] + sum(end - start for start, end in journal["held"])
    messages: list[str] = []
    result = fetch(url, tmp_path, FOUR, progress=lambda p: messages.append(p.message or ""))
    assert result.resumed_at == journal["durable"]
    assert f"resumed at {human(journal['durable'])} (saved {human(kept)})" in messages


def test_a_resume_with_one_connection_fills_the_holes_in_order(server: FaultServer, tmp_path: Path) -> None:
    url, data, _journal = _interrupted(server, tmp_path, 0.5)
    result = fetch(url, tmp_path, replace(FOUR, connections=1))
    assert tree(result) == contents(data)
    starts = [_range_start(r) for r in server.requests_for(NAME)]
    assert starts == sorted(starts)
    assert server.bytes_sent(NAME) == len(data) - result.bytes_reused


_CHILD = """
import sys, httpx
from pathlib import Path
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(Path(sys.argv[2])),
                client=client, options=DownloadOptions(connections=4, piece_bytes=int(sys.argv[3]),
                                                       checkpoint_seconds=0.25))
"""


def test_kill_9_at_70_percent_reuses_every_piece_written_before_it(
    server: FaultServer, tmp_path: Path
) -> None:
    # 512 KiB/s a connection: ~2.5 s in all, so that checkpoints (every 0.25 s, each a sync that a loaded
    # machine can stretch) still land between 70 % and the end; at 1 MiB/s the last one before the end came
    # below 70 % once, and the journal went with the finished download before it was ever seen there.
    url, data = _served(server, FaultPlan(Throttle(512 << 10)))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, str(tmp_path), str(PIECE)])
    try:

        def far_enough() -> bool:
            journal = saved_journal(tmp_path, url)
            if journal is None:
                return False
            held = sum(end - start for start, end in journal["held"])
            return bool(journal["durable"] + held >= 0.7 * len(data))

        wait_until(far_enough, timeout=20, what="70 % held")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    journal = saved_journal(tmp_path, url)
    assert journal is not None
    vouched = journal["durable"] + sum(end - start for start, end in journal["held"])
    first_run = server.bytes_sent(NAME)
    server.clear_log()
    result = fetch(url, tmp_path, FOUR)
    assert tree(result) == contents(data)
    assert result.bytes_reused >= vouched  # every piece the journal held (and what the trail proves)
    assert server.bytes_sent(NAME) == len(data) - result.bytes_reused  # only the holes
    # What was fetched twice is what the killed process had received but not written yet: its socket
    # buffers and its pieces' gathered chunks, per connection.
    assert first_run - (len(data) - server.bytes_sent(NAME)) <= 4 * (PIECE + (512 << 10))


def test_a_file_changed_under_the_pieces_restarts_everything_and_says_so(
    server: FaultServer, tmp_path: Path
) -> None:
    other = _wheel(seed=2)  # a new build: same name, other bytes
    url, _data = _served(server, FaultPlan(Throttle(8 << 20), ChangeFile(after_request=2, data=other)))
    notes: list[str] = []
    result = fetch(url, tmp_path, FOUR, progress=lambda p: notes.append(p.message or ""))
    assert result.restarts == 1
    assert result.sha256 == hashlib.sha256(other).hexdigest()
    assert tree(result) == contents(other)
    assert any("restarting from zero" in n and "changed" in n for n in notes), notes


def test_a_server_ignoring_ranges_on_other_connections_falls_back_to_one(
    server: FaultServer, tmp_path: Path
) -> None:
    url, data = _served(server, FaultPlan(Throttle(8 << 20), IgnoreRange(requests=since(2))))
    notes: list[str] = []
    result = fetch(url, tmp_path, FOUR, progress=lambda p: notes.append(p.message or ""))
    assert tree(result) == contents(data)
    assert any("one connection" in n for n in notes), notes


@pytest.mark.parametrize("declared", ["backwards", "past-the-end"])
def test_a_piece_answered_with_an_invalid_content_range_falls_back_to_one_connection(
    declared: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """``Content-Range: bytes a-(a-1)/L`` (last before first) or ``a-L/L`` (past the end) is invalid (RFC 9110
    §14.4). Taken as a range, the backwards one shortened the piece to nothing: nothing written, nothing
    counted against --retries, the same hole asked for again at once — a thousand requests in 20 s, no end."""
    data = _wheel()
    length = len(data)

    def paced(body: bytes) -> Iterator[bytes]:  # slow enough that the other connections ask for pieces
        for at in range(0, len(body), 64 << 10):
            time.sleep(0.004)
            yield body[at : at + (64 << 10)]

    def handler(request: Request) -> Response:
        asked = request.headers.get("Range", "")
        headers = {"ETag": '"v1"', "Accept-Ranges": "bytes"}
        if not asked.startswith("bytes="):
            headers["Content-Length"] = str(length)
            return Response(paced(data), status=200, headers=headers)
        first_text, _, last_text = asked[len("bytes=") :].partition("-")
        first = int(first_text)
        last = int(last_text) if last_text else length - 1
        body = data[first : last + 1]
        headers["Content-Length"] = str(len(body))
        end = last  # the first connection's range, and a resume: answered as asked
        if first > 0 and last_text:  # another connection's piece
            end = first - 1 if declared == "backwards" else length
        headers["Content-Range"] = f"bytes {first}-{end}/{length}"
        return Response(paced(body), status=206, headers=headers)

    httpserver.expect_request(f"/{NAME}").respond_with_handler(handler)
    notes: list[str] = []
    result = fetch(
        httpserver.url_for(f"/{NAME}"), tmp_path, FOUR, progress=lambda p: notes.append(p.message or "")
    )
    assert tree(result) == contents(data)
    assert any("one connection" in n for n in notes), notes
    assert len(httpserver.log) < 20, [(r.headers.get("Range"), s.status) for r, s in httpserver.log]


def test_busy_answers_to_more_connections_back_off_to_what_works(server: FaultServer, tmp_path: Path) -> None:
    url, data = _served(server, FaultPlan(Throttle(8 << 20), Status(503, requests={2, 3})))
    notes: list[str] = []
    result = fetch(url, tmp_path, FOUR, progress=lambda p: notes.append(p.message or ""))
    assert tree(result) == contents(data)
    assert any("going on with" in n for n in notes), notes


def test_automatic_keeps_one_connection_when_it_is_fast_enough(server: FaultServer, tmp_path: Path) -> None:
    url, data = _served(server)
    result = fetch(url, tmp_path, replace(FAST, piece_bytes=PIECE))
    assert tree(result) == contents(data)
    assert len(server.requests_for(NAME)) == 1


def test_automatic_adds_connections_when_one_starves_the_unpacker(
    server: FaultServer, tmp_path: Path
) -> None:
    url, data = _served(server, FaultPlan(Throttle(2 << 20)))
    result = fetch(url, tmp_path, replace(FAST, piece_bytes=PIECE))
    assert tree(result) == contents(data)
    first, *pieces = server.requests_for(NAME)
    assert pieces
    # Four at once on the client; the server may still be writing the first response, open-ended, for a
    # moment after the client stopped reading it.
    assert server.peak_in_flight(NAME) <= 5
    # The pieces cover the rest exactly once; only the first response, open-ended, was stopped early, and
    # what it sent past its piece is what was in flight then (the unpacker was waiting: little).
    start = min(_range_start(r) for r in pieces)
    assert sum(r.bytes_sent for r in pieces) == len(data) - start
    assert start <= first.bytes_sent <= start + (1 << 20)


@pytest.mark.parametrize(
    "held",
    [
        [[5, 3]],  # empty or backwards
        [[10, 20], [15, 30]],  # overlapping
        [[0, 5]],  # below the durable length
        [[10, 20.5]],  # not ints
        "10-20",
    ],
)
def test_a_journal_with_malformed_pieces_is_not_resumed(tmp_path: Path, held: object) -> None:
    path = tmp_path / "j.json"
    Journal(url="u", length=100, durable=8).save(path, sync=False)
    header = json.loads(path.read_text())
    assert Journal.load_header(path) is not None
    path.write_text(json.dumps({**header, "held": held}))
    assert Journal.load_header(path) is None


@pytest.mark.parametrize("reset", [False, True], ids=["503", "reset"])
def test_a_server_limiting_concurrent_connections_still_serves_the_whole_wheel(
    server: FaultServer, tmp_path: Path, reset: bool
) -> None:
    """Two at a time per client (nginx ``limit_conn``): the third and fourth are refused — with a 503 or a
    reset — and the download goes on with what works."""
    server.set_connection_limit(2, reset=reset)
    url, data = _served(server, FaultPlan(Throttle(8 << 20)))
    notes: list[str] = []
    result = fetch(url, tmp_path, FOUR, progress=lambda p: notes.append(p.message or ""))
    assert tree(result) == contents(data)
    assert server.peak_in_flight(NAME) <= 2
    refused = [r for r in server.requests_for(NAME) if r.faults == ("ConnectionLimit",)]
    assert refused
    assert any("going on with" in n for n in notes), notes
    served = [r for r in server.requests_for(NAME) if r.status in (200, 206)]
    assert sum(r.bytes_sent for r in served) <= 1.02 * len(data)


def test_a_stalled_connection_is_cut_and_its_rest_taken_by_another(
    server: FaultServer, tmp_path: Path
) -> None:
    """The third request stalls for 30 s after 100 kB; with a 3 s read timeout it is cut after 1 s (a third
    of it) and its rest fetched on another connection: the download does not wait for the timeout."""
    url, data = _served(server, FaultPlan(Throttle(8 << 20), Stall(at=100_000, seconds=30, requests=3)))
    notes: list[str] = []
    started = time.monotonic()
    result = fetch(url, tmp_path, replace(FOUR, timeout=3), progress=lambda p: notes.append(p.message or ""))
    assert time.monotonic() - started < 2.5
    assert tree(result) == contents(data)
    assert any("brought nothing for 1 s" in n for n in notes), notes


TORCH = sorted(Path("/opt/wheels").glob("torch-*cp311*.whl"))


@pytest.mark.skipif(not TORCH, reason="no /opt/wheels/torch-*cp311*.whl here")
@pytest.mark.skipif(sys.implementation.cache_tag != "cpython-311", reason="that torch is for CPython 3.11")
@pytest.mark.skipif(not os.environ.get("WHEELSTREAM_BIG"), reason="set WHEELSTREAM_BIG=1 for the big wheel")
def test_torch_over_four_paced_connections_installs_what_pip_installs(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """A real big wheel (192 MB, 12k files), every connection paced at 32 MB/s, four connections: the same
    target as ``pip install --no-deps --target`` from the same URL, each byte fetched once."""
    url = server.add_file(TORCH[-1].name, TORCH[-1], plan=FaultPlan(Throttle(32 << 20)))
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "-q",
            "install",
            "--no-deps",
            "--no-compile",
            "--target",
            str(tmp_path / "pip"),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    server.clear_log()
    run = ws(
        "install", "--connections", "4", "--target", str(tmp_path / "ours"), url, cache=cache, timeout=280
    )
    assert run.code == 0, run.err
    assert_same_install(tmp_path / "pip", tmp_path / "ours")
    requests = server.requests_for(TORCH[-1].name)
    assert len(requests) > 4
    assert sum(r.bytes_sent for r in requests) == TORCH[-1].stat().st_size


def test_two_downloads_from_one_host_share_its_extra_connections(server: FaultServer, tmp_path: Path) -> None:
    """Two wheels at once from one host, four connections asked for each: each has its own first connection,
    and together they add at most three (the host's slots, shared through the cache), not six."""
    data_a, data_b = _wheel(seed=1), _wheel(seed=3)
    url_a = server.add_file(NAME, data_a, plan=FaultPlan(Throttle(2 << 20)))
    url_b = server.add_file("other-1.0-py3-none-any.whl", data_b, plan=FaultPlan(Throttle(2 << 20)))
    results: dict[str, DownloadResult] = {}

    def download(url: str) -> None:
        results[url] = fetch(url, tmp_path, FOUR)

    threads = [threading.Thread(target=download, args=(url,)) for url in (url_a, url_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tree(results[url_a]) == contents(data_a)
    assert tree(results[url_b]) == contents(data_b)
    assert server.peak_in_flight() <= 2 + 3
    assert len(server.requests) > 4  # both went over several connections
