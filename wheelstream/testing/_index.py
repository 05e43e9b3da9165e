"""Simple-repository pages (PEP 503 HTML, PEP 691 JSON) for whatever files the server holds.

Generated per request from the current file versions, so ``replace_file`` changes the ``#sha256=`` a
resolver sees exactly as a re-upload to a real index would. Links are relative (allowed by both PEPs), which
keeps the pages right behind any host name or port the client used.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

__all__ = ["JSON_TYPE", "IndexEntry", "files_page", "group", "project_page", "root_page", "wants_json"]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True)
class IndexEntry:
    """One distribution file as the index lists it."""

    name: str  # path on the server, e.g. "pkgs/demo-1.0-py3-none-any.whl"
    sha256: str

    @property
    def filename(self) -> str:
        """The last path segment, which is what resolvers parse."""
        return self.name.rsplit("/", 1)[-1]


def project_of(filename: str) -> NormalizedName | None:
    """The normalized project a distribution file belongs to; None for anything else."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[0]
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[0]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def group(entries: Iterable[IndexEntry]) -> dict[str, list[IndexEntry]]:
    """Entries by normalized project name, both sorted so pages are deterministic."""
    out: dict[str, list[IndexEntry]] = {}
    for e in entries:
        project = project_of(e.filename)
        if project is not None:
            out.setdefault(project, []).append(e)
    return {k: sorted(out[k], key=lambda e: e.filename) for k in sorted(out)}


# PEP 691's names for each format ("latest" is whatever v1 is), then the wildcards and text/html that mean HTML.
_JSON_NAMES = (JSON_TYPE, "application/vnd.pypi.simple.latest+json")
_HTML_NAMES = ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html")
_WILDCARDS = ("*/*", "text/*")


def _accepted(accept: str) -> list[tuple[str, float]]:
    """``(media type, quality)`` for each entry of an Accept header; an unreadable quality counts as 0."""
    out = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        out.append((media.lower(), q))
    return out


def wants_json(accept: str | None) -> bool:
    """PEP 691 content negotiation: JSON when a JSON name has a higher quality than any HTML name.

    Quality values decide (``v1+json;q=0.1, text/html`` is HTML); at equal quality the one listed first wins,
    and a bare ``*/*`` is HTML, the format every client reads.
    """
    if not accept:
        return False
    json_q = html_q = 0.0
    json_at = html_at = len(accept)
    for at, (media, q) in enumerate(_accepted(accept)):
        if media in _JSON_NAMES and q > json_q:
            json_q, json_at = q, at
        elif (media in _HTML_NAMES or media in _WILDCARDS) and q > html_q:
            html_q, html_at = q, at
    return json_q > 0 and (json_q > html_q or (json_q == html_q and json_at < html_at))


def _html(title: str, links: Iterable[tuple[str, str]]) -> bytes:
    body = "\n".join(
        f'    <a href="{html.escape(href)}">{html.escape(text)}</a><br/>' for href, text in links
    )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.0">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}\n  </body>\n</html>\n"
    ).encode()


def root_page(projects: dict[str, list[IndexEntry]], as_json: bool) -> tuple[bytes, str]:
    """``/simple/``: every project name."""
    if as_json:
        doc = {"meta": {"api-version": "1.0"}, "projects": [{"name": p} for p in projects]}
        return json.dumps(doc).encode(), JSON_TYPE
    return _html("Simple index", ((f"{p}/", p) for p in projects)), HTML_TYPE


def project_page(project: str, entries: list[IndexEntry], as_json: bool) -> tuple[bytes, str]:
    """``/simple/<project>/``: the project's files with ``#sha256=`` fragments (PEP 503) or hashes (PEP 691)."""
    if as_json:
        files = [
            {"filename": e.filename, "url": "../../" + quote(e.name), "hashes": {"sha256": e.sha256}}
            for e in entries
        ]
        doc = {"meta": {"api-version": "1.0"}, "name": project, "files": files}
        return json.dumps(doc).encode(), JSON_TYPE
    links = ((f"../../{quote(e.name)}#sha256={e.sha256}", e.filename) for e in entries)
    return _html(f"Links for {project}", links), HTML_TYPE


def files_page(entries: Iterable[IndexEntry]) -> bytes:
    """``/``: every file, so ``pip --find-links URL`` and a browser work too."""
    ordered = sorted(entries, key=lambda e: e.name)
    return _html("Files", ((f"{quote(e.name)}#sha256={e.sha256}", e.name) for e in ordered))


def canonical(name: str) -> str:
    """PEP 503 normalization of a project name from a URL."""
    return canonicalize_name(name)
