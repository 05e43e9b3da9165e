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
(``packaging.tags.mac_platforms``, as pip expands it). The markers follow the version, the implementation and
the first platform's system and machine (uv's rule; pip evaluates them for the interpreter that runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from packaging.tags import Tag, compatible_tags, cpython_tags, generic_tags, mac_platforms

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
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_MUSLLINUX = re.compile(r"musllinux_(\d+)_(\d+)_(\w+)")
_MACOSX = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")
_PLATFORM = re.compile(r"[a-z0-9_]+")  # a platform tag: what a wheel's file name can carry
_VERSION = re.compile(r"\d+(\.\d+){0,2}")

# PEP 508's implementation markers of the implementations pip's ``--implementation`` names.
_IMPLEMENTATIONS = {
    "cp": ("cpython", "CPython"),
    "pp": ("pypy", "PyPy"),
    "ip": ("ironpython", "IronPython"),
    "jy": ("jython", "Jython"),
    "gp": ("graalpy", "GraalVM"),
}
# A platform tag's prefix → PEP 508's sys_platform, platform_system, os_name.
_SYSTEMS = {
    "manylinux": ("linux", "Linux", "posix"),
    "musllinux": ("linux", "Linux", "posix"),
    "linux": ("linux", "Linux", "posix"),
    "macosx": ("darwin", "Darwin", "posix"),
    "win": ("win32", "Windows", "nt"),
}
_WINDOWS_MACHINES = {"win_amd64": "AMD64", "win32": "x86", "win_arm64": "ARM64"}


@dataclass(frozen=True)
class TargetPython:
    """The machine a target directory or a download is for, as pip's options name it; what is not given is the
    interpreter's own. ``version``: ``"3.12"``, ``"312"``, ``"3"`` or ``"3.12.1"`` (pip's ``--python-version``);
    ``platforms``: wheel platform tags (``manylinux_2_28_x86_64``, ``macosx_11_0_arm64``, ``win_amd64``);
    ``implementation``: ``cp``, ``pp``, …, or ``py`` for implementation-agnostic wheels only; ``abis``: ABI tags
    (``cp312``, ``abi3``, ``none``)."""

    version: str | None = None
    platforms: Sequence[str] = ()
    implementation: str | None = None
    abis: Sequence[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.platforms, str) or isinstance(self.abis, str):
            raise UsageError("platforms and abis are sequences of tags, not one string")
        object.__setattr__(self, "platforms", tuple(self.platforms))
        object.__setattr__(self, "abis", tuple(self.abis))
        if self.version is not None:
            self.version_info  # noqa: B018  (checked now: a bad value fails before anything is fetched)
        if self.implementation is not None and not re.fullmatch(r"[a-z]{2}", self.implementation):
            raise UsageError(
                f"--implementation {self.implementation!r}: a two-letter tag such as cp, pp or py (pip's)"
            )
        for tag in (*self.platforms, *self.abis):
            if not _PLATFORM.fullmatch(tag):
                raise UsageError(
                    f"{tag!r} is not a tag a wheel's name can carry (lower-case letters, digits, _)"
                )

    @property
    def version_info(self) -> tuple[int, ...]:
        """pip's reading of ``--python-version``: ``"312"`` is (3, 12), ``"3"`` is (3,)."""
        text = self.version or ""
        if not _VERSION.fullmatch(text):
            raise UsageError(f"--python-version {text!r}: a version such as 3.12, 312 or 3.12.1")
        if "." in text:
            return tuple(int(part) for part in text.split("."))
        return (int(text[0]), int(text[1:])) if len(text) > 1 else (int(text),)

    def described(self) -> str:
        """The options as a message shows them, in place of an interpreter's path."""
        said = [f"--python-version {self.version}"] if self.version is not None else []
        said += [f"--platform {each}" for each in self.platforms]
        said += [f"--implementation {self.implementation}"] if self.implementation is not None else []
        said += [f"--abi {each}" for each in self.abis]
        return " ".join(said)

    def applied_to(self, interpreter: Interpreter) -> Interpreter:
        """``interpreter`` as the machine these options describe: its tags, version and markers replaced."""
        version = self.version_info if self.version is not None else None
        full = (*version, 0, 0)[:3] if version is not None else None
        ours = interpreter.tags[0].interpreter if interpreter.tags else "cp"
        implementation = self.implementation or re.sub(r"\d.*", "", ours)
        platforms = _expanded(self.platforms) if self.platforms else _platforms_of(interpreter.tags)
        abis = list(self.abis) or None
        if version is None:
            nodot = re.sub(r"^[a-z]+", "", ours)  # what the interpreter's own tags say: cp311 → 311
            version = (int(nodot[0]), int(nodot[1:])) if len(nodot) > 1 else (int(nodot),)
        name = f"{implementation}{''.join(map(str, version[:2]))}"
        if implementation == "cp":
            tags = list(cpython_tags(version, abis, platforms))
        else:
            tags = list(generic_tags(name, abis, platforms))
        tags += compatible_tags(version, name, platforms)
        markers = dict(interpreter.marker_environment())
        if full is not None:
            markers["python_version"] = "{}.{}".format(*full)
            markers["python_full_version"] = "{}.{}.{}".format(*full)
        if implementation in _IMPLEMENTATIONS:
            markers["implementation_name"], markers["platform_python_implementation"] = _IMPLEMENTATIONS[
                implementation
            ]
        if self.platforms:
            markers.update(_platform_markers(self.platforms[0]))
        return replace(
            interpreter,
            tags=tuple(dict.fromkeys(tags)),
            full_version="{}.{}.{}".format(*full) if full is not None else interpreter.full_version,
            markers=tuple(sorted(markers.items())),
            emulated=self.described(),
        )


def _platforms_of(tags: Sequence[Tag]) -> list[str]:
    """The interpreter's own platform tags, in its order (``any`` is added by the compatible tags)."""
    return [each for each in dict.fromkeys(tag.platform for tag in tags) if each != "any"]


def _expanded(platforms: Sequence[str]) -> list[str]:
    """Each platform with those it runs (see the module docstring), in order, each once."""
    return list(dict.fromkeys(each for platform in platforms for each in _runs(platform)))


def _runs(platform: str) -> Iterator[str]:
    legacy, _, arch = platform.partition("_")
    if legacy in _LEGACY_GLIBC and arch in _LEGACY_ARCHES[legacy]:
        yield from _manylinux(*_LEGACY_GLIBC[legacy], arch)
    elif (many := _MANYLINUX.fullmatch(platform)) is not None:
        yield from _manylinux(int(many[1]), int(many[2]), many[3])
    elif (musl := _MUSLLINUX.fullmatch(platform)) is not None:
        yield from (f"musllinux_{musl[1]}_{minor}_{musl[3]}" for minor in range(int(musl[2]), -1, -1))
    elif (mac := _MACOSX.fullmatch(platform)) is not None:
        yield from mac_platforms((int(mac[1]), int(mac[2])), mac[3])
    else:
        yield platform


def _manylinux(major: int, minor: int, arch: str) -> Iterator[str]:
    """What ``packaging.tags`` lists on a machine of glibc ``major.minor``: every glibc back to the first
    manylinux of ``arch`` (2.5 for x86, 2.17 for the others), each followed by its legacy name if it has one."""
    lowest = 5 if arch in {"x86_64", "i686"} else 17
    for each in range(minor, lowest - 1, -1) if major == 2 else (minor,):
        yield f"manylinux_{major}_{each}_{arch}"
        legacy = _LEGACY_MANYLINUX.get((major, each))
        if legacy is not None and arch in _LEGACY_ARCHES[legacy]:
            yield f"{legacy}_{arch}"


def _platform_markers(platform: str) -> dict[str, str]:
    """PEP 508's system markers of a machine a platform tag names (none for a tag it cannot place)."""
    prefix = re.sub(r"[^a-z].*", "", platform)  # manylinux2014_x86_64 → manylinux, win32 → win
    if prefix not in _SYSTEMS:
        return {}
    sys_platform, system, os_name = _SYSTEMS[prefix]
    markers = {"sys_platform": sys_platform, "platform_system": system, "os_name": os_name}
    if prefix == "win":
        machine = _WINDOWS_MACHINES.get(platform)
    else:
        machine = re.sub(
            r"^(manylinux_\d+_\d+|musllinux_\d+_\d+|macosx_\d+_\d+|manylinux\d+|linux)_", "", platform
        )
        machine = None if machine in {"universal2", "universal", "intel", "fat", "fat3", "fat64"} else machine
    if machine:
        markers["platform_machine"] = machine
    return markers
