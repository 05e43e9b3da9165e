"""A sha256 whose running state can be saved, so the whole-file hash survives the process that computed it.

Why: a resume in a new process must continue the hash of the partial file. hashlib cannot export a state, so
it would re-read the kept prefix (hundreds of MB for a big wheel) on the resume's critical path; the journal
stores the state at the checkpoint instead (docs/performance.md#d-sha256-state).

How: OpenSSL's low-level ``SHA256_Init`` / ``SHA256_Update`` / ``SHA256_Final`` work on a caller-owned
``SHA256_CTX`` whose layout ``openssl/sha.h`` has published unchanged since 0.9.8::

    unsigned int h[8]; unsigned int Nl, Nh; unsigned int data[16]; unsigned int num, md_len;   /* 112 bytes */

so the state is those 112 bytes. Rules that keep this safe:

* Only the libcrypto hashlib itself loaded is used, found in ``/proc/self/maps`` (Linux). Nothing is loaded
  by name: on macOS, opening the system's libcrypto aborts the process. Anywhere else — or if the three
  functions are missing — :func:`new` returns a plain hashlib object whose :meth:`state` is ``None``, and a
  resume re-hashes as it always did.
* A saved state is trusted only if its own counters say it covers exactly the bytes the journal says
  (``Nh:Nl`` = bits, ``num`` = bytes in the last partial block, ``md_len`` = 32); a different layout fails
  that check and costs a re-hash, never a wrong digest.
* ctypes releases the GIL for each call, as hashlib does for large buffers.
"""

from __future__ import annotations

import ctypes
import hashlib
import sys
from typing import Protocol

__all__ = ["RunningSha256", "new", "restore"]

_DIGEST_SIZE = 32


class RunningSha256(Protocol):
    """What the tee needs from the whole-file hash."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...

    def state(self) -> str | None: ...


class _Ctx(ctypes.Structure):
    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint32),
        ("md_len", ctypes.c_uint32),
    ]


def _loaded_libcrypto() -> ctypes.CDLL | None:
    """The libcrypto already mapped into this process by hashlib, with the three functions, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import _hashlib  # noqa: F401 - maps libcrypto, if hashlib uses OpenSSL at all
    except ImportError:  # pragma: no cover - a Python built without OpenSSL
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "libcrypto" in line}
    except OSError:  # pragma: no cover - /proc not mounted
        return None
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)  # already loaded: this only takes a reference
            functions = (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final)
        except (OSError, AttributeError):
            continue
        init, update, final = functions
        init.argtypes, init.restype = [ctypes.POINTER(_Ctx)], ctypes.c_int
        update.argtypes, update.restype = (
            [ctypes.POINTER(_Ctx), ctypes.c_char_p, ctypes.c_size_t],
            ctypes.c_int,
        )
        final.argtypes, final.restype = [ctypes.c_char_p, ctypes.POINTER(_Ctx)], ctypes.c_int
        return lib
    return None


_LIB = _loaded_libcrypto()


class _OpenSSLSha256:
    """sha256 on a ``SHA256_CTX`` this object owns (see the module docstring)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _Ctx | None = None) -> None:
        assert _LIB is not None
        if ctx is None:
            ctx = _Ctx()
            _LIB.SHA256_Init(ctypes.byref(ctx))
        self._ctx = ctx

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        assert _LIB is not None
        if type(data) is bytes:
            _LIB.SHA256_Update(ctypes.byref(self._ctx), data, len(data))
            return
        with memoryview(data) as view, view.cast("B") as raw:  # any buffer, counted in bytes
            if raw.readonly:
                self.update(raw.tobytes())
            else:  # writable (the re-hash reads into a bytearray): hashed in place, no copy
                _LIB.SHA256_Update(
                    ctypes.byref(self._ctx), (ctypes.c_char * raw.nbytes).from_buffer(raw), raw.nbytes
                )

    def hexdigest(self) -> str:
        assert _LIB is not None
        ctx = _Ctx.from_buffer_copy(self._ctx)  # Final destroys the context: finish a copy
        out = ctypes.create_string_buffer(_DIGEST_SIZE)
        _LIB.SHA256_Final(out, ctypes.byref(ctx))
        return out.raw.hex()

    def state(self) -> str | None:
        return bytes(self._ctx).hex()


class _HashlibSha256:
    """hashlib's sha256 where no libcrypto is usable: same digests, no state to save."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def state(self) -> str | None:
        return None


def new() -> RunningSha256:
    """A fresh whole-file hash; its :meth:`~RunningSha256.state` can be saved when the platform allows."""
    return _OpenSSLSha256() if _LIB is not None else _HashlibSha256()


def restore(state: str | None, length: int) -> RunningSha256 | None:
    """The hash of ``length`` bytes continued from a saved ``state``; None when it cannot be trusted here (no
    libcrypto, not a state this code wrote, or one that covers another number of bytes): re-hash then."""
    if _LIB is None or state is None or length < 0:
        return None
    try:
        raw = bytes.fromhex(state)
    except ValueError:
        return None
    if len(raw) != ctypes.sizeof(_Ctx):
        return None
    ctx = _Ctx.from_buffer_copy(raw)
    bits = (ctx.Nh << 32) | ctx.Nl
    if bits != length * 8 or ctx.num != length % 64 or ctx.md_len != _DIGEST_SIZE:
        return None
    return _OpenSSLSha256(ctx)
