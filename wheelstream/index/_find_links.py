"""``--find-links``: wheels on hand for ``NAME==VERSION`` — a directory's ``*.whl`` files, or the wheels an HTML
page links to — as pip reads the option (``pip download -d wheels`` on one machine, ``pip install --no-index
--find-links wheels`` on another).

A location that is not there is a warning and is skipped, as pip skips it. A page is fetched as index pages
are (hishel's cache, the same retries); its links are followed only over ``http(s)``, as an index's are. A
directory's files are listed by name only: which one fits is ``choose``'s, whether it is a wheel the
download's checks.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
import urllib.request
from pathlib import Path

from wheelstream._urls import redact, shown_text
from wheelstream.errors import HTTPStatusError
from wheelstream.index._pages import IndexFile, parse_html

__all__ = ["is_page", "listed_in_directory", "listed_on_page"]

_log = logging.getLogger("wheelstream")


def is_page(location: str) -> bool:
    """Whether ``location`` is an ``http(s)`` page to fetch (else a local directory or ``file://`` URL)."""
    try:
        return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https")
    except ValueError:  # an unclosed IPv6 bracket, …: read as a directory, which is not there (a warning)
        return False


def listed_in_directory(location: str) -> list[IndexFile]:
    """The ``.whl`` files of a directory (a path or a ``file://`` URL), as ``file://`` URLs; none, with a
    warning, for a location that is not a directory."""
    try:
        parts = urllib.parse.urlsplit(location)
    except ValueError as exc:
        _log.warning("--find-links %s is skipped: %s", shown_text(location), exc)
        return []
    if parts.scheme.lower() == "file":
        directory = Path(urllib.request.url2pathname(parts.path))
    else:
        directory = Path(location).expanduser()
    try:
        names = sorted(entry.name for entry in os.scandir(directory) if entry.name.endswith(".whl"))
    except OSError as exc:  # (a URL of another scheme too: ftp://user:password@… is no directory)
        _log.warning("--find-links %s is skipped: %s", shown_text(location), exc.strerror or exc)
        return []
    absolute = directory.resolve()
    return [IndexFile(name, (absolute / name).as_uri(), None, None, None) for name in names]


def listed_on_page(page: str, answer: tuple[int, bytes, str, str]) -> list[IndexFile]:
    """The wheels a fetched page (``answer``: status, body, final URL, charset) links to over ``http(s)``."""
    status, body, final, charset = answer
    if status != 200:
        raise HTTPStatusError(f"--find-links page {redact(page)} answered {status}")
    return [file for file in parse_html(body, final, charset) if file.filename.endswith(".whl")]
