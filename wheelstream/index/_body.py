"""A page's body, inflated here a step at a time against a limit: a gzip bomb (1 MB on the wire, 2 GB decoded)
must be refused before it is held, and httpx's own decoder inflates a chunk whole, however far.

We ask for ``identity``; a server that compresses anyway may use one layer of gzip (several members, as the
``gzip`` module reads them) or deflate (zlib data, or raw deflate as some servers send it: told apart by the
zlib header, RFC 1950 §2.2, as httpx and browsers tell them). Anything else — more layers, another encoding,
data that does not inflate, a stream cut before its end — is an ``HTTPStatusError`` saying so: the same bytes
would come again, so the caller does not ask again.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

from wheelstream.errors import HTTPStatusError

__all__ = ["bounded_body"]

_STEP = 1 << 20  # bytes inflated at a time, each counted before the next
_GZIP = 16 + zlib.MAX_WBITS


def bounded_body(raw: Iterable[bytes], content_encoding: str, shown: str, limit: int) -> bytes:
    """The decoded body of ``raw`` (the bytes as they came), refused past ``limit`` bytes; ``shown`` names the
    page in messages."""
    named = (each.strip().lower() for each in content_encoding.split(","))
    layers = [each for each in named if each not in ("", "identity")]
    if len(layers) > 1 or (layers and layers[0] not in ("gzip", "x-gzip", "deflate")):
        raise HTTPStatusError(
            f"{shown} came as Content-Encoding {', '.join(layers)}; one gzip or deflate layer is read, no more"
        )
    parts: list[bytes] = []
    size = 0

    def keep(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise HTTPStatusError(f"{shown} is larger than {limit >> 20} MiB once decoded")
        parts.append(chunk)

    if not layers:
        for data in raw:
            keep(data)
        return b"".join(parts)
    try:
        _inflate(raw, gzip=layers[0] != "deflate", keep=keep)
    except zlib.error as exc:
        raise HTTPStatusError(f"{shown} does not decode as the Content-Encoding it names ({exc})") from None
    return b"".join(parts)


def _inflate(raw: Iterable[bytes], *, gzip: bool, keep: Callable[[bytes], None]) -> None:
    """Inflate ``raw`` into ``keep``, a step at a time (see the module docstring)."""
    inflate: zlib._Decompress | None = None
    head = b""  # deflate: the first two bytes, to tell zlib data from raw deflate
    for data in raw:
        if inflate is None:
            head += data
            if not gzip and len(head) < 2:
                continue
            data, head = head, b""
            inflate = zlib.decompressobj(_GZIP if gzip else _wbits_of_deflate(data))
        while data:
            keep(inflate.decompress(data, _STEP))
            data = inflate.unconsumed_tail
            if inflate.eof and inflate.unused_data:
                if gzip and not inflate.unused_data.strip(b"\0"):
                    data = b""  # zero padding after the last member, as the gzip module allows
                    continue
                if not gzip:
                    raise zlib.error("data after the end of the compressed stream")
                data, inflate = inflate.unused_data, zlib.decompressobj(_GZIP)  # the next gzip member
    if inflate is None:
        if head:
            raise zlib.error("the body is too short to be compressed")
        return  # an empty body
    keep(inflate.flush())
    if not inflate.eof:
        raise zlib.error("the body ends before its compressed stream does")


def _wbits_of_deflate(start: bytes) -> int:
    """zlib data (a header: CM 8, and the first two bytes a multiple of 31) or raw deflate."""
    zlib_header = start[0] & 0x0F == 8 and ((start[0] << 8) | start[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
