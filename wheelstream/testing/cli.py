"""``wheelstream testbed``: the fault engine as a standalone server for pip, uv or any other client."""

from __future__ import annotations

import click

__all__ = ["testbed"]


@click.group()
def testbed() -> None:
    """Serve wheels over HTTP with reproducible network faults."""
