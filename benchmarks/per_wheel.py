"""What one small wheel costs: ``fetch_wheel`` of many small wheels one after another, wall and CPU per wheel.

    .venv/bin/python benchmarks/per_wheel.py benchmarks/out/wheels/many --rounds 3
    PYTHONPATH=/tmp/base .venv/bin/python benchmarks/per_wheel.py benchmarks/out/wheels/many   # old code

The fixed cost of a download — lock, journal, partial file, request, threads, hand-over to the cache — is what
a 50-wheel ``-r`` (``run.py`` scenario f) pays fifty times, and what start-up and the big wheels hide there.
Here nothing else runs: the downloads go one after another on a download thread, as ``install`` runs them
(not the main thread: see ``unpack._stages.interruptible``), from the project's ``FaultServer`` on 127.0.0.1,
each round into a fresh cache; the caches are deleted at the end, so the first round waits ``--settle`` seconds
(ext4's ``recently_deleted``: see ``run.py``'s ``_fresh``). The CPU includes the in-process server's, the same for
old and new. Wheels over ``--max-size`` (1 MiB) are left out: their cost is their files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(
    str(HERE.parent)
)  # last: a checkout on PYTHONPATH (old code) or the installed one comes first

from wheelstream._cache import Cache
from wheelstream.fetch import fetch_wheel
from wheelstream.testing import FaultServer
from wheelstream.transport import new_client


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", type=Path, help="a directory of wheels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-size", type=int, default=1 << 20, help="bytes (default: 1 MiB)")
    parser.add_argument(
        "--settle",
        type=float,
        default=60,
        help="seconds to wait before the first round: inodes freed by an earlier run must age out (default: 60)",
    )
    args = parser.parse_args()
    wheels = [w for w in sorted(args.directory.glob("*.whl")) if w.stat().st_size <= args.max_size]
    if not wheels:
        raise SystemExit(f"no wheel of at most {args.max_size} bytes in {args.directory}")
    import wheelstream

    print(f"{len(wheels)} wheels from {args.directory}; wheelstream from {Path(wheelstream.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="wheelstream-per-wheel-") as base, FaultServer() as server:
        urls = [server.add_file(wheel.name, wheel) for wheel in wheels]

        def rounds() -> None:
            with new_client(30) as client:
                for number in range(args.rounds):
                    cache = Cache.at(Path(base) / f"cache{number}")
                    wall, cpu = time.perf_counter(), time.process_time()
                    for url in urls:
                        fetch_wheel(url, cache=cache, client=client, keep_unpacked=False)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    each = 1000 / len(urls)
                    print(f"round {number}: {wall * each:.2f} ms wall, {cpu * each:.2f} ms CPU per wheel")

        time.sleep(args.settle)  # ext4's recently_deleted: see run.py's _fresh
        thread = threading.Thread(target=rounds, name="download")
        thread.start()
        thread.join()


if __name__ == "__main__":
    main()
