"""Fault injection: rules that make matching sandbox requests fail as networks and services do.

A rule names a route glob and a kind of fault; the :class:`FaultMiddleware` applies the first rule
that matches a request (and whose ``rate`` draw succeeds). Control routes (``/_sandbox/...``) are
never faulted. Example (the same JSON is accepted by ``--faults FILE`` and
``POST /_sandbox/faults``)::

    [{"route": "GET /_assets/*", "kind": "truncate", "after_bytes": 1000, "count": 2},
     {"route": "/discover/search/*", "kind": "status", "status": 503, "rate": 0.5}]

Kinds (see FAULTS.md for the full description):

- ``reset``: drop the TCP connection with a RST, before the answer or after ``after_bytes`` body
  bytes.
- ``status``: answer ``status`` (default 503) with the emulated service's own error body.
- ``retry_after``: answer ``status`` (default 429) with ``Retry-After: seconds`` (default 1).
- ``slow``: wait ``seconds`` x time-scale before the answer, or stall after ``after_bytes``.
- ``truncate``: send the headers (full Content-Length) and ``after_bytes`` body bytes, then close.
- ``corrupt``: flip one byte (XOR 0xFF) at body offset ``after_bytes``.
- ``expire``: answer as an expired presigned URL (S3 XML 403 ``AccessDenied``).

``after_bytes`` counts bytes of this response's body (for a ``Range`` request, from the start of
the range). Its default is mid-body: half the Content-Length, or the middle of the first body
chunk when the length is not announced.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import math
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparc.sandbox.assets.errors import S3Error, request_expired, request_ids
from sparc.sandbox.control import (
    CONTROL_PREFIX,
    SCOPE_ROUTE,
    SCOPE_UNSENT,
    Connection,
    Connections,
    match_template,
)

KINDS = ("reset", "status", "retry_after", "slow", "truncate", "corrupt", "expire")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
COMMON_FIELDS = ("route", "kind", "rate", "count")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "reset": ("after_bytes",),
    "status": ("status",),
    "retry_after": ("status", "seconds"),
    "slow": ("seconds", "after_bytes"),
    "truncate": ("after_bytes",),
    "corrupt": ("after_bytes",),
    "expire": (),
}
REPORT_FIELDS = ("hits", "remaining")  # in GET's listing; ignored when a listing is posted back
DRAIN_TIMEOUT = 5.0  # seconds to wait for queued bytes to reach the socket before a cut
#: Longest ``seconds`` a rule may ask for: a ``slow`` delay, and a ``retry_after`` header value.
MAX_SECONDS = {"slow": 3600.0, "retry_after": 86400.0}


class FaultRuleError(ValueError):
    """A rule list that cannot be used; the message says which rule and why."""


@dataclass
class FaultRule:
    """One validated rule, with its own random stream and use counter.

    Example: ``FaultRule.parse({"route": "GET /_assets/*", "kind": "reset"}, seed=1, index=0)``.
    """

    route: str
    kind: str
    rate: float = 1.0
    count: int | None = None
    status: int | None = None
    seconds: float | None = None
    after_bytes: int | None = None
    method: str | None = None
    pattern: str = "*"
    hits: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def parse(cls, spec: Any, seed: int, index: int) -> FaultRule:
        where = f"rule {index}"
        if not isinstance(spec, dict):
            raise FaultRuleError(f"{where}: expected an object, got {type(spec).__name__}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultRuleError(f"{where}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
        allowed = COMMON_FIELDS + KIND_FIELDS[kind]
        for name in spec:
            if name not in allowed and name not in REPORT_FIELDS:
                raise FaultRuleError(f"{where}: field {name!r} does not apply to kind {kind!r} "
                                     f"(allowed: {', '.join(allowed)})")
        method, pattern = _parse_route(spec.get("route"), where)
        rate = _number(spec, "rate", where, 1.0)
        assert rate is not None
        if not 0 <= rate <= 1:
            raise FaultRuleError(f"{where}: rate must be between 0 and 1; got {rate!r}")
        count = _integer(spec, "count", where, minimum=1)
        seconds = _number(spec, "seconds", where, 1.0 if kind in ("slow", "retry_after") else None)
        if seconds is not None and not (0 <= seconds < math.inf):
            raise FaultRuleError(f"{where}: seconds must be a finite number >= 0; got {seconds!r}")
        if seconds is not None and seconds > MAX_SECONDS.get(kind, math.inf):
            raise FaultRuleError(f"{where}: seconds must be at most {MAX_SECONDS[kind]:g} for "
                                 f"kind {kind!r}; got {seconds!r}")
        status = _integer(spec, "status", where, minimum=400, maximum=599)
        if status is None and kind in ("status", "retry_after"):
            status = 503 if kind == "status" else 429
        return cls(route=spec["route"], kind=kind, rate=rate, count=count, status=status,
                   seconds=seconds, after_bytes=_integer(spec, "after_bytes", where, minimum=0),
                   method=method, pattern=pattern, rng=random.Random(f"{seed}/{index}"))

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatchcase(path, self.pattern)

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else max(self.count - self.hits, 0)

    def to_json(self) -> dict[str, Any]:
        """The rule as given (defaults filled in), with ``hits`` and ``remaining`` (null = no limit)."""
        out: dict[str, Any] = {"route": self.route, "kind": self.kind, "rate": self.rate}
        for name in ("count", *KIND_FIELDS[self.kind]):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return {**out, "hits": self.hits, "remaining": self.remaining}


def _parse_route(route: Any, where: str) -> tuple[str | None, str]:
    """``"GET /_assets/*"`` → ``("GET", "/_assets/*")``; ``"/x"`` → ``(None, "/x")``."""
    if not isinstance(route, str) or not route.strip():
        raise FaultRuleError(f"{where}: route must be a path glob such as \"/_assets/*\" or "
                             f"\"GET /zipit/*\"; got {route!r}")
    head, _, pattern = route.strip().rpartition(" ")
    method = head.strip() or None
    if method is not None and method not in METHODS:
        raise FaultRuleError(f"{where}: unknown method {method!r} in route {route!r} "
                             f"(use one of {', '.join(METHODS)}, or no method)")
    if not pattern.startswith(("/", "*")):
        raise FaultRuleError(f"{where}: route pattern must start with '/' or '*'; got {pattern!r}")
    if pattern.startswith(CONTROL_PREFIX):
        raise FaultRuleError(f"{where}: {CONTROL_PREFIX} routes are never faulted")
    return method, pattern


def _number(spec: dict[str, Any], name: str, where: str, default: float | None) -> float | None:
    value = spec.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultRuleError(f"{where}: {name} must be a number; got {value!r}")
    return float(value)


def _integer(spec: dict[str, Any], name: str, where: str, minimum: int,
             maximum: int | None = None) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        bounds = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise FaultRuleError(f"{where}: {name} must be an integer {bounds}; got {value!r}")
    return value


def parse_rules(specs: Any, seed: int) -> list[FaultRule]:
    """Validate a JSON rule list; :class:`FaultRuleError` names the first problem.

    Example: ``parse_rules([{"route": "/zipit/*", "kind": "status"}], seed=0)``.
    """
    if not isinstance(specs, list):
        raise FaultRuleError("faults must be a JSON list of rules, e.g. "
                             '[{"route": "/_assets/*", "kind": "reset"}]')
    return [FaultRule.parse(spec, seed, i) for i, spec in enumerate(specs)]


def load_rules_file(path: str) -> list[dict[str, Any]]:
    """The rule list of a ``--faults FILE`` (validated); :class:`FaultRuleError` when unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            specs = json.load(f)
    except OSError as exc:
        raise FaultRuleError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise FaultRuleError(f"{path} is not JSON: {exc}") from exc
    try:
        parse_rules(specs, 0)
    except FaultRuleError as exc:
        raise FaultRuleError(f"{path}: {exc}") from exc
    return specs


class Faults:
    """The active rule list. ``seed`` makes every rule's rate draws reproducible.

    Each rule draws from its own stream seeded with ``(seed, position)``, so posting the same list
    again replays the same decisions for the same sequence of requests. Example::

        faults = Faults(seed=7)
        faults.replace([{"route": "/_assets/*", "kind": "reset", "rate": 0.5}])
        rule = faults.pick("GET", "/_assets/bucket/key")   # a FaultRule or None
    """

    def __init__(self, seed: int | None = None, rules: Iterable[dict[str, Any]] = ()) -> None:
        self.seed = random.SystemRandom().randrange(2**32) if seed is None else seed
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        #: Whether any rule is installed: read on every request without the lock (a plain bool)
        self.armed = False
        self.replace(list(rules))

    def replace(self, specs: Any) -> list[dict[str, Any]]:
        """Validate and install a new rule list (all or nothing); returns the listing."""
        rules = parse_rules(specs, self.seed)
        with self._lock:
            self._rules = rules
            self.armed = bool(rules)
        return self.listing()

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self.armed = False

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The first matching, unspent rule whose rate draw succeeds (its hit is counted)."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.matches(method, path):
                    continue
                if rule.rate >= 1 or rule.rng.random() < rule.rate:
                    rule.hits += 1
                    return rule
        return None


# --- error bodies in each emulated service's own shape -------------------------------------------

_S3_ERRORS = {
    400: ("InvalidRequest", "Invalid Request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    501: ("NotImplemented", "A header you provided implies functionality that is not implemented."),
    503: ("SlowDown", "Please reduce your request rate."),
}
AKKA_500 = "There was an internal server error."  # akka-http's text for an uncaught exception


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def s3_error(path: str, status: int) -> S3Error:
    """The asset store's S3 error for ``status`` (``path`` under ``/_assets/``)."""
    code, message = _S3_ERRORS.get(status, (_phrase(status).replace(" ", ""), _phrase(status)))
    return S3Error(status, code, message, path[len("/_assets"):])


def s3_error_body(status: int) -> tuple[bytes, str]:
    """An injected fault on an S3-compatible store other than ``/_assets`` (the o²S²PARC and upload
    storage): :func:`s3_error`'s XML body, for :func:`register_error_body`."""
    return s3_error("", status).body(request_ids()).encode(), "application/xml"


#: Error bodies of services that register their own: ``(path prefix, body(status))``.
_ERROR_BODIES: list[tuple[str, Callable[[int], tuple[bytes, str]]]] = []


def register_error_body(prefix: str, body: Callable[[int], tuple[bytes, str]]) -> None:
    """Make injected errors on paths under ``prefix`` look like that service's own errors.

    Example: ``register_error_body("/v0/", lambda status: (b'{"errors": ["..."]}', "application/json"))``.
    The longest matching prefix wins.
    """
    _ERROR_BODIES[:] = sorted([*(e for e in _ERROR_BODIES if e[0] != prefix), (prefix, body)],
                              key=lambda e: -len(e[0]))


def error_body(path: str, status: int) -> tuple[bytes, str]:
    """``(body, content type)`` of an error ``status`` from a service other than the asset store.

    Registered services (:func:`register_error_body`) first; ``/discover``: a JSON string
    (500: akka-http's plain text); ``/zipit`` and anything else: plain text. (``/_assets``
    answers with :func:`s3_error`.)
    """
    for prefix, body in _ERROR_BODIES:
        if path.startswith(prefix):
            return body(status)
    if path.startswith("/discover/"):
        if status == 500:
            return AKKA_500.encode(), "text/plain; charset=UTF-8"
        return json.dumps(_phrase(status)).encode(), "application/json"
    return _phrase(status).encode(), "text/plain; charset=utf-8"


def expired_error(scope: Scope) -> S3Error:
    """S3's answer to a presigned URL past its expiry, as the asset route writes it."""
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    now = time.time()
    try:
        issued = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        lifetime = int(query["X-Amz-Expires"])
    except (KeyError, ValueError):
        issued, lifetime = int(now) - 3601, 3600
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return request_expired(lifetime, time.strftime(stamp, time.gmtime(min(issued + lifetime, now - 1))),
                           time.strftime(stamp, time.gmtime(now)), scope["path"])


# --- the middleware ---------------------------------------------------------------------------------


class _Cut(Exception):
    """Raised into the endpoint's ``send`` once a fault has closed the connection."""


class FaultMiddleware:
    """Applies the first matching rule of ``faults`` to each request (control routes excepted).

    ``connections`` gives the socket behind a request (needed to drop it); ``routes`` name the
    route template of requests that never reach the app; ``time_scale`` multiplies delays.
    """

    def __init__(self, app: ASGIApp, faults: Faults, connections: Connections,
                 routes: Sequence[BaseRoute], time_scale: float) -> None:
        self.app, self.faults, self.connections = app, faults, connections
        self.routes, self.time_scale = routes, time_scale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        rule = self.faults.pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        conn = self.connections.get(scope.get("client"))
        if rule.kind == "slow" and rule.after_bytes is None:
            if await _wait_unless_gone(conn, (rule.seconds or 0) * self.time_scale):
                scope[SCOPE_ROUTE] = match_template(self.routes, scope)
                return  # the client hung up while it waited: nobody to answer
            await self.app(scope, receive, send)
        elif rule.kind in ("status", "retry_after", "expire"):
            scope[SCOPE_ROUTE] = match_template(self.routes, scope)
            await self._answer(rule, scope, receive, send)
        elif rule.kind == "reset" and rule.after_bytes is None:
            scope[SCOPE_ROUTE] = match_template(self.routes, scope)
            await _cut(conn, scope, hard=True)
        else:
            try:
                await self.app(scope, receive, _BodyFault(rule, conn, scope, send,
                                                          self.time_scale).send)
            except _Cut:
                pass
            except BaseExceptionGroup as group:  # an endpoint's task group may wrap it
                _, rest = group.split(_Cut)
                if rest is not None:
                    raise rest from None

    async def _answer(self, rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        status = rule.status or 403
        retry = {"retry-after": _retry_after(rule.seconds or 0)} if rule.kind == "retry_after" else {}
        if not await _drain_body(receive):
            retry["connection"] = "close"  # body left unread: the connection cannot be reused
        if rule.kind == "expire" or scope["path"].startswith("/_assets/"):
            error = expired_error(scope) if rule.kind == "expire" else s3_error(scope["path"], status)
            error.headers.update(retry)
            await error.response(head=scope["method"] == "HEAD")(scope, receive, send)
            return
        body, media = error_body(scope["path"], status)
        headers = [(k.encode(), v.encode()) for k, v in retry.items()]
        headers += [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


#: Request body bytes an injected error answer reads (and drops) so a kept-alive connection
#: stays usable; past this the answer closes the connection instead, as a proxy would.
DRAIN_LIMIT = 8 * 2**20


async def _drain_body(receive: Receive) -> bool:
    """Read and drop the request body; ``False`` when it was longer than :data:`DRAIN_LIMIT`."""
    read = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False  # the client went away
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
        if read > DRAIN_LIMIT:
            return False


def _retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds as HTTP requires, written as given when fractional."""
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


class _BodyFault:
    """A ``send`` wrapper that cuts, stalls or corrupts the response body at one offset."""

    def __init__(self, rule: FaultRule, conn: Connection | None, scope: Scope, send: Send,
                 time_scale: float) -> None:
        self.rule, self.conn, self.scope, self.downstream = rule, conn, scope, send
        self.time_scale = time_scale
        self.offset: int | None = rule.after_bytes
        self.length: int | None = None
        self.position = 0  # body bytes passed on so far
        self.done = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start(message)
            await self.downstream(message)
            return
        if message["type"] != "http.response.body" or self.done:
            await self.downstream(message)
            return
        body: bytes = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self.offset is None and body:
            self.offset = self.position + len(body) // 2
        start, end = self.position, self.position + len(body)
        kind = self.rule.kind
        if self.offset is None or (self.offset >= end and more):
            await self._pass(body, more)
        elif kind == "corrupt":
            self.done = True
            if self.offset < end:
                i = self.offset - start
                body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
            await self._pass(body, more)
        elif kind == "slow":
            self.done = True
            i = max(self.offset - start, 0)
            if body[:i]:
                await self._pass(body[:i], True)
            if await _wait_unless_gone(self.conn, (self.rule.seconds or 0) * self.time_scale):
                raise _Cut  # the client hung up during the stall: the answer ends here
            await self._pass(body[i:], more)
        else:  # truncate, reset: never let the response complete
            self.done = True
            head = body[:max(self.offset - start, 0)]
            if head:
                await self._pass(head, True)
            await _cut(self.conn, self.scope, hard=kind == "reset")
            raise _Cut

    def _start(self, message: Message) -> None:
        for name, value in message.get("headers", []):
            if name.lower() == b"content-length":
                self.length = int(value)
        if self.length is None or self.rule.kind not in ("truncate", "reset"):
            if self.offset is None and self.length:
                self.offset = self.length // 2
            return
        # a cut at or past the end would deliver the whole body: cut before the last byte
        self.offset = min(self.length // 2 if self.offset is None else self.offset,
                          max(self.length - 1, 0))

    async def _pass(self, body: bytes, more: bool) -> None:
        self.position += len(body)
        await self.downstream({"type": "http.response.body", "body": body, "more_body": more})


async def _wait_unless_gone(conn: Connection | None, seconds: float) -> bool:
    """Sleep ``seconds``, or less: ``True`` as soon as the client's connection is lost.

    A fault's delay never outlives its client (nor keeps a shutting-down server waiting for
    a request nobody will read). Without a registered connection, a plain sleep.
    """
    if seconds <= 0:
        return conn is not None and conn.closed.is_set()
    if conn is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(conn.closed.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _cut(conn: Connection | None, scope: Scope, hard: bool) -> None:
    """Close the request's connection once queued bytes are out: a RST (``hard``) or a FIN."""
    if conn is None:  # not served through our protocol class: let the server drop it
        raise ConnectionAbortedError("sandbox fault: drop the connection")
    transport = conn.transport
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while transport.get_write_buffer_size() and not transport.is_closing() \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    if hard:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
    scope[SCOPE_UNSENT] = transport.get_write_buffer_size()
    if hard:
        transport.abort()
    else:
        transport.close()
    await conn.wait_closed(DRAIN_TIMEOUT)
    if not conn.closed.is_set():
        transport.abort()
        await conn.wait_closed(1.0)
