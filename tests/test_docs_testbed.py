"""The pytest examples in docs/testbed.md run, in a fresh project with only the plugin, exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "testbed.md"


def test_testbed_examples_run(pytester: pytest.Pytester) -> None:
    """Each ``python`` block with a test in it is a test file of its own: a reader copies one block, not the
    page, so each must define and import everything it uses (the first used ``wheel_bytes`` undefined)."""
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL) if "def test_" in b
    ]
    assert len(blocks) >= 2
    pytester.makepyfile(**{f"test_doc_{i}": block for i, block in enumerate(blocks)})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # the plugin comes from its entry point
    result.assert_outcomes(passed=sum(len(re.findall(r"^def test_", b, flags=re.MULTILINE)) for b in blocks))
