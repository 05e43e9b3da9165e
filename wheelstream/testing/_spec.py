"""A one-line text form of faults, so a shell scenario reads like the Python one.

Grammar: ``NAME[=ARG[:ARG]][@REQUESTS]``; REQUESTS is ``*`` or a comma list of ``N``, ``A-B`` and ``A-``
(open-ended). ``change-after`` and ``status-seq`` take no ``@REQUESTS``: their argument says which requests.
Examples::

    cut=50%@1            first request cut after half its body
    cut=65536:reset      every request cut after 64 KiB with a TCP RST
    cut-every=1M         each request delivers 1 MB more, then drops
    stall=1000:2.5       pause 2.5 s after 1000 body bytes
    throttle=500k        500 kB/s
    status=503:1@1-2     503 + Retry-After: 1 for requests 1 and 2
    status-seq=503,429:1 request 1 -> 503, request 2 -> 429, both with Retry-After: 1
    change-after=1       request 2 onwards sees a changed file
    ignore-range  wrong-range-start[=SHIFT]  weak-etag  no-validators  gzip  corrupt=OFFSET[:MASK]

The server-wide connection limit (``--max-connections``, not a fault: it is not scoped by request number) has
the same shape, ``N[:CODE[:RETRY_AFTER]]`` or ``N:reset``::

    4                    at most 4 requests in flight per client address, the next one gets 503
    2:429:1              429 + Retry-After: 1
    4:reset              the next one is answered by a TCP reset
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
from dataclasses import dataclass

from wheelstream.testing._faults import (
    ChangeFile,
    Corrupt,
    Cut,
    CutEvery,
    Fault,
    Gzip,
    IgnoreRange,
    NoValidators,
    RequestScope,
    Stall,
    Status,
    StatusSequence,
    Throttle,
    WeakETag,
    WrongRangeStart,
)
from wheelstream.testing._limits import ConnectionLimit

__all__ = ["NumberSet", "parse_connection_limit", "parse_fault", "parse_scope", "parse_size"]

_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmg]i?)?")  # no sign: a size is never negative


def parse_size(text: str) -> int:
    """``"64Ki"`` -> 65536, ``"1M"`` -> 1000000; decimal and binary suffixes, optional trailing ``B``."""
    match = _SIZE.fullmatch(text.strip().lower().removesuffix("b"))
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match[1]) * _SUFFIXES[match[2] or ""])


@dataclass(frozen=True)
class NumberSet(Container[int]):
    """Request numbers as closed and open-ended ranges; what ``@1,3-5,8-`` parses to."""

    spans: tuple[tuple[int, int | None], ...]

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and any(
            lo <= number and (hi is None or number <= hi) for lo, hi in self.spans
        )

    def __str__(self) -> str:
        return ",".join(f"{lo}" if hi == lo else f"{lo}-{'' if hi is None else hi}" for lo, hi in self.spans)


def parse_scope(text: str) -> RequestScope:
    """``*`` -> None (all requests), else a :class:`NumberSet`."""
    text = text.strip()
    if text in ("", "*"):
        return None
    spans: list[tuple[int, int | None]] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        first = int(lo)
        last = (int(hi) if hi else None) if dash else first
        if first < 1 or (last is not None and last < first):
            raise ValueError(f"bad request range: {part!r}")
        spans.append((first, last))
    return NumberSet(tuple(spans))


def _cut(args: list[str], scope: RequestScope) -> Fault:
    reset = "reset" in args[1:]
    if args[0].endswith("%"):
        return Cut(percent=float(args[0][:-1]), reset=reset, requests=scope)
    return Cut(after=parse_size(args[0]), reset=reset, requests=scope)


def _retry(args: list[str], i: int) -> int | str | None:
    if len(args) <= i:
        return None
    return int(args[i]) if args[i].isdigit() else args[i]


_BUILDERS: dict[str, Callable[[list[str], RequestScope], Fault]] = {
    "cut": _cut,
    "cut-every": lambda a, s: CutEvery(parse_size(a[0]), reset="reset" in a[1:], requests=s),
    "stall": lambda a, s: Stall(at=parse_size(a[0]), seconds=float(a[1]), requests=s),
    "throttle": lambda a, s: Throttle(parse_size(a[0]), requests=s),
    "ignore-range": lambda a, s: IgnoreRange(requests=s),
    "wrong-range-start": lambda a, s: WrongRangeStart(int(a[0]) if a else -1, requests=s),
    "change-after": lambda a, s: ChangeFile(after_request=int(a[0])),
    "weak-etag": lambda a, s: WeakETag(requests=s),
    "no-validators": lambda a, s: NoValidators(requests=s),
    "corrupt": lambda a, s: Corrupt(parse_size(a[0]), int(a[1], 0) if len(a) > 1 else 0xFF, requests=s),
    "status": lambda a, s: Status(int(a[0]), _retry(a, 1), requests=s),
    "status-seq": lambda a, s: StatusSequence(
        tuple(None if c in ("", "-", "ok") else int(c) for c in a[0].split(",")), _retry(a, 1)
    ),
    "gzip": lambda a, s: Gzip(requests=s),
}

FAULT_NAMES = tuple(_BUILDERS)

# What each fault's arguments look like, for the message about one that is missing.
_GRAMMAR = {
    "cut": "cut=N|P%[:reset]",
    "cut-every": "cut-every=K[:reset]",
    "stall": "stall=N:SECONDS",
    "throttle": "throttle=BYTES_PER_SECOND",
    "change-after": "change-after=K",
    "corrupt": "corrupt=OFFSET[:MASK]",
    "status": "status=CODE[:RETRY_AFTER]",
    "status-seq": "status-seq=CODE,CODE...[:RETRY_AFTER]",
}

# How many ``:``-separated arguments each fault takes: one more is a mistake, not something to drop in silence.
_MOST_ARGUMENTS = {
    "cut": 2,
    "cut-every": 2,
    "stall": 2,
    "throttle": 1,
    "ignore-range": 0,
    "wrong-range-start": 1,
    "change-after": 1,
    "weak-etag": 0,
    "no-validators": 0,
    "corrupt": 2,
    "status": 2,
    "status-seq": 2,
    "gzip": 0,
}
_GRAMMAR.update(
    {name: name for name, most in _MOST_ARGUMENTS.items() if most == 0},
    **{"wrong-range-start": "wrong-range-start[=SHIFT]"},
)

# Faults whose argument already says which requests they shape: a scope suffix would be silently ignored
# (``change-after=1@3`` served the changed file from request 2), so it is refused instead.
_UNSCOPED = {
    "change-after": "K already says which requests (every one after the K-th)",
    "status-seq": "the codes' positions already say which requests (request i gets the i-th code)",
}


def parse_fault(text: str) -> Fault:
    """One fault from its text form; ValueError with the offending text on any mistake."""
    body, at, scope_text = text.strip().partition("@")
    name, _, arg_text = body.partition("=")
    builder = _BUILDERS.get(name.strip())
    if builder is None:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(_BUILDERS)})")
    if at and name.strip() in _UNSCOPED:
        raise ValueError(f"bad fault {text!r}: {name.strip()} takes no @REQUESTS: {_UNSCOPED[name.strip()]}")
    if at and not scope_text.strip():  # "cut=50%@" read as every request: a scope left out by mistake
        raise ValueError(f"bad fault {text!r}: nothing after @ (use @* for every request)")
    args = arg_text.split(":") if arg_text else []
    key = name.strip()
    if len(args) > _MOST_ARGUMENTS[key] or (key in ("cut", "cut-every") and args[1:] not in ([], ["reset"])):
        grammar = _GRAMMAR.get(key, key) + ("" if key in _UNSCOPED else "[@REQUESTS]")
        raise ValueError(f"bad fault {text!r}: arguments it does not take ({grammar})")
    try:
        return builder(args, parse_scope(scope_text))
    except IndexError as exc:
        grammar = _GRAMMAR.get(name.strip(), name.strip()) + (
            "" if name.strip() in _UNSCOPED else "[@REQUESTS]"
        )
        raise ValueError(f"bad fault {text!r}: missing argument ({grammar})") from exc
    except ValueError as exc:
        raise ValueError(f"bad fault {text!r}: {exc}") from exc


def parse_connection_limit(text: str) -> ConnectionLimit:
    """``N[:CODE[:RETRY_AFTER]]`` or ``N:reset``; ValueError with the offending text on any mistake."""
    args = text.strip().split(":")
    try:
        if len(args) == 2 and args[1] == "reset":
            return ConnectionLimit(int(args[0]), reset=True)
        if len(args) > 3:
            raise ValueError("too many fields")
        status = int(args[1]) if len(args) > 1 else 503
        return ConnectionLimit(int(args[0]), status, _retry(args, 2))
    except ValueError as exc:
        raise ValueError(f"bad connection limit {text!r} (N[:CODE[:RETRY_AFTER]] or N:reset): {exc}") from exc
