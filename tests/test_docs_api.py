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


def test_every_public_annotation_resolves_at_run_time() -> None:
    """Type checkers read the annotations statically; doc tools and run-time checkers (``get_type_hints``:
    autodoc, typeguard, pydantic's ``validate_call``) resolve them in the defining module. A name imported only
    under ``TYPE_CHECKING`` — tempting, to import less at start-up — would break them: every public function's
    and class's annotations, and those of the zip parser's events, must resolve."""
    import inspect
    import typing

    import wheelstream
    import wheelstream.zip

    checked = 0
    for module in (wheelstream, wheelstream.zip):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value) or inspect.isclass(value):
                typing.get_type_hints(value)
                for member in vars(value).values() if inspect.isclass(value) else ():
                    if inspect.isfunction(member):
                        typing.get_type_hints(member)
                checked += 1
    assert checked >= 20
