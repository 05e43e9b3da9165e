"""A fault-injecting HTTP server for testing installers: pytest plugin and ``wheelstream testbed serve``.

Both faces share one engine (``_engine``): a :class:`FaultPlan` of :class:`Fault` values per file, scoped by
request number, decides how each response goes wrong. See ``docs/testbed.md``.
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
from wheelstream.testing._server import FaultServer, RequestRecord
from wheelstream.testing._spec import parse_fault
from wheelstream.testing._wheel import build_wheel

__all__ = [
    "ChangeFile",
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
