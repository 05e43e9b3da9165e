"""Is the file the cache holds for a URL still the one the server serves? One conditional ``GET`` says.

A wheel URL pinned by a hash (``#sha256=``, ``--hash``, an index's or a lock file's digest) is served from the
cache with no request: the hash names the file. An unpinned URL names whatever the server puts there, and a
wheel rebuilt under the same name (a development server, a "latest" artifact) must not be installed stale for
good. So, as pip's and uv's HTTP caches do, the cached file is revalidated: ``GET`` with ``If-None-Match`` (the
recorded ETag) and ``If-Modified-Since`` (the recorded Last-Modified), ``Accept-Encoding: identity``.

======================================================  =========================================
server answers                                          verdict
======================================================  =========================================
304                                                     CURRENT: the cached file, nothing downloaded
200 with the recorded validators (the server ignored   CURRENT
the condition): strong ETag equal, else Last-Modified
equal, and Content-Length equal to the cached file's
408, 429, 5xx; no answer (refused, reset, timed out)    UNREACHABLE: the cached file (stale-if-error)
any other 4xx (404/410, 401/403, ...)                   REFUSED: downloaded as if never cached, so the
                                                        error reads as a download's would
anything else (a new file)                              CHANGED: downloaded again, which says so
======================================================  =========================================

A record without a validator (the server sent neither ETag nor Last-Modified, or a version before these
records kept none) cannot be asked about the file, only whether the server answers: the same ``GET`` without
conditions, whose 200 is CHANGED and whose silence is UNREACHABLE. The response of a CHANGED verdict is closed
unread; the download makes its own request (one more round trip, so that the download keeps a single path: its
resume, its pieces, its checks). A strong ETag equal to the recorded one is the same file when there is no
length to compare (a chunked answer). Header values go as bytes (``transport.header_value``): an ETag may hold
any byte from 0x80 up, which httpx would not encode from a ``str``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from wheelstream._cache import UrlRecord
from wheelstream.transport._table import Known, busy, header_value, same_file

__all__ = ["Verdict", "conditional_headers", "judge"]


class Verdict(enum.Enum):
    CURRENT = "current"
    UNREACHABLE = "unreachable"
    CHANGED = "changed"
    REFUSED = "refused"  # no file to compare: 401, 404, ... (an expired token said "the file changed")


def conditional_headers(record: UrlRecord) -> dict[bytes, bytes]:
    """The request's headers: the record's validators as conditions (none when it has none)."""
    headers = {b"Accept-Encoding": b"identity"}
    if record.etag is not None:
        headers[b"If-None-Match"] = header_value(record.etag)
    if record.last_modified is not None:
        headers[b"If-Modified-Since"] = header_value(record.last_modified)
    return headers


def judge(status: int, headers: Mapping[str, str], record: UrlRecord, size: int | None) -> Verdict:
    """The verdict for one answer (the table above); ``size``: the cached file's, when it is kept."""
    if status == 304:
        return Verdict.CURRENT
    etag, length = headers.get("etag"), headers.get("content-length")
    strong = record.etag is not None and not record.etag.startswith("W/")
    if status == 200 and strong and etag == record.etag and (length is None or size is None):
        return Verdict.CURRENT  # no length to compare (chunked, or only the tree is kept): the tag says it
    if status == 200 and same_file(headers, Known(0, size, record.etag, record.last_modified)):
        return Verdict.CURRENT
    if busy(status):
        return Verdict.UNREACHABLE
    if 400 <= status < 500:
        return Verdict.REFUSED
    return Verdict.CHANGED
