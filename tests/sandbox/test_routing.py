"""IndexedRouter picks the route Starlette's own loop picks, after trying only a few.

Pure logic: the sandbox's real route table, requests built as scopes (no server needed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import BaseRoute, Match, Mount, Route

from sparc.sandbox.routing import IndexedRouter, mounted, route_shape
from sparc.sandbox.server import create_app
from sparc.sandbox.settings import SandboxSettings

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")
SAMPLES = {"int32": "90", "uuid": "0b9ad6f6-5a44-4ff2-9a0c-7b9d5c0a1f3e", "path": "a/b/c.txt",
           "o2s_key": "simcore/services/comp/itis/sleeper", "": "x1"}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> IndexedRouter:
    app = create_app(SandboxSettings().replace(data_dir=Path(tmp_path_factory.mktemp("sandbox"))))
    assert isinstance(app.router, IndexedRouter)
    return app.router


def _scope(method: str, path: str) -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
            "headers": []}


def starlette_pick(routes: list[BaseRoute], scope: dict[str, object]) -> BaseRoute | None:
    """What Starlette's Router.app loop chooses: the first full match, else the first partial."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


def indexed_pick(router: IndexedRouter, scope: dict[str, object]) -> BaseRoute | None:
    return starlette_pick(router.candidates(str(scope["path"])), scope)


def _paths(routes: list[BaseRoute]) -> list[str]:
    """A concrete path for every route template, plus near misses (extra segments, slashes)."""
    out = ["/", "/nope", "/discover", "/discover/", "/discover/datasets/90/", "/_assets", "/zipit",
           "/zipit/", "/v0", "/v0/solvers", "/datasets//x", "/discover/datasets/99999999999999999999"]
    for route in routes:
        path = getattr(route, "path", "")
        concrete = re.sub(r"\{(\w+)(?::(\w+))?\}", lambda m: SAMPLES.get(m[2] or "", "x1"), path)
        out += [concrete or "/", concrete + "/", concrete + "/extra", concrete.rsplit("/", 1)[0] or "/"]
    return out


def test_picks_what_starlette_picks_for_every_route_and_near_miss(router: IndexedRouter) -> None:
    paths = _paths(router.routes)
    checked = 0
    for path in paths:
        for method in METHODS:
            scope = _scope(method, path)
            assert indexed_pick(router, scope) is starlette_pick(router.routes, scope), (method, path)
            checked += 1
    assert checked > 300


def test_a_dataset_request_tries_few_routes(router: IndexedRouter) -> None:
    candidates = router.candidates("/discover/datasets/90")
    assert len(candidates) <= 5 < len(router.routes)  # the routes of 3 segments under /discover
    assert candidates[0].path == "/discover/datasets/{datasetId:int32}"  # type: ignore[attr-defined]
    asset = router.candidates("/_assets/bucket/90/1/files/primary/a.dat")
    assert len(asset) == 1


def test_routes_added_later_are_indexed() -> None:
    async def endpoint(request: object) -> None:
        raise AssertionError

    router = IndexedRouter([Route("/a/{x}", endpoint)])
    assert router.candidates("/b/1") == []
    router.routes.append(Route("/b/{y}", endpoint))
    assert [r.path for r in router.candidates("/b/1")] == ["/b/{y}"]  # type: ignore[attr-defined]


def test_route_shapes() -> None:
    async def endpoint(request: object) -> None:
        raise AssertionError

    assert route_shape(Route("/datasets/{id:int}", endpoint)) == ("datasets", 2)
    assert route_shape(Route("/{x}/y", endpoint)) == (None, 2)
    assert route_shape(Route("/s3/{key:path}", endpoint)) == ("s3", None)
    assert route_shape(Mount("/v0", routes=[])) == ("v0", None)


def test_mounted_keeps_methods_and_templates() -> None:
    async def endpoint(request: object) -> None:
        raise AssertionError

    [route] = mounted("/p", [Route("/x/{id:int}", endpoint, methods=["POST"])])
    assert isinstance(route, Route) and route.path == "/p/x/{id:int}" and route.methods == {"POST"}
    with pytest.raises(TypeError, match="routes of request handlers"):
        mounted("/p", [Mount("/m", routes=[])])


def remembered_pick(router: IndexedRouter, scope: dict[str, object]) -> tuple[BaseRoute | None, object]:
    """What ``IndexedRouter.app`` serves from its remembered matches: the first route allowing the
    method, else the first that matched the path (405), with its path parameters."""
    known = router.matches(str(scope["path"]))
    assert known is not None
    allowed = [(r, p) for r, p in known if not r.methods or scope["method"] in r.methods]
    return (allowed or list(known) or [(None, None)])[0]


def test_remembered_matches_pick_what_starlette_picks(router: IndexedRouter) -> None:
    """Every route and near miss, twice (the second time from memory): the same route and path
    parameters as Starlette's loop; paths under a ``Mount`` (``/v0``) are not remembered."""
    checked = 0
    for _ in range(2):
        for path in _paths(router.routes):
            if path == "/v0" or path.startswith("/v0/"):
                assert router.matches(path) is None
                continue
            for method in METHODS:
                scope = _scope(method, path)
                expected = starlette_pick(router.routes, scope)
                route, params = remembered_pick(router, scope)
                assert route is expected, (method, path)
                if expected is not None:
                    assert params == expected.matches(scope)[1]["path_params"], (method, path)
                checked += 1
    assert checked > 600


def test_a_path_is_matched_once_and_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparc.sandbox import routing

    async def endpoint(request: object) -> None:
        raise AssertionError

    tried: list[str] = []
    plain_matches = Route.matches

    def counted_matches(self: Route, scope: dict[str, object]) -> object:
        tried.append(str(scope["path"]))
        return plain_matches(self, scope)  # type: ignore[arg-type]

    route = Route("/d/{id:int}", endpoint)
    router = IndexedRouter([route, Route("/d/{id:int}", endpoint, methods=["POST"])])
    assert router.matches("/d/7") == ((route, {"id": 7}), (router.routes[1], {"id": 7}))
    assert router.matches("/d/7") is router.matches("/d/7")  # remembered
    router.routes.append(Route("/d/{name}", endpoint, methods=["PUT"]))  # the table changed: again
    assert [r.methods for r, _ in router.matches("/d/7") or ()] == [{"GET", "HEAD"}, {"POST"}, {"PUT"}]
    monkeypatch.setattr(routing, "MAX_MATCHES", 3)
    monkeypatch.setattr(Route, "matches", counted_matches)
    counted = IndexedRouter([Route("/d/{id:int}", endpoint), Mount("/m", routes=[])])
    for i in range(10):
        counted.matches(f"/d/{i}")
        counted.matches(f"/d/{i}")
    assert tried == [f"/d/{i}" for i in range(10)] and len(counted._matches) <= 3
    counted.matches("/d/" + "1" * 2000)
    assert "/d/" + "1" * 2000 not in counted._matches  # a long path is never kept
    assert counted.matches("/m/x") is None  # a Mount: matched by Starlette each time


def test_a_request_from_memory_is_answered_as_before(router: IndexedRouter) -> None:
    """The scope a handler sees (route, endpoint, path parameters) is the one Route.matches gives."""
    import asyncio

    seen: list[dict[str, object]] = []

    class Record:  # an ASGI app as endpoint
        async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
            seen.append(dict(scope))

    record = Record()

    probe = IndexedRouter([Route("/p/{a:int}/{b}", record, methods=["GET"]),
                           Route("/p/{a:int}/{b}", record, methods=["POST"])])
    for _ in range(2):
        for method in ("GET", "POST"):
            scope = _scope(method, "/p/5/x")
            asyncio.run(probe.app(scope, None, None))  # type: ignore[arg-type]
            route = probe.routes[0 if method == "GET" else 1]
            assert seen[-1]["route"] is route and seen[-1]["endpoint"] is record
            assert seen[-1]["path_params"] == {"a": 5, "b": "x"}
    assert seen[0]["path_params"] is not seen[2]["path_params"]  # a fresh dict per request
