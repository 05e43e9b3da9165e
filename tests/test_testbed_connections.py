"""Several connections at once: the connection limit, in-flight counts and peaks, per-connection throttling,
and symlinks in a served directory — through a real server on 127.0.0.1 and real httpx clients in threads."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import wait_until

from wheelstream.testing import (
    ConnectionLimit,
    Cut,
    FaultPlan,
    FaultServer,
    Throttle,
    build_wheel,
)
from wheelstream.testing import _server as server_module
from wheelstream.testing import cli as bed_cli
from wheelstream.testing._spec import parse_connection_limit

DATA = bytes(range(256)) * 256  # 64 KiB, every byte value
NAME = "demo-1.0-py3-none-any.whl"
SLOW = 100_000  # B/s: DATA takes ~0.65 s, long enough for every thread of a test to have arrived
HOLD = "hold-1.0-py3-none-any.whl"  # DATA at 20 kB/s: in flight for as long as a test holds it (< 3.3 s)


@pytest.fixture
def server(server: FaultServer) -> FaultServer:
    """The suite's server, serving ``DATA`` as ``NAME`` slowly, so requests overlap, and as ``HOLD``."""
    server.add_file(NAME, DATA, plan=FaultPlan(Throttle(SLOW)))
    server.add_file(HOLD, DATA, plan=FaultPlan(Throttle(20_000)))
    return server


Outcome = httpx.Response | Exception


def get(url: str, headers: dict[str, str] | None = None, *, local: str | None = None) -> Outcome:
    """One GET on its own connection; the exception instead of raising, so threads can report it."""
    transport = httpx.HTTPTransport(local_address=local) if local else None
    try:
        with httpx.Client(timeout=10, transport=transport) as client:
            return client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return exc


def together(requests: list[tuple[str, dict[str, str] | None]]) -> list[Outcome]:
    """GET every ``(url, headers)`` from its own thread and connection, all released at the same moment
    (clients are made before the barrier: on a loaded machine that is what spreads the starts)."""
    barrier = threading.Barrier(len(requests))

    def run(url: str, headers: dict[str, str] | None) -> Outcome:
        with httpx.Client(timeout=10) as client:
            barrier.wait()
            try:
                return client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                return exc

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(run, [url for url, _ in requests], [headers for _, headers in requests]))


@contextlib.contextmanager
def holding(url: str) -> Iterator[None]:
    """A request in flight for the whole block: a slow response read no further than its first bytes. Once
    the client hangs up, the server notices at its next write (every 20 ms at 20 kB/s)."""
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
        body = response.iter_raw()  # kept: a dropped iterator closes the response, and the connection
        next(body)
        yield


def refused(server: FaultServer) -> list[int | None]:
    return [r.status for r in server.requests if r.faults == ("ConnectionLimit",)]


# -- the limit ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "expect"),
    [
        (ConnectionLimit(3, retry_after=2), (503, "2")),
        (ConnectionLimit(3, status=429), (429, None)),
        (ConnectionLimit(3, reset=True), (None, None)),
    ],
    ids=["503", "429", "reset"],
)
def test_one_request_beyond_the_limit_is_refused(
    server: FaultServer, limit: ConnectionLimit, expect: tuple[int | None, str | None]
) -> None:
    server.set_connection_limit(
        limit.limit, status=limit.status, retry_after=limit.retry_after, reset=limit.reset
    )
    assert server.connection_limit == limit
    url = server.url_for(NAME)
    outcomes = together([(url, {"Range": f"bytes={i * 1000}-"}) for i in range(4)])

    served = [o for o in outcomes if isinstance(o, httpx.Response) and o.status_code == 206]
    others = [o for o in outcomes if not (isinstance(o, httpx.Response) and o.status_code == 206)]
    assert (len(served), len(others)) == (3, 1), outcomes
    for r in served:
        first = int(r.headers["content-range"].split()[1].split("-")[0])
        assert r.content == DATA[first:]
    (other,) = others
    status, retry_after = expect
    if status is None:
        assert isinstance(other, (httpx.ReadError, httpx.RemoteProtocolError)), other
    else:
        assert isinstance(other, httpx.Response)
        assert (other.status_code, other.headers.get("retry-after")) == (status, retry_after)
    assert server.wait_idle()
    assert refused(server) == [status]
    (record,) = [r for r in server.requests if "ConnectionLimit" in r.faults]
    assert (record.name, record.number, record.reset, record.ended is not None) == (
        NAME,
        0,  # a refused request takes no request number: faults scoped @1 still mean the first one served
        status is None,
        True,
    )
    assert sorted(r.number for r in server.requests_for(NAME) if r.number) == [1, 2, 3]
    assert server.peak_in_flight() == server.peak_in_flight(NAME) == 3
    assert server.in_flight() == 0
    assert isinstance(after := get(url, {"Range": "bytes=60000-"}), httpx.Response)
    assert after.status_code == 206  # the slots are free again


def test_the_limit_counts_per_client_address_across_files(server: FaultServer) -> None:
    other = server.add_file("other-1.0-py3-none-any.whl", b"o" * 100)
    server.set_connection_limit(1)
    with holding(server.url_for(HOLD)):
        busy = get(other)  # another file, same client: refused
        elsewhere = get(other, local="127.0.0.2")  # another client address: its own budget
        page = get(server.url + "/simple/")  # pages count too, as in nginx
    assert isinstance(busy, httpx.Response)
    assert busy.status_code == 503
    assert busy.headers.get("retry-after") is None
    assert isinstance(elsewhere, httpx.Response)
    assert elsewhere.content == b"o" * 100
    assert isinstance(page, httpx.Response)
    assert page.status_code == 503
    assert {r.client for r in server.requests} == {"127.0.0.1", "127.0.0.2"}
    assert len(refused(server)) == 2
    wait_until(lambda: server.in_flight() == 0, what="the held request to end")
    assert isinstance(again := get(other), httpx.Response)
    assert again.status_code == 200


def test_a_client_that_starts_the_next_request_at_once_is_never_refused(
    server: FaultServer, tmp_path: Path
) -> None:
    """The slot is freed before the last byte leaves, so "one finished, start the next" never races it."""
    (tmp_path / "disk.whl").write_bytes(DATA)
    urls = [server.add_file("mem.whl", DATA[:3000]), server.add_file("disk.whl", tmp_path / "disk.whl")]
    server.set_connection_limit(2)

    def back_to_back(url: str) -> list[int]:
        with httpx.Client() as client:  # keep-alive; and a new connection after each 3rd request
            codes = [
                client.get(url, headers={"Connection": "close"} if i % 3 else {}).status_code
                for i in range(15)
            ]
        return codes

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(back_to_back, urls))
    assert results == [[200] * 15] * 2
    assert refused(server) == []


def test_idle_keep_alive_connections_do_not_count(server: FaultServer) -> None:
    server.set_connection_limit(1)
    server.set_plan(NAME, FaultPlan())
    with httpx.Client() as a, httpx.Client() as b:
        assert a.get(server.url_for(NAME)).status_code == 200  # a's connection stays open, idle
        assert b.get(server.url_for(NAME)).status_code == 200
        assert a.get(server.url_for(NAME)).status_code == 200
    assert refused(server) == []


def test_the_limit_can_be_set_at_construction_and_lifted() -> None:
    with FaultServer(max_connections=2) as s:
        assert s.connection_limit == ConnectionLimit(2, status=503)
        s.set_connection_limit(None)
        assert s.connection_limit is None
    with FaultServer(max_connections=ConnectionLimit(1, status=429, retry_after="5")) as s:
        assert str(s.connection_limit) == "1:429:5"


@pytest.mark.parametrize(
    "bad",
    [
        lambda: ConnectionLimit(0),
        lambda: ConnectionLimit(1, status=200),
        lambda: ConnectionLimit(1, retry_after=1, reset=True),
    ],
)
def test_nonsense_limits_are_rejected(bad: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="ConnectionLimit"):
        bad()


# -- every way a response ends gives its slot back ----------------------------------------------------------


def _cut(server: FaultServer, reset: bool) -> None:
    server.set_plan(NAME, FaultPlan(Cut(after=1000, reset=reset)))
    outcome = get(server.url_for(NAME))
    assert isinstance(outcome, (httpx.RemoteProtocolError, httpx.ReadError)), outcome


def _client_disconnect(server: FaultServer) -> None:
    with httpx.Client() as client, client.stream("GET", server.url_for(NAME)) as r:
        next(r.iter_raw())  # some body arrived; then the client hangs up mid-body


def _exception(server: FaultServer) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("boom")

    mp = pytest.MonkeyPatch()
    mp.setattr(server_module, "decide", boom)
    try:
        assert isinstance(get(server.url_for(NAME)), httpx.RemoteProtocolError)
    finally:
        mp.undo()


def _refused_by_reset(server: FaultServer) -> None:
    server.set_connection_limit(1, reset=True)
    with holding(server.url_for(HOLD)):
        assert isinstance(get(server.url_for(NAME)), (httpx.ReadError, httpx.RemoteProtocolError))


@pytest.mark.parametrize(
    "end",
    [
        lambda s: _cut(s, reset=False),
        lambda s: _cut(s, reset=True),
        _client_disconnect,
        _exception,
        _refused_by_reset,
    ],
    ids=["cut", "cut-reset", "client-disconnect", "exception", "refused-by-reset"],
)
def test_in_flight_count_drops_however_a_response_ends(
    server: FaultServer, end: Callable[[FaultServer], None]
) -> None:
    server.set_connection_limit(1)
    end(server)
    assert server.wait_idle(), "a response never ended"
    assert server.in_flight() == server.in_flight(NAME) == 0
    assert all(r.ended is not None for r in server.requests)
    server.set_connection_limit(1)
    server.set_plan(NAME, FaultPlan())
    again = get(server.url_for(NAME))
    assert isinstance(again, httpx.Response)
    assert again.content == DATA


def test_a_vanished_client_is_recorded(server: FaultServer) -> None:
    _client_disconnect(server)
    assert server.wait_idle()
    (record,) = server.requests
    assert record.error is not None
    assert 0 < record.bytes_sent < len(DATA)


# -- concurrency statistics and per-connection throttle ------------------------------------------------------


def test_peaks_per_file_and_overall_and_clear_log(server: FaultServer) -> None:
    other = server.add_file("other-1.0-py3-none-any.whl", DATA, plan=FaultPlan(Throttle(SLOW)))
    requests: list[tuple[str, dict[str, str] | None]] = [(server.url_for(NAME), None)] * 3
    requests.append((other, None))
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(together, requests)
        wait_until(lambda: server.in_flight() == 4, what="four requests in flight")
        assert (server.in_flight(NAME), server.in_flight("other-1.0-py3-none-any.whl")) == (3, 1)
        outcomes = running.result()
    assert all(isinstance(o, httpx.Response) and o.content == DATA for o in outcomes)
    assert server.wait_idle()
    assert server.peak_in_flight(NAME) == 3
    assert server.peak_in_flight("other-1.0-py3-none-any.whl") == 1
    assert server.peak_in_flight() == 4
    assert server.peak_in_flight("never-asked.whl") == 0
    server.clear_log()
    assert (server.requests, server.peak_in_flight(), server.peak_in_flight(NAME)) == ([], 0, 0)


@pytest.mark.parametrize("connections", [2, 4])
def test_throttle_paces_each_connection_on_its_own(server: FaultServer, connections: int) -> None:
    """A CDN edge limits each TCP flow: n segments of a throttled file arrive n times as fast in all."""
    rate, segment = 200_000, 80_000  # each ranged response ~0.4 s
    data = os.urandom(segment * connections)
    server.add_file("big-1.0-py3-none-any.whl", data, plan=FaultPlan(Throttle(rate)))
    url = server.url_for("big-1.0-py3-none-any.whl")
    ranges = [(i * segment, (i + 1) * segment - 1) for i in range(connections)]
    outcomes = together([(url, {"Range": f"bytes={a}-{b}"}) for a, b in ranges])
    assert server.wait_idle()  # each response still sleeps out its last chunk's time after the client has it
    assert b"".join(o.content for o in outcomes if isinstance(o, httpx.Response)) == data
    records = server.requests_for("big-1.0-py3-none-any.whl")
    assert sorted(r.sent_range for r in records if r.sent_range) == ranges
    assert sorted(r.body_range for r in records if r.body_range) == ranges
    ends = []
    for r in records:
        assert r.ended is not None
        assert r.status == 206
        ends.append(r.ended)
        each = r.bytes_sent / (r.ended - r.started)
        assert 0.5 * rate < each <= 1.05 * rate, f"one connection got {each:.0f} B/s"
    assert server.peak_in_flight("big-1.0-py3-none-any.whl") == connections  # they did overlap
    # All of them together: one throttle shared by the connections could never give more than `rate`.
    total = len(data) / (max(ends) - min(r.started for r in records))
    low = max(1.5, 0.5 * connections) * rate
    assert low < total < 1.1 * connections * rate, f"{connections} connections got {total:.0f} B/s in all"


# -- symlinks in a served directory ---------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[FaultServer, Path, dict[str, bytes]]]:
    """A served directory with a real wheel, symlinks to wheels kept elsewhere, and a broken symlink."""
    store, root = tmp_path / "store", tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    store.mkdir()
    wheels = {}
    for project in ("plain", "linked", "relative", "inner", "secret"):
        name, data = build_wheel(project, "1.0", payload_size=30_000, seed=len(project))
        wheels[project] = data
        folder = {"plain": root, "secret": tmp_path}.get(project, store)
        (folder / name).write_bytes(data)
    (root / "linked-1.0-py3-none-any.whl").symlink_to(store / "linked-1.0-py3-none-any.whl")
    (root / "sub" / "relative-1.0-py3-none-any.whl").symlink_to("../../store/relative-1.0-py3-none-any.whl")
    (root / "broken-1.0-py3-none-any.whl").symlink_to(store / "gone-1.0-py3-none-any.whl")
    (root / "linkdir").symlink_to(store, target_is_directory=True)  # holds inner-1.0: not entered
    with FaultServer(directory=root) as s:
        yield s, root, wheels


def _listed(server: FaultServer) -> dict[str, str]:
    """filename -> sha256 from the PEP 691 pages, as a resolver sees them."""
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    projects = httpx.get(server.url + "/simple/", headers=accept).json()["projects"]
    found: dict[str, str] = {}
    for p in projects:
        page = httpx.get(f"{server.url}/simple/{p['name']}/", headers=accept).json()
        found |= {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}
    return found


def test_symlinked_wheels_are_listed_and_served(site: tuple[FaultServer, Path, dict[str, bytes]]) -> None:
    server, _, wheels = site
    listed = _listed(server)
    assert sorted(listed) == [f"{p}-1.0-py3-none-any.whl" for p in ("linked", "plain", "relative")]
    for project, path in [
        ("linked", "/linked-1.0-py3-none-any.whl"),
        ("relative", "/sub/relative-1.0-py3-none-any.whl"),
    ]:
        data = wheels[project]
        assert listed[f"{project}-1.0-py3-none-any.whl"] == hashlib.sha256(data).hexdigest()
        url = server.url + path
        head = httpx.head(url)
        full = httpx.get(url)
        assert (head.status_code, full.status_code, full.content) == (200, 200, data)
        assert head.headers["etag"] == full.headers["etag"]
        assert head.headers["content-length"] == str(len(data))
        part = httpx.get(url, headers={"Range": "bytes=100-199", "If-Range": full.headers["etag"]})
        assert (part.status_code, part.content) == (206, data[100:200])
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert 'href="linked/"' in httpx.get(server.url + "/simple/").text
    assert server.requests_for("linked-1.0-py3-none-any.whl")[-1].sent_range == (100, 199)


def test_broken_symlinks_and_symlinked_directories_are_neither_listed_nor_served(
    site: tuple[FaultServer, Path, dict[str, bytes]],
) -> None:
    server, root, wheels = site
    assert httpx.get(server.url + "/broken-1.0-py3-none-any.whl").status_code == 404
    assert httpx.head(server.url + "/broken-1.0-py3-none-any.whl").status_code == 404
    assert httpx.get(server.url + "/linkdir/inner-1.0-py3-none-any.whl").status_code == 404
    assert "broken" not in httpx.get(server.url + "/").text

    # A link that breaks after it was served is gone at once; mended, it is back with its numbering.
    link = root / "linked-1.0-py3-none-any.whl"
    target = link.resolve()
    assert httpx.get(server.url + "/linked-1.0-py3-none-any.whl").status_code == 200
    target.rename(target.with_suffix(".away"))
    assert httpx.get(server.url + "/linked-1.0-py3-none-any.whl").status_code == 404
    assert "linked-1.0-py3-none-any.whl" not in _listed(server)
    target.with_suffix(".away").rename(target)
    again = httpx.get(server.url + "/linked-1.0-py3-none-any.whl")
    assert again.content == wheels["linked"]
    assert [r.number for r in server.requests_for("linked-1.0-py3-none-any.whl")] == [1, 2]


def test_a_repointed_symlink_serves_the_new_target_with_a_new_etag(
    site: tuple[FaultServer, Path, dict[str, bytes]],
) -> None:
    server, root, wheels = site
    url = server.url + "/linked-1.0-py3-none-any.whl"
    before = httpx.get(url).headers["etag"]
    link = root / "linked-1.0-py3-none-any.whl"
    link.unlink()
    link.symlink_to(root / "plain-1.0-py3-none-any.whl")
    after = httpx.get(url)
    assert after.content == wheels["plain"]
    assert after.headers["etag"] != before


@pytest.mark.parametrize(
    "path",
    [
        "/../secret-1.0-py3-none-any.whl",
        "/%2e%2e/secret-1.0-py3-none-any.whl",
        "/..%2fsecret-1.0-py3-none-any.whl",
        "/%2E%2E%2Fsecret-1.0-py3-none-any.whl",
        "/sub/..%2F..%2Fsecret-1.0-py3-none-any.whl",
        "/sub/%2e%2e/%2e%2e/secret-1.0-py3-none-any.whl",
        "/sub/../plain-1.0-py3-none-any.whl",  # not an escape, but not a canonical name either
        "/./plain-1.0-py3-none-any.whl",
        "/plain-1.0-py3-none-any.whl%00",
        "/sub/",
    ],
)
def test_paths_escaping_the_directory_are_refused(
    site: tuple[FaultServer, Path, dict[str, bytes]], path: str
) -> None:
    server, _, _ = site
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path)  # http.client sends the path as given; httpx would normalize it
    response = conn.getresponse()
    assert (response.status, response.read()) == (404, b"404 Not Found\n")
    conn.close()
    assert server.requests[-1].name is None
    assert httpx.get(server.url + "/plain-1.0-py3-none-any.whl").status_code == 200  # still serving


# -- the CLI ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("4", ConnectionLimit(4)),
        ("2:429", ConnectionLimit(2, status=429)),
        ("2:503:1", ConnectionLimit(2, retry_after=1)),
        ("3:reset", ConnectionLimit(3, reset=True)),
    ],
)
def test_connection_limit_spec(text: str, limit: ConnectionLimit) -> None:
    assert parse_connection_limit(text) == limit
    assert parse_connection_limit(str(limit)) == limit


@pytest.mark.parametrize("bad", ["", "x", "0", "2:200", "2:reset:1", "2:503:1:1", "-1:429"])
def test_bad_connection_limit_specs_are_usage_errors(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="bad connection limit"):
        parse_connection_limit(bad)
    result = CliRunner().invoke(bed_cli.testbed, ["serve", str(tmp_path), "--max-connections", bad])
    assert result.exit_code == 2
    assert "--max-connections" in result.output


def test_cli_max_connections(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(DATA)
    cmd = [
        *_wheelstream(),
        *("testbed", "serve", str(tmp_path), "--port", "0"),
        *("--throttle", "20k", "--max-connections", "1:429:3"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip() + NAME
        with holding(url):
            second = get(url)
        assert isinstance(second, httpx.Response)
        assert (second.status_code, second.headers["retry-after"]) == (429, "3")

        def tail_served() -> bool:  # once the server has noticed that the held client hung up
            after = get(url, {"Range": "bytes=65000-"})
            return isinstance(after, httpx.Response) and after.content == DATA[65000:]

        wait_until(tail_served, timeout=5, what="a request to be admitted again")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert "connection limit: 1:429:3 per client address" in err
    assert f"GET /{NAME} -> 429 sent 22/22 [ConnectionLimit]" in err


def _wheelstream() -> list[str]:
    script = Path(sys.executable).with_name("wheelstream")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from wheelstream.cli import main; main()"]
