"""``--find-links`` and ``--no-index``, pip's options for wheels on hand: ``download`` on one machine, then
``install --no-index --find-links DIR`` on another, with no index to ask — through real files and a real
page server on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Run, ws

import wheelstream
from wheelstream.errors import UsageError
from wheelstream.testing import FaultServer, build_wheel


@contextlib.contextmanager
def _serving_demo() -> Iterator[tuple[FaultServer, str, bytes]]:
    """A test bed serving ``demo`` 1.0 (its index on ``/simple/``, every file listed on ``/``)."""
    with FaultServer() as server:
        filename, data = build_wheel("demo", "1.0", payload_size=1024)
        server.add_file(filename, data)
        yield server, filename, data


def _wheel_in(directory: Path, name: str, version: str, marker: bytes) -> Path:
    filename, data = build_wheel(name, version, files={f"{name}/origin.txt": marker}, payload_size=1024)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / filename).write_bytes(data)
    return directory / filename


def _offline(tmp_path: Path, location: str, *pins: str, into: str) -> Run:
    """``install PINS --no-index -f LOCATION -t tmp/INTO``, the cache in tmp/c: the wheels on hand alone."""
    return ws(
        "install", *pins, "--no-index", "-f", location, "-t", str(tmp_path / into), cache=tmp_path / "c"
    )


def test_wheels_downloaded_on_one_machine_install_on_another_with_no_index(tmp_path: Path) -> None:
    """`-r` files held ``--no-index`` and ``--find-links`` lines that were refused ("unsupported option")."""
    with _serving_demo() as (server, _filename, _data):
        run = ws(
            "download", "demo==1.0", "-i", f"{server.url}/simple/", "-d", str(tmp_path / "wheels"), cache=None
        )
        assert run.code == 0, run.err
    # The server is gone; a fresh cache: nothing but the directory can give the wheel.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--no-index\n--find-links wheels\ndemo==1.0\n")  # relative to the file, as pip
    run = ws("install", "-r", str(requirements), "-t", str(tmp_path / "t"), cache=tmp_path / "fresh")
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()
    run = ws(
        "install",
        "demo==1.0",
        "--no-index",
        "-f",
        str(tmp_path / "wheels"),
        "-t",
        str(tmp_path / "t2"),
        cache=tmp_path / "fresh2",
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t2" / "demo" / "payload.bin").is_file()
    # pip records no direct_url.json for a wheel it found (PEP 610 is for URLs and paths given outright)
    assert not list((tmp_path / "t2").glob("*.dist-info/direct_url.json"))
    assert not list((tmp_path / "t").glob("*.dist-info/direct_url.json"))


def test_a_wheel_on_hand_is_read_in_place_and_the_index_serves_what_is_not(tmp_path: Path) -> None:
    """As pip, the wheels on hand and the index's are candidates together; of equals the one on hand is read
    in place rather than downloaded."""
    local = tmp_path / "local"
    _wheel_in(local, "corp", "1.0", b"on hand")
    _wheel_in(local, "other", "0.9", b"an older one on hand")
    with FaultServer() as server:
        for name, version in (("corp", "1.0"), ("other", "1.0")):
            filename, data = build_wheel(
                name, version, files={f"{name}/origin.txt": b"index"}, payload_size=1024
            )
            server.add_file(filename, data)
        result = wheelstream.install(
            ["corp==1.0", "other==1.0"],
            tmp_path / "t",
            cache_dir=tmp_path / "c",
            index_url=f"{server.url}/simple/",
            find_links=[local],
        )
        asked = [request.path for request in server.requests]
    assert (tmp_path / "t" / "corp" / "origin.txt").read_bytes() == b"on hand"
    assert (tmp_path / "t" / "other" / "origin.txt").read_bytes() == b"index"
    assert "/corp-1.0-py3-none-any.whl" not in asked
    assert result.bytes_fetched > 0  # other's wheel


def test_of_several_wheels_on_hand_the_best_fitting_tag_is_taken(tmp_path: Path) -> None:
    local = tmp_path / "local"
    fitting = _wheel_in(local, "demo", "1.0", b"any")
    unfit = local / fitting.name.replace("py3-none-any", "cp27-cp27m-win32")
    unfit.write_bytes(b"not even a zip: never chosen")
    result = wheelstream.download(
        ["demo==1.0"], tmp_path / "d", cache_dir=tmp_path / "c", find_links=[local], no_index=True
    )
    assert [wheel.filename for wheel in result.wheels] == [fitting.name]


def test_no_index_without_a_wheel_on_hand_names_the_locations(tmp_path: Path) -> None:
    local = tmp_path / "local"
    _wheel_in(local, "demo", "0.9", b"old")
    run = _offline(tmp_path, str(local), "demo==1.0", into="t")
    assert run.code == 2, run.err
    line = run.error_line(alone=True)
    assert (
        f"no wheel for version 1.0 in the --find-links locations ({local}; --no-index: no index asked)"
        in line
    )
    with pytest.raises(
        UsageError,
        match=r"no wheel for version 1.0 in the --find-links locations .* \(wheel versions there: none\)",
    ):
        wheelstream.install(
            ["nothing==1.0"], tmp_path / "t", cache_dir=tmp_path / "c", find_links=[local], no_index=True
        )
    assert not (tmp_path / "t").exists()


def test_a_page_of_links_serves_as_find_links(tmp_path: Path) -> None:
    """The test bed lists every file on ``/``, as ``python -m http.server`` or a bucket's index page would."""
    with _serving_demo() as (server, filename, data):
        run = ws(
            "download",
            "demo==1.0",
            "--no-index",
            "-f",
            f"{server.url}/",
            "-d",
            str(tmp_path / "d"),
            cache=tmp_path / "c",
        )
    assert run.code == 0, run.err
    assert (tmp_path / "d" / filename).read_bytes() == data


def test_a_location_that_is_not_there_is_a_warning_and_skipped(tmp_path: Path) -> None:
    """As pip: "Location … is ignored"; the index still answers."""
    with _serving_demo() as (server, filename, _data):
        run = ws(
            "download",
            "demo==1.0",
            "-f",
            str(tmp_path / "missing"),
            "-i",
            f"{server.url}/simple/",
            "-d",
            str(tmp_path / "d"),
            cache=tmp_path / "c",
        )
    assert run.code == 0, run.err
    assert f"--find-links {tmp_path / 'missing'} is skipped" in run.err
    assert (tmp_path / "d" / filename).is_file()


def test_find_links_must_be_a_list_of_locations(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="find_links must be a list or tuple"):
        wheelstream.download(["x==1"], tmp_path, find_links=str(tmp_path))


def test_a_wheel_on_hand_that_cannot_be_installed_here_leaves_the_choice_to_the_index(tmp_path: Path) -> None:
    """A directory holding another platform's wheel of the version ended the lookup ("no wheel of 1.0 fits"),
    where pip takes the index's."""
    local = tmp_path / "local"
    local.mkdir()
    (local / "corp-1.0-cp27-cp27m-win32.whl").write_bytes(b"never read")
    _install_corp_from_an_index_beside(local, tmp_path)
    assert (tmp_path / "t" / "corp" / "origin.txt").read_bytes() == b"index"


def test_in_hash_checking_mode_the_index_file_with_an_allowed_hash_beats_a_wheel_on_hand(
    tmp_path: Path,
) -> None:
    """pip's rule (``filter_unallowed_hashes``): a stale local build of the version, whose hash nobody
    listed, was taken and then failed its hash check."""
    local = tmp_path / "local"
    _wheel_in(local, "corp", "1.0", b"a stale local build")
    _install_corp_from_an_index_beside(local, tmp_path, hashed=True)
    assert (tmp_path / "t" / "corp" / "origin.txt").read_bytes() == b"index"


def _install_corp_from_an_index_beside(local: Path, tmp_path: Path, *, hashed: bool = False) -> None:
    """``corp==1.0`` into ``tmp_path/t``, with ``local`` as --find-links beside an index serving corp 1.0
    (``corp/origin.txt``: ``index``); ``hashed``: pinned to the index's file's sha256."""
    import hashlib

    with FaultServer() as server:
        filename, data = build_wheel("corp", "1.0", files={"corp/origin.txt": b"index"}, payload_size=1024)
        server.add_file(filename, data)
        wheelstream.install(
            ["corp==1.0"],
            tmp_path / "t",
            cache_dir=tmp_path / "c",
            index_url=f"{server.url}/simple/",
            find_links=[local],
            hashes={"corp==1.0": hashlib.sha256(data).hexdigest()} if hashed else None,
        )


def test_a_page_that_fails_is_a_warning_and_skipped_like_a_missing_directory(tmp_path: Path) -> None:
    with _serving_demo() as (server, filename, _data):
        run = ws(
            "download",
            "demo==1.0",
            "-f",
            f"{server.url}/no/such/page/",
            "-i",
            f"{server.url}/simple/",
            "-d",
            str(tmp_path / "d"),
            cache=tmp_path / "c",
        )
    assert run.code == 0, run.err
    assert f"--find-links {server.url}/no/such/page/ is skipped: --find-links page" in run.err, run.err
    assert (tmp_path / "d" / filename).is_file()


@pytest.mark.parametrize(
    "location",
    ["ftp://alice:s3cr3t@127.0.0.1/simple/", "http://[::1/simple/"],
    ids=["a URL of another scheme with a password", "a URL that cannot be parsed"],
)
def test_a_location_that_cannot_be_used_is_one_warning_without_its_password(
    tmp_path: Path, location: str
) -> None:
    """The warning printed the password (the error after it did not); an unclosed IPv6 bracket was a
    traceback."""
    run = ws(
        "install", "demo==1.0", "--no-index", "-f", location, "-t", str(tmp_path / "t"), cache=tmp_path / "c"
    )
    assert run.code == 2, run.err
    assert "--find-links" in run.err
    assert "is skipped" in run.err
    assert "s3cr3t" not in run.err
    assert "Traceback" not in run.err


def test_a_single_wheel_file_is_a_location_as_in_pip(tmp_path: Path) -> None:
    """``-f dist/demo-1.0-py3-none-any.whl`` (pip takes a file that is not a page as the one archive it
    offers) was skipped as "Not a directory"."""
    wheel = _wheel_in(tmp_path / "dist", "demo", "1.0", b"the file named")
    _wheel_in(tmp_path / "dist", "demo", "2.0", b"beside it, not named")
    run = _offline(tmp_path, str(wheel), "demo==1.0", into="t")
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "origin.txt").read_bytes() == b"the file named"
    run = _offline(tmp_path, wheel.as_uri(), "demo==2.0", into="t2")
    assert run.code == 2, run.err  # only the file named is on hand
    assert "wheel versions there: 1.0" in run.err, run.err


def test_a_local_html_page_links_to_local_and_served_wheels(tmp_path: Path) -> None:
    """A page on disk (pip tells one by its ``.html`` name) may link to files next to it — a server's page may
    not — and to wheels over http."""
    _wheel_in(tmp_path / "site" / "files", "corp", "1.0", b"local, linked")
    _wheel_in(tmp_path / "site" / "files", "corp", "2.0", b"local, not linked")
    with _serving_demo() as (server, filename, _data):
        page = tmp_path / "site" / "links.html"
        page.write_text(
            "<html><body>"
            '<a href="files/corp-1.0-py3-none-any.whl">corp</a>'
            f'<a href="{server.url}/{filename}">demo</a>'
            "<a href='file:///etc/passwd.whl'>a file link is fine here, but no wheel</a>"
            "</body></html>"
        )
        run = _offline(tmp_path, str(page), "corp==1.0", "demo==1.0", into="t")
        assert run.code == 0, run.err
    assert (tmp_path / "t" / "corp" / "origin.txt").read_bytes() == b"local, linked"
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()
    run = _offline(tmp_path, page.as_uri(), "corp==2.0", into="t2")
    assert run.code == 2, run.err
    assert "wheel versions there: 1.0" in run.err, run.err


def test_a_file_that_is_neither_wheel_nor_page_is_a_warning(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a location")
    run = _offline(tmp_path, str(notes), "demo==1.0", into="t")
    assert run.code == 2, run.err
    assert f"--find-links {notes} is skipped: not a directory, a .whl file or an .html page" in run.err


def test_a_page_that_changes_between_calls_is_read_anew(tmp_path: Path) -> None:
    """A page's parsed links are kept for the next pin (a 30,000-link page took ~2 s a pin): keyed by the
    page's bytes, so a page that changed in between is never answered from the old one."""
    files = tmp_path / "site" / "files"
    _wheel_in(files, "corp", "1.0", b"one")
    _wheel_in(files, "corp", "2.0", b"two")
    page = tmp_path / "site" / "links.html"
    page.write_text('<a href="files/corp-1.0-py3-none-any.whl">1</a>')

    def download(pin: str, into: str) -> wheelstream.DownloadResult:
        return wheelstream.download(
            [pin], tmp_path / into, cache_dir=tmp_path / "c", find_links=[page], no_index=True
        )

    download("corp==1.0", "d1")
    with pytest.raises(UsageError, match=r"wheel versions there: 1\.0"):
        download("corp==2.0", "d2")
    page.write_text(page.read_text() + '<a href="files/corp-2.0-py3-none-any.whl">2</a>')
    result = download("corp==2.0", "d3")
    assert [wheel.filename for wheel in result.wheels] == ["corp-2.0-py3-none-any.whl"]


def test_a_symlinked_wheel_or_page_keeps_its_own_name_and_place(tmp_path: Path) -> None:
    """A content-addressed store (git-annex, bazel, nix) links ``demo-1.0-….whl`` to ``blob-abc123``: the
    resolved path's name was taken ("'blob-abc123' is not a wheel file name", exit 1), where pip installs it.
    A linked page's relative links are the link's directory's."""
    wheel = _wheel_in(tmp_path / "store", "demo", "1.0", b"stored")
    blob = wheel.with_name("blob-abc123")
    wheel.rename(blob)
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / wheel.name).symlink_to(blob)
    run = _offline(tmp_path, str(dist / wheel.name), "demo==1.0", into="t")
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "origin.txt").read_bytes() == b"stored"
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "real.html").write_text(f'<a href="{wheel.name}">demo</a>')
    (dist / "links.html").symlink_to(tmp_path / "pages" / "real.html")
    run = _offline(tmp_path, str(dist / "links.html"), "demo==1.0", into="t2")
    assert run.code == 0, run.err
    assert (tmp_path / "t2" / "demo" / "origin.txt").read_bytes() == b"stored"
