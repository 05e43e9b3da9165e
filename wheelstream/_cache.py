"""Where wheelstream keeps its state (DESIGN §1, "Cache").

    <root>/partial/<key>.whl.part    raw bytes of an unfinished download
    <root>/partial/<key>.json        its journal (see _partial.py)
    <root>/partial/<key>.lock        filelock: one writer per key, across processes
    <root>/staging/<key>/            entries unpacked so far
    <root>/wheels/<sha256>/          finished, verified, unpacked wheels (+ manifest of digests)
    <root>/urls/<key>.json           which sha256 a URL gave last time, so a re-install needs no network
    <root>/http/                     hishel's cache of index pages

``<key>`` is :func:`wheelstream._urls.cache_key` of the original URL. Everything is created owner-only.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["Cache", "default_cache_dir"]


def default_cache_dir() -> Path:
    env = os.environ.get("WHEELSTREAM_CACHE_DIR")
    return Path(env) if env else platformdirs.user_cache_path("wheelstream")


@dataclass(frozen=True)
class Cache:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Cache:
        cache = cls(Path(root) if root is not None else default_cache_dir())
        for sub in ("partial", "staging", "wheels", "urls", "http"):
            (cache.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        return cache

    def partial(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.whl.part"

    def journal(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.json"

    def lock(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.lock"

    def staging(self, key: str) -> Path:
        return self.root / "staging" / key

    def wheel_dir(self, sha256: str) -> Path:
        return self.root / "wheels" / sha256

    def remembered_sha256(self, key: str) -> str | None:
        """The sha256 this URL produced last time, if its unpacked tree is still in the cache."""
        try:
            sha = str(json.loads((self.root / "urls" / f"{key}.json").read_text())["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return sha if self.wheel_dir(sha).is_dir() else None

    def remember(self, key: str, url: str, sha256: str, filename: str) -> None:
        target = self.root / "urls" / f"{key}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "sha256": sha256, "filename": filename}))
        tmp.replace(target)

    def discard(self, key: str) -> None:
        """Forget an unfinished download: partial, journal and staging."""
        self.partial(key).unlink(missing_ok=True)
        self.journal(key).unlink(missing_ok=True)
        shutil.rmtree(self.staging(key), ignore_errors=True)
