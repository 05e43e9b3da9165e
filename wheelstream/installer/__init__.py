"""Install unpacked wheels exactly as pip would: into a ``--target`` directory (:func:`install_staged_many`,
the mapping told in :mod:`._core`) or into an environment — a venv, a prefix, an interpreter's own — replacing
what is there (:func:`install_into`, :mod:`._env_install`); and remove from an environment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._checks import WheelToInstall
from ._core import InstallReport, check_target, install_staged, install_staged_many
from ._destination import LinkMode
from ._environment import Environment, EnvironmentReport, find_environment
from ._interpreter import HomeScheme, Interpreter, probe_interpreter
from ._target_python import TargetPython

if TYPE_CHECKING:
    from ._env_install import install_into, installed_now, same_version, uninstall
    from ._installed import Installed, installed_distributions

# Installing into an environment (and reading what one holds) is imported on first use (PEP 562): a
# ``--target`` install never needs it (docs/performance.md#d-lazy-imports). The types the API's annotations name
# (``Environment``, ``EnvironmentReport``) are not: ``typing.get_type_hints`` must resolve them.
_LAZY = {
    "install_into": "._env_install",
    "installed_now": "._env_install",
    "same_version": "._env_install",
    "uninstall": "._env_install",
    "Installed": "._installed",
    "installed_distributions": "._installed",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Environment",
    "EnvironmentReport",
    "HomeScheme",
    "InstallReport",
    "Installed",
    "Interpreter",
    "LinkMode",
    "TargetPython",
    "WheelToInstall",
    "check_target",
    "find_environment",
    "install_into",
    "install_staged",
    "install_staged_many",
    "installed_distributions",
    "installed_now",
    "probe_interpreter",
    "same_version",
    "uninstall",
]
