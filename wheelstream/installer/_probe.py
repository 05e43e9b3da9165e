"""Facts about an interpreter, gathered *inside* it: tags, executable, the pip ``--home`` scheme layout.

This file is run as a script by the target interpreter (``python -I _probe.py SITE``), which may have neither
wheelstream nor packaging installed: ``SITE`` is the directory holding *our* ``packaging``, put first on
``sys.path`` so every interpreter computes tags with the same code. Keep it stdlib + packaging only, and keep
the syntax old enough for any Python pip still supports.

The scheme is computed the way pip's ``locations._sysconfig.get_scheme(dist_name, home=...)`` does it, with a
placeholder home: the preferred "home" scheme of ``sysconfig`` with every base variable set to the home, and
pip's virtualenv special case for headers (``<home>/include/site/pythonX.Y``).
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


def collect() -> dict[str, Any]:
    """Everything the installer needs to know about this interpreter, JSON-ready."""
    from packaging import tags

    home = os.path.abspath(os.path.join(os.sep, "wheelstream-home"))
    paths = sysconfig.get_paths(scheme=_home_scheme_name(), vars={k: home for k in _HOME_KEYS})
    in_venv = _in_venv()
    version = "{}.{}".format(*sys.version_info[:2])
    include = paths["include"]
    if in_venv:
        include = os.path.join(home, "include", "site", "python" + version)

    def rel(path: str) -> str:
        return os.path.relpath(path, home).replace(os.sep, "/")

    return {
        "executable": sys.executable,
        "version": list(sys.version_info[:2]),
        "in_venv": in_venv,
        "fs_encoding": sys.getfilesystemencoding(),
        "linesep": os.linesep,
        "platform": sys.platform,
        "cross_compiling": bool(getattr(sys, "cross_compiling", False)),
        "tags": [str(tag) for tag in tags.sys_tags()],
        "scheme": {
            "purelib": rel(paths["purelib"]),
            "platlib": rel(paths["platlib"]),
            "scripts": rel(paths["scripts"]),
            "data": rel(paths["data"]),
            "include": rel(include),
        },
    }


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    sys.stdout.write(json.dumps(collect()))
