"""The interpreter a wheel is installed *for* (``--python``), probed once per path.

pip bakes facts about the interpreter running it into an install: ``sys.executable`` in shebangs and launchers,
``pythonX.Y`` in the header path, the tags a wheel must match. With ``--python`` pip re-executes itself under
that interpreter, so those facts are the target's. We get them by running :mod:`._probe` in the target once.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import packaging
from packaging.tags import Tag, parse_tag

from ..errors import UsageError
from . import _probe

__all__ = ["HomeScheme", "Interpreter", "probe_interpreter"]


@dataclass(frozen=True, slots=True)
class HomeScheme:
    """pip's ``--home`` scheme, as ``/``-separated paths relative to the home (``data`` is usually ``.``).

    ``include`` is the headers *parent*: pip appends the project's name to it.
    """

    purelib: str
    platlib: str
    scripts: str
    data: str
    include: str


@dataclass(frozen=True, slots=True)
class Interpreter:
    """What an install needs to know about its target interpreter."""

    executable: str  # its own sys.executable: what pip writes into shebangs
    version: tuple[int, int]
    in_venv: bool
    fs_encoding: str
    linesep: str
    platform: str
    cross_compiling: bool
    # most preferred first, like packaging.tags.sys_tags(); ~1,700 of them, left out of the repr (49 KB)
    tags: tuple[Tag, ...] = field(repr=False)
    scheme: HomeScheme  # pip's --home scheme (what --target installs through)
    prefix_scheme: HomeScheme | None = None  # pip's --prefix scheme, relative to the prefix
    env_scheme: HomeScheme | None = None  # where a plain install goes: its environment's paths, absolute
    prefix: str = ""  # sys.prefix
    externally_managed: str | None = None  # PEP 668's error text when the marker applies to this interpreter
    full_version: str = ""  # X.Y.Z, what an index's requires-python is compared with (as pip compares it)
    # PEP 508's marker environment as pairs (the probe is cached); () for the running interpreter, whose
    # environment ``marker_environment`` computes when asked
    markers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # where it imports from, absolute: ``sys.path`` and the site-packages ``site`` adds once they exist
    import_path: tuple[str, ...] = field(default=(), repr=False)
    # standing for another machine (``TargetPython.applied_to``): the markers that differ there, and the options
    # that describe it, which messages show in place of the executable ("" for the interpreter itself)
    marker_overrides: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    emulated: str = ""
    # ``tags`` as a set, derived once: a wheel's check looks its few tags up among these ~1,700
    supported: frozenset[Tag] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "supported", frozenset(self.tags))

    @property
    def described(self) -> str:
        """What a message calls it: its path, or the options of the machine it stands for."""
        return self.emulated or self.executable

    @property
    def version_text(self) -> str:
        """``X.Y`` as pip's ``get_major_minor_version`` spells it."""
        return f"{self.version[0]}.{self.version[1]}"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508's marker environment, which a lock's markers are evaluated for. Another interpreter's comes
        with its probe (a subprocess: all at once); the running one's only when asked, since importing
        ``packaging.markers`` costs more than the rest of the probe and an install from URLs never evaluates a
        marker (docs/performance.md, D-lazy-imports)."""
        own = dict(self.markers) if self.markers else _probe.marker_environment()
        return {**own, **dict(self.marker_overrides)}

    @property
    def is_current(self) -> bool:
        """True when this is the interpreter running wheelstream (work can stay in-process)."""
        return self.executable == sys.executable


def _from_payload(payload: dict[str, object]) -> Interpreter:
    scheme = payload["scheme"]
    version = payload["version"]
    tags = payload["tags"]
    assert isinstance(version, list)
    if tags is None:  # a Python too old for our packaging: its tags made here, from what it told
        from ._old_pythons import tags_from_facts

        facts = payload["tag_facts"]
        assert isinstance(facts, dict)
        tags = tags_from_facts(facts, str(payload["executable"]))
    assert isinstance(tags, list)
    return Interpreter(
        executable=str(payload["executable"]),
        version=(int(version[0]), int(version[1])),
        in_venv=bool(payload["in_venv"]),
        fs_encoding=str(payload["fs_encoding"]),
        linesep=str(payload["linesep"]),
        platform=str(payload["platform"]),
        cross_compiling=bool(payload["cross_compiling"]),
        # ``collect`` spells a tag out for JSON (one each, as sys_tags() yields them), or hands over the Tag
        tags=tuple(
            tag
            for each in tags
            for tag in ((each,) if isinstance(each, Tag) else sorted(parse_tag(str(each)), key=str))
        ),
        scheme=_scheme(scheme),
        prefix_scheme=_scheme(payload["prefix_scheme"]),
        env_scheme=_scheme(payload["env_scheme"]),
        prefix=str(payload["prefix"]),
        import_path=tuple(str(entry) for entry in payload.get("import_path") or ()),  # type: ignore[attr-defined]
        full_version=str(payload.get("full_version") or ""),
        externally_managed=None
        if payload["externally_managed"] is None
        else str(payload["externally_managed"]),
        markers=() if payload["markers"] is None else _pairs(payload["markers"]),
    )


def _pairs(mapping: object) -> tuple[tuple[str, str], ...]:
    assert isinstance(mapping, dict)
    return tuple(sorted((str(key), str(value)) for key, value in mapping.items()))


def _scheme(paths: object) -> HomeScheme:
    assert isinstance(paths, dict)
    return HomeScheme(**{key: str(value) for key, value in paths.items()})


@functools.lru_cache(maxsize=16)
def probe_interpreter(python: str | None = None) -> Interpreter:
    """Describe ``python`` (a path or command), or the running interpreter when ``None``.

    A foreign interpreter runs the probe in isolated mode (``-I``: no user site, no ``PYTHON*`` variables)
    with our ``packaging`` first on its path, so it needs nothing installed, and in this process's UTF-8 mode
    (``-X utf8``, which ``-I`` keeps where it drops ``PYTHONUTF8``): its paths come back as text this process
    turns into the same bytes (under ``PYTHONUTF8=1`` in a Latin-1 locale, ``é`` in a venv's path came back as
    ``Ã©``, and nothing was found there).
    """
    if python is None:
        return _from_payload(_probe.collect(in_process=True))
    site = str(Path(packaging.__file__).resolve().parent.parent)
    try:
        proc = subprocess.run(
            [python, "-I", "-X", f"utf8={sys.flags.utf8_mode}", str(Path(_probe.__file__).resolve()), site],
            capture_output=True,
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        return _from_payload(json.loads(proc.stdout.decode("utf-8")))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        detail = (
            exc.stderr.decode(errors="replace").strip()
            if isinstance(exc, subprocess.CalledProcessError)
            else exc
        )
        lines = str(detail).splitlines() or [""]
        too_old = _older_than_supported(python) if isinstance(exc, subprocess.CalledProcessError) else None
        raise UsageError(f"cannot use interpreter {python!r}: {too_old or lines[-1]}") from exc


def _older_than_supported(python: str) -> str | None:
    """Why a probe failed, when it is the interpreter's age: the probe's syntax (and ``_old_pythons``' facts)
    need Python 3.8 (an older one failed with a bare ``SyntaxError``). Asked with code and options any Python
    runs, 2.7 included (``-I`` is 3.4's)."""
    try:
        proc = subprocess.run(
            [python, "-E", "-s", "-c", "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        version = tuple(int(part) for part in proc.stdout.decode("ascii").split("."))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    from ._old_pythons import too_old

    return too_old(version)
