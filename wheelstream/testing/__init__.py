"""A fault-injecting HTTP server for testing installers: pytest plugin and ``wheelstream testbed serve``.

Both faces share one engine (``_engine``): a :class:`FaultPlan` of :class:`Fault` values per file, scoped by
request number, decides how each response goes wrong; a server-wide :class:`ConnectionLimit` refuses a client's
requests beyond N in flight. See ``docs/testbed.md``.
"""

from __future__ import annotations

from wheelstream.testing._faults import (
    ChangeFile,
    Corrupt,
    Cut,
    CutEvery,
    Fault,
    FaultPlan,
    Gzip,
    IgnoreRange,
    NoValidators,
    RequestScope,
    Stall,
    Status,
    StatusSequence,
    Throttle,
    WeakETag,
    WrongRangeStart,
    since,
)
from wheelstream.testing._limits import ConnectionLimit
from wheelstream.testing._records import RequestRecord
from wheelstream.testing._server import FaultServer
from wheelstream.testing._spec import parse_fault
from wheelstream.testing._wheel import build_wheel

__all__ = [
    "ChangeFile",
    "ConnectionLimit",
    "Corrupt",
    "Cut",
    "CutEvery",
    "Fault",
    "FaultPlan",
    "FaultServer",
    "Gzip",
    "IgnoreRange",
    "NoValidators",
    "RequestRecord",
    "RequestScope",
    "Stall",
    "Status",
    "StatusSequence",
    "Throttle",
    "WeakETag",
    "WrongRangeStart",
    "build_wheel",
    "parse_fault",
    "since",
]
