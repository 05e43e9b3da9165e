"""``FaultServer``: a threaded in-process HTTP/1.1 server whose files misbehave on request.

The server owns names, plans, counters and the request log; what each response looks like is decided by
the pure engine (``_engine.decide``) for a served file, by ``_routes`` for any other path (the index pages),
and written by ``_handler``. Tests and the CLI use the same class, so a scenario reproduced in a shell
behaves exactly like the one in the test that found it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from wheelstream.testing import _routes
from wheelstream.testing._engine import decide
from wheelstream.testing._faults import FaultPlan
from wheelstream.testing._files import ServedFile, Version
from wheelstream.testing._handler import FaultHandler, abort, send_body

__all__ = ["FaultServer", "RequestRecord"]


@dataclass
class RequestRecord:
    """What the server received and sent for one request; ``headers`` keys are lower-case."""

    seq: int  # position in the server-wide log, from 1
    number: int  # per-file request number the faults were scoped by; 0 for pages that are not files
    method: str
    path: str
    name: str | None  # served file name, None for index pages and 404s
    headers: dict[str, str]
    range: str | None
    if_range: str | None
    started: float
    status: int | None = None
    length: int | None = None  # declared Content-Length
    bytes_sent: int = 0  # body bytes written to the socket
    cut: bool = False
    faults: tuple[str, ...] = ()
    ended: float | None = None
    error: str | None = None

    def summary(self) -> str:
        """One log line: what was asked, what was answered, how much of it left, which faults."""
        asked = f" {self.range}" if self.range else ""
        asked += f" if-range={self.if_range}" if self.if_range else ""
        number = f" #{self.number}" if self.number else ""
        sent = f"{self.bytes_sent}/{self.length}" if self.length is not None else str(self.bytes_sent)
        extra = f" [{', '.join(self.faults)}]" if self.faults else ""
        extra += " CUT" if self.cut else ""
        extra += f" {self.error}" if self.error else ""
        return f"{self.method} {self.path}{number}{asked} -> {self.status} sent {sent}{extra}"

    @property
    def content_range(self) -> tuple[int, int] | None:
        """``(first, last)`` of the requested range, for asserts like "the rerun asked for the tail"."""
        if self.range is None or not self.range.startswith("bytes="):
            return None
        first, _, last = self.range[6:].partition("-")
        try:
            return int(first), int(last) if last else -1
        except ValueError:
            return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FaultServer) -> None:
        self.owner = owner
        self.log: Callable[[str], None] | None = owner.log
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, FaultHandler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.connections.discard(request)

    def dispatch(self, handler: FaultHandler, method: str) -> None:
        self.owner._dispatch(handler, method)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-body is routine here, not worth a traceback


class FaultServer:
    """Serve named files (and optionally a directory) with per-file fault plans.

    Usable as a context manager; :attr:`url` is valid once started. Thread-safe: tests may change files and
    plans while clients are connected; a response already under way finishes on the version it started with.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        directory: str | os.PathLike[str] | None = None,
        plan: FaultPlan | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.directory = Path(directory).resolve() if directory is not None else None
        self.default_plan = plan if plan is not None else FaultPlan()
        self.log = log
        self._files: dict[str, ServedFile] = {}
        self._plans: dict[str, FaultPlan] = {}
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FaultServer:
        """Bind and serve in a daemon thread; port 0 picks a free port (see :attr:`port`)."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, and close kept-alive connections so no client hangs on a dead test."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with httpd.conn_lock:
            for conn in list(httpd.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Block until KeyboardInterrupt; for the CLI."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, name: str) -> str:
        """The URL a client fetches ``name`` from."""
        return f"{self.url}/{quote(name.lstrip('/'))}"

    # -- content ---------------------------------------------------------------------------------------

    def add_file(self, name: str, data: bytes | str | os.PathLike[str], plan: FaultPlan | None = None) -> str:
        """Serve ``data`` (bytes, or a path served with sendfile) at ``/name``; returns its URL."""
        name = name.lstrip("/")
        served = ServedFile(name, data)
        with self._lock:
            self._files[name] = served
            if plan is not None:
                self._plans[name] = plan
        return self.url_for(name)

    def replace_file(self, name: str, data: bytes | str | os.PathLike[str]) -> None:
        """New content with a new ETag and a later Last-Modified: the file changed on the server."""
        self._served(name).replace(data)

    def set_plan(self, name: str, plan: FaultPlan) -> None:
        """Change the faults of ``name``; request numbering continues (it counts requests, not plans)."""
        name = name.lstrip("/")
        self._served(name)
        with self._lock:
            self._plans[name] = plan

    def plan_for(self, name: str) -> FaultPlan:
        """The plan in force for ``name`` (its own, else the server's default plan)."""
        with self._lock:
            return self._plans.get(name.lstrip("/"), self.default_plan)

    def version(self, name: str) -> Version:
        """The current version (ETag, Last-Modified, sha256) of ``name``."""
        return self._served(name).current()

    def _served(self, name: str) -> ServedFile:
        found = self._lookup(name.lstrip("/"))
        if found is None:
            raise KeyError(name)
        return found

    def _lookup(self, name: str) -> ServedFile | None:
        with self._lock:
            found = self._files.get(name)
        if found is not None or self.directory is None or not name:
            return found
        path = (self.directory / name).resolve()
        if not path.is_relative_to(self.directory) or not path.is_file():
            return None
        with self._lock:
            return self._files.setdefault(name, ServedFile(name, path))

    def _all_names(self) -> list[str]:
        names = set()
        if self.directory is not None:
            for p in self.directory.rglob("*"):
                if p.is_file() and not any(
                    part.startswith(".") for part in p.relative_to(self.directory).parts
                ):
                    names.add(p.relative_to(self.directory).as_posix())
        with self._lock:
            names.update(self._files)
        return sorted(names)

    def _listing(self) -> Iterator[tuple[str, Version]]:
        """Every served file with its current version, in name order: what the index pages list."""
        for name in self._all_names():
            served = self._lookup(name)
            if served is not None:
                yield name, served.current()

    # -- observation -----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of every request so far, in arrival order."""
        with self._lock:
            return [dataclasses.replace(r) for r in self._records]

    def requests_for(self, name: str) -> list[RequestRecord]:
        """Snapshot of the requests for one file."""
        name = name.lstrip("/")
        return [r for r in self.requests if r.name == name]

    def bytes_sent(self, name: str) -> int:
        """Body bytes sent for ``name`` over all its requests."""
        return sum(r.bytes_sent for r in self.requests_for(name))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no response is being written (e.g. after a client gave up mid-body)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def clear_log(self) -> None:
        """Forget recorded requests; per-file request numbers keep counting."""
        with self._lock:
            self._records.clear()

    # -- request handling ------------------------------------------------------------------------------

    def _dispatch(self, handler: FaultHandler, method: str) -> None:
        path = unquote(urlsplit(handler.path).path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        served = self._lookup(path.lstrip("/"))
        number = served.next_number() if served is not None else 0
        with self._lock:
            record = RequestRecord(
                seq=len(self._records) + 1,
                number=number,
                method=method,
                path=handler.path,
                name=served.name if served is not None else None,
                headers=headers,
                range=headers.get("range"),
                if_range=headers.get("if-range"),
                started=time.time(),
            )
            self._records.append(record)
            self._in_flight += 1
        try:
            if served is not None:
                decision = decide(self.plan_for(served.name), number, served, method, headers)
            else:
                decision = _routes.page(path, headers.get("accept"), self._listing)
            record.status, record.length = decision.status, decision.length
            record.faults, record.cut = tuple(decision.faults), decision.is_cut and method != "HEAD"
            handler.write_head(decision.status, decision.headers)
            if method != "HEAD":
                send_body(handler.connection, decision, record)
                if decision.is_cut:
                    abort(handler, decision.reset)
        except OSError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            handler.close_connection = True
        finally:
            with self._idle:
                record.ended = time.time()
                self._in_flight -= 1
                self._idle.notify_all()
            if self.log is not None:
                self.log(record.summary())
