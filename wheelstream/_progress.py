"""The progress-callback protocol: what a UI (the CLI's rich bars, an installer's own) is told, and when.

Callbacks run on the downloading thread; keep them cheap. ``message`` carries the events a person wants to
see: "resumed at 612.0 MB (saved 612.0 MB)", "restarting from zero: the file changed on the server".
Sizes in those messages, and everywhere the CLI prints one, are spelt by :func:`human_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Progress", "ProgressCallback", "human_size"]


@dataclass(frozen=True)
class Progress:
    wheel: str
    bytes_done: int  # bytes of the wheel file held (on disk or in flight), resumed bytes included
    total: int | None  # file length when the server declared it
    entries_done: int  # archive entries unpacked
    resumed_at: int | None  # offset this call resumed at, once it has
    message: str | None = None
    finished: bool = False
    connections: int = 1  # connections a segmented download of this wheel uses now (its limit; more than one:
    # ``bytes_done`` then counts every piece on disk)


class ProgressCallback(Protocol):
    def __call__(self, progress: Progress, /) -> None: ...


def human_size(size: int | None) -> str:
    """``612.0 MB``, ``312 kB``, ``4.5 kB``, ``900 bytes``; ``?`` when unknown.

    Decimal units, as pip prints them and as rich's bars count (``DownloadColumn``, ``TransferSpeedColumn``):
    the messages said "MB" of MiB while the bar beside them said "MiB", and the rate "MB/s" of decimal MB.
    """
    if size is None:
        return "?"
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 10_000:
        return f"{size // 1000} kB"
    if size >= 1000:
        return f"{size / 1000:.1f} kB"
    return f"{size} bytes"
