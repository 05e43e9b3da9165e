# The fault engine: request + fault plan -> one response decision, with no I/O.
#
# Theory of operation. A correct HTTP/1.1 file server (RFC 9110 §14 ranges, §13.1.5 If-Range, §8.8
# validators) is the baseline; each active fault bends exactly one step of that baseline, and the steps run
# in this order so that faults combine the way they would on a real path through proxies and CDNs:
#
#   1. which file version answers      ChangeFile (request number > K sees new bytes, ETag, Last-Modified)
#   2. whether the file answers at all  Status / StatusSequence (503, 429 + Retry-After; first match wins)
#   3. which validators are advertised  WeakETag (W/"…"), NoValidators (neither ETag nor Last-Modified)
#   4. which representation             Gzip (body = gzip of the file; ETag gets "-gzip"; Corrupt flips
#                                       its file byte before compressing, not a byte of the gzip stream)
#   5. range selection                  If-Range is compared to the validators from step 3, strongly, so a
#                                       weak or missing validator turns a resume into a 200 — as RFC 9110
#                                       requires. IgnoreRange answers 200; WrongRangeStart moves the start.
#   6. how the body travels             Cut / CutEvery (smallest cut wins), Stall, Throttle, Corrupt
#                                       (without Gzip; offsets are then file offsets)
#
# Steps 1-5 decide status and headers; step 6 only decides how many of the declared bytes leave the socket,
# when, and with which bits flipped. That split is what lets a cut look like a real network failure: the
# headers promise the full Content-Length and the connection then ends early.
#
# The handler (`_handler.py`) executes a Decision; the fast path (no step-6 fault, file on disk) hands the
# whole body to os.sendfile.

from __future__ import annotations

import mimetypes
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus

from wheelstream.testing._faults import (
    ChangeFile,
    Corrupt,
    Cut,
    CutEvery,
    Fault,
    FaultPlan,
    Gzip,
    IgnoreRange,
    NoValidators,
    Stall,
    Status,
    StatusSequence,
    Throttle,
    WeakETag,
    WrongRangeStart,
)
from wheelstream.testing._files import ServedFile, Version

__all__ = ["Decision", "decide", "if_range_matches", "parse_range", "status_decision"]


@dataclass
class Decision:
    """Everything the handler needs to send one response; offsets index the chosen representation."""

    status: int
    headers: list[tuple[str, str]]
    version: Version | None = None
    data: bytes | None = None  # in-memory representation (gzip, status page); else read from version
    offset: int = 0  # first representation byte of the body
    length: int = 0  # Content-Length
    send: int = 0  # body bytes that actually leave (< length means a cut)
    reset: bool = False  # end a cut with RST instead of FIN
    stalls: list[tuple[int, float]] = field(default_factory=list)  # (body position, seconds)
    rate: int | None = None  # bytes per second
    corrupt: list[tuple[int, int]] = field(default_factory=list)  # (representation offset, xor mask)
    faults: list[str] = field(default_factory=list)  # names of the faults that shaped this response

    @property
    def is_cut(self) -> bool:
        """Whether the connection ends before the declared body is complete."""
        return self.send < self.length

    @property
    def plain(self) -> bool:
        """Nothing shapes the bytes that leave (no stall, rate or corruption): they go out in one
        sendfile/sendall — also for a cut, which is exactly ``send`` bytes and then the end of the connection.
        A cut through Python-level chunk copies made the server use a core's worth of time the client under
        test could have used (the benchmark's (c) scenario)."""
        return not (self.stalls or self.rate or self.corrupt)


class Unsatisfiable(Exception):
    """The Range header is valid but selects nothing (RFC 9110 §15.5.17)."""


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single byte range; None when the header must be ignored.

    Multiple ranges and malformed headers are ignored (answered 200), which RFC 9110 §14.2 allows.
    """
    if value is None:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or not _digits(first_s, empty_ok=True) or not _digits(last_s, empty_ok=True):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else None
    if last is not None and last < first:
        return None
    if first >= size:
        raise Unsatisfiable
    if last is None:
        last = size - 1
    return first, min(last, size - 1)


def _digits(text: str, *, empty_ok: bool) -> bool:
    """ASCII digits only: ``str.isdigit`` takes "²" too, which ``int`` refuses (the request got no answer)."""
    return (empty_ok and text == "") or (text.isascii() and text.isdigit())


def _http_date(value: str) -> datetime:
    """An HTTP-date in any of RFC 9110 §5.6.7's three forms; asctime's has no zone and is GMT (it came back naive,
    and comparing it with an aware date failed, so it never matched)."""
    parsed = parsedate_to_datetime(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _strong_match(value: str, etag: str | None) -> bool:
    """``If-Match``: ``*`` (the file exists), or one of the listed tags strongly equal to ``etag``."""
    tags = [tag.strip() for tag in value.split(",")]
    return "*" in tags or (etag is not None and not etag.startswith("W/") and etag in tags)


def precondition_failed(headers: Mapping[str, str], etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110 §13.2.2, steps 1–2: ``If-Match`` that matches no strong tag, else ``If-Unmodified-Since`` older
    than the file, fail with 412 (a resume that asks by them must not be answered with other bytes)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        return not _strong_match(if_match, etag)
    since = headers.get("if-unmodified-since")
    if since is None or last_modified is None:
        return False
    try:
        return _http_date(last_modified) > _http_date(since)
    except (TypeError, ValueError, IndexError):
        return False  # not a date: ignored


def if_range_matches(value: str, etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110 §13.1.5: strong ETag comparison, or an HTTP-date exactly equal to Last-Modified."""
    value = value.strip()
    if value.startswith("W/"):
        return False
    if value.startswith('"'):
        return etag is not None and not etag.startswith("W/") and value == etag
    if last_modified is None:
        return False
    try:
        return _http_date(value) == _http_date(last_modified)
    except (TypeError, ValueError, IndexError):
        return False


def not_modified_since(value: str, last_modified: str | None) -> bool:
    """RFC 9110 §13.1.3: the file has not changed since the HTTP-date ``value`` (an unparsable one is ignored)."""
    if last_modified is None:
        return False
    try:
        return _http_date(last_modified) <= _http_date(value)
    except (TypeError, ValueError, IndexError):
        return False


def _content_type(name: str) -> str:
    """The file's own type, as nginx's ``mime.types`` gives it: a compressed archive (``.tar.gz``) is octet-stream,
    not the type of what it holds — the body is the compressed bytes, sent without ``Content-Encoding``."""
    if name.endswith(".whl"):
        return "application/octet-stream"
    guessed, encoding = mimetypes.guess_type(name)
    if encoding is not None:
        return "application/octet-stream"
    return guessed or "application/octet-stream"


# Statuses that never carry content (RFC 9110 §15.3.5, §15.3.6, §15.4.5): a body after them is read as the start
# of the next response on a kept-alive connection. 204 and 304 also send no Content-Length of their own.
_NO_CONTENT = {204: (), 205: (("Content-Length", "0"),), 304: ()}

# Fields a status MUST carry (RFC 9110 §15.5.2, §15.5.6, §15.5.8): a client that reads them (an auth
# challenge, the methods allowed) must find them on an injected status as on a real server's.
_REQUIRED_FIELDS = {
    401: (("WWW-Authenticate", 'Basic realm="testbed"'),),
    405: (("Allow", "GET, HEAD"),),
    407: (("Proxy-Authenticate", 'Basic realm="testbed"'),),
}


def status_decision(
    code: int, retry_after: int | str | None, faults: list[str], size: int | None = None
) -> Decision:
    """A short text/plain answer with ``code`` (and ``Retry-After``) instead of the file: status faults and
    connection-limit refusals. A status that has no content (204, 205, 304) gets none; one that requires a
    field gets it, and a 416 says the file's ``size`` when it is known (RFC 9110 §15.5.17)."""
    retry = [("Retry-After", str(retry_after))] if retry_after is not None else []
    retry += _REQUIRED_FIELDS.get(code, ())
    if code == 416 and size is not None:
        retry.append(("Content-Range", f"bytes */{size}"))
    if code in _NO_CONTENT:
        return Decision(code, [*_NO_CONTENT[code], *retry], faults=faults)
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Injected"
    body = f"{code} {phrase}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *retry]
    return Decision(code, headers, data=body, length=len(body), send=len(body), faults=faults)


def _names(faults: list[Fault]) -> list[str]:
    return [type(f).__name__ for f in faults]


def decide(
    plan: FaultPlan, number: int, served: ServedFile, method: str, headers: Mapping[str, str]
) -> Decision:
    """The response to request ``number`` for ``served``; ``headers`` keys are lower-case."""
    active = plan.active(number)
    used: list[Fault] = []

    # 1. version
    version = served.current()
    for f in active:
        if isinstance(f, ChangeFile):
            version = served.changed(version, f.data)
            used.append(f)

    # 2. forced status
    for f in active:
        if isinstance(f, Status):
            return status_decision(f.code, f.retry_after, _names([*used, f]), version.size)
        if isinstance(f, StatusSequence):
            code = f.code_for(number)
            assert code is not None
            return status_decision(code, f.retry_after, _names([*used, f]), version.size)

    # 3. validators
    etag: str | None = version.etag
    last_modified: str | None = version.last_modified
    now = time.time()
    if version.mtime > now:  # a file dated in the future: the message's own date (RFC 9110 §8.8.2.1)
        last_modified = formatdate(now, usegmt=True)
    if any(isinstance(f, NoValidators) for f in active):
        etag = last_modified = None
        used += [f for f in active if isinstance(f, NoValidators)]
    elif any(isinstance(f, WeakETag) for f in active):
        etag = "W/" + version.etag
        used += [f for f in active if isinstance(f, WeakETag)]

    # 4. representation
    data: bytes | None = None
    size = version.size
    out = [("Content-Type", _content_type(served.name))]
    gz = [f for f in active if isinstance(f, Gzip)]
    if gz:
        # Corrupt names a file byte: flip it before compressing, so the decoded body carries the flip.
        flips = [f for f in active if isinstance(f, Corrupt) and f.offset < version.size]
        data = version.gzipped(tuple((f.offset, f.mask) for f in flips))
        size = len(data)
        if etag is not None:
            # Other bytes, another strong tag: a flipped byte makes another gzip stream (RFC 9110 §8.8.3)
            flipped = "".join(f"-{f.offset}x{f.mask:02x}" for f in flips)
            etag = etag[:-1] + f'-gzip{flipped}"'
        out += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        used += [*gz, *flips]
    if etag is not None:
        out.append(("ETag", etag))
    if last_modified is not None:
        out.append(("Last-Modified", last_modified))

    if precondition_failed(headers, etag, last_modified):
        return status_decision(412, None, _names(used))

    # Conditional GET: lets caching clients (pip's cachecontrol, wheelstream's own cache) behave as against a
    # real server. If-Modified-Since counts only without If-None-Match (RFC 9110 §13.1.3).
    # ``*`` matches any current representation, validators or none (§13.1.2): the file is there.
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        if "*" in tags or (etag is not None and etag.removeprefix("W/") in tags):
            return Decision(304, out, faults=_names(used))
    ims = headers.get("if-modified-since")
    if inm is None and ims is not None and not_modified_since(ims, last_modified):
        return Decision(304, out, faults=_names(used))

    # 5. range
    ignore = [f for f in active if isinstance(f, IgnoreRange)]
    if not ignore:
        out.append(("Accept-Ranges", "bytes"))
    status, first, last = 200, 0, size - 1
    # Range is for GET alone (RFC 9110 §14.2): a HEAD with one is answered as a whole, as real servers do
    range_header = headers.get("range") if method == "GET" else None
    if range_header is not None and ignore:
        used += ignore
    elif range_header is not None:
        if_range = headers.get("if-range")
        if if_range is None or if_range_matches(if_range, etag, last_modified):
            try:
                selected = parse_range(range_header, size)
            except Unsatisfiable:
                out.append(("Content-Range", f"bytes */{size}"))
                body = b"416 Range Not Satisfiable\n"
                out = [(k, v) for k, v in out if k != "Content-Type"] + [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ]
                return Decision(416, out, data=body, length=len(body), send=len(body), faults=_names(used))
            if selected is not None:
                status, (first, last) = 206, selected
                wrong = [f for f in active if isinstance(f, WrongRangeStart)]
                if wrong:
                    shift = wrong[0].shift
                    start = first + shift if 0 <= first + shift < size else first - shift
                    if not 0 <= start < size:  # past both ends: as far as the file allows the shift's way
                        start = min(max(first + shift, 0), size - 1)
                        if start == first:  # (already at that end) else the other way
                            start = min(max(first - shift, 0), size - 1)
                    if start != first:
                        # a bounded range (or a suffix) keeps its length, an open one (``a-``) its end: a bounded
                        # one that ends at the last byte is still bounded (uv's tail reads ask for exactly that)
                        if not range_header.strip().endswith("-"):
                            last = min(size - 1, start + (last - first))
                        first = start
                        used += wrong[:1]
                out.append(("Content-Range", f"bytes {first}-{last}/{size}"))
    length = last - first + 1 if size else 0
    out.append(("Content-Length", str(length)))

    decision = Decision(status, out, version=version, data=data, offset=first, length=length, send=length)
    if method == "HEAD":
        decision.send = 0
        decision.faults = _names(used)
        return decision

    # 6. transmission
    cuts: list[tuple[int, bool, Fault]] = []
    for f in active:
        if isinstance(f, Cut):
            cuts.append((f.cut_point(length), f.reset, f))
        elif isinstance(f, CutEvery):
            cuts.append((f.size, f.reset, f))
    if cuts:
        point, reset, fault = min(cuts, key=lambda c: c[0])
        if point < length:
            decision.send, decision.reset = point, reset
            used.append(fault)
    for f in active:
        if isinstance(f, Stall) and f.at < decision.send:
            decision.stalls.append((f.at, f.seconds))
            used.append(f)
        elif isinstance(f, Throttle):
            rate = f.bytes_per_second
            decision.rate = rate if decision.rate is None else min(decision.rate, rate)
            used.append(f)
        elif isinstance(f, Corrupt) and not gz and first <= f.offset < first + decision.send:
            decision.corrupt.append((f.offset, f.mask))
            used.append(f)
    decision.stalls.sort()
    decision.faults = _names(used)
    return decision
