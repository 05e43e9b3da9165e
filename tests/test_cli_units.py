"""In-process units of the CLI: requirements-file parsing, sizes, and the progress UI's bookkeeping."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from rich.console import Console

from wheelstream._progress import Progress, human_size
from wheelstream.cli._options import parse_size
from wheelstream.cli._process import GC_THRESHOLDS, rare_gc
from wheelstream.cli._requirements import parse_requirements
from wheelstream.cli._ui import ConsoleProgress
from wheelstream.errors import UsageError

H1, H2 = "a" * 64, "b" * 64


def test_requirements_subset(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_text("local-1.0-py3-none-any.whl\n")
    req = tmp_path / "r.txt"
    req.write_text(
        "# header comment\n"
        "\n"
        f"https://h/x-1.0-py3-none-any.whl#sha256={H1}   # trailing comment, fragment kept\n"
        "six==1.16.0 \\\n"
        f"  --hash=sha256:{H1} \\\n"
        f"  --hash sha256:{H2}\n"
        'old==1.0 ; python_version < "3"\n'
        'new==2.0 ; python_version >= "3"\n'
        "-r sub/more.txt\n"
        "-i http://idx/simple/\n"
    )
    reqs = parse_requirements(req)
    assert reqs.sources == [
        f"https://h/x-1.0-py3-none-any.whl#sha256={H1}",
        "six==1.16.0",
        "new==2.0",
        str(tmp_path / "sub" / "local-1.0-py3-none-any.whl"),
    ]
    assert reqs.hashes == {"six==1.16.0": [H1, H2]}
    assert reqs.index_url == "http://idx/simple/"


def test_requirement_markers_are_evaluated_for_the_target_interpreter_and_only_when_there_are_any(
    tmp_path: Path,
) -> None:
    req = tmp_path / "r.txt"
    req.write_text('old==1.0 ; python_version < "3.12"\nnew==2.0 ; python_version >= "3.12"\n')
    asked: list[str] = []

    def target() -> dict[str, str]:
        asked.append("probe")
        here = {key: str(value) for key, value in default_environment().items()}
        return {**here, "python_version": "3.12", "python_full_version": "3.12.1"}

    assert parse_requirements(req, markers=target).sources == ["new==2.0"]
    assert asked == [
        "probe",
        "probe",
    ]  # once a line has a marker (the CLI's probe of the interpreter is cached)
    plain = tmp_path / "plain.txt"
    plain.write_text("six==1.16.0\n")
    asked.clear()
    assert parse_requirements(plain, markers=target).sources == ["six==1.16.0"]
    assert asked == []  # no marker: no probe of another interpreter


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--no-binary :all:", "unsupported option '--no-binary'"),
        ("--pre=yes", "unsupported option '--pre=yes'"),
        ("six==1.0 --hash=md5:00", "--hash must be sha256"),
        ("--hash=sha256:" + H1, "--hash without a requirement"),
        ("six==1.0 --hash", "--hash needs a value"),
        ("six==1.0 ; python_version <<< 3", "r.txt:1"),
    ],
)
def test_requirements_errors_name_file_and_line(line: str, message: str, tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text(line + "\n")
    with pytest.raises(UsageError, match=message):
        parse_requirements(req)


def test_pips_options_that_always_hold_here_are_accepted_and_the_index_options_read(tmp_path: Path) -> None:
    """pip-compile and ``uv pip compile`` write these; each line was refused ("unsupported option"), and with it
    the whole file."""
    (tmp_path / "wheels").mkdir()
    req = tmp_path / "r.txt"
    req.write_text(
        "--only-binary :all:\n--only-binary=numpy\n--prefer-binary\n--pre\n--require-hashes\n--trusted-host x\n"
        "--extra-index-url https://x.example/simple/\n--extra-index-url=https://y.example/simple/\n"
        "-f wheels\n--find-links=https://z.example/links/\n--no-index\nsix==1.16.0\n"
    )
    reqs = parse_requirements(req)
    assert reqs.sources == ["six==1.16.0"]
    assert reqs.require_hashes
    assert reqs.no_index
    assert reqs.extra_index_urls == ["https://x.example/simple/", "https://y.example/simple/"]
    assert reqs.find_links == [str(tmp_path / "wheels"), "https://z.example/links/"]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("\ufeffsix==1.16.0\n# c\n".encode(), "a UTF-8 BOM"),
        ("six==1.16.0\n# c\n".encode("utf-16"), "UTF-16 with its BOM (PowerShell's >)"),
        ("# -*- coding: latin-1 -*-\nsix==1.16.0 # caf\xe9\n".encode("latin-1"), "a PEP 263 coding line"),
    ],
)
def test_a_file_is_decoded_as_pip_decodes_it(data: bytes, encoding: str, tmp_path: Path) -> None:
    """The BOM stayed on the first line ("\ufeffsix==…: not a NAME==VERSION"); anything not UTF-8 was a
    traceback."""
    req = tmp_path / "r.txt"
    req.write_bytes(data)
    assert parse_requirements(req).sources == ["six==1.16.0"], encoding


def test_a_file_that_is_not_utf8_without_a_coding_line_is_one_usage_line(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_bytes("six==1.16.0 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"r.txt: not utf-8 text \(byte 17\)"):
        parse_requirements(req)


def test_environment_variables_are_expanded_as_pip_expands_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WS_HOST", "h.example")
    monkeypatch.setenv("WS_VER", "1.16.0")
    monkeypatch.delenv("WS_UNSET", raising=False)
    monkeypatch.setenv("ws_lower", "no")
    req = tmp_path / "r.txt"
    req.write_text(
        "six==${WS_VER}\n"
        "https://${WS_HOST}/x-1.0-py3-none-any.whl\n"
        "https://${WS_UNSET}/y-1.0-py3-none-any.whl\n"  # unset: left as written, as pip leaves it
        "https://$WS_HOST/${ws_lower}/z-1.0-py3-none-any.whl\n"  # only ${UPPER_CASE} is pip's form
    )
    assert parse_requirements(req).sources == [
        "six==1.16.0",
        "https://h.example/x-1.0-py3-none-any.whl",
        "https://${WS_UNSET}/y-1.0-py3-none-any.whl",
        "https://$WS_HOST/${ws_lower}/z-1.0-py3-none-any.whl",
    ]


def test_a_continued_comment_swallows_the_next_line_and_continuations_join_without_a_space(
    tmp_path: Path,
) -> None:
    """pip joins continuation lines before it removes comments: a comment ending in ``\\`` takes the next
    line with it, and ``six==1.\\`` + ``16.0`` is ``six==1.16.0``."""
    req = tmp_path / "r.txt"
    req.write_text(
        "six==1.16.0 # pinned \\\nidna==3.20\nsix2==1.\\\n16.0\n# whole-line comment \\\nnext==1.0\n"
    )
    assert parse_requirements(req).sources == ["six==1.16.0", "six2==1.16.0", "next==1.0"]


def test_a_url_takes_its_marker_after_a_semicolon_and_a_blank_as_in_pip(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text(
        'https://h/a-1.0-py3-none-any.whl; python_version < "3"\n'
        'https://h/b-1.0-py3-none-any.whl; python_version >= "3"\n'
        'https://h/c;v=1/c-1.0-py3-none-any.whl ; python_version >= "3"\n'  # a ";" inside the URL is the URL's
    )
    assert parse_requirements(req).sources == [
        "https://h/b-1.0-py3-none-any.whl",
        "https://h/c;v=1/c-1.0-py3-none-any.whl",
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('six==1.16.0 ; python_version ~= "3"\n', r"r.txt:1: the marker cannot be evaluated"),
        ("six>=1.0\n", r"r.txt:1: 'six>=1.0' is not a wheel URL, path, NAME @ URL or NAME==VERSION"),
        ("six\n", r"r.txt:1: 'six' is not a wheel URL"),
        (
            "six @ https://h/other-1.0-py3-none-any.whl\n",
            r"r.txt:1: six @ … names 'six', but the wheel other-1.0",
        ),
        ("six @ git+https://h/six.git@1.0\n", r"r.txt:1: git\+https://h/six.git@1.0 is not a wheel"),
        (
            f"six==1.0 --hash=sha256:{H1}\nsix==1.0 --hash=sha256:{H2}\n",
            r"r.txt:2: six==1.0: its --hash values",
        ),
    ],
)
def test_what_a_file_cannot_mean_is_said_with_its_file_and_line(
    lines: str, message: str, tmp_path: Path
) -> None:
    req = tmp_path / "r.txt"
    req.write_text(lines)
    with pytest.raises(UsageError, match=message):
        parse_requirements(req)


def test_a_pin_on_two_lines_allows_only_what_both_allow(tmp_path: Path) -> None:
    """pip intersects the hashes of a requirement named twice: a second line cannot widen the first's pin."""
    req = tmp_path / "r.txt"
    req.write_text(f"six==1.0 --hash=sha256:{H1} --hash=sha256:{H2}\nsix==1.0 --hash=sha256:{H2}\nsix==1.0\n")
    assert parse_requirements(req).hashes == {"six==1.0": [H2]}


def test_nesting_is_refused_for_a_cycle_not_for_a_long_chain(tmp_path: Path) -> None:
    for i in range(12):  # a chain pip follows: 12 files deep was "requirement files nest too deeply"
        (tmp_path / f"f{i}.txt").write_text(f"-r f{i + 1}.txt\n")
    (tmp_path / "f12.txt").write_text("six==1.16.0\n")
    assert parse_requirements(tmp_path / "f0.txt").sources == ["six==1.16.0"]
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(UsageError, match=r"a.txt references itself \(through a.txt -> b.txt\)"):
        parse_requirements(tmp_path / "a.txt")


def test_a_file_url_without_slashes_is_a_url_not_a_path_below_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    req = tmp_path / "sub" / "r.txt"
    req.write_text("file:/abs/x-1.0-py3-none-any.whl\n")
    assert parse_requirements(req).sources == ["file:/abs/x-1.0-py3-none-any.whl"]


def test_sizes() -> None:
    assert parse_size("16GiB") == parse_size("16G") == 16 << 30
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1.5k") == 1536
    assert parse_size("42") == 42
    with pytest.raises(ValueError, match="not a size: 'lots'"):
        parse_size("lots")


def _ui(quiet: bool = False) -> tuple[ConsoleProgress, io.StringIO]:
    buf = io.StringIO()
    return ConsoleProgress(Console(file=buf, width=200, force_terminal=False), bars=True, quiet=quiet), buf


def test_without_a_terminal_there_are_no_bars_but_notes_print() -> None:
    ui, buf = _ui()
    assert not ui.bars
    ui(Progress("a.whl", 100, 1000, 1, None))
    ui(Progress("a.whl", 612, 1000, 2, 612, message="resumed at 612.0 MB (saved 612.0 MB)"))
    ui(Progress("b.whl", 0, None, 0, None, message="restarting from zero: the file changed on the server"))
    assert buf.getvalue().splitlines() == [
        "a.whl: resumed at 612.0 MB (saved 612.0 MB)",
        "b.whl: restarting from zero: the file changed on the server",
    ]
    quiet, qbuf = _ui(quiet=True)
    quiet(Progress("a.whl", 612, 1000, 2, 612, message="resumed at …"))
    quiet.warn("still shown")
    assert qbuf.getvalue() == "warning: still shown\n"


def test_a_retry_note_is_coloured_as_trouble_not_as_a_resume() -> None:
    """A retry printed green, like "resumed at"; it is yellow, like "restarting from zero"."""
    buf = io.StringIO()
    ui = ConsoleProgress(Console(file=buf, width=200, force_terminal=True), bars=False, quiet=False)
    notes = {
        "resumed at 612.0 MB (saved 612.0 MB)": "32",  # green
        "from cache": "32",
        "connection reset; retry 1 of 5 in 0.5 s": "33",  # yellow
        "restarting from zero: the file changed on the server": "33",
        "server ignored Range: reading the first 12.0 MB again, nothing re-extracted": "33",
        "unpacking the cached wheel": None,  # neither
    }
    for message, colour in notes.items():
        buf.seek(0)
        buf.truncate()
        ui(Progress("a.whl", 0, None, 0, None, message=message))
        printed = buf.getvalue()
        assert f"a.whl: {message}" in printed, printed
        if colour is None:
            assert "\x1b[3" not in printed, printed
        else:
            assert f"\x1b[{colour}m" in printed, printed


def test_interrupted_message_counts_unfinished_wheels() -> None:
    ui, _ = _ui()
    assert ui.interrupted_message() == "interrupted before any download started"
    mb = 1_000_000
    ui(Progress("a.whl", 3 * mb, 10 * mb, 5, None))
    ui(Progress("b.whl", 2 * mb, 2 * mb, 5, None, finished=True))
    ui(Progress("c.whl", 1 * mb, 4 * mb, 5, None))
    assert ui.interrupted_message() == (
        "a.whl and 1 more: interrupted at 4.0 MB of 14.0 MB — run the same command again to resume"
    )
    ui(Progress("a.whl", 10 * mb, 10 * mb, 5, None, finished=True))
    assert ui.interrupted_message() == (
        "c.whl: interrupted at 1.0 MB of 4.0 MB — run the same command again to resume"
    )
    ui(Progress("d.whl", 0, None, 0, None))
    assert ui.interrupted_message().startswith("c.whl and 1 more: interrupted at 1.0 MB of ? —")


def test_callback_is_safe_from_many_threads() -> None:
    ui, _ = _ui()

    def worker(name: str) -> None:
        for i in range(1, 2001):
            ui(Progress(name, i, 2000, i // 10, None, finished=i == 2000))

    threads = [threading.Thread(target=worker, args=(f"w{i}.whl",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ui.where() == (0, None)  # everything finished
    assert ui.interrupted_message().startswith("w0.whl and 7 more: interrupted after every download finished")


def test_summary_line() -> None:
    ui, _ = _ui()
    mb = 1_000_000
    assert ui.summary("Installed", [1, 2], 25 * mb, 12 * mb, 1, 1, 3.14) == (
        "Installed 2 wheels in 3.1 s: 25.0 MB fetched, 12.0 MB reused (1 resumed, 1 from cache)"
    )
    assert ui.summary("Downloaded", [1], 0, 312_400, 0, 0, 0.04) == (
        "Downloaded 1 wheel in 0.0 s: 0 bytes fetched, 312 kB reused"
    )
    # every wheel already there: "Installed 0 wheels in 0.2 s: 0 bytes fetched, 0 bytes reused" said little
    assert ui.summary("Installed", [], 0, 0, 0, 0, 0.24) == "Installed nothing in 0.2 s"


@pytest.mark.parametrize(
    ("size", "spelt"),
    [
        (None, "?"),
        (0, "0 bytes"),
        (999, "999 bytes"),
        (4_500, "4.5 kB"),
        (312_999, "312 kB"),
        (1 << 20, "1.0 MB"),
        (612_000_000, "612.0 MB"),
        (192 * (1 << 20), "201.3 MB"),
    ],
)
def test_sizes_are_spelt_in_decimal_units_as_the_bars_count_them(size: int | None, spelt: str) -> None:
    """The messages said "MB" of MiB beside a bar that said "MiB" and a rate in decimal "MB/s": one torch
    wheel was "192.0 MB" in a message and "201.3 MB" in pip's bar. Small sizes said "0.0 MB"."""
    assert human_size(size) == spelt


@pytest.mark.parametrize("argv", [["--version"], ["install"], ["no-such-command"]])
def test_main_gives_the_garbage_collector_back_as_it_found_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI runs with rare collections (docs/performance.md, decision log); called in-process, as a host
    or a test may, it must leave the caller's thresholds as they were however the command ends — and collect
    while it runs."""
    import gc

    from wheelstream.cli import cli, main

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()  # (Python 3.12 starts with a few hundred objects frozen)
    during: list[tuple[int, ...]] = []
    real = cli.main

    def spy(*args: Any, **kwargs: Any) -> Any:
        during.append(gc.get_threshold())
        assert gc.isenabled()
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "main", spy)
    with pytest.raises(SystemExit):
        main(argv)
    assert gc.get_threshold() == before
    assert during == [GC_THRESHOLDS]
    assert gc.get_freeze_count() == frozen  # called with arguments: a host's heap is left as it was


def test_rare_gc_restores_the_thresholds_when_the_body_raises() -> None:
    import gc

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(KeyError) as raised, rare_gc(freeze_on_exit=False):
        raise KeyError(gc.get_threshold())  # the thresholds inside, carried out by the exception
    assert raised.value.args[0] == GC_THRESHOLDS
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_program_freezes_its_heap_on_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as the program (no argv: ``sys.argv``), the command's objects are frozen when it ends, so the
    interpreter's last collection skips them."""
    import gc

    from wheelstream.cli import main

    monkeypatch.setattr(sys, "argv", ["wheelstream", "--version"])
    frozen = gc.get_freeze_count()
    try:
        with pytest.raises(SystemExit):
            main()
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


_REPORT_MODULES = """
import sys
watched = sys.argv.pop(1).split(",")
from wheelstream.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(code, sorted(m for m in watched if sys.modules.get(m) is not None))
"""


def test_a_quiet_install_imports_no_terminal_ui(tmp_path: Path) -> None:
    """``-q --no-progress`` prints nothing on success, so the program never imports rich, nor httpx's own CLI
    (which would bring rich and pygments) — docs/performance.md, decision log."""
    import subprocess

    from fixtures.wellformed import make_wheel

    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel({"demo/__init__.py": b"x = 1\n"}))
    argv = [
        "install",
        "-q",
        "--no-progress",
        "--target",
        str(tmp_path / "t"),
        "--cache-dir",
        str(tmp_path / "c"),
        str(wheel),
    ]
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, "rich,pygments,httpx._main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split("\n")[-2] == "0 []", done.stdout + done.stderr
    assert (tmp_path / "t" / "demo" / "__init__.py").read_bytes() == b"x = 1\n"


# What an install into a target directory over one connection never runs, so never imports
# (docs/performance.md#d-lazy-imports): bytecode compilation, the environment installer and what reads an
# environment's distributions, the engine of several connections, lock files.
_NOT_FOR_A_TARGET = (
    "compileall",  # (``installer._compile`` itself is: the command sets its switch, compile_in_this_process)
    "wheelstream.installer._env_install",
    "wheelstream.installer._installed",
    "wheelstream.fetch._segmented",
    "wheelstream.fetch._piece_requests",
    "wheelstream.fetch._plan",
    "packaging.pylock",
    "tomllib",
    "packaging.specifiers",  # a pin's (its regexes were 2 % of a small install's instructions)
)


def test_an_install_into_a_target_imports_only_what_it_runs(tmp_path: Path) -> None:
    """Start-up is most of a small install's time: a ``--target`` install of a wheel over HTTP (one
    connection) imports neither the environment installer, nor compileall, nor the segmented engine; asked
    for ``--compile-bytecode``, it does import the compiler (the check can fail)."""
    import subprocess

    from fixtures.wellformed import make_wheel
    from wheelstream.testing import FaultServer

    wheel = make_wheel({"demo/__init__.py": b"x = 1\n"})
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", wheel)
        for run, extra in enumerate(([], ["--compile-bytecode"])):
            argv = [
                "install",
                "-q",
                "--target",
                str(tmp_path / f"t{run}"),
                "--cache-dir",
                str(tmp_path / "c"),
            ]
            done = subprocess.run(
                [sys.executable, "-c", _REPORT_MODULES, ",".join(_NOT_FOR_A_TARGET), *argv, *extra, url],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            loaded = done.stdout.split("\n")[-2]
            expected = "0 ['compileall']" if extra else "0 []"
            assert loaded == expected, done.stdout + done.stderr
            assert (tmp_path / f"t{run}" / "demo" / "__init__.py").read_bytes() == b"x = 1\n"


def test_the_library_leaves_httpx_whole_and_exports_lazily() -> None:
    """Importing wheelstream as a library blocks nothing of httpx; its API names resolve on first use."""
    import subprocess

    code = (
        "import sys, wheelstream, httpx\n"
        "assert wheelstream.errors.HashMismatch and wheelstream.zip.ZipStreamParser  # submodules, as before\n"
        "from wheelstream import install, Progress, WheelstreamError\n"
        "print(sys.modules.get('httpx._main') is not None, install is wheelstream.install, callable(install))\n"
        "try:\n    wheelstream.nope\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["True True True", "module 'wheelstream' has no attribute 'nope'"]


def test_the_program_leaves_an_already_imported_httpx_whole() -> None:
    """The fallback of blocking httpx's CLI: a process that imported httpx before the program keeps it."""
    import subprocess

    code = "import sys, httpx\nfrom wheelstream.cli import main\nprint(sys.modules.get('httpx._main') is not None)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["True"]


def test_ctrl_c_once_the_install_is_done_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGINT while the target's items are renamed in is held until they all are (never half an
    install); the command then exits 130 saying nothing is left to do — not "run the same command again",
    which would only warn that every item exists."""
    import os
    import signal

    from fixtures.wellformed import make_wheel
    from wheelstream.cli import main
    from wheelstream.installer import _commit

    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel({"demo/__init__.py": b"x = 1\n", "demo/data.bin": os.urandom(4096)}))
    real_rename = _commit._rename

    def rename(src: Path, dest: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        real_rename(src, dest)

    monkeypatch.setattr(_commit, "_rename", rename)
    with pytest.raises(SystemExit) as exited:
        main(["install", str(wheel), "-t", str(tmp_path / "t"), "--cache-dir", str(tmp_path / "c"), "-q"])
    assert exited.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted after every wheel was installed — nothing is left to do" in " ".join(err.split()), err
    assert (tmp_path / "t" / "demo" / "__init__.py").read_bytes() == b"x = 1\n"
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["demo", "demo-1.0.dist-info"]


def test_the_cli_gives_the_loggers_back_as_it_found_them(tmp_path: Path) -> None:
    """Review: the hishel logger's ``propagate`` was set back to True, whatever a host had made it."""
    import logging

    from wheelstream.cli import main

    hishel = logging.getLogger("hishel")
    hishel.propagate = False
    handlers = list(hishel.handlers)
    try:
        with pytest.raises(SystemExit):
            main(
                [
                    "install",
                    str(tmp_path / "missing-1.0-py3-none-any.whl"),
                    "-t",
                    str(tmp_path / "t"),
                    "--cache-dir",
                    str(tmp_path / "c"),
                    "-q",
                ]
            )
        assert hishel.propagate is False
        assert hishel.handlers == handlers
        assert logging.getLogger("wheelstream").propagate is True
    finally:
        hishel.propagate = True


def test_version_imports_no_command_and_no_library() -> None:
    """``--version`` (and the parsing of any command line) loads a command's module only when that command
    runs: the library (httpx, the installer), rich and the fault server are not imported for it."""
    code = (
        "import sys\n"
        "from wheelstream.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('httpx', 'rich', 'wheelstream._api', 'wheelstream.installer', 'wheelstream.testing')\n"
        "loaded = [m for m, module in sys.modules.items() if module is not None]  # httpx._main is a None\n"
        "print(sorted(m for m in loaded if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_each_bar_is_one_line_at_any_width(width: int) -> None:
    """The name column was 40 characters at any width: below ~110 columns every bar wrapped and its figures
    were cut to "…"."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=True, color_system=None)
    ui = ConsoleProgress(console, bars=True, quiet=False)
    assert ui.bars
    assert ui._rich is not None
    name = "pandas-3.1.1-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
    ui(Progress(name, 9_000_000, 12_000_000, 25, 4_000_000))
    rendered = Console(width=width, file=io.StringIO(), color_system=None)
    with rendered.capture() as captured:
        rendered.print(ui._rich.get_renderable())
    lines = [line for line in captured.get().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "9.0/12.0 MB" in lines[0], lines[0]


def test_of_several_wheels_a_finished_bar_goes_and_a_dumb_terminal_gets_no_bars() -> None:
    """With more wheels than rows, rich hid the running bars under "..." while the finished ones stayed."""
    buf = io.StringIO()
    ui = ConsoleProgress(Console(file=buf, width=120, force_terminal=True), bars=True, quiet=False)
    assert ui._rich is not None
    ui(Progress("a.whl", 1, 10, 1, None))
    ui(Progress("b.whl", 1, 10, 1, None))
    ui(Progress("a.whl", 10, 10, 1, None, finished=True))
    assert [task.description for task in ui._rich.tasks] == ["b.whl"]
    dumb = Console(file=io.StringIO(), width=120, force_terminal=True, _environ={"TERM": "dumb"})
    assert dumb.is_dumb_terminal
    assert not ConsoleProgress(dumb, bars=True, quiet=False).bars


@pytest.mark.parametrize("width", [20, 30, 39])
def test_below_forty_columns_there_are_no_bars_only_notes(width: int) -> None:
    """At 20 or 30 columns every bar wrapped onto two lines whatever was dropped: a name, a bar and the bytes
    need ~40. The notes still print, one line each."""
    buf = io.StringIO()
    ui = ConsoleProgress(
        Console(file=buf, width=width, force_terminal=True, color_system=None), bars=True, quiet=False
    )
    assert not ui.bars
    ui(Progress("a.whl", 612, 1000, 2, 612, message="resumed at 612 bytes (saved 612 bytes)"))
    assert buf.getvalue().splitlines()[0].startswith("a.whl: resumed at")


def test_a_result_path_printed_to_a_hosts_text_stream(tmp_path: Path) -> None:
    """``main(["cache", "dir"])`` in-process under ``redirect_stdout(io.StringIO())``: the path went to
    ``sys.stdout.buffer``, which a text stream has not (AttributeError)."""
    import contextlib
    import io

    from wheelstream.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as ended:
        main(["cache", "dir", "--cache-dir", str(tmp_path / "c é")])
    assert ended.value.code == 0
    assert out.getvalue() == f"{tmp_path / 'c é'}\n"


def test_a_direct_reference_as_uv_pip_compile_writes_it_is_the_wheels_url(tmp_path: Path) -> None:
    """``alpha @ file:///…/alpha-1.0-py3-none-any.whl`` (uv's and pip-compile's output for a URL dependency)
    failed the whole file; pip and uv install it."""
    req = tmp_path / "r.txt"
    url = "https://files.example/Alpha_Pkg-1.0-py3-none-any.whl"
    lines = [
        f"alpha-pkg[extra] @ {url} \\",
        f"    --hash=sha256:{H1}",
        "beta @ file:///w/beta-2.0-py3-none-any.whl ; python_version > '2'",
    ]
    req.write_text("\n".join(lines) + "\n")
    reqs = parse_requirements(req)
    assert reqs.sources == [url, "file:///w/beta-2.0-py3-none-any.whl"]
    assert reqs.hashes == {url: [H1]}


def test_a_hash_on_a_line_its_marker_leaves_out_still_asks_every_source_for_one(tmp_path: Path) -> None:
    """pip counts every line for its hash-checking mode: a hashed line for another platform let the rest of the
    file install unchecked here."""
    req = tmp_path / "r.txt"
    req.write_text(f"zeta==1.0 ; sys_platform == 'nonesuch' --hash=sha256:{H1}\ngamma==1.0\n")
    reqs = parse_requirements(req)
    assert reqs.sources == ["gamma==1.0"]
    assert reqs.hashed_elsewhere


def test_a_relative_wheel_path_is_beside_the_file_else_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``uv pip compile rel/local.in`` writes ``./priv/alpha….whl``, relative to where it ran: refused here as
    "no such file: rel/priv/…" where pip and uv install it."""
    (tmp_path / "rel").mkdir()
    (tmp_path / "priv").mkdir()
    (tmp_path / "priv" / "alpha-1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "rel" / "beside-1.0-py3-none-any.whl").write_bytes(b"")
    req = tmp_path / "rel" / "r.txt"
    req.write_text("./priv/alpha-1.0-py3-none-any.whl\n./beside-1.0-py3-none-any.whl\n")
    monkeypatch.chdir(tmp_path)
    assert parse_requirements(req).sources == [
        "./priv/alpha-1.0-py3-none-any.whl",
        str(tmp_path / "rel" / "beside-1.0-py3-none-any.whl"),
    ]


def test_a_direct_reference_to_a_path_is_that_path_by_the_same_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alpha @ ./dist/alpha-1.0-….whl`` (uv's form for a wheel on disk) was "not a wheel URL, path, NAME @
    URL or NAME==VERSION"; uv installs it. Relative paths follow a bare path's rule; the name is checked."""
    (tmp_path / "rel" / "dist").mkdir(parents=True)
    (tmp_path / "rel" / "dist" / "alpha-1.0-py3-none-any.whl").write_bytes(b"")
    req = tmp_path / "rel" / "r.txt"
    req.write_text("alpha[x] @ ./dist/alpha-1.0-py3-none-any.whl ; python_version > '2'\n")
    monkeypatch.chdir(tmp_path)
    assert parse_requirements(req).sources == [str(tmp_path / "rel" / "dist" / "alpha-1.0-py3-none-any.whl")]
    req.write_text("beta @ ./dist/alpha-1.0-py3-none-any.whl\n")
    with pytest.raises(
        UsageError, match=r"names .beta., but the wheel alpha-1\.0-py3-none-any\.whl is .alpha."
    ):
        parse_requirements(req)
    req.write_text("alpha @ ./dist/alpha.whl\n")
    with pytest.raises(UsageError, match="is not a wheel"):
        parse_requirements(req)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "a.whl: cannot write /x: No space left on device; 18.2 MB kept — run the same command again to resume",
            "a.whl: cannot write /x: No space left on device (--no-cache: nothing is kept to resume from)",
        ),
        (
            "a.whl: gave up; partial kept at 12.6 MB — run the same command again to resume",
            "a.whl: gave up (--no-cache: nothing is kept to resume from)",
        ),
        (
            "a.whl: cannot install into /t: x; the target is unchanged — run the same command again",
            "a.whl: cannot install into /t: x; the target is unchanged — run the same command again",
        ),
    ],
    ids=["bytes kept", "a partial kept at", "no resume offered"],
)
def test_under_no_cache_only_a_resume_offer_goes(message: str, shown: str) -> None:
    """Under --no-cache "N MB kept — run the same command again to resume" was false (the cache was gone), and
    the first rewrite also dropped true advice and said "kept at 12.6 MB (nothing is kept)"."""
    from wheelstream.cli import _contract
    from wheelstream.cli._contract import _nothing_kept, cache_thrown_away

    assert _nothing_kept(message) == shown
    with cache_thrown_away():
        assert _contract._throwaway_cache
    assert not _contract._throwaway_cache  # a later in-process command (main(argv)) is not rewritten


def test_an_emoji_code_in_a_wheels_text_is_printed_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    """A wheel names its entries and entry points: rich printed ``demo/:fire:.py`` as ``demo/🔥.py`` in error
    and warning lines."""
    ui = ConsoleProgress(bars=False, quiet=False, verbose=False)
    ui.warn("demo/:fire:.py and 'tool' = 'pkg:a:b'")
    assert capsys.readouterr().err == "warning: demo/:fire:.py and 'tool' = 'pkg:a:b'\n"
