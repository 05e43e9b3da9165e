"""Connections to one host beyond each download's first, shared by every process that uses the same cache.

Politeness to mirrors (issue #24): several wheels downloading at once (``-j``, worker processes, two commands)
must not each open four connections to the same host. So a segmented download (``_segmented``) runs its first
request freely — that one is the download itself, which ``--jobs`` already bounds — and every further one only
while it holds one of the host's *slots*: ``<cache>/hosts/<host key>.<i>.lock``, an OS file lock held for as
long as that connection fetches and freed by the kernel if the process dies. A download may use the first
``connections - 1`` slots: automatically 3, so one download alone reaches 4 connections and any number of
downloads together add at most 3 to their first ones; ``--connections N`` up to N - 1 (at most 7).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import filelock
import httpx

from wheelstream._cache import try_lock

__all__ = ["HostSlots"]


class HostSlots:
    """The slots of the host of ``url`` in the cache ``root``, of which this download may use ``count``."""

    def __init__(self, root: Path, url: str, count: int) -> None:
        parsed = httpx.URL(url)
        key = hashlib.sha256(f"{parsed.scheme}://{parsed.host}:{parsed.port}".encode()).hexdigest()[:16]
        self._paths = [root / "hosts" / f"{key}.{i}.lock" for i in range(max(0, count))]

    def take(self) -> filelock.BaseFileLock | None:
        """A free slot, held until ``release`` (from any thread); None when every slot is in use."""
        if not self._paths:
            return None
        self._paths[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in self._paths:
            lock = try_lock(path)
            if lock is not None:
                return lock
        return None
