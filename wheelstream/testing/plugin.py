"""pytest plugin (entry point ``pytest11``): fixtures that hand a test a misbehaving HTTP server.

Installed with ``wheelstream[testing]``, so any project's tests get the fixtures without a conftest import.
Fixtures are function-scoped: request numbers, which every fault is scoped by, must start at 1 per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from wheelstream.testing._server import FaultServer
from wheelstream.testing._wheel import build_wheel

__all__ = ["WheelSite", "faulty_server", "wheel_server"]


@dataclass(frozen=True)
class WheelSite:
    """A server already holding one small wheel: the usual starting point of an interruption test."""

    server: FaultServer
    name: str  # wheel filename, also its path on the server
    url: str
    data: bytes


@pytest.fixture
def faulty_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, stopped after the test so no thread outlives it."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def wheel_server(faulty_server: FaultServer) -> WheelSite:
    """``faulty_server`` serving ``demo-1.0-py3-none-any.whl`` (256 KiB payload) with no faults yet.

    Give it faults with ``wheel_server.server.set_plan(wheel_server.name, FaultPlan(...))``.
    """
    name, data = build_wheel()
    url = faulty_server.add_file(name, data)
    return WheelSite(faulty_server, name, url, data)
