"""Scripts: ``#!python`` rewriting for ``.data/scripts`` and entry-point launchers, byte-identical to pip's.

Sources (pip 26.3):

* ``fix_script`` (``_internal/operations/install/wheel.py``): when a script's first line starts with
  ``#!python`` (so ``#!pythonw`` and ``#!python -u`` too) the *whole* line becomes ``#!`` + ``sys.executable``
  (file-system encoded, not quoted) + ``os.linesep``; the rest is kept.
* Launchers come from distlib's ``ScriptMaker`` as pip configures it (``PipScriptMaker``: its own template,
  ``variants={""}``, ``clobber``, ``set_mode``) with no explicit executable, so distlib's ``_get_shebang``
  quotes ``sys.executable`` if it has a space and ``_build_shebang`` uses the ``/bin/sh`` trampoline when the
  line would be longer than 127 bytes (512 on macOS), has a space, or the interpreter is itself a ``#!``
  script. Launcher mode: created with the umask, then ``| 0o555``.
* ``get_console_script_specs``: ``pip`` and ``easy_install`` entry points get versioned variants.
* Entry points are checked like ``_raise_for_invalid_entrypoint``: a ``module:attr`` callable is required and
  the name must stay inside the scripts directory. Tighter than pip, a name must also be a plain file name that
  prints as it reads (:func:`check_script_name`): pip would write ``bin/a\\x1bb`` or crash with a traceback
  on ``a\\x00b`` (``ValueError: embedded null byte``) or a name longer than the file system allows.

Windows ``.exe`` launchers are not produced: wheelstream installs for POSIX targets only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple

from ..errors import UsageError, WheelMetadataError, one_line, shown
from ._interpreter import Interpreter

__all__ = [
    "Launcher",
    "check_script_name",
    "console_script_specs",
    "fix_shebang",
    "launcher_bytes",
    "parse_entry_point",
]

_NAME_MAX = 255  # bytes in one file name on every POSIX file system wheelstream installs to

# pip's PipScriptMaker.script_template (it avoids importing ``re`` for start-up speed).
_TEMPLATE = """\
import sys
from {module} import {import_name}
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit({func}())
"""
# ``str.removesuffix`` is 3.9's: for a Python 3.8 target, the template of pip 24.3 (the last pip that ran there).
_TEMPLATE_3_8 = """\
import re
import sys
from {module} import {import_name}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""

# distlib.util.ENTRY_RE applied to "<name> = <value>": a dotted callable, one optional ``:``, optional extras.
_CALLABLE = re.compile(r"(?P<callable>\w+(?:[:.]\w+)*)\s*(?:\[\s*[\w-]+(?:=\w+)?(?:,\s*\w+(?:=\w+)?)*\s*\])?")


class Launcher(NamedTuple):
    """One script to generate: ``name`` in the scripts dir runs ``module:attr``."""

    name: str
    module: str
    attr: str
    gui: bool


def fix_shebang(content: bytes, interpreter: Interpreter) -> bytes | None:
    """pip's ``fix_script``: new content for a ``#!python`` script, or None to keep the file as it is."""
    end = content.find(b"\n")
    first = content if end < 0 else content[: end + 1]
    if not first.startswith(b"#!python"):
        return None
    exe = _encoded(interpreter.executable, interpreter.fs_encoding)
    return b"#!" + exe + interpreter.linesep.encode("ascii") + content[len(first) :]


def _encoded(executable: str, encoding: str) -> bytes:
    """The interpreter's path as a ``#!`` line names it. One the encoding cannot hold (a venv whose path is not
    UTF-8) was a ``UnicodeEncodeError`` traceback; no script could name it (Python reads its source as UTF-8,
    the ``#!`` line included), so it is refused in one line, the target untouched, as pip cannot do either."""
    try:
        return executable.encode(encoding)
    except UnicodeEncodeError:
        raise UsageError(
            f"a script's #! line cannot name the interpreter {executable!r} (its path is not {encoding}): "
            "use an interpreter at a path that is"
        ) from None


def console_script_specs(console: Mapping[str, str], interpreter: Interpreter) -> list[tuple[str, str]]:
    """pip's ``get_console_script_specs``: versioned ``pip``/``easy_install`` wrappers, then the rest in order."""
    console = dict(console)
    specs: list[tuple[str, str]] = []
    ensurepip = os.environ.get("ENSUREPIP_OPTIONS")
    major, xy = str(interpreter.version[0]), interpreter.version_text
    pip_script = console.pop("pip", None)
    if pip_script:
        if ensurepip is None:
            specs.append(("pip", pip_script))
        if (ensurepip or "") != "altinstall":
            specs.append((f"pip{major}", pip_script))
        specs.append((f"pip{xy}", pip_script))
        for key in [k for k in console if re.match(r"pip(\d+(\.\d+)?)?$", k)]:
            del console[key]
    easy_install = console.pop("easy_install", None)
    if easy_install:
        if ensurepip is None:
            specs.append(("easy_install", easy_install))
        specs.append((f"easy_install-{xy}", easy_install))
        for key in [k for k in console if re.match(r"easy_install(-\d+\.\d+)?$", k)]:
            del console[key]
    specs.extend(console.items())
    return specs


def check_script_name(name: str) -> str | None:
    """Why ``name`` cannot be a launcher's file name in the scripts directory, or None if it can.

    pip's rule (the name joined onto the scripts dir must stay strictly inside it) plus: one path component
    with no backslash (a ``\\`` is a separator on Windows), no leading ``-`` (a file ``bin/-rf`` is an option
    to whatever a shell glob hands it to), nothing a terminal would act on or reorder when the name is listed
    (controls, NUL, bidi overrides, whitespace), and short enough to be a file name."""
    if "/" in name or "\\" in name or name in {".", ".."}:
        return "it would be installed outside the scripts directory"
    if one_line(name) != name or any(char.isspace() for char in name):
        return "it holds whitespace, a control or a bidi character"
    if name.startswith("-"):
        return "it starts with '-'"
    if len(name.encode("utf-8")) > _NAME_MAX:
        return f"it is longer than {_NAME_MAX} bytes"
    return None


def parse_entry_point(name: str, value: str, *, gui: bool, wheel: str, entry: str | None = None) -> Launcher:
    """Check one entry point as pip + distlib would (plus :func:`check_script_name`) and return what to generate.

    ``entry`` is the ``entry_points.txt`` member the errors name."""
    match = _CALLABLE.fullmatch(value.strip())  # distlib anchors it at both ends: "mod:fn [x" is refused
    if not name or re.search(r"\s|^\[", name) or match is None:
        raise WheelMetadataError(
            f"invalid script entry point {shown(name)} = {shown(value)}", wheel=wheel, entry=entry
        )
    module, colon, attr = match.group("callable").partition(":")
    if not colon or ":" in attr:
        raise WheelMetadataError(
            f"invalid script entry point {shown(name)} = {shown(value)}: a module:callable is required",
            wheel=wheel,
            entry=entry,
        )
    problem = check_script_name(name)
    if problem is not None:
        raise WheelMetadataError(
            f"invalid script entry point name {shown(name)}: {problem}", wheel=wheel, entry=entry
        )
    return Launcher(name, module, attr, gui)


def _is_shell(executable: str) -> bool:
    try:
        with open(executable, "rb") as stream:
            return stream.read(2) == b"#!"
    except OSError:
        return False


def shebang(interpreter: Interpreter) -> bytes:
    """distlib ``ScriptMaker._get_shebang`` for an unset ``executable`` (pip leaves it unset)."""
    executable = interpreter.executable
    if " " in executable and not executable.startswith('"'):
        if executable.startswith("/usr/bin/env "):
            env, rest = executable.split(" ", 1)
            if " " in rest and not rest.startswith('"'):
                executable = f'{env} "{rest}"'
        else:
            executable = f'"{executable}"'
    exe = _encoded(executable, "utf-8")
    limit = 512 if interpreter.platform == "darwin" else 127
    simple = (
        not interpreter.cross_compiling
        and b" " not in exe
        and len(exe) + 3 <= limit
        and not _is_shell(executable)
    )
    if simple:
        return b"#!" + exe + b"\n"
    return b"#!/bin/sh\n'''exec' " + exe + b' "$0" "$@"\n' + b"' '''\n"


def launcher_bytes(launcher: Launcher, interpreter: Interpreter) -> bytes:
    """The complete launcher file pip writes for one entry point (POSIX)."""
    template = _TEMPLATE if interpreter.version >= (3, 9) else _TEMPLATE_3_8
    text = template.format(
        module=launcher.module, import_name=launcher.attr.split(".")[0], func=launcher.attr
    )
    return shebang(interpreter) + text.encode("utf-8")
