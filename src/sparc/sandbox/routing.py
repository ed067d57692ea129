"""A Starlette ``Router`` that tries only the routes a path can match: the same answers, fewer regexes.

Starlette's router tries every route in order, one regex each, until one matches: with 25 Discover
routes and 7 mounts, a dataset request ran a dozen regexes before its handler. :class:`IndexedRouter`
sorts its routes once by their first path segment and, for routes without a ``:path`` convertor, by
their number of segments; a request is tried only against the routes of its own ``(first segment,
segment count)``, in their original order. A route outside that bucket cannot match the path, so the
first full or partial (405) match is the one Starlette's loop would find. When no candidate matches,
Starlette's own loop runs (404, or its trailing-slash redirect), so misses answer exactly as before.

A path served by plain ``Route`` objects is matched once: the routes whose pattern it matches, with
their converted path parameters, are remembered by path (:data:`MAX_MATCHES` paths at most), and a
request again for that path only checks the method, in the same order (a download asks the same
object's path for range after range; a walk, the same dataset).

Example::

    Mount("/discover", app=IndexedRouter(discover.routes))
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from starlette._utils import get_route_path, is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

_PARAM = re.compile(r"\{[^}]*\}")
#: Distinct first segments remembered per router before unknown ones share one bucket.
_MAX_KEYS = 512
#: Distinct paths whose matches a router remembers (then it starts afresh), and the longest kept.
MAX_MATCHES = 4096
MAX_MATCH_PATH = 1024
#: A path's routes with their converted path parameters, in route order (``None``: not kept,
#: a ``Mount`` or another route kind matched; Starlette's own matching runs).
_Matches = tuple[tuple[Route, dict[str, Any]], ...]


def route_shape(route: BaseRoute) -> tuple[str | None, int | None]:
    """``(literal first segment or None, exact segment count or None)`` of the paths ``route`` matches.

    ``None`` means "any": a first segment that is a parameter, or a mount or a convertor that can
    match a ``/`` (``:path``) and so spans any number of segments.

    >>> from starlette.routing import Mount
    >>> route_shape(Route("/datasets/{id:int}", lambda r: None)), route_shape(Mount("/v0", routes=[]))
    (('datasets', 2), ('v0', None))
    """
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return None, None
    segments = path.split("/")[1:]
    first = segments[0] if segments and not _PARAM.search(segments[0]) else None
    spans = not isinstance(route, Route) or any(_spans_slash(c.regex) for c in route.param_convertors.values())
    return first, None if spans else len(segments)


def _spans_slash(regex: str) -> bool:
    """Whether a convertor's regex can match across a ``/`` (``path``, ``.+?``): probed, not parsed."""
    return any(re.fullmatch(regex, probe) for probe in ("a/b", "1/2", "/", "a/", "/a"))


class IndexedRouter(Router):
    """:class:`~starlette.routing.Router` with candidate routes looked up by path shape (see module)."""

    def __init__(self, routes: Sequence[BaseRoute] | None = None, **options: Any) -> None:
        super().__init__(routes=list(routes or ()), **options)
        self._buckets: dict[tuple[str, int], list[BaseRoute]] = {}
        self._indexed: list[BaseRoute] = []
        self._shapes: list[tuple[BaseRoute, str | None, int | None]] = []
        self._matches: dict[str, _Matches | None] = {}

    def _current(self) -> None:
        """Start the index again if routes were added or replaced since it was built."""
        if self._indexed != self.routes:
            self._indexed = list(self.routes)
            self._shapes = [(route, *route_shape(route)) for route in self._indexed]
            self._buckets.clear()
            self._matches.clear()

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that can match ``path``, in order (built per shape on first use)."""
        self._current()
        segments = path.split("/")
        key = (segments[1] if len(segments) > 1 else "", len(segments) - 1)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [route for route, first, count in self._shapes
                      if (first is None or first == key[0]) and (count is None or count == key[1])]
            if len(self._buckets) < _MAX_KEYS:
                self._buckets[key] = bucket
        return bucket

    def matches(self, path: str) -> _Matches | None:
        """The plain routes matching ``path`` whatever the method, with their path parameters
        (remembered); ``None`` when a candidate is not a plain :class:`Route` (then the request is
        matched by Starlette's ``matches``, each time)."""
        self._current()
        try:
            return self._matches[path]
        except KeyError:
            pass
        found: list[tuple[Route, dict[str, Any]]] = []
        probe = {"type": "http", "path": path, "root_path": "", "method": ""}
        kept: _Matches | None = None
        for route in self.candidates(path):
            if type(route) is not Route:
                break
            match, child = route.matches(probe)
            if match is not Match.NONE:
                found.append((route, child["path_params"]))
        else:
            kept = tuple(found)
        if len(path) <= MAX_MATCH_PATH:
            if len(self._matches) >= MAX_MATCHES:
                self._matches.clear()
            self._matches[path] = kept
        return kept

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        path = get_route_path(scope)
        known = self.matches(path) if "path_params" not in scope else None
        if known is not None:  # as Route.matches would answer, without its regex and convertors
            method = scope["method"]
            refused: Route | None = None
            refused_params: dict[str, Any] = {}
            for hit, params in known:
                if not hit.methods or method in hit.methods:
                    scope["route"] = hit
                    scope["endpoint"] = hit.endpoint
                    scope["path_params"] = dict(params)
                    await hit.app(scope, receive, send)  # Route.handle, its method check done
                    return
                if refused is None:
                    refused, refused_params = hit, params
            if refused is not None:  # the path matched, the method did not: 405
                scope["route"] = refused
                scope["endpoint"] = refused.endpoint
                scope["path_params"] = dict(refused_params)
                await refused.handle(scope, receive, send)
                return
            await super().app(scope, receive, send)  # no route: Starlette's own 404 or redirect
            return
        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in self.candidates(path):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:  # the path matched, the method did not: 405 as Starlette answers
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)  # no candidate: Starlette's own 404 or redirect


def mounted(prefix: str, routes: Sequence[BaseRoute],
            context: RequestContext | None = None) -> list[BaseRoute]:
    """``routes`` served under ``prefix`` as routes of the app's own router, not through a ``Mount``.

    Answers, route templates (``/discover/datasets/{datasetId}``) and 404/405/redirects are those of
    ``Mount(prefix, routes=routes)``, without a second router and a mount regex per request.
    Handlers see ``root_path`` empty: none of the sandbox's reads it (they use
    ``request.url.path``). Each endpoint is served by :class:`Endpoint`, with ``context``.

    Example: ``IndexedRouter(mounted("/discover", discover.routes))``.
    """
    out: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, Route) or not callable(route.endpoint) or route.methods is None:
            raise TypeError(f"mounted() takes routes of request handlers; {route!r} under {prefix}")
        out.append(Route(prefix + route.path, Endpoint(route.endpoint, context), methods=route.methods,
                         name=route.name, include_in_schema=route.include_in_schema))
    return out


#: What a request needs set around its handler, from its scope (e.g. a context variable read
#: by the service's models), as a context manager; ``None`` when there is nothing to set.
RequestContext = Callable[[Scope], AbstractContextManager[Any] | None]


class Endpoint:
    """A ``handler(request) -> Response`` as an ASGI app: Starlette's ``request_response`` without
    its per-route exception wrapper. The app's ``ExceptionMiddleware`` renders the same handlers
    (``SandboxError`` → its own body) for an exception raised before the answer starts, so the
    answers are the same, with two closures and a ``send`` wrapper fewer per request.

    ``context(scope)``, when given, is entered around the handler and its answer: a plain call
    where a middleware would cost a layer per request.

    Example: ``Route("/tags", Endpoint(get_tags), methods=["GET"])``.
    """

    __slots__ = ("handler", "context")

    def __init__(self, handler: Callable[[Request], Any], context: RequestContext | None = None) -> None:
        self.handler: Callable[[Request], Awaitable[Response]] = (
            handler if is_async_callable(handler)
            else functools.partial(run_in_threadpool, handler))  # type: ignore[call-arg]
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entered = self.context(scope) if self.context is not None else None
        if entered is None:
            response = await self.handler(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        with entered:
            response = await self.handler(Request(scope, receive, send))
            await response(scope, receive, send)
