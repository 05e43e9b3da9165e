"""Tags of an interpreter too old to import our ``packaging`` (Python 3.8 and 3.9), computed in this process.

The probe (:mod:`._probe`) computes a target's tags inside it with the ``packaging`` this process runs, so that
every interpreter gets the same tag rules; that ``packaging`` needs Python 3.10. An older one sends the few facts
``packaging.tags`` would read there (``sys.implementation``, ``py_version_nodot``, ``Py_DEBUG``,
``EXT_SUFFIX``, the platform and pointer size) instead, and on Linux its platform tags, which packaging's
``_manylinux`` and ``_musllinux`` compute there (they read that interpreter's executable, libc and PEP 600
``_manylinux`` module, and import on 3.8). Its tags are made here with ``packaging.tags``' own builders
(``cpython_tags``, ``generic_tags``, ``compatible_tags``), given the ABIs those facts name and those platforms.
Elsewhere (macOS), or where those modules do not import, the platform tags are this process's: only a target of
the same platform and word size as this interpreter is taken then; another is refused.
"""

from __future__ import annotations

import struct
import sysconfig
from collections.abc import Mapping

from packaging.tags import (
    INTERPRETER_SHORT_NAMES,
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
    platform_tags,
)

from ..errors import UsageError

__all__ = ["tags_from_facts", "too_old"]

OLDEST = (3, 8)  # as uv: what the probe's own syntax and the facts below cover


def too_old(version: tuple[int, ...]) -> str | None:
    """Why an interpreter of ``version`` is refused, or None when it is new enough."""
    if version >= OLDEST:
        return None
    return "it is Python {}.{}; wheelstream installs for Python {}.{} and newer".format(*version[:2], *OLDEST)


def tags_from_facts(facts: Mapping[str, object], executable: str) -> list[Tag]:
    """The target's tags, most preferred first, as ``packaging.tags.sys_tags()`` would give them there."""
    platform, bits = str(facts["platform"]), int(str(facts["bits"]))
    ours = sysconfig.get_platform(), struct.calcsize("P") * 8
    theirs = facts.get("platforms")
    if not isinstance(theirs, list) and (platform, bits) != ours:
        raise UsageError(
            f"cannot use interpreter {executable!r}: it is a {bits}-bit {platform} Python older than 3.10; "
            f"wheelstream works out such a Python's tags only for its own platform ({ours[1]}-bit {ours[0]})"
        )
    version = tuple(int(str(part)) for part in facts["version"])  # type: ignore[attr-defined]
    refused = too_old(version)  # pymalloc's ``m`` ABIs and older rules: not worked out here
    if refused is not None:
        raise UsageError(f"cannot use interpreter {executable!r}: {refused}")
    name = str(facts["name"])
    short = INTERPRETER_SHORT_NAMES.get(name) or name
    nodot = str(facts.get("py_version_nodot") or f"{version[0]}{version[1]}")
    platforms = [str(each) for each in theirs] if isinstance(theirs, list) else list(platform_tags())
    tags: list[Tag]
    if short == "cp":
        debug = facts.get("Py_DEBUG")
        abi = f"cp{nodot}"
        # packaging's ``_cpython_abis`` for 3.8+: a debug build loads both kinds of extension modules
        abis = [abi + "d", abi] if debug or (debug is None and facts.get("gettotalrefcount")) else [abi]
        tags = list(cpython_tags(version, abis, platforms))
        interpreter: str | None = abi
    else:
        tags = list(generic_tags(f"{short}{nodot}", _generic_abis(facts.get("EXT_SUFFIX")), platforms))
        interpreter = "pp3" if short == "pp" else None
    tags.extend(compatible_tags(version, interpreter, platforms))
    return tags


def _generic_abis(ext_suffix: object) -> list[str]:
    """packaging's ``_generic_abi``: the ABI part of ``EXT_SUFFIX`` (``.pypy39-pp73-x86_64-linux-gnu.so`` →
    ``pypy39_pp73``), or none."""
    parts = str(ext_suffix or "").split(".")
    if len(parts) < 3 or not parts[1]:
        return []
    soabi = parts[1]
    if soabi.startswith("cpython"):
        pieces = soabi.split("-")
        abi = "cp" + pieces[1] if len(pieces) > 1 and pieces[1] else ""
    elif soabi.startswith("pypy"):
        abi = "-".join(soabi.split("-")[:2])
    elif soabi.startswith("graalpy"):
        abi = "-".join(soabi.split("-")[:3])
    else:
        abi = soabi
    normal = abi.replace(".", "_").replace("-", "_").replace(" ", "_")
    return [normal] if normal else []
