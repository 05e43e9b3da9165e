"""Several connections for one wheel, still unpacked as it streams: a segmented download.

One TCP connection is often what limits a big wheel (a CDN edge pacing each flow, a path that drops from
60 MB/s to 1 MB/s). Here each connection fetches a *piece* — ``Range: bytes=a-b`` with the download's
``If-Range`` — and writes it into the partial file at its offset (``PartialFile.write_at``). This thread, the
*consumer*, follows the contiguous prefix as it grows: it reads the bytes back (from the page cache) and tees
them into the hash, the trail and the parser exactly as a single connection's bytes are tee'd
(``Tee.take_written``). So the unpack goes on while the pieces arrive, and everything the tee promises —
checkpoints, the trail, stream-order errors — holds unchanged.

Who does what:

* the plan (``_plan.RangePlan``) says which bytes are taken, written, assigned or holes, and hands out pieces:
  the next one of the first hole, in file order, else the back half of a big piece (work stealing);
* a *request* is one thread: one piece, one response (``decide_piece``: the second table in
  ``wheelstream/transport/_table.py``), written as it comes, until the body ends or the piece was stolen up to
  where it is; its outcome goes back to the consumer;
* the consumer is also the supervisor: it keeps ``limit`` requests running while there is work, reads the
  outcomes and decides — an ended or cut request's rest is just a hole the next request takes; ``BUSY`` (429,
  503) or a refused connection while others run lowers ``limit`` to what works; a request that brought
  nothing counts against ``options.retries`` (reset by any progress) and delays the next one (backoff, or
  ``Retry-After``); ``CHANGED`` restarts the whole download (``FileChanged``); ``NO_RANGES`` falls back to
  one connection (``RangesRefused``); ``GONE`` and other statuses fail as they do with one connection.

Checkpoints record the written pieces past ``D`` as the journal's ``held`` (``Tee.pieces``): written before
the checkpoint's fsync, so durable with ``D``. Every write also gets a line in the piece trail
(``unpack/_piece_trail``), so a kill -9 keeps what was written since. A resume keeps both and fetches only the
holes.

Stopping (done, an error, Ctrl-C): every request's socket is shut through its own ``SocketCancel`` on the
engine's stop event, and every thread is joined before this returns — no thread may write into a partial that
is being closed or renamed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import filelock
import httpx

from wheelstream.errors import HTTPStatusError, ResourceGone
from wheelstream.fetch._cancel import SocketCancel
from wheelstream.fetch._errors import gave_up
from wheelstream.fetch._host_slots import HostSlots
from wheelstream.fetch._options import DownloadOptions
from wheelstream.fetch._plan import RangePlan
from wheelstream.fetch._reporting import Reporter
from wheelstream.transport import Known, PieceAction, content_range_end, decide_piece, retry_after_seconds
from wheelstream.unpack._piece_trail import PieceTrail, piece_trail_path
from wheelstream.unpack._tee import Tee

__all__ = ["FileChanged", "RangesRefused", "Segmented"]

_READ = 1 << 20  # the consumer tees the prefix in blocks of this size, as the network thread does
_WRITE = 256 << 10  # a request gathers chunks up to this before one pwrite
_WAKE = 0.2  # seconds: the consumer looks at cancels, outcomes and checkpoints at least this often
_MAX_WAIT = 600.0
_RECOVER_AFTER = 8  # clean pieces in a row before a lowered limit goes up by one again
_STALL_SHARE = 1 / 3  # of the read timeout: a request that wrote nothing that long is cut, its rest moved
# Transport errors before any byte that mean "not now" rather than "broken": a refused or reset connection.
_REFUSALS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.PoolTimeout)


class _Stop:
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


class FileChanged(Exception):
    """A piece came from another version of the file: the download restarts from zero."""


class RangesRefused(Exception):
    """The server ignored Range on a further connection: the download goes on with one."""


@dataclass
class _Outcome:
    """How one request ended: ``action`` (None: the body ran; ``"error"``: a transport error), why, how many
    bytes it wrote, and what it raised that is not the network's."""

    action: PieceAction | str | None
    reason: str = ""
    wrote: int = 0
    wait: float | None = None
    fatal: BaseException | None = None


class Segmented:
    """One segmented download, from the stream's position to the end of the file (the module docstring)."""

    def __init__(
        self,
        *,
        url: str,
        client: httpx.Client,
        stream: Tee,
        known: Known,
        options: DownloadOptions,
        cancel: SocketCancel,
        reporter: Reporter,
        connections: int,
        held: tuple[tuple[int, int], ...] = (),
        resumed_at: int | None = None,
        slots: HostSlots | None = None,
    ) -> None:
        assert known.length is not None
        self.url, self.client, self.stream, self.known = url, client, stream, known
        self.options, self.cancel, self.reporter = options, cancel, reporter
        self.limit = connections
        self.resumed_at = resumed_at
        self.plan = RangePlan(
            known.length, taken=stream.position, written=held, min_piece=options.piece_bytes
        )
        self.fetched = 0  # body bytes received by every request
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: dict[int, threading.Thread] = {}
        self._outcomes: list[_Outcome] = []
        self._wrote: dict[int, int] = {}  # bytes each running request wrote
        self.slots = slots  # the host's connections beyond this download's first (None: no such limit)
        self._slot_of: dict[int, filelock.BaseFileLock | None] = {}  # each running request's slot
        self._free_running = False  # the request that needs no slot (the download's own) runs
        self._notes: list[str] = []  # for the caller, told by the consumer outside the lock
        self.target = connections  # what was asked for; ``limit`` may go below it for a while
        self._clean = 0  # clean pieces in a row since the limit last went down
        self._stops: dict[int, _Stop] = {}  # each running request's cancel
        self._moved: dict[int, float] = {}  # when each running request last wrote (or started)
        self._stall = options.timeout * _STALL_SHARE
        self._numbers = iter(range(1, 1 << 62))
        self._without_progress = 0
        self._not_before = 0.0  # no new request before this (monotonic): backoff or Retry-After

    # -- the consumer ----------------------------------------------------------------------------------------

    def run(
        self, first: httpx.Response | None = None, body: Iterator[bytes] | None = None, first_end: int = 0
    ) -> None:
        """Fetch every hole and tee the file to its end. ``first`` is a response already open at the stream's
        position (its ``body`` partly read), which becomes the first request, for the piece up to
        ``first_end``: where its range ends, or — an open-ended one — one more piece (it stops there)."""
        self.stream.pieces = self._held
        self._trail = PieceTrail(piece_trail_path(self.stream.journal_path))
        try:
            if first is not None and body is not None:
                with self._cond:
                    number = next(self._numbers)
                    self.plan.assign(number, self.stream.position, min(first_end, self.plan.length))
                    self._start(number, (first, body), None)
            self._consume()
        finally:
            self._stop.set()
            self._join()
            self._trail.close()

    def _join(self) -> None:
        """Every request thread ended — even through another Ctrl-C: none may write into a partial file that
        is about to be closed (its descriptor's number could be another file's by then)."""
        interrupted = False
        for thread in list(self._threads.values()):
            while True:
                try:
                    thread.join()
                    break
                except KeyboardInterrupt:
                    interrupted = True
        if interrupted:
            raise KeyboardInterrupt

    def _consume(self) -> None:
        stream, plan = self.stream, self.plan
        marked = -1  # bytes taken + held at the last checkpoint call: a stall costs no checkpoints
        while not plan.complete:
            self.cancel.raise_if_cancelled()
            try:
                with self._cond:
                    self._decide()
                    self._unstall()
                    self._staff()
                    if plan.available() == plan.taken:
                        self._cond.wait(_WAKE)
                        self._decide()
                    start, upto = plan.taken, plan.available()
                    mark = upto + plan.held_bytes()
            finally:
                notes, self._notes = self._notes, []
                for note in notes:  # the caller's callback, never under the lock the connections need
                    self.reporter.note(note)
            for offset in range(start, upto, _READ):
                stream.take_written(stream.partial.read_at(offset, min(_READ, upto - offset)))
            if upto > start:
                with self._cond:
                    plan.take(upto)
                with self._cond:
                    held, limit = self.plan.held_bytes(), self.limit
                self.reporter.flowing(stream, self.resumed_at, held=held, connections=limit)
            if mark != marked:
                before = stream.last_checkpoint_at
                stream.maybe_checkpoint(self.options.checkpoint_bytes, self.options.checkpoint_seconds)
                if stream.last_checkpoint_at != before:
                    marked = mark

    def _held(self) -> list[tuple[int, int]]:
        with self._cond:
            return self.plan.held()

    # -- the supervisor (under the lock) ------------------------------------------------------------------------

    def _staff(self) -> None:
        """Keep ``limit`` requests running while there is a piece worth one — each beyond the first while it
        holds one of the host's slots (``_host_slots``)."""
        while len(self._threads) < self.limit and time.monotonic() >= self._not_before:
            slot = None
            if self._free_running and self.slots is not None:
                slot = self.slots.take()
                if slot is None:
                    return  # the host has as many connections as it gets: try again at the next wake
            number = next(self._numbers)
            if self.plan.claim(number) is None:
                if slot is not None:
                    slot.release()
                return
            self._start(number, None, slot)

    def _unstall(self) -> None:
        """A request that wrote nothing for a third of the read timeout is cut short: its rest becomes a hole
        another connection takes, instead of holding the unpack up until the timeout."""
        now = time.monotonic()
        for number, moved in self._moved.items():
            if now - moved > self._stall:
                self._stops[number].set()

    def _start(
        self,
        number: int,
        opened: tuple[httpx.Response, Iterator[bytes]] | None,
        slot: filelock.BaseFileLock | None = None,
    ) -> None:
        self._slot_of[number] = slot
        self._free_running = self._free_running or slot is None
        self._stops[number] = _Stop(self._stop)
        self._moved[number] = time.monotonic()
        thread = threading.Thread(
            target=self._request, args=(number, opened), name=f"wheelstream-piece-{number}", daemon=True
        )
        self._threads[number] = thread
        try:
            thread.start()
        except BaseException:  # no thread (a pid limit): nothing to join, the piece is a hole again
            del self._threads[number], self._stops[number], self._moved[number]
            self.plan.release(number)
            self._free_slot(number)
            raise

    def _free_slot(self, number: int) -> None:
        """The request ``number`` is over: its slot goes back to the host (or the first request is free again)."""
        slot = self._slot_of.pop(number, None)
        if slot is not None:
            slot.release()
        else:
            self._free_running = False

    def _decide(self) -> None:
        """Act on the outcomes of the requests that ended (the module docstring)."""
        outcomes, self._outcomes = self._outcomes, []
        for outcome in outcomes:
            if outcome.fatal is not None:
                raise outcome.fatal
            if outcome.action is PieceAction.CHANGED:
                raise FileChanged(outcome.reason)
            if outcome.action is PieceAction.NO_RANGES:
                raise RangesRefused(outcome.reason)
            if outcome.action is PieceAction.GONE:
                raise ResourceGone(f"{outcome.reason}; the partial download was discarded")
            if outcome.action is PieceAction.FAIL:
                raise HTTPStatusError(outcome.reason)
            if outcome.action == "stalled":
                self._notes.append(outcome.reason)
            if outcome.wrote:
                self._without_progress = 0
                self._recover(clean=outcome.action is None)
                continue  # a cut after progress: its rest is a hole, taken up at once
            refused = outcome.action is PieceAction.BUSY or outcome.action == "refused"
            if refused and self._threads and self.limit > len(self._threads):
                self.limit = len(self._threads)  # the server takes no more at once than are running now
                self._clean = 0
                self._notes.append(f"{outcome.reason}: going on with {self.limit} connection(s)")
                continue
            if outcome.action is None:
                continue  # stolen up to where it stood: nothing was owed
            self._without_progress += 1
            if self._without_progress > self.options.retries:
                raise gave_up(self._without_progress, outcome.reason, self.stream.position)
            wait = outcome.wait if outcome.wait is not None else self.options.backoff(self._without_progress)
            self._not_before = time.monotonic() + min(wait, _MAX_WAIT)
            self._notes.append(
                f"{outcome.reason}; retry {self._without_progress} of {self.options.retries} in {wait:.1f} s"
            )

    def _recover(self, *, clean: bool) -> None:
        """After ``_RECOVER_AFTER`` clean pieces in a row, one more connection again, up to what was asked
        for: a refusal during a short outage must not leave the download on one connection for good."""
        self._clean = self._clean + 1 if clean else 0
        if self._clean >= _RECOVER_AFTER and self.limit < self.target:
            self.limit += 1
            self._clean = 0

    # -- one request (its own thread) ----------------------------------------------------------------------------

    def _request(self, number: int, opened: tuple[httpx.Response, Iterator[bytes]] | None) -> None:
        """The thread of one connection: a piece, then — as long as each ends cleanly — the next one at once
        (the consumer, busy feeding the unpacker, would start it later); anything else ends the thread and
        is the consumer's to decide."""
        while True:
            stop = self._stops[number]
            cancel = SocketCancel(stop)
            outcome = _Outcome(None)
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

    def _next_piece(self, number: int, outcome: _Outcome) -> bool:
        """After a clean piece (under the lock): claim the next one for the same connection, if allowed."""
        clean = outcome.action is None and outcome.wrote > 0
        if not clean or self._stop.is_set() or len(self._threads) > self.limit:
            return False
        if time.monotonic() < self._not_before or self.plan.claim(number) is None:
            return False
        self._moved[number] = time.monotonic()
        self._stops[number] = _Stop(self._stop)  # a new request: nothing of the last one's cancel
        return True

    def _failed(self, exc: BaseException, number: int, stop: _Stop) -> _Outcome:
        """What a request that raised tells the consumer."""
        if stop.stalled.is_set() and not self._stop.is_set():
            return _Outcome(
                "stalled", f"a connection brought nothing for {self._stall:.0f} s: its rest moves"
            )
        if isinstance(exc, httpx.TransportError):
            outcome = _Outcome("error", f"{type(exc).__name__}: {exc}".rstrip(": "))
            if isinstance(exc, _REFUSALS) and not self._wrote.get(number):
                outcome.action = "refused"  # reset or closed before a byte: maybe one connection too many
            return outcome
        return _Outcome(
            "fatal", str(exc), fatal=None if self._stop.is_set() else exc
        )  # the consumer raises it

    def _ask(self, number: int, cancel: SocketCancel, extensions: dict[str, object]) -> _Outcome:
        with self._cond:
            piece = self.plan.pieces[number]
            start, end = piece.cursor, piece.end
        known = Known(start, self.known.length, self.known.etag, self.known.last_modified)
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{end - 1}"}
        validator = self.known.etag if self.known.etag and not self.known.etag.startswith("W/") else None
        validator = validator or self.known.last_modified
        if validator:
            headers["If-Range"] = validator
        with self.client.stream(
            "GET", self.url, headers=headers, timeout=self.options.timeout, extensions=extensions
        ) as response:
            cancel.response_arrived(response)
            action, reason = decide_piece(response.status_code, response.headers, known)
            if action is not PieceAction.WRITE:
                return _Outcome(action, reason, wait=retry_after_seconds(response.headers))
            declared = content_range_end(response.headers)
            with self._cond:  # no byte past what the server says it sends: the rest is a hole again
                if declared is not None:
                    self.plan.shorten(number, declared)
            return self._write(number, response.iter_raw(), cancel)

    def _write(self, number: int, body: Iterator[bytes], cancel: SocketCancel) -> _Outcome:
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
        return _Outcome("short", "the response ended before its piece") if short else _Outcome(None)

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
            self._moved[number] = time.monotonic()
            self._cond.notify_all()
