"""``unpack._writers``: the process-wide writer pool survives a fork (its at-fork hook).

Without the hook the child's first batch waits forever for threads it does not have: the timeout fails the test."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixtures.wellformed import make_wheel

# A fresh interpreter (a pytest worker has threads of its own): extract once, so the pool's threads run, then
# fork; the child, which inherited the pool's queue but not its threads, extracts again.
_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from wheelstream.unpack._extract import Extractor
    from wheelstream.zip import ZipStreamParser

    data = Path(sys.argv[1]).read_bytes()

    def extract(root):
        extractor = Extractor(Path(root), writers=True)
        try:
            extractor.handle_all(ZipStreamParser(pack_up_to=extractor.pack_up_to).feed(data))
            extractor.drain()
            return sum(1 for f in extractor.files.values() if f.sha256)
        finally:
            extractor.close()

    print("parent", extract(sys.argv[2] + "/parent"), flush=True)
    pid = os.fork()
    if pid == 0:
        try:
            print("child", extract(sys.argv[2] + "/child"), flush=True)
            writers = sorted(t.name for t in threading.enumerate() if t.name.startswith("wheelstream-write"))
            print("child-writers", len(writers), flush=True)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    """
)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_writer_threads(tmp_path: Path) -> None:
    files = {f"demo/m{i}.py": f"N = {i}\n".encode() for i in range(200)}
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(make_wheel(files))
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(wheel), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    words = proc.stdout.split()
    labels, counts = words[0::2], words[1::2]
    assert labels == ["parent", "child", "child-writers"], proc.stderr
    assert counts[0] == counts[1]
    assert int(counts[0]) > len(files)  # every file, and the .dist-info's
    assert counts[2] == "2"
    assert (tmp_path / "child" / "demo" / "m7.py").read_bytes() == b"N = 7\n"


def _sink_threads_started_by(data: bytes, root: Path) -> tuple[int, dict[str, bytes]]:
    """Extract ``data`` with writers, counting the sink threads started meanwhile; the tree extracted."""
    import threading

    from wheelstream.unpack._extract import Extractor
    from wheelstream.zip import ZipStreamParser

    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    extractor = Extractor(root, writers=True)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(threading.Thread, "start", counting_start)
            extractor.handle_all(ZipStreamParser(pack_up_to=extractor.pack_up_to).feed(data))
            extractor.drain()
    finally:
        extractor.close()
    tree = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return started.count("wheelstream-sink"), tree


def test_the_sink_thread_starts_only_for_a_file_over_the_inline_limit(tmp_path: Path) -> None:
    """Large files are hashed and written by the sink's thread; a wheel without one (most) never starts it,
    and one with two starts it once. Either way every file lands whole."""
    small = {f"demo/m{i}.py": f"N = {i}\n".encode() for i in range(50)}
    count, tree = _sink_threads_started_by(make_wheel(small), tmp_path / "small")
    assert count == 0
    assert {k: v for k, v in tree.items() if k.startswith("demo/")} == small

    big = bytes(range(256)) * 8_000  # 2 MB: over the 1 MiB inline limit
    large = {**small, "demo/a.bin": big, "demo/b.bin": big[::-1]}
    count, tree = _sink_threads_started_by(make_wheel(large), tmp_path / "large")
    assert count == 1
    assert {k: v for k, v in tree.items() if k.startswith("demo/")} == large
