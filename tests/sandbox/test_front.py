"""SandboxApp's one front layer answers as Starlette's three did: handled errors, 500s, counts, faults.

A small app of its own, called in-process through httpx's ASGI transport (pure ASGI logic).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sparc.sandbox.control import Connections, Stats
from sparc.sandbox.faults import Faults
from sparc.sandbox.front import SandboxApp, SandboxMiddleware
from sparc.sandbox.http import JSONError, SandboxError, render_error
from sparc.sandbox.routing import IndexedRouter, mounted


async def ok(request: Request) -> Response:
    return PlainTextResponse("fine")


async def sandbox_error(request: Request) -> Response:
    raise JSONError(404, "no such thing")


async def crash(request: Request) -> Response:
    raise RuntimeError("a bug")


async def teapot(request: Request) -> Response:
    raise HTTPException(418, "short and stout")


def quick(scope: dict) -> tuple[int, list[tuple[bytes, bytes]], bytes, str] | None:
    """A direct answer for ``/svc/ok?quick``; ``None`` (the route answers) otherwise."""
    if scope["query_string"] != b"quick":
        return None
    return 200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], b"quick", "/svc/ok"


def build(faults: Faults | None = None) -> tuple[SandboxApp, Stats]:
    stats = Stats()
    routes = mounted("/svc", [Route("/ok", ok), Route("/error", sandbox_error), Route("/crash", crash),
                              Route("/teapot", teapot), Route("/post", ok, methods=["POST"])])
    app = SandboxApp(routes=routes, exception_handlers={SandboxError: render_error},
                     middleware=[Middleware(SandboxMiddleware, stats=stats, faults=faults or Faults(1),
                                            connections=Connections(), routes=routes, time_scale=0.0,
                                            direct=[("/svc/ok", quick)])])
    app.router = IndexedRouter(routes)
    return app, stats


class AsgiClient:
    """``AsgiClient(app).get(path)``: one request through httpx's ASGI transport."""

    def __init__(self, app: SandboxApp, raise_server_exceptions: bool = True) -> None:
        self.transport = httpx.ASGITransport(app, raise_app_exceptions=raise_server_exceptions)

    def request(self, method: str, path: str) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://sandbox") as client:
                return await client.request(method, path)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def head(self, path: str) -> httpx.Response:
        return self.request("HEAD", path)


@pytest.fixture
def client() -> AsgiClient:
    return AsgiClient(build()[0], raise_server_exceptions=False)


def test_the_answers_of_starlettes_layers(client: AsgiClient) -> None:
    assert client.get("/svc/ok").text == "fine"
    error = client.get("/svc/error")
    assert (error.status_code, error.json()) == (404, "no such thing")
    bug = client.get("/svc/crash")
    assert (bug.status_code, bug.text) == (500, "Internal Server Error")
    pot = client.get("/svc/teapot")
    assert (pot.status_code, pot.text) == (418, "short and stout")
    assert client.get("/svc/nope").status_code == 404
    wrong = client.get("/svc/post")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_an_unhandled_exception_reaches_the_server() -> None:
    with pytest.raises(RuntimeError, match="a bug"):
        AsgiClient(build()[0]).get("/svc/crash")


def test_counts_requests_and_body_bytes() -> None:
    app, stats = build()
    client = AsgiClient(app, raise_server_exceptions=False)
    client.get("/svc/ok")
    client.get("/svc/error")
    client.get("/svc/crash")
    client.head("/svc/ok")
    snapshot = stats.snapshot()
    assert snapshot["requests"] == {"GET /svc/ok": 1, "GET /svc/error": 1, "GET /svc/crash": 1,
                                    "HEAD /svc/ok": 1}
    # "fine" + the JSON string error; the 500 text is not counted (as ServerErrorMiddleware's)
    assert snapshot["bytes_sent"] == len("fine") + len('"no such thing"')


def test_with_rules_a_fault_still_answers_before_the_handler() -> None:
    faults = Faults(1, [{"route": "GET /svc/error", "kind": "status", "status": 503, "count": 1}])
    client = AsgiClient(build(faults)[0], raise_server_exceptions=False)
    assert client.get("/svc/error").status_code == 503
    assert client.get("/svc/error").status_code == 404  # the rule is spent: the handler's answer
    assert client.get("/svc/crash").status_code == 500


def test_direct_answers_skip_the_app_unless_a_rule_is_installed() -> None:
    app, stats = build()
    client = AsgiClient(app)
    assert client.get("/svc/ok?quick").text == "quick"  # the direct handler's answer
    assert client.get("/svc/ok").text == "fine"  # it declined: the route's
    assert client.head("/svc/ok?quick").text == ""
    snapshot = stats.snapshot()
    assert snapshot["requests"] == {"GET /svc/ok": 2, "HEAD /svc/ok": 1}
    assert snapshot["bytes_sent"] == len("quick") + len("fine")
    armed = Faults(1, [{"route": "GET /nothing", "kind": "status", "status": 503}])
    assert AsgiClient(build(armed)[0]).get("/svc/ok?quick").text == "fine"  # faults see them all
