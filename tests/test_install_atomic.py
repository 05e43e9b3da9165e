"""The target changes all at once or not at all; the staged tree (maybe the shared cache) never changes."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from test_install_support import full_wheel, installed_target, snapshot, stage

from wheelstream._staged import StagedWheel
from wheelstream.errors import Interrupted
from wheelstream.installer import _commit, install_staged


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
    return installed_target(tmp_path)


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
    assert not list(v1_target.glob(".wheelstream-*"))


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

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(Interrupted) as raised:
        install_staged(v2, v1_target, upgrade=True)
    assert fired[0]
    assert raised.value.installed
    assert (v1_target / "full_pkg" / "__init__.py").read_text() == "VERSION = '2.0'\n"
    assert not list(v1_target.glob(".wheelstream-*"))


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
    assert list(report.warnings) == warnings
    assert len(warnings) == len(report.skipped)
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
    assert not list(v1_target.glob(".wheelstream-*"))


def test_upgrade_never_replaces_a_symlink(tmp_path: Path, v2: StagedWheel) -> None:
    target = tmp_path / "t"
    (tmp_path / "elsewhere").mkdir()
    target.mkdir()
    (target / "bin").symlink_to(tmp_path / "elsewhere")
    report = install_staged(v2, target, upgrade=True)
    assert "bin" in report.skipped
    assert any("is a link" in w for w in report.warnings)
    assert (target / "bin").is_symlink()
    assert not list((tmp_path / "elsewhere").iterdir())


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


# -- a killed install -------------------------------------------------------------------------------------

KILLED_INSTALL = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_install_support import full_wheel, stage
from wheelstream.installer import install_staged
import wheelstream.installer._destination as destination
work, target, at = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
calls = [0]
def move(src, dest):
    if at.isdigit() and calls[0] == int(at):
        os.kill(os.getpid(), signal.SIGKILL)  # between two renames of the commit
    calls[0] += 1
    os.rename(src, dest)
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if at == "build":
    destination.HomeWriter.install_staged = killed  # while the temporary home is being written
staged = stage(full_wheel(work / "w2", version="2.0"), work / "s2")
if at == "after":
    import shutil
    shutil.rmtree = killed  # after the last rename, before the clean-up
install_staged(staged, target, upgrade=True, _move=move)
"""


def _install_killed(work: Path, target: Path, at: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", KILLED_INSTALL, str(Path(__file__).parent), str(work), str(target), at],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_an_install_killed_between_two_renames_is_finished_by_the_next(
    v1_target: Path, v2: StagedWheel, tmp_path: Path
) -> None:
    """kill -9 at every point of an upgrade's commit: the next install into the target (of another wheel)
    first finishes the killed one, so the target ends exactly as if nothing had been killed."""
    from test_install_support import build_wheel

    other = stage(
        build_wheel(tmp_path / "wo", "other-1.0-py3-none-any.whl", {"other.py": b"x = 1\n"}), tmp_path / "so"
    )
    moves = count_moves(v2, v1_target, tmp_path)
    expected_dir = tmp_path / "expected"
    expected_dir.mkdir()
    os.system(f"cp -a {v1_target}/. {expected_dir}/")
    install_staged(v2, expected_dir, upgrade=True)
    install_staged(other, expected_dir)
    expected = snapshot(expected_dir)
    for at in [*map(str, range(moves)), "after"]:
        target = tmp_path / f"t{at}"
        target.mkdir()
        os.system(f"cp -a {v1_target}/. {target}/")
        _install_killed(tmp_path / f"k{at}", target, at)
        assert (
            len(list(target.glob(".wheelstream-*"))) == 1
        )  # the temporary home, or (after) its retired name
        report = install_staged(other, target)
        assert snapshot(target) == expected, f"killed at {at}: {report.warnings}"
        assert any("was killed halfway; finished it" in w for w in report.warnings) == (at != "after"), at


def test_a_killed_install_before_its_commit_leaves_the_target_and_its_litter_goes(
    v1_target: Path, tmp_path: Path
) -> None:
    from test_install_support import build_wheel

    before = snapshot(v1_target)
    _install_killed(tmp_path / "k", v1_target, "build")
    litter = list(v1_target.glob(".wheelstream-tmp-*"))
    assert len(litter) == 1
    other = stage(
        build_wheel(tmp_path / "wo", "other-1.0-py3-none-any.whl", {"other.py": b"x = 1\n"}), tmp_path / "so"
    )
    install_staged(other, v1_target)
    assert not litter[0].exists()  # its lock is free and its token verifies: the owner is dead, at any age
    after = snapshot(v1_target)
    assert {k: v for k, v in after.items() if not k.startswith("other")} == before


def test_a_live_install_is_left_alone(v1_target: Path, tmp_path: Path) -> None:
    """Another process's temporary directory, locked by it, is not finished or removed under it."""
    import subprocess
    import sys

    from test_install_support import build_wheel

    live = v1_target / ".wheelstream-tmp-live"
    (live / "home").mkdir(parents=True)
    sign(live)
    (live / "commit.json").write_text('{"version": 1, "moves": [["x", "home/x", false]]}')
    (live / "home" / "x").write_text("not yet")
    hold = (
        # a plain flock, as the install takes it (filelock 4.1, Python 3.10's, truncates the file it locks: the
        # owner's token went, and recovery took the directory for another's)
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(live / ".owner.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        install_staged(
            stage(
                build_wheel(tmp_path / "wo", "other-1.0-py3-none-any.whl", {"other.py": b""}), tmp_path / "so"
            ),
            v1_target,
        )
        assert (live / "home" / "x").exists()
        assert not (v1_target / "x").exists()
    finally:
        holder.kill()
        holder.wait()
    install_staged(
        stage(build_wheel(tmp_path / "wp", "third-1.0-py3-none-any.whl", {"third.py": b""}), tmp_path / "sp"),
        v1_target,
    )
    assert (v1_target / "x").read_text() == "not yet"
    assert not live.exists()


def _fails_then_cannot_undo(
    monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None = None
) -> Callable[[Path, Path], None]:
    """A ``_move`` whose 4th rename fails (EIO), after which every rename fails (EROFS: the undo's too); with
    ``interrupt_at``, a real SIGINT is sent at that rename."""
    real_rename = os.rename
    calls = [0]

    def read_only(src: object, dest: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    def move(src: Path, dest: Path) -> None:
        calls[0] += 1
        if calls[0] == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        if calls[0] == 4:
            monkeypatch.setattr(os, "rename", read_only)
            raise OSError(errno.EIO, "I/O error")
        real_rename(src, dest)

    return move


def test_a_commit_that_cannot_be_undone_says_so_and_the_next_install_finishes_it(
    v1_target: Path, v2: StagedWheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename fails halfway, and undoing the ones made fails too (a file system gone read-only): the error
    must not claim the target is unchanged, nor delete the items set aside; the next install finishes."""
    from test_install_support import build_wheel

    from wheelstream.errors import DiskError

    expected_dir = tmp_path / "expected"
    expected_dir.mkdir()
    os.system(f"cp -a {v1_target}/. {expected_dir}/")
    install_staged(
        stage(full_wheel(tmp_path / "w2b", version="2.0"), tmp_path / "s2b"), expected_dir, upgrade=True
    )
    real_rename = os.rename
    move = _fails_then_cannot_undo(monkeypatch)
    with pytest.raises(DiskError, match="undoing it failed too") as raised:
        install_staged(v2, v1_target, upgrade=True, _move=move)
    assert "the next install into it finishes it" in str(raised.value)
    monkeypatch.setattr(os, "rename", real_rename)
    install_staged(
        stage(build_wheel(tmp_path / "wo", "other-1.0-py3-none-any.whl", {"other.py": b""}), tmp_path / "so"),
        v1_target,
    )
    install_staged(
        stage(
            build_wheel(tmp_path / "wo2", "other-1.0-py3-none-any.whl", {"other.py": b""}), tmp_path / "so2"
        ),
        expected_dir,
    )
    assert snapshot(v1_target) == snapshot(expected_dir)


def _other(tmp_path: Path, name: str = "other") -> StagedWheel:
    from test_install_support import build_wheel

    return stage(
        build_wheel(tmp_path / f"w-{name}", f"{name}-1.0-py3-none-any.whl", {f"{name}.py": b""}),
        tmp_path / f"s-{name}",
    )


def sign(tmp: Path) -> None:
    """Give a hand-made temporary directory the lock file (and token) a real install's has."""
    fd = _commit.own_home(tmp)
    assert fd is not None
    os.close(fd)


def _leftover(target: Path, plan: str | None, *, lock: bool = True, old: bool = False) -> Path:
    """A temporary directory as a killed install would leave it, with an item ``x`` still to move."""
    tmp = target / ".wheelstream-tmp-left"
    (tmp / "home").mkdir(parents=True)
    (tmp / "home" / "x").write_text("new")
    if plan is not None:
        (tmp / "commit.json").write_text(plan)
    if lock:
        sign(tmp)
    if old:
        (tmp / "old").mkdir()
        (tmp / "old" / "y").write_text("the only copy")
    os.utime(tmp, (0, 0))
    return tmp


def test_a_directory_being_retired_is_never_finished_by_another_install(
    v1_target: Path, v2: StagedWheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: deleting a temporary directory could delete its lock file first, and a fresh lock file is free:
    a concurrent install then 'finished' a commit that had been rolled back, into the directory being deleted.
    A retired directory is renamed out of recovery's names before it is deleted, and its lock file goes last."""
    from wheelstream.installer._recovery import Finished, finish_interrupted

    real_rmtree = shutil.rmtree
    seen: list[Finished] = []

    def rmtree(path: Path, ignore_errors: bool = False) -> None:
        gone = Path(path).parent
        if gone.name.startswith(".wheelstream-gone-") and not seen:
            seen.append(Finished([], []))
            assert (gone / ".owner.lock").exists()  # still there while the rest goes
            (gone / "commit.json").write_text('{"version": 1, "moves": [["x", "home/x", false]]}')
            (gone / "home").mkdir(exist_ok=True)
            (gone / "home" / "x").write_text("rolled back")
            seen[0] = finish_interrupted(v1_target, lambda message: None)  # another install, meanwhile
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    install_staged(v2, v1_target, upgrade=True)
    assert seen == [Finished([], [])]
    assert not (v1_target / "x").exists()
    assert not list(v1_target.glob(".wheelstream-*"))


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        ("", "Expecting value"),
        ('{"version": 1, "moves": [["../outside", "home/x", false]]}', "bad item name"),
        ('{"version": 1, "moves": [["x", "../../victim", false]]}', "outside"),
        ('{"version": 7, "moves": []}', "unknown plan version"),
    ],
    ids=["empty", "name-escapes", "source-escapes", "version"],
)
def test_a_plan_that_cannot_be_trusted_is_named_and_left_and_the_install_goes_on(
    plan: str, why: str, v1_target: Path, tmp_path: Path
) -> None:
    """Review: a plan read back from disk could move files from anywhere to anywhere, and one that could not be
    parsed stopped every later install into the target with a traceback."""
    (tmp_path / "victim").write_text("mine")
    left = _leftover(v1_target, plan)
    report = install_staged(_other(tmp_path), v1_target)
    assert (v1_target / "other.py").exists()
    assert any(str(left) in w and why in w and "left as it is" in w for w in report.warnings), report.warnings
    assert (left / "home" / "x").read_text() == "new"
    assert (tmp_path / "victim").read_text() == "mine"
    assert not (v1_target / "x").exists()
    assert not (v1_target.parent / "outside").exists()


def test_directories_recovery_cannot_judge_are_left_alone(v1_target: Path, tmp_path: Path) -> None:
    """No lock file (not made by this code), or replaced items in ``old/`` without a plan (an older
    version's, killed mid-commit: the only copy of what it replaced): never deleted."""
    unlocked = _leftover(v1_target, None, lock=False)
    install_staged(_other(tmp_path), v1_target)
    assert (unlocked / "home" / "x").exists()
    shutil.rmtree(unlocked)
    with_old = _leftover(v1_target, None, old=True)
    install_staged(_other(tmp_path, "third"), v1_target)
    assert (with_old / "old" / "y").read_text() == "the only copy"


def test_a_sigterm_during_the_rollback_waits_for_it(
    v1_target: Path, v2: StagedWheel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: SIGTERM (the CLI raises KeyboardInterrupt for it) was not held, so one arriving while the
    renames were undone stopped the undo halfway, and the clean-up deleted the items set aside."""
    before = snapshot(v1_target)
    real_rename = os.rename
    moves = [0]

    def move(src: Path, dest: Path) -> None:
        moves[0] += 1
        if moves[0] == 4:
            monkeypatch.setattr(os, "rename", terminated_rename)  # the undo renames with os.rename
            raise Boom("disk full")
        real_rename(src, dest)

    def terminated_rename(src: object, dest: object) -> None:
        monkeypatch.setattr(os, "rename", real_rename)  # one SIGTERM, at the first undo
        os.kill(os.getpid(), signal.SIGTERM)
        real_rename(src, dest)  # type: ignore[arg-type]

    def as_ctrl_c(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):  # delivered once the rollback is complete
            install_staged(v2, v1_target, upgrade=True, _move=move)
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.setattr(os, "rename", real_rename)
    assert snapshot(v1_target) == before


def test_a_ctrl_c_during_a_rollback_that_fails_keeps_what_the_next_install_needs(
    v1_target: Path, v2: StagedWheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Third review: the held Ctrl-C, delivered after a rollback that failed, replaced the UnfinishedCommit,
    and the clean-up then deleted the plan, the replaced items and the items not moved in yet."""
    from wheelstream.errors import DiskError

    real_rename = os.rename
    move = _fails_then_cannot_undo(monkeypatch, interrupt_at=2)  # the SIGINT is held: the moves go on
    with pytest.raises(DiskError, match="the next install into it finishes it"):
        install_staged(v2, v1_target, upgrade=True, _move=move)
    monkeypatch.setattr(os, "rename", real_rename)
    assert len(list(v1_target.glob(".wheelstream-tmp-*"))) == 1
    report = install_staged(_other(tmp_path), v1_target)
    assert any("killed halfway; finished it" in w for w in report.warnings)
    assert (v1_target / "full_pkg" / "__init__.py").read_text() == "VERSION = '2.0'\n"


def test_every_held_signal_is_delivered_sigterm_first() -> None:
    """Third review: delivery stopped at the first handler that raised, so a SIGTERM held with a Ctrl-C was
    lost (a host's default SIGTERM would not have ended the process)."""
    seen: list[int] = []

    def record(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, record)
    try:
        with pytest.raises(KeyboardInterrupt):
            _commit.deliver([signal.SIGINT, signal.SIGTERM, signal.SIGINT])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


def test_the_litter_of_the_last_kill_points_goes_too(v1_target: Path, tmp_path: Path) -> None:
    """Third review: killed between making the temporary directory and locking it (empty, no lock file), or
    between a rollback's last two steps (an empty ``old/``, no plan): both were left for good."""
    empty = v1_target / ".wheelstream-tmp-empty"
    empty.mkdir()
    os.utime(empty, (0, 0))
    rolled_back = _leftover(v1_target, None)
    shutil.rmtree(rolled_back / "home")
    (rolled_back / "old").mkdir()
    os.utime(rolled_back, (0, 0))
    install_staged(_other(tmp_path), v1_target)
    assert not list(v1_target.glob(".wheelstream-*"))


def test_an_install_waits_for_a_recovery_that_looks_at_its_fresh_directory(tmp_path: Path) -> None:
    """Third review: a recovery can lock a fresh lock file before its owner does (for a moment, to look);
    the owner then failed with a RuntimeError. It waits for that moment instead."""
    import fcntl
    import threading
    import time

    tmp = tmp_path / ".wheelstream-tmp-fresh"
    tmp.mkdir()
    looking = threading.Event()

    def recovery_looks() -> None:  # what recovery does to the lock file: flock it, a moment, to look
        fd = os.open(tmp / ".owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        looking.set()
        time.sleep(0.3)
        os.close(fd)

    thread = threading.Thread(target=recovery_looks)
    thread.start()
    looking.wait(5)
    started = time.monotonic()
    fd = _commit.own_home(tmp)
    assert fd is not None
    assert time.monotonic() - started > 0.2
    os.close(fd)
    thread.join()


def test_a_killed_commit_whose_signature_cannot_be_checked_is_named_not_left_in_silence(
    tmp_path: Path,
) -> None:
    """With a state directory that cannot be written, each process signs its temporary home with a key of its
    own: the next one cannot tell a killed install's directory from a look-alike, and left it — plan and half the
    install — without a word, for good."""
    from conftest import ws

    from fixtures.wellformed import make_wheel

    (tmp_path / "afile").write_text("")
    state = {"WHEELSTREAM_STATE_DIR": str(tmp_path / "afile" / "state")}  # under a file: never writable
    files = {f"pkg{i}/__init__.py": b"" for i in range(4)}
    wheel = tmp_path / "multi-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel(files, name="multi"))
    target = tmp_path / "t"
    killed = ws(
        "install",
        str(wheel),
        "-t",
        str(target),
        cache=tmp_path / "c",
        env={**state, "WHEELSTREAM_KILL_AT": "commit.rename@2"},
    )
    assert killed.code == -9, killed.err
    (left,) = [p for p in target.iterdir() if p.name.startswith(".wheelstream-tmp-")]
    rerun = ws("install", str(wheel), "-t", str(target), "-U", cache=tmp_path / "c", env=state)
    assert rerun.code == 0, rerun.err
    said = (
        f"warning: {left} looks like what an interrupted install left, but cannot be finished (its signature"
    )
    assert said in rerun.err, rerun.err


def test_two_installs_into_one_target_at_once_leave_it_whole(tmp_path: Path) -> None:
    """Two ``--target`` installs of one wheel at once (a warm cache, so both commit together) lost files: one's
    rollback took back paths the other had just moved in — 0 of 400 top-level modules left, both exit 0 or
    one exit 1. One command at a time changes a target now (the lock environments have)."""
    import csv

    from conftest import ws_start

    from fixtures.wellformed import make_wheel

    files = {f"_tm{i:03}.py": b"X = 1\n" for i in range(400)}
    files["manytop/__init__.py"] = b""
    data = make_wheel(files, name="manytop")
    wheels = []
    for copy in ("a", "b"):  # two paths: two downloads (two cache keys), unpacked and committed side by side
        (tmp_path / copy).mkdir()
        wheels.append(tmp_path / copy / "manytop-1.0-py3-none-any.whl")
        wheels[-1].write_bytes(data)
    cache = tmp_path / "c"
    for round_ in range(5):
        target = tmp_path / f"t{round_}"
        runs = [ws_start("install", "-q", str(wheel), "-t", str(target), cache=cache) for wheel in wheels]
        errs = [run.communicate(timeout=60)[1] for run in runs]  # read as they run: 400 warnings fill a pipe
        outcomes = [(run.returncode, err) for run, err in zip(runs, errs, strict=True)]
        assert sorted(code for code, _err in outcomes) in ([0, 0], [0, 1]), outcomes
        for code, err in outcomes:
            if code:  # the second finds every item there: pip's --target says so, and so do we
                assert "already exists" in err or "error:" in err, err
        installed = {p.name for p in target.iterdir()}
        assert {name for name in files if "/" not in name} <= installed, (round_, len(installed), outcomes)
        (record,) = target.glob("*.dist-info/RECORD")
        listed = {row[0] for row in csv.reader(record.read_text().splitlines())}
        assert all((target / path).is_file() for path in listed), round_
        assert not [p for p in target.iterdir() if p.name.startswith(".wheelstream-")]


@pytest.mark.parametrize("sent", ["SIGHUP", "SIGTERM"])
def test_a_hang_up_or_a_kill_in_the_commit_waits_for_it_and_says_so(tmp_path: Path, sent: str) -> None:
    """SIGHUP (a terminal or SSH session closed) in the commit killed the process there: the target half old,
    half new until the next command. It is held as SIGINT and SIGTERM are, and then taken as Ctrl-C: the
    install is whole, exit 130, one line. (SIGTERM here goes through the handler ``cli._main`` now sets for
    every command.)"""
    from conftest import ws

    from fixtures.wellformed import make_wheel

    files = {f"pkg{i}/__init__.py": b"" for i in range(4)}
    wheel = tmp_path / "multi-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel(files, name="multi"))
    target = tmp_path / "t"
    run = ws(
        "install", str(wheel), "-t", str(target), cache=tmp_path / "c",
        env={"WHEELSTREAM_KILL_AT": f"commit.rename@2:{sent}"},
    )  # fmt: skip
    assert run.code == 130, run.err
    assert "interrupted after every wheel was installed" in run.error_line(alone=True)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*(f"pkg{i}" for i in range(4)), "multi-1.0.dist-info"]
    )


def test_finishing_a_killed_install_of_many_items_names_a_few_and_counts_the_rest(tmp_path: Path) -> None:
    """A killed upgrade of 20,000 top-level items was finished with a warning naming every one of them: one
    line of 203 KB."""
    from conftest import ws

    from fixtures.wellformed import make_wheel

    wheel = tmp_path / "wide-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel({f"wide_{i:02}.py": b"X = 1\n" for i in range(30)}, name="wide"))
    target = tmp_path / "t"
    killed = ws(
        "install",
        str(wheel),
        "-t",
        str(target),
        cache=tmp_path / "c",
        env={"WHEELSTREAM_KILL_AT": "commit.rename@2"},
    )
    assert killed.code == -9, killed.err
    rerun = ws("install", str(wheel), "-t", str(target), "-U", cache=tmp_path / "c")
    assert rerun.code == 0, rerun.err
    (line,) = [each for each in rerun.err.splitlines() if "was killed halfway; finished it:" in each]
    assert line.count(", ") == 9, line
    assert line.endswith(" more"), line
