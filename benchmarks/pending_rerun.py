"""What a kill during a checkpoint's staging sync costs the rerun, with and without the pending checkpoint.

    .venv/bin/python benchmarks/pending_rerun.py --wheel /opt/wheels/torch-*.whl --kills 2,4,6,8,10

For each N of ``--kills``: ``wheelstream install`` of the wheel (served by the project's ``FaultServer`` on
127.0.0.1, the first response stalled at ``--stall`` of the file) is killed by the kill point
``checkpoint.staging-sync@N`` (``wheelstream/_killpoints.py``): the N-th checkpoint's pending record is written,
staging's sync has not begun, the journal still holds the checkpoint before. A process still alive
``--grace`` seconds into the stall (it took fewer checkpoints) is killed from outside instead, as ``make
bench``'s (d) does. The cache it left is then copied twice, alike (staging as hard links: a rerun only adds,
deletes or reads files there), and the same install runs again on each copy: once as left, once with the
pending record removed, which is what a rerun found before the record existed. The two reruns alternate which
goes first.

Printed per kill: the journal's C and D, the record's C', and each rerun's wall time and CPU (user + sys).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from run import WS_CLI, _wait  # the race's own: the installed CLI; returncode, peak RSS and CPU from wait4

from wheelstream.testing import FaultPlan, FaultServer, Stall


def _journal(cache: Path) -> tuple[dict[str, int], dict[str, int] | None]:
    (header,) = (cache / "partial").glob("*.json")
    pending = header.with_suffix(".pending")
    return json.loads(header.read_text()), json.loads(pending.read_text()) if pending.exists() else None


def _copy_cache(source: Path, dest: Path) -> None:
    shutil.copytree(source / "partial", dest / "partial")  # rewritten by a rerun: a real copy
    subprocess.run(["cp", "-al", str(source / "staging"), str(dest / "staging")], check=True)
    for name in os.listdir(source):
        if name not in ("partial", "staging"):
            src = source / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)


def _install(url: str, target: Path, cache: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        str(WS_CLI),
        "install",
        "-q",
        "--no-progress",
        url,
        "--target",
        str(target),
        "--cache-dir",
        str(cache),
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _rerun(url: str, work: Path, cache: Path, label: str) -> tuple[float, float]:
    os.sync()
    time.sleep(0.2)
    t0 = time.perf_counter()
    rc, _rss, cpu = _wait(_install(url, work / f"target-{label}", cache, dict(os.environ)))
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"the rerun ({label}) failed: exit {rc}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument(
        "--kills", default="2,4,6,8", help="which staging syncs to kill at (default: 2,4,6,8)"
    )
    parser.add_argument(
        "--stall", type=float, default=0.9, help="where the first response stalls (default: 0.9)"
    )
    parser.add_argument(
        "--grace", type=float, default=3.0, help="seconds into the stall before a kill from outside"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "out", help="where the run dirs go (removed at the end)"
    )
    args = parser.parse_args()
    size = args.wheel.stat().st_size
    at = int(size * args.stall)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {args.wheel.name}, {size / 1e6:.1f} MB, stalled at {at / 1e6:.1f} MB")
    print(
        "| N | killed by | journal C / D, MB | pending C', MB | rerun with the record: s / CPU s | without: s / CPU s |"
    )
    print("|---:|---|---|---|---|---|")
    with FaultServer() as server, tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for number, nth in enumerate(int(n) for n in args.kills.split(",")):
            work = Path(tmp) / f"k{nth}"
            name = f"k{nth}/{args.wheel.name}"
            url = server.add_file(name, args.wheel, plan=FaultPlan(Stall(at=at, seconds=600, requests=1)))
            env = {**os.environ, "WHEELSTREAM_KILL_AT": f"checkpoint.staging-sync@{nth}"}
            proc = _install(url, work / "target", work / "cache", env)
            stalled_since, by = None, "kill point"
            waited: list[tuple[int, float, float]] = []
            waiter = threading.Thread(target=lambda: waited.append(_wait(proc)))  # noqa: B023 - joined below
            waiter.start()
            while waiter.is_alive():
                if stalled_since is None and server.bytes_sent(name) >= at:
                    stalled_since = time.monotonic()
                if stalled_since is not None and time.monotonic() - stalled_since > args.grace:
                    os.killpg(proc.pid, signal.SIGKILL)
                    by = "outside, in the stall"
                    break
                time.sleep(0.005)
            waiter.join()
            rc = waited[0][0]
            if rc != -signal.SIGKILL:
                raise SystemExit(f"N={nth}: the install ended with {rc}, not a kill")
            header, pending = _journal(work / "cache")
            for label in ("with", "without"):  # both reruns on copies made alike (the original is the kill's)
                _copy_cache(work / "cache", work / f"cache-{label}")
            for record in (work / "cache-without" / "partial").glob("*.pending"):
                record.unlink()
            server.wait_idle(5)
            runs = {}
            order = ["with", "without"] if number % 2 == 0 else ["without", "with"]
            for label in order:
                runs[label] = _rerun(url, work, work / f"cache-{label}", label)
            if pending is None:
                pend = "none"
            elif (
                pending["base_bytes"] != header["log_bytes"] or pending["checkpoint"] <= header["checkpoint"]
            ):
                pend = "stale (ignored)"  # the checkpoint it was written for became durable
            else:
                pend = f"{pending['checkpoint'] / 1e6:.1f}"
            (with_s, with_cpu), (without_s, without_cpu) = runs["with"], runs["without"]
            print(
                f"| {nth} | {by} | {header['checkpoint'] / 1e6:.1f} / {header['durable'] / 1e6:.1f} | {pend} | "
                f"{with_s:.2f} / {with_cpu:.2f} | {without_s:.2f} / {without_cpu:.2f} |",
                flush=True,
            )
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
