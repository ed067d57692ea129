"""The sandbox control plane (``/_sandbox/...``) and the request/byte counters behind it."""

from __future__ import annotations

import re
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_sandbox"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
UNMATCHED = "<unmatched>"


class Stats:
    """Request counts per ``"<METHOD> <route template>"`` and response body bytes sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests: dict[str, int] = {}
            self.bytes_sent = 0

    def count(self, key: str) -> None:
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests_total": sum(self.requests.values()), "requests": dict(self.requests),
                    "bytes_sent": self.bytes_sent}


def route_template(scope: Scope) -> str:
    """The path pattern (mount prefixes included) of the endpoint that handled the request.

    ``<unmatched>`` when no endpoint did: no route, only a ``Mount`` matched (``/discover/nope``),
    or the method is not allowed.
    """
    route = scope.get("route")
    if not isinstance(route, Route) or (route.methods is not None and scope["method"] not in route.methods):
        return UNMATCHED
    return scope.get("root_path", "") + _CONVERTOR.sub(r"{\1}", route.path)


class StatsMiddleware:
    """Counts requests by route template and body bytes at the ASGI ``send`` level (streams included)."""

    def __init__(self, app: ASGIApp, stats: Stats) -> None:
        self.app, self.stats = app, stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.stats.add_bytes(len(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.stats.count(f"{scope['method']} {route_template(scope)}")


async def get_stats(request: Request) -> Response:
    return JSONResponse(request.app.state.stats.snapshot())


async def reset_stats(request: Request) -> Response:
    request.app.state.stats.reset()
    return JSONResponse(request.app.state.stats.snapshot())


routes = [Route("/stats", get_stats), Route("/stats/reset", reset_stats, methods=["POST"])]
