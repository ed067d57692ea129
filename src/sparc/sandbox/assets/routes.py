"""The asset store: ``GET|HEAD /_assets/{bucket}/{key}`` answered as S3 answers a presigned GetObject.

Checks run in S3's order: the URL's signature and expiry (``signing.py``), the object, the
preconditions (``If-Match``/``If-Unmodified-Since`` → 412, ``If-None-Match``/``If-Modified-Since``
→ 304), ``If-Range``, then ``Range`` (one range → 206, unsatisfiable → 416, anything else → the whole
object). Headers: ``ETag`` (MD5, multipart ``…-<n>`` or opaque for SSE-KMS), ``Last-Modified``,
``x-amz-server-side-encryption``, ``x-amz-version-id``, ``Accept-Ranges`` and S3's request ids.
See ``STORAGE.md``.
"""

from __future__ import annotations

import calendar
import re
import sqlite3
import time
import uuid
from collections.abc import Mapping
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sparc.sandbox.assets.errors import S3Error, request_ids
from sparc.sandbox.assets.signing import asset_path
from sparc.sandbox.catalogue.content import BLOCK_SIZE
from sparc.sandbox.http import stream_chunks
from sparc.sandbox.storage.objects import find_object, object_bytes, object_chunks

_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII)
_HUGE = 10**18  # stands for any position past every object (no int() of a 5,000-digit header)
KMS_ACCOUNT = "740463337177"


def query_items(query_string: bytes) -> list[tuple[str, str]]:
    """The query's ``(name, value)`` pairs as Starlette's ``QueryParams.multi_items()`` gives them
    (``parse_qsl(..., keep_blank_values=True)``), with each name and value decoded once per distinct
    text: the 400-character session token of every presigned URL is decoded a single time.

    >>> query_items(b"a=1&b=x+y%2B&&c")
    [('a', '1'), ('b', 'x y+'), ('c', '')]
    """
    return [(_unquote(name), _unquote(value)) for name, _, value
            in (part.partition("=") for part in query_string.decode("latin-1").split("&") if part)]


@lru_cache(maxsize=4096)
def _unquote(text: str) -> str:
    return unquote_plus(text)


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` of a single ``Range`` header, ``None`` for the whole object.

    Raises :class:`S3Error` 416 when unsatisfiable. Malformed or multi-range headers are ignored (the
    whole object is sent, as S3 does).

    >>> parse_range("bytes=-5", 10), parse_range("bytes=0-1,3-4", 10), parse_range("bytes=2-" + "9" * 5000, 10)
    ((5, 10), None, (2, 10))
    """
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if m[1]:
        start = _position(m[1])
        if m[2] and _position(m[2]) < start:
            return None
        end = min(_position(m[2]) + 1, size) if m[2] else size
    else:
        suffix = _position(m[2])
        start, end = (max(0, size - suffix), size) if suffix else (size, size)
    if start >= end:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                      headers={"Content-Range": f"bytes */{size}"},
                      fields={"RangeRequested": header, "ActualObjectSize": size})
    return start, end


def _http_date(value: str | None) -> int | None:
    """An HTTP date as epoch seconds; ``None`` when absent or unreadable (S3 then ignores it)."""
    if not value or len(value) > 64:
        return None
    try:
        when = parsedate_to_datetime(value)
        return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _etag_listed(header: str, etag: str, weak: bool) -> bool:
    """Whether an ``If-Match``/``If-None-Match`` list names ``etag`` (quoted; S3 also takes it bare)."""
    for item in header.split(","):
        tag = item.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag in (etag, etag.strip('"')):
            return True
    return False


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers by lower-case name, the first of repeated ones, as ``Headers.get`` reads
    them (latin-1); one pass instead of a scan per header asked for.

    >>> header_map([(b"Range", b"bytes=0-1"), (b"range", b"bytes=5-")])["range"]
    'bytes=0-1'
    """
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in reversed(raw)}


def preconditions(headers: Mapping[str, str], etag: str, last_modified: int) -> bool:
    """``True`` when the object is "not modified" (304); raises 412 PreconditionFailed (RFC 7232 order).

    If-Match decides alone when present (a true If-Match with a false If-Unmodified-Since gives 200),
    likewise If-None-Match over If-Modified-Since.
    """
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _etag_listed(if_match, etag, weak=False):
            raise _precondition_failed("If-Match")
    else:
        since = _http_date(headers.get("if-unmodified-since"))
        if since is not None and last_modified > since:
            raise _precondition_failed("If-Unmodified-Since")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return _etag_listed(if_none_match, etag, weak=True)
    since = _http_date(headers.get("if-modified-since"))
    return since is not None and last_modified <= since


def _precondition_failed(condition: str) -> S3Error:
    return S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                   fields={"Condition": condition})


def range_applies(if_range: str | None, etag: str, last_modified: int) -> bool:
    """Whether a ``Range`` is honoured under ``If-Range`` (absent, or the same ETag or exact date)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return _http_date(value) == last_modified


def last_modified(row: sqlite3.Row) -> int:
    """The object's Last-Modified, epoch seconds."""
    return _epoch(row["last_modified"])


@lru_cache(maxsize=4096)
def _epoch(iso: str) -> int:
    """Epoch seconds of an ISO 8601 UTC time (parsed once per distinct value: strptime is slow)."""
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


@lru_cache(maxsize=4096)
def _http_date_of(iso: str) -> str:
    return formatdate(_epoch(iso), usegmt=True)


@lru_cache(maxsize=256)
def _kms_key_arn(bucket: str) -> str:
    return f"arn:aws:kms:us-east-1:{KMS_ACCOUNT}:key/{uuid.uuid5(uuid.NAMESPACE_URL, f'kms:{bucket}')}"


def object_headers(row: sqlite3.Row) -> dict[str, str]:
    """The headers S3 sends with an object (and its 304)."""
    headers = {**request_ids(), "Last-Modified": _http_date_of(row["last_modified"]),
               "ETag": f'"{row["etag"]}"'}
    if row["sse"]:
        headers["x-amz-server-side-encryption"] = row["sse"]
    if row["sse"] == "aws:kms":
        headers["x-amz-server-side-encryption-aws-kms-key-id"] = _kms_key_arn(row["bucket"])
    if row["s3_version"]:
        headers["x-amz-version-id"] = row["s3_version"]
    return headers


async def get_asset(request: Request) -> Response:
    """Serve an object's bytes (or headers, for HEAD); errors in S3 XML (no body for HEAD)."""
    try:
        return _answer(request)
    except S3Error as exc:
        return exc.response(head=request.method == "HEAD")


def _answer(request: Request) -> Response:
    bucket, key = request.path_params["bucket"], request.path_params["key"]
    params = query_items(request.scope["query_string"])
    headers_in = header_map(request.scope["headers"])
    request.app.state.signer.check(request.method, headers_in.get("host", ""), asset_path(bucket, key), params)
    version_id = dict(params).get("versionId")  # the last value, as QueryParams.get
    row = find_object(request.app.state.db, bucket, key, version_id)
    if row is None:
        if version_id:
            raise S3Error(404, "NoSuchVersion", "The specified version does not exist.",
                          fields={"Key": key, "VersionId": version_id})
        raise S3Error(404, "NoSuchKey", "The specified key does not exist.", fields={"Key": key})
    headers = object_headers(row)
    etag, modified = headers["ETag"], last_modified(row)
    if preconditions(headers_in, etag, modified):
        return Response(status_code=304, headers={k: v for k, v in headers.items()
                                                  if not k.startswith("x-amz-server-side")})
    size = row["size"]
    span = None
    if range_applies(headers_in.get("if-range"), etag, modified):
        span = parse_range(headers_in.get("range"), size)
    start, end = span or (0, size)
    headers.update({"Accept-Ranges": "bytes", "Content-Length": str(end - start)})
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    status = 206 if span else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    if end - start <= BLOCK_SIZE:  # one chunk: a plain answer (no streaming task per request)
        return Response(object_bytes(row, start, end), status_code=status, headers=headers,
                        media_type="application/octet-stream")
    gone = request.app.state.connections.hung_up(request.scope.get("client"))
    return StreamingResponse(stream_chunks(object_chunks(row, start, end), gone),
                             status_code=status, headers=headers,
                             media_type="application/octet-stream")


routes = [Route("/{bucket}/{key:path}", get_asset, methods=["GET", "HEAD"])]
