"""When one download goes over several connections (``_segmented``), and where its first piece ends.

* **Asked for** (``connections=N``, N > 1): the first request already asks for one piece (``probe_end``): a
  share of the rest when the length is known (a resume), else ``piece_bytes``. Its 206 says the server serves
  ranges, and since every request then asks for exactly its piece, none is ever stopped early.
* **Automatic** (``connections=None``): the download starts with one connection, and ``Starving`` watches it
  for ``WATCH_SECONDS``: when the network thread spent at least half of it waiting for the next chunk — the
  network, not the unpacker, is the bottleneck — and the rest is big (``AUTO_PIECES`` pieces), the open
  response keeps its share (``share_end``) and ``AUTO_CONNECTIONS - 1`` more take the rest. On a fast link the
  network thread mostly waits for the unpacker's bounded queue instead, and nothing changes.
* **Never**: ``connections=1``; no ``pwrite`` (Windows); a response without a known length, an identity body,
  a validator for ``If-Range`` or ranges (``Accept-Ranges: bytes``, or a 206); a server that ignored Range on
  a piece.

``MAX_CONNECTIONS`` caps what may be asked for: polite to mirrors.
"""

from __future__ import annotations

import time

import httpx

from wheelstream.fetch._options import DownloadOptions

__all__ = ["AUTO_CONNECTIONS", "MAX_CONNECTIONS", "Starving", "connections", "probe_end", "serves_ranges"]

MAX_CONNECTIONS = 8
AUTO_CONNECTIONS = 4
AUTO_PIECES = 4  # automatic: only a rest of at least this many pieces is split
WATCH_SECONDS = 1.0  # automatic: how long one connection is watched before it is judged
STARVED = 0.5  # ... and the share of that time spent waiting for the network that makes one too few


def connections(options: DownloadOptions) -> int:
    """How many connections a segmented download of these options may use at once."""
    return min(options.connections or AUTO_CONNECTIONS, MAX_CONNECTIONS)


def share_end(options: DownloadOptions, position: int, length: int, parts: int) -> int:
    """The end of one of ``parts`` shares of ``position..length`` (at least a piece)."""
    return min(length, position + max(options.piece_bytes, -(-(length - position) // parts)))


def probe_end(options: DownloadOptions, position: int, length: int | None) -> int | None:
    """Where the first request of a download asked to use several connections stops; None: not asked."""
    if options.connections is None or options.connections == 1:
        return None
    if length is None:
        return position + options.piece_bytes
    return share_end(options, position, length, options.connections)


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
    """Is one connection the bottleneck? The network thread's time spent waiting for the body's next chunk,
    per window of ``WATCH_SECONDS``: on a fast link it mostly waits for the unpacker instead (the bounded
    queue is full), and more connections would only add requests."""

    def __init__(self) -> None:
        self.start = self.mark = time.monotonic()
        self.waiting = 0.0

    def arrived(self) -> None:
        """A chunk came: the time since the last one was handled was spent waiting for it."""
        self.waiting += time.monotonic() - self.mark

    def judged(self) -> bool:
        """The chunk was handled; True when the window ended with most of it spent waiting."""
        now = self.mark = time.monotonic()
        if now - self.start < WATCH_SECONDS:
            return False
        starved = self.waiting >= STARVED * (now - self.start)
        self.start, self.waiting = now, 0.0
        return starved
