"""``-r https://…``: a requirements file named by URL, as pip and uv read one — through a real server on
127.0.0.1 (pytest-httpserver for the files, the test bed for the wheels)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from conftest import ws
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from wheelstream.testing import FaultServer, build_wheel


def test_a_requirements_file_by_url_with_a_nested_one_relative_to_it(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    with FaultServer() as server:
        demo, demo_data = build_wheel("demo", "1.0", payload_size=1024)
        other, other_data = build_wheel("other", "2.0", payload_size=512)
        server.add_file(demo, demo_data)
        server.add_file(other, other_data)
        digest = hashlib.sha256(demo_data).hexdigest()
        httpserver.expect_request("/reqs/main.txt").respond_with_data(
            f"--index-url {server.url}/simple/\ndemo==1.0 --hash=sha256:{digest}\n-r extra/more.txt\n"
        )
        httpserver.expect_request("/reqs/extra/more.txt").respond_with_data(
            f"{server.url}/{other} --hash=sha256:{hashlib.sha256(other_data).hexdigest()}\n"
        )
        run = ws(
            "install",
            "-r",
            httpserver.url_for("/reqs/main.txt"),
            "-t",
            str(tmp_path / "t"),
            cache=tmp_path / "c",
        )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()
    assert (tmp_path / "t" / "other" / "payload.bin").is_file()


def test_a_requirements_url_with_credentials_sends_them_and_never_prints_them(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    expected = "Basic " + base64.b64encode(b"alice:s3cr3t").decode()

    def guarded(request: Request) -> Response:
        if request.headers.get("Authorization") != expected:
            return Response("who are you", status=401)
        return Response("nosuch==1.0\n")

    httpserver.expect_request("/private/reqs.txt").respond_with_handler(guarded)
    url = httpserver.url_for("/private/reqs.txt").replace("://", "://alice:s3cr3t@")
    run = ws("download", "-r", url, "--no-index", "-d", str(tmp_path / "d"), cache=tmp_path / "c")
    # read with the credentials: its line is what fails (no index to ask)
    assert run.code == 2, run.err
    assert "nosuch" in run.err, run.err
    assert "s3cr3t" not in run.err


def test_a_requirements_url_that_is_not_there_is_one_line_naming_it(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/gone.txt").respond_with_data("not here", status=404)
    url = httpserver.url_for("/gone.txt")
    run = ws("install", "-r", url, "-t", str(tmp_path / "t"), "--retries", "0", cache=tmp_path / "c")
    assert run.code != 0
    line = run.error_line(alone=True)
    assert f"requirements file {url} answered 404" in line, run.err
    assert not (tmp_path / "t").exists()


def test_a_requirements_file_that_names_its_own_url_is_a_cycle(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/loop.txt").respond_with_data("-r loop.txt\n")
    run = ws(
        "install", "-r", httpserver.url_for("/loop.txt"), "-t", str(tmp_path / "t"), cache=tmp_path / "c"
    )
    assert run.code == 2, run.err
    assert "references itself" in run.err, run.err


def test_a_local_file_may_name_a_remote_one(httpserver: HTTPServer, tmp_path: Path) -> None:
    wheel = tmp_path / "w"
    filename, data = build_wheel("demo", "1.0", payload_size=256)
    wheel.mkdir()
    (wheel / filename).write_bytes(data)
    httpserver.expect_request("/shared.txt").respond_with_data("demo==1.0\n")
    local = tmp_path / "requirements.txt"
    local.write_text(f"--no-index\n--find-links w\n-r {httpserver.url_for('/shared.txt')}\n")
    run = ws("install", "-r", str(local), "-t", str(tmp_path / "t"), cache=tmp_path / "c")
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()


def test_a_cycle_through_urls_names_them_without_their_secrets(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """The chain in "references itself (through …)" was the raw URLs: password and token printed."""
    httpserver.expect_request("/a.txt").respond_with_data("-r b.txt?token=SECRETTOKEN\n")
    httpserver.expect_request("/b.txt").respond_with_data("-r a.txt\n")
    url = httpserver.url_for("/a.txt").replace("://", "://alice:hunter2@")
    run = ws("install", "-r", url, "-t", str(tmp_path / "t"), cache=tmp_path / "c")
    assert run.code == 2, run.err
    assert "references itself" in run.err, run.err
    assert "hunter2" not in run.err
    assert "SECRETTOKEN" not in run.err


def test_a_lock_file_by_url_is_one_line_without_its_password(tmp_path: Path) -> None:
    """It was read as a local path: "cannot read https:/alice:hunter2@…/pylock.toml"."""
    run = ws(
        "install", "-r", "https://alice:hunter2@127.0.0.1:9/pylock.toml", "-t", str(tmp_path), cache=None
    )
    assert run.code == 2, run.err
    assert "a lock file is read from disk: download https://127.0.0.1:9/pylock.toml first" in run.error_line(
        alone=True
    )
    assert "hunter2" not in run.err
