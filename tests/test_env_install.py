"""Installing into environments (a venv, ``--python``'s, ``--prefix``), replacing other versions, ``uninstall``
and ``list``: through the real command and the library, with real virtual environments and real wheels.

Every command runs with the current directory in the test's own ``tmp_path`` and without ``VIRTUAL_ENV`` (the
autouse fixture ``test_env_support.no_active_venv``): the repository's ``.venv`` must never be the environment a
test finds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Run, ws
from test_env_support import PY, SITE, leftovers, make_venv
from test_env_support import no_active_venv as no_active_venv  # autouse: pytest applies it to this module
from test_install_support import snapshot, stage

from wheelstream.errors import DiskError, ExternallyManaged, UsageError
from wheelstream.installer import (
    Interpreter,
    WheelToInstall,
    _environment,
    find_environment,
    install_into,
    installed_distributions,
)
from wheelstream.installer._interpreter import probe_interpreter
from wheelstream.testing import FaultServer
from wheelstream.testing._wheel import Content, wheel_archive

TAG = sys.implementation.cache_tag

V1_FILES: dict[str, Content] = {"demo/__init__.py": b"V = 1\n", "demo_old.py": b"old = 1\n"}
V1_ENTRY_POINTS = "[console_scripts]\ndemo = demo:main\ndemo-old = demo:main\n"
V2_FILES: dict[str, Content] = {"demo/__init__.py": b"V = 2\n", "demo_new.py": b"new = 2\n"}
V2_ENTRY_POINTS = "[console_scripts]\ndemo = demo:main\ndemo-new = demo:main\n"
DIST_INFO = ("INSTALLER", "METADATA", "RECORD", "REQUESTED", "WHEEL", "direct_url.json", "entry_points.txt")

Tree = dict[str, tuple[int, bytes | None]]


# -- helpers -------------------------------------------------------------------------------------------------


def write_wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, Content],
    entry_points: str | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    path.write_bytes(wheel_archive(files, name=name, version=version, entry_points=entry_points))
    return path


def demo_wheels(directory: Path) -> tuple[Path, Path]:
    """demo 1.0 (``demo``, ``demo_old``, scripts ``demo``, ``demo-old``) and demo 2.0 (``demo``, ``demo_new``,
    scripts ``demo``, ``demo-new``)."""
    return (
        write_wheel(directory, "demo", "1.0", V1_FILES, V1_ENTRY_POINTS),
        write_wheel(directory, "demo", "2.0", V2_FILES, V2_ENTRY_POINTS),
    )


def in_env(venv: Path, *args: str, cache: Path, env: dict[str, str] | None = None) -> Run:
    """``wheelstream *args`` with ``venv`` active, run from beside it."""
    return ws(*args, cache=cache, cwd=venv.parent, env={"VIRTUAL_ENV": str(venv), **(env or {})})


def added(after: Tree, before: Tree) -> list[str]:
    """The paths ``after`` has that ``before`` lacks, sorted."""
    return sorted(set(after) - set(before))


def dist_paths(name: str, version: str, files: tuple[str, ...] = DIST_INFO) -> list[str]:
    info = f"{SITE}/{name}-{version}.dist-info"
    return [info, *(f"{info}/{file}" for file in files)]


def v1_paths() -> list[str]:
    return sorted(
        [
            "bin/demo",
            "bin/demo-old",
            f"{SITE}/demo",
            f"{SITE}/demo/__init__.py",
            f"{SITE}/demo_old.py",
            *dist_paths("demo", "1.0"),
        ]
    )


def v2_paths() -> list[str]:
    return sorted(
        [
            "bin/demo",
            "bin/demo-new",
            f"{SITE}/demo",
            f"{SITE}/demo/__init__.py",
            f"{SITE}/demo_new.py",
            *dist_paths("demo", "2.0"),
        ]
    )


def record_rows(dist_info: Path) -> list[str]:
    return sorted(line.split(",")[0] for line in (dist_info / "RECORD").read_text().splitlines() if line)


def purelib_of(python: Path) -> str:
    """The interpreter's own idea of its site-packages (what bytecode must name)."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


# -- discovery -----------------------------------------------------------------------------------------------


def test_virtual_env_is_the_environment_even_with_a_dot_venv_in_the_cwd(tmp_path: Path, cache: Path) -> None:
    active = make_venv(tmp_path / "active")
    dot_venv = make_venv(tmp_path / ".venv")
    fresh_active, fresh_dot = snapshot(active), snapshot(dot_venv)
    v1, _ = demo_wheels(tmp_path / "wheels")
    run = ws("install", str(v1), cache=cache, cwd=tmp_path, env={"VIRTUAL_ENV": str(active)})
    assert run.code == 0, run.err
    assert added(snapshot(active), fresh_active) == v1_paths()
    assert snapshot(dot_venv) == fresh_dot
    assert (active / "bin/demo").read_text().splitlines()[0] == f"#!{active}/bin/python"


def test_a_dot_venv_is_found_from_a_subdirectory(tmp_path: Path, cache: Path) -> None:
    project = tmp_path / "project"
    venv = make_venv(project / ".venv")
    deeper = project / "src" / "deeper"
    deeper.mkdir(parents=True)
    fresh = snapshot(venv)
    v1, _ = demo_wheels(tmp_path / "wheels")
    assert "VIRTUAL_ENV" not in os.environ
    run = ws("install", str(v1), cache=cache, cwd=deeper)
    assert run.code == 0, run.err
    assert added(snapshot(venv), fresh) == v1_paths()
    assert sorted(p.name for p in deeper.iterdir()) == []


def test_no_environment_found_is_one_error_line_naming_the_options(tmp_path: Path, cache: Path) -> None:
    assert not any((folder / ".venv" / "pyvenv.cfg").is_file() for folder in (tmp_path, *tmp_path.parents))
    v1, _ = demo_wheels(tmp_path / "wheels")
    before = sorted(p.name for p in tmp_path.iterdir())
    run = ws("install", str(v1), cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    line = run.error_line(alone=True)
    for option in ("--python", "--prefix", "--target"):
        assert option in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def base_interpreter() -> Path:
    """An interpreter that is not in a virtual environment: this one's base."""
    for candidate in (Path(sys.base_prefix) / "bin" / "python3", Path(sys.base_prefix) / "bin" / "python"):
        if candidate.is_file():
            return candidate
    pytest.skip(f"no interpreter in {sys.base_prefix}/bin")


def test_python_of_a_non_venv_interpreter_needs_system(tmp_path: Path, cache: Path) -> None:
    base = base_interpreter()
    # a source that does not exist: were the refusal missing, nothing could reach the base interpreter anyway
    missing = tmp_path / "never-1.0-py3-none-any.whl"
    run = ws("install", str(missing), "--python", str(base), cache=cache, cwd=tmp_path)
    assert run.code == 2, run.err
    line = run.error_line(alone=True)
    assert "--system" in line, line
    assert "not in a virtual environment" in line, line


def test_externally_managed_is_refused_unless_break_system_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = make_venv(tmp_path / "venv")
    python = str(venv / "bin" / "python")
    real = probe_interpreter(python)

    def managed(path: str | None = None) -> Interpreter:
        assert path == python
        return dataclasses.replace(real, in_venv=False, externally_managed="managed by the distro")

    monkeypatch.setattr(_environment, "probe_interpreter", managed)
    with pytest.raises(UsageError, match="--system"):
        find_environment(python=python, cwd=tmp_path)
    with pytest.raises(ExternallyManaged) as refused:
        find_environment(python=python, system=True, cwd=tmp_path)
    message = str(refused.value)
    assert "managed by the distro" in message, message
    assert "--break-system-packages" in message, message
    env = find_environment(python=python, system=True, break_system_packages=True, cwd=tmp_path)
    assert env.kind == "system"
    assert env.root == venv
    assert env.lib_dirs == (venv / SITE,)


# -- --prefix ------------------------------------------------------------------------------------------------


def test_prefix_installs_with_the_prefix_scheme(tmp_path: Path, cache: Path) -> None:
    prefix = tmp_path / "pfx"
    v1, _ = demo_wheels(tmp_path / "wheels")
    run = ws("install", str(v1), "--prefix", str(prefix), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert sorted(snapshot(prefix)) == sorted(["bin", "lib", f"lib/{PY}", SITE, *v1_paths()])
    assert (prefix / SITE / "demo/__init__.py").read_bytes() == b"V = 1\n"
    assert (prefix / "bin/demo").read_text().splitlines()[0] == f"#!{sys.executable}"
    assert record_rows(prefix / SITE / "demo-1.0.dist-info") == sorted(
        [
            "../../../bin/demo",
            "../../../bin/demo-old",
            "demo/__init__.py",
            "demo_old.py",
            *(f"demo-1.0.dist-info/{file}" for file in DIST_INFO),
        ]
    )
    assert leftovers(prefix) == []


def _debian_python() -> str | None:
    """A system interpreter whose preferred scheme is Debian's ``posix_local`` (``/usr/local/...``), if any."""
    for candidate in ("/usr/bin/python3", f"/usr/bin/python{PY[len('python') :]}"):
        if not os.path.exists(candidate):
            continue
        probe = "import sysconfig; print(getattr(sysconfig, 'get_preferred_scheme', lambda k: '')('prefix'))"
        out = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, check=False).stdout
        if out.strip() == "posix_local":
            return candidate
    return None


@pytest.mark.skipif(_debian_python() is None, reason="no Debian system interpreter (posix_local) here")
def test_prefix_with_debians_interpreter_is_lib_and_bin_not_local(tmp_path: Path, cache: Path) -> None:
    """Debian's ``posix_local`` puts a prefix install under ``<prefix>/local/lib/.../dist-packages``; pip (and
    Debian's distutils) use ``posix_prefix`` for a prefix of one's own: ``<prefix>/lib/pythonX.Y/site-packages``
    and ``<prefix>/bin``."""
    python = _debian_python()
    assert python is not None
    prefix = tmp_path / "pfx"
    v1, _ = demo_wheels(tmp_path / "wheels")
    run = ws("install", str(v1), "--python", python, "--prefix", str(prefix), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    site = f"lib/python{version}/site-packages"
    assert (prefix / site / "demo/__init__.py").read_bytes() == b"V = 1\n"
    assert (prefix / "bin/demo").is_file()
    assert not (prefix / "local").exists()


# -- upgrade, skip, reinstall --------------------------------------------------------------------------------


def test_upgrade_replaces_the_old_version_and_the_same_version_is_not_downloaded(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    venv = make_venv(tmp_path / "venv")
    fresh = snapshot(venv)
    v1, v2 = demo_wheels(tmp_path / "wheels")
    url1, url2 = server.add_file(v1.name, v1.read_bytes()), server.add_file(v2.name, v2.read_bytes())

    run = in_env(venv, "install", url1, cache=cache)
    assert run.code == 0, run.err
    assert added(snapshot(venv), fresh) == v1_paths()
    assert "replaced" not in run.err

    run = in_env(venv, "install", url2, cache=cache)
    assert run.code == 0, run.err
    assert "replaced demo 1.0" in run.err.splitlines()
    upgraded = snapshot(venv)
    assert added(upgraded, fresh) == v2_paths()
    assert (venv / SITE / "demo/__init__.py").read_bytes() == b"V = 2\n"
    assert (venv / "bin/demo-new").read_text().splitlines()[0] == f"#!{venv}/bin/python"
    assert [
        (d.name, d.version) for d in installed_distributions(find_environment(str(venv / "bin/python")))
    ] == [("demo", "2.0")]
    assert leftovers(venv) == []

    requests = len(server.requests_for(v2.name))
    run = in_env(venv, "install", url2, cache=tmp_path / "cache2")  # a cold cache: only a skip sends nothing
    assert run.code == 0, run.err
    assert "already installed: demo 2.0 (--reinstall installs it again)" in run.err.splitlines()
    assert "replaced" not in run.err
    assert len(server.requests_for(v2.name)) == requests
    assert snapshot(venv) == upgraded

    sent = server.bytes_sent(v2.name)
    run = in_env(venv, "install", url2, "--reinstall", cache=tmp_path / "cache3")
    assert run.code == 0, run.err
    assert "already installed" not in run.err
    assert "replaced demo 2.0" in run.err.splitlines()
    assert server.bytes_sent(v2.name) == sent + v2.stat().st_size
    assert snapshot(venv) == upgraded
    assert leftovers(venv) == []
    run = in_env(venv, "install", url2, "--force-reinstall", cache=tmp_path / "cache3")  # pip's and uv's name
    assert "replaced demo 2.0" in run.err.splitlines(), run.err
    assert snapshot(venv) == upgraded


# -- a failing replace changes nothing -----------------------------------------------------------------------


# demo 1.0 installed by the library (6 .dist-info files) → 2.0: bin/demo and demo/__init__.py are replaced
# (2 renames each), bin/demo-new, demo_new.py and the new .dist-info move in (1 each), and what of 1.0 no new
# file covers is set aside: its .dist-info whole (1), its two other files (1 each): 10 renames.
@pytest.mark.parametrize("failing", [1, 2, 5, 8, 10])
def test_a_failure_in_the_middle_of_the_replace_leaves_v1_intact(tmp_path: Path, failing: int) -> None:
    venv = make_venv(tmp_path / "venv")
    v1, v2 = demo_wheels(tmp_path / "wheels")
    env = find_environment(str(venv / "bin/python"))
    install_into([WheelToInstall(stage(v1, tmp_path / "s1"))], env)
    before = snapshot(venv)
    assert added(before, snapshot(make_venv(tmp_path / "fresh"))) == sorted(
        set(v1_paths()) - {f"{SITE}/demo-1.0.dist-info/direct_url.json"}
    )
    calls = [0]

    def move(src: Path, dest: Path) -> None:
        calls[0] += 1
        if calls[0] == failing:
            raise OSError(5, "injected failure", str(src))
        os.rename(src, dest)

    with pytest.raises(DiskError, match="the environment is unchanged"):
        install_into([WheelToInstall(stage(v2, tmp_path / "s2"))], env, _move=move)
    assert calls[0] == failing
    assert snapshot(venv) == before
    assert leftovers(venv) == []


# -- kill -9 during the replace, finished by the next command ------------------------------------------------


def follow_up(venv: Path, how: str, wheels: Path, cache: Path) -> Run:
    """The next command in the environment: an unrelated install, or the uninstall of a name not there."""
    if how == "install":
        other = write_wheel(wheels, "other", "1.0", {"other.py": b"o = 1\n"})
        return in_env(venv, "install", str(other), cache=cache)
    return in_env(venv, "uninstall", "not-installed-here", cache=cache)


# The CLI's demo 1.0 → 2.0 takes 10 renames (its .dist-info, direct_url.json too, is set aside whole). The 8th is
# the first that only sets something of 1.0 aside; the 10th the last.
@pytest.mark.parametrize(
    ("kill_at", "then"),
    [
        ("commit.rename@1", "uninstall"),
        ("commit.rename@2", "install"),
        ("commit.rename@5", "uninstall"),
        ("commit.rename@8", "install"),
        ("commit.rename@10", "uninstall"),
        ("commit.retire", "install"),
        ("install.home-written", "uninstall"),
    ],
)
def test_a_killed_upgrade_is_finished_by_the_next_command(
    tmp_path: Path, cache: Path, kill_at: str, then: str
) -> None:
    venv = tmp_path / "venv"
    wheels = tmp_path / "wheels"
    v1, v2 = demo_wheels(wheels)
    upgraded_before_kill = kill_at != "install.home-written"  # killed before the plan: the upgrade never was

    # what the environment must end as: the same commands, uninterrupted, in a venv at the same path
    make_venv(venv)
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    if upgraded_before_kill:
        assert in_env(venv, "install", str(v2), cache=cache).code == 0
    assert follow_up(venv, then, wheels, cache).code == 0
    expected = snapshot(venv)
    shutil.rmtree(venv)

    make_venv(venv)
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    killed = in_env(venv, "install", str(v2), cache=cache, env={"WHEELSTREAM_KILL_AT": kill_at})
    assert killed.code == -9, (killed.code, killed.err)
    assert len(leftovers(venv)) == 1, leftovers(venv)

    run = follow_up(venv, then, wheels, cache)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err, run.err
    if kill_at == "commit.rename@1":
        assert "was killed halfway; finished it: 5 path(s) moved in" in run.err, run.err
    assert leftovers(venv) == []
    finished = snapshot(venv)
    assert sorted(set(finished) ^ set(expected)) == []  # no path missing, none left over (an empty dir too)
    env = find_environment(str(venv / "bin/python"))
    names = [(d.name, d.version) for d in installed_distributions(env)]
    demo = ("demo", "2.0") if upgraded_before_kill else ("demo", "1.0")
    assert names == ([demo, ("other", "1.0")] if then == "install" else [demo])
    assert finished == expected


# -- uninstall -----------------------------------------------------------------------------------------------


def test_uninstall_removes_what_record_lists_with_bytecode_and_empty_dirs(
    tmp_path: Path, cache: Path
) -> None:
    venv = make_venv(tmp_path / "venv")
    v1, _ = demo_wheels(tmp_path / "wheels")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    site = venv / SITE
    (site / "mine.py").write_text("mine = 1\n")  # the user's: RECORD does not list it
    subprocess.run([str(venv / "bin/python"), "-m", "compileall", "-q", str(site)], check=True)
    (site / "__pycache__" / "demo_old.cpython-39.pyc").write_bytes(b"another interpreter's bytecode")
    (site / "demo" / "notes.txt").write_text("the user's notes\n")
    before = snapshot(venv)
    assert {
        f"{SITE}/__pycache__/demo_old.{TAG}.pyc",
        f"{SITE}/__pycache__/mine.{TAG}.pyc",
        f"{SITE}/demo/__pycache__/__init__.{TAG}.pyc",
    } <= set(before)

    run = in_env(venv, "uninstall", "Demo", cache=cache)
    assert run.code == 0, run.err
    after = snapshot(venv)
    gone = sorted(set(before) - set(after))
    assert gone == sorted(
        [
            "bin/demo",
            "bin/demo-old",
            f"{SITE}/demo/__init__.py",
            f"{SITE}/demo/__pycache__",
            f"{SITE}/demo/__pycache__/__init__.{TAG}.pyc",
            f"{SITE}/demo_old.py",
            f"{SITE}/__pycache__/demo_old.{TAG}.pyc",
            f"{SITE}/__pycache__/demo_old.cpython-39.pyc",
            *dist_paths("demo", "1.0"),
        ]
    )
    assert added(after, before) == []
    kept_files = {path: value for path, value in after.items() if value[1] is not None}
    assert kept_files == {path: before[path] for path in kept_files}
    files_gone = [path for path in gone if before[path][1] is not None]
    assert run.err.splitlines()[-2:] == [
        "removed demo 1.0",
        f"Uninstalled 1 distribution(s) from {venv}: {len(files_gone)} file(s) removed",
    ]
    assert (site / "demo" / "notes.txt").read_text() == "the user's notes\n"
    assert leftovers(venv) == []


def test_uninstall_of_a_distribution_without_record_touches_nothing(tmp_path: Path, cache: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    v1, _ = demo_wheels(tmp_path / "wheels")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    (venv / SITE / "demo-1.0.dist-info" / "RECORD").unlink()
    before = snapshot(venv)
    run = in_env(venv, "uninstall", "demo", cache=cache)
    assert run.code == 1, run.err
    line = run.error_line(alone=True)
    for part in ("demo 1.0", "RECORD", "wheelstream"):
        assert part in line, line
    assert snapshot(venv) == before


def test_uninstall_does_not_follow_record_rows_outside_the_environment(tmp_path: Path, cache: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    fresh = snapshot(venv)
    v1, _ = demo_wheels(tmp_path / "wheels")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("not the environment's\n")
    record = venv / SITE / "demo-1.0.dist-info" / "RECORD"
    assert (venv / SITE / "../../../../outside.txt").resolve() == outside
    record.write_text(record.read_text() + "../../../../outside.txt,,\n")
    run = in_env(venv, "uninstall", "demo", cache=cache)
    assert run.code == 0, run.err
    warnings = [line for line in run.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, run.err
    assert "../../../../outside.txt" in warnings[0], warnings
    assert outside.read_text() == "not the environment's\n"
    assert snapshot(venv) == fresh


def test_uninstalling_a_name_not_installed_is_a_warning(tmp_path: Path, cache: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    v1, _ = demo_wheels(tmp_path / "wheels")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    before = snapshot(venv)
    run = in_env(venv, "uninstall", "nothere", cache=cache)
    assert run.code == 0, run.err
    assert run.err.splitlines() == [
        f"warning: skipping nothere: it is not installed in {venv}",
        f"Uninstalled 0 distribution(s) from {venv}: 0 file(s) removed",
    ]
    assert snapshot(venv) == before


@pytest.mark.parametrize("spelling", ["demo==1.0", "demo[extra]", "Demo>=0.1", "demo @ file:///x.whl"])
def test_uninstall_reads_each_argument_as_a_requirement_as_pip_does(
    tmp_path: Path, cache: Path, spelling: str
) -> None:
    """``uninstall 'demo==1.0'`` said "skipping demo==1.0: it is not installed", exit 0, and demo stayed: pip
    and uv read each argument as a requirement and remove what it names. One that is no requirement is exit 2,
    with nothing touched."""
    venv = make_venv(tmp_path / "venv")
    v1, _ = demo_wheels(tmp_path / "wheels")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    before = snapshot(venv)
    run = in_env(venv, "uninstall", "demo==", spelling, cache=cache)
    assert run.code == 2, run.err
    assert run.error_line(alone=True).startswith("error: cannot uninstall 'demo==': not a distribution name")
    assert snapshot(venv) == before
    run = in_env(venv, "uninstall", spelling, cache=cache)
    assert run.code == 0, run.err
    assert "removed demo 1.0" in run.err
    assert not list((venv / "lib").glob("python*/site-packages/demo-1.0.dist-info"))


def test_a_wheel_named_outright_replaces_an_editable_install_of_its_version(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """``install ./demo-1.0….whl`` over an editable demo 1.0 (PEP 660: a ``.pth`` and a ``direct_url.json`` with
    ``dir_info.editable``) said "already installed" and left the editable one; pip and uv replace it. A pin an
    index answers still finds it installed, as pip's does."""
    venv = make_venv(tmp_path / "venv")
    site = Path(purelib_of(venv / "bin" / "python"))
    dist_info = site / "demo-1.0.dist-info"
    dist_info.mkdir(parents=True)
    files = {
        "__editable__.demo-1.0.pth": f"{tmp_path / 'src'}\n",
        "demo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        "demo-1.0.dist-info/INSTALLER": "pip\n",
        "demo-1.0.dist-info/direct_url.json": '{"url": "file:///src", "dir_info": {"editable": true}}',
    }
    for name, text in files.items():
        (site / name).write_text(text)
    rows = [f"{name},," for name in files] + ["demo-1.0.dist-info/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n")
    v1, _ = demo_wheels(tmp_path / "wheels")
    server.add_file(v1.name, v1.read_bytes())
    run = in_env(venv, "install", "demo==1.0", "-i", f"{server.url}/simple/", cache=cache)
    assert run.code == 0, run.err
    assert "already installed: demo 1.0" in run.err
    assert (site / "__editable__.demo-1.0.pth").exists()
    run = in_env(venv, "install", str(v1), cache=cache)
    assert run.code == 0, run.err
    assert not (site / "__editable__.demo-1.0.pth").exists()
    assert (site / "demo" / "__init__.py").is_file()
    direct = json.loads((dist_info / "direct_url.json").read_text())
    assert "dir_info" not in direct
    assert direct["url"] == v1.resolve().as_uri()


def test_uninstall_of_one_string_is_one_name_not_its_letters(tmp_path: Path, cache: Path) -> None:
    """``uninstall("six", env)``: a str is a sequence of its letters, and distributions named ``s`` and ``x``
    went while six stayed."""
    import wheelstream

    venv = make_venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    env = find_environment(str(venv / "bin" / "python"))
    sources = [
        str(write_wheel(wheels, name, "1.0", {f"{name}/__init__.py": b""})) for name in ("s", "six", "x")
    ]
    wheelstream.install(sources, environment=env, cache_dir=cache)
    report = wheelstream.uninstall("six", env)
    assert report.removed == ("six 1.0",)
    assert sorted(d.name for d in installed_distributions(env)) == ["s", "x"]


@pytest.mark.parametrize("kill_at", [None, "commit.rename@1", "commit.rename@2"])
def test_an_upgrade_where_a_directory_becomes_a_file(
    tmp_path: Path, cache: Path, kill_at: str | None
) -> None:
    """shape 1.0 has ``shape/data/a.txt``; 2.0 a file ``shape/data``. Every file below the directory is the old
    version's, so it is set aside whole and the file takes its place (pip does the same); after a kill in
    the commit, the next command finishes it."""
    wheels = tmp_path / "wheels"
    v1 = write_wheel(
        wheels, "shape", "1.0", {"shape/__init__.py": b"", "shape/data/a.txt": b"a", "shape/data/b/c": b"c"}
    )
    v2 = write_wheel(wheels, "shape", "2.0", {"shape/__init__.py": b"", "shape/data": b"now a file"})
    reference = make_venv(tmp_path / "reference")
    assert in_env(reference, "install", str(v2), cache=tmp_path / "c-ref").code == 0
    venv = make_venv(tmp_path / "venv")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    env = {"WHEELSTREAM_KILL_AT": kill_at} if kill_at else None
    run = in_env(venv, "install", str(v2), cache=cache, env=env)
    if kill_at:
        assert run.code == -9, run.err
        run = in_env(venv, "install", str(v2), cache=cache)  # finishes the killed one, then has nothing to do
    assert run.code == 0, run.err
    assert (venv / SITE / "shape" / "data").read_bytes() == b"now a file"
    assert leftovers(venv) == []
    installed = {k: v for k, v in snapshot(venv).items() if "shape" in k}
    assert installed == {k: v for k, v in snapshot(reference).items() if "shape" in k}


def test_a_directory_that_holds_more_than_the_old_version_still_refuses_a_file(
    tmp_path: Path, cache: Path
) -> None:
    wheels = tmp_path / "wheels"
    v1 = write_wheel(wheels, "shape", "1.0", {"shape/__init__.py": b"", "shape/data/a.txt": b"a"})
    v2 = write_wheel(wheels, "shape", "2.0", {"shape/__init__.py": b"", "shape/data": b"now a file"})
    venv = make_venv(tmp_path / "venv")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    (venv / SITE / "shape" / "data" / "mine.txt").write_text("the user's")
    before = snapshot(venv)
    run = in_env(venv, "install", str(v2), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line().startswith("error: shape-2.0-py3-none-any.whl: "), run.err
    assert "is a directory where the install puts a file (entry 'shape/data')" in run.error_line()
    assert snapshot(venv) == before


def test_a_directory_where_a_launcher_goes_names_the_wheel_and_its_entry_points(
    tmp_path: Path, cache: Path
) -> None:
    """A console script's launcher is no archive file: its error named neither the wheel nor the entry."""
    wheel = write_wheel(
        tmp_path / "wheels",
        "shape",
        "1.0",
        {"shape/__init__.py": b""},
        "[console_scripts]\nshape = shape:main\n",
    )
    venv = make_venv(tmp_path / "venv")
    (venv / "bin" / "shape").mkdir()
    before = snapshot(venv)
    run = in_env(venv, "install", str(wheel), cache=cache)
    assert run.code == 1, run.err
    assert run.error_line() == (
        f"error: shape-1.0-py3-none-any.whl: {venv / 'bin' / 'shape'} is a directory where the install puts a "
        "file (entry 'shape-1.0.dist-info/entry_points.txt')"
    )
    assert snapshot(venv) == before


def test_a_file_where_the_install_needs_a_directory_names_the_entry(tmp_path: Path, cache: Path) -> None:
    """The error named the wheel and the path in the environment, not the entry that goes there."""
    wheels = tmp_path / "wheels"
    wheel = write_wheel(
        wheels, "shape", "1.0", {"shape/__init__.py": b"", "shape-1.0.data/data/bin/python3/x": b"x"}
    )
    venv = make_venv(tmp_path / "venv")
    before = snapshot(venv)
    run = in_env(venv, "install", str(wheel), cache=cache)
    assert run.code == 1, run.err
    line = run.error_line()
    assert line.startswith("error: shape-1.0-py3-none-any.whl: "), run.err
    assert "is a file where the install needs a directory (entry 'shape-1.0.data/data/bin/python3/x')" in line
    assert snapshot(venv) == before


def test_an_install_after_a_killed_upgrade_compares_with_what_the_environment_then_holds(
    tmp_path: Path, cache: Path
) -> None:
    """demo 2.0's install was killed once its plan was written; installing 1.0 again must see the 2.0 that the
    finished plan puts there (not skip 1.0 as already installed)."""
    venv = make_venv(tmp_path / "venv")
    v1, v2 = demo_wheels(tmp_path / "wheels")
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    killed = in_env(venv, "install", str(v2), cache=cache, env={"WHEELSTREAM_KILL_AT": "commit.rename@1"})
    assert killed.code == -9, killed.err
    run = in_env(venv, "install", str(v1), cache=cache)
    assert run.code == 0, run.err
    assert "finished it" in run.err
    assert sorted(p.name for p in (venv / SITE).glob("demo-*.dist-info")) == ["demo-1.0.dist-info"]
    assert leftovers(venv) == []


def test_uninstall_from_a_prefix_that_is_not_there_makes_nothing(tmp_path: Path, cache: Path) -> None:
    """A mistyped ``--prefix`` is not created by an uninstall (it holds nothing to remove)."""
    typo = tmp_path / "typo" / "deep" / "prefix"
    run = ws("uninstall", "--prefix", str(typo), "demo", cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "skipping demo: it is not installed" in run.err
    assert not (tmp_path / "typo").exists()


# -- list ----------------------------------------------------------------------------------------------------


def test_list_shows_names_versions_and_installers(tmp_path: Path, cache: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    v1, _ = demo_wheels(tmp_path / "wheels")
    other = write_wheel(tmp_path / "wheels", "other_pkg", "2.0", {"other_pkg.py": b"x = 1\n"})
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    pip = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install"),
            *("--no-deps", "--no-index", "--disable-pip-version-check", str(other)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    handmade = venv / SITE / "handmade-0.1.dist-info"
    handmade.mkdir()
    (handmade / "METADATA").write_text("Metadata-Version: 2.1\nName: HandMade\nVersion: 0.1\n")
    run = in_env(venv, "list", cache=cache)
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        "Name       Version  Installer",
        "---------  -------  ---------",
        "demo       1.0      wheelstream",
        "HandMade   0.1      -",
        "other_pkg  2.0      pip",
    ]
    frozen = in_env(venv, "list", "--format", "freeze", cache=cache)
    assert frozen.out.splitlines() == ["demo==1.0", "HandMade==0.1", "other_pkg==2.0"], frozen.err
    as_json = in_env(venv, "list", "--format=json", cache=cache)
    assert json.loads(as_json.out) == [
        {"name": "demo", "version": "1.0", "installer": "wheelstream"},
        {"name": "HandMade", "version": "0.1", "installer": ""},
        {"name": "other_pkg", "version": "2.0", "installer": "pip"},
    ]
    # what freeze writes, an -r file reads back: the same versions again (already there: nothing to do)
    (tmp_path / "frozen.txt").write_text(frozen.out.replace("HandMade==0.1\n", ""))
    again = in_env(
        venv,
        "install",
        "-r",
        str(tmp_path / "frozen.txt"),
        "--no-index",
        "-f",
        str(tmp_path / "wheels"),
        cache=cache,
    )
    assert again.code == 0, again.err
    assert in_env(venv, "list", cache=cache).out == run.out


# -- metadata ------------------------------------------------------------------------------------------------


def test_installer_requested_and_direct_url_for_url_and_path_but_not_for_an_index_pin(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    venv = make_venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    alpha = write_wheel(wheels, "alpha", "1.0", {"alpha.py": b"a = 1\n"})
    beta = write_wheel(wheels, "beta", "1.0", {"beta.py": b"b = 1\n"})
    gamma = write_wheel(wheels, "gamma", "1.0", {"gamma.py": b"g = 1\n"})
    url = server.add_file(alpha.name, alpha.read_bytes())
    server.add_file(gamma.name, gamma.read_bytes())
    run = in_env(venv, "install", url, str(beta), "gamma==1.0", "-i", f"{server.url}/simple/", cache=cache)
    assert run.code == 0, run.err
    assert any(r.path == "/simple/gamma/" for r in server.requests)

    def pip_direct_url(location: str, wheel: Path) -> str:
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        archive = {"hash": f"sha256={sha}", "hashes": {"sha256": sha}}
        return json.dumps({"archive_info": archive, "url": location}, sort_keys=True)

    site = venv / SITE
    for name in ("alpha", "beta", "gamma"):
        info = site / f"{name}-1.0.dist-info"
        assert (info / "INSTALLER").read_bytes() == b"wheelstream\n"
        assert (info / "REQUESTED").is_file()
    assert (site / "alpha-1.0.dist-info/direct_url.json").read_text() == pip_direct_url(url, alpha)
    assert (site / "beta-1.0.dist-info/direct_url.json").read_text() == pip_direct_url(
        beta.resolve().as_uri(), beta
    )
    assert not (site / "gamma-1.0.dist-info/direct_url.json").exists()
    assert record_rows(site / "gamma-1.0.dist-info") == sorted(
        [
            "gamma.py",
            *(
                f"gamma-1.0.dist-info/{f}"
                for f in DIST_INFO
                if f not in ("direct_url.json", "entry_points.txt")
            ),
        ]
    )
    assert "alpha-1.0.dist-info/direct_url.json" in record_rows(site / "alpha-1.0.dist-info")


def recorded_url(source: str, tmp_path: Path, cache: Path) -> str:
    """``install SOURCE --target tmp/t``: the URL its ``direct_url.json`` records (the install must succeed)."""
    run = ws("install", source, "--target", str(tmp_path / "t"), cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    url: str = json.loads((tmp_path / "t" / "alpha-1.0.dist-info" / "direct_url.json").read_text())["url"]
    return url


@pytest.mark.parametrize(
    ("userinfo", "query", "recorded_userinfo", "recorded_query"),
    [
        ("git@", "", "git@", ""),  # PEP 610's well-known user, kept as pip keeps it
        ("${U}:${P}@", "", "${U}:${P}@", ""),  # environment variables, kept
        ("user:secret@", "", "", ""),  # a credential: never recorded
        ("", "?flag", "", "?flag"),  # a query as written (it was re-encoded to ?flag=)
        ("", "?token=abc&x=1", "", "?token=***&x=1"),  # a secret-looking one masked
    ],
)
def test_direct_url_records_the_url_as_given_but_its_secrets(
    userinfo: str,
    query: str,
    recorded_userinfo: str,
    recorded_query: str,
    tmp_path: Path,
    cache: Path,
    server: FaultServer,
) -> None:
    wheel = write_wheel(tmp_path / "wheels", "alpha", "1.0", {"alpha.py": b"a = 1\n"})
    url = server.add_file(wheel.name, wheel.read_bytes())
    scheme, rest = url.split("://", 1)
    recorded = recorded_url(f"{scheme}://{userinfo}{rest}{query}", tmp_path, cache)
    assert recorded == f"{scheme}://{recorded_userinfo}{rest}{recorded_query}"


def test_direct_url_of_a_file_url_is_the_url_as_given(tmp_path: Path, cache: Path) -> None:
    """pip records the link: ``file://localhost/...`` stays so (it became ``file:///...``)."""
    wheel = write_wheel(tmp_path / "wheels", "alpha", "1.0", {"alpha.py": b"a = 1\n"})
    source = f"file://localhost{wheel.resolve()}"
    assert recorded_url(source, tmp_path, cache) == source


# -- --compile-bytecode --------------------------------------------------------------------------------------


def code_filename(pyc: Path) -> str:
    code = marshal.loads(pyc.read_bytes()[16:])
    filename: str = code.co_filename
    return filename


def test_compiled_bytecode_names_the_final_path_in_the_environment(tmp_path: Path, cache: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    v1, _ = demo_wheels(tmp_path / "wheels")
    run = in_env(venv, "install", str(v1), "--compile-bytecode", cache=cache)
    assert run.code == 0, run.err
    purelib = purelib_of(venv / "bin/python")
    site = venv / SITE
    assert Path(purelib) == site
    package_pyc = site / "demo" / "__pycache__" / f"__init__.{TAG}.pyc"
    module_pyc = site / "__pycache__" / f"demo_old.{TAG}.pyc"
    assert code_filename(package_pyc) == os.path.join(purelib, "demo", "__init__.py")
    assert code_filename(module_pyc) == os.path.join(purelib, "demo_old.py")
    rows = record_rows(site / "demo-1.0.dist-info")
    assert f"demo/__pycache__/__init__.{TAG}.pyc" in rows
    assert f"__pycache__/demo_old.{TAG}.pyc" in rows
    check = subprocess.run(
        [str(venv / "bin/python"), "-c", "import demo, demo_old; print(demo.V, demo_old.old)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert check.stdout == "1 1\n"


def _another_python() -> str | None:
    """A Python 3 of another minor version: on PATH, or one pyenv installed (a runner may have none)."""
    for minor in range(10, 15):
        if minor == sys.version_info.minor:
            continue
        pyenv = sorted(Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python3.{minor}"))
        for found in [shutil.which(f"python3.{minor}"), *map(str, pyenv)]:
            if (
                found
                and subprocess.run([found, "-c", "pass"], capture_output=True, check=False).returncode == 0
            ):
                return found
    return None


def test_requirement_markers_are_for_the_environment_interpreter_not_wheelstreams(tmp_path: Path) -> None:
    """``-r`` lines with ``; python_version …`` select for ``--python``'s interpreter, as pip (running in it)
    and lock files do."""
    other = _another_python()
    if other is None:
        pytest.skip("no Python of another minor version on PATH")
    venv = tmp_path / "venv"
    subprocess.run([other, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wheels = {}
    for name in ("here", "there"):
        path = tmp_path / f"{name}-1.0-py3-none-any.whl"
        path.write_bytes(wheel_archive({f"{name}/__init__.py": b""}, name=name, version="1.0"))
        wheels[name] = path
    reqs = tmp_path / "r.txt"
    reqs.write_text(
        f'{wheels["here"]} ; python_version == "{version}"\n{wheels["there"]} ; python_version != "{version}"\n'
    )
    run = ws("install", "-r", str(reqs), "--python", str(venv / "bin" / "python"), cache=tmp_path / "c")
    assert run.code == 0, run.err
    site = venv / "lib" / f"python{version}" / "site-packages"
    assert sorted(p.name for p in site.glob("*.dist-info")) == ["here-1.0.dist-info"]


def test_upgrade_into_an_environment_is_what_an_install_there_does(
    tmp_path: Path, cache: Path, server: FaultServer
) -> None:
    """pip users type ``-U`` by habit: into an environment it is accepted and changes nothing, since another
    version is replaced anyway (it was a usage error, exit 2)."""
    venv = make_venv(tmp_path / "venv")
    v1, v2 = demo_wheels(tmp_path / "wheels")
    url1, url2 = server.add_file(v1.name, v1.read_bytes()), server.add_file(v2.name, v2.read_bytes())
    python = str(venv / "bin" / "python")
    run = ws("install", url1, "--python", python, "-U", cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    run = ws("install", url2, "--python", python, "--upgrade", cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "replaced demo 1.0" in run.err.splitlines()
    assert (venv / SITE / "demo/__init__.py").read_bytes() == b"V = 2\n"
    run = ws("install", url2, "--python", python, "-U", cache=cache, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "already installed: demo 2.0 (--reinstall installs it again)" in run.err.splitlines()


def test_direct_url_of_a_path_through_a_symlink_is_the_path_as_given(tmp_path: Path, cache: Path) -> None:
    """pip records the path made absolute and normalised, not resolved: a symlinked directory stays in it."""
    wheel = write_wheel(tmp_path / "wheels", "alpha", "1.0", {"alpha.py": b"a = 1\n"})
    (tmp_path / "linked").symlink_to(tmp_path / "wheels")
    recorded = recorded_url("linked/alpha-1.0-py3-none-any.whl", tmp_path, cache)
    assert recorded == (tmp_path / "linked" / wheel.name).as_uri()


def test_a_killed_upgrade_is_not_finished_over_what_another_tool_did_since(
    tmp_path: Path, cache: Path
) -> None:
    """The next command finished a killed commit whatever had happened since: after ``pip install
    --force-reinstall`` of the old version had repaired the environment, an unrelated install moved the killed
    upgrade's files back over pip's, leaving a RECORD that lied about them."""
    venv = tmp_path / "venv"
    wheels = tmp_path / "wheels"
    v1, v2 = demo_wheels(wheels)
    make_venv(venv)
    assert in_env(venv, "install", str(v1), cache=cache).code == 0
    killed = in_env(venv, "install", str(v2), cache=cache, env={"WHEELSTREAM_KILL_AT": "commit.rename@1"})
    assert killed.code == -9, (killed.code, killed.err)
    # another tool rewrites what is there (each file anew: another inode, as pip writes them)
    repaired = {}
    for path in sorted((venv / SITE / "demo").rglob("*.py")):
        fresh = path.with_name(path.name + ".new")
        fresh.write_bytes(b"# repaired by another tool\n")
        os.replace(fresh, path)
        repaired[path] = path.read_bytes()
    assert repaired
    run = follow_up(venv, "install", wheels, cache)
    assert run.code == 0, run.err
    assert "was interrupted, and " in run.err, run.err
    assert "the rest of it is dropped" in run.err
    assert leftovers(venv) == []
    assert {path: path.read_bytes() for path in repaired} == repaired


def test_bytecode_python_writes_after_the_kill_does_not_stop_the_finish(tmp_path: Path, cache: Path) -> None:
    """An import between the kill and the next command rewrites a stale ``.pyc`` (another inode) whose removal
    was still to come: taken for another tool's work, it dropped the rest of the plan, and both versions'
    ``.dist-info`` stayed. Python's own bytecode is not another tool."""
    venv = make_venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    old = write_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": b"V = 1\n", "alpha_top.py": b"t = 1\n"})
    new = write_wheel(
        wheels, "alpha", "2.0", {"alpha/__init__.py": b"V = 2\n", "alpha_top.py": b"t = 2  # two\n"}
    )
    beside = write_wheel(wheels, "beta", "1.0", {"beta_x.py": b"b = 1\n"})  # shares site-packages/__pycache__
    assert in_env(venv, "install", str(old), str(beside), "--compile-bytecode", cache=cache).code == 0
    # renames: alpha/__init__.py aside and in (2), the new .dist-info (3), alpha_top.py aside and in (5); the 6th
    # would set the old alpha_top.cpython-311.pyc aside
    killed = in_env(venv, "install", str(new), cache=cache, env={"WHEELSTREAM_KILL_AT": "commit.rename@6"})
    assert killed.code == -9, (killed.code, killed.err)
    imported = subprocess.run(
        [str(venv / "bin/python"), "-c", "import alpha_top"],
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        capture_output=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    run = follow_up(venv, "install", wheels, cache)
    assert run.code == 0, run.err
    assert "dropped" not in run.err, run.err
    assert sorted(p.name for p in (venv / SITE).glob("alpha-*.dist-info")) == ["alpha-2.0.dist-info"]
    assert (venv / SITE / "alpha_top.py").read_bytes() == b"t = 2  # two\n"
