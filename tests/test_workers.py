"""Installs of several wheels run their downloads in forked worker processes (``wheelstream._workers``): the
same result as threads, and the same contract for Ctrl-C, kill -9 and errors. Through the CLI, as a user
runs it, against the test bed on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream._urls import cache_key
from wheelstream._workers import _portable, processes_available
from wheelstream.testing import FaultPlan, FaultServer, Stall, Status, build_wheel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are Linux-only")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def _add(server: FaultServer, name: str, plan: FaultPlan | None = None, files: int = 0) -> str:
    """A wheel of ~256 KiB: one payload file, or ``files`` files of 64 KiB (finished entries to resume after)."""
    extra = {f"{name}/part{i}.bin": os.urandom(64 * 1024) for i in range(files)}
    filename, data = build_wheel(name, "1.0", payload_size=0 if files else 256 * 1024, files=extra)
    return server.add_file(filename, data, plan=plan)


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "WHEELSTREAM_CACHE_DIR": str(cache), "COLUMNS": "200", **extra}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wheelstream", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=ROOT, start_new_session=True,  # its own process group, like a terminal job
    )


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _stalled_install(server: FaultServer, tmp_path: Path) -> tuple[subprocess.Popen[str], set[int], list[str]]:
    """Three wheels, one of them stalled halfway; returns once the workers are there and the stalled one
    has bytes on disk."""
    # beta stalls past its first 1 MiB: the tee hands bytes on in 1 MiB blocks, and only entries finished
    # from a handed-on block can be in a checkpoint for the rerun to resume after (what kill -9 keeps)
    stall = Stall(at=1200 * 1024, seconds=60)  # far longer than a test may wait: a cancel must cut it short
    urls = [_add(server, "alpha"), _add(server, "beta", FaultPlan(stall), files=24), _add(server, "gamma")]
    cache = tmp_path / "cache"
    proc = _start(["install", *urls, "-t", str(tmp_path / "t")], _env(cache))
    _wait_for(lambda: len(_children(proc.pid)) >= 2, "two worker processes")
    workers = _children(proc.pid)
    _wait_for(lambda: server.bytes_sent("beta-1.0-py3-none-any.whl") >= 1200 * 1024, "the stall")
    header = cache / "partial" / f"{cache_key(urls[1])}.json"

    def checkpointed() -> bool:  # the idle checkpoint (0.5 s without data): the header, written last, says so
        try:
            return int(json.loads(header.read_text())["checkpoint"]) > 0
        except (OSError, ValueError, KeyError, TypeError):
            return False

    _wait_for(checkpointed, "the idle checkpoint")
    return proc, workers, urls


def test_several_wheels_install_the_same_tree_in_worker_processes_as_with_threads(
    server: FaultServer, tmp_path: Path
) -> None:
    urls = [_add(server, name, FaultPlan(Stall(at=64 * 1024, seconds=0.5)) if name == "beta" else None)
            for name in ("alpha", "beta", "gamma", "delta")]
    proc = _start(["install", *urls, "-t", str(tmp_path / "processes")], _env(tmp_path / "c1"))
    _wait_for(lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None, "worker processes")
    workers = _children(proc.pid)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(workers) >= 2, "the downloads did not run in worker processes"
    assert "Installed 4 wheels" in err
    threads = subprocess.run(
        [sys.executable, "-m", "wheelstream", "install", *urls, "-t", str(tmp_path / "threads")],
        check=False, capture_output=True, text=True, env=_env(tmp_path / "c2", WHEELSTREAM_PROCESSES="0"), cwd=ROOT, timeout=60,
    )
    assert threads.returncode == 0, threads.stderr
    installed = _tree(tmp_path / "processes")
    assert installed == _tree(tmp_path / "threads")  # every file, RECORD and INSTALLER included
    assert {"alpha/__init__.py", "beta/__init__.py", "gamma/__init__.py", "delta/__init__.py"} <= set(installed)
    claimed = tmp_path / "c1" / "claimed"
    assert not claimed.exists() or not any(claimed.iterdir())  # each adopted claim was released


def test_ctrl_c_stops_every_worker_checkpointed_and_the_rerun_resumes(server: FaultServer, tmp_path: Path) -> None:
    proc, workers, urls = _stalled_install(server, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group: the workers ignore it
    sent = time.monotonic()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 10  # not held until the stalled server sends again
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1 and errors_[0].startswith("error: interrupted at "), err
    assert "Traceback" not in err
    assert not any(_alive(pid) for pid in workers)
    assert not (tmp_path / "t").exists()
    server.set_plan("beta-1.0-py3-none-any.whl", FaultPlan())
    rerun = subprocess.run([sys.executable, "-m", "wheelstream", "install", *urls, "-t", str(tmp_path / "t")], check=False,
                           capture_output=True, text=True, env=_env(tmp_path / "cache"), cwd=ROOT, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed at" in rerun.stderr
    assert server.requests_for("beta-1.0-py3-none-any.whl")[-1].range is not None
    assert (tmp_path / "t" / "beta" / "__init__.py").is_file()


def test_workers_die_with_a_killed_parent_and_the_rerun_resumes(server: FaultServer, tmp_path: Path) -> None:
    proc, workers, urls = _stalled_install(server, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as the OOM killer would
    proc.communicate(timeout=30)
    _wait_for(lambda: not any(_alive(pid) for pid in workers), "the workers to die with their parent", 5)
    server.set_plan("beta-1.0-py3-none-any.whl", FaultPlan())
    rerun = subprocess.run([sys.executable, "-m", "wheelstream", "install", *urls, "-t", str(tmp_path / "t")], check=False,
                           capture_output=True, text=True, env=_env(tmp_path / "cache"), cwd=ROOT, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed at" in rerun.stderr
    assert _tree(tmp_path / "t")["beta/__init__.py"]


def test_a_bad_wheel_in_one_worker_stops_the_others_and_installs_nothing(server: FaultServer, tmp_path: Path) -> None:
    good = _add(server, "alpha", FaultPlan(Stall(at=128 * 1024, seconds=60)))
    # held back a second, so alpha is surely in its stall when the bad one fails
    bad = server.add_file("broken-1.0-py3-none-any.whl", b"PK\x03\x04" + b"\x00" * 4096,
                          plan=FaultPlan(Stall(at=0, seconds=1)))
    cache = tmp_path / "cache"
    proc = _start(["install", good, bad, "-t", str(tmp_path / "t")], _env(cache))
    _wait_for(lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None, "worker processes")
    assert len(_children(proc.pid)) >= 2
    _out, err = proc.communicate(timeout=30)  # alpha's worker is stopped in its stall, not after it
    assert proc.returncode == 1, err
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1 and errors_[0].startswith("error: broken-1.0-py3-none-any.whl: "), err
    assert "Traceback" not in err
    assert not (tmp_path / "t").exists()
    listing = subprocess.run([sys.executable, "-m", "wheelstream", "cache", "list"], check=False,
                             capture_output=True, text=True, env=_env(cache), cwd=ROOT, timeout=30)
    assert "partial downloads: 1" in listing.stdout, listing.stdout  # alpha's, stopped at the stall


def _library_run(script: str, tmp_path: Path, urls: list[str]) -> str:
    """``script``'s stdout, run in a fresh (single-threaded) interpreter where ``install(**kw)`` installs
    ``urls`` into ``tmp_path/t`` with the cache in ``tmp_path/c``."""
    prelude = (
        "import functools, sys, wheelstream, wheelstream._workers\n"
        "install = functools.partial(wheelstream.install, sys.argv[3:], sys.argv[1], cache_dir=sys.argv[2],\n"
        "                            workers='processes')\n"
        "forked = []  # whether the install really started worker processes\n"
        "_start = wheelstream._workers.ProcessPool.start\n"
        "wheelstream._workers.ProcessPool.start = lambda pool: forked.append(1) or _start(pool)\n"
    )
    run = subprocess.run([sys.executable, "-c", prelude + script, str(tmp_path / "t"), str(tmp_path / "c"), *urls],
                         check=False, capture_output=True, text=True, cwd=ROOT, timeout=60, env=_env(tmp_path / "c"))
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_progress_reports_reach_the_callers_callback_from_the_workers(server: FaultServer, tmp_path: Path) -> None:
    urls = [_add(server, name) for name in ("alpha", "beta", "gamma")]
    script = (
        "import json\n"
        "from wheelstream._workers import processes_available\n"
        "reports = []\n"
        "available = processes_available()\n"
        "result = install(progress=reports.append)\n"
        "print(json.dumps({'available': available and bool(forked), 'wheels': len(result.wheels),\n"
        "    'finished': sorted({r.wheel for r in reports if r.finished}),\n"
        "    'bytes': {r.wheel: r.bytes_done for r in reports if r.finished}}))\n"
    )
    seen = json.loads(_library_run(script, tmp_path, urls))
    names = [f"{n}-1.0-py3-none-any.whl" for n in ("alpha", "beta", "gamma")]
    assert seen["available"] is True and seen["wheels"] == 3
    assert seen["finished"] == names
    assert seen["bytes"] == {n: server.version(n).size for n in names}


def test_threads_are_used_where_a_fork_is_not_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not processes_available()  # a fork would copy whatever lock that thread holds
    finally:
        stop.set()
        other.join()
    if len(os.listdir("/proc/self/task")) == 1:  # (pytest-xdist, a plugin or a C library may run threads)
        assert processes_available()
        monkeypatch.setenv("WHEELSTREAM_PROCESSES", "0")
        assert not processes_available()


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_crosses_a_process_boundary_intact(name: str) -> None:
    cls = getattr(errors, name)
    error = cls("the cause", entry="pkg/mod.py", offset=1234).with_wheel("demo-1.0-py3-none-any.whl")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert (str(copy), copy.args, copy.wheel, copy.entry, copy.offset, copy.exit_code) == (
        str(error), error.args, error.wheel, error.entry, error.offset, error.exit_code)


def _worker_talking_to(port: int, workers: list[int]) -> int:
    """The worker with an open connection to the server on ``port`` (``/proc/<pid>/fd`` and ``/proc/net/tcp``)."""
    for pid in workers:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                return pid
    raise AssertionError(f"no worker is connected to port {port}")


@pytest.mark.parametrize("victims", ["one", "all"])
def test_a_killed_worker_is_one_error_line_naming_its_wheel(victims: str, tmp_path: Path) -> None:
    """alpha and beta come from two servers, so the worker on each is known by its connection."""
    with FaultServer() as first, FaultServer() as second:
        urls = [_add(first, "alpha", FaultPlan(Stall(at=128 * 1024, seconds=60))),
                _add(second, "beta", FaultPlan(Stall(at=128 * 1024, seconds=60)))]
        proc = _start(["install", *urls, "-t", str(tmp_path / "t")], _env(tmp_path / "cache"))
        _wait_for(lambda: len(_children(proc.pid)) >= 2, "two worker processes")
        for server, name in ((first, "alpha"), (second, "beta")):
            _wait_for(lambda s=server, n=name: s.bytes_sent(f"{n}-1.0-py3-none-any.whl") >= 128 * 1024, "a stall")
        workers = sorted(_children(proc.pid))
        alphas = _worker_talking_to(int(urls[0].split(":")[2].split("/")[0]), workers)
        for pid in [alphas] if victims == "one" else workers:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - killed < 10, err  # beta's worker checkpoints at once (the cancel cuts its stall)
    assert proc.returncode == 1, err
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1, err
    if victims == "one":
        assert errors_[0].startswith("error: alpha-1.0-py3-none-any.whl: the process unpacking it died"), err
    else:
        assert "died" in errors_[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "t").exists()


def test_a_worker_killed_while_it_waits_to_retry_does_not_hang_the_others(
    server: FaultServer, tmp_path: Path
) -> None:
    """Both servers say 503 + Retry-After: the workers wait for the cancel in their back-off. One is killed
    there; the parent must still stop the other and exit (a shared condition variable would hang it)."""
    urls = [_add(server, name, FaultPlan(Status(503, retry_after=60))) for name in ("alpha", "beta")]
    proc = _start(["install", *urls, "-t", str(tmp_path / "t")], _env(tmp_path / "cache"))
    _wait_for(lambda: len(_children(proc.pid)) >= 2, "two worker processes")
    _wait_for(lambda: len(server.requests) >= 2, "both first requests")
    time.sleep(0.5)  # both in their back-off
    os.kill(min(_children(proc.pid)), signal.SIGKILL)
    killed = time.monotonic()
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - killed < 10, err
    assert proc.returncode == 1, err
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1 and "died" in errors_[0], err


def test_a_raising_progress_callback_stops_the_install_instead_of_hanging_it(
    server: FaultServer, tmp_path: Path
) -> None:
    urls = [_add(server, name) for name in ("alpha", "beta", "gamma")]
    script = (
        "def progress(report):\n"
        "    raise ValueError('the callback broke')\n"
        "try:\n"
        "    install(progress=progress)\n"
        "except ValueError as exc:\n"
        "    print('raised', exc, 'in workers' if forked else 'on threads')\n"
    )
    assert _library_run(script, tmp_path, urls).strip() == "raised the callback broke in workers"
    assert not (tmp_path / "t").exists()


def test_a_sweep_leaves_a_claim_handed_over_between_its_look_and_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wheelstream._cache as cache_module

    cache = Cache.at(tmp_path / "cache")
    tree = tmp_path / "cache" / "staging" / "k"
    tree.mkdir(parents=True)
    claim = cache.claim(tree)
    lock_file = claim.root.parent / f"{claim.root.name}.lock"
    os.utime(lock_file, (time.time() - 3600, time.time() - 3600))
    real_try_lock = cache_module.try_lock

    def hand_over_first(path: Path) -> object:
        if path == lock_file:
            claim.hand_over()  # the worker hands it over just after the sweep saw an old lock file
        return real_try_lock(path)

    monkeypatch.setattr(cache_module, "try_lock", hand_over_first)
    cache.sweep_claims()
    assert claim.root.is_dir() and lock_file.is_file()
    cache.adopt_claim(claim.root).release()


def test_a_handed_over_claim_is_safe_from_sweeps_until_adopted(tmp_path: Path) -> None:
    cache = Cache.at(tmp_path / "cache")
    tree = tmp_path / "cache" / "staging" / "k"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    claim = cache.claim(tree)
    lock_file = claim.root.parent / f"{claim.root.name}.lock"
    os.utime(lock_file, (time.time() - 3600, time.time() - 3600))  # claimed long ago, by a slow download
    root = claim.hand_over()
    Cache.at(tmp_path / "cache")  # another process's start sweeps abandoned claims
    assert (root / "pkg" / "__init__.py").is_file()
    adopted = cache.adopt_claim(root)
    adopted.release()
    assert not root.exists() and not lock_file.exists()
    with pytest.raises(FileNotFoundError, match="removed before this process adopted it"):
        cache.adopt_claim(root)


class _Unpicklable(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")


def test_an_error_that_cannot_cross_a_process_boundary_travels_as_its_message() -> None:
    plain = OSError(28, "No space left on device")
    assert _portable(plain) is plain
    portable = _portable(_Unpicklable(7, "odd"))
    assert isinstance(portable, RuntimeError) and str(portable).endswith("test_workers._Unpicklable: 7: odd")
    pickle.loads(pickle.dumps(portable))


def test_download_and_copy_installs_of_several_wheels_through_workers(server: FaultServer, tmp_path: Path) -> None:
    """The two other ways a worker's result is used: wheel files kept for ``download`` (one of them a local
    file), and trees published in the shared cache for ``--link-mode copy`` (no claims to hand over)."""
    urls = [_add(server, "alpha"), _add(server, "beta")]
    local = tmp_path / "gamma-1.0-py3-none-any.whl"
    local.write_bytes(build_wheel("gamma", "1.0")[1])
    env = _env(tmp_path / "cache")

    def ws(*args: str) -> subprocess.CompletedProcess[str]:
        run = subprocess.run([sys.executable, "-m", "wheelstream", *args], check=False, capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=60)
        assert run.returncode == 0, run.stderr
        return run

    fetched = ws("download", *urls, str(local), "-d", str(tmp_path / "d"))
    paths = [Path(line) for line in fetched.stdout.split()]
    assert [p.name for p in paths] == ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl", local.name]
    assert [p.read_bytes() for p in paths[:2]] == [
        server.version(p.name).data for p in paths[:2]] and paths[2].read_bytes() == local.read_bytes()
    ws("install", *urls, str(local), "-t", str(tmp_path / "t1"), "--link-mode", "copy")
    again = ws("install", *urls, str(local), "-t", str(tmp_path / "t2"), "--link-mode", "copy")
    assert "(3 from cache)" in again.stderr
    assert _tree(tmp_path / "t1") == _tree(tmp_path / "t2")


def test_closing_a_pool_twice_leaves_other_descriptors_alone() -> None:
    """A second ``close`` must not write to, or close, descriptor numbers the first one freed: by then they
    may belong to any file the process opened since."""
    from wheelstream._workers import ProcessPool

    pool = ProcessPool(2, timeout=5.0, progress=None)  # never started: no fork
    pool.close()
    read, write = os.pipe()  # likely to reuse the numbers the pool just freed
    try:
        pool.close()
        os.write(write, b"x")
        assert os.read(read, 8) == b"x"  # nothing else was written into it, and it is still open
    finally:
        os.close(read)
        os.close(write)


def test_a_pool_whose_executor_cannot_start_leaves_no_pipe_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the executor's semaphores are missing the caller falls back to threads; the pool's pipes must not
    stay open behind it."""
    import wheelstream._workers as workers

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(38, "Function not implemented (injected: no /dev/shm)")

    monkeypatch.setattr(workers, "ProcessPoolExecutor", refuse)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="injected"):
        workers.ProcessPool(2, timeout=5.0, progress=None)
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_close_interrupted_by_a_second_ctrl_c_keeps_the_reports_flowing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl-C while ``close`` waits for the workers: they go on checkpointing and may still report.
    Their copies of the pipe keep it open, so a full pipe would block them — and the exit, which waits for
    them. The relay must go on reading. (Here the workers are played by this test: a copy of the read end
    stands for theirs, and a thread writes 50 reports of ~4 KB, more than a pipe holds.)"""
    from wheelstream._workers import ProcessPool

    pool = ProcessPool(2, timeout=5.0, progress=None)  # never started: the relay alone is started below
    pool._relay = threading.Thread(target=pool._relay_reports, name="wheelstream-reports", daemon=True)
    pool._relay.start()
    inherited = os.dup(pool._reader.fileno())  # what every forked worker holds
    writer = pool._executor._initargs[2]  # type: ignore[attr-defined]

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pool._executor, "shutdown", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.close()
        sent = threading.Event()

        def report() -> None:
            for _ in range(50):
                writer.send_bytes(pickle.dumps(("progress", "x" * 3900)))
            sent.set()

        threading.Thread(target=report, daemon=True).start()
        assert sent.wait(10), "a worker's report blocked on a pipe nobody reads"
        assert pool._relay.is_alive()
    finally:
        os.close(inherited)
        pool._stopping.set()  # what the end of the process does for a real pool
        pool._relay.join(10)
        for pipe in (pool._reader, writer, pool.cancel, pool._stopping):
            pipe.close()
