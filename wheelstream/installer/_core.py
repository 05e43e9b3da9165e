"""Install unpacked wheels into ``--target`` with the result ``pip install --no-deps --target`` gives.

How pip does ``--target`` (pip 26.3, verified by reading the source and by the equivalence tests)
------------------------------------------------------------------------------------------------------

``_internal/commands/install.py`` ``InstallCommand.run`` makes a temporary directory and installs every wheel
into it as a ``--home`` (``install_given_reqs(..., home=target_temp_dir)``). The scheme is
``_internal/locations/_sysconfig.py`` ``get_scheme(name, home=...)``: sysconfig's preferred *home* scheme
(POSIX ``posix_home``) with every base variable set to the home, so

    purelib = platlib = <home>/lib/python        scripts = <home>/bin        data = <home>
    headers = <home>/include/python/<name>       or, when pip runs in a virtualenv,
              <home>/include/site/pythonX.Y/<name>                  (X.Y of that interpreter)

``<name>`` is the requirement name, which for a wheel given by path or URL is the *canonical* name from the file
name (``_internal/req/constructors.py`` builds ``f"{wheel.name}=={wheel.version}"`` from ``parse_wheel_filename``).

``_internal/operations/install/wheel.py`` ``_install_wheel`` then writes, in archive order, root files into the
lib dir (purelib if ``Root-Is-Purelib: true``, else platlib), ``<x>.data/<key>/...`` into the scheme path of
``key``, and ``<x>.data/scripts/*`` last (minus setuptools' entry-point wrappers), fixing ``#!python`` lines;
generates console/gui launchers into ``scripts``; writes ``INSTALLER``, ``direct_url.json``, ``REQUESTED`` and
RECORD. RECORD paths are relative to the lib dir, so scripts appear as ``../../bin/x``; pip never rewrites them
after the move below, and neither do we (the rows match pip's byte for byte).

Finally ``InstallCommand._handle_target_dir`` moves the *items* of purelib, of platlib (if it differs) and of the
data dir (= the home) into the target, skipping data items that are a string prefix of a lib dir (``lib``).
So: lib contents → target root, ``.data/data/*`` → target root, scripts → ``target/bin``, headers →
``target/include/...``. For each item: if the target has it already, it is skipped with a warning, unless
``--upgrade``, which deletes the old item (never a symlink: those are skipped with a warning) and moves the new.

What we do differently (same result, safer)
--------------------------------------------

* Every check first: filename, tags (pip checks them for direct links too: ``_fail_if_link_is_unsupported_wheel``),
  ``WHEEL``, ``METADATA`` against the file name, RECORD against the digests taken while extracting (pip checks
  none), entry points.
* One installed file, one RECORD row. Two archive entries that install to one path (``pkg/x.py`` and
  ``<x>.data/purelib/pkg/x.py``), or a file where another needs a directory, are refused: pip lets the later
  one win and keeps both rows, one with a stale hash. A file we generate (a launcher, ``INSTALLER``,
  ``REQUESTED``, ``direct_url.json``) wins over an archive file at its path, as in pip, and the archive's row
  goes (pip keeps it); so does the row of an archive ``.pyc`` that ``compile_bytecode`` rewrote.
* The temporary home lives *inside the target* (``DIR/.wheelstream-tmp-*``) so the final moves are renames on
  one file system; the move plan is computed in full before the first rename, and :mod:`._commit` undoes a
  partial commit. pip's ``shutil.move`` loop can die halfway.
* Files come from a :class:`~wheelstream._staged.StagedWheel`: a tree this process claimed is *moved* (whole
  top-level directories with one rename each when every file in them lands at the same relative path — the
  common case: ``torch/`` is one rename, not 12k); the shared unpacked-wheel cache is copied or hardlinked
  and never written.
* ``INSTALLER`` says ``wheelstream``; bytecode (``compile_bytecode``) records the final path, not the temporary.
* Memory stays flat in the file count beyond the staged tree itself (a count bomb has a hundred thousand
  files): a root file's destination and RECORD path follow from its name and its row from its staged digest,
  so only ``.data`` files, files not installed and rows spelt otherwise are kept; RECORD is read, checked and
  written a block at a time (:mod:`._records`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import posixpath
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._staged import StagedWheel
from ..errors import DiskError, Interrupted, UsageError, WheelMetadataError, WheelstreamError, one_line, shown
from ._commit import (
    RESERVED_PREFIX,
    TMP_PREFIX,
    Move,
    UnfinishedCommit,
    commit,
    deliver,
    finish_interrupted,
    own_home,
    retire,
)
from ._compile import compile_files
from ._destination import HomeWriter, LinkMode
from ._direct_url import direct_url_json
from ._interpreter import Interpreter, probe_interpreter
from ._layout import (
    Placement,
    in_lib,
    is_entrypoint_wrapper,
    lib_dir,
    place,
    plan_target,
    scheme_paths,
    target_item,
)
from ._metadata import WheelInfo, check_tags, parse_filename, read_wheel_info
from ._records import VerifiedRecord, read_record, record_blocks
from ._scripts import Launcher, console_script_specs, fix_shebang, launcher_bytes, parse_entry_point

__all__ = ["InstallReport", "WheelToInstall", "install_staged", "install_staged_many"]

INSTALLER = b"wheelstream\n"


@dataclass(frozen=True, slots=True)
class WheelToInstall:
    """One wheel of a transaction, with the URL it came from (for ``direct_url.json``) if any."""

    staged: StagedWheel
    direct_url: str | None = None  # credentials are redacted before writing
    url_hash: str | None = None  # sha256 hex of the whole wheel file, when known


@dataclass(frozen=True, slots=True)
class InstallReport:
    """What an install did to the target."""

    installed: tuple[str, ...]  # top-level items moved into the target
    replaced: tuple[str, ...]  # of those, items that replaced existing ones (upgrade)
    skipped: tuple[str, ...]  # top-level items left alone because the target had them
    files_written: int  # files created in the install tree (moved, copied, linked or generated)
    files_linked: int  # of those, hardlinks to the staged tree
    bytes_written: int  # bytes copied or generated (moves and hardlinks cost none)
    warnings: tuple[str, ...]
    files_moved: int = 0  # of ``files_written``, files renamed out of a tree this process owned


@dataclass
class _Prepared:
    """A wheel that passed every check, with everything needed to write it.

    Nothing here grows with the wheel's plain files (a count bomb has a hundred thousand): a file outside
    ``.data`` lands at ``<lib>/<name>`` (:func:`~._layout.in_lib`) under its own name in RECORD, with the row
    its staged digest spells unless :class:`~._records.VerifiedRecord` kept another, so only the exceptions
    are stored."""

    item: WheelToInstall
    info: WheelInfo
    record: VerifiedRecord
    special: dict[str, Placement]  # .data files to install: data, then scripts, each in archive order
    # Members not installed: setuptools' entry-point wrappers (their rows stay as they are) and archive files a
    # generated file replaces (``dropped``: their rows go too).
    skipped: set[str]
    dropped: set[str]
    launchers: list[Launcher]
    lib: str  # home-relative lib dir

    def placed(self) -> Iterator[tuple[str, str, bool]]:
        """(member, home-relative path, is a ``.data/scripts`` file) of every file to install, in pip's order:
        root files, then ``.data``, then ``.data/scripts``, each in archive order."""
        special, skipped, lib = self.special, self.skipped, self.lib
        for member in self.item.staged.files:
            if member not in special and member not in skipped:
                yield member, in_lib(lib, member), False
        for member, placement in special.items():
            if member not in skipped:
                yield member, placement.dest, placement.script

    def record_path(self, member: str, dest: str) -> str:
        """A placed file's path in the installed RECORD: a root file's is its own name (the same string)."""
        return _record_path(dest, self.lib) if member in self.special else member


@dataclass
class _Warnings:
    sink: Callable[[str], None] | None
    seen: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        message = one_line(message)  # it names the wheel's items: no control character reaches a terminal
        self.seen.append(message)
        if self.sink is not None:
            self.sink(message)


def _prepare(item: WheelToInstall, interpreter: Interpreter, ignore_tags: bool, warn: _Warnings) -> _Prepared:
    """Run every check on one wheel; nothing is written."""
    staged = item.staged
    name = parse_filename(staged.filename)
    if not ignore_tags:
        check_tags(staged.filename, name.tags, interpreter.tags, interpreter.executable)
    info = read_wheel_info(staged, name)
    if info.wheel_version > (1, 0):
        warn(
            f"{staged.filename}: installing from a newer Wheel-Version ({'.'.join(map(str, info.wheel_version))})"
        )
    record_member = f"{info.dist_info}/RECORD"
    if record_member not in staged.files:
        raise WheelMetadataError("file missing", wheel=staged.filename, entry=record_member)
    record = read_record(staged, info.dist_info)

    paths = scheme_paths(interpreter.scheme, info.name)
    lib = lib_dir(interpreter.scheme, info.root_is_purelib)
    entry_names = [*info.console_scripts, *info.gui_scripts]
    data: dict[str, Placement] = {}
    scripts: dict[str, Placement] = {}
    wrappers: set[str] = set()
    for member in staged.files:
        if not member.partition("/")[0].endswith(".data"):
            continue  # a root file: <lib>/<member>
        placement = place(member, paths, lib, staged.filename)
        if not placement.script:
            data[member] = placement
        elif not is_entrypoint_wrapper(placement.dest, entry_names):
            scripts[member] = placement
        else:
            wrappers.add(member)
    ep_member = f"{info.dist_info}/entry_points.txt"
    launchers = [
        parse_entry_point(n, v, gui=False, wheel=staged.filename, entry=ep_member)
        for n, v in console_script_specs(info.console_scripts, interpreter)
    ] + [
        parse_entry_point(n, v, gui=True, wheel=staged.filename, entry=ep_member)
        for n, v in info.gui_scripts.items()
    ]
    special = {**data, **scripts}
    generated = _generated_paths(launchers, item, interpreter, posixpath.join(lib, info.dist_info))
    # archive files a generated one replaces: neither written nor kept in RECORD
    replaced = _check_overlaps(staged.files, special, wrappers, generated, lib, staged.filename)
    return _Prepared(item, info, record, special, wrappers | replaced, replaced, launchers, lib)


def _generated_paths(
    launchers: Sequence[Launcher], item: WheelToInstall, interpreter: Interpreter, meta: str
) -> dict[str, str]:
    """Home-relative path -> what we generate there (RECORD itself is rewritten in place, so not listed)."""
    generated: dict[str, str] = {}
    for launcher in launchers:
        path = posixpath.normpath(posixpath.join(interpreter.scheme.scripts, launcher.name))
        if path in generated:
            raise WheelMetadataError(
                f"two script entry points are named {shown(launcher.name)} (console_scripts and gui_scripts, "
                "or a versioned pip/easy_install name)",
                wheel=item.staged.filename,
                entry=f"{meta.rsplit('/', 1)[-1]}/entry_points.txt",
            )
        generated[path] = f"the launcher of entry point {shown(launcher.name)}"
    names = ["INSTALLER", "REQUESTED"] + (["direct_url.json"] if item.direct_url is not None else [])
    for each in names:
        generated[posixpath.normpath(f"{meta}/{each}")] = f"the {each} file the installer writes"
    return generated


def _check_overlaps(
    files: Collection[str],
    special: dict[str, Placement],
    wrappers: set[str],
    generated: dict[str, str],
    lib: str,
    wheel: str,
) -> set[str]:
    """Refuse a wheel two of whose files would be one installed file, or a file where another needs a
    directory; return the archive members a generated file replaces (pip writes both, the generated last).

    Linear in the files (a wheel may have tens of thousands) and keeping nothing per root file: those land at
    ``<lib>/<name>``, so two of them never meet and the one at a home path is found from the path; only the
    ``.data`` files' destinations are collected. Each parent directory is visited once; the loops that name
    the culprits run only then."""

    def root_at(path: str) -> str | None:
        """The root file (not in ``.data``) installed at home path ``path``, if any."""
        if lib in ("", "."):
            name = path
        elif path.startswith(lib + "/"):
            name = path[len(lib) + 1 :]
        else:
            return None
        return name if name in files and name not in special and name not in wrappers else None

    data_owner: dict[str, str] = {}  # home path -> member, of the .data files
    for member, placement in special.items():  # after every root file, in pip's order
        first = root_at(placement.dest) or data_owner.setdefault(placement.dest, member)
        if first != member:
            raise WheelMetadataError(
                f"two archive entries install to one file: {shown(first)} and {shown(member)}",
                wheel=wheel,
                entry=member,
            )

    def owner(path: str) -> str | None:
        return root_at(path) or data_owner.get(path)

    below: dict[str, str] = {}  # directory -> one file below it

    def visit(path: str) -> None:
        parent = path.rpartition("/")[0]
        while parent and parent not in below:
            below[parent] = path
            parent = parent.rpartition("/")[0]

    for member in files:
        if member not in special and member not in wrappers:
            visit(in_lib(lib, member))
    for path in (*data_owner, *generated):
        visit(path)
    clashes = {path for path in below if path in generated or owner(path) is not None}
    if clashes:
        path = min(clashes)

        def who(path: str) -> str:
            return generated[path] if path in generated else f"entry {shown(owner(path) or '')}"

        raise WheelMetadataError(
            f"{who(path)} installs a file where {who(below[path])} needs a directory",
            wheel=wheel,
            entry=owner(path) if path not in generated else None,
        )
    return {member for member in map(owner, generated) if member is not None}


def _refuse_reserved_names(prep: _Prepared, interpreter: Interpreter) -> None:
    """No wheel may put an item into the target under a name wheelstream uses for its own bookkeeping
    (temporary homes, retired directories): what another installer would make of one is its business, but
    wheelstream never creates one itself (DESIGN §5). Launchers and ``.dist-info`` files land in ``bin/`` and
    the dist-info directory, so only the archive's own files can reach such a name."""
    for member, dest, _script in prep.placed():
        item = target_item(dest, interpreter.scheme)
        if item.startswith(RESERVED_PREFIX):
            raise WheelMetadataError(
                f"would install {item!r} into the target, a name wheelstream reserves for its own bookkeeping",
                wheel=prep.item.staged.filename,
                entry=member,
            )


def _warn_about_overwrites(prepared: Sequence[_Prepared], warn: _Warnings) -> None:
    """Two wheels of one transaction that ship one path: the later one's file is installed, as pip does, and
    shared files are normal (every ``nvidia-*`` wheel ships the same empty ``nvidia/__init__.py``). Only a
    path whose contents differ is worth a warning: the earlier wheel's RECORD then names a hash its file no
    longer has."""
    if len(prepared) < 2:
        return
    owners: dict[str, tuple[str, str]] = {}  # home path -> (wheel, sha256), of the wheels before
    for prep in prepared:
        staged, last = prep.item.staged, prep is prepared[-1]
        for member, dest, _script in prep.placed():
            digest = staged.files[member].sha256
            earlier = owners.get(dest)
            if earlier is not None and earlier[1] != digest:
                warn(
                    f"{staged.filename} overwrites {dest.rpartition(prep.lib + '/')[2]!r}, which "
                    f"{earlier[0]} installs with other contents"
                )
            if not last:  # the last wheel's paths are its own: nothing after it looks them up
                owners[dest] = (staged.filename, digest)


def _starts_with(path: Path, prefix: bytes) -> bool:
    """Peek at a script's first bytes: only ``#!python`` scripts are read whole (to be rewritten)."""
    with open(path, "rb") as stream:
        return stream.read(len(prefix)) == prefix


def _final_dir(home_rel: str, interpreter: Interpreter, lib: str, target: Path) -> str:
    """Where a home file's directory will be after the move (for bytecode's recorded file name)."""
    parent = posixpath.dirname(home_rel)
    for base in (lib, interpreter.scheme.data):
        rel = posixpath.relpath(parent, base)
        if not rel.startswith(".."):
            return str(target / rel) if rel != "." else str(target)
    return str(target / parent)


def _record_path(home_rel: str, lib: str) -> str:
    """RECORD paths are relative to the lib dir (``../../bin/x`` for scripts). A root file's is its own name
    (:meth:`_Prepared.record_path`); this is for ``.data`` and generated files, most of which are below the lib
    dir too, and ``posixpath.relpath`` (two ``abspath`` calls, each with a ``getcwd``) is kept for the rest
    (docs/performance.md#d-record-fast-paths)."""
    if home_rel.startswith(lib + "/"):
        return home_rel[len(lib) + 1 :]
    return posixpath.relpath(home_rel, lib)


def _move_whole_dirs(prep: _Prepared, writer: HomeWriter) -> set[str]:
    """Rename each top-level directory of an owned tree that lands unchanged at ``<lib>/<dir>``; return the
    directories it moved. A directory is left to the per-file path when any file in it goes elsewhere or is
    not installed (``.data``, a file a generated one replaces), when it holds a directory entry with no file
    below it (pip creates no directory for those), or when the home already has it (a second wheel of a
    namespace package)."""
    staged, lib = prep.item.staged, prep.lib
    special, skipped = prep.special, prep.skipped
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


def _write_wheel(
    prep: _Prepared,
    writer: HomeWriter,
    interpreter: Interpreter,
    target: Path,
    compile_bytecode: bool,
) -> None:
    """Write one prepared wheel into the home, as pip's ``_install_wheel`` does, ending with its RECORD."""
    staged, info, lib = prep.item.staged, prep.info, prep.lib
    files = staged.files
    changed: dict[str, tuple[str, int]] = {}  # record path -> final (hash, size), of a rewritten script
    moved = _move_whole_dirs(prep, writer) if staged.movable and writer.link_mode == "move" else set()
    for member, dest, script in prep.placed():
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
            changed[prep.record_path(member, dest)] = writer.written[dest]

    compiled: set[str] = set()  # record paths of the bytecode written
    stale: set[str] = set()  # archive .pyc files the compiler just replaced: their rows go, the new ones stay
    if compile_bytecode:
        sources = sorted(
            path
            for member, dest, _ in prep.placed()
            if (path := prep.record_path(member, dest)).endswith(".py")
        )
        homes = [posixpath.normpath(posixpath.join(lib, p)) for p in sources]
        jobs = [(writer.home / h, _final_dir(h, interpreter, lib, target)) for h in homes]
        for pyc in compile_files(jobs, interpreter):
            rel = os.path.relpath(pyc, writer.home).replace(os.sep, "/")
            compiled.add(posixpath.relpath(rel, lib))
        stale = {member for member, dest, _ in prep.placed() if prep.record_path(member, dest) in compiled}

    generated: list[str] = []  # home-relative
    for launcher in prep.launchers:
        rel = posixpath.join(interpreter.scheme.scripts, launcher.name)
        writer.write_bytes(rel, launcher_bytes(launcher, interpreter), "launcher")
        generated.append(rel)
    meta = posixpath.join(lib, info.dist_info)
    writer.write_bytes(f"{meta}/INSTALLER", INSTALLER)
    generated.append(f"{meta}/INSTALLER")
    if prep.item.direct_url is not None:
        writer.write_bytes(
            f"{meta}/direct_url.json", direct_url_json(prep.item.direct_url, prep.item.url_hash)
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
    writer.write_blocks(f"{meta}/RECORD", record_blocks(_installed_record(prep, rows, stale)))


def _installed_record(
    prep: _Prepared, rows: dict[str, tuple[str, str]], stale: set[str]
) -> Iterator[tuple[str, str, str]]:
    """The installed RECORD's rows as pip's ``get_csv_rows_for_installed`` makes them, in the order its
    ``_normalized_outrows`` sorts them; ``rows`` holds those of rewritten, generated and compiled files.

    Each path has one row (two files at one path are refused; a generated file or a compiled ``.pyc`` takes
    the archive file's row), so sorting the paths sorts the rows. A root file's path is its archive name, and
    its row is made as it is written out: the sorted list of names is all that grows with the file count."""
    files, record = prep.item.staged.files, prep.record
    rows = dict(rows)
    rows.update(record.directory_rows(prep.item.staged))
    for member in prep.skipped - prep.dropped:  # entry-point wrappers: not installed, their rows as they were
        rows[member] = record.fields(member, files[member])
    for member, placement in prep.special.items():
        if member not in prep.skipped and member not in stale:
            rows.setdefault(prep.record_path(member, placement.dest), record.fields(member, files[member]))
    paths = [m for m in files if m not in prep.special and m not in prep.skipped and m not in stale]
    paths.extend(rows)
    paths.sort()
    for path in paths:
        fields = rows.get(path)
        if fields is None:
            fields = record.fields(path, files[path])
        yield path, *fields


def _cannot_install(exc: OSError, target: Path, wheel: str | None) -> DiskError:
    """A disk full, a permission, an I/O error while installing: one line naming the target (the file is
    often the staged source of a copy, which says little to the user), the cause, and what it touched."""
    touched = f" ({exc.filename})" if exc.filename else ""
    return DiskError(
        f"cannot install into {target}: {exc.strerror or exc}{touched}; the target is unchanged", wheel=wheel
    )


def install_staged_many(
    wheels: Sequence[WheelToInstall],
    target: Path,
    *,
    python: str | None = None,
    upgrade: bool = False,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    ignore_tags: bool = False,
    on_warning: Callable[[str], None] | None = None,
    _move: Move | None = None,
) -> InstallReport:
    """Install several wheels in one transaction, as one ``pip install --target`` command would.

    They share one temporary home, so two wheels that both ship scripts share ``bin/`` exactly as in pip
    (installing them one by one would skip the second ``bin/`` as an existing item). ``_move`` is a test seam
    for the final renames.
    """
    if link_mode not in ("move", "copy", "hardlink"):
        raise UsageError(f"unknown link mode {link_mode!r} (use 'move', 'copy' or 'hardlink')")
    warn = _Warnings(on_warning)
    interpreter = probe_interpreter(python)
    prepared = []
    for item in wheels:
        try:
            prepared.append(_prepare(item, interpreter, ignore_tags, warn))
            _refuse_reserved_names(prepared[-1], interpreter)
        except WheelstreamError as exc:
            exc.with_wheel(item.staged.filename)
            raise
    _warn_about_overwrites(prepared, warn)

    target = Path(os.path.abspath(target))
    if os.path.lexists(target) and not target.is_dir():
        raise UsageError(f"target path exists but is not a directory: {target}")
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        finished = finish_interrupted(target, warn)
    except OSError as exc:
        raise _cannot_install(exc, target, None) from exc
    tmp: Path | None = None
    owner: int | None = None
    keep_tmp = False  # a commit that could not be undone: what it did not move stays for the next install
    try:
        try:
            try:
                tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=target))
                owner = own_home(tmp)
            except OSError as exc:
                raise _cannot_install(exc, target, None) from exc
            if finished:
                warn(
                    f"an earlier install into {target} was killed halfway; finished it: {', '.join(finished)}"
                )
            writer = HomeWriter(tmp / "home", link_mode)
            writer.home.mkdir()
            for prep in prepared:
                try:
                    _write_wheel(prep, writer, interpreter, target, compile_bytecode)
                except OSError as exc:
                    raise _cannot_install(exc, target, prep.item.staged.filename) from exc
                writer.shared = True  # the next wheel's files may land on this one's
            plan = plan_target(writer.home, interpreter.scheme, target, upgrade, warn)
            for lost in plan.dropped:
                warn(f"{lost.relative_to(writer.home)} is not installed: pip --target leaves it behind too")
            try:
                held = commit(plan, target, tmp, _move)
            except UnfinishedCommit as exc:
                keep_tmp = True
                raise DiskError(
                    f"cannot install into {target}: {exc}; the target holds part of this install, "
                    f"and the next install into it finishes it ({tmp.name} holds the rest)"
                ) from exc
            except OSError as exc:
                raise _cannot_install(exc, target, None) from exc
        except BaseException:
            if not keep_tmp:
                if tmp is not None:
                    retire(tmp)
                if created:
                    with contextlib.suppress(OSError):
                        target.rmdir()
            raise
        interrupted = retire(tmp)
    finally:
        if owner is not None:
            os.close(owner)
    try:
        deliver(held)  # Ctrl-C or SIGTERM held during the renames: their handlers run now
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:  # the install is complete: say so with the interrupt
        raise Interrupted.after_install(target)
    return InstallReport(
        installed=tuple(plan.moves),
        replaced=tuple(sorted(plan.replace)),
        skipped=tuple(plan.skipped),
        files_written=writer.files_written,
        files_linked=writer.linked,
        bytes_written=writer.bytes_written,
        files_moved=writer.moved,
        warnings=tuple(warn.seen),
    )


def install_staged(
    staged: StagedWheel,
    target: Path,
    *,
    python: str | None = None,
    upgrade: bool = False,
    link_mode: LinkMode = "move",
    compile_bytecode: bool = False,
    ignore_tags: bool = False,
    direct_url: str | None = None,
    url_hash: str | None = None,
    on_warning: Callable[[str], None] | None = None,
    _move: Move | None = None,
) -> InstallReport:
    """Install one unpacked wheel into ``target``: checks, build in a temporary home, atomic moves.

    ``python`` is the interpreter the install is for (tags, shebangs, header path, bytecode); ``None`` means
    the running one. ``direct_url`` is the URL or path the wheel came from (written to ``direct_url.json``,
    credentials removed); ``url_hash`` the sha256 hex of the wheel file. Warnings (skipped items, ...) go to
    ``on_warning`` as they happen and are listed in the report.
    """
    return install_staged_many(
        [WheelToInstall(staged, direct_url, url_hash)],
        target,
        python=python,
        upgrade=upgrade,
        link_mode=link_mode,
        compile_bytecode=compile_bytecode,
        ignore_tags=ignore_tags,
        on_warning=on_warning,
        _move=_move,
    )
