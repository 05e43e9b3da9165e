"""wheelstream installs into a virtual environment exactly what ``pip install --no-deps --no-compile`` does.

Each comparison makes a venv (``venv --without-pip``), lets pip install into it (``pip --python VENV/bin/python``),
notes what the install changed, then makes the venv again *at the same path* (shebangs, RECORD and
direct_url.json hold paths) and lets wheelstream install (``--python``, ``$VIRTUAL_ENV`` or the library). What
an install changed is every path under the venv that is new or differs from the fresh venv, with its mode and
content; the two must agree on paths, bytes and modes, RECORD as a set of rows apart from INSTALLER's own row,
INSTALLER saying ``pip`` vs ``wheelstream``. A failure lists every differing path.

Covered: every wheel of the corpus (pip runs for all at once, module-scoped, one venv per wheel); another
version replacing the installed one by its RECORD (over wheelstream's or pip's install, fresh or used); the
same version skipped, or replaced with ``--reinstall`` like ``--force-reinstall``; the environment named by
``$VIRTUAL_ENV`` or through the library; the installed venv importing and running what was installed. torch
runs with ``WHEELSTREAM_BIG=1`` when ``/opt/wheels/torch-*cp311*.whl`` is there (not on CI).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Run, ws
from test_env_support import (
    PY,
    SITE,
    Changes,
    Content,
    Snapshot,
    changes,
    new_venv,
    python_of,
    written_differences,
)
from test_install_equivalence import pip
from test_install_equivalence import pip_version as pip_version  # the module-scoped fixture, for pytest
from test_install_support import CORPUS_IDS, corpus, full_wheel

import wheelstream
from wheelstream.testing._wheel import wheel_archive

TORCH = sorted(Path("/opt/wheels").glob("torch-*cp311*.whl"))


# -- comparing pip's install with ours -----------------------------------------------------------------------


def shown(content: Content) -> str:
    if isinstance(content, bytes) and len(content) > 300:
        return f"{content[:300]!r}... ({len(content)} bytes)"
    return repr(content)


def differences(expected: Changes, actual: Changes) -> list[str]:
    """Every way ``actual`` (wheelstream's) differs from ``expected`` (pip's), one line each (``-`` pip's only,
    ``+`` ours only)."""
    theirs, ours = expected.written, actual.written
    found = [f"- {path}" for path in sorted(theirs.keys() - ours.keys())]
    found += [f"+ {path}" for path in sorted(ours.keys() - theirs.keys())]
    found += [f"- removed {path}" for path in sorted(expected.removed - actual.removed)]
    found += [f"+ removed {path}" for path in sorted(actual.removed - expected.removed)]
    return found + written_differences(theirs, ours, shown)


def assert_same_install(expected: Changes, actual: Changes) -> None:
    found = differences(expected, actual)
    assert not found, "the installs differ (- pip's only, + ours only):\n" + "\n".join(found)


# -- the installers ------------------------------------------------------------------------------------------


def pip_install(wheel: Path, venv: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``pip --python VENV/bin/python install --no-deps --no-index --no-compile *EXTRA WHEEL``, started."""
    install = ["install", "--no-deps", "--no-index", "--no-compile", *extra, str(wheel)]
    return pip("--python", str(python_of(venv)), *install)  # test_install_equivalence's: quiet, no prompts


def finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


def ws_install(wheel: Path, venv: Path, cache: Path, *extra: str, timeout: float = 60) -> Run:
    """``wheelstream install WHEEL --python VENV/bin/python *EXTRA``, succeeded."""
    run = ws("install", str(wheel), "--python", str(python_of(venv)), *extra, cache=cache, timeout=timeout)
    assert run.code == 0, run.err
    return run


def pip_then_ours(wheel: Path, venv: Path, cache: Path, timeout: float) -> tuple[Changes, Changes]:
    """pip installs ``wheel`` into a fresh venv at ``venv``, then wheelstream into a fresh venv at the same
    path: what each changed."""
    fresh = new_venv(venv)
    finish(pip_install(wheel, venv), timeout)
    theirs = changes(fresh, venv)
    assert new_venv(venv) == fresh
    ws_install(wheel, venv, cache, timeout=timeout)
    return theirs, changes(fresh, venv)


# -- fixtures ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipInstall:
    wheel: Path
    venv: Path  # where pip installed; a test makes it again for wheelstream
    fresh: Snapshot
    changes: Changes


@pytest.fixture(scope="module")
def pip_installs(tmp_path_factory: pytest.TempPathFactory, pip_version: str) -> dict[str, PipInstall]:
    """corpus id -> pip's install of that wheel into a venv of its own; pip runs for all wheels at once."""
    base = tmp_path_factory.mktemp("env")
    wheels = corpus(base / "wheels")
    venvs = {key: base / "venvs" / key for key in wheels}
    fresh = {key: new_venv(venv) for key, venv in venvs.items()}
    procs = {key: pip_install(wheels[key], venvs[key]) for key in wheels}
    for proc in procs.values():
        finish(proc)
    return {
        key: PipInstall(wheels[key], venvs[key], fresh[key], changes(fresh[key], venvs[key]))
        for key in wheels
    }


# -- the corpus ----------------------------------------------------------------------------------------------


def test_pip_used_the_environment_scheme(pip_installs: dict[str, PipInstall]) -> None:
    """The comparison is not vacuous: pip really laid "full" out with the venv's scheme."""
    full = pip_installs["full"]
    written = full.changes.written
    for path in (
        f"{SITE}/full_pkg/__init__.py",
        f"{SITE}/extra_plat.py",
        f"{SITE}/Full_Pkg-1.0.dist-info/RECORD",
        "bin/fulltool",
        "bin/runme",
        f"include/site/{PY}/full-pkg/full.h",  # by the canonical name
        "share/full/readme.txt",
        "etc/full.conf",
    ):
        assert path in written, sorted(written)
    # "#!python -u": pip writes the venv's interpreter, dropping the arguments
    assert written["bin/runme"][1] == b"#!" + bytes(python_of(full.venv)) + b"\nprint('runme')\n"
    assert not full.changes.removed
    assert len(pip_installs) > 4, "the committed real wheels (fixtures/wheels) are missing"


@pytest.mark.parametrize("key", CORPUS_IDS)
def test_same_environment_as_pip(key: str, pip_installs: dict[str, PipInstall], cache: Path) -> None:
    pip = pip_installs[key]
    assert [path for path in pip.changes.written if path.endswith(".dist-info/RECORD")]
    assert new_venv(pip.venv) == pip.fresh
    ws_install(pip.wheel, pip.venv, cache)
    assert_same_install(pip.changes, changes(pip.fresh, pip.venv))


@pytest.mark.skipif(not TORCH, reason="no /opt/wheels/torch-*cp311*.whl here")
@pytest.mark.skipif(sys.implementation.cache_tag != "cpython-311", reason="that torch is for CPython 3.11")
@pytest.mark.skipif(not os.environ.get("WHEELSTREAM_BIG"), reason="set WHEELSTREAM_BIG=1 for the big wheel")
def test_same_environment_as_pip_torch(tmp_path: Path, cache: Path, pip_version: str) -> None:
    """A real big wheel (13,000 files, 700 MB installed): 12-19 s on 2 shared cores, about as long as the rest
    of the file, hence opt-in."""
    theirs, ours = pip_then_ours(TORCH[-1], tmp_path / "venv", cache, timeout=280)
    assert len(theirs.written) > 10_000
    assert_same_install(theirs, ours)


# -- another version, the same version -----------------------------------------------------------------------

ENTRY_POINTS = {
    "1.0": "[console_scripts]\nupg-old = upg:main\nupg-both = upg:main\n",
    "2.0": "[console_scripts]\nupg-new = upg:main\nupg-both = upg:main\n",
}
MODULES = {"1.0": "upg/old.py", "2.0": "upg/new.py"}
DATA = {"1.0": "share/upg/only-1.txt", "2.0": "share/upg/only-2.txt"}


def upg_wheel(directory: Path, version: str, edition: str | None = None) -> Path:
    """upg ``version`` with the files of ``edition`` (default: ``version``): editions 1.0 and 2.0 share a
    package, a console script and a data file; each also has a module, a console script and a data file of
    its own."""
    edition = edition or version
    data = f"upg-{version}.data/data"
    files = {
        "upg/__init__.py": f"def main():\n    print('upg {edition}')\n".encode(),
        MODULES[edition]: f"VERSION = {version!r}\n".encode(),
        f"{data}/share/upg/common.txt": f"common {edition}\n".encode(),
        f"{data}/{DATA[edition]}": b"mine\n",
    }
    archive = wheel_archive(
        files,
        name="upg",
        version=version,
        entry_points=ENTRY_POINTS[edition],
        generator="test",
        mode=stat.S_IFREG | 0o644,
    )
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"upg-{version}-py3-none-any.whl"
    out.write_bytes(archive)
    return out


def use_upg(venv: Path) -> None:
    """What using edition 1.0 leaves behind: bytecode of its modules (checked-hash, so that two venvs have the
    same bytes), and files of the user's among its own."""
    code = (
        "import compileall, py_compile;"
        "compileall.compile_dir('upg', invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)"
    )
    subprocess.run([str(python_of(venv)), "-c", code], cwd=venv / SITE, check=True, capture_output=True)
    assert (venv / SITE / "upg" / "__pycache__" / f"old.{sys.implementation.cache_tag}.pyc").is_file()
    (venv / SITE / "upg" / "notes.txt").write_text("the user's\n")
    (venv / "share" / "upg" / "notes.txt").write_text("the user's\n")


def assert_edition_2_alone(changed: Changes, venv: Path, *, used: bool) -> None:
    """Nothing of edition 1.0 is left (its module, bytecode, script, data file, dist-info when the version
    changed); the user's files are; 2.0's scripts run."""
    gone = [f"{SITE}/upg/old.py", f"{SITE}/upg/__pycache__", "bin/upg-old", DATA["1.0"]]
    assert not [path for path in changed.written for old in gone if path == old or path.startswith(old + "/")]
    records = [path for path in changed.written if path.endswith(".dist-info/RECORD")]
    assert len(records) == 1, records
    assert (f"{SITE}/upg/notes.txt" in changed.written) == used
    assert (venv / "share" / "upg" / "common.txt").read_text() == "common 2.0\n"
    for script in ("upg-new", "upg-both"):
        out = subprocess.run([str(venv / "bin" / script)], capture_output=True, text=True, check=True)
        assert out.stdout == "upg 2.0\n"


@pytest.mark.parametrize(
    ("first", "used"),
    [("wheelstream", False), ("wheelstream", True), ("pip", True)],
    ids=["fresh", "used", "over-pip"],
)
def test_other_version_replaced_like_pip(
    first: str, used: bool, tmp_path: Path, cache: Path, pip_version: str
) -> None:
    """pip installs 1.0, then 2.0 over it (uninstalling 1.0 by its RECORD); so does wheelstream, over its own
    1.0 or pip's. ``used``: 1.0 was imported (bytecode beside its modules) and the user put files among its
    own (they stay)."""
    v1, v2 = upg_wheel(tmp_path / "w", "1.0"), upg_wheel(tmp_path / "w", "2.0")
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    finish(pip_install(v1, venv))
    if used:
        use_upg(venv)
    finish(pip_install(v2, venv))
    theirs = changes(fresh, venv)
    assert new_venv(venv) == fresh
    if first == "pip":
        finish(pip_install(v1, venv))
    else:
        ws_install(v1, venv, cache)
    if used:
        use_upg(venv)
    assert "replaced upg 1.0" in ws_install(v2, venv, cache).err
    ours = changes(fresh, venv)
    assert_same_install(theirs, ours)
    assert f"{SITE}/upg-2.0.dist-info/RECORD" in ours.written
    assert_edition_2_alone(ours, venv, used=used)


@pytest.mark.parametrize("reinstall", [False, True], ids=["skipped", "reinstalled"])
def test_same_version_like_pip(reinstall: bool, tmp_path: Path, cache: Path, pip_version: str) -> None:
    """A rebuilt wheel of the installed version: pip leaves the installed one, and wheelstream too; with pip's
    ``--force-reinstall`` / our ``--reinstall`` the rebuilt one replaces it (by the old RECORD)."""
    v1 = upg_wheel(tmp_path / "w", "1.0")
    rebuilt = upg_wheel(tmp_path / "rebuilt", "1.0", edition="2.0")
    venv = tmp_path / "venv"
    fresh = new_venv(venv)
    finish(pip_install(v1, venv))
    use_upg(venv)
    finish(pip_install(rebuilt, venv, *(["--force-reinstall"] if reinstall else [])))
    theirs = changes(fresh, venv)
    assert new_venv(venv) == fresh
    ws_install(v1, venv, cache)
    use_upg(venv)
    before = changes(fresh, venv)
    run = ws_install(rebuilt, venv, cache, *(["--reinstall"] if reinstall else []))
    ours = changes(fresh, venv)
    assert_same_install(theirs, ours)
    if reinstall:
        assert_edition_2_alone(ours, venv, used=True)
    else:
        assert "already installed: upg 1.0" in run.err
        assert ours == before


# -- the environment works -----------------------------------------------------------------------------------


def test_installed_environment_works(tmp_path: Path, cache: Path) -> None:
    """The venv's own interpreter imports what wheelstream installed, reads its metadata, runs its scripts."""
    venv = tmp_path / "venv"
    new_venv(venv)
    ws_install(full_wheel(tmp_path / "w"), venv, cache)
    code = (
        "import sys, importlib.metadata as m, full_pkg, extra_pure, extra_plat;"
        "d = m.distribution('Full_Pkg');"
        "print(sys.prefix, full_pkg.VERSION, d.version, extra_pure.PURE + extra_plat.PLAT,"
        " len(d.files), sorted(e.name for e in d.entry_points if e.group == 'console_scripts'))"
    )
    out = subprocess.run([str(python_of(venv)), "-c", code], capture_output=True, text=True, check=True)
    scripts = ["easy_install", "fullcli", "fulltool", "pip", "pip3.9"]
    rows = [
        line.split(",")[0]
        for line in (venv / SITE / "Full_Pkg-1.0.dist-info" / "RECORD").read_text().splitlines()
    ]
    # Python 3.12's importlib.metadata leaves out the files that are not there (two wrapper rows pip writes too)
    there = [row for row in rows if (venv / SITE / row).exists()]
    files = len(there) if sys.version_info >= (3, 12) else len(rows)
    assert out.stdout.split(" ", 5) == [str(venv), "1.0", "1.0", "2", str(files), f"{scripts}\n"]
    for script, printed in (("fulltool", "hi"), ("fullcli", "hi"), ("runme", "runme"), ("fullgui", "hi")):
        out = subprocess.run([str(venv / "bin" / script)], capture_output=True, text=True, check=True)
        assert out.stdout == f"{printed}\n", script


# -- other ways to name the environment ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["VIRTUAL_ENV", "library", "library VIRTUAL_ENV"])
def test_same_environment_named_otherwise(
    how: str,
    pip_installs: dict[str, PipInstall],
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``$VIRTUAL_ENV`` without ``--python`` (run where no .venv is found), and the library's
    ``install(environment=find_environment(...))``, install what pip installs (pip's install of "full")."""
    pip = pip_installs["full"]
    assert new_venv(pip.venv) == pip.fresh
    if how == "VIRTUAL_ENV":
        run = ws("install", str(pip.wheel), cache=cache, cwd=tmp_path, env={"VIRTUAL_ENV": str(pip.venv)})
        assert run.code == 0, run.err
    else:
        monkeypatch.chdir(tmp_path)
        if how == "library":
            environment = wheelstream.find_environment(python=str(python_of(pip.venv)))
        else:
            monkeypatch.setenv("VIRTUAL_ENV", str(pip.venv))
            environment = wheelstream.find_environment()
        assert environment.root == pip.venv
        wheelstream.install([str(pip.wheel)], environment=environment, cache_dir=cache)
    assert_same_install(pip.changes, changes(pip.fresh, pip.venv))
