"""Requests in flight: nginx-style ``limit_conn`` per client address, and the concurrency a test asserts on.

A segmented download opens several ranged connections per file, and real servers cap that: nginx's
``limit_conn`` (503 by default, often configured as 429), CDNs that reset the extra connections. The limit is
server-wide rather than a per-file :class:`~wheelstream.testing.Fault` because that is how those servers
count — all requests of one client address, whatever they ask for — and because a fault is scoped by
request number while a refusal depends only on what else is in flight at that moment.

"In flight" is exactly what nginx counts: a request whose headers were read and whose response is not over
yet (complete, cut, reset, failed on a vanished client, or failed on an exception). Idle keep-alive
connections do not count. A refused request is never in flight: it is not admitted, so it neither uses a
slot nor shows in the peaks, which measure what the client really got served at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from wheelstream.testing._faults import check_retry_after

__all__ = ["ConnectionLimit", "InFlight"]


@dataclass(frozen=True)
class ConnectionLimit:
    """At most ``limit`` requests in flight per client address; the next one is refused.

    Refused with ``status`` (503 as nginx, or 429) and ``Retry-After: retry_after`` if given, or, with
    ``reset=True``, by an RST instead of any response (what an overloaded edge or a connection-tracking
    firewall does). Server-wide: ``FaultServer(max_connections=...)`` or ``set_connection_limit``.
    """

    limit: int
    status: int = 503
    retry_after: int | str | None = None
    reset: bool = False

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("ConnectionLimit(limit=) must be >= 1")
        if not 400 <= self.status <= 599:
            raise ValueError("ConnectionLimit(status=) must be a 4xx or 5xx code")
        if self.reset and self.retry_after is not None:
            raise ValueError("ConnectionLimit(reset=True) sends no response, so no Retry-After")
        check_retry_after(self.retry_after, "ConnectionLimit(retry_after=)")

    def __str__(self) -> str:
        """The CLI form, ``N[:CODE[:RETRY_AFTER]]`` or ``N:reset``."""
        if self.reset:
            return f"{self.limit}:reset"
        retry = "" if self.retry_after is None else f":{self.retry_after}"
        return f"{self.limit}:{self.status}{retry}"


class InFlight:
    """Thread-safe counts of admitted requests in flight — per client, per file, overall — and their peaks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_client: Counter[str] = Counter()
        self._by_name: Counter[str] = Counter()
        self._total = 0
        self._peak_by_name: Counter[str] = Counter()
        self._peak = 0

    def admit(self, client: str, name: str | None, limit: ConnectionLimit | None) -> bool:
        """Count the request in unless ``client`` already has ``limit.limit`` in flight; False = refuse.

        Every True must be paired with one :meth:`release` when the response is over, however it ends.
        """
        with self._lock:
            if limit is not None and self._by_client[client] >= limit.limit:
                return False
            self._by_client[client] += 1
            self._total += 1
            self._peak = max(self._peak, self._total)
            if name is not None:
                self._by_name[name] += 1
                self._peak_by_name[name] = max(self._peak_by_name[name], self._by_name[name])
            return True

    def release(self, client: str, name: str | None) -> None:
        """The admitted request of ``client`` for ``name`` is over."""
        with self._lock:
            self._by_client[client] -= 1
            if self._by_client[client] <= 0:
                del self._by_client[client]
            self._total -= 1
            if name is not None:
                self._by_name[name] -= 1
                if self._by_name[name] <= 0:
                    del self._by_name[name]

    def count(self, name: str | None = None) -> int:
        """Requests in flight now, for ``name`` or overall."""
        with self._lock:
            return self._total if name is None else self._by_name[name]

    def peak(self, name: str | None = None) -> int:
        """The most requests in flight at once since the last :meth:`reset_peaks`, for ``name`` or overall."""
        with self._lock:
            return self._peak if name is None else self._peak_by_name[name]

    def reset_peaks(self) -> None:
        """Start measuring anew; requests still in flight are the new starting point."""
        with self._lock:
            self._peak = self._total
            self._peak_by_name = Counter(self._by_name)
