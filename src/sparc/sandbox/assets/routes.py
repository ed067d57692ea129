"""The asset store: ``GET|HEAD /_assets/{bucket}/{key}`` with presigned-style query, Range support."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sparc.sandbox.assets.errors import S3Error
from sparc.sandbox.http import stream_chunks
from sparc.sandbox.storage.objects import find_object, object_chunks

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` of a single ``Range`` header, ``None`` for the whole object.

    Raises :class:`S3Error` 416 when unsatisfiable. Malformed or multi-range headers are ignored (as S3 does).
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if m[1]:
        start = int(m[1])
        end = min(int(m[2]) + 1, size) if m[2] else size
        if m[2] and int(m[2]) < start:
            return None
    else:
        start, end = max(0, size - int(m[2])), size
        if int(m[2]) == 0:
            start = size
    if start >= size or start >= end:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                      headers={"Content-Range": f"bytes */{size}"})
    return start, end


async def get_asset(request: Request) -> Response:
    """Serve an object's bytes (or headers, for HEAD)."""
    bucket, key = request.path_params["bucket"], request.path_params["key"]
    resource = f"/{bucket}/{key}"
    problem = request.app.state.signer.check(bucket, key, dict(request.query_params))
    if problem:
        raise S3Error(403, "AccessDenied", problem, resource)
    row = find_object(request.app.state.db, bucket, key, request.query_params.get("versionId"))
    if row is None:
        raise S3Error(404, "NoSuchKey", "The specified key does not exist.", resource)
    size = row["size"]
    span = parse_range(request.headers.get("range"), size)
    start, end = span or (0, size)
    headers = {"Content-Length": str(end - start), "ETag": f'"{row["sha256"][:32]}"',
               "Accept-Ranges": "bytes", "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
    if row["s3_version"]:
        headers["x-amz-version-id"] = row["s3_version"]
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    status = 206 if span else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(stream_chunks(object_chunks(row, start, end)), status_code=status,
                             headers=headers, media_type="application/octet-stream")


routes = [Route("/{bucket}/{key:path}", get_asset, methods=["GET", "HEAD"])]
