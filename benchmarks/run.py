"""Race wheelstream against pinned pip and uv on the same wheels from the same local server (DESIGN §8, issues 8
and #25).

    make bench                                   # everything, 3 runs each; rewrites README's and docs' table
    .venv/bin/python benchmarks/run.py --scenarios a,c --repeat 2 --tools uv,wheelstream
    .venv/bin/python benchmarks/run.py --tools wheelstream --scenarios a,c,d --big my.whl --no-chart  # no registry
    git worktree add /tmp/base <commit>; .venv/bin/python benchmarks/run.py --baseline /tmp/base ...  # old vs new

Scenarios
  a  one big wheel, cold (torch from /opt/wheels when present, else a generated ~200 MB wheel)
  b  ~10 mid-size real wheels from PyPI, one command (``-r`` for pip and uv, a list for wheelstream)
  c  the big wheel, the first response cut at 90 %: total bytes the server sent, wall time
  d  the big wheel, the process SIGKILLed at 90 %, then rerun: the rerun alone is timed
  e  the big wheel, SIGKILLed at 90 % while bytes flow at 40 MB/s, then rerun: bytes fetched twice
  f  50 small real wheels from PyPI, one command
  g  the big wheel, every connection (every response) paced at 10 MB/s, as a CDN edge paces each flow:
     pip and uv use one connection; wheelstream (automatic), ``wheelstream-c1`` and ``wheelstream-c4``
     (``--connections 1`` / ``4``, run in this scenario only) show what several connections bring

Every run gets a fresh target and a fresh cache (uv ``--cache-dir``, pip ``--no-cache-dir``, wheelstream
``cache_dir``); the previous run's files are ``sync``ed before the clock starts and deleted only at the end
of the scenario, after which the next one waits ``--settle`` seconds (see ``_fresh``). ``--baseline DIR`` races
a second wheelstream, the package in the checkout ``DIR``, as the tool ``wheelstream-baseline``: old and new
code measured in one run, both started as ``python -m wheelstream`` with ``PYTHONPATH`` naming their checkout.
The server is the project's ``FaultServer`` in this process (``sendfile``, ~1.5 GB/s on loopback — far above
any client), so every request's bytes are known. Peak RSS and CPU time (user + system seconds, the child's own
plus those of the descendants it waited for) come from ``wait4`` on each child; for (d) and (e) they are the
rerun's.

Outputs
  ``benchmarks/results.md`` (``--results``): per scenario each tool's min and median wall seconds, median CPU
      seconds, peak RSS (and bytes sent and requests where they matter), the headline table below, and the
      targets of issues 8 and #25 (met or missed);
  ``benchmarks/results.json``: every run (``Run``: wall and CPU seconds, RSS, bytes, requests, return code);
  ``docs/bench.png`` (``--chart``, unless ``--no-chart``): a bar chart (matplotlib, installed into the
      throwaway peers venv);
  ``--docs FILE`` (repeatable; ``make bench`` passes README.md and docs/performance.md): in FILE, everything
      between a line ``<!-- bench-results -->`` and a line ``<!-- /bench-results -->`` is replaced by the
      headline table (one row per scenario, the median wall seconds of each tool — ``seconds / MB sent``
      where bytes matter — and wheelstream / uv; then (a)'s CPU seconds and peak RSS) and a one-line caption
      (runs, command, date, commit, cores, pip and uv versions). Every FILE is checked for both markers
      before the race starts.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"  # gitignored: venv, downloaded wheels, run dirs
sys.path.insert(0, str(REPO))

from wheelstream.testing import FaultServer
from wheelstream.testing._faults import FaultPlan
from wheelstream.testing._spec import parse_fault

PIP_VERSION = "26.3"
UV_VERSION = "0.13.9"
MATPLOTLIB_VERSION = "3.11.2"
# (b): real wheels, 2-35 MB each, 110 MB in all; pinned so every run races on the same bytes.
MID_WHEELS = [
    "numpy==2.4.6",
    "pandas==3.1.1",
    "scipy==1.17.1",
    "matplotlib==3.11.2",
    "pillow==13.0.0",
    "scikit-learn==1.9.1",
    "lxml==6.1.3",
    "grpcio==1.85.3",
    "cryptography==50.0.2",
    "pydantic_core==2.50.5",
]
# (f): 50 small real wheels, 43 MB in all (many of them pure Python): where per-wheel costs show; pinned too.
MANY_WHEELS = [
    "requests==2.34.2",
    "urllib3==2.8.0",
    "idna==3.20",
    "charset-normalizer==3.5.2",
    "six==1.17.0",
    "python-dateutil==4.0.0",
    "pytz==2026.6",
    "attrs==26.1.0",
    "click==8.5.1",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "packaging==26.3",
    "pyparsing==3.3.3",
    "setuptools==84.2.1",
    "wheel==0.48.0",
    "typing-extensions==4.16.0",
    "tomli==2.5.0",
    "filelock==4.2.11",
    "platformdirs==4.14.5",
    "distlib==0.4.4",
    "virtualenv==21.15.7",
    "pluggy==1.7.0",
    "iniconfig==2.3.1",
    "pytest==9.2.0",
    "colorama==0.4.6",
    "tqdm==4.70.1",
    "rich==15.0.0",
    "pygments==2.21.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
    "docutils==0.23",
    "sphinx==9.0.4",
    "babel==2.18.0",
    "alabaster==1.0.0",
    "snowballstemmer==3.1.1",
    "imagesize==2.0.1",
    "sniffio==1.3.1",
    "anyio==4.16.0",
    "h11==0.16.0",
    "httpcore==1.0.9",
    "httpx==0.28.1",
    "websocket-client==1.9.2",
    "jmespath==1.1.0",
    "botocore==1.44.5",
    "s3transfer==0.19.3",
    "boto3==1.44.5",
    "pyasn1==0.6.5",
    "rsa==4.9.1",
    "cachetools==8.0.0",
    "google-auth==2.62.2",
]
BIG_GLOB = "/opt/wheels/torch-*cp311*.whl"
ALL_TOOLS = (
    "pip",
    "uv",
    "wheelstream",
    "wheelstream-c1",
    "wheelstream-c4",
    "wheelstream-hardlink",
    "wheelstream-baseline",
)
CONNECTION_TOOLS = {"wheelstream-c1": "1", "wheelstream-c4": "4"}  # (g) only: --connections N
PER_CONNECTION = "throttle=10M"  # (g): every response paced by itself
SCENARIO_TITLES = {
    "a": "(a) big wheel, cold",
    "b": "(b) 10 mid-size wheels, one command",
    "c": "(c) big wheel, connection cut at 90 %",
    "d": "(d) big wheel, SIGKILL at 90 %, rerun alone",
    "e": "(e) big wheel, SIGKILL at 90 % while bytes flow (40 MB/s), rerun alone",
    "f": "(f) 50 small wheels, one command",
    "g": "(g) big wheel, each connection paced at 10 MB/s",
}


@dataclass
class Run:
    scenario: str
    tool: str
    seconds: float
    rss_mb: float
    bytes_sent: int
    requests: int
    returncode: int
    note: str = ""
    cpu_seconds: float = 0.0  # user + system CPU of the child (and the descendants it waited for)


@dataclass
class Bench:
    big: Path
    mid: list[Path]
    many: list[Path] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


# -- setup ------------------------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """No user pip config or find-links: every tool talks to our server only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def peers_venv() -> Path:
    """A throwaway venv with the pinned peers (and matplotlib for the chart)."""
    venv = OUT / f"peers-pip{PIP_VERSION}-uv{UV_VERSION}"
    python = venv / "bin" / "python"
    if not (venv / ".ok").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"pip=={PIP_VERSION}",
                f"uv=={UV_VERSION}",
                f"matplotlib=={MATPLOTLIB_VERSION}",
            ],
            check=True,
        )
        (venv / ".ok").touch()
    return venv


def mid_wheels(venv: Path) -> list[Path]:
    """Download the pinned mid-size wheels from the registry once; they are served locally from then on."""
    return pinned_wheels(venv, MID_WHEELS, "mid")


def many_wheels(venv: Path) -> list[Path]:
    """(f)'s fifty small pinned wheels, downloaded once like ``mid_wheels``."""
    return pinned_wheels(venv, MANY_WHEELS, "many")


def pinned_wheels(venv: Path, specs: list[str], folder: str) -> list[Path]:
    """The wheels of ``specs`` (``name==version``), fetched from the registry into ``out/wheels/<folder>`` once."""
    where = OUT / "wheels" / folder
    where.mkdir(parents=True, exist_ok=True)

    def have() -> list[Path]:
        found = []
        for spec in specs:
            name, version = spec.split("==")
            stem = name.replace("-", "_")
            found += sorted(
                p for p in where.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-".lower())
            )
        return found

    if len(have()) < len(specs):
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(where),
                *specs,
            ],
            check=True,
        )
    return have()


def big_wheel(given: Path | None) -> Path:
    if given is not None:
        return given
    found = sorted(glob.glob(BIG_GLOB))
    if found:
        return Path(found[-1])
    path = OUT / "wheels" / "bigdemo-1.0-py3-none-any.whl"
    if not path.exists():
        from generate_wheel import generate

        generate(path, target_size=200 * 1024 * 1024)
    return path


# -- one run ----------------------------------------------------------------------------------------------


def compile_wheelstream(root: Path = REPO) -> None:
    """Byte-compile the package once, as ``pip install`` does for the peers (and for any regular install of
    wheelstream). The runs set PYTHONDONTWRITEBYTECODE, so an editable checkout without ``__pycache__`` would
    otherwise compile its modules from source on every run, a cost no installed copy pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "wheelstream")], check=True)


# The wheelstream raced is the one installed for the interpreter running this script (make bench: .venv's).
WS_CLI = Path(sys.executable).parent / "wheelstream"


def _ws_cli_available() -> bool:
    ws = WS_CLI
    try:
        done = subprocess.run([str(ws), "install", "--help"], capture_output=True, timeout=30, check=False)
    except OSError:
        return False
    return done.returncode == 0


class Tools:
    def __init__(self, venv: Path | None, baseline: Path | None = None) -> None:
        """``venv``: the peers' venv; None when only wheelstream races (then pip and uv cannot be asked for).
        ``baseline``: a checkout whose wheelstream races as ``wheelstream-baseline``."""
        self.python = venv / "bin" / "python" if venv else Path("no-peers-venv")
        self.uv = venv / "bin" / "uv" if venv else Path("no-peers-venv")
        self.ws_python = Path(sys.executable)
        self.ws_cli = _ws_cli_available()
        self.baseline = baseline

    def _checkout_cli(self, root: Path) -> list[str]:
        """``python -m wheelstream`` from the checkout ``root`` (``env`` sets its PYTHONPATH: one more exec,
        paid by both sides of an old-versus-new race alike)."""
        return ["/usr/bin/env", f"PYTHONPATH={root}", str(self.ws_python), "-m", "wheelstream"]

    def command(self, tool: str, urls: list[str], target: Path, cache: Path, reqs: Path) -> list[str]:
        if tool == "pip":
            src = ["-r", str(reqs)] if len(urls) > 1 else urls
            return [
                str(self.python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-compile",
                "--no-cache-dir",
                "--target",
                str(target),
                *src,
            ]
        if tool == "uv":
            src = ["-r", str(reqs)] if len(urls) > 1 else urls
            return [
                str(self.uv),
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                "--python",
                str(self.python),
                "--cache-dir",
                str(cache),
                *src,
            ]
        link = "hardlink" if tool == "wheelstream-hardlink" else "move"  # move is the default
        src = ["-r", str(reqs)] if len(urls) > 1 else urls
        if tool in CONNECTION_TOOLS:
            src = ["--connections", CONNECTION_TOOLS[tool], *src]
        install = [
            "install",
            "-q",
            "--no-progress",
            "--target",
            str(target),
            "--cache-dir",
            str(cache),
            "--link-mode",
            link,
            *src,
        ]
        if self.baseline is not None:  # old against new: both started the same way
            root = self.baseline if tool == "wheelstream-baseline" else REPO
            return [*self._checkout_cli(root), *install]
        if self.ws_cli:
            return [str(WS_CLI), *install]
        code = (
            "import sys, wheelstream; "
            "wheelstream.install(sys.argv[4:], sys.argv[1], cache_dir=sys.argv[2], link_mode=sys.argv[3])"
        )
        return [str(self.ws_python), "-c", code, str(target), str(cache), link, *urls]


def _fresh(*paths: Path) -> None:
    """Nothing is deleted between runs: ext4 skips inodes freed in the last 60-300 s when it allocates
    (``recently_deleted()``), so creating 12k files right after deleting 36k costs 2-5x more kernel time —
    the tool that runs after a big ``rm -rf`` would lose (docs/performance.md). Run dirs are removed at the end
    of each scenario, and the next one waits ``--settle`` seconds."""
    for p in paths:
        assert not p.exists(), p
    os.sync()  # the previous run's dirty pages must not be written back on this run's clock
    time.sleep(0.2)


def _journal_left(cache: Path) -> str:
    """What wheelstream's killed run left for the rerun: the journal's ``C`` (every entry before it extracted and
    durable: the rerun re-extracts from there) and ``D`` (the bytes kept), and the pending checkpoint ``C'`` when
    the kill came while a checkpoint was being made durable (the rerun re-extracts from there instead, as far
    as staging proves it: ``wheelstream/unpack/_pending.py``). Without one, a C far behind D is a slow rerun
    even when little is fetched again (docs/performance.md, D-pending-checkpoint)."""
    for journal in sorted((cache / "partial").glob("*.json")):
        try:
            saved = json.loads(journal.read_text())
            left = f" (left C {saved['checkpoint'] / 1e6:.1f} MB, D {saved['durable'] / 1e6:.1f} MB"
        except (OSError, ValueError, KeyError, TypeError):
            return " (left an unreadable journal)"
        try:
            pending = json.loads(journal.with_suffix(".pending").read_text())
            if pending["base_bytes"] == saved["log_bytes"] and pending["checkpoint"] > saved["checkpoint"]:
                left += f", pending C' {pending['checkpoint'] / 1e6:.1f} MB"
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none, or one the rerun ignores too
        return left + ")"
    return " (left no journal)"


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Started in the run's own directory: ``python -m`` puts the working directory first on ``sys.path``, so
    from the repository's root every ``wheelstream-baseline`` would import this checkout's package instead of
    its ``PYTHONPATH``'s (an old-versus-new race of new against new)."""
    handle = open(log, "wb")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(
        cmd, stdout=handle, stderr=subprocess.STDOUT, env=_clean_env(), start_new_session=True, cwd=log.parent
    )


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """returncode, peak RSS in MB and user + system CPU seconds of the child (wait4 gives the child's rusage:
    on Linux its own plus that of the descendants it waited for, the largest RSS of any of them)."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


class Runner:
    def __init__(
        self,
        bench: Bench,
        tools: Tools,
        server: FaultServer,
        verbose: bool,
        runs: Path,
        kill_after: float = 1.0,
    ) -> None:
        self.bench = bench
        self.runs = runs  # one directory per run below this
        self.kill_after = kill_after  # (d): seconds into the stall
        self.tools = tools
        self.server = server
        self.verbose = verbose
        self.counter = 0

    def _serve(self, paths: list[Path], plan: FaultPlan | None = None) -> tuple[list[str], list[str]]:
        """Serve the files under a fresh prefix: request numbers (fault scopes) start at 1 for this run."""
        self.counter += 1
        names = [f"r{self.counter}/{p.name}" for p in paths]
        urls = [self.server.add_file(n, p, plan=plan) for n, p in zip(names, paths, strict=True)]
        return names, urls

    def _dirs(self, tool: str) -> tuple[Path, Path, Path, Path]:
        self.counter += 1
        base = self.runs / f"{self.counter:03d}-{tool}"
        return base / "target", base / "cache", base / "reqs.txt", base / "log.txt"

    def _record(self, run: Run) -> None:
        self.bench.runs.append(run)
        print(
            f"  {run.scenario} {run.tool:22s} {run.seconds:7.2f} s  cpu {run.cpu_seconds:6.2f} s  "
            f"{run.rss_mb:6.0f} MB  "
            f"sent {run.bytes_sent / 1e6:7.1f} MB in {run.requests} req  rc={run.returncode} {run.note}",
            flush=True,
        )

    def cold(self, scenario: str, tool: str, paths: list[Path], plan: FaultPlan | None = None) -> None:
        target, cache, reqs, log = self._dirs(tool)
        _fresh(target.parent)
        target.parent.mkdir(parents=True)
        names, urls = self._serve(paths, plan)
        reqs.write_text("".join(u + "\n" for u in urls))
        cmd = self.tools.command(tool, urls, target, cache, reqs)
        t0 = time.perf_counter()
        proc = _start(cmd, log)
        rc, rss, cpu = _wait(proc)
        seconds = time.perf_counter() - t0
        self.server.wait_idle(5)
        sent = sum(self.server.bytes_sent(n) for n in names)
        nreq = sum(len(self.server.requests_for(n)) for n in names)
        note = "" if rc == 0 else log.read_text(errors="replace").strip().splitlines()[-1][:120]
        self._record(Run(scenario, tool, seconds, rss, sent, nreq, rc, note, cpu))

    def killed(self, scenario: str, tool: str, path: Path) -> None:
        """(d): stall the first response at 90 %, SIGKILL the client ``kill_after`` s into the stall (1 s by
        default: what someone watching a stalled bar might wait), time the rerun. (e): no stall, the body
        paced at 40 MB/s (below what the client takes, so the socket buffers stay near empty), SIGKILL as the
        server has sent 90 %: what a kill while bytes arrive costs the client itself."""
        target, cache, reqs, log = self._dirs(tool)
        _fresh(target.parent)
        target.parent.mkdir(parents=True)
        size = path.stat().st_size
        at = int(size * 0.9)
        # (d): every response stalls at 90 % of the file (uv first asks for the tail with small Range
        # requests, so "request 1" would not be the body); the plan is lifted before the rerun.
        fault = f"stall={at}:120" if scenario == "d" else "throttle=40M"
        names, urls = self._serve([path], FaultPlan(parse_fault(fault)))
        cmd = self.tools.command(tool, urls, target, cache, reqs)
        proc = _start(cmd, log)
        deadline = time.monotonic() + 600
        while self.server.bytes_sent(names[0]) < at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if scenario == "d":
            time.sleep(self.kill_after)  # the client drains its socket buffer: it has had 90 % of the bytes
        os.killpg(proc.pid, signal.SIGKILL)
        _wait(proc)
        self.server.set_plan(names[0], FaultPlan())
        first = self.server.bytes_sent(names[0])
        n_first = len(self.server.requests_for(names[0]))
        left = _journal_left(cache) if tool.startswith("wheelstream") else ""
        # The rerun installs into a new target (no deletion: see _fresh); the cache is the killed run's.
        cmd = self.tools.command(tool, urls, target.with_name("target2"), cache, reqs)
        os.sync()
        time.sleep(0.2)
        t0 = time.perf_counter()
        proc = _start(cmd, log)
        rc, rss, cpu = _wait(proc)
        seconds = time.perf_counter() - t0
        self.server.wait_idle(5)
        records = self.server.requests_for(names[0])
        rerun_sent = sum(r.bytes_sent for r in records[n_first:])
        ranges = ",".join(r.range or "full" for r in records[n_first:])
        twice = first + rerun_sent - size
        note = f"1st run got {first / 1e6:.1f} MB{left}; rerun asked {ranges}; fetched twice {twice / 1e6:.2f} MB"
        if rc != 0:
            note += " " + log.read_text(errors="replace").strip().splitlines()[-1][:120]
        self._record(Run(scenario, tool, seconds, rss, rerun_sent, len(records) - n_first, rc, note, cpu))


# -- report -----------------------------------------------------------------------------------------------


def _summary(runs: list[Run]) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    keys = sorted({(r.scenario, r.tool) for r in runs})
    for key in keys:
        ok = [r for r in runs if (r.scenario, r.tool) == key and r.returncode == 0]
        if not ok:
            continue
        times = [r.seconds for r in ok]
        out[key] = {
            "min": min(times),
            "median": statistics.median(times),
            "cpu": statistics.median(r.cpu_seconds for r in ok),
            "rss": max(r.rss_mb for r in ok),
            "sent": statistics.median(r.bytes_sent for r in ok),
            "requests": statistics.median(r.requests for r in ok),
            "n": len(ok),
        }
    return out


def report(bench: Bench, args: argparse.Namespace, tools: Tools) -> str:
    summary = _summary(bench.runs)
    big_size = bench.big.stat().st_size
    mid_size = sum(p.stat().st_size for p in bench.mid)
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command_line()}`  ",
        (
            f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
            f"pip {PIP_VERSION}, uv {UV_VERSION}; wheelstream via "
            f"{'its CLI' if tools.ws_cli else 'python -c wheelstream.install(...)'}; "
            f"{time.strftime('%Y-%m-%d %H:%M')}.  "
        ),
        (
            f"Big wheel: `{bench.big.name}` ({big_size / 1e6:.1f} MB). Mid wheels: {len(bench.mid)} files, "
            f"{mid_size / 1e6:.1f} MB. Small wheels: {len(bench.many)} files, "
            f"{sum(p.stat().st_size for p in bench.many) / 1e6:.1f} MB.  "
        ),
        (
            "Server: wheelstream's FaultServer (sendfile) on 127.0.0.1. Times are wall seconds of the whole "
            f"command, min / median of {args.repeat} runs; ratio = median / wheelstream's median (lower is "
            "better for the row's tool); CPU = median user + system seconds of the command; RSS = peak of any run."
        ),
        "",
        "## Summary (the table `--docs` writes into README.md and docs/performance.md)",
        "",
        headline_table(bench, args, summary),
        "",
    ]
    for scenario in args.scenarios:
        rows = [(t, summary[(scenario, t)]) for t in args.tools if (scenario, t) in summary]
        if not rows:
            continue
        base = summary.get((scenario, "wheelstream"))
        lines += [f"## {SCENARIO_TITLES[scenario]}", ""]
        head = "| tool | min s | median s | × wheelstream | CPU s (median) | peak RSS MB |"
        sep = "|---|---:|---:|---:|---:|---:|"
        if scenario in ("c", "d", "e", "g"):
            head += " MB sent | requests |"
            sep += "---:|---:|"
        lines += [head, sep]
        for tool, s in rows:
            ratio = f"{s['median'] / base['median']:.2f}" if base else "–"
            row = (
                f"| {tool} | {s['min']:.2f} | {s['median']:.2f} | {ratio} | {s['cpu']:.2f} | {s['rss']:.0f} |"
            )
            if scenario in ("c", "d", "e", "g"):
                row += f" {s['sent'] / 1e6:.1f} | {s['requests']:.0f} |"
            lines.append(row)
        if scenario in ("c", "g"):
            lines.append("")
            lines.append(
                f"File size {big_size / 1e6:.1f} MB; MB sent counts every body byte of every request."
            )
        if scenario in ("d", "e"):
            notes = sorted({f"{r.tool}: {r.note}" for r in bench.runs if r.scenario == scenario})
            lines += ["", "Rerun details: " + "; ".join(notes)]
        failed = [r for r in bench.runs if r.scenario == scenario and r.returncode != 0]
        for r in failed:
            lines.append(f"\nFAILED {r.tool}: rc={r.returncode} {r.note}")
        lines.append("")
    lines += ["## Targets", "", "Issue 8's and issue #25's goals, where this run raced both sides.", ""]
    lines += [*targets(summary, big_size), ""]
    return "\n".join(lines)


def targets(summary: dict[tuple[str, str], dict[str, float]], big_size: int) -> list[str]:
    def med(s: str, t: str) -> float | None:
        v = summary.get((s, t))
        return v["median"] if v else None

    out = []
    ws_a, pip_a, uv_a = med("a", "wheelstream"), med("a", "pip"), med("a", "uv")

    def check(label: str, value: float | None, limit: float, unit: str = "×") -> None:
        if value is None:
            return
        verdict = "met" if value <= limit else f"MISSED by {value / limit:.2f}×"
        out.append(f"- {label}: {value:.2f}{unit} (target ≤ {limit}{unit}) — {verdict}")

    if ws_a and pip_a:
        check("(a) wheelstream / pip", ws_a / pip_a, 0.5)
    if ws_a and uv_a:
        check("(a) wheelstream / uv", ws_a / uv_a, 0.95)
    if ("a", "wheelstream") in summary and ("a", "uv") in summary:
        ws_cpu, uv_cpu = summary[("a", "wheelstream")]["cpu"], summary[("a", "uv")]["cpu"]
        if uv_cpu > 0:
            check("(a) wheelstream CPU / uv CPU (user + system)", ws_cpu / uv_cpu, 1.2)
    if ("a", "wheelstream") in summary:
        check("(a) wheelstream peak RSS", summary[("a", "wheelstream")]["rss"], 60, " MB")
    ws_b, uv_b = med("b", "wheelstream"), med("b", "uv")
    if ws_b and uv_b:
        check("(b) wheelstream / uv", ws_b / uv_b, 1.2)
    ws_f, uv_f = med("f", "wheelstream"), med("f", "uv")
    if ws_f and uv_f:
        check("(f) wheelstream / uv", ws_f / uv_f, 1.2)
    if ("c", "wheelstream") in summary:
        check("(c) bytes sent / file size", summary[("c", "wheelstream")]["sent"] / big_size, 1.02)
        if ws_a:
            check("(c) time / (a) time", summary[("c", "wheelstream")]["median"] / ws_a, 1.1)
    ws_g, one_g, four_g = med("g", "wheelstream"), med("g", "wheelstream-c1"), med("g", "wheelstream-c4")
    if four_g and one_g:
        check("(g) four connections / one", four_g / one_g, 0.33)
    if ws_g and one_g:
        check("(g) automatic / one connection", ws_g / one_g, 0.33)
        check("(g) bytes sent / file size", summary[("g", "wheelstream")]["sent"] / big_size, 1.01)
    uv_g = med("g", "uv")
    if ws_g and uv_g:
        check("(g) wheelstream / uv", ws_g / uv_g, 1.0)
    ws_d = med("d", "wheelstream")
    if ws_d and ws_a:
        check("(d) rerun / (a) cold", ws_d / ws_a, 0.2)
    hl_a = med("a", "wheelstream-hardlink")
    if hl_a and uv_a:
        out.append(
            f"- (a) with `--link-mode hardlink` (uv's default on Linux): {hl_a / uv_a:.2f}× uv, "
            f"{hl_a / pip_a:.2f}× pip"
            if pip_a
            else ""
        )
    return [line for line in out if line]


# -- the headline table of README.md and docs/performance.md ----------------------------------------------

DOCS_START = "<!-- bench-results -->"
DOCS_END = "<!-- /bench-results -->"
# The columns of the headline table: (tool, header); the optional ones only when some scenario has the tool.
HEADLINE_TOOLS = (
    ("pip", "pip"),
    ("uv", "uv"),
    ("wheelstream", "wheelstream"),
    ("wheelstream-hardlink", "wheelstream `--link-mode hardlink`"),
    ("wheelstream-c1", "wheelstream `--connections 1`"),
    ("wheelstream-c4", "wheelstream `--connections 4`"),
)
ALWAYS_SHOWN = ("pip", "uv", "wheelstream")
BYTES_MATTER = ("c", "d", "e", "g")  # their cells are "seconds / MB sent"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as the docs name files), else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def command_line() -> str:
    """This run's command as one could paste it from the repository's root."""
    return shlex.join(["python", _shown(Path(sys.argv[0])), *sys.argv[1:]])


def git_commit() -> str:
    """The checkout's short commit, ``+dirty`` when tracked files differ from it; ``unknown`` outside git.
    Read-only: ``--no-optional-locks`` keeps ``git status`` from refreshing (writing) the index."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *argv], cwd=REPO, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _wheel_description(path: Path) -> tuple[str, str]:
    """(short name, long description) of a wheel from its file name, size and number of files:
    ``("torch", "torch 2.13.0+cpu wheel (192 MB, 12,248 files)")``."""
    parts = path.name.removesuffix(".whl").split("-")
    name = parts[0]
    version = f" {parts[1]}" if len(parts) > 1 else ""
    try:
        with zipfile.ZipFile(path) as archive:
            files = f", {len(archive.infolist()):,} files"
    except (OSError, zipfile.BadZipFile):
        files = ""
    return name, f"{name}{version} wheel ({path.stat().st_size / 1e6:.0f} MB{files})"


def _row_labels(bench: Bench, args: argparse.Namespace) -> dict[str, str]:
    """Each scenario's row label, descriptive like the docs' own rows."""
    name, big = _wheel_description(bench.big)
    mid_mb = sum(p.stat().st_size for p in bench.mid) / 1e6
    many_mb = sum(p.stat().st_size for p in bench.many) / 1e6
    fetched = "time / MB sent"
    return {
        "a": f"(a) {big}, cold",
        "b": f"(b) {len(bench.mid)} real wheels ({mid_mb:.0f} MB), one command",
        "c": f"(c) {name}, connection cut at 90 %: {fetched}",
        "d": f"(d) {name}, SIGKILLed {args.kill_after:g} s into a stall at 90 %, **rerun alone**: {fetched}",
        "e": f"(e) {name}, SIGKILLed at 90 % while bytes flow (40 MB/s), **rerun alone**: {fetched}",
        "f": f"(f) {len(bench.many)} small real wheels ({many_mb:.0f} MB), one command",
        "g": f"(g) {name}, each connection paced at 10 MB/s: {fetched}",
    }


def headline_table(
    bench: Bench, args: argparse.Namespace, summary: dict[tuple[str, str], dict[str, float]]
) -> str:
    """One markdown table of the whole run: a row per scenario raced (in ``--scenarios``' order), a column per
    tool (pip, uv, wheelstream always; hardlink and the connection variants when some scenario has them) and
    wheelstream / uv; then (a)'s CPU seconds and peak RSS. Cells are median wall seconds (``seconds / MB sent``
    for (c), (d), (e), (g)); "–" where the tool did not race, "failed" where no run of it succeeded."""
    raced = {(r.scenario, r.tool) for r in bench.runs}
    columns = [
        (tool, header)
        for tool, header in HEADLINE_TOOLS
        if tool in ALWAYS_SHOWN or any(t == tool for _s, t in raced)
    ]
    labels = _row_labels(bench, args)

    def cell(scenario: str, tool: str, value: str) -> str:
        if (scenario, tool) in summary:
            return value
        return "failed" if (scenario, tool) in raced else "–"

    def ratio(scenario: str, key: str) -> str:
        ws, uv = summary.get((scenario, "wheelstream")), summary.get((scenario, "uv"))
        return f"{ws[key] / uv[key]:.2f}" if ws and uv and uv[key] > 0 else "–"

    lines = [
        "| scenario | " + " | ".join(header for _t, header in columns) + " | wheelstream / uv |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for scenario in args.scenarios:
        if not any(s == scenario for s, _t in raced):
            continue
        cells = []
        for tool, _header in columns:
            s = summary.get((scenario, tool), {})
            value = f"{s.get('median', 0):.2f}"
            if scenario in BYTES_MATTER:
                value += f" / {s.get('sent', 0) / 1e6:.1f}"
            cells.append(cell(scenario, tool, value))
        lines.append(f"| {labels[scenario]} | " + " | ".join(cells) + f" | {ratio(scenario, 'median')} |")
    if any(s == "a" for s, _t in raced):
        for label, key, fmt in (("(a) CPU s (user+sys)", "cpu", ".2f"), ("(a) peak RSS, MB", "rss", ".0f")):
            cells = [cell("a", t, format(summary.get(("a", t), {}).get(key, 0), fmt)) for t, _h in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio('a', key)} |")
    return "\n".join(lines)


def headline(bench: Bench, args: argparse.Namespace, summary: dict[tuple[str, str], dict[str, float]]) -> str:
    """The headline table and its one-line caption: what ``--docs`` writes between the markers."""
    runs = f"{args.repeat} run{'s' if args.repeat != 1 else ''}"
    caption = (
        f"Medians of {runs} in seconds, `{command_line()}`, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"commit {git_commit()}, {os.cpu_count()} cores, pip {PIP_VERSION} / uv {UV_VERSION}; "
        f"full table: {_shown(args.results)}."
    )
    return headline_table(bench, args, summary) + "\n\n" + caption + "\n"


def _read_exact(path: Path) -> str:
    """The file's text with its line endings as they are (no newline translation: CRLF stays CRLF)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _marked(text: str) -> tuple[int, int] | None:
    """Line indexes of the start and end markers in ``text`` (``keepends`` lines), None without both."""
    lines = [line.strip() for line in text.splitlines()]
    if DOCS_START not in lines:
        return None
    start = lines.index(DOCS_START)
    if DOCS_END not in lines[start + 1 :]:
        return None
    return start, lines.index(DOCS_END, start + 1)


def check_docs(paths: list[Path]) -> str | None:
    """Why ``--docs`` cannot be written into one of ``paths`` (checked before the race), or None."""
    for path in paths:
        try:
            text = _read_exact(path)
        except (OSError, UnicodeDecodeError) as e:
            return f"--docs {path}: cannot read it ({e})"
        if _marked(text) is None:
            return f"--docs {path}: no line {DOCS_START} followed by a line {DOCS_END} to put the results between"
    return None


def write_docs(path: Path, content: str) -> None:
    """Replace what lies between the markers in ``path`` by ``content``; every other byte stays as it was."""
    text = _read_exact(path)
    marked = _marked(text)
    if marked is None:
        raise SystemExit(f"--docs {path}: the markers {DOCS_START} / {DOCS_END} are gone")
    start, end = marked
    lines = text.splitlines(keepends=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(lines[: start + 1]) + content + "".join(lines[end:]))


def chart(bench: Bench, args: argparse.Namespace, venv: Path, path: Path) -> None:
    summary = _summary(bench.runs)
    data = {
        "titles": {s: SCENARIO_TITLES[s] for s in args.scenarios},
        "tools": list(args.tools),
        "values": {f"{s}|{t}": v["median"] for (s, t), v in summary.items()},
    }
    spec = args.out / "chart.json"
    spec.write_text(json.dumps(data))
    subprocess.run([str(venv / "bin" / "python"), str(HERE / "chart.py"), str(spec), str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios", default="a,b,c,d,e,f,g", help="comma-separated subset of a,b,c,d,e,f,g"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool in each scenario (default 3)"
    )
    parser.add_argument(
        "--tools", default=",".join(ALL_TOOLS), help="comma-separated subset of " + ",".join(ALL_TOOLS)
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=HERE / "results.md",
        help="the full report (default benchmarks/results.md); every run goes next to it, as .json",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=REPO / "docs" / "bench.png",
        help="the bar chart (default docs/bench.png)",
    )
    parser.add_argument(
        "--no-chart", action="store_true", help="no chart (and no peers venv if no peer races)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--settle",
        type=int,
        default=60,
        help="seconds to wait after deleting old run dirs before the first run (ext4 inode reuse)",
    )
    parser.add_argument(
        "--big",
        type=Path,
        help="the big wheel for (a), (c), (d), (e), (g) (default: torch from "
        "/opt/wheels when present, else a generated ~200 MB wheel)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where run dirs go (deleted at the end)")
    parser.add_argument(
        "--kill-after", type=float, default=1.0, help="(d): seconds into the stall before the kill"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another commit: its wheelstream races too, as wheelstream-baseline",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help=f"after the run, replace what lies between the lines {DOCS_START} and {DOCS_END} in FILE by the "
        "headline table and its caption (repeatable; both markers are checked before the race starts)",
    )
    args = parser.parse_args()
    problem = check_docs(args.docs)
    if problem is not None:
        parser.error(problem)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.tools = [t for t in args.tools.split(",") if t]
    if args.baseline is None:
        args.tools = [t for t in args.tools if t != "wheelstream-baseline"]
    elif "wheelstream-baseline" not in args.tools:
        args.tools.append("wheelstream-baseline")
    for tool in args.tools:
        if tool not in ALL_TOOLS:
            parser.error(f"unknown tool {tool}")

    runs = args.out / "run"
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(runs, ignore_errors=True)
    if runs.exists() or shutil.disk_usage(args.out).free < 25e9:
        print(
            "warning: under 25 GB free; a scenario's run dirs are kept until it ends (~1.4 GB per big-wheel run)"
        )
    # The peers' venv (from the registry) only when a peer races, (b)'s wheels are fetched or a chart is drawn.
    registry = {"b", "f"} & set(args.scenarios)  # the pinned real wheels come from the registry
    peers = {"pip", "uv"} & set(args.tools) or registry or not args.no_chart
    venv = peers_venv() if peers else None
    assert venv is not None or not registry
    bench = Bench(
        big=big_wheel(args.big),
        mid=mid_wheels(venv) if venv and "b" in args.scenarios else [],
        many=many_wheels(venv) if venv and "f" in args.scenarios else [],
    )
    tools = Tools(venv, args.baseline)
    compile_wheelstream()
    if args.baseline is not None:
        compile_wheelstream(args.baseline)
    print(
        f"big wheel {bench.big} ({bench.big.stat().st_size / 1e6:.0f} MB); wheelstream "
        f"{'CLI' if tools.ws_cli else 'python -c'}",
        flush=True,
    )
    time.sleep(args.settle)  # freed inodes of an earlier bench must age out first (see _fresh)
    with FaultServer() as server:
        runner = Runner(bench, tools, server, args.verbose, runs, args.kill_after)
        for number, scenario in enumerate(args.scenarios):
            if number:
                # A scenario's run dirs go before the next one (all seven would need ~80 GB), which then waits
                # for the freed inodes to age out, as the first one did (``_fresh``).
                shutil.rmtree(runs, ignore_errors=True)
                time.sleep(args.settle)
            print(SCENARIO_TITLES[scenario], flush=True)
            for _ in range(args.repeat):
                for tool in args.tools:  # interleaved: drift of the machine hits every tool alike
                    if tool in CONNECTION_TOOLS and scenario != "g":
                        continue  # one connection differs from the default only where connections matter
                    if scenario == "a":
                        runner.cold("a", tool, [bench.big])
                    elif scenario == "b":
                        runner.cold("b", tool, bench.mid)
                    elif scenario == "f":
                        runner.cold("f", tool, bench.many)
                    elif scenario == "c":
                        runner.cold("c", tool, [bench.big], FaultPlan(parse_fault("cut=90%@1")))
                    elif scenario in ("d", "e"):
                        runner.killed(scenario, tool, bench.big)
                    elif scenario == "g":
                        runner.cold("g", tool, [bench.big], FaultPlan(parse_fault(PER_CONNECTION)))
    shutil.rmtree(runs, ignore_errors=True)
    text = report(bench, args, tools)
    args.results.write_text(text)
    (args.results.with_suffix(".json")).write_text(json.dumps([asdict(r) for r in bench.runs], indent=1))
    print(text)
    if args.docs:
        content = headline(bench, args, _summary(bench.runs))
        for path in args.docs:
            write_docs(path, content)
            print(f"results table written into {path}")
    if venv is not None and not args.no_chart:
        chart(bench, args, venv, args.chart)
        print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
