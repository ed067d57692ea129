"""Discover routes (mounted at ``/discover``): parse the request, call :class:`.models.Discover`, render."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sparc.sandbox.assets.signing import presigned_url
from sparc.sandbox.http import Page, bool_query, int_query, list_query
from sparc.sandbox.pennsieve import errors
from sparc.sandbox.pennsieve.models import Discover, Sort


def _discover(request: Request) -> Discover:
    return request.app.state.discover


def _ids(request: Request) -> tuple[int, int]:
    return request.path_params["datasetId"], request.path_params["versionId"]


def _sort(request: Request) -> Sort:
    return Sort.parse(request.query_params.get("orderBy"), request.query_params.get("orderDirection"))


async def get_datasets(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(_discover(request).list_datasets(
        Page.from_request(request), _sort(request), list_query(request, "ids"), list_query(request, "tags"),
        bool_query(request, "embargo"), q.get("datasetType")))


async def get_dataset(request: Request) -> Response:
    return JSONResponse(_discover(request).dataset(request.path_params["datasetId"]))


async def get_versions(request: Request) -> Response:
    return JSONResponse(_discover(request).versions(request.path_params["datasetId"]))


async def get_version(request: Request) -> Response:
    return JSONResponse(_discover(request).dataset(*_ids(request)))


async def get_by_doi(request: Request) -> Response:
    p = request.path_params
    return JSONResponse(_discover(request).by_doi(f"{p['doiPrefix']}/{p['doiSuffix']}"))


async def get_by_dois(request: Request) -> Response:
    return JSONResponse(_discover(request).by_dois(list_query(request, "doi")))


async def browse_files(request: Request) -> Response:
    return JSONResponse(_discover(request).browse(
        *_ids(request), request.query_params.get("path"), Page.from_request(request, default_limit=100)))


async def get_file(request: Request) -> Response:
    path = request.query_params.get("path")
    if path is None:
        raise errors.bad_request("missing required query parameter: path")
    return JSONResponse(_discover(request).file(*_ids(request), path))


async def get_metadata(request: Request) -> Response:
    return Response(_discover(request).metadata(*_ids(request)), media_type="application/json")


async def download_manifest(request: Request) -> Response:
    body = await _json_body(request)
    paths, root = body.get("paths"), body.get("rootPath")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or \
            (root is not None and not isinstance(root, str)):
        raise errors.bad_request("The request content was malformed: paths must be a list of strings")
    state = request.app.state
    base = str(request.base_url)
    return JSONResponse(_discover(request).download_manifest(
        *_ids(request), paths, root, state.settings.download_size_cap,
        lambda row: presigned_url(state.signer, base, row)))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise errors.bad_request("The request content was malformed: invalid JSON") from None
    if not isinstance(body, dict):
        raise errors.bad_request("The request content was malformed: expected an object")
    return body


async def get_tags(request: Request) -> Response:
    return JSONResponse(_discover(request).tags())


async def search_datasets(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(_discover(request).search_datasets(
        Page.from_request(request), _sort(request), q.get("query"), q.get("organization"),
        int_query(request, "organizationId"), list_query(request, "tags"), bool_query(request, "embargo")))


async def search_files(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(_discover(request).search_files(
        Page.from_request(request), q.get("query"), q.get("fileType"), q.get("organization"),
        int_query(request, "organizationId"), int_query(request, "datasetId")))


async def search_records(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(_discover(request).search_records(
        Page.from_request(request), q.get("model"), q.get("organization"), int_query(request, "datasetId")))


VERSION = "/datasets/{datasetId:int}/versions/{versionId:int}"

routes = [
    Route("/datasets", get_datasets),
    Route("/datasets/doi", get_by_dois),
    Route("/datasets/doi/{doiPrefix}/{doiSuffix}", get_by_doi),
    Route("/datasets/{datasetId:int}", get_dataset),
    Route("/datasets/{datasetId:int}/versions", get_versions),
    Route(VERSION, get_version),
    Route(VERSION + "/files", get_file),
    Route(VERSION + "/files/browse", browse_files),
    Route(VERSION + "/files/download-manifest", download_manifest, methods=["POST"]),
    Route(VERSION + "/metadata", get_metadata),
    Route("/tags", get_tags),
    Route("/search/datasets", search_datasets),
    Route("/search/files", search_files),
    Route("/search/records", search_records),
]
