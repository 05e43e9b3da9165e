"""Install unpacked wheels exactly as pip would: into a ``--target`` directory (:func:`install_staged_many`,
the mapping told in :mod:`._core`) or into an environment — a venv, a prefix, an interpreter's own — replacing
what is there (:func:`install_into`, :mod:`._env_install`); and remove from an environment.
"""

from __future__ import annotations

from ._checks import WheelToInstall
from ._core import InstallReport, install_staged, install_staged_many
from ._destination import LinkMode
from ._env_install import EnvironmentReport, install_into, same_version, uninstall
from ._environment import Environment, find_environment
from ._installed import Installed, installed_distributions
from ._interpreter import HomeScheme, Interpreter, probe_interpreter

__all__ = [
    "Environment",
    "EnvironmentReport",
    "HomeScheme",
    "InstallReport",
    "Installed",
    "Interpreter",
    "LinkMode",
    "WheelToInstall",
    "find_environment",
    "install_into",
    "install_staged",
    "install_staged_many",
    "installed_distributions",
    "probe_interpreter",
    "same_version",
    "uninstall",
]
