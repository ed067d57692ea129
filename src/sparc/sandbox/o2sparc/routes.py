"""o²S²PARC api-server routes (mounted at ``/v0``): parse the request, call :class:`.state.O2State`, render.

Answers follow the api-server code (ITISFoundation/osparc-simcore ``services/api-server``) where it
and the 0.13.0 OpenAPI spec differ; O2SPARC.md lists each such place. Every error body is
``ErrorGet``; every route but ``GET /v0/meta`` and the presigned storage URLs needs HTTP Basic auth.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import logging
import math
import re
import secrets
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Match, Route

from sparc.sandbox.assets.errors import S3Error
from sparc.sandbox.http import SandboxError
from sparc.sandbox.o2sparc import catalog, errors
from sparc.sandbox.o2sparc.catalog import Release
from sparc.sandbox.o2sparc.errors import O2Error, invalid
from sparc.sandbox.o2sparc.runner import run_job
from sparc.sandbox.o2sparc.state import (
    RUNNING,
    STORAGE_PREFIX,
    TERMINAL,
    Job,
    O2State,
    StoredFile,
    iso,
)

API_VERSION = "0.13.0"  # the spec the official osparc 0.8.x client is generated from
SHA256_RE = re.compile(r"^[a-fA-F0-9]{64}$")
LOGIN = "sandbox-user@example.com"
_log = logging.getLogger("sparc.sandbox.o2sparc")
Handler = Callable[[Request], Awaitable[Response]]


class SolverKeyConvertor(Convertor[str]):
    """``{solver_key:path}`` of the api-server: any text, slashes included (checked by the handler)."""

    regex = ".+?"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("o2s_key", SolverKeyConvertor())


# ---- plumbing ----------------------------------------------------------------------------------------
def _state(request: Request) -> O2State:
    state: O2State = request.app.state.o2sparc
    return state


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _check_auth(request: Request) -> None:
    settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise O2Error(401, "Not authenticated", headers={"WWW-Authenticate": "Basic"})
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise errors.unauthorized() from None
    ok_user = secrets.compare_digest(user.encode(), settings.api_key.encode())
    ok_password = secrets.compare_digest(password.encode(), settings.api_secret.encode())
    if not (sep and ok_user and ok_password):
        raise errors.unauthorized()


def endpoint(auth: bool = True) -> Callable[[Handler], Handler]:
    """A route handler: Basic auth first (``auth``), and an unexpected error as a 500 ``ErrorGet``."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                if auth:
                    _check_auth(request)
                return await handler(request)
            except SandboxError:
                raise
            except ClientDisconnect:  # the client hung up mid-request: nobody to answer
                return Response(status_code=400)
            except Exception:
                _log.exception("o2sparc: %s %s failed", request.method, request.url.path)
                raise errors.internal_error() from None
        return run

    return wrap


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"Number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"Invalid constant {name}")


async def _json_body(request: Request) -> Any:
    """The JSON body; 422 ``json_invalid`` when it is not JSON, or holds what no JSON answer can
    carry back (a lone surrogate, a number beyond a double, ``NaN``)."""
    body = await request.body()
    if not body.strip():
        raise errors.validation(invalid(["body"], "Field required", "missing"))
    try:
        value = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
        json.dumps(value, ensure_ascii=False).encode()  # lone surrogates cannot be answered in UTF-8
        return value
    except (ValueError, RecursionError) as exc:
        raise errors.validation({**invalid(["body", 0], "JSON decode error", "json_invalid", {}),
                                 "ctx": {"error": str(exc).split(":")[0]}}) from None


def _object(value: Any, loc: list[str | int]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.validation(invalid(loc, "Input should be a valid dictionary or object to extract "
                                        "fields from", "model_attributes_type", value))
    return value


def _int_query(request: Request, name: str, default: int, minimum: int | None = None,
               maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    loc: list[str | int] = ["query", name]
    try:
        value = int(raw.strip())
    except ValueError:
        raise errors.validation(invalid(loc, "Input should be a valid integer, unable to parse string "
                                        "as an integer", "int_parsing", raw)) from None
    if minimum is not None and value < minimum:
        raise errors.validation({**invalid(loc, f"Input should be greater than or equal to {minimum}",
                                           "greater_than_equal", raw), "ctx": {"ge": minimum}})
    if maximum is not None and value > maximum:
        raise errors.validation({**invalid(loc, f"Input should be less than or equal to {maximum}",
                                           "less_than_equal", raw), "ctx": {"le": maximum}})
    return value


_TRUE, _FALSE = ("1", "true", "t", "yes", "y", "on"), ("0", "false", "f", "no", "n", "off")


def _bool_query(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter as pydantic parses one (``true``/``1``/``yes``/``on``...)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.strip().lower() not in _TRUE + _FALSE:
        raise errors.validation(invalid(["query", name], "Input should be a valid boolean, unable to "
                                        "interpret input", "bool_parsing", raw))
    return raw.strip().lower() in _TRUE


def _uuid_param(value: str, loc: list[str | int]) -> dict[str, Any] | None:
    try:
        uuid.UUID(value)
    except ValueError:
        return invalid(loc, "Input should be a valid UUID, invalid character: expected an optional prefix "
                       "of `urn:uuid:` followed by [0-9a-fA-F-]", "uuid_parsing", value)
    return None


def _pattern_error(value: str, pattern: re.Pattern[str], loc: list[str | int]) -> dict[str, Any] | None:
    if pattern.match(value):
        return None
    return {**invalid(loc, f"String should match pattern '{pattern.pattern}'", "string_pattern_mismatch",
                      value), "ctx": {"pattern": pattern.pattern}}


def _path_errors(request: Request) -> list[dict[str, Any]]:
    p = request.path_params
    found = []
    if "solver_key" in p:
        found.append(_pattern_error(p["solver_key"], catalog.SOLVER_KEY_RE, ["path", "solver_key"]))
    if "version" in p:
        found.append(_pattern_error(p["version"], catalog.VERSION_RE, ["path", "version"]))
    if "file_id" in p:
        found.append(_uuid_param(p["file_id"], ["path", "file_id"]))
    return [e for e in found if e is not None]


def _check_path(request: Request) -> None:
    found = _path_errors(request)
    if found:
        raise errors.validation(*found)


def _release(request: Request, message: str | None = None) -> Release:
    """The release of the path; 404 with ``message`` or catalog's ``ProgramOrSolverOrStudyNotFoundError``."""
    _check_path(request)
    key, version = request.path_params["solver_key"], request.path_params["version"]
    found = catalog.find(key, version)
    if found is None:
        raise errors.not_found(message or f"The program, solver, or project '{key}' version {version} "
                               "could not be found.")
    return found


def _job(request: Request) -> Job:
    release = _release(request)
    return _state(request).get_job(release, str(request.path_params["job_id"]))


def _page(request: Request, items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """``Page[X]`` with fastapi-pagination's links (paths relative to the host)."""
    query = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}

    def link(at: int) -> str:
        return f"{request.url.path}?{urlencode({**query, 'limit': limit, 'offset': at})}"

    last = max(0, (-(-total // limit) - 1) * limit)
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "links": {"first": link(0), "last": link(last), "self": link(offset),
                      "next": link(offset + limit) if offset + limit < total else None,
                      "prev": link(max(0, offset - limit)) if offset > 0 else None}}


def _limit_offset(request: Request) -> tuple[int, int]:
    return (_int_query(request, "limit", 20, 1, 50), _int_query(request, "offset", 0, 0))


# ---- meta, users, credits ------------------------------------------------------------------------------
@endpoint(auth=False)
async def get_meta(request: Request) -> Response:
    base = _base(request)
    return JSONResponse({"name": "simcore_service_api_server", "version": API_VERSION,
                         "released": {"v0": API_VERSION}, "docs_url": f"{base}/dev/doc",
                         "docs_dev_url": f"{base}/dev/doc"})


def _profile(state: O2State) -> dict[str, Any]:
    return {"id": 1, "login": LOGIN, "role": "USER", **state.profile,
            "groups": {"me": {"gid": "3", "label": "sandbox-user", "description": "primary group"},
                       "all": {"gid": "1", "label": "Everyone", "description": "all users"},
                       "organizations": []},
            "gravatar_id": hashlib.md5(LOGIN.encode()).hexdigest()}


@endpoint()
async def me(request: Request) -> Response:
    state = _state(request)
    if request.method == "PUT":
        body = _object(await _json_body(request), ["body"])
        for name in ("first_name", "last_name"):
            if name not in body:
                continue
            value = body[name]
            if value is not None and not isinstance(value, str):
                raise errors.validation(invalid(["body", name], "Input should be a valid string",
                                                "string_type", value))
            if isinstance(value, str) and len(value) > 255:
                raise errors.validation(invalid(["body", name], "String should have at most 255 characters",
                                                "string_too_long", value))
            state.profile[name] = value
    return JSONResponse(_profile(state))


@endpoint()
async def credits_price(request: Request) -> Response:
    """A free product: ``usdPerCredit`` null (outputs are not gated by credits)."""
    return JSONResponse({"productName": "osparc", "usdPerCredit": None, "minPaymentAmountUsd": None})


# ---- files -----------------------------------------------------------------------------------------------
def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (filename, bytes)}`` of a ``multipart/form-data`` body (no streaming: small files)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or not match:
        return {}
    boundary = b"--" + match.group(1).encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = next((line for line in head.decode("utf-8", "replace").split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (filename.group(1) if filename else None, data)
    return fields


@endpoint()
async def upload_file_legacy(request: Request) -> Response:
    """``PUT /v0/files/content``: multipart field ``file``; a new id per upload (sha256:name:now)."""
    fields = _parse_multipart(request.headers.get("content-type", ""), await request.body())
    if "file" not in fields or fields["file"][0] is None:
        raise errors.validation(invalid(["body", "file"], "Field required", "missing"))
    filename, data = fields["file"]
    assert filename is not None
    filename = Path(filename.replace("\\", "/")).name or "file"
    state = _state(request)
    sha256 = hashlib.sha256(data).hexdigest()
    with tempfile.NamedTemporaryFile(dir=state.root / "uploads", delete=False) as tmp:
        tmp.write(data)
    stored = state.store_file(state.new_file_id(sha256, filename), filename, Path(tmp.name),
                              sha256=sha256, e_tag=hashlib.md5(data).hexdigest())
    return JSONResponse(stored.to_json())


def _user_file(value: Any, loc: list[str | int]) -> tuple[str, int, str]:
    """``(filename, filesize, sha256)`` of a ``UserFile`` body; 422 as pydantic words it."""
    body = _object(value, loc)
    found = []
    for name in ("filename", "filesize", "sha256_checksum"):
        if name not in body:
            found.append(invalid([*loc, name], "Field required", "missing", body))
    if found:
        raise errors.validation(*found)
    filename, filesize, sha256 = body["filename"], body["filesize"], body["sha256_checksum"]
    if not isinstance(filename, str) or not filename:
        found.append(invalid([*loc, "filename"], "Input should be a valid string", "string_type", filename))
    if isinstance(filesize, bool) or not isinstance(filesize, int) or filesize < 0:
        found.append(invalid([*loc, "filesize"], "Input should be greater than or equal to 0",
                             "greater_than_equal", filesize))
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
        found.append(invalid([*loc, "sha256_checksum"], f"String should match pattern '{SHA256_RE.pattern}'",
                             "string_pattern_mismatch", sha256))
    if found:
        raise errors.validation(*found)
    return Path(filename.replace("\\", "/")).name or "file", filesize, sha256


@endpoint()
async def get_upload_links(request: Request) -> Response:
    """``POST /v0/files/content``: ClientFileUploadData (one PUT link under 100 MiB, else S3 parts)."""
    body = _object(await _json_body(request), ["body"])
    if "program_key" in body:
        raise errors.not_found(f"Program {body.get('program_key')}:{body.get('program_version')} not found")
    filename, filesize, sha256 = _user_file(body, ["body"])
    state = _state(request)
    upload = state.start_upload(filename, filesize, sha256)
    base = _base(request)
    if upload.n_parts == 1:
        urls = [state.signer.url(base, "PUT", upload.object_key)]
    else:
        urls = [state.signer.url(base, "PUT", upload.object_key, uploadId=upload.upload_id,
                                 partNumber=str(n)) for n in range(1, upload.n_parts + 1)]
    return JSONResponse({"file_id": upload.file_id, "upload_schema": {
        "chunk_size": upload.chunk_size, "urls": urls,
        "links": {"abort_upload": f"/v0/files/{upload.file_id}:abort",
                  "complete_upload": f"/v0/files/{upload.file_id}:complete"}}})


@endpoint()
async def complete_upload(request: Request) -> Response:
    _check_path(request)
    body = _object(await _json_body(request), ["body"])
    found = [invalid(["body", name], "Field required", "missing", body)
             for name in ("client_file", "uploaded_parts") if name not in body]
    if found:
        raise errors.validation(*found)
    _user_file(body["client_file"], ["body", "client_file"])
    parts_body = _object(body["uploaded_parts"], ["body", "uploaded_parts"])
    raw_parts = parts_body.get("parts")
    if not isinstance(raw_parts, list):
        raise errors.validation(invalid(["body", "uploaded_parts", "parts"], "Input should be a valid list",
                                        "list_type", raw_parts))
    parts: list[tuple[int, str]] = []
    for i, part in enumerate(raw_parts):
        loc: list[str | int] = ["body", "uploaded_parts", "parts", i]
        part = _object(part, loc)
        number, e_tag = part.get("number"), part.get("e_tag")
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise errors.validation(invalid([*loc, "number"], "Input should be greater than 0",
                                            "greater_than", number))
        if not isinstance(e_tag, str):
            raise errors.validation(invalid([*loc, "e_tag"], "Input should be a valid string",
                                            "string_type", e_tag))
        parts.append((number, e_tag))
    stored = await _state(request).complete_upload(request.path_params["file_id"], parts)
    return JSONResponse(stored.to_json())


@endpoint()
async def abort_upload(request: Request) -> Response:
    _check_path(request)
    body = _object(await _json_body(request), ["body"])
    if "client_file" not in body:
        raise errors.validation(invalid(["body", "client_file"], "Field required", "missing", body))
    _state(request).abort_upload(request.path_params["file_id"])
    return JSONResponse(None)


@endpoint()
async def list_files(request: Request) -> Response:
    return JSONResponse([f.to_json() for f in _state(request).listed_files()])


@endpoint()
async def search_files(request: Request) -> Response:
    """``GET /v0/files:search``: by ``sha256_checksum`` and/or ``file_id`` (see O2SPARC.md on ``total``)."""
    sha256 = request.query_params.get("sha256_checksum")
    file_id = request.query_params.get("file_id")
    bad = []
    if sha256 is not None:
        bad.append(_pattern_error(sha256, SHA256_RE, ["query", "sha256_checksum"]))
    if file_id is not None:
        bad.append(_uuid_param(file_id, ["query", "file_id"]))
    if any(bad):
        raise errors.validation(*[e for e in bad if e])
    limit, offset = _limit_offset(request)
    hits = [f for f in _state(request).listed_files()
            if (sha256 is None or (f.checksum or "").lower() == sha256.lower())
            and (file_id is None or f.id == str(uuid.UUID(file_id)))]
    # as files.py does: storage returns one page (limit/offset), and ``total`` is that page's size
    found = hits[offset:offset + limit]
    if offset > len(found):
        raise errors.not_found("Not found in storage")
    return JSONResponse(_page(request, [f.to_json() for f in found], len(found), limit, offset))


def _file(request: Request) -> StoredFile:
    _check_path(request)
    return _state(request).get_file(str(uuid.UUID(request.path_params["file_id"])))


@endpoint()
async def file_resource(request: Request) -> Response:
    if request.method == "DELETE":
        stored = _file(request)
        _state(request).delete_file(stored.id)
        return JSONResponse(None)
    return JSONResponse(_file(request).to_json())


@endpoint()
async def download_file(request: Request) -> Response:
    """307 to a presigned GET of the object (as storage's download link)."""
    stored = _file(request)
    return RedirectResponse(_state(request).signer.url(_base(request), "GET", stored.object_key), 307)


# ---- object storage (presigned URLs, no Basic auth) ---------------------------------------------------
async def storage_object(request: Request) -> Response:
    """``GET``/``PUT`` of a presigned URL: S3 XML errors, quoted ``ETag`` on every part."""
    state = _state(request)
    path = request.url.path
    query = dict(request.query_params)
    state.signer.check(request.method, request.headers.get("host", ""), path, request.query_params.multi_items())
    key = path[len(STORAGE_PREFIX):]
    if request.method == "GET":
        target = state.objects.get(key)
        if target is None or not target.exists():
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
        name = key.rsplit("/", 1)[-1]
        return FileResponse(target, filename=name, content_disposition_type="attachment")
    upload = state.upload_for(key, query.get("uploadId", ""))
    if upload is None and "uploadId" not in query:
        upload = next((u for u in state.uploads.values() if u.object_key == key and u.n_parts == 1), None)
    if upload is None:
        raise S3Error(404, "NoSuchUpload", "The specified upload does not exist. The upload ID "
                      "may be invalid, or the upload may have been aborted or completed.")
    try:
        number = int(query.get("partNumber", "1"))
    except ValueError:
        number = 0
    if not 1 <= number <= upload.n_parts:
        raise S3Error(400, "InvalidArgument", "Part number must be an integer between 1 and "
                      f"{upload.n_parts}, inclusive")
    md5 = hashlib.md5()
    received = 0
    with (upload.folder / f"part-{number}").open("wb") as out:
        async for chunk in request.stream():
            md5.update(chunk)
            received += len(chunk)
            out.write(chunk)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != received:
        raise S3Error(400, "IncompleteBody", "You did not provide the number of bytes "
                      "specified by the Content-Length HTTP header.")
    upload.parts[number] = md5.hexdigest()
    return Response(status_code=200, headers={"ETag": f'"{upload.parts[number]}"'})


# ---- solvers -------------------------------------------------------------------------------------------
def _solver_json(request: Request, release: Release) -> dict[str, Any]:
    return {"id": release.key, "version": release.version, "title": release.title,
            "description": release.description,
            "url": f"{_base(request)}/v0/solvers/{release.key}/releases/{release.version}",
            "maintainer": release.maintainer, "version_display": release.version_display}


@endpoint()
async def list_solvers(request: Request) -> Response:
    keys = sorted({r.key for r in catalog.RELEASES})
    latest = [catalog.latest(k) for k in keys]
    return JSONResponse([_solver_json(request, r) for r in latest if r is not None])


@endpoint()
async def list_all_releases(request: Request) -> Response:
    return JSONResponse([_solver_json(request, r) for r in catalog.releases()])


@endpoint()
async def latest_release(request: Request) -> Response:
    _check_path(request)
    key = request.path_params["solver_key"]
    found = catalog.latest(key)
    if found is None:
        raise errors.not_found(f"Solver with id={key} not found")
    return JSONResponse(_solver_json(request, found))


@endpoint()
async def solver_releases(request: Request) -> Response:
    _check_path(request)
    key = request.path_params["solver_key"]
    found = catalog.releases(key)
    if not found:
        raise errors.not_found(f"Solver with id={key} not found")
    return JSONResponse([_solver_json(request, r) for r in found])


@endpoint()
async def get_release(request: Request) -> Response:
    key, version = request.path_params["solver_key"], request.path_params["version"]
    return JSONResponse(_solver_json(request, _release(request, f"Solver {key}:{version} not found")))


@endpoint()
async def solver_ports(request: Request) -> Response:
    items = catalog.solver_ports(_release(request))
    return JSONResponse({"items": items, "total": len(items)})


@endpoint()
async def pricing_plan(request: Request) -> Response:
    """A free product has no pricing plan: the webserver answers none, and the route's response
    model rejects ``None`` (its ``assert`` is stripped by ``PYTHONOPTIMIZE``): an unexpected 500."""
    _release(request)
    raise errors.internal_error()


# ---- jobs ----------------------------------------------------------------------------------------------
def _job_json(request: Request, job: Job) -> dict[str, Any]:
    rel = job.release
    runner = f"{_base(request)}/v0/solvers/{rel.key}/releases/{rel.version}"
    url = f"{runner}/jobs/{job.id}"
    runner_name = f"solvers/{quote_plus(rel.key)}/releases/{rel.version}"
    return {"id": job.id, "name": f"{runner_name}/jobs/{job.id}", "inputs_checksum": job.inputs_checksum,
            "created_at": iso(job.created_at), "runner_name": runner_name, "url": url,
            "runner_url": runner, "outputs_url": f"{url}/outputs"}


_FILE_FIELDS = {"id", "filename", "content_type", "checksum", "e_tag"}
_VALUE_MSG = "Input should be a File, a number, an integer, a boolean, a string, an array or null"


def _job_values(body: Any) -> dict[str, Any]:
    """``JobInputs.values``: each a File, number, integer, boolean, string, array or null (422 otherwise)."""
    body = _object(body, ["body"])
    if "values" not in body:
        raise errors.validation(invalid(["body", "values"], "Field required", "missing", body))
    values = _object(body["values"], ["body", "values"])
    found = []
    for name, value in values.items():
        loc: list[str | int] = ["body", "values", name]
        if isinstance(value, dict):
            problems = [f for f in ("id", "filename") if f not in value]
            if not problems and _uuid_param(str(value["id"]), [*loc, "File", "id"]):
                problems = ["id"]
            if not problems and not isinstance(value["filename"], str):
                problems = ["filename"]
            if problems:
                found.append(invalid([*loc, "File", problems[0]], f"{_VALUE_MSG} (File.{problems[0]} "
                                     "missing or invalid)", "union_tag_invalid", value))
            else:
                values[name] = {k: v for k, v in value.items() if k in _FILE_FIELDS}
        elif value is not None and not isinstance(value, bool | int | float | str | list):
            found.append(invalid(loc, _VALUE_MSG, "union_tag_invalid", value))
    if found:
        raise errors.validation(*found)
    return values


@endpoint()
async def jobs_collection(request: Request) -> Response:
    """``POST`` creates a job (201, not started); ``GET`` lists at most 20 (deprecated route)."""
    release = _release(request)
    state = _state(request)
    if request.method == "POST":
        _bool_query(request, "hidden", True)  # a hidden job's project is not listed in the web UI
        bad = [_uuid_param(request.headers[h], ["header", h])
               for h in ("x-simcore-parent-project-uuid", "x-simcore-parent-node-id") if h in request.headers]
        if any(bad):
            raise errors.validation(*[e for e in bad if e])
        values = _job_values(await _json_body(request))
        return JSONResponse(_job_json(request, state.create_job(release, values)), status_code=201)
    return JSONResponse([_job_json(request, j) for j in state.jobs_of(release)[:20]])


@endpoint()
async def jobs_page(request: Request) -> Response:
    release = _release(request)
    limit, offset = _limit_offset(request)
    jobs = _state(request).jobs_of(release)
    items = [_job_json(request, j) for j in jobs[offset:offset + limit]]
    return JSONResponse(_page(request, items, len(jobs), limit, offset))


@endpoint()
async def job_resource(request: Request) -> Response:
    job = _job(request)
    if request.method == "DELETE":
        _state(request).delete_job(job)
        return Response(status_code=204)
    return JSONResponse(_job_json(request, job))


@endpoint()
async def start_job(request: Request) -> Response:
    """202 and PUBLISHED on the first start; 200 with the current status when already started."""
    job = _job(request)
    if job.assets_deleted:
        raise O2Error(409, f"The assets for job {job.id} are missing.", backend=True)
    if job.started:
        return JSONResponse(job.status(), status_code=200)
    state = _state(request)
    job.state = "PUBLISHED"
    job.task = asyncio.get_running_loop().create_task(run_job(state, job), name=f"o2sparc-job-{job.id}")
    return JSONResponse(job.status(), status_code=202)


@endpoint()
async def inspect_job(request: Request) -> Response:
    return JSONResponse(_job(request).status())


@endpoint()
async def stop_job(request: Request) -> Response:
    """A running job becomes ABORTED (``stopped_at`` set); any other keeps its state."""
    job = _job(request)
    if job.state in RUNNING and job.task is not None and not job.task.done():
        job.task.cancel()
        await asyncio.wait([job.task], timeout=5)
    return JSONResponse(job.status())


@endpoint()
async def job_outputs(request: Request) -> Response:
    job = _job(request)
    if job.state != "SUCCESS" or job.results is None:
        raise O2Error(409, f"Cannot retrieve output for solver job '{job.id}' because it has not "
                      f"completed successfully. Current state: RunningState.{job.state}.", backend=True)
    if job.assets_deleted:
        raise errors.conflict("Assets have been deleted")
    return JSONResponse({"job_id": job.id, "results": _state(request).link_outputs(job)})


@endpoint()
async def job_logfile(request: Request) -> Response:
    """307 to ``logs.zip`` once the job has stopped; 404 before."""
    job = _job(request)
    if job.state not in TERMINAL or job.logs_zip is None or job.assets_deleted:
        raise errors.not_found(f"Log for {job.release.key}/releases/{job.release.version}/jobs/{job.id} "
                               "not found.Note that these logs are only available after the job is completed.")
    key = f"{job.id}/{job.node_id}/logs.zip"
    return RedirectResponse(_state(request).signer.url(_base(request), "GET", key), 307)


LOG_POLL_SECONDS = 0.05  # how often the stream looks for new log lines (real time)


@endpoint()
async def job_logstream(request: Request) -> Response:
    """``application/x-ndjson`` JobLog lines while the job runs; the stream ends when it stops.

    One stream per job at a time (409 ``LogStreamerRegistrationConflictError``). The sandbox sends
    the lines the job has logged so far first, then new ones as they come.
    """
    job = _job(request)
    state = _state(request)
    if job.id in state.streaming:
        raise errors.conflict(f"A stream is already connected to {job.id}. Only one stream can be "
                              "connected at a time.")
    state.streaming.add(job.id)

    async def lines() -> Any:
        sent = 0
        try:
            while True:
                running = job.state in RUNNING
                new = job.log[sent:]
                sent += len(new)
                for message in new:
                    level = 40 if " ERROR: " in message else 30 if " WARNING: " in message else 20
                    yield json.dumps({"job_id": job.id, "node_id": job.node_id, "log_level": level,
                                      "messages": [message]}) + "\n"
                if not running:
                    return
                await asyncio.sleep(LOG_POLL_SECONDS)
        finally:
            state.streaming.discard(job.id)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _metadata_json(request: Request, job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "metadata": job.metadata,
            "url": _job_json(request, job)["url"] + "/metadata"}


@endpoint()
async def job_metadata(request: Request) -> Response:
    """``GET``; ``PATCH {"metadata": {...}}`` replaces the whole map (bool, int, float or str values)."""
    job = _job(request)
    if request.method == "PATCH":
        body = _object(await _json_body(request), ["body"])
        metadata = _object(body.get("metadata", {}), ["body", "metadata"])
        bad = [invalid(["body", "metadata", k], "Input should be a valid boolean, integer, number or string",
                       "union_tag_invalid", v)
               for k, v in metadata.items() if not isinstance(v, bool | int | float | str)]
        if bad:
            raise errors.validation(*bad)
        job.metadata = dict(metadata)
    return JSONResponse(_metadata_json(request, job))


@endpoint()
async def delete_job_assets(request: Request) -> Response:
    job = _job(request)
    if job.stopped_at is None:
        raise O2Error(409, f"Solver job '{job.id}' has not stopped yet. Current status: "
                      f"RunningState.{job.state}.", backend=True)
    _state(request).drop_outputs(job)
    job.assets_deleted = True
    return Response(status_code=204)


# ---- anything else -------------------------------------------------------------------------------------
async def unmatched(request: Request) -> Response:
    """FastAPI's own answers: 405 for a known path with another method, else 404, as ErrorGet."""
    for route in routes[:-1]:
        match, _ = route.matches({**request.scope, "method": request.method})
        if match is Match.PARTIAL:
            raise O2Error(405, "Method Not Allowed")
    raise O2Error(404, "Not Found")


SOLVER = "/solvers/{solver_key:o2s_key}"
RELEASE = SOLVER + "/releases/{version}"
JOB = RELEASE + "/jobs/{job_id:uuid}"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

routes: list[BaseRoute] = [
    Route("/meta", get_meta),
    Route("/me", me, methods=["GET", "PUT"]),
    Route("/credits/price", credits_price),
    Route("/files", list_files),
    Route("/files/content", upload_file_legacy, methods=["PUT"]),
    Route("/files/content", get_upload_links, methods=["POST"]),
    Route("/files:search", search_files),
    Route("/files/{file_id}:complete", complete_upload, methods=["POST"]),
    Route("/files/{file_id}:abort", abort_upload, methods=["POST"]),
    Route("/files/{file_id}/content", download_file),
    Route("/files/{file_id}", file_resource, methods=["GET", "DELETE"]),
    Route("/_storage/simcore/{key:path}", storage_object, methods=["GET", "PUT"]),
    Route("/solvers", list_solvers),
    Route("/solvers/releases", list_all_releases),
    Route(JOB + ":start", start_job, methods=["POST"]),
    Route(JOB + ":stop", stop_job, methods=["POST"]),
    Route(JOB + ":inspect", inspect_job, methods=["POST"]),
    Route(JOB + "/outputs/logfile", job_logfile),
    Route(JOB + "/outputs", job_outputs),
    Route(JOB + "/metadata", job_metadata, methods=["GET", "PATCH"]),
    Route(JOB + "/logstream", job_logstream),
    Route(JOB + "/assets", delete_job_assets, methods=["DELETE"]),
    Route(RELEASE + "/jobs/page", jobs_page),
    Route(JOB, job_resource, methods=["GET", "DELETE"]),
    Route(RELEASE + "/jobs", jobs_collection, methods=["GET", "POST"]),
    Route(RELEASE + "/ports", solver_ports),
    Route(RELEASE + "/pricing_plan", pricing_plan),
    Route(RELEASE, get_release),
    Route(SOLVER + "/releases", solver_releases),
    Route(SOLVER + "/latest", latest_release),
    Route("/{rest:path}", unmatched, methods=ALL_METHODS),
]
