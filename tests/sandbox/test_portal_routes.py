"""The routes the SPARC portal calls besides search and files: the whole-version ZIP, DOIs of a
version, data-use agreements, preview requests, download metrics, release assets and packages."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import UTC, datetime

import httpx
import pytest

DOWNLOAD = "/discover/datasets/{}/versions/{}/download"


def test_whole_version_zip(client: httpx.Client) -> None:
    response = client.get(DOWNLOAD.format(292, 3), params={"downloadOrigin": "SPARC"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == "attachment; filename=Pennsieve-dataset-292-version-3.zip"
    assert "content-length" not in response.headers  # a chunked stream
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    infos = archive.infolist()
    dto = client.get("/discover/datasets/292/versions/3").json()
    assert len(infos) == dto["fileCount"] and sum(i.file_size for i in infos) == dto["size"]
    assert all(i.filename.startswith("Pennsieve-dataset-292-version-3/") for i in infos)
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)  # java.util.zip default
    manifest = client.get("/discover/datasets/292/versions/3/metadata").content
    assert archive.read("Pennsieve-dataset-292-version-3/manifest.json") == manifest


def test_whole_version_zip_of_a_five_zero_version(client: httpx.Client) -> None:
    response = client.get(DOWNLOAD.format(396, 1), params={"downloadOrigin": "discover"})
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "Pennsieve-dataset-396-version-1/manifest.json" in names
    assert all(n.startswith("Pennsieve-dataset-396-version-1/") and "/396/" not in n for n in names)


@pytest.mark.parametrize("dataset, version, params, status, body", [
    (90, 1, {"downloadOrigin": "SPARC"}, 403, '"Dataset is too large to download directly."'),
    (90, 1, {"downloadOrigin": "nowhere"}, 403, '"Dataset is too large to download directly."'),
    (292, 3, {"downloadOrigin": "nowhere"}, 500, "There was an internal server error."),
    (150, 2, {}, 410, ""),
    (275, 1, {}, 401, '"Dataset is under embargo"'),
    (5, 1, {}, 404, '"5"'),
    (292, 8, {}, 404, '"292"'),
])
def test_whole_version_zip_refusals(client: httpx.Client, dataset, version, params, status, body) -> None:
    response = client.get(DOWNLOAD.format(dataset, version), params=params)
    assert (response.status_code, response.text) == (status, body)


def test_whole_version_zip_is_throttled_by_the_time_scale() -> None:
    from sparc.sandbox.server import SandboxServer, SandboxSettings

    settings = SandboxSettings(time_scale=0.5, whole_version_zip_rate=2e6)
    with SandboxServer(settings) as server:
        size = httpx.get(server.url + "/discover/datasets/292/versions/3").json()["size"]
        start = time.monotonic()
        response = httpx.get(server.url + DOWNLOAD.format(292, 3), timeout=30)
        elapsed = time.monotonic() - start
    expected = size / 2e6 * 0.5
    assert response.status_code == 200 and expected * 0.8 <= elapsed <= expected + 2


def test_downloads_are_counted_in_the_metrics_summary(client: httpx.Client, validate) -> None:
    today = datetime.now(UTC).date().isoformat()
    params = {"startDate": today, "endDate": today}

    def count(origin: str) -> int:
        rows = validate(client.get("/discover/metrics/dataset/downloads/summary", params=params))
        return sum(r["downloads"] for r in rows if (r["datasetId"], r["version"], r["origin"]) == (292, 1, origin))

    before, before_unknown = count("SPARC"), count("Unknown")
    client.get(DOWNLOAD.format(292, 1), params={"downloadOrigin": "sparc"})
    client.get(DOWNLOAD.format(292, 1))
    assert (count("SPARC"), count("Unknown")) == (before + 1, before_unknown + 1)


def test_metrics_summary_of_past_downloads(client: httpx.Client, validate) -> None:
    rows = validate(client.get("/discover/metrics/dataset/downloads/summary",
                               params={"startDate": "2024-01-01", "endDate": "2024-12-31"}))
    assert rows and rows == sorted(rows, key=lambda r: (r["datasetId"], r["version"], r["origin"]))
    assert {r["origin"] for r in rows} <= {"SPARC", "Discover", "Unknown"}
    one_day = client.get("/discover/metrics/dataset/downloads/summary",
                         params={"startDate": "2030-01-01", "endDate": "2030-01-01"})
    assert one_day.json() == []


@pytest.mark.parametrize("params, status, text", [
    ({"startDate": "2024-01-01"}, 404, "Request is missing required query parameter 'endDate'"),
    ({"startDate": "2024-13-01", "endDate": "2024-01-01"}, 400, "The query parameter 'startDate' was malformed:"),
    ({"startDate": "yesterday", "endDate": "2024-01-01"}, 400, "The query parameter 'startDate' was malformed:"),
])
def test_metrics_summary_parameters(client: httpx.Client, params, status, text) -> None:
    response = client.get("/discover/metrics/dataset/downloads/summary", params=params)
    assert response.status_code == status and response.text.startswith(text)


def test_doi_page(client: httpx.Client, validate) -> None:
    page = validate(client.get("/discover/datasets/200/versions/1/dois", params={"limit": 5}))
    assert page == {"limit": 5, "offset": 0, "totalCount": 0, "dois": []}
    assert client.get("/discover/datasets/275/versions/1/dois").status_code == 401
    assert client.get("/discover/datasets/200/versions/9/dois").json() == "200"


def test_data_use_agreement(client: httpx.Client, validate) -> None:
    agreement = validate(client.get("/discover/datasets/275/data-use-agreement"))
    assert set(agreement) == {"id", "name", "body", "organizationId"}
    none = client.get("/discover/datasets/90/data-use-agreement")
    assert (none.status_code, none.content) == (204, b"")
    gone = client.get("/discover/datasets/150/data-use-agreement")
    assert gone.status_code == 410 and gone.json()["status"] == "UNPUBLISHED"
    text = client.get("/discover/datasets/275/data-use-agreement/download")
    assert text.headers["content-type"].startswith("text/plain") and agreement["body"] in text.text
    assert text.headers["content-disposition"] == \
        "attachment; filename=Pennsieve-dataset-275-data-use-agreement.txt"
    assert client.get("/discover/datasets/150/data-use-agreement/download").content == b""


def test_preview_needs_a_user(client: httpx.Client, validate) -> None:
    response = client.post("/discover/datasets/275/preview", json={"dataUseAgreementId": 1})
    assert response.status_code == 401 and validate(response) == "missing token"
    bearer = client.post("/discover/datasets/275/preview", json={}, headers={"Authorization": "Bearer x.y.z"})
    assert bearer.status_code == 401 and bearer.headers["content-type"].startswith("text/plain")
    assert client.post("/discover/datasets/275/preview", json={"dataUseAgreementId": "one"}).status_code == 400
    assert client.post("/discover/datasets/275/preview", content=b"x").status_code == 415


def test_release_assets_and_packages(client: httpx.Client, validate) -> None:
    assert validate(client.get("/discover/datasets/90/versions/1/assets")) == \
        {"limit": -1, "offset": -1, "totalCount": 0, "assets": []}
    assert validate(client.get("/discover/datasets/90/versions/1/assets/browse"))["totalCount"] == 0
    node = client.get("/discover/datasets/396/versions/3/files",
                      params={"path": "files/primary/sub-11352/map-client-workflow.proj"}).json()
    page = validate(client.get(f"/discover/packages/{node['sourcePackageId']}/files"))
    assert page["organizationId"] == 367 and node["uri"] in {f["uri"] for f in page["files"]}
    four = client.get("/discover/datasets/90/versions/1/files", params={"path": "files/subjects.xlsx"}).json()
    missing = client.get(f"/discover/packages/{four['sourcePackageId']}/files")
    assert missing.status_code == 404 and missing.json() == four["sourcePackageId"]  # 5.0 files only


def test_organization_metrics(client: httpx.Client, validate) -> None:
    body = validate(client.get("/discover/organizations/629/datasets/metrics"))
    assert body["datasets"] and all(set(d) == {"id", "name", "size"} for d in body["datasets"])


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/discover/datasets/120/versions/1/download?downloadOrigin=SPARC", None),
    ("POST", "/zipit/discover", {"data": {"datasetId": 120, "version": 1, "paths": ["files"]}}),
], ids=["whole-version-zip", "zipit"])
def test_long_archives_stop_when_the_client_hangs_up(sandbox_url: str, method: str, path: str,
                                                     body: dict | None) -> None:
    """Read 1 MB of a 130 MB archive and hang up: the answer ends (no writing the rest into a
    dead socket), so the bytes sent stay far below the archive's size."""
    with httpx.Client(base_url=sandbox_url, timeout=30) as control:
        control.post("/_sandbox/stats/reset")
        with httpx.Client(base_url=sandbox_url, timeout=30) as reader, \
                reader.stream(method, path, json=body) as response:
            assert response.status_code == 200
            got = 0
            for chunk in response.iter_raw():
                got += len(chunk)
                if got >= 1_000_000:
                    break
        time.sleep(1.0)
        first = control.get("/_sandbox/stats").json()["bytes_sent"]
        time.sleep(0.5)
        then = control.get("/_sandbox/stats").json()["bytes_sent"]
    assert then == first, "the archive is still being written after the client hung up"
    assert first < 60_000_000, f"{first} bytes sent for a 1 MB read"
