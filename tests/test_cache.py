"""``wheelstream._cache``: the cache's layout and modes, what it remembers, and claims (DESIGN §1, "Cache").

A claim is a finished staging tree one process took for itself (an OS lock on ``claimed/<token>.lock``); what
that lock excludes is checked from another process, as it is used. (Claims left by a killed owner and claims
handed over between processes are in ``test_move_mode.py`` and ``test_workers.py``.)
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

import wheelstream
from fixtures.wellformed import dist_info, make_wheel, record_line, wheel_files
from wheelstream._cache import Cache, default_cache_dir, try_lock
from wheelstream.errors import RecordError
from wheelstream.installer._destination import LinkMode

KEY = "ab" * 32
SHA = "cd" * 32
SUBDIRS = ["claimed", "http", "partial", "staging", "urls", "wheels"]


def _locked_elsewhere(lock_file: Path) -> bool:
    """Whether another process finds ``lock_file`` locked (it tries to take it, and lets it go)."""
    script = (
        "import sys; from pathlib import Path; from wheelstream._cache import try_lock\n"
        "lock = try_lock(Path(sys.argv[1])); print(lock is None); lock and lock.release()"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(lock_file)], capture_output=True, text=True, check=True, timeout=30
    )
    return run.stdout.strip() == "True"


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _tree(cache: Cache, name: str = "k") -> Path:
    """A finished staging tree, as a download leaves it."""
    tree = cache.staging(name)
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("X = 1\n")
    return tree


# -- layout ---------------------------------------------------------------------------------------------------


def test_the_layout(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    assert sorted(p.name for p in cache.root.iterdir()) == SUBDIRS
    assert cache.partial(KEY) == cache.root / "partial" / f"{KEY}.whl.part"
    assert cache.journal(KEY) == cache.root / "partial" / f"{KEY}.json"
    assert cache.lock(KEY) == cache.root / "partial" / f"{KEY}.lock"
    assert cache.staging(KEY) == cache.root / "staging" / KEY
    assert cache.wheel_dir(SHA) == cache.root / "wheels" / SHA
    assert cache.wheel_file(SHA) == cache.root / "wheels" / f"{SHA}.whl"


def test_every_directory_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0)
    try:
        cache = Cache.at(tmp_path / "c")
    finally:
        os.umask(umask)
    for name in ("", *SUBDIRS):
        assert stat.S_IMODE((cache.root / name).stat().st_mode) == 0o700, name or "the root"


def test_opening_it_again_keeps_what_it_holds(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    cache.partial(KEY).write_bytes(b"PK")
    assert Cache.at(tmp_path / "c").partial(KEY).read_bytes() == b"PK"


def test_the_default_place_is_the_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELSTREAM_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert Cache.at().root == tmp_path / "env"
    assert (tmp_path / "env" / "partial").is_dir()
    monkeypatch.delenv("WHEELSTREAM_CACHE_DIR")
    assert default_cache_dir().name == "wheelstream"


# -- what it remembers ---------------------------------------------------------------------------------------


def test_a_remembered_sha256_counts_only_while_its_wheel_is_cached(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    assert cache.remembered_sha256(KEY) is None
    cache.remember(KEY, "https://host/demo-1.0-py3-none-any.whl", SHA, "demo-1.0-py3-none-any.whl")
    assert json.loads((cache.root / "urls" / f"{KEY}.json").read_text()) == {
        "url": "https://host/demo-1.0-py3-none-any.whl",
        "sha256": SHA,
        "filename": "demo-1.0-py3-none-any.whl",
    }
    assert cache.remembered_sha256(KEY) is None  # neither the unpacked tree nor the file is there
    cache.wheel_file(SHA).write_bytes(b"PK")
    assert cache.remembered_sha256(KEY) == SHA
    cache.wheel_file(SHA).unlink()
    cache.wheel_dir(SHA).mkdir()
    assert cache.remembered_sha256(KEY) == SHA
    assert not list((cache.root / "urls").glob("*.tmp"))


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"url": "x"}'])
def test_an_unreadable_memory_is_none(tmp_path: Path, text: str) -> None:
    cache = Cache.at(tmp_path / "c")
    cache.wheel_dir(SHA).mkdir()
    (cache.root / "urls" / f"{KEY}.json").write_text(text)
    assert cache.remembered_sha256(KEY) is None


def test_discard_forgets_an_unfinished_download(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    cache.partial(KEY).write_bytes(b"PK\x03\x04")
    cache.journal(KEY).write_text("{}")
    cache.journal(KEY).with_suffix(".entries").write_text("[]\n")
    _tree(cache, KEY)
    other = cache.partial("other")
    other.write_bytes(b"kept")
    cache.discard(KEY)
    assert sorted(p.name for p in (cache.root / "partial").iterdir()) == ["other.whl.part"]
    assert not cache.staging(KEY).exists()
    cache.discard(KEY)  # nothing left: nothing to do


def test_discard_removes_a_staging_link_not_what_it_points_to(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "pkg").mkdir(parents=True)
    cache.staging(KEY).symlink_to(elsewhere, target_is_directory=True)
    cache.discard(KEY)
    assert not cache.staging(KEY).is_symlink()
    assert (elsewhere / "pkg").is_dir()


# -- claims ----------------------------------------------------------------------------------------------------


def test_a_claim_takes_the_tree_and_holds_its_lock_against_other_processes(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    claim = cache.claim(_tree(cache))
    lock_file = claim.root.parent / f"{claim.root.name}.lock"
    assert claim.root.parent == cache.root / "claimed"
    assert (claim.root / "pkg" / "__init__.py").read_text() == "X = 1\n"
    assert not cache.staging("k").exists()
    assert _locked_elsewhere(lock_file)
    with pytest.raises(OSError, match="still locked by another process"):
        Cache.at(tmp_path / "c").adopt_claim(claim.root)  # another holder, even in this process
    claim.release()
    assert not claim.root.exists()
    assert not lock_file.exists()


def test_two_claims_never_share_a_place(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    first, second = cache.claim(_tree(cache, "a")), cache.claim(_tree(cache, "b"))
    assert first.root != second.root
    first.release()
    assert (second.root / "pkg").is_dir()
    second.release()
    assert list((cache.root / "claimed").iterdir()) == []


def test_a_claim_that_cannot_take_the_tree_leaves_no_lock(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        cache.claim(cache.staging("missing"))
    assert list((cache.root / "claimed").iterdir()) == []


def test_a_handed_over_claim_is_unlocked_kept_and_adopted(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    claim = cache.claim(_tree(cache))
    lock_file = claim.root.parent / f"{claim.root.name}.lock"
    _age(lock_file, 30)
    root = claim.hand_over()
    assert root == claim.root
    assert (root / "pkg").is_dir()
    handed = claim.root.parent / f"{claim.root.name}.handed"
    assert time.time() - handed.stat().st_mtime < 10  # marked: the adopter has a minute
    Cache.at(cache.root)  # a sweep meanwhile leaves the unlocked tree alone
    assert (root / "pkg").is_dir()
    assert not _locked_elsewhere(lock_file)
    adopted = cache.adopt_claim(root)
    assert _locked_elsewhere(lock_file)
    assert not handed.exists()  # an ordinary claim again: its owner's death frees it at once
    adopted.release()
    with pytest.raises(FileNotFoundError, match="removed before this process adopted it"):
        cache.adopt_claim(root)
    assert not lock_file.exists()


def test_a_sweep_removes_unheld_trees_at_once_and_lone_lock_files_once_a_minute_old(tmp_path: Path) -> None:
    """A tree gets its name only after its owner locked it: a free lock beside a tree means a dead owner. A
    lock file alone may be a claim being made (created, then locked a moment later): it waits a minute."""
    cache = Cache.at(tmp_path / "c")
    claimed = cache.root / "claimed"
    (claimed / "lone.lock").touch()  # a lock file whose tree went (a claim released halfway)
    (claimed / "young.lock").touch()  # a claim being made
    (claimed / "dead.lock").touch()  # a claim whose owner was killed: tree and lock file, nobody holding it
    (claimed / "dead" / "pkg").mkdir(parents=True)
    (claimed / "lockless" / "pkg").mkdir(parents=True)  # a tree whose lock file is gone
    (claimed / "stale.handed").touch()  # a hand-over marker whose tree went long ago
    _age(claimed / "lone.lock", 120)
    _age(claimed / "stale.handed", 120)
    Cache.at(cache.root)  # opening a cache sweeps
    assert sorted(p.name for p in claimed.iterdir()) == ["young.lock"]
    _age(claimed / "young.lock", 120)
    cache.sweep_claims()
    assert list(claimed.iterdir()) == []


def test_a_sweep_leaves_an_old_claim_whose_owner_lives(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "c")
    claim = cache.claim(_tree(cache))
    lock_file = claim.root.parent / f"{claim.root.name}.lock"
    _age(lock_file, 3600)
    cache.sweep_claims()
    assert (claim.root / "pkg" / "__init__.py").is_file()
    assert lock_file.is_file()
    claim.release()


def test_try_lock_takes_a_free_lock_and_refuses_a_held_one(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = try_lock(path)
    assert lock is not None
    assert lock.is_locked
    assert try_lock(path) is None
    assert _locked_elsewhere(path)
    lock.release()
    assert not _locked_elsewhere(path)


@pytest.mark.parametrize("link_mode", ["move", "copy"])
def test_a_wheel_the_checks_refuse_is_not_served_from_the_cache_again(
    httpserver: HTTPServer, tmp_path: Path, link_mode: LinkMode
) -> None:
    """A wheel whose RECORD lies fails the install; the server then fixes its file: the next install asks the
    server again instead of failing from the cache, offline, the same way."""
    files = {"demo/__init__.py": b"x = 1\n"}
    honest = wheel_files(files)[f"{dist_info()}/RECORD"]
    lying = honest.replace(
        record_line("demo/__init__.py", files["demo/__init__.py"]).encode(), b"demo/__init__.py,,"
    )
    assert lying != honest
    served = [make_wheel(files, record=lying)]
    httpserver.expect_request("/demo-1.0-py3-none-any.whl").respond_with_handler(
        lambda request: Response(served[0], content_type="application/octet-stream")
    )
    url = httpserver.url_for("/demo-1.0-py3-none-any.whl")
    cache = tmp_path / "cache"
    with pytest.raises(RecordError):
        wheelstream.install([url], tmp_path / "t1", cache_dir=cache, link_mode=link_mode)
    assert not list((cache / "urls").iterdir())
    assert not [path for path in (cache / "wheels").iterdir() if not path.name.startswith(".")]
    served[0] = make_wheel(files)
    result = wheelstream.install([url], tmp_path / "t2", cache_dir=cache, link_mode=link_mode)
    assert result.wheels[0].bytes_fetched == len(served[0])  # asked the server, not the cache
    assert (tmp_path / "t2" / "demo" / "__init__.py").read_bytes() == b"x = 1\n"


def test_a_child_forked_while_the_cache_is_in_use_does_not_keep_it(tmp_path: Path) -> None:
    """A flock belongs to the open file, which a fork shares: a host that forked while an install held the cache
    (multiprocessing, a preforking server) kept it held until the child exited, and ``cache clean`` waited."""
    import fcntl

    from wheelstream._cache import in_use

    with in_use(tmp_path):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only waits
            time.sleep(5)
            os._exit(0)
    try:
        fd = os.open(tmp_path / "cache.lock", os.O_RDWR)
        deadline = time.monotonic() + 2
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the forked child still holds the cache"
                time.sleep(0.02)
        assert os.waitpid(child, os.WNOHANG) == (0, 0)  # granted while the child lives
        os.close(fd)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def _installed_by_copy(tmp_path: Path, into: str) -> tuple[Path, Path]:
    """``many`` (40 modules) installed into ``tmp_path/into`` by copy from the cache ``tmp_path/c``: its wheel
    and its unpacked tree there."""
    from wheelstream.testing import build_wheel

    filename, data = build_wheel("many", "1.0", files={f"many/m{i}.py": b"x = %d\n" % i for i in range(40)})
    wheel = tmp_path / filename
    wheel.write_bytes(data)
    wheelstream.install([str(wheel)], tmp_path / into, cache_dir=tmp_path / "c", link_mode="copy")
    (tree,) = [p for p in (tmp_path / "c" / "wheels").iterdir() if p.is_dir()]
    return wheel, tree


def test_a_tree_left_half_removed_without_its_manifest_is_replaced_not_blessed(tmp_path: Path) -> None:
    """A ``cache clean`` killed in its ``rmtree`` (manifest gone first) left part of a tree: the next publish
    gave it a manifest ("the same sha256 is the same files") and every later copy install failed on a file
    that was not there, until the next full clean."""
    wheel, tree = _installed_by_copy(tmp_path, "a")
    Path(f"{tree}.manifest.json").unlink()
    for victim in sorted(tree.rglob("m1*.py")):
        victim.unlink()
    for into in ("b", "b2"):
        wheelstream.install([str(wheel)], tmp_path / into, cache_dir=tmp_path / "c", link_mode="copy")
        assert sorted(p.name for p in (tmp_path / into / "many").iterdir()) == sorted(
            p.name for p in (tmp_path / "a" / "many").iterdir()
        )


def test_cache_clean_removes_a_tree_an_earlier_clean_moved_aside(tmp_path: Path) -> None:
    """``cache clean`` moves each tree aside whole before deleting it, so a kill leaves no half tree under a
    wheel's name; what a killed one left aside goes with the next."""
    _wheel, tree = _installed_by_copy(tmp_path, "a")
    aside = tree.with_name(f".{tree.name}.dropped-1-abcd")
    tree.rename(aside)
    run = subprocess.run(
        [sys.executable, "-m", "wheelstream", "cache", "clean", "--cache-dir", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert list((tmp_path / "c" / "wheels").iterdir()) == []


def test_two_publishers_over_part_of_a_tree_never_drop_each_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Q judged the part of a tree (a killed clean's) incomplete; P dropped it and published its own; Q then
    dropped P's fresh tree, under P's feet. Now the judging and dropping happen under a lock of the wheel's."""
    import threading

    from wheelstream._staged import StagedFile, StagedWheel
    from wheelstream.fetch import _publish

    cache = Cache.at(tmp_path / "c")
    sha = "ab" * 32
    files = {"pkg/a.py": b"a = 1\n", "pkg/b.py": b"b = 2\n"}

    def staged(tag: str) -> StagedWheel:
        root = cache.root / "staging" / tag
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return StagedWheel(
            "pkg-1.0-py3-none-any.whl",
            root,
            {n: StagedFile(n, len(b), "0" * 64, False) for n, b in files.items()},
        )

    part = cache.wheel_dir(sha) / "pkg"
    part.mkdir(parents=True)
    (part / "a.py").write_bytes(files["pkg/a.py"])  # b.py gone, and the manifest
    holds, published = _publish._holds, threading.Event()

    def slow_holds(tree: Path, wheel: StagedWheel) -> bool:
        verdict = holds(tree, wheel)
        if threading.current_thread().name == "Q":
            published.wait(1)  # P publishes meanwhile, if it can
        return verdict

    monkeypatch.setattr(_publish, "_holds", slow_holds)
    results: dict[str, StagedWheel] = {}
    q = threading.Thread(
        target=lambda: results.setdefault("Q", _publish._publish(cache, staged("Q"), sha)), name="Q"
    )
    q.start()
    time.sleep(0.2)
    results["P"] = _publish._publish(cache, staged("P"), sha)
    tree_of_p = os.stat(results["P"].root).st_ino  # what P installs from: it must stay
    published.set()
    q.join()
    assert os.stat(cache.wheel_dir(sha)).st_ino == tree_of_p
    for name in ("P", "Q"):
        tree = results[name].root
        assert sorted(str(p.relative_to(tree)) for p in tree.rglob("*.py")) == sorted(files), name
    assert cache.wheel_manifest(sha).is_file()
