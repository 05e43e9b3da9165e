"""``FaultServer``: a threaded in-process HTTP/1.1 server whose files misbehave on request.

The server owns names, plans, counters and the request log; what each response looks like is decided by
the pure engine (``_engine.decide``) for a served file, by ``_routes`` for any other path (the index pages),
and written by ``_handler``. Which names a served directory answers is ``_directory``'s rule; how many
requests a client may have in flight, and the peaks tests read, are ``_limits``'. Tests and the CLI use the
same class, so a scenario reproduced in a shell behaves exactly like the one in the test that found it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

from wheelstream.testing import _routes
from wheelstream.testing._directory import ServedDirectory
from wheelstream.testing._engine import Decision, decide, status_decision
from wheelstream.testing._faults import FaultPlan
from wheelstream.testing._files import ServedFile, Version
from wheelstream.testing._handler import FaultHandler, HTTPServer, abort, send_body
from wheelstream.testing._limits import ConnectionLimit, InFlight
from wheelstream.testing._records import RequestRecord

__all__ = ["FaultServer", "RequestRecord"]

_LIMIT_FAULT = "ConnectionLimit"  # the fault name a refused request's record carries


def _combined(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header fields by lower-case name, repeated lines joined with ", " (RFC 9110 §5.3): a client may send
    ``If-None-Match`` as two lines, and keeping only the last one answered 200 where a tag matched."""
    combined: dict[str, str] = {}
    for name, value in fields:
        key = name.lower()
        combined[key] = f"{combined[key]}, {value}" if key in combined else value
    return combined


class FaultServer:
    """Serve named files (and optionally a directory) with per-file fault plans.

    Usable as a context manager; :attr:`url` is valid once started. Thread-safe: tests may change files and
    plans while clients are connected; a response already under way finishes on the version it started with.
    ``max_connections`` limits the requests in flight per client address (an int: refused with 503; a
    :class:`ConnectionLimit` for 429, ``Retry-After`` or a reset); see :meth:`set_connection_limit`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        directory: str | os.PathLike[str] | None = None,
        plan: FaultPlan | None = None,
        log: Callable[[str], None] | None = None,
        max_connections: int | ConnectionLimit | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._tree = ServedDirectory(directory) if directory is not None else None
        self.directory = self._tree.root if self._tree is not None else None
        self.default_plan = plan if plan is not None else FaultPlan()
        self.log = log
        self._files: dict[str, ServedFile] = {}
        self._from_tree: dict[str, ServedFile] = {}  # directory files met so far; keeps their request numbers
        self._plans: dict[str, FaultPlan] = {}
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0  # responses being written, refusals included: what wait_idle waits for
        self._flight = InFlight()
        self._limit = (
            ConnectionLimit(max_connections) if isinstance(max_connections, int) else max_connections
        )
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FaultServer:
        """Bind and serve in a daemon thread; port 0 picks a free port (see :attr:`port`)."""
        if self._httpd is not None:
            return self
        self._httpd = HTTPServer((self.host, self.port), self._dispatch, self.log)
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
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        httpd.join_connections(
            timeout=5
        )  # responses being written see the stop and end: no thread outlives it

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
        if found is not None or self._tree is None:
            return found
        path = self._tree.locate(name)  # asked every time: a file deleted or a link broken is gone at once
        if path is None:
            return None
        with self._lock:
            found = self._from_tree.get(name)
        if found is None:
            fresh = ServedFile(name, path)  # stat outside the lock
            with self._lock:
                found = self._from_tree.setdefault(name, fresh)
        return found

    def _all_names(self) -> list[str]:
        names = set(self._tree.names()) if self._tree is not None else set()
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
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def in_flight(self, name: str | None = None) -> int:
        """Requests admitted and not yet over, for ``name`` or overall (refused ones never count)."""
        return self._flight.count(name.lstrip("/") if name is not None else None)

    def peak_in_flight(self, name: str | None = None) -> int:
        """The most requests in flight at once, for ``name`` or overall, since start or :meth:`clear_log`."""
        return self._flight.peak(name.lstrip("/") if name is not None else None)

    def clear_log(self) -> None:
        """Forget recorded requests and restart the peaks; per-file request numbers keep counting."""
        with self._lock:
            self._records.clear()
            self._flight.reset_peaks()

    # -- connection limit ------------------------------------------------------------------------------

    @property
    def connection_limit(self) -> ConnectionLimit | None:
        """The limit on requests in flight per client address, None when unlimited."""
        return self._limit

    def set_connection_limit(
        self,
        limit: int | None,
        *,
        status: int = 503,
        retry_after: int | str | None = None,
        reset: bool = False,
    ) -> None:
        """Allow ``limit`` requests in flight per client address (None: no limit); refuse the next with
        ``status`` (+ ``Retry-After``) or, with ``reset=True``, an RST. Requests already in flight go on."""
        self._limit = None if limit is None else ConnectionLimit(limit, status, retry_after, reset)

    # -- request handling ------------------------------------------------------------------------------

    def _dispatch(self, handler: FaultHandler, method: str) -> None:
        path = unquote(urlsplit(handler.path).path)
        headers = _combined(handler.headers.items())
        client = str(handler.client_address[0])
        served = self._lookup(path.lstrip("/"))
        name = served.name if served is not None else None
        limit = self._limit
        admitted = self._flight.admit(client, name, limit)
        released = not admitted

        def finishing() -> None:  # frees the slot once: before the response's last byte, else at the end
            nonlocal released
            if not released:
                released = True
                self._flight.release(client, name)

        # A refused request never reaches the file, so it takes no number: "@1" stays "the first one served".
        number = served.next_number() if served is not None and admitted else 0
        with self._lock:
            record = RequestRecord(
                seq=len(self._records) + 1,
                number=number,
                method=method,
                path=handler.path,
                name=name,
                headers=headers,
                range=headers.get("range"),
                if_range=headers.get("if-range"),
                started=time.time(),
                client=client,
            )
            self._records.append(record)
            self._active += 1
        try:
            if not admitted:
                assert limit is not None
                self._refuse(handler, method, record, limit)
            else:
                if served is not None:
                    decision = decide(self.plan_for(served.name), number, served, method, headers)
                else:
                    decision = _routes.page(path, headers.get("accept"), self._listing)
                self._respond(handler, method, record, decision, finishing)
        except OSError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            handler.close_connection = True
        except BaseException as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            handler.close_connection = True
            raise
        finally:
            finishing()
            with self._idle:
                record.ended = time.time()
                self._active -= 1
                self._idle.notify_all()
            if self.log is not None:
                self.log(record.summary())

    def _respond(
        self,
        handler: FaultHandler,
        method: str,
        record: RequestRecord,
        decision: Decision,
        finishing: Callable[[], None] = lambda: None,
    ) -> None:
        """Write ``decision``; ``finishing`` runs just before the client can have the whole response."""
        record.status, record.length = decision.status, decision.length
        record.faults, record.cut = tuple(decision.faults), decision.is_cut and method != "HEAD"
        if decision.version is not None and decision.length > 0:
            record.body_range = (decision.offset, decision.offset + decision.length - 1)
        if method == "HEAD" or decision.send <= 0:
            finishing()  # the headers are all there is
        handler.write_head(decision.status, decision.headers)
        if method != "HEAD":
            send_body(handler.connection, decision, record, finishing, handler.server.stopping)  # type: ignore[attr-defined]
            if decision.is_cut:
                record.reset = decision.reset
                abort(handler, decision.reset)

    def _refuse(
        self, handler: FaultHandler, method: str, record: RequestRecord, limit: ConnectionLimit
    ) -> None:
        if limit.reset:
            record.faults, record.reset = (_LIMIT_FAULT,), True
            abort(handler, reset=True)
            return
        self._respond(
            handler, method, record, status_decision(limit.status, limit.retry_after, [_LIMIT_FAULT])
        )
