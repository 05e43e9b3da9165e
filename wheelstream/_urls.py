"""URL handling that keeps secrets out of everything we persist or print (DESIGN §2, "Secrets").

Private indexes put credentials in the userinfo (``https://user:token@host/``) or in the query
(``?token=...``). The redacted form is what the journal, the cache key, logs, errors and ``direct_url.json``
see; the real URL only ever reaches the HTTP client.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import urllib.parse

__all__ = ["cache_key", "filename_from_url", "redact", "split_hash_fragment"]

_SECRET_QUERY_KEYS = re.compile(r"(token|key|secret|password|passwd|auth|signature|sig|credential)", re.IGNORECASE)
_HASH_FRAGMENT = re.compile(r"^sha256=([0-9a-fA-F]{64})$")


def redact(url: str) -> str:
    """Drop ``user:password@`` (pip keeps nothing of it either) and mask secret-looking query values."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = urllib.parse.urlencode(
            [(k, "***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*"
        )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def split_hash_fragment(url: str) -> tuple[str, str | None]:
    """``(url without fragment, sha256 hex from a #sha256= fragment or None)``."""
    base, _, fragment = url.partition("#")
    match = _HASH_FRAGMENT.match(fragment)
    return base, (match.group(1).lower() if match else None)


def cache_key(url: str) -> str:
    """sha256 of the normalised, redacted URL without fragment: the same file gets the same partial."""
    base, _ = split_hash_fragment(redact(url))
    parts = urllib.parse.urlsplit(base)
    normal = urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def filename_from_url(url: str) -> str:
    path = urllib.parse.urlsplit(split_hash_fragment(url)[0]).path
    return urllib.parse.unquote(posixpath.basename(path))
