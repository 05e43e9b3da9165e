"""``make demo``: watch wheelstream survive a bad network and an interrupted process, in under a minute.

1. Build a deterministic ~27 MB wheel with a console script (``fixtures.wellformed``).
2. Serve it from the test bed (in-process ``FaultServer``) that cuts the connection twice and stalls once;
   ``wheelstream install URL --target DIR`` rides through all three, resuming with Range each time.
3. A fresh cache, a throttled server, and SIGINT halfway through: exit 130, the partial is kept
   (``wheelstream cache list`` shows it); the same command again resumes across processes
   ("resumed at … (saved …)") and fetches only the rest.
4. Run the installed console script.

Everything lives in a temporary directory (cache included) and is removed at the end. Each step checks
what it claims from the server's request log, so a green run means the resumes really happened.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for fixtures/ when run as a plain script

from fixtures.wellformed import big_text, make_wheel
from wheelstream.testing import Cut, FaultPlan, FaultServer, Stall, Throttle

NAME, VERSION = "bigdemo", "1.0"
FILENAME = f"{NAME}-{VERSION}-py3-none-any.whl"
MB = 1024 * 1024

MAIN = rb'''"""The demo package: a console script that proves the big files arrived intact."""
import hashlib
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    corpus = (here / "corpus.txt").read_bytes()
    weights = (here / "weights.bin").read_bytes()
    parts = sorted((here / "data").glob("*.txt"))
    lines = corpus.count(b"\n")
    print(f"bigdemo 1.0: corpus {len(corpus) / 2**20:.1f} MB ({lines} lines), "
          f"weights sha256 {hashlib.sha256(weights).hexdigest()[:16]}..., {len(parts)} data files")
'''


def header(title: str) -> None:
    bar = "=" * 78
    print(f"\n{bar}\n  {title}\n{bar}", flush=True)


def say(text: str) -> None:
    print(f"  > {text}", flush=True)


def build_wheel() -> bytes:
    """Deterministic: the same bytes on every machine (seeded text and random data)."""
    corpus = big_text(28 * MB, seed=1)
    files = {
        f"{NAME}/__init__.py": MAIN,
        f"{NAME}/corpus.txt": corpus,
        f"{NAME}/weights.bin": random.Random(7).randbytes(16 * MB),
        f"{NAME}-{VERSION}.dist-info/entry_points.txt": f"[console_scripts]\n{NAME} = {NAME}:main\n".encode(),
    }
    for i in range(300):
        files[f"{NAME}/data/part{i:03d}.txt"] = corpus[i * 20_000 : (i + 1) * 20_000]
    return make_wheel(files, name=NAME, version=VERSION)


def wheelstream_cmd() -> list[str]:
    exe = shutil.which("wheelstream")
    return [exe] if exe else [sys.executable, "-m", "wheelstream"]


def run(args: list[str], env: dict[str, str]) -> int:
    say("$ wheelstream " + " ".join(args))
    # the child's stderr (bars, notes, errors) goes where our stdout goes, so a log keeps the order
    return subprocess.run(
        [*wheelstream_cmd(), *args], env=env, check=False, stderr=sys.stdout.fileno()
    ).returncode


def show_log(server: FaultServer, since: int) -> None:
    for record in server.requests[since:]:
        say("server: " + record.summary())


def check(condition: bool, what: str) -> None:
    if not condition:
        print(f"\nDEMO FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)
    say(f"ok: {what}")


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="wheelstream-demo-"))
    try:
        header("1. Build a fixture wheel with a console script")
        data = build_wheel()
        say(f"{FILENAME}: {len(data) / MB:.1f} MB, deterministic (fixtures.wellformed.make_wheel + big_text)")

        with FaultServer() as server:
            url = server.add_file(FILENAME, data)
            env = {**os.environ, "WHEELSTREAM_CACHE_DIR": str(work / "cache1")}

            header("2. A flaky server: cut at 25 %, stall 4 s, cut again — one install command")
            server.set_plan(
                FILENAME,
                FaultPlan(
                    Throttle(24 * MB),
                    Cut(percent=25, requests=1),
                    Stall(at=3 * MB, seconds=4, requests=2),
                    Cut(percent=50, requests=3),
                ),
            )
            say(f"serving {url}")
            code = run(["install", url, "--target", str(work / "target1"), "--timeout", "1.5"], env)
            show_log(server, 0)
            gets = server.requests_for(FILENAME)
            check(code == 0, "installed despite two cuts and a stall (exit 0)")
            check(
                len(gets) >= 4 and all(r.range for r in gets[1:]),
                f"{len(gets) - 1} resumes, each a Range request continuing where the last one stopped",
            )
            check(
                sum(r.bytes_sent for r in gets) < len(data) * 1.05,
                "no byte fetched twice (± a stall's worth)",
            )

            header("3. Ctrl-C halfway, then the same command again (a new process resumes)")
            env = {**os.environ, "WHEELSTREAM_CACHE_DIR": str(work / "cache2")}
            server.set_plan(FILENAME, FaultPlan(Throttle(8 * MB)))
            mark = len(server.requests)
            target2 = work / "target2"
            args = ["install", url, "--target", str(target2)]
            say("$ wheelstream " + " ".join(args) + "    # SIGINT once about 40 % has arrived")
            proc = subprocess.Popen([*wheelstream_cmd(), *args], env=env, stderr=sys.stdout.fileno())
            before = server.bytes_sent(FILENAME)
            deadline = time.monotonic() + 30
            while server.bytes_sent(FILENAME) - before < len(data) * 0.4 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
            say(f"exit code {code}")
            check(code == 130, "interrupted: exit 130, partial kept")
            check(not target2.exists(), "nothing was written to the target")
            run(["cache", "list"], env)

            server.set_plan(FILENAME, FaultPlan())
            after_interrupt = len(server.requests)
            code = run(args, env)
            show_log(server, mark)
            rerun = server.requests[after_interrupt:]
            check(code == 0, "the rerun installed it (exit 0)")
            check(
                bool(rerun) and all(r.range and r.status == 206 for r in rerun),
                f"the rerun asked only for what was missing ({', '.join(str(r.range) for r in rerun)}), "
                "each answered 206",
            )

        header("4. Run the installed console script")
        script = target2 / "bin" / NAME
        say(f"$ PYTHONPATH={target2} {script}")
        out = subprocess.run(
            [str(script)],
            env={**os.environ, "PYTHONPATH": str(target2)},
            capture_output=True,
            text=True,
            check=False,
        )
        print("  " + out.stdout.strip(), flush=True)
        check(out.returncode == 0 and "bigdemo 1.0: corpus 28.0 MB" in out.stdout, "the console script runs")

        header(f"Demo finished in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
