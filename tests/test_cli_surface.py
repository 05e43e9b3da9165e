"""The command's surface as docs/cli.md describes it: what a source form that is not supported says, and the
help each command gives of its own options."""

from __future__ import annotations

from pathlib import Path

from conftest import ws

from wheelstream.testing import FaultServer, build_wheel


def test_name_at_url_is_a_usage_error_that_keeps_the_url_whole(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``NAME @ URL`` was taken for a path (``no such file: six @ http:/host/…``, its ``//`` mangled)."""
    filename, data = build_wheel("demo", "1.0", payload_size=1024)
    url = server.add_file(filename, data)
    for command in (["install", "--target", str(tmp_path / "t")], ["download", "-d", str(tmp_path / "d")]):
        run = ws(command[0], f"demo @ {url}", *command[1:], cache=cache)
        assert run.code == 2, run.err
        assert run.error_line(alone=True) == (
            f"error: demo @ {url}: NAME @ URL is not supported (there is no resolver for the name to matter): "
            "give the URL alone"
        )
    assert server.requests == []
