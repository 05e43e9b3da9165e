"""The end of a fetch: the last checks, then the wheel file and the unpacked tree handed to the cache.

When all bytes are in, the wheel file moves to ``wheels/<sha256>.whl`` (or the caller's directory) and the
unpacked tree is either published to ``wheels/<sha256>/`` (copy/hardlink installs; synced first, since later
installs trust its manifest) or claimed by this process for a move install (``keep_unpacked=False``; not
synced: like pip's and uv's installs, the target's files are left to the kernel's writeback).

Renames only (a copy renamed into place where a rename cannot cross file systems: ``_move_wheel``), in an
order where a kill between any two of them costs no download: the URL's sha256 is
remembered first (it names a file that is not there yet, which ``Cache.remembered_sha256`` ignores: the next
run resumes the journal, replays the whole partial and fetches nothing), then the wheel file — never fsynced,
every use re-checks its sha256 — moves to ``wheels/<sha256>.whl`` (from here the next run unpacks that file
and reclaims what the journal left: ``Cache.reclaim``), then the journal goes, and only then is the tree
published or claimed (a staging tree without a journal is reclaimed by the next command: ``Cache.at``).
``cached`` is the other way round: a published tree found before anything is fetched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import stat
import zipfile
from pathlib import Path

from packaging.tags import Tag, parse_tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from wheelstream._cache import Cache, Claim, file_lock
from wheelstream._killpoints import reached
from wheelstream._progress import Progress, ProgressCallback
from wheelstream._staged import StagedWheel, empty_directory_entries, tree_intact
from wheelstream.errors import DiskError, HashMismatch, TruncatedArchive, UnpackedLimitExceeded
from wheelstream.fetch._options import DownloadOptions, DownloadResult, Job
from wheelstream.fetch._resume import PrefixAudit
from wheelstream.unpack._extract import Extractor
from wheelstream.unpack._partial import Journal
from wheelstream.unpack._tee import Tee
from wheelstream.zip import ZipStreamParser

__all__ = ["cached", "check_complete", "finished_tree", "hand_over", "settle_tree"]


def check_complete(job: Job, stream: Tee, *, audit: PrefixAudit | None) -> str:
    """End the stream and check it is the whole wheel asked for; its sha256."""
    stream.end_of_input()
    if not stream.parser.done:
        raise TruncatedArchive("archive ended before its end of central directory", offset=stream.position)
    sha256 = stream.hasher.hexdigest()
    if audit is not None and not audit.intact():
        # The hash covers the bytes as they arrived; the kept ones were not read again on resume (their state
        # came from the journal) until the audit read them beside the download. A disk that spoilt them costs a
        # fresh download (the caller restarts on this error), before anything is published or installed.
        raise HashMismatch("the kept part of the download changed on disk since it was hashed")
    if job.expected is not None and sha256 != job.expected:
        raise HashMismatch(f"sha256 is {sha256}, expected {job.expected}; the download was discarded")
    return sha256


def hand_over(job: Job, stream: Tee, staged: StagedWheel, sha256: str) -> tuple[StagedWheel, Claim | None]:
    """Close the partial and rename everything into place (the order in the module docstring)."""
    stream.partial.close()
    keep = job.cache.wheel_file(sha256)
    keep.parent.mkdir(parents=True, exist_ok=True)
    journal = stream.journal  # the validators of the response the file came in: a later install revalidates
    job.cache.remember(
        job.key, job.redacted, sha256, job.wheel, etag=journal.etag, last_modified=journal.last_modified
    )
    reached("publish.remembered")
    _move_wheel(job.cache.partial(job.key), keep)
    reached("publish.wheel-moved")
    Journal.remove(job.cache.journal(job.key))  # the header, its entries log and the trail
    reached("publish.journal-removed")
    settled = settle_tree(job.cache, staged, sha256, job.keep_unpacked)
    reached("publish.settled")
    return settled


def _move_wheel(partial: Path, keep: Path) -> None:
    """The finished wheel file to where it is kept: a rename, or — where a rename cannot go (a cache whose
    ``wheels/`` is on another file system) — a copy beside it renamed into place,
    so that name never holds half a file; the partial goes only after that rename (a kill before it costs no
    download)."""
    try:
        os.replace(partial, keep)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Named after the download (its partial's key): the next run of the same URL, under the same lock, writes over
    # what a kill in the middle of this copy left.
    copy = keep.with_name(f".{keep.name}.{partial.name.partition('.')[0][:16]}.part")
    try:
        shutil.copyfile(partial, copy)
        os.chmod(copy, stat.S_IMODE(os.stat(partial).st_mode))  # what a rename would have kept
        os.replace(copy, keep)
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    partial.unlink()


def _publish(cache: Cache, staged: StagedWheel, sha256: str) -> StagedWheel:
    """Move a finished staging tree to ``wheels/<sha256>/`` (atomic rename; first writer wins), then write its
    manifest beside it. A tree without a manifest (a kill between the two, or an older cache) is not used by
    ``cached``; the next publish of the same bytes finds it and gives it the manifest if it holds every file
    of its size (the same sha256 is the same files, and the tree was synced before it was renamed), else
    replaces it: an older ``cache clean`` killed halfway through its ``rmtree`` left such trees, and every
    later copy install failed on a file that was not there."""
    target = cache.wheel_dir(sha256)
    manifest = cache.wheel_manifest(sha256)
    try:
        os.replace(staged.root, target)
    except OSError:
        if not target.is_dir():
            raise
        # The name is taken. Judged under a lock of this wheel's, so that of two processes publishing the same
        # bytes over part of a tree, the second never takes the first's fresh tree for that part (a rename
        # cannot replace a directory that has files: only a drop frees the name).
        with file_lock(target.with_name(f".{sha256}.publish.lock")):
            for _attempt in range(3):
                if manifest.is_file():  # another process published the same bytes
                    shutil.rmtree(staged.root, ignore_errors=True)
                    return StagedWheel.read_manifest(target, manifest)
                if _holds(target, staged):
                    shutil.rmtree(staged.root, ignore_errors=True)
                    break
                cache.drop_tree(sha256)  # part of a tree: ours takes its name
                try:
                    os.replace(staged.root, target)
                    break
                except OSError:
                    if not target.is_dir():
                        raise
            else:  # part of a tree again and again: something else keeps writing there
                raise DiskError(
                    f"cannot publish the unpacked wheel as {target}: a partial tree keeps appearing"
                )
    published = dataclasses.replace(staged, root=target)
    published.write_manifest(manifest)
    return published


def _holds(tree: Path, staged: StagedWheel) -> bool:
    """Whether ``tree`` has every file ``staged`` has, each a regular file of its size."""
    base = os.fspath(tree)
    try:
        for name, file in staged.files.items():
            info = os.lstat(f"{base}/{name}")
            if not stat.S_ISREG(info.st_mode) or info.st_size != file.size:
                return False
    except OSError:
        return False
    return True


def finished_tree(
    filename: str, root: Path, parser: ZipStreamParser, extractor: Extractor, keep_unpacked: bool
) -> StagedWheel:
    """The unpacked wheel once every entry is in (the extractor closed, so ``files`` has every digest).

    Its ``files`` is the extractor's own dict, not a copy, and only the parser's names are asked for (its
    entries are rebuilt on each request): a wheel of very many entries would hold both twice at this point."""
    empty = empty_directory_entries(parser.finished_names, extractor.files)
    if keep_unpacked:
        extractor.sync()  # the cache's tree must survive a power loss: installs trust its manifest
    return StagedWheel(filename, root, extractor.files, empty_dirs=empty)


def settle_tree(
    cache: Cache, staged: StagedWheel, sha256: str, keep_unpacked: bool
) -> tuple[StagedWheel, Claim | None]:
    """Where a finished staging tree goes: the shared cache (copy/hardlink installs) or this process's claim
    (move installs: nothing is kept unpacked, the wheel file is)."""
    if keep_unpacked:
        return _publish(cache, staged, sha256), None
    claim = cache.claim(staged.root)
    return dataclasses.replace(staged, root=claim.root, movable=True), claim


def names_this_wheel(staged: StagedWheel, filename: str, wheel_file: Path | None = None) -> bool:
    """Whether the unpacked ``staged`` is the wheel ``filename`` names: its ``.dist-info`` directory is that
    project and version, and its ``WHEEL`` file's tags, when it lists any, include one of the file name's. For a
    cache hit found by a pinned sha256 alone, which says which bytes, not that they are this URL's wheel."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    tops = {member.split("/", 1)[0] for member in staged.files}
    infos = {top for top in tops if top.endswith(".dist-info")}
    if len(infos) != 1:
        return False
    (info,) = infos
    project, _, found_version = info[: -len(".dist-info")].partition("-")
    try:
        if canonicalize_name(project) != name or Version(found_version) != version:
            return False
    except InvalidVersion:
        return False
    try:
        text = (staged.root / info / "WHEEL").read_text(encoding="utf-8", errors="replace")
    except OSError:
        # A tree a download only checked (``verify_only``) holds no file: ``WHEEL`` is read from the wheel
        # file it came from, just checked whole (its first 64 KiB: a tag list is a few lines).
        if wheel_file is None:
            return False
        try:
            with zipfile.ZipFile(wheel_file) as archive, archive.open(f"{info}/WHEEL") as member:
                text = member.read(1 << 16).decode("utf-8", errors="replace")
        except (OSError, KeyError, zipfile.BadZipFile):
            return False
    listed = {line.partition(":")[2].strip() for line in text.splitlines() if line.lower().startswith("tag:")}
    expanded: set[Tag] = set()
    for each in listed:
        with contextlib.suppress(ValueError):
            expanded.update(parse_tag(each))
    return not expanded or not expanded.isdisjoint(
        tags
    )  # shares a tag: a repaired wheel may list more or fewer


def cached(
    cache: Cache, sha256: str, wheel: str, progress: ProgressCallback | None, options: DownloadOptions
) -> DownloadResult | None:
    """The unpacked wheel ``wheels/<sha256>/`` as a result that fetched and unpacked nothing, if it is there.

    It was unpacked under an earlier command's limits: this command's ``max_unpacked_size`` and ``max_entries``
    hold for it too, as they would for the archive (its files count; directory entries are not kept)."""
    manifest = cache.wheel_manifest(sha256)
    if not manifest.is_file() or not cache.wheel_dir(sha256).is_dir():
        return None
    staged = tree_intact(cache.wheel_dir(sha256), manifest)
    if staged is None:
        # A file changed, went or shrank (or the manifest is torn): the tree is not what its manifest vouches
        # for. It goes, so that no later publish gives it a manifest again; the kept wheel file (checked by
        # its sha256) or the server unpacks it anew.
        cache.drop_tree(sha256)
        return None
    size = sum(each.size for each in staged.files.values())
    if size > options.max_unpacked_size:
        raise UnpackedLimitExceeded(
            f"archive unpacks to more than the {options.max_unpacked_size}-byte limit "
            f"(its unpacked copy in the cache holds {size} bytes)",
            wheel=wheel,
        )
    if len(staged.files) > options.max_entries:
        raise UnpackedLimitExceeded(
            f"archive has more than the {options.max_entries}-entry limit "
            f"(its unpacked copy in the cache holds {len(staged.files)} files)",
            wheel=wheel,
        )
    if progress is not None:
        progress(Progress(wheel, 0, 0, len(staged.files), None, message="from cache", finished=True))
    return DownloadResult(staged, sha256, 0, 0, None, 0, True)
