"""HTTP for wheel downloads: the one client (pip's credentials, CAs and proxies, TLS built on first use; a TLS
failure told as one, ``_tls.py``), the decision table
for (resumed) requests (DESIGN §3, ``_table.py``), and which connection a request went out on, for a cancel
that shuts it (``_tracking.py``, ``_cancel.py``)."""

from wheelstream.transport._cancel import CancelSignal, SocketCancel, socket_of
from wheelstream.transport._client import USER_AGENT, new_client
from wheelstream.transport._table import (
    Action,
    Decision,
    Known,
    PieceAction,
    answered,
    busy,
    content_range_end,
    decide,
    decide_piece,
    header_value,
    retry_after_seconds,
)
from wheelstream.transport._tls import tls_failure
from wheelstream.transport._tracking import take_request_stream, track_request_streams

__all__ = [
    "Action",
    "CancelSignal",
    "Decision",
    "Known",
    "PieceAction",
    "SocketCancel",
    "USER_AGENT",
    "answered",
    "busy",
    "content_range_end",
    "decide",
    "decide_piece",
    "header_value",
    "new_client",
    "retry_after_seconds",
    "socket_of",
    "take_request_stream",
    "tls_failure",
    "track_request_streams",
]
