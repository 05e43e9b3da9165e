"""A wheel file already on disk, unpacked through the same parser and extractor, without a partial file:
local paths and ``file://`` URLs (``unpack_local``), and the wheel file an earlier download left in the
cache (``from_wheel_file``).

An OSError reading the wheel is told as the wheel's (``_errors.unreadable``); any other is the cache's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from wheelstream._cache import Cache, download_lock
from wheelstream._progress import Progress, ProgressCallback
from wheelstream._urls import cache_key, checked_wheel_filename
from wheelstream.errors import ArchiveError, DiskError, HashMismatch, UnpackedLimitExceeded, WheelstreamError
from wheelstream.fetch._errors import cache_write_error, unreadable
from wheelstream.fetch._options import DownloadOptions, DownloadResult, Job
from wheelstream.fetch._publish import cached, finished_tree, settle_tree
from wheelstream.transport import CancelSignal
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import read_file_range
from wheelstream.unpack._rehash import file_sha256
from wheelstream.unpack._tee import finish_deferred, parse_block
from wheelstream.zip import ZipStreamParser

__all__ = ["from_wheel_file", "unpack_local"]

_T = TypeVar("_T")
_DEFAULTS = DownloadOptions()


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")  # the caller's ``with`` closes it


def _reading(path: Path, filename: str, call: Callable[..., _T], *args: object) -> _T:
    """``call(*args)``, reading the local wheel: see ``_errors.unreadable``."""
    try:
        return call(*args)
    except OSError as exc:
        raise unreadable(path, filename, exc) from exc


def _read_wheel_range(path: Path, filename: str, start: int, end: int) -> Iterator[bytes]:
    """``read_file_range`` of the local wheel: see ``_errors.unreadable``."""
    try:
        yield from read_file_range(path, start, end)
    except OSError as exc:
        raise unreadable(path, filename, exc) from exc


def unpack_local(
    path: Path,
    *,
    cache: Cache,
    expected_sha256: str | None = None,
    options: DownloadOptions = _DEFAULTS,
    progress: ProgressCallback | None = None,
    keep_unpacked: bool = True,
    cancel: CancelSignal | None = None,
    filename: str | None = None,
) -> DownloadResult:
    """Local files and ``file://`` URLs go through the same parser and extractor, without a partial file.
    ``cancel`` set stops the unpack at its next block as Ctrl-C would (``KeyboardInterrupt``). ``filename``:
    the wheel's file name, where the path does not end in it (a lock's ``name``)."""
    options.check_keeping(keep_unpacked)
    name = path.name if filename is None else checked_wheel_filename(filename, source=str(path))
    return _unpack_file(path, name, cache, expected_sha256, options, progress, keep_unpacked, cancel)


def from_wheel_file(
    job: Job, sha256: str, progress: ProgressCallback | None, cancel: CancelSignal | None = None
) -> DownloadResult | None:
    """Unpack the wheel file an earlier download left in the cache: no network, like pip's wheel cache.

    The file was never fsynced (a crash may have spoilt it), so it must hash to ``sha256``; one that does not,
    or is not a valid archive, is deleted and the caller downloads again.
    """
    path = job.cache.wheel_file(sha256)
    if not path.is_file():
        return None
    if progress is not None:
        progress(Progress(job.wheel, 0, None, 0, None, message="unpacking the cached wheel"))
    try:
        result = _unpack_file(
            path, job.wheel, job.cache, sha256, job.options, progress, job.keep_unpacked, cancel
        )
    except UnpackedLimitExceeded:
        raise  # the caller's limit: the file is sound, and stays for a call with a larger one
    except (ArchiveError, HashMismatch):
        path.unlink(missing_ok=True)
        return None
    except DiskError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None  # ``cache clean`` took it between the look and the open (``unreadable`` says so): fetched
        raise
    return dataclasses.replace(result, bytes_reused=0, from_cache=True)


def _unpack_file(
    path: Path,
    filename: str,
    cache: Cache,
    expected_sha256: str | None,
    options: DownloadOptions,
    progress: ProgressCallback | None,
    keep_unpacked: bool,
    cancel: CancelSignal | None = None,
) -> DownloadResult:
    key = cache_key(path.resolve().as_uri())
    staging = cache.staging(key)
    with download_lock(cache, key, filename, cancelled=cancel.is_set if cancel is not None else None):
        known = cache.remembered_sha256(key)
        if (
            known is not None and _reading(path, filename, file_sha256, path) == known
        ):  # cheaper than inflating
            found = cached(cache, known, filename, progress, options)
            if found is not None:
                return found
        shutil.rmtree(staging, ignore_errors=True)
        if progress is not None:  # the wheel is under way: an interrupt names it, not "before any download"
            size = _reading(path, filename, os.path.getsize, path)
            progress(Progress(filename, 0, size, 0, None))
        extractor = Extractor(staging, writers=True, verify_only=options.verify_only)
        parser = ZipStreamParser(
            max_unpacked_size=options.max_unpacked_size,
            pack_up_to=extractor.pack_up_to,
            max_entries=options.max_entries,
        )
        hasher = hashlib.sha256()
        deferred: int | None = None
        try:
            with _reading(path, filename, _open_binary, path) as source:
                while chunk := _reading(path, filename, source.read, options.chunk_size):
                    if cancel is not None and cancel.is_set():
                        # Ctrl-C (set by the main thread): a wheel of 30,000 files was unpacked whole first
                        raise KeyboardInterrupt
                    hasher.update(chunk)
                    if deferred is None:
                        deferred = parse_block(parser, extractor, chunk)
            if deferred is None:
                parse_block(parser, extractor, b"")
            else:
                parser = finish_deferred(
                    functools.partial(_read_wheel_range, path, filename),
                    _reading(path, filename, os.path.getsize, path),
                    deferred,
                    parser,
                    extractor,
                )
            extractor.close()
            sha256 = hasher.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256.lower():
                raise HashMismatch(f"sha256 is {sha256}, expected {expected_sha256}")
        except WheelstreamError as exc:
            with contextlib.suppress(Exception):
                extractor.close()
            shutil.rmtree(staging, ignore_errors=True)
            exc.with_wheel(filename)
            raise
        except OSError as exc:  # reading the wheel is mapped by _reading: this is writing the cache
            with contextlib.suppress(Exception):
                extractor.close()
            shutil.rmtree(staging, ignore_errors=True)  # a local file is unpacked again whole: keep nothing
            raise cache_write_error(cache, filename, exc) from exc
        except BaseException:
            with contextlib.suppress(Exception):
                extractor.abandon()  # Ctrl-C: no sink thread or descriptor may outlive the call, nor wait
            shutil.rmtree(staging, ignore_errors=True)  # for files no rerun keeps (it unpacks the file whole)
            raise
        fresh = finished_tree(filename, staging, parser, extractor, keep_unpacked)
        staged, claim = settle_tree(cache, fresh, sha256, keep_unpacked)
        try:
            if keep_unpacked:
                cache.remember(key, path.resolve().as_uri(), sha256, filename)
            size = path.stat().st_size
            if progress is not None:
                progress(Progress(filename, size, size, len(staged.files), None, finished=True))
        except BaseException:
            if claim is not None:
                claim.release()  # nobody else will: the result carrying it is never returned
            raise
        return DownloadResult(staged, sha256, 0, size, None, 0, False, extractor.written, claim)
