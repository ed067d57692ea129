"""Regression tests for the sandbox's structural speed-ups (issue 10); timings live in bench/sandbox.py.

Each test pins the structure, not a time: the manifest's path lookups are index searches (query
plan), ranges of generated content build only their own bytes (allocation), presigned URLs from
the per-request signer equal the generic ones, the server runs uvicorn's httptools protocol (and
h11 without it) with faults and byte counting intact, and ``bytes_received`` counts request bodies.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sqlite3
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from sparc.sandbox import control
from sparc.sandbox.assets import signing
from sparc.sandbox.assets.routes import query_items
from sparc.sandbox.catalogue.content import (
    BLOCK_SIZE,
    generated_block,
    generated_range,
    iter_generated,
)
from sparc.sandbox.pennsieve.models import SELECT_NAMED_DIRS, SELECT_NAMED_FILES
from sparc.sandbox.process import SandboxProcess

MANIFEST = "/discover/datasets/{}/versions/{}/files/download-manifest"
BIG = "files/primary/sub-1/sam-1/recording_full.dat"  # dataset 90 v1: 1 GiB, generated


def _manifest(client: httpx.Client, dataset: int, paths: list[str], version: int = 1) -> dict:
    response = client.post(MANIFEST.format(dataset, version), json={"paths": paths})
    assert response.status_code == 200, response.text
    return response.json()


def _database(sandbox: SandboxProcess) -> sqlite3.Connection:
    assert sandbox.data_dir is not None
    return sqlite3.connect(f"file:{sandbox.data_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)


# ---- download-manifest: indexed lookups --------------------------------------------------------
def test_manifest_path_lookups_are_index_searches(sandbox: SandboxProcess) -> None:
    """Each listed path is one index search: never a scan of the dataset's files per path (the
    3 s, 2,000-path manifest). SQLite would put ``files`` outside the loop without CROSS JOIN."""
    with _database(sandbox) as conn:
        for sql, index in ((SELECT_NAMED_FILES, "files_path"), (SELECT_NAMED_DIRS, "dirs")):
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (1, '["a"]'))]
            assert plan[0].startswith("SCAN j"), plan  # the listed paths drive the loop
            assert any(step.startswith(("SEARCH f USING INDEX files_path (dataset_pk=? AND path=?)",
                                        "SEARCH d USING COVERING INDEX sqlite_autoindex_dirs_1 "
                                        "(dataset_pk=? AND path=?)")) for step in plan), (index, plan)
            assert not any(step.startswith(("SCAN f", "SCAN d")) for step in plan), plan


def test_manifest_steps_grow_with_the_paths_not_the_dataset(sandbox: SandboxProcess) -> None:
    """SQLite's virtual-machine steps for 20 named paths of the 10,002-file dataset 318: a few per
    path (an unindexed plan walks every file of the dataset for each path: ~200,000)."""
    with _database(sandbox) as conn:
        pk = conn.execute("SELECT pk FROM datasets WHERE id = 318").fetchone()[0]
        paths = [r[0] for r in conn.execute("SELECT path FROM files WHERE dataset_pk = ? ORDER BY path"
                                            " LIMIT 20", (pk,))]
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        conn.set_progress_handler(count, 10)
        assert len(conn.execute(SELECT_NAMED_FILES, (pk, json.dumps(paths))).fetchall()) == 20
        conn.set_progress_handler(None, 0)
    assert steps * 10 < 100 * len(paths), steps * 10


def test_manifest_of_named_files_equals_the_manifest_of_their_folders(
        sandbox: SandboxProcess, client: httpx.Client) -> None:
    with _database(sandbox) as conn:
        pk = conn.execute("SELECT pk FROM datasets WHERE id = 318").fetchone()[0]
        folders = [r[0] for r in conn.execute("SELECT path FROM dirs WHERE dataset_pk = ? AND path LIKE"
                                              " 'files/primary/sub-0%/%/%' ORDER BY path LIMIT 25", (pk,))]
    by_folder = _manifest(client, 318, folders)
    files = ["/".join(row["path"] + [row["fileName"]]) for row in by_folder["data"]]
    assert len(files) >= 200
    # the same files named one by one, shuffled, with repeats and slashes: the same answer
    named = files[::-1] + files[:10] + ["/" + files[0] + "/"]
    explicit = _manifest(client, 318, named)
    assert explicit["header"] == by_folder["header"]
    for one, other in zip(explicit["data"], by_folder["data"], strict=True):  # URLs: signed apart
        assert {**one, "url": one["url"].split("?")[0]} == {**other, "url": other["url"].split("?")[0]}
    # a folder and files inside it, a nested folder, a missing path: the union, once each
    mixed = _manifest(client, 318, [folders[0], files[0], folders[0] + "/nope", "no/such/file"])
    assert mixed["header"] == _manifest(client, 318, [folders[0]])["header"]
    parent = folders[0].rpartition("/")[0]
    nested = _manifest(client, 318, [parent, folders[0]])
    assert nested["header"] == _manifest(client, 318, [parent])["header"]


def test_manifest_root_and_empty_segments(client: httpx.Client) -> None:
    whole = _manifest(client, 90, ["/"])
    assert whole["header"] == _manifest(client, 90, [""])["header"]
    assert whole["header"]["count"] == len(whole["data"]) > 10
    bad = client.post(MANIFEST.format(90, 1), json={"paths": ["files", "files//primary"]})
    assert bad.status_code == 500 and bad.text == "There was an internal server error."


# ---- generated content: only the requested range -----------------------------------------------
@pytest.mark.parametrize(("start", "end"), [(0, 10), (5, 4096), (BLOCK_SIZE - 100, BLOCK_SIZE + 4000),
                                            (3 * BLOCK_SIZE + 16, 3 * BLOCK_SIZE + 4112),
                                            (BLOCK_SIZE - 8, BLOCK_SIZE + 8)])
def test_a_range_equals_the_slice_of_the_whole_content(start: int, end: int) -> None:
    first, last = start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE
    whole = b"".join(generated_block(11, i) for i in range(first, last + 1))
    expected = whole[start - first * BLOCK_SIZE:end - first * BLOCK_SIZE]
    assert generated_range(11, start, end) == expected == b"".join(iter_generated(11, start, end))


@pytest.mark.parametrize(("start", "end"), [(0, 3 * BLOCK_SIZE + 5), (5, 2 * BLOCK_SIZE),
                                            (BLOCK_SIZE - 3, 2 * BLOCK_SIZE + 20), (10, 12),
                                            (2 * BLOCK_SIZE + 16, 4 * BLOCK_SIZE)])
def test_a_streamed_object_is_sent_from_views_without_copies(start: int, end: int) -> None:
    """A large answer is sent from read-only views of the shared block (each block's 16-byte
    stamp a chunk of its own), not from a 1 MiB copy per block; stored content from views of
    it: the same bytes as the copying chunks."""
    from sparc.sandbox.storage.objects import object_chunks, object_views

    generated: Any = {"size": 5 * BLOCK_SIZE, "content": None, "seed": 11}
    chunks = list(object_views(generated, start, end))
    assert b"".join(chunks) == b"".join(object_chunks(generated, start, end))
    assert all(isinstance(c, memoryview) or len(c) <= 16 for c in chunks)
    size = 3 * BLOCK_SIZE + 7
    stored: Any = {"size": size, "content": bytes(range(256)) * (3 * BLOCK_SIZE // 256) + b"1234567",
                   "seed": None}
    first, last = start % size, min(end, size)
    views = list(object_views(stored, first, last))
    assert b"".join(views) == b"".join(object_chunks(stored, first, last))
    assert all(isinstance(v, memoryview) for v in views)


def test_a_4_kib_range_allocates_about_4_kib() -> None:
    generated_range(11, 0, 16)  # the shared random block exists before measuring
    tracemalloc.start()
    try:
        chunk = generated_range(11, 5 * BLOCK_SIZE + 1000, 5 * BLOCK_SIZE + 1000 + 4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(chunk) == 4096 and peak < 64 * 1024, peak  # a whole block would be 1 MiB


def test_asset_ranges_over_http_equal_the_content(sandbox: SandboxProcess, client: httpx.Client) -> None:
    url = _manifest(client, 90, [BIG])["data"][0]["url"]
    with _database(sandbox) as conn:
        seed = conn.execute("SELECT seed FROM files WHERE dataset_id = 90 AND path = ?", (BIG,)).fetchone()[0]
    for start, end in ((BLOCK_SIZE - 100, BLOCK_SIZE + 3996), (7, 7 + 4096), ((1 << 30) - 4096, 1 << 30),
                       (0, BLOCK_SIZE + 1)):  # the last one is streamed in two chunks
        response = client.get(url, headers={"Range": f"bytes={start}-{end - 1}"})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{1 << 30}"
        assert response.content == b"".join(iter_generated(seed, start, end))


# ---- presigned URLs ------------------------------------------------------------------------------
def test_presigner_urls_equal_the_generic_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = signing.Signer(b"p" * 32, 3600)
    fixed = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: fixed)
    sign = signing.presigner(signer, "http://127.0.0.1:9/")
    rows: list[dict[str, Any]] = [
        {"bucket": "b", "key": "1/2/a b+c%.txt", "s3_version": None},
        {"bucket": "pennsieve-prod-discover-publish50-use1", "key": "9/é/ü~(x)", "s3_version": "v+1/="}]
    for row in rows:
        path = signing.asset_path(row["bucket"], row["key"])
        params = {"versionId": row["s3_version"]} if row["s3_version"] else {}
        query = signer.query("GET", "127.0.0.1:9", path, params, now=fixed)
        assert sign(row) == f"http://127.0.0.1:9{quote(path, safe='/-_.~')}?{urlencode(query, quote_via=quote)}"
        signer.check("GET", "127.0.0.1:9", path, list(query.items()), now=fixed + 1)
    # credentials of a session are derived once
    assert signer.session(0) is signer.session(0)


def test_query_items_match_starlettes_parser() -> None:
    from starlette.datastructures import QueryParams

    for raw in (b"a=1&b=x+y%2B&&c", b"x=%E9%ZZ&=v&k=&&a=b=c", b"%C3%A9=%ff", b";a=b;c", b"a=\xe9"):
        assert query_items(raw) == QueryParams(raw).multi_items(), raw


# ---- the HTTP protocol, faults and byte counts ---------------------------------------------------
def test_the_sandbox_serves_with_httptools(sandbox: SandboxProcess) -> None:
    pytest.importorskip("httptools")
    info = sandbox.get_json("/_sandbox/process")
    assert info["http"] == "HttpToolsProtocol"
    if importlib.util.find_spec("uvloop") is not None:  # uvicorn's loop="auto" takes it
        assert info["loop"] == "uvloop"
    assert Path(f"/proc/{info['pid']}").exists() or sys.platform != "linux"
    assert info["gc_frozen"] > 10_000  # start-up's objects out of the collector's full passes
    before = info["cpu_seconds"]
    for _ in range(50):
        sandbox.get_json("/discover/datasets/90")
    assert sandbox.get_json("/_sandbox/process")["cpu_seconds"] > before


def test_without_httptools_the_protocol_is_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    monkeypatch.setitem(sys.modules, "httptools", None)  # import httptools -> ImportError
    assert control.http_protocol() is H11Protocol
    assert control.Connections().protocol().__name__ == "RegisteredH11Protocol"


@pytest.fixture(params=["httptools", "h11"])
def served(request: pytest.FixtureRequest, sandbox: SandboxProcess,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An in-thread sandbox (sharing the session sandbox's database) on each HTTP protocol."""
    from sparc.sandbox.server import SandboxServer
    from sparc.sandbox.settings import SandboxSettings

    if request.param == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol

        monkeypatch.setattr(control, "http_protocol", lambda: H11Protocol)
    else:
        pytest.importorskip("httptools")
    with SandboxServer(SandboxSettings(data_dir=sandbox.data_dir, time_scale=0)) as server:
        yield server.url


def test_faults_cut_and_stats_count_on_either_protocol(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as http:
        info = http.get("/_sandbox/process").json()
        assert info["http"] in ("HttpToolsProtocol", "H11Protocol")
        url = _manifest(http, 90, [BIG])["data"][0]["url"]
        http.post("/_sandbox/stats/reset")
        http.post("/_sandbox/faults", json=[{"route": "GET /_assets/*", "kind": "reset",
                                             "after_bytes": 5000, "count": 1}])
        with pytest.raises(httpx.TransportError):
            http.get(url, headers={"Range": "bytes=0-99999"})
        assert http.get("/_sandbox/stats").json()["bytes_sent"] == 5000
        response = http.get(url, headers={"Range": "bytes=0-99999"})  # the rule is spent
        assert response.status_code == 206 and len(response.content) == 100_000
        assert http.get("/_sandbox/stats").json()["bytes_sent"] == 105_000
        # a reset before the answer: the socket is dropped (RST), nothing counted
        http.post("/_sandbox/faults", json=[{"route": "/discover/*", "kind": "reset", "count": 1}])
        with pytest.raises(httpx.TransportError):
            http.get("/discover/datasets/90")
        assert http.get("/_sandbox/stats").json()["bytes_sent"] == 105_000


def test_bytes_received_counts_request_bodies(sandbox: SandboxProcess, client: httpx.Client) -> None:
    sandbox.reset_stats()
    assert sandbox.stats()["bytes_received"] == 0
    body = json.dumps({"paths": ["files/primary/sub-1/sam-1/recording_full.dat"]}).encode()
    response = client.post(MANIFEST.format(90, 1), content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    client.get("/discover/datasets/90")  # no body
    other = json.dumps({"paths": ["metadata/records/award.csv", "files"], "rootPath": "files"}).encode()
    refused = client.post(MANIFEST.format(90, 1), content=other, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400  # read, then refused: counted all the same
    client.post("/_sandbox/faults", json=[])  # control routes are not counted
    assert sandbox.stats()["bytes_received"] == len(body) + len(other)
    # chunked uploads count their payload, not the chunk framing
    chunked = client.post(MANIFEST.format(90, 1), content=iter([body[:10], body[10:]]),
                          headers={"Content-Type": "application/json"})
    assert chunked.status_code == 200 and "content-length" not in chunked.request.headers
    assert sandbox.stats()["bytes_received"] == 2 * len(body) + len(other)
    assert client.post("/_sandbox/stats/reset").json()["bytes_received"] == 0


def test_a_body_cut_off_midway_counts_what_arrived(sandbox: SandboxProcess) -> None:
    """An upload that dies midway counts the bytes that were read (resume waste, issue 9)."""
    from urllib.parse import urlsplit

    sandbox.reset_stats()
    parts = urlsplit(sandbox.url)
    assert parts.hostname and parts.port
    sent = b'{"paths": ["' + b"x" * 50_000
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(f"POST {MANIFEST.format(90, 1)} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode() + sent)
        deadline = time.monotonic() + 5
        while sandbox.stats()["bytes_received"] < len(sent) and time.monotonic() < deadline:
            time.sleep(0.02)
    deadline = time.monotonic() + 5
    while not sandbox.stats()["requests"] and time.monotonic() < deadline:
        time.sleep(0.02)  # counted once the server sees the hang-up
    assert sandbox.stats()["bytes_received"] == len(sent)


def test_no_path_matches_two_discover_routes() -> None:
    """The Discover routes are ordered by use (hot ones first); that is safe only while no path
    matches two patterns. Each route's own sample path (ids, names, a slash-free suffix) matches it
    alone."""
    import re

    from sparc.sandbox.pennsieve.routes import routes

    def sample(template: str, value: str) -> str:
        return re.sub(r"\{\w+:int32\}", "90", re.sub(r"\{\w+\}", value, template))

    for route in routes:
        for value in ("abc", "versions", "doi", "1"):
            path = sample(route.path, value)
            hits = [other.path for other in routes if other.path_regex.match(path)]
            assert route.path in hits, (route.path, path)
            assert len(hits) == 1, (path, hits)


def test_object_lookups_need_no_sort(sandbox: SandboxProcess) -> None:
    """An asset GET finds its object, newest version first, straight from an index (no temp
    B-tree per request)."""
    from sparc.sandbox.storage.objects import find_object

    with _database(sandbox) as conn:
        conn.row_factory = sqlite3.Row
        bucket, key = conn.execute("SELECT bucket, key FROM files WHERE dataset_id = 90 AND path = ?",
                                   (BIG,)).fetchone()
        issued: list[str] = []
        conn.set_trace_callback(issued.append)
        row = find_object(conn, bucket, key)
        conn.set_trace_callback(None)
        assert row is not None and row["size"] == 1 << 30
        plan = [step[3] for step in conn.execute("EXPLAIN QUERY PLAN " + issued[-1].replace(
            f"'{bucket}'", "?").replace(f"'{key}'", "?"), (bucket, key))]
    assert plan[0].startswith("SEARCH files USING") and "files_object" in plan[0], plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_forwarded_headers_do_not_change_the_client_connection(sandbox: SandboxProcess,
                                                               client: httpx.Client) -> None:
    """uvicorn's proxy-header rewriting is off: an ``X-Forwarded-For`` leaves the request known by
    its own socket address (fault rules find the connection to drop by it); no ``server`` header."""
    response = client.get("/_sandbox/process", headers={"X-Forwarded-For": "10.1.2.3",
                                                         "X-Forwarded-Proto": "https"})
    assert response.json()["http"] == "HttpToolsProtocol"  # the connection was found by its address
    assert "server" not in response.headers


# ---- ready-made Discover answers ---------------------------------------------------------------
def test_a_stored_dto_is_answered_as_response_would_answer_it(client: httpx.Client,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """One Response per stored body serves every request: the status, header list and body a new
    ``Response(body, media_type=JSON)`` has; it stays unchanged by being sent; the memory is bounded."""
    from starlette.responses import Response

    from sparc.sandbox.pennsieve import routes as discover

    body = b'{"id": 1, "name": "x"}'
    ready = discover.json_body(body)
    fresh = Response(body, media_type="application/json")
    assert (ready.status_code, ready.raw_headers, ready.body, ready.background) == \
        (fresh.status_code, fresh.raw_headers, fresh.body, None)
    assert discover.json_body(bytes(body)) is ready
    headers = list(ready.raw_headers)
    for _ in range(2):  # served twice over HTTP: the same answer, the response unchanged
        response = client.get("/discover/datasets/90")
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))
        assert [k for k in response.headers if k not in ("date", "server")] == ["content-length", "content-type"]
    assert ready.raw_headers == headers
    monkeypatch.setattr(discover, "MAX_READY", 3)
    for i in range(10):
        discover.json_body(b"[%d]" % i)
    assert len(discover._READY) <= 3


def test_discover_is_the_apps_state_discover(tmp_path: Path) -> None:
    from starlette.requests import Request

    from sparc.sandbox.pennsieve.routes import _discover
    from sparc.sandbox.server import create_app
    from sparc.sandbox.settings import SandboxSettings

    app = create_app(SandboxSettings(data_dir=tmp_path))
    try:
        request = Request({"type": "http", "app": app})
        assert _discover(request) is app.state.discover and _discover(request) is app.state.discover
    finally:
        app.state.db.close()
