"""The shared HTTP client: https is verified (against the environment's CA settings), plain http never loads
a CA bundle — through real servers on 127.0.0.1, one of them speaking TLS with a committed test certificate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import started_server
from pytest_httpserver import HTTPServer

import wheelstream
from fixtures.wellformed import WELLFORMED
from wheelstream.testing import FaultServer
from wheelstream.transport import new_client, take_request_stream, track_request_streams

TLS = Path(__file__).resolve().parent.parent / "fixtures" / "tls"
WHEEL = "demo-1.0-py3-none-any.whl"


@pytest.fixture
def tls_server() -> Iterator[HTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
    yield from started_server(host="127.0.0.1", port=0, ssl_context=context)


@pytest.mark.parametrize("setting", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_https_install_trusts_the_ca_the_environment_names(
    tls_server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """httpx reads ``SSL_CERT_FILE``; pip (through requests) ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` too,
    which were ignored here: "certificate verify failed" where pip installed."""
    data = WELLFORMED["deflate"]()
    tls_server.expect_request(f"/{WHEEL}").respond_with_data(data, content_type="application/octet-stream")
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(setting, str(TLS / "localhost.pem"))
    url = tls_server.url_for(f"/{WHEEL}")
    assert url.startswith("https://")
    result = wheelstream.install([url], tmp_path / "target", cache_dir=tmp_path / "cache")
    assert result.wheels[0].bytes_fetched == len(data)
    assert list((tmp_path / "target").glob("*.dist-info/RECORD"))


def test_https_trusts_the_systems_store_as_pip_does(
    tls_server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip ≥ 24.2 trusts the system's CA store (truststore); a CA installed there, as a company's is, was
    refused here ("certificate verify failed": certifi's bundle only). The store is simulated the way
    a distribution's bundle is found when OpenSSL's own locations hold none (a Python built with its own)."""
    from wheelstream.transport import _tls

    data = WELLFORMED["deflate"]()
    tls_server.expect_request(f"/{WHEEL}").respond_with_data(data, content_type="application/octet-stream")
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    nowhere = ssl.DefaultVerifyPaths(None, None, "SSL_CERT_FILE", "", "SSL_CERT_DIR", "")  # type: ignore[arg-type]
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: nowhere)
    monkeypatch.setattr(_tls, "SYSTEM_BUNDLES", ["/nonexistent/ca.pem", str(TLS / "localhost.pem")])
    result = wheelstream.install([tls_server.url_for(f"/{WHEEL}")], tmp_path / "t", cache_dir=tmp_path / "c")
    assert result.wheels[0].bytes_fetched == len(data)


def test_a_bundle_the_environment_names_is_trusted_beside_the_others(
    tls_server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip adds ``REQUESTS_CA_BUNDLE`` to what it trusts; here ``SSL_CERT_FILE`` (httpx's setting) had replaced
    it: with both set, a server only the bundle vouches for was refused where pip installed."""
    import certifi

    data = WELLFORMED["deflate"]()
    tls_server.expect_request(f"/{WHEEL}").respond_with_data(data, content_type="application/octet-stream")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS / "localhost.pem"))
    result = wheelstream.install([tls_server.url_for(f"/{WHEEL}")], tmp_path / "t", cache_dir=tmp_path / "c")
    assert result.wheels[0].bytes_fetched == len(data)


@pytest.fixture
def mutual_tls_server() -> Iterator[HTTPServer]:
    """A server that asks every client for a certificate its CA (the test certificate itself) signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(TLS / "localhost.pem")
    yield from started_server(host="127.0.0.1", port=0, ssl_context=context)


@pytest.mark.parametrize("given", ["none", "certificate", "encrypted key", "missing file"])
def test_a_client_certificate_is_sent_from_ssl_client_cert(
    mutual_tls_server: HTTPServer, tmp_path: Path, given: str
) -> None:
    """uv's ``SSL_CLIENT_CERT`` (pip's ``--client-cert``): a private index behind mutual TLS was unreachable,
    after five retries of "tlsv13 alert certificate required" and "run the same command again once the server
    answers". An encrypted key would have OpenSSL prompt on the terminal mid-download."""
    import subprocess
    import time

    from conftest import ws

    key = (TLS / "localhost.key").read_bytes()
    if given == "encrypted key":
        key = subprocess.run(
            ["openssl", "pkey", "-aes256", "-passout", "pass:secret"],
            input=key,
            capture_output=True,
            check=True,
        ).stdout
    bundle = tmp_path / "client.pem"
    bundle.write_bytes((TLS / "localhost.pem").read_bytes() + key)
    settings = {"SSL_CERT_FILE": str(TLS / "localhost.pem")}
    if given != "none":
        settings["SSL_CLIENT_CERT"] = str(bundle if given != "missing file" else tmp_path / "missing.pem")
    mutual_tls_server.expect_request(f"/{WHEEL}").respond_with_data(WELLFORMED["deflate"]())
    started = time.monotonic()
    run = ws(
        "download",
        mutual_tls_server.url_for(f"/{WHEEL}"),
        "-d",
        str(tmp_path / "d"),
        cache=tmp_path / "c",
        env=settings,
        stdin=subprocess.DEVNULL,
    )
    assert time.monotonic() - started < 10
    said = {
        "none": "127.0.0.1 asks for a client certificate (TLSV13_ALERT_CERTIFICATE_REQUIRED): set SSL_CLIENT_CERT",
        "certificate": "",
        "encrypted key": "cannot use SSL_CLIENT_CERT: its private key is encrypted",
        "missing file": "cannot set up TLS: [Errno 2] No such file or directory",
    }[given]
    assert run.code == {"none": 3, "certificate": 0, "encrypted key": 2, "missing file": 2}[given], run.err
    if said:
        assert said in run.error_line(alone=True)
    else:
        assert (tmp_path / "d" / WHEEL).read_bytes() == WELLFORMED["deflate"]()


def test_an_index_whose_certificate_does_not_verify_is_said_at_once(
    tls_server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index was asked again five times over 13 s, then "unreachable", like a server that did not answer."""
    import time

    from conftest import ws

    started = time.monotonic()
    run = ws(
        "install",
        "demo==1.0",
        "--index-url",
        tls_server.url_for("/simple/"),
        "--target",
        str(tmp_path / "t"),
        cache=tmp_path / "c",
        env={"SSL_CERT_FILE": "", "SSL_CERT_DIR": "", "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""},
    )
    assert time.monotonic() - started < 5
    assert run.code == 3, run.err
    line = run.error_line(alone=True)
    assert "the TLS certificate of 127.0.0.1 does not verify" in line, line
    assert "retry" not in run.err


def test_https_refuses_a_certificate_nobody_trusts(
    tls_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_server.expect_request("/x").respond_with_data(b"secret")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with new_client(5.0) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(tls_server.url_for("/x"))


def test_plain_http_never_loads_a_ca_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_bundle(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a CA bundle was loaded")

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", no_bundle)
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", no_bundle)
    with FaultServer() as server:
        url = server.add_file(WHEEL, WELLFORMED["deflate"]())
        wheelstream.install([url], tmp_path / "target", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "target").glob("*.dist-info/RECORD"))
    with new_client(5.0) as client, pytest.raises(AssertionError, match="CA bundle"):
        client.get("https://127.0.0.1:9/")  # the first https request is what builds the verifying transport


def test_a_proxy_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our client routes by the environment's proxies itself (httpx reads them only for a client with its own
    transport)."""
    import http.server
    import threading

    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)  # a forward proxy gets the absolute URL
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"proxied")

        def log_message(self, *args: Any) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in (
            "NO_PROXY",
            "no_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "http_proxy",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        with new_client(5.0) as client:
            assert client.get("http://wheels.invalid/x.whl").text == "proxied"
    finally:
        proxy.shutdown()
    assert seen == ["http://wheels.invalid/x.whl"]


def test_a_broken_ca_setting_is_a_clear_error_on_the_first_https_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wheelstream.errors import UsageError

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with new_client(5.0) as client, pytest.raises(UsageError, match="cannot set up TLS"):
        client.get("https://127.0.0.1:9/")


def test_our_pools_name_the_connection_a_request_was_written_to() -> None:
    """What a download's cancel watcher relies on (``take_request_stream``): after a request through our
    client, this thread's request stream is the connection's, once, also when the pool reuses it; another
    client's request leaves none."""
    with FaultServer() as server:
        url = server.add_file(WHEEL, b"one")
        with new_client(5.0) as client:
            first = client.get(url)
            stream = take_request_stream()
            assert take_request_stream() is None  # taken once
            second = client.get(url)  # the same keep-alive connection, from the pool
            again = take_request_stream()
        with httpx.Client() as foreign:
            foreign.get(url)
    assert first.content == second.content == b"one"
    assert stream is not None
    assert again is stream
    assert first.extensions["network_stream"] is stream is second.extensions["network_stream"]
    assert take_request_stream() is None


class _PoolWithAMovedBackend:
    """httpcore's connection pool with its network backend kept under another name, as a later httpcore
    might keep it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def handle_request(self, request: Any) -> Any:
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> None:  # httpx's transport does not use what this returns
        self._inner.__enter__()

    def __exit__(self, *args: object) -> None:
        self._inner.__exit__(*args)


def test_tracking_takes_each_pool_once() -> None:
    transport = httpx.HTTPTransport()
    assert track_request_streams(transport) is True
    backend = transport._pool._network_backend
    assert track_request_streams(transport) is True  # not wrapped twice
    assert transport._pool._network_backend is backend
    transport.close()


def test_where_httpx_or_httpcore_moved_the_backend_the_transport_is_used_as_it_is() -> None:
    """The fallback of the backend swap (``wheelstream/transport/_tracking.py``): without ``_pool`` (a later
    httpx) or without ``_network_backend`` (a later httpcore) nothing is changed, requests work, and the only
    loss is that the stream a request was written to is not known."""
    assert track_request_streams(object()) is False
    transport = httpx.HTTPTransport()
    moved = _PoolWithAMovedBackend(transport._pool)
    transport._pool = moved  # type: ignore[assignment]
    assert track_request_streams(transport) is False
    pool: object = transport._pool
    assert pool is moved
    assert not hasattr(moved, "_network_backend")
    take_request_stream()
    with FaultServer() as server:
        url = server.add_file(WHEEL, b"one")
        with httpx.Client(transport=transport) as client:
            first, second = client.get(url), client.get(url)
    assert first.content == second.content == b"one"
    assert take_request_stream() is None


def test_transport_exports_are_sorted_and_resolve() -> None:
    import wheelstream.transport

    names = wheelstream.transport.__all__
    assert list(names) == sorted(names)
    assert all(getattr(wheelstream.transport, name) is not None for name in names)


def test_a_certificate_that_does_not_verify_ends_the_download_at_once_naming_the_host(
    tls_server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was retried like a dropped connection: five back-offs (~13 s), then "run the same command again once
    the server answers" — which no server would ever do."""
    import time

    from wheelstream.errors import HTTPStatusError

    tls_server.expect_request(f"/{WHEEL}").respond_with_data(WELLFORMED["deflate"]())
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    started = time.monotonic()
    with pytest.raises(HTTPStatusError) as raised:
        wheelstream.install([tls_server.url_for(f"/{WHEEL}")], tmp_path / "t", cache_dir=tmp_path / "c")
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "the TLS certificate of 127.0.0.1 does not verify" in message, message
    assert "SSL_CERT_FILE or REQUESTS_CA_BUNDLE add others" in message
    assert raised.value.exit_code == 3


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"ALL_PROXY": "socks5://127.0.0.1:1080", "NO_PROXY": "127.0.0.1"}, "socksio"),
        (
            {"HTTPS_PROXY": "http://127.0.0.1:9", "SSL_CERT_FILE": "/nonexistent/ca.pem"},
            "SSL_CERT_FILE=/nonexistent",
        ),
        (
            {"HTTPS_PROXY": "ftp://proxyuser:PROXYpw@127.0.0.1:1080"},
            "HTTPS_PROXY is not a proxy URL (its scheme",
        ),
        ({"HTTPS_PROXY": "http://proxyuser:PROXYpw@127.0.0.1:99999"}, "HTTPS_PROXY is not a proxy URL"),
        ({"HTTPS_PROXY": "http://proxyuser:PROXY/pw@127.0.0.1:3128"}, "HTTPS_PROXY is not a proxy URL"),
    ],
    ids=[
        "socks without socksio",
        "a missing CA file beside a proxy",
        "a proxy of another scheme",
        "a bad port",
        "a slash in the password",
    ],
)
def test_settings_httpx_cannot_build_a_client_from_are_one_line(
    tmp_path: Path, settings: dict[str, str], said: str
) -> None:
    """Each was a traceback from building the client (two chained, for ``NO_PROXY=[::1]``), or for the CA file
    "error: No such file or directory" naming neither the file nor the setting."""
    import importlib.util

    from conftest import ws

    if "socksio" in said and importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed here")
    # Both spellings of each: a lower-case one, empty or not, wins over the upper-case one (urllib's rule).
    given = {
        **settings,
        **{name.lower(): value for name, value in settings.items() if name.endswith("PROXY")},
    }
    run = ws(
        "download",
        "https://127.0.0.1:9/x-1.0-py3-none-any.whl",
        "-d",
        str(tmp_path / "d"),
        cache=tmp_path / "c",
        env=given,
    )
    assert run.code == 2, run.err
    line = run.error_line(alone=True)
    assert said in line, line
    assert "Traceback" not in run.err
    assert "proxyuser" not in run.err
    assert "PROXYpw" not in run.err


def test_a_callers_client_that_follows_no_redirects_still_gets_a_redirected_wheel(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """httpx clients follow no redirect by default: with ``client=httpx.Client()`` a wheel behind a 302 was
    "unexpected HTTP status 302". The wheel's requests follow redirects whatever the client's default."""
    data = WELLFORMED["deflate"]()
    httpserver.expect_request(f"/moved/{WHEEL}").respond_with_data(
        data, content_type="application/octet-stream"
    )
    httpserver.expect_request(f"/{WHEEL}").respond_with_data(
        b"", status=302, headers={"Location": httpserver.url_for(f"/moved/{WHEEL}")}
    )
    with httpx.Client() as client:
        result = wheelstream.download(
            [httpserver.url_for(f"/{WHEEL}")], tmp_path / "d", cache_dir=tmp_path / "c", client=client
        )
    path = result.wheels[0].path
    assert path is not None
    assert path.read_bytes() == data


@pytest.mark.parametrize("second", ["200", "206"])
def test_a_body_without_a_length_cut_before_the_archive_ends_is_resumed(tmp_path: Path, second: str) -> None:
    """HTTP/1.0, no Content-Length, the connection closed halfway: the close was taken for the end of the file
    and the wheel for a truncated archive — "input ended inside entry data", exit 1, the partial discarded, and
    every rerun the same. A body of unknown length ends the file only where it ends the archive."""
    import socket
    import threading

    data = WELLFORMED["big_entry"]()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    asked: list[str] = []

    def serve() -> None:
        for number in range(2):
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                ranged = [
                    line for line in request.decode().split("\r\n") if line.lower().startswith("range:")
                ]
                asked.append(ranged[0] if ranged else "")
                if number == 0:
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                    conn.sendall(data[: len(data) // 2])  # and close: a cut the client cannot see as one
                elif second == "206" and ranged:
                    start = int(ranged[0].split("=")[1].split("-")[0])
                    span = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    head = f"HTTP/1.0 206 Partial Content\r\nContent-Range: {span}\r\n\r\n"
                    conn.sendall(head.encode() + data[start:])
                else:
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = wheelstream.download(
            [f"http://127.0.0.1:{port}/{WHEEL}"], tmp_path / "d", cache_dir=tmp_path / "c"
        )
    finally:
        listener.close()
    path = result.wheels[0].path
    assert path is not None
    assert path.read_bytes() == data
    assert asked[0] == ""
    assert asked[1].startswith("Range: bytes=")


@pytest.mark.parametrize(
    "body",
    [b"PK\x03\x04 not gzip at all", None],
    ids=["not gzip", "a gzip header, a corrupt body"],
)
def test_a_wheel_labelled_gzip_that_does_not_decode_is_one_line(
    httpserver: HTTPServer, tmp_path: Path, body: bytes | None
) -> None:
    """httpx's DecodingError is no TransportError: it left the attempt loop as a traceback (exit 1)."""
    import gzip

    from conftest import ws

    if body is None:
        packed = bytearray(gzip.compress(WELLFORMED["deflate"]()))
        packed[len(packed) // 2] ^= 0xFF
        body = bytes(packed)
    httpserver.expect_request(f"/{WHEEL}").respond_with_data(
        body, headers={"Content-Encoding": "gzip"}, content_type="application/octet-stream"
    )
    run = ws(
        "download",
        httpserver.url_for(f"/{WHEEL}"),
        "-d",
        str(tmp_path / "d"),
        cache=tmp_path / "c",
    )
    assert run.code == 3, run.err
    line = run.error_line()
    assert "does not decode as the Content-Encoding it names" in line, run.err
    assert WHEEL in line
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())
