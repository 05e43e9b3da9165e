"""Progress reports of one download to the caller's callback, and what that callback raised (its own error)."""

from __future__ import annotations

import time

from wheelstream._progress import Progress, ProgressCallback
from wheelstream.unpack._tee import Tee

__all__ = ["Reporter"]

_REPORT_EVERY = (
    0.05  # seconds between progress reports while bytes flow (docs/performance.md, D-report-every)
)


class Reporter:
    """Reports for the wheel ``wheel`` to ``callback`` (None: nobody listens)."""

    def __init__(self, wheel: str, callback: ProgressCallback | None) -> None:
        self.wheel = wheel
        self.callback = callback
        self.callback_error: BaseException | None = None  # what the callback raised, if it did
        self._reported_at = 0.0

    def _tell(self, progress: Progress) -> None:
        """Call the caller's callback; remember what it raised, which is the caller's own error."""
        assert self.callback is not None
        try:
            self.callback(progress)
        except BaseException as exc:
            self.callback_error = exc
            raise

    def note(self, message: str) -> None:
        """A line of its own (a retry, a restart), not tied to the stream's position."""
        if self.callback is not None:
            self._tell(Progress(self.wheel, 0, None, 0, None, message=message))

    def report(
        self,
        stream: Tee,
        resumed_at: int | None,
        *,
        message: str | None = None,
        finished: bool = False,
        held: int = 0,
        connections: int = 1,
    ) -> None:
        """Where ``stream`` is now; ``held``: bytes further on other connections wrote (a segmented download)."""
        if self.callback is None:
            return
        self._tell(
            Progress(
                self.wheel,
                stream.position + held,
                stream.journal.length,
                len(stream.extractor.files),
                resumed_at,
                message=message,
                finished=finished,
                connections=connections,
            )
        )

    def flowing(self, stream: Tee, resumed_at: int | None, *, held: int = 0, connections: int = 1) -> None:
        """``report`` while bytes flow, at most every ``_REPORT_EVERY`` seconds: not per chunk, since a rich
        bar update holds the GIL the unpack thread needs."""
        now = time.monotonic()
        if now - self._reported_at >= _REPORT_EVERY:
            self._reported_at = now
            self.report(stream, resumed_at, held=held, connections=connections)
