"""Edges of installing into environments that a review found broken, each through the library or the command
with real virtual environments (``python -m venv --without-pip``) and real wheels.

Covered: a venv whose platlib is spelt through ``lib64 -> lib`` (an upgrade and a reinstall keep what they just
installed); an uninstall leaves the data directories it did not empty, as pip's ``compress_for_rename`` does
(compared with pip's own uninstall); a lock URL carrying a token installs and never shows it; ``-r pylock.toml``
with ``--target --upgrade`` replaces the package as ``pip install --target -U`` does, and refuses
``--ignore-tags`` and ``--index-url``; an installed RECORD that cannot be read is one error line for uninstall and
for an upgrade over it, and nothing changes; the recovery of a rollback killed while it emptied ``old/``; one
command at a time per environment; sync keeps wheelstream's own distributions only where wheelstream runs.

Every command runs with its current directory in the test's own ``tmp_path`` and without ``VIRTUAL_ENV`` (the
autouse fixture ``test_env_support.no_active_venv``), as in ``test_env_install``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_until, ws, ws_start
from test_env_support import PY, SITE, leftovers, make_venv, new_venv, python_of, scan
from test_env_support import no_active_venv as no_active_venv  # autouse: pytest applies it to this module
from test_install_support import stage

import wheelstream
from wheelstream._lock_api import own_distributions
from wheelstream.installer import (
    Environment,
    EnvironmentReport,
    WheelToInstall,
    find_environment,
    install_into,
    installed_distributions,
    uninstall,
)
from wheelstream.testing import FaultServer
from wheelstream.testing._wheel import Content, record_hash, wheel_archive

SECRET = "s3cr3t-Q7x"  # a lock URL's query token: never on the terminal


# -- helpers -------------------------------------------------------------------------------------------------


def write_wheel(
    directory: Path, name: str, version: str, files: dict[str, Content], *, root_is_purelib: bool = True
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    path.write_bytes(wheel_archive(files, name=name, version=version, root_is_purelib=root_is_purelib))
    return path


def locked_package(name: str, version: str, data: bytes, url: str, size: int | None = None) -> str:
    """One ``[[packages]]`` table with one wheel at ``url``: its sha256, and ``size`` (else the right one)."""
    wheel = {"url": url, "size": len(data) if size is None else size}
    fields = ", ".join(f"{key} = {json.dumps(value)}" for key, value in wheel.items())
    sha = hashlib.sha256(data).hexdigest()
    return (
        f"[[packages]]\nname = {json.dumps(name)}\nversion = {json.dumps(version)}\n"
        f'wheels = [{{ {fields}, hashes = {{ sha256 = "{sha}" }} }}]\n'
    )


def write_lock(path: Path, *packages: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('lock-version = "1.0"\ncreated-by = "wheelstream tests"\n\n' + "\n".join(packages))
    return path


def names_installed(env: Environment) -> list[tuple[str, str]]:
    return [(dist.name, dist.version) for dist in installed_distributions(env)]


def python(venv: Path) -> str:
    return str(python_of(venv))


# -- a platlib spelt through lib64 -> lib --------------------------------------------------------------------


def lib64_environment(venv: Path) -> Environment:
    """``venv``'s environment as a system whose venvs report platlib through ``lib64 -> lib`` sees it: purelib
    ``lib/pythonX.Y/site-packages``, platlib ``lib64/pythonX.Y/site-packages`` (one real directory)."""
    if not (venv / "lib64").is_symlink():
        os.symlink("lib", venv / "lib64")  # venv makes it on 64-bit Linux, not everywhere
    env = find_environment(python=python(venv))
    scheme = dataclasses.replace(env.interpreter.scheme, platlib=f"lib64/{PY}/site-packages")
    return dataclasses.replace(env, interpreter=dataclasses.replace(env.interpreter, scheme=scheme))


def plat_files(version: str) -> dict[str, Content]:
    """A Root-Is-Purelib: false distribution: a package, and a module only this version has."""
    return {
        "plat/__init__.py": f"V = {version!r}\n".encode(),
        "plat/core.py": f"core = {version!r}\n".encode(),
        f"plat_only_{version[0]}.py": b"ONLY = True\n",
    }


def assert_installed_whole(env: Environment, venv: Path, version: str) -> None:
    """plat ``version`` alone in site-packages, every file its RECORD lists there with its hash, nothing else
    in its ``.dist-info``; no other version's ``.dist-info``, no temporary home left."""
    site = venv / SITE
    info = f"plat-{version}.dist-info"
    assert sorted(os.listdir(site)) == sorted(["plat", info, f"plat_only_{version[0]}.py"])
    for path, content in plat_files(version).items():
        assert (site / path).read_bytes() == content, path
    assert sorted(os.listdir(site / "plat")) == ["__init__.py", "core.py"]
    with open(site / info / "RECORD", newline="") as handle:
        rows = {row[0]: row[1] for row in csv.reader(handle)}
    assert sorted(rows) == sorted(
        [*plat_files(version), *(f"{info}/{name}" for name in os.listdir(site / info))]
    )
    for path, digest in rows.items():
        if path != f"{info}/RECORD":
            assert digest == record_hash((site / path).read_bytes()), path
    assert names_installed(env) == [("plat", version)]
    assert leftovers(venv) == []


def test_upgrade_and_reinstall_through_a_lib64_platlib_keep_what_they_installed(tmp_path: Path) -> None:
    """Review: removal read the old files through ``lib`` and the merge wrote the new ones through ``lib64``;
    compared as text they differed, so the upgrade set aside the package it had just moved in."""
    venv = make_venv(tmp_path / "venv")
    env = lib64_environment(venv)
    fresh = scan(venv)
    wheels = tmp_path / "wheels"
    v1, v2 = (write_wheel(wheels, "plat", v, plat_files(v), root_is_purelib=False) for v in ("1.0", "2.0"))

    report = install_into([WheelToInstall(stage(v1, tmp_path / "s1"))], env)
    assert (report.installed, report.removed) == (("plat 1.0",), ())
    assert_installed_whole(env, venv, "1.0")

    report = install_into([WheelToInstall(stage(v2, tmp_path / "s2"))], env)
    assert (report.installed, report.removed) == (("plat 2.0",), ("plat 1.0",))
    assert_installed_whole(env, venv, "2.0")
    upgraded = scan(venv)

    report = install_into([WheelToInstall(stage(v2, tmp_path / "s3"))], env, reinstall=True)
    assert (report.installed, report.removed) == (("plat 2.0",), ("plat 2.0",))
    assert_installed_whole(env, venv, "2.0")
    assert scan(venv) == upgraded

    report = uninstall(["plat"], env)
    assert report.removed == ("plat 2.0",)
    assert scan(venv) == fresh


# -- uninstall: pip's compress_for_rename --------------------------------------------------------------------


def test_uninstall_leaves_the_data_directories_it_did_not_empty_as_pip_does(
    tmp_path: Path, cache: Path
) -> None:
    """Review: every directory whose files were all removed went whole, so an uninstall took ``share/`` with
    the empty ``share/man`` and ``share/fonts`` the system had made. pip only takes a removed file's own
    directory whole (``compress_for_rename``); what pip's uninstall leaves is the reference."""
    kernel = b'{"argv": ["python", "-m", "kern"]}\n'
    wheel = write_wheel(
        tmp_path / "wheels",
        "kern",
        "1.0",
        {"kern/__init__.py": b"k = 1\n", "kern-1.0.data/data/share/jupyter/kernels/k/kernel.json": kernel},
    )
    venv = tmp_path / "venv"
    left: dict[str, dict[str, object]] = {}
    for by in ("pip", "wheelstream"):
        new_venv(venv)
        for folder in ("share/man", "share/fonts"):
            (venv / folder).mkdir(parents=True)
        run = ws("install", str(wheel), "--python", python(venv), cache=cache, cwd=tmp_path)
        assert run.code == 0, run.err
        assert (venv / "share/jupyter/kernels/k/kernel.json").read_bytes() == kernel
        if by == "pip":
            pip = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-input"]
            proc = subprocess.run(
                [*pip, "--python", python(venv), "uninstall", "-y", "kern"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
        else:
            run = ws("uninstall", "kern", "--python", python(venv), cache=cache, cwd=tmp_path)
            assert run.code == 0, run.err
        left[by] = dict(scan(venv))
    ours = left["wheelstream"]
    for kept in ("share", "share/man", "share/fonts"):
        assert kept in ours, kept
    for gone in ("share/jupyter/kernels/k", f"{SITE}/kern", f"{SITE}/kern-1.0.dist-info"):
        assert gone not in ours, gone
    assert sorted(set(ours) ^ set(left["pip"])) == []
    assert ours == left["pip"]


# -- a lock URL with a token ---------------------------------------------------------------------------------


def test_a_lock_url_with_a_token_installs_and_never_shows_the_token(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """Review: a lock's wheels were verified under their redacted URL, which the verifier did not know (a
    KeyError out of every install of a lock whose URLs carry a token)."""
    venv = make_venv(tmp_path / "venv")
    alpha = wheel_archive({"alpha/__init__.py": b"A = 1\n"}, name="alpha", version="1.0")
    name = "alpha-1.0-py3-none-any.whl"
    url = f"{server.add_file(name, alpha)}?token={SECRET}"
    lock = write_lock(tmp_path / "good" / "pylock.toml", locked_package("alpha", "1.0", alpha, url))
    run = ws("install", "-r", str(lock), "--python", python(venv), "-v", cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert SECRET not in run.out + run.err, run.err
    assert (venv / SITE / "alpha/__init__.py").read_bytes() == b"A = 1\n"
    requests = server.requests_for(name)
    assert requests, server.requests
    assert all(r.path == f"/{name}?token={SECRET}" for r in requests), [r.path for r in requests]
    for file in (venv / SITE / "alpha-1.0.dist-info").iterdir():  # no direct_url.json: an index's file
        assert SECRET not in file.read_text(), file

    # the verifier's other way out: a finished download the lock's size refuses
    beta = wheel_archive({"beta/__init__.py": b"B = 1\n"}, name="beta", version="1.0")
    url = f"{server.add_file('beta-1.0-py3-none-any.whl', beta)}?token={SECRET}"
    lock = write_lock(
        tmp_path / "bad" / "pylock.toml", locked_package("beta", "1.0", beta, url, size=len(beta) + 1)
    )
    before = scan(venv)
    run = ws("install", "-r", str(lock), "--python", python(venv), "-v", cache=cache, cwd=tmp_path)
    assert run.code == 1, run.err
    line = run.error_line()
    assert f"{len(beta)} bytes, {len(beta) + 1} expected" in line, line  # refused on the server's headers
    assert SECRET not in run.out + run.err, run.err
    assert scan(venv) == before


# -- -r pylock.toml into a target ----------------------------------------------------------------------------


def alpha_files(version: str) -> dict[str, Content]:
    return {
        "alpha/__init__.py": f"V = {version!r}\n".encode(),
        f"alpha_only_{version[0]}.py": b"ONLY = True\n",
    }


def test_a_lock_into_a_target_with_upgrade_replaces_the_package_as_pip_does(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """Review: ``-r pylock.toml`` dropped ``--upgrade``, so a second lock into the same target left the first
    version's package in place."""
    target, pip_target = tmp_path / "target", tmp_path / "pip-target"
    for version in ("1.0", "2.0"):
        wheel = write_wheel(tmp_path / "wheels", "alpha", version, alpha_files(version))
        data = wheel.read_bytes()
        url = server.add_file(wheel.name, data)
        lock = write_lock(tmp_path / version / "pylock.toml", locked_package("alpha", version, data, url))
        run = ws("install", "-r", str(lock), "--target", str(target), "--upgrade", cache=cache, cwd=tmp_path)
        assert run.code == 0, run.err
        pip = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-input", "-q"]
        options = ["--no-deps", "--no-index", "--no-compile", "--no-cache-dir", "--upgrade"]
        proc = subprocess.run(
            [*pip, "install", *options, "--target", str(pip_target), str(wheel)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    assert (target / "alpha/__init__.py").read_bytes() == b"V = '2.0'\n"
    assert sorted(os.listdir(target / "alpha")) == sorted(os.listdir(pip_target / "alpha"))
    assert sorted(os.listdir(target)) == sorted(os.listdir(pip_target))
    assert leftovers(target) == []


@pytest.mark.parametrize("option", ["--ignore-tags", "--index-url"])
def test_a_lock_refuses_ignore_tags_and_index_url_in_one_line(
    tmp_path: Path, cache: Path, server: FaultServer, option: str
) -> None:
    """Review: ``-r pylock.toml`` ignored both options (the lock names its wheels); now they are refused
    before any request."""
    data = wheel_archive(alpha_files("1.0"), name="alpha", version="1.0")
    url = server.add_file("alpha-1.0-py3-none-any.whl", data)
    lock = write_lock(tmp_path / "pylock.toml", locked_package("alpha", "1.0", data, url))
    given = ["--ignore-tags"] if option == "--ignore-tags" else ["-i", f"{server.url}/simple/"]
    target = tmp_path / "target"
    run = ws("install", "-r", str(lock), "--target", str(target), *given, cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    assert "Traceback" not in run.err, run.err
    assert server.requests == []
    assert not target.exists()
    refusals = [line for line in run.err.splitlines() if "do not apply" in line]
    assert len(refusals) == 1, run.err
    assert option in refusals[0], refusals
    # docs/cli.md, exit codes: a usage error is exactly one `error:` line; only click's own (an unknown
    # option, a missing argument) print click's Usage: and Error: lines
    assert run.error_line(alone=True) == refusals[0], run.err


# -- an installed RECORD that cannot be read -----------------------------------------------------------------


def unreadable_record(record: Path, how: str) -> None:
    """Make ``record`` unreadable as ``how`` says: csv's 128 KiB field limit passed by one row, or by an open
    quote that takes the rows after it into one field; or a directory where the file was."""
    if how == "a field over 128 KiB":
        record.write_text(record.read_text() + "foo/" + "x" * (128 * 1024) + ".py,,\n")
    elif how == "an unterminated quote":
        rows = "".join(f"foo/module_{i}.py,,\n" for i in range(10_000))
        record.write_text('"' + record.read_text() + rows)
    elif (
        how == "not UTF-8"
    ):  # a Latin-1 RECORD: its non-ASCII names are not the disk's (they were left behind)
        record.write_bytes(record.read_bytes() + "foo/versi\xf3n.txt,,\n".encode("latin-1"))
    else:
        record.unlink()
        record.mkdir()
        (record / "x").write_text("")


@pytest.mark.parametrize("how", ["a field over 128 KiB", "an unterminated quote", "a directory", "not UTF-8"])
def test_an_unreadable_record_is_one_error_line_and_changes_nothing(
    tmp_path: Path, cache: Path, how: str
) -> None:
    """Review: csv's errors (a field over its 128 KiB limit, as an unterminated quote makes one) came out of
    uninstall and of an upgrade as a traceback."""
    venv = make_venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    v1, v2 = (
        write_wheel(wheels, "foo", v, {"foo/__init__.py": f"V = {v!r}\n".encode()}) for v in ("1.0", "2.0")
    )
    assert ws("install", str(v1), "--python", python(venv), cache=cache, cwd=tmp_path).code == 0
    unreadable_record(venv / SITE / "foo-1.0.dist-info" / "RECORD", how)
    before = scan(venv)
    for command in (["uninstall", "foo"], ["install", str(v2)]):
        run = ws(*command, "--python", python(venv), cache=cache, cwd=tmp_path)
        assert run.code == 1, (command, run.err)
        line = run.error_line()
        assert "foo 1.0" in line, line
        assert "RECORD" in line, line
        assert scan(venv) == before, command
        assert leftovers(venv) == []


# -- recovery of a rollback killed while it emptied old/ -----------------------------------------------------

# What a rollback killed midway through an environment's plan leaves: a temporary home signed by its (now dead)
# owner, no plan (the rollback deletes it first) and old/ emptied file by file down to its directories.
KILLED_ROLLBACK = """
import os, sys
from pathlib import Path
from wheelstream.installer._commit import own_home

tmp, site, kept = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
tmp.mkdir()
if own_home(tmp) is None:
    sys.exit(f"cannot lock {tmp}")
(tmp / "home" / site / "demo").mkdir(parents=True)
(tmp / "home" / site / "demo" / "__init__.py").write_text("V = 2\\n")
(tmp / "old" / site).mkdir(parents=True)
if kept:
    (tmp / "old" / site / kept).write_text("the only copy\\n")
os._exit(0)  # as a kill: the kernel drops the lock, nothing is tidied
"""


@pytest.mark.parametrize("kept", ["", "demo_old.py"], ids=["only-directories", "a-replaced-file"])
def test_the_next_command_removes_a_killed_rollbacks_nested_empty_old(
    tmp_path: Path, cache: Path, kept: str
) -> None:
    """Review: recovery removed ``old/`` only when it was one empty directory; an environment's ``old/`` has
    the scheme's depth (``old/lib/pythonX.Y/site-packages``), so that litter stayed for good. A replaced file
    still in ``old/`` (its only copy) keeps the whole directory, as before."""
    venv = make_venv(tmp_path / "venv")
    before = scan(venv)
    tmp = venv / ".wheelstream-tmp-x"
    subprocess.run([sys.executable, "-c", KILLED_ROLLBACK, str(tmp), SITE, kept], check=True, cwd=tmp_path)
    assert leftovers(venv) == [tmp.name]
    listing = ws(
        "list", "--python", python(venv), cache=cache, cwd=tmp_path
    )  # only reads: says so, changes nothing
    assert listing.code == 0, listing.err
    assert "an install was interrupted" in listing.err
    assert leftovers(venv) == [tmp.name]
    run = ws("uninstall", "not-installed", "--python", python(venv), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err, run.err
    if kept:
        assert leftovers(venv) == [tmp.name]
        assert (tmp / "old" / SITE / kept).read_text() == "the only copy\n"
    else:
        assert leftovers(venv) == []
        assert scan(venv) == before
        listing = ws("list", "--python", python(venv), cache=cache, cwd=tmp_path)
        assert "interrupted" not in listing.err


# -- one command at a time per environment -------------------------------------------------------------------

HOLD_LOCK = """
import sys
from wheelstream.installer import find_environment
from wheelstream.installer._env_install import environment_lock

with environment_lock(find_environment(python=sys.argv[1]), print):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_an_install_waits_while_another_process_holds_the_environment(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """Review: two commands could plan against the same environment at once, each on a state the other was
    changing. The install waits for the lock, then completes."""
    venv = make_venv(tmp_path / "venv")
    data = wheel_archive(alpha_files("1.0"), name="alpha", version="1.0")
    name = "alpha-1.0-py3-none-any.whl"
    url = server.add_file(name, data)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, python(venv)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline() == "locked\n"
        installer = ws_start("install", url, "--python", python(venv), "--no-progress", cache=cache)
        try:
            # the download comes before the lock: once the wheel is all sent, the install is at the lock in
            # milliseconds; a bounded look (not a sleep to synchronise) then shows it waits there
            wait_until(
                lambda: server.bytes_sent(name) >= len(data) or installer.poll() is not None,
                timeout=30,
                what="the wheel downloaded",
            )
            waiting_until = time.monotonic() + 2
            while time.monotonic() < waiting_until:
                assert installer.poll() is None, installer.communicate()
                time.sleep(0.05)
            assert not (venv / SITE / "alpha").exists()
            assert leftovers(venv) == []
            holder.stdin.write("\n")
            holder.stdin.flush()
            _out, err = installer.communicate(timeout=60)
            assert installer.returncode == 0, err
            # said once, not left to look like a hang
            assert (
                err.count(f"warning: waiting for another wheelstream command to finish with {venv}") == 1
            ), err
        finally:
            if installer.poll() is None:
                installer.kill()
                installer.communicate()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert (venv / SITE / "alpha/__init__.py").read_bytes() == b"V = '1.0'\n"
    assert names_installed(find_environment(python=python(venv))) == [("alpha", "1.0")]


# -- sync keeps wheelstream's own distributions where it runs ------------------------------------------------


def test_own_distributions_are_wheelstream_and_what_it_requires() -> None:
    ours = own_distributions()
    assert {"wheelstream", "httpx", "click"} <= ours, sorted(ours)


@pytest.mark.parametrize("runs_there", [False, True], ids=["another-environment", "wheelstreams-own"])
def test_sync_removes_wheelstreams_names_except_from_the_environment_it_runs_from(
    tmp_path: Path, cache: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch, runs_there: bool
) -> None:
    """Review: a sync in wheelstream's own environment removed wheelstream and its requirements (no lock of the
    user's lists them). Elsewhere a distribution named ``click`` is the user's like any other."""
    venv = make_venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    for fake in ("click", "wheelstream"):
        wheel = write_wheel(wheels, fake, "0.0.1", {f"fake_{fake}.py": b"FAKE = True\n"})
        assert ws("install", str(wheel), "--python", python(venv), cache=cache, cwd=tmp_path).code == 0
    data = wheel_archive(alpha_files("1.0"), name="alpha", version="1.0")
    url = server.add_file("alpha-1.0-py3-none-any.whl", data)
    lock = write_lock(tmp_path / "pylock.toml", locked_package("alpha", "1.0", data, url))
    env = find_environment(python=python(venv))
    if runs_there:
        monkeypatch.setattr(sys, "prefix", str(venv))  # as if wheelstream ran from this venv
    warnings: list[str] = []
    result = wheelstream.sync(lock, env, cache_dir=cache, on_warning=warnings.append)
    assert isinstance(result.report, EnvironmentReport)
    assert result.report.installed == ("alpha 1.0",)
    if runs_there:
        assert result.report.removed == ()
        assert warnings == ["not removed, as wheelstream runs from them: click, wheelstream"]
        expected = [("alpha", "1.0"), ("click", "0.0.1"), ("wheelstream", "0.0.1")]
    else:
        assert sorted(result.report.removed) == ["click 0.0.1", "wheelstream 0.0.1"]
        assert not any("not removed" in warning for warning in warnings), warnings
        expected = [("alpha", "1.0")]
    assert names_installed(env) == expected
    assert leftovers(venv) == []


def test_uninstall_in_the_environment_it_runs_from_keeps_what_wheelstream_imports(
    tmp_path: Path, cache: Path
) -> None:
    """``wheelstream uninstall h11`` in its own venv removed h11, exit 0, and every later command was a
    traceback. The command keeps what it runs from (as sync does), with a warning; itself may go, as
    ``pip uninstall pip`` removes pip. Run from the scratch venv's interpreter, so that venv is the running one."""
    venv = make_venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    for fake in ("click", "alpha"):
        wheel = write_wheel(wheels, fake, "0.0.1", {f"fake_{fake}.py": b"FAKE = True\n"})
        assert ws("install", str(wheel), "--python", python(venv), cache=cache, cwd=tmp_path).code == 0
    ours = sorted({os.path.dirname(os.path.dirname(wheelstream.__file__)), *map(str, _site_dirs())})
    code = f"import sys; sys.path[:0] = {ours!r}; from wheelstream.cli import main; main()"
    run = subprocess.run(
        [python(venv), "-c", code, "uninstall", "click", "alpha"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "VIRTUAL_ENV": str(venv)},
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "warning: not removed, as wheelstream runs from it: click" in run.stderr
    assert "removed alpha 0.0.1" in run.stderr
    assert names_installed(find_environment(python=python(venv))) == [("click", "0.0.1")]


def _site_dirs() -> list[Path]:
    """Where this interpreter's packages are (httpx and the rest the command imports)."""
    import httpx

    return [Path(httpx.__file__).parent.parent]


def test_a_legacy_egg_info_distribution_is_listed_and_never_half_replaced(tmp_path: Path) -> None:
    """setuptools' legacy ``.egg-info`` has no RECORD: wheelstream lists it, and refuses in one line to replace
    or remove it (installing over it would leave two versions, one half overwritten), touching nothing."""
    venv = make_venv(tmp_path / "venv")
    site = venv / SITE
    (site / "legacy").mkdir()
    (site / "legacy" / "__init__.py").write_text("V = '1.0'\n")
    (site / "legacy-1.0-py3.11.egg-info").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 1.0\n")
    before = scan(venv)
    python = str(venv / "bin" / "python")
    listing = ws("list", "--python", python, cache=tmp_path / "cache", cwd=tmp_path)
    assert listing.code == 0, listing.err
    assert any(line.split()[:2] == ["legacy", "1.0"] for line in listing.out.splitlines()), listing.out
    wheel = tmp_path / "legacy-2.0-py3-none-any.whl"
    wheel.write_bytes(wheel_archive({"legacy/__init__.py": b"V = '2.0'\n"}, name="legacy", version="2.0"))
    for args in (["install", str(wheel)], ["uninstall", "legacy"]):
        run = ws(*args, "--python", python, cache=tmp_path / "cache", cwd=tmp_path)
        assert run.code == 1, run.err
        assert ".egg-info" in run.error_line(), run.err
        assert scan(venv) == before


def test_a_dist_info_wins_over_a_stale_egg_info_of_the_same_name(tmp_path: Path) -> None:
    """``up-0.9-py3.11.egg-info`` sorts before ``up-1.0.dist-info``, and the first one seen was kept: ``list``
    said 0.9 and an upgrade was refused as an .egg-info, with a RECORD'ed 1.0 right there."""
    venv = make_venv(tmp_path / "venv")
    site = venv / SITE
    python = str(venv / "bin" / "python")
    one, two = tmp_path / "up-1.0-py3-none-any.whl", tmp_path / "up-2.0-py3-none-any.whl"
    one.write_bytes(wheel_archive({"up/__init__.py": b"V = '1.0'\n"}, name="up", version="1.0"))
    two.write_bytes(wheel_archive({"up/__init__.py": b"V = '2.0'\n"}, name="up", version="2.0"))
    assert ws("install", str(one), "--python", python, cache=tmp_path / "cache", cwd=tmp_path).code == 0
    (site / "up-0.9-py3.11.egg-info").write_text("Metadata-Version: 1.1\nName: up\nVersion: 0.9\n")
    listing = ws("list", "--python", python, cache=tmp_path / "cache", cwd=tmp_path)
    assert any(line.split()[:2] == ["up", "1.0"] for line in listing.out.splitlines()), listing.out
    run = ws("install", str(two), "--python", python, cache=tmp_path / "cache", cwd=tmp_path)
    assert run.code == 0, run.err
    assert (site / "up" / "__init__.py").read_text() == "V = '2.0'\n"
    assert not (site / "up-1.0.dist-info").exists()


@pytest.mark.parametrize("metadata", [True, False])
def test_a_develop_egg_link_is_listed_and_never_left_beside_a_wheel(metadata: bool, tmp_path: Path) -> None:
    """A setuptools develop install (``pip install -e`` before PEP 660): ``Dev_Pkg.egg-link`` in site-packages
    names the project, whose ``dev_pkg.egg-info`` holds the metadata. It was not seen: not listed (pip lists
    it), "not installed" to uninstall, and a wheel of it installed beside it (two versions visible). Listed
    now, and refused in one line either way, touching nothing."""
    venv = make_venv(tmp_path / "venv")
    site = venv / SITE
    project = tmp_path / "project"
    (project / "dev_pkg").mkdir(parents=True)
    (project / "dev_pkg" / "__init__.py").write_text("V = 'develop'\n")
    if metadata:
        (project / "dev_pkg.egg-info").mkdir()
        (project / "dev_pkg.egg-info" / "PKG-INFO").write_text(
            "Metadata-Version: 1.1\nName: dev-pkg\nVersion: 1.0\n"
        )
    (site / "Dev_Pkg.egg-link").write_text(f"{project}\n.")
    (site / "easy-install.pth").write_text(f"{project}\n")
    before = scan(venv)
    python = str(venv / "bin" / "python")
    listing = ws("list", "--python", python, cache=tmp_path / "cache", cwd=tmp_path)
    assert listing.code == 0, listing.err
    shown = ["dev-pkg", "1.0"] if metadata else ["Dev_Pkg", "(develop)"]
    assert any(line.split()[:2] == shown for line in listing.out.splitlines()), listing.out
    wheel = tmp_path / "dev_pkg-2.0-py3-none-any.whl"
    wheel.write_bytes(wheel_archive({"dev_pkg/__init__.py": b"V = '2.0'\n"}, name="dev_pkg", version="2.0"))
    for args in (["install", str(wheel)], ["uninstall", "dev-pkg"]):
        run = ws(*args, "--python", python, cache=tmp_path / "cache", cwd=tmp_path)
        assert run.code == 1, run.err
        assert "setuptools develop install (Dev_Pkg.egg-link)" in run.error_line(), run.err
        assert scan(venv) == before


def test_a_lock_may_name_its_wheel_with_a_file_url(tmp_path: Path) -> None:
    """A ``file://`` wheel URL in a lock is verified where it lies (size and hash) and installed; the
    verification once looked it up under its converted path and failed with a KeyError."""
    data = wheel_archive({"alpha/__init__.py": b"V = 1\n"}, name="alpha", version="1.0")
    wheel = tmp_path / "alpha-1.0-py3-none-any.whl"
    wheel.write_bytes(data)
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "alpha"\nversion = "1.0"\n'
        f'wheels = [{{ url = "{wheel.as_uri()}", hashes = {{ sha256 = "{hashlib.sha256(data).hexdigest()}" }}, '
        f"size = {len(data)} }}]\n"
    )
    venv = make_venv(tmp_path / "venv")
    run = ws(
        "install", "-r", str(lock), "--python", str(python_of(venv)), cache=tmp_path / "cache", cwd=tmp_path
    )
    assert run.code == 0, run.err
    assert (venv / SITE / "alpha" / "__init__.py").read_bytes() == b"V = 1\n"
    lock.write_text(lock.read_text().replace(f"size = {len(data)}", f"size = {len(data) + 1}"))
    run = ws(
        "install",
        "-r",
        str(lock),
        "--python",
        str(python_of(venv)),
        "--reinstall",
        cache=tmp_path / "cache",
        cwd=tmp_path,
    )
    assert run.code == 1, run.err
    assert "the lock says" in run.error_line(), run.err
    assert wheel.read_bytes() == data  # the user's own file is never removed


# -- what finishing a killed command and a late Ctrl-C say ------------------------------------------------------


def test_a_killed_uninstall_finished_by_the_next_one_says_what_it_removed(tmp_path: Path) -> None:
    """The steps of an uninstall only set items aside: finishing one counted nothing, said nothing, and the
    next uninstall then said "skipping: not installed … 0 files removed" of what it had just removed."""
    venv = make_venv(tmp_path / "venv")
    wheel = write_wheel(tmp_path / "wheels", "alpha", "1.0", alpha_files("1.0"))
    cache = tmp_path / "cache"
    assert ws("install", str(wheel), "--python", python(venv), cache=cache, cwd=tmp_path).code == 0
    killed = ws(
        "uninstall",
        "alpha",
        "--python",
        python(venv),
        cache=cache,
        cwd=tmp_path,
        env={"WHEELSTREAM_KILL_AT": "commit.rename@2"},
    )
    assert killed.code == -9, killed.err
    run = ws("uninstall", "alpha", "--python", python(venv), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "was killed halfway; finished it:" in run.err, run.err
    assert "path(s) removed" in run.err, run.err
    assert names_installed(find_environment(python=python(venv))) == []
    assert leftovers(venv) == []


@pytest.mark.parametrize("command", ["install", "uninstall"])
def test_a_ctrl_c_after_the_last_rename_says_the_command_finished(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the renames (signals held) and the home's retirement a Ctrl-C said "run the same command
    again", though everything was done; it says the command finished, and the environment is whole."""
    from wheelstream.installer import _transaction

    venv = make_venv(tmp_path / "venv")
    env = find_environment(python=python(venv))
    v1 = write_wheel(tmp_path / "wheels", "alpha", "1.0", alpha_files("1.0"))
    v2 = write_wheel(tmp_path / "wheels", "alpha", "2.0", alpha_files("2.0"))
    wheelstream.install([str(v1)], environment=env, cache_dir=tmp_path / "cache")

    def interrupt(name: str) -> None:
        if name == "commit.retire":
            raise KeyboardInterrupt

    def run() -> None:
        if command == "install":
            wheelstream.install([str(v2)], environment=env, cache_dir=tmp_path / "cache")
        else:
            wheelstream.uninstall(["alpha"], env)

    monkeypatch.setattr(_transaction, "reached", interrupt)
    with pytest.raises(wheelstream.errors.Interrupted) as caught:
        run()
    assert caught.value.installed
    assert ("after the install finished" if command == "install" else "after the uninstall finished") in str(
        caught.value
    )
    assert names_installed(env) == ([("alpha", "2.0")] if command == "install" else [])
    assert leftovers(venv) == []


@pytest.mark.parametrize(
    ("files", "entry_points"),
    [
        ({"demo/__init__.py": b"def main(): pass\n"}, "[console_scripts]\npython = demo:main\n"),
        ({"demo-1.0.data/scripts/python3": b"#!python\nprint(1)\n"}, None),
        ({"demo-1.0.data/data/bin/python": b"#!/bin/sh\n"}, None),
    ],
    ids=["console-script", "data-scripts", "data-data-bin"],
)
def test_a_wheel_that_would_replace_the_environments_interpreter_is_refused(
    files: dict[str, Content], entry_points: str | None, tmp_path: Path
) -> None:
    """pip installs it and the venv's ``bin/python`` becomes a launcher that runs itself (the venv is dead);
    uv refuses. Refused here too, before anything is touched; into a --target it installs as with pip."""
    venv = make_venv(tmp_path / "venv")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel_archive(files, name="demo", version="1.0", entry_points=entry_points))
    before = scan(venv)
    run = ws("install", str(wheel), "--python", python(venv), cache=tmp_path / "cache", cwd=tmp_path)
    assert run.code == 1, run.err
    assert "would replace the environment's interpreter (bin/python" in run.error_line(alone=True)
    assert scan(venv) == before
    target = ws(
        "install", str(wheel), "--target", str(tmp_path / "t"), cache=tmp_path / "cache", cwd=tmp_path
    )
    assert target.code == 0, target.err


def _another_file_system(tmp_path: Path) -> Path:
    """A fresh directory on a file system other than ``tmp_path``'s (``/dev/shm``), or skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system at /dev/shm")
    import tempfile

    return Path(tempfile.mkdtemp(prefix="wheelstream-test-", dir=shm))


def test_a_site_packages_on_another_file_system_is_named_not_an_invalid_cross_device_link(
    tmp_path: Path,
) -> None:
    """Installs are renamed into place from a temporary home in the root; a site-packages mounted or linked from
    another file system cannot take a rename. The line said "Invalid cross-device link (<the home's path>)"."""
    import shutil

    elsewhere = _another_file_system(tmp_path)
    try:
        venv = make_venv(tmp_path / "venv")
        site = venv / SITE
        shutil.rmtree(site)
        site.symlink_to(elsewhere)
        env = find_environment(python(venv))
        wheel = write_wheel(tmp_path / "w", "xdev", "1.0", {"xdev/__init__.py": b""})
        before = scan(venv)
        with pytest.raises(wheelstream.errors.DiskError) as raised:
            wheelstream.install([str(wheel)], environment=env, cache_dir=tmp_path / "c")
        message = str(raised.value)
        assert "is on another file system than" in message, message
        assert "an install moves its files in by renaming them; the environment is unchanged" in message
        assert scan(venv) == before
        assert list(elsewhere.iterdir()) == []
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_cache_directory_on_another_file_system_is_refused_up_front(tmp_path: Path) -> None:
    """``staging/`` linked to another file system: the first install failed with "cannot write …claimed…:
    Invalid cross-device link; nothing kept" (the wheel was kept), every later one with "staging/<key>:
    Invalid cross-device link", naming no wheel."""
    import shutil

    elsewhere = _another_file_system(tmp_path)
    try:
        cache = tmp_path / "c"
        cache.mkdir()
        (cache / "staging").symlink_to(elsewhere)
        wheel = write_wheel(tmp_path / "w", "xdev", "1.0", {"xdev/__init__.py": b""})
        with pytest.raises(wheelstream.errors.DiskError, match=r"its staging/ is on another file system"):
            wheelstream.install([str(wheel)], tmp_path / "t", cache_dir=cache)
        assert not (tmp_path / "t").exists()
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_uninstall_does_not_follow_a_pycache_link_out_of_the_environment(tmp_path: Path) -> None:
    """RECORD rows that lead outside the environment were skipped, but the bytecode beside a module was not
    checked: a ``__pycache__`` linked to a directory elsewhere lost that directory's matching ``.pyc`` files."""
    from wheelstream.testing import build_wheel

    venv = make_venv(tmp_path / "venv")
    env = wheelstream.find_environment(prefix=venv)
    filename, data = build_wheel("demo", "1.0", payload_size=100, files={"demo/mod.py": b"x = 1\n"})
    (tmp_path / filename).write_bytes(data)
    wheelstream.install([str(tmp_path / filename)], environment=env, cache_dir=tmp_path / "c")
    package = next(venv.glob("lib/python*/site-packages/demo"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / f"mod.{sys.implementation.cache_tag}.pyc"
    precious.write_bytes(b"not the environment's")
    (package / "__pycache__").symlink_to(elsewhere)
    wheelstream.uninstall(["demo"], env)
    assert precious.read_bytes() == b"not the environment's"
    assert not package.joinpath("mod.py").exists()


def _installed_demo(tmp_path: Path) -> tuple[Path, wheelstream.Environment, Path]:
    from wheelstream.testing import build_wheel

    venv = make_venv(tmp_path / "venv")
    env = wheelstream.find_environment(prefix=venv)
    filename, data = build_wheel("demo", "1.0", payload_size=100, files={"demo/mod.py": b"x = 1\n"})
    (tmp_path / filename).write_bytes(data)
    wheelstream.install([str(tmp_path / filename)], environment=env, cache_dir=tmp_path / "c")
    return venv, env, next(venv.glob("lib/python*/site-packages"))


def test_uninstall_refuses_a_dist_info_that_is_a_link_out_of_the_environment(tmp_path: Path) -> None:
    """Every file of the real ``.dist-info`` elsewhere was deleted through the link, after a warning that rows
    outside were not followed (pip and uv leave it: "outside environment")."""
    _venv, env, site = _installed_demo(tmp_path)
    elsewhere = tmp_path / "ext"
    elsewhere.mkdir()
    (site / "demo-1.0.dist-info").rename(elsewhere / "demo-1.0.dist-info")
    (site / "demo-1.0.dist-info").symlink_to(elsewhere / "demo-1.0.dist-info")
    kept = sorted(p.name for p in (elsewhere / "demo-1.0.dist-info").iterdir())
    with pytest.raises(
        wheelstream.errors.InstallConflict, match=r"demo-1.0.dist-info is outside .* remove it by hand"
    ):
        wheelstream.uninstall(["demo"], env)
    assert sorted(p.name for p in (elsewhere / "demo-1.0.dist-info").iterdir()) == kept
    assert (site / "demo" / "mod.py").is_file()


def test_uninstall_refuses_an_empty_record(tmp_path: Path) -> None:
    """A RECORD emptied by a power loss removed the ``.dist-info`` alone and left the package untracked."""
    _venv, env, site = _installed_demo(tmp_path)
    (site / "demo-1.0.dist-info" / "RECORD").write_bytes(b"")
    with pytest.raises(wheelstream.errors.InstallConflict, match="its RECORD lists no file"):
        wheelstream.uninstall(["demo"], env)
    assert (site / "demo-1.0.dist-info" / "METADATA").is_file()
    assert (site / "demo" / "mod.py").is_file()


def test_uninstall_from_a_prefix_of_the_running_interpreter_removes_what_wheelstream_imports_elsewhere(
    tmp_path: Path, cache: Path
) -> None:
    """``--prefix DIR`` without ``--python`` has the running interpreter: click in DIR was kept "as wheelstream
    runs from it", which it does not (it runs from its own site-packages)."""
    wheels = tmp_path / "wheels"
    wheel = write_wheel(wheels, "click", "0.0.1", {"fake_click.py": b"FAKE = True\n"})
    prefix = tmp_path / "pfx"
    assert ws("install", str(wheel), "--prefix", str(prefix), cache=cache, cwd=tmp_path).code == 0
    run = ws("uninstall", "click", "--prefix", str(prefix), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "not removed" not in run.err
    assert "removed click 0.0.1" in run.err
    assert not list(prefix.rglob("fake_click.py"))
