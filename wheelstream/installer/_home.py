"""Write one checked wheel into the temporary home, as pip's ``_install_wheel`` does, ending with its RECORD.

The files (:meth:`~._checks.CheckedWheel.placed`) go in pip's order, then the bytecode, the launchers and the
metadata files the installer writes; how each file is created (modes, move/copy/hardlink) is the destination's
business (:mod:`._destination`). The rules kept here:

* Files come from a :class:`~wheelstream._staged.StagedWheel`: a tree this process claimed is *moved* (whole
  top-level directories with one rename each when every file in them lands at the same relative path — the
  common case: ``torch/`` is one rename, not 12k); the shared unpacked-wheel cache is copied or hardlinked
  and never written.
* ``INSTALLER`` says ``wheelstream``; bytecode (``compile_bytecode``) records the final path, not the temporary,
  and the row of an archive ``.pyc`` that it rewrote goes.
* The installed RECORD is pip's (``get_csv_rows_for_installed``, sorted as ``_normalized_outrows`` sorts it), one
  row per path, written a block at a time: only the sorted names grow with the file count.
"""

from __future__ import annotations

import collections
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

from ._checks import CheckedWheel
from ._destination import HomeWriter
from ._direct_url import direct_url_json
from ._interpreter import Interpreter
from ._records import record_blocks
from ._scripts import fix_shebang, launcher_bytes

__all__ = ["INSTALLER", "write_wheel"]

INSTALLER = b"wheelstream\n"


def _move_whole_dirs(checked: CheckedWheel, writer: HomeWriter) -> set[str]:
    """Rename each top-level directory of an owned tree that lands unchanged at ``<lib>/<dir>``; return the
    directories it moved. A directory is left to the per-file path when any file in it goes elsewhere or is
    not installed (``.data``, a file a generated one replaces), when it holds a directory entry with no file
    below it (pip creates no directory for those), or when the home already has it (a second wheel of a
    namespace package)."""
    staged, lib = checked.item.staged, checked.lib
    special, skipped = checked.special, checked.skipped
    in_tree: collections.Counter[str] = collections.Counter()  # top-level directory -> files below it
    placed: dict[str, int] = {}  # top-level directory -> those of its files installed at <lib>/<path>
    for member in staged.files:
        top, sep, _ = member.partition("/")
        if sep:
            in_tree[top] += 1
            if member not in special and member not in skipped:
                placed[top] = placed.get(top, 0) + 1
    blocked = {empty.split("/", 1)[0] for empty in staged.empty_dirs}
    moved: set[str] = set()
    for top, count in placed.items():
        rel = posixpath.join(lib, top)
        if top in blocked or in_tree[top] != count or os.path.lexists(writer.home / rel):
            continue
        if not writer.move_dir(staged.root / top, rel, count):
            break  # another file system: the per-file path copies
        moved.add(top)
    return moved


def write_wheel(
    checked: CheckedWheel,
    writer: HomeWriter,
    interpreter: Interpreter,
    target: Path,
    compile_bytecode: bool,
    *,
    mirror: bool = False,
) -> None:
    """Write one checked wheel into the home, as pip's ``_install_wheel`` does, ending with its RECORD.

    ``mirror``: the home mirrors ``target`` path for path (an environment); else ``target`` is a ``--target``
    directory, which receives the items of the home's lib and data directories."""
    staged, info, lib = checked.item.staged, checked.info, checked.lib
    files = staged.files
    changed: dict[str, tuple[str, int]] = {}  # record path -> final (hash, size), of a rewritten script
    moved = _move_whole_dirs(checked, writer) if staged.movable and writer.link_mode == "move" else set()
    for member, dest, script in checked.placed():
        if moved and member.partition("/")[0] in moved:
            continue  # a root file in a directory moved whole (.data files never are)
        src = staged.root / member
        file = files[member]
        new_content = None
        if script and _starts_with(src, b"#!python"):
            new_content = fix_shebang(src.read_bytes(), interpreter)
        if new_content is None:
            writer.install_staged(src, file, dest, staged.movable)
        else:
            writer.write_bytes(dest, new_content, "executable" if file.executable else "default")
            changed[checked.record_path(member, dest)] = writer.written[dest]

    compiled: set[str] = set()  # record paths of the bytecode written
    stale: set[str] = set()  # archive .pyc files the compiler just replaced: their rows go, the new ones stay
    if compile_bytecode:
        from ._compile import compile_files  # compileall and a child process: only when asked for

        sources = sorted(
            path
            for member, dest, _ in checked.placed()
            if (path := checked.record_path(member, dest)).endswith(".py")
        )
        homes = [posixpath.normpath(posixpath.join(lib, p)) for p in sources]
        jobs = [
            (
                writer.home / h,
                str(target / posixpath.dirname(h)) if mirror else _final_dir(h, interpreter, lib, target),
            )
            for h in homes
        ]
        for pyc in compile_files(jobs, interpreter):
            rel = os.path.relpath(pyc, writer.home).replace(os.sep, "/")
            compiled.add(posixpath.relpath(rel, lib))
        stale = {
            member for member, dest, _ in checked.placed() if checked.record_path(member, dest) in compiled
        }

    generated: list[str] = []  # home-relative
    for launcher in checked.launchers:
        rel = posixpath.join(interpreter.scheme.scripts, launcher.name)
        writer.write_bytes(rel, launcher_bytes(launcher, interpreter), "launcher")
        generated.append(rel)
    meta = posixpath.join(lib, info.dist_info)
    writer.write_bytes(f"{meta}/INSTALLER", INSTALLER)
    generated.append(f"{meta}/INSTALLER")
    if checked.item.direct_url is not None:
        writer.write_bytes(
            f"{meta}/direct_url.json", direct_url_json(checked.item.direct_url, checked.item.url_hash)
        )
        generated.append(f"{meta}/direct_url.json")
    writer.write_bytes(f"{meta}/REQUESTED", b"")
    generated.append(f"{meta}/REQUESTED")

    rows: dict[str, tuple[str, str]] = {}  # record path -> (hash, size): every row but a root file's own
    for path, (digest, size) in changed.items():
        rows[path] = (digest, str(size))
    for rel in generated:
        digest, size = writer.written[rel]
        rows[posixpath.relpath(rel, lib)] = (digest, str(size))
    rows.update(dict.fromkeys(compiled, ("", "")))
    writer.write_blocks(f"{meta}/RECORD", record_blocks(_installed_record(checked, rows, stale)))


def _installed_record(
    checked: CheckedWheel, rows: dict[str, tuple[str, str]], stale: set[str]
) -> Iterator[tuple[str, str, str]]:
    """The installed RECORD's rows as pip's ``get_csv_rows_for_installed`` makes them, in the order its
    ``_normalized_outrows`` sorts them; ``rows`` holds those of rewritten, generated and compiled files.

    Each path has one row (two files at one path are refused; a generated file or a compiled ``.pyc`` takes
    the archive file's row), so sorting the paths sorts the rows. A root file's path is its archive name, and
    its row is made as it is written out: the sorted list of names is all that grows with the file count."""
    files, record = checked.item.staged.files, checked.record
    rows = dict(rows)
    rows.update(record.directory_rows(checked.item.staged))
    for member in (
        checked.skipped - checked.dropped
    ):  # entry-point wrappers: not installed, their rows as they were
        rows[member] = record.fields(member, files[member])
    for member, placement in checked.special.items():
        if member not in checked.skipped and member not in stale:
            rows.setdefault(checked.record_path(member, placement.dest), record.fields(member, files[member]))
    paths = [m for m in files if m not in checked.special and m not in checked.skipped and m not in stale]
    paths.extend(rows)
    paths.sort()
    for path in paths:
        fields = rows.get(path)
        if fields is None:
            fields = record.fields(path, files[path])
        yield path, *fields


def _final_dir(home_rel: str, interpreter: Interpreter, lib: str, target: Path) -> str:
    """Where a home file's directory will be after the move (for bytecode's recorded file name). Writing the
    home knows the target only here: the items of the lib dir and of the data dir land at the target's root, as
    :func:`~._layout.plan_target` moves them."""
    parent = posixpath.dirname(home_rel)
    for base in (lib, interpreter.scheme.data):
        rel = posixpath.relpath(parent, base)
        if not rel.startswith(".."):
            return str(target / rel) if rel != "." else str(target)
    return str(target / parent)


def _starts_with(path: Path, prefix: bytes) -> bool:
    """Peek at a script's first bytes: only ``#!python`` scripts are read whole (to be rewritten)."""
    with open(path, "rb") as stream:
        return stream.read(len(prefix)) == prefix
