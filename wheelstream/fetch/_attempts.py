"""The attempt loop: request, decide, pump the body through the tee, back off, resume — until every byte is in.

Per attempt::

    GET url  [Range: bytes=D-  If-Range: validator]      (D = bytes we already hold)
    decide(status, headers)                               (wheelstream/transport/_table.py, DESIGN §3)
    for chunk in body:  partial.write · sha256.update     (network thread, 1 MiB blocks)
                        -> parser -> extractor            (_Unpacker thread, bounded queue)
    every 32 MB / 1 s: checkpoint                         (worker snapshots, syncer thread makes it durable:
                                                           _tee.py, _partial.py, DESIGN §2)

When the rest of a big file is better fetched over several connections (``_split``: asked for, or one
connection starves the unpacker), the attempt hands its open response to a segmented download
(``_segmented``), which runs to the end of the file; a resume that finds pieces goes there at once.

Within one process a dropped connection costs nothing: parser, extractor and hash keep their state, and the
next request simply asks for ``bytes=D-`` where ``D`` is the number of bytes received. What a *new* process
starts from is ``_resume.py``'s business.

The retry budget counts attempts that made **no progress** (no byte beyond the furthest point reached); an
attempt that advanced resets it, and a drop after progress is retried at once, so a slow but moving download
is never abandoned. Restarts from zero (the file changed, broken Range support, a forced encoding that makes
a resume impossible) bring no such progress and have a budget of their own, so a server with broken Range
support cannot keep us looping. Both budgets are ``options.retries``. Between attempts without progress the
loop checkpoints, then waits: exponential backoff with jitter, or the server's ``Retry-After`` (capped);
every wait wakes up for a cancel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import httpx

from wheelstream._progress import human_size
from wheelstream._urls import redact
from wheelstream.errors import HashMismatch, HTTPStatusError, ResourceGone, RetriesExhausted
from wheelstream.fetch import _split as split
from wheelstream.fetch._errors import gave_up, retrying, unfollowable
from wheelstream.fetch._host_slots import HostSlots
from wheelstream.fetch._options import Job
from wheelstream.fetch._reporting import Reporter
from wheelstream.fetch._resume import Restored, fresh_stream
from wheelstream.transport import (
    Action,
    Decision,
    Known,
    SocketCancel,
    decide,
    header_value,
    retry_after_seconds,
)
from wheelstream.unpack._piece_trail import piece_trail_path
from wheelstream.unpack._tee import Tee

__all__ = ["Attempts"]

_DONE = object()
_RESTARTED = object()


class _Retry(NamedTuple):
    """An attempt that stopped short: why, and how long the server asked us to wait, if it did."""

    reason: str
    wait: float | None = None


class Attempts:
    """One wheel URL through the decision table, from the stream it was restored to until every byte is in.

    ``stream`` is the one the attempts feed; a restart from zero replaces it. The counters are what the
    ``DownloadResult`` reports.
    """

    def __init__(
        self, job: Job, client: httpx.Client, cancel: SocketCancel, reporter: Reporter, restored: Restored
    ) -> None:
        self.job = job
        self.options = job.options
        self.client = client
        self.cancel = cancel
        self.reporter = reporter
        self.stream: Tee = restored.stream
        self.reused = restored.reused
        self.audit = restored.audit  # the kept prefix, read again beside the download (``PrefixAudit``)
        self.fetched = 0
        self.restarts = 0
        self.resumed_at: int | None = None
        self.unpacked_before = 0  # files written by streams discarded by a restart
        self.held = restored.held  # pieces past the position an earlier segmented run left
        # One connection only: asked for, or no pwrite (Windows), or the server ignored a piece's Range.
        self.single = self.options.connections == 1 or not self.stream.partial.can_write_at

    def restart(self, reason: str) -> None:
        """Discard everything of the old file: partial, staging, journal, parser, hash."""
        self.reporter.note(f"restarting from zero: {reason}")
        self.stream.abandon()
        self.restarts += 1
        self.reused = 0
        self.stop_audit()
        self.unpacked_before += self.stream.extractor.written
        self.stream = fresh_stream(self.job)
        self.held = ()

    def stop_audit(self) -> None:
        """No more reading of the kept prefix: its stream is gone, or the download ended."""
        if self.audit is not None:
            self.audit.cancel()
            self.audit = None

    def run(self) -> None:
        """Attempts until every byte is in (then the caller checks and completes the stream). Only attempts that
        bring bytes never held before count as progress (the module docstring)."""
        without_progress = 0
        high_water = self.stream.position
        while True:
            self.cancel.sleep(0)
            restarts = self.restarts
            try:
                outcome = self._attempt()
            except (httpx.TooManyRedirects, httpx.UnsupportedProtocol) as exc:
                raise unfollowable(exc) or exc from None  # a redirect no retry can follow
            except httpx.DecodingError as exc:  # a body labelled gzip (or deflate, br, ...) that is not
                raise HTTPStatusError(
                    f"the server's body does not decode as the Content-Encoding it names ({exc})"
                ) from None
            except httpx.TransportError as exc:
                self.cancel.raise_if_cancelled()  # the watcher shut the connection: not a network failure
                ended = unfollowable(exc)  # a certificate that does not verify: no retry mends it
                if ended is not None:
                    raise ended from None
                outcome = _Retry(f"{type(exc).__name__}: {exc}".rstrip(": "))
                if not self.stream.journal.resumable:
                    self.restart(f"{outcome.reason}, and the server's encoding prevents a resume")
                    outcome = _RESTARTED
            if outcome is _DONE:
                return
            if self.restarts != restarts:
                high_water = 0
                if self.restarts > self.options.retries:
                    raise RetriesExhausted(f"gave up after {self.restarts} restarts from zero")
            if self.stream.position > high_water:
                high_water = self.stream.position
                without_progress = 0
                continue  # a drop after progress: resume at once (the periodic checkpoints go on)
            if outcome is _RESTARTED:
                self.cancel.sleep(self.options.backoff(self.restarts - 1))
                continue
            assert isinstance(outcome, _Retry)
            without_progress += 1
            if without_progress > self.options.retries:
                raise gave_up(without_progress, outcome.reason, self.stream.position)
            wait = self.options.retry_wait(without_progress, outcome.wait)
            self.stream.checkpoint()  # about to wait: make what we hold durable
            self.reporter.note(retrying(outcome.reason, without_progress, self.options.retries, wait))
            self.cancel.sleep(wait)

    def _request_headers(self, probe_end: int | None) -> dict[bytes, bytes]:
        """As bytes: the validator is sent back as it came, and an ETag may hold bytes past ASCII."""
        headers = {b"Accept-Encoding": b"identity"}
        position = self.stream.position
        if position > 0 or probe_end is not None:
            headers[b"Range"] = f"bytes={position}-{'' if probe_end is None else probe_end - 1}".encode()
            validator = self.stream.journal.validator
            if validator and position > 0:
                headers[b"If-Range"] = header_value(validator)
        return headers

    def _attempt(self) -> object:
        """One request: returns _DONE, _RESTARTED, or a _Retry saying why it stopped short."""
        journal = self.stream.journal
        self._check_size(journal.length)  # a partial of another length (an earlier run's) is not this file
        if journal.length is not None and 0 < journal.length == self.stream.position:
            return _DONE  # everything is on disk already (e.g. killed right before the end)
        if self.held:
            self._resumed_from_pieces()
            return self._segmented(None, None)  # an earlier run's pieces: only the holes are asked for
        known = Known(self.stream.position, journal.length, journal.etag, journal.last_modified)
        probe_end = (
            None if self.single else split.probe_end(self.options, self.stream.position, journal.length)
        )
        headers = self._request_headers(probe_end)
        with (
            self.cancel.request() as extensions,
            self.client.stream(
                "GET",
                self.job.url,
                headers=headers,
                timeout=self.options.timeout,
                extensions=extensions,
                follow_redirects=True,  # also with a caller's client, which follows none by default (httpx's)
            ) as response,
        ):
            self.cancel.response_arrived(response)
            decision = decide(response.status_code, response.headers, known)
            action = decision.action
            if action is Action.RETRY:
                return _Retry(decision.reason, retry_after_seconds(response.headers))
            if action is Action.GONE:
                raise ResourceGone(f"{decision.reason}; the partial download was discarded")
            if action is Action.FAIL:
                raise HTTPStatusError(decision.reason)
            if action is Action.COMPLETE:
                return _DONE
            if action is Action.RESTART:
                if probe_end is not None:  # the answer to a first piece (a 206 gzipped, at the wrong start)
                    self.single = True
                self.restart(decision.reason)
                return _RESTARTED
            if action is Action.RESTART_WITH_BODY:
                self.restart(decision.reason)
            if action in (Action.START, Action.RESTART_WITH_BODY) or (
                action is Action.CONTINUE and self.stream.position == 0
            ):
                self._adopt(response, decision)  # (a 206 to a first request that asked for one piece)
            else:
                self._resumed(action)
            skip = self.stream.position if action is Action.SKIP else 0
            # No chunk_size: httpx would hold back up to a chunk of received bytes and lose it on a drop.
            body = response.iter_raw() if decision.resumable else response.iter_bytes()
            splittable = (
                action is not Action.SKIP and split.serves_ranges(response) and self._splittable(decision)
            )
            if probe_end is not None:
                if splittable and decision.end is not None:
                    return self._segmented(response, body, decision.end)  # asked for: its first piece is in
                self.single = True  # the server cannot serve pieces: no more probing
            position, length = self.stream.position, self.stream.journal.length
            wanted = self._pump(
                body, skip, watch=splittable and split.worth_watching(self.options, position, length)
            )
            if wanted > 1:
                # One connection starved the unpacker. Its response, open-ended, reads only what the kernel holds
                # for it already (sent: closing it unread would fetch those bytes twice), then stops.
                end = self.stream.position + split.backlog(response)
                return self._segmented(response, body, max(end, self.stream.position + 1), wanted)
        self.cancel.raise_if_cancelled()  # a body read until close ends early when the watcher shuts it
        length = self.stream.journal.length
        if length == self.stream.position:
            return _DONE  # a known length ends when it is reached
        if length is None:  # an unknown one with the body, if the body ends the archive: else it was cut
            if self.stream.ends_an_archive():
                return _DONE
            return _Retry("the body ended before the archive did (the server declared no length)")
        return _Retry("the connection closed before the end of the body")

    def _splittable(self, decision: Decision) -> bool:
        """May the rest be fetched in pieces: a known length, an identity body, a validator for ``If-Range``."""
        journal = self.stream.journal
        return (
            not self.single
            and decision.resumable
            and journal.length is not None
            and journal.validator is not None
        )

    def _segmented(
        self,
        response: httpx.Response | None,
        body: Iterator[bytes] | None,
        first_end: int = 0,
        connections: int | None = None,
    ) -> object:
        """The rest of the file over ``connections`` (default: what the options allow; ``_segmented``); the first
        is ``response``'s, for the piece up to ``first_end``."""
        # Imported here: a download on one connection (most of them) never needs the engine.
        from wheelstream.fetch._segmented import FileChanged, RangesRefused, Segmented

        journal = self.stream.journal
        count = 1 if self.single else connections or split.connections(self.options)
        engine = Segmented(
            # Every piece from the URL as given: a redirect's target may be signed and expire meanwhile.
            url=self.job.url,
            client=self.client,
            stream=self.stream,
            known=Known(0, journal.length, journal.etag, journal.last_modified),
            options=self.options,
            cancel=self.cancel,
            reporter=self.reporter,
            connections=count,
            held=self.held,
            resumed_at=self.resumed_at,
            slots=HostSlots(self.job.cache.root, self.job.url, split.slots(self.options)),
        )
        held, self.held = sum(end - start for start, end in self.held), ()
        if response is not None:
            self.cancel.let_go()  # the engine's thread for this response watches its socket itself
        try:
            engine.run(response, body, first_end)
        except FileChanged as exc:
            # One connection from here: a server whose validators disagree between connections must not
            # make every restart end the same way.
            self.restart(str(exc))
            self.single = True
            return _RESTARTED
        except RangesRefused as exc:
            self.single = True
            self.stream.pieces = None  # what the other connections wrote is fetched again, in order
            self.reused -= held  # ... so the pieces an earlier run left are not reused after all
            self.reporter.note(f"{exc}: going on with one connection")  # said whether or not a retry follows
            return _Retry("back to one connection")
        except BaseException:
            self.stream.settle(wait_for_syncer=False)  # a bad entry the worker found comes first
            raise
        finally:
            self.fetched += engine.fetched
        return _DONE

    def _pump(self, body: Iterator[bytes], skip: int, *, watch: bool = False) -> int:
        """Tee the body; with ``watch``, stop as soon as one connection proves too slow for the unpacker and
        return how many it could use (``Starving``: the caller hands the rest to a segmented download);
        0 when the body was read to its end."""
        stream = self.stream
        starving = split.Starving(stream.unpacker_idle) if watch else None
        try:
            for chunk in body:
                self.cancel.raise_if_cancelled()
                self.fetched += len(chunk)
                if skip:
                    drop = min(skip, len(chunk))
                    skip -= drop
                    chunk = chunk[drop:]
                    if not chunk:
                        continue
                stream.feed(chunk)
                stream.maybe_checkpoint(self.options.checkpoint_bytes, self.options.checkpoint_seconds)
                self.reporter.flowing(stream, self.resumed_at)
                wanted = starving.judged() if starving is not None else 1
                if wanted > 1:
                    return wanted  # (bytes still gathered for a block are written by the next take)
        except BaseException:
            # A bad entry the worker found came first in the stream: its error wins. The syncer is not waited
            # for: after a drop the next request goes out at once (see Tee.settle).
            stream.settle(wait_for_syncer=False)
            raise
        stream.settle(wait_for_syncer=False)
        return 0

    def _resumed_from_pieces(self) -> None:
        """A run going on from its prefix and the pieces an earlier segmented run left is a resume too: it says
        so, as a resume on one connection does, counting the pieces among what it saved."""
        if self.resumed_at is not None:
            return
        position = self.stream.position
        self.resumed_at = position
        saved = position + sum(end - start for start, end in self.held)
        self.reporter.report(
            self.stream, position, message=f"resumed at {human_size(position)} (saved {human_size(saved)})"
        )

    def _resumed(self, action: Action) -> None:
        position = self.stream.position
        if self.resumed_at is None:
            self.resumed_at = position
        if action is Action.SKIP:
            self.reporter.note(
                f"server ignored Range: reading the first {human_size(position)} again, nothing re-extracted"
            )
        else:
            self.reporter.report(
                self.stream,
                self.resumed_at,
                message=f"resumed at {human_size(position)} (saved {human_size(position)})",
            )

    def _check_size(self, length: int | None) -> None:
        """A file whose length is known beforehand (a lock's ``size``) and announced otherwise by the server is
        not the one asked for: refused before its body is read (DESIGN §9: verified while streaming)."""
        expected = self.job.expected_size
        if expected is not None and length is not None and length != expected:
            raise HashMismatch(
                f"the server's file is {length} bytes, {expected} expected; nothing more was fetched"
            )

    def _adopt(self, response: httpx.Response, decision: Decision) -> None:
        """Record the validators of the response the partial file now follows."""
        self._check_size(decision.length)
        journal = self.stream.journal
        journal.final_url = redact(str(response.url))
        journal.etag = response.headers.get("etag")
        journal.last_modified = response.headers.get("last-modified")
        journal.length = decision.length
        journal.resumable = decision.resumable
        # From byte 0 of this response: pieces an earlier run left (of this or another version) are not ours.
        journal.held = []
        piece_trail_path(self.stream.journal_path).unlink(missing_ok=True)
        self.stream.begin()  # the journal exists from the first byte on: a kill before any checkpoint loses none
        if not decision.resumable:
            self.reporter.note(decision.reason)
        self.reporter.report(self.stream, self.resumed_at)
