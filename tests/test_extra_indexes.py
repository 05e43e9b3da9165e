"""Several indexes (``--extra-index-url``, pip's option, in uv's order): the extra indexes are asked first, in
order, then ``--index-url``, and a project comes from the first index that lists it — through two real
index servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ws
from pytest_httpserver import HTTPServer

import wheelstream
from wheelstream.errors import UsageError
from wheelstream.testing import FaultServer, build_wheel


@pytest.fixture
def public() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def private() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _publish(server: FaultServer, name: str, version: str, marker: bytes) -> bytes:
    filename, data = build_wheel(name, version, files={f"{name}/origin.txt": marker})
    server.add_file(filename, data)
    return data


def test_a_project_comes_from_the_first_index_that_lists_it(
    public: FaultServer, private: FaultServer, tmp_path: Path
) -> None:
    """A public index cannot shadow a private project: ``==1.0`` matches ``1.0+evil`` (a local version), which
    pip, merging the indexes, would take as the higher one."""
    _publish(private, "corp", "1.0", b"private")
    _publish(public, "corp", "1.0+evil", b"public")
    _publish(public, "six", "1.16.0", b"public")  # not on the private index: asked on the next one
    run = ws(
        "install",
        "corp==1.0",
        "six==1.16.0",
        "--index-url",
        f"{public.url}/simple/",
        "--extra-index-url",
        f"{private.url}/simple/",
        "-t",
        str(tmp_path / "t"),
        cache=tmp_path / "c",
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "corp" / "origin.txt").read_bytes() == b"private"
    assert (tmp_path / "t" / "six" / "origin.txt").read_bytes() == b"public"


def test_a_requirements_file_names_extra_indexes_as_pip_compile_writes_them(
    public: FaultServer, private: FaultServer, tmp_path: Path
) -> None:
    """``--extra-index-url https://download.pytorch.org/whl/cpu`` in a pip-compile output was refused
    ("unsupported option"), so the whole file was."""
    _publish(private, "torchish", "2.0+cpu", b"cpu build")
    _publish(public, "torchish", "2.0", b"default build")
    _publish(public, "numpyish", "1.0", b"public")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"--index-url {public.url}/simple/\n--extra-index-url {private.url}/simple/\ntorchish==2.0\nnumpyish==1.0\n"
    )
    run = ws("download", "-r", str(requirements), "-d", str(tmp_path / "d"), cache=tmp_path / "c")
    assert run.code == 0, run.err
    assert sorted(path.name for path in (tmp_path / "d").iterdir()) == [
        "numpyish-1.0-py3-none-any.whl",
        "torchish-2.0+cpu-py3-none-any.whl",
    ]


def test_a_version_missing_from_the_first_index_listing_the_project_is_not_looked_for_elsewhere(
    public: FaultServer, private: FaultServer, tmp_path: Path
) -> None:
    _publish(private, "corp", "1.0", b"private")
    _publish(public, "corp", "2.0", b"public")
    with pytest.raises(UsageError) as raised:
        wheelstream.install(
            ["corp==2.0"],
            tmp_path / "t",
            cache_dir=tmp_path / "c",
            index_url=f"{public.url}/simple/",
            extra_index_urls=[f"{private.url}/simple/"],
        )
    message = str(raised.value)
    assert "no wheel for version 2.0" in message, message
    assert (
        f"on the index {private.url}/simple/, the first index listing 'corp' and the only one asked"
        in message
    )
    assert not (tmp_path / "t").exists()


def test_a_project_on_no_index_names_them_all(
    public: FaultServer, private: FaultServer, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="no project 'nowhere' on the indexes") as raised:
        wheelstream.download(
            ["nowhere==1.0"],
            tmp_path / "d",
            cache_dir=tmp_path / "c",
            index_url=f"{public.url}/simple/",
            extra_index_urls=(f"{private.url}/simple/",),
        )
    assert f"{public.url}/simple/" in str(raised.value)
    assert f"{private.url}/simple/" in str(raised.value)


def test_extra_indexes_must_be_a_list_of_urls(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="extra_index_urls must be a list or tuple of URLs"):
        wheelstream.download(["x==1"], tmp_path, extra_index_urls="http://one.example/simple/")


def test_a_lock_file_refuses_extra_indexes(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "x"\n')
    run = ws(
        "install",
        "-r",
        str(lock),
        "--extra-index-url",
        "http://127.0.0.1:9/simple/",
        "-t",
        "t",
        cache=None,
        cwd=tmp_path,
    )
    assert run.code == 2, run.err
    assert "--extra-index-url, --find-links and --no-index do not apply to it" in run.error_line(alone=True)


@pytest.mark.parametrize("status", [503, 500, 401, 403])
def test_an_extra_index_that_fails_ends_the_lookup_rather_than_falling_through(
    public: FaultServer, httpserver: HTTPServer, tmp_path: Path, status: int
) -> None:
    """Only "no such project" (404, 410) moves on to the next index: a private index that is down, or refuses
    us, must not let the public one serve its project's name."""
    _publish(public, "corp", "1.0", b"public")
    httpserver.expect_request("/simple/corp/").respond_with_data("no", status=status)
    with pytest.raises(wheelstream.errors.WheelstreamError) as raised:
        wheelstream.install(
            ["corp==1.0"],
            tmp_path / "t",
            cache_dir=tmp_path / "c",
            index_url=f"{public.url}/simple/",
            extra_index_urls=[httpserver.url_for("/simple/")],
            retries=0,
        )
    assert str(status) in str(raised.value)
    assert not (tmp_path / "t").exists()
    assert not [r for r in public.requests if r.path.endswith(".whl")]
