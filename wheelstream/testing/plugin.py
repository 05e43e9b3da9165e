"""pytest plugin (entry point ``pytest11``): fixtures that hand a test a misbehaving HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wheelstream.testing._server import FaultServer

__all__ = ["faulty_server"]


@pytest.fixture
def faulty_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, stopped after the test so no thread outlives it."""
    with FaultServer() as server:
        yield server
