"""The upload service (upload-service-v2, at ``{api2}/upload``): manifests, storage credentials,
finalize and status, as ``lambda/service/handler/*.go`` answer them.

Behind API Gateway's Lambda authorizer: no ``Authorization`` or a forged/expired token is 401
``{"message": "Unauthorized"}``; a request naming neither a known ``dataset_id`` nor a known
``manifest_id`` is 403 ``{"message": "Forbidden"}``. Handler errors are ``gateway.CreateErrorMessage``
bodies ``{"Code": 400, "Message": "..."}``. Example flow::

    POST /upload/manifest?dataset_id=N:dataset:..  {"dataset_id": ".."}           -> manifest_node_id
    POST /upload/manifest?dataset_id=..  {"id": <manifest>, "files": [...]}         -> updated_files
    POST /upload/manifest/storage-credentials?dataset_id=..  {"manifestNodeId"}     -> STS-like keys
    PUT  <s3>/<bucket>/<keyPrefix>/<upload_id>  (x-amz-checksum-sha256)
    POST /upload/manifest/files/finalize?dataset_id=..  {"manifestNodeId", "files"} -> results
    GET  /upload/manifest/status?manifest_id=..&status=Finalized&verify=true
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sparc.sandbox.http import JSONError
from sparc.sandbox.workspace.models import (
    CHANGED,
    FAILED,
    FILE_STATUSES,
    FINALIZED,
    IMPORTED,
    LOCAL,
    REGISTERED,
    REMOVED,
    UNKNOWN,
    VERIFIED,
    Dataset,
    Manifest,
    ManifestFile,
    Workspace,
    WorkspaceError,
    file_type,
)
from sparc.sandbox.workspace.tokens import INVALID, signed_in_user

MAX_FINALIZE_BATCH = 250  # finalize_files.go maxFinalizeBatch
STATUS_PAGE = 500  # GET /manifest/status page size
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def gateway_error(status: int, message: str) -> JSONError:
    """``gateway.CreateErrorMessage(message, status)``: ``{"Code": status, "Message": message}``."""
    return JSONError(status, {"Code": status, "Message": message})


def upload_error_body(status: int) -> tuple[bytes, str]:
    """An injected fault under ``/upload/``: API Gateway's own answers for 429/5xx."""
    message = {429: "Too Many Requests", 503: "Service Unavailable", 504: "Service Unavailable",
               500: "Internal Server Error", 502: "Internal Server Error"}.get(status, "Error")
    return json.dumps({"message": message}).encode(), "application/json"


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace


def _authorize(request: Request, identity: str = "dataset_id") -> tuple[Dataset, Manifest | None]:
    """API Gateway's Lambda authorizer (``terraform/upload-service.yml``): its identity sources are
    ``Authorization`` and the ``identity`` query parameter (``dataset_id`` or ``manifest_id``).

    A missing source or a forged/expired token: 401 ``{"message": "Unauthorized"}``; a dataset or
    manifest the user has no role on (here: unknown): 403 ``{"message": "Forbidden"}``.
    """
    user = signed_in_user(request.app, request.headers.get("authorization"))
    ref = request.query_params.get(identity)
    if user is None or user is INVALID or not ref:
        raise JSONError(401, {"message": "Unauthorized"})
    ws = _ws(request)
    if identity == "dataset_id":
        try:
            return ws.dataset(ref), None
        except WorkspaceError:
            raise JSONError(403, {"message": "Forbidden"}) from None
    manifest = ws.manifest(ref)
    if manifest is None:
        raise JSONError(403, {"message": "Forbidden"})
    return manifest.dataset, manifest


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise gateway_error(400, f"Error: Invalid JSON payload ||| {exc} Body Obtained||||{raw.decode(errors='replace')}"
                            ) from None
    if not isinstance(body, dict):
        raise gateway_error(400, "invalid request body")
    return body


def _own_manifest(ws: Workspace, manifest_id: Any, ds: Dataset) -> Manifest:
    """The manifest named in a body: 400 not a UUID, 404 unknown, 403 another dataset's."""
    if not isinstance(manifest_id, str) or not _UUID.fullmatch(manifest_id):
        raise gateway_error(400, "manifestNodeId must be a UUID")
    manifest = ws.manifest(manifest_id)
    if manifest is None:
        raise gateway_error(404, "Manifest not found")
    if manifest.dataset is not ds:
        raise gateway_error(403, "Manifest does not belong to this dataset")
    return manifest


# ---- POST/GET /manifest ---------------------------------------------------------------------------
async def post_manifest(request: Request) -> Response:
    """Create a manifest (no ``id``) and/or register ``files`` in it."""
    ds, _ = _authorize(request)
    ws = _ws(request)
    body = await _body(request)
    manifest_id = body.get("id") or ""
    if manifest_id:
        manifest = ws.manifest(str(manifest_id))
        if manifest is None:
            raise gateway_error(500, f"Error: Invalid ManifestID |||| Manifest ID: {manifest_id}")
        if manifest.dataset is not ds:
            raise gateway_error(400, "Error: Trying to add files to a manifest that belongs to a different dataset.")
        if manifest.status == "Archived":
            raise gateway_error(400, "Cannot sync with an 'archived' manifest. Archived manifests can be "
                                     "downloaded as a CSV file.")
    else:
        manifest = ws.create_manifest(ds)
    files = body.get("files") or []
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise gateway_error(400, "Error: Invalid JSON payload ||| files must be a list of objects")
    updated: list[dict[str, Any]] = []
    writes = 0
    with ws.lock:
        for f in files:
            upload_id = str(f.get("upload_id") or "")
            status = f.get("status", 0)
            if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status < len(FILE_STATUSES):
                raise gateway_error(400, "Error: Invalid JSON payload ||| status must be a file status number")
            known = manifest.files.get(upload_id)
            current = known.status if known is not None else UNKNOWN
            write, reply = sync_action(status, current)
            if write is None and reply == -1:
                raise gateway_error(500, f"Error: cannot sync files with manifest: {manifest.id}")
            if write is not None:
                writes += 1
                if write == REMOVED:
                    manifest.files.pop(upload_id, None)
                elif write == REGISTERED:
                    name = str(f.get("target_name") or "")
                    manifest.files[upload_id] = ManifestFile(
                        upload_id, str(f.get("target_path") or "").strip("/"), name, REGISTERED,
                        str(f.get("file_type") or "") or file_type(name)[0], str(f.get("merge_package_id") or ""))
                elif known is not None:
                    known.status = write
            updated.append({"upload_id": upload_id, "status": reply})
        if manifest.status != "Completed" and writes == 0:
            _update_manifest_status(manifest)
    # SyncFiles' slices are nil when nothing was appended: JSON null
    return JSONResponse({"manifest_node_id": manifest.id, "nr_files_updated": writes, "nr_files_removed": 0,
                         "updated_files": updated or None, "failed_files": None})


def sync_action(client: int, current: int) -> tuple[int | None, int]:
    """pennsieve-go-core ``getWriteRequest``: ``(status written or None, status replied)`` for a
    file the client sends with status ``client`` while the server has ``current`` (Unknown when
    the file is new). ``(None, -1)``: a status the server cannot handle.

    Example: a new file sent as Local (0) -> ``(REGISTERED, REGISTERED)``; a file the server has
    finalized, sent again as Local -> ``(VERIFIED, VERIFIED)``.
    """
    if client == REMOVED:
        if current == FINALIZED:
            return VERIFIED, VERIFIED
        if current in (IMPORTED, VERIFIED):
            return None, current
        return REMOVED, REMOVED  # a delete request, counted as an update
    if client in (LOCAL, FAILED):
        if current == FINALIZED:
            return VERIFIED, VERIFIED
        if current in (REGISTERED, FAILED, UNKNOWN):
            return REGISTERED, REGISTERED
        return None, current
    if client == IMPORTED:
        return (VERIFIED, VERIFIED) if current == FINALIZED else (None, current)
    if client in (REGISTERED, CHANGED, UNKNOWN):
        if current == REGISTERED:
            return REGISTERED, REGISTERED
        if current in (FINALIZED, IMPORTED, VERIFIED):
            return current, VERIFIED  # the row keeps its status, the reply says Verified
        return None, current
    if client in (FINALIZED, VERIFIED):
        return None, current
    return None, -1  # "unhandled case in getAction"


def _update_manifest_status(manifest: Manifest) -> None:
    """``CheckUpdateManifestStatus``: Completed once every file is finalized or verified."""
    if manifest.files and all(f.status in (FINALIZED, VERIFIED) for f in manifest.files.values()):
        manifest.status = "Completed"


async def get_manifests(request: Request) -> Response:
    """``GET /manifest?dataset_id=``: the dataset's manifests (status as a string)."""
    ds, _ = _authorize(request)
    ws = _ws(request)
    with ws.lock:
        rows = [m for m in ws.manifests.values() if m.dataset is ds]
    return JSONResponse({"manifests": [
        {"id": m.id, "dataset_id": ds.int_id, "dataset_node_id": ds.node_id, "status": m.status,
         "user": m.user_int_id, "date_created": m.date_created} for m in rows] or None})


# ---- storage credentials --------------------------------------------------------------------------
async def storage_credentials(request: Request) -> Response:
    """``POST /manifest/storage-credentials`` ``{"manifestNodeId"}`` (storage_credentials.go)."""
    ds, _ = _authorize(request)
    ws = _ws(request)
    manifest = _own_manifest(ws, (await _body(request)).get("manifestNodeId"), ds)
    await request.app.state.workspace_storage.ready()
    creds = ws.issue_credentials(manifest)
    expiration = datetime.fromtimestamp(int(creds.expiration), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return JSONResponse({"accessKeyId": creds.access_key_id, "secretAccessKey": creds.secret_access_key,
                         "sessionToken": creds.session_token, "expiration": expiration,
                         "bucket": creds.bucket, "keyPrefix": creds.key_prefix, "region": "us-east-1"})


# ---- finalize -------------------------------------------------------------------------------------
async def finalize(request: Request) -> Response:
    """``POST /manifest/files/finalize`` (finalize_files.go): per-file HEAD checks, then import."""
    ds, _ = _authorize(request)
    ws = _ws(request)
    body = await _body(request)
    manifest_id = body.get("manifestNodeId")
    if not isinstance(manifest_id, str) or not _UUID.fullmatch(manifest_id):
        raise gateway_error(400, "manifestNodeId must be a UUID")
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise gateway_error(400, "files is required and must be non-empty")
    if len(files) > MAX_FINALIZE_BATCH:
        raise gateway_error(400, f"batch_too_large: max {MAX_FINALIZE_BATCH} files per request")
    on_conflict = body.get("onConflict") or "keepBoth"
    if on_conflict not in ("keepBoth", "replace"):
        raise gateway_error(400, "onConflict must be one of: keepBoth, replace")
    for i, f in enumerate(files):
        if not isinstance(f, dict) or not isinstance(f.get("uploadId"), str) or not _UUID.fullmatch(f["uploadId"]):
            raise gateway_error(400, f"files[{i}].uploadId must be a UUID")
        if not isinstance(f.get("size"), int) or isinstance(f.get("size"), bool) or f["size"] < 0:
            raise gateway_error(400, f"files[{i}].size must be non-negative")
        if not isinstance(f.get("sha256"), str) or not f["sha256"]:
            raise gateway_error(400, f"files[{i}].sha256 is required")
    manifest = _own_manifest(ws, manifest_id, ds)
    storage = request.app.state.workspace_storage
    await storage.ready()
    results: list[dict[str, Any]] = []
    to_import: list[tuple[ManifestFile, int]] = []
    for f in files:
        upload_id = f["uploadId"]
        with ws.lock:
            mf = manifest.files.get(upload_id)
        if mf is None:
            results.append({"uploadId": upload_id, "status": "failed", "error": "uploadId not found in manifest"})
            continue
        if mf.status in (FINALIZED, VERIFIED):
            results.append({"uploadId": upload_id, "status": "finalized"})
            continue
        head = storage.head(ws.bucket, f"{manifest.key_prefix}/{upload_id}")
        if head is None:
            error = "object not found"
        elif head[0] != f["size"]:
            error = "size mismatch"
        elif head[1] is None or head[1] != f["sha256"]:
            error = "sha256 mismatch"
        else:
            to_import.append((mf, head[0]))
            results.append({"uploadId": upload_id, "status": "finalized"})
            continue
        results.append({"uploadId": upload_id, "status": "failed", "error": error})
    with ws.lock:
        if manifest.status == "Initiated" and to_import:
            manifest.status = "Uploading"
    delay = ws.import_delay
    if delay > 0:
        asyncio.get_running_loop().call_later(delay, _import, ws, manifest, to_import, on_conflict)
    else:
        _import(ws, manifest, to_import, on_conflict)
    return JSONResponse({"results": results})


def _import(ws: Workspace, manifest: Manifest, files: list[tuple[ManifestFile, int]], on_conflict: str) -> None:
    """The upload lambda: packages for the files, manifest files Finalized."""
    with ws.lock:
        for mf, size in files:
            if mf.upload_id in manifest.files:
                ws.import_file(manifest, mf, size, on_conflict)
        _update_manifest_status(manifest)


# ---- listings -------------------------------------------------------------------------------------
def _page(manifest: Manifest, status: str | None, token: str | None, limit: int) -> tuple[list[ManifestFile], str]:
    """A DynamoDB query page in upload-id (range key) order after ``token``, ``status`` matched
    exactly; the next token is the last id of a full page (DynamoDB's ``LastEvaluatedKey``, so a
    full last page is followed by an empty one), else ``""``."""
    rows = sorted((f for f in manifest.files.values()
                   if status is None or FILE_STATUSES[f.status] == status), key=lambda f: f.upload_id)
    if token:
        rows = [f for f in rows if f.upload_id > token]
    page = rows[:limit]
    return page, (page[-1].upload_id if page and len(page) == limit else "")


async def manifest_status(request: Request) -> Response:
    """``GET /manifest/status?manifest_id=&status=Finalized&verify=true&continuation_token=``
    (``getManifestFilesStatusRoute``): 500 upload ids a page; ``verify`` marks them Verified."""
    _, manifest = _authorize(request, "manifest_id")
    assert manifest is not None
    ws = _ws(request)
    status = request.query_params.get("status")
    if status is None:
        raise gateway_error(400, "Error: status not specified")
    verify = request.query_params.get("verify") == "true"
    if verify and status != "Finalized":
        raise gateway_error(400, "Error: Status parameter needs to be set to 'Finalized' when verifying upload.")
    with ws.lock:
        page, token = _page(manifest, status, request.query_params.get("continuation_token"), STATUS_PAGE)
        if verify:
            for f in page:
                f.status = VERIFIED
    return JSONResponse({"manifest_id": manifest.id, "status": status,
                         "files": [f.upload_id for f in page] or None, "continuation_token": token,
                         "verified": verify})


async def manifest_files(request: Request) -> Response:
    """``GET /manifest/files?manifest_id=&limit=20&status=&continuation_token=`` (``getManifestFilesRoute``)."""
    _, manifest = _authorize(request, "manifest_id")
    assert manifest is not None
    ws = _ws(request)
    raw = request.query_params.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        # strconv.ParseInt fails and the handler returns the error: API Gateway's 500
        raise JSONError(500, {"message": "Internal Server Error"}) from None
    if manifest.status == "Archived":
        raise gateway_error(400, "Cannot sync with an 'archived' manifest. Archived manifests can be downloaded "
                                 "as a CSV file.")
    with ws.lock:
        page, token = _page(manifest, request.query_params.get("status"),
                            request.query_params.get("continuation_token"), max(limit, 1))
        files = [{"file_name": f.target_name, "file_path": f.target_path, "file_type": f.file_type,
                  "upload_id": f.upload_id, "status": FILE_STATUSES[f.status],
                  "icon": file_type(f.target_name)[1]} for f in page]
    return JSONResponse({"manifest_id": manifest.id, "files": files or None, "continuation_token": token})


routes = [
    Route("/upload/manifest", post_manifest, methods=["POST"]),
    Route("/upload/manifest", get_manifests, methods=["GET"]),
    Route("/upload/manifest/storage-credentials", storage_credentials, methods=["POST"]),
    Route("/upload/manifest/files/finalize", finalize, methods=["POST"]),
    Route("/upload/manifest/status", manifest_status, methods=["GET"]),
    Route("/upload/manifest/files", manifest_files, methods=["GET"]),
]
