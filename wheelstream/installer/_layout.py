"""Where each file goes: archive name → path under pip's temporary ``--home``, then home → ``--target``.

Two stages, because that is how pip does ``--target`` (see the essay in :mod:`._core`):

1. :func:`place` maps an archive name into the home scheme like pip's ``_install_wheel`` (root files → the lib
   dir picked by ``Root-Is-Purelib``; ``<x>.data/<key>/<path>`` → the scheme path for ``key``, with ``headers``
   being ``include/<project>``; ``<x>.data/scripts/*`` are scripts).
2. :func:`plan_target` replays pip's ``_handle_target_dir`` over the finished home: the items of purelib, of
   platlib (if different) and of the data dir (the home itself, minus anything that is a string prefix of a lib
   dir — pip's ``startswith`` test, quirks included) become top-level items of the target, each subject to the
   skip-unless-``--upgrade`` rule, in pip's order, where a later item can replace one moved earlier.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import WheelMetadataError
from ._interpreter import HomeScheme

__all__ = [
    "Placement",
    "TargetPlan",
    "in_lib",
    "lib_dir",
    "place",
    "plan_target",
    "scheme_paths",
    "target_item",
]


class Placement(NamedTuple):
    """Where one archive file lands, relative to the home; ``script`` marks ``.data/scripts`` files."""

    dest: str
    script: bool


def scheme_paths(scheme: HomeScheme, project: str) -> dict[str, str]:
    """The five pip scheme keys, home-relative (``headers`` is the include dir plus the project name)."""
    return {
        "purelib": scheme.purelib,
        "platlib": scheme.platlib,
        "headers": posixpath.join(scheme.include, project),
        "scripts": scheme.scripts,
        "data": scheme.data,
    }


def lib_dir(scheme: HomeScheme, root_is_purelib: bool) -> str:
    """The directory root files and the ``.dist-info`` go to (pip: ``scheme.purelib`` or ``scheme.platlib``)."""
    return scheme.purelib if root_is_purelib else scheme.platlib


def in_lib(lib: str, name: str) -> str:
    """Where a root file (one outside ``<x>.data``) lands: ``<lib>/<name>``. The installer computes it when it
    needs it rather than keeping a placement per file (a wheel may have a hundred thousand)."""
    # The parser only lets canonical names through (no '', '.' or '..' component), so joining is enough;
    # no normpath per file (docs/performance.md#d-record-fast-paths).
    return f"{lib}/{name}" if lib not in ("", ".") else name


def place(name: str, paths: dict[str, str], lib: str, wheel: str) -> Placement:
    """Map one archive member like pip's ``root_scheme_file_maker`` / ``data_scheme_file_maker``."""
    top, _, rest = name.partition("/")
    if not top.endswith(".data"):
        return Placement(in_lib(lib, name), script=False)
    key, sep, sub = rest.partition("/")
    if not sep or not sub:
        raise WheelMetadataError(
            "unexpected file in .data: contents must be named <scheme key>/<path>", wheel=wheel, entry=name
        )
    if key not in paths:
        raise WheelMetadataError(
            f"unknown scheme key {key!r} in .data (valid: {', '.join(sorted(paths))})",
            wheel=wheel,
            entry=name,
        )
    return Placement(posixpath.normpath(posixpath.join(paths[key], sub)), script=key == "scripts")


def target_item(dest: str, scheme: HomeScheme) -> str:
    """The top-level target item a home-relative ``dest`` ends up in (what ``plan_target`` moves): the first
    component below purelib or platlib, else the first component below the data dir (the home itself)."""
    for lib in (scheme.purelib, scheme.platlib):
        if lib not in ("", ".") and dest.startswith(lib + "/"):
            return dest[len(lib) + 1 :].split("/", 1)[0]
    data = scheme.data
    rel = dest[len(data) + 1 :] if data not in ("", ".") and dest.startswith(data + "/") else dest
    return rel.split("/", 1)[0]


def is_entrypoint_wrapper(dest: str, entry_names: Iterable[str]) -> bool:
    """pip drops ``.data/scripts`` files that setuptools generated for an entry point (EP, EP.exe, EP-script.py)."""
    base = posixpath.basename(dest)
    lower = base.lower()
    for suffix in (".exe", "-script.py", ".pya"):
        if lower.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base in set(entry_names)


@dataclass
class TargetPlan:
    """The top-level moves pip's ``_handle_target_dir`` would make, decided before any of them happens."""

    moves: dict[str, Path] = field(default_factory=dict)  # target item name -> source in the home
    replace: set[str] = field(default_factory=set)  # existing target items to be replaced
    skipped: list[str] = field(default_factory=list)  # item names left alone (warned about)
    dropped: list[Path] = field(default_factory=list)  # home items pip never moves (lost in pip too)


def plan_target(
    home: Path, scheme: HomeScheme, target: Path, upgrade: bool, warn: Callable[[str], None]
) -> TargetPlan:
    """Replay pip's ``_handle_target_dir`` (``_internal/commands/install.py``) without touching the target."""
    home_s = str(home)
    purelib = os.path.normpath(os.path.join(home_s, scheme.purelib))
    platlib = os.path.normpath(os.path.join(home_s, scheme.platlib))
    data = os.path.normpath(os.path.join(home_s, scheme.data))
    lib_dirs = [d for d in (purelib,) if os.path.exists(d)]
    if os.path.exists(platlib) and platlib != purelib:
        lib_dirs.append(platlib)
    if os.path.exists(data):
        lib_dirs.append(data)

    plan = TargetPlan()
    considered: list[str] = []
    for lib in lib_dirs:
        for item in sorted(os.listdir(lib)):
            source = os.path.join(lib, item)
            if lib == data and any(s.startswith(source) for s in lib_dirs[:-1]):
                continue  # "Do not move library directories a second time as data" (a bare string prefix test)
            considered.append(source)
            dest = target / item
            existed = os.path.lexists(dest)
            if existed or item in plan.moves:
                if not upgrade:
                    warn(f"Target directory {dest} already exists. Specify --upgrade to force replacement.")
                    plan.skipped.append(item)
                    continue
                if existed and item not in plan.moves and os.path.islink(dest):
                    warn(
                        f"Target directory {dest} already exists and is a link. pip will not automatically "
                        "replace links, please remove if replacement is desired."
                    )
                    plan.skipped.append(item)
                    continue
                if existed:
                    plan.replace.add(item)
            plan.moves[item] = Path(source)
    plan.dropped = _left_behind(home, considered)
    return plan


def _left_behind(home: Path, considered: list[str]) -> list[Path]:
    """Files in the home that pip's loop never looks at (e.g. ``.data/data/lib/x``): pip loses them silently."""
    roots = set(considered)
    lost: list[Path] = []
    for root, dirs, files in os.walk(home):
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) not in roots)
        lost.extend(Path(root, f) for f in sorted(files) if os.path.join(root, f) not in roots)
    return lost
