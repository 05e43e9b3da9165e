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
    "file_hexdigests",
    "file_matches",
    "normal_pin",
    "pin",
    "shown_pin",
    "split_pin",
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


def shown_pin(allowed: str) -> str:
    """A pin as the command line writes it: ``sha256:HEX``."""
    return "{}:{}".format(*split_pin(allowed))


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


def file_matches(allowed: Collection[str], sha256: str, path: Path) -> dict[str, str] | None:
    """Whether the file at ``path``, whose sha256 is known, is one of the ``allowed`` pins — pip's rule: any
    pin of any algorithm matching is enough. None when it is; else the digests that were compared, by
    algorithm (sha256 first), for the message. The file is read only when no sha256 pin matches and another
    algorithm is pinned (OSError when it cannot be)."""
    if sha256 in allowed:
        return None
    wanted: dict[str, set[str]] = {}
    for each in allowed:
        algorithm, hexdigest = split_pin(each)
        if algorithm != "sha256":
            wanted.setdefault(algorithm, set()).add(hexdigest)
    actual = {"sha256": sha256}
    if wanted:
        actual |= file_hexdigests(path, dict.fromkeys(wanted, ""))
        if any(actual[algorithm] in values for algorithm, values in wanted.items()):
            return None
    return actual
