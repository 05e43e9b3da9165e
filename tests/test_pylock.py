"""PEP 751 lock files: ``install -r pylock.toml`` into every kind of destination, ``sync LOCK``, and the
library's ``install_lock`` / ``sync``, with locks the real uv writes (``uv pip compile --format pylock.toml``,
uv pinned in the dev extras) and locks written by hand for what uv does not write (path entries, sizes,
extra hashes, sdists, dependency groups).

Covered: a uv lock installs what ``pip install --no-deps --no-compile URL...`` installs (a venv made again at
the same path, compared byte for byte apart from INSTALLER); package markers, ``requires-python``,
``environments`` and the lock-version; a wrong sha256, size or other hash (nothing installed, nothing bad kept
in the cache); a package locked as an sdist, archive, VCS checkout or directory (refused before any request);
``path`` entries relative to the lock; extras and dependency groups; ``sync`` (uninstalls what the lock drops,
leaves what matches untouched, down to the inodes), killed with SIGKILL at commit renames and run again;
the library; ``-r requirements.txt`` with the ``--hash`` lines uv writes.

Every command runs with its current directory in the test's own ``tmp_path`` and without ``VIRTUAL_ENV``
(the autouse fixture ``test_env_support.no_active_venv``), as in ``test_env_install``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, ws
from test_env_support import SITE, Changes, changes, leftovers, new_venv, python_of, scan, written_differences
from test_env_support import no_active_venv as no_active_venv  # autouse: pytest applies it to this module

import wheelstream
from wheelstream._urls import cache_key
from wheelstream.errors import UsageError
from wheelstream.installer import EnvironmentReport
from wheelstream.testing import Cut, FaultPlan, FaultServer, Throttle
from wheelstream.testing._wheel import wheel_archive

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's machines run 3.11
    import tomli as tomllib

UV = Path(sys.executable).parent / "uv"
UV_VERSION = "0.13.9"

# What the wheels are: (name, version). Each has a package with a console script, and a module and a script
# only that version has, so that replacing one version by another shows in the files.
WHEELS = (("alpha", "1.0"), ("beta", "2.0"), ("beta", "2.1"), ("gamma", "0.5"), ("delta", "1.0"))

# The uv requirements of the two sync locks: lock 2 drops alpha and bumps beta; gamma is the same.
LOCK_1 = "alpha\nbeta==2.0\ngamma\n"
LOCK_2 = "beta==2.1\ngamma\n"

# -- wheels, and the server that serves them -------------------------------------------------------------


def filename(name: str, version: str) -> str:
    return f"{name}-{version}-py3-none-any.whl"


def only(version: str) -> str:
    return version.replace(".", "_")


def wheel_bytes(name: str, version: str) -> bytes:
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n\n\ndef main():\n    print({name!r}, VERSION)\n".encode(),
        f"{name}/data.txt": f"{name} {version}\n".encode(),
        f"{name}_only_{only(version)}.py": b"ONLY = True\n",
    }
    scripts = f"[console_scripts]\n{name} = {name}:main\n{name}-{only(version)} = {name}:main\n"
    return wheel_archive(files, name=name, version=version, entry_points=scripts)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(server: FaultServer) -> dict[str, bytes]:
    """Every wheel of ``WHEELS`` on the server (and in its ``/simple/`` index): filename -> bytes."""
    out = {}
    for name, version in WHEELS:
        data = wheel_bytes(name, version)
        server.add_file(filename(name, version), data)
        out[filename(name, version)] = data
    return out


# -- locks ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uv_version() -> str:
    """The real uv of the dev extras (the lock format these tests install is the one it writes)."""
    assert UV.is_file(), f"no uv beside {sys.executable}: install the dev extras (uv=={UV_VERSION})"
    out = subprocess.run([str(UV), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == ["uv", UV_VERSION], out
    return UV_VERSION


def uv_compile(server: FaultServer, directory: Path, requirements: str, *options: str, output: str) -> Path:
    """``uv pip compile req.in *options -o output --index-url SERVER/simple/`` run in ``directory`` (made, with
    ``req.in``); uv's own configuration and environment variables are left out, its cache is beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "req.in").write_text(requirements)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("UV_", "PIP_"))}
    env.update(UV_CACHE_DIR=str(directory.parent / "uv-cache"), UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
    index = f"{server.url}/simple/"
    command = [str(UV), "pip", "compile", "req.in", *options, "-o", output, "--index-url", index]
    proc = subprocess.run(
        [*command, "--python", sys.executable],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return directory / output


def uv_lock(server: FaultServer, directory: Path, requirements: str) -> Path:
    """A ``pylock.toml`` the real uv writes for ``requirements`` (universal: markers kept, not evaluated)."""
    return uv_compile(
        server, directory, requirements, "--universal", "--format", "pylock.toml", output="pylock.toml"
    )


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def lock_packages(lock: Path) -> dict[str, dict[str, Any]]:
    """name -> the lock's table for that package."""
    return {package["name"]: package for package in read_toml(lock)["packages"]}


def lock_urls(lock: Path) -> list[str]:
    return [wheel["url"] for package in read_toml(lock)["packages"] for wheel in package["wheels"]]


def toml_string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string, for the ASCII these tests write


def wheel_package(
    name: str,
    version: str,
    data: bytes,
    *,
    url: str | None = None,
    path: str | None = None,
    marker: str | None = None,
    sha: str | None = None,
    size: int | None = None,
    more_hashes: dict[str, str] | None = None,
) -> str:
    """One ``[[packages]]`` table with one wheel, at ``url`` or ``path``: sha256 (``sha``, else the right one)
    and ``more_hashes``, and ``size`` (else the right one)."""
    hashes = {"sha256": sha or sha256(data), **(more_hashes or {})}
    where = f"url = {toml_string(url)}" if url is not None else f"path = {toml_string(str(path))}"
    listed = ", ".join(f"{key} = {toml_string(value)}" for key, value in hashes.items())
    wheel = f"{{ {where}, size = {len(data) if size is None else size}, hashes = {{ {listed} }} }}"
    lines = ["[[packages]]", f"name = {toml_string(name)}", f"version = {toml_string(version)}"]
    if marker is not None:
        lines.append(f"marker = {toml_string(marker)}")
    lines.append(f"wheels = [{wheel}]")
    return "\n".join(lines) + "\n"


def served_package(server: FaultServer, served: dict[str, bytes], name: str, version: str, **kw: Any) -> str:
    """:func:`wheel_package` for the served wheel ``name`` ``version``."""
    file = filename(name, version)
    return wheel_package(name, version, served[file], url=server.url_for(file), **kw)


def write_lock(path: Path, *packages: str, header: str = "") -> Path:
    """A lock file at ``path`` (directories made): lock-version 1.0 unless ``header`` sets it, then
    ``header``, then ``packages``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version = "" if "lock-version" in header else 'lock-version = "1.0"\n'
    path.write_text(version + 'created-by = "wheelstream tests"\n' + header + "\n" + "\n".join(packages))
    return path


# -- venvs and what is in them ---------------------------------------------------------------------------


def inodes(root: Path, *, containing: str = "") -> dict[str, int]:
    """The inode number of every file and directory under ``root`` whose path contains ``containing``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if containing in rel:
                out[rel] = path.lstat().st_ino
    return out


def dist_infos(root: Path) -> list[str]:
    return sorted(path.name for path in root.glob("*.dist-info"))


def listed(venv: Path, cache: Path, cwd: Path) -> list[list[str]]:
    """``wheelstream list --python VENV``: its rows (name, version, installer)."""
    run = ws("list", "--python", str(python_of(venv)), cache=cache, cwd=cwd)
    assert run.code == 0, run.err
    return [line.split() for line in run.out.splitlines()[2:]]


def differences(pips: Changes, ours: Changes) -> list[str]:
    """Every way ``ours`` differs from ``pips``, one line each (``-`` pip's only, ``+`` ours only): paths,
    modes and bytes; RECORD as a set of rows without INSTALLER's; INSTALLER saying pip vs wheelstream."""
    found = [f"- {path}" for path in sorted(pips.written.keys() - ours.written.keys())]
    found += [f"+ {path}" for path in sorted(ours.written.keys() - pips.written.keys())]
    found += [f"removed {path}" for path in sorted(pips.removed ^ ours.removed)]
    return found + written_differences(pips.written, ours.written)  # content shown whole (repr)


def pip_install(venv: Path, requirements: list[str], index: str | None = None) -> None:
    """``pip --python VENV/bin/python install --no-deps --no-index --no-compile URL...`` (no pip cache, no
    configuration of the user's); with ``index``, requirements found there (``--index-url``)."""
    pip = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "--no-input", "-q"]
    where = ["--no-index"] if index is None else ["--index-url", index]
    install = ["install", "--no-deps", *where, "--no-compile", "--no-cache-dir", *requirements]
    proc = subprocess.run(
        [*pip, "--python", str(python_of(venv)), *install],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# -- the commands ----------------------------------------------------------------------------------------


def install_lock_cli(
    lock: Path, venv: Path, cache: Path, *extra: str, env: dict[str, str] | None = None
) -> Run:
    return ws(
        "install",
        "-r",
        str(lock),
        "--python",
        str(python_of(venv)),
        *extra,
        cache=cache,
        cwd=venv.parent,
        env=env,
    )


def sync_cli(lock: Path, venv: Path, cache: Path, env: dict[str, str] | None = None) -> Run:
    return ws("sync", str(lock), "--python", str(python_of(venv)), cache=cache, cwd=venv.parent, env=env)


def synced(lock: Path, venv: Path, cache: Path) -> Run:
    run = sync_cli(lock, venv, cache)
    assert run.code == 0, run.err
    return run


def sync_locks(server: FaultServer, tmp_path: Path) -> tuple[Path, Path]:
    """Lock 1 (alpha 1.0, beta 2.0, gamma 0.5) and lock 2 (beta 2.1, gamma 0.5), written by uv."""
    lock1 = uv_lock(server, tmp_path / "lock1", LOCK_1)
    lock2 = uv_lock(server, tmp_path / "lock2", LOCK_2)
    assert sorted(url.rsplit("/", 1)[1] for url in lock_urls(lock2)) == [
        filename("beta", "2.1"),
        filename("gamma", "0.5"),
    ]
    return lock1, lock2


# -- a lock uv wrote installs what pip installs from its URLs ------------------------------------------------


def test_uv_lock_installs_what_pip_installs_from_the_index(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], uv_version: str
) -> None:
    """The lock's ``wheels`` are an index's files: installed as pip installs them from that index (no
    ``direct_url.json``: ``uv pip sync`` and ``pip install -r pylock.toml`` write none either)."""
    lock = uv_lock(server, tmp_path / "project", LOCK_1)
    urls = lock_urls(lock)
    names = [filename("alpha", "1.0"), filename("beta", "2.0"), filename("gamma", "0.5")]
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == names
    assert all(package["wheels"][0]["hashes"]["sha256"] for package in lock_packages(lock).values())

    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 0, run.err
    ours = changes(fresh, venv)

    assert new_venv(venv) == fresh
    pip_install(venv, ["alpha==1.0", "beta==2.0", "gamma==0.5"], index=f"{server.url}/simple/")
    pips = changes(fresh, venv)
    assert not any(path.endswith("direct_url.json") for path in pips.written)

    for name, version in (("alpha", "1.0"), ("beta", "2.0"), ("gamma", "0.5")):
        assert f"{SITE}/{name}-{version}.dist-info/RECORD" in pips.written
        assert f"bin/{name}" in pips.written
    found = differences(pips, ours)
    assert not found, "the installs differ (- pip's only, + ours only):\n" + "\n".join(found)


# -- markers, requires-python, environments, lock-version ----------------------------------------------------


@pytest.mark.parametrize("how", ["by hand", "uv"])
def test_a_package_whose_marker_is_false_here_is_neither_installed_nor_downloaded(
    how: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], uv_version: str
) -> None:
    """alpha has no marker, beta a true one, gamma a false one."""
    if how == "uv":
        requirements = (
            f"alpha\nbeta==2.0 ; platform_machine == {platform.machine()!r}\n"
            "gamma ; platform_machine == 'no-such-machine'\n"
        )
        lock = uv_lock(server, tmp_path / "project", requirements)
        packages = lock_packages(lock)
        assert packages["beta"]["marker"] == f"platform_machine == {platform.machine()!r}"
        assert packages["gamma"]["marker"] == "platform_machine == 'no-such-machine'"
        server.clear_log()  # uv read the wheels' metadata from the files themselves
    else:
        lock = write_lock(
            tmp_path / "project" / "pylock.toml",
            served_package(server, served, "alpha", "1.0"),
            served_package(server, served, "beta", "2.0", marker="python_version >= '3'"),
            served_package(server, served, "gamma", "0.5", marker="python_version < '3'"),
        )
    venv = tmp_path / "venv"
    new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info"]
    assert not (venv / "bin" / "gamma").exists()
    assert server.requests_for(filename("gamma", "0.5")) == []
    assert len(server.requests_for(filename("beta", "2.0"))) >= 1


@pytest.mark.parametrize("command", ["install", "sync"])
@pytest.mark.parametrize(
    "header",
    ['requires-python = "<3"\n', "environments = [\"python_version < '3'\"]\n"],
    ids=["requires-python", "environments"],
)
def test_a_lock_not_for_this_interpreter_is_refused_before_any_request(
    command: str, header: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    lock = write_lock(
        tmp_path / "project" / "pylock.toml", served_package(server, served, "alpha", "1.0"), header=header
    )
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache) if command == "install" else sync_cli(lock, venv, cache)
    assert run.code == 1, run.err
    assert str(lock) in run.error_line(alone=True)
    assert scan(venv) == fresh
    assert server.requests == []


@pytest.mark.parametrize("command", ["install", "sync"])
def test_an_unsupported_major_lock_version_is_a_usage_error(
    command: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        header='lock-version = "2.0"\n',
    )
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache) if command == "install" else sync_cli(lock, venv, cache)
    assert run.code == 2, run.err
    assert str(lock) in run.error_line(alone=True)
    assert scan(venv) == fresh
    assert server.requests == []


def test_a_newer_minor_lock_version_is_a_warning(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        header='lock-version = "1.7"\n',
    )
    venv = tmp_path / "venv"
    new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 0, run.err
    warnings = [line for line in run.err.splitlines() if line.startswith("warning: ")]
    assert any("1.7" in line for line in warnings), run.err
    assert "not supported" not in run.err  # packaging's own log line would contradict the warning
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info"]


# -- integrity -----------------------------------------------------------------------------------------------


def cached_anywhere(cache: Path, data: bytes) -> list[str]:
    """Every file in the cache holding exactly ``data``."""
    return sorted(
        str(p)
        for p in cache.rglob("*")
        if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data
    )


def test_a_wrong_sha256_installs_nothing_and_keeps_nothing_of_the_download(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """alpha is right, beta's sha256 is another file's: the lock installs nothing at all."""
    beta = served[filename("beta", "2.0")]
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        served_package(server, served, "beta", "2.0", sha=sha256(b"not beta")),
    )
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 1, run.err
    assert "beta-2.0" in run.error_line(), run.err
    assert scan(venv) == fresh
    assert len(server.requests_for(filename("beta", "2.0"))) >= 1  # it was downloaded, and then refused
    assert not (cache / "wheels" / f"{sha256(beta)}.whl").exists()
    assert not (cache / "wheels" / f"{sha256(b'not beta')}.whl").exists()
    assert cached_anywhere(cache, beta) == []
    key = cache_key(server.url_for(filename("beta", "2.0")))
    assert sorted(p.name for p in (cache / "partial").glob(f"{key}*") if not p.name.endswith(".lock")) == []
    assert not (cache / "staging" / key).exists()


def test_a_package_locked_with_another_distributions_wheel_is_refused_before_any_download(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """beta locked with alpha's wheel, its URL and right hash: packaging refuses the lock when the URL's name
    is the wheel's (exit 2); one whose ``name`` key says beta while the URL names alpha's wheel is refused here,
    and so is a path that names it."""
    alpha = served[filename("alpha", "1.0")]
    beta_as_alpha = wheel_package("beta", "2.0", alpha, url=server.url_for(filename("alpha", "1.0")))
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(write_lock(tmp_path / "p1" / "pylock.toml", beta_as_alpha), venv, cache)
    assert run.code == 2, run.err
    assert "not consistent with package name 'beta'" in run.error_line()
    named_beta = beta_as_alpha.replace("{ url =", f'{{ name = "{filename("beta", "2.0")}", url =')
    run = install_lock_cli(write_lock(tmp_path / "p2" / "pylock.toml", named_beta), venv, cache)
    assert run.code == 1, run.err
    assert (
        "beta 2.0's URL names the wheel 'alpha-1.0-py3-none-any.whl', not beta-2.0-py3-none-any.whl"
        in run.error_line()
    )
    (tmp_path / "p3" / "wheels").mkdir(parents=True)
    (tmp_path / "p3" / "wheels" / filename("alpha", "1.0")).write_bytes(alpha)
    by_path = wheel_package("beta", "2.0", alpha, path=f"wheels/{filename('alpha', '1.0')}").replace(
        "{ path =", f'{{ name = "{filename("beta", "2.0")}", path ='
    )
    run = install_lock_cli(write_lock(tmp_path / "p3" / "pylock.toml", by_path), venv, cache)
    assert run.code == 1, run.err
    assert (
        "path names the wheel 'alpha-1.0-py3-none-any.whl', not beta-2.0-py3-none-any.whl" in run.error_line()
    )
    assert scan(venv) == fresh
    assert server.requests == []


def named(package: str, name: str) -> str:
    """``package``'s wheel entry with PEP 751's ``name`` key."""
    return package.replace("wheels = [{ ", f"wheels = [{{ name = {toml_string(name)}, ", 1)


@pytest.mark.parametrize("endpoint", ["files/12345/content", "download?file=alpha", "alpha-1.0.zip"])
def test_a_wheel_at_a_url_that_does_not_end_in_its_name_installs_under_the_locks_name(
    endpoint: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """PEP 751's ``name`` is the file name where the URL does not end in it (a registry's download endpoint):
    the wheel installs as uv installs it (it was refused: "wheelstream names a download by its URL's file
    name"), ``--dry-run`` plans it, a second venv takes it from the cache, and a wrong sha256 still fails."""
    alpha = served[filename("alpha", "1.0")]
    path = endpoint.partition("?")[0]
    server.add_file(path, alpha)
    url = f"{server.url}/{endpoint}"
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        named(wheel_package("alpha", "1.0", alpha, url=url), filename("alpha", "1.0")),
    )
    venv = tmp_path / "venv"
    new_venv(venv)
    plan = install_lock_cli(lock, venv, cache, "--dry-run")
    assert plan.code == 0, plan.err
    assert "alpha" in plan.out, plan.out
    assert "1.0" in plan.out, plan.out
    assert server.requests == []
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info"]
    assert (venv / SITE / "alpha" / "__init__.py").read_text().startswith("VERSION = '1.0'")
    assert (venv / "bin" / "alpha").is_file()
    assert (cache / "wheels" / f"{sha256(alpha)}.whl").read_bytes() == alpha
    assert len(server.requests_for(path)) == 1
    other = tmp_path / "other"
    new_venv(other)
    again = install_lock_cli(lock, other, cache)
    assert again.code == 0, again.err
    assert dist_infos(other / SITE) == ["alpha-1.0.dist-info"]
    assert len(server.requests_for(path)) == 1  # the cache's

    wrong = write_lock(
        tmp_path / "wrong" / "pylock.toml",
        named(wheel_package("alpha", "1.0", alpha, url=url, sha="ab" * 32), filename("alpha", "1.0")),
    )
    third = tmp_path / "third"
    fresh = new_venv(third)
    bad = install_lock_cli(wrong, third, tmp_path / "cache2")
    assert bad.code == 1, bad.err
    assert "alpha-1.0-py3-none-any.whl" in bad.error_line(), bad.err
    assert "sha256" in bad.error_line(), bad.err
    assert scan(third) == fresh


def test_a_path_entry_named_otherwise_installs_under_the_locks_name(tmp_path: Path, cache: Path) -> None:
    """A ``path`` whose file is not named as a wheel (a build's artefact store) with ``name``: installed."""
    project = tmp_path / "project"
    data = wheel_bytes("alpha", "1.0")
    (project / "store").mkdir(parents=True)
    (project / "store" / "0001.bin").write_bytes(data)
    lock = write_lock(
        project / "pylock.toml",
        named(wheel_package("alpha", "1.0", data, path="store/0001.bin"), filename("alpha", "1.0")),
    )
    venv = tmp_path / "venv"
    new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info"]
    assert (project / "store" / "0001.bin").read_bytes() == data  # the user's file, untouched


def test_several_endpoint_wheels_download_in_parallel_and_a_cut_one_resumes(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """Three wheels at download endpoints in one command (worker processes), the first response of one cut at
    half its body: the command resumes it (``Range``) under the lock's name and installs all three."""
    entries = []
    for number, (name, version) in enumerate((("alpha", "1.0"), ("beta", "2.0"), ("gamma", "0.5")), 1):
        data = served[filename(name, version)]
        plan = FaultPlan(Cut(after=len(data) // 2, requests=1)) if name == "beta" else None
        url = server.add_file(f"files/{number}/content", data, plan=plan)
        entries.append(named(wheel_package(name, version, data, url=url), filename(name, version)))
    lock = write_lock(tmp_path / "project" / "pylock.toml", *entries)
    venv = tmp_path / "venv"
    new_venv(venv)
    run = install_lock_cli(lock, venv, cache, "-j", "3")
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info", "gamma-0.5.dist-info"]
    beta = served[filename("beta", "2.0")]
    assert [r.range for r in server.requests_for("files/2/content")] == [None, f"bytes={len(beta) // 2}-"]
    assert server.bytes_sent("files/2/content") == len(beta)  # nothing fetched twice


def test_two_packages_locked_at_one_url_or_path_are_refused_before_any_download(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """With ``name`` two packages can name one download endpoint; one file cannot be both: alpha was dropped
    without a word (rc 0, beta alone installed). A path shared the same way too."""
    alpha, beta = served[filename("alpha", "1.0")], served[filename("beta", "2.0")]
    server.add_file("dl", beta)
    url = server.url_for("dl")
    both = [
        named(wheel_package("alpha", "1.0", alpha, url=url), filename("alpha", "1.0")),
        named(wheel_package("beta", "2.0", beta, url=url), filename("beta", "2.0")),
    ]
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    for dry in ((), ("--dry-run",)):
        run = install_lock_cli(write_lock(tmp_path / "p1" / "pylock.toml", *both), venv, cache, *dry)
        assert run.code == 1, run.err
        assert run.error_line(alone=True).endswith(f"beta 2.0 and alpha 1.0 are locked as one file, {url}"), (
            run.err
        )
    (tmp_path / "p2" / "store").mkdir(parents=True)
    (tmp_path / "p2" / "store" / "blob").write_bytes(beta)
    shared = [p.replace(f"url = {toml_string(url)}", 'path = "store/blob"') for p in both]
    run = install_lock_cli(write_lock(tmp_path / "p2" / "pylock.toml", *shared), venv, cache)
    assert run.code == 1, run.err
    assert "beta 2.0 and alpha 1.0 are locked as one file" in run.error_line(), run.err
    assert scan(venv) == fresh
    assert server.requests == []


def test_named_entries_by_file_url_and_a_missing_path_and_a_second_sync(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """A ``file:`` URL with ``name`` installs; a ``path`` with ``name`` that is missing says so (it said "not a
    wheel URL, path or NAME==VERSION"); a sync of an endpoint lock run twice leaves the second time alone."""
    project = tmp_path / "project"
    data = wheel_bytes("gamma", "0.5")
    (project / "store").mkdir(parents=True)
    (project / "store" / "7.bin").write_bytes(data)
    by_file = named(
        wheel_package("gamma", "0.5", data, url=(project / "store" / "7.bin").as_uri()),
        filename("gamma", "0.5"),
    )
    alpha = served[filename("alpha", "1.0")]
    server.add_file("files/1/content", alpha)
    endpoint = named(
        wheel_package("alpha", "1.0", alpha, url=server.url_for("files/1/content")), filename("alpha", "1.0")
    )
    lock = write_lock(project / "pylock.toml", by_file, endpoint)
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(lock, venv, cache)
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "gamma-0.5.dist-info"]
    before = inodes(venv / SITE)
    again = synced(lock, venv, cache)
    assert inodes(venv / SITE) == before, again.err
    assert len(server.requests_for("files/1/content")) == 1

    missing = named(wheel_package("gamma", "0.5", data, path="store/missing.bin"), filename("gamma", "0.5"))
    lock3 = write_lock(tmp_path / "p3" / "pylock.toml", missing)
    run = ws("install", "-r", str(lock3), "--target", str(tmp_path / "t"), cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    assert (
        run.error_line(alone=True) == f"error: no such file: {tmp_path / 'p3' / 'store' / 'missing.bin'}"
    ), run.err


def test_a_locks_name_that_is_no_safe_wheel_name_is_refused_before_any_download(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """The lock's ``name`` becomes a file name in the cache. packaging's lock reader refuses what its wheel-name
    parser refuses (a ``/``); a build tag it lets through with a ``:`` or a control character is refused here,
    by the checks a URL's name gets, before any download."""
    alpha = served[filename("alpha", "1.0")]
    server.add_file("files/1/content", alpha)
    package = wheel_package("alpha", "1.0", alpha, url=server.url_for("files/1/content"))
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    cases = [
        ("../alpha-1.0-py3-none-any.whl", 2, "Invalid wheel filename"),
        ("alpha-1.0-1:x-py3-none-any.whl", 1, "contains ':' (a drive or stream name on Windows)"),
        ("alpha-1.0-1\x1b-py3-none-any.whl", 1, "contains a control character"),
    ]
    for i, (evil, code, why) in enumerate(cases):
        lock = write_lock(tmp_path / f"p{i}" / "pylock.toml", named(package, evil))
        run = install_lock_cli(lock, venv, cache)
        assert run.code == code, run.err
        assert why in run.error_line(), run.err
    assert scan(venv) == fresh
    assert server.requests == []


@pytest.mark.parametrize("wrong", ["size", "sha512"])
def test_a_wrong_size_or_other_hash_installs_nothing_and_the_url_forgets_the_wheel(
    wrong: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """beta's sha256 is right (so it passes the streaming check); its size or sha512 is not. Nothing is
    installed and the URL no longer gives the wheel from the cache. The bytes the lock's own sha256 vouches for
    (the sha512 case) stay, by that sha256, for another call that may be copying from them. After the lock is
    corrected, the wheel installs."""
    beta = served[filename("beta", "2.0")]
    bad: dict[str, Any] = (
        {"size": len(beta) + 1} if wrong == "size" else {"more_hashes": {"sha512": "ab" * 64}}
    )
    alpha = served_package(server, served, "alpha", "1.0")
    lock = write_lock(
        tmp_path / "project" / "pylock.toml", alpha, served_package(server, served, "beta", "2.0", **bad)
    )
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 1, run.err
    line = run.error_line()
    assert "beta-2.0" in line, line
    assert (str(len(beta) + 1) if wrong == "size" else "sha512") in line, line
    assert scan(venv) == fresh
    assert sha256(beta) not in "".join(path.read_text() for path in (cache / "urls").glob("*.json"))
    if wrong == "size":  # refused before its body was read: nothing of it cached
        assert cached_anywhere(cache, beta) == []

    requests = len(server.requests_for(filename("beta", "2.0")))
    good = {"more_hashes": {"sha512": hashlib.sha512(beta).hexdigest()}} if wrong == "sha512" else {}
    write_lock(lock, alpha, served_package(server, served, "beta", "2.0", **good))
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info"]
    if wrong == "size":
        assert len(server.requests_for(filename("beta", "2.0"))) > requests


KINDS = {
    "sdist": 'sdist = {{ url = "{url}/delta-1.0.tar.gz", hashes = {{ sha256 = "{sha}" }} }}',
    "archive": 'archive = {{ url = "{url}/delta-1.0.zip", hashes = {{ sha256 = "{sha}" }} }}',
    "vcs": 'vcs = {{ type = "git", url = "{url}/delta.git", commit-id = "{commit}" }}',
    "directory": 'directory = {{ path = "delta" }}',
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_package_that_is_not_a_wheel_is_refused_before_any_request(
    kind: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    sdist = b"not really an sdist"
    server.add_file("delta-1.0.tar.gz", sdist)
    server.add_file("delta-1.0.zip", sdist)
    (tmp_path / "project" / "delta").mkdir(parents=True)
    source = KINDS[kind].format(url=server.url, sha=sha256(sdist), commit="0" * 40)
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        f'[[packages]]\nname = "delta"\nversion = "1.0"\n{source}\n',
    )
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 1, run.err
    line = run.error_line(alone=True)
    assert "delta" in line, line
    assert kind in line, line
    assert scan(venv) == fresh
    assert server.requests == []


# -- path entries, extras and groups, --prefix ---------------------------------------------------------------


def test_path_entries_are_relative_to_the_lock_file_not_the_current_directory(
    tmp_path: Path, cache: Path
) -> None:
    """``pylock.dev.toml`` in project/ lists ``wheels/alpha-...whl``; the command runs from another directory
    (with a ``wheels/`` of its own, holding another alpha), with the venv active."""
    project = tmp_path / "project"
    data = wheel_bytes("alpha", "1.0")
    (project / "wheels").mkdir(parents=True)
    (project / "wheels" / filename("alpha", "1.0")).write_bytes(data)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "wheels").mkdir(parents=True)
    (elsewhere / "wheels" / filename("alpha", "1.0")).write_bytes(wheel_bytes("alpha", "9.9"))
    lock = write_lock(
        project / "pylock.dev.toml",
        wheel_package(
            "alpha",
            "1.0",
            data,
            path=f"wheels/{filename('alpha', '1.0')}",
            more_hashes={"sha512": hashlib.sha512(data).hexdigest()},
        ),
    )
    venv = tmp_path / "venv"
    new_venv(venv)
    run = ws(
        "install",
        "-r",
        os.path.relpath(lock, elsewhere),
        cache=cache,
        cwd=elsewhere,
        env={"VIRTUAL_ENV": str(venv)},
    )
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info"]
    assert (venv / SITE / "alpha" / "__init__.py").read_text().startswith("VERSION = '1.0'")
    assert (venv / "bin" / "alpha").is_file()
    # a wheel of the lock's ``wheels``, found locally: an index's file, installed without direct_url.json
    assert not (venv / SITE / "alpha-1.0.dist-info" / "direct_url.json").exists()


def test_a_path_entry_of_the_wrong_size_is_refused_and_the_file_kept(tmp_path: Path, cache: Path) -> None:
    """The locked file is the user's: a size that does not match installs nothing, and the file stays."""
    project = tmp_path / "project"
    data = wheel_bytes("alpha", "1.0")
    wheel = project / "wheels" / filename("alpha", "1.0")
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(data)
    entry = wheel_package("alpha", "1.0", data, path=f"wheels/{wheel.name}", size=len(data) - 1)
    lock = write_lock(project / "pylock.toml", entry)
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    run = install_lock_cli(lock, venv, cache)
    assert run.code == 1, run.err
    assert wheel.name in run.error_line(), run.err
    assert scan(venv) == fresh
    assert wheel.read_bytes() == data


GROUPS_HEADER = 'extras = ["fancy"]\ndependency-groups = ["dev", "docs"]\ndefault-groups = ["dev"]\n'


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), ["alpha", "delta"]),
        (("--extra", "fancy"), ["alpha", "beta", "delta"]),
        (("--group", "docs"), ["alpha", "gamma"]),
        (("--extra", "fancy", "--group", "docs", "--group", "dev"), ["alpha", "beta", "delta", "gamma"]),
    ],
    ids=["defaults", "extra", "group", "all"],
)
def test_extras_and_groups_select_packages_into_a_target_directory(
    options: tuple[str, ...],
    expected: list[str],
    tmp_path: Path,
    cache: Path,
    server: FaultServer,
    served: dict[str, bytes],
) -> None:
    """alpha always; beta with the extra ``fancy``; gamma in the group ``docs``; delta in ``dev``, the default
    group (naming a group replaces the defaults)."""
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        served_package(server, served, "beta", "2.0", marker="'fancy' in extras"),
        served_package(server, served, "gamma", "0.5", marker="'docs' in dependency_groups"),
        served_package(server, served, "delta", "1.0", marker="'dev' in dependency_groups"),
        header=GROUPS_HEADER,
    )
    target = tmp_path / "target"
    run = ws("install", "-r", str(lock), "--target", str(target), *options, cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert [name.split("-")[0] for name in dist_infos(target)] == expected
    requested = sorted({r.name.split("-")[0] for r in server.requests if r.name})
    assert requested == expected


def test_an_undeclared_extra_is_one_error_line(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        header=GROUPS_HEADER,
    )
    target = tmp_path / "target"
    run = ws(
        "install", "-r", str(lock), "--target", str(target), "--extra", "nope", cache=cache, cwd=tmp_path
    )
    assert run.code == 2, run.err  # a mistake on the command line, not a lock that cannot be installed
    assert "--extra nope: not declared by the lock" in run.error_line(alone=True)
    assert not target.exists() or list(target.iterdir()) == []
    assert server.requests == []


def test_a_lock_installs_into_a_prefix(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], uv_version: str
) -> None:
    lock = uv_lock(server, tmp_path / "project", LOCK_1)
    prefix = tmp_path / "prefix"
    run = ws("install", "-r", str(lock), "--prefix", str(prefix), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert dist_infos(prefix / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info", "gamma-0.5.dist-info"]
    assert (prefix / "bin" / "gamma").is_file()


# -- sync ----------------------------------------------------------------------------------------------------


def test_sync_uninstalls_what_the_lock_drops_replaces_what_changed_and_leaves_the_rest(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], uv_version: str
) -> None:
    lock1, lock2 = sync_locks(server, tmp_path)
    server.clear_log()
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(lock1, venv, cache)
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info", "gamma-0.5.dist-info"]
    gamma = inodes(venv, containing="gamma")
    assert len(gamma) >= 8, gamma  # package, its files, the module, two scripts, dist-info and its files
    gamma_bytes = server.bytes_sent(filename("gamma", "0.5"))
    assert gamma_bytes == len(served[filename("gamma", "0.5")])

    run = synced(
        lock2, venv, tmp_path / "another-cache"
    )  # gamma is not in it: were it fetched, it would show
    assert "alpha 1.0" in run.err, run.err
    now = scan(venv)
    assert [path for path in now if "alpha" in path] == []
    assert [path for path in now if "beta-2.0" in path or "2_0" in path] == []
    assert dist_infos(venv / SITE) == ["beta-2.1.dist-info", "gamma-0.5.dist-info"]
    assert (venv / SITE / "beta" / "__init__.py").read_text().startswith("VERSION = '2.1'")
    for script in ("beta", "beta-2_1", "gamma", "gamma-0_5"):
        assert (venv / "bin" / script).is_file(), script
    assert inodes(venv, containing="gamma") == gamma
    assert server.bytes_sent(filename("gamma", "0.5")) == gamma_bytes
    assert listed(venv, cache, tmp_path) == [["beta", "2.1", "wheelstream"], ["gamma", "0.5", "wheelstream"]]
    assert leftovers(venv) == []

    # again: nothing to do, nothing asked of the server, nothing touched
    everything, requests = inodes(venv), len(server.requests)
    synced(lock2, venv, cache)
    assert scan(venv) == now
    assert inodes(venv) == everything
    assert len(server.requests) == requests

    # the same as lock 2 installed into a fresh venv at the same path
    new_venv(venv)
    run = install_lock_cli(lock2, venv, cache)
    assert run.code == 0, run.err
    assert scan(venv) == now


def test_sync_removes_an_installed_package_whose_marker_is_false_here(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """The lock lists gamma, for another machine only: what the lock selects here is what the env holds."""
    alpha = served_package(server, served, "alpha", "1.0")
    beta = served_package(server, served, "beta", "2.0")
    gamma = served_package(server, served, "gamma", "0.5")
    gamma_elsewhere = served_package(
        server, served, "gamma", "0.5", marker="platform_machine == 'no-such-machine'"
    )
    lock1 = write_lock(tmp_path / "lock1" / "pylock.toml", alpha, beta, gamma)
    lock2 = write_lock(tmp_path / "lock2" / "pylock.toml", alpha, beta, gamma_elsewhere)
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(lock1, venv, cache)
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info", "gamma-0.5.dist-info"]
    alpha_and_beta = {path: ino for path, ino in inodes(venv).items() if "gamma" not in path}
    synced(lock2, venv, cache)
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info"]
    assert [path for path in scan(venv) if "gamma" in path] == []
    assert {path: ino for path, ino in inodes(venv).items() if path in alpha_and_beta} == alpha_and_beta


def test_sync_keeps_the_packaging_tools_a_lock_leaves_out(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """A venv comes with pip (and setuptools, wheel on older Pythons); a lock rarely lists them. As ``uv pip
    sync`` and pip-tools' ``pip-sync``, sync leaves them, and removes every other unlisted distribution —
    unless the lock lists the tool: then its version is the lock's."""
    for name, version in (("pip", "99.0"), ("setuptools", "99.0"), ("wheel", "99.0"), ("pip", "100.0")):
        served[filename(name, version)] = wheel_bytes(name, version)
        server.add_file(filename(name, version), served[filename(name, version)])
    alpha = served_package(server, served, "alpha", "1.0")
    tools = [served_package(server, served, name, "99.0") for name in ("pip", "setuptools", "wheel")]
    other = served_package(server, served, "beta", "2.0")
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(write_lock(tmp_path / "all" / "pylock.toml", alpha, other, *tools), venv, cache)
    synced(write_lock(tmp_path / "alpha" / "pylock.toml", alpha), venv, cache)
    assert dist_infos(venv / SITE) == [
        "alpha-1.0.dist-info",
        "pip-99.0.dist-info",
        "setuptools-99.0.dist-info",
        "wheel-99.0.dist-info",
    ]
    newer_pip = served_package(server, served, "pip", "100.0")
    synced(write_lock(tmp_path / "pip" / "pylock.toml", alpha, newer_pip), venv, cache)
    assert dist_infos(venv / SITE) == [
        "alpha-1.0.dist-info",
        "pip-100.0.dist-info",
        "setuptools-99.0.dist-info",
        "wheel-99.0.dist-info",
    ]


# Where the second sync (lock 1 -> lock 2) is killed. Its commit renames 17 times: beta 2.1's six items in (three
# of them after setting beta 2.0's file at that path aside), then eight paths of alpha 1.0 and beta 2.0 set
# aside. @2: the first new file just went in; @10: every new item is in, the removals begin; @17: the last
# set-aside; commit.retire: after every rename.
LAST_RENAME = 17
KILL_POINTS = ["commit.rename@2", "commit.rename@10", f"commit.rename@{LAST_RENAME}", "commit.retire"]


def renames_planned(venv: Path) -> int:
    """The renames of the commit plan a killed command left in the venv (``installer._commit``): one per
    item moved in, one per path set aside."""
    (plan,) = venv.glob(".wheelstream-*/commit.json")
    moves = json.loads(plan.read_text())["moves"]
    return sum(1 for _dest, source, _replace, _seen in moves if source is not None) + sum(
        1 for _dest, _source, replace, _seen in moves if replace
    )


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_sync_killed_in_its_commit_is_finished_by_running_it_again(
    kill_at: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], uv_version: str
) -> None:
    lock1, lock2 = sync_locks(server, tmp_path)
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(lock1, venv, tmp_path / "reference-cache")
    synced(lock2, venv, tmp_path / "reference-cache")
    reference = scan(venv)

    new_venv(venv)
    synced(lock1, venv, cache)
    before = scan(venv)
    killed = sync_cli(lock2, venv, cache, env={"WHEELSTREAM_KILL_AT": kill_at})
    assert killed.code == -9, killed.err
    assert leftovers(venv) != []  # the commit was under way: there is something to finish
    assert scan(venv) != before
    if kill_at.startswith("commit.rename@"):
        assert renames_planned(venv) == LAST_RENAME
    again = synced(lock2, venv, cache)
    assert leftovers(venv) == [], again.err
    now = scan(venv)
    assert sorted(now.keys() ^ reference.keys()) == []
    assert now == reference
    assert listed(venv, cache, tmp_path) == [["beta", "2.1", "wheelstream"], ["gamma", "0.5", "wheelstream"]]


def test_a_sync_after_an_install_killed_in_its_commit_removes_what_that_install_brought(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """The sync finishes the killed install first (under the environment's lock), and only then asks what the
    lock does not list: gamma, which that install brought, goes in the same sync."""
    venv = tmp_path / "venv"
    new_venv(venv)
    gamma = server.url_for(filename("gamma", "0.5"))
    killed = ws(
        "install",
        gamma,
        "--python",
        str(python_of(venv)),
        cache=cache,
        env={"WHEELSTREAM_KILL_AT": "commit.rename@1"},
    )
    assert killed.code == -9, killed.err
    assert leftovers(venv) != []
    lock = write_lock(tmp_path / "lock" / "pylock.toml", served_package(server, served, "alpha", "1.0"))
    run = synced(lock, venv, cache)
    assert "finished it" in run.err, run.err
    assert leftovers(venv) == []
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info"]
    assert [path for path in scan(venv) if "gamma" in path] == []


# -- the library ---------------------------------------------------------------------------------------------


def test_library_sync_does_what_the_command_does(
    tmp_path: Path,
    cache: Path,
    server: FaultServer,
    served: dict[str, bytes],
    uv_version: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock1, lock2 = sync_locks(server, tmp_path)
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(lock1, venv, cache)
    synced(lock2, venv, cache)
    reference = scan(venv)

    new_venv(venv)
    monkeypatch.chdir(tmp_path)
    environment = wheelstream.find_environment(python=str(python_of(venv)))
    assert environment.root == venv
    first = wheelstream.sync(lock1, environment, cache_dir=tmp_path / "library-cache")
    assert isinstance(first.report, EnvironmentReport)
    assert sorted(first.report.installed) == ["alpha 1.0", "beta 2.0", "gamma 0.5"]
    second = wheelstream.sync(str(lock2), environment, cache_dir=tmp_path / "library-cache")
    assert isinstance(second.report, EnvironmentReport)
    assert second.report.installed == ("beta 2.1",)
    assert sorted(second.report.removed) == ["alpha 1.0", "beta 2.0"]
    assert second.report.skipped == ("gamma 0.5",)
    assert scan(venv) == reference


def test_library_install_lock_into_a_target_and_no_sync_there(
    tmp_path: Path,
    cache: Path,
    server: FaultServer,
    served: dict[str, bytes],
    uv_version: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock1, lock2 = sync_locks(server, tmp_path)
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "target"
    result = wheelstream.install_lock(lock1, target, cache_dir=cache)
    assert len(result.wheels) == 3
    assert dist_infos(target) == ["alpha-1.0.dist-info", "beta-2.0.dist-info", "gamma-0.5.dist-info"]
    assert (target / "alpha" / "__init__.py").read_text().startswith("VERSION = '1.0'")
    installed = scan(target)

    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    requests = len(server.requests)
    with pytest.raises(UsageError, match="environment"):
        wheelstream.install_lock(lock2, target, sync=True, cache_dir=cache)
    with pytest.raises(TypeError, match=r"^sync\(\) got an unexpected keyword argument 'target'"):
        wheelstream.sync(  # type: ignore[call-arg]  # sync names its options: a target is none of them
            lock2, wheelstream.find_environment(python=str(python_of(venv))), target=target, cache_dir=cache
        )
    assert scan(target) == installed
    assert scan(venv) == fresh
    assert len(server.requests) == requests

    run = ws("sync", str(lock2), "--target", str(target), cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    assert scan(target) == installed


# -- requirements files with hashes, as uv writes them -------------------------------------------------------


def test_a_requirements_file_with_hashes_from_uv_still_installs(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], uv_version: str
) -> None:
    """``uv pip compile --generate-hashes`` writes ``NAME==VERSION \\`` and ``--hash=sha256:...`` lines; a wrong
    hash in it is refused (the hashes are used, not skipped), the file as uv wrote it installs."""
    requirements = uv_compile(
        server, tmp_path / "project", LOCK_1, "--generate-hashes", output="requirements.txt"
    )
    text = requirements.read_text()
    gamma = sha256(served[filename("gamma", "0.5")])
    assert f"--hash=sha256:{gamma}" in text
    index = f"{server.url}/simple/"
    venv = tmp_path / "venv"
    fresh = new_venv(venv)

    tampered = requirements.with_name("tampered.txt")
    tampered.write_text(text.replace(gamma, sha256(b"not gamma")))
    args = ("install", "--python", str(python_of(venv)), "--index-url", index)
    run = ws(*args, "-r", str(tampered), cache=cache, cwd=tmp_path)
    assert run.code == 1, run.err
    assert "gamma" in run.error_line()
    assert scan(venv) == fresh

    run = ws(*args, "-r", str(requirements), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert dist_infos(venv / SITE) == ["alpha-1.0.dist-info", "beta-2.0.dist-info", "gamma-0.5.dist-info"]
    assert (venv / "bin" / "beta").read_text().splitlines()[0] == f"#!{python_of(venv)}"


def test_download_says_a_lock_is_for_install_and_sync(tmp_path: Path, cache: Path) -> None:
    lock = write_lock(tmp_path / "project" / "pylock.toml")
    run = ws("download", "-r", str(lock), "-d", str(tmp_path / "d"), cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    assert "a lock file (-r pylock.toml) is read by install and sync" in run.error_line()
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("group", ["default", "Dev_Tools", "dev-tools"])
def test_a_group_may_be_named_as_declared_normalized_or_from_default_groups(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes], group: str
) -> None:
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0"),
        header='dependency-groups = ["Dev_Tools"]\ndefault-groups = ["default"]\n',
    )
    run = ws(
        "install",
        "-r",
        str(lock),
        "--target",
        str(tmp_path / "t"),
        "--group",
        group,
        cache=cache,
        cwd=tmp_path,
    )
    assert run.code == 0, run.err


# -- archives that are wheels, and locks that are wrong in ways packaging does not see ------------------------


def install_into_target(lock: Path, tmp_path: Path, cache: Path) -> tuple[Run, Path]:
    target = tmp_path / "target"
    return ws("install", "-r", str(lock), "--target", str(target), cache=cache, cwd=tmp_path), target


@pytest.mark.parametrize("where", ["url", "path"])
def test_an_archive_that_is_a_wheel_installs_as_a_direct_url_and_index_wheels_do_not(
    where: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """uv and pip lock a ``name @ URL`` wheel as ``archive`` (PEP 751: "can include wheels and sdists"): it
    installs, with the ``direct_url.json`` of a URL install (its ``archive_info`` hash); the ``wheels`` of an
    index install without one, as ``uv pip sync`` and ``pip install -r pylock.toml`` do."""
    delta = served[filename("delta", "1.0")]
    project = tmp_path / "project"
    (project / "wheels").mkdir(parents=True)
    (project / "wheels" / filename("delta", "1.0")).write_bytes(delta)
    source = (
        f"url = {toml_string(server.url_for(filename('delta', '1.0')))}"
        if where == "url"
        else f'path = "wheels/{filename("delta", "1.0")}"'
    )
    archive = (
        f'[[packages]]\nname = "delta"\nversion = "1.0"\n'
        f'archive = {{ {source}, size = {len(delta)}, hashes = {{ sha256 = "{sha256(delta)}" }} }}\n'
    )
    lock = write_lock(project / "pylock.toml", served_package(server, served, "alpha", "1.0"), archive)
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 0, run.err
    assert not (target / "alpha-1.0.dist-info" / "direct_url.json").exists()
    recorded = json.loads((target / "delta-1.0.dist-info" / "direct_url.json").read_text())
    expected = (
        server.url_for(filename("delta", "1.0"))
        if where == "url"
        else (project / "wheels" / filename("delta", "1.0")).resolve().as_uri()
    )
    assert recorded["url"] == expected
    assert recorded["archive_info"]["hashes"] == {"sha256": sha256(delta)}
    assert "delta-1.0.dist-info/direct_url.json" in (target / "delta-1.0.dist-info" / "RECORD").read_text()


@pytest.mark.parametrize(
    ("marker", "environments"),
    [("extra == 'aws'", None), (None, "'aws' in extras"), ("dependency_groups == 'x'", None)],
)
def test_a_marker_the_lock_context_cannot_evaluate_is_one_usage_line(
    marker: str | None,
    environments: str | None,
    tmp_path: Path,
    cache: Path,
    server: FaultServer,
    served: dict[str, bytes],
) -> None:
    """PEP 751 markers say ``extras`` / ``dependency_groups`` (sets), not ``extra``; ``environments`` know
    neither. packaging raises its own exceptions for these: a traceback before."""
    header = "" if environments is None else f"environments = [{toml_string(environments)}]\n"
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0", marker=marker),
        header=header,
    )
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 2, run.err
    assert "is not a valid lock file: a marker cannot be evaluated" in run.error_line(alone=True)
    assert not target.exists()
    assert server.requests == []
    with pytest.raises(UsageError):
        wheelstream.install_lock(lock, tmp_path / "lib-target", cache_dir=cache)


@pytest.mark.parametrize("right", [True, False])
def test_a_shake_hash_is_checked_at_the_length_the_lock_gives(
    right: bool, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    alpha = served[filename("alpha", "1.0")]
    shake = hashlib.shake_128(alpha).hexdigest(16) if right else "00" * 16
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0", more_hashes={"shake_128": shake}),
    )
    run, target = install_into_target(lock, tmp_path, cache)
    if right:
        assert run.code == 0, run.err
        assert (target / "alpha-1.0.dist-info").is_dir()
    else:
        assert run.code == 1, run.err
        assert f"shake_128 is {hashlib.shake_128(alpha).hexdigest(16)}" in run.error_line(alone=True)
        assert not target.exists()


def test_a_lock_nested_past_the_toml_readers_depth_is_one_usage_line(tmp_path: Path, cache: Path) -> None:
    lock = write_lock(
        tmp_path / "project" / "pylock.toml", header="[tool]\ndeep = " + "[" * 1000 + "]" * 1000
    )
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 2, run.err
    assert "nests too deeply" in run.error_line(alone=True)
    assert not target.exists()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("wheels/alpha-1.0-py3-none-any.whl", "not an absolute URL"),
        ("ftp://{host}/alpha-1.0-py3-none-any.whl", "'ftp'"),
    ],
)
def test_a_wheel_url_that_is_not_http_or_file_is_an_invalid_lock(
    url: str, why: str, tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """A relative ``url`` was taken for a path from wherever the command ran; an ftp one gave "no such file"."""
    alpha = served[filename("alpha", "1.0")]
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / filename("alpha", "1.0")).write_bytes(alpha)  # what the relative URL would find
    host = server.url.split("://", 1)[1]
    lock = write_lock(
        tmp_path / "project" / "pylock.toml", wheel_package("alpha", "1.0", alpha, url=url.format(host=host))
    )
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 2, run.err
    line = run.error_line(alone=True)
    assert "is not a valid lock file: alpha 1.0's url" in line, line
    assert why in line, line
    assert not target.exists()
    assert server.requests == []


def test_one_hash_listed_twice_in_two_cases_with_two_values_is_an_invalid_lock(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """``sha256`` wrong and ``SHA256`` right: lower-cased into one key, the last one won and nothing noticed."""
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(
            server,
            served,
            "alpha",
            "1.0",
            sha="0" * 64,
            more_hashes={"SHA256": sha256(served[filename("alpha", "1.0")])},
        ),
    )
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 2, run.err
    assert "alpha 1.0 lists two different sha256 hashes" in run.error_line(alone=True)
    assert not target.exists()
    assert server.requests == []


def test_no_fitting_wheel_beside_an_sdist_says_no_wheel_fits(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """packaging falls back to the sdist when no listed wheel's tags fit: the news is the tags, not the sdist
    (``uv export`` lists the sdist beside the wheels)."""
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        '[[packages]]\nname = "multi"\nversion = "1.0"\n'
        f'sdist = {{ url = "{server.url}/multi-1.0.tar.gz", hashes = {{ sha256 = "{"1" * 64}" }} }}\n'
        f'wheels = [{{ url = "{server.url}/multi-1.0-cp27-cp27m-win32.whl", hashes = {{ sha256 = "{"2" * 64}" }} }}]\n',
    )
    run, _target = install_into_target(lock, tmp_path, cache)
    assert run.code == 1, run.err
    assert "none of the wheels locked for multi 1.0 fits this interpreter's tags" in run.error_line(
        alone=True
    )
    assert server.requests == []


@pytest.mark.parametrize("name", ["pylock.a.b.toml", "mylock.toml", "pylock-dev.toml"])
def test_a_requirement_file_named_almost_like_a_lock_says_the_naming_rule(
    tmp_path: Path, cache: Path, name: str
) -> None:
    """``pylock.a.b.toml`` and ``mylock.toml`` are no PEP 751 names: read as a requirements file, the first
    line was "not a wheel URL"."""
    lock = write_lock(tmp_path / name)
    run = ws("install", "-r", str(lock), "--target", str(tmp_path / "t"), cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    assert f"{name}: a lock file is named pylock.toml or pylock.<name>.toml" in run.error_line(alone=True)


@pytest.mark.parametrize("option", ["extras", "groups"])
def test_library_extras_or_groups_given_as_one_string_is_a_usage_error(
    option: str, tmp_path: Path, cache: Path
) -> None:
    """A str is a ``Collection[str]`` of its letters: "aws" asked for the extras a, s and w."""
    lock = write_lock(tmp_path / "project" / "pylock.toml", header='extras = ["aws"]\n')
    options: dict[str, Any] = {option: "aws"}
    with pytest.raises(UsageError, match=f"{option}: a collection of names, not one string"):
        wheelstream.install_lock(lock, tmp_path / "t", cache_dir=cache, **options)


def test_a_size_the_server_contradicts_is_refused_before_the_body_is_read(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """DESIGN §9: the size is verified while streaming. A server announcing another length than the lock's is
    refused on its headers: the 4 MB body, paced at 1 MB/s, is not read (it was, whole, then refused)."""
    data = wheel_archive({"big/blob.bin": os.urandom(4 << 20)}, name="big", version="1.0")
    name = "big-1.0-py3-none-any.whl"
    url = server.add_file(name, data, plan=FaultPlan(Throttle(1 << 20)))
    lock = write_lock(
        tmp_path / "project" / "pylock.toml", wheel_package("big", "1.0", data, url=url, size=len(data) - 1)
    )
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 1, run.err
    assert f"the server's file is {len(data)} bytes, {len(data) - 1} expected" in run.error_line(alone=True)
    assert not target.exists()
    server.wait_idle(5)
    assert server.bytes_sent(name) < len(data) // 2, server.bytes_sent(name)


def test_a_lock_hash_of_an_unknown_algorithm_is_refused_before_anything_is_downloaded(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """It was found after the download (the wheel fetched for nothing), and ``--dry-run`` planned it."""
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(server, served, "alpha", "1.0", more_hashes={"blake3": "af" * 32}),
    )
    for dry in ((), ("--dry-run",)):
        run = ws("install", "-r", str(lock), "--target", str(tmp_path / "t"), *dry, cache=cache, cwd=tmp_path)
        assert run.code == 2, run.err
        assert run.error_line(alone=True).endswith(
            "alpha 1.0 lists a 'blake3' hash, an algorithm this Python does not know"
        ), run.err
    assert server.requests == []
    assert not (tmp_path / "t").exists()


def test_a_cached_tree_without_its_file_installs_a_lock_whose_sha256_it_is(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """The lock's size and other hashes are read off the wheel file; an install of the local wheel in copy mode
    publishes its tree without one, and every later install of the lock failed ("No such file or directory").
    The lock pins the sha256 the tree was verified by: the size and other hashes are those bytes'."""
    alpha = served[filename("alpha", "1.0")]
    (tmp_path / filename("alpha", "1.0")).write_bytes(alpha)
    local = ws(
        "install",
        str(tmp_path / filename("alpha", "1.0")),
        "-t",
        str(tmp_path / "a"),
        "--link-mode",
        "copy",
        cache=cache,
    )
    assert local.code == 0, local.err
    assert not (cache / "wheels" / f"{sha256(alpha)}.whl").exists()
    lock = write_lock(
        tmp_path / "project" / "pylock.toml",
        served_package(
            server, served, "alpha", "1.0", more_hashes={"sha512": hashlib.sha512(alpha).hexdigest()}
        ),
    )
    run = ws("install", "-r", str(lock), "--target", str(tmp_path / "b"), "--link-mode", "copy", cache=cache)
    assert run.code == 0, run.err
    assert (tmp_path / "b" / "alpha-1.0.dist-info").is_dir()
    assert server.requests == []  # from the tree


def test_a_spoilt_cached_wheel_file_is_forgotten_and_fetched_again_by_the_next_lock_install(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    alpha = served[filename("alpha", "1.0")]
    lock = write_lock(tmp_path / "project" / "pylock.toml", served_package(server, served, "alpha", "1.0"))
    first = ws(
        "install", "-r", str(lock), "--target", str(tmp_path / "a"), "--link-mode", "copy", cache=cache
    )
    assert first.code == 0, first.err
    (cache / "wheels" / f"{sha256(alpha)}.whl").write_bytes(
        b"\0" * len(alpha)
    )  # not synced: a crash did this
    again = ws(
        "install", "-r", str(lock), "--target", str(tmp_path / "b"), "--link-mode", "copy", cache=cache
    )
    assert again.code == 1, again.err
    assert "the cache's copy of the wheel file is gone or spoilt: the cache forgot it" in again.error_line()
    assert not (tmp_path / "b").exists()
    assert (cache / "wheels" / sha256(alpha)).is_dir()  # the tree stays: its manifest vouches for it
    last = ws("install", "-r", str(lock), "--target", str(tmp_path / "b"), "--link-mode", "copy", cache=cache)
    assert last.code == 0, last.err


def test_of_wheels_with_the_same_best_tag_the_highest_build_is_installed(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """``packaging``'s ``select`` takes the first listed; uv, and an index lookup here, the highest build tag."""
    listed: list[str] = []
    for build in ("1", "2", "2"):  # two of build 2: the first listed of equals
        data = wheel_archive(
            {"gamma/__init__.py": f"BUILD = {build!r}\n".encode()}, name="gamma", version="1.0"
        )
        name = f"gamma-1.0-{build}-py3-none-any.whl"
        served_as = f"copy{len(listed)}/{name}"
        url = server.add_file(served_as, data)
        listed.append(
            f"{{ url = {toml_string(url)}, size = {len(data)}, hashes = {{ sha256 = {toml_string(sha256(data))} }} }}"
        )
    package = f'[[packages]]\nname = "gamma"\nversion = "1.0"\nwheels = [{", ".join(listed)}]\n'
    lock = write_lock(tmp_path / "project" / "pylock.toml", package)
    run, target = install_into_target(lock, tmp_path, cache)
    assert run.code == 0, run.err
    assert (target / "gamma" / "__init__.py").read_text() == "BUILD = '2'\n"
    assert [r.path for r in server.requests if r.method == "GET"] == ["/copy1/gamma-1.0-2-py3-none-any.whl"]


def test_sync_replaces_a_same_version_install_that_is_not_the_locked_archive(
    tmp_path: Path, cache: Path, server: FaultServer, served: dict[str, bytes]
) -> None:
    """A lock's ``archive`` pins bytes, not a version: alpha 1.0 installed from other bytes (another URL, or
    the same URL's other build) was "already installed", and sync left it. As ``uv pip sync``, it is replaced;
    the locked install itself is left as it is; a lock's ``wheels`` (an index's) still go by version."""
    alpha = served[filename("alpha", "1.0")]
    other = wheel_archive({"alpha/__init__.py": b"OTHER = True\n"}, name="alpha", version="1.0")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / filename("alpha", "1.0")).write_bytes(other)
    url = server.url_for(filename("alpha", "1.0"))
    archive = f'archive = {{ url = "{url}", hashes = {{ sha256 = "{sha256(alpha)}" }} }}\n'
    locked = f'[[packages]]\nname = "alpha"\nversion = "1.0"\n{archive}'
    lock = write_lock(tmp_path / "project" / "pylock.toml", locked)
    venv = tmp_path / "venv"
    new_venv(venv)
    python = str(python_of(venv))
    first = ws(
        "install", "--python", python, str(tmp_path / "elsewhere" / filename("alpha", "1.0")), cache=cache
    )
    assert first.code == 0, first.err
    assert (venv / SITE / "alpha" / "__init__.py").read_bytes() == b"OTHER = True\n"
    plan = ws("sync", str(lock), "--python", python, "--dry-run", cache=cache)
    assert plan.code == 0, plan.err
    assert "- alpha==1.0" in plan.out, plan.out
    assert "+ alpha==1.0" in plan.out, plan.out
    done = synced(lock, venv, cache)
    assert (venv / SITE / "alpha" / "__init__.py").read_bytes() != b"OTHER = True\n", done.err
    direct = json.loads((venv / SITE / "alpha-1.0.dist-info" / "direct_url.json").read_text())
    assert direct["archive_info"]["hashes"] == {"sha256": sha256(alpha)}
    again = synced(lock, venv, cache)  # the locked archive itself: nothing to do
    assert "already installed: alpha 1.0" in again.err or "Nothing to do" in again.err, again.err
    index_lock = write_lock(
        tmp_path / "index" / "pylock.toml", served_package(server, served, "alpha", "1.0")
    )
    ws(
        "install",
        "--python",
        python,
        "--reinstall",
        str(tmp_path / "elsewhere" / filename("alpha", "1.0")),
        cache=cache,
    )
    kept = synced(index_lock, venv, cache)  # an index's wheel of that version: kept, as uv keeps it
    assert (venv / SITE / "alpha" / "__init__.py").read_bytes() == b"OTHER = True\n", kept.err


@pytest.mark.parametrize(
    ("recorded", "locked", "same"),
    [
        (
            "http://localhost:8080/a/alpha-1.0-py3-none-any.whl",
            "http://LocalHost:8080/a/alpha-1.0-py3-none-any.whl",
            True,
        ),
        ("https://host/a/alpha-1.0-py3-none-any.whl", "https://host:443/a/alpha-1.0-py3-none-any.whl", True),
        (
            "https://host/a/alpha-1.0-py3-none-any.whl",
            "https://u:p@host/a/alpha-1.0-py3-none-any.whl#sha256=x",
            True,
        ),
        (
            "https://host/a/alpha-1.0-py3-none-any.whl",
            "https://host:8443/a/alpha-1.0-py3-none-any.whl",
            False,
        ),
        ("https://host/a/alpha-1.0-py3-none-any.whl", "http://host/a/alpha-1.0-py3-none-any.whl", False),
        ("https://host/a/alpha-1.0-py3-none-any.whl", "https://host/b/alpha-1.0-py3-none-any.whl", False),
    ],
)
def test_an_installed_archive_is_the_locked_one_by_origin_and_path(
    tmp_path: Path, recorded: str, locked: str, same: bool
) -> None:
    from wheelstream.installer._installed import Installed

    dist_info = tmp_path / "alpha-1.0.dist-info"
    dist_info.mkdir()
    direct = {"url": recorded, "archive_info": {"hashes": {"sha256": "ab" * 32}}}
    (dist_info / "direct_url.json").write_text(json.dumps(direct))
    installed = Installed("alpha", "1.0", dist_info, "uv")
    assert installed.installed_from(locked, "ab" * 32) is same
    assert installed.installed_from(locked, "cd" * 32) is False


def test_a_path_archive_is_the_same_whether_written_through_a_symlink_or_with_plus_encoded(
    tmp_path: Path,
) -> None:
    """uv records a path archive as given (through a symlinked directory, ``+`` as it is); ``Path.as_uri``
    writes ``%2B``: one file, and a sync after ``uv pip sync`` must find it installed."""
    from wheelstream.installer._installed import Installed

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "zeta-1.0+local-py3-none-any.whl").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    dist_info = tmp_path / "zeta-1.0+local.dist-info"
    dist_info.mkdir()
    uv_wrote = f"file://{tmp_path}/link/zeta-1.0+local-py3-none-any.whl"
    (dist_info / "direct_url.json").write_text(json.dumps({"url": uv_wrote, "archive_info": {}}))
    installed = Installed("zeta", "1.0+local", dist_info, "uv")
    assert installed.installed_from((tmp_path / "real" / "zeta-1.0+local-py3-none-any.whl").as_uri(), None)
    assert installed.installed_from((tmp_path / "link" / "zeta-1.0+local-py3-none-any.whl").as_uri(), None)
    assert not installed.installed_from((tmp_path / "other.whl").as_uri(), None)


def test_a_path_archive_through_a_symlink_is_recorded_as_written_and_synced_once(
    tmp_path: Path, cache: Path, served: dict[str, bytes]
) -> None:
    alpha = served[filename("alpha", "1.0")]
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / filename("alpha", "1.0")).write_bytes(alpha)
    project = tmp_path / "project"
    project.mkdir()
    (project / "wh").symlink_to(tmp_path / "real")
    archive = (
        f'archive = {{ path = "wh/{filename("alpha", "1.0")}", hashes = {{ sha256 = "{sha256(alpha)}" }} }}\n'
    )
    lock = write_lock(project / "pylock.toml", f'[[packages]]\nname = "alpha"\nversion = "1.0"\n{archive}')
    venv = tmp_path / "venv"
    new_venv(venv)
    synced(lock, venv, cache)
    direct = json.loads((venv / SITE / "alpha-1.0.dist-info" / "direct_url.json").read_text())
    assert direct["url"] == (project / "wh" / filename("alpha", "1.0")).as_uri()  # as pip and uv record it
    plan = ws("sync", str(lock), "--python", str(python_of(venv)), "--dry-run", cache=cache)
    assert plan.code == 0, plan.err
    assert "+ alpha" not in plan.out, plan.out


def test_an_installed_archive_s_legacy_hash_counts_and_one_without_a_hash_matches_by_url(
    tmp_path: Path,
) -> None:
    from wheelstream.installer._installed import Installed

    url = "https://host/a/alpha-1.0-py3-none-any.whl"
    dist_info = tmp_path / "alpha-1.0.dist-info"
    dist_info.mkdir()
    installed = Installed("alpha", "1.0", dist_info, "pip")
    for info, right, wrong in (
        ({"hash": f"sha256={'ab' * 32}"}, True, False),  # PEP 610's legacy key alone
        ({}, True, True),  # no hash recorded: the URL decides
    ):
        (dist_info / "direct_url.json").write_text(json.dumps({"url": url, "archive_info": info}))
        assert installed.installed_from(url, "ab" * 32) is right
        assert installed.installed_from(url, "cd" * 32) is wrong
    (dist_info / "direct_url.json").write_text(json.dumps({"url": url, "dir_info": {"editable": True}}))
    assert not installed.installed_from(url, None)  # a directory's install is no archive's
    (dist_info / "direct_url.json").write_text("not json")
    assert not installed.installed_from(url, None)
