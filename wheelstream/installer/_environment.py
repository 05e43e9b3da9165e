"""Which environment a plain install goes into, found the way pip and uv find it.

An environment is a *root* directory and the interpreter's install scheme relative to it (purelib, platlib,
scripts, data, headers), read from the interpreter itself (:mod:`._probe`), never from the one running
wheelstream. The root is the common parent of the scheme's directories — the venv, the prefix, or the base of
a system interpreter's scheme — and the install's temporary home lives in it, so every final move is a rename
on one file system, as ``--target`` installs do.

How the interpreter is chosen (uv's rules, pip's refusals):

* ``--prefix DIR``: pip's ``--prefix`` scheme of ``--python`` (else the running interpreter) under ``DIR``.
* ``--python PATH``: that interpreter's environment. One that is not a virtual environment needs
  ``--system`` (uv), and one marked ``EXTERNALLY-MANAGED`` (PEP 668) is refused with pip's reason unless
  ``--break-system-packages``.
* neither: ``$VIRTUAL_ENV``, then a ``.venv`` in the current directory or above (a directory with
  ``pyvenv.cfg``); with ``--system``, the first ``python3`` on ``PATH``. None found is a usage error naming
  the options.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExternallyManaged, UsageError
from ._interpreter import HomeScheme, Interpreter, probe_interpreter

__all__ = ["Environment", "EnvironmentReport", "find_environment", "venv_python"]

_NONE_FOUND = (
    "no virtual environment found: activate one (VIRTUAL_ENV), create .venv in this directory or above, "
    "or say where to install with --python, --prefix, --target or --system"
)


@dataclass(frozen=True, slots=True)
class Environment:
    """An install destination with pip's normal (non-``--target``) semantics.

    ``interpreter.scheme`` is the scheme *relative to* ``root``: a temporary home laid out with it mirrors the
    environment, so RECORD paths (``../../../bin/x``), launchers and bytecode come out as they will be."""

    root: Path
    interpreter: Interpreter
    kind: str  # "venv", "system" or "prefix": for messages

    @property
    def lib_dirs(self) -> tuple[Path, ...]:
        """purelib, then platlib when it differs: where installed distributions are found."""
        scheme = self.interpreter.scheme
        dirs = [self.root / scheme.purelib]
        if scheme.platlib != scheme.purelib:
            dirs.append(self.root / scheme.platlib)
        return tuple(Path(os.path.normpath(d)) for d in dirs)

    def describe(self) -> str:
        return f"{self.kind} {self.root}"


@dataclass(frozen=True, slots=True)
class EnvironmentReport:
    """What an install into (or an uninstall from) an environment did. Here, beside :class:`Environment`, not
    with the installer: ``wheelstream.install``'s annotations name it, and it must resolve without importing that."""

    root: Path
    installed: tuple[str, ...]  # "name version" of each distribution written
    removed: tuple[str, ...]  # "name version" of each distribution replaced or uninstalled
    skipped: tuple[str, ...]  # "name version" already installed (not reinstalled)
    files_written: int
    files_removed: int
    warnings: tuple[str, ...]
    files_linked: int = 0
    files_moved: int = 0
    bytes_written: int = 0


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment ``venv``."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _active_venv(cwd: Path) -> Path | None:
    """``$VIRTUAL_ENV``, else the nearest ``.venv`` holding a ``pyvenv.cfg`` (uv's order)."""
    active = os.environ.get("VIRTUAL_ENV")
    if active:
        return Path(active)
    for folder in (cwd, *cwd.parents):
        if (folder / ".venv" / "pyvenv.cfg").is_file():
            return folder / ".venv"
    return None


def _relative(scheme: HomeScheme, root: str) -> HomeScheme:
    fields = {f.name: getattr(scheme, f.name) for f in dataclasses.fields(scheme)}
    return HomeScheme(
        **{
            key: posixpath.normpath(os.path.relpath(path, root).replace(os.sep, "/"))
            for key, path in fields.items()
        }
    )


def _of_interpreter(interpreter: Interpreter, kind: str) -> Environment:
    scheme = interpreter.env_scheme
    if scheme is None:  # pragma: no cover - every probe fills it
        raise UsageError(f"cannot tell where {interpreter.executable} installs")
    paths = [os.path.abspath(getattr(scheme, f.name)) for f in dataclasses.fields(scheme)]
    root = os.path.commonpath(paths)
    return Environment(Path(root), dataclasses.replace(interpreter, scheme=_relative(scheme, root)), kind)


def _check_old_system_layout(interpreter: Interpreter) -> None:
    """Before 3.10 ``sysconfig`` has no preferred scheme, and a distribution's Python (Debian's, RHEL's) may keep
    its real install layout in distutils alone, which pip used then: ``posix_prefix`` can name a directory that
    Python never imports from. Refused then, rather than installing where nothing finds it."""
    scheme = interpreter.env_scheme
    if interpreter.version >= (3, 10) or scheme is None or not interpreter.import_path:
        return
    missing = [
        p for p in {scheme.purelib, scheme.platlib} if os.path.abspath(p) not in interpreter.import_path
    ]
    if missing:
        raise UsageError(
            f"{interpreter.executable} (Python {interpreter.version_text}, outside a virtual environment) would "
            f"install into {sorted(missing)[0]}, which it does not import from (its distribution's layout, which "
            "sysconfig does not describe before 3.10): install into a virtual environment, or use --target"
        )


def find_environment(
    python: str | None = None,
    *,
    prefix: str | os.PathLike[str] | None = None,
    system: bool = False,
    break_system_packages: bool = False,
    cwd: Path | None = None,
) -> Environment:
    """The environment an install without ``--target`` goes into (see the module docstring)."""
    if prefix is not None:
        interpreter = probe_interpreter(python)
        if interpreter.prefix_scheme is None:  # pragma: no cover - every probe fills it
            raise UsageError(f"cannot tell where {interpreter.executable} installs")
        root = Path(os.path.abspath(prefix))
        if root.exists() and not root.is_dir():
            raise UsageError(f"the prefix {root} is not a directory")
        return Environment(root, dataclasses.replace(interpreter, scheme=interpreter.prefix_scheme), "prefix")
    if python is None:
        venv = _active_venv(cwd or Path.cwd())
        if venv is not None:
            python = str(venv_python(venv))
            if not Path(python).exists():
                raise UsageError(f"the virtual environment {venv} has no interpreter at {python}")
        elif system:
            python = shutil.which("python3") or shutil.which("python")
            if python is None:
                raise UsageError("--system: no python3 on PATH")
        else:
            raise UsageError(_NONE_FOUND)
    interpreter = probe_interpreter(python)
    if not interpreter.in_venv:
        if not system:
            raise UsageError(
                f"{interpreter.executable} is not in a virtual environment: pass --system to use "
                f"its environment ({interpreter.prefix}) anyway"
            )
        _check_old_system_layout(interpreter)
        if interpreter.externally_managed is not None and not break_system_packages:
            reason = " ".join(interpreter.externally_managed.split())
            raise ExternallyManaged(
                f"externally-managed-environment: {reason} (PEP 668; pass --break-system-packages to "
                "install anyway, at the risk of breaking the system's Python)"
            )
    return _of_interpreter(interpreter, "venv" if interpreter.in_venv else "system")
