"""The public library surface: exports, install/download over mixed sources, all-or-nothing installs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

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
