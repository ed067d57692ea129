"""The sandbox app factory, the ``sparc sandbox serve`` entry point and an in-thread server for benchmarks."""

from __future__ import annotations

import contextlib
import gc
import secrets
import socket
import sys
import tempfile
import threading
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import Scope

from sparc.sandbox import control, o2sparc, workspace
from sparc.sandbox.assets import routes as assets
from sparc.sandbox.assets.signing import Signer
from sparc.sandbox.faults import FaultRuleError, Faults, load_rules_file
from sparc.sandbox.front import SandboxApp, SandboxMiddleware
from sparc.sandbox.http import SandboxError, render_error
from sparc.sandbox.pennsieve import routes as discover
from sparc.sandbox.pennsieve import zipit
from sparc.sandbox.pennsieve.models import EMBARGO_ACCESS, Discover
from sparc.sandbox.routing import IndexedRouter, mounted
from sparc.sandbox.settings import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    SandboxSettings,
    export_values,
)
from sparc.sandbox.storage.db import open_database
from sparc.sandbox.workspace.embargo import embargo_decision

__all__ = ["SandboxSettings", "SandboxServer", "StartupError", "create_app", "serve",
           "DEFAULT_API_KEY", "DEFAULT_API_SECRET"]


def credentials_line(settings: SandboxSettings) -> str:
    """The sandbox user's credentials for the log: the key, and the secret only if it is the default."""
    secret = repr(settings.api_secret) if settings.api_secret == DEFAULT_API_SECRET else "(as given)"
    return f"api key {settings.api_key!r}, api secret {secret}"


@contextlib.contextmanager
def _embargo_access(server: Any, authorization: str) -> Generator[None, None, None]:
    token = EMBARGO_ACCESS.set(lambda dataset_id: embargo_decision(server, authorization, dataset_id))
    try:
        yield
    finally:
        EMBARGO_ACCESS.reset(token)


def embargo_context(scope: Scope) -> contextlib.AbstractContextManager[None] | None:
    """Discover's view of who is asking: a request's ``Authorization`` bearer token decides its
    access to embargoed datasets (granted, denied, invalid), as ``authorizeIfUnderEmbargo`` does;
    ``None`` (nothing to set) for a request without one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return _embargo_access(scope["app"], value.decode("latin-1"))
    return None


def create_app(settings: SandboxSettings) -> Starlette:
    """The sandbox ASGI app; state lives on ``app.state``. ``settings.data_dir`` must be set."""
    if settings.data_dir is None:
        raise ValueError("create_app needs settings.data_dir")
    stats = control.Stats()
    connections = control.Connections()
    faults = Faults(settings.seed, settings.faults)
    routes = [  # one indexed router for every service (see routing.py): no mount to cross per request
        *mounted("/discover", discover.routes, context=embargo_context),
        *mounted("/zipit", zipit.routes),
        *mounted("/_assets", assets.routes),
        Mount("/v0", app=IndexedRouter(o2sparc.routes)),  # its 404/405 handler matches its own paths
        *workspace.routes,
        *mounted(control.CONTROL_PREFIX, control.routes),
    ]
    app = SandboxApp(
        routes=routes,
        middleware=[Middleware(SandboxMiddleware, stats=stats, faults=faults, connections=connections,
                               routes=routes, time_scale=settings.time_scale,
                               direct=[(assets.PREFIX, assets.direct_answer)])],
        exception_handlers={SandboxError: render_error},
    )
    app.router = IndexedRouter(routes)  # same answers as Starlette's router, fewer regexes per request
    db = open_database(Path(settings.data_dir))
    app.state.settings = settings
    app.state.db = db
    app.state.discover = Discover(db)
    app.state.signer = Signer(secrets.token_bytes(32), settings.url_expiry)
    app.state.stats = stats
    app.state.faults = faults
    app.state.connections = connections
    o2sparc.install(app)
    workspace.install(app)
    return app


class StartupError(Exception):
    """The server cannot start (one line for the user, no traceback)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 → a free port); :class:`StartupError` when that fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP; without it keep-alive responses wait ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise StartupError(f"cannot listen on {where}: {(exc.strerror or str(exc)).lower()}") from exc
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn with a start-up announcement, and SIGINT/SIGTERM ending ``run`` normally."""

    def __init__(self, config: uvicorn.Config, announce: str | None = None,
                 settings: SandboxSettings | None = None) -> None:
        super().__init__(config)
        self.announce = announce
        self.settings = settings or SandboxSettings()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.announce:
            lines = [self.announce] + [f"export {name}={value}" for name, value
                                       in export_values(self.announce, self.settings).items()]
            print("\n".join(lines), flush=True)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        import signal

        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


#: Seconds a stopping server (SIGTERM, SIGINT) lets running requests finish before it
#: cancels them: a long download or a stalled fault never holds the shutdown for longer.
GRACEFUL_SHUTDOWN_SECONDS = 2


def _config(app: Starlette) -> uvicorn.Config:
    """uvicorn's settings; its HTTP protocol registers connections so faults can drop them.

    No proxy-header rewriting: a client's ``X-Forwarded-For`` must not change the address its
    connection is known by (the fault rules that drop connections look it up), and the sandbox
    sits behind no proxy. No ``server: uvicorn`` header: the emulated services do not send it.
    """
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                          http=app.state.connections.protocol(), proxy_headers=False,
                          server_header=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)


def serve(faults: Path | str | None = None, **options: Any) -> int:
    """Serve the sandbox until SIGINT/SIGTERM; print the base URL (first stdout line), then exports.

    ``options`` are :class:`SandboxSettings` fields (``None`` keeps the default); ``faults``
    names a JSON file of fault rules (see FAULTS.md), ``seed`` makes their draws repeatable.
    """
    try:
        rules = tuple(load_rules_file(str(faults))) if faults is not None else ()
    except FaultRuleError as exc:
        raise StartupError(f"--faults: {exc}") from exc
    with contextlib.ExitStack() as stack:
        settings = SandboxSettings().replace(**options, faults=rules)
        if settings.data_dir is None:
            settings = settings.replace(data_dir=Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="sparc-sandbox-"))))
        sock = stack.enter_context(bind(settings.host, settings.port))
        app = create_app(settings)
        print(f"sandbox user: {credentials_line(settings)}", file=sys.stderr, flush=True)
        server = _Server(_config(app), announce=base_url(sock), settings=settings)
        # What start-up made (catalogue, routes, modules) lives as long as the process: out of
        # the cyclic collector's way, so its full passes (22 ms here, every few thousand
        # requests) only walk what requests make.
        gc.collect()
        gc.freeze()
        server.run(sockets=[sock])
        app.state.db.close()
    return 0


class SandboxServer:
    """The sandbox app served by uvicorn in a background thread (``with SandboxServer() as s: s.url``)."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None

    def __enter__(self) -> SandboxServer:
        settings = self.settings
        if settings.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sparc-sandbox-")
            settings = settings.replace(data_dir=Path(self._tmp.name))
        sock = bind(settings.host, settings.port)
        try:
            self.app = create_app(settings)
        except BaseException:
            sock.close()
            raise
        self.url = base_url(sock)
        self._server = _Server(_config(self.app))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            threading.Event().wait(0.01)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server and self._thread
        self._server.should_exit = True
        self._thread.join(10)
        self.app.state.db.close()
        if self._tmp:
            self._tmp.cleanup()
