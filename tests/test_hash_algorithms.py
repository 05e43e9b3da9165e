"""Pins by sha384 and sha512 (pip's ``--hash`` algorithms) and by any hash a URL's fragment names (pip reads
md5, sha1, sha224, sha256, sha384 and sha512 there): any allowed pin of any algorithm matching is enough, as in
pip; a sha256 is checked while the wheel streams, the others on the finished file. A wheel that matches none
is refused with every digest compared, and the target is untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import Run, ws
from packaging.tags import Tag
from packaging.version import Version
from pytest_httpserver import HTTPServer

import wheelstream
from wheelstream._cache import Cache
from wheelstream._urls import cache_key
from wheelstream.errors import HashMismatch, UsageError
from wheelstream.index._choose import choose
from wheelstream.index._pages import IndexFile
from wheelstream.testing import FaultServer, build_wheel

WHEEL = "demo-1.0-py3-none-any.whl"


def served(server: FaultServer) -> tuple[str, bytes]:
    filename, data = build_wheel("demo", "1.0", payload_size=8192)
    return server.add_file(filename, data), bytes(data)


def digest(name: str, data: bytes) -> str:
    return hashlib.new(name, data).hexdigest()


def install_requirements(tmp_path: Path, text: str, target: str, cache: Path, *options: str) -> Run:
    """``install -r`` of a requirements file holding ``text`` into ``tmp_path / target``."""
    (tmp_path / "r.txt").write_text(text)
    return ws("install", "-r", str(tmp_path / "r.txt"), *options, "-t", str(tmp_path / target), cache=cache)


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_a_hash_option_by_sha384_or_sha512_installs_the_wheel_it_names_and_refuses_another(
    server: FaultServer, cache: Path, tmp_path: Path, algorithm: str
) -> None:
    url, data = served(server)
    run = ws(
        "install",
        url,
        "--hash",
        f"{algorithm}:{digest(algorithm, data)}",
        "-t",
        str(tmp_path / "t"),
        cache=cache,
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo-1.0.dist-info" / "RECORD").is_file()

    wrong = "0" * len(digest(algorithm, data))
    run = ws("install", url, "--hash", f"{algorithm}={wrong}", "-t", str(tmp_path / "u"), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line() == (
        f"error: {WHEEL}: sha256 is {digest('sha256', data)}, {algorithm} is {digest(algorithm, data)}, none of "
        "the 1 allowed hashes; refused"
    )
    assert not (tmp_path / "u").exists()
    assert Cache(cache).remembered(cache_key(url)) is None  # the refused wheel's URL is forgotten


def test_several_algorithms_on_one_line_allow_the_wheel_when_any_matches(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """pip's ``Hashes``: a wheel passes when one pin of one algorithm matches, whatever the others say."""
    url, data = served(server)
    text = f"{url} --hash=sha256:{'a' * 64} --hash=sha512:{digest('sha512', data)} --hash=sha384:{'b' * 96}\n"
    run = install_requirements(tmp_path, text, "t", cache)
    assert run.code == 0, run.err
    run = install_requirements(
        tmp_path, f"{url} --hash=sha256:{'a' * 64} --hash=sha512:{'c' * 128}\n", "u", cache
    )
    assert run.code == 1, run.err
    assert "none of the 2 allowed hashes; refused" in run.error_line()
    assert f"sha512 is {digest('sha512', data)}" in run.error_line()
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("md5:" + "0" * 32, "command line"),  # pip: only sha256, sha384, sha512 for --hash
        ("sha512:" + "0" * 127, "command line"),
        ("sha1:" + "0" * 40, "command line"),
    ],
)
def test_a_hash_option_of_a_weak_algorithm_or_a_wrong_length_is_a_usage_error(
    server: FaultServer, cache: Path, tmp_path: Path, value: str, where: str
) -> None:
    url, _data = served(server)
    run = ws("install", url, "--hash", value, "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 2, run.err
    assert run.error_line() == (
        f"error: {where}: --hash must be sha256:, sha384: or sha512: and the digest's 64, 96 or 128 hex digits, "
        f"got {value!r}"
    )
    assert server.requests == []


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha224", "sha384", "sha512"])
def test_a_url_fragment_of_another_hash_is_checked_on_the_finished_file(
    server: FaultServer, cache: Path, tmp_path: Path, algorithm: str
) -> None:
    """It was refused outright ("only #sha256= is checked"); pip and uv hold the file to it."""
    url, data = served(server)
    right = digest(algorithm, data)
    run = ws("install", f"{url}#egg=demo&{algorithm}={right.upper()}", "-t", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    wrong = "f" * len(right)
    run = ws("install", f"{url}#{algorithm}={wrong}", "-t", str(tmp_path / "u"), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line() == f"error: {WHEEL}: {algorithm} is {right}, the URL names {wrong}; refused"
    assert not (tmp_path / "u").exists()


def test_a_url_fragment_of_another_hash_counts_in_hash_checking_mode(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    url, data = served(server)
    run = ws(
        "install",
        "--require-hashes",
        f"{url}#sha512={digest('sha512', data)}",
        "-t",
        str(tmp_path / "t"),
        cache=cache,
    )
    assert run.code == 0, run.err
    run = ws("install", "--require-hashes", url, "-t", str(tmp_path / "u"), cache=cache)
    assert run.code == 2, run.err
    assert "every source needs one" in run.error_line()


def test_an_index_pin_held_to_a_sha512_checks_the_listed_sha256_while_streaming_and_the_sha512_after(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    _url, data = served(server)
    index = f"{server.url}/simple/"
    run = install_requirements(
        tmp_path, f"demo==1.0 --hash=sha512:{digest('sha512', data)}\n", "t", cache, "-i", index
    )
    assert run.code == 0, run.err
    run = install_requirements(tmp_path, f"demo==1.0 --hash=sha512:{'1' * 128}\n", "u", cache, "-i", index)
    assert run.code == 1, run.err
    assert run.error_line().endswith("none of the 1 allowed hashes; refused")
    assert not (tmp_path / "u").exists()


def test_an_index_file_listed_with_an_allowed_sha512_is_preferred() -> None:
    """pip's ``filter_unallowed_hashes`` reads every hash a page lists: the build-tagged file would win on its
    own, but only the other is listed with an allowed hash."""
    plain = IndexFile(
        "demo-1.0-py3-none-any.whl", "https://h/a.whl", None, None, None, (("sha512", "ab" * 64),)
    )
    built = IndexFile("demo-1.0-1-py3-none-any.whl", "https://h/b.whl", "cd" * 32, None, None, ())
    tags = [Tag("py3", "none", "any")]
    assert choose([plain, built], "demo", Version("1.0"), tags, None, "demo==1.0").url == "https://h/b.whl"
    chosen = choose(
        [plain, built], "demo", Version("1.0"), tags, None, "demo==1.0", allowed={f"sha512:{'ab' * 64}"}
    )
    assert chosen.url == "https://h/a.whl"


def test_library_hashes_take_sha384_and_sha512(tmp_path: Path) -> None:
    with FaultServer() as server:
        url, data = served(server)
        with pytest.raises(UsageError, match=r"is not a sha256 .*, sha384:HEX or sha512:HEX"):
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", hashes={url: "sha512:abc"})
        assert server.requests == []
        with pytest.raises(HashMismatch, match="none of the 1 allowed hashes"):
            wheelstream.install(
                [url], tmp_path / "t", cache_dir=tmp_path / "c", hashes={url: f"sha384:{'0' * 96}"}
            )
        assert not (tmp_path / "t").exists()
        pins = [f"SHA384:{digest('sha384', data).upper()}", "0" * 64]
        wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", hashes={url: pins})
        assert (tmp_path / "t" / "demo-1.0.dist-info").is_dir()


@pytest.mark.parametrize("how", ["file deleted", "local install"])
def test_a_cached_tree_without_its_wheel_file_is_fetched_again_for_a_sha512(tmp_path: Path, how: str) -> None:
    """The cache may hold a wheel's unpacked tree alone: an install of the local file in copy or hardlink mode
    publishes no wheel file (or it was deleted by hand). Nothing is left to read a sha512 from, so the tree will
    not do: the wheel is downloaded again (it failed, and dropped the tree another call may be copying from)."""
    with FaultServer() as server:
        url, data = served(server)
        cache_dir = tmp_path / "c"
        sha = digest("sha256", data)
        if how == "local install":
            (tmp_path / WHEEL).write_bytes(data)
            wheelstream.install(
                [str(tmp_path / WHEEL)], tmp_path / "t", cache_dir=cache_dir, link_mode="copy"
            )
        else:
            wheelstream.install([url], tmp_path / "t", cache_dir=cache_dir, link_mode="copy")
            (cache_dir / "wheels" / f"{sha}.whl").unlink()
        assert (cache_dir / "wheels" / sha).is_dir()
        assert not (cache_dir / "wheels" / f"{sha}.whl").exists()
        pinned = f"{url}#sha256={sha}"  # the tree is found by its sha256
        before = len(server.requests)
        pin = {pinned: f"sha512:{digest('sha512', data)}"}
        wheelstream.install([pinned], tmp_path / "u", cache_dir=cache_dir, link_mode="copy", hashes=pin)
        assert (tmp_path / "u" / "demo-1.0.dist-info").is_dir()
        assert [r.status for r in server.requests[before:] if r.method == "GET"] == [200]
        assert (cache_dir / "wheels" / f"{sha}.whl").is_file()
        bad = {pinned: f"sha512:{'5' * 128}"}
        with pytest.raises(HashMismatch, match=f"sha512 is {digest('sha512', data)}"):
            wheelstream.install([pinned], tmp_path / "v", cache_dir=cache_dir, link_mode="copy", hashes=bad)
        assert (cache_dir / "wheels" / sha).is_dir()  # a refusal drops no tree


def test_a_path_source_is_read_for_its_sha512(tmp_path: Path) -> None:
    filename, data = build_wheel("demo", "1.0", payload_size=2048)
    local = tmp_path / filename
    local.write_bytes(bytes(data))
    pin = {str(local): f"sha512:{digest('sha512', bytes(data))}"}
    wheelstream.install([str(local)], tmp_path / "t", cache_dir=tmp_path / "c", hashes=pin)
    assert (tmp_path / "t" / "demo-1.0.dist-info").is_dir()
    with pytest.raises(HashMismatch, match=f"sha512 is {digest('sha512', bytes(data))}"):
        wheelstream.install(
            [str(local)], tmp_path / "u", cache_dir=tmp_path / "c", hashes={str(local): f"sha512:{'2' * 128}"}
        )
    assert not (tmp_path / "u").exists()


def test_an_index_without_sha256_listing_sha512_and_a_matching_hash_option(
    httpserver: HTTPServer, cache: Path, tmp_path: Path
) -> None:
    """The page lists only a sha512; the ``--hash`` is that sha512: nothing to check while streaming, both on
    the finished file."""
    filename, data = build_wheel("beta", "2.0")
    sha512 = digest("sha512", bytes(data))
    page = f'<a href="/files/{filename}#sha512={sha512}">{filename}</a>'
    httpserver.expect_request("/simple/beta/").respond_with_data(page, content_type="text/html")
    httpserver.expect_request(f"/files/{filename}").respond_with_data(bytes(data))
    req = tmp_path / "r.txt"
    req.write_text(f"beta==2.0 --hash=sha512:{sha512}\n")
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
    assert (tmp_path / "t" / "beta-2.0.dist-info").is_dir()


# -- what a review of the above found: a second read must be of the bytes unpacked -----------------------------


def test_a_local_wheel_rewritten_after_it_was_unpacked_is_refused_not_checked_anew(tmp_path: Path) -> None:
    """The sha512 is read off the file after the unpack read it: a file rewritten in between (another process)
    had its new bytes checked and the old ones installed. The second read is held to the first's sha256."""
    filename, good = build_wheel("demo", "1.0", files={"demo/code.py": b"GOOD = 1\n"})
    _same, evil = build_wheel("demo", "1.0", files={"demo/code.py": b"import os  # EVIL\n"})
    local = tmp_path / filename
    local.write_bytes(bytes(evil))

    def rewrite(progress: wheelstream.Progress) -> None:
        if progress.finished:
            local.write_bytes(bytes(good))

    pin = {str(local): f"sha512:{digest('sha512', bytes(good))}"}
    with pytest.raises(HashMismatch, match="changed while it was read"):
        wheelstream.install(
            [str(local)], tmp_path / "t", cache_dir=tmp_path / "c", hashes=pin, progress=rewrite
        )
    assert not (tmp_path / "t").exists()


def test_download_copies_only_the_bytes_it_verified(tmp_path: Path) -> None:
    """``download -d`` copied the cache's wheel file without reading its hash: a copy spoilt since it was
    verified (the file is not synced; a crash) went into the wheelhouse under a good name. Now the copy is
    hashed as it is made; the spoilt wheel is dropped from the cache, and the next call downloads it afresh."""
    with FaultServer() as server:
        url, data = served(server)
        cache_dir = tmp_path / "c"
        wheelstream.install([url], tmp_path / "t", cache_dir=cache_dir, link_mode="hardlink")
        sha = digest("sha256", data)
        (cache_dir / "wheels" / f"{sha}.whl").write_bytes(b"\0" * len(data))
        with pytest.raises(HashMismatch, match="gone or spoilt"):
            wheelstream.download([url], tmp_path / "d", cache_dir=cache_dir, hashes={url: sha})
        assert not (tmp_path / "d" / WHEEL).exists()
        wheelstream.download([url], tmp_path / "d", cache_dir=cache_dir, hashes={url: sha})
        assert (tmp_path / "d" / WHEEL).read_bytes() == data


def test_a_spoilt_cached_file_with_a_known_sha256_is_dropped_so_the_next_run_downloads_it(
    tmp_path: Path,
) -> None:
    """With the sha256 known (a ``#sha256=``, an index's listing) the cache's tree is taken by it; a sha512 pin
    then read a spoilt or missing file and failed the same way on every run, naming the wrong digest."""
    with FaultServer() as server:
        url, data = served(server)
        cache_dir = tmp_path / "c"
        sha = digest("sha256", data)
        wheelstream.install([url], tmp_path / "t", cache_dir=cache_dir, link_mode="copy")
        (cache_dir / "wheels" / f"{sha}.whl").write_bytes(b"\0" * len(data))
        pinned = f"{url}#sha256={sha}"
        pin = {pinned: f"sha512:{digest('sha512', data)}"}
        with pytest.raises(HashMismatch, match="gone or spoilt"):
            wheelstream.install([pinned], tmp_path / "u", cache_dir=cache_dir, link_mode="copy", hashes=pin)
        assert not (tmp_path / "u").exists()
        wheelstream.install([pinned], tmp_path / "u", cache_dir=cache_dir, link_mode="copy", hashes=pin)
        assert (tmp_path / "u" / "demo-1.0.dist-info").is_dir()


def test_fetch_wheel_checks_a_fragment_s_other_hashes(tmp_path: Path) -> None:
    """The library's one-wheel call read ``#sha512=`` and then ignored it (before, it refused it)."""
    from wheelstream.transport import new_client

    with FaultServer() as server, new_client(30) as client:
        url, data = served(server)
        cache = Cache.at(tmp_path / "c")
        with pytest.raises(HashMismatch, match=f"sha512 is {digest('sha512', data)}, the URL names"):
            wheelstream.fetch.fetch_wheel(f"{url}#sha512={'0' * 128}", cache=cache, client=client)
        result = wheelstream.fetch.fetch_wheel(
            f"{url}#sha512={digest('sha512', data)}", cache=cache, client=client
        )
        assert result.sha256 == digest("sha256", data)


def test_a_find_links_page_s_hashes_hold_for_a_wheel_on_disk(cache: Path, tmp_path: Path) -> None:
    """A page's ``file:`` link with ``#sha512=`` (or ``#sha256=``) pins the wheel read in place, as pip holds it;
    the hashes were dropped for links to files on disk."""
    filename, data = build_wheel("demo", "1.0", payload_size=1024)
    (tmp_path / filename).write_bytes(bytes(data))
    page = tmp_path / "links.html"
    for fragment, code in (
        (f"sha512={'0' * 128}", 1),
        (f"sha256={'0' * 64}", 1),
        (f"sha512={digest('sha512', bytes(data))}", 0),
    ):
        page.write_text(f'<a href="{(tmp_path / filename).as_uri()}#{fragment}">{filename}</a>')
        target = tmp_path / f"t{code}{fragment[:4]}"
        run = ws("install", "demo==1.0", "--no-index", "-f", str(page), "-t", str(target), cache=cache)
        assert run.code == code, run.err
        assert target.exists() == (code == 0)


def test_one_source_pinned_twice_by_different_algorithms_says_so(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """Two lines for one source, one by sha256 and one by sha512: one file may match both, but neither set
    narrows the other; "no file can match both" was false."""
    url, data = served(server)
    text = f"{url} --hash=sha256:{digest('sha256', data)}\n{url} --hash=sha512:{digest('sha512', data)}\n"
    run = install_requirements(tmp_path, text, "t", cache)
    assert run.code == 2, run.err
    assert run.error_line().endswith(
        "its --hash values and those given for it before have none in common: they pin it by different "
        "algorithms (sha256 and sha512): give the same algorithm on each"
    )


def tree_without_its_file(server: FaultServer, tmp_path: Path) -> tuple[str, bytes, Path]:
    """The served wheel's URL pinned by its sha256, and a cache holding its unpacked tree but no wheel file (an
    install of the same wheel from a local file in copy mode keeps none): ``(pinned URL, bytes, cache dir)``."""
    url, data = served(server)
    (tmp_path / WHEEL).write_bytes(data)
    cache_dir = tmp_path / "c"
    wheelstream.install([str(tmp_path / WHEEL)], tmp_path / "t", cache_dir=cache_dir, link_mode="copy")
    return f"{url}#sha256={digest('sha256', data)}", data, cache_dir


def test_download_after_a_local_install_fetches_the_file_the_cache_never_kept(tmp_path: Path) -> None:
    """An install of the local wheel in copy mode caches its tree without a file; ``download -d`` of that wheel's
    URL (pinned, so the tree is found) then failed on every run ("went before it was copied")."""
    with FaultServer() as server:
        pinned, data, cache_dir = tree_without_its_file(server, tmp_path)
        wheelstream.download([pinned], tmp_path / "d", cache_dir=cache_dir)
        assert (tmp_path / "d" / WHEEL).read_bytes() == data
        assert [r.status for r in server.requests if r.method == "GET"] == [200]


def test_a_dry_run_says_a_tree_without_its_file_is_downloaded_for_a_sha512(tmp_path: Path) -> None:
    with FaultServer() as server:
        pinned, data, cache_dir = tree_without_its_file(server, tmp_path)
        unpinned = wheelstream.plan_install([pinned], tmp_path / "u", cache_dir=cache_dir)
        assert [wheel.fetch for wheel in unpinned.install] == ["cached"]
        pin = {pinned: f"sha512:{digest('sha512', data)}"}
        plan = wheelstream.plan_install([pinned], tmp_path / "u", cache_dir=cache_dir, hashes=pin)
        assert [wheel.fetch for wheel in plan.install] == ["download"]
