"""Installs of several wheels run their downloads in forked worker processes (``wheelstream._workers``): the
same result as threads, and the same contract for Ctrl-C, kill -9 and errors. Through the CLI, as a user
runs it, against the test bed on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from conftest import ROOT, Run, saved_journal, wait_until, ws, ws_env, ws_start

from wheelstream import errors
from wheelstream._cache import Cache
from wheelstream._workers import _portable, processes_available
from wheelstream.testing import FaultPlan, FaultServer, Stall, Status, build_wheel

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="worker processes are Linux-only"
)


def _add(server: FaultServer, name: str, plan: FaultPlan | None = None, files: int = 0) -> str:
    """A wheel of ~256 KiB: one payload file, or ``files`` files of 64 KiB (finished entries to resume after)."""
    extra = {f"{name}/part{i}.bin": os.urandom(64 * 1024) for i in range(files)}
    filename, data = build_wheel(name, "1.0", payload_size=0 if files else 256 * 1024, files=extra)
    return server.add_file(filename, data, plan=plan)


def _start(*args: str, cache: Path) -> subprocess.Popen[str]:
    """The command in its own process group, like a terminal's job."""
    return ws_start(*args, cache=cache, start_new_session=True)


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


def _collect_lines(stream: IO[str] | None) -> tuple[list[str], threading.Thread]:
    """Every line ``stream`` yields, appended as it comes by a thread that ends at end of file."""
    assert stream is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    return lines, reader


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _stalled_install(
    server: FaultServer, tmp_path: Path
) -> tuple[subprocess.Popen[str], set[int], list[str]]:
    """Three wheels, one of them stalled halfway; returns once the workers are there and the stalled one
    has bytes on disk."""
    # beta stalls past its first 1 MiB: the tee hands bytes on in 1 MiB blocks, and only entries finished
    # from a handed-on block can be in a checkpoint for the rerun to resume after (what kill -9 keeps)
    stall = Stall(at=1200 * 1024, seconds=60)  # far longer than a test may wait: a cancel must cut it short
    urls = [_add(server, "alpha"), _add(server, "beta", FaultPlan(stall), files=24), _add(server, "gamma")]
    cache = tmp_path / "cache"
    proc = _start("install", *urls, "-t", str(tmp_path / "t"), cache=cache)
    wait_until(lambda: len(_children(proc.pid)) >= 2, timeout=60, what="two worker processes")
    workers = _children(proc.pid)
    wait_until(
        lambda: server.bytes_sent("beta-1.0-py3-none-any.whl") >= 1200 * 1024, timeout=60, what="the stall"
    )
    # the idle checkpoint (0.5 s without data): the header, written last, says so
    wait_until(
        lambda: (saved_journal(cache, urls[1]) or {}).get("checkpoint", 0) > 0,
        timeout=60,
        what="the idle checkpoint",
    )
    return proc, workers, urls


def test_several_wheels_install_the_same_tree_in_worker_processes_as_with_threads(
    server: FaultServer, tmp_path: Path
) -> None:
    urls = [
        _add(server, name, FaultPlan(Stall(at=64 * 1024, seconds=0.5)) if name == "beta" else None)
        for name in ("alpha", "beta", "gamma", "delta")
    ]
    proc = _start("install", *urls, "-t", str(tmp_path / "processes"), cache=tmp_path / "c1")
    wait_until(
        lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None, timeout=60, what="worker processes"
    )
    workers = _children(proc.pid)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(workers) >= 2, "the downloads did not run in worker processes"
    assert "Installed 4 wheels" in err
    threads = ws(
        "install",
        *urls,
        "-t",
        str(tmp_path / "threads"),
        cache=tmp_path / "c2",
        env={"WHEELSTREAM_PROCESSES": "0"},
    )
    assert threads.code == 0, threads.err
    installed = _tree(tmp_path / "processes")
    assert installed == _tree(tmp_path / "threads")  # every file, RECORD and INSTALLER included
    assert {"alpha/__init__.py", "beta/__init__.py", "gamma/__init__.py", "delta/__init__.py"} <= set(
        installed
    )
    claimed = tmp_path / "c1" / "claimed"
    assert not claimed.exists() or not any(claimed.iterdir())  # each adopted claim was released


def test_ctrl_c_stops_every_worker_checkpointed_and_the_rerun_resumes(
    server: FaultServer, tmp_path: Path
) -> None:
    proc, workers, urls = _stalled_install(server, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group: the workers ignore it
    sent = time.monotonic()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 10  # not held until the stalled server sends again
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1, err
    # the open wheel named (beta, or the first of those still open), then where the rerun resumes from
    assert re.match(r"error: \S+\.whl( and \d more)?: interrupted at ", errors_[0]), err
    assert "Traceback" not in err
    assert not any(_alive(pid) for pid in workers)
    assert not (tmp_path / "t").exists()
    server.set_plan("beta-1.0-py3-none-any.whl", FaultPlan())
    rerun = ws("install", *urls, "-t", str(tmp_path / "t"), cache=tmp_path / "cache")
    assert rerun.code == 0, rerun.err
    assert "resumed at" in rerun.err
    assert server.requests_for("beta-1.0-py3-none-any.whl")[-1].range is not None
    assert (tmp_path / "t" / "beta" / "__init__.py").is_file()


def test_workers_die_with_a_killed_parent_and_the_rerun_resumes(server: FaultServer, tmp_path: Path) -> None:
    proc, workers, urls = _stalled_install(server, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as the OOM killer would
    proc.communicate(timeout=30)
    wait_until(
        lambda: not any(_alive(pid) for pid in workers),
        timeout=5,
        what="the workers to die with their parent",
    )
    server.set_plan("beta-1.0-py3-none-any.whl", FaultPlan())
    rerun = ws("install", *urls, "-t", str(tmp_path / "t"), cache=tmp_path / "cache")
    assert rerun.code == 0, rerun.err
    assert "resumed at" in rerun.err
    assert _tree(tmp_path / "t")["beta/__init__.py"]


def test_a_bad_wheel_in_one_worker_stops_the_others_and_installs_nothing(
    server: FaultServer, tmp_path: Path
) -> None:
    good = _add(server, "alpha", FaultPlan(Stall(at=128 * 1024, seconds=60)))
    # held back a second, so alpha is surely in its stall when the bad one fails
    bad = server.add_file(
        "broken-1.0-py3-none-any.whl", b"PK\x03\x04" + b"\x00" * 4096, plan=FaultPlan(Stall(at=0, seconds=1))
    )
    cache = tmp_path / "cache"
    proc = _start("install", good, bad, "-t", str(tmp_path / "t"), cache=cache)
    wait_until(
        lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None, timeout=60, what="worker processes"
    )
    assert len(_children(proc.pid)) >= 2
    _out, err = proc.communicate(timeout=30)  # alpha's worker is stopped in its stall, not after it
    assert proc.returncode == 1, err
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1, err
    assert errors_[0].startswith("error: broken-1.0-py3-none-any.whl: "), err
    assert "Traceback" not in err
    assert not (tmp_path / "t").exists()
    listing = ws("cache", "list", cache=cache, timeout=30)
    assert "partial downloads: 1" in listing.out, listing.out  # alpha's, stopped at the stall


def _library_run(script: str, tmp_path: Path, urls: list[str]) -> str:
    """``script``'s stdout, run in a fresh (single-threaded) interpreter where ``install(**kw)`` installs
    ``urls`` into ``tmp_path/t`` with the cache in ``tmp_path/c``."""
    prelude = (
        "import functools, os, sys, wheelstream\n"
        "install = functools.partial(wheelstream.install, sys.argv[3:], sys.argv[1], cache_dir=sys.argv[2],\n"
        "                            workers='processes')\n"
        "forked = []  # the forks of this process: whether the install really started worker processes\n"
        "os.register_at_fork(after_in_parent=lambda: forked.append(1))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", prelude + script, str(tmp_path / "t"), str(tmp_path / "c"), *urls],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env=ws_env(tmp_path / "c"),
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_progress_reports_reach_the_callers_callback_from_the_workers(
    server: FaultServer, tmp_path: Path
) -> None:
    urls = [_add(server, name) for name in ("alpha", "beta", "gamma")]
    script = (
        "import json\n"
        "reports = []\n"
        "result = install(progress=reports.append)\n"
        "print(json.dumps({'forked': len(forked), 'wheels': len(result.wheels),\n"
        "    'finished': sorted({r.wheel for r in reports if r.finished}),\n"
        "    'bytes': {r.wheel: r.bytes_done for r in reports if r.finished}}))\n"
    )
    seen = json.loads(_library_run(script, tmp_path, urls))
    names = [f"{n}-1.0-py3-none-any.whl" for n in ("alpha", "beta", "gamma")]
    assert seen["forked"] >= 1
    assert seen["wheels"] == 3
    assert seen["finished"] == names
    assert seen["bytes"] == {n: server.version(n).size for n in names}


def test_an_earlier_downloads_writers_neither_stop_a_fork_nor_outlive_the_call_for_long(
    server: FaultServer, tmp_path: Path
) -> None:
    """The writer threads stayed for good after a first download: the process then had three threads, and
    every later ``workers="processes"`` call ran on threads. Idle ones are counted out, and they leave."""
    first = _add(server, "first", files=40)
    urls = [_add(server, name) for name in ("alpha", "beta", "gamma")]
    script = (
        "import json, threading, time\n"
        "first, rest = sys.argv[3], sys.argv[4:]\n"
        "wheelstream.install([first], sys.argv[1] + '-first', cache_dir=sys.argv[2])\n"
        "writers = sorted(t.name for t in threading.enumerate() if t.name.startswith('wheelstream-write'))\n"
        "wheelstream.install(rest, sys.argv[1], cache_dir=sys.argv[2], workers='processes')\n"
        "time.sleep(3.0)  # the writers leave 2 s after their last batch\n"
        "left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]\n"
        "print(json.dumps({'writers': writers, 'forked': len(forked), 'left': left}))\n"
    )
    seen = json.loads(_library_run(script, tmp_path, [first, *urls]))
    assert seen["writers"] == ["wheelstream-write_0", "wheelstream-write_1"]  # the first download used them
    assert seen["forked"] >= 1
    assert seen["left"] == []


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
        str(error),
        error.args,
        error.wheel,
        error.entry,
        error.offset,
        error.exit_code,
    )


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
        urls = [
            _add(first, "alpha", FaultPlan(Stall(at=128 * 1024, seconds=60))),
            _add(second, "beta", FaultPlan(Stall(at=128 * 1024, seconds=60))),
        ]
        proc = _start("install", *urls, "-t", str(tmp_path / "t"), cache=tmp_path / "cache")
        wait_until(lambda: len(_children(proc.pid)) >= 2, timeout=60, what="two worker processes")
        for server, name in ((first, "alpha"), (second, "beta")):

            def stalled(s: FaultServer = server, n: str = name) -> bool:
                return s.bytes_sent(f"{n}-1.0-py3-none-any.whl") >= 128 * 1024

            wait_until(stalled, timeout=60, what="a stall")
        workers = sorted(_children(proc.pid))
        alphas = _worker_talking_to(int(urls[0].split(":")[2].split("/")[0]), workers)
        for pid in [alphas] if victims == "one" else workers:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - killed < 10, (
        err
    )  # beta's worker checkpoints at once (the cancel cuts its stall)
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
    proc = _start("install", *urls, "-t", str(tmp_path / "t"), cache=tmp_path / "cache")
    lines, reader = _collect_lines(proc.stderr)
    wait_until(lambda: len(_children(proc.pid)) >= 2, timeout=60, what="two worker processes")
    # each worker's note "...; retry 1 of N in 60.0 s" is printed right before its back-off starts
    wait_until(
        lambda: len({line.split(":")[0] for line in list(lines) if "retry 1 of" in line}) == 2,
        timeout=60,
        what="both workers in their back-off",
    )
    os.kill(min(_children(proc.pid)), signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(timeout=30)
    reader.join(10)
    err = "".join(lines)
    assert time.monotonic() - killed < 10, err
    assert proc.returncode == 1, err
    errors_ = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors_) == 1, err
    assert "died" in errors_[0], err


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
    assert claim.root.is_dir()
    assert lock_file.is_file()
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
    assert not root.exists()
    assert not lock_file.exists()
    with pytest.raises(FileNotFoundError, match="removed before this process adopted it"):
        cache.adopt_claim(root)


class _Unpicklable(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")


def test_an_error_that_cannot_cross_a_process_boundary_travels_as_its_message() -> None:
    plain = OSError(28, "No space left on device")
    assert _portable(plain) is plain
    portable = _portable(_Unpicklable(7, "odd"))
    assert isinstance(portable, RuntimeError)
    assert str(portable).endswith("test_workers._Unpicklable: 7: odd")
    pickle.loads(pickle.dumps(portable))


def test_download_and_copy_installs_of_several_wheels_through_workers(
    server: FaultServer, tmp_path: Path
) -> None:
    """The two other ways a worker's result is used: wheel files kept for ``download`` (one of them a local
    file), and trees published in the shared cache for ``--link-mode copy`` (no claims to hand over)."""
    urls = [_add(server, "alpha"), _add(server, "beta")]
    local = tmp_path / "gamma-1.0-py3-none-any.whl"
    local.write_bytes(build_wheel("gamma", "1.0")[1])

    def succeeds(*args: str) -> Run:
        run = ws(*args, cache=tmp_path / "cache")
        assert run.code == 0, run.err
        return run

    fetched = succeeds("download", *urls, str(local), "-d", str(tmp_path / "d"))
    paths = [Path(line) for line in fetched.out.split()]
    assert [p.name for p in paths] == ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl", local.name]
    assert [p.read_bytes() for p in paths[:2]] == [server.version(p.name).data for p in paths[:2]]
    assert paths[2].read_bytes() == local.read_bytes()
    succeeds("install", *urls, str(local), "-t", str(tmp_path / "t1"), "--link-mode", "copy")
    again = succeeds("install", *urls, str(local), "-t", str(tmp_path / "t2"), "--link-mode", "copy")
    assert "(3 from cache)" in again.err
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


SECOND_CTRL_C = """
import signal, sys, time, types
from pathlib import Path
from wheelstream import Progress
from wheelstream._workers import ProcessPool

REPORTS = 200  # ~1 KB each (a worker cuts a message at 1,000 characters): three times what a pipe holds
go = Path(sys.argv[1])
started = go.with_name("started")

def chatty(*, client, progress, cancel):  # a download that reports once its parent's close was interrupted
    started.touch()
    while not go.exists():
        time.sleep(0.01)
    for done in range(REPORTS):
        progress(Progress("demo-1.0-py3-none-any.whl", done, None, 0, None, message="x" * 1000))
    return types.SimpleNamespace(claim=None)

def second_ctrl_c(signum, frame):
    raise KeyboardInterrupt

received = []
pool = ProcessPool(1, timeout=5.0, progress=received.append)
pool.start()
pool.submit(chatty, "demo-1.0-py3-none-any.whl")
while not started.exists():  # a job not yet started would be cancelled by close, which then waits for nothing
    time.sleep(0.01)
signal.signal(signal.SIGALRM, second_ctrl_c)
signal.setitimer(signal.ITIMER_REAL, 0.5)  # while close waits for the worker
try:
    pool.close()
except KeyboardInterrupt:
    print("interrupted", flush=True)
go.touch()
deadline = time.monotonic() + 10
while len(received) < REPORTS and time.monotonic() < deadline:
    time.sleep(0.01)
print(len(received), flush=True)
"""


def test_a_close_interrupted_by_a_second_ctrl_c_keeps_the_reports_flowing(tmp_path: Path) -> None:
    """A second Ctrl-C while ``close`` waits for the workers: they go on checkpointing and may still report.
    Their copies of the pipe keep it open, so a full pipe would block them — and the exit, which waits for
    them. The relay must go on reading. And the exit must still wait for the workers: on Python 3.11 an
    interrupted ``Thread.join`` of the executor's manager thread used to mark it stopped, and the exit then hung
    ~1 in 20 times under load (``ProcessPool._shutdown_executor``). (In a fresh interpreter, which may fork: a
    real pool, a worker that sends more reports than a pipe holds once the close was interrupted, and the
    caller's callback counting.)"""
    run = subprocess.run(
        [sys.executable, "-c", SECOND_CTRL_C, str(tmp_path / "go")],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["interrupted", "200"], (run.stdout, run.stderr)


def test_a_fork_that_fails_for_want_of_descriptors_falls_back_to_threads_and_never_hangs(
    server: FaultServer, tmp_path: Path
) -> None:
    """With too few descriptors for ``--jobs`` worth of workers, a fork failed halfway: the executor raised
    before it started its manager, the workers already forked waited on its queue for good, and so did the
    command (Ctrl-C did not end it; only SIGKILL did). The pool is abandoned and the downloads run on threads:
    the command ends on its own, with one line if it fails."""
    import resource

    urls = [_add(server, f"w{i:02}") for i in range(8)]

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (28, 28))

    run = subprocess.run(
        [sys.executable, "-m", "wheelstream", "install", "-q", "-j", "8", "-t", str(tmp_path / "t"), *urls],
        cwd=ROOT,
        env=ws_env(tmp_path / "c"),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=few_descriptors,  # a limit of the child alone, set before it runs Python
        check=False,
    )
    assert run.returncode in (0, 1), run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    if run.returncode == 0:
        assert sorted(p.name for p in (tmp_path / "t").iterdir() if not p.name.endswith(".dist-info")) == [
            f"w{i:02}" for i in range(8)
        ]
    else:
        assert len(run.stderr.splitlines()) == 1, run.stderr
