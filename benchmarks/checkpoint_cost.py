"""Time one in-process ``fetch_wheel`` of a big wheel and the time spent writing checkpoints (issue #8).

Serves the wheel from an in-process ``FaultServer``, writes the cache under ``/dev/shm`` (removed after the
run) and prints one JSON line: ``fetch`` (s), ``net`` / ``worker`` (s inside ``Tee.checkpoint`` /
``Tee._write_checkpoint`` on the network thread / the unpack worker, nested calls counted once) and how many
checkpoints each thread wrote. To compare two trees, interleave runs (this VM drifts by ±30 %)::

    for i in 1 2 3 4 5 6; do for tree in /path/old /path/new; do
        PYTHONPATH=$tree .venv/bin/python benchmarks/checkpoint_cost.py; done; done

Usage: ``checkpoint_cost.py [WHEEL]`` (default: the torch wheel in /opt/wheels).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import wheelstream
import wheelstream.unpack._tee as tee
from wheelstream._cache import Cache
from wheelstream.fetch import fetch_wheel
from wheelstream.testing import FaultServer

DEFAULT = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
stats: dict[str, float] = {"net": 0.0, "worker": 0.0, "n_net": 0, "n_worker": 0}
_depth = threading.local()


def _timed(name: str) -> None:
    real: Callable[..., Any] = getattr(tee.Tee, name)

    def wrapper(self: tee.Tee, *args: Any, **kwargs: Any) -> Any:
        if getattr(_depth, "n", 0):
            return real(self, *args, **kwargs)  # nested: counted by the outer call
        _depth.n = 1
        started = time.perf_counter()
        try:
            return real(self, *args, **kwargs)
        finally:
            _depth.n = 0
            where = "worker" if threading.current_thread().name == "wheelstream-unpack" else "net"
            stats[where] += time.perf_counter() - started
            stats["n_" + where] += 1

    setattr(tee.Tee, name, wrapper)


def main() -> None:
    wheel = Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    for name in ("checkpoint", "_write_checkpoint"):
        if hasattr(tee.Tee, name):  # older trees have only ``checkpoint``
            _timed(name)
    root = Path(f"/dev/shm/wheelstream-ckpt-{os.getpid()}")
    shutil.rmtree(root, ignore_errors=True)
    try:
        with FaultServer() as server, httpx.Client() as client:
            url = server.add_file(wheel.name, wheel)
            started = time.perf_counter()
            fetch_wheel(url, cache=Cache.at(root / "cache"), client=client)
            elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)
    tree = Path(wheelstream.__file__).parent.parent
    print(
        json.dumps(
            {"tree": str(tree), "fetch": round(elapsed, 3), **{k: round(v, 3) for k, v in stats.items()}}
        )
    )


if __name__ == "__main__":
    main()
