"""``--link-mode move`` (the default): claimed trees, whole-directory moves, and what happens when they fail."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_install_support import snapshot

import wheelstream
from fixtures.wellformed import REAL_WHEELS, WELLFORMED
from wheelstream._cache import Cache
from wheelstream.errors import DiskError, RetriesExhausted
from wheelstream.installer import _commit
from wheelstream.testing import Cut, FaultPlan, FaultServer, Status, build_wheel, since


def test_a_killed_owner_leaves_a_claim_the_next_cache_sweeps(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "cache")
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from wheelstream._cache import Cache
        cache = Cache.at({str(tmp_path / "cache")!r})
        tree = cache.staging("k")
        (tree / "pkg").mkdir(parents=True)
        (tree / "pkg" / "a.py").write_text("a")
        claim = cache.claim(tree)
        print(claim.root, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    claimed = Path(child.stdout.readline().strip())
    try:
        assert (claimed / "pkg" / "a.py").is_file()
        Cache.at(cache.root)  # the owner is alive: its claim stays
        assert (claimed / "pkg" / "a.py").is_file()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    Cache.at(cache.root)  # its owner is dead, so its lock is free: the next command reclaims it at once
    assert not claimed.exists()
    assert list((cache.root / "claimed").iterdir()) == []


def test_a_live_claim_in_this_process_survives_a_sweep_and_is_released(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "cache")
    (cache.staging("k") / "x").mkdir(parents=True)
    claim = cache.claim(cache.staging("k"))
    lock = claim.root.with_name(claim.root.name + ".lock")
    os.utime(lock, (lock.stat().st_atime - 120, lock.stat().st_mtime - 120))  # old enough to be looked at
    cache.sweep_claims()
    assert (claim.root / "x").is_dir()
    claim.release()
    assert list((cache.root / "claimed").iterdir()) == []


def test_across_file_systems_move_mode_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_rename = os.rename

    def no_rename(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
        if f"{os.sep}claimed{os.sep}" in os.fspath(src):  # out of the cache: as if it were another disk
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dest)

    monkeypatch.setattr(os, "rename", no_rename)
    wheel = REAL_WHEELS["six"]
    wheelstream.install([str(wheel)], tmp_path / "a", cache_dir=tmp_path / "c1", link_mode="copy")
    fallback = wheelstream.install([str(wheel)], tmp_path / "b", cache_dir=tmp_path / "c2")  # move mode
    assert fallback.report is not None
    assert fallback.report.files_moved == 0
    assert fallback.report.bytes_written > 0
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_a_failed_commit_leaves_the_target_and_keeps_the_wheel_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files already moved into the temporary home are lost with it, but the wheel file is not: the next
    install needs no network."""
    demo = WELLFORMED["mixed_streamable"]()
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    def boom(src: Path, dest: Path) -> None:
        raise OSError(errno.EIO, "disk on fire")

    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", demo)
        with monkeypatch.context() as patch:
            patch.setattr(_commit, "_rename", boom)
            with pytest.raises(DiskError, match="disk on fire; the target is unchanged"):
                wheelstream.install([url], target, cache_dir=tmp_path / "cache")
        assert snapshot(target) == {"keep.txt": snapshot(target)["keep.txt"]}
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
        assert list((tmp_path / "cache" / "claimed").iterdir()) == []
        assert (tmp_path / "cache" / "wheels" / f"{hashlib.sha256(demo).hexdigest()}.whl").is_file()
        again = wheelstream.install([url], target, cache_dir=tmp_path / "cache")
        assert server.bytes_sent("demo-1.0-py3-none-any.whl") == len(demo)
    assert again.wheels[0].from_cache
    assert again.report is not None
    assert again.report.files_moved > 0


def test_two_wheels_sharing_a_top_level_directory_merge(tmp_path: Path) -> None:
    """A namespace package shipped by two wheels: the second cannot rename onto the first's directory, so
    its files go one by one — same tree as copy mode."""
    from fixtures.wellformed import make_wheel, wheel_filename

    one = tmp_path / wheel_filename("nsa", "1.0")
    one.write_bytes(make_wheel({"ns/a/__init__.py": b"a = 1\n"}, name="nsa"))
    two = tmp_path / wheel_filename("nsb", "1.0")
    two.write_bytes(make_wheel({"ns/b/__init__.py": b"b = 2\n"}, name="nsb"))
    moved = wheelstream.install([str(one), str(two)], tmp_path / "m", cache_dir=tmp_path / "c1")
    copied = wheelstream.install(
        [str(one), str(two)], tmp_path / "c", cache_dir=tmp_path / "c2", link_mode="copy"
    )
    assert moved.report is not None
    assert moved.report.files_moved > 0
    assert copied.report is not None
    assert copied.report.files_moved == 0
    assert (tmp_path / "m" / "ns" / "a" / "__init__.py").is_file()
    assert (tmp_path / "m" / "ns" / "b").is_dir()
    assert snapshot(tmp_path / "m") == snapshot(tmp_path / "c")
    assert os.listdir(tmp_path / "c1" / "claimed") == []


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in sorted(root.rglob("*"))}


def test_a_resume_under_another_umask_installs_the_modes_pip_would(tmp_path: Path) -> None:
    """The first process unpacked half the wheel under umask 077 and gave up; the second, under 022, resumes
    and moves whole directories: their files and dirs must still get 0o644/0o755, as pip (and copy mode)."""
    from fixtures.wellformed import make_wheel, wheel_filename

    files = {f"pkg/sub{i % 7}/m{i}.py": (b"x = %d\n" % i) * 2000 for i in range(120)}
    data = make_wheel(files, name="pkg")
    name = wheel_filename("pkg", "1.0")
    old = os.umask(0o077)
    try:
        with FaultServer() as server:
            plan = FaultPlan(Cut(percent=60, requests=1), Status(503, requests=since(2)))
            url = server.add_file(name, data, plan=plan)
            with pytest.raises(RetriesExhausted):
                wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "cache", retries=0)
            os.umask(0o022)
            server.set_plan(name, FaultPlan())
            resumed = wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "cache")
            assert resumed.wheels[0].resumed_at is not None
            assert resumed.report is not None
            assert resumed.report.files_moved > 0
            wheelstream.install([url], tmp_path / "ref", cache_dir=tmp_path / "cache2", link_mode="copy")
    finally:
        os.umask(old)
    assert _modes(tmp_path / "t") == _modes(tmp_path / "ref")
    assert _modes(tmp_path / "t")["pkg/sub0/m0.py"] == 0o644
    assert _modes(tmp_path / "t")["pkg/sub0"] == 0o755


@pytest.mark.parametrize(
    "damage",
    [
        "missing file",
        "wrong size",
        "directory swapped for a symlink",
        "root swapped for a symlink",
        "stray file",
    ],
)
def test_a_resume_checks_the_staged_tree_before_trusting_it(tmp_path: Path, damage: str) -> None:
    """Staging must hold exactly the files the journal lists, as real files and directories: a listed file
    gone or changed, or a symlink where a directory was, means the tree is not what this code left, so the
    resume starts fresh (and never changes modes through the link); a file the journal does not list is the
    entry that was in flight, deleted before the resume goes on."""
    from fixtures.wellformed import make_wheel, wheel_filename

    files = {f"pkg/sub{i % 5}/m{i}.py": (b"x = %d\n" % i) * 3000 for i in range(100)}
    data = make_wheel(files, name="pkg")
    name = wheel_filename("pkg", "1.0")
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    outside.chmod(0o700)
    with FaultServer() as server:
        url = server.add_file(
            name, data, plan=FaultPlan(Cut(percent=60, requests=1), Status(503, requests=since(2)))
        )
        with pytest.raises(RetriesExhausted):
            wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "cache", retries=0)
        (root,) = (tmp_path / "cache" / "staging").iterdir()
        staged = sorted(p for p in (root / "pkg").rglob("*.py"))
        assert staged, "the first attempt must leave finished files to resume from"
        if damage == "missing file":
            staged[0].unlink()
        elif damage == "wrong size":
            staged[0].write_bytes(b"changed")
        elif damage == "directory swapped for a symlink":
            victim = staged[0].parent
            victim.rename(tmp_path / "moved-away")
            victim.symlink_to(outside, target_is_directory=True)
        elif damage == "root swapped for a symlink":  # the whole tree, intact, but reached through a link
            root.rename(outside / "tree")
            root.symlink_to(outside / "tree", target_is_directory=True)
        else:
            (root / "pkg" / "stray.py").write_bytes(b"not from the archive")
        server.set_plan(name, FaultPlan())
        result = wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "cache")
    resumed = result.wheels[0].resumed_at is not None
    assert resumed == (damage == "stray file")
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700
    if damage == "root swapped for a symlink":  # nothing was written through the link
        assert sorted(p.name for p in (outside / "tree" / "pkg").rglob("*.py")) == sorted(
            p.name for p in staged
        )
    installed = {str(p.relative_to(tmp_path / "t")) for p in (tmp_path / "t" / "pkg").rglob("*.py")}
    assert installed == {n for n in files}
    for member, content in files.items():
        assert (tmp_path / "t" / member).read_bytes() == content


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="the umask is read from /proc where it can be"
)
def test_the_umask_is_read_without_being_changed(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the umask by setting it to 0 and back left a window in which a file any other thread of the
    caller created was world-writable (a guest's install read it five times). A whole install through a
    server, and the modes it gives, with ``os.umask`` refusing to be called."""
    filename, data = build_wheel("umasked", "1.0")
    url = server.add_file(filename, data)
    old = os.umask(0o027)
    try:

        def refuse(mask: int) -> int:
            raise AssertionError(f"os.umask({mask:o}) called")

        monkeypatch.setattr(os, "umask", refuse)
        wheelstream.install([url], tmp_path / "t", cache_dir=tmp_path / "c")
        monkeypatch.undo()
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "t").rglob("*") if path.is_file()}
    assert modes == {0o640}, modes
