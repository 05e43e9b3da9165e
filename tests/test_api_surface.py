"""The library refuses, as the command line does, what it cannot honour: a ``hashes`` key that names no source,
``jobs``/``retries``/``timeout`` outside the command's ranges. Each is a ``UsageError`` before any request."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import wheelstream
from wheelstream.errors import UsageError
from wheelstream.testing import FaultServer, build_wheel


def _served(server: FaultServer) -> str:
    filename, data = build_wheel("demo", "1.0", payload_size=4096)
    return server.add_file(filename, data)


@pytest.mark.parametrize("call", ["install", "download"])
def test_a_hashes_key_that_is_no_source_is_a_usage_error(call: str, tmp_path: Path) -> None:
    with FaultServer() as server:
        url = _served(server)
        with pytest.raises(UsageError, match="'nope', which is none of the sources") as caught:
            getattr(wheelstream, call)(
                [url], tmp_path / "out", cache_dir=tmp_path / "c", hashes={"nope": "0" * 64}
            )
        assert caught.value.exit_code == 2
        assert server.requests == []  # refused before anything was asked for
    assert not (tmp_path / "out").exists()


def test_a_hashes_key_matches_the_source_as_given(tmp_path: Path) -> None:
    """The key is the source string exactly as given (a path object: ``os.fspath`` of it)."""
    _, data = build_wheel("demo", "1.0", payload_size=4096)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(data)
    with pytest.raises(wheelstream.errors.HashMismatch):
        wheelstream.install([wheel], tmp_path / "t", cache_dir=tmp_path / "c", hashes={str(wheel): "0" * 64})


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("jobs", 0, "jobs must be between 1 and 64, not 0"),
        ("jobs", 65, "jobs must be between 1 and 64, not 65"),
        ("retries", -1, "retries must be 0 or more, not -1"),
        ("timeout", 0, "timeout must be a number of seconds above 0 and below 1e9, not 0"),
        ("timeout", -1.5, "timeout must be a number of seconds above 0 and below 1e9, not -1.5"),
    ],
)
@pytest.mark.parametrize("call", ["install", "download"])
def test_options_out_of_the_commands_ranges_are_usage_errors(
    call: str, option: str, value: Any, said: str, tmp_path: Path
) -> None:
    with FaultServer() as server:
        url = _served(server)
        with pytest.raises(UsageError, match=said):
            getattr(wheelstream, call)([url], tmp_path / "out", cache_dir=tmp_path / "c", **{option: value})
        assert server.requests == []


def test_sync_names_its_options(tmp_path: Path) -> None:
    """``sync(lock, env, **options)`` hid them, and a misspelt one was a TypeError naming ``install_lock``."""
    parameters = inspect.signature(wheelstream.sync).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    lock_options = set(inspect.signature(wheelstream.install_lock).parameters)
    assert set(parameters) == lock_options - {"target", "sync", "upgrade", "python", "target_python"}
    with pytest.raises(TypeError, match=r"^sync\(\) got an unexpected keyword argument 'bogus'"):
        wheelstream.sync(tmp_path / "pylock.toml", None, bogus=1)  # type: ignore[arg-type,call-arg]


def _reference() -> str:
    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    return text.partition("\n## Reference\n")[2]


def test_every_public_name_is_in_the_api_reference() -> None:
    """docs/api.md never mentioned nine of them (``InstallResult``, ``Workers``, ``__version__``, ...)."""
    reference = _reference()
    assert reference, "docs/api.md has no '## Reference' section"
    assert [name for name in wheelstream.__all__ if f"`{name}" not in reference] == []


@pytest.mark.parametrize(
    "name", [name for name in wheelstream.__all__ if inspect.isfunction(getattr(wheelstream, name))]
)
def test_each_function_of_the_reference_has_its_signature_written_out(name: str) -> None:
    """The parameters the reference writes for ``def name(...)`` are the function's, in order."""
    found = re.search(rf"^def {name}\((.*?)\) -> ", _reference(), flags=re.MULTILINE | re.DOTALL)
    assert found is not None, f"no 'def {name}(...)' in the reference"
    written = [
        part.split(":")[0].strip()
        for part in re.sub(r"#[^\n]*", "", found.group(1)).split(",")
        if part.strip() and part.strip() != "*" and ":" in part and "[" not in part.split(":")[0]
    ]
    assert written == list(inspect.signature(getattr(wheelstream, name)).parameters)


def test_an_environment_reads_in_a_line_or_two(tmp_path: Path) -> None:
    """``repr`` is what a debugger and a log show: the ~1,700 tags and the marker pairs are left out."""
    env = wheelstream.find_environment(prefix=tmp_path / "prefix")
    shown = repr(env)
    assert len(shown) < 2000, len(shown)
    assert "Tag(" not in shown
