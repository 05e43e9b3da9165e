"""Wheels for another machine: pip's ``--platform``, ``--python-version``, ``--implementation`` and ``--abi``.

A ``--target`` directory, or ``download -d``, may be meant for a machine other than this one — an AWS Lambda
layer built on a laptop, a wheelhouse for an air-gapped server. :class:`TargetPython` says which machine, and
:meth:`TargetPython.applied_to` turns the interpreter an install would describe into that machine's: its tags
(which wheels fit, which of an index's files is chosen), its Python version (a wheel's ``Requires-Python``, an
index's ``data-requires-python``) and PEP 508's markers of a requirements file. Files are still written, and
bytecode compiled, by the interpreter that runs the install, and launchers point at it, as pip's do.

The tags are pip's (``pip._internal.utils.compatibility_tags.get_supported``): ``packaging.tags``' CPython tags
(another implementation: its generic tags), then its compatible tags, for the given version, ABIs and
platforms; what is not given is the interpreter's own. One departure, uv's (``--python-platform``): a PEP 600
``manylinux_X_Y_ARCH`` also admits every older glibc's, down to its architecture's first, with the legacy names
(``manylinux2014`` is ``manylinux_2_17``, ``manylinux2010`` ``manylinux_2_12``, ``manylinux1``
``manylinux_2_5``) in the order ``packaging.tags`` lists them on such a machine; pip takes
``manylinux_2_28_x86_64`` alone, refusing a ``manylinux_2_17`` wheel for a glibc 2.28 machine. A legacy name is
expanded the same way (pip: only to the older legacy names), a ``musllinux_X_Y`` down to ``musllinux_X_0``
(PEP 656), and a ``macosx_X_Y_ARCH`` to the older macOS and the universal builds that run there
(``packaging.tags.mac_platforms``, as pip expands it); ``ios_X_Y_…`` and ``android_N_…`` are expanded as pip
expands them. What is not given is the interpreter's own: its platforms and, for its own version and
implementation, its ABIs (a free-threaded ``cp313t``, PyPy's ``pypy310_pp73``), as pip run by that interpreter
would list them. The markers follow the version, the implementation and the first platform's system and
machine (uv's rule; pip evaluates them for the interpreter that runs); a universal macOS build stands for
``arm64``, and what a tag cannot tell (a PyPy's own version, the kernel's release) stays the interpreter's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from packaging.tags import (
    Tag,
    android_platforms,
    compatible_tags,
    cpython_tags,
    generic_tags,
    ios_platforms,
    mac_platforms,
)

from ..errors import UsageError
from ._interpreter import Interpreter

__all__ = ["TargetPython"]

# PEP 600's legacy names, by the glibc version they stand for, and the architectures they were defined for.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_ARCHES = {
    "manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
    "manylinux2010": {"x86_64", "i686"},
    "manylinux1": {"x86_64", "i686"},
}
_LEGACY_GLIBC = {name: version for version, name in _LEGACY_MANYLINUX.items()}
# A platform tag: its system, the release numbers that system's tags carry, the machine (or iOS multiarch).
_PLATFORM_PARTS = re.compile(
    r"(?P<system>manylinux|musllinux|macosx|ios|android)_(?P<release>\d+(?:_\d+)?)_(?P<machine>\w+)"
    r"|(?P<legacy>manylinux(?:1|2010|2014))_(?P<legacy_machine>\w+)"
    r"|(?P<plain>linux|win)_?(?P<plain_machine>\w*)"
)
_TAG = re.compile(r"[a-z0-9_]+")  # what a wheel's file name can carry as a platform or ABI tag
_VERSION = re.compile(r"\d+(\.\d+){0,2}")
_IMPLEMENTATION = re.compile(r"[a-z]+")

# PEP 508's implementation markers of the implementations pip's ``--implementation`` names (packaging's
# short names, and GraalPy's, which has none).
_IMPLEMENTATIONS = {
    "cp": ("cpython", "CPython"),
    "pp": ("pypy", "PyPy"),
    "ip": ("ironpython", "IronPython"),
    "jy": ("jython", "Jython"),
    "graalpy": ("graalpy", "GraalVM"),
}
# A platform's system → PEP 508's sys_platform, platform_system, os_name.
_SYSTEMS = {
    "manylinux": ("linux", "Linux", "posix"),
    "musllinux": ("linux", "Linux", "posix"),
    "linux": ("linux", "Linux", "posix"),
    "macosx": ("darwin", "Darwin", "posix"),
    "ios": ("ios", "iOS", "posix"),
    "android": ("android", "Android", "posix"),
    "win": ("win32", "Windows", "nt"),
}
# What ``platform.machine()`` says where a tag's machine is spelt otherwise.
_MACHINES = {
    "win": {"amd64": "AMD64", "32": "x86", "arm64": "ARM64"},  # win_amd64, win32, win_arm64
    "macosx": {"universal2": "arm64", "universal": "x86_64", "intel": "x86_64", "fat64": "x86_64"},
    "android": {"arm64_v8a": "aarch64", "armeabi_v7a": "armv7l", "x86": "i686"},
}


@dataclass(frozen=True)
class TargetPython:
    """The machine a target directory or a download is for, as pip's options name it; what is not given is the
    interpreter's own. ``version``: ``"3.12"``, ``"312"``, ``"3"`` or ``"3.12.1"`` (pip's ``--python-version``;
    ``""`` is not given); ``platforms``: wheel platform tags (``manylinux_2_28_x86_64``, ``macosx_11_0_arm64``,
    ``win_amd64``); ``implementation``: ``cp``, ``pp``, ``graalpy``, …, or ``py`` for implementation-agnostic
    wheels only; ``abis``: ABI tags (``cp312``, ``abi3``, ``none``)."""

    version: str | None = None
    platforms: Sequence[str] = ()
    implementation: str | None = None
    abis: Sequence[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.platforms, str) or isinstance(self.abis, str):
            raise UsageError("platforms and abis are sequences of tags, not one string")
        object.__setattr__(self, "platforms", tuple(self.platforms))
        object.__setattr__(self, "abis", tuple(self.abis))
        if not self.version:
            object.__setattr__(self, "version", None)  # pip's --python-version "" is not given either
        self.version_info  # noqa: B018  (checked now: a bad value fails before anything is fetched)
        if self.implementation is not None and not _IMPLEMENTATION.fullmatch(self.implementation):
            raise UsageError(
                f"a Python implementation such as cp, pp, graalpy or py, not {self.implementation!r} "
                "(--implementation)"
            )
        for tag in (*self.platforms, *self.abis):
            if not _TAG.fullmatch(tag):
                raise UsageError(
                    f"{tag!r} is not a tag a wheel's name can carry (lower-case letters, digits, _)"
                )

    @property
    def version_info(self) -> tuple[int, ...] | None:
        """pip's reading of ``--python-version``: ``"312"`` is (3, 12), ``"3"`` is (3,); None when not given."""
        text = self.version
        if text is None:
            return None
        if not _VERSION.fullmatch(text):
            raise UsageError(f"a Python version such as 3.12, 312 or 3.12.1, not {text!r} (--python-version)")
        if "." in text:
            return tuple(int(part) for part in text.split("."))
        return (int(text[0]), int(text[1:])) if len(text) > 1 else (int(text),)

    @property
    def described(self) -> str:
        """The machine as the options that describe it, for messages (in place of an interpreter's path)."""
        said = [f"--python-version {self.version}"] if self.version is not None else []
        said += [f"--platform {each}" for each in self.platforms]
        said += [f"--implementation {self.implementation}"] if self.implementation is not None else []
        said += [f"--abi {each}" for each in self.abis]
        return " ".join(said)

    def applied_to(self, interpreter: Interpreter) -> Interpreter:
        """``interpreter`` standing for the machine these options describe: its tags, the version that
        ``Requires-Python`` is compared with, and its markers replaced; its path and layout kept."""
        given = self.version_info
        version = given or interpreter.version
        own = interpreter.tags[0].interpreter  # cp311, pp310, graalpy311: packaging's name and version
        own_implementation = re.sub(r"\d+$", "", own)
        implementation = self.implementation or own_implementation
        name = f"{implementation}{''.join(map(str, version[:2]))}"
        platforms = _expanded(self.platforms) if self.platforms else _platforms_of(interpreter.tags)
        abis: list[str] | None = list(self.abis) or None
        if abis is None and name == own:  # its own ABIs, as pip would see them run by that interpreter
            abis = [t.abi for t in dict.fromkeys(interpreter.tags) if t.interpreter == own]
            abis = [abi for abi in dict.fromkeys(abis) if abi not in ("abi3", "none")]
        if implementation == "cp":
            tags = list(cpython_tags(version, abis, platforms))
        else:
            tags = list(generic_tags(name, abis, platforms))
        tags += compatible_tags(version, name, platforms)
        markers: dict[str, str] = {}
        if given is not None:
            full = "{}.{}.{}".format(*(*given, 0, 0)[:3])
            markers["python_version"], markers["python_full_version"] = full.rpartition(".")[0], full
            if implementation == "cp":
                markers["implementation_version"] = full  # CPython's is its Python version
        if implementation in _IMPLEMENTATIONS:
            pair = _IMPLEMENTATIONS[implementation]
            markers["implementation_name"], markers["platform_python_implementation"] = pair
        if self.platforms:
            markers.update(_platform_markers(self.platforms[0]))
        return replace(
            interpreter,
            tags=tuple(dict.fromkeys(tags)),
            full_version=markers.get("python_full_version", interpreter.full_version),
            marker_overrides=tuple(sorted(markers.items())),
            emulated=self.described,
        )


def _platforms_of(tags: Sequence[Tag]) -> list[str]:
    """The interpreter's own platform tags, in its order (``any`` is added by the compatible tags)."""
    return [each for each in dict.fromkeys(tag.platform for tag in tags) if each != "any"]


def _expanded(platforms: Sequence[str]) -> list[str]:
    """Each platform with those it runs (see the module docstring), in order, each once."""
    return list(dict.fromkeys(each for platform in platforms for each in _runs(platform)))


def _runs(platform: str) -> Iterator[str]:
    parts = _PLATFORM_PARTS.fullmatch(platform)
    system = parts["system"] if parts is not None else None
    if parts is not None and parts["legacy"] is not None:
        legacy, machine = parts["legacy"], parts["legacy_machine"]
        if machine in _LEGACY_ARCHES[legacy]:
            yield from _manylinux(*_LEGACY_GLIBC[legacy], machine)
        else:  # a legacy name its PEP never defined for that machine: pip's expansion, whatever it is worth
            yield platform
            if legacy == "manylinux2010":
                yield f"manylinux1_{machine}"
    elif parts is None or system is None or (system != "android" and "_" not in parts["release"]):
        yield platform
    else:
        release, machine = [int(each) for each in parts["release"].split("_")], parts["machine"]
        if system == "manylinux":
            yield from _manylinux(release[0], release[1], machine)
        elif system == "musllinux":
            yield from (f"musllinux_{release[0]}_{minor}_{machine}" for minor in range(release[1], -1, -1))
        elif system == "macosx":
            yield from mac_platforms((release[0], release[1]), machine)
        elif system == "ios":
            yield from ios_platforms((release[0], release[1]), machine)
        else:
            yield from android_platforms(release[0], machine)


def _manylinux(major: int, minor: int, machine: str) -> Iterator[str]:
    """What ``packaging.tags`` lists on a machine of glibc ``major.minor``: every glibc back to the first
    manylinux of ``machine`` (2.5 for x86, 2.17 for the others), each followed by its legacy name if it has
    one."""
    lowest = 5 if machine in {"x86_64", "i686"} else 17
    for each in range(minor, lowest - 1, -1) if major == 2 else (minor,):
        yield f"manylinux_{major}_{each}_{machine}"
        legacy = _LEGACY_MANYLINUX.get((major, each))
        if legacy is not None and machine in _LEGACY_ARCHES[legacy]:
            yield f"{legacy}_{machine}"


def _platform_markers(platform: str) -> dict[str, str]:
    """PEP 508's system markers of the machine a platform tag names (none for a tag it cannot place)."""
    parts = _PLATFORM_PARTS.fullmatch(platform)
    if parts is None:
        return {}
    system = parts["system"] or parts["plain"] or "manylinux"  # (the last: a legacy manylinux name)
    machine = parts["machine"] or parts["legacy_machine"] or parts["plain_machine"] or ""
    if system == "ios":
        machine = machine.partition("_")[0]  # arm64_iphoneos → arm64
    machine = _MACHINES.get(system, {}).get(machine, machine)
    sys_platform, platform_system, os_name = _SYSTEMS[system]
    markers = {"sys_platform": sys_platform, "platform_system": platform_system, "os_name": os_name}
    if machine and not machine.startswith("fat"):  # fat, fat3: a mix of old machines, none of them one
        markers["platform_machine"] = machine
    return markers
