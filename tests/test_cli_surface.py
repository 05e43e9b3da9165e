"""The command's surface as docs/cli.md describes it: what a source form that is not supported says, and the
help each command gives of its own options."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from conftest import ROOT, ws

from wheelstream.testing import FaultServer, build_wheel


def test_name_at_url_installs_the_wheel_at_url_and_checks_its_name(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``NAME @ URL`` was taken for a path (``no such file: six @ http:/host/…``, its ``//`` mangled), then
    refused; pip and uv install the URL's wheel, as requirements files already did here."""
    filename, data = build_wheel("demo", "1.0", payload_size=1024)
    url = server.add_file(filename, data)
    run = ws("install", f"demo @ {url}", "--target", str(tmp_path / "t"), cache=cache)
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()
    run = ws("download", f"Demo[extra] @ {url}", "-d", str(tmp_path / "d"), cache=cache)
    assert run.code == 0, run.err
    assert (tmp_path / "d" / filename).read_bytes() == data
    requests = len(server.requests)
    run = ws("install", f"other @ {url}", "--target", str(tmp_path / "t2"), cache=cache)
    assert run.code == 2, run.err
    assert run.error_line(alone=True) == f"error: other @ … names 'other', but the wheel {filename} is 'demo'"
    assert len(server.requests) == requests


def test_name_at_path_installs_that_file_and_a_missing_path_fails_before_any_download(
    server: FaultServer, cache: Path, tmp_path: Path
) -> None:
    """``NAME @ ./dist/x.whl`` is uv's direct reference to a file (it was taken for a path named "demo @
    ./dist/…" and refused as no such file, after every other wheel had been downloaded); a path that is no
    file now fails before anything is fetched, as pip fails."""
    filename, data = build_wheel("demo", "1.0", payload_size=1024)
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / filename).write_bytes(data)
    run = ws(
        "install", f"demo @ ./dist/{filename}", "--target", str(tmp_path / "t"), cache=cache, cwd=tmp_path
    )
    assert run.code == 0, run.err
    assert (tmp_path / "t" / "demo" / "payload.bin").is_file()
    recorded = (tmp_path / "t" / "demo-1.0.dist-info" / "direct_url.json").read_text()
    assert (tmp_path / "dist" / filename).as_uri() in recorded

    other, other_data = build_wheel("other", "1.0", payload_size=1024)
    url = server.add_file(other, other_data)
    run = ws(
        "install",
        url,
        f"demo @ ./gone/{filename}",
        "--target",
        str(tmp_path / "t2"),
        cache=cache,
        cwd=tmp_path,
    )
    assert run.code == 2, run.err
    assert run.error_line(alone=True) == f"error: no such file: gone/{filename}"
    assert server.requests == []


def _commands() -> Iterator[tuple[str, click.Command]]:
    """Every command docs/cli.md describes (``testbed`` is docs/testbed.md's), with its name as typed."""
    from wheelstream.cli import cli

    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None
        if name == "testbed":
            continue
        if isinstance(command, click.Group):
            for sub in command.list_commands(context):
                subcommand = command.get_command(context, sub)
                assert subcommand is not None
                yield f"{name} {sub}", subcommand
        else:
            yield name, command


def test_every_option_of_every_command_is_in_docs_cli_md() -> None:
    """What ``--help`` offers, docs/cli.md names (--extra, --group, -h were missing)."""
    from wheelstream.cli import cli

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [
        f"{name} {opt}"
        for name, command in [("", cli), *_commands()]
        for param in command.get_params(click.Context(command))
        if isinstance(param, click.Option)
        for opt in param.opts + param.secondary_opts
        if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text)
    ]
    assert missing == []


@pytest.mark.parametrize("command", ["uninstall", "list", "sync"])
def test_environment_options_say_what_this_command_does_with_them(command: str, cache: Path) -> None:
    """uninstall's and list's --python spoke of --target, their --prefix said "Install into DIR": install's."""
    run = ws(command, "--help", cache=cache)
    assert run.code == 0, run.err
    assert "--target" not in run.out
    assert "Install into" not in run.out


def test_cache_list_help_is_for_its_user(cache: Path) -> None:
    """It showed an internal docstring (``Cache.at`` first reclaims ...)."""
    for args in (["cache", "list", "--help"], ["cache", "--help"]):
        run = ws(*args, cache=cache)
        assert run.code == 0, run.err
        assert "``" not in run.out
        assert "Cache.at" not in run.out


def test_one_file_named_as_a_url_and_as_name_at_url_is_held_to_both_hashes(
    server: FaultServer, tmp_path: Path
) -> None:
    """The second naming's allowed hashes were dropped when the two were taken as one file: a wheel none of
    them allowed installed."""
    import wheelstream
    from wheelstream.errors import HashMismatch

    filename, data = build_wheel("demo", "1.0", payload_size=1024)
    url = server.add_file(filename, data)
    with pytest.raises(HashMismatch, match="hashes that have none in common"):
        wheelstream.install(
            [url, f"demo @ {url}"],
            tmp_path / "t",
            cache_dir=tmp_path / "c",
            hashes={url: ["a" * 64, "b" * 64], f"demo @ {url}": ["c" * 64, "d" * 64]},
        )
    secret = url.replace("http://", "http://user:s3cret@")
    run = ws(
        "install", f"demo @ {secret}", "--require-hashes", "-t", str(tmp_path / "t2"), cache=tmp_path / "c2"
    )
    assert run.code == 2, run.err
    assert "s3cret" not in run.err
