"""Which URL names a served directory answers, decided the way nginx's static module decides.

nginx (with its default ``disable_symlinks off``) follows a symlink wherever it points: a wheelhouse of
links into a build tree or a shared store is served like real files. What it refuses is a *URL* naming
something outside the root. The test bed used to resolve the whole path and require the target to lie inside
the directory; that refused every symlink to a wheel kept elsewhere, so such a file was found by the listing
walk but answered 404, and the index pages dropped it.

The rule now, identical for serving and listing so a listed file is always served:

* the name (already percent-decoded, so ``%2e%2e`` and ``%2F`` are plain ``..`` and ``/`` here) is a
  relative path without empty, ``.`` or ``..`` segments and without NUL — anything else names nothing;
* every directory on the way is a real directory under the root: symlinked directories are not entered
  (the listing walk would need cycle protection, and an index is flat in practice);
* the last segment is a regular file after following symlinks: a link to a wheel anywhere is served, a broken
  link or a link to a directory is not.

Files and directories whose name starts with ``.`` are served when asked for but not listed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ServedDirectory"]


class ServedDirectory:
    """A directory tree whose regular files (and symlinks to files) are served under their relative names."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def locate(self, name: str) -> Path | None:
        """The path to open for URL name ``name`` (symlinks kept, so a re-pointed link is noticed), or None."""
        segments = name.split("/")
        if "\x00" in name or any(s in ("", ".", "..") for s in segments):
            return None
        parent = self.root.joinpath(*segments[:-1])
        try:
            if parent.resolve() != parent:  # a symlinked directory on the way
                return None
            path = parent / segments[-1]
            return path if path.is_file() else None
        except OSError:  # unreadable, too many link levels, name too long: not served
            return None

    def names(self) -> list[str]:
        """Every servable, non-hidden name under the root, sorted."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):  # followlinks=False: see the module doc
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            here = Path(dirpath)
            for filename in filenames:
                if not filename.startswith(".") and (here / filename).is_file():
                    found.append((here / filename).relative_to(self.root).as_posix())
        return sorted(found)
