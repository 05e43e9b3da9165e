"""One connection of a segmented download: a request for a piece, its answer through the piece table, its
body written into the partial at the piece's offset (``_segmented`` runs these on threads of their own).

``PieceRequests`` is mixed into ``Segmented``, which holds every field named here (as ``Checkpoints`` is into
the tee): the plan, the lock, the bookkeeping of each running request. A request thread only writes bytes and
reports how its request ended (``Outcome``); what to do about it is the consumer's to decide.

Rules kept here: a byte is written only at its piece's cursor and never past the piece's end (which a steal or
the answer's ``Content-Range`` may have moved), it is counted as written (``plan.wrote``) only after the
``pwrite`` returned, and it gets its piece-trail line; chunks gathered when a body fails are still written
(they are good bytes); a request that receives nothing for a while is cut through its own cancel (``Stop``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import filelock
import httpx

from wheelstream.fetch._errors import unfollowable
from wheelstream.fetch._options import DownloadOptions
from wheelstream.fetch._plan import RangePlan
from wheelstream.transport import (
    Known,
    PieceAction,
    SocketCancel,
    content_range_end,
    decide_piece,
    header_value,
    retry_after_seconds,
)
from wheelstream.unpack._piece_trail import PieceTrail
from wheelstream.unpack._tee import Tee

__all__ = ["Outcome", "PieceRequests", "Stop"]

_WRITE = 256 << 10  # a request gathers chunks up to this before one pwrite
# Transport errors before any byte that mean "not now" rather than "broken": a refused or reset connection.
_REFUSALS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.PoolTimeout)


class Stop:
    """One request's cancel (a ``CancelSignal``): the engine stopping, or the request itself found stalled."""

    def __init__(self, engine: threading.Event) -> None:
        self.engine = engine
        self.stalled = threading.Event()

    def is_set(self) -> bool:
        return self.engine.is_set() or self.stalled.is_set()

    def set(self) -> None:
        self.stalled.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.engine.wait(timeout) or self.stalled.is_set()


@dataclass
class Outcome:
    """How one request ended: ``action`` (None: the body ran; ``"error"``: a transport error), why, how many
    bytes it wrote, and what it raised that is not the network's."""

    action: PieceAction | str | None
    reason: str = ""
    wrote: int = 0
    wait: float | None = None
    fatal: BaseException | None = None


class PieceRequests:
    """The request-thread half of ``Segmented`` (mixed in; the fields are ``Segmented``'s)."""

    url: str
    client: httpx.Client
    stream: Tee
    known: Known
    options: DownloadOptions
    plan: RangePlan
    fetched: int
    _cond: threading.Condition
    _stop: threading.Event
    _threads: dict[int, threading.Thread]
    _outcomes: list[Outcome]
    _wrote: dict[int, int]
    _stops: dict[int, Stop]
    _moved: dict[int, float]
    _stall: float
    _trail: PieceTrail
    _slot_of: dict[int, filelock.BaseFileLock | None]
    # ``Segmented``'s own, called here (under the lock): claim the next piece for a connection whose piece ended
    # cleanly; give back the slot of a request that is over.
    _next_piece: Callable[[int, Outcome], bool]
    _free_slot: Callable[[int], None]

    def _request(self, number: int, opened: tuple[httpx.Response, Iterator[bytes]] | None) -> None:
        """The thread of one connection: a piece, then — as long as each ends cleanly — the next one at once
        (the consumer, busy feeding the unpacker, would start it later); anything else ends the thread and
        is the consumer's to decide."""
        while True:
            stop = self._stops[number]
            cancel = SocketCancel(stop)
            outcome = Outcome(None)
            more = False
            try:
                with cancel.watching(), cancel.request() as extensions:
                    if opened is not None:
                        cancel.response_arrived(opened[0])
                        outcome = self._write(number, opened[1], cancel)
                    else:
                        outcome = self._ask(number, cancel, extensions)
            except BaseException as exc:  # noqa: BLE001 - the consumer decides (``_failed``)
                outcome = self._failed(exc, number, stop)
            finally:
                if opened is not None:
                    with contextlib.suppress(Exception):  # the thread's bookkeeping below must happen
                        opened[0].close()
                opened = None
                with self._cond:
                    outcome.wrote = self._wrote.pop(number, 0)
                    self._outcomes.append(outcome)
                    self._cond.notify_all()
                    more = self._next_piece(number, outcome)
                    if not more:
                        del self._stops[number], self._moved[number]
                        self.plan.release(number)
                        self._free_slot(number)
                        del self._threads[number]
            if not more:
                return

    def _failed(self, exc: BaseException, number: int, stop: Stop) -> Outcome:
        """What a request that raised tells the consumer."""
        if stop.stalled.is_set() and not self._stop.is_set():
            return Outcome("stalled", f"a connection brought nothing for {self._stall:.0f} s: its rest moves")
        unfollowed = unfollowable(exc) if isinstance(exc, httpx.HTTPError) else None
        if unfollowed is not None:
            exc = unfollowed  # a redirect no retry can follow: the download ends (the consumer raises it)
        elif isinstance(exc, httpx.TransportError):
            outcome = Outcome("error", f"{type(exc).__name__}: {exc}".rstrip(": "))
            if isinstance(exc, _REFUSALS) and not self._wrote.get(number):
                outcome.action = "refused"  # reset or closed before a byte: maybe one connection too many
            return outcome
        return Outcome(
            "fatal", str(exc), fatal=None if self._stop.is_set() else exc
        )  # the consumer raises it

    def _ask(self, number: int, cancel: SocketCancel, extensions: dict[str, object]) -> Outcome:
        with self._cond:
            piece = self.plan.pieces[number]
            start, end = piece.cursor, piece.end
        known = Known(start, self.known.length, self.known.etag, self.known.last_modified)
        headers = {b"Accept-Encoding": b"identity", b"Range": f"bytes={start}-{end - 1}".encode()}
        validator = self.stream.journal.validator  # what ``known`` holds, as If-Range takes it
        if validator:
            headers[b"If-Range"] = header_value(validator)  # as it came: an ETag may hold bytes past ASCII
        with self.client.stream(
            "GET",
            self.url,
            headers=headers,
            timeout=self.options.timeout,
            extensions=extensions,
            follow_redirects=True,  # also with a caller's client, which follows none by default
        ) as response:
            cancel.response_arrived(response)
            action, reason = decide_piece(response.status_code, response.headers, known)
            if action is not PieceAction.WRITE:
                return Outcome(action, reason, wait=retry_after_seconds(response.headers))
            declared = content_range_end(response.headers)
            with self._cond:  # no byte past what the server says it sends: the rest is a hole again
                if declared is not None:
                    self.plan.shorten(number, declared)
            return self._write(number, response.iter_raw(), cancel)

    def _write(self, number: int, body: Iterator[bytes], cancel: SocketCancel) -> Outcome:
        """Write the body at the piece's cursor until it ends or the piece does (finished, or stolen up to
        here); gathered chunks are written even when the body fails (they are good bytes)."""
        gathered: list[bytes] = []
        size = 0
        try:
            for chunk in body:
                cancel.raise_if_cancelled()
                with self._cond:
                    self.fetched += len(chunk)
                    self._moved[number] = time.monotonic()  # bytes came: not stalled
                    room = self.plan.room(number) - size
                if len(chunk) >= room:
                    gathered.append(chunk[: max(room, 0)])
                    size += max(room, 0)
                    break
                gathered.append(chunk)
                size += len(chunk)
                if size >= _WRITE:
                    self._flush(number, gathered)
                    gathered, size = [], 0
        finally:
            self._flush(number, gathered)
        with self._cond:
            short = self.plan.room(number) > 0
        # The body ended before the piece did (a 206 shorter than asked, a close): the rest is a hole again.
        return Outcome("short", "the response ended before its piece") if short else Outcome(None)

    def _flush(self, number: int, gathered: list[bytes]) -> None:
        data = b"".join(gathered)
        if not data:
            return
        with self._cond:
            room = self.plan.room(number)
            offset = self.plan.pieces[number].cursor
        data = data[:room]  # stolen meanwhile: the thief fetches the rest
        if not data:
            return
        self.stream.partial.write_at(offset, data)
        self._trail.append(offset, data)  # a kill -9 from here on keeps these bytes (``_piece_trail``)
        with self._cond:
            self.plan.wrote(number, len(data))
            self._wrote[number] = self._wrote.get(number, 0) + len(data)
            self._cond.notify_all()
