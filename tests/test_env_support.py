"""Helpers for the tests that install into real virtual environments (``test_env_equivalence``,
``test_env_install``, ``test_pylock``): make a venv, snapshot it, tell what an install changed in it, and compare
pip's changes with wheelstream's.

* ``make_venv`` / ``new_venv``: ``python -m venv --without-pip``; ``new_venv`` deletes what was there first and
  returns the fresh venv's snapshot.
* ``scan``: every path under a root with its mode and content; ``changes``: what installs did since a snapshot.
* ``written_differences``: how the paths two installs both wrote differ (modes, bytes, RECORD as a set of rows
  apart from INSTALLER's own, INSTALLER saying ``pip`` vs ``wheelstream``), one line each.
* ``no_active_venv``: the autouse fixture that keeps ``VIRTUAL_ENV`` out of a test; a module imports it (``from
  test_env_support import no_active_venv as no_active_venv``) for pytest to apply it to that module's tests.

Like ``test_install_support``, it holds no tests.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "Changes",
    "Content",
    "INLINE",
    "Node",
    "PY",
    "SITE",
    "Snapshot",
    "changes",
    "leftovers",
    "make_venv",
    "new_venv",
    "no_active_venv",
    "python_of",
    "record_rows",
    "scan",
    "written_differences",
]

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/{PY}/site-packages"  # a venv's purelib and platlib, relative to the venv

# A file's content: its bytes (up to INLINE, and every RECORD), else "sha256:<hex>"; a symlink's: its target
# (bytes); a directory's: None. Holding a torch install's big libraries by digest keeps a snapshot small.
Content = bytes | str | None
Node = tuple[int, Content]  # (st_mode, content)
Snapshot = dict[str, Node]
INLINE = 64 * 1024


@pytest.fixture(autouse=True)
def no_active_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ws`` passes this process's environment on: without ``VIRTUAL_ENV`` unless a test sets it."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)


# -- venvs ---------------------------------------------------------------------------------------------------


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_venv(path: Path) -> Path:
    """A venv without pip at ``path`` (``python -m venv --without-pip``)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def new_venv(venv: Path) -> Snapshot:
    """A fresh venv without pip at ``venv`` (whatever was there is deleted first), as a snapshot."""
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    return scan(make_venv(venv))


def leftovers(root: Path) -> list[str]:
    """What of wheelstream's own is left in ``root`` (``.wheelstream*``: a temporary home, a commit plan)."""
    return sorted(name for name in os.listdir(root) if name.startswith(".wheelstream"))


# -- what an install changed in a venv -----------------------------------------------------------------------


def scan(root: Path) -> Snapshot:
    """Every path under ``root`` (not ``root`` itself) with its mode and content; symlinks are not followed."""
    result: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            rel = path.relative_to(root).as_posix()
            content: Content = None
            if stat.S_ISLNK(info.st_mode):
                content = os.readlink(path).encode()
            elif stat.S_ISREG(info.st_mode):
                data = path.read_bytes()
                inline = len(data) <= INLINE or rel.endswith(".dist-info/RECORD")
                content = data if inline else "sha256:" + hashlib.sha256(data).hexdigest()
            result[rel] = (info.st_mode, content)
    return result


@dataclass(frozen=True)
class Changes:
    """What installs did to a venv: every path new or different since it was fresh, and those removed."""

    written: Snapshot
    removed: frozenset[str]


def changes(fresh: Snapshot, venv: Path) -> Changes:
    now = scan(venv)
    written = {path: node for path, node in now.items() if fresh.get(path) != node}
    return Changes(written, frozenset(fresh.keys() - now.keys()))


# -- comparing pip's install with wheelstream's --------------------------------------------------------------


def record_rows(content: Content) -> set[tuple[str, ...]]:
    """A RECORD's rows, apart from INSTALLER's own (its hash says which installer wrote it)."""
    assert isinstance(content, bytes)
    rows = set(map(tuple, csv.reader(content.decode("utf-8").splitlines())))
    return {row for row in rows if not row[0].endswith(".dist-info/INSTALLER")}


def written_differences(theirs: Snapshot, ours: Snapshot, show: Callable[[Content], str] = repr) -> list[str]:
    """Every way a path both ``theirs`` (pip's) and ``ours`` (wheelstream's) hold differs, one line each: its
    mode; INSTALLER saying ``pip`` vs ``wheelstream``; RECORD as a set of rows apart from INSTALLER's (``-``
    pip's only, ``+`` ours only); any other content, each side shown by ``show``."""
    found: list[str] = []
    for path in sorted(theirs.keys() & ours.keys()):
        (mode, content), (our_mode, our_content) = theirs[path], ours[path]
        if our_mode != mode:
            found.append(f"mode of {path}: {oct(mode)} != {oct(our_mode)}")
        if path.endswith(".dist-info/INSTALLER"):
            if (content, our_content) != (b"pip\n", b"wheelstream\n"):
                found.append(f"INSTALLER {path}: {content!r}, {our_content!r}")
        elif path.endswith(".dist-info/RECORD"):
            rows, our_rows = record_rows(content), record_rows(our_content)
            found += [f"RECORD {path} - {','.join(row)}" for row in sorted(rows - our_rows)]
            found += [f"RECORD {path} + {','.join(row)}" for row in sorted(our_rows - rows)]
        elif our_content != content:
            found.append(f"content of {path}:\n    {show(content)}\n != {show(our_content)}")
    return found
