"""What a fetch is asked to do (``DownloadOptions``, ``Job``) and what it reports (``DownloadResult``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

from wheelstream._cache import Cache, Claim
from wheelstream._staged import StagedWheel
from wheelstream._urls import (
    cache_key,
    checked_wheel_filename,
    redact,
    split_hash_fragment,
    wheel_filename_from_url,
)
from wheelstream.errors import UsageError
from wheelstream.zip import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_SIZE

__all__ = ["DownloadOptions", "DownloadResult", "Job"]

_MB = 1024 * 1024
MAX_RETRY_AFTER = 600.0  # honour Retry-After (DESIGN §3), but never sleep longer than this


@dataclass(frozen=True)
class DownloadOptions:
    timeout: float = 30.0
    retries: int = 5  # attempts in a row without progress before giving up
    chunk_size: int = 256 * 1024
    checkpoint_bytes: int = (
        32 * _MB
    )  # each checkpoint syncs the disk (docs/performance.md, D-checkpoint-interval)
    checkpoint_seconds: float = 1.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_unpacked_size: int = DEFAULT_MAX_UNPACKED_SIZE
    max_entries: int = DEFAULT_MAX_ENTRIES  # files and directories; memory grows with them
    # Connections for one wheel: None = automatic (``_attempts``: more only while one connection starves the
    # unpacker, and only for big files on servers with usable ranges), 1 = never more, N = up to N at once.
    connections: int | None = None
    piece_bytes: int = 4 * _MB  # no piece is split into halves smaller than this (``_plan``)
    # ``download``: every entry inflated and checked, no file written (only the wheel file is kept); an
    # install's tree is written. (``unpack._extract.Extractor.verify_only``, ``Journal.unwritten``)
    verify_only: bool = False

    def check_keeping(self, keep_unpacked: bool) -> None:
        """A tree that is kept must be written: ``verify_only`` goes with ``keep_unpacked=False`` (a download)."""
        if self.verify_only and keep_unpacked:
            raise UsageError(
                "verify_only writes no file, so there is no tree to keep: pass keep_unpacked=False"
            )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (from 1): exponential, jittered between half the ceiling and
        all of it; none before 1."""
        if attempt <= 0:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def retry_wait(self, attempt: int, asked: float | None) -> float:
        """Seconds to wait before retry ``attempt`` after an attempt without progress: what the server asked
        for (``Retry-After``, DESIGN §3), else the backoff — never longer than ``MAX_RETRY_AFTER``."""
        return min(asked if asked is not None else self.backoff(attempt), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class DownloadResult:
    staged: StagedWheel
    sha256: str
    bytes_fetched: int  # body bytes received over the network in this call
    bytes_reused: int  # bytes taken from an earlier partial download instead of the network
    resumed_at: int | None  # offset the first request of this call resumed at, if it resumed
    restarts: int  # times the download had to start over (file changed, broken Range support)
    from_cache: bool  # the wheel (unpacked or as a file) was already in the cache: no network at all
    files_unpacked: int = 0  # files inflated and written by this call (a resume skips finished ones)
    claim: Claim | None = None  # ``staged`` is a tree this process owns (``keep_unpacked=False``): release it


class Job(NamedTuple):
    """One wheel URL to fetch: its names, where it goes, and the options it goes with."""

    url: str  # without its ``#sha256=`` fragment; may carry credentials: never persisted or shown
    redacted: str  # what the journal, the cache and messages see
    wheel: str  # the file name, checked: the URL's, or the caller's (``filename``)
    key: str  # the cache key of the URL
    expected: str | None  # the sha256 asked for (argument, else the URL's fragment), lower case
    cache: Cache
    options: DownloadOptions
    keep_unpacked: bool  # publish the tree in the cache (copy/hardlink), else claim it (move installs)
    expected_size: int | None = None  # the file's length, when known beforehand (a lock's ``size``)
    # (algorithm, hex) of the other hashes the URL's fragment names (``#sha512=``): checked on the finished file
    other_hashes: tuple[tuple[str, str], ...] = ()
    # the caller reads the wheel file afterwards (other hashes, ``download -d``): a cached tree without its file
    # (an install of a local wheel publishes none) is not enough
    needs_file: bool = False

    @classmethod
    def of(
        cls,
        url: str,
        cache: Cache,
        options: DownloadOptions,
        expected_sha256: str | None,
        keep_unpacked: bool,
        expected_size: int | None = None,
        needs_file: bool = False,
        filename: str | None = None,
    ) -> Job:
        bare, fragment_hash, others = split_hash_fragment(url)
        redacted = redact(bare)
        if filename is None:
            wheel = wheel_filename_from_url(bare)
        else:  # named by the caller (a lock's ``name``): a download endpoint's URL need not end in it
            wheel = checked_wheel_filename(filename, source=redacted, label="the wheel's file name")
        return cls(
            url=bare,
            redacted=redacted,
            wheel=wheel,
            key=cache_key(bare),
            expected=(expected_sha256 or fragment_hash or "").lower() or None,
            cache=cache,
            options=options,
            keep_unpacked=keep_unpacked,
            expected_size=expected_size,
            other_hashes=others,
            needs_file=needs_file or bool(others),
        )

    def takes_tree(self, sha256: str) -> bool:
        """Whether the cache's unpacked tree of ``sha256`` will do: not where the caller reads the wheel file
        afterwards and the cache holds none (``needs_file``)."""
        return not self.needs_file or self.cache.wheel_file(sha256).is_file()
