"""``NAME==VERSION`` → one wheel URL and its sha256, through a simple repository (PEP 503 / PEP 691).

There is **no dependency resolution** here, by design: a pin names one release, and we pick one file of it.

How a file is chosen (pip's ``CandidateEvaluator`` rules, restricted to a single pinned version):

1. Fetch ``<index>/<normalized name>/`` asking for PEP 691 JSON first
   (``Accept: application/vnd.pypi.simple.v1+json, text/html;q=0.1``); whatever comes back is parsed by its
   ``Content-Type`` — JSON (PEP 691), or HTML anchors (PEP 503, with ``data-requires-python`` and
   ``data-yanked``). A server that refuses JSON with 406 is asked again for HTML only.
2. Keep wheels whose file name says this project and exactly this version (``packaging`` parses both, so
   ``1.0`` and ``1.0.0`` are the same version, as for pip).
3. Drop files whose ``requires-python`` excludes the target interpreter's ``X.Y``.
4. PEP 592: a yanked file is only eligible because the requirement pins ``==``/``===`` exactly (the only
   kind we accept); non-yanked files still win, and taking a yanked one warns with the yank reason.
5. Of the rest, the best tag wins: the one whose best tag comes first in the interpreter's priority list
   (``packaging.tags.sys_tags()`` order — what pip ranks by too).

Caching (hishel 2.x, RFC 9111 mode, private cache, sqlite in ``<cache>/http/``): PyPI sends
``Cache-Control: max-age=600`` and an ``ETag``, so a rerun within ten minutes sends nothing and a later one
sends ``If-None-Match`` and gets ``304``. A page that states no lifetime is never taken unasked: with a
validator (``python -m http.server``'s ``Last-Modified``) it is revalidated every time, without one (the test
bed) fetched every time, as pip does. Explicit directives (``no-store``, ``no-cache``, ``max-age=0``) are
always obeyed.

Secrets: hishel only ever sees the redacted URL (it stores the request with the entry); credentials from the
index URL's userinfo go out as HTTP basic auth and are passed on to file URLs on the same host, as pip does.
"""

from __future__ import annotations

from wheelstream.index._choose import choose, pin
from wheelstream.index._lookup import read_over_http, resolve_requirement
from wheelstream.index._pages import (
    ACCEPT,
    JSON_TYPE,
    IndexFile,
    checked_url_name,
    parse_html,
    parse_json,
)

__all__ = [
    "ACCEPT",
    "JSON_TYPE",
    "IndexFile",
    "checked_url_name",
    "choose",
    "parse_html",
    "parse_json",
    "pin",
    "read_over_http",
    "resolve_requirement",
]
