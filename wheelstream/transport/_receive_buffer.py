"""A receive buffer for h11 that passes a body read through without copying it.

Why: h11 copies every received byte three times on the way to a body event — into its ``bytearray`` buffer
(``+=``), then twice more as ``ReceiveBuffer.maybe_extract_at_most`` slices the same prefix once to test it
and once to return it — and httpcore copies the returned ``bytearray`` a fourth time (``bytes(event.data)``).
For a download that is four passes over the whole wheel in fresh memory, on the thread whose GIL the unpacker
needs (docs/performance.md, D-receive-buffer).

What it does: :class:`PassThroughBuffer` is h11's ``ReceiveBuffer`` with one shortcut. A ``bytes`` read that
arrives while the buffer is empty is held as it is; when the reader then asks for at most ``count`` bytes
and the held read fits, it gets that same object (and httpcore's ``bytes(...)`` of a ``bytes`` is the object
itself). Anything else — a read into a non-empty buffer, a line search for headers or chunk sizes, a partial
extract — first appends the held read to the ``bytearray`` and runs h11's own code, so h11 parses exactly the
bytes it would have.

What it touches: h11's ``ReceiveBuffer`` (subclassed: its ``_data`` and the two search positions, h11 0.14-0.16)
and, to put the buffer in place per connection, private attributes along httpx's response stream:
``ResponseStream._httpcore_stream`` (httpx 0.27-0.29), ``PoolByteStream._stream``,
``HTTP11ConnectionByteStream._connection``, ``HTTP11Connection._h11_state`` (httpcore 1.x),
``Connection._receive_buffer`` (h11). The connection keeps the buffer for its later requests.

Fallback: where any of these is missing or of another type (another version, HTTP/2, a transport that is not
httpx's), :func:`pass_body_through` leaves the connection exactly as it was and answers False;
``tests/test_receive_buffer.py`` checks that the chain is found with the pinned versions.
"""

from __future__ import annotations

from typing import Any

from h11._receivebuffer import ReceiveBuffer

__all__ = ["PassThroughBuffer", "pass_body_through"]


class PassThroughBuffer(ReceiveBuffer):
    """h11's receive buffer, except that a read taken whole out of an empty buffer is the object received."""

    def __init__(self) -> None:
        super().__init__()
        self._held: bytes | None = None  # a read not yet copied into ``_data``, which is then empty

    @classmethod
    def taking_over(cls, old: ReceiveBuffer) -> PassThroughBuffer:
        """A buffer holding what ``old`` holds, searches included (bytes may be buffered after the headers)."""
        new = cls()
        new._data = old._data
        new._next_line_search = old._next_line_search
        new._multiple_lines_search = old._multiple_lines_search
        return new

    def _settle(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._data += held

    def __iadd__(self, byteslike: bytes | bytearray) -> PassThroughBuffer:
        if self._held is None and not self._data and type(byteslike) is bytes and byteslike:
            self._held = byteslike
        else:
            self._settle()
            self._data += byteslike
        return self

    def __len__(self) -> int:
        return len(self._data) if self._held is None else len(self._held)

    def __bytes__(self) -> bytes:
        self._settle()
        return bytes(self._data)

    def maybe_extract_at_most(self, count: int) -> bytes | bytearray | None:  # type: ignore[override]
        held = self._held
        if held is not None and len(held) <= count:
            self._held = None
            self._next_line_search = 0  # as h11's ``_extract`` leaves them
            self._multiple_lines_search = 0
            return held
        self._settle()
        return super().maybe_extract_at_most(count)

    def maybe_extract_next_line(self) -> bytearray | None:
        self._settle()
        return super().maybe_extract_next_line()

    def maybe_extract_lines(self) -> list[bytearray] | None:
        self._settle()
        return super().maybe_extract_lines()

    def is_next_line_obviously_invalid_request_line(self) -> bool:
        self._settle()
        return super().is_next_line_obviously_invalid_request_line()


def pass_body_through(response_stream: object) -> bool:
    """Give the h11 connection behind ``response_stream`` (an httpx transport response's ``stream``) a
    :class:`PassThroughBuffer`, once per connection; whether it has one (see the module docstring)."""
    pooled = getattr(response_stream, "_httpcore_stream", None)
    connection: Any = getattr(getattr(pooled, "_stream", None), "_connection", None)
    h11_connection = getattr(connection, "_h11_state", None)
    buffer = getattr(h11_connection, "_receive_buffer", None)
    if type(buffer) is ReceiveBuffer:
        h11_connection._receive_buffer = PassThroughBuffer.taking_over(buffer)  # type: ignore[union-attr]
        return True
    return isinstance(buffer, PassThroughBuffer)
