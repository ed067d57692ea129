"""The private (v1) API of the signed-in user: ``/user``, ``/datasets...`` and ``/data/delete``.

Every route needs ``Authorization: Bearer <AccessToken>`` (401 without or with a forged/expired
token); ``X-ORGANIZATION-ID``, when sent, must name the user's organization (403). Errors are
``{"type", "message", "code"}`` JSON (see WORKSPACE.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sparc.sandbox.http import JSONError, SandboxError
from sparc.sandbox.workspace.models import Dataset, Workspace, WorkspaceError
from sparc.sandbox.workspace.tokens import INVALID, User, signed_in_user

_TYPES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}
MAX_PAGE_SIZE = 1000
_CURSOR = re.compile(r"package:(\d{1,18})")
#: PackageType names (pennsieve-api ``PackageType``), matched case-insensitively in ``types``.
KNOWN_TYPES = {t.lower() for t in (
    "Collection", "Image", "MRI", "Slide", "ExternalFile", "MSWord", "PDF", "CSV", "Tabular", "TimeSeries",
    "Video", "Unknown", "Text", "Unsupported", "HDF5", "ZIP", "MSExcel", "DataSet", "Ontology",
    "PowerPoint", "Markdown", "Json")}


def api_error(status: int, message: str) -> JSONError:
    """A v1 API ``ErrorResponse`` (``EitherTErrorHandler.scala``): ``{"type": "BadRequest",
    "message": ..., "code": 400}`` (``stackTrace`` is ``None``, which json4s leaves out)."""
    return JSONError(status, {"type": _TYPES.get(status, "InternalServerError" if status >= 500 else "Error"),
                              "message": message, "code": status})


def api_error_body(status: int) -> tuple[bytes, str]:
    """An injected fault on the v1 routes, in the v1 error shape."""
    message = {429: "Too many requests", 503: "Service unavailable"}.get(
        status, "internal server error" if status >= 500 else "request failed")
    return json.dumps(api_error(status, message).body).encode(), "application/json"


class TextError(SandboxError):
    """Scalatra's ``BadRequest("...")``: the message as the body, not quoted, typed as JSON."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, text)
        self.status, self.text = status, text

    def response(self) -> Response:
        return Response(self.text, status_code=self.status, media_type="application/json")


def workspace(request: Request) -> Workspace:
    return request.app.state.workspace


def require_user(request: Request) -> User:
    """The signed-in user, or a 401/403 :class:`JSONError`."""
    user = signed_in_user(request.app, request.headers.get("authorization"))
    if user is None:
        raise api_error(401, "Unauthorized.")
    if user is INVALID:
        raise api_error(401, "Unauthorized: the token is invalid or has expired.")
    assert isinstance(user, User)
    org = request.headers.get("x-organization-id")
    if org and org not in (user.organization_node_id, str(user.organization_int_id)):
        raise api_error(403, f"user is not a member of organization {org}")
    return user


def _dataset(request: Request) -> Dataset:
    try:
        return workspace(request).dataset(request.path_params["id"])
    except WorkspaceError as exc:
        raise api_error(exc.status, exc.message) from None


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise api_error(400, f"invalid {name}: {raw}") from None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise api_error(400, "The request content was malformed") from None
    if not isinstance(body, dict):
        raise api_error(400, "The request content was malformed: expected a JSON object")
    return body


# ---- routes ---------------------------------------------------------------------------------------
async def get_user(request: Request) -> Response:
    """``GET /user``: UserDTO."""
    user = require_user(request)
    return JSONResponse({
        "id": user.node_id, "intId": user.int_id, "email": f"{user.username}@sandbox.sparc.local",
        "firstName": "Sandbox", "middleInitial": None, "lastName": "User", "degree": None,
        "credential": "", "color": "#5FBFF9", "url": "", "authyId": 0, "isSuperAdmin": False,
        "isIntegrationUser": False, "createdAt": "2026-01-01T00:00:00.000000Z",
        "updatedAt": "2026-01-01T00:00:00.000000Z", "preferredOrganization": user.organization_node_id,
        "orcid": None, "pennsieveTermsOfService": None, "customTermsOfService": [],
        "storage": None,
    })


async def list_datasets(request: Request) -> Response:
    """``GET /datasets``: an array of DataSetDTO."""
    require_user(request)
    ws = workspace(request)
    with ws.lock:
        rows = sorted(ws.datasets.values(), key=lambda d: d.int_id)
    return JSONResponse([ws.dataset_dto(d) for d in rows])


async def paginated_datasets(request: Request) -> Response:
    """``GET /datasets/paginated?limit&offset&query&orderBy&orderDirection``."""
    require_user(request)
    ws = workspace(request)
    limit, offset = _int(request, "limit", 25), _int(request, "offset", 0)
    if limit < 0 or offset < 0:
        raise api_error(400, "limit and offset must be non-negative")
    order_by = request.query_params.get("orderBy", "Name")
    keys = {"name": lambda d: d.name.lower(), "intid": lambda d: d.int_id, "updatedat": lambda d: d.updated_at}
    if order_by.lower() not in keys:  # DatasetManager.OrderByColumn
        raise TextError(400, f"{order_by} is not a member of Enum (Name, UpdatedAt, IntId)")
    direction = request.query_params.get("orderDirection", "Asc")
    if direction.lower() not in ("asc", "desc"):
        raise TextError(400, f"{direction} is not a member of Enum (Asc, Desc)")
    query = (request.query_params.get("query") or "").lower()
    with ws.lock:
        rows = [d for d in ws.datasets.values() if query in d.name.lower()]
    rows.sort(key=keys[order_by.lower()], reverse=direction.lower() == "desc")
    return JSONResponse({"limit": limit, "offset": offset, "totalCount": len(rows),
                         "datasets": [ws.dataset_dto(d) for d in rows[offset:offset + limit]]})


async def create_dataset(request: Request) -> Response:
    """``POST /datasets`` ``{name, description?, tags?, license?, automaticallyProcessPackages?}`` -> 201."""
    require_user(request)
    body = await _json_body(request)
    name, description, tags = body.get("name"), body.get("description"), body.get("tags") or []
    if not isinstance(name, str):
        raise api_error(400, "dataset name must not be empty")
    if description is not None and not isinstance(description, str):
        raise api_error(400, "description must be a string")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise api_error(400, "tags must be a list of strings")
    ws = workspace(request)
    try:
        ds = ws.create_dataset(name, description, tags, license=body.get("license"),
                               automatically_process=bool(body.get("automaticallyProcessPackages", False)))
    except WorkspaceError as exc:
        raise api_error(exc.status, exc.message) from None
    return JSONResponse(ws.dataset_dto(ds, children=True), status_code=201)


async def get_dataset(request: Request) -> Response:
    """``GET /datasets/{id}`` (node id; an int id is 404): DataSetDTO with root-level ``children``."""
    require_user(request)
    return JSONResponse(workspace(request).dataset_dto(_dataset(request), children=True))


async def dataset_packages(request: Request) -> Response:
    """``GET /datasets/{id}/packages?pageSize=100&cursor=package:<int>&types=&filename=``."""
    user = require_user(request)
    ds = _dataset(request)
    page_size = _int(request, "pageSize", 100)
    if page_size > MAX_PAGE_SIZE:
        raise TextError(400, f"Invalid page size must be less than or equal to {MAX_PAGE_SIZE}")
    if page_size < 1:  # production passes it to the query (a page of 0 with a cursor: a loop)
        raise TextError(400, "Invalid page size must be at least 1")
    cursor = None
    if (raw := request.query_params.get("cursor")) is not None:
        match = _CURSOR.fullmatch(raw)
        if match is None or int(match.group(1)) > 2**31 - 1:
            raise TextError(400, "Cursor format must be package:{integer}")
        cursor = int(match.group(1))
    types = {t.strip().lower() for value in request.query_params.getlist("types")
             for t in value.split(",") if t.strip()}
    if types - KNOWN_TYPES:
        raise TextError(400, "Invalid type name")
    rows, next_cursor = workspace(request).list_packages(ds, page_size, cursor, types,
                                                         request.query_params.get("filename"))
    return JSONResponse({"packages": [p.dto(user.int_id) for p in rows],
                         "cursor": None if next_cursor is None else f"package:{next_cursor}"})


async def delete_data(request: Request) -> Response:
    """``POST /data/delete`` ``{"things": [node ids]}`` -> ``{"success": [...], "failures": [...]}``."""
    require_user(request)
    body = await _json_body(request)
    things = body.get("things")
    if not isinstance(things, list) or not all(isinstance(t, str) for t in things):
        raise api_error(400, "things must be a list of package node ids")
    success, failures = workspace(request).delete_packages(things)
    return JSONResponse({"success": success, "failures": failures})


routes = [
    Route("/user", get_user, methods=["GET"]),
    Route("/user/", get_user, methods=["GET"]),
    Route("/datasets", list_datasets, methods=["GET"]),
    Route("/datasets", create_dataset, methods=["POST"]),
    Route("/datasets/paginated", paginated_datasets, methods=["GET"]),
    Route("/datasets/{id}", get_dataset, methods=["GET"]),
    Route("/datasets/{id}/packages", dataset_packages, methods=["GET"]),
    Route("/data/delete", delete_data, methods=["POST"]),
]
