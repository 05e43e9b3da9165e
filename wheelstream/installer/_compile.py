"""``--compile-bytecode``: byte-compile installed ``.py`` files with the *target* interpreter, as pip does.

pip (``_install_wheel``, ``pycompile``) runs ``compileall.compile_file(path, force=True, quiet=True)`` on every
installed ``.py`` file, in sorted order, inside the interpreter it runs under, and adds each ``.pyc`` to RECORD
with no hash (``path,,``). Bytecode is interpreter-specific, so a foreign ``--python`` compiles in a child
process. One improvement over pip: the files sit in a temporary home while compiled, and we pass ``ddir`` so
tracebacks name the final path, not the temporary one pip leaves behind with ``--target``.

Warnings: compiling a wheel's sources warns (``SyntaxWarning: invalid escape sequence``, once a file), and pip
silences them with ``warnings.catch_warnings()``, which changes the filters of the whole process for the
while: a library caller's other threads lost their own warnings then. So only the program, which owns its
process (:func:`compile_in_this_process`, called by ``cli.main``), compiles in it; a library call compiles in a
child process of the same interpreter, whose filters are its own (~0.1 s more for 2,000 files).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path

from ._interpreter import Interpreter

__all__ = ["compile_files", "compile_in_this_process"]

_in_this_process = False


def compile_in_this_process() -> None:
    """For the program only (it owns its process): compile the current interpreter's bytecode in this process,
    its warnings silenced by process-wide filters, as pip does. Touches this module's switch, for good."""
    global _in_this_process
    _in_this_process = True


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
    if interpreter.is_current and _in_this_process:
        import compileall

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
