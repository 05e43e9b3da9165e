"""``RequestRecord``: what the server received and sent for one request, the thing tests assert on.

A record is filled in while the response is written (status and faults when decided, ``bytes_sent`` as bytes
leave, ``ended`` when the response is over however it ended), and handed out as a copy, so a test reads a
consistent snapshot. It carries enough to check a segmented download after the fact: which client asked,
which bytes of the file the body covered (``body_range``) and how many of them really left (``sent_range``),
and when (``started``/``ended``), so overlap and concurrency are visible without server internals.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RequestRecord"]


@dataclass
class RequestRecord:
    """What the server received and sent for one request; ``headers`` keys are lower-case."""

    seq: int  # position in the server-wide log, from 1
    number: int  # per-file request number the faults were scoped by; 0 for pages and refused requests
    method: str
    path: str
    name: str | None  # served file name, None for index pages and 404s
    headers: dict[str, str]
    range: str | None
    if_range: str | None
    started: float  # time.time() when the request was dispatched
    status: int | None = None  # None: no status line was sent (a connection-limit reset)
    length: int | None = None  # declared Content-Length
    bytes_sent: int = 0  # body bytes handed to the kernel; a client that hung up mid-body read fewer
    cut: bool = False
    faults: tuple[str, ...] = ()
    ended: float | None = None  # time.time() when the response was over (complete, cut, reset or failed)
    error: str | None = None
    client: str = ""  # peer IP address, what the connection limit counts by
    body_range: tuple[int, int] | None = None  # (first, last) representation bytes the declared body covers
    reset: bool = False  # the connection was ended with an RST (Cut(reset=True), a connection-limit reset)

    def summary(self) -> str:
        """One log line: what was asked, what was answered, how much of it left, which faults."""
        asked = f" {self.range}" if self.range else ""
        asked += f" if-range={self.if_range}" if self.if_range else ""
        number = f" #{self.number}" if self.number else ""
        sent = f"{self.bytes_sent}/{self.length}" if self.length is not None else str(self.bytes_sent)
        status = "-" if self.status is None else str(self.status)
        extra = f" [{', '.join(self.faults)}]" if self.faults else ""
        extra += " CUT" if self.cut else ""
        extra += " RST" if self.reset else ""
        extra += f" {self.error}" if self.error else ""
        return f"{self.method} {self.path}{number}{asked} -> {status} sent {sent}{extra}"

    @property
    def content_range(self) -> tuple[int, int] | None:
        """``(first, last)`` of the requested range, for asserts like "the rerun asked for the tail"; ``last`` is
        -1 for an open one (``bytes=a-``), and a suffix (``bytes=-n``, the last n bytes) is ``(-n, -1)``."""
        if self.range is None or not self.range.startswith("bytes="):
            return None
        first, _, last = self.range[6:].partition("-")
        try:
            if not first.strip():
                return -int(last), -1
            return int(first), int(last) if last else -1
        except ValueError:
            return None

    @property
    def sent_range(self) -> tuple[int, int] | None:
        """``(first, last)`` of the file bytes handed to the kernel, inclusive; None when no body byte was.

        Unlike :attr:`content_range` (what was asked) this is what was answered: a suffix range, an ignored
        Range, a wrong start or a cut all show here, so the union of a segmented download's ``sent_range``
        values says exactly which bytes the client was given (unless it hung up mid-body: ``bytes_sent``).
        """
        if self.body_range is None or self.bytes_sent <= 0:
            return None
        first = self.body_range[0]
        return first, first + self.bytes_sent - 1
