"""Build small, valid wheels in memory, so fault scenarios need no fixtures on disk or network access.

The payload is pseudo-random (seeded, so byte offsets in a test stay meaningful across runs) and stored
incompressible, which makes "cut at 50 %" land in the middle of an entry rather than in a tiny deflate
stream.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import zipfile

from packaging.utils import canonicalize_name

__all__ = ["build_wheel"]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(
    name: str = "demo",
    version: str = "1.0",
    *,
    payload_size: int = 256 * 1024,
    files: dict[str, bytes] | None = None,
    seed: int = 0,
) -> tuple[str, bytes]:
    """``(filename, bytes)`` of a pure-Python wheel that pip and uv install with ``--no-deps``.

    It holds ``<name>/__init__.py``, ``<name>/payload.bin`` (``payload_size`` seeded random bytes) plus
    ``files``, and a correct RECORD.
    """
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    contents: dict[str, bytes] = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist}/payload.bin": random.Random(seed).randbytes(payload_size),
        **(files or {}),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: wheelstream.testing\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in contents.items())
    record += f"{info}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in [*contents.items(), (f"{info}/RECORD", record.encode())]:
            zi = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            method = zipfile.ZIP_STORED if path.endswith(".bin") else zipfile.ZIP_DEFLATED
            zf.writestr(zi, data, compress_type=method)
    return f"{dist}-{version}-py3-none-any.whl", buf.getvalue()
