"""The zipit service: ``POST /zipit/discover``, as Pennsieve/zipit-service (9fab460) does it.

Like the real service, the sandbox's zipit is a client of the other services: it asks Discover's
download-manifest over HTTP, then fetches each presigned URL over HTTP (so faults injected on
``/discover/*`` or ``/_assets/*`` reach it as they would reach zipit; with no rule active the bytes
are read in-process, for speed). Then:

- one file in the manifest (``header.count == 1``) → that file raw, ``application/octet-stream``,
  no Content-Length (archiver.handlers.ts:65, 89-114);
- several → a STORED ZIP named ``<archiveName>.zip``, or after the first path segment of the first
  file (below ``rootPath``) when one path was asked for, else ``pennsieve-data.zip``
  (archiver.handlers.ts:117-141, validators.ts:112); files it could not fetch are listed as
  ``FILE Error: <name>`` lines of a ``!ERROR.txt`` entry (archiver.handlers.ts:293-312, utils.ts:85-100);
- every request-level error is HTTP 200 with a ``!ERROR.txt`` attachment: a JSON document indented
  by 2 spaces, ``text/plain`` (error.middleware.ts:16-58); "no data to download" has status 500.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sparc.sandbox.http import INT32_MAX, SandboxError
from sparc.sandbox.storage.objects import find_object, object_chunks
from sparc.sandbox.zipstream import ZipWriter

if TYPE_CHECKING:  # httpx is imported when zipit first fetches: it costs the server's start 0.25 s
    import httpx

INVALID = "the request was invalid"
NO_DATA = "no data to download"
TOO_BIG = "archive is too big to download"
UNKNOWN = "there was an error creating the zip, please check the logs"
ERROR_FILE = "!ERROR.txt"
FILE_ERROR = "FILE Error: "
BODY_LIMIT = 100 * 1024  # body-parser's default ``limit: '100kb'``
# characters JavaScript's encodeURI leaves alone (besides letters, digits and ``-_.~``)
_ENCODE_URI_SAFE = ";,/?:@&=+$!*'()#"
_JS_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Infinity)"
                        r"|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")
EXPRESS_ERROR_PAGE = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n'
                      '</head>\n<body>\n<pre>Internal Server Error</pre>\n</body>\n</html>\n')

log = logging.getLogger(__name__)


def error_document(status: int, error: str, info: Any) -> str:
    """The text of an ``!ERROR.txt`` answer: ``JSON.stringify({status, error, info}, undefined, 2)``."""
    return json.dumps({"status": status, "error": error, "info": info}, indent=2, ensure_ascii=False)


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value; the name is encodeURI-encoded like zipit's (no ``"`` or CR/LF)."""
    return f'attachment; filename="{quote(filename, safe=_ENCODE_URI_SAFE)}"'


class ZipitError(SandboxError):
    """An error file: HTTP 200, ``attachment; filename="!ERROR.txt"``; 400 for an invalid request,
    422 for too big, 500 for everything else (error.middleware.ts:50-58)."""

    def __init__(self, error: str, info: str = "") -> None:
        super().__init__(error, info)
        self.error, self.info = error, info
        self.status = {INVALID: 400, TOO_BIG: 422}.get(error, 500)

    def response(self) -> Response:
        return Response(error_document(self.status, self.error, self.info), media_type="text/plain",
                        headers={"Content-Disposition": attachment(ERROR_FILE)})


class ExpressCrash(SandboxError):
    """Express's final handler: a body-parser failure (malformed JSON, a body over 100 kb) reaches
    zipit's error middleware, which reads ``logger`` off the parser's error and throws
    (error.middleware.ts:17, 28), so Express answers its bare 500 page."""

    def response(self) -> Response:
        return Response(EXPRESS_ERROR_PAGE, status_code=500, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": "default-src 'none'",
                                 "X-Content-Type-Options": "nosniff"})


# ---- request validation: yup 0.28's casts and checks (validators.ts:99-116, _schema.ts:54-80) ----
_MISSING = object()


def js_string(value: Any) -> str:
    """JavaScript's ``String(value)`` for JSON values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return js_number_text(value)
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def js_number_text(value: float) -> str:
    """``String(number)`` for the finite and infinite numbers a JSON body can carry."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value).replace("e-0", "e-")


def cast_number(value: Any) -> float | None:
    """yup ``number()``: numbers as they are, strings through ``+str`` (whitespace removed); ``None``
    when not a number (NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = re.sub(r"\s", "", value)
        if not _JS_NUMBER.fullmatch(text):
            return None
        if text.lower().lstrip("+-").startswith(("0x", "0o", "0b")):
            return float(int(text, 0))
        return float(text.replace("Infinity", "inf"))
    return None


def cast_object(value: Any) -> Any:
    """yup ``object()``: a JSON string is parsed; anything but an object becomes ``None``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def cast_array(value: Any) -> list[Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def validate(body: Any) -> dict[str, Any]:
    """The validated ``data`` (paths as strings, ids as numbers) or :class:`ZipitError` (400)."""
    problems: list[str] = []
    body_object = cast_object(body) if body is not _MISSING else {}
    if body_object is None:
        raise ZipitError(INVALID, "body must be a `object` type, but the final value was: `null`.")
    raw = body_object.get("data", _MISSING)
    data = {} if raw is _MISSING else cast_object(raw)
    if data is None:
        raise ZipitError(INVALID, "body.data must be a `object` type, but the final value was: `null`.")
    out: dict[str, Any] = {}
    for name in ("datasetId", "version"):
        value = data.get(name)
        if value is None:
            problems.append(f"body.data.{name} is a required field")
        elif (number := cast_number(value)) is None:
            problems.append(f"body.data.{name} must be a `number` type, but the final value was: `NaN`.")
        else:
            out[name] = number
    paths = cast_array(data["paths"]) if "paths" in data else None
    if paths is None:
        problems.append("body.data.paths is a required field")
    else:
        if not paths:
            problems.append("body.data.paths field must have at least 1 items")
        for i, p in enumerate(paths):
            if p is None:
                problems.append(f"body.data.paths[{i}] must be a `string` type, but the final value was: `null`.")
        out["paths"] = [js_string(p) for p in paths if p is not None]
    for name in ("rootPath", "archiveName", "userToken"):
        if name not in data:
            continue
        if name == "archiveName" and paths is not None and len(paths) < 2:
            problems.append("body.data.archiveName can only be specified when multiple paths are specified")
        elif data[name] is None:
            problems.append(f"body.data.{name} must be a `string` type, but the final value was: `null`.")
        else:
            out[name] = js_string(data[name])
    if problems:
        raise ZipitError(INVALID, ",\n".join(problems))
    return out


async def read_body(request: Request) -> Any:
    """express.json / express.urlencoded: parse errors and bodies over 100 kb crash the error
    middleware (:class:`ExpressCrash`); other content types leave the body empty."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type not in ("application/json", "application/x-www-form-urlencoded"):
        return _MISSING
    if len(raw) > BODY_LIMIT:
        raise ExpressCrash()
    try:
        text = raw.decode()
        if content_type == "application/x-www-form-urlencoded":
            return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        if not text.strip():
            return _MISSING
        if text.lstrip()[:1] not in ("{", "["):  # body-parser's strict mode
            raise ValueError("not an object or array")
        return json.loads(text, parse_constant=_no_constant, parse_int=float)  # JS numbers are doubles
    except (ValueError, RecursionError):
        raise ExpressCrash() from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def route_id(number: float) -> int | None:
    """The id as Discover's path matcher sees ``String(number)``: only plain digits up to int32 match."""
    if math.isinf(number) or number != int(number) or not 0 <= number <= INT32_MAX:
        return None
    return int(number)


# ---- the archive ------------------------------------------------------------------------------------
def js_substr(text: str, start: int, length: int | None = None) -> str:
    """JavaScript's ``String.prototype.substr``."""
    if start < 0:
        start = max(len(text) + start, 0)
    end = len(text) if length is None else start + max(length, 0)
    return text[start:end]


class Names:
    """zipit's de-duplication (archiver.handlers.ts:255-288), quirks included: the count is kept per
    original name and ``lastIndexOf('.')`` is tested for truthiness (-1 is truthy, 0 is not)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def add(self, dirs: list[str], file_name: str) -> str:
        key = "/".join([*dirs, file_name])
        existing = self.seen.get(key, 0)
        self.seen[key] = existing + 1
        if not existing:
            return key
        dot = file_name.rfind(".")
        renamed = (f"{js_substr(file_name, 0, dot)} ({existing}){js_substr(file_name, dot, len(file_name))}"
                   if dot else f"{file_name} ({existing})")
        return "/".join([*dirs, renamed])


def server_url(request: Request) -> str:
    """This server's own address (where zipit finds Discover and the asset store)."""
    host, port = request.scope["server"]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def zipit_discover(request: Request) -> Response:
    import httpx

    data = validate(await read_body(request))
    settings = request.app.state.settings
    client = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(300.0, connect=10.0))
    try:
        manifest = await fetch_manifest(client, server_url(request), data)
        header, files = manifest.get("header") or {}, manifest.get("data") or []
        if not files:
            raise ZipitError(NO_DATA)  # the manifest stream ended before a first file
        if header.get("size", 0) >= settings.archive_size_cap:
            raise ZipitError(TOO_BIG)
        if header.get("count") == 1:
            return await single_file(client, request, files[0])
    except BaseException:
        await client.aclose()
        raise
    if len(data["paths"]) == 1:
        name = (files[0].get("path") or [None])[0] or "pennsieve-data"
    else:
        name = data.get("archiveName") or "pennsieve-data"
    try:
        disposition = attachment(f"{name}.zip")
    except UnicodeEncodeError:  # encodeURI throws on a lone surrogate (archiver.handlers.ts:155-170)
        await client.aclose()
        raise ZipitError(UNKNOWN) from None
    return StreamingResponse(archive(client, request, files), media_type="application/zip",
                             headers={"Content-Disposition": disposition})


async def fetch_manifest(client: httpx.AsyncClient, base: str, data: dict[str, Any]) -> dict[str, Any]:
    """POST Discover's download-manifest; any failure is zipit's UNKNOWN error (download.handler.ts:30-66)."""
    dataset_id, version = route_id(data["datasetId"]), route_id(data["version"])
    dataset_text = str(dataset_id) if dataset_id is not None else js_number_text(data["datasetId"])
    version_text = str(version) if version is not None else js_number_text(data["version"])
    url = (f"{base}/discover/datasets/{quote(dataset_text)}/versions/{quote(version_text)}"
           f"/files/download-manifest")
    import httpx

    body = {"paths": data["paths"], **({"rootPath": data["rootPath"]} if "rootPath" in data else {})}
    try:
        response = await client.post(url, content=json.dumps(body).encode(),  # escapes lone surrogates
                                     headers={"content-type": "application/json"},
                                     params={"api_key": data.get("userToken", "undefined")})
    except (httpx.HTTPError, UnicodeError) as exc:  # axios rejects an unsendable URL as well
        raise ZipitError(UNKNOWN, str(exc) or type(exc).__name__) from None
    if not 200 <= response.status_code < 300:
        raise ZipitError(UNKNOWN, f"Request failed with status code {response.status_code}")
    try:
        manifest = response.json()
        assert isinstance(manifest, dict)
        return manifest
    except (ValueError, AssertionError):
        raise ZipitError(UNKNOWN, "could not parse manifest json") from None


Upstream = tuple[AsyncIterator[bytes], Callable[[], Awaitable[None]]]


async def open_file(client: httpx.AsyncClient, request: Request, item: dict[str, Any]) -> Upstream | None:
    """GET a presigned URL as a stream: its chunks and a closer; ``None`` when it fails (axios
    rejects non-2xx answers).

    While no fault rule is active the bytes are read in-process (the fresh URL cannot fail, and a
    loopback hop would cost most of the throughput); with rules active zipit fetches over HTTP so
    that they reach it.
    """
    import httpx

    faults = getattr(request.app.state, "faults", None)
    if faults is not None and not faults.armed:
        return _stored_object(request, str(item.get("url", "")))
    try:
        response = await client.send(client.build_request("GET", str(item["url"])), stream=True)
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    if not 200 <= response.status_code < 300:
        await response.aclose()
        return None
    return response.aiter_raw(), response.aclose


def _stored_object(request: Request, url: str) -> Upstream | None:
    """The object a presigned asset URL names, read from storage (``None``: no such object)."""
    parts = urlsplit(url)
    bucket, _, key = unquote(parts.path).removeprefix("/_assets/").partition("/")
    version = parse_qs(parts.query).get("versionId", [None])[0]
    row = find_object(request.app.state.db, bucket, key, version)
    if row is None:
        return None

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in object_chunks(row):
            yield chunk

    async def close() -> None:
        return None

    return chunks(), close


async def single_file(client: httpx.AsyncClient, request: Request, item: dict[str, Any]) -> Response:
    """The one file, raw and without Content-Length; a failed fetch is the UNKNOWN error file."""
    upstream = await open_file(client, request, item)
    if upstream is None:
        raise ZipitError(UNKNOWN)
    chunks, close = upstream

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await close()
            await client.aclose()

    return StreamingResponse(body(), media_type="application/octet-stream",
                             headers={"Content-Disposition": attachment(str(item.get("fileName", "")))})


async def archive(client: httpx.AsyncClient, request: Request,
                  files: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The STORED ZIP of ``files``, fetched one at a time; failed fetches listed in ``!ERROR.txt``.

    A transfer that breaks after its headers aborts the whole answer, as an archiver error does
    after the 200 was sent.
    """
    writer, names, errors = ZipWriter(), Names(), list[str]()
    try:
        for item in files:
            name = names.add([str(p) for p in item.get("path") or []], str(item.get("fileName", "")))
            upstream = await open_file(client, request, item)
            if upstream is None:
                errors.append(f"{FILE_ERROR}{name}")
                continue
            chunks, close = upstream
            try:
                yield writer.start(name, int(item.get("size") or 0))
                async for chunk in chunks:
                    yield writer.write(chunk)
                yield writer.finish()
            finally:
                await close()
        if errors:
            report = "\n".join(errors).encode()
            yield writer.start(ERROR_FILE, len(report)) + writer.write(report) + writer.finish()
        yield writer.close()
    finally:
        await client.aclose()


def validate_workspace(body: Any, api_key: str | None) -> None:
    """``PackagesRequestSchema`` (_schema.ts:3-43): ``api_key`` in the query, ``data.nodeIds``."""
    problems = [] if api_key is not None else ["query.api_key is a required field"]
    body_object = cast_object(body) if body is not _MISSING else {}
    data = cast_object(body_object.get("data", {})) if body_object is not None else None
    if data is None:
        problems.append("body.data must be a `object` type, but the final value was: `null`.")
    else:
        node_ids = cast_array(data["nodeIds"]) if "nodeIds" in data else None
        if not node_ids or any(n is None for n in node_ids):
            problems.append("body.data.nodeIds is a required field")
        file_ids = cast_array(data["fileIds"]) if "fileIds" in data else []
        if file_ids is None or ("fileIds" in data and not file_ids) or any(
                cast_number(f) is None for f in file_ids):
            problems.append("body.data.fileIds must be a `array` of numbers with at least 1 item")
        if "archiveName" in data and (node_ids is None or len(node_ids) < 2):
            problems.append("body.data.archiveName can only be specified when multiple nodeIds are specified")
    if problems:
        raise ZipitError(INVALID, ",\n".join(problems))


async def zipit_workspace(request: Request) -> Response:
    """``POST /zipit/?api_key=``: workspace packages. The sandbox has no workspace (no Pennsieve API
    behind it), so a valid request fails as the API's 401 for the key does: zipit's UNKNOWN error."""
    validate_workspace(await read_body(request), request.query_params.get("api_key"))
    raise ZipitError(UNKNOWN, "Request failed with status code 401")


routes = [Route("/discover", zipit_discover, methods=["POST"]), Route("/", zipit_workspace, methods=["POST"])]
