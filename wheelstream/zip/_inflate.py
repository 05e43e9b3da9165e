"""Raw-deflate and CRC-32 backends: ISA-L when importable, else the standard library's zlib.

isal inflates several times faster than zlib (docs/performance.md#d-isal); that difference decides whether
streaming extraction keeps up with the network. Both expose the same ``decompressobj`` API
(``decompress(data, max_length)``, ``unconsumed_tail``, ``unused_data``, ``eof``), which the parser relies on.
"""

from __future__ import annotations

import types
import zlib
from typing import Protocol

__all__ = ["BACKEND", "INFLATE_ERRORS", "Inflater", "crc32", "new_inflater"]


class Inflater(Protocol):
    eof: bool
    unconsumed_tail: bytes
    unused_data: bytes

    def decompress(self, data: bytes | memoryview, max_length: int = ..., /) -> bytes: ...


_backend: types.ModuleType
try:
    from isal import isal_zlib as _backend  # type: ignore[import-not-found,unused-ignore,no-redef]

    BACKEND = "isal"
except ImportError:  # pragma: no cover - exercised on machines without the [fast] extra
    _backend = zlib
    BACKEND = "zlib"

# What ``decompress`` raises on bytes that are not deflate (isal: IsalError, zlib: zlib.error); the parser turns
# it into CorruptData naming the entry.
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _backend.error)


def new_inflater() -> Inflater:
    """A decompressor for raw deflate (no zlib header), as ZIP method 8 stores it."""
    inflater: Inflater = _backend.decompressobj(-zlib.MAX_WBITS)
    return inflater


def crc32(data: bytes, value: int = 0) -> int:
    result: int = _backend.crc32(data, value)
    return result
