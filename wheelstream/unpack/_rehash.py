"""Whole-file hashes read back from disk: the kept prefix of a partial file on resume, a finished file."""

from __future__ import annotations

import threading
from pathlib import Path

from wheelstream.unpack import _sha256

__all__ = ["HASH_BLOCK", "file_sha256", "prefix_sha256"]


# Hashing releases the GIL for each buffer, and a resume hashes beside Python-heavy work: taking the GIL back
# can wait out a switch interval each time, so the file is read into one reused large buffer; not mapped, since
# a mapped file that shrinks underneath kills the process with SIGBUS (docs/performance.md#d-resume-rehash).
HASH_BLOCK = 16 << 20


def prefix_sha256(
    path: Path, length: int, stop: threading.Event | None = None, *, block: int = HASH_BLOCK
) -> _sha256.RunningSha256:
    """sha256 of the first ``length`` bytes of ``path`` (fewer if it is shorter), still open for more (a resume
    goes on feeding it); partial if ``stop`` is set on the way (its caller has given up on the result). Read in
    ``block``-byte reads: larger is faster, and is that much more memory while it runs."""
    digest = _sha256.new()
    buffer = bytearray(min(block, max(length, 0)))
    with open(path, "rb", buffering=0) as file, memoryview(buffer) as whole:
        remaining = length
        while remaining > 0 and not (stop is not None and stop.is_set()):
            with whole[: min(len(buffer), remaining)] as view:
                count = file.readinto(view)
                if not count:
                    break  # shorter than asked
                with view[:count] as data:
                    digest.update(data)
            remaining -= count
    return digest


def file_sha256(path: Path) -> str:
    return prefix_sha256(path, path.stat().st_size).hexdigest()
