"""Safe paths in the staging directory: joins checked against ``root``, directories made one component at a time.

Nothing is written outside ``root``. The parser validated every name already; every join is checked again here
(defence in depth: a parser bug must not become a path traversal). The rules:

* A directory component is created here or, when it exists already (a resume), must be a real directory
  (``lstat``: never a symlink), so everything below it is inside ``root`` without a ``realpath`` per entry.
* A file is created ``O_EXCL | O_NOFOLLOW`` (:func:`create`): staging only ever holds finished entries (resume
  deletes the rest), so an existing file means two entries map to one path — ``A.py`` and ``a.py`` on a
  case-insensitive file system — and that must not silently overwrite a file whose digest was recorded.
* A file name and a directory name may not meet: the one that comes second is a :class:`DuplicateEntry`.

Paths are plain strings here: ``pathlib`` objects cost several microseconds each to build and print, and this
code runs a few times per entry.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Container, Iterable

from wheelstream.errors import DiskError, DuplicateEntry, UnsafePath

__all__ = ["StagingPaths", "collision", "create"]

# O_BINARY: on Windows a descriptor is in text mode without it, and every b"\n" written becomes b"\r\n".
_CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def collision(name: str, offset: int) -> DuplicateEntry:
    return DuplicateEntry(
        "entry collides with a file or directory of another entry", entry=name, offset=offset
    )


def _outside(name: str) -> UnsafePath:
    return UnsafePath("entry would be written outside the staging directory", entry=name)


def _symlink(name: str) -> UnsafePath:
    return UnsafePath("entry is a symbolic link in the staging directory", entry=name)


def _too_long(name: str, offset: int) -> DiskError:
    """``ENAMETOOLONG``: the parser's name limits keep every entry far below the file system's, so only a cache
    directory with a path of thousands of bytes gets here — one line naming the entry, not a traceback."""
    return DiskError(
        "the staged path of this entry is too long for the file system (ENAMETOOLONG); "
        "use a cache directory with a shorter path",
        entry=name,
        offset=offset,
    )


def _unencodable(name: str, offset: int) -> DiskError:
    """A name the file-system encoding cannot hold (``LC_ALL=C`` with ``PYTHONUTF8=0``, a Latin-1 locale):
    the archive is sound and its download kept, the environment is what cannot name the file. It was a
    ``UnicodeEncodeError`` traceback."""
    return DiskError(
        f"this entry's name cannot be a file name here: the file-system encoding is {sys.getfilesystemencoding()} "
        "(run with PYTHONUTF8=1 or in a UTF-8 locale)",
        entry=name,
        offset=offset,
    )


def create(path: str, name: str, offset: int) -> int:
    """A descriptor of the new file ``path`` for the entry ``name`` (at ``offset``), opened for writing; an
    existing file or a symlink there is refused, as an error naming the entry."""
    try:
        return os.open(path, _CREATE_FLAGS, 0o666)
    except UnicodeEncodeError:
        raise _unencodable(name, offset) from None
    except OSError as exc:
        if isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError)):
            raise collision(name, offset) from None
        if exc.errno == errno.ELOOP:
            raise _symlink(name) from None
        if exc.errno == errno.ENAMETOOLONG:
            raise _too_long(name, offset) from None
        raise


class StagingPaths:
    """The staging path of each archive name below ``root``, and the directories on the way, made once each.

    ``files`` holds the names already claimed by file entries (the extractor's record, where a file is listed
    before a writer has even created it): a directory may not take such a name.
    """

    def __init__(self, root: str, files: Container[str], *, make: bool = True) -> None:
        self.root = root
        self._make = make  # False: names are checked and claimed, nothing is made (``Extractor.verify_only``)
        self._files = files
        self._prefix = os.path.join(root, "")  # root and one separator, however root was spelt
        self._resolved_root = os.path.realpath(root)
        self._dirs: dict[str, str] = {}  # archive dir name -> staging dir made or checked by ``directory``

    def claim_parents(self, names: Iterable[str]) -> None:
        """Take the directories of files already finished (a resume's) as made, when nothing is made: a later
        file named like one of them collides, as its ``O_EXCL`` create would find on disk."""
        for name in names:
            parent = name.rpartition("/")[0]
            while parent and parent not in self._dirs:
                self._dirs[parent] = self._join(parent)
                parent = parent.rpartition("/")[0]

    def _join(self, name: str) -> str:
        """The same string ``os.path.join(root, *parts)`` gives, for a validated archive name (no empty, ``.``
        or ``..`` part): a resume builds one per finished file."""
        return self._prefix + name.rstrip("/").replace("/", os.sep)

    def path_for(self, name: str) -> str:
        """The staging path of an archive name, refusing anything that would leave ``root``."""
        parent_name, _, leaf = name.rstrip("/").rpartition("/")
        if leaf in ("", ".", ".."):
            raise _outside(name)
        made = self._dirs.get(parent_name) if parent_name else self.root
        if made is not None:  # a directory made or checked here, component by component
            return os.path.join(made, leaf)
        path = self._join(name)
        real = os.path.join(os.path.realpath(os.path.dirname(path)), leaf)  # the leaf is opened O_NOFOLLOW
        resolved_root = self._resolved_root
        if os.path.commonpath([real, resolved_root]) != resolved_root or real == resolved_root:
            raise _outside(name)
        return path

    def new_file(self, name: str, offset: int) -> str:
        """The staging path for a file entry, its directories made. The caller claims the name (in ``files``)
        before the next entry comes: from then on no directory can take it."""
        parent_name, _, leaf = name.rpartition("/")
        if leaf in (".", ".."):
            raise _outside(name)
        # ``directory`` gives os.path.join's result: it never ends in a separator.
        path = (
            self.directory(parent_name, name, offset) + os.sep + leaf if parent_name else self._prefix + leaf
        )
        if name in self._dirs or (not self._make and name in self._files):
            raise collision(
                name, offset
            )  # (nothing made: the earlier file's O_EXCL create is not there to find it)
        return path

    def directory(self, dir_name: str, name: str, offset: int) -> str:
        """``mkdir -p`` of an archive directory, once per directory and one component at a time; for the
        entry ``name`` at ``offset``, which errors name.

        A loop, not a recursion: how deep a name goes is the archive's choice (the parser caps it, but this
        code must not be where a deep name turns into a ``RecursionError``).
        """
        made = self._dirs.get(dir_name)
        if made is not None:
            return made
        missing = [dir_name]  # the directory, then each missing parent, up to one already made (or the root)
        parent = self.root
        above = dir_name.rpartition("/")[0]
        while above:
            made = self._dirs.get(above)
            if made is not None:
                parent = made
                break
            missing.append(above)
            above = above.rpartition("/")[0]
        for sub in reversed(missing):
            parent = self._make_dir(parent, sub, name, offset)
        return parent

    def _make_dir(self, parent: str, dir_name: str, name: str, offset: int) -> str:
        """One component of ``directory``: ``dir_name``'s last part, made (or found, a real directory) in
        ``parent``. A component named like an earlier entry's file is the collision ``mkdir`` would find."""
        leaf = dir_name.rpartition("/")[2]
        if leaf in ("", ".", ".."):
            raise _outside(name)
        if dir_name in self._files:
            raise collision(name, offset)
        path = os.path.join(parent, leaf)
        if not self._make:
            self._dirs[dir_name] = path
            return path
        try:
            os.mkdir(path)
        except FileExistsError:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                raise _symlink(name) from None
            if not stat.S_ISDIR(info.st_mode):
                raise collision(name, offset) from None
        except NotADirectoryError:
            raise collision(name, offset) from None
        except UnicodeEncodeError:
            raise _unencodable(name, offset) from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise _too_long(name, offset) from None
            raise
        self._dirs[dir_name] = path
        return path
