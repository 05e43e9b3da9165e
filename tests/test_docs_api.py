"""The examples in docs/api.md run, against a real local server, exactly as written."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fixtures.wellformed import WELLFORMED
from wheelstream.testing import FaultServer

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_api_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    data = WELLFORMED["mixed_streamable"]()
    with FaultServer() as server:
        url = server.add_file("demo-1.0-py3-none-any.whl", data)
        namespace = {"WHEEL_URL": url, "WHEEL_SHA256": hashlib.sha256(data).hexdigest(), "tmp": tmp_path}
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # the docs are ours
        assert server.bytes_sent("demo-1.0-py3-none-any.whl") > 0
