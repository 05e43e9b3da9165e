"""A finished file hashed by several algorithms in one read: what a lock (PEP 751's other hashes) or an index
(md5, sha512) pins besides the sha256 checked while streaming. A leaf: the lock and the sources both use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

__all__ = ["file_hexdigests"]


def file_hexdigests(path: Path, expected: Mapping[str, str]) -> dict[str, str]:
    """The hex digest of ``path`` by each algorithm ``expected`` names (any ``hashlib`` knows; ValueError for one
    it does not), in one read: what a lock or an index pins besides the sha256 checked while streaming.
    ``shake_*`` have no fixed length: the expected value's says how many bytes to give."""
    digests = {name: hashlib.new(name) for name in expected}
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            for digest in digests.values():
                digest.update(block)
    return {
        name: digest.hexdigest() if digest.digest_size else digest.hexdigest(len(expected[name]) // 2)  # type: ignore[call-arg]
        for name, digest in digests.items()
    }
