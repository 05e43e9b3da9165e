"""``wheelstream testbed``: the fault engine as a standalone server for pip, uv or any other client.

Every shortcut option is sugar for ``--fault NAME=VALUE``; the value may carry ``@REQUESTS`` (see
``wheelstream.testing._spec``), so ``--cut 50%@1`` and ``--fault cut=50%@1`` are the same scenario. Faults
apply to every served file, each file counting its own requests. ``--max-connections`` is no fault but the
server-wide limit on requests in flight per client address (``_limits``), in the same ``:``-separated style.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from wheelstream.errors import UsageError
from wheelstream.testing._faults import Fault, FaultPlan
from wheelstream.testing._limits import ConnectionLimit
from wheelstream.testing._server import FaultServer
from wheelstream.testing._spec import parse_connection_limit, parse_fault

__all__ = ["serve", "testbed"]

_VALUE_SHORTCUTS = {
    "cut": "N, N%, N:reset; e.g. 50%@1 (first request cut at half its body)",
    "cut_every": "K: every request delivers K body bytes, then drops",
    "stall": "N:T: pause T seconds after N body bytes",
    "throttle": "B: bytes per second (k, M, Ki, Mi suffixes)",
    "change_after": "K: requests after the K-th see changed bytes, ETag, Last-Modified (no @REQUESTS)",
    "corrupt": "N[:MASK]: flip bits of the byte at file offset N",
    "status": "CODE[:RETRY_AFTER][@REQUESTS]; e.g. 503:1@1-2",
    "status_seq": "CODES[:RETRY_AFTER]; e.g. 503,429:1 (request 1 -> 503, 2 -> 429; no @REQUESTS)",
}
_FLAG_SHORTCUTS = {
    "ignore_range": "answer Range with 200 and the whole body",
    "wrong_range_start": "answer Range with a 206 starting 1 byte early (-f wrong-range-start=SHIFT)",
    "weak_etag": 'send ETag W/"..." only',
    "no_validators": "send neither ETag nor Last-Modified",
    "gzip": "gzip every body (Content-Encoding: gzip)",
}


def _with_shortcuts(f: click.decorators.FC) -> click.decorators.FC:
    for name, help_text in reversed(_VALUE_SHORTCUTS.items()):
        flag = "--" + name.replace("_", "-")
        f = click.option(flag, name, multiple=True, metavar="SPEC", help=help_text)(f)
    for name, help_text in reversed(_FLAG_SHORTCUTS.items()):
        flag = "--" + name.replace("_", "-")
        f = click.option(flag, name, is_flag=True, help=help_text)(f)
    return f


@click.group()
def testbed() -> None:
    """Serve wheels over HTTP with reproducible network faults."""


@testbed.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option("-f", "--fault", "faults", multiple=True, metavar="SPEC", help="NAME[=ARGS][@REQUESTS]")
@click.option(
    "--max-connections",
    metavar="N[:CODE[:RETRY_AFTER]]|N:reset",
    help="At most N requests in flight per client address; refuse the next with CODE (503), "
    "e.g. 4, 2:429:1, or with a TCP reset (4:reset).",
)
@click.option("-q", "--quiet", is_flag=True, help="No per-request log on stderr.")
@_with_shortcuts
def serve(
    directory: Path,
    host: str,
    port: int,
    faults: tuple[str, ...],
    max_connections: str | None,
    quiet: bool,
    **shortcuts: object,
) -> None:
    """Serve DIRECTORY (files, /simple/ index) with FAULTS until Ctrl-C; prints the base URL first."""
    try:
        limit = parse_connection_limit(max_connections) if max_connections is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--max-connections'") from exc
    specs = list(faults)
    for name, value in shortcuts.items():
        spec_name = name.replace("_", "-")
        if isinstance(value, tuple):
            specs += [f"{spec_name}={v}" for v in value]
        elif value:
            specs.append(spec_name)
    parsed: list[Fault] = []
    for spec in specs:
        try:
            parsed.append(parse_fault(spec))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="fault") from exc
    plan = FaultPlan(*parsed)

    banner_done = threading.Event()

    def log(line: str) -> None:
        if not quiet:
            banner_done.wait()  # a request answered before the banner is out logs after it
            click.echo(line, err=True)

    server = FaultServer(host, port, directory=directory, plan=plan, log=log, max_connections=limit)

    # Before the server starts, so a script that stops it the moment it reads the URL gets "stopped" and exit 0,
    # not the default SIGTERM death or the install command's "interrupted" message.
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        try:
            try:
                server.start()
            except OSError as exc:  # a port taken, an address not this machine's: the caller's choice
                raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            _banner(server, plan, limit)
        finally:
            banner_done.set()
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
        click.echo("stopped", err=True)


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _banner(server: FaultServer, plan: FaultPlan, limit: ConnectionLimit | None) -> None:
    """The index, faults and limit (stderr), then the URL (stdout's first line, what scripts wait for): a
    script that stops the server the moment it reads the URL still finds the whole banner."""
    click.echo(f"simple index: {server.url}/simple/", err=True)
    if plan:
        click.echo(f"faults: {plan!r}", err=True)
    if limit is not None:
        click.echo(f"connection limit: {limit} per client address", err=True)
    sys.stderr.flush()
    click.echo(f"{server.url}/", nl=True)
    sys.stdout.flush()


@testbed.command("make-wheel")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="demo", show_default=True)
@click.option("--version", "version", default="1.0", show_default=True)
@click.option("--size", default="256Ki", show_default=True, help="Payload bytes (k, M, Ki, Mi suffixes).")
def make_wheel(directory: Path, name: str, version: str, size: str) -> None:
    """Write a small valid pure-Python wheel into DIRECTORY, to have something to serve."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from wheelstream.testing._spec import parse_size
    from wheelstream.testing._wheel import build_wheel

    try:
        payload = parse_size(size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--size") from None
    if payload < 0:
        raise click.BadParameter(f"{size!r} is negative", param_hint="--size")
    filename, data = build_wheel(name, version, payload_size=payload)
    try:  # a name or version no installer reads would give a file the index never lists
        parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise click.UsageError(f"--name {name!r} --version {version!r}: {exc}") from None
    directory.mkdir(parents=True, exist_ok=True)
    (directory / filename).write_bytes(data)
    click.echo(directory / filename)
