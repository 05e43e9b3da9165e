"""``make bench``'s harness, end to end on a small wheel: wheelstream only (the peers come from the registry).

Times are not asserted (they are the benchmark's output); what is asserted is what the harness must get
right for its figures to mean anything: every run succeeded, (c)'s cut was resumed without fetching the file
twice, (d)'s rerun was a resume that fetched only the tail, every run's CPU time was taken, the report says so,
and ``--docs`` rewrites exactly the marked part of a document (and refuses, before any race, one without markers).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.wellformed import big_text, make_wheel, write_wheel

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = ROOT / "benchmarks" / "run.py"
BEFORE = "# A document\r\n\nText before the results, kept byte for byte.\n\n<!-- bench-results -->\n"
STALE = "| scenario | old |\n|---|---:|\n| (a) stale row | 9.99 |\n\nstale caption\n"
AFTER = "<!-- /bench-results -->\n\nText after the results — also kept.\n"


def _small_big_wheel(directory: Path) -> Path:
    """A few MB shaped like a big wheel: many small modules, then a few large libraries."""
    text = big_text(2 << 20)
    files = {f"bench/pkg{i % 7}/mod{i}.py": text[i * 4099 : i * 4099 + 2000 + 37 * i] for i in range(300)}
    rng = random.Random(5)
    files.update({f"bench/lib/lib{i}.so": rng.randbytes(2 << 20) + text[: 1 << 20] for i in range(3)})
    return write_wheel(directory, make_wheel(files, name="bench"), name="bench")


def _script(
    script: Path, *args: str, cwd: Path, fails: bool = False, path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """A benchmark script run as ``python SCRIPT ARGS`` is run (``path``: a directory put first on its PATH), its
    exit checked: 0, or not 0 if it ``fails``."""
    env = None if path is None else {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=env,
    )
    assert (run.returncode != 0) == fails, run.stdout + run.stderr
    return run


def test_the_harness_races_cut_and_kill_scenarios_and_reports_the_resumes(tmp_path: Path) -> None:
    wheel = _small_big_wheel(tmp_path)
    results = tmp_path / "results.md"
    doc = tmp_path / "doc.md"
    doc.write_bytes((BEFORE + STALE + AFTER).encode())
    _script(
        RUN_PY,
        *("--tools", "wheelstream", "--scenarios", "a,c,d", "--repeat", "1", "--settle", "0", "--no-chart"),
        *("--big", str(wheel), "--out", str(tmp_path / "out"), "--kill-after", "3"),
        *("--results", str(results), "--docs", str(doc)),
        cwd=tmp_path,
    )
    runs = {r["scenario"]: r for r in json.loads(results.with_suffix(".json").read_text())}
    assert sorted(runs) == ["a", "c", "d"]
    assert all(r["returncode"] == 0 and r["tool"] == "wheelstream" for r in runs.values()), runs
    assert all(r["cpu_seconds"] > 0 for r in runs.values()), runs  # wait4's user + system time of the child
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
    # ... and says what the killed run left: the journal's C and D (a C far behind D is a slow rerun)
    left = re.search(r"\(left C ([\d.]+) MB, D ([\d.]+) MB(?:, pending C' [\d.]+ MB)?\)", runs["d"]["note"])
    assert left is not None, runs["d"]["note"]
    assert float(left[1]) <= float(left[2]) <= size / 1e6
    report = results.read_text()
    assert "(c) bytes sent / file size: 1.00×" in report
    assert "## Targets" in report
    assert "CPU s (median)" in report
    # --docs: the text outside the markers is untouched, byte for byte; between them, the headline table
    written = doc.read_bytes().decode()
    assert written.startswith(BEFORE), written
    assert written.endswith(AFTER), written
    table = written[len(BEFORE) : -len(AFTER)]
    assert "stale" not in table, table
    rows = [line for line in table.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header[:4] == ["scenario", "pip", "uv", "wheelstream"], header
    assert header[-1] == "wheelstream / uv", header
    cells = {
        row.split("|")[1].strip(): [c.strip() for c in row.strip("|").split("|")][1:] for row in rows[2:]
    }
    column = header.index("wheelstream") - 1
    number = r"\d+\.\d+"
    labels = list(cells)  # one row per scenario in --scenarios' order, then (a)'s CPU and RSS rows
    assert [label.split()[0] for label in labels] == ["(a)", "(c)", "(d)", "(a)", "(a)"], labels
    assert labels[3:] == ["(a) CPU s (user+sys)", "(a) peak RSS, MB"], labels
    for label, shape in zip(
        labels[:3], (f"^{number}$", f"^{number} / {number}$", f"^{number} / {number}$"), strict=True
    ):
        assert re.match(shape, cells[label][column]), (label, cells[label])
    assert re.match(f"^{number}$", cells["(a) CPU s (user+sys)"][column]), cells
    assert re.match(r"^\d+$", cells["(a) peak RSS, MB"][column]), cells
    assert cells["(a) CPU s (user+sys)"][0] == "–"  # pip did not race
    assert "Medians of 1 run in seconds, `python " in table, table
    assert "cores, pip " in table, table
    assert not (tmp_path / "out" / "run").exists()  # run dirs are removed at the end


def test_docs_without_markers_is_refused_before_any_race(tmp_path: Path) -> None:
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\n<!-- bench-results -->\nno end marker\n")
    start = time.monotonic()
    run = _script(
        RUN_PY, "--tools", "wheelstream", "--scenarios", "a", "--docs", str(doc), cwd=tmp_path, fails=True
    )
    assert str(doc) in run.stderr, run.stderr
    assert "<!-- /bench-results -->" in run.stderr, run.stderr
    assert "big wheel" not in run.stdout  # refused at argument time: no wheel generated, nothing raced
    assert time.monotonic() - start < 30
    assert doc.read_text() == "# Notes\n\n<!-- bench-results -->\nno end marker\n"


def test_make_bench_docs_carry_the_markers() -> None:
    """``make bench`` passes ``--docs README.md --docs docs/performance.md``: each needs both marker lines."""
    for doc in (ROOT / "README.md", ROOT / "docs" / "performance.md"):
        lines = [line.strip() for line in doc.read_text().splitlines()]
        assert lines.count("<!-- bench-results -->") == 1, doc
        assert lines.count("<!-- /bench-results -->") == 1, doc
        assert lines.index("<!-- bench-results -->") < lines.index("<!-- /bench-results -->"), doc
    assert "--docs README.md --docs docs/performance.md" in (ROOT / "Makefile").read_text()


def test_the_pending_rerun_harness_kills_at_a_staging_sync_and_reruns_both_ways(tmp_path: Path) -> None:
    """``benchmarks/pending_rerun.py`` on a small wheel: the install is killed (at the kill point, or in the
    stall), and both reruns — with the pending record and without it — succeed (the script stops on a failed
    rerun). Its row names where the kill left the journal; the times are its output, not asserted."""
    wheel = _small_big_wheel(tmp_path)
    script = ROOT / "benchmarks" / "pending_rerun.py"
    run = _script(
        script,
        "--wheel",
        str(wheel),
        "--kills",
        "1",
        "--grace",
        "2",
        "--out",
        str(tmp_path / "out"),
        cwd=ROOT,
    )
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1, run.stdout
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] in ("kill point", "outside, in the stall"), cells
    checkpoint, durable = (float(x) for x in cells[2].split(" / "))
    assert 0 <= checkpoint <= durable <= wheel.stat().st_size / 1e6
    assert cells[3] == "none" or cells[3] == "stale (ignored)" or float(cells[3]) > checkpoint, cells
    for rerun in cells[4:6]:
        seconds, cpu = (float(x) for x in rerun.split(" / "))
        assert seconds > 0, cells
        assert cpu > 0, cells
    assert not list((tmp_path / "out").iterdir())  # the run dirs are gone


AB_PY = ROOT / "benchmarks" / "ab.py"


def _ab(
    tmp_path: Path, *args: str, path: Path | None = None, fails: bool = False
) -> subprocess.CompletedProcess[str]:
    """``benchmarks/ab.py`` on one small wheel."""
    wheel = write_wheel(tmp_path, make_wheel({"demo/__init__.py": b"x = 1\n"}, name="demo"), name="demo")
    return _script(AB_PY, *args, "--settle", "0", "--wheels", str(wheel), cwd=ROOT, path=path, fails=fails)


def _ab_rows(tmp_path: Path, *args: str, path: Path | None = None) -> dict[str, list[str]]:
    """``benchmarks/ab.py`` on one small wheel, its summary rows by variant label."""
    run = _ab(tmp_path, *args, path=path)
    summary = run.stdout.split("interleaved:\n", 1)[1].splitlines()
    return {line.split()[0]: line.split()[1:] for line in summary}


def test_the_ab_harness_times_each_variant_with_its_patched_constants(tmp_path: Path) -> None:
    """Two variants take turns; a patched constant that does not exist stops the run (no silent no-op)."""
    rows = _ab_rows(tmp_path, "--runs", "2", "base=.", "one-writer=.:unpack._writers._WRITERS=1")
    assert sorted(rows) == ["base", "one-writer"]
    for cells in rows.values():
        assert cells[:2] == ["wall", "median"], cells
        assert float(cells[2]) > 0, cells
    bad = _ab(tmp_path, "--runs", "1", "typo=.:unpack._writers._WRITRES=1", fails=True)
    assert "no _WRITRES in wheelstream.unpack._writers" in bad.stdout + bad.stderr


def test_the_ab_harness_compiles_a_fresh_checkout_before_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout without bytecode (as ``git worktree add`` makes one) would pay compiling every module in its
    first run, in time and in instructions: the harness compiles each variant's package first. (The installs
    here may not write bytecode themselves, so only the harness can have made it.)"""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    checkout = tmp_path / "fresh"
    shutil.copytree(
        ROOT / "wheelstream", checkout / "wheelstream", ignore=shutil.ignore_patterns("__pycache__")
    )
    rows = _ab_rows(tmp_path, "--runs", "1", f"fresh={checkout}")
    assert list(rows) == ["fresh"]
    assert (checkout / "wheelstream" / "unpack" / "__pycache__").is_dir()


# Stands in for valgrind: drops the two callgrind options, runs the install, and reports a count the way callgrind
# does — one that says whether the install ran on threads, as ``--instructions`` asks (a forked worker would
# inherit callgrind's counters).
_FAKE_VALGRIND = """#!/bin/sh
shift 2
"$@"
status=$?
if [ "$WHEELSTREAM_PROCESSES" = 0 ]; then count=123,456,789; else count=1; fi
echo "==$$== I   refs:      $count" >&2
exit $status
"""


def test_the_ab_harness_counts_instructions_with_what_callgrind_reports(tmp_path: Path) -> None:
    """``--instructions``: each install runs under ``valgrind --tool=callgrind``, on threads, and its count is
    reported in millions — here through a stand-in that prints callgrind's summary line (the real one takes
    ~12 s: ``test_the_ab_harness_counts_instructions_under_callgrind``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "valgrind").write_text(_FAKE_VALGRIND)
    (bin_dir / "valgrind").chmod(0o755)
    rows = _ab_rows(tmp_path, "--instructions", "--runs", "2", "old=.", "new=.", path=bin_dir)
    for label in ("old", "new"):
        assert rows[label] == [
            "instructions",
            "median",
            "123.5",
            "M",
            "min",
            "123.5",
            "M",
            "max",
            "123.5",
            "M",
        ]


@pytest.mark.skipif(
    not os.environ.get("WHEELSTREAM_BENCH") or shutil.which("valgrind") is None,
    reason="set WHEELSTREAM_BENCH=1 (and install valgrind) to count under callgrind itself: ~12 s",
)
def test_the_ab_harness_counts_instructions_under_callgrind(tmp_path: Path) -> None:
    """``--instructions``: one install under callgrind, reported in millions of instructions (a Python start-up
    alone is ~90 M, so an install is more)."""
    rows = _ab_rows(tmp_path, "--instructions", "--runs", "1", "new=.")
    assert rows["new"][:2] == ["instructions", "median"], rows
    assert 100 < float(rows["new"][2]) < 10_000, rows


def test_the_client_body_harness_downloads_the_whole_wheel_each_way(tmp_path: Path) -> None:
    """Each variant downloads the wheel whole and prints its figures; the variant it ran is the one it names."""
    wheel = _small_big_wheel(tmp_path)
    for args, label in (
        ((), "pass-through, recv 1048576 B"),
        (("--no-pass-through", "--read-bytes", "65536"), "h11's buffer, recv 65536 B"),
    ):
        run = _script(ROOT / "benchmarks" / "client_body.py", str(wheel), "--runs", "2", *args, cwd=tmp_path)
        sizes = {line.split()[0] for line in run.stdout.splitlines() if line.startswith("  ")}
        assert sizes == {f"{wheel.stat().st_size / 1e6:.1f}"}, run.stdout
        assert run.stdout.splitlines()[-1].startswith(f"{label}, 2 runs: CPU median "), run.stdout
