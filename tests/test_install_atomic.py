"""The target changes all at once or not at all; the staged tree (maybe the shared cache) never changes."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from test_install_support import full_wheel, snapshot, stage

from wheelstream._staged import StagedWheel
from wheelstream.errors import Interrupted
from wheelstream.installer import _core, install_staged


class Boom(Exception):
    pass


def failing_move(n: int, exc: BaseException) -> Callable[[Path, Path], None]:
    """A rename that raises on its ``n``-th call (0-based), after really doing the earlier ones."""
    calls = [0]

    def move(src: Path, dest: Path) -> None:
        if calls[0] == n:
            raise exc
        calls[0] += 1
        os.rename(src, dest)

    return move


@pytest.fixture
def v1_target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    install_staged(stage(full_wheel(tmp_path / "w1"), tmp_path / "s1"), target)
    (target / "unrelated.txt").write_text("mine\n")
    return target


@pytest.fixture
def v2(tmp_path: Path) -> StagedWheel:
    return stage(full_wheel(tmp_path / "w2", version="2.0"), tmp_path / "s2")


def count_moves(v2: StagedWheel, target: Path, tmp_path: Path) -> int:
    """How many renames an upgrade makes (each replaced item costs two)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    os.system(f"cp -a {target}/. {probe}/")
    calls = [0]

    def move(src: Path, dest: Path) -> None:
        calls[0] += 1
        os.rename(src, dest)

    install_staged(v2, probe, upgrade=True, _move=move)
    return calls[0]


@pytest.mark.parametrize("exc", [Boom("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_failure_at_every_move_leaves_target_unchanged(
    exc: BaseException, v1_target: Path, v2: StagedWheel, tmp_path: Path
) -> None:
    moves = count_moves(v2, v1_target, tmp_path)
    assert moves > 10  # replaced items are renamed aside, then the new ones in
    before = snapshot(v1_target)
    for n in range(moves):
        with pytest.raises(type(exc)):
            install_staged(v2, v1_target, upgrade=True, _move=failing_move(n, exc))
        assert snapshot(v1_target) == before, f"target changed after a failure at move {n}"


def test_real_sigint_during_commit_finishes_then_raises(v1_target: Path, v2: StagedWheel) -> None:
    """Ctrl-C in the middle of the moves is held: the install completes, then the interrupt surfaces, saying
    the install is done (so the CLI does not tell the user to run it again)."""
    fired = [False]

    def move(src: Path, dest: Path) -> None:
        if not fired[0]:
            fired[0] = True
            os.kill(os.getpid(), signal.SIGINT)
        os.rename(src, dest)

    with pytest.raises(Interrupted, match="interrupted after the install finished") as raised:
        install_staged(v2, v1_target, upgrade=True, _move=move)
    assert raised.value.installed
    assert (v1_target / "full_pkg" / "__init__.py").read_text() == "VERSION = '2.0'\n"
    assert not list(v1_target.glob(".wheelstream-tmp-*"))


def test_real_sigint_while_the_replaced_items_are_removed_still_removes_them(
    v1_target: Path, v2: StagedWheel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade the temporary directory holds the old items, and removing it takes time; a Ctrl-C
    then must not leave it in the target. The install is complete, and the interrupt says so."""
    real_rmtree = shutil.rmtree
    fired = [False]

    def rmtree(path: Path, ignore_errors: bool = False) -> None:
        if not fired[0]:
            fired[0] = True
            os.kill(os.getpid(), signal.SIGINT)
            signal.getsignal(signal.SIGINT)  # a bytecode boundary: the KeyboardInterrupt is raised here
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(_core.shutil, "rmtree", rmtree)
    with pytest.raises(Interrupted) as raised:
        install_staged(v2, v1_target, upgrade=True)
    assert fired[0] and raised.value.installed
    assert (v1_target / "full_pkg" / "__init__.py").read_text() == "VERSION = '2.0'\n"
    assert not list(v1_target.glob(".wheelstream-tmp-*"))


def test_failure_before_commit_removes_created_target(tmp_path: Path, v2: StagedWheel) -> None:
    target = tmp_path / "new" / "target"
    with pytest.raises(Boom):
        install_staged(v2, target, _move=failing_move(0, Boom()))
    assert not target.exists()


def test_existing_items_skipped_with_warning(v1_target: Path, v2: StagedWheel) -> None:
    before = snapshot(v1_target)
    warnings: list[str] = []
    report = install_staged(v2, v1_target, on_warning=warnings.append)
    assert report.installed == ("Full_Pkg-2.0.dist-info",)
    assert set(report.skipped) == {
        "full_pkg",
        "extra_pure.py",
        "extra_plat.py",
        "bin",
        "include",
        "share",
        "etc",
    }
    assert list(report.warnings) == warnings and len(warnings) == len(report.skipped)
    after = snapshot(v1_target)
    assert {k: v for k, v in after.items() if not k.startswith("Full_Pkg-2.0.dist-info")} == before


def test_upgrade_replaces(v1_target: Path, v2: StagedWheel) -> None:
    report = install_staged(v2, v1_target, upgrade=True)
    assert set(report.replaced) == {
        "full_pkg",
        "extra_pure.py",
        "extra_plat.py",
        "bin",
        "include",
        "share",
        "etc",
    }
    assert (v1_target / "full_pkg" / "__init__.py").read_text() == "VERSION = '2.0'\n"
    assert (v1_target / "unrelated.txt").read_text() == "mine\n"
    assert (v1_target / "Full_Pkg-1.0.dist-info").is_dir()  # pip leaves the old dist-info too
    assert not list(v1_target.glob(".wheelstream-tmp-*"))


def test_upgrade_never_replaces_a_symlink(tmp_path: Path, v2: StagedWheel) -> None:
    target = tmp_path / "t"
    (tmp_path / "elsewhere").mkdir()
    target.mkdir()
    (target / "bin").symlink_to(tmp_path / "elsewhere")
    report = install_staged(v2, target, upgrade=True)
    assert "bin" in report.skipped and any("is a link" in w for w in report.warnings)
    assert (target / "bin").is_symlink() and not list((tmp_path / "elsewhere").iterdir())


def test_hardlink_shares_inodes_and_leaves_source_alone(tmp_path: Path, v2: StagedWheel) -> None:
    before = snapshot(v2.root)
    inodes = {name: os.stat(v2.root / name).st_ino for name in v2.files}
    report = install_staged(v2, tmp_path / "t", link_mode="hardlink")
    t = tmp_path / "t"
    assert os.stat(t / "full_pkg" / "tool.py").st_ino == inodes["full_pkg/tool.py"]
    assert (
        os.stat(t / "share/full/readme.txt").st_ino == inodes["Full_Pkg-2.0.data/data/share/full/readme.txt"]
    )
    assert (
        os.stat(t / "bin/plain.sh").st_ino == inodes["Full_Pkg-2.0.data/scripts/plain.sh"]
    )  # same mode: linked
    # rewritten and generated files are fresh inodes, never written through a link into the source
    assert os.stat(t / "bin/runme").st_ino != inodes["Full_Pkg-2.0.data/scripts/runme"]
    assert os.stat(t / "Full_Pkg-2.0.dist-info/RECORD").st_ino != inodes["Full_Pkg-2.0.dist-info/RECORD"]
    assert report.files_linked > 5
    assert snapshot(v2.root) == before


def test_hardlink_falls_back_to_copy_across_devices(
    tmp_path: Path, v2: StagedWheel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    report = install_staged(v2, tmp_path / "t", link_mode="hardlink")
    assert report.files_linked == 0
    copied = tmp_path / "t" / "full_pkg" / "tool.py"
    assert copied.read_bytes() == (v2.root / "full_pkg" / "tool.py").read_bytes()
    assert os.stat(copied).st_ino != os.stat(v2.root / "full_pkg" / "tool.py").st_ino


def test_copy_mode_leaves_source_alone(tmp_path: Path, v2: StagedWheel) -> None:
    before = snapshot(v2.root)
    install_staged(v2, tmp_path / "t", compile_bytecode=True)
    assert snapshot(v2.root) == before
