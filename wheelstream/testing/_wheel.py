"""Build small, valid wheels in memory, so fault scenarios need no fixtures on disk or network access.

``build_wheel`` is the test bed's wheel: a package whose payload is pseudo-random (seeded, so byte offsets in a
test stay meaningful across runs) and stored incompressible, which makes "cut at 50 %" land in the middle of an
entry rather than in a tiny deflate stream.

``wheel_archive`` is what it is made with, and what wheelstream's own install tests build their wheels with:
the members given, plus METADATA, WHEEL, entry_points.txt and a RECORD that is correct unless told otherwise.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
import zipfile
from collections.abc import Callable, Mapping

from packaging.utils import canonicalize_name

__all__ = ["Content", "build_wheel", "record_hash", "wheel_archive"]

Content = bytes | tuple[bytes, int]  # a member's bytes, or (bytes, the mode its external attributes carry)


def record_hash(data: bytes) -> str:
    """The hash field of a RECORD row: ``sha256=`` and the urlsafe base64 digest without padding."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _never(path: str) -> bool:
    return False


def wheel_archive(
    files: Mapping[str, Content],
    *,
    name: str,
    version: str,
    dist: str | None = None,
    tag: str = "py3-none-any",
    root_is_purelib: bool = True,
    entry_points: str | None = None,
    generator: str = "wheelstream.testing",
    mode: int = 0o644,
    stored: Callable[[str], bool] = _never,
    record: str | None = None,
    drop_from_record: tuple[str, ...] = (),
    extra_record_rows: tuple[str, ...] = (),
    tamper: Mapping[str, bytes] | None = None,
) -> bytes:
    """The bytes of a wheel holding ``files`` and ``<dist>-<version>.dist-info/`` (``dist`` defaults to
    ``name``, which METADATA names).

    ``mode`` goes into the external attributes of every member given as plain bytes and of the generated
    ones; ``stored(path)`` says which members are stored rather than deflated. To build a broken wheel:
    ``record`` replaces RECORD's text, ``drop_from_record`` leaves those members' rows out,
    ``extra_record_rows`` adds rows, and ``tamper`` swaps members' bytes after RECORD was computed.
    """
    info = f"{dist or name}-{version}.dist-info"
    members: dict[str, tuple[bytes, int]] = {
        path: value if isinstance(value, tuple) else (value, mode) for path, value in files.items()
    }
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        mode,
    )
    wheel = (
        f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: {str(root_is_purelib).lower()}\n"
        f"Tag: {tag}\n"
    )
    members[f"{info}/WHEEL"] = (wheel.encode(), mode)
    if entry_points is not None:
        members[f"{info}/entry_points.txt"] = (entry_points.encode(), mode)
    if record is None:
        # As wheel builders write it: csv quotes a name holding a comma, a quote or a line break.
        listed = io.StringIO(newline="")
        csv.writer(listed, lineterminator="\n").writerows(
            (path, record_hash(data), len(data))
            for path, (data, _) in members.items()
            if path not in drop_from_record
        )
        record = listed.getvalue() + "".join(f"{row}\n" for row in [*extra_record_rows, f"{info}/RECORD,,"])
    members[f"{info}/RECORD"] = (record.encode(), mode)
    for path, data in (tamper or {}).items():
        members[path] = (data, members.get(path, (b"", mode))[1])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path, (data, member_mode) in members.items():
            entry = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = member_mode << 16
            method = zipfile.ZIP_STORED if stored(path) else zipfile.ZIP_DEFLATED
            archive.writestr(entry, data, compress_type=method)
    return buf.getvalue()


def _payload(path: str) -> bool:
    return path.endswith(".bin")


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
    contents: dict[str, Content] = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist}/payload.bin": random.Random(seed).randbytes(payload_size),
        **(files or {}),
    }
    data = wheel_archive(contents, name=name, version=version, dist=dist, stored=_payload)
    return f"{dist}-{version}-py3-none-any.whl", data
