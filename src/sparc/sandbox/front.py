"""The sandbox's one layer in front of every service: counters, faults and error answers.

Every request pays for each layer it crosses. Starlette puts three in front of a router
(``ServerErrorMiddleware``, the app's middleware, ``ExceptionMiddleware``); :class:`SandboxApp`
puts one, :class:`SandboxMiddleware`, which does their work:

* counts requests by route template and the body bytes sent and received (``/_sandbox/...`` is
  not counted, and served through Starlette's usual layers);
* applies the fault rules of :class:`~sparc.sandbox.faults.Faults` when any is installed, around
  Starlette's own ``ExceptionMiddleware`` (so a fault also cuts an error answer, as before);
* answers the requests its ``direct`` handlers take (``(path prefix, answer)`` pairs: the asset
  store's small reads) itself, without the router, ``Request`` or ``Response``, when no fault
  rule is installed, counted as the app's answers are;
* answers an exception raised before the response started with the app's handler for it
  (``SandboxError`` → the service's own error body; ``HTTPException`` → Starlette's text answer),
  else with Starlette's plain ``500 Internal Server Error``, and re-raises that one for the log.

Example: ``SandboxApp(routes=routes, middleware=[Middleware(SandboxMiddleware, stats=...,
faults=..., connections=..., routes=routes, time_scale=1.0)], exception_handlers={...})``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from sparc.sandbox.control import CONTROL_PREFIX, SCOPE_UNSENT, Connections, Stats, route_template
from sparc.sandbox.faults import FaultMiddleware, Faults

_HANDLERS = "starlette.exception_handlers"  # where ExceptionMiddleware leaves them for routes

#: ``answer(scope)``: a request's whole answer as ``(status, raw headers, body, route template)``
#: without the app, or ``None`` to let the app answer it (see ``SandboxMiddleware``'s ``direct``).
DirectAnswer = Callable[[Scope], "tuple[int, list[tuple[bytes, bytes]], bytes, str] | None"]


class SandboxMiddleware:
    """Counts, faults and error answers in one layer (see the module).

    Body bytes (payload only: no status line, headers or chunk framing) count when passed to an
    open connection; bytes still queued when a fault cuts the connection are taken off again. A
    client that hangs up mid-answer may leave up to the server's write buffer (64 KiB) counted.
    ``bytes_received`` counts request body bytes as the app reads them (an upload cut off midway
    counts what arrived; a body nobody reads counts nothing; one drained by an injected error
    answer, to keep the connection usable, counts).
    """

    def __init__(self, app: ASGIApp, stats: Stats, faults: Faults, connections: Connections,
                 routes: Sequence[BaseRoute], time_scale: float,
                 handlers: Mapping[Any, ExceptionHandler] | None = None,
                 direct: Sequence[tuple[str, DirectAnswer]] = ()) -> None:
        self.app, self.stats, self.faults, self.connections = app, stats, faults, connections
        self.direct = tuple(direct)
        guarded = ExceptionMiddleware(app, handlers=handlers)
        # HTTPException → Starlette's answer, then the app's handlers (SandboxError → its body)
        self.handlers = (guarded._exception_handlers, guarded._status_handlers)
        self.faulty = FaultMiddleware(guarded, faults, connections, routes, time_scale)
        self.control = ServerErrorMiddleware(guarded)  # /_sandbox/...: Starlette's own layers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(CONTROL_PREFIX):
            await self.control(scope, receive, send)
            return
        scope[_HANDLERS] = self.handlers
        stats = self.stats
        client = scope.get("client")
        conn = self.connections.get(client) if client else None
        transport = conn.transport if conn is not None else None
        head = scope["method"] == "HEAD"
        if self.direct and not self.faults.armed:
            path = scope["path"]
            for prefix, answer_of in self.direct:
                if path.startswith(prefix):
                    try:
                        answer = answer_of(scope)
                    except Exception:  # noqa: BLE001 - the app runs it again, and answers it
                        answer = None
                    if answer is not None:
                        await self._send_direct(answer, scope, send, transport, head)
                        return
                    break
        counted = 0
        started = False

        async def counting_receive() -> Message:
            message = await receive()
            body = message.get("body")
            if body:
                stats.add_received(len(body))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal counted, started
            kind = message["type"]
            if kind == "http.response.start":
                started = True
            elif kind == "http.response.body" and not head \
                    and not (transport is not None and transport.is_closing()):
                n = len(message.get("body", b""))
                counted += n
                stats.add_bytes(n)
            await send(message)

        try:
            # with rules, faults wrap Starlette's own error answers, as they always did
            await (self.faulty if self.faults.armed else self.app)(scope, counting_receive, counting_send)
        except Exception as exc:
            await self._recover(exc, started, scope, receive, counting_send, send)
        finally:
            unsent = min(scope.get(SCOPE_UNSENT, 0), counted)
            if unsent:
                stats.add_bytes(-unsent)
            stats.count(scope["method"], route_template(scope))

    async def _send_direct(self, answer: tuple[int, list[tuple[bytes, bytes]], bytes, str],
                           scope: Scope, send: Send, transport: Any, head: bool) -> None:
        """Send a direct answer and count it as an answer through the app would be."""
        status, headers, body, template = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if body and not head and not (transport is not None and transport.is_closing()):
            self.stats.add_bytes(len(body))
        self.stats.count(scope["method"], template)

    async def _recover(self, exc: Exception, started: bool, scope: Scope, receive: Receive,
                       send: Send, raw_send: Send) -> None:
        """Answer ``exc`` raised before the answer started with its handler's answer (sent by
        ``send``), else with a 500 (by ``raw_send``: uncounted, as ``ServerErrorMiddleware`` did)
        and raise it again for the server's log."""
        handler = None
        if isinstance(exc, HTTPException):
            handler = self.handlers[1].get(exc.status_code)
        if handler is None:
            handler = _lookup_exception_handler(self.handlers[0], exc)
        if handler is None or started:
            if not started:
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, raw_send)
            if handler is not None:
                raise RuntimeError("Caught handled exception, but response already started.") from exc
            raise exc
        request = Request(scope, receive, send)
        if is_async_callable(handler):
            response: Response | None = await handler(request, exc)  # type: ignore[arg-type]
        else:
            response = await run_in_threadpool(handler, request, exc)  # type: ignore[arg-type]
        if response is not None:
            await response(scope, receive, send)
        exc.__traceback__ = None  # a reused exception instance must not pile up tracebacks


class SandboxApp(Starlette):
    """Starlette with :class:`SandboxMiddleware` (its one user middleware) as the only layer in
    front of the router, given the app's exception handlers."""

    def build_middleware_stack(self) -> ASGIApp:
        [(cls, args, kwargs)] = self.user_middleware
        return cls(self.router, *args, handlers=self.exception_handlers, **kwargs)
