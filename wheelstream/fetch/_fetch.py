"""``fetch_wheel``: one wheel URL into the cache, downloaded and unpacked at once, resuming what is left.

Under the URL's file lock: the cache first (the unpacked tree, else the wheel file, when the sha256 is known:
pinned by a hash, or remembered and still served, ``_revalidate``), then one download: the stream
``_resume.restore`` rebuilds, the attempts (``_attempts.py``), the last checks and the hand-over to the cache
(``_publish.py``). What a failure leaves behind is decided here:

=============================================  ==============================================================
failure                                        what is kept
=============================================  ==============================================================
Ctrl-C, a cancel                               a checkpoint is written; ``Interrupted`` says where to resume
the network gave up, an HTTP status            a checkpoint is written; the partial is resumed next time
bad bytes (archive, hash) after a resume       one restart from zero: disks and crashes can spoil kept bytes
bad bytes otherwise, the file gone (404/410)   partial, journal and staging are discarded
an OSError (the local disk)                    no new checkpoint; the last one stays (``_errors.disk_error``)
an error from the caller's progress callback   it is the caller's own: raised as it is
=============================================  ==============================================================
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import httpx

from wheelstream._cache import Cache, UrlRecord, download_lock
from wheelstream._progress import Progress, ProgressCallback
from wheelstream.errors import (
    ArchiveError,
    HashMismatch,
    NetworkError,
    ResourceGone,
    UnpackedLimitExceeded,
    WheelstreamError,
)
from wheelstream.fetch._attempts import Attempts
from wheelstream.fetch._errors import disk_error, interrupted, unfollowable
from wheelstream.fetch._local import from_wheel_file
from wheelstream.fetch._options import DownloadOptions, DownloadResult, Job
from wheelstream.fetch._publish import cached, check_complete, finished_tree, hand_over, names_this_wheel
from wheelstream.fetch._reporting import Reporter
from wheelstream.fetch._resume import restore
from wheelstream.fetch._revalidate import Verdict, conditional_headers, judge
from wheelstream.transport import CancelSignal, SocketCancel
from wheelstream.unpack._partial import Journal

__all__ = ["fetch_wheel"]

_DEFAULTS = DownloadOptions()


def fetch_wheel(
    url: str,
    *,
    cache: Cache,
    client: httpx.Client,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    options: DownloadOptions = _DEFAULTS,
    progress: ProgressCallback | None = None,
    cancel: CancelSignal | None = None,
    keep_unpacked: bool = True,
    needs_file: bool = False,
    filename: str | None = None,
) -> DownloadResult:
    """Download and unpack one wheel URL into the cache, resuming whatever an earlier attempt left.

    Holds the per-URL file lock for the whole download: a second process asking for the same URL waits,
    then finds the wheel in the cache and fetches nothing. ``keep_unpacked=False`` (move installs) returns a
    tree claimed for this process instead of publishing it in the cache; release ``result.claim`` after use.
    ``expected_size``: the file's length in bytes, when known beforehand (a lock's ``size``): a server that
    announces another is refused before its body is read. ``needs_file``: the caller reads the wheel file
    afterwards (``cache.wheel_file(result.sha256)``): a cached unpacked tree whose file the cache does not hold
    is downloaded again (the URL fragment's other hashes, ``#sha512=``, ask for it too: they are checked here).
    ``filename``: the wheel's file name, where the URL does not end in it (a download endpoint a lock names
    with PEP 751's ``name``); else the URL's last segment is, and must be a wheel's.
    """
    options.check_keeping(keep_unpacked)
    job = Job.of(url, cache, options, expected_sha256, keep_unpacked, expected_size, needs_file, filename)
    waiting = None
    if progress is not None:
        told = Progress(
            job.wheel, 0, None, 0, None, message="waiting for another wheelstream download or install of it"
        )
        waiting = functools.partial(progress, told)
    with download_lock(cache, job.key, job.wheel, waiting, cancel.is_set if cancel is not None else None):
        download = _Download(job, client, progress, cancel)
        try:
            result = _from_cache(download) or download.run()
            if job.other_hashes:
                _check_other_hashes(job, result)
            return result
        except WheelstreamError as exc:
            exc.with_wheel(job.wheel)
            raise  # as it was raised: its cause (a DiskError's OSError) stays


def _check_other_hashes(job: Job, result: DownloadResult) -> None:
    """The other hashes the URL's fragment names (``#sha512=``, ``#md5=``: pip and uv check them), read off the
    finished wheel file with its sha256, so that they vouch for the bytes unpacked (``verified_digests``). A
    mismatch refuses the wheel and the URL's record forgets it; a cached copy gone or spoilt is forgotten
    (``Cache.unverified_copy``), so that the next call downloads it afresh. The claimed tree of a refused wheel
    is released."""
    try:
        _verify_other_hashes(job, result.sha256)
    except BaseException:
        if result.claim is not None:
            result.claim.release()
        raise


def _verify_other_hashes(job: Job, sha256: str) -> None:
    wanted = dict(job.other_hashes)
    digests = job.cache.unpacked_digests(job.key, sha256, job.cache.wheel_file(sha256), job.wheel, wanted)
    for name, expected in wanted.items():
        if digests[name] != expected:
            job.cache.forget_url(job.key, sha256)
            raise HashMismatch(f"{name} is {digests[name]}, the URL names {expected}; refused")


def _from_cache(download: _Download) -> DownloadResult | None:
    """The cached wheel of a URL pinned by a hash; of another URL, while the server still serves that file."""
    job, progress = download.job, download.reporter.callback
    if job.expected:
        sha = job.expected
    else:
        record = job.cache.remembered(job.key)
        if record is None or newer_partial(job, record):
            return None
        if not download.still_current(record, job.cache.wheel_file(record.sha256)):
            return None
        sha = record.sha256
    found = cached(job.cache, sha, job.wheel, progress, job.options) if job.takes_tree(sha) else None
    found = found or from_wheel_file(job, sha, progress, download.cancel.cancel)
    if (
        found is not None
        and job.expected
        and not names_this_wheel(found.staged, job.wheel, job.cache.wheel_file(sha))
    ):
        # The pin named a file the cache holds, but not this wheel: another project's, or another platform's,
        # pinned to this URL by mistake. Served, it went out under this wheel's name (rc 0); fetched, the
        # pin fails on the bytes, as it does with nothing cached.
        if found.claim is not None:
            found.claim.release()
        return None
    if found is not None:
        job.cache.reclaim(job.key)  # a download killed after its wheel file was in place left these
    return found


def newer_partial(job: Job, record: UrlRecord) -> bool:
    """Is a download of another file at this URL half done — begun after the server said the cached one changed,
    then interrupted? Then that file is the one wanted: resumed, never traded for the cached copy (even when
    the server cannot answer now and the copy seems the best there is), and its partial is kept."""
    journal = Journal.load_header(job.cache.journal(job.key))
    if journal is None or (journal.etag is None and journal.last_modified is None):
        return False
    return (journal.etag, journal.last_modified) != (record.etag, record.last_modified)


class _Download:
    """One download run: its collaborators, and what each way it can end leaves (the module docstring)."""

    def __init__(
        self, job: Job, client: httpx.Client, progress: ProgressCallback | None, cancel: CancelSignal | None
    ) -> None:
        self.job = job
        self.client = client
        self.cancel = SocketCancel(
            cancel
        )  # set by another thread (Ctrl-C in the main thread): stop like Ctrl-C
        self.reporter = Reporter(job.wheel, progress)
        self.completed = False  # the unpacked wheel is published: an interrupt has nothing to save

    def still_current(self, record: UrlRecord, kept: Path) -> bool:
        """Does the server still serve the file ``record`` names (kept at ``kept``, if it is there)? One
        conditional request, or none when the record has no validator (``_revalidate``); a Ctrl-C or cancel
        meanwhile raises ``KeyboardInterrupt``, with nothing to save."""
        with self.cancel.watching():
            verdict = self._ask(conditional_headers(record), record, kept)
        if verdict is Verdict.UNREACHABLE:
            self.reporter.note("the server could not say whether the file changed: using the cached copy")
        elif record.etag is None and record.last_modified is None:
            self.reporter.note(
                "the cached copy has no ETag or Last-Modified to check it by: downloading it again"
            )
        elif verdict is Verdict.CHANGED:
            self.reporter.note("the file at this URL changed since it was cached: downloading it again")
        return verdict not in (Verdict.CHANGED, Verdict.REFUSED)  # refused: the download says why

    def _ask(self, headers: dict[bytes, bytes], record: UrlRecord, kept: Path) -> Verdict:
        try:
            size: int | None = kept.stat().st_size
        except OSError:
            size = None  # only the unpacked tree is kept: the ETag or the date alone must say
        try:
            with (
                self.cancel.request() as extensions,
                self.client.stream(
                    "GET",
                    self.job.url,
                    headers=headers,
                    timeout=self.job.options.timeout,
                    extensions=extensions,
                    follow_redirects=True,  # also with a caller's client, which follows none by default
                ) as response,
            ):
                self.cancel.response_arrived(response)
                return judge(response.status_code, response.headers, record, size)
        except httpx.HTTPError as exc:
            self.cancel.raise_if_cancelled()
            if isinstance(exc, httpx.TransportError) and unfollowable(exc) is None:
                return Verdict.UNREACHABLE
            return Verdict.CHANGED  # a redirect no request can follow: the download says so, as it would

    def run(self) -> DownloadResult:
        with self.cancel.watching():
            attempts: Attempts | None = None
            try:
                attempts = Attempts(self.job, self.client, self.cancel, self.reporter, restore(self.job))
                # Named before the first request goes out, with what the disk holds: a UI told only when the
                # answer came knew nothing of a download a silent server held, and a Ctrl-C then named no wheel.
                self.reporter.report(attempts.stream, None)
                try:
                    return self._run(attempts)
                finally:
                    # Every thread of the stream stopped (a checkpoint still syncing included) and every
                    # descriptor closed, whatever happened.
                    try:
                        attempts.stop_audit()
                    finally:  # a second Ctrl-C during the audit's join must not leave the stream running
                        attempts.stream.abandon()
            except OSError as exc:  # the network's errors are httpx's: this is the local disk ...
                if exc is self.reporter.callback_error:
                    raise  # ... or the caller's progress callback, whose error is the caller's own
                position = attempts.stream.position if attempts is not None else None
                raise disk_error(self.job.cache, self.job.key, self.job.wheel, exc, position) from exc

    def _run(self, attempts: Attempts) -> DownloadResult:
        try:
            try:
                attempts.run()
                return self._complete(attempts)
            except UnpackedLimitExceeded:
                raise  # the caller's limit, not bad bytes: nothing to fetch again
            except (ArchiveError, HashMismatch) as exc:
                if not attempts.reused and attempts.resumed_at is None:
                    raise  # one response, from its first byte: the file itself is bad
                # The file was joined from more than one response — an earlier process's partial (disks and
                # crashes can spoil bytes the journal vouched for), or a resume in this run from a server that
                # gives nothing to tell a changed file by (no validators) or answers a Range wrongly. Give the
                # network one clean chance before blaming the file.
                attempts.restart(f"verification failed on resumed bytes ({exc})")
                attempts.run()
                return self._complete(attempts)
        except KeyboardInterrupt:
            if self.completed:
                raise  # the wheel is already in the cache: nothing to checkpoint
            stream = attempts.stream
            stream.checkpoint()
            with contextlib.suppress(
                Exception, KeyboardInterrupt
            ):  # (a callback may raise the Ctrl-C itself)
                self.reporter.report(
                    stream, attempts.resumed_at
                )  # the UI's last word: where the next run resumes
            held = sum(end - start for start, end in stream.pieces()) if stream.pieces else 0
            raise interrupted(stream.position, stream.journal.length, held) from None
        except UnpackedLimitExceeded:
            # A limit the caller chose: the bytes are sound, and a call with a larger one resumes them. Left as a
            # kill -9 leaves them: the last checkpoint and what the trail proves.
            attempts.stream.abandon()
            raise
        except (ArchiveError, HashMismatch, ResourceGone):
            attempts.stream.abandon()
            with contextlib.suppress(OSError):  # the bad bytes are the error to report, not a failed clean-up
                self.job.cache.discard(
                    self.job.key
                )  # the bytes are bad, or the server no longer has this file
            raise
        except NetworkError:
            attempts.stream.checkpoint()
            raise

    def _complete(self, attempts: Attempts) -> DownloadResult:
        job, stream = self.job, attempts.stream
        sha256 = check_complete(job, stream, audit=attempts.audit)
        staged = finished_tree(
            job.wheel, job.cache.staging(job.key), stream.parser, stream.extractor, job.keep_unpacked
        )
        self.completed = True  # from here an interrupt writes no checkpoint: skipping one is always safe
        final, claim = hand_over(job, stream, staged, sha256)
        try:
            self.reporter.report(stream, attempts.resumed_at, finished=True)
        except BaseException:
            if claim is not None:
                claim.release()  # nobody else will: the result carrying it is never returned
            raise
        unpacked = attempts.unpacked_before + stream.extractor.written
        return DownloadResult(
            final,
            sha256,
            attempts.fetched,
            attempts.reused,
            attempts.resumed_at,
            attempts.restarts,
            False,
            unpacked,
            claim,
        )
