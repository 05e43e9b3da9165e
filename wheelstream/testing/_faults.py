"""The fault vocabulary: small frozen values that say how a response should go wrong.

A fault is data, never behaviour: :mod:`wheelstream.testing._engine` reads a :class:`FaultPlan` and turns it
into one response decision, and the HTTP handler only carries that decision out. Keeping faults inert means
the pytest plugin, the CLI and a test's own assertions all share one meaning of "cut at 50 %".

Scoping. Every fault has ``requests``: which requests *for that file* it applies to, counted from 1 in the
order the server received them (HEAD and GET alike). ``None`` means every request; an ``int`` means exactly
that one; any container of ints (a ``set``, a ``range``, :func:`since`) means its members. Scoping by number
rather than by time is what makes a scenario reproducible: "the first GET is cut, the resume succeeds".
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "ChangeFile",
    "Corrupt",
    "Cut",
    "CutEvery",
    "Fault",
    "FaultPlan",
    "Gzip",
    "IgnoreRange",
    "NoValidators",
    "RequestScope",
    "Stall",
    "Status",
    "StatusSequence",
    "Throttle",
    "WeakETag",
    "WrongRangeStart",
    "since",
]

RequestScope = int | Container[int] | None
"""Which request numbers (1-based, per file) a fault applies to; ``None`` = all."""


def since(first: int) -> range:
    """Scope "request ``first`` and every later one" without a magic upper bound in every test."""
    return range(first, 2**62)


def _in_scope(scope: RequestScope, number: int) -> bool:
    if scope is None:
        return True
    if isinstance(scope, int):
        return number == scope
    return number in scope


def _check_final_status(code: int, what: str) -> None:
    """A status that can answer a request: HTTP/1.1 has no final status outside 200-599 (1xx are interim)."""
    if not 200 <= code <= 599:
        raise ValueError(f"{what} must be a final status, 200-599 (got {code})")
    if code == 206:  # a partial answer needs the Content-Range of a range: a Range request gets one already
        raise ValueError(
            f"{what} cannot be 206: send a Range request, or use WrongRangeStart for a wrong one"
        )


def check_retry_after(value: int | str | None, what: str) -> None:
    """``Retry-After`` is delay-seconds (digits) or an HTTP-date (RFC 9110 §10.2.3); ``-1`` or ``abc`` went out
    as given, a header no real server sends."""
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{what} must be seconds >= 0 or an HTTP-date (got {value})")
        return
    text = str(value)
    if text.isascii() and text.isdigit():
        return
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{what} must be seconds >= 0 or an HTTP-date (got {text!r})") from None


@dataclass(frozen=True)
class Fault:
    """Base of every fault; carries the request scope so the engine can filter uniformly."""

    def applies_to(self, number: int) -> bool:
        """Whether this fault shapes the response to the ``number``-th request for the file."""
        return _in_scope(getattr(self, "requests", None), number)


@dataclass(frozen=True)
class Cut(Fault):
    """Close the connection after ``after`` body bytes (or ``percent`` % of the body).

    Headers still declare the full Content-Length, so the client sees what a dropped TCP connection looks
    like: a short body, then EOF (``reset=False``, a FIN) or ECONNRESET (``reset=True``, an RST).
    """

    after: int | None = None
    percent: float | None = None
    reset: bool = False
    requests: RequestScope = None

    def __post_init__(self) -> None:
        if (self.after is None) == (self.percent is None):
            raise ValueError("Cut needs exactly one of after= or percent=")
        if self.after is not None and self.after < 0:
            raise ValueError("Cut(after=) must be >= 0")
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise ValueError("Cut(percent=) must be within 0..100")

    def cut_point(self, body_length: int) -> int:
        """Body bytes to send before closing, for a body of ``body_length`` bytes."""
        if self.after is not None:
            return self.after
        assert self.percent is not None
        return int(body_length * self.percent / 100)


@dataclass(frozen=True)
class CutEvery(Fault):
    """Cut every response after ``size`` body bytes: a resuming client gains exactly ``size`` per attempt."""

    size: int
    reset: bool = False
    requests: RequestScope = None

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("CutEvery(size=) must be > 0")


@dataclass(frozen=True)
class Stall(Fault):
    """Stop sending for ``seconds`` once ``at`` body bytes are out; exercises read timeouts."""

    at: int
    seconds: float
    requests: RequestScope = None

    def __post_init__(self) -> None:
        if self.at < 0:
            raise ValueError("Stall(at=) must be >= 0")
        if not (math.isfinite(self.seconds) and self.seconds >= 0):  # a negative sleep raised mid-response
            raise ValueError("Stall(seconds=) must be a finite number >= 0")


@dataclass(frozen=True)
class Throttle(Fault):
    """Pace the body to ``bytes_per_second``; makes progress bars and Ctrl-C tests observable."""

    bytes_per_second: int
    requests: RequestScope = None

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError("Throttle(bytes_per_second=) must be > 0")


@dataclass(frozen=True)
class IgnoreRange(Fault):
    """Answer a Range request with 200 and the whole body, as many CDNs and static servers do."""

    requests: RequestScope = None


@dataclass(frozen=True)
class WrongRangeStart(Fault):
    """Answer a Range request with a 206 whose Content-Range starts ``shift`` bytes away from the asked start.

    The body really is the bytes from the wrong start, so a client that ignores Content-Range splices the
    wrong bytes. If ``start + shift`` falls outside the file, ``start - shift`` is used instead; a shift past
    both ends moves the start as far as the file allows in its direction (else in the other).
    """

    shift: int = -1
    requests: RequestScope = None

    def __post_init__(self) -> None:
        if self.shift == 0:
            raise ValueError("WrongRangeStart(shift=) must not be 0")


@dataclass(frozen=True)
class ChangeFile(Fault):
    """From request ``after_request + 1`` on, serve different bytes with a new ETag and Last-Modified.

    ``data=None`` derives the new bytes from the old (same length, every byte XOR 0x5A), which is the
    nastiest case for a client: the Content-Length alone cannot reveal the change.
    """

    after_request: int
    data: bytes | None = None

    def __post_init__(self) -> None:
        if self.after_request < 0:
            raise ValueError("ChangeFile(after_request=) must be >= 0")

    def applies_to(self, number: int) -> bool:
        """Whether request ``number`` sees the changed file."""
        return number > self.after_request


@dataclass(frozen=True)
class WeakETag(Fault):
    """Send ``ETag: W/"..."``: RFC 9110 forbids weak tags in If-Range, so a resume by ETag must fail."""

    requests: RequestScope = None


@dataclass(frozen=True)
class NoValidators(Fault):
    """Send neither ETag nor Last-Modified; an If-Range can then never match and Range is ignored."""

    requests: RequestScope = None


@dataclass(frozen=True)
class Corrupt(Fault):
    """XOR the byte at file offset ``offset`` with ``mask`` whenever a response carries it."""

    offset: int
    mask: int = 0xFF
    requests: RequestScope = None

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError("Corrupt(offset=) must be >= 0")
        if not 1 <= self.mask <= 0xFF:
            raise ValueError("Corrupt(mask=) must be within 1..255")


@dataclass(frozen=True)
class Status(Fault):
    """Answer with ``code`` (and ``Retry-After`` if given) instead of the file.

    ``code`` is a final status, 200-599: a 1xx is an interim response, which cannot end a request. 204, 205
    and 304 go without a body, as HTTP requires of them.
    """

    code: int
    retry_after: int | str | None = None
    requests: RequestScope = None

    def __post_init__(self) -> None:
        _check_final_status(self.code, "Status(code=)")
        check_retry_after(self.retry_after, "Status(retry_after=)")


@dataclass(frozen=True)
class StatusSequence(Fault):
    """Answer request ``i`` with ``codes[i-1]`` (``None`` = serve normally); later requests are served.

    ``StatusSequence((503, 429), retry_after=1)`` is the classic "busy, busy, fine" server.
    """

    codes: tuple[int | None, ...]
    retry_after: int | str | None = None

    def __post_init__(self) -> None:
        if all(code is None for code in self.codes):  # "status-seq=," forced nothing on any request
            raise ValueError("StatusSequence(codes=) must force a status on at least one request")
        for code in self.codes:
            if code is not None:
                _check_final_status(code, "StatusSequence(codes=)")
        check_retry_after(self.retry_after, "StatusSequence(retry_after=)")

    def code_for(self, number: int) -> int | None:
        """The status forced on request ``number``, if any."""
        return self.codes[number - 1] if 1 <= number <= len(self.codes) else None

    def applies_to(self, number: int) -> bool:
        """Whether request ``number`` gets a forced status."""
        return self.code_for(number) is not None


@dataclass(frozen=True)
class Gzip(Fault):
    """Send the body gzip-compressed with ``Content-Encoding: gzip`` whatever the client's Accept-Encoding.

    Ranges then address the compressed bytes (as nginx's ``gzip_static`` does), and the ETag gets a
    ``-gzip`` suffix (as Apache's mod_deflate does), so a resume across representations cannot match.
    """

    requests: RequestScope = None


class FaultPlan:
    """An ordered set of faults for one file; empty = a well-behaved HTTP/1.1 file server.

    A plain class rather than a dataclass so that ``FaultPlan(Cut(after=10), Throttle(1000))`` reads like
    the scenario it describes.
    """

    __slots__ = ("faults",)

    def __init__(self, *faults: Fault) -> None:
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"not a fault: {fault!r}")
        self.faults: tuple[Fault, ...] = tuple(faults)

    def active(self, number: int) -> list[Fault]:
        """The faults that shape request ``number``."""
        return [f for f in self.faults if f.applies_to(number)]

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __add__(self, other: FaultPlan) -> FaultPlan:
        return FaultPlan(*self.faults, *other.faults)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FaultPlan) and self.faults == other.faults

    def __hash__(self) -> int:
        return hash(self.faults)

    def __repr__(self) -> str:
        return f"FaultPlan({', '.join(map(repr, self.faults))})"
