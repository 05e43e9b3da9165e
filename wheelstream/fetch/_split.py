"""When one download goes over several connections (``_segmented``), and where its first piece ends.

* **Asked for** (``connections=N``, N > 1): the first request already asks for one piece (``probe_end``). Its
  206 says the server serves ranges, and since every request then asks for exactly its piece, none is ever
  stopped early.
* **Automatic** (``connections=None``): the download starts with one connection, and ``Starving`` watches it
  for ``WATCH_SECONDS``: when the unpack worker spent at least ``STARVED`` (a quarter) of it waiting for
  blocks — the network, not the unpacker, is the bottleneck — and the rest is big (``AUTO_PIECES`` pieces),
  the open response reads what the kernel already holds for it (``backlog``: a busy process can be behind
  even on a slow link) and stops there, and as many connections as would keep the unpacker busy
  (``judged``, at most ``AUTO_CONNECTIONS``) take the next pieces. On a fast link the unpack worker always
  has its next block waiting, and nothing changes.
* **Never**: ``connections=1``; no ``pwrite`` (Windows); a response without a known length, an identity body,
  a validator for ``If-Range`` or ranges (``Accept-Ranges: bytes``, or a 206); a server that ignored Range on
  a piece.

``MAX_CONNECTIONS`` caps what may be asked for: polite to mirrors.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable

import httpx

try:
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows: no FIONREAD through fcntl
    fcntl = None  # type: ignore[assignment]

from wheelstream.fetch._options import DownloadOptions
from wheelstream.transport import socket_of

__all__ = ["AUTO_CONNECTIONS", "MAX_CONNECTIONS", "Starving", "connections", "probe_end", "serves_ranges"]

MAX_CONNECTIONS = 8
AUTO_CONNECTIONS = 4
AUTO_PIECES = 4  # automatic: only a rest of at least this many pieces is split
WATCH_SECONDS = 1.0  # automatic: how long one connection is watched before it is judged
STARVED = 0.25  # ... and the share of that time the unpacker waited that makes one connection too few


def slots(options: DownloadOptions) -> int:
    """How many of a host's slots (connections beyond each download's first: ``_host_slots``) one may use."""
    return connections(options) - 1


def connections(options: DownloadOptions) -> int:
    """How many connections a segmented download of these options may use at once."""
    return min(options.connections or AUTO_CONNECTIONS, MAX_CONNECTIONS)


def piece_end(options: DownloadOptions, position: int, length: int | None) -> int:
    """The end of the piece that starts at ``position``."""
    end = position + options.piece_bytes
    return end if length is None else min(end, length)


def probe_end(options: DownloadOptions, position: int, length: int | None) -> int | None:
    """Where the first request of a download asked to use several connections stops; None: not asked."""
    if options.connections is None or options.connections == 1:
        return None
    return piece_end(options, position, length)


def backlog(response: httpx.Response) -> int:
    """Bytes of ``response`` the kernel holds that nobody has read yet (``FIONREAD``); 0 when unknown.

    A download about to go over several connections drains these through its open response before closing
    it: they were sent already, and closing it with them unread would have them fetched twice."""
    sock = socket_of(response.extensions.get("network_stream"))
    if sock is None or fcntl is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return 0


def serves_ranges(response: httpx.Response) -> bool:
    return response.status_code == 206 or response.headers.get("accept-ranges", "").lower() == "bytes"


def worth_watching(options: DownloadOptions, position: int, length: int | None) -> bool:
    """Automatic, and a rest big enough to split."""
    return (
        options.connections is None
        and length is not None
        and length - position >= AUTO_PIECES * options.piece_bytes
    )


class Starving:
    """Is one connection the bottleneck? The unpack worker's time spent waiting for blocks (``idle``, its
    running total), per window of ``WATCH_SECONDS``: on a fast link it always has the next block (the
    bounded queue is full), and more connections would only add requests. Measured on the worker, not on the
    network thread, whose waits for the next chunk include waits for the GIL the worker holds: counted as
    network, they made 40 MB/s look like 10 (docs/performance.md, D-auto-connections)."""

    def __init__(self, idle: Callable[[], float]) -> None:
        self.idle = idle
        self.start, self.idle_at_start = time.monotonic(), idle()

    def judged(self) -> int:
        """How many connections the unpacker could use, once a window has ended with at least ``STARVED`` of
        it spent waiting (1 otherwise): waiting a share ``w`` of the time, one connection brings ``1 - w`` of
        what the unpacker takes, so ``1 / (1 - w)`` of them would keep it busy — more would only race ahead of
        it, fill buffers and leave more unpacked work to a kill. At most ``AUTO_CONNECTIONS``."""
        now, idle = time.monotonic(), self.idle()
        if now - self.start < WATCH_SECONDS:
            return 1
        share = (idle - self.idle_at_start) / (now - self.start)
        self.start, self.idle_at_start = now, idle
        if share < STARVED:
            return 1
        return min(AUTO_CONNECTIONS, math.ceil(1 / max(1 - share, 1 / AUTO_CONNECTIONS)))
