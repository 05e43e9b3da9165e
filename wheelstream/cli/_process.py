"""Process-wide tuning the command may do because it owns its process; the library never does either.

Each seam touches interpreter-wide state, so it runs only in the program (``wheelstream`` script,
``python -m wheelstream``), never under ``import wheelstream``. Why each pays and how to re-measure it:
docs/performance.md#d-gc and #d-httpx-cli-blocked.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

__all__ = ["GC_THRESHOLDS", "rare_gc", "skip_httpx_cli"]

# The cyclic collector's thresholds while a command runs: a young collection every 100k new container objects
# (CPython's default is 700), older ones ten and a hundred times rarer.
GC_THRESHOLDS = (100_000, 10, 10)


def skip_httpx_cli() -> None:
    """Keep ``httpx._main`` (httpx's own command-line client) from being imported: it touches ``sys.modules``.

    httpx's ``__init__`` imports its CLI whenever click and rich are installed, and with it rich's syntax
    highlighting and pygments — on every run, though this program never runs it. A ``None`` entry makes
    that import raise ``ImportError``, which httpx answers with a stub ``httpx.main``. Only before httpx is
    imported: a host that already has httpx, or imports wheelstream as a library, keeps httpx as it was.
    Fallback: if httpx came first, nothing is changed and the program imports its CLI as before, just slower.
    """
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@contextlib.contextmanager
def rare_gc(*, freeze_on_exit: bool) -> Iterator[None]:
    """Run the body with the cyclic collector running rarely (:data:`GC_THRESHOLDS`): touches ``gc``.

    A command keeps many small records (parser entries, journal lines, staged files) alive until it ends;
    with the default thresholds the collector walks them again and again, holding the GIL on whichever thread
    triggered it. Young collections stay on, so the cyclic garbage a long command makes (a response and its
    stream, a caught exception's traceback) is still freed. The caller's thresholds come back on the way out,
    however the body ends — the fallback for a host calling ``main(argv)`` in-process.

    ``freeze_on_exit`` is for the program only (the process ends with the command): the objects still alive
    are frozen (``gc.freeze``) so the interpreter's final collection does not walk them once more only to
    free them. A host's heap is never frozen.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze_on_exit:
            gc.freeze()
