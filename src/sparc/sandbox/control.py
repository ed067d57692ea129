"""The sandbox control plane (``/_sandbox/...``), the request/byte counters and the connection registry.

The middleware that fills the counters is :class:`sparc.sandbox.front.SandboxMiddleware`.

Routes: ``GET /_sandbox/stats``, ``POST /_sandbox/stats/reset``, ``GET|POST|DELETE /_sandbox/faults``
(see :mod:`sparc.sandbox.faults` and FAULTS.md), ``POST /_sandbox/reset`` (stats and faults) and
``GET /_sandbox/process`` (the server's pid and CPU seconds, for benchmarks: the sandbox's CPU share
of a run is the difference of two readings over the run's wall time).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

CONTROL_PREFIX = "/_sandbox"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
UNMATCHED = "<unmatched>"
SCOPE_ROUTE = "sandbox.route"  # route template of a request answered before routing (a fault)
SCOPE_UNSENT = "sandbox.unsent"  # bytes still queued in the server when a fault cut the connection


class Stats:
    """Request counts per ``"<METHOD> <route template>"``, response body bytes sent and request
    body bytes received (read by the app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self._counts: dict[tuple[str, str], int] = {}  # (method, template): the key is built when read
            self.bytes_sent = 0
            self.bytes_received = 0

    def count(self, method: str, template: str) -> None:
        """One more request of ``method`` answered by the route ``template``."""
        key = (method, template)
        with self._lock:
            counts = self._counts
            counts[key] = counts.get(key, 0) + 1

    # the byte counters are written by the event loop's thread alone: no lock
    def add_bytes(self, n: int) -> None:
        self.bytes_sent += n

    def add_received(self, n: int) -> None:
        self.bytes_received += n

    @property
    def requests(self) -> dict[str, int]:
        """Request counts by ``"<METHOD> <route template>"``."""
        with self._lock:
            return {f"{method} {template}": n for (method, template), n in self._counts.items()}

    def snapshot(self) -> dict[str, Any]:
        requests = self.requests
        with self._lock:
            return {"requests_total": sum(requests.values()), "requests": requests,
                    "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received}


class Connection:
    """One client connection as the server sees it: its transport, the name of the uvicorn protocol
    class serving it, and an event set once it is lost."""

    def __init__(self, transport: asyncio.Transport, protocol: str = "") -> None:
        self.transport = transport
        self.protocol = protocol
        self.closed = asyncio.Event()

    async def wait_closed(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except TimeoutError:
            pass


class Connections:
    """Open connections by client address (the ASGI scope's ``client``), filled by :meth:`protocol`.

    Example: ``uvicorn.Config(app, http=connections.protocol())``; then, in a middleware,
    ``connections.get(scope["client"])``.
    """

    def __init__(self) -> None:
        self._open: dict[Any, Connection] = {}

    def get(self, client: Any) -> Connection | None:
        return self._open.get(tuple(client)) if client else None

    def hung_up(self, client: Any) -> Callable[[], bool]:
        """A test of whether the connection of ``client`` is lost or closing (always ``False``
        for a connection not registered here). Example: ``stream_chunks(chunks, gone)``."""
        conn = self.get(client)
        if conn is None:
            return lambda: False
        return lambda: conn.closed.is_set() or conn.transport.is_closing()

    def protocol(self, base: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol class registering its connections: ``base``, else
        :func:`http_protocol` (httptools' C parser, h11 without it)."""
        if base is None:
            base = http_protocol()
        name = base.__name__
        registry = self._open

        class RegisteredProtocol(base):  # type: ignore[misc, valid-type]
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                self._sandbox_connection = Connection(transport, name)  # type: ignore[arg-type]
                if self.client:
                    registry[tuple(self.client)] = self._sandbox_connection

            def connection_lost(self, exc: Exception | None) -> None:
                if self.client and registry.get(tuple(self.client)) is self._sandbox_connection:
                    del registry[tuple(self.client)]
                self._sandbox_connection.closed.set()
                super().connection_lost(exc)

        RegisteredProtocol.__name__ = RegisteredProtocol.__qualname__ = f"Registered{name}"
        return RegisteredProtocol


def http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol over httptools (the C parser of ``uvicorn[standard]``), or over
    the pure-Python h11 when httptools is not installed."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


# (mount prefix, id(route)) -> (route, template): the route held so its id is never reused
_TEMPLATES: dict[tuple[str, int], tuple[Route, str]] = {}


def route_template(scope: Scope) -> str:
    """The path pattern (mount prefixes included) of the endpoint that handled the request.

    ``<unmatched>`` when no endpoint did: no route, only a ``Mount`` matched (``/discover/nope``),
    or the method is not allowed.
    """
    route = scope.get("route")
    if not isinstance(route, Route) or (route.methods is not None and scope["method"] not in route.methods):
        return scope.get(SCOPE_ROUTE, UNMATCHED)
    key = (scope.get("root_path", ""), id(route))
    known = _TEMPLATES.get(key)
    if known is None or known[0] is not route:
        known = _TEMPLATES[key] = (route, key[0] + _CONVERTOR.sub(r"{\1}", route.path))
    return known[1]


def match_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The route template ``routes`` would give a request, without running it (``<unmatched>``)."""
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a convertor that rejects the value: not this route
            continue
        if match is not Match.FULL:
            continue
        if isinstance(route, Mount):
            return match_template(route.routes, {**scope, **child})
        return route_template({**scope, **child, "route": route})
    return UNMATCHED


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def get_stats(request: Request) -> Response:
    return JSONResponse(request.app.state.stats.snapshot())


async def reset_stats(request: Request) -> Response:
    request.app.state.stats.reset()
    return JSONResponse(request.app.state.stats.snapshot())


async def process(request: Request) -> Response:
    """The server process: ``pid``, ``cpu_seconds`` (user + system, every thread) so far, what
    serves this request: ``http`` (uvicorn's protocol class) and ``loop`` (the event loop's module),
    and ``gc_frozen``: objects kept out of the cyclic collector (what start-up made)."""
    conn = request.app.state.connections.get(request.scope.get("client"))
    return JSONResponse({"pid": os.getpid(), "cpu_seconds": time.process_time(),
                         "http": conn.protocol if conn else None,
                         "loop": type(asyncio.get_running_loop()).__module__,
                         "gc_frozen": gc.get_freeze_count()})


async def faults(request: Request) -> Response:
    """``GET`` lists the rules (with ``hits``/``remaining``), ``POST`` replaces them, ``DELETE`` clears."""
    plane = request.app.state.faults
    if request.method == "DELETE":
        plane.clear()
    elif request.method == "POST":
        try:
            specs = json.loads(await request.body())
        except (ValueError, RecursionError) as exc:
            return _error(f"the body must be a JSON list of fault rules: {exc}")
        try:
            plane.replace(specs)
        except ValueError as exc:
            return _error(str(exc))
    return JSONResponse(plane.listing())


async def reset(request: Request) -> Response:
    """Clear the stats and the fault rules."""
    request.app.state.stats.reset()
    request.app.state.faults.clear()
    return JSONResponse({"stats": request.app.state.stats.snapshot(), "faults": []})


routes = [
    Route("/stats", get_stats),
    Route("/stats/reset", reset_stats, methods=["POST"]),
    Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/reset", reset, methods=["POST"]),
    Route("/process", process),
]
