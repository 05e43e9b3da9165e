"""Credentials seen in one of a command's URLs go to its other URLs of the same origin (scheme, host, port), as
pip (by network location) and uv (by realm) send what they have seen for a host to every request there: an
index's to a wheel URL named outright, a ``-r`` URL's to the wheels, index and files it names, one wheel URL's
to another. Never to another origin, and never into the cache or a message. Through a real server that answers
401 without them."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Run, started_server, ws
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import wheelstream
from wheelstream.errors import HTTPStatusError
from wheelstream.testing import build_wheel

USER, TOKEN = "alice", "t0ken-s3cret"
GOOD = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()


class Private:
    """A private host: every path needs the basic credentials; what each request carried is kept."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.files: dict[str, bytes] = {}
        self.seen: list[tuple[str, str | None]] = []
        server.expect_request(re.compile(".*")).respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        self.seen.append((request.path, request.headers.get("Authorization")))
        if request.headers.get("Authorization") != GOOD:
            return Response("who are you?", status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        if request.path in self.files:
            return Response(self.files[request.path], content_type="application/octet-stream")
        if request.path.startswith("/simple/"):
            project = request.path.strip("/").rpartition("/")[2]
            links = "".join(
                f'<a href="{path}#sha256={hashlib.sha256(data).hexdigest()}">{path.rpartition("/")[2]}</a>'
                for path, data in self.files.items()
                if path.rpartition("/")[2].startswith(f"{project}-")
            )
            return Response(f"<html><body>{links}</body></html>", content_type="text/html")
        return Response("no such file", status=404)

    def add(self, name: str, version: str = "1.0") -> str:
        filename, data = build_wheel(name, version, payload_size=2048)
        self.files[f"/files/{filename}"] = bytes(data)
        return f"/files/{filename}"

    def url(self, path: str, *, credentials: bool = False) -> str:
        base = self.server.url_for(path)
        return base.replace("http://", f"http://{USER}:{TOKEN}@") if credentials else base


@pytest.fixture
def private() -> Iterator[Private]:
    yield from (Private(server) for server in started_server())


@pytest.fixture
def other() -> Iterator[Private]:
    """Another origin (another port of 127.0.0.1): it must never see the credentials."""
    yield from (Private(server) for server in started_server())


def test_an_index_s_credentials_go_to_a_wheel_url_of_its_origin(private: Private, tmp_path: Path) -> None:
    path = private.add("alpha")
    wheelstream.install(
        [private.url(path)],
        tmp_path / "t",
        cache_dir=tmp_path / "c",
        index_url=private.url("/simple/", credentials=True),
    )
    assert (tmp_path / "t" / "alpha-1.0.dist-info").is_dir()
    assert private.seen
    assert all(auth == GOOD for _path, auth in private.seen)
    direct = (tmp_path / "t" / "alpha-1.0.dist-info" / "direct_url.json").read_text()
    assert TOKEN not in direct
    assert not any(TOKEN.encode() in p.read_bytes() for p in (tmp_path / "c").rglob("*") if p.is_file())


def test_one_wheel_url_s_credentials_go_to_another_of_its_origin_and_no_further(
    private: Private, other: Private, tmp_path: Path
) -> None:
    first, second = private.add("alpha"), private.add("beta")
    elsewhere = other.add("gamma")
    sources = [private.url(first, credentials=True), private.url(second), other.url(elsewhere)]
    with pytest.raises(HTTPStatusError, match="401"):
        wheelstream.install(sources, tmp_path / "t", cache_dir=tmp_path / "c")
    assert other.seen
    assert all(auth is None for _path, auth in other.seen)
    assert not (tmp_path / "t").exists()
    wheelstream.install(sources[:2], tmp_path / "t", cache_dir=tmp_path / "c")
    assert (tmp_path / "t" / "beta-1.0.dist-info").is_dir()
    assert [auth for path, auth in private.seen if path == second]
    assert all(auth == GOOD for _path, auth in private.seen)


def install_from_requirements(private: Private, target: Path) -> Run:
    """``wheelstream install -r`` the private host's requirements file, named with the credentials."""
    file = private.url("/reqs/requirements.txt", credentials=True)
    return ws("install", "-r", file, "-t", str(target), cache=target.parent / "c")


def test_a_remote_requirements_file_s_credentials_go_to_what_it_names(
    private: Private, other: Private, tmp_path: Path
) -> None:
    """``-r https://user:token@host/requirements.txt`` naming wheels, an index and a nested file on that host
    without credentials: pip and uv send them everywhere there; here they were sent for the file alone and every
    other request was 401."""
    wheel = private.add("alpha")
    private.add("beta", "2.0")
    private.files["/reqs/nested.txt"] = b"beta==2.0\n"
    private.files["/reqs/requirements.txt"] = (
        f"--index-url {private.url('/simple/')}\n{private.url(wheel)}\n-r {private.url('/reqs/nested.txt')}\n"
    ).encode()
    run = install_from_requirements(private, tmp_path / "t")
    assert run.code == 0, run.err
    assert {"alpha-1.0.dist-info", "beta-2.0.dist-info"} <= {p.name for p in (tmp_path / "t").iterdir()}
    assert {path for path, _auth in private.seen} >= {"/reqs/requirements.txt", "/reqs/nested.txt", wheel}
    assert all(auth == GOOD for _path, auth in private.seen)
    assert TOKEN not in run.err + run.out

    gamma = other.add("gamma")  # a wheel of another origin named by that file gets none of them
    private.files["/reqs/requirements.txt"] = f"{other.url(gamma)}\n".encode()
    run = install_from_requirements(private, tmp_path / "u")
    assert run.code == 3, run.err
    assert "401" in run.error_line()
    assert other.seen
    assert all(auth is None for _path, auth in other.seen)
    assert not (tmp_path / "u").exists()


def test_a_lock_whose_one_url_has_credentials_lends_them_and_keeps_its_entries_as_written(
    private: Private, tmp_path: Path
) -> None:
    """The lent credentials were written into the resolved URL, by which the lock's entries are looked up:
    a ``KeyError`` traceback that printed the password, and a ``wheels`` entry taken for an ``archive``."""
    entries = []
    for name, credentials in (("alpha", True), ("beta", False)):
        path = private.add(name)
        data = private.files[path]
        url = private.url(path, credentials=credentials)
        sha = hashlib.sha256(data).hexdigest()
        entries.append(
            f'[[packages]]\nname = "{name}"\nversion = "1.0"\n'
            f'wheels = [{{ url = "{url}", size = {len(data)}, hashes = {{ sha256 = "{sha}" }} }}]\n'
        )
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\ncreated-by = "test"\n\n' + "\n".join(entries))
    run = ws("install", "-r", str(lock), "-t", str(tmp_path / "t"), cache=tmp_path / "c")
    assert run.code == 0, run.err
    assert TOKEN not in run.err + run.out
    assert all(auth == GOOD for _path, auth in private.seen)
    for name in ("alpha", "beta"):  # an index's files: no direct_url.json, as uv and pip install them
        assert not (tmp_path / "t" / f"{name}-1.0.dist-info" / "direct_url.json").exists()


def test_a_remote_requirements_file_s_credentials_go_to_a_name_at_url_on_the_command_line(
    private: Private, tmp_path: Path
) -> None:
    wheel = private.add("alpha")
    private.files["/reqs/requirements.txt"] = b"# nothing but the credentials' source\n"
    run = ws(
        "install",
        f"alpha @ {private.url(wheel)}",
        "-r",
        private.url("/reqs/requirements.txt", credentials=True),
        "-t",
        str(tmp_path / "t"),
        cache=tmp_path / "c",
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "alpha-1.0.dist-info").is_dir()
    assert all(auth == GOOD for _path, auth in private.seen)
    direct = (tmp_path / "t" / "alpha-1.0.dist-info" / "direct_url.json").read_text()
    assert TOKEN not in direct
