"""Helpers for the install tests: build small wheels with stdlib zipfile, stage them, snapshot trees.

Staging here stands in for the streaming extractor: it extracts with :mod:`zipfile` and hashes each file while
writing it, setting modes the way pip does (umask default, ``+x`` for entries with any x bit).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path

from wheelstream._staged import StagedFile, StagedWheel

__all__ = ["CORPUS_IDS", "build_wheel", "corpus", "full_wheel", "record_hash", "snapshot", "stage"]

Content = bytes | tuple[bytes, int]  # content, or (content, unix mode)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def build_wheel(
    directory: Path,
    filename: str,
    files: Mapping[str, Content],
    *,
    root_is_purelib: bool = True,
    tag: str = "py3-none-any",
    entry_points: str | None = None,
    record: str | None = None,
    drop_from_record: tuple[str, ...] = (),
    extra_record_rows: tuple[str, ...] = (),
    tamper: Mapping[str, bytes] | None = None,
) -> Path:
    """A wheel with METADATA/WHEEL/RECORD generated; ``tamper`` swaps content after RECORD was computed."""
    name, version = filename.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    members: dict[str, tuple[bytes, int]] = {}
    for path, value in files.items():
        members[path] = value if isinstance(value, tuple) else (value, 0o644)
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        0o644,
    )
    wheel = (
        f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {str(root_is_purelib).lower()}\nTag: {tag}\n"
    )
    members[f"{info}/WHEEL"] = (wheel.encode(), 0o644)
    if entry_points is not None:
        members[f"{info}/entry_points.txt"] = (entry_points.encode(), 0o644)
    rows = [f"{p},{record_hash(d)},{len(d)}" for p, (d, _) in members.items() if p not in drop_from_record]
    rows += [*extra_record_rows, f"{info}/RECORD,,"]
    members[f"{info}/RECORD"] = ((record if record is not None else "\n".join(rows) + "\n").encode(), 0o644)
    for path, data in (tamper or {}).items():
        members[path] = (data, members.get(path, (b"", 0o644))[1])
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / filename
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, (data, mode) in members.items():
            entry = zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0))
            entry.external_attr = (stat.S_IFREG | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return out


def stage(wheel: Path, root: Path) -> StagedWheel:
    """Extract ``wheel`` into ``root`` hashing while writing, like the streaming extractor does."""
    umask = os.umask(0)
    os.umask(umask)
    files: dict[str, StagedFile] = {}
    with zipfile.ZipFile(wheel) as archive:
        for entry in archive.infolist():
            if entry.is_dir():
                continue
            data = archive.read(entry)
            dest = root / entry.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            mode = entry.external_attr >> 16
            executable = bool(mode and stat.S_ISREG(mode) and mode & 0o111)
            if executable:
                os.chmod(dest, 0o777 & ~umask | 0o111)
            files[entry.filename] = StagedFile(
                entry.filename, len(data), hashlib.sha256(data).hexdigest(), executable
            )
    return StagedWheel(wheel.name, root, files)


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and (for files) content; symlinks by their target."""
    result: dict[str, tuple[int, bytes | None]] = {}
    if not root.exists():
        return result
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                result[rel] = (info.st_mode, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                result[rel] = (info.st_mode, None)
            else:
                result[rel] = (info.st_mode, path.read_bytes())
    return result


FULL_ENTRY_POINTS = """\
[console_scripts]
fulltool = full_pkg.tool:main
fullcli=full_pkg.tool:cli.run [extra]
pip = full_pkg.tool:main
pip3.9 = full_pkg.tool:main
easy_install = full_pkg.tool:main

# a comment
[gui_scripts]
fullgui = full_pkg.tool:main
"""


def full_wheel(directory: Path, version: str = "1.0") -> Path:
    """Every pip code path at once: purelib root, .data purelib/platlib/scripts/data/headers, launchers."""
    d = f"Full_Pkg-{version}.data"
    return build_wheel(
        directory,
        f"Full_Pkg-{version}-py3-none-any.whl",
        {
            "full_pkg/__init__.py": f"VERSION = {version!r}\n".encode(),
            "full_pkg/tool.py": b"def main():\n    print('hi')\n\nclass cli:\n    run = main\n",
            "full_pkg/sub/data.bin": bytes(range(256)),
            f"{d}/purelib/extra_pure.py": b"PURE = 1\n",
            f"{d}/platlib/extra_plat.py": b"PLAT = 1\n",
            f"{d}/scripts/runme": (b"#!python -u\nprint('runme')\n", 0o755),
            f"{d}/scripts/winlike": (b"#!pythonw\r\nprint('crlf')\r\n", 0o644),
            f"{d}/scripts/plain.sh": (b"#!/bin/sh\necho hi\n", 0o755),
            f"{d}/scripts/noshebang": (b"print('no shebang')\n", 0o755),
            f"{d}/scripts/fulltool": (b"#!python\n# setuptools wrapper, pip drops it\n", 0o755),
            f"{d}/scripts/fullgui-script.py": (b"#!python\n# wrapper too\n", 0o644),
            f"{d}/data/share/full/readme.txt": f"readme {version}\n".encode(),
            f"{d}/data/etc/full.conf": b"[full]\n",
            f"{d}/headers/full.h": b"int full;\n",
            f"{d}/headers/sub/inner.h": b"int inner;\n",
        },
        entry_points=FULL_ENTRY_POINTS,
    )


def plat_wheel(directory: Path) -> Path:
    """Root-Is-Purelib: false with the running interpreter's most specific tag (a binary-looking wheel)."""
    from packaging.tags import sys_tags

    tag = str(next(iter(sys_tags())))
    return build_wheel(
        directory,
        f"platpkg-2.0-{tag}.whl",
        {
            "platpkg/__init__.py": b"from ._speed import x\n",
            "platpkg/_speed.so": (b"\x7fELF not really\n", 0o755),
            "platpkg-2.0.data/purelib/platpkg_pure.py": b"p = 1\n",
            "platpkg-2.0.data/headers/plat.h": b"int plat;\n",
        },
        root_is_purelib=False,
        tag=tag,
        entry_points="[console_scripts]\nplatcmd = platpkg:main\n",
    )


def quirky_wheel(directory: Path) -> Path:
    """pip's --target edge cases: a data item colliding with a package dir, data under ``lib/`` (dropped)."""
    return build_wheel(
        directory,
        "quirky-0.1-py2.py3-none-any.whl",
        {
            "quirky/__init__.py": b"",
            "quirky-0.1.data/data/quirky/from_data.txt": b"collides with the package dir\n",
            "quirky-0.1.data/data/lib/lost.txt": b"pip drops this\n",
            "quirky-0.1.data/data/top.txt": b"top\n",
            "quirky-0.1.data/scripts/q.py": (b"#!python\nprint(1)\n", 0o755),
        },
    )


def dirs_wheel(directory: Path) -> Path:
    """Directory entries, some with files below them and some empty: pip creates no directory for an entry,
    so neither may a whole-directory move carry an empty one along."""
    dirs = ("dirpkg/", "dirpkg/sub/", "dirpkg/empty/", "emptytop/")
    return build_wheel(
        directory,
        "dirpkg-0.1-py3-none-any.whl",
        {
            "dirpkg/": b"",
            "dirpkg/__init__.py": b"",
            "dirpkg/sub/": b"",
            "dirpkg/sub/x.py": b"x = 1\n",
            "dirpkg/empty/": b"",
            "emptytop/": b"",
            "solo/mod.py": b"y = 2\n",
        },
        drop_from_record=dirs,
    )


REAL_WHEELS = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "wheels").glob("*.whl"))
CORPUS_IDS = ["full", "plat", "quirky", "dirs", *(p.name for p in REAL_WHEELS)]


def corpus(directory: Path) -> dict[str, Path]:
    """Every wheel the equivalence test compares (by id): built fixtures plus the committed real wheels."""
    directory.mkdir(parents=True, exist_ok=True)
    built = {"full": full_wheel(directory), "plat": plat_wheel(directory), "quirky": quirky_wheel(directory),
             "dirs": dirs_wheel(directory)}
    return {**built, **{p.name: p for p in REAL_WHEELS}}
