"""``make bench``'s harness, end to end on a small wheel: wheelstream only (the peers come from the registry).

Times are not asserted (they are the benchmark's output); what is asserted is what the harness must get
right for its figures to mean anything: every run succeeded, (c)'s cut was resumed without fetching the file
twice, (d)'s rerun was a resume that fetched only the tail, and the report says so.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from fixtures.wellformed import big_text, make_wheel, write_wheel

ROOT = Path(__file__).resolve().parent.parent


def _small_big_wheel(directory: Path) -> Path:
    """A few MB shaped like a big wheel: many small modules, then a few large libraries."""
    text = big_text(2 << 20)
    files = {f"bench/pkg{i % 7}/mod{i}.py": text[i * 4099 : i * 4099 + 2000 + 37 * i] for i in range(300)}
    rng = random.Random(5)
    files.update({f"bench/lib/lib{i}.so": rng.randbytes(2 << 20) + text[: 1 << 20] for i in range(3)})
    return write_wheel(directory, make_wheel(files, name="bench"), name="bench")


def test_the_harness_races_cut_and_kill_scenarios_and_reports_the_resumes(tmp_path: Path) -> None:
    wheel = _small_big_wheel(tmp_path)
    results = tmp_path / "results.md"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--tools",
            "wheelstream",
            "--scenarios",
            "a,c,d",
            "--repeat",
            "1",
            "--settle",
            "0",
            "--no-chart",
            "--big",
            str(wheel),
            "--out",
            str(tmp_path / "out"),
            "--kill-after",
            "3",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    runs = {r["scenario"]: r for r in json.loads(results.with_suffix(".json").read_text())}
    assert sorted(runs) == ["a", "c", "d"]
    assert all(r["returncode"] == 0 and r["tool"] == "wheelstream" for r in runs.values()), runs
    size = wheel.stat().st_size
    assert runs["a"]["bytes_sent"] == size
    assert runs["a"]["requests"] == 1
    # (c): the first response is cut at 90 %; the second asks for the rest only
    assert runs["c"]["requests"] == 2
    assert size <= runs["c"]["bytes_sent"] <= 1.02 * size
    # (d): killed 3 s into a stall at 90 %, which leaves the idle checkpoint time to sync even on a busy disk
    # (the benchmark's 1 s is for its own runs); the rerun resumes with a Range request. How far that
    # checkpoint got is test_download's business, not the harness's.
    assert 0 < runs["d"]["bytes_sent"] < size, runs["d"]
    assert runs["d"]["requests"] == 1, runs["d"]
    assert "bytes=" in runs["d"]["note"], runs["d"]["note"]
    report = results.read_text()
    assert "(c) bytes sent / file size: 1.00×" in report
    assert "## Targets (issue 8)" in report
    assert not (tmp_path / "out" / "run").exists()  # run dirs are removed at the end
