"""The public library surface: exports, install/download over mixed sources, all-or-nothing installs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import wheelstream
import wheelstream.errors
import wheelstream.zip
from fixtures.wellformed import REAL_WHEELS, WELLFORMED, make_wheel, wheel_filename
from wheelstream.errors import IncompatibleWheel, ResourceGone, WheelstreamError
from wheelstream.testing import Cut, FaultPlan, FaultServer


@pytest.mark.parametrize("module", [wheelstream, wheelstream.errors, wheelstream.zip])
def test_all_is_sorted_and_resolves(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(module, name) is not None


def test_every_error_is_a_wheelstream_error_with_an_exit_code() -> None:
    for name in wheelstream.errors.__all__:
        cls = getattr(wheelstream.errors, name)
        assert issubclass(cls, WheelstreamError)
        assert cls.exit_code in (1, 2, 3, 130)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_mixed_sources_install_and_second_install_fetches_nothing(tmp_path: Path) -> None:
    """copy/hardlink keep the unpacked tree: a second install fetches nothing and unpacks nothing."""
    demo = WELLFORMED["mixed_streamable"]()
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", demo, plan=FaultPlan(Cut(percent=50, requests=1)))
        sources = [
            url + "#sha256=" + hashlib.sha256(demo).hexdigest(),
            str(REAL_WHEELS["six"]),
            REAL_WHEELS["jsonpointer"].as_uri(),
        ]
        first = wheelstream.install(sources, tmp_path / "a", cache_dir=tmp_path / "cache", link_mode="copy")
        assert first.resumed
        assert first.wheels[0].resumed_at is not None
        assert server.bytes_sent("demo-1.0-py3-none-any.whl") == len(demo)
        second = wheelstream.install(
            sources, tmp_path / "b", cache_dir=tmp_path / "cache", link_mode="hardlink"
        )
        assert server.bytes_sent("demo-1.0-py3-none-any.whl") == len(demo)  # zero bytes the second time
        assert second.bytes_fetched == 0
        assert all(w.from_cache for w in second.wheels)
        assert all(w.files_unpacked == 0 for w in second.wheels)
    assert snapshot(tmp_path / "a").keys() == snapshot(tmp_path / "b").keys()
    assert (tmp_path / "a" / "six.py").read_bytes() == (tmp_path / "b" / "six.py").read_bytes()


def test_move_mode_keeps_the_wheel_file_and_installs_the_same_tree(tmp_path: Path) -> None:
    """The default: files are moved out of a tree this process claimed; the cache keeps the wheel file only,
    so the second install needs no network but unpacks again — and both give what copy mode gives."""
    demo = WELLFORMED["mixed_streamable"]()
    cache = tmp_path / "cache"
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", demo, plan=FaultPlan(Cut(percent=50, requests=1)))
        sources = [url, str(REAL_WHEELS["six"])]
        first = wheelstream.install(sources, tmp_path / "a", cache_dir=cache)
        assert first.report is not None
        assert first.report.files_moved > 0
        assert first.report.bytes_written < 4096
        sha = hashlib.sha256(demo).hexdigest()
        assert (cache / "wheels" / f"{sha}.whl").read_bytes() == demo
        assert not (cache / "wheels" / sha).exists()  # nothing kept unpacked
        assert list((cache / "claimed").iterdir()) == []  # claims released
        assert list((cache / "staging").iterdir()) == []
        second = wheelstream.install(sources, tmp_path / "b", cache_dir=cache)
        assert server.bytes_sent("demo-1.0-py3-none-any.whl") == len(demo)  # zero bytes the second time
        assert second.bytes_fetched == 0
        assert second.wheels[0].from_cache
        assert second.wheels[0].files_unpacked > 0  # unpacked again, from the cached wheel file
        third = wheelstream.install(sources, tmp_path / "c", cache_dir=tmp_path / "cache2", link_mode="copy")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b") == snapshot(tmp_path / "c")
    assert third.report is not None
    assert third.report.files_moved == 0
    for name, mode in _modes(tmp_path / "c").items():
        assert _modes(tmp_path / "a")[name] == mode, name


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode for p in root.rglob("*")}


def test_a_spoilt_cached_wheel_file_is_fetched_again(tmp_path: Path) -> None:
    demo = WELLFORMED["mixed_streamable"]()
    cache = tmp_path / "cache"
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", demo)
        wheelstream.install([url], tmp_path / "a", cache_dir=cache)
        cached = cache / "wheels" / f"{hashlib.sha256(demo).hexdigest()}.whl"
        cached.write_bytes(demo[: len(demo) // 2])  # a crash before writeback, say
        again = wheelstream.install([url], tmp_path / "b", cache_dir=cache)
        assert server.bytes_sent("demo-1.0-py3-none-any.whl") == 2 * len(demo)
    assert not again.wheels[0].from_cache
    assert cached.read_bytes() == demo
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_one_failing_source_installs_nothing(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("mine")
    with FaultServer() as server:
        good = server.add_file("demo-1.0-py3-none-any.whl", WELLFORMED["deflate"]())
        with pytest.raises(ResourceGone):
            wheelstream.install(
                [good, server.url_for("gone-1.0-py3-none-any.whl")],
                tmp_path / "target",
                cache_dir=tmp_path / "cache",
            )
    assert snapshot(tmp_path / "target") == {"keep.txt": b"mine"}


def test_incompatible_tags_fail_before_downloading(tmp_path: Path) -> None:
    data = make_wheel({"x/__init__.py": b""}, name="x", tag="cp27-cp27m-win32")
    with FaultServer() as server:
        url = server.add_file(wheel_filename("x", "1.0", "cp27-cp27m-win32"), data)
        with pytest.raises(IncompatibleWheel, match="not supported"):
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "cache")
        assert server.requests == []
        done = wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "cache", ignore_tags=True)
        assert done.report is not None
        assert "x" in done.report.installed


def test_download_keeps_the_wheel_file_and_verifies_it(tmp_path: Path) -> None:
    data = WELLFORMED["stored_descriptor"]()  # needs the central-directory fallback
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", data, plan=FaultPlan(Cut(percent=30, requests=1)))
        result = wheelstream.download([url], tmp_path / "dl", cache_dir=tmp_path / "cache")
    assert (tmp_path / "dl" / "demo-1.0-py3-none-any.whl").read_bytes() == data
    assert result.wheels[0].sha256 == hashlib.sha256(data).hexdigest()


def test_credentials_from_url_and_netrc_reach_the_server_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine 127.0.0.1 login bob password n3trc\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    with FaultServer() as server:
        plain = server.add_file("demo-1.0-py3-none-any.whl", WELLFORMED["deflate"]())
        wheelstream.install([plain], tmp_path / "a", cache_dir=tmp_path / "c1")
        assert server.requests[-1].headers["authorization"] == "Basic Ym9iOm4zdHJj"  # bob:n3trc
        with_user = plain.replace("http://", "http://alice:s3cret@") + "?token=abc"
        wheelstream.install([with_user], tmp_path / "b", cache_dir=tmp_path / "c2")
        assert server.requests[-1].headers["authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret
    direct_url = next((tmp_path / "b").glob("*.dist-info/direct_url.json")).read_text()
    assert "s3cret" not in direct_url
    assert "alice" not in direct_url
    assert "abc" not in direct_url


def test_netrc_applies_to_each_redirect_hop_and_no_password_reaches_httpx_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, httpserver: HTTPServer
) -> None:
    """A wheel URL redirecting to another host (``localhost``) whose netrc entry is bob's: the credentials were
    looked up once, for the first host, and the second got none (pip sends bob's). And a URL with a password,
    with the caller's logging on: httpx logged ``HTTP Request: GET http://alice:s3cret@…``."""
    import logging

    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine localhost login bob password n3trc\ndefault login dflt password DFLTpw\n")
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    name = "demo-1.0-py3-none-any.whl"
    with FaultServer() as target:
        target.add_file(name, WELLFORMED["deflate"]())
        moved = target.url_for(name).replace("127.0.0.1", "localhost", 1)
        httpserver.expect_oneshot_request("/" + name).respond_with_data(
            "", status=302, headers={"Location": moved}
        )
        first = httpserver.url_for("/" + name).replace("localhost", "127.0.0.1", 1)
        wheelstream.install([first], tmp_path / "a", cache_dir=tmp_path / "c1")
        assert (
            httpserver.log[-1][0].headers["Authorization"] == "Basic ZGZsdDpERkxUcHc="
        )  # the first hop: default
        assert target.requests[-1].headers["authorization"] == "Basic Ym9iOm4zdHJj"  # bob:n3trc
        # a hop to a host netrc has no machine entry for gets nothing: not the default login (a server could
        # send that wherever it likes)
        httpserver.expect_oneshot_request("/" + name).respond_with_data(
            "", status=302, headers={"Location": target.url_for(name)}
        )
        wheelstream.install([first], tmp_path / "a2", cache_dir=tmp_path / "c3")
        assert "authorization" not in target.requests[-1].headers
        with_user = target.url_for(name).replace("http://", "http://alice:s3cret@", 1)
        with caplog.at_level(logging.INFO, logger="httpx"):
            wheelstream.install([with_user], tmp_path / "b", cache_dir=tmp_path / "c2")
        assert target.requests[-1].headers["authorization"] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret
    assert "HTTP Request: GET" in caplog.text
    assert "s3cret" not in caplog.text
    assert "alice" not in caplog.text


def test_a_ctrl_c_while_the_claims_are_released_says_the_install_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: after the install, releasing the unpacked trees' claims is the last step; a Ctrl-C there was a
    bare KeyboardInterrupt, which the CLI reported as an install to run again."""
    from wheelstream._cache import Claim
    from wheelstream.errors import Interrupted

    real_release = Claim.release
    calls = [0]

    def release(claim: Claim) -> None:  # the unpacked tree the install moved its files out of
        calls[0] += 1
        real_release(claim)
        raise KeyboardInterrupt

    monkeypatch.setattr(Claim, "release", release)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(WELLFORMED["deflate"]())
    with pytest.raises(Interrupted, match="interrupted after the install finished") as raised:
        wheelstream.install([wheel], tmp_path / "t", cache_dir=tmp_path / "c")
    assert raised.value.installed
    assert calls[0] == 1
    assert list((tmp_path / "t").glob("*.dist-info/RECORD"))


def test_a_second_ctrl_c_while_the_claims_are_released_keeps_saying_the_install_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wheelstream._api as api
    from wheelstream._cache import Claim
    from wheelstream.errors import Interrupted

    def installed(*args: object, **kwargs: object) -> None:
        error = Interrupted("interrupted after the install finished: everything is in the target")
        error.installed = True
        raise error

    def release(claim: Claim) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "install_staged_many", installed)
    monkeypatch.setattr(Claim, "release", release)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(WELLFORMED["deflate"]())
    with pytest.raises(Interrupted) as raised:
        wheelstream.install([wheel], tmp_path / "t", cache_dir=tmp_path / "c")
    assert raised.value.installed


def _one_cached_tree(tmp_path: Path, mode: str) -> tuple[str, Path, Path]:
    """A wheel installed with ``mode`` (copy or hardlink) into ``a``: its URL, its cache, its unpacked tree."""
    demo = make_wheel({"demo/__init__.py": b"X = 1\n" * 50, "demo/data.txt": b"data\n"}, name="demo")
    server = FaultServer()
    server.start()
    url = server.add_file("demo-1.0-py3-none-any.whl", demo)
    cache = tmp_path / "cache"
    wheelstream.install([url], tmp_path / "a", cache_dir=cache, link_mode=mode)  # type: ignore[arg-type]
    tree = cache / "wheels" / hashlib.sha256(demo).hexdigest()
    assert (tree / "demo" / "__init__.py").is_file()
    _SERVERS.append(server)
    return url, cache, tree


_SERVERS: list[FaultServer] = []


@pytest.fixture(autouse=True)
def _stop_servers() -> object:
    yield
    while _SERVERS:
        _SERVERS.pop().stop()


@pytest.mark.parametrize(
    "damage", ["same-size edit", "truncated", "deleted", "edited through a hard link", "torn manifest"]
)
def test_a_cached_tree_that_changed_is_unpacked_anew_not_installed(tmp_path: Path, damage: str) -> None:
    """The cache's unpacked tree is installed without reading its files; one edited in place (through the
    hard link a ``hardlink`` install made, say), shrunk or gone was installed as it was, exit 0, and a torn
    manifest was a traceback on every later install. Each is caught by a stat and unpacked anew."""
    url, cache, tree = _one_cached_tree(tmp_path, "hardlink" if "hard link" in damage else "copy")
    module = tree / "demo" / "__init__.py"
    original = module.read_bytes()
    if damage == "same-size edit":
        module.write_bytes(b"Y" + original[1:])
    elif damage == "truncated":
        module.write_bytes(original[:10])
    elif damage == "deleted":
        module.unlink()
    elif damage == "edited through a hard link":
        with open(tmp_path / "a" / "demo" / "__init__.py", "ab") as installed:
            installed.write(b"import os  # injected\n")
    else:
        manifest = tree.with_name(tree.name + ".manifest.json")
        manifest.write_bytes(manifest.read_bytes()[:20])
    result = wheelstream.install([url], tmp_path / "b", cache_dir=cache, link_mode="copy")
    assert (tmp_path / "b" / "demo" / "__init__.py").read_bytes() == original
    assert result.wheels[0].from_cache  # from the kept wheel file: nothing downloaded again
    wheelstream.install([url], tmp_path / "c", cache_dir=cache, link_mode="copy")
    assert (tmp_path / "c" / "demo" / "__init__.py").read_bytes() == original


def test_library_hashes_take_the_command_lines_form_and_refuse_what_is_no_sha256(tmp_path: Path) -> None:
    data = WELLFORMED["deflate"]()
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", data)
        with pytest.raises(wheelstream.errors.UsageError, match="'xyz' is not a sha256"):
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", hashes={url: "xyz"})
        assert server.requests == []
        sha = hashlib.sha256(data).hexdigest()
        wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", hashes={url: f"sha256:{sha}"})


def test_download_into_a_file_or_nothing_is_said_plainly(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(WELLFORMED["deflate"]())
    with pytest.raises(wheelstream.errors.UsageError, match="dest is not a directory"):
        wheelstream.download([str(wheel)], tmp_path / "afile", cache_dir=tmp_path / "c")
    assert wheelstream.download([], tmp_path / "d", cache_dir=tmp_path / "c").wheels == ()


def test_download_gives_each_directory_a_file_of_its_own(tmp_path: Path) -> None:
    """It hard-linked the cache's file: every directory a wheel went to shared one inode with the cache, so a
    chmod or an edit of one showed in all (pip download writes a file of its own)."""
    data = WELLFORMED["deflate"]()
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", data)
        wheelstream.download([url], tmp_path / "one", cache_dir=tmp_path / "c")
        wheelstream.download([url], tmp_path / "two", cache_dir=tmp_path / "c")
    one, two = tmp_path / "one" / "demo-1.0-py3-none-any.whl", tmp_path / "two" / "demo-1.0-py3-none-any.whl"
    assert one.stat().st_nlink == two.stat().st_nlink == 1
    with open(two, "ab") as spoil:
        spoil.write(b"x")
    assert one.read_bytes() == data


def test_arguments_of_the_wrong_kind_are_usage_errors_before_anything_is_fetched(tmp_path: Path) -> None:
    """Each came out raw from deep inside: ``FileExistsError`` for a cache directory that is a file,
    ``TypeError`` for ``hashes={url: None}``, ``index_url=None`` or an ``httpx.AsyncClient``,
    ``AttributeError`` for a path given as ``environment`` (to ``install``, ``sync`` and ``uninstall``)."""
    import httpx

    from wheelstream.errors import DiskError, UsageError

    (tmp_path / "afile").write_text("")
    c, t = tmp_path / "c", tmp_path / "t"
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", WELLFORMED["deflate"]())
        cases: list[tuple[Callable[[], object], type[Exception], str]] = [
            (
                lambda: wheelstream.install([url], t, cache_dir=tmp_path / "afile"),
                DiskError,
                "cannot use the cache",
            ),
            (
                lambda: wheelstream.install([url], t, cache_dir=tmp_path / "afile" / "c"),
                DiskError,
                "File exists",
            ),
            (
                lambda: wheelstream.install([url], t, cache_dir=c, hashes={url: None}),  # type: ignore[dict-item]
                UsageError,
                "None is neither a hash nor a collection of them",
            ),
            (
                lambda: wheelstream.install([url], t, cache_dir=c, index_url=None),  # type: ignore[arg-type]
                UsageError,
                "index_url must be a URL (str), not NoneType",
            ),
            (
                lambda: wheelstream.download([url], t, cache_dir=c, client=httpx.AsyncClient()),  # type: ignore[arg-type]
                UsageError,
                "client must be an httpx.Client, not AsyncClient",
            ),
            (
                lambda: wheelstream.install([url], environment=str(tmp_path), cache_dir=c),  # type: ignore[arg-type]
                UsageError,
                "environment must be an Environment (wheelstream.find_environment), not str",
            ),
            (
                lambda: wheelstream.sync(tmp_path / "pylock.toml", str(tmp_path), cache_dir=c),  # type: ignore[arg-type]
                UsageError,
                "environment must be an Environment",
            ),
            (
                lambda: wheelstream.uninstall(["demo"], str(tmp_path)),  # type: ignore[arg-type]
                UsageError,
                "env must be an Environment",
            ),
            (
                lambda: wheelstream.find_environment(prefix=tmp_path / "afile"),
                UsageError,
                "is not a directory",
            ),
        ]
        for call, kind, needle in cases:
            with pytest.raises(kind) as raised:
                call()
            assert needle in str(raised.value), raised.value
            assert "\n" not in str(raised.value)
        assert server.requests == []


def test_a_url_of_another_scheme_is_named_as_one_and_one_attempt_is_singular(tmp_path: Path) -> None:
    """``ftp://x/a.whl`` was read as a path: "no such file: ftp:/x/a.whl", its ``//`` gone; a download that
    gave up after its only attempt said "after 1 attempts"."""
    from wheelstream.errors import RetriesExhausted, UsageError
    from wheelstream.testing import Status

    with pytest.raises(UsageError) as raised:
        wheelstream.install(
            ["ftp://user:pw@x/a-1.0-py3-none-any.whl"], tmp_path / "t", cache_dir=tmp_path / "c"
        )
    assert (
        str(raised.value)
        == "unsupported URL scheme 'ftp' (http, https and file are fetched): ftp://x/a-1.0-py3-none-any.whl"
    )
    with FaultServer() as server:
        url = server.add_file(
            "demo-1.0-py3-none-any.whl", WELLFORMED["deflate"](), plan=FaultPlan(Status(503))
        )
        with pytest.raises(RetriesExhausted, match=r"gave up after 1 attempt without progress \(") as gave_up:
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", retries=0)
    assert "nothing was fetched" in str(gave_up.value)


@pytest.mark.parametrize("link_mode", ["move", "copy"])
def test_a_callers_wrong_hashes_leave_the_cached_tree_to_the_others_but_forget_the_url(
    tmp_path: Path, link_mode: str
) -> None:
    """Two allowed hashes, neither the wheel's: the cache removed the wheel's unpacked tree — under another call
    copying from it at that moment ("went while it was copied"). The URL's record still goes (a revalidation
    against the refused copy could be answered 304 forever), so the next install asks for the file whole; the
    tree, reachable by its sha256, is what a hash-pinned call still takes."""
    import hashlib

    from wheelstream.testing import build_wheel

    filename, data = build_wheel("demo", "1.0", payload_size=64 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    with FaultServer() as server:
        url = server.add_file(filename, data)
        first = wheelstream.install([url], tmp_path / "t1", cache_dir=tmp_path / "c", link_mode=link_mode)  # type: ignore[arg-type]
        assert first.bytes_fetched == len(data)
        tree = list((tmp_path / "c" / "wheels").iterdir())
        with pytest.raises(wheelstream.errors.HashMismatch, match="none of the 2 allowed hashes"):
            wheelstream.install(
                [url], tmp_path / "t2", cache_dir=tmp_path / "c", hashes={url: ["a" * 64, "b" * 64]}
            )
        assert list((tmp_path / "c" / "wheels").iterdir()) == tree  # nothing removed under anyone's feet
        pinned = wheelstream.install([f"{url}#sha256={sha}"], tmp_path / "t3", cache_dir=tmp_path / "c")
        assert pinned.bytes_fetched == 0
        again = wheelstream.install([url], tmp_path / "t4", cache_dir=tmp_path / "c")
    assert again.bytes_fetched == len(data)  # the URL asked afresh
    assert not (tmp_path / "t2").exists()


def test_a_progress_callback_failing_on_the_last_event_leaves_no_claimed_tree(tmp_path: Path) -> None:
    """A local wheel's unpacked tree, claimed for the install, stayed claimed (and its lock open) for the life
    of the process when the callback raised on ``finished``: no sweep could take it."""
    import os

    from wheelstream.testing import build_wheel

    filename, data = build_wheel("demo", "1.0", payload_size=64 * 1024)
    wheel = tmp_path / filename
    wheel.write_bytes(data)

    def fail_at_the_end(progress: wheelstream.Progress) -> None:
        if progress.finished:
            raise RuntimeError("the host's display went away")

    before = len(os.listdir("/proc/self/fd"))
    for round_ in range(3):
        with pytest.raises(RuntimeError, match="display went away"):
            wheelstream.install(
                [wheel], tmp_path / f"t{round_}", cache_dir=tmp_path / "c", progress=fail_at_the_end
            )
    claimed = tmp_path / "c" / "claimed"
    assert not (claimed.is_dir() and os.listdir(claimed))
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.timeout(60)
def test_a_progress_callback_asking_for_its_own_wheel_again_is_refused_not_a_deadlock(tmp_path: Path) -> None:
    """The callback runs on the thread holding the URL's download lock: a call for the same URL from there
    waited for that lock, that is for itself, forever (both calls hung)."""
    from wheelstream.errors import UsageError
    from wheelstream.testing import build_wheel

    filename, data = build_wheel("demo", "1.0", payload_size=256 * 1024)
    inner: list[BaseException] = []
    with FaultServer() as server:
        url = server.add_file(filename, data)

        def again(progress: wheelstream.Progress) -> None:
            if progress.bytes_done and not inner:
                try:
                    wheelstream.download([url], tmp_path / "inner", cache_dir=tmp_path / "c")
                except BaseException as exc:
                    inner.append(exc)
                    raise

        with pytest.raises(
            UsageError, match="being downloaded by the call whose progress callback asked for it again"
        ):
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", progress=again)
        assert isinstance(inner[0], UsageError)
        assert wheelstream.install(
            [url], tmp_path / "t", cache_dir=tmp_path / "c"
        ).wheels  # and nothing stuck


def test_a_closed_client_is_a_usage_error_before_anything_starts(tmp_path: Path) -> None:
    import httpx

    from wheelstream.errors import UsageError

    client = httpx.Client()
    client.close()
    with pytest.raises(UsageError, match="client is closed"):
        wheelstream.download(["http://127.0.0.1:9/demo-1.0-py3-none-any.whl"], tmp_path, client=client)


def test_a_progress_callbacks_os_error_while_the_url_is_locked_is_its_own_not_a_disk_error(
    tmp_path: Path,
) -> None:
    """A callback failing with ``BrokenPipeError`` (a host printing to a closed pipe) on the "waiting" event
    came out as ``DiskError: cannot lock …/partial/<key>.lock: Broken pipe``."""
    from wheelstream._cache import Cache, file_lock
    from wheelstream._urls import cache_key
    from wheelstream.testing import build_wheel

    filename, data = build_wheel("demo", "1.0", payload_size=1024)
    with FaultServer() as server:
        url = server.add_file(filename, data)
        cache = Cache.at(tmp_path / "c")

        def closed_pipe(progress: wheelstream.Progress) -> None:
            if progress.message and "waiting" in progress.message:
                raise BrokenPipeError(32, "Broken pipe")

        held = file_lock(cache.lock(cache_key(url)))
        held.acquire()  # as another process fetching it would
        try:
            with pytest.raises(BrokenPipeError):
                wheelstream.download([url], tmp_path / "d", cache_dir=tmp_path / "c", progress=closed_pipe)
        finally:
            held.release()


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_a_callers_cancel_stops_the_call_keeps_the_checkpoint_and_installs_nothing(
    tmp_path: Path, workers: str
) -> None:
    """A call on a thread of its own (``asyncio.to_thread``) could not be stopped: cancelling the task left it
    downloading and then installing into the target. ``cancel`` stops it as Ctrl-C would — here set from the
    progress callback, once bytes flow, which a stalled read waits out no longer than a chunk."""
    import threading
    import time

    from wheelstream.testing import Stall, build_wheel

    filename, data = build_wheel("demo", "1.0", payload_size=4 << 20)
    stop = threading.Event()

    def stop_once_bytes_flow(progress: wheelstream.Progress) -> None:
        if progress.bytes_done > 0:
            stop.set()

    with FaultServer() as server:
        url = server.add_file(filename, data, plan=FaultPlan(Stall(at=2 << 20, seconds=30, requests=[1])))
        started = time.monotonic()
        with pytest.raises(wheelstream.errors.Interrupted) as raised:
            wheelstream.install(
                [url],
                tmp_path / "t",
                cache_dir=tmp_path / "c",
                progress=stop_once_bytes_flow,
                cancel=stop,
                workers=workers,  # type: ignore[arg-type]
            )
        assert time.monotonic() - started < 10  # not the 30 s stall, nor its read timeout
        assert raised.value.exit_code == 130
        assert not (tmp_path / "t").exists()
        again = wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c")
    assert 0 < again.bytes_fetched < len(data)  # resumed from the checkpoint the cancel kept
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()


@pytest.mark.timeout(60)
def test_a_progress_callback_asking_for_its_own_local_wheel_again_is_refused_too(tmp_path: Path) -> None:
    from wheelstream.errors import UsageError
    from wheelstream.testing import build_wheel

    filename, data = build_wheel("demo", "1.0", payload_size=256 * 1024)
    wheel = tmp_path / filename
    wheel.write_bytes(data)
    asked: list[bool] = []

    def again(progress: wheelstream.Progress) -> None:
        if not asked:
            asked.append(True)
            wheelstream.install([wheel], tmp_path / "inner", cache_dir=tmp_path / "c")

    with pytest.raises(UsageError, match="being downloaded by the call whose progress callback asked for it"):
        wheelstream.install([wheel], tmp_path / "t", cache_dir=tmp_path / "c", progress=again)


def test_a_cancel_set_before_the_call_starts_nothing(tmp_path: Path) -> None:
    import threading

    with FaultServer() as server:
        url = server.add_file(wheel_filename(), WELLFORMED["deflate"]())
        stop = threading.Event()
        stop.set()
        with pytest.raises(wheelstream.errors.Interrupted, match="cancelled before any download started"):
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c", cancel=stop)
        assert not server.requests
    with pytest.raises(wheelstream.errors.UsageError, match=r"cancel must be a threading\.Event"):
        wheelstream.download([url], tmp_path / "d", cancel=True)  # type: ignore[arg-type]


def test_a_cancel_while_another_command_holds_the_target_installs_nothing(tmp_path: Path) -> None:
    """The cancel was looked at before the install only: a call waiting for another command's target lock
    went on to install once it was free — after its caller had cancelled it."""
    import threading
    import time

    from wheelstream.installer._ownership import destination_lock

    target = tmp_path / "t"
    target.mkdir()
    stop = threading.Event()
    outcome: list[BaseException | None] = []
    with FaultServer() as server:
        url = server.add_file(wheel_filename(), WELLFORMED["deflate"]())

        def call() -> None:
            try:
                wheelstream.install([url], target, cache_dir=tmp_path / "c", cancel=stop)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - the test reads it
                outcome.append(exc)

        with destination_lock(target, lambda _message: None):  # another command, changing the target
            worker = threading.Thread(target=call)
            worker.start()
            time.sleep(1.5)  # downloaded, checked, waiting for the lock
            stop.set()
            worker.join(10)
            assert not worker.is_alive()
    assert isinstance(outcome[0], wheelstream.errors.Interrupted), outcome
    assert "interrupted before anything in" in str(outcome[0])
    assert list(target.iterdir()) == []


def _cancelled_download(index_url: str, tmp_path: Path, **options: Any) -> float:
    """``download(["demo==1.0"])`` from ``index_url``, cancelled half a second in: the seconds it took to end."""
    import threading
    import time

    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(wheelstream.errors.Interrupted, match="cancelled while asking the index"):
        wheelstream.download(
            ["demo==1.0"],
            tmp_path / "d",
            cache_dir=tmp_path / "c",
            index_url=index_url,
            cancel=stop,
            **options,
        )
    return time.monotonic() - started


def test_a_cancel_does_not_wait_for_an_index_that_never_answers(tmp_path: Path) -> None:
    """A page request a server took and never answered held the caller's cancel until the read timeout (30 s
    here); its socket is shut now, as a stalled download's is."""
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as silent:
        held: list[socket.socket] = []
        threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
        assert _cancelled_download(f"http://127.0.0.1:{silent.getsockname()[1]}/simple/", tmp_path) < 5
        assert held  # the request went out: it was the wait for its answer that the cancel cut
        for conn in held:
            conn.close()


def test_a_cancel_ends_an_index_lookups_retries(httpserver: HTTPServer, tmp_path: Path) -> None:
    """An index answering 503 was asked again with a doubling back-off whatever the caller's cancel said."""
    httpserver.expect_request("/simple/demo/").respond_with_data("busy", status=503)
    elapsed = _cancelled_download(httpserver.url_for("/simple/"), tmp_path, retries=8)
    assert elapsed < 3  # the back-off alone would be 0.25 + 0.5 + … + 10 s
