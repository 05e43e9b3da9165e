"""Which bytes of one file are where while several connections fetch it: the plan of a segmented download.

Sans-I/O and single-threaded: the engine (``_segmented``) calls it under one lock. Four kinds of bytes,
in file order:

* **taken** — ``0..taken``: the prefix the tee has consumed (hashed, parsed, counted as the partial's length);
* **written** — intervals past ``taken`` that a connection wrote into the partial file at their offsets and
  the tee has not reached yet (the journal records them as ``held``, so a resume keeps them);
* **assigned** — each connection's piece ``cursor..end``: what it is fetching now;
* **holes** — everything else below ``length``: nobody holds it, nobody fetches it.

A free connection claims, in this order: the next ``min_piece`` bytes of the hole nearest ``taken``, else the
back half of the piece with the most bytes left, if that is at least two pieces — work stealing, so the end of
the file does not wait for one slow connection. Its owner learns its new ``end`` before its next write
(``room``) and stops there.

Why pieces of one size, claimed in file order: the tee can only take the contiguous prefix, so the prefix
must grow at the rate of all connections together, not of one. With N connections on the first N pieces
the prefix lags the fastest by at most N pieces; with one share of the file per connection (tried first:
docs/performance.md, D-piece-order) it grows at one connection's rate, and most of the unpack waits for the
end. Every request asks for exactly its piece, so the server sends nothing past it — except for a victim of a
steal, which stops early: what was in flight on its connection is fetched twice. Pieces of one size leave
nothing to steal but a response opened before the split (``assign``) or a piece cut short and claimed again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

__all__ = ["Piece", "RangePlan"]


@dataclass
class Piece:
    """The bytes one connection is fetching: ``cursor..end`` (``start`` is where its request began)."""

    start: int
    cursor: int
    end: int

    @property
    def left(self) -> int:
        return self.end - self.cursor


class RangePlan:
    """The plan of one file of ``length`` bytes (see the module docstring)."""

    def __init__(
        self, length: int, *, taken: int = 0, written: tuple[tuple[int, int], ...] = (), min_piece: int
    ) -> None:
        if not 0 <= taken <= length:
            raise ValueError(f"taken {taken} outside 0..{length}")
        self.length = length
        self.taken = taken
        self.min_piece = max(1, min_piece)
        self._starts: list[int] = []  # written intervals, disjoint and merged: starts and ends in order
        self._ends: list[int] = []
        self.pieces: dict[int, Piece] = {}
        for start, end in written:
            self._add(max(start, taken), min(end, length))

    # -- written intervals -----------------------------------------------------------------------------------

    def _add(self, start: int, end: int) -> None:
        """Mark ``start..end`` written, merging with its neighbours."""
        start = max(start, self.taken)
        if end <= start:
            return
        first = bisect.bisect_left(self._ends, start)  # first interval ending at or after start
        last = bisect.bisect_right(self._starts, end)  # intervals from here on start after end
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]

    def held(self) -> list[tuple[int, int]]:
        """The written intervals past ``taken``: what the journal records besides the prefix."""
        return list(zip(self._starts, self._ends, strict=True))

    def held_bytes(self) -> int:
        return sum(end - start for start, end in zip(self._starts, self._ends, strict=True))

    def available(self) -> int:
        """How far the tee can take: the end of the written interval that starts at ``taken``."""
        if self._starts and self._starts[0] <= self.taken:
            return self._ends[0]
        return self.taken

    def take(self, upto: int) -> None:
        """The tee consumed ``taken..upto`` (written bytes only)."""
        if not self.taken <= upto <= self.available():
            raise ValueError(f"cannot take up to {upto}: written up to {self.available()}")
        self.taken = upto
        while self._starts and self._ends[0] <= upto:
            del self._starts[0], self._ends[0]
        if self._starts and self._starts[0] < upto:
            self._starts[0] = upto

    @property
    def complete(self) -> bool:
        return self.taken == self.length

    # -- pieces ------------------------------------------------------------------------------------------------

    def holes(self) -> list[tuple[int, int]]:
        """``taken..length`` minus what is written or assigned, in order."""
        covered = sorted(
            [(s, e) for s, e in zip(self._starts, self._ends, strict=True)]
            + [(p.cursor, p.end) for p in self.pieces.values() if p.left > 0]
        )
        holes = []
        position = self.taken
        for start, end in covered:
            if start > position:
                holes.append((position, start))
            position = max(position, end)
        if position < self.length:
            holes.append((position, self.length))
        return holes

    def assign(self, connection: int, start: int, end: int) -> Piece:
        """Give ``connection`` the piece ``start..end`` (a response already open on it, say)."""
        piece = Piece(start, start, end)
        self.pieces[connection] = piece
        return piece

    def claim(self, connection: int) -> Piece | None:
        """The next piece for a free ``connection``: the front of the first hole, else the back half of the
        piece with the most bytes left; None when there is nothing worth a request."""
        self.pieces.pop(connection, None)
        holes = self.holes()
        if holes:
            start, end = holes[0]
            size = self.min_piece if end - start >= 2 * self.min_piece else end - start  # no tiny rest
            return self.assign(connection, start, start + size)
        victim = max(self.pieces.values(), key=lambda p: (p.left, -p.cursor), default=None)
        if victim is None or victim.left < 2 * self.min_piece:
            return None
        middle = victim.cursor + victim.left // 2
        new = self.assign(connection, middle, victim.end)
        victim.end = middle
        return new

    def shorten(self, connection: int, end: int) -> None:
        """``connection``'s response ends at ``end`` (its server says so): the rest of its piece is a hole."""
        piece = self.pieces[connection]
        piece.end = max(piece.cursor, min(piece.end, end))

    def room(self, connection: int) -> int:
        """How many more bytes ``connection`` may write (0: its piece was finished or stolen up to here)."""
        piece = self.pieces.get(connection)
        return piece.left if piece is not None else 0

    def wrote(self, connection: int, count: int) -> None:
        """``connection`` wrote ``count`` bytes at its cursor into the partial file."""
        piece = self.pieces[connection]
        self._add(piece.cursor, piece.cursor + count)
        piece.cursor = min(piece.cursor + count, piece.end)

    def release(self, connection: int) -> None:
        """``connection`` stops (finished, failed, refused): what it did not fetch becomes a hole again."""
        self.pieces.pop(connection, None)
