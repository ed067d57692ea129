"""Asset downloads (signed URLs, Range), zipit, stats and server lifecycle over real HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
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


def test_asset_download_matches_sha256(client: httpx.Client) -> None:
    for item in urls(client, 120, 1, "files/primary/sub-1/ecap_run1.edf", "files/primary/sub-2/stimulation_log.csv"):
        response = client.get(item["url"])
        assert response.status_code == 200 and len(response.content) == item["size"]
        assert hashlib.sha256(response.content).hexdigest() == item["sha256"]
        assert response.headers["accept-ranges"] == "bytes" and response.headers["etag"].startswith('"')


def test_asset_ranges_and_head(client: httpx.Client) -> None:
    item = urls(client, 120, 1, "files/primary/sub-1/ecap_run2.edf")[0]
    full = client.get(item["url"]).content
    size = item["size"]
    for header, (start, end) in {"bytes=0-9": (0, 10), "bytes=1048570-1048600": (1048570, 1048601),
                                 f"bytes={size - 5}-": (size - 5, size), "bytes=-7": (size - 7, size),
                                 f"bytes=10-{size + 100}": (10, size)}.items():
        response = client.get(item["url"], headers={"Range": header})
        assert response.status_code == 206 and response.content == full[start:end]
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
    bad = client.get(item["url"], headers={"Range": f"bytes={size}-"})
    assert bad.status_code == 416 and "InvalidRange" in bad.text
    head = client.head(item["url"])
    assert head.status_code == 200 and head.headers["content-length"] == str(size) and head.content == b""


def test_asset_bad_signature_is_403_xml(client: httpx.Client) -> None:
    url = urls(client, 90, 1, "readme.md")[0]["url"]
    response = client.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text
    assert client.get(url.split("?")[0]).status_code == 403


def test_five_zero_asset_has_version(client: httpx.Client) -> None:
    item = urls(client, 396, 3, "files/primary/sub-11352/map-client-workflow.proj")[0]
    assert "versionId=" in item["url"] and "/_assets/prd-sparc-discover50-use1/396/files/" in item["url"]
    assert len(client.get(item["url"]).content) == 5617


def test_expired_url_is_403(tmp_path: Path) -> None:
    with SandboxProcess(tmp_path, "--url-expiry", "1") as sb, httpx.Client(base_url=sb.url) as c:
        url = urls(c, 90, 1, "readme.md")[0]["url"]
        assert c.get(url).status_code == 200
        time.sleep(2.1)
        response = c.get(url)
        assert response.status_code == 403 and "Request has expired" in response.text


def test_download_size_cap(tmp_path: Path) -> None:
    # start-up time is measured by bench/sandbox.py, not asserted here
    with SandboxProcess(tmp_path, "--download-size-cap", "1000000") as sb, httpx.Client(base_url=sb.url) as c:
        response = c.post(MANIFEST.format(90, 1), json={"paths": ["files"]})
        assert response.status_code == 403 and response.json() == "requested files are too large to download"
        assert c.post(MANIFEST.format(90, 1), json={"paths": ["metadata"]}).status_code == 200
        error = c.post("/zipit/discover", json={"data": {"datasetId": 90, "version": 1, "paths": ["files"]}})
        assert json.loads(error.text)["status"] == 500
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


def test_zipit_single_file(zipit) -> None:
    response = zipit(datasetId=90, version=1, paths=["metadata/records/award.csv"])
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="award.csv"'
    assert len(response.content) == 3032


def test_zipit_folder_zip(zipit) -> None:
    response = zipit(datasetId=90, version=1, paths=["metadata"])
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="metadata.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    infos = {i.filename: i for i in archive.infolist()}
    assert infos["metadata/records/award.csv"].file_size == 3032
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos.values())
    assert sum(i.file_size for i in infos.values()) == 48774


def test_zipit_named_archive_and_form(client: httpx.Client, zipit, validate_zipit_request) -> None:
    data = {"datasetId": "120", "version": 1, "archiveName": "ecap",
            "paths": ["files/primary/sub-1", "files/primary/sub-2/stimulation_log.csv"]}
    request = client.build_request("POST", "/zipit/discover", data={"data": json.dumps(data)})
    validate_zipit_request(request)
    response = client.send(request)
    assert response.headers["content-disposition"] == 'attachment; filename="ecap.zip"'
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "files/primary/sub-1/ecap_run1.edf" in names and len(names) == 3
    plain = zipit(datasetId=120, version=1, paths=["files/primary/sub-1", "files/README.md"])
    assert plain.headers["content-disposition"] == 'attachment; filename="pennsieve-data.zip"'


def test_zipit_names_are_encoded_like_encode_uri(zipit) -> None:
    assert attachment('a b;c(1)#é"\r\n.csv') == 'attachment; filename="a%20b;c(1)#%C3%A9%22%0D%0A.csv"'
    response = zipit(datasetId=90, version=1, paths=["metadata", "manifest.json"], archiveName='x"y\r\nz é')
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="x%22y%0D%0Az%20%C3%A9.zip"'
    assert zipfile.ZipFile(io.BytesIO(response.content)).testzip() is None


def test_zipit_missing_paths_are_listed_in_an_error_entry(zipit) -> None:
    response = zipit(datasetId=90, version=1, paths=["metadata/records/award.csv", "nope/x.csv", "/gone/"])
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="pennsieve-data.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None and archive.namelist() == ["metadata/records/award.csv", "!ERROR.txt"]
    assert json.loads(archive.read("!ERROR.txt")) == {
        "status": 404, "error": "some files could not be found", "info": ["nope/x.csv", "/gone/"]}
    folder = zipit(datasetId=90, version=1, paths=["metadata", "nope"])
    names = zipfile.ZipFile(io.BytesIO(folder.content)).namelist()
    assert names[-1] == "!ERROR.txt" and "metadata/records/award.csv" in names


@pytest.mark.parametrize("data, status, error", [
    ({"datasetId": 90}, 400, "the request was invalid"),
    ({"datasetId": 90, "version": 1, "paths": []}, 400, "the request was invalid"),
    ({"datasetId": 90, "version": 1, "paths": ["nothing/here"]}, 400, "no data to download"),
    ({"datasetId": 90, "version": 1, "paths": ["nothing/here", "nor/there"]}, 400, "no data to download"),
    ({"datasetId": 5, "version": 1, "paths": ["files"]}, 500,
     "there was an error creating the zip, please check the logs"),
    ({"datasetId": 275, "version": 1, "paths": ["files"]}, 500,
     "there was an error creating the zip, please check the logs"),
])
def test_zipit_errors(client: httpx.Client, data, status, error) -> None:
    body = error_of(client.post("/zipit/discover", json={"data": data}))
    assert (body["status"], body["error"]) == (status, error)
    assert client.post("/zipit/discover", content=b"{not json").headers["content-disposition"].endswith(
        '"!ERROR.txt"')


VALID = {"datasetId": 90, "version": 1, "paths": ["metadata", "manifest.json"]}


@pytest.mark.parametrize("data, spec_checks", [
    ({**VALID, "archiveName": 7}, True), ({**VALID, "paths": [1, 2]}, True), ({**VALID, "paths": "metadata"}, True),
    ({**VALID, "datasetId": True}, True), ({**VALID, "datasetId": 1.5}, True), ({**VALID, "version": None}, True),
    ({**VALID, "datasetId": 2**40}, True), ({**VALID, "rootPath": 5}, False), ({**VALID, "userToken": []}, False),
    (["metadata"], True), ("metadata", True),
])
def test_zipit_wrong_types_are_invalid(client: httpx.Client, validate_zipit_request, data, spec_checks) -> None:
    request = client.build_request("POST", "/zipit/discover", json={"data": data})
    if spec_checks:  # the spec has no rootPath/userToken, so it cannot reject those
        from openapi_core.validation.request.exceptions import InvalidRequestBody

        with pytest.raises(InvalidRequestBody):
            validate_zipit_request(request)
    body = error_of(client.send(request))
    assert (body["status"], body["error"]) == (400, "the request was invalid") and body["info"]


def test_zipit_selection_failure_is_an_error_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparc.sandbox.server import SandboxServer

    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    with SandboxServer() as server:
        monkeypatch.setattr(server.app.state.discover, "select_files", broken)
        response = httpx.post(server.url + "/zipit/discover", json={"data": VALID})
    body = error_of(response)
    assert (body["status"], body["error"]) == (500, "there was an error creating the zip, please check the logs")
    assert "disk on fire" in body["info"]


def test_zipit_archive_too_big() -> None:
    from sparc.sandbox.server import SandboxServer, SandboxSettings

    with SandboxServer(SandboxSettings(archive_size_cap=10_000)) as server:
        response = httpx.post(server.url + "/zipit/discover",
                              json={"data": {"datasetId": 90, "version": 1, "paths": ["metadata"]}})
        assert json.loads(response.text)["status"] == 422


def test_stats(sandbox, client: httpx.Client) -> None:
    sandbox.reset_stats()
    assert sandbox.stats() == {"requests_total": 0, "requests": {}, "bytes_sent": 0}
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
