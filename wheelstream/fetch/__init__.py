"""One wheel from a URL (or a local file) into the cache, downloaded and unpacked at once, resumable.

Start at ``fetch_wheel`` (``_fetch.py``). The collaborators, one job each:

- ``_attempts.py``: the attempt loop: request, decide (``wheelstream.transport``), pump through the tee,
  back off, resume; the retry budget.
- ``_resume.py``: what a previous run left: journal vs partial vs staging, the kept prefix's hash.
- ``_cancel.py``: the socket-level cancel (a stalled read is cut short, not waited for).
- ``_publish.py``: the last checks, then the wheel file and the unpacked tree handed to the cache.
- ``_local.py``: wheel files already on disk (``unpack_local``, the cache's own wheel files).
- ``_errors.py`` / ``_reporting.py``: what the user is told, as errors and as progress.
"""

from wheelstream.fetch._fetch import fetch_wheel
from wheelstream.fetch._local import unpack_local
from wheelstream.fetch._options import DownloadOptions, DownloadResult
from wheelstream.transport import CancelSignal

__all__ = ["CancelSignal", "DownloadOptions", "DownloadResult", "fetch_wheel", "unpack_local"]
