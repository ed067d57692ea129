"""The asset store's caches change no answer: a remembered signature still expires, a tampered URL
still fails, a missing version is still missing, and every cache stays bounded.

Pure functions are tested directly; answers over real HTTP come from an in-thread sandbox that shares
the session sandbox's database (its signer signs the URLs a test needs, e.g. a wrong ``versionId``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from sparc.sandbox.assets import routes, signing
from sparc.sandbox.assets.errors import S3Error, request_ids
from sparc.sandbox.assets.routes import (
    asset_headers,
    header_map,
    object_headers,
    parse_query,
    parse_range,
    query_items,
    range_of,
)
from sparc.sandbox.assets.signing import CLOCK_SKEW, Signer, asset_path
from sparc.sandbox.process import SandboxProcess
from sparc.sandbox.storage.db import SCHEMA
from sparc.sandbox.storage.objects import ObjectCache, find_object

HOST, PATH = "127.0.0.1:8000", "/_assets/bucket/key"
T0 = 1_700_000_000.0


def _error(signer: Signer, params: list[tuple[str, str]], now: float, method: str = "GET",
           host: str = HOST, path: str = PATH) -> tuple[int, str, str, dict[str, object]]:
    """What ``signer.check`` raises for one request (status, code, message, fields)."""
    with pytest.raises(S3Error) as caught:
        signer.check(method, host, path, params, now=now)
    error = caught.value
    return error.status, error.code, error.message, error.fields


# ---- Signer.check: remembered verifications ------------------------------------------------------
def test_a_remembered_url_still_expires_as_a_new_one_would() -> None:
    signer, fresh = Signer(b"s" * 32, 60, started=T0), Signer(b"s" * 32, 60, started=T0)
    issued = T0 + 100
    params = list(signer.query("GET", HOST, PATH, {"versionId": "v1"}, now=issued).items())
    signer.check("GET", HOST, PATH, params, now=issued + 1)
    assert len(signer._verified) == 1
    signer.check("GET", HOST, PATH, params, now=issued + 60)  # remembered, still valid
    expired = _error(signer, params, issued + 61)
    assert expired[:3] == (403, "AccessDenied", "Request has expired")
    assert expired == _error(fresh, params, issued + 61)  # the same error as without the memory
    early = _error(signer, params, issued - CLOCK_SKEW - 1)
    assert early[:3] == (403, "AccessDenied", "Request is not valid yet")
    assert early == _error(fresh, params, issued - CLOCK_SKEW - 1)
    signer.check("GET", HOST, PATH, params, now=issued + 2)  # a failure does not evict the success


def test_a_remembered_url_dies_with_its_credentials_session() -> None:
    signer, fresh = Signer(b"s" * 32, 3600, started=T0), Signer(b"s" * 32, 3600, started=T0)
    late = T0 + signer.session_seconds - 1800
    params = list(signer.query("GET", HOST, PATH, {}, now=late).items())
    signer.check("GET", HOST, PATH, params, now=late + 1700)
    token = _error(signer, params, late + 1900)
    assert token[:2] == (400, "ExpiredToken") and token == _error(fresh, params, late + 1900)


def test_failed_checks_are_not_remembered() -> None:
    signer = Signer(b"s" * 32, 3600, started=T0)
    now = T0 + 10
    query = signer.query("GET", HOST, PATH, {"versionId": "v1"}, now=now)
    params = list(query.items())
    signer.check("GET", HOST, PATH, params, now=now)
    bad_signature = [(k, v[:-1] + ("0" if v[-1] != "0" else "1") if k == "X-Amz-Signature" else v)
                     for k, v in params]
    other_version = [(k, "v2" if k == "versionId" else v) for k, v in params]
    for _ in range(2):  # the same error each time: nothing about a failure is kept
        for tampered in (bad_signature, other_version, [*params, ("extra", "1")]):
            assert _error(signer, tampered, now)[1] == "SignatureDoesNotMatch"
        assert _error(signer, params, now, method="HEAD")[1] == "SignatureDoesNotMatch"
        assert _error(signer, params, now, host="example.org")[1] == "SignatureDoesNotMatch"
        assert _error(signer, params, now, path="/_assets/bucket/other")[1] == "SignatureDoesNotMatch"
    assert len(signer._verified) == 1


def test_remembered_verifications_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "MAX_VERIFIED", 8)
    signer = Signer(b"s" * 32, 3600, started=T0)
    signed = [(f"/_assets/b/{i}", list(signer.query("GET", HOST, f"/_assets/b/{i}", {}, now=T0).items()))
              for i in range(20)]
    for _ in range(2):
        for path, params in signed:
            signer.check("GET", HOST, path, params, now=T0 + 1)
            assert len(signer._verified) <= 8


# ---- parsed queries, ranges, headers -------------------------------------------------------------
def test_parsed_queries_equal_query_items_and_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "_QUERIES", {})
    monkeypatch.setattr(routes, "MAX_QUERIES", 4)
    for i in range(10):
        raw = f"a={i}&versionId=v{i}&versionId=w{i}&b=%2B+".encode()
        for _ in range(2):
            query = parse_query(raw)
            assert list(query.params) == query_items(raw)
            assert query.version_id == f"w{i}"
        assert len(routes._QUERIES) <= 4
    long = b"x=" + b"9" * routes.MAX_QUERY_BYTES
    assert parse_query(long).params == (("x", "9" * routes.MAX_QUERY_BYTES),)
    assert long not in routes._QUERIES


@pytest.mark.parametrize("header", ["bytes=0-9", "bytes=-7", "bytes=5-", "bytes=0-1,4-5", "bytes=5-2", "items=0-1",
                                    "bytes=-0", "bytes=20-", "bytes=" + "9" * 5000 + "-", "", None])
def test_remembered_ranges_equal_parse_range(header: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "_RANGES", {})
    for _ in range(3):  # unsatisfiable ranges raise every time
        try:
            expected: object = parse_range(header, 10)
        except S3Error as exc:
            expected = (exc.status, exc.code, exc.headers, exc.fields)
        try:
            got: object = range_of(header, 10)
        except S3Error as exc:
            got = (exc.status, exc.code, exc.headers, exc.fields)
        assert got == expected
    assert all(len(h) <= 64 for h, _ in routes._RANGES)  # hostile headers are not kept


def test_remembered_ranges_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "_RANGES", {})
    monkeypatch.setattr(routes, "MAX_RANGES", 5)
    for start in range(20):
        assert range_of(f"bytes={start}-", 100) == (start, 100)
        assert len(routes._RANGES) <= 5


def test_asset_headers_are_header_map_of_the_headers_read() -> None:
    raw = [(b"Host", b"h:1"), (b"user-agent", b"x"), (b"range", b"bytes=0-1"), (b"RANGE", b"bytes=5-"),
           (b"If-None-Match", b'"e"'), (b"if-modified-since", b"\xe9t\xe9"), (b"if-range", b"")]
    full = header_map(raw)
    assert asset_headers(raw) == {name: value for name, value in full.items()
                                  if name in ("host", "range", "if-range", "if-match", "if-none-match",
                                              "if-modified-since", "if-unmodified-since")}


# ---- ObjectCache ---------------------------------------------------------------------------------
@pytest.fixture
def files_db() -> Iterator[sqlite3.Connection]:
    """A database with the sandbox's schema and a few objects: two versions of one key."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.executescript(SCHEMA)
    rows = [(1, "k", "v1", None, 7), (2, "k", "v2", b"x" * 30, None), (1, "small", None, b"y" * 30, None),
            (1, "big", None, b"z" * 60, None), (1, "g", None, None, 9)]
    for version, key, s3_version, content, seed in rows:
        conn.execute("INSERT INTO files (dataset_pk, dataset_id, version, path, parent, name, size, file_type,"
                     " package_type, icon, uri, bucket, key, s3_version, content, seed, searchable, etag,"
                     " last_modified) VALUES (1, 1, ?, ?, '', ?, 10, 'f', 'p', 'i', 'u', 'b', ?, ?, ?, ?, 1,"
                     " 'e', '2020-01-01T00:00:00Z')",
                     (version, f"{key}@{version}", key, key, s3_version, content, seed))
    yield conn
    conn.close()


def test_object_cache_answers_as_find_object(files_db: sqlite3.Connection) -> None:
    cache = ObjectCache(files_db, lambda row: row)
    for _ in range(2):  # the second round comes from the cache
        for key, version in (("k", None), ("k", ""), ("k", "v1"), ("k", "v2"), ("k", "v3"), ("nope", None),
                             ("small", None), ("big", None), ("g", "v1")):
            got, expected = cache.get("b", key, version), find_object(files_db, "b", key, version)
            assert (got is None) == (expected is None), (key, version)
            assert got is None or expected is None or tuple(got) == tuple(expected)
    assert cache.get("b", "k", "v3") is None  # a missing version stays missing (NoSuchVersion)
    newest = cache.get("b", "k", None)
    assert newest is not None and newest["s3_version"] == "v2"  # the newest version


def test_object_cache_is_bounded(files_db: sqlite3.Connection) -> None:
    cache = ObjectCache(files_db, lambda row: row, max_entries=3, max_content=100)
    cache.get("b", "big", None)  # 60 bytes: over a quarter of the budget, never kept
    assert len(cache) == 0 and cache.content_bytes == 0
    for key in ("small", "k", "g", "nope", "k"):
        cache.get("b", key, None)
        assert len(cache) <= 3 and cache.content_bytes <= 100
    tight = ObjectCache(files_db, lambda row: row, max_entries=100, max_content=40)
    tight.get("b", "small", None)
    assert tight.content_bytes == 0  # 30 bytes > 40 // 4
    roomy = ObjectCache(files_db, lambda row: row, max_entries=100, max_content=200)
    for key, version in (("small", None), ("k", None), ("k", "v2"), ("k", "v1")):
        roomy.get("b", key, version)
    assert roomy.content_bytes == 90 and len(roomy) == 4


# ---- over HTTP -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(sandbox: SandboxProcess) -> Iterator[tuple[str, Any]]:
    """An in-thread sandbox on the session sandbox's database: ``(base URL, app)``."""
    from sparc.sandbox.server import SandboxServer
    from sparc.sandbox.settings import SandboxSettings

    with SandboxServer(SandboxSettings(data_dir=sandbox.data_dir, time_scale=0)) as server:
        yield server.url, server.app


def _sign(served: tuple[str, Any], bucket: str, key: str, now: float | None = None,
          **params: str) -> str:
    base, app = served
    path = asset_path(bucket, key)
    query = app.state.signer.query("GET", urlsplit(base).netloc, path, params, now=now)
    return f"{base}{quote(path, safe='/-_.~')}?{urlencode(query, quote_via=quote)}"


def _code(response: httpx.Response) -> str:
    root = ElementTree.fromstring(response.content)
    assert root.findtext("RequestId") == response.headers["x-amz-request-id"]
    return root.findtext("Code") or ""


def _versioned(served: tuple[str, Any]) -> sqlite3.Row:
    row = served[1].state.db.execute(
        "SELECT bucket, key, s3_version FROM files WHERE s3_version IS NOT NULL AND content IS NULL"
        " ORDER BY size DESC LIMIT 1").fetchone()
    assert row is not None
    return row


def test_a_missing_version_is_no_such_version_after_the_key_was_served(served: tuple[str, Any]) -> None:
    bucket, key, version = _versioned(served)
    with httpx.Client(timeout=10) as http:
        for _ in range(2):
            good = http.get(_sign(served, bucket, key, versionId=version), headers={"Range": "bytes=0-9"})
            assert good.status_code == 206 and good.headers["x-amz-version-id"] == version
            assert http.get(_sign(served, bucket, key), headers={"Range": "bytes=0-9"}).status_code == 206
            missing = http.get(_sign(served, bucket, key, versionId=version + "x"))
            assert missing.status_code == 404 and _code(missing) == "NoSuchVersion"
            absent = http.get(_sign(served, bucket, key + ".nope"))
            assert absent.status_code == 404 and _code(absent) == "NoSuchKey"


def test_served_headers_are_those_response_would_build(served: tuple[str, Any]) -> None:
    bucket, key, version = _versioned(served)
    url = _sign(served, bucket, key, versionId=version)
    row = find_object(served[1].state.db, bucket, key, version)
    assert row is not None
    with httpx.Client(timeout=10) as http:
        answers = [http.get(url, headers={"Range": "bytes=1-4096"}) for _ in range(2)]
        head = http.head(url)
    reference = routes.Response(b"x" * 4096, 206, headers={
        **object_headers(row), "Accept-Ranges": "bytes", "Content-Length": "4096",
        "Content-Range": f"bytes 1-4096/{row['size']}"}, media_type="application/octet-stream").raw_headers
    for answer in answers:
        served_headers = [(k, v) for k, v in answer.headers.raw if k not in (b"date", b"server")]
        assert [k for k, _ in served_headers] == [k for k, _ in reference]
        assert [v for k, v in served_headers if not k.startswith(b"x-amz-")] == \
            [v for k, v in reference if not k.startswith(b"x-amz-")]
    ids = [(a.headers["x-amz-request-id"], a.headers["x-amz-id-2"]) for a in answers]
    assert ids[0] != ids[1] and all(len(i) == len(request_ids()["x-amz-request-id"]) for i, _ in ids)
    assert head.status_code == 403  # presigned for GET


def test_a_remembered_url_expires_over_http(served: tuple[str, Any]) -> None:
    bucket, key, _ = _versioned(served)
    expiry = served[1].state.signer.expiry
    signed_at = time.time() - expiry + 4  # valid for three or four more seconds
    url = _sign(served, bucket, key, now=signed_at)
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with httpx.Client(timeout=10) as http:
        assert http.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
        assert http.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
        bad = http.get(tampered)
        assert bad.status_code == 403 and _code(bad) == "SignatureDoesNotMatch"
        time.sleep(max(0.0, int(signed_at) + expiry + 1.2 - time.time()))
        expired = http.get(url, headers={"Range": "bytes=0-9"})
        assert expired.status_code == 403 and _code(expired) == "AccessDenied"
        assert ElementTree.fromstring(expired.content).findtext("Message") == "Request has expired"


def test_request_ids_have_s3_shapes_and_differ() -> None:
    """Both ids from one draw: 16 upper-case hex digits, and base64 of 57 bytes; fresh each time."""
    import base64
    import re

    from sparc.sandbox.assets.errors import request_id_bytes

    seen = set()
    for _ in range(200):
        request_id, id_2 = request_id_bytes()
        assert re.fullmatch(rb"[0-9A-F]{16}", request_id)
        assert len(base64.b64decode(id_2, validate=True)) == 57 and len(id_2) == 76
        seen.add((request_id, id_2))
        ids = request_ids()
        assert re.fullmatch(r"[0-9A-F]{16}", ids["x-amz-request-id"]) and len(ids["x-amz-id-2"]) == 76
    assert len(seen) == 200


@pytest.mark.parametrize(("start", "end"), [(0, 0), (0, 1), (0, 16), (5, 4101), (15, 17), (16, 4112),
                                            ((1 << 20) - 10, 1 << 20), (1 << 20, (1 << 20) + 4096),
                                            ((1 << 20) - 10, (1 << 20) + 10), (3 << 20, (3 << 20) + 1)])
def test_span_bytes_equal_the_generated_range(start: int, end: int) -> None:
    from sparc.sandbox.catalogue.content import generated_range, generated_span, iter_generated
    from sparc.sandbox.storage.objects import span_bytes

    expected = b"".join(iter_generated(7, start, end))
    assert span_bytes(None, 7, start, end) == expected == generated_range(7, start, end)
    if end > start and start >> 20 == (end - 1) >> 20:
        assert generated_span(7, start, end) == expected
