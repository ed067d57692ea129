"""The sandbox's one middleware in front of every service: request and byte counters, then faults.

Counting and fault injection run in one layer because every request pays for each layer it
crosses; with no fault rule installed, the fault step is skipped without a lock or a glob.

Example: ``Starlette(..., middleware=[Middleware(SandboxMiddleware, stats=..., faults=...,
connections=..., routes=routes, time_scale=1.0)])``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparc.sandbox.control import CONTROL_PREFIX, SCOPE_UNSENT, Connections, Stats, route_template
from sparc.sandbox.faults import FaultMiddleware, Faults


class SandboxMiddleware:
    """Counts requests by route template, response body bytes handed to the socket and request
    body bytes the app read; applies :class:`~sparc.sandbox.faults.Faults` rules (``/_sandbox/...``
    excepted from both).

    Body bytes (payload only: no status line, headers or chunk framing) count when passed to an
    open connection; bytes still queued when a fault cuts the connection are taken off again. A
    client that hangs up mid-answer may leave up to the server's write buffer (64 KiB) counted.
    ``bytes_received`` counts request body bytes as the app reads them (an upload cut off midway
    counts what arrived; a body nobody reads, e.g. under a fault answered first, counts nothing).
    """

    def __init__(self, app: ASGIApp, stats: Stats, faults: Faults, connections: Connections,
                 routes: Sequence[BaseRoute], time_scale: float) -> None:
        self.app, self.stats, self.faults, self.connections = app, stats, faults, connections
        self.faulty = FaultMiddleware(app, faults, connections, routes, time_scale)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        stats = self.stats
        client = scope.get("client")
        conn = self.connections.get(client) if client else None
        transport = conn.transport if conn is not None else None
        head = scope["method"] == "HEAD"
        counted = 0

        async def counting_receive() -> Message:
            message = await receive()
            body = message.get("body")
            if body:
                stats.add_received(len(body))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.body" and not head \
                    and not (transport is not None and transport.is_closing()):
                n = len(message.get("body", b""))
                counted += n
                stats.bytes_sent += n  # the event loop's thread is the only writer
            await send(message)

        app = self.faulty if self.faults.armed else self.app
        try:
            await app(scope, counting_receive, counting_send)
        finally:
            unsent = min(scope.get(SCOPE_UNSENT, 0), counted)
            if unsent:
                stats.add_bytes(-unsent)
            stats.count(scope["method"], route_template(scope))
