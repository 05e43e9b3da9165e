"""Making the staged files durable: one ``syncfs(2)`` of the staging file system, through ctypes into libc.

A checkpoint may list a staged file only once the file is on disk (DESIGN §2 rule 1). One ``syncfs`` writes back
the single file system that holds staging, instead of ``os.sync()`` (every file system on the machine) or an
``fsync`` per file (a journal commit each) — docs/performance.md#d-syncfs.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from typing import cast

__all__ = ["sync_file_system"]


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux only), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return cast("Callable[[int], int]", function)


_SYNCFS = _load_syncfs()


def sync_file_system(directory: str) -> None:
    """Write back every file whose writes returned before the call, on the file system holding ``directory``.

    What it touches: libc, through ctypes (``syncfs`` is not in :mod:`os`), looked up once at import. Fallback:
    where there is no ``syncfs`` (not Linux, a libc without it) or it fails, an ``fsync`` of the directory and
    ``os.sync()`` — every file system, slower, as safe. Windows can neither open a directory nor sync a whole
    file system from user space: there the files are left to the system's write-back, and a power loss may
    cost the checkpoint (a kill -9 does not).
    """
    if os.name == "nt":  # pragma: no cover - not run on the project's machines
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        if _SYNCFS is None or _SYNCFS(fd) != 0:
            os.fsync(fd)
            if hasattr(os, "sync"):
                os.sync()
    finally:
        os.close(fd)
