"""``--find-links``: wheels on hand for ``NAME==VERSION`` — a directory's ``*.whl`` files, one ``.whl`` file, or
the wheels an HTML page links to — as pip reads the option (``pip download -d wheels`` on one machine, ``pip
install --no-index --find-links wheels`` on another).

A location that is not there is a warning and is skipped, as pip skips it. A page from a server is fetched as
index pages are (hishel's cache, the same retries); its links are followed only over ``http(s)``, as an
index's are. A page on disk (a path or ``file://`` URL ending in ``.html``/``.htm``, as pip tells one) may
also link to local files. A directory's files are listed by name only: which one fits is ``choose``'s,
whether it is a wheel the download's checks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TypeAlias

from wheelstream._urls import redact, shown_text
from wheelstream.errors import HTTPStatusError
from wheelstream.index._pages import IndexFile, parse_html
from wheelstream.transport import answered

__all__ = ["Pages", "is_page", "listed_locally", "listed_on_page"]

_log = logging.getLogger("wheelstream")


def is_page(location: str) -> bool:
    """Whether ``location`` is an ``http(s)`` page to fetch (else a local directory or ``file://`` URL)."""
    try:
        return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https")
    except ValueError:  # an unclosed IPv6 bracket, …: read as a directory, which is not there (a warning)
        return False


def listed_locally(location: str, pages: Pages) -> list[IndexFile]:
    """The wheels a local location (a path or a ``file://`` URL) offers, as ``file://`` URLs: a directory's
    ``.whl`` files, a ``.whl`` file itself, or those an ``.html`` file links to; none, with a warning, for a
    location that is none of these or cannot be read."""
    try:
        parts = urllib.parse.urlsplit(location)
    except ValueError as exc:
        _log.warning("--find-links %s is skipped: %s", shown_text(location), exc)
        return []
    if parts.scheme.lower() == "file":
        path = Path(urllib.request.url2pathname(parts.path))
    else:
        path = Path(location).expanduser()
    try:
        if path.is_dir():
            names = sorted(entry.name for entry in os.scandir(path) if entry.name.endswith(".whl"))
            absolute = path.resolve()
            return [IndexFile(name, (absolute / name).as_uri(), None, None, None) for name in names]
        # Absolute, not resolved (pip's ``path_to_url``): a symlinked wheel keeps its name (a content-addressed
        # store's target has none), and a linked page's relative links are the link's directory's, as a browser
        # reads them.
        absolute = Path(os.path.abspath(path))
        if path.suffix.lower() in (".html", ".htm"):
            return _wheels_linked(absolute.read_bytes(), absolute.as_uri(), "utf-8", pages, on_disk=True)
        if path.name.endswith(".whl") and path.is_file():
            return [IndexFile(path.name, absolute.as_uri(), None, None, None)]
        why = (
            "not a directory, a .whl file or an .html page" if path.exists() else "no such file or directory"
        )
    except OSError as exc:  # (a URL of another scheme too: ftp://user:password@… is no directory)
        why = exc.strerror or str(exc)
    _log.warning("--find-links %s is skipped: %s", shown_text(location), why)
    return []


def listed_on_page(page: str, answer: tuple[int, bytes, str, str], pages: Pages) -> list[IndexFile]:
    """The wheels a fetched page (``answer``: status, body, final URL, charset) links to over ``http(s)``."""
    status, body, final, charset = answer
    if status != 200:
        raise HTTPStatusError(f"--find-links page {redact(page)} {answered(status)}")
    return _wheels_linked(body, final, charset, pages, on_disk=False)


# The wheels each page listed, by (URL, charset, on disk, the sha256 of its bytes): one per library call
# (``_sources.Indexes.pages``), freed with it.
Pages: TypeAlias = "dict[tuple[str, str, bool, bytes], list[IndexFile]]"


def _wheels_linked(body: bytes, url: str, charset: str, pages: Pages, *, on_disk: bool) -> list[IndexFile]:
    """The wheels a page links to, parsed once for every pin a call looks up there: a big page
    (``download.pytorch.org/whl/torch_stable.html``, 30,000 links) takes ~2 s to parse, and each pin asks
    for it again. Keyed by the page's bytes, so a page that changed is parsed anew."""
    key = (url, charset, on_disk, hashlib.sha256(body).digest())
    if key not in pages:
        pages[key] = [
            f for f in parse_html(body, url, charset, on_disk=on_disk) if f.filename.endswith(".whl")
        ]
    return pages[key]
