"""The paths that name no served file: ``/``, the ``/simple/`` pages (PEP 503/691), redirects and 404.

``_index`` writes what a page says; this module decides which page a path gets and wraps it in a
:class:`~wheelstream.testing._engine.Decision`, so ``_handler`` writes a page exactly as it writes a file.
Pages carry no faults: they are what a resolver reads before the download under test. The server hands
over its files as a callable, so a path that is no page (a 404) never walks the served directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from wheelstream.testing import _index
from wheelstream.testing._engine import Decision
from wheelstream.testing._files import Version

__all__ = ["Listing", "page"]

Listing = Callable[[], Iterable[tuple[str, Version]]]
"""Every served file name with its current version, in name order; called only when a page needs it."""


def page(path: str, accept: str | None, files: Listing) -> Decision:
    """The answer for ``path`` (already unquoted, no query), which is not the name of a served file."""
    as_json = _index.wants_json(accept)
    if path == "/":
        return _ok(_index.files_page(_entries(files)), _index.HTML_TYPE)
    if path in ("/simple", "/simple/"):
        if path == "/simple":
            return _redirect("/simple/")
        body, ctype = _index.root_page(_index.group(_entries(files)), as_json)
        return _ok(body, ctype)
    parts = path.split("/")
    if len(parts) in (3, 4) and parts[1] == "simple" and (len(parts) == 3 or parts[3] == ""):
        project = _index.canonical(parts[2])
        if project != parts[2] or len(parts) == 3:
            return _redirect(f"/simple/{project}/")
        entries = _index.group(_entries(files)).get(project)
        if entries:
            body, ctype = _index.project_page(project, entries, as_json)
            return _ok(body, ctype)
    body = b"404 Not Found\n"
    return Decision(
        404,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        data=body,
        length=len(body),
        send=len(body),
    )


def _entries(files: Listing) -> list[_index.IndexEntry]:
    return [_index.IndexEntry(name, version.sha256) for name, version in files()]


def _ok(body: bytes, content_type: str) -> Decision:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if content_type == _index.JSON_TYPE or "html" in content_type:
        headers.append(("Vary", "Accept"))
    return Decision(200, headers, data=body, length=len(body), send=len(body))


def _redirect(location: str) -> Decision:
    return Decision(301, [("Location", location), ("Content-Length", "0")])
