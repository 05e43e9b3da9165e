"""``install --dry-run`` and ``sync --dry-run`` (``wheelstream.plan_install``, ``plan_lock``): what would be
installed, replaced, removed and fetched, said through real commands against the project's fault server, with
real venvs — and nothing of it done: no wheel requested, the destination and the cache's downloads as they
were."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ws
from test_env_support import new_venv, python_of, scan
from test_env_support import no_active_venv as no_active_venv  # autouse: pytest applies it to this module
from test_pylock import filename, wheel_bytes, wheel_package, write_lock

import wheelstream
from wheelstream._progress import human_size
from wheelstream._urls import cache_key
from wheelstream.errors import UsageError
from wheelstream.testing import Cut, FaultPlan, FaultServer


def _serve(server: FaultServer, name: str, version: str, plan: FaultPlan | None = None) -> str:
    return server.add_file(filename(name, version), wheel_bytes(name, version), plan=plan)


def _wheel_requests(server: FaultServer) -> list[str]:
    return [r.path for r in server.requests if r.path.endswith(".whl")]


def _venv_with(tmp_path: Path, cache: Path, *urls: str) -> Path:
    venv = tmp_path / "venv"
    new_venv(venv)
    run = ws("install", "-q", "--python", str(python_of(venv)), *urls, cache=cache)
    assert run.code == 0, run.err
    return venv


def test_an_environment_plan_says_what_comes_goes_and_stays_and_does_none_of_it(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    alpha_old, beta = _serve(server, "alpha", "1.0"), _serve(server, "beta", "2.0")
    alpha_new, gamma = _serve(server, "alpha", "1.1"), _serve(server, "gamma", "0.5")
    venv = _venv_with(tmp_path, cache, alpha_old, beta)
    before, cached = scan(venv), scan(cache)
    server.clear_log()

    run = ws("install", "--dry-run", "--python", str(python_of(venv)), alpha_new, beta, gamma, cache=cache)
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        "Would install 2 wheels: 2 to download",
        " - alpha==1.0",
        " + alpha==1.1",
        " + gamma==0.5",
    ]
    assert "already installed: beta 2.0" in run.err
    assert scan(venv) == before
    assert scan(cache) == cached
    assert server.requests == []  # a wheel URL is not asked for: the install learns whether it is there


def test_a_pin_is_looked_up_on_the_index_and_a_pin_it_lacks_fails_as_the_install_fails(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    _serve(server, "alpha", "1.0")
    index = ["--index-url", f"{server.url}/simple/"]
    target = tmp_path / "t"
    run = ws("install", "--dry-run", "-t", str(target), *index, "alpha==1.0", cache=cache)
    assert run.code == 0, run.err
    assert run.out.splitlines() == ["Would install 1 wheel: 1 to download", " + alpha==1.0"]
    assert [r.path for r in server.requests] == ["/simple/alpha/"]
    assert not target.exists()

    planned = ws("install", "--dry-run", "-t", str(target), *index, "alpha==1.0", "nosuch==1.0", cache=cache)
    installed = ws("install", "-t", str(target), *index, "alpha==1.0", "nosuch==1.0", cache=cache)
    assert planned.code == installed.code == 2  # a usage error: nothing of that name
    assert planned.error_line() == installed.error_line()
    assert _wheel_requests(server) == []
    assert not target.exists()


def test_what_the_cache_holds_is_taken_from_it_or_resumed(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    alpha = _serve(server, "alpha", "1.0")
    beta = _serve(server, "beta", "2.0", FaultPlan(Cut(percent=60)))
    target = tmp_path / "t"
    ws("install", "-q", "-t", str(target), alpha, cache=cache)
    cut = ws("install", "-t", str(tmp_path / "t2"), "--retries", "0", beta, cache=cache)
    assert cut.code != 0, cut.err

    run = ws("install", "--dry-run", "--upgrade", "-t", str(target), alpha, beta, cache=cache)
    assert run.code == 0, run.err
    first, *rest = run.out.splitlines()
    assert first.startswith("Would install 2 wheels: 1 to resume ("), first
    assert first.endswith(" held), 1 from the cache"), first
    assert rest == [" - alpha==1.0", " + alpha==1.0", " + beta==2.0"]

    plan = wheelstream.plan_install([alpha, beta], target, cache_dir=cache, upgrade=True)
    assert [(w.name, w.fetch, w.replaces) for w in plan.install] == [
        ("alpha", "cached", "alpha 1.0"),
        ("beta", "resume", None),
    ]
    held = plan.install[1].held
    assert 0 < held < len(wheel_bytes("beta", "2.0"))
    assert plan.to_download == (plan.install[1],)


def test_a_target_that_has_the_distribution_keeps_it_without_upgrade(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    alpha = _serve(server, "alpha", "1.0")
    target = tmp_path / "t"
    ws("install", "-q", "-t", str(target), alpha, cache=cache)
    run = ws("install", "--dry-run", "-t", str(target), alpha, cache=cache)
    assert run.code == 0, run.err
    assert run.out.splitlines() == ["Would install 1 wheel: 1 from the cache", " + alpha==1.0"]
    assert "the target has alpha 1.0; without --upgrade" in run.err


def test_sync_plans_the_removal_of_what_the_lock_drops(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    urls = {name: _serve(server, name, version) for name, version in [("alpha", "1.0"), ("beta", "2.0")]}
    venv = _venv_with(tmp_path, cache, *urls.values())
    gamma = wheel_bytes("gamma", "0.5")
    server.add_file(filename("gamma", "0.5"), gamma)
    beta = wheel_bytes("beta", "2.0")
    lock = write_lock(
        tmp_path / "lock" / "pylock.toml",
        wheel_package("beta", "2.0", beta, url=urls["beta"]),
        wheel_package("gamma", "0.5", gamma, url=server.url_for(filename("gamma", "0.5"))),
    )
    before = scan(venv)
    server.clear_log()

    run = ws("sync", "--dry-run", str(lock), "--python", str(python_of(venv)), cache=cache)
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        f"Would install 1 wheel: 1 to download ({human_size(len(gamma))})",  # the lock says its size
        "Would uninstall 1 distribution",
        " - alpha==1.0",
        " + gamma==0.5",
    ]
    assert "already installed: beta 2.0" in run.err
    assert scan(venv) == before
    assert server.requests == []


def test_nothing_to_do_says_so(server: FaultServer, tmp_path: Path, cache: Path) -> None:
    alpha = _serve(server, "alpha", "1.0")
    venv = _venv_with(tmp_path, cache, alpha)
    run = ws("install", "--dry-run", "-q", "--python", str(python_of(venv)), alpha, cache=cache)
    assert (run.code, run.out, run.err) == (0, "Would change nothing\n", "")


def test_a_wheel_for_another_platform_is_refused_as_the_install_refuses_it(
    tmp_path: Path, cache: Path
) -> None:
    wheel = tmp_path / "alpha-1.0-cp27-cp27m-win32.whl"
    wheel.write_bytes(wheel_bytes("alpha", "1.0"))
    planned = ws("install", "--dry-run", "-t", str(tmp_path / "t"), str(wheel), cache=cache)
    installed = ws("install", "-t", str(tmp_path / "t"), str(wheel), cache=cache)
    assert planned.code == installed.code != 0
    assert planned.error_line() == installed.error_line()


def test_the_library_refuses_what_install_refuses(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="exactly one"):
        wheelstream.plan_install(["x-1.0-py3-none-any.whl"])
    with pytest.raises(UsageError, match="retries"):
        wheelstream.plan_install(["x-1.0-py3-none-any.whl"], tmp_path / "t", retries=-1)


def test_a_partial_a_resume_could_not_use_is_planned_as_a_download(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    """The plan asks the cache what a download would ask it: a partial shorter than its journal's durable bytes
    is started afresh, so it is no resume."""
    beta = _serve(server, "beta", "2.0", FaultPlan(Cut(percent=60)))
    ws("install", "-t", str(tmp_path / "t"), "--retries", "0", beta, cache=cache)
    assert wheelstream.plan_install([beta], tmp_path / "t", cache_dir=cache).install[0].fetch == "resume"
    partial = cache / "partial" / f"{cache_key(beta)}.whl.part"
    partial.write_bytes(partial.read_bytes()[:10])
    assert wheelstream.plan_install([beta], tmp_path / "t", cache_dir=cache).install[0].fetch == "download"


def test_a_distribution_the_install_could_not_replace_fails_the_plan_as_it_fails_the_install(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    alpha_old, alpha_new = _serve(server, "alpha", "1.0"), _serve(server, "alpha", "1.1")
    venv = _venv_with(tmp_path, cache, alpha_old)
    next(venv.glob("lib/*/site-packages/alpha-1.0.dist-info/RECORD")).unlink()
    planned = ws("install", "--dry-run", "--python", str(python_of(venv)), alpha_new, cache=cache)
    installed = ws("install", "--python", str(python_of(venv)), alpha_new, cache=cache)
    assert planned.code == installed.code == 1
    assert planned.error_line() == installed.error_line()
    assert "alpha-1.1-py3-none-any.whl" in planned.error_line()


def test_an_upgrade_of_a_target_to_another_version_keeps_what_pip_keeps(
    server: FaultServer, tmp_path: Path, cache: Path
) -> None:
    """``--target --upgrade`` replaces items of the same names: the old dist-info stays (pip's --target does the
    same), so nothing is said to go."""
    target = tmp_path / "t"
    ws("install", "-q", "-t", str(target), _serve(server, "alpha", "1.0"), cache=cache)
    run = ws("install", "--dry-run", "-U", "-t", str(target), _serve(server, "alpha", "1.1"), cache=cache)
    assert run.code == 0, run.err
    assert run.out.splitlines() == ["Would install 1 wheel: 1 to download", " + alpha==1.1"]
    assert "alpha-1.0.dist-info and what only 1.0 has stay" in run.err


def test_a_lock_plan_says_the_locks_warnings_too(server: FaultServer, tmp_path: Path, cache: Path) -> None:
    gamma = wheel_bytes("gamma", "0.5")
    url = server.add_file(filename("gamma", "0.5"), gamma)
    lock = write_lock(
        tmp_path / "lock" / "pylock.toml",
        wheel_package("gamma", "0.5", gamma, url=url),
        header='lock-version = "1.9"\n',
    )
    plan = wheelstream.plan_lock(lock, tmp_path / "t", cache_dir=cache)
    assert [w.name for w in plan.install] == ["gamma"]
    assert any("1.9" in warning for warning in plan.warnings), plan.warnings
