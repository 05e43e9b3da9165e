"""wheelstream installs exactly what ``pip install --no-deps --no-compile --target`` installs.

pip runs once per wheel (module-scoped, concurrently); our install runs from a zipfile-made staging tree. Trees
must agree on paths, bytes and modes; RECORD as a set of rows apart from INSTALLER's own row; INSTALLER says
``pip`` vs ``wheelstream``. The pip compared against is pinned (PIP_VERSION): launcher bytes follow its template.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
from test_install_support import CORPUS_IDS, corpus, full_wheel, snapshot, stage

import wheelstream
from wheelstream.installer import LinkMode, install_staged

PIP_VERSION = "26.3"


def pip(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def pip_install(wheel: Path, target: Path, *extra: str) -> subprocess.Popen[bytes]:
    return pip(
        "install", "--no-deps", "--no-index", "--no-compile", "--target", str(target), *extra, str(wheel)
    )


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()


@pytest.fixture(scope="module")
def pip_version() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    version = out.stdout.split()[1]
    assert version == PIP_VERSION, (
        f"the equivalence tests compare against pip=={PIP_VERSION}; found {version}"
    )
    return version


@pytest.fixture(scope="module")
def pip_trees(tmp_path_factory: pytest.TempPathFactory, pip_version: str) -> dict[str, tuple[Path, Path]]:
    """corpus id -> (wheel path, pip's target dir), pip run once per wheel, all at once."""
    base = tmp_path_factory.mktemp("pip")
    wheels = corpus(base / "wheels")
    procs = {key: (w, base / key / "pip", pip_install(w, base / key / "pip")) for key, w in wheels.items()}
    for _, _, proc in procs.values():
        finish(proc)
    return {name: (wheel, target) for name, (wheel, target, _) in procs.items()}


def ours(wheel: Path, target: Path, tmp: Path, **kwargs: object) -> list[str]:
    warnings: list[str] = []
    staged = stage(wheel, tmp / "staged" / wheel.name)
    install_staged(
        staged,
        target,
        direct_url=wheel.resolve().as_uri(),
        url_hash=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        on_warning=warnings.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return warnings


def record_rows(record: Path) -> set[tuple[str, ...]]:
    rows = set(map(tuple, csv.reader(record.read_text(encoding="utf-8").splitlines())))
    return {row for row in rows if not row[0].endswith(".dist-info/INSTALLER")}


def assert_same_install(pip_tree: Path, our_tree: Path) -> None:
    theirs, mine = snapshot(pip_tree), snapshot(our_tree)
    assert sorted(theirs) == sorted(mine)
    for path, (mode, content) in theirs.items():
        our_mode, our_content = mine[path]
        assert oct(our_mode) == oct(mode), path
        if path.endswith(".dist-info/INSTALLER"):
            assert (content, our_content) == (b"pip\n", b"wheelstream\n")
        elif path.endswith(".dist-info/RECORD"):
            assert record_rows(our_tree / path) == record_rows(pip_tree / path), path
        else:
            assert our_content == content, path


def test_corpus_is_complete(pip_trees: dict[str, tuple[Path, Path]]) -> None:
    """The corpus really exercises every mapping the issue names (guards against a silently shrunk corpus)."""
    full = pip_trees["full"][1]
    assert (full / "bin" / "runme").read_bytes().startswith(b"#!" + sys.executable.encode())
    assert (full / "bin" / "fullgui").is_file()
    assert (full / "bin" / "pip3").is_file()
    assert (full / "share" / "full" / "readme.txt").is_file()
    assert (full / "extra_plat.py").is_file()
    assert list(full.glob("include/**/full.h"))
    assert len(pip_trees) > 3, "the committed real wheels (fixtures/wheels) are missing"


@pytest.mark.parametrize("key", CORPUS_IDS)
def test_same_tree_as_pip(key: str, pip_trees: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    wheel, pip_tree = pip_trees[key]
    ours(wheel, tmp_path / "ours", tmp_path)
    assert_same_install(pip_tree, tmp_path / "ours")


@pytest.mark.parametrize("link_mode", ["move", "hardlink"])
@pytest.mark.parametrize("key", CORPUS_IDS)
def test_same_tree_as_pip_through_the_extractor(
    key: str, link_mode: str, pip_trees: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    """The whole pipeline: our extractor's staging, then whole-directory moves (default) or hardlinks."""
    wheel, pip_tree = pip_trees[key]
    mode = cast("LinkMode", link_mode)
    result = wheelstream.install(
        [str(wheel)], tmp_path / "ours", cache_dir=tmp_path / "cache", link_mode=mode
    )
    assert result.report is not None
    if link_mode == "move":
        assert result.report.files_moved > 0
        assert result.report.files_linked == 0
    assert_same_install(pip_tree, tmp_path / "ours")


def test_conflicts_and_upgrade_like_pip(tmp_path: Path, pip_version: str) -> None:
    """Second install without --upgrade skips every item (warning each); with --upgrade replaces them."""
    v1 = full_wheel(tmp_path / "v1")
    v2 = full_wheel(tmp_path / "v2", version="2.0")
    a, b, c, d = (tmp_path / x for x in "abcd")
    for target in (a, b):
        finish(pip_install(v1, target))
    for target in (c, d):
        ours(v1, target, tmp_path / f"staging-{target.name}")
    finish(pip_install(v2, a))
    finish(pip_install(v2, b, "--upgrade"))
    skipped = ours(v2, c, tmp_path / "staging-c2")
    ours(v2, d, tmp_path / "staging-d2", upgrade=True)
    assert_same_install(a, c)
    assert_same_install(b, d)
    assert (d / "full_pkg" / "__init__.py").read_text() == "VERSION = '2.0'\n"
    # every v2 item but its new dist-info existed: each skipped with pip's warning
    assert len(skipped) == len(list(c.iterdir())) - 2
    assert all("already exists. Specify --upgrade to force replacement." in w for w in skipped)


def test_two_wheels_one_transaction_like_one_pip_command(tmp_path: Path, pip_version: str) -> None:
    """Both wheels ship bin/: one pip command merges them in its temp home; so does install_staged_many."""
    from test_install_support import plat_wheel

    from wheelstream.installer import WheelToInstall, install_staged_many

    wheels = [full_wheel(tmp_path / "w"), plat_wheel(tmp_path / "w")]
    proc = pip(
        "install",
        "--no-deps",
        "--no-index",
        "--no-compile",
        "--target",
        str(tmp_path / "pip"),
        *map(str, wheels),
    )
    items = [
        WheelToInstall(
            stage(w, tmp_path / "s" / w.name),
            w.resolve().as_uri(),
            hashlib.sha256(w.read_bytes()).hexdigest(),
        )
        for w in wheels
    ]
    report = install_staged_many(items, tmp_path / "ours")
    finish(proc)
    assert not report.skipped
    assert (tmp_path / "ours" / "bin" / "fulltool").is_file()
    assert (tmp_path / "ours" / "bin" / "platcmd").is_file()
    assert_same_install(tmp_path / "pip", tmp_path / "ours")
