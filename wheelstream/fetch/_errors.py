"""How a fetch that stopped is told: the ``wheelstream.errors`` it raises and what each says is kept.

The rule behind every message: say what the user can do next. A message says whether the partial download
is kept (and that the same command resumes it), and a disk error names the file or the cache it could not
write, or the local wheel it could not read, never one for the other.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import httpx

from wheelstream._cache import Cache
from wheelstream._progress import human_size
from wheelstream.errors import DiskError, HTTPStatusError, Interrupted, RetriesExhausted
from wheelstream.transport import tls_failure
from wheelstream.unpack._partial import Journal
from wheelstream.unpack._trail import reach, trail_path

__all__ = [
    "cache_write_error",
    "disk_error",
    "gave_up",
    "interrupted",
    "retrying",
    "unfollowable",
    "unreadable",
]


def interrupted(position: int, length: int | None, held: int = 0) -> Interrupted:
    """``held``: bytes past ``position`` other connections wrote (a segmented download keeps them too)."""
    if held:
        return Interrupted(
            f"interrupted with {human_size(position + held)} of {human_size(length)} on disk — run the same command "
            "again to fetch the rest"
        )
    return Interrupted(
        f"interrupted at {human_size(position)} of {human_size(length)} — run the same command again to resume"
    )


def unfollowable(exc: httpx.HTTPError) -> HTTPStatusError | None:
    """A failure no retry can mend — a redirect loop, a redirect to a URL that is not HTTP(S) (``file://``), a
    certificate that does not verify — as the error that ends the download at once (exit 3, partial kept);
    None for anything else. A certificate was retried like a dropped connection: 13 s of back-off, then "run
    the same command again once the server answers", which no server would ever do."""
    if isinstance(exc, httpx.TooManyRedirects):
        return HTTPStatusError(f"too many redirects: {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return HTTPStatusError(f"redirected to a URL that is not HTTP(S): {exc}")
    said = tls_failure(exc)
    return HTTPStatusError(said) if said is not None else None


def retrying(reason: str, attempt: int, retries: int, wait: float) -> str:
    """The note of a retry after an attempt without progress (one connection or one of several)."""
    return f"{reason}; retry {attempt} of {retries} in {wait:.1f} s"


def gave_up(without_progress: int, reason: str, position: int) -> RetriesExhausted:
    kept = (
        f"partial kept at {human_size(position)} — run the same command again to resume"
        if position
        else "nothing was fetched — run the same command again once the server answers"
    )
    attempts = f"{without_progress} attempt{'s' if without_progress != 1 else ''}"
    return RetriesExhausted(f"gave up after {attempts} without progress ({reason}); {kept}")


def _missing(path: Path) -> bool:
    """Whether ``path`` is known not to exist (an error looking means: cannot tell)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


_WORTH_KEEPING = 1 << 20  # one block: less is fetched again in a moment, and a full disk needs the space


def _trail_end(cache: Cache, key: str) -> int:
    """The furthest the trail reaches within the partial (its lines are the tee's own, written this run)."""
    try:
        size = cache.partial(key).stat().st_size
    except OSError:
        return 0
    return reach(trail_path(cache.journal(key)), size)


def disk_error(cache: Cache, key: str, wheel: str, exc: OSError, position: int | None) -> DiskError:
    """The partial, the journal or a staged file could not be written (or read back). No new checkpoint is
    tried (the pipeline is broken somewhere: a writer's file, or a block the partial holds only part
    of); the last one on disk is consistent by construction and is what the next run resumes from.
    What the trail proves past it counts too. With less than a block to resume from, what was written is
    removed, since on a full disk it is space nothing can use. A journal that exists but cannot be read now
    is kept: it may be fine later. Called once the stream is abandoned: no worker writes on."""
    journal_path = cache.journal(key)
    journal = Journal.load_header(journal_path)
    resumable = 0 if journal is None else max(journal.durable, _trail_end(cache, key))
    if resumable >= _WORTH_KEEPING:
        kept = f"{human_size(resumable)} kept — run the same command again to resume once that is fixed"
    elif journal is not None or _missing(journal_path):
        with contextlib.suppress(OSError):
            cache.discard(key)
        kept = "nothing kept"
    else:
        kept = "the partial download is kept — run the same command again once that is fixed"
    # A rename's or a link's error names its destination second: that is where it could not write.
    culprit = exc.filename2 or exc.filename
    where = f" {culprit}" if culprit else f" in {cache.root}"
    return DiskError(f"cannot write{where}: {exc.strerror or exc}; {kept}", wheel=wheel, offset=position)


def unreadable(path: Path, filename: str, exc: OSError) -> DiskError:
    """An OSError reading the local wheel ``path``, told as that (not as the cache's)."""
    return DiskError(f"cannot read {path}: {exc.strerror or exc}", wheel=filename)


def cache_write_error(cache: Cache, filename: str, exc: OSError) -> DiskError:
    """An OSError unpacking a local wheel that is not reading it: writing the cache."""
    return DiskError(f"cannot write in {cache.root}: {exc.strerror or exc}", wheel=filename)
