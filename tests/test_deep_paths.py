"""Deep and long entry names: refused by documented limits, never a traceback, nothing left behind.

A name nested ~1000 directories deep used to end in a ``RecursionError`` inside the extractor (and a staging
directory left in the cache); a name longer than the file system allows, in ``ENAMETOOLONG`` from wherever
it surfaced. The parser now refuses names past ``MAX_NAME_COMPONENTS`` / ``MAX_NAME_BYTES`` /
``MAX_COMPONENT_BYTES`` (so the outcome does not depend on the cache directory's path), the extractor makes
directories without recursion, and an ``ENAMETOOLONG`` that a very long cache path still causes is one line.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.wellformed import make_wheel, write_wheel
from fixtures.zipbuild import Member, build
from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, unpack_local
from wheelstream.unpack._extract import Extractor
from wheelstream.zip import EntryFinished, ZipStreamParser
from wheelstream.zip._names import MAX_COMPONENT_BYTES, MAX_NAME_BYTES, MAX_NAME_COMPONENTS

ROOT = Path(__file__).resolve().parent.parent


def _names(*names: str) -> list[str]:
    parser = ZipStreamParser()
    events = parser.feed(build([Member(name, b"x = 1\n") for name in names])) + parser.feed(b"")
    return [e.entry.name for e in events if isinstance(e, EntryFinished)]


def test_names_at_every_limit_are_accepted() -> None:
    deepest = "d/" * (MAX_NAME_COMPONENTS - 1) + "x.py"
    longest = "/".join(["c" * 200] * 5) + "/" + "x" * (MAX_NAME_BYTES - 1005)
    widest = "p/" + "w" * (MAX_COMPONENT_BYTES - 3) + ".py"
    wide_utf8 = "u/" + "é" * (MAX_COMPONENT_BYTES // 2) + "x"  # 2 bytes a character
    assert len(longest.encode()) == MAX_NAME_BYTES
    assert len(wide_utf8.encode()) - 2 == MAX_COMPONENT_BYTES
    names = [deepest, longest, widest, wide_utf8]
    assert _names(*names) == names


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("d/" * MAX_NAME_COMPONENTS + "x.py", f"{MAX_NAME_COMPONENTS + 1} components"),
        ("deep/" + "a/" * 1000 + "x.py", "1002 components"),
        ("p/" + "w" * (MAX_COMPONENT_BYTES - 2) + ".py", f"{MAX_COMPONENT_BYTES + 1}-byte component"),
        ("u/" + "é" * (MAX_COMPONENT_BYTES // 2 + 1), f"{2 * (MAX_COMPONENT_BYTES // 2 + 1)}-byte component"),
        ("/".join(["c" * 200] * 6), f"{200 * 6 + 5} bytes long"),
    ],
    ids=["one-too-deep", "a-thousand-deep", "component-255+1", "component-utf8", "name-too-long"],
)
def test_names_past_a_limit_are_unsafe_paths(name: str, reason: str) -> None:
    with pytest.raises(errors.UnsafePath, match=reason) as caught:
        _names("ok.py", name)
    assert caught.value.entry == name
    assert caught.value.offset is not None
    assert caught.value.offset > 0


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x.py", "climbs out with '..'"),
        ("a/../../x.py", "climbs out with '..'"),
        ("a/b/../../../x.py", "climbs out with '..'"),
        ("a/./../../x.py", "climbs out with '..'"),
        ("a//../../x.py", "climbs out with '..'"),
        ("..", "climbs out with '..'"),
        ("a/../", "has a '..' component"),
        ("a/../x.py", "has a '..' component"),  # stays inside, refused all the same: one name, one reading
        ("a/b/../x.py", "has a '..' component"),
    ],
)
def test_a_dot_dot_is_refused_and_said_to_climb_out_only_when_it_does(name: str, reason: str) -> None:
    """The fuzz audit: ``x/../PWNED.py`` was said to "climb out", which it does not."""
    with pytest.raises(errors.UnsafePath, match=reason):
        _names("ok.py", name)


def test_the_extractor_makes_a_thousand_directories_without_recursion(tmp_path: Path) -> None:
    """Behind the parser's limit as defence in depth: ``_dir`` is a loop, so no depth can exhaust the stack."""
    extractor = Extractor(tmp_path / "root")
    dir_name = "/".join(["a"] * 1000)
    try:
        path = extractor._dir(dir_name, dir_name + "/x.py", 0)
        assert os.path.isdir(path)
        assert path == os.path.join(tmp_path / "root", *["a"] * 1000)
        assert extractor._dir(dir_name + "/b", dir_name + "/b/x.py", 0) == os.path.join(path, "b")
    finally:
        extractor.close()
        _remove_chain(tmp_path / "root", dir_name + "/b")


def _remove_chain(root: Path, dir_name: str) -> None:
    """Remove a chain of nested directories bottom-up: Python 3.11's ``shutil.rmtree`` (and so pytest's own
    clean-up of old temporary directories) recurses once per level and cannot remove a tree this deep."""
    while dir_name:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(root / dir_name)
        dir_name = dir_name.rpartition("/")[0]


def test_a_cache_path_too_long_for_the_file_system_is_one_line(tmp_path: Path) -> None:
    """Names within the limits still overflow PATH_MAX below a cache directory thousands of bytes deep: the
    error names the entry and says what to do, and no staging is left behind."""
    cache = tmp_path.joinpath(*["c" * 250] * 15)  # > 3750 bytes before staging/<key>/
    cache.mkdir(parents=True)
    name = "demo/" + "/".join(["n" * 120] * 4) + "/x.py"  # ~500 bytes: fine for the parser
    wheel = write_wheel(tmp_path, make_wheel({name: b"x = 1\n"}))
    with pytest.raises(errors.DiskError) as caught:
        unpack_local(wheel, cache=Cache.at(cache), options=DownloadOptions())
    message = str(caught.value)
    assert "\n" not in message
    assert "too long" in message
    assert message.startswith("demo-1.0-py3-none-any.whl: ")
    assert not any((cache / "staging").iterdir())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wheelstream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("deep/" + "a/" * 1000 + "x.py", "entry name has 1002 components"),
        ("demo/" + "w" * 300 + ".py", "entry name has a 303-byte component"),
    ],
    ids=["a-thousand-deep", "component-too-long"],
)
def test_the_cli_refuses_a_deep_wheel_in_one_line(name: str, expected: str, tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path, make_wheel({"demo/__init__.py": b"", name: b"x = 1\n"}))
    target, cache = tmp_path / "target", tmp_path / "cache"
    proc = _cli("install", str(wheel), "--target", str(target), "--cache-dir", str(cache), "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("error: demo-1.0-py3-none-any.whl: ")
    assert expected in line
    assert not target.exists()
    assert not any((cache / "staging").iterdir())


def test_the_cli_with_a_cache_path_too_long_is_one_line(tmp_path: Path) -> None:
    cache = tmp_path.joinpath(*["c" * 250] * 15)
    wheel = write_wheel(tmp_path, make_wheel({"demo/" + "/".join(["n" * 120] * 4) + "/x.py": b"x = 1\n"}))
    target = tmp_path / "target"
    proc = _cli("install", str(wheel), "--target", str(target), "--cache-dir", str(cache), "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("error: demo-1.0-py3-none-any.whl: ")
    assert "too long" in line
    assert not target.exists()
    assert not any((cache / "staging").iterdir())
