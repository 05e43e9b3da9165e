"""Hash pins and finished files hashed by several algorithms in one read. A leaf: the lock, the sources and the
command line all use it.

A pin is one string: a sha256 is its bare hex — the one hash checked while the wheel streams, and what the
cache files wheels under — and any other is ``ALGORITHM:hex`` (``sha512:…``), checked on the finished file.
So a set of allowed pins intersects as pip's ``Hashes`` do (per algorithm, per value), and the sha256 among
them stay plain hex for every rule that is about sha256 alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from pathlib import Path

__all__ = [
    "HEX_DIGITS",
    "STRONG_HASHES",
    "algorithms_of",
    "disjoint_algorithms",
    "file_hexdigests",
    "matching",
    "normal_pin",
    "other_algorithms",
    "pin",
    "split_pin",
    "verified_digests",
]

# The hashes a link's fragment or an index may name (pip's), with the hex digits of each digest.
HEX_DIGITS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
# What ``--hash`` takes, as pip (``STRONG_HASHES``): a weak hash pins nothing an attacker cannot forge.
STRONG_HASHES = ("sha256", "sha384", "sha512")
_PIN = re.compile(r"([a-z0-9]+)[:=]([0-9a-f]+)")
_HEX = re.compile(r"[0-9a-f]+")


def pin(algorithm: str, hexdigest: str) -> str:
    """The pin of one digest: a sha256's bare hex, ``ALGORITHM:hex`` otherwise (both lower-case)."""
    algorithm, hexdigest = algorithm.lower(), hexdigest.lower()
    return hexdigest if algorithm == "sha256" else f"{algorithm}:{hexdigest}"


def split_pin(allowed: str) -> tuple[str, str]:
    """``(algorithm, hex)`` of a pin."""
    algorithm, sep, hexdigest = allowed.partition(":")
    return (algorithm, hexdigest) if sep else ("sha256", allowed)


def normal_pin(
    text: str, algorithms: Collection[str] = STRONG_HASHES, *, bare_sha256: bool = False
) -> str | None:
    """``ALGORITHM:HEX`` (or ``ALGORITHM=HEX``, either case) as a pin, when ALGORITHM is one of ``algorithms``
    and HEX has that digest's length; with ``bare_sha256``, 64 hex digits alone are a sha256 (the library's
    ``hashes``). None for anything else: a pin no file can match is a mistake to say before downloading."""
    text = text.strip().lower()
    if bare_sha256 and len(text) == HEX_DIGITS["sha256"] and _HEX.fullmatch(text):
        return text
    match = _PIN.fullmatch(text)
    if match is None or match[1] not in algorithms or len(match[2]) != HEX_DIGITS.get(match[1]):
        return None
    return pin(match[1], match[2])


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


def verified_digests(path: Path, sha256: str, expected: Mapping[str, str]) -> dict[str, str] | None:
    """The hex digests of ``path`` by sha256 and by the algorithms ``expected`` names (values as in
    ``file_hexdigests``), read in one pass, sha256 first — or None when the file is not the one whose ``sha256``
    was verified as it was unpacked: gone, or changed since (a local source rewritten meanwhile, a cache's copy
    spoilt). So what the digests vouch for is exactly the bytes installed, however long after the unpack the
    file is read. OSError for a file that cannot be read."""
    try:
        digests = file_hexdigests(path, {"sha256": "", **dict(sorted(expected.items()))})
    except FileNotFoundError:
        return None
    return digests if digests["sha256"] == sha256 else None


def other_algorithms(allowed: Collection[str]) -> set[str]:
    """The algorithms of the pins in ``allowed`` that are not sha256: what must be read off the finished file."""
    return algorithms_of(allowed) - {"sha256"}


def algorithms_of(allowed: Collection[str]) -> set[str]:
    """The algorithms of the pins in ``allowed``."""
    return {split_pin(each)[0] for each in allowed}


def disjoint_algorithms(first: Collection[str], second: Collection[str]) -> str | None:
    """Why two sets of pins for one file share none, when it is that they pin it by different algorithms (one
    file may match both, but neither set can be narrowed by the other): said so, rather than "none in common"."""
    one, other = algorithms_of(first), algorithms_of(second)
    if one.isdisjoint(other):
        both = f"{', '.join(sorted(one))} and {', '.join(sorted(other))}"
        return f"they pin it by different algorithms ({both}): give the same algorithm on each"
    return None


def matching(allowed: Collection[str], digests: Mapping[str, str]) -> bool:
    """pip's rule: a file is one of the ``allowed`` pins when any pin of any algorithm matches its digest."""
    return any(digests.get(algorithm) == hexdigest for algorithm, hexdigest in map(split_pin, allowed))
