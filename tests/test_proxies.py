"""Proxies from the environment, as pip and uv read them: which requests go through one (``NO_PROXY`` with
address ranges, addresses, domains and ports), and real downloads through a forwarding and a tunnelling
(``CONNECT``) proxy on 127.0.0.1."""

from __future__ import annotations

import http.client
import http.server
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import started_server, ws
from pytest_httpserver import HTTPServer

import wheelstream
from fixtures.wellformed import WELLFORMED
from wheelstream.testing import FaultServer
from wheelstream.transport._proxies import proxy_settings

TLS = Path(__file__).resolve().parent.parent / "fixtures" / "tls"
WHEEL = "demo-1.0-py3-none-any.whl"
PROXY_SETTINGS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")
CA_SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA setting of the machine's leaks into a test (either spelling)."""
    for name in (*PROXY_SETTINGS, *CA_SETTINGS):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("10.0.0.0/8", "http://10.20.30.40/x.whl", True),
        ("10.0.0.0/8", "http://11.0.0.1/x.whl", False),
        ("10.0.0.0/8", "http://10.example/x.whl", False),  # a name is never resolved to match a range
        ("192.168.1.7", "http://192.168.1.7:8080/x.whl", True),
        ("fd00::/8", "http://[fd12::1]/x.whl", True),
        ("[::1]", "http://[::1]:8000/x.whl", True),
        ("::1", "http://[::1]/x.whl", True),
        ("[::1]:8000", "http://[::1]:8001/x.whl", False),
        ("example.com", "http://example.com/x.whl", True),
        ("example.com", "http://files.example.com/x.whl", True),
        ("example.com", "http://notexample.com/x.whl", False),
        (".example.com", "http://example.com/x.whl", True),
        ("*.example.com", "http://a.b.example.com/x.whl", True),
        ("EXAMPLE.com", "http://Files.Example.COM./x.whl", True),
        ("mirror:8080", "http://mirror:8080/x.whl", True),
        ("mirror:8080", "http://mirror/x.whl", False),
        ("mirror:80", "http://mirror/x.whl", True),  # the scheme's port
        ("localhost, 10.0.0.0/8 ,,*", "http://anything/x.whl", True),
        ("", "http://anything/x.whl", False),
    ],
)
def test_no_proxy_decides_which_requests_go_direct(
    environment: pytest.MonkeyPatch, no_proxy: str, url: str, direct: bool
) -> None:
    environment.setenv("HTTP_PROXY", "proxy.internal:3128")
    environment.setenv("NO_PROXY", no_proxy)
    settings = proxy_settings()
    assert settings is not None
    assert settings.proxy_for(httpx.URL(url)) == (None if direct else "http://proxy.internal:3128")


def test_each_scheme_takes_its_own_proxy_else_all_proxy_and_the_lower_case_spelling_wins(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("HTTPS_PROXY", "http://upper:1")
    environment.setenv("https_proxy", "http://lower:2")
    environment.setenv("ALL_PROXY", "socks5://all:3")
    settings = proxy_settings()
    assert settings is not None
    assert settings.proxy_for(httpx.URL("https://pypi.example/x.whl")) == "http://lower:2"
    assert settings.proxy_for(httpx.URL("http://pypi.example/x.whl")) == "socks5://all:3"
    environment.setenv("https_proxy", "")  # an empty lower-case setting unsets the upper-case one
    environment.delenv("ALL_PROXY")
    assert proxy_settings() is None


def test_a_cgi_script_ignores_http_proxy(environment: pytest.MonkeyPatch) -> None:
    """``HTTP_PROXY`` may come from a client's ``Proxy:`` header there (httpoxy, CVE-2016-1000110)."""
    environment.setenv("REQUEST_METHOD", "GET")
    environment.setenv("HTTP_PROXY", "http://attacker:1")
    assert proxy_settings() is None


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy: ``GET http://host/path`` fetched from the origin, ``CONNECT host:port`` tunnelled."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        target = urllib.parse.urlsplit(self.path)
        origin = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        headers = {name: value for name, value in self.headers.items() if name.lower() != "proxy-connection"}
        origin.request("GET", target.path, headers=headers)
        answer = origin.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        origin.close()

    def do_CONNECT(self) -> None:
        self.seen.append(f"CONNECT {self.path}")
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(sockets, [], [], 10)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


def _started_proxy(tls: bool) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Proxy", (_Proxy,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    yield from _started_proxy(tls=False)


@pytest.fixture
def https_proxy() -> Iterator[tuple[str, list[str]]]:
    """A proxy spoken to over TLS, with the test certificate."""
    yield from _started_proxy(tls=True)


@pytest.mark.parametrize(
    ("no_proxy", "proxied"),
    [("10.0.0.0/8", True), ("10.0.0.0/8,127.0.0.0/8", False), ("[::1],127.0.0.1", False)],
)
def test_a_download_goes_through_the_proxy_unless_no_proxy_names_its_host(
    tmp_path: Path, proxy: tuple[str, list[str]], no_proxy: str, proxied: bool
) -> None:
    """``NO_PROXY=127.0.0.0/8`` (a range) went through the proxy, where pip and uv go direct; ``[::1]``
    made every command exit 2 ("cannot read the proxy settings")."""
    address, seen = proxy
    data = WELLFORMED["deflate"]()
    with FaultServer() as server:
        url = server.add_file(WHEEL, data)
        run = ws(
            "install",
            url,
            "--target",
            str(tmp_path / "target"),
            cache=tmp_path / "cache",
            env={"HTTP_PROXY": address, "http_proxy": address, "NO_PROXY": no_proxy, "no_proxy": no_proxy},
        )
    assert run.code == 0, run.err
    assert list((tmp_path / "target").glob("*.dist-info/RECORD"))
    assert seen == ([f"GET {url}"] if proxied else [])


@pytest.fixture
def tls_server() -> Iterator[HTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
    yield from started_server(host="127.0.0.1", port=0, ssl_context=context)


def test_https_goes_through_a_tunnel_and_is_verified_end_to_end(
    environment: pytest.MonkeyPatch, tmp_path: Path, tls_server: HTTPServer, proxy: tuple[str, list[str]]
) -> None:
    address, seen = proxy
    data = WELLFORMED["deflate"]()
    tls_server.expect_request(f"/{WHEEL}").respond_with_data(data, content_type="application/octet-stream")
    environment.setenv("HTTPS_PROXY", address)
    environment.setenv(
        "REQUESTS_CA_BUNDLE", str(TLS / "localhost.pem")
    )  # (OpenSSL reads SSL_CERT_FILE anyway)
    result = wheelstream.install([tls_server.url_for(f"/{WHEEL}")], tmp_path / "t", cache_dir=tmp_path / "c")
    assert result.wheels[0].bytes_fetched == len(data)
    assert seen == [f"CONNECT 127.0.0.1:{tls_server.port}"]

    environment.delenv("REQUESTS_CA_BUNDLE")  # the tunnel does not make an untrusted certificate pass
    with pytest.raises(wheelstream.errors.HTTPStatusError, match="does not verify"):
        wheelstream.install([tls_server.url_for(f"/{WHEEL}")], tmp_path / "t2", cache_dir=tmp_path / "c2")


def test_an_https_proxy_is_verified_against_the_same_cas_as_the_servers(
    environment: pytest.MonkeyPatch, tmp_path: Path, https_proxy: tuple[str, list[str]]
) -> None:
    """The connection to the proxy itself was verified against httpcore's defaults (certifi), so a company's
    proxy whose CA the environment names, or the system's store holds, failed where pip goes through."""
    address, seen = https_proxy
    data = WELLFORMED["deflate"]()
    with FaultServer() as server:
        url = server.add_file(WHEEL, data)
        environment.setenv("HTTP_PROXY", address)
        environment.setenv("REQUESTS_CA_BUNDLE", str(TLS / "localhost.pem"))
        result = wheelstream.install([url], tmp_path / "t0", cache_dir=tmp_path / "c0")
        assert result.wheels[0].bytes_fetched == len(data)
        assert seen == [f"GET {url}"]

        environment.delenv("REQUESTS_CA_BUNDLE")
        seen.clear()
        with pytest.raises(wheelstream.errors.HTTPStatusError) as raised:
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c")
        assert "(or of the https proxy 127.0.0.1) does not verify" in str(raised.value)
        assert seen == []
