"""Variants of wheelstream on one install, interleaved: median and min wall time, median CPU, peak RSS each.

    git worktree add /tmp/base <commit>
    .venv/bin/python benchmarks/ab.py --runs 10 --wheels benchmarks/out/wheels/many old=/tmp/base new=.
    .venv/bin/python benchmarks/ab.py --runs 4 --wheels /opt/wheels/torch-*.whl \\
        base=. small-blocks=.:unpack._tee._BLOCK=262144,transport._tracking._PLAIN_READ_BYTES=262144

A variant is ``LABEL=CHECKOUT[:MODULE.CONSTANT=INT,...]``: ``wheelstream install`` (the CLI's ``main``, so worker
processes, the collector settings and the rest are the program's) with ``CHECKOUT`` first on ``PYTHONPATH``,
optionally with module constants of ``wheelstream.*`` set before the command runs: a tuning constant measured
without editing the code. ``--wheels`` (repeatable) names a wheel file or a directory of them, served by the project's
``FaultServer`` on 127.0.0.1 (sendfile) and installed in one command (``-r`` for several). Every run gets a fresh
target and cache, nothing is deleted until the end and the first run waits ``--settle`` seconds (ext4's
``recently_deleted``: see ``run.py``'s ``_fresh``); the variants take turns, so the machine's drift hits each
alike. Use it for a change's before/after (the decision log in docs/performance.md); ``make bench`` is the race
against pip and uv.

``--instructions`` runs each install under ``valgrind --tool=callgrind`` and reports the instructions it executed
instead of the time: a count that the VM's noise does not move, for changes too small to see in wall time —
start-up, imports, a download's fixed cost. A run is ~50× slower. Several wheels download on threads then
(``WHEELSTREAM_PROCESSES=0``): a forked worker inherits callgrind's counters, so processes cannot be summed; a
child process the install starts (``--compile-bytecode``'s compiler, a probe of another ``--python``) is not counted.

    .venv/bin/python benchmarks/ab.py --instructions --runs 2 --settle 0 --wheels <one small wheel> old=/tmp/base new=.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from run import _wait  # the race's own: returncode, peak RSS and CPU of the child from wait4

from wheelstream.testing import FaultServer

_CALLGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
_INSTRUCTIONS = re.compile(rb"^==\d+== I\s+refs:\s+([\d,]+)$", re.MULTILINE)  # callgrind's summary

# Run in the variant's interpreter: set the constants, then the CLI as ``python -m wheelstream`` would.
_RUN = """
import importlib, sys
for item in filter(None, sys.argv[1].split(",")):
    name, value = item.split("=")
    module, attr = name.rsplit(".", 1)
    owner = importlib.import_module("wheelstream." + module)
    if not hasattr(owner, attr):
        raise SystemExit(f"no {attr} in wheelstream.{module}")
    setattr(owner, attr, int(value))
from wheelstream.cli import main
main(sys.argv[2:])
"""


def _variant(text: str) -> tuple[str, Path, str]:
    label, _, rest = text.partition("=")
    checkout, _, patch = rest.partition(":")
    if not label or not checkout:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=CHECKOUT[:MODULE.CONSTANT=INT,...]")
    root = Path(checkout).resolve()
    if not (root / "wheelstream" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{root} holds no wheelstream package")
    return label, root, patch


def _wheels(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.whl")) if path.is_dir() else [path])
    if not found:
        raise SystemExit("no wheels to install")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", nargs="+", type=_variant, metavar="LABEL=CHECKOUT[:PATCH]")
    parser.add_argument(
        "--wheels",
        action="append",
        type=Path,
        required=True,
        help="a wheel file or a directory of them (repeatable)",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant (default: 5)")
    parser.add_argument(
        "--settle",
        type=float,
        default=60,
        help="seconds to wait before the first run: inodes freed by an earlier run must age out (default: 60)",
    )
    parser.add_argument("--pause", type=float, default=0.3, help="seconds after each sync (default: 0.3)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the instructions each install executes (callgrind) instead of timing it",
    )
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    wheels = _wheels(args.wheels)
    base = Path(tempfile.mkdtemp(prefix="wheelstream-ab-"))
    rows: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _root, _patch in args.variants}
    counts: dict[str, list[int]] = {label: [] for label, _root, _patch in args.variants}
    try:
        with FaultServer() as server:
            urls = [server.add_file(wheel.name, wheel) for wheel in wheels]
            reqs = base / "requirements.txt"
            reqs.write_text("".join(url + "\n" for url in urls))
            source = ["-r", str(reqs)] if len(urls) > 1 else urls
            for _label, root, _patch in args.variants:
                # A fresh checkout (``git worktree add``) has no bytecode: its first run would count compiling
                # every module (~440 M instructions) and pay it in time — the variants must start alike.
                subprocess.run(
                    [sys.executable, "-m", "compileall", "-q", str(root / "wheelstream")], check=True
                )
            time.sleep(args.settle)  # ext4's recently_deleted: see run.py's _fresh
            for run in range(args.runs):
                for label, root, patch in args.variants:
                    where = base / f"{run}-{label}"
                    where.mkdir()
                    install = ["install", "-q", "--no-progress", "--target", str(where / "target")]
                    install += ["--cache-dir", str(where / "cache"), *source]
                    command = [sys.executable, "-c", _RUN, patch, *install]
                    env = {**os.environ, "PYTHONPATH": str(root)}
                    if args.instructions:
                        counts[label].append(_count_instructions(command, env, where))
                        print(f"  {label:14s} {counts[label][-1] / 1e6:9.1f} M instructions", flush=True)
                        continue
                    os.sync()
                    time.sleep(args.pause)
                    started = time.perf_counter()
                    # cwd: not a checkout, for ``-c`` puts the working directory first on sys.path
                    child = subprocess.Popen(command, env=env, cwd=where)
                    returncode, rss, cpu = _wait(child)
                    wall = time.perf_counter() - started
                    if returncode != 0:
                        raise SystemExit(f"{label}: exit status {returncode}")
                    rows[label].append((wall, cpu, rss))
                    print(f"  {label:14s} {wall:7.3f} s  cpu {rows[label][-1][1]:6.3f} s", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{len(wheels)} wheel(s), {args.runs} runs each, interleaved:")
    if args.instructions:
        for label, measured_counts in counts.items():
            print(
                f"{label:14s} instructions median {statistics.median(measured_counts) / 1e6:9.1f} M  "
                f"min {min(measured_counts) / 1e6:9.1f} M  max {max(measured_counts) / 1e6:9.1f} M"
            )
        return
    for label, measured in rows.items():
        walls, cpus = [m[0] for m in measured], [m[1] for m in measured]
        print(
            f"{label:14s} wall median {statistics.median(walls):7.3f} s  min {min(walls):7.3f} s  "
            f"CPU median {statistics.median(cpus):7.3f} s  peak RSS {max(m[2] for m in measured):5.0f} MB"
        )


def _count_instructions(command: list[str], env: dict[str, str], where: Path) -> int:
    """The instructions ``command`` executed, in one process (see the module docstring)."""
    env = {**env, "WHEELSTREAM_PROCESSES": "0"}
    done = subprocess.run([*_CALLGRIND, *command], env=env, cwd=where, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"exit status {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    found = _INSTRUCTIONS.findall(done.stderr)
    if len(found) != 1:
        raise SystemExit(f"callgrind printed {len(found)} instruction counts, not one")
    return int(found[0].replace(b",", b""))


if __name__ == "__main__":
    main()
