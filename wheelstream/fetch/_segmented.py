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
* a *request* is one thread (``_piece_requests``): one piece, one response (``decide_piece``: the second table
  in ``wheelstream/transport/_table.py``), written as it comes, until the body ends or the piece was stolen up
  to where it is, then the next piece on the same connection while they end cleanly; each outcome goes back to
  the consumer;
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

import threading
import time
from collections.abc import Iterator

import filelock
import httpx

from wheelstream.errors import HTTPStatusError, ResourceGone
from wheelstream.fetch._errors import gave_up, retrying
from wheelstream.fetch._host_slots import HostSlots
from wheelstream.fetch._options import DownloadOptions
from wheelstream.fetch._piece_requests import Outcome, PieceRequests, Stop
from wheelstream.fetch._plan import RangePlan
from wheelstream.fetch._reporting import Reporter
from wheelstream.transport import Known, PieceAction, SocketCancel
from wheelstream.unpack._piece_trail import PieceTrail, piece_trail_path
from wheelstream.unpack._tee import Tee

__all__ = ["FileChanged", "RangesRefused", "Segmented"]

_READ = 1 << 20  # the consumer tees the prefix in blocks of this size, as the network thread does
_WAKE = 0.2  # seconds: the consumer looks at cancels, outcomes and checkpoints at least this often
_RECOVER_AFTER = 8  # clean pieces in a row before a lowered limit goes up by one again
_STALL_SHARE = 1 / 3  # of the read timeout: a request that wrote nothing that long is cut, its rest moved


class FileChanged(Exception):
    """A piece came from another version of the file: the download restarts from zero."""


class RangesRefused(Exception):
    """The server ignored Range on a further connection: the download goes on with one."""


class Segmented(PieceRequests):
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
        self._outcomes: list[Outcome] = []
        self._wrote: dict[int, int] = {}  # bytes each running request wrote
        self.slots = slots  # the host's connections beyond this download's first (None: no such limit)
        self._slot_of: dict[int, filelock.BaseFileLock | None] = {}  # each running request's slot
        self._free_running = False  # the request that needs no slot (the download's own) runs
        self._notes: list[str] = []  # for the caller, told by the consumer outside the lock
        self.target = connections  # what was asked for; ``limit`` may go below it for a while
        self._clean = 0  # clean pieces in a row since the limit last went down
        self._stops: dict[int, Stop] = {}  # each running request's cancel
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
                    held, limit = plan.held_bytes(), self.limit
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
        self._stops[number] = Stop(self._stop)
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
            wait = self.options.retry_wait(self._without_progress, outcome.wait)
            self._not_before = time.monotonic() + wait
            self._notes.append(retrying(outcome.reason, self._without_progress, self.options.retries, wait))

    def _recover(self, *, clean: bool) -> None:
        """After ``_RECOVER_AFTER`` clean pieces in a row, one more connection again, up to what was asked
        for: a refusal during a short outage must not leave the download on one connection for good."""
        self._clean = self._clean + 1 if clean else 0
        if self._clean >= _RECOVER_AFTER and self.limit < self.target:
            self.limit += 1
            self._clean = 0

    def _next_piece(self, number: int, outcome: Outcome) -> bool:
        """After a clean piece (under the lock): claim the next one for the same connection, if allowed."""
        clean = outcome.action is None and outcome.wrote > 0
        if not clean or self._stop.is_set() or len(self._threads) > self.limit:
            return False
        if time.monotonic() < self._not_before or self.plan.claim(number) is None:
            return False
        self._moved[number] = time.monotonic()
        self._stops[number] = Stop(self._stop)  # a new request: nothing of the last one's cancel
        return True
