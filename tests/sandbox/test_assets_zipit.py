"""Asset downloads (signed URLs, Range), zipit, stats and server lifecycle over real HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import httpx
import pytest

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


def zipit(client: httpx.Client, **data: object) -> httpx.Response:
    return client.post("/zipit/discover", json={"data": data})


def test_zipit_single_file(client: httpx.Client) -> None:
    response = zipit(client, datasetId=90, version=1, paths=["metadata/records/award.csv"])
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="award.csv"'
    assert len(response.content) == 3032


def test_zipit_folder_zip(client: httpx.Client) -> None:
    response = zipit(client, datasetId=90, version=1, paths=["metadata"])
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="metadata.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    infos = {i.filename: i for i in archive.infolist()}
    assert infos["metadata/records/award.csv"].file_size == 3032
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos.values())
    assert sum(i.file_size for i in infos.values()) == 48774


def test_zipit_named_archive_and_form(client: httpx.Client) -> None:
    data = {"datasetId": "120", "version": 1, "archiveName": "ecap",
            "paths": ["files/primary/sub-1", "files/primary/sub-2/stimulation_log.csv"]}
    response = client.post("/zipit/discover", data={"data": json.dumps(data)})
    assert response.headers["content-disposition"] == 'attachment; filename="ecap.zip"'
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "files/primary/sub-1/ecap_run1.edf" in names and len(names) == 3
    plain = zipit(client, datasetId=120, version=1, paths=["files/primary/sub-1", "files/README.md"])
    assert plain.headers["content-disposition"] == 'attachment; filename="pennsieve-data.zip"'


@pytest.mark.parametrize("data, status, error", [
    ({"datasetId": 90}, 400, "the request was invalid"),
    ({"datasetId": 90, "version": 1, "paths": []}, 400, "the request was invalid"),
    ({"datasetId": 90, "version": 1, "paths": ["nothing/here"]}, 400, "no data to download"),
    ({"datasetId": 5, "version": 1, "paths": ["files"]}, 500,
     "there was an error creating the zip, please check the logs"),
    ({"datasetId": 275, "version": 1, "paths": ["files"]}, 500,
     "there was an error creating the zip, please check the logs"),
])
def test_zipit_errors(client: httpx.Client, data, status, error) -> None:
    response = client.post("/zipit/discover", json={"data": data})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="!ERROR.txt"'
    body = json.loads(response.text)
    assert (body["status"], body["error"]) == (status, error)
    assert client.post("/zipit/discover", content=b"{not json").headers["content-disposition"].endswith(
        '"!ERROR.txt"')


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
