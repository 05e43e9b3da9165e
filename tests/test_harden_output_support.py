"""Helpers for the hardening tests (round 2): hostile wheels built from parts, installed through the real CLI.

A wheel here is a dict of archive members; :func:`wheel_bytes` adds a RECORD (correct unless told otherwise)
and writes it with :mod:`fixtures.zipbuild`. :func:`cli_install` runs ``python -m wheelstream install`` in a
subprocess; :func:`assert_refused` checks the error contract of DESIGN §6 on it: exit 1, exactly one stderr line
(``error: <wheel>: <cause>``), no traceback, nothing a terminal would act on, the target as it was and nothing
new beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from conftest import Run, ws
from test_install_support import snapshot

from fixtures.wellformed import record_line
from fixtures.zipbuild import Member, build, file_attr

__all__ = [
    "CONTROL",
    "DI",
    "Run",
    "assert_refused",
    "cli_install",
    "demo_members",
    "metadata",
    "prepared_target",
    "wheel_bytes",
    "write",
]

FILENAME = "demo-1.0-py3-none-any.whl"
DI = "demo-1.0.dist-info"

#: What must never reach a terminal: C0 controls but the final newline, DEL, C1, bidi controls, surrogates.
CONTROL = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def metadata(name: str = "demo", version: str = "1.0", extra: str = "") -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra}\n".encode()


WHEEL = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def demo_members(
    overrides: Mapping[str, bytes | None] | None = None, entry_points: str | None = None
) -> dict[str, bytes]:
    """``demo-1.0``'s members; an override of ``None`` removes a member."""
    members: dict[str, bytes] = {
        "demo/__init__.py": b"X = 1\n",
        f"{DI}/METADATA": metadata(),
        f"{DI}/WHEEL": WHEEL,
    }
    if entry_points is not None:
        members[f"{DI}/entry_points.txt"] = entry_points.encode("utf-8")
    for path, data in (overrides or {}).items():
        if data is None:
            members.pop(path, None)
        else:
            members[path] = data
    return members


def _quote(path: str) -> str:
    return f'"{path}"' if any(c in path for c in ',"\n\r') else path


def wheel_bytes(
    members: Mapping[str, bytes],
    *,
    dist_info: str = DI,
    record: bytes | None = None,
    extra_rows: tuple[str, ...] = (),
) -> bytes:
    """The archive of ``members`` plus ``<dist_info>/RECORD``: every member's correct row, ``extra_rows``, and
    RECORD's own row — or ``record`` verbatim."""
    record_member = f"{dist_info}/RECORD"
    if record is None:
        rows = [record_line(_quote(p), d) for p, d in members.items() if not p.endswith("/")]
        rows += [*extra_rows, f"{record_member},,"]
        record = ("\n".join(rows) + "\n").encode("utf-8")
    entries = [Member(p, d, external_attr=file_attr(0o644)) for p, d in members.items()]
    entries.append(Member(record_member, record, external_attr=file_attr(0o644)))
    return build(entries)


def write(directory: Path, data: bytes, filename: str = FILENAME) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(data)
    return path


def prepared_target(base: Path) -> Path:
    """A target that already holds a file, so 'untouched' means more than 'absent'."""
    target = base / "target"
    target.mkdir(parents=True)
    (target / "sentinel.txt").write_text("keep\n")
    return target


def cli_install(wheel: Path, target: Path, cache: Path, *extra: str) -> Run:
    return ws(
        "install",
        str(wheel),
        "--target",
        str(target),
        "--cache-dir",
        str(cache),
        "--ignore-tags",
        "--no-progress",
        *extra,
        cache=None,
        timeout=120,
        env={"NO_COLOR": "1"},
    )


def assert_refused(wheel: Path, base: Path, *needles: str) -> str:
    """Install ``wheel`` through the CLI into a prepared target; check the error contract; return the line."""
    target = prepared_target(base)
    before = snapshot(target)
    siblings = sorted(p.name for p in base.iterdir())
    run = cli_install(wheel, target, base / "cache")
    assert run.code == 1, run
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("error: "), run.err
    assert run.err.endswith("\n"), run.err
    assert "Traceback" not in run.err, run.err
    assert not CONTROL.search(run.err), ascii(run.err)
    assert wheel.name in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snapshot(target) == before
    assert sorted(p.name for p in base.iterdir()) == sorted([*siblings, "cache"])
    return lines[0]
