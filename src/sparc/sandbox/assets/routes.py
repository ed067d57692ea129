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
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from urllib.parse import unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Scope

from sparc.sandbox.assets.errors import S3Error, request_id_bytes, request_ids
from sparc.sandbox.assets.signing import Signer, asset_path
from sparc.sandbox.catalogue.content import BLOCK_SIZE
from sparc.sandbox.http import stream_chunks
from sparc.sandbox.storage.objects import ObjectCache, object_views, span_bytes

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


@dataclass(frozen=True)
class Query:
    """A request's query, parsed: its ``(name, value)`` pairs and the ``versionId`` asked for."""

    params: tuple[tuple[str, str], ...]
    version_id: str | None  # the last value, as QueryParams.get


_QUERIES: dict[bytes, Query] = {}
MAX_QUERIES = 2048  # distinct query strings kept parsed (at most ~16 MiB with their parses)
MAX_QUERY_BYTES = 4096  # longer ones (no presigned URL is) are parsed every time


def parse_query(query_string: bytes) -> Query:
    """:func:`query_items` of ``query_string`` and its ``versionId``, parsed once per distinct string
    (a presigned URL is fetched again and again: range requests, retries, several clients).

    >>> parse_query(b"versionId=1&a=b&versionId=2")
    Query(params=(('versionId', '1'), ('a', 'b'), ('versionId', '2')), version_id='2')
    """
    query = _QUERIES.get(query_string)
    if query is None:
        params = tuple(query_items(query_string))
        query = Query(params, dict(params).get("versionId"))
        if len(query_string) <= MAX_QUERY_BYTES:
            if len(_QUERIES) >= MAX_QUERIES:
                _QUERIES.clear()
            _QUERIES[query_string] = query
    return query


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


_RANGES: dict[tuple[str, int], tuple[int, int] | None] = {}
MAX_RANGES = 4096  # distinct satisfiable (Range, size) pairs kept parsed


def range_of(header: str | None, size: int) -> tuple[int, int] | None:
    """:func:`parse_range`, remembered per ``(header, size)`` (a reader asks the same ranges of the
    same objects again). Unsatisfiable ranges raise every time: only results are kept."""
    if not header:
        return None
    try:
        return _RANGES[header, size]
    except KeyError:
        pass
    span = parse_range(header, size)
    if len(header) <= 64:  # hostile 5,000-digit headers are parsed each time, not stored
        if len(_RANGES) >= MAX_RANGES:
            _RANGES.clear()
        _RANGES[header, size] = span
    return span


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


_ASSET_HEADERS = {name.encode(): name for name in ("host", "range", "if-range", "if-match", "if-none-match",
                                                   "if-modified-since", "if-unmodified-since")}


def asset_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """:func:`header_map` of just the headers the asset store reads (``Host``, ``Range`` and the
    conditional ones): the others (``User-Agent``, ``Accept``…) are not decoded.

    >>> asset_headers([(b"User-Agent", b"x"), (b"Range", b"bytes=0-1"), (b"range", b"bytes=5-")])
    {'range': 'bytes=0-1'}
    """
    found: dict[str, str] = {}
    for name, value in raw:
        wanted = _ASSET_HEADERS.get(name.lower())
        if wanted is not None and wanted not in found:
            found[wanted] = value.decode("latin-1")
    return found


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
    return {**request_ids(), **_stored_headers(row)}


def _stored_headers(row: sqlite3.Row) -> dict[str, str]:
    """:func:`object_headers` without the request ids: the same for every request of ``row``."""
    headers = {"Last-Modified": _http_date_of(row["last_modified"]), "ETag": f'"{row["etag"]}"'}
    if row["sse"]:
        headers["x-amz-server-side-encryption"] = row["sse"]
    if row["sse"] == "aws:kms":
        headers["x-amz-server-side-encryption-aws-kms-key-id"] = _kms_key_arn(row["bucket"])
    if row["s3_version"]:
        headers["x-amz-version-id"] = row["s3_version"]
    return headers


class StoredObject:
    """A file row and what every answer about it repeats, worked out once (kept in an
    :class:`ObjectCache`): ETag, Last-Modified and the object headers, also as raw header pairs."""

    __slots__ = ("row", "size", "content", "seed", "etag", "modified", "headers", "raw_headers")

    def __init__(self, row: sqlite3.Row) -> None:
        self.row = row
        self.size: int = row["size"]
        self.content: bytes | None = row["content"]  # (a Row looks its columns up by name, slowly)
        self.seed: int | None = row["seed"]
        self.headers = _stored_headers(row)  # as object_headers, less the request ids
        self.etag, self.modified = self.headers["ETag"], last_modified(row)
        # as Response.init_headers writes them (lower-case names, latin-1)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]


class AssetContext:
    """What every asset request of one app uses, fetched from ``app.state`` once (each ``state.x``
    is a Python-level ``__getattr__``): the signer, the object cache and the connection table.
    ``create_app`` sets ``state.db``/``signer``/``connections`` once, so the context never goes stale.
    """

    __slots__ = ("signer", "objects", "connections")

    def __init__(self, app: Starlette) -> None:
        state = app.state
        self.signer: Signer = state.signer
        self.objects: ObjectCache[StoredObject] = ObjectCache(state.db, StoredObject)
        self.connections = state.connections


#: AssetContexts by app (an app's instance dict holds ``_CONTEXT``: one dict lookup per request)
_CONTEXT = "_sandbox_asset_context"


def asset_context(app: Starlette) -> AssetContext:
    """The app's :class:`AssetContext`, made on first use."""
    context: AssetContext | None = vars(app).get(_CONTEXT)
    if context is None:
        context = AssetContext(app)
        setattr(app, _CONTEXT, context)
    return context


class _ReadyResponse(Response):
    """A :class:`Response` whose raw headers are built by the caller: exactly the list
    ``Response(body, status, headers, media_type)`` would make, without its per-header encoding."""

    def __init__(self, body: bytes, status_code: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = raw_headers


_OCTET_STREAM = (b"content-type", b"application/octet-stream")
_ACCEPT_RANGES = (b"accept-ranges", b"bytes")


async def get_asset(request: Request) -> Response:
    """Serve an object's bytes (or headers, for HEAD); errors in S3 XML (no body for HEAD)."""
    try:
        return _answer(request)
    except S3Error as exc:
        return exc.response(head=request.method == "HEAD")


def _resolve(scope: Scope, bucket: str, key: str) -> tuple[StoredObject, int, int, int] | Response:
    """The object of a GET or HEAD and the span of it to send: ``(object, start, end, status)``
    (200 or 206), or the answer itself when it holds no bytes (304). Raises :class:`S3Error`."""
    method = scope["method"]
    query = parse_query(scope["query_string"])
    headers_in = asset_headers(scope["headers"])
    context = asset_context(scope["app"])
    context.signer.check(method, headers_in.get("host", ""), asset_path(bucket, key), query.params)
    version_id = query.version_id
    stored = context.objects.get(bucket, key, version_id)
    if stored is None:
        if version_id:
            raise S3Error(404, "NoSuchVersion", "The specified version does not exist.",
                          fields={"Key": key, "VersionId": version_id})
        raise S3Error(404, "NoSuchKey", "The specified key does not exist.", fields={"Key": key})
    etag, modified, size = stored.etag, stored.modified, stored.size
    if preconditions(headers_in, etag, modified):
        headers = {**request_ids(), **stored.headers}
        return Response(status_code=304, headers={k: v for k, v in headers.items()
                                                  if not k.startswith("x-amz-server-side")})
    span = None
    if range_applies(headers_in.get("if-range"), etag, modified):
        span = range_of(headers_in.get("range"), size)
    start, end = span or (0, size)
    return stored, start, end, 206 if span else 200


def _one_chunk(stored: StoredObject, start: int, end: int, status: int,
               head: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The raw headers (the list ``Response`` would build) and body of an answer sent as one
    chunk: a HEAD, or bytes up to a generated block (no streaming task per request)."""
    request_id, id_2 = request_id_bytes()
    raw = [(b"x-amz-request-id", request_id), (b"x-amz-id-2", id_2),
           *stored.raw_headers, _ACCEPT_RANGES, (b"content-length", b"%d" % (end - start))]
    if status == 206:
        raw.append((b"content-range", b"bytes %d-%d/%d" % (start, end - 1, stored.size)))
    raw.append(_OCTET_STREAM)
    return raw, b"" if head else span_bytes(stored.content, stored.seed, start, end)


def _answer(request: Request) -> Response:
    scope = request.scope
    resolved = _resolve(scope, scope["path_params"]["bucket"], scope["path_params"]["key"])
    if isinstance(resolved, Response):
        return resolved
    stored, start, end, status = resolved
    head = scope["method"] == "HEAD"
    if head or end - start <= BLOCK_SIZE:
        raw, body = _one_chunk(stored, start, end, status, head)
        return _ReadyResponse(body, status, raw)
    headers = {**request_ids(), **stored.headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
    gone = asset_context(scope["app"]).connections.hung_up(scope.get("client"))
    return StreamingResponse(stream_chunks(object_views(stored.row, start, end), gone),
                             status_code=status, headers=headers,
                             media_type="application/octet-stream")


#: The template requests of this route are counted under (``route_template``'s spelling).
TEMPLATE = "/_assets/{bucket}/{key}"
PREFIX = "/_assets/"


def direct_answer(scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes, str] | None:
    """The answer to a GET or HEAD of a whole object or a range of it that fits one chunk, as
    ``(status, raw headers, body, route template)``, worked out without Starlette's routing,
    ``Request`` and ``Response`` (the sandbox's front layer sends it: see ``front.py``); ``None``
    for anything else (an error, a 304, a streamed body, another method), which the route
    answers. The same checks, headers and bytes as :func:`get_asset`."""
    method = scope["method"]
    bucket, _, key = scope["path"][len(PREFIX):].partition("/")
    if method not in ("GET", "HEAD") or not bucket or not key:
        return None
    try:
        resolved = _resolve(scope, bucket, key)
    except S3Error:
        return None  # answered by the route, with its error body
    if isinstance(resolved, Response):
        return None
    stored, start, end, status = resolved
    head = method == "HEAD"
    if not head and end - start > BLOCK_SIZE:
        return None
    raw, body = _one_chunk(stored, start, end, status, head)
    return status, raw, body, TEMPLATE


routes = [Route("/{bucket}/{key:path}", get_asset, methods=["GET", "HEAD"])]
