"""Test controls of the workspace emulation (``/_workspace/...``; not part of any Pennsieve API).

- ``GET /_workspace/lifetimes`` / ``PUT`` ``{"access_token": s, "storage_credentials": s,
  "import_delay": s}``: lifetimes of tokens and storage credentials issued from now on, and the
  delay between finalize and import (0 = at once).
- ``POST /_workspace/expire-tokens``: every access/id token issued so far counts as expired.
- ``POST /_workspace/expire-storage-credentials``: every storage credential issued so far expires.

Example: ``httpx.post(base + "/_workspace/expire-tokens")`` forces the client to sign in again.
"""

from __future__ import annotations

import json
import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PREFIX = "/_workspace"


def _lifetimes(request: Request) -> dict[str, float]:
    return {"access_token": request.app.state.workspace_tokens.lifetime,
            "storage_credentials": request.app.state.workspace.credentials_lifetime,
            "import_delay": request.app.state.workspace.import_delay}


async def get_lifetimes(request: Request) -> Response:
    return JSONResponse(_lifetimes(request))


async def put_lifetimes(request: Request) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    if not isinstance(body, dict) or set(body) - {"access_token", "storage_credentials", "import_delay"}:
        return JSONResponse({"error": "fields: access_token, storage_credentials, import_delay"}, status_code=400)
    for name, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < math.inf):
            return JSONResponse({"error": f"{name} must be a number >= 0"}, status_code=400)
    if "access_token" in body:
        request.app.state.workspace_tokens.lifetime = max(1, int(body["access_token"]))
    if "storage_credentials" in body:
        request.app.state.workspace.credentials_lifetime = max(1, int(body["storage_credentials"]))
    if "import_delay" in body:
        request.app.state.workspace.import_delay = float(body["import_delay"])
    return JSONResponse(_lifetimes(request))


async def expire_tokens(request: Request) -> Response:
    request.app.state.workspace_tokens.expire_all()
    return JSONResponse({"expired": True})


async def expire_storage_credentials(request: Request) -> Response:
    return JSONResponse({"expired": request.app.state.workspace.expire_credentials()})


routes = [
    Route(PREFIX + "/lifetimes", get_lifetimes, methods=["GET"]),
    Route(PREFIX + "/lifetimes", put_lifetimes, methods=["PUT"]),
    Route(PREFIX + "/expire-tokens", expire_tokens, methods=["POST"]),
    Route(PREFIX + "/expire-storage-credentials", expire_storage_credentials, methods=["POST"]),
]
