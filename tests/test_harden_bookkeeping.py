"""No wheel content may steer wheelstream's own bookkeeping (DESIGN §5, "The installer's own names").

Two ways in, both closed: a wheel *installed by wheelstream* may not put an item named like its temporary
homes into a target (refused, one line, target untouched); and a look-alike *another installer* put there
(pip installs anything) is never finished, moved or deleted by recovery, because it cannot carry the
ownership token of this user's key.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ws
from test_install_support import build_wheel, full_wheel, installed_target, snapshot, stage

from wheelstream.errors import WheelMetadataError
from wheelstream.installer import _commit, _ownership, _recovery, install_staged


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A target with a package a planted plan would like to replace, and a file of the user's."""
    return installed_target(tmp_path)


def _other(tmp_path: Path, name: str = "other") -> Path:
    return build_wheel(tmp_path / f"w-{name}", f"{name}-1.0-py3-none-any.whl", {f"{name}.py": b"x = 1\n"})


RESERVED = [
    ".wheelstream-tmp-evil/commit.json",
    ".wheelstream-tmp-evil/.owner.lock",
    ".wheelstream-gone-x/a.py",
    ".wheelstream-tmp-/x",
    ".wheelstream-anything",
    ".wheelstream-manifest.json",
    "evil-1.0.data/purelib/.wheelstream-tmp-z/home/full_pkg/__init__.py",
    "evil-1.0.data/platlib/.wheelstream-gone-z/x",
    "evil-1.0.data/data/.wheelstream-tmp-d/x",
]


@pytest.mark.parametrize("member", RESERVED)
def test_a_wheel_may_not_install_an_item_named_like_the_installers_own(
    member: str, target: Path, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path / "w", "evil-1.0-py3-none-any.whl", {member: b"{}", "evil.py": b""})
    before = snapshot(target)
    with pytest.raises(WheelMetadataError) as raised:
        install_staged(stage(wheel, tmp_path / "s"), target)
    message = str(raised.value)
    assert message.startswith("evil-1.0-py3-none-any.whl: would install '.wheelstream-")
    assert "reserves for its own bookkeeping" in message
    assert repr(member) in message
    assert snapshot(target) == before


def test_the_cli_refuses_it_in_one_line_and_leaves_the_target(target: Path, tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path / "w",
        "evil-1.0-py3-none-any.whl",
        {".wheelstream-tmp-evil/commit.json": b"{}", "evil.py": b""},
    )
    before = snapshot(target)
    run = ws("install", str(wheel), "--target", str(target), cache=tmp_path / "cache")
    assert run.code == 1
    assert run.error_line(alone=True).startswith("error: evil-1.0-py3-none-any.whl: would install"), run.err
    assert snapshot(target) == before


def _plant(target: Path, name: str, *, lock: bytes | None, plan: bool = True) -> Path:
    """What a wheel installed by another tool could leave: a look-alike of a killed install's directory,
    whose plan would replace ``full_pkg`` (replace=True) with the wheel's own copy."""
    planted = target / name
    (planted / "home" / "full_pkg").mkdir(parents=True)
    (planted / "home" / "full_pkg" / "__init__.py").write_text("PWNED = True\n")
    if plan:
        (planted / "commit.json").write_text(
            json.dumps({"version": 1, "moves": [["full_pkg", "home/full_pkg", True]]})
        )
    if lock is not None:
        (planted / ".owner.lock").write_bytes(lock)
    os.utime(planted, (0, 0))  # long dead, as far as its age tells
    return planted


@pytest.mark.parametrize(
    "lock",
    [
        b"",
        b"0" * 64,
        b"not a token\n",
        None,
    ],
    ids=["empty-lock", "zero-token", "junk", "no-lock"],
)
@pytest.mark.parametrize("prefix", [".wheelstream-tmp-", ".wheelstream-gone-"])
def test_a_planted_look_alike_is_never_finished_nor_deleted(
    lock: bytes | None, prefix: str, target: Path, tmp_path: Path
) -> None:
    planted = _plant(target, prefix + "evil", lock=lock)
    before = snapshot(target)
    install_staged(stage(_other(tmp_path), tmp_path / "so"), target)
    after = snapshot(target)
    assert {k: v for k, v in after.items() if not k.startswith("other")} == before
    assert (target / "full_pkg" / "__init__.py").read_text() != "PWNED = True\n"
    assert (planted / "commit.json").exists()


def test_a_home_killed_before_it_was_signed_goes_once_it_is_stale(target: Path, tmp_path: Path) -> None:
    """A kill between locking the lock file and writing the token into it leaves that empty file alone in the
    directory: recovery took it for a look-alike and kept it for good, and every ``list`` then warned of an
    unfinished install. A fresh one may be a live install's moment: it stays."""
    killed, fresh = target / ".wheelstream-tmp-killed", target / ".wheelstream-tmp-fresh"
    for home in (killed, fresh):
        home.mkdir()
        (home / ".owner.lock").touch()
    os.utime(killed, (0, 0))
    install_staged(stage(_other(tmp_path), tmp_path / "so"), target)
    assert not killed.exists()
    assert (fresh / ".owner.lock").exists()


def test_a_token_for_another_name_or_another_key_proves_nothing(
    target: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token is bound to the directory's name and to this user's key: copying a real token into another
    directory, or a directory signed under another key, is not ours."""
    copied = _plant(target, ".wheelstream-tmp-copy", lock=_ownership.home_token("some-other-name"))
    monkeypatch.setenv("WHEELSTREAM_STATE_DIR", str(tmp_path / "someone-else"))
    foreign = _plant(target, ".wheelstream-tmp-foreign", lock=_ownership.home_token("foreign"))
    monkeypatch.setenv("WHEELSTREAM_STATE_DIR", str(tmp_path / "me"))
    before = snapshot(target)
    install_staged(stage(_other(tmp_path), tmp_path / "so"), target)
    after = snapshot(target)
    assert {k: v for k, v in after.items() if not k.startswith("other")} == before
    assert copied.exists()
    assert foreign.exists()


def test_a_signed_directory_is_finished_under_the_same_key(target: Path, tmp_path: Path) -> None:
    """The other side of the rule: a directory that carries its token is what a killed install left, and the
    next install finishes its plan (the kill tests in test_install_atomic do it for real)."""
    planted = _plant(target, ".wheelstream-tmp-mine", lock=_ownership.home_token("mine"))
    report = install_staged(stage(_other(tmp_path), tmp_path / "so"), target)
    assert any("killed halfway; finished it: full_pkg" in w for w in report.warnings), report.warnings
    assert (target / "full_pkg" / "__init__.py").read_text() == "PWNED = True\n"
    assert not planted.exists()


def test_a_gone_directory_of_ours_is_deleted_lock_last(target: Path, tmp_path: Path) -> None:
    gone = target / ".wheelstream-gone-abc"
    (gone / "home" / "deep").mkdir(parents=True)
    (gone / "home" / "deep" / "f").write_text("x")
    (gone / ".owner.lock").write_bytes(_ownership.home_token("abc"))
    install_staged(stage(_other(tmp_path), tmp_path / "so"), target)
    assert not gone.exists()


def test_what_an_upgrade_set_aside_and_cannot_delete_is_named(
    target: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade's replaced items are deleted after the commit; a file there that refuses (immutable) left a
    ``.wheelstream-gone-*`` directory in the target without a word. The install is whole and says which file
    stayed and why; the next install leaves the directory alone (it is not entered again)."""
    real_unlink = os.unlink

    def unlink(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if os.path.basename(os.fspath(path)) == "__init__.py" and stuck:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    stuck = True
    monkeypatch.setattr(os, "unlink", unlink)
    report = install_staged(
        stage(full_wheel(tmp_path / "w2", version="2.0"), tmp_path / "s2"), target, upgrade=True
    )
    left = [name for name in os.listdir(target) if name.startswith(".wheelstream-")]
    assert len(left) == 1, left
    assert left[0].startswith(".wheelstream-gone-")
    warned = [w for w in report.warnings if w.startswith("could not delete ")]
    assert len(warned) == 1, report.warnings
    assert warned[0].startswith(f"could not delete {target / left[0]}/old/full_pkg/")
    assert "/__init__.py: Operation not permitted; it is in what an install set aside" in warned[0]
    assert warned[0].endswith("delete it by hand")
    assert (target / "full_pkg" / "__init__.py").exists()  # the new version's, installed whole

    stuck = False
    again = install_staged(stage(_other(tmp_path, "second"), tmp_path / "s3"), target)
    assert [w for w in again.warnings if "could not delete" in w] == [], again.warnings
    assert (target / left[0] / "old" / "full_pkg" / "__init__.py").exists()  # named once, then left alone


def test_a_retired_home_that_is_all_gone_names_nothing(tmp_path: Path) -> None:
    """``undeletable`` after a clean retire: nothing to say, and nothing of it left."""
    tmp = tmp_path / ".wheelstream-tmp-abc"
    (tmp / "home" / "pkg").mkdir(parents=True)
    (tmp / "home" / "pkg" / "f.py").write_text("x")
    (tmp / ".owner.lock").write_bytes(b"")
    assert _commit.retire(tmp) is False
    assert _commit.undeletable(tmp) is None
    assert os.listdir(tmp_path) == []


def test_pip_installs_a_look_alike_and_wheelstream_leaves_it_alone(target: Path, tmp_path: Path) -> None:
    """Through the real parts: pip --target installs a wheel that ships a temporary-home look-alike (pip has no
    reason to refuse it), then wheelstream installs another wheel into that target."""
    plan = json.dumps({"version": 1, "moves": [["full_pkg", "home/full_pkg", True]]}).encode()
    evil = build_wheel(
        tmp_path / "we",
        "evil-1.0-py3-none-any.whl",
        {
            "evil.py": b"",
            ".wheelstream-tmp-evil/commit.json": plan,
            ".wheelstream-tmp-evil/.owner.lock": b"",
            ".wheelstream-tmp-evil/home/full_pkg/__init__.py": b"PWNED = True\n",
            ".wheelstream-gone-evil/precious.txt": b"the wheel's own data\n",
        },
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(evil),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (target / ".wheelstream-tmp-evil" / "commit.json").exists()
    os.utime(target / ".wheelstream-tmp-evil", (0, 0))
    before = snapshot(target)
    run = ws("install", str(_other(tmp_path)), "--target", str(target), cache=tmp_path / "cache")
    assert run.code == 0, run.err
    after = snapshot(target)
    assert {k: v for k, v in after.items() if not k.startswith("other")} == before


def test_the_key_is_owner_only_and_one_under_concurrent_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Racing processes creating the key all read the one that won: a token one signs, another verifies."""
    state = tmp_path / "state"
    script = (
        "import sys; from wheelstream.installer import _ownership; "
        "sys.stdout.write(_ownership.home_token('x').decode())"
    )
    env = {**os.environ, "WHEELSTREAM_STATE_DIR": str(state)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    tokens = {proc.communicate(timeout=60)[0] for proc in procs}
    assert len(tokens) == 1
    key = state / "owner.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32
    assert [p.name for p in state.iterdir()] == ["owner.key"]  # no temporary left behind
    monkeypatch.setenv("WHEELSTREAM_STATE_DIR", str(state))
    assert _ownership.token_matches("x", tokens.pop().encode())


def test_an_unwritable_state_dir_still_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No place to keep the key (a read-only home): installs work; only a killed one's recovery is lost."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("WHEELSTREAM_STATE_DIR", str(blocker / "state"))  # a directory under a file: ENOTDIR
    report = install_staged(stage(_other(tmp_path), tmp_path / "so"), tmp_path / "t")
    assert report.installed == ("other-1.0.dist-info", "other.py")


def test_a_live_install_being_looked_at_keeps_its_token(tmp_path: Path) -> None:
    """own_home signs while it holds the lock: a recovery that looks at the fresh directory meanwhile finds it
    locked or signed, never signed by nobody and free."""
    tmp = tmp_path / ".wheelstream-tmp-live"
    tmp.mkdir()
    done = threading.Event()

    def look() -> None:
        while not done.is_set():
            assert _recovery.finish_interrupted(tmp_path, lambda message: None) == ([], [])

    looker = threading.Thread(target=look)
    looker.start()
    try:
        fd = _commit.own_home(tmp)
        assert fd is not None
        assert _ownership.token_matches("live", os.pread(fd, 256, 0))
        os.close(fd)
    finally:
        done.set()
        looker.join()


def test_the_cache_manifest_lives_beside_the_tree_where_no_wheel_name_reaches(tmp_path: Path) -> None:
    """Copy/hardlink installs keep the unpacked tree in the cache with a manifest of digests. Every name in
    the tree is the wheel's, so the manifest is kept beside it: a wheel shipping a file named like the old
    in-tree manifest neither corrupts the cached tree nor is corrupted by it, install after install."""
    import wheelstream

    wheel = build_wheel(
        tmp_path / "w",
        "mani-1.0-py3-none-any.whl",
        {
            "mani/__init__.py": b"",
            "mani/.wheelstream-manifest.json": b'{"filename": "evil", "files": []}',
            "mani/x.json.tmp": b"not ours either\n",
        },
    )
    cache = tmp_path / "cache"
    for n in range(3):
        result = wheelstream.install([str(wheel)], tmp_path / f"t{n}", cache_dir=cache, link_mode="copy")
        assert result.wheels[0].from_cache == (n > 0)
        assert (tmp_path / f"t{n}" / "mani" / ".wheelstream-manifest.json").read_bytes() == (
            b'{"filename": "evil", "files": []}'
        )
    sha = result.wheels[0].sha256
    assert (cache / "wheels" / f"{sha}.manifest.json").is_file()
    assert sorted(p.name for p in (cache / "wheels" / sha / "mani").iterdir()) == [
        ".wheelstream-manifest.json",
        "__init__.py",
        "x.json.tmp",
    ]

    # At the tree's root, where the manifest used to be: the install is refused (a reserved name), and the
    # cached tree keeps the wheel's bytes, so every later attempt gives the same answer, never a corrupt cache.
    rooted = build_wheel(
        tmp_path / "w2",
        "rooted-1.0-py3-none-any.whl",
        {"rooted.py": b"", ".wheelstream-manifest.json": b"the wheel's own\n"},
    )
    for n in range(2):
        with pytest.raises(WheelMetadataError, match="reserves for its own bookkeeping"):
            wheelstream.install([str(rooted)], tmp_path / f"r{n}", cache_dir=cache, link_mode="copy")
        assert not (tmp_path / f"r{n}").exists()
    trees = [p for p in (cache / "wheels").iterdir() if p.is_dir() and (p / "rooted.py").exists()]
    assert len(trees) == 1
    assert (trees[0] / ".wheelstream-manifest.json").read_bytes() == b"the wheel's own\n"


def test_a_cached_tree_without_its_manifest_is_given_one_by_the_next_install(tmp_path: Path) -> None:
    """Killed between publishing the tree and writing its manifest (or a tree from an older cache): the tree
    is not trusted, the next install unpacks the kept wheel file again and gives the tree its manifest."""
    import wheelstream

    wheel = build_wheel(tmp_path / "w", "mani-1.0-py3-none-any.whl", {"mani/__init__.py": b"x = 1\n"})
    cache = tmp_path / "cache"
    first = wheelstream.install([str(wheel)], tmp_path / "t1", cache_dir=cache, link_mode="copy")
    manifest = cache / "wheels" / f"{first.wheels[0].sha256}.manifest.json"
    manifest.unlink()
    again = wheelstream.install([str(wheel)], tmp_path / "t2", cache_dir=cache, link_mode="copy")
    assert not again.wheels[0].from_cache
    assert manifest.is_file()
    third = wheelstream.install([str(wheel)], tmp_path / "t3", cache_dir=cache, link_mode="copy")
    assert third.wheels[0].from_cache
    assert third.wheels[0].files_unpacked == 0
    assert snapshot(tmp_path / "t3") == snapshot(tmp_path / "t1")


def test_a_key_that_could_not_be_stored_once_is_stored_the_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure storing the key (here ``link``; a full disk, a moment's EMFILE) was remembered for the life of
    the process: it signed every later install with a key of its own, which no other process could check, so
    the installs of it a kill interrupted were never finished (a test that broke ``os.link`` once made the
    kill tests after it in the same process fail)."""
    from wheelstream.installer import _ownership

    monkeypatch.setenv("WHEELSTREAM_STATE_DIR", str(tmp_path / "state"))
    real_link = os.link

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    first = _ownership.owner_key()
    monkeypatch.setattr(os, "link", real_link)
    stored = _ownership.owner_key()
    assert stored != first
    assert (tmp_path / "state" / "owner.key").read_bytes() == stored
    assert _ownership.owner_key() == stored
