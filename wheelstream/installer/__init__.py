"""Install unpacked wheels into a ``--target`` directory exactly as ``pip install --no-deps --target`` would.

Start at :func:`install_staged`; the mapping pip uses and how we reproduce it is told in :mod:`._core`.
"""

from __future__ import annotations

from ._checks import WheelToInstall
from ._core import InstallReport, install_staged, install_staged_many
from ._destination import LinkMode
from ._interpreter import HomeScheme, Interpreter, probe_interpreter

__all__ = [
    "HomeScheme",
    "InstallReport",
    "Interpreter",
    "LinkMode",
    "WheelToInstall",
    "install_staged",
    "install_staged_many",
    "probe_interpreter",
]
