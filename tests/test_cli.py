"""The ``wheelstream`` command through a real subprocess against a real test-bed server on 127.0.0.1.

Every exit code of DESIGN §6, the one-line ``error:`` contract, ``-r`` files, ``--jobs`` overlap, index
lookups with a cache hit on rerun, and ``cache list``/``clean``.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Run, saved_journal, wait_until, ws, ws_env, ws_start
from pytest_httpserver import HTTPServer

import wheelstream
from fixtures.wellformed import make_wheel
from wheelstream.testing import (
    Corrupt,
    Cut,
    FaultPlan,
    FaultServer,
    Stall,
    Status,
    Throttle,
    build_wheel,
    since,
)

REAL_WHEELS = ROOT / "fixtures" / "wheels"
TLS = ROOT / "fixtures" / "tls"


def add(
    srv: FaultServer,
    name: str = "demo",
    version: str = "1.0",
    size: int = 64 * 1024,
    plan: FaultPlan | None = None,
) -> str:
    filename, data = build_wheel(name, version, payload_size=size)
    return srv.add_file(filename, data, plan=plan)


# -- 0 ---------------------------------------------------------------------------------------------------


def test_version_and_help(cache: Path) -> None:
    run = ws("--version", cache=cache)
    assert run.code == 0
    assert wheelstream.__version__ in run.out
    run = ws("install", "--help", cache=cache)
    assert run.code == 0
    assert "--target" in run.out
    assert "--max-unpacked-size" in run.out


def test_install_url_with_console_script(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    wheel = next(REAL_WHEELS.glob("wheel-*.whl"))
    url = server.add_file(wheel.name, wheel)
    target = tmp_path / "t"
    run = ws("install", url, "--target", str(target), cache=cache)
    assert run.code == 0, run.err
    assert (target / "bin" / "wheel").is_file()
    assert "Installed 1 wheel in" in run.err
    assert "fetched" in run.err
    # the same command again: the server says the file has not changed (304), the wheel comes from the cache
    before = len(server.requests)
    run = ws("install", url, "--target", str(tmp_path / "t2"), cache=cache)
    assert run.code == 0
    assert "from cache" in run.err
    [asked] = server.requests[before:]
    assert (asked.status, asked.bytes_sent) == (304, 0)
    assert asked.headers["if-none-match"].startswith('"')


def test_existing_target_items_are_skipped_with_a_warning(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    url = add(server)
    target = tmp_path / "t"
    assert ws("install", url, "-t", str(target), cache=cache).code == 0
    run = ws("install", url, "-t", str(target), cache=cache)
    assert run.code == 0
    assert "warning:" in run.err
    run = ws("install", url, "-t", str(target), "--upgrade", cache=cache)
    assert run.code == 0
    assert "warning:" not in run.err


# -- 1 ---------------------------------------------------------------------------------------------------


def test_bad_archive_exits_1(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    filename, data = build_wheel("demo", "1.0", payload_size=64 * 1024)
    url = server.add_file(filename, data, plan=FaultPlan(Corrupt(offset=len(data) // 2)))
    run = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert run.error_line().startswith(f"error: {filename}: ")
    assert not (tmp_path / "t").exists()


def test_hash_mismatch_exits_1(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    url = add(server)
    run = ws("install", url + "#sha256=" + "0" * 64, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert "sha256 is" in run.error_line()
    assert run.error_line().startswith("error: demo-1.0-py3-none-any.whl: ")
    run = ws("install", url, "--hash", "sha256:" + "1" * 64, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert "expected 1111" in run.error_line()
    # pip reads the pin anywhere in the fragment: so does the install, and checks it
    run = ws("install", url + "#egg=demo&sha256=" + "2" * 64, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert "expected 2222" in run.error_line()
    assert not (tmp_path / "t").exists()


def test_record_mismatch_exits_1(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    data = make_wheel({"demo/__init__.py": b"x = 1\n"}, record=b"demo/__init__.py,sha256=AAAA,6\n")
    url = server.add_file("demo-1.0-py3-none-any.whl", data)
    run = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert "RECORD" in run.error_line()


def test_incompatible_tags_exit_1(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    data = make_wheel({"demo/__init__.py": b""}, tag="cp27-cp27mu-manylinux1_x86_64")
    url = server.add_file("demo-1.0-cp27-cp27mu-manylinux1_x86_64.whl", data)
    run = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert run.error_line().startswith("error: ")
    assert server.requests_for("demo-1.0-cp27-cp27mu-manylinux1_x86_64.whl") == []  # failed before fetching


# -- 2 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("install", "x.whl"),  # --target missing (click)
        ("install", "--bogus", "-t", "T"),  # unknown option (click)
        ("install", "--jobs", "0", "x.whl", "-t", "T"),
        ("install", "not a source at all", "-t", "T"),
        ("install", "demo>=1.0", "-t", "T"),  # ranges need a resolver
        ("install", "a.whl", "--hash", "md5:abc", "-t", "T"),
        ("install", "a.whl", "b.whl", "--hash", "sha256:" + "0" * 64, "-t", "T"),
        ("install", "-t", "T"),  # nothing to do
        ("install", "-r", "missing.txt", "-t", "T"),
        ("install", "x.whl", "--max-unpacked-size", "lots", "-t", "T"),
        ("cache", "frobnicate"),
        # URLs the download would trip over later (a traceback, or a retry that could never succeed)
        ("install", "http://[::1/demo-1.0-py3-none-any.whl", "-t", "T"),
        ("install", "http://u:pw@127.0.0.1:port/demo-1.0-py3-none-any.whl", "-t", "T"),
        ("install", "http://127.0.0.1:99999/demo-1.0-py3-none-any.whl", "-t", "T"),
        ("install", "http:///demo-1.0-py3-none-any.whl", "-t", "T"),
        # a pin that cannot be checked is refused, not dropped
        ("install", "http://127.0.0.1:1/demo-1.0-py3-none-any.whl#sha256=abc", "-t", "T"),
        ("install", "http://127.0.0.1:1/demo-1.0-py3-none-any.whl#egg=demo&sha512=" + "0" * 127, "-t", "T"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], cache: Path, tmp_path: Path) -> None:
    run = ws(*args, cache=cache, cwd=tmp_path)
    assert run.code == 2, (run.out, run.err)
    assert "Traceback" not in run.err
    assert any(line.startswith(("error: ", "Error: ")) for line in run.err.splitlines()), run.err
    assert "pw" not in run.err
    assert not (tmp_path / "T").exists()


def test_a_source_that_is_no_file_is_named_for_what_it_is(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "adir-1.0-py3-none-any.whl").mkdir()
    run = ws("install", "adir-1.0-py3-none-any.whl", "-t", "T", cache=cache, cwd=tmp_path)
    assert run.code == 2
    assert "not a regular file: adir-1.0-py3-none-any.whl" in run.error_line()
    run = ws("install", "gone-1.0-py3-none-any.whl", "-t", "T", cache=cache, cwd=tmp_path)
    assert run.code == 2
    assert "no such file: gone-1.0-py3-none-any.whl" in run.error_line()


def test_unsupported_requirements_option_exits_2(cache: Path, tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("--no-binary :all:\n")
    run = ws("install", "-r", str(req), "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2
    assert f"{req}:1: unsupported option" in run.error_line()


# -- 3 ---------------------------------------------------------------------------------------------------


def _gave_up(server: FaultServer, cache: Path, tmp_path: Path) -> tuple[str, str, Run]:
    filename, data = build_wheel("demo", "1.0", payload_size=512 * 1024)
    plan = FaultPlan(Cut(percent=50, requests=1), Status(503, requests=since(2)))
    url = server.add_file(filename, data, plan=plan)
    run = ws("install", url, "-t", str(tmp_path / "t"), "--retries", "1", cache=cache)
    return filename, url, run


def test_network_gave_up_exits_3_keeps_the_partial_and_the_rerun_resumes(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    filename, url, run = _gave_up(server, cache, tmp_path)
    assert run.code == 3, run.err
    line = run.error_line()
    assert line.startswith(f"error: {filename}: gave up")
    assert "run the same command again" in line
    listing = ws("cache", "list", cache=cache)
    assert "partial downloads: 1" in listing.out
    assert "50%" in listing.out
    assert "ago" in listing.out
    sent_before = server.bytes_sent(filename)
    server.set_plan(filename, FaultPlan())
    rerun = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert rerun.code == 0, rerun.err
    assert "resumed at" in rerun.err
    assert "(1 resumed)" in rerun.err
    last = server.requests_for(filename)[-1]
    assert last.range is not None
    assert last.status == 206
    assert server.bytes_sent(filename) - sent_before < server.version(filename).size * 0.6


# -- 130 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_exits_130_keeps_the_partial_and_the_rerun_resumes(
    sig: signal.Signals, server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    filename, data = build_wheel("demo", "1.0", payload_size=3 * 1024 * 1024)
    # A stall, not a throttle: a starved throttled server catches up in one burst and the download could end
    # before the signal lands. The worker notices the signal with the first bytes after the stall.
    url = server.add_file(filename, data, plan=FaultPlan(Stall(at=1024 * 1024, seconds=2)))
    proc = ws_start("install", url, "-t", str(tmp_path / "t"), cache=cache)

    def client_holds() -> int:  # what the client wrote to its partial file, not what the server pushed
        return (
            sum(p.stat().st_size for p in (cache / "partial").glob("*.whl.part"))
            if (cache / "partial").is_dir()
            else 0
        )

    wait_until(lambda: client_holds() >= 1024 * 1024, timeout=20, what="the first MiB in the partial file")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    run = Run(proc.returncode, out, err)
    assert run.code == 130, err
    line = run.error_line()
    requests = [r.summary() for r in server.requests_for(filename)]
    assert line.startswith(f"error: {filename}: interrupted at "), (err, requests)
    assert " MB of 3.1 MB — run the same command again" in line, (err, requests)  # 3 MiB of payload
    assert not (tmp_path / "t").exists()
    assert "partial downloads: 1" in ws("cache", "list", cache=cache).out
    server.set_plan(filename, FaultPlan())
    rerun = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert rerun.code == 0, rerun.err
    assert "resumed at" in rerun.err
    assert server.requests_for(filename)[-1].range is not None


def _ctrl_c_promptly(proc: subprocess.Popen[str]) -> Run:
    """Ctrl-C, then exit 130 within seconds — not when a stalled server or the read timeout lets go."""
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - sent < 10, err
    assert proc.returncode == 130, err
    return Run(proc.returncode, out, err)


def test_ctrl_c_in_a_stall_exits_at_once_and_the_rerun_resumes(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """The download thread is blocked in ``recv`` while the server says nothing; Ctrl-C must not wait for the
    server (or the 30 s read timeout): the socket is shut, the checkpoint written, exit 130."""
    filename, data = build_wheel(
        "demo", "1.0", files={f"demo/m{i}.bin": os.urandom(64 * 1024) for i in range(24)}
    )
    url = server.add_file(filename, data, plan=FaultPlan(Stall(at=1200 * 1024, seconds=120)))
    proc = ws_start("install", url, "-t", str(tmp_path / "t"), cache=cache)
    # In the stall, and blocked in recv: the idle checkpoint (0.5 s without data) is in the journal header.
    wait_until(
        lambda: (saved_journal(cache, url) or {}).get("checkpoint", 0) > 0,
        timeout=20,
        what="the idle checkpoint in the stall",
    )
    run = _ctrl_c_promptly(proc)
    line = run.error_line()
    assert line.startswith(f"error: {filename}: interrupted at ")
    assert "run the same command again" in line
    server.set_plan(filename, FaultPlan())
    rerun = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert rerun.code == 0, rerun.err
    assert "resumed at" in rerun.err
    assert server.requests_for(filename)[-1].range is not None
    said = line.removeprefix(f"error: {filename}: interrupted at ").split(" of ")[0]
    assert f"resumed at {said} " in rerun.err, (line, rerun.err)  # what Ctrl-C said is where it resumes


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_ctrl_c_while_a_server_never_answers_exits_at_once(scheme: str, cache: Path, tmp_path: Path) -> None:
    """Accepted, and not a byte of response (nor of a TLS handshake): the request's socket is known from the
    connect on, so Ctrl-C does not wait for the read timeout either."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}/demo-1.0-py3-none-any.whl"
        proc = ws_start("install", url, "-t", str(tmp_path / "t"), cache=cache)
        silent.settimeout(20)
        held, _ = silent.accept()
        with held:
            held.settimeout(20)
            assert held.recv(1, socket.MSG_PEEK)  # the request (or TLS hello) is in; nothing will answer it
            run = _ctrl_c_promptly(proc)
    assert run.error_line().startswith("error: demo-1.0-py3-none-any.whl: interrupted"), run.err
    assert not (tmp_path / "t").exists()


def _read_request(conn: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            raise AssertionError(f"the client closed the connection; it had sent {head!r}")
        head += chunk
    return head


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_ctrl_c_while_a_pooled_connection_waits_for_headers_exits_at_once(
    scheme: str, cache: Path, tmp_path: Path
) -> None:
    """The index page and the wheel are on one host, so the wheel's request goes out on the index page's
    keep-alive connection, from the pool — no new connection, so no connect trace — and the server never
    answers it. Ctrl-C must not wait for the read timeout: our client's pools tell the download which
    connection its request was written to."""
    listener = socket.create_server(("127.0.0.1", 0))
    index = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/simple/"
    page = (
        b'<html><body><a href="/files/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a></body></html>'
    )
    with listener:
        proc = ws_start(
            "install",
            "demo==1.0",
            "--index-url",
            index,
            "-t",
            str(tmp_path / "t"),
            cache=cache,
            env={"SSL_CERT_FILE": str(TLS / "localhost.pem")},
        )
        try:
            listener.settimeout(20)
            conn, _ = listener.accept()
            if scheme == "https":
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
                conn = context.wrap_socket(conn, server_side=True)
            with conn:
                conn.settimeout(20)
                assert _read_request(conn).startswith(b"GET /simple/demo/ ")
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(page), page)
                )
                assert _read_request(conn).startswith(b"GET /files/demo-1.0-py3-none-any.whl ")
                listener.setblocking(False)
                with pytest.raises(BlockingIOError):
                    listener.accept()  # no second connection: the wheel's request is on the pooled one
                run = _ctrl_c_promptly(proc)  # the whole request is in: the client waits for the headers
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # The wheel is named once its download has reported anything; no header came, so on a loaded machine the
    # Ctrl-C can win that race, and nothing was fetched: "before any download started" is then the truth.
    line = run.error_line()
    assert line.startswith(
        ("error: demo-1.0-py3-none-any.whl: interrupted", "error: interrupted before any download started")
    ), run.err
    assert not (tmp_path / "t").exists()


# -- a full disk ------------------------------------------------------------------------------------------
# RLIMIT_FSIZE makes the kernel refuse (EFBIG) any write past the limit, to any file the command writes: a
# real failing write through real files, without root or a small file system.


def ws_limited(*args: str, cache: Path, file_size_limit: int) -> Run:
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return ws(*args, cache=cache, preexec_fn=limit)


def _full_disk(server: FaultServer, cache: Path, tmp_path: Path, limit: int) -> tuple[str, str, int, str]:
    """An install whose files may not grow past ``limit`` (a 3 MB entry): file name, URL, size, error line."""
    filename, data = build_wheel("demo", "1.0", files={"demo/zeros.bin": bytes(3 << 20)})
    url = server.add_file(filename, data)
    run = ws_limited("install", url, "-t", str(tmp_path / "t"), cache=cache, file_size_limit=limit)
    assert run.code == 1, run.err
    line = run.error_line()
    assert line.startswith(f"error: {filename}: cannot write"), line
    assert not (tmp_path / "t").exists()
    return filename, url, len(data), line


def test_a_full_disk_before_any_checkpoint_says_so_and_leaves_nothing(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """The first block cannot be written (the first checkpoint comes after it). Nothing is resumable yet,
    so nothing may be left taking space on what is probably a full disk."""
    _filename, _url, _size, line = _full_disk(server, cache, tmp_path, 512 << 10)
    assert "File too large; nothing kept" in line, line
    leftovers = [p for p in (cache / "partial").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    assert list((cache / "staging").iterdir()) == []


def test_a_full_disk_after_the_first_checkpoint_keeps_it_and_the_rerun_resumes(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """The first checkpoint comes after one block: a disk that fills up later keeps what it made durable
    (and what the trail proves past it), says how much, and the same command resumes from there."""
    filename, url, size, line = _full_disk(server, cache, tmp_path, 2 << 20)
    assert "kept — run the same command again to resume once that is fixed" in line, line
    assert server.wait_idle(10)
    sent = server.bytes_sent(filename)
    run = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    assert server.requests_for(filename)[-1].range is not None
    assert server.bytes_sent(filename) - sent <= size - (1 << 20)  # a block at least was not fetched again


def test_a_full_disk_while_unpacking_a_local_wheel_says_so_and_leaves_nothing(
    cache: Path, tmp_path: Path
) -> None:
    filename, data = build_wheel("demo", "1.0", files={"demo/zeros.bin": bytes(3 << 20)})
    (tmp_path / filename).write_bytes(data)
    run = ws_limited(
        "install", str(tmp_path / filename), "-t", str(tmp_path / "t"), cache=cache, file_size_limit=2 << 20
    )
    assert run.code == 1, run.err
    assert run.error_line() == f"error: {filename}: cannot write in {cache}: File too large", run.err
    assert not (tmp_path / "t").exists()
    assert list((cache / "staging").iterdir()) == []


def test_a_full_disk_in_one_of_several_downloads_names_that_wheel(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """Several wheels download in worker processes: the DiskError crosses the process boundary whole."""
    small = add(server, "alpha")
    filename, data = build_wheel("beta", "1.0", files={"beta/zeros.bin": bytes(3 << 20)})
    big = server.add_file(filename, data)
    run = ws_limited("install", small, big, "-t", str(tmp_path / "t"), cache=cache, file_size_limit=512 << 10)
    assert run.code == 1, run.err
    line = run.error_line()
    assert line.startswith(f"error: {filename}: cannot write in "), line
    assert "File too large; nothing kept" in line, line
    assert not (tmp_path / "t").exists()


def test_an_index_cache_that_cannot_be_written_is_a_warning_not_a_traceback(
    httpserver: HTTPServer, cache: Path, tmp_path: Path
) -> None:
    """hishel serves the page uncached when its SQLite store fails, and logs the failure with a traceback,
    which Python's last-resort handler printed: one warning line with the cause instead."""
    filename, data = build_wheel("demo", "1.0", payload_size=1000)  # downloads and unpacks under the limit
    page = f'<a href="/files/{filename}">{filename}</a>'
    # an ETag: a page worth storing (one with no validator and no lifetime is never stored)
    httpserver.expect_request("/simple/demo/").respond_with_data(
        page, content_type="text/html", headers={"ETag": '"1"'}
    )
    httpserver.expect_request(f"/files/{filename}").respond_with_data(data)
    run = ws_limited(
        "install",
        "demo==1.0",
        "--index-url",
        httpserver.url_for("/simple/"),
        "-t",
        str(tmp_path / "t"),
        cache=cache,
        file_size_limit=8192,
    )
    assert run.code == 0, run.err
    assert "Traceback" not in run.err, run.err
    assert (
        "warning: hishel: could not store entry, serving the response uncached (OperationalError:" in run.err
    )
    assert (tmp_path / "t" / "demo").is_dir()


def test_a_full_disk_keeps_the_last_checkpoint_and_the_rerun_resumes(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """The partial file hits the limit at 2.5 MB; checkpoints were taken every second (the server sends
    1 MB/s), so the error says what is kept, and the same command without the limit resumes there."""
    files = {f"demo/m{i:02}.bin": os.urandom(64 * 1024) for i in range(64)}
    filename, data = build_wheel("demo", "1.0", files=files)
    url = server.add_file(filename, data, plan=FaultPlan(Throttle(bytes_per_second=1 << 20)))
    run = ws_limited("install", url, "-t", str(tmp_path / "t"), cache=cache, file_size_limit=5 << 19)
    assert run.code == 1, run.err
    line = run.error_line()
    assert line.startswith(f"error: {filename}: cannot write"), line
    assert "File too large;" in line, line
    assert "kept — run the same command again to resume" in line, line
    assert "nothing kept" not in line, line
    assert not (tmp_path / "t").exists()
    server.set_plan(filename, FaultPlan())
    rerun = ws("install", url, "-t", str(tmp_path / "t"), cache=cache)
    assert rerun.code == 0, rerun.err
    assert "resumed at" in rerun.err
    ranged = server.requests_for(filename)[-1].range
    assert ranged is not None
    assert int(ranged.removeprefix("bytes=").rstrip("-")) >= 1 << 20
    for name, content in files.items():
        assert (tmp_path / "t" / name).read_bytes() == content


def test_a_full_target_says_so_and_leaves_the_target_unchanged(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """The unpacked wheel is in the cache (a copy install keeps it); copying its 3 MB file into the target
    fails. One line naming the wheel and the target; the target keeps exactly what it had."""
    filename, data = build_wheel(
        "demo", "1.0", files={"demo/zeros.bin": bytes(3 << 20), "demo/a.py": b"x = 1\n"}
    )
    url = server.add_file(filename, data)
    assert ws("install", url, "-t", str(tmp_path / "first"), "--link-mode", "copy", cache=cache).code == 0
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    run = ws_limited(
        "install", url, "-t", str(target), "--link-mode", "copy", cache=cache, file_size_limit=2 << 20
    )
    assert run.code == 1, run.err
    line = run.error_line()
    assert line.startswith(f"error: {filename}: cannot install into {target}: File too large"), line
    assert line.endswith("the target is unchanged"), line
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert server.bytes_sent(filename) == len(data)  # the second install fetched nothing (it asked: 304)


# -- -r, --jobs, the index ---------------------------------------------------------------------------------


def test_requirements_file_with_mixed_sources(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    url_a = add(server, "alpha")
    add(server, "beta", "2.0")
    alpha_sha = server.version("alpha-1.0-py3-none-any.whl").sha256
    beta_sha = server.version("beta-2.0-py3-none-any.whl").sha256
    local = tmp_path / "reqs" / "gamma-3.0-py3-none-any.whl"
    local.parent.mkdir()
    local.write_bytes(build_wheel("gamma", "3.0", payload_size=1024)[1])
    gamma_sha = hashlib.sha256(local.read_bytes()).hexdigest()
    req = local.parent / "requirements.txt"
    req.write_text(
        "# a comment\n"
        f"--index-url {server.url}/simple/\n"
        f"{url_a}#sha256={alpha_sha}\n"
        "\n"
        f"gamma-3.0-py3-none-any.whl --hash=sha256:{gamma_sha}  # relative to this file\n"
        "beta==2.0 \\\n"
        f"    --hash=sha256:{beta_sha}\n"
        'nothere==1.0 ; python_version < "3"\n'
    )
    target = tmp_path / "t"
    run = ws("install", "-r", str(req), "-t", str(target), cache=cache)
    assert run.code == 0, run.err
    for name in ("alpha", "beta", "gamma"):
        assert (target / name / "__init__.py").is_file()
    assert "Installed 3 wheels" in run.err
    assert any(r.path == "/simple/beta/" for r in server.requests)


def test_one_hash_in_a_file_asks_one_of_every_source_as_pip_does(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """pip's hash-checking mode: a file that pins some wheels and not another installed that one unchecked."""
    url_a = add(server, "alpha")
    add(server, "beta", "2.0")
    beta_sha = server.version("beta-2.0-py3-none-any.whl").sha256
    req = tmp_path / "r.txt"
    req.write_text(f"beta==2.0 --hash=sha256:{beta_sha}\n{url_a}\n")
    run = ws("install", "-r", str(req), "-i", f"{server.url}/simple/", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2, run.err
    assert "every source needs one (pip's hash-checking mode); none for: " + url_a in run.error_line(
        alone=True
    )
    assert server.requests == []
    alpha_sha = server.version("alpha-1.0-py3-none-any.whl").sha256
    req.write_text(f"beta==2.0 --hash=sha256:{beta_sha}\n{url_a}#sha256={alpha_sha}\n")  # a fragment counts
    run = ws("install", "-r", str(req), "-i", f"{server.url}/simple/", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err


def test_a_pin_in_a_file_is_not_widened_by_the_command_line(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    add(server, "beta", "2.0")
    beta_sha = server.version("beta-2.0-py3-none-any.whl").sha256
    req = tmp_path / "r.txt"
    req.write_text(f"beta==2.0 --hash=sha256:{'0' * 64}\n")
    run = ws(
        "install",
        "-r",
        str(req),
        "beta==2.0",
        "--hash",
        f"sha256:{beta_sha}",
        "-i",
        f"{server.url}/simple/",
        "-t",
        str(tmp_path / "t"),
        cache=cache,
    )
    assert run.code == 2, run.err
    assert (
        "beta==2.0: its --hash values and those given for it before have none in common" in run.error_line()
    )
    assert not (tmp_path / "t").exists()


def test_one_wheel_named_two_ways_is_installed_once(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    """``beta==2.0``, ``Beta==2.0.0`` and the URL the index gives for it are one wheel: pip installs it once;
    this refused "… are both beta"."""
    url = add(server, "beta", "2.0")
    req = tmp_path / "r.txt"
    req.write_text("beta==2.0\nBeta==2.0.0\n")
    run = ws(
        "install", "-r", str(req), url, "-i", f"{server.url}/simple/", "-t", str(tmp_path / "t"), cache=cache
    )
    assert run.code == 0, run.err
    assert "Installed 1 wheel" in run.err
    assert len(server.requests_for("beta-2.0-py3-none-any.whl")) == 1


def test_a_requirements_file_that_lists_nothing_here_installs_nothing_and_succeeds(
    cache: Path, tmp_path: Path
) -> None:
    """pip exits 0 for an empty file, or one whose every line's marker is false; this said "nothing to do:
    give at least one SRC or -r FILE" (exit 2) though -r FILE was given."""
    req = tmp_path / "r.txt"
    req.write_text('# nothing yet\nold==1.0 ; python_version < "3"\n')
    run = ws("install", "-r", str(req), "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err


def test_a_marker_on_the_command_line_is_evaluated_as_pip_does(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    add(server, "beta", "2.0")
    run = ws(
        "install",
        'beta==2.0 ; python_version >= "3"',
        'old==1.0 ; python_version < "3"',
        "-i",
        f"{server.url}/simple/",
        "-t",
        str(tmp_path / "t"),
        cache=cache,
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "beta" / "__init__.py").is_file()


def test_requirements_hash_mismatch_for_an_index_pin_exits_1(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    add(server, "beta", "2.0")
    req = tmp_path / "r.txt"
    req.write_text(f"beta==2.0 --hash=sha256:{'a' * 64} --hash=sha256:{'b' * 64}\n")
    run = ws("install", "-r", str(req), "-i", f"{server.url}/simple/", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert "none of the 2 allowed hashes" in run.error_line()


@pytest.mark.parametrize("where", ["index", "fragment"])
def test_one_hash_that_is_not_the_named_sha256_downloads_nothing(
    server: FaultServer, cache: Path, tmp_path: Path, where: str
) -> None:
    """The index's listing or the URL's #sha256= names the file: one --hash that is not it cannot match, so
    the wheel is not downloaded to find that out (with two hashes this was already so)."""
    url = add(server, "beta", "2.0")
    sha = server.version("beta-2.0-py3-none-any.whl").sha256
    source = "beta==2.0" if where == "index" else f"{url}#sha256={sha}"
    req = tmp_path / "r.txt"
    req.write_text(f"{source} --hash=sha256:{'a' * 64}\n")
    run = ws("install", "-r", str(req), "-i", f"{server.url}/simple/", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1, run.err
    line = run.error_line()
    assert line.startswith("error: beta-2.0-py3-none-any.whl: the ")
    assert f"sha256 {sha} is not the allowed hash; nothing was downloaded" in line
    assert server.requests_for("beta-2.0-py3-none-any.whl") == []


@pytest.mark.parametrize(
    ("fragment", "cause"),
    [
        ("#sha256=abc", "#sha256= must be 64 hex digits, not 'abc'"),
        ("#md5=" + "0" * 31, "#md5= must be 32 hex digits, not '0000000000000000000000000000000'"),
    ],
)
def test_a_bad_fragment_names_the_wheel_file(
    server: FaultServer, cache: Path, tmp_path: Path, fragment: str, cause: str
) -> None:
    """The contract's ``error: <wheel>: <cause>``: the file name, not the URL."""
    url = add(server)
    run = ws("install", url + fragment, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2, run.err
    assert run.error_line() == f"error: demo-1.0-py3-none-any.whl: {cause}"
    assert not server.requests


def test_several_hashes_on_a_url_line_allow_any_of_them(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """pip-compile writes one --hash per platform's wheel; the URL names no sha256: the wheel must be one."""
    url = add(server)
    sha = server.version("demo-1.0-py3-none-any.whl").sha256
    req = tmp_path / "r.txt"
    req.write_text(f"{url} --hash=sha256:{'a' * 64} --hash=sha256:{sha}\n")
    run = ws("install", "-r", str(req), "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    req.write_text(f"{url} --hash=sha256:{'a' * 64} --hash=sha256:{'b' * 64}\n")
    again = ws("install", "-r", str(req), "-t", str(tmp_path / "t2"), cache=cache)
    assert again.code == 1
    assert again.error_line() == (
        f"error: demo-1.0-py3-none-any.whl: sha256 is {sha}, none of the 2 allowed hashes; refused"
    )
    assert not (tmp_path / "t2").exists()


def test_several_hashes_for_an_index_pin_without_listed_hashes(
    httpserver: HTTPServer, cache: Path, tmp_path: Path
) -> None:
    filename, data = build_wheel("beta", "2.0")
    sha = hashlib.sha256(data).hexdigest()
    page = f'<a href="/files/{filename}">{filename}</a>'  # no #sha256= on the link
    httpserver.expect_request("/simple/beta/").respond_with_data(page, content_type="text/html")
    httpserver.expect_request(f"/files/{filename}").respond_with_data(data)
    req = tmp_path / "r.txt"
    req.write_text(f"beta==2.0 --hash=sha256:{sha} --hash=sha256:{'b' * 64}\n")
    run = ws(
        "install",
        "-r",
        str(req),
        "-i",
        httpserver.url_for("/simple/"),
        "-t",
        str(tmp_path / "t"),
        cache=cache,
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "beta" / "__init__.py").is_file()


def test_an_allowed_hash_chooses_the_wheel_among_those_the_index_lists(
    httpserver: HTTPServer, cache: Path, tmp_path: Path
) -> None:
    """Only the pure wheel's hash is allowed: that file is taken, though the platform one has a better tag (pip's
    ``filter_unallowed_hashes``)."""
    pure_name, pure = build_wheel("beta", "2.0")
    platform_name = "beta-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    pure_sha = hashlib.sha256(pure).hexdigest()
    page = (
        f'<a href="/files/{platform_name}#sha256={"c" * 64}">{platform_name}</a>'
        f'<a href="/files/{pure_name}#sha256={pure_sha}">{pure_name}</a>'
    )
    httpserver.expect_request("/simple/beta/").respond_with_data(page, content_type="text/html")
    httpserver.expect_request(f"/files/{pure_name}").respond_with_data(pure)
    run = ws(
        "install", "beta==2.0", "--hash", f"sha256:{pure_sha}", "-i", httpserver.url_for("/simple/"),
        "-t", str(tmp_path / "t"), "--python", sys.executable, cache=cache,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert [entry[0].path for entry in httpserver.log] == ["/simple/beta/", f"/files/{pure_name}"]


def test_jobs_download_in_parallel(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    urls = [add(server, name, size=400 * 1024, plan=FaultPlan(Throttle(1024 * 1024))) for name in "abc"]
    run = ws("install", *urls, "--jobs", "3", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    gets = [r for r in server.requests if r.name and r.method == "GET"]
    assert len(gets) == 3
    assert max(r.started for r in gets) < min(r.ended for r in gets if r.ended), [
        (r.name, r.started, r.ended) for r in gets
    ]


def test_index_page_without_validators_is_asked_for_again_on_rerun(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    add(server, "beta", "2.0")
    index = f"{server.url}/simple/"
    run = ws("install", "beta==2.0", "-i", index, "-t", str(tmp_path / "t1"), cache=cache)
    assert run.code == 0, run.err
    pages = [r for r in server.requests if r.path.startswith("/simple/")]
    assert len(pages) == 1
    assert "application/vnd.pypi.simple.v1+json" in pages[0].headers["accept"]
    run = ws("install", "beta==2.0", "-i", index, "-t", str(tmp_path / "t2"), cache=cache)
    assert run.code == 0, run.err
    again = [r for r in server.requests if r.path.startswith("/simple/")][1:]
    # the test bed sends neither validators nor a lifetime: nothing could tell a kept page stale (a file
    # republished under its name, with a new hash), so the page is fetched again, as pip fetches it
    assert [(r.status, "if-none-match" in r.headers) for r in again] == [(200, False)], [
        r.summary() for r in again
    ]


def test_unknown_version_on_the_index_exits_2(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    add(server, "beta", "2.0")
    run = ws("install", "beta==9.9", "-i", f"{server.url}/simple/", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2
    assert "error: beta==9.9: no wheel for version 9.9" in run.error_line()


def test_download_command_prints_paths(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    url = add(server)
    run = ws("download", url, "-d", str(tmp_path / "d"), cache=cache)
    assert run.code == 0, run.err
    path = Path(run.out.strip())
    assert path == tmp_path / "d" / "demo-1.0-py3-none-any.whl"
    assert path.is_file()
    assert "Downloaded 1 wheel" in run.err


def test_download_leaves_a_wheelhouse_file_and_no_unpacked_copy(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """pip download writes a file of the umask's mode (a wheelhouse is often served to others); the tree
    unpacked to verify the wheel is not kept beside its file, doubling the cache."""
    url = add(server)
    old = os.umask(0o022)
    try:
        run = ws("download", url, "-d", str(tmp_path / "d"), cache=cache)
    finally:
        os.umask(old)
    assert run.code == 0, run.err
    assert stat.S_IMODE((tmp_path / "d" / "demo-1.0-py3-none-any.whl").stat().st_mode) == 0o644
    wheels = cache / "wheels"
    assert [p.suffix for p in wheels.iterdir()] == [".whl"], sorted(p.name for p in wheels.iterdir())
    assert list((cache / "claimed").iterdir()) == []
    # the same for a wheel already in the directory (checked whole again, not unpacked into the cache)
    assert ws("download", url, "-d", str(tmp_path / "d"), cache=cache).code == 0
    assert [p.suffix for p in wheels.iterdir()] == [".whl"]


def test_a_cached_unpacked_wheel_is_held_to_this_commands_limits(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """--max-unpacked-size and --max-entries refuse an archive before it fills a disk; a copy unpacked into
    the cache by an earlier command under wider limits is refused the same way, not installed from there."""
    url = add(server, size=200 * 1024)
    assert ws("install", url, "-t", str(tmp_path / "a"), "--link-mode", "copy", cache=cache).code == 0
    for option, value, what in (
        ("--max-unpacked-size", "100K", "byte limit"),
        ("--max-entries", "2", "entry limit"),
    ):
        run = ws("install", url, "-t", str(tmp_path / "b"), "--link-mode", "copy", option, value, cache=cache)
        assert run.code == 1, run.err
        line = run.error_line()
        assert line.startswith("error: demo-1.0-py3-none-any.whl: archive "), line
        assert what in line, line
        assert not (tmp_path / "b").exists()


def test_two_wheels_of_one_distribution_are_refused_before_anything_is_fetched(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """pip refuses two versions of one distribution (ResolutionImpossible); installing both would leave two
    ``.dist-info`` directories and mixed files."""
    one, two = add(server, "demo", "1.0"), add(server, "demo", "2.0")
    run = ws("install", one, two, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line() == (
        "error: demo-2.0-py3-none-any.whl: demo-1.0-py3-none-any.whl and demo-2.0-py3-none-any.whl are both "
        "demo: an install takes one wheel of a distribution"
    )
    assert not server.requests
    assert not (tmp_path / "t").exists()
    mirror = server.add_file("mirror/demo-1.0-py3-none-any.whl", build_wheel("demo", "1.0")[1])
    run = ws("install", one, mirror, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 1
    assert run.error_line().endswith(
        f"demo-1.0-py3-none-any.whl from {one} and from {mirror} are both demo: an install takes one wheel "
        "of a distribution"
    )
    assert not server.requests


def test_a_pin_and_a_wheel_of_its_version_named_outright_install_that_wheel_once(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``./demo-1.0….whl demo==1.0`` was refused as two wheels of one distribution; pip's resolver takes the file
    it is given, which satisfies the pin. The pin's ``--hash`` holds for that file; another version is refused."""
    filename, data = build_wheel("demo", "1.0", payload_size=4096)
    server.add_file(filename, data)
    local = tmp_path / filename
    local.write_bytes(bytes(data))
    index = f"{server.url}/simple/"
    run = ws("install", str(local), "demo==1.0", "-i", index, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    assert "Installed 1 wheel " in run.err
    assert server.requests == []  # nor the index: pip takes the file it is given (the index may not list it)
    req = tmp_path / "pinned.txt"
    req.write_text(f"{local} --hash=sha256:{hashlib.sha256(bytes(data)).hexdigest()}\n")
    req.write_text(req.read_text() + f"demo==1.0 --hash=sha256:{hashlib.sha256(bytes(data)).hexdigest()}\n")
    run = ws("install", "-r", str(req), "-i", index, "-t", str(tmp_path / "t2"), cache=cache)
    assert run.code == 0, run.err  # the pin's hash is the named file's: it was "not the index's" before
    assert server.requests == []
    direct = (tmp_path / "t" / "demo-1.0.dist-info" / "direct_url.json").read_text()
    assert local.as_uri() in direct
    served = hashlib.sha256(data).hexdigest()
    rebuilt = tmp_path / "rebuilt" / filename  # another build of demo 1.0: not what the pin's hash allows
    rebuilt.parent.mkdir()
    rebuilt.write_bytes(bytes(build_wheel("demo", "1.0", payload_size=5000)[1]))
    local = rebuilt
    mine = hashlib.sha256(rebuilt.read_bytes()).hexdigest()
    req = tmp_path / "req.txt"
    req.write_text(f"{rebuilt} --hash=sha256:{mine}\ndemo==1.0 --hash=sha256:{served}\n")
    run = ws("install", "-r", str(req), "-i", index, "-t", str(tmp_path / "u"), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line() == (
        f"error: {filename}: {local} is the wheel for demo==1.0, whose --hash values and the wheel's own have "
        "none in common; nothing was downloaded"
    )
    assert not (tmp_path / "u").exists()
    server.add_file(*build_wheel("demo", "2.0"))
    run = ws("install", str(local), "demo==2.0", "-i", index, "-t", str(tmp_path / "v"), cache=cache)
    assert run.code == 1, run.err
    assert "are both demo: an install takes one wheel of a distribution" in run.error_line()


def test_a_source_given_twice_is_installed_once(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    url = add(server)
    run = ws("install", url, url, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    assert "Installed 1 wheel " in run.err
    assert len(server.requests_for("demo-1.0-py3-none-any.whl")) == 1


def test_download_refuses_a_zip_that_is_not_a_wheel_and_leaves_nothing(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """A valid zip named like a wheel, with no ``.dist-info``: pip download refuses it; so does ``download``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/__init__.py", "x = 1\n")
    url = server.add_file("demo-1.0-py3-none-any.whl", buffer.getvalue())
    dest = tmp_path / "d"
    run = ws("download", url, "-d", str(dest), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line().startswith("error: demo-1.0-py3-none-any.whl: "), run.err
    assert ".dist-info" in run.error_line()
    assert not dest.exists() or list(dest.iterdir()) == []
    assert ws("download", url, "-d", str(dest), cache=cache).code == 1  # not served from the cache as good


def test_download_never_removes_the_callers_own_file_it_refuses(cache: Path, tmp_path: Path) -> None:
    """``download ./x.whl -d .``: the refused file is the caller's source, not a copy of ours."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bad/__init__.py", "x = 1\n")
    here = tmp_path / "src"
    here.mkdir()
    source = here / "bad-1.0-py3-none-any.whl"
    source.write_bytes(buffer.getvalue())
    run = ws("download", str(source), "-d", str(here), cache=cache)
    assert run.code == 1, run.err
    assert "not a wheel" in run.error_line()
    assert source.read_bytes() == buffer.getvalue()
    ok_name, ok = build_wheel("ok", "1.0")
    (here / ok_name).write_bytes(ok)
    req = tmp_path / "r.txt"
    req.write_text(f"{here / ok_name} --hash=sha256:{'a' * 64} --hash=sha256:{'b' * 64}\n")
    run = ws("download", "-r", str(req), "-d", str(here), cache=cache)
    assert run.code == 1, run.err
    assert (here / ok_name).read_bytes() == ok  # its own file, though no hash allowed it
    run = ws("download", "-r", str(req), "-d", str(tmp_path / "elsewhere"), cache=cache)
    assert run.code == 1, run.err
    assert "none of the 2 allowed hashes" in run.error_line()
    assert not (tmp_path / "elsewhere" / ok_name).exists()  # the copy it made is not left behind


def test_download_puts_only_checked_wheels_into_the_directory(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """A wheel reaches ``-d`` only after its checks: not one refused (the caller's same-named file there stays),
    nor one left unchecked because another source failed first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/__init__.py", "x = 1\n")
    url = server.add_file("demo-1.0-py3-none-any.whl", buffer.getvalue())
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "demo-1.0-py3-none-any.whl").write_bytes(b"the caller's")
    run = ws("download", url, "-d", str(dest), cache=cache)
    assert run.code == 1, run.err
    assert (dest / "demo-1.0-py3-none-any.whl").read_bytes() == b"the caller's"
    other = tmp_path / "nothere-1.0-py3-none-any.whl"
    for _ in range(3):
        run = ws("download", str(other), url, "-d", str(tmp_path / "d2"), "-j", "2", cache=cache)
        assert run.code == 2, run.err
        assert not (tmp_path / "d2").exists() or os.listdir(tmp_path / "d2") == []


def test_download_into_a_directory_on_another_file_system(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``-d`` on tmpfs, the cache on the test's file system: a rename cannot cross, so the wheel is copied beside
    its name and renamed into place; the partial is gone, and nothing half-written is left in the directory."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(cache.parent).st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    url = add(server)
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        run = ws("download", url, "-d", elsewhere, cache=cache)
        assert run.code == 0, run.err
        path = Path(run.out.strip())
        assert path == Path(elsewhere) / "demo-1.0-py3-none-any.whl"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == server.version(path.name).sha256
        assert os.listdir(elsewhere) == ["demo-1.0-py3-none-any.whl"]
    assert not list((cache / "partial").glob("*.part"))


# -- cache -------------------------------------------------------------------------------------------------


def test_cache_dir_list_and_clean(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    assert ws("cache", "dir", cache=cache).out.strip() == str(cache)
    assert ws("cache", "dir", "--cache-dir", str(tmp_path / "x"), cache=cache).out.strip() == str(
        tmp_path / "x"
    )
    assert ws("install", add(server, "alpha"), "-t", str(tmp_path / "a"), cache=cache).code == 0
    _filename, _url, run = _gave_up(server, cache, tmp_path)
    assert run.code == 3
    assert (
        ws("install", add(server, "beta"), "-t", str(tmp_path / "b"), "--link-mode", "copy", cache=cache).code
        == 0
    )
    listing = ws("cache", "list", cache=cache).out
    assert "partial downloads: 1" in listing
    assert "unpacked wheels: 1" in listing
    assert "wheel files: 2" in listing  # alpha (move mode) and beta: every finished download keeps its file
    assert "alpha-1.0-py3-none-any.whl" in listing
    assert "beta-1.0-py3-none-any.whl" in listing

    run = ws("cache", "clean", "--partial", cache=cache)
    assert run.code == 0
    assert "removed 1 partial download(s) (262 kB)" in run.out
    assert not list((cache / "partial").glob("*.whl.part"))
    assert not list((cache / "partial").glob("*.json"))
    assert not any((cache / "staging").iterdir())
    listing = ws("cache", "list", cache=cache).out
    assert "partial downloads: 0" in listing
    assert "unpacked wheels: 1" in listing

    run = ws("cache", "clean", cache=cache)
    assert run.code == 0
    assert "removed 0 partial download(s)" in run.out
    assert "removed 1 unpacked wheel(s)" in run.out
    assert "removed 2 wheel file(s)" in run.out
    assert not any((cache / "wheels").iterdir())
    assert "unpacked wheels: 0" in ws("cache", "list", cache=cache).out


def test_cache_clean_waits_for_the_installs_using_the_cache(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``cache clean`` deleted the unpacked trees a ``--link-mode copy`` install was copying from, and the install
    failed ("the cache cleaned meanwhile?"). Installs hold the cache shared; ``clean`` waits for them, says so,
    then empties it. ``clean --partial`` does not wait (each partial has its own lock)."""
    url = add(server, "slow", size=1024 * 1024, plan=FaultPlan(Throttle(400_000)))  # ~2.6 s of body
    install = ws_start("install", url, "-t", str(tmp_path / "t"), "--link-mode", "copy", cache=cache)
    try:
        wait_until(lambda: len(server.requests) > 0, timeout=20)
        partial = ws("cache", "clean", "--partial", cache=cache, timeout=20)
        assert partial.code == 0, partial.err
        assert "kept 1 partial download(s) in use by another wheelstream process" in partial.out
        assert install.poll() is None  # --partial did not wait for it
        clean = ws("cache", "clean", cache=cache, timeout=60)
        assert install.wait(timeout=5) == 0, install.communicate()[1]
    finally:
        if install.poll() is None:
            install.kill()
            install.wait()
    assert clean.code == 0, clean.err
    assert "waiting for the wheelstream commands using the cache to finish" in clean.err
    assert "removed 1 unpacked wheel(s)" in clean.out
    assert (tmp_path / "t" / "slow").is_dir()
    assert not any((cache / "wheels").iterdir())


def test_cache_list_shows_every_unpacked_tree_after_reclaiming_what_killed_processes_left(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """A staging tree without a journal (a download killed between removing its journal and publishing) is
    reclaimed by the next command (a dead owner's claim too: test_move_mode); a tree a live process claims
    and a partial download's unpacked files are listed."""
    from wheelstream._cache import Cache

    store = Cache.at(cache)
    for name in ("orphan", "held"):
        (store.staging(name) / "pkg").mkdir(parents=True)
        (store.staging(name) / "pkg" / "a.py").write_bytes(b"x" * 1000)
    held = store.claim(store.staging("held"))  # this process holds it: in use
    _filename, _url, run = _gave_up(server, cache, tmp_path)
    assert run.code == 3
    listing = ws("cache", "list", cache=cache).out
    assert not store.staging("orphan").exists()
    assert "partial downloads: 1" in listing
    assert "unpacked so far" in listing
    assert "unpacked trees in use by running installs: 1" in listing
    assert held.root.name in listing
    held.release()


@pytest.mark.parametrize("case", ["404", "index-unreachable"])
def test_other_network_failures_exit_3(case: str, server: FaultServer, cache: Path, tmp_path: Path) -> None:
    if case == "404":
        args = [f"{server.url}/nothere-1.0-py3-none-any.whl"]
    else:
        args = ["demo==1.0", "-i", "http://127.0.0.1:9/simple/", "--timeout", "2"]
    run = ws("install", *args, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 3, run.err
    line = run.error_line()
    assert line.startswith(
        "error: nothere-1.0-py3-none-any.whl: " if case == "404" else "error: demo==1.0: index "
    )


def test_cache_list_and_clean_of_a_cache_that_cannot_be_made_are_one_line(tmp_path: Path) -> None:
    """A cache directory under a regular file (or a read-only mount): ``list`` and ``clean`` printed the whole
    traceback of ``Cache.at``'s DiskError. Listing needs no write: it lists what is there (nothing)."""
    (tmp_path / "afile").write_text("")
    cache = tmp_path / "afile" / "sub"
    listed = ws("cache", "list", cache=cache)
    assert listed.code == 0, listed.err
    assert "partial downloads: 0" in listed.out
    cleaned = ws("cache", "clean", cache=cache)
    assert cleaned.code == 1
    assert cleaned.error_line(alone=True).startswith(
        "error: cannot clean the cache: cannot use the cache directory"
    )


@pytest.mark.parametrize("kind", ["file", "dangling symlink"])
def test_a_target_that_cannot_be_a_directory_is_refused_before_anything_is_fetched(
    server: FaultServer, cache: Path, tmp_path: Path, kind: str
) -> None:
    """pip refuses a ``--target`` that exists but is not a directory before it downloads; the whole wheel was
    fetched first, and a symlink to nothing was called "exists but is not a directory"."""
    url = add(server)
    target = tmp_path / "t"
    if kind == "file":
        target.write_text("mine")
    else:
        target.symlink_to(tmp_path / "nowhere")
    run = ws("install", url, "-t", str(target), cache=cache)
    assert run.code == 2, run.err
    expected = "is a file" if kind == "file" else "is a symlink to nothing"  # the first: click's own check
    assert expected in run.err, run.err
    assert server.requests == []
    with pytest.raises(
        wheelstream.errors.UsageError,
        match="exists but is not a directory" if kind == "file" else "symlink to nothing",
    ):
        wheelstream.install([url], target, cache_dir=cache)  # the library, where click does not look
    assert server.requests == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_that_cannot_be_written_is_one_line_and_never_changes_the_outcome(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """stdout on a full device was a traceback (``download … > /dev/full``, ``cache dir``, ``--version``); stderr on
    one turned a note that failed to print into an aborted install, and a failed summary line into exit 1
    after the install was done."""
    import subprocess
    import sys

    url = add(server)

    def run(
        *args: str, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "wheelstream", *args],
            stdout=stdout,
            stderr=stderr,
            env=ws_env(cache),
            timeout=60,
            check=False,
        )

    with open("/dev/full", "wb") as full:
        for args in (("download", url, "-d", str(tmp_path / "d")), ("cache", "dir"), ("--version",)):
            done = run(*args, stdout=full)
            assert done.returncode == 1, (args, done.stderr)
            assert (
                done.stderr.decode().splitlines()[-1]
                == "error: cannot write the output: No space left on device"
            )
            assert b"Traceback" not in done.stderr
        for target in (
            "t1",
            "t2",
        ):  # the second: the wheel is cached, and the note about it cannot be printed
            done = run("install", url, "-t", str(tmp_path / target), stderr=full)
            assert done.returncode == 0
            assert (tmp_path / target / "demo").is_dir()


def test_cache_list_marks_a_partial_another_process_is_writing(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``cache clean`` kept such a partial and said so; ``cache list`` showed it as any other."""
    from wheelstream._cache import file_lock
    from wheelstream._urls import cache_key

    _filename, url, run = _gave_up(server, cache, tmp_path)
    assert run.code == 3, run.err
    assert "in use by another" not in ws("cache", "list", cache=cache).out
    with file_lock(cache / "partial" / f"{cache_key(url)}.lock"):
        listing = ws("cache", "list", cache=cache).out
    assert "in use by another wheelstream process" in listing, listing


def test_targets_that_cannot_be_made_or_written_and_empty_paths_are_refused_before_fetching(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``-t afile/sub``, a read-only target, ``-t ""`` (the current directory) and ``-d ""``: the whole wheel was
    fetched first, and the empty path installed into the current directory."""
    url = add(server)
    (tmp_path / "afile").write_text("")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        cases = [
            (("install", url, "-t", str(tmp_path / "afile" / "sub")), 2, "is not a directory"),
            (("install", url, "-t", ""), 2, "target path is empty"),
            (("download", url, "-d", ""), 2, "dest is empty"),
        ]
        if not os.access(readonly, os.W_OK):  # (root may write anywhere but a read-only mount)
            cases.append(
                (("install", url, "-t", str(readonly / "t")), 1, "cannot be written; nothing was fetched")
            )
        for args, code, said in cases:
            run = ws(*args, cache=cache, cwd=tmp_path)
            assert run.code == code, (args, run.err)
            assert said in run.err, (args, run.err)
        assert server.requests == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ro"]
    finally:
        readonly.chmod(0o700)


def test_a_leading_tilde_in_path_options_is_the_home_directory(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``--target=~/site``: the shell leaves a ``~`` after ``=`` alone, and the install made a directory named
    ``~`` in the current directory. pip expands its path options; so do ``--cache-dir``, ``-d`` and
    ``$WHEELSTREAM_CACHE_DIR``."""
    url = add(server)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {"HOME": str(home)}
    run = ws("install", url, "--target=~/site", "--cache-dir=~/cache", cache=None, cwd=work, env=env)
    assert run.code == 0, run.err
    assert (home / "site" / "demo").is_dir()
    assert (home / "cache" / "wheels").is_dir()
    run = ws(
        "download", url, "-d", "~/dl", cache=None, cwd=work, env={**env, "WHEELSTREAM_CACHE_DIR": "~/c2"}
    )
    assert run.code == 0, run.err
    assert [p.name for p in (home / "dl").iterdir()] == ["demo-1.0-py3-none-any.whl"]
    assert (home / "c2" / "wheels").is_dir()
    assert list(work.iterdir()) == []


def test_a_file_url_of_another_host_is_not_read_as_a_local_path(cache: Path, tmp_path: Path) -> None:
    """``file://otherhost/x.whl`` dropped the host and read ``/x.whl``; pip refuses non-local file URLs."""
    run = ws("install", "file://otherhost/tmp/x-1.0-py3-none-any.whl", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2, run.err
    assert "a file:// URL of another host (otherhost)" in run.error_line(alone=True)


SECRET_URL = "http://alice:S3CRETpw%40x@127.0.0.1:9/demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ([f"other @ {SECRET_URL}"], "names 'other', but the wheel demo-1.0-py3-none-any.whl is 'demo'"),
        (["--constraint=http://alice:S3CRETpw%40x@127.0.0.1:9/c.txt"], "unsupported option"),
        (
            [f"{SECRET_URL} --hash=sha256:{'a' * 64}", f"{SECRET_URL} --hash=sha256:{'b' * 64}"],
            "none in common",
        ),
    ],
    ids=["NAME @ URL", "an unsupported option", "hashes with none in common"],
)
def test_requirement_file_errors_quote_urls_without_their_password(
    cache: Path, tmp_path: Path, lines: list[str], said: str
) -> None:
    """The same source on the command line was redacted; quoted from a ``-r`` file, the password was printed."""
    req = tmp_path / "r.txt"
    req.write_text("\n".join(lines) + "\n")
    run = ws("install", "-r", str(req), "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2, run.err
    assert said in run.error_line(alone=True)
    assert "S3CRET" not in run.err, run.err
    assert "alice" not in run.err, run.err


def test_library_and_lock_errors_quote_urls_without_their_password(tmp_path: Path) -> None:
    """``hashes={url: "nothex"}`` named the URL with its password; so did a lock's url of another scheme."""
    from wheelstream.errors import UsageError

    with pytest.raises(UsageError) as raised:
        wheelstream.install(
            [SECRET_URL], tmp_path / "t", cache_dir=tmp_path / "c", hashes={SECRET_URL: "nothex"}
        )
    assert "is not a sha256" in str(raised.value)
    assert "S3CRET" not in str(raised.value)
    assert "alice" not in str(raised.value)
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "t"\n[[packages]]\nname = "demo"\nversion = "1.0"\n'
        '[[packages.wheels]]\nurl = "ftp://alice:S3CRETpw%40x@127.0.0.1/demo-1.0-py3-none-any.whl"\n'
        f'hashes = {{sha256 = "{"a" * 64}"}}\n'
    )
    run = ws("install", "-r", str(lock), "-t", str(tmp_path / "t"), cache=tmp_path / "c")
    assert run.code == 2, run.err
    assert "of scheme 'ftp'" in run.error_line(alone=True)
    assert "S3CRET" not in run.err, run.err
    assert "alice" not in run.err, run.err


def test_ctrl_c_while_a_local_wheel_unpacks_ends_it_at_once(cache: Path, tmp_path: Path) -> None:
    """A Ctrl-C (or SIGTERM) while a local wheel — or the wheel file a reinstall takes from the cache — unpacked
    was ignored until all of it was unpacked (17 s for 30,000 files), then thrown away: the loop never looked
    at the cancel, and the writers wrote every batch in flight first."""
    wheel = tmp_path / "many-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel({f"many/m{i:05}.py": b"x = 1\n" for i in range(12000)}, name="many"))
    install = ws_start("install", "-q", "--no-progress", str(wheel), "-t", str(tmp_path / "t"), cache=cache)
    try:
        staging = cache / "staging"
        wait_until(lambda: staging.is_dir() and any(any(d.iterdir()) for d in staging.iterdir()), timeout=30)
        install.send_signal(signal.SIGINT)
        started = time.monotonic()
        code = install.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if install.poll() is None:
            install.kill()
            install.wait()
    err = install.communicate()[1]
    assert code == 130, err
    assert took < 2, took
    assert "many-1.0-py3-none-any.whl: interrupted at " in err  # not "after every download finished"
    assert "after every download finished" not in err
    assert not any((cache / "staging").iterdir())  # nothing unpacked is kept: a rerun unpacks the file whole
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_a_hang_up_of_the_process_group_stops_an_install_with_worker_processes(
    cache: Path, tmp_path: Path
) -> None:
    """A closed terminal sends SIGHUP to the whole process group: the command and its worker processes. SIGHUP
    killed the command (no word, exit -1); taken as Ctrl-C by the command but not ignored by the workers, it
    could leave one waiting for good on a batch never handed to a writer. Exit 130, one line, nothing left."""
    wheels = []
    for name in ("ha", "hb", "hc"):
        wheel = tmp_path / f"{name}-1.0-py3-none-any.whl"
        wheel.write_bytes(make_wheel({f"{name}/m{i:05}.py": b"x = 1\n" for i in range(8000)}, name=name))
        wheels.append(str(wheel))
    install = ws_start(
        "install",
        "--no-progress",
        *wheels,
        "-j",
        "3",
        "-t",
        str(tmp_path / "t"),
        cache=cache,
        start_new_session=True,
    )
    try:
        staging = cache / "staging"
        wait_until(lambda: staging.is_dir() and any(any(d.iterdir()) for d in staging.iterdir()), timeout=30)
        os.killpg(install.pid, signal.SIGHUP)
        code = install.wait(timeout=30)
    finally:
        if install.poll() is None:
            os.killpg(install.pid, signal.SIGKILL)
            install.wait()
    err = install.communicate()[1]
    assert code == 130, err
    assert "interrupted" in err.splitlines()[-1]
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_ctrl_c_while_waiting_for_another_process_fetching_the_url_ends_the_wait(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """A second process waiting on the URL's lock held by a first one's download ignored Ctrl-C and SIGTERM
    until that whole download had finished."""
    url = add(server, "slow", size=2 << 20, plan=FaultPlan(Throttle(300_000)))  # ~7 s of body
    first = ws_start("install", url, "-t", str(tmp_path / "a"), "--connections", "1", cache=cache)
    second = None
    try:
        wait_until(lambda: len(server.requests) > 0, timeout=20)
        second = ws_start("install", url, "-t", str(tmp_path / "b"), cache=cache)
        time.sleep(1.5)  # past the quiet half second: waiting on the lock
        second.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = second.wait(timeout=30)
        assert time.monotonic() - started < 2
        assert code == 130, second.communicate()[1]
        assert first.poll() is None  # the first goes on
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_waiting_cache_clean_stopped_by_sigterm_says_one_line(cache: Path) -> None:
    """``cache clean`` waiting for an install, then SIGTERM: it died with 143 and no word; with SIGTERM taken
    as Ctrl-C, click printed a blank line before the error line. One ``error: interrupted`` line, exit 130."""
    from wheelstream._cache import in_use

    with in_use(cache):  # an install using the cache, as far as clean can tell
        clean = ws_start("cache", "clean", cache=cache)
        try:
            assert clean.stderr is not None
            assert "waiting for the wheelstream commands" in clean.stderr.readline()
            clean.send_signal(signal.SIGTERM)
            code = clean.wait(timeout=10)
        finally:
            if clean.poll() is None:
                clean.kill()
                clean.wait()
    rest = clean.communicate()[1]
    assert code == 130, rest
    assert rest.splitlines() == ["error: interrupted"]


def test_the_environment_names_the_index_and_the_command_line_and_a_file_win_over_it(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """A mirror set once for a machine or a CI job (pip's ``PIP_INDEX_URL``, uv's ``UV_INDEX_URL``): without
    ``WHEELSTREAM_INDEX_URL`` every ``NAME==VERSION`` went to pypi.org."""
    add(server, "demo", size=1000)
    mirror = {"WHEELSTREAM_INDEX_URL": f"{server.url}/simple/"}
    run = ws("install", "demo==1.0", "-t", str(tmp_path / "t"), cache=cache, env=mirror)
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo").is_dir()

    nowhere = {"WHEELSTREAM_INDEX_URL": "http://127.0.0.1:9/simple/"}
    run = ws(
        "download",
        "demo==1.0",
        "-i",
        f"{server.url}/simple/",
        "-d",
        str(tmp_path / "d"),
        cache=cache,
        env=nowhere,
    )
    assert run.code == 0, run.err
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--index-url {server.url}/simple/\ndemo==1.0\n")
    run = ws("download", "-r", str(requirements), "-d", str(tmp_path / "d2"), cache=cache, env=nowhere)
    assert run.code == 0, run.err
    assert [path.name for path in (tmp_path / "d2").iterdir()] == ["demo-1.0-py3-none-any.whl"]


def test_require_hashes_asks_every_source_for_one(cache: Path, tmp_path: Path) -> None:
    """pip's ``--require-hashes`` (on the command line or in a file): without any ``--hash`` it was refused
    ("unsupported option") in a file, unknown on the command line."""
    requirements = tmp_path / "r.txt"
    requirements.write_text("--require-hashes\nsix==1.16.0\n")
    run = ws("download", "-r", str(requirements), "-d", str(tmp_path / "d"), cache=cache)
    assert run.code == 2, run.err
    assert "--require-hashes is given, so every source needs one" in run.error_line(alone=True)
    run = ws("download", "--require-hashes", "six==1.16.0", "-d", str(tmp_path / "d"), cache=cache)
    assert run.code == 2, run.err
    assert "none for: six==1.16.0" in run.error_line(alone=True)
    assert not (tmp_path / "d").exists()


def test_cache_clean_removes_the_url_locks_no_download_uses(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """One empty lock file stayed per URL ever fetched (2,001 after 1,000 installs), through every clean."""
    from wheelstream._cache import try_lock

    for number in range(3):
        url = add(server, f"pkg{number}", size=1000)
        run = ws("install", url, "-t", str(tmp_path / f"t{number}"), cache=cache)
        assert run.code == 0, run.err
    locks = sorted((cache / "partial").glob("*.lock"))
    assert len(locks) >= 3
    held = try_lock(locks[0])  # as a `clean --partial` or `cache list` looking at it this moment
    assert held is not None
    try:
        run = ws("cache", "clean", cache=cache)
    finally:
        held.release()
    assert run.code == 0, run.err
    assert sorted((cache / "partial").glob("*.lock")) == [locks[0]]


@pytest.mark.parametrize("flag", ["--no-cache", "--no-cache-dir"])
def test_no_cache_leaves_nothing_behind(server: FaultServer, tmp_path: Path, flag: str) -> None:
    """uv's --no-cache and pip's --no-cache-dir (a Dockerfile's ``RUN pip install --no-cache-dir``): the wheels
    went into the user cache all the same."""
    url = add(server, "alpha")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    cache = tmp_path / "cache"  # $WHEELSTREAM_CACHE_DIR: set, and left alone
    run = ws("install", url, "-t", str(tmp_path / "t"), flag, cache=cache, env={"TMPDIR": str(temporary)})
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "alpha").is_dir()
    assert not cache.exists()
    assert list(temporary.iterdir()) == []
    failed = ws(
        "download",
        url + "#sha256=" + "0" * 64,
        "-d",
        str(tmp_path / "d"),
        flag,
        cache=cache,
        env={"TMPDIR": str(temporary)},
    )
    assert failed.code == 1, failed.err  # a failure removes it too
    assert list(temporary.iterdir()) == []
    both = ws("download", url, "-d", str(tmp_path / "d"), flag, "--cache-dir", str(cache), cache=None)
    assert both.code == 2
    assert "--no-cache and --cache-dir: give one" in both.err


def test_a_pip_install_line_works_as_it_is(server: FaultServer, cache: Path, tmp_path: Path) -> None:
    """``pip install --no-deps --only-binary :all: …``: options whose point always holds here were "No such
    option" on the command line (a -r file's were accepted)."""
    url = add(server, "alpha")
    run = ws(
        "install",
        *("--no-deps", "--only-binary", ":all:", "--prefer-binary", "--pre", "--no-compile"),
        *("--trusted-host", "127.0.0.1", url, "-t", str(tmp_path / "t")),
        cache=cache,
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "alpha").is_dir()
    assert not list((tmp_path / "t").rglob("*.pyc"))  # --no-compile: the default
    listed = ws("install", "--help", cache=cache).out
    assert "--compile-bytecode" in listed
    assert not [line for line in listed.splitlines() if line.lstrip().startswith(("--no-deps", "--pre "))]


@pytest.mark.parametrize("closed", [1, 2], ids=["stdout closed", "stderr closed"])
def test_a_closed_standard_stream_does_not_fail_a_finished_install(
    server: FaultServer, cache: Path, tmp_path: Path, closed: int
) -> None:
    """``>&-`` / ``2>&-``: Python makes the stream None, and the first write after the install was a traceback,
    exit 1 (pip and uv exit 0)."""
    url = add(server, "alpha")
    proc = subprocess.run(
        [sys.executable, "-m", "wheelstream", "install", url, "-t", str(tmp_path / "t")],
        env=ws_env(cache),
        preexec_fn=lambda: os.close(closed),  # the child's own stream, before exec
        capture_output=False,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0
    assert (tmp_path / "t" / "alpha").is_dir()


def test_a_working_directory_that_was_deleted_is_said_at_once(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "wheelstream", "install", "six==1.16.0", "-t", "site"],
        cwd=gone,
        preexec_fn=lambda: os.rmdir(gone),  # after the child's chdir, before exec
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: the current directory no longer exists: cd to one that does"


def test_the_open_files_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    """uv raises it; a 250-wheel lock failed at macOS's default soft limit of 256."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 64:
        pytest.skip("no room above 64 here")
    probe = (
        "import resource, sys; from wheelstream.cli import _own_process; _own_process(); "
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert int(proc.stdout) > 64


def test_no_thread_to_write_with_is_one_line_not_a_hang(tmp_path: Path) -> None:
    """``ulimit -u`` / ``-v``: a writer thread that could not start left its batch counted in flight, never
    queued, and the unpack waited for it for good (Ctrl-C could not end it); elsewhere the same limit was a
    traceback."""
    wheel = ROOT / "fixtures" / "wheels" / "six-1.16.0-py2.py3-none-any.whl"
    script = (
        "import sys, threading\n"
        "real = threading.Thread.start\n"
        "def start(self):\n"
        "    if self.name.startswith('wheelstream-write'):\n"
        '        raise RuntimeError("can\'t start new thread")\n'
        "    return real(self)\n"
        "threading.Thread.start = start\n"
        "from wheelstream.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "install", str(wheel), "-t", str(tmp_path / "t"), "--no-progress"],
        env={**ws_env(tmp_path / "c"), "WHEELSTREAM_PROCESSES": "0"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "error: no new thread could start" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "t").exists()


def test_no_cache_never_offers_a_resume(server: FaultServer, tmp_path: Path) -> None:
    """Under --no-cache the error said "… — run the same command again to resume", from a cache already gone."""
    filename, data = build_wheel("demo", "1.0", payload_size=512 * 1024)
    url = server.add_file(
        filename, data, plan=FaultPlan(Cut(percent=50, requests=1), Status(503, requests=since(2)))
    )
    run = ws("install", url, "-t", str(tmp_path / "t"), "--retries", "1", "--no-cache", cache=tmp_path / "c")
    assert run.code == 3, run.err
    line = run.error_line()
    assert line.startswith(f"error: {filename}: gave up"), line
    assert "run the same command again" not in line
    assert line.endswith("(--no-cache: nothing is kept to resume from)"), line


# The command line's own import, with a signal delivered in the middle of it (deterministically: a finder asked
# for ``wheelstream.cli`` sends it), then what the program says.
_SIGNALLED_WHILE_IMPORTING = """
import os, signal, sys
import wheelstream.__main__ as entry

SIGNAL = getattr(signal, sys.argv[1])

class Signalling:
    def find_spec(self, name, path, target=None):
        if name == "wheelstream.cli":
            os.kill(os.getpid(), SIGNAL)
        return None

sys.meta_path.insert(0, Signalling())
sys.argv = ["wheelstream", "--version"]
entry.main()
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_the_command_line_imports_is_one_line_and_exit_130(signame: str) -> None:
    """The imports before the command's own handling take a tenth of a second: a Ctrl-C there was a traceback
    (exit 1), a SIGTERM or SIGHUP a silent death (-15, -1)."""
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_WHILE_IMPORTING, signame],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ws_env(None),
    )
    assert (proc.returncode, proc.stderr, proc.stdout) == (
        130,
        "error: interrupted before the command started\n",
        "",
    )
