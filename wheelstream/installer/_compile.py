"""``--compile-bytecode``: byte-compile installed ``.py`` files with the *target* interpreter, as pip does.

pip (``_install_wheel``, ``pycompile``) runs ``compileall.compile_file(path, force=True, quiet=True)`` on every
installed ``.py`` file, in sorted order, inside the interpreter it runs under, and adds each ``.pyc`` to RECORD
with no hash (``path,,``). Bytecode is interpreter-specific, so a foreign ``--python`` compiles in a child
process. One improvement over pip: the files sit in a temporary home while compiled, and we pass ``ddir`` so
tracebacks name the final path, not the temporary one pip leaves behind with ``--target``.
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path

from ._interpreter import Interpreter

__all__ = ["compile_files"]

_CHILD = """\
import compileall, importlib.util, json, sys, warnings
warnings.filterwarnings("ignore")
done = []
for path, ddir in json.load(sys.stdin):
    try:
        if compileall.compile_file(path, ddir=ddir, force=True, quiet=2):
            done.append(importlib.util.cache_from_source(path))
    except Exception:
        pass
sys.stdout.write(json.dumps(done))
"""


def compile_files(jobs: Sequence[tuple[Path, str]], interpreter: Interpreter) -> list[Path]:
    """Compile each (file, directory-name-to-record) pair; return the ``.pyc`` files that were written."""
    if not jobs:
        return []
    if interpreter.is_current:
        done = []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            for path, ddir in jobs:
                if compileall.compile_file(str(path), ddir=ddir, force=True, quiet=2):
                    done.append(Path(importlib.util.cache_from_source(str(path))))
        return done
    payload = json.dumps([[str(path), ddir] for path, ddir in jobs]).encode("utf-8")
    proc = subprocess.run(
        [interpreter.executable, "-I", "-c", _CHILD], input=payload, capture_output=True, check=True
    )
    return [Path(p) for p in json.loads(proc.stdout.decode("utf-8"))]
