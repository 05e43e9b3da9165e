"""A ~200 MB wheel with realistic entry sizes, for machines without /opt/wheels/torch-*.whl.

Entry sizes follow what big binary wheels look like: thousands of small .py/.pyi/.h files (lognormal around
4 KB), a few hundred mid-size data files and a handful of large shared libraries (tens of MB, half
incompressible). Deterministic (seeded), so every machine races on the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import random
import zipfile
from pathlib import Path

WORDS = [
    "def",
    "return",
    "import",
    "self",
    "None",
    "True",
    "False",
    "class",
    "yield",
    "lambda",
    "async",
    "await",
    "tensor",
    "shape",
    "dtype",
    "device",
    "grad",
    "module",
    "forward",
    "backward",
    "kernel",
    "dispatch",
    "cuda",
    "cpu",
    "float",
    "int",
    "list",
    "dict",
    "str",
]


def _text(rng: random.Random, size: int) -> bytes:
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def _binary(rng: random.Random, size: int) -> bytes:
    """Half random (like code sections), half a repeated low-entropy block (like tables and padding)."""
    half = size // 2
    block = bytes(rng.randrange(16) for _ in range(1 << 16))
    rest = size - half
    return rng.randbytes(half) + (block * (rest // len(block) + 1))[:rest]


def generate(path: Path, target_size: int = 200 * 1024 * 1024) -> None:
    rng = random.Random(8)
    name = "bigdemo"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    record = []
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:

        def add(arcname: str, data: bytes) -> None:
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")

        i = 0
        while tmp.stat().st_size < target_size * 0.85 if tmp.exists() else True:
            for _ in range(2500):
                size = int(min(rng.lognormvariate(8.3, 1.3), 2_000_000))
                add(f"{name}/pkg{i % 97}/mod{i}.py", _text(rng, size))
                i += 1
            for _ in range(2):
                add(f"{name}/lib/lib{i}.so", _binary(rng, rng.randint(3, 15) * 1024 * 1024))
                i += 1
            zf.fp.flush()  # type: ignore[union-attr]
        dist = f"{name}-1.0.dist-info"
        add(f"{dist}/METADATA", b"Metadata-Version: 2.1\nName: bigdemo\nVersion: 1.0\n")
        add(
            f"{dist}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: wheelstream-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        record.append(f"{dist}/RECORD,,")
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    tmp.rename(path)
