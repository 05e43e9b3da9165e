"""The HTTP decision table for (resumed) wheel downloads, as a pure function (DESIGN §3).

A resume request is ``GET`` with ``Range: bytes=D-`` and ``If-Range: <strong ETag, else Last-Modified>``.

======================================================  =========================================
server answers                                          action
======================================================  =========================================
206, ``Content-Range: bytes D-(L-1)/L``, L as known     CONTINUE at D
206 with another start or another total                 RESTART (new GET without Range)
200 and D == 0                                          START (a fresh download)
200, validators equal to the journal's                  SKIP the first D bytes of the body, go on
200, validators differ or absent                        RESTART_WITH_BODY: discard partial, use body
416 and D == L                                          COMPLETE from disk
416 otherwise, 404, 410                                 GONE: discard, clear error
429, 5xx (and 408)                                      RETRY after Retry-After or backoff
anything else                                           FAIL with the status
======================================================  =========================================

A ``Content-Range`` whose last byte comes before its first, or at or past its complete length, is invalid
(RFC 9110 §14.4) and counts as none: RESTART for the stream, NO_RANGES for a piece.

"Validators equal" for a 200 means: the ETag is strongly equal when both sides have one, otherwise
Last-Modified equal when both have one, and in either case Content-Length equal to the known length.
Connection resets, timeouts and incomplete reads are not responses; the attempt loop handles them
(checkpoint, back off, resume: ``wheelstream/fetch/_attempts.py``).

A segmented download (``wheelstream/fetch/_segmented.py``) asks each further connection for one piece:
``Range: bytes=a-b`` with the same ``If-Range``. Its table (``decide_piece``) is stricter, because a piece is
written at its offset among bytes of other responses:

======================================================  =========================================
server answers                                          piece action
======================================================  =========================================
206 ``bytes a-c/L``, L as known, validators equal       WRITE up to c (c < b: the rest is asked for again)
206 or 200 whose validators or total differ, 416        CHANGED: the whole download restarts
200 with the same validators, 206 at another start      NO_RANGES: back to one connection
429, 5xx (and 408)                                      BUSY: fewer connections, retry after a wait
404, 410                                                GONE
anything else                                           FAIL with the status
======================================================  =========================================

"Validators equal" for a piece: the same opaque ETag when both sides have one (weakly: the server matched
our strong ``If-Range`` to send a 206, and a proxy may weaken what it passes on), else equal Last-Modified
when both have one; a 206 that carries neither is taken on the strength of the ``If-Range`` it answered.

A response whose ``Content-Encoding`` is not identity (we always send ``Accept-Encoding: identity``) has a
body that is not the file's bytes: Range offsets would not line up. It is used from byte 0 with resume
disabled (``resumable=False``), and the caller warns.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "Action",
    "Decision",
    "Known",
    "PieceAction",
    "busy",
    "decide",
    "decide_piece",
    "header_value",
    "retry_after_seconds",
    "same_file",
]


class Action(enum.Enum):
    START = "start"
    CONTINUE = "continue"
    SKIP = "skip"
    RESTART = "restart"
    RESTART_WITH_BODY = "restart with body"
    COMPLETE = "complete"
    GONE = "gone"
    RETRY = "retry"
    FAIL = "fail"


class Known(NamedTuple):
    """What the journal knows about the file when the request is made."""

    start: int  # D: the Range start we asked for (0 = no Range header)
    length: int | None
    etag: str | None
    last_modified: str | None


class Decision(NamedTuple):
    action: Action
    reason: str
    length: int | None = None  # total file length as this response declares it
    resumable: bool = True
    end: int | None = None  # a 206: the offset after its last byte (a request for a piece gets no more)


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class _Range(NamedTuple):
    first: int
    last: int  # inclusive
    total: int | None  # None: ``*``


def _content_range(headers: Mapping[str, str]) -> _Range | None:
    """A 206's ``Content-Range``, or None when there is none or it is invalid: RFC 9110 §14.4 makes a range
    whose last byte comes before its first, or lies at or past the complete length, invalid, and its
    recipient "MUST NOT attempt to recombine" it (taken as a range, a backwards one wrote nothing and was
    asked for again without end)."""
    match = _CONTENT_RANGE.match(_header(headers, "content-range") or "")
    if match is None:
        return None
    first, last, total = int(match.group(1)), int(match.group(2)), _int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return _Range(first, last, total)


def busy(status: int) -> bool:
    """A status that says "not now" rather than "no": 408, 429, 5xx — the tables' RETRY / BUSY rows, and a
    revalidation's UNREACHABLE (``fetch._revalidate``)."""
    return status in (408, 429) or 500 <= status <= 599


def header_value(value: str) -> bytes:
    """A validator as the bytes to send back (``If-Range``, ``If-None-Match``): latin-1, what an HTTP field's
    obs-text is read as, else UTF-8. An ETag may hold any byte from 0x80 up, which httpx cannot encode from a
    ``str``."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _same_file(headers: Mapping[str, str], known: Known, length: int | None) -> bool:
    return _difference(headers, known, length) is None


def _difference(headers: Mapping[str, str], known: Known, length: int | None) -> str | None:
    """None when a 200 (or a piece) carries the file ``known`` describes: its length, and a strong ETag
    (RFC 9110 §8.8.3.2) or else the Last-Modified that ``If-Range`` carried when the ETag was weak. Otherwise
    why it is taken as another file: one that shows it changed, or one that cannot show it did not (nothing to
    compare is unknowable, so treated as changed; "the file changed" misled over a server that only ignored
    Range)."""
    length_differs = known.length is not None and length != known.length
    if length_differs and length is not None:
        return f"the file changed on the server ({length} bytes, not {known.length})"
    etag, modified = _header(headers, "etag"), _header(headers, "last-modified")
    if known.etag and etag and not known.etag.startswith("W/") and not etag.startswith("W/"):
        same = etag == known.etag
    elif known.last_modified and modified:
        same = modified == known.last_modified
    else:
        return _UNPROVEN
    if not same:
        return "the file changed on the server (its validators differ)"
    return _UNPROVEN if length_differs else None


_UNPROVEN = "the server ignored Range and sent nothing to show the file is the same"


def same_file(headers: Mapping[str, str], known: Known) -> bool:
    """Does a 200 carry the file ``known`` describes ("validators equal" in the table above)? Also how a cached
    wheel is recognised in a server's answer that ignored the conditions (``fetch._revalidate``)."""
    return _same_file(headers, known, _int(_header(headers, "content-length")))


def decide(status: int, headers: Mapping[str, str], known: Known) -> Decision:
    """Map one response to what the attempt loop must do (the table in the module docstring)."""
    encoding = (_header(headers, "content-encoding") or "identity").strip().lower()
    identity = encoding in ("", "identity")
    if status == 206:
        content_range = _content_range(headers)
        if content_range is None:
            return Decision(Action.RESTART, "206 without a usable Content-Range")
        first, total = content_range.first, content_range.total
        if first != known.start:
            return Decision(Action.RESTART, f"server resumed at byte {first}, not {known.start}")
        if known.length is not None and total != known.length:
            return Decision(Action.RESTART, f"server reports {total} bytes in all, {known.length} expected")
        if not identity:
            return Decision(Action.RESTART, f"206 with Content-Encoding {encoding}")
        return Decision(Action.CONTINUE, "resumed", length=total, end=content_range.last + 1)
    if status == 200:
        length = _int(_header(headers, "content-length")) if identity else None
        if not identity:
            return Decision(
                Action.START if known.start == 0 else Action.RESTART_WITH_BODY,
                f"server forced Content-Encoding {encoding}; resume is impossible",
                resumable=False,
            )
        if known.start == 0:
            return Decision(Action.START, "started", length=length)
        why = _difference(headers, known, length)
        if why is None:
            return Decision(Action.SKIP, "server ignored Range; same file", length=length)
        return Decision(Action.RESTART_WITH_BODY, why, length=length)
    if status == 416:
        total = None
        match = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", _header(headers, "content-range") or "")
        if match:
            total = int(match.group(1))
        length = known.length if known.length is not None else total
        if length is not None and known.start == length and total in (None, length):
            return Decision(Action.COMPLETE, "already complete", length=length)
        return Decision(Action.GONE, f"server cannot serve bytes from {known.start} (416)")
    if status in (404, 410):
        return Decision(Action.GONE, f"server answered {status}")
    if busy(status):
        return Decision(Action.RETRY, f"server busy ({status})")
    if status in _CREDENTIAL_STATUSES:
        return Decision(Action.FAIL, f"server {answered(status)}")
    return Decision(Action.FAIL, f"unexpected HTTP status {status}")


# The answers that are about who asks, said so (pip: "401 Client Error: Unauthorized for url"); the credentials
# come from the URL's user:password@, ~/.netrc, or a proxy URL's.
_CREDENTIAL_STATUSES = {
    401: "credentials missing or refused: the URL's user:password@ or ~/.netrc",
    403: "forbidden: no credentials, or ones that do not allow this file",
    407: "the proxy wants credentials: the proxy URL's user:password@",
}


def answered(status: int) -> str:
    """``answered N``, with what N says about who asks (a wheel's, an index page's, a requirements file's)."""
    meaning = _CREDENTIAL_STATUSES.get(status)
    return f"answered {status} ({meaning})" if meaning else f"answered {status}"


class PieceAction(enum.Enum):
    WRITE = "write"
    CHANGED = "changed"
    NO_RANGES = "no ranges"
    BUSY = "busy"
    GONE = "gone"
    FAIL = "fail"


def _validators_agree(headers: Mapping[str, str], known: Known) -> bool:
    etag, modified = _header(headers, "etag"), _header(headers, "last-modified")
    if known.etag and etag:
        # Weak comparison: the server matched our (strong) If-Range to answer 206; a proxy on the way may
        # have weakened the tag it passes on.
        return etag.removeprefix("W/") == known.etag.removeprefix("W/")
    if known.last_modified and modified:
        return modified == known.last_modified
    return etag is None and modified is None  # none sent: the If-Range it answered vouches for it


def content_range_end(headers: Mapping[str, str]) -> int | None:
    """The offset after the last byte a 206's ``Content-Range`` declares; None without a usable one."""
    content_range = _content_range(headers)
    return content_range.last + 1 if content_range else None


def decide_piece(status: int, headers: Mapping[str, str], known: Known) -> tuple[PieceAction, str]:
    """Map the response to a piece request (``known.start`` is the first byte asked for) to what the
    connection must do, and why (the second table in the module docstring)."""
    encoding = (_header(headers, "content-encoding") or "identity").strip().lower()
    if status == 206:
        content_range = _content_range(headers)
        if content_range is None or encoding not in ("", "identity"):
            return PieceAction.NO_RANGES, "a 206 without a usable Content-Range or with an encoding"
        first, total = content_range.first, content_range.total
        if total != known.length or not _validators_agree(headers, known):
            return PieceAction.CHANGED, "the file changed on the server (a piece came from another version)"
        if first != known.start:
            return PieceAction.NO_RANGES, f"server sent byte {first} on, not {known.start}"
        return PieceAction.WRITE, "piece"
    if status == 200:
        length = _int(_header(headers, "content-length"))
        if encoding in ("", "identity") and _same_file(headers, known, length):
            return PieceAction.NO_RANGES, "server ignored Range on another connection"
        return PieceAction.CHANGED, "the file changed on the server"
    if status == 416:
        return PieceAction.CHANGED, f"server cannot serve bytes from {known.start} (416): the file changed"
    if status in (404, 410):
        return PieceAction.GONE, f"server answered {status}"
    if busy(status):
        return PieceAction.BUSY, f"server busy ({status})"
    if status in _CREDENTIAL_STATUSES:
        return PieceAction.FAIL, f"server {answered(status)}"
    return PieceAction.FAIL, f"unexpected HTTP status {status}"


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
