"""Facts about an interpreter, gathered *inside* it: tags, executable, the pip ``--home`` scheme layout.

This file is run as a script by the target interpreter (``python -I _probe.py SITE``), which may have neither
wheelstream nor packaging installed: ``SITE`` is the directory holding *our* ``packaging``, put first on
``sys.path`` so every interpreter from 3.10 on computes tags with the same code. Python 3.8 and 3.9 cannot
import that ``packaging`` (3.10's syntax): for them the probe sends what ``packaging.tags`` reads there, and on
Linux the platform tags packaging's ``_manylinux`` / ``_musllinux`` compute (they still import there), and
``installer._old_pythons`` builds the tags. Keep it stdlib + packaging only, and its syntax 3.8's.

The schemes are computed the way pip's ``locations._sysconfig.get_scheme(dist_name, home=..., prefix=...)``
does it: ``scheme`` is the preferred "home" scheme of ``sysconfig`` with every base variable set to a
placeholder home (``--target``), ``prefix_scheme`` the preferred "prefix" scheme with them set to a placeholder
prefix (``--prefix``), and ``env_scheme`` the interpreter's own install paths, absolute (its environment);
each with pip's virtualenv special case for headers (``<base>/include/site/pythonX.Y``). ``externally_managed``
is PEP 668's marker, read as pip reads it (``None`` in a virtual environment, where it never applies).
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from typing import Any

# pip.locations._sysconfig._HOME_KEYS: the variables pip points at the --home directory.
_HOME_KEYS = ["installed_base", "base", "installed_platbase", "platbase", "prefix", "exec_prefix", "userbase"]


def _home_scheme_name() -> str:
    """pip's ``_infer_home``: sysconfig's preferred home scheme, else ``<os.name>_home``, else posix_home."""
    preferred = getattr(sysconfig, "get_preferred_scheme", None)
    if preferred is not None:
        return str(preferred("home"))
    suffixed = os.name + "_home"
    return suffixed if suffixed in sysconfig.get_scheme_names() else "posix_home"


def _in_venv() -> bool:
    """pip's ``running_under_virtualenv`` (and distlib's ``in_venv``): PEP 405 venv or legacy virtualenv."""
    return hasattr(sys, "real_prefix") or sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def _prefix_scheme_name(*, custom_prefix: bool) -> str:
    """pip's ``_infer_prefix``; for ``--prefix`` (``custom_prefix``) never ``osx_framework_library``, nor
    Debian's ``posix_local`` (``<prefix>/local/lib/pythonX.Y/dist-packages``): ``posix_prefix`` there, as pip
    and Debian's own distutils install into a prefix that is not ``/usr/local``."""
    preferred = getattr(sysconfig, "get_preferred_scheme", None)
    name = str(preferred("prefix")) if preferred is not None else None
    if name is None:
        names = sysconfig.get_scheme_names()
        for candidate in (
            sys.implementation.name + "_" + os.name,
            sys.implementation.name,
            os.name + "_prefix",
        ):
            if candidate in names:
                name = candidate
                break
        else:
            name = os.name if os.name in names else "posix_prefix"
    return "posix_prefix" if custom_prefix and name in ("osx_framework_library", "posix_local") else name


def _scheme(name: str, base: str | None, version: str, in_venv: bool) -> dict[str, str]:
    """sysconfig's paths for scheme ``name`` (every base variable set to ``base``, or the interpreter's own),
    headers' parent as pip makes it."""
    variables = {k: base for k in _HOME_KEYS} if base is not None else {}
    paths = sysconfig.get_paths(scheme=name, vars=variables)
    include = paths["include"]
    if in_venv:
        include = os.path.join(
            base if base is not None else sys.prefix, "include", "site", "python" + version
        )
    keys = ("purelib", "platlib", "scripts", "data")
    return {**{key: paths[key] for key in keys}, "include": include}


def _externally_managed() -> str | None:
    """PEP 668: the ``Error`` of ``EXTERNALLY-MANAGED`` beside the standard library (pip's text when it has
    none), or None when there is no marker. Never in a virtual environment."""
    if _in_venv():
        return None
    marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
    if not os.path.isfile(marker):
        return None
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(marker, encoding="utf-8")
        return parser.get("externally-managed", "Error")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return f"The Python environment under {sys.prefix} is managed externally."


def marker_environment() -> dict[str, str]:
    """PEP 508's marker environment of this interpreter (a lock's markers are evaluated for it)."""
    if sys.version_info < (3, 10):  # noqa: UP036 - this file runs in 3.8 and 3.9 too: the same, spelt out
        return _plain_marker_environment()
    from packaging.markers import default_environment

    return {key: str(value) for key, value in default_environment().items()}


def _plain_marker_environment() -> dict[str, str]:
    """packaging's ``default_environment()``, in the standard library alone."""
    import platform

    info = sys.implementation.version
    implementation = f"{info.major}.{info.minor}.{info.micro}"
    if info.releaselevel != "final":
        implementation += info.releaselevel[0] + str(info.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": implementation,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _tag_facts() -> dict[str, Any]:
    """What ``packaging.tags`` reads of this interpreter, for a caller that computes its tags (see
    ``_old_pythons``): this Python cannot import our packaging."""
    import struct

    return {
        "name": sys.implementation.name,
        "version": list(sys.version_info[:2]),
        "py_version_nodot": sysconfig.get_config_var("py_version_nodot"),
        "Py_DEBUG": sysconfig.get_config_var("Py_DEBUG"),
        "gettotalrefcount": hasattr(sys, "gettotalrefcount"),
        "EXT_SUFFIX": sysconfig.get_config_var("EXT_SUFFIX"),
        "platform": sysconfig.get_platform(),
        "bits": struct.calcsize("P") * 8,
        "platforms": _linux_platforms(struct.calcsize("P") == 4),
    }


def _linux_platforms(is_32bit: bool) -> list[str] | None:
    """packaging's ``_linux_platforms``, run here: its manylinux and musllinux tags read this interpreter's own
    executable, libc and ``_manylinux`` module (PEP 600), which another process cannot see. None off Linux, or
    where those modules do not import (the caller then uses its own platform's tags)."""
    import platform

    if platform.system() != "Linux":
        return None
    try:
        from packaging import _manylinux, _musllinux
    except Exception:  # noqa: BLE001 - a newer packaging failing here in any way: the caller's platform tags
        return None
    linux = sysconfig.get_platform().replace(".", "_").replace("-", "_").replace(" ", "_")
    if not linux.startswith("linux_"):
        return [linux]
    if is_32bit:
        linux = {"linux_x86_64": "linux_i686", "linux_aarch64": "linux_armv8l"}.get(linux, linux)
    arch = linux.split("_", 1)[1]
    archs = {"armv8l": ["armv8l", "armv7l"]}.get(arch, [arch])
    return [
        *(f"linux_{each}" for each in archs),
        *_manylinux.platform_tags(archs),
        *_musllinux.platform_tags(archs),
    ]


def _import_path() -> list[str]:
    """Where this interpreter imports from, absolute: ``sys.path`` but the first entry (``SITE``, ours), and
    the site-packages directories ``site`` would add once they exist (a fresh prefix has none yet)."""
    import site

    getsitepackages = getattr(site, "getsitepackages", None)  # (missing in old virtualenv's site.py)
    found = [*sys.path[1:], *(getsitepackages() if getsitepackages is not None else [])]
    return [os.path.abspath(entry) for entry in found if entry]


def collect(*, in_process: bool = False) -> dict[str, Any]:
    """Everything the installer needs to know about this interpreter, JSON-ready for the process that ran the
    probe. ``in_process``: for this process itself, which has no JSON to cross: the tags stay ``Tag`` objects
    (not spelt out to be parsed back) and the markers are left out (None), to be asked of
    :func:`marker_environment` if ever needed."""
    if sys.version_info >= (3, 10):  # noqa: UP036 - this file runs in 3.8 and 3.9 too
        from packaging import tags
    else:  # older than our packaging's Python (3.8, 3.9): the caller computes them (``_tag_facts``)
        tags = None  # type: ignore[assignment]

    home = os.path.abspath(os.path.join(os.sep, "wheelstream-home"))
    in_venv = _in_venv()
    version = "{}.{}".format(*sys.version_info[:2])
    paths = _scheme(_home_scheme_name(), home, version, in_venv)
    prefix_paths = _scheme(_prefix_scheme_name(custom_prefix=True), home, version, in_venv)

    def rel(path: str) -> str:
        return os.path.relpath(path, home).replace(os.sep, "/")

    return {
        "executable": sys.executable,
        "version": list(sys.version_info[:2]),
        "full_version": "{}.{}.{}".format(*sys.version_info[:3]),  # what requires-python is compared with
        "in_venv": in_venv,
        "fs_encoding": sys.getfilesystemencoding(),
        "linesep": os.linesep,
        "platform": sys.platform,
        "cross_compiling": bool(getattr(sys, "cross_compiling", False)),
        "tags": None
        if tags is None
        else list(tags.sys_tags())
        if in_process
        else [str(tag) for tag in tags.sys_tags()],
        "tag_facts": _tag_facts() if tags is None else None,
        "scheme": {key: rel(path) for key, path in paths.items()},
        "prefix_scheme": {key: rel(path) for key, path in prefix_paths.items()},
        "env_scheme": _scheme(_prefix_scheme_name(custom_prefix=False), None, version, in_venv),
        "prefix": sys.prefix,
        "import_path": _import_path(),
        "externally_managed": _externally_managed(),
        "markers": None if in_process else marker_environment(),
    }


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    sys.stdout.write(json.dumps(collect()))
