"""What the server serves: a named file whose content and validators change only when a test says so.

A :class:`Version` is one immutable state of a file (bytes or an on-disk path, ETag, Last-Modified). The
served file swaps versions on :meth:`ServedFile.replace` or when a path-backed file changes on disk, so a
response that started on the old version finishes on it, like a real server that keeps the old inode open.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

__all__ = ["ServedFile", "Version"]

_XOR_5A = bytes(b ^ 0x5A for b in range(256))
# Content given as bytes was "last modified" this long before it was added: a Last-Modified at least 60 s before
# the Date is a strong validator (RFC 9110 §8.8.2.2), and a change (ChangeFile, replace) can move it forward
# without passing the server's clock.
_AGE = 120  # seconds


@dataclass(eq=False)
class Version:
    """One state of a file; ``path`` is set when the bytes live on disk (enables ``os.sendfile``)."""

    size: int
    etag: str  # strong, quoted: '"abc-1"'
    mtime: int  # whole seconds, because HTTP-dates have no finer resolution
    data: bytes | None = None
    path: Path | None = None
    _sha256: str | None = field(default=None, repr=False)
    _gzipped: dict[tuple[tuple[int, int], ...], bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def last_modified(self) -> str:
        """The HTTP-date form of :attr:`mtime`."""
        return formatdate(self.mtime, usegmt=True)

    def read(self, offset: int, length: int) -> bytes:
        """Bytes ``offset .. offset+length`` of the content."""
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def content(self) -> bytes:
        """The whole content in memory; for derived versions and the index hash, not for serving."""
        return self.read(0, self.size)

    @property
    def sha256(self) -> str:
        """Hex digest for index ``#sha256=`` fragments; computed once per version."""
        with self._lock:
            if self._sha256 is None:
                h = hashlib.sha256()
                if self.data is not None:
                    h.update(self.data)
                else:
                    assert self.path is not None
                    with open(self.path, "rb") as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
                self._sha256 = h.hexdigest()
            return self._sha256

    def gzipped(self, corrupt: tuple[tuple[int, int], ...] = ()) -> bytes:
        """The gzip representation, cached: ``mtime=0`` keeps it byte-identical across requests.

        ``corrupt`` lists ``(file offset, xor mask)`` flips made to the content *before* it is compressed:
        ``Corrupt`` names a byte of the file, so a client that decodes the body must find that byte flipped
        (flipping a byte of the gzip stream instead made a broken stream, not a wrong file).
        """
        with self._lock:
            found = self._gzipped.get(corrupt)
            if found is None:
                content = bytearray(self.content())
                for offset, mask in corrupt:
                    if offset < len(content):
                        content[offset] ^= mask
                found = self._gzipped[corrupt] = gzip.compress(content, compresslevel=6, mtime=0)
            return found

    @classmethod
    def from_bytes(cls, data: bytes, generation: int, mtime: int) -> Version:
        """A version whose ETag changes whenever the bytes or the generation do."""
        digest = hashlib.sha256(data).hexdigest()[:16]
        return cls(size=len(data), etag=f'"{digest}-{generation}"', mtime=mtime, data=data)

    @classmethod
    def from_path(cls, path: Path, generation: int, mtime: int | None = None) -> Version:
        """A disk-backed version; the ETag is nginx-style (size, mtime) so a 1 GB file is not hashed."""
        st = path.stat()
        return cls(
            size=st.st_size,
            etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}-{generation}"',
            mtime=int(st.st_mtime) if mtime is None else mtime,
            path=path,
        )


class ServedFile:
    """A name on the server, its current :class:`Version` and its per-file request counter."""

    def __init__(self, name: str, source: bytes | os.PathLike[str] | str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._generation = 0
        self._requests = 0
        self._derived: dict[tuple[int, bytes | None], Version] = {}
        self._stat: tuple[int, int] | None = None
        self._version = self._make(source, int(time.time()) - _AGE)

    def _make(self, source: bytes | os.PathLike[str] | str, mtime: int) -> Version:
        """A new version dated ``mtime``; a file on disk keeps its own date when that is older. A date no older
        than now is never served (a future one is sent as the response's own), so one just written would share
        its second with the version it replaces, and an ``If-Range`` by date would splice the two."""
        self._generation += 1
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._stat = None
            return Version.from_bytes(bytes(source), self._generation, mtime)
        path = Path(source)
        st = path.stat()
        self._stat = (st.st_size, st.st_mtime_ns)
        return Version.from_path(path, self._generation, min(int(st.st_mtime), mtime))

    def next_number(self) -> int:
        """Count a request for this file and return its 1-based number."""
        with self._lock:
            self._requests += 1
            return self._requests

    @property
    def request_count(self) -> int:
        """How many requests for this file the server has received."""
        return self._requests

    def current(self) -> Version:
        """The version a new request sees; notices a path-backed file rewritten on disk."""
        with self._lock:
            v = self._version
            if v.path is not None:
                try:
                    st = v.path.stat()
                except FileNotFoundError:
                    return v
                if (st.st_size, st.st_mtime_ns) != self._stat:
                    later = self._later_than(v)
                    self._version = self._make(v.path, later)
                    self._version.mtime = later
            return self._version

    def replace(self, source: bytes | os.PathLike[str] | str) -> Version:
        """Swap in new content; Last-Modified moves forward at least one second so dates differ too."""
        with self._lock:
            later = self._later_than(self._version)
            self._version = self._make(source, later)
            self._version.mtime = later  # forward, whatever the date of a file on disk
            self._derived.clear()
            return self._version

    @staticmethod
    def _later_than(old: Version) -> int:
        """A date for the version after ``old``: a second later at least, and in the past (see ``_make``)."""
        return max(old.mtime + 1, int(time.time()) - _AGE // 2)

    def changed(self, base: Version, data: bytes | None) -> Version:
        """The version :class:`~wheelstream.testing.ChangeFile` switches to, stable across requests."""
        key = (id(base), data)
        with self._lock:
            found = self._derived.get(key)
            if found is None:
                new = data if data is not None else base.content().translate(_XOR_5A)
                digest = hashlib.sha256(new).hexdigest()[:16]
                # later than the base, and not in the future (RFC 9110 §8.8.2.1) unless the base is this second's
                mtime = max(base.mtime + 1, min(base.mtime + 60, int(time.time())))
                found = Version(size=len(new), etag=f'"{digest}-changed"', mtime=mtime, data=new)
                self._derived[key] = found
            return found
