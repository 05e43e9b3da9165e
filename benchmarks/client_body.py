"""What receiving a body costs wheelstream's HTTP client alone: CPU, wall and page faults per download.

    .venv/bin/python benchmarks/client_body.py [WHEEL] [--runs 5] [--read-bytes N] [--no-pass-through]

Serves WHEEL (default: /opt/wheels/torch-*.whl, else any wheel under benchmarks/out/wheels) with the project's
``FaultServer`` on 127.0.0.1 (sendfile, so the server costs little) and downloads it ``--runs`` times through
``wheelstream.transport.new_client`` and ``iter_raw``, discarding the bytes: no tee, no parser, only what
httpx, httpcore and h11 do with them on the download's thread. ``--read-bytes`` sets the plain-TCP ``recv``
size (``transport/_tracking._PLAIN_READ_BYTES``; httpcore asks for 64 KiB); ``--no-pass-through`` puts h11's
own receive buffer back (``transport/_receive_buffer``). Run the variants one after the other, twice or more:
docs/performance.md, D-receive-buffer and D-plain-read-size. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from wheelstream.testing import FaultServer
from wheelstream.transport import _client, _tracking, new_client

# The downloading thread's own figures: the server runs on threads of this process too.
_WHO = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def _default_wheel() -> Path:
    for pattern, root in (("torch-*.whl", Path("/opt/wheels")), ("*.whl", HERE / "out" / "wheels")):
        found = sorted(root.rglob(pattern)) if root.is_dir() else []
        if found:
            return max(found, key=lambda path: path.stat().st_size)
    raise SystemExit("no wheel given and none found: pass one")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--read-bytes", type=int, default=None, help="plain-TCP recv size (default: the code's)"
    )
    parser.add_argument("--no-pass-through", action="store_true", help="h11's own receive buffer")
    args = parser.parse_args()
    wheel = args.wheel or _default_wheel()
    if args.read_bytes is not None:
        _tracking._PLAIN_READ_BYTES = args.read_bytes
    if args.no_pass_through:
        setattr(_client, "pass_body_through", lambda stream: False)  # noqa: B010 - the module the transport reads it from
    rows = []
    with FaultServer() as server:
        url = server.add_file(wheel.name, wheel)
        for _ in range(args.runs):
            with new_client(30.0) as client:
                before = resource.getrusage(_WHO)
                started = time.perf_counter()
                size = 0
                with client.stream("GET", url) as response:
                    for chunk in response.iter_raw():
                        size += len(chunk)
                wall = time.perf_counter() - started
                after = resource.getrusage(_WHO)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            rows.append((wall, cpu, after.ru_minflt - before.ru_minflt))
            print(f"  {size / 1e6:6.1f} MB  wall {wall:6.3f} s  CPU {cpu:6.3f} s  minor faults {rows[-1][2]}")
    label = "h11's buffer" if args.no_pass_through else "pass-through"
    reads = args.read_bytes or _tracking._PLAIN_READ_BYTES
    print(
        f"{label}, recv {reads} B, {args.runs} runs: CPU median {statistics.median(r[1] for r in rows):.3f} s "
        f"(min {min(r[1] for r in rows):.3f}), wall median {statistics.median(r[0] for r in rows):.3f} s"
    )


if __name__ == "__main__":
    main()
