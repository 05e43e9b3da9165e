"""wheelstream: stream a wheel from a URL onto disk; resume both download and unpack after any interruption.

The library surface is small: :func:`install` and :func:`download` (``wheelstream._api``), the progress
protocol, the error tree in :mod:`wheelstream.errors`, and the sans-I/O :class:`wheelstream.zip.ZipStreamParser`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from wheelstream._api import DEFAULT_INDEX_URL, InstallResult, WheelOutcome, Workers, download, install
    from wheelstream._lock_api import install_lock, plan_lock, sync
    from wheelstream._plan import InstallPlan, PlannedWheel, plan_install
    from wheelstream._progress import Progress, ProgressCallback
    from wheelstream.errors import WheelstreamError
    from wheelstream.installer import (
        Environment,
        EnvironmentReport,
        Installed,
        InstallReport,
        TargetPython,
        find_environment,
        installed_distributions,
        uninstall,
    )

# Imported on first use (PEP 562), so that ``python -m wheelstream`` and the script start with the CLI
# package: it decides what the program imports before httpx is (``wheelstream.cli._process.skip_httpx_cli``).
_LAZY = {
    "DEFAULT_INDEX_URL": "wheelstream._api",
    "InstallResult": "wheelstream._api",
    "WheelOutcome": "wheelstream._api",
    "Workers": "wheelstream._api",
    "download": "wheelstream._api",
    "install": "wheelstream._api",
    "install_lock": "wheelstream._lock_api",
    "plan_lock": "wheelstream._lock_api",
    "InstallPlan": "wheelstream._plan",
    "PlannedWheel": "wheelstream._plan",
    "plan_install": "wheelstream._plan",
    "sync": "wheelstream._lock_api",
    "Progress": "wheelstream._progress",
    "ProgressCallback": "wheelstream._progress",
    "WheelstreamError": "wheelstream.errors",
    "InstallReport": "wheelstream.installer",
    "Environment": "wheelstream.installer",
    "EnvironmentReport": "wheelstream.installer",
    "Installed": "wheelstream.installer",
    "TargetPython": "wheelstream.installer",
    "find_environment": "wheelstream.installer",
    "installed_distributions": "wheelstream.installer",
    "uninstall": "wheelstream.installer",
}


# Submodules the package used to import eagerly: ``import wheelstream; wheelstream.errors.X`` keeps working.
_SUBMODULES = frozenset({"errors", "installer", "zip"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"wheelstream.{name}")
    else:
        raise AttributeError(f"module 'wheelstream' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


__all__ = [
    "DEFAULT_INDEX_URL",
    "Environment",
    "EnvironmentReport",
    "InstallPlan",
    "InstallReport",
    "InstallResult",
    "Installed",
    "PlannedWheel",
    "Progress",
    "ProgressCallback",
    "TargetPython",
    "WheelOutcome",
    "WheelstreamError",
    "Workers",
    "__version__",
    "download",
    "find_environment",
    "install",
    "install_lock",
    "installed_distributions",
    "plan_install",
    "plan_lock",
    "sync",
    "uninstall",
]
