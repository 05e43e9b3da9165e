"""The attempt loop: request, decide, pump the body through the tee, back off, resume — until every byte is in.

Per attempt::

    GET url  [Range: bytes=D-  If-Range: validator]      (D = bytes we already hold)
    decide(status, headers)                               (wheelstream/transport/_table.py, DESIGN §3)
    for chunk in body:  partial.write · sha256.update     (network thread, 1 MiB blocks)
                        -> parser -> extractor            (_Unpacker thread, bounded queue)
    every 32 MB / 1 s: checkpoint                         (worker snapshots, syncer thread makes it durable:
                                                           _tee.py, _partial.py, DESIGN §2)

Within one process a dropped connection costs nothing: parser, extractor and hash keep their state, and the
next request simply asks for ``bytes=D-`` where ``D`` is the number of bytes received. What a *new* process
starts from is ``_resume.py``'s business.

The retry budget counts attempts that made **no progress** (no byte beyond the furthest point reached); an
attempt that advanced resets it, and a drop after progress is retried at once, so a slow but moving download
is never abandoned. Restarts from zero (the file changed, broken Range support, a forced encoding that makes
a resume impossible) bring no such progress and have a budget of their own, so a server with broken Range
support cannot keep us looping. Both budgets are ``options.retries``. Between attempts without progress the
loop checkpoints, then waits: exponential backoff with full jitter, or the server's ``Retry-After`` (capped);
every wait wakes up for a cancel.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from wheelstream._urls import redact
from wheelstream.errors import HTTPStatusError, ResourceGone, RetriesExhausted
from wheelstream.fetch._cancel import SocketCancel
from wheelstream.fetch._errors import gave_up, human
from wheelstream.fetch._options import DownloadOptions, Job
from wheelstream.fetch._reporting import Reporter
from wheelstream.fetch._resume import Restored, fresh_stream
from wheelstream.transport import Action, Decision, Known, decide, retry_after_seconds
from wheelstream.unpack._tee import Tee

__all__ = ["Attempts"]

_DONE = object()
_RESTARTED = object()
_MAX_RETRY_AFTER = 600.0  # honour Retry-After (DESIGN §3), but never sleep longer than this


@dataclass(frozen=True)
class _Retry:
    """An attempt that stopped short: why, and how long the server asked us to wait, if it did."""

    reason: str
    wait: float | None = None


def _backoff(attempt: int, options: DownloadOptions) -> float:
    """Exponential backoff with full jitter; the first retry after progress is immediate."""
    if attempt <= 0:
        return 0.0
    ceiling = min(options.backoff_max, options.backoff_base * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


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
        self.prefix_unread = restored.prefix_unread
        self.fetched = 0
        self.restarts = 0
        self.resumed_at: int | None = None
        self.unpacked_before = 0  # files written by streams discarded by a restart

    def restart(self, reason: str) -> None:
        """Discard everything of the old file: partial, staging, journal, parser, hash."""
        self.reporter.note(f"restarting from zero: {reason}")
        self.stream.abandon()
        self.restarts += 1
        self.reused = 0
        self.prefix_unread = False
        self.unpacked_before += self.stream.extractor.written
        self.stream = fresh_stream(self.job)

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
            except httpx.TransportError as exc:
                self.cancel.raise_if_cancelled()  # the watcher shut the connection: not a network failure
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
                self.cancel.sleep(_backoff(self.restarts - 1, self.options))
                continue
            assert isinstance(outcome, _Retry)
            without_progress += 1
            if without_progress > self.options.retries:
                raise gave_up(without_progress, outcome.reason, self.stream.position)
            wait = outcome.wait if outcome.wait is not None else _backoff(without_progress, self.options)
            wait = min(wait, _MAX_RETRY_AFTER)
            self.stream.checkpoint()  # about to wait: make what we hold durable
            self.reporter.note(
                f"{outcome.reason}; retry {without_progress} of {self.options.retries} in {wait:.1f} s"
            )
            self.cancel.sleep(wait)

    def _request_headers(self) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity"}
        if self.stream.position > 0:
            headers["Range"] = f"bytes={self.stream.position}-"
            validator = self.stream.journal.validator
            if validator:
                headers["If-Range"] = validator
        return headers

    def _attempt(self) -> object:
        """One request: returns _DONE, _RESTARTED, or a _Retry saying why it stopped short."""
        journal = self.stream.journal
        if journal.length is not None and 0 < journal.length == self.stream.position:
            return _DONE  # everything is on disk already (e.g. killed right before the end)
        known = Known(self.stream.position, journal.length, journal.etag, journal.last_modified)
        headers = self._request_headers()
        with (
            self.cancel.request() as extensions,
            self.client.stream(
                "GET", self.job.url, headers=headers, timeout=self.options.timeout, extensions=extensions
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
                self.restart(decision.reason)
                return _RESTARTED
            if action is Action.RESTART_WITH_BODY:
                self.restart(decision.reason)
            if action in (Action.START, Action.RESTART_WITH_BODY):
                self._adopt(response, decision)
            else:
                self._resumed(action)
            skip = self.stream.position if action is Action.SKIP else 0
            # No chunk_size: httpx would hold back up to a chunk of received bytes and lose it on a drop.
            body = response.iter_raw() if decision.resumable else response.iter_bytes()
            self._pump(body, skip)
        self.cancel.raise_if_cancelled()  # a body read until close ends early when the watcher shuts it
        length = self.stream.journal.length
        if length is None or length == self.stream.position:
            return _DONE  # an unknown length ends with the body; a known one when it is reached
        return _Retry("the connection closed before the end of the body")

    def _pump(self, body: Iterator[bytes], skip: int) -> None:
        stream = self.stream
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
        except BaseException:
            # A bad entry the worker found came first in the stream: its error wins. The syncer is not waited
            # for: after a drop the next request goes out at once (see Tee.settle).
            stream.settle(wait_for_syncer=False)
            raise
        stream.settle(wait_for_syncer=False)

    def _resumed(self, action: Action) -> None:
        position = self.stream.position
        if self.resumed_at is None:
            self.resumed_at = position
        if action is Action.SKIP:
            self.reporter.note(
                f"server ignored Range: reading the first {human(position)} again, nothing re-extracted"
            )
        else:
            self.reporter.report(
                self.stream,
                self.resumed_at,
                message=f"resumed at {human(position)} (saved {human(position)})",
            )

    def _adopt(self, response: httpx.Response, decision: Decision) -> None:
        """Record the validators of the response the partial file now follows."""
        journal = self.stream.journal
        journal.final_url = redact(str(response.url))
        journal.etag = response.headers.get("etag")
        journal.last_modified = response.headers.get("last-modified")
        journal.length = decision.length
        journal.resumable = decision.resumable
        self.stream.begin()  # the journal exists from the first byte on: a kill before any checkpoint loses none
        if not decision.resumable:
            self.reporter.note(decision.reason)
        self.reporter.report(self.stream, self.resumed_at)
