"""wheelstream: stream a wheel from a URL onto disk; resume both download and unpack after any interruption."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
