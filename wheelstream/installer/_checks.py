"""Every check on a wheel, made before anything is written; what passes is a :class:`CheckedWheel`.

A wheel is attacker-controlled and pip trusts much of it; here a wheel that fails any of these never gets a
file into the temporary home, so an install is refused whole (the rest of pip's mapping: :mod:`._core`):

* Every check first: filename, tags (pip checks them for direct links too: ``_fail_if_link_is_unsupported_wheel``),
  ``WHEEL``, ``METADATA`` against the file name, RECORD against the digests taken while extracting (pip checks
  none), entry points.
* One installed file, one RECORD row. Two archive entries that install to one path (``pkg/x.py`` and
  ``<x>.data/purelib/pkg/x.py``), or a file where another needs a directory, are refused: pip lets the later
  one win and keeps both rows, one with a stale hash. A file we generate (a launcher, ``INSTALLER``,
  ``REQUESTED``, ``direct_url.json``) wins over an archive file at its path, as in pip, and the archive's row
  goes (pip keeps it).
* No wheel puts a top-level item named ``.wheelstream-*`` into the target (:func:`refuse_reserved_names`).
* Two wheels of one transaction may ship one path; they are written in pip's order (:func:`install_order`),
  so the same one wins as with pip, and only differing contents are worth a warning
  (:func:`warn_about_overwrites`).

:class:`Checks` runs them for a transaction: each wheel's as soon as it is staged (an install of several runs
them while the other downloads go on), the rest when the install starts.

Where each file goes is decided here, once, and kept in the :class:`CheckedWheel` that :mod:`._home` writes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from .._staged import StagedWheel
from ..errors import WheelMetadataError, WheelstreamError, one_line, shown
from ._commit import RESERVED_PREFIX
from ._interpreter import Interpreter
from ._layout import Placement, in_lib, is_entrypoint_wrapper, lib_dir, place, scheme_paths, target_item
from ._metadata import WheelInfo, check_requires_python, check_tags, parse_filename, read_wheel_info
from ._records import VerifiedRecord, read_record
from ._scripts import Launcher, console_script_specs, parse_entry_point

__all__ = [
    "CheckedWheel",
    "install_order",
    "Checks",
    "Warnings",
    "WheelToInstall",
    "check_wheel",
    "refuse_reserved_names",
    "warn_about_overwrites",
]


@dataclass(frozen=True, slots=True)
class WheelToInstall:
    """One wheel of a transaction, with the URL it came from (for ``direct_url.json``) if any."""

    staged: StagedWheel
    direct_url: str | None = None  # credentials are redacted before writing
    url_hash: str | None = None  # sha256 hex of the whole wheel file, when known


@dataclass
class CheckedWheel:
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


def _record_path(home_rel: str, lib: str) -> str:
    """RECORD paths are relative to the lib dir (``../../bin/x`` for scripts). A root file's is its own name
    (:meth:`CheckedWheel.record_path`); this is for ``.data`` and generated files, most of which are below the
    lib dir too, and ``posixpath.relpath`` (two ``abspath`` calls, each with a ``getcwd``) is kept for the rest
    (docs/performance.md#d-record-fast-paths)."""
    if home_rel.startswith(lib + "/"):
        return home_rel[len(lib) + 1 :]
    return posixpath.relpath(home_rel, lib)


@dataclass
class Warnings:
    """Where an install's warnings go: to ``sink`` as they happen, and kept for the report."""

    sink: Callable[[str], None] | None
    seen: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        message = one_line(message)  # it names the wheel's items: no control character reaches a terminal
        self.seen.append(message)
        if self.sink is not None:
            self.sink(message)


def check_wheel(
    item: WheelToInstall, interpreter: Interpreter, ignore_tags: bool, warn: Warnings
) -> CheckedWheel:
    """Run every check on one wheel; nothing is written."""
    staged = item.staged
    name = parse_filename(staged.filename)
    if not ignore_tags:
        check_tags(staged.filename, name.tags, interpreter.supported, interpreter.described)
    info = read_wheel_info(staged, name)
    if not ignore_tags:  # (--ignore-tags: for another interpreter than the one probed, both go)
        check_requires_python(
            info.requires_python, interpreter.full_version, staged.filename, interpreter.described, warn
        )
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
    return CheckedWheel(item, info, record, special, wrappers | replaced, replaced, launchers, lib)


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


def refuse_reserved_names(checked: CheckedWheel, interpreter: Interpreter) -> None:
    """No wheel may put an item into the target under a name wheelstream uses for its own bookkeeping
    (temporary homes, retired directories): what another installer would make of one is its business, but
    wheelstream never creates one itself (DESIGN §5). Launchers and ``.dist-info`` files land in ``bin/`` and
    the dist-info directory, so only the archive's own files can reach such a name."""
    for member, dest, _script in checked.placed():
        item = target_item(dest, interpreter.scheme)
        if item.startswith(RESERVED_PREFIX):
            raise WheelMetadataError(
                f"would install {item!r} into the target, a name wheelstream reserves for its own bookkeeping",
                wheel=checked.item.staged.filename,
                entry=member,
            )


def install_order(wheels: Sequence[CheckedWheel]) -> list[CheckedWheel]:
    """The order the wheels of one transaction are written in: pip's. Without dependencies every wheel weighs
    the same in its installation order, which then sorts by canonical name, last first
    (``get_installation_order``): so where two wheels ship one path (``opencv-python`` and
    ``opencv-contrib-python`` both ship ``cv2/``), the file of the name that sorts first is the one left,
    whatever order the command named them in."""
    return sorted(wheels, key=lambda wheel: canonicalize_name(wheel.info.name), reverse=True)


def warn_about_overwrites(wheels: Sequence[CheckedWheel], warn: Warnings) -> None:
    """Two wheels of one transaction that ship one path: the file of the one written later
    (:func:`install_order`) is installed, as pip does, and shared files are normal (every ``nvidia-*`` wheel
    ships the same empty ``nvidia/__init__.py``). Only a path whose contents differ is worth a warning: the
    earlier wheel's RECORD then names a hash its file no longer has."""
    if len(wheels) < 2:
        return
    wheels = install_order(wheels)
    owners: dict[str, tuple[str, str]] = {}  # home path -> (wheel, sha256), of the wheels before
    for wheel in wheels:
        staged, last = wheel.item.staged, wheel is wheels[-1]
        for member, dest, _script in wheel.placed():
            digest = staged.files[member].sha256
            earlier = owners.get(dest)
            if earlier is not None and earlier[1] != digest:
                warn(
                    f"{staged.filename} overwrites {dest.rpartition(wheel.lib + '/')[2]!r}, which "
                    f"{earlier[0]} installs with other contents"
                )
            if not last:  # the last wheel's paths are its own: nothing after it looks them up
                owners[dest] = (staged.filename, digest)


class Checks:
    """The checks of one transaction's wheels: :func:`check_wheel` and :func:`refuse_reserved_names` per wheel,
    run by :meth:`add` as soon as a wheel is staged (``install_sources`` calls it as each download ends, while
    the others go on: ~1.5 ms a wheel that would otherwise wait for the last download), then, by :meth:`all`
    when the install starts, for any wheel not seen yet, and :func:`warn_about_overwrites` across them."""

    def __init__(self, interpreter: Interpreter, ignore_tags: bool, warn: Warnings) -> None:
        self.interpreter = interpreter
        self.ignore_tags = ignore_tags
        self.warn = warn
        # By ``id`` of the staged wheel, which the caller's result keeps alive until the install.
        self._done: dict[int, CheckedWheel] = {}

    def add(self, item: WheelToInstall) -> CheckedWheel:
        """Check one wheel (nothing is written); its error names it."""
        try:
            checked = check_wheel(item, self.interpreter, self.ignore_tags, self.warn)
            refuse_reserved_names(checked, self.interpreter)
        except WheelstreamError as exc:
            exc.with_wheel(item.staged.filename)
            raise
        self._done[id(item.staged)] = checked
        return checked

    def all(self, wheels: Sequence[WheelToInstall]) -> list[CheckedWheel]:
        """Every wheel of the transaction checked, in its order: what :meth:`add` checked already is reused."""
        checked = []
        for item in wheels:
            done = self._done.get(id(item.staged))
            checked.append(done if done is not None and done.item == item else self.add(item))
        warn_about_overwrites(checked, self.warn)
        return checked
