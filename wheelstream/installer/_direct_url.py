"""``direct_url.json`` (PEP 610) for a wheel installed from a URL or path, written as pip writes it.

pip (``_internal/models/direct_url.py`` ``DirectUrl.to_json`` over its vendored ``packaging.direct_url``):
``json.dumps(..., sort_keys=True)`` of ``{"archive_info": {...}, "url": ...}``; the URL loses its fragment
(``#sha256=...``) and its ``user:password@`` unless that is PEP 610's ``${VAR}`` / ``${VAR}:${VAR}`` form or
the literal ``git``; ``archive_info`` has ``hashes`` (``{"sha256": hex}``) plus the legacy ``hash``
(``"sha256=hex"``) when a hash is known — pip always knows one, it hashes what it downloaded.
"""

from __future__ import annotations

import json
import re
import urllib.parse

__all__ = ["direct_url_json", "redact_url"]

_ENV_USER_PASS = re.compile(r"^\$\{[A-Za-z0-9-_]+\}(:\$\{[A-Za-z0-9-_]+\})?$")


def redact_url(url: str) -> str:
    """Drop the fragment and any credentials PEP 610 does not allow to be recorded."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user_pass, host = netloc.rsplit("@", 1)
        if user_pass != "git" and not _ENV_USER_PASS.match(user_pass):
            netloc = host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def direct_url_json(url: str, sha256_hex: str | None) -> bytes:
    """The exact bytes pip writes to ``<dist-info>/direct_url.json`` for an archive URL."""
    archive: dict[str, object] = {}
    if sha256_hex:
        archive = {"hash": f"sha256={sha256_hex}", "hashes": {"sha256": sha256_hex}}
    return json.dumps({"archive_info": archive, "url": redact_url(url)}, sort_keys=True).encode("utf-8")
