"""zipit, the download size cap, stats and server lifecycle over real HTTP (asset/S3 behaviour:
test_assets_s3.py)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sparc.sandbox.pennsieve.zipit import attachment
from sparc.sandbox.process import SandboxProcess

MANIFEST = "/discover/datasets/{}/versions/{}/files/download-manifest"


def urls(client: httpx.Client, dataset: int, version: int, *paths: str) -> list[dict]:
    response = client.post(MANIFEST.format(dataset, version), json={"paths": list(paths)})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_download_size_cap(tmp_path: Path) -> None:
    # start-up time is measured by bench/sandbox.py, not asserted here
    with SandboxProcess(tmp_path, "--download-size-cap", "1000000") as sb, httpx.Client(base_url=sb.url) as c:
        response = c.post(MANIFEST.format(90, 1), json={"paths": ["files"]})
        assert response.status_code == 403 and response.json() == "requested files are too large to download"
        assert c.post(MANIFEST.format(90, 1), json={"paths": ["metadata"]}).status_code == 200
        error = c.post("/zipit/discover", json={"data": {"datasetId": 90, "version": 1, "paths": ["files"]}})
        assert json.loads(error.text) == {"status": 500, "info": "Request failed with status code 403",
                                          "error": "there was an error creating the zip, please check the logs"}
        code = sb.stop()
    assert code == 0


@pytest.fixture
def zipit(client: httpx.Client, validate_zipit_request) -> Callable[..., httpx.Response]:
    """``POST /zipit/discover`` with ``{"data": data}``, the request first checked against the zipit spec."""

    def post(**data: object) -> httpx.Response:
        request = client.build_request("POST", "/zipit/discover", json={"data": data})
        validate_zipit_request(request)
        return client.send(request)

    return post


def error_of(response: httpx.Response) -> dict:
    """The JSON of a top-level zipit error file (HTTP 200, ``!ERROR.txt``)."""
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="!ERROR.txt"'
    return json.loads(response.text)


def archive_of(response: httpx.Response) -> zipfile.ZipFile:
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())  # archiver store: true
    return archive


def test_zipit_single_file_is_raw_without_content_length(zipit) -> None:
    response = zipit(datasetId=90, version=1, paths=["metadata/records/award.csv"])
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="award.csv"'
    assert "content-length" not in response.headers and len(response.content) == 3032


def test_zipit_single_file_is_decided_by_the_manifest_count(zipit) -> None:
    """Two paths of which one exists: the manifest has one file, so zipit sends it raw."""
    response = zipit(datasetId=90, version=1, paths=["metadata/records/award.csv", "nope/x.csv"])
    assert response.headers["content-type"] == "application/octet-stream" and len(response.content) == 3032
    folder = zipit(datasetId=292, version=1, paths=["files/primary"])  # a folder holding one file
    assert folder.headers["content-disposition"] == 'attachment; filename="Scaffold_Creator-settings.json"'


def test_zipit_folder_zip(zipit) -> None:
    response = zipit(datasetId=90, version=1, paths=["metadata"])
    assert response.headers["content-disposition"] == 'attachment; filename="metadata.zip"'
    infos = {i.filename: i for i in archive_of(response).infolist()}
    assert infos["metadata/records/award.csv"].file_size == 3032
    assert sum(i.file_size for i in infos.values()) == 48774 and "!ERROR.txt" not in infos


def test_zipit_folder_archive_is_named_below_root_path(zipit) -> None:
    rooted = zipit(datasetId=90, version=1, paths=["metadata/records"], rootPath="metadata")
    assert rooted.headers["content-disposition"] == 'attachment; filename="records.zip"'
    assert "records/award.csv" in archive_of(rooted).namelist()
    # the rootPath check is a string prefix; segments are removed only while they match whole
    partial = zipit(datasetId=90, version=1, paths=["metadata/records"], rootPath="meta")
    assert partial.headers["content-disposition"] == 'attachment; filename="metadata.zip"'
    assert "metadata/records/award.csv" in archive_of(partial).namelist()
    at_root = zipit(datasetId=90, version=1, paths=["metadata/records"], rootPath="metadata/records")
    assert at_root.headers["content-disposition"] == 'attachment; filename="pennsieve-data.zip"'
    assert "award.csv" in archive_of(at_root).namelist()


def test_zipit_named_archive_and_form(client: httpx.Client, zipit, validate_zipit_request) -> None:
    data = {"datasetId": "120", "version": 1, "archiveName": "ecap",
            "paths": ["files/primary/sub-1", "files/primary/sub-2/stimulation_log.csv"]}
    request = client.build_request("POST", "/zipit/discover", data={"data": json.dumps(data)})
    validate_zipit_request(request)
    response = client.send(request)
    assert response.headers["content-disposition"] == 'attachment; filename="ecap.zip"'
    names = archive_of(response).namelist()
    assert "files/primary/sub-1/ecap_run1.edf" in names and len(names) == 3
    plain = zipit(datasetId=120, version=1, paths=["files/primary/sub-1", "files/README.md"])
    assert plain.headers["content-disposition"] == 'attachment; filename="pennsieve-data.zip"'


def test_zipit_names_are_encoded_like_encode_uri(zipit) -> None:
    assert attachment('a b;c(1)#é"\r\n.csv') == 'attachment; filename="a%20b;c(1)#%C3%A9%22%0D%0A.csv"'
    response = zipit(datasetId=90, version=1, paths=["metadata", "manifest.json"], archiveName='x"y\r\nz é')
    assert response.headers["content-disposition"] == 'attachment; filename="x%22y%0D%0Az%20%C3%A9.zip"'
    archive_of(response)


def test_zipit_lists_only_files_it_failed_to_fetch(sandbox, zipit) -> None:
    """Paths that match nothing are not reported (the manifest never names them); a file whose
    download fails is a ``FILE Error: <name>`` line of ``!ERROR.txt``."""
    response = zipit(datasetId=90, version=1, paths=["metadata/records", "nope/x.csv"])
    assert "!ERROR.txt" not in archive_of(response).namelist()
    sandbox.set_faults([{"route": "GET /_assets/*/metadata/records/award.csv", "kind": "status", "status": 503},
                        {"route": "GET /_assets/*/metadata/records/term.csv", "kind": "expire"}])
    try:
        response = zipit(datasetId=90, version=1, paths=["metadata/records", "metadata/schema.json"])
    finally:
        sandbox.clear_faults()
    archive = archive_of(response)
    assert "metadata/records/award.csv" not in archive.namelist() and "metadata/schema.json" in archive.namelist()
    assert archive.namelist()[-1] == "!ERROR.txt"
    assert archive.read("!ERROR.txt").decode() == \
        "FILE Error: metadata/records/award.csv\nFILE Error: metadata/records/term.csv"


def test_zipit_single_file_that_cannot_be_fetched_is_an_error_file(sandbox, zipit) -> None:
    sandbox.set_faults([{"route": "GET /_assets/*", "kind": "status", "status": 500}])
    try:
        response = zipit(datasetId=90, version=1, paths=["metadata/records/award.csv"])
    finally:
        sandbox.clear_faults()
    assert error_of(response) == {"status": 500, "error": UNKNOWN, "info": ""}


def test_zipit_manifest_failure_is_an_error_file(sandbox, zipit) -> None:
    """zipit asks Discover over HTTP: a failing download-manifest is its UNKNOWN error (status 500)."""
    sandbox.set_faults([{"route": "POST /discover/*/download-manifest", "kind": "status", "status": 503}])
    try:
        response = zipit(datasetId=90, version=1, paths=["metadata"])
    finally:
        sandbox.clear_faults()
    assert error_of(response) == {"status": 500, "error": UNKNOWN, "info": "Request failed with status code 503"}


UNKNOWN = "there was an error creating the zip, please check the logs"


@pytest.mark.parametrize("data, status, error", [
    ({"datasetId": 90}, 400, "the request was invalid"),
    ({"datasetId": 90, "version": 1, "paths": []}, 400, "the request was invalid"),
    ({"datasetId": 90, "version": 1, "paths": ["nothing/here"]}, 500, "no data to download"),
    ({"datasetId": 90, "version": 1, "paths": ["nothing/here", "nor/there"]}, 500, "no data to download"),
    ({"datasetId": 5, "version": 1, "paths": ["files"]}, 500, UNKNOWN),
    ({"datasetId": 275, "version": 1, "paths": ["files"]}, 500, UNKNOWN),
    ({"datasetId": 90, "version": 1, "paths": ["files"], "rootPath": "metadata"}, 500, UNKNOWN),
])
def test_zipit_errors(client: httpx.Client, data, status, error) -> None:
    response = client.post("/zipit/discover", json={"data": data})
    body = error_of(response)
    assert (body["status"], body["error"]) == (status, error)
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith('{\n  "status": ')  # JSON.stringify(..., undefined, 2)


@pytest.mark.parametrize("content", [b"{not json", b'"metadata"', b"[" * 200_000 + b"]" * 200_000,
                                     b'{"data": {"paths": ["' + b"x" * 200_000 + b'"]}}'])
def test_zipit_body_parser_failures_crash_its_error_middleware(client: httpx.Client, content: bytes) -> None:
    """Malformed JSON and bodies over 100 kb reach error.middleware.ts, which throws: Express's 500."""
    response = client.post("/zipit/discover", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "<pre>Internal Server Error</pre>" in response.text


VALID = {"datasetId": 90, "version": 1, "paths": ["metadata", "manifest.json"]}


@pytest.mark.parametrize("data", [
    {**VALID, "paths": "metadata"}, {**VALID, "datasetId": True}, {**VALID, "version": None},
    {**VALID, "paths": [None]}, {**VALID, "rootPath": None}, {**VALID, "datasetId": "nine"},
    {"datasetId": 90, "version": 1, "paths": ["metadata"], "archiveName": "x"}, ["metadata"], "metadata",
])
def test_zipit_invalid_requests(client: httpx.Client, data) -> None:
    body = error_of(client.post("/zipit/discover", json={"data": data}))
    assert (body["status"], body["error"]) == (400, "the request was invalid") and body["info"]


@pytest.mark.parametrize("data, outcome", [
    ({**VALID, "archiveName": 7}, "7.zip"),  # yup string() casts numbers
    ({**VALID, "paths": ["metadata", 5]}, "pennsieve-data.zip"),  # "5" matches nothing
    ({**VALID, "datasetId": " 90 "}, "pennsieve-data.zip"),  # whitespace removed, +"90"
    ({**VALID, "userToken": []}, "pennsieve-data.zip"),  # String([]) == ""
    ({**VALID, "datasetId": 1.5}, UNKNOWN),  # /datasets/1.5/… matches no Discover route
    ({**VALID, "datasetId": 2**40}, UNKNOWN),
    ({**VALID, "rootPath": 5}, UNKNOWN),  # "5": Discover's 400 root path check
])
def test_zipit_casts_like_yup(client: httpx.Client, data, outcome) -> None:
    response = client.post("/zipit/discover", json={"data": data})
    if outcome == UNKNOWN:
        assert error_of(response)["error"] == UNKNOWN
    else:
        assert response.headers["content-disposition"] == f'attachment; filename="{outcome}"'


def test_zipit_duplicate_names_follow_its_quirks() -> None:
    from sparc.sandbox.pennsieve.zipit import Names

    names = Names()
    assert [names.add(["a"], n) for n in ("x.csv", "x.csv", "README", "README", ".env", ".env")] == \
        ["a/x.csv", "a/x (1).csv", "a/README", "a/ (1)E", "a/.env", "a/.env (1)"]


def test_zipit_archive_too_big() -> None:
    from sparc.sandbox.server import SandboxServer, SandboxSettings

    with SandboxServer(SandboxSettings(archive_size_cap=48774)) as server:
        data = {"datasetId": 90, "version": 1, "paths": ["metadata"]}
        response = httpx.post(server.url + "/zipit/discover", json={"data": data})
        assert json.loads(response.text)["status"] == 422  # size >= MAX_ARCHIVE_SIZE
        data["paths"] = ["metadata/records"]
        assert httpx.post(server.url + "/zipit/discover", json={"data": data}).headers["content-type"] == \
            "application/zip"


def test_stats(sandbox, client: httpx.Client) -> None:
    sandbox.reset_stats()
    assert sandbox.stats() == {"requests_total": 0, "requests": {}, "bytes_sent": 0,
                               "bytes_received": 0}
    client.get("/discover/datasets/90")
    client.get("/discover/datasets/93")
    item = urls(client, 120, 1, "files/primary/sub-1/ecap_run1.edf")[0]
    body = client.get(item["url"]).content
    stats = sandbox.stats()
    assert stats["requests"]["GET /discover/datasets/{datasetId}"] == 2
    assert stats["requests"]["GET /_assets/{bucket}/{key}"] == 1
    assert stats["requests_total"] == 4 and stats["bytes_sent"] > len(body)
    assert client.post("/_sandbox/stats/reset").json()["requests_total"] == 0


def test_stats_count_unmatched_requests_apart(sandbox, client: httpx.Client) -> None:
    sandbox.reset_stats()
    assert client.get("/discover/nope").status_code == 404
    assert client.get("/nowhere").status_code == 404
    assert client.post("/discover/datasets").status_code == 405
    assert client.get("/zipit/discover").status_code == 405
    client.get("/discover/tags")
    assert sandbox.stats()["requests"] == {"GET <unmatched>": 3, "POST <unmatched>": 1, "GET /discover/tags": 1}


def test_corrupt_database_is_rebuilt(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sandbox.sqlite3").write_bytes(os.urandom(64 * 1024))
    with SandboxProcess(tmp_path) as sb, httpx.Client(base_url=sb.url) as c:
        assert c.get("/discover/datasets/90").json()["id"] == 90
        assert sb.stop() == 0
    assert "sandbox.sqlite3 is corrupt" in capfd.readouterr().err


def test_damaged_pages_are_detected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sparc.sandbox.storage.db import DB_NAME, open_database

    open_database(tmp_path).close()
    path = tmp_path / DB_NAME
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64 * 1024] = os.urandom(64 * 1024)
    path.write_bytes(bytes(data))
    conn = open_database(tmp_path)
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM datasets WHERE id = 90").fetchone()[0] == 1
    conn.close()
    assert "is corrupt" in capsys.readouterr().err


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "sparc.cli", "sandbox", "serve", "--port", str(port),
                               "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: address already in use"


def test_api_secret_is_not_printed(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from sparc.sandbox.server import SandboxSettings, credentials_line

    assert credentials_line(SandboxSettings()) == "api key 'sandbox-key', api secret 'sandbox-secret'"
    with SandboxProcess(tmp_path, "--api-key", "k-123", "--api-secret", "s3cr3t-value"):
        pass
    err = capfd.readouterr().err
    assert "api key 'k-123', api secret (as given)" in err and "s3cr3t-value" not in err


@pytest.mark.parametrize("content, expect", [
    (b'{"data": {"datasetId": 90, "version": 1, "paths": ["metadata", "x"], "archiveName": "\\udfff"}}', UNKNOWN),
    (b'{"data": {"datasetId": 90, "version": 1, "paths": ["\\ud800", "metadata"]}}', "pennsieve-data.zip"),
    (b'{"data": {"datasetId": 90, "version": 1, "paths": ["metadata"], "userToken": "\\ud800"}}', UNKNOWN),
    (b'{"data": {"datasetId": ' + b"9" * 5000 + b', "version": 1, "paths": ["metadata"]}}', UNKNOWN),
    (b'{"data": {"datasetId": 90, "version": 1e400, "paths": ["metadata"]}}', UNKNOWN),
])
def test_zipit_hostile_values_never_crash(client: httpx.Client, content: bytes, expect: str) -> None:
    response = client.post("/zipit/discover", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 200
    if expect == UNKNOWN:
        assert error_of(response)["error"] == UNKNOWN
    else:
        assert response.headers["content-disposition"] == f'attachment; filename="{expect}"'
