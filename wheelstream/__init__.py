"""wheelstream: stream a wheel from a URL onto disk; resume both download and unpack after any interruption.

The library surface is small: :func:`install` and :func:`download` (``wheelstream._api``), the progress
protocol, the error tree in :mod:`wheelstream.errors`, and the sans-I/O :class:`wheelstream.zip.ZipStreamParser`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from wheelstream._api import DEFAULT_INDEX_URL, InstallResult, WheelOutcome, download, install
from wheelstream._progress import Progress, ProgressCallback
from wheelstream.errors import WheelstreamError
from wheelstream.installer import InstallReport

__all__ = [
    "DEFAULT_INDEX_URL",
    "InstallReport",
    "InstallResult",
    "Progress",
    "ProgressCallback",
    "WheelOutcome",
    "WheelstreamError",
    "__version__",
    "download",
    "install",
]
