"""The reference guide's Pennsieve calls, verbatim, against the sandbox."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from sparc.client import SparcClient

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "specs" / "samples"  # see SOURCES.md


def sample(name: str) -> object:
    return json.loads((SAMPLES / name).read_text())


def test_list_datasets_cancer(client: SparcClient) -> None:
    response = client.pennsieve.list_datasets(query='cancer', limit=2)
    assert set(response) >= {"limit", "offset", "totalCount", "datasets"}
    assert response["limit"] == 2 and response["offset"] == 0
    assert {d["id"] for d in response["datasets"]} == {93, 33}


def test_list_datasets_returns_the_real_shape(client: SparcClient) -> None:
    real = sample("discover-search-datasets_query-cancer_limit-2.json")["datasets"]  # type: ignore[index]
    got = {d["id"]: d for d in client.pennsieve.list_datasets(query='cancer', limit=2)["datasets"]}
    for dataset in real:
        assert set(got[dataset["id"]]) >= set(dataset)
        assert got[dataset["id"]]["name"] == dataset["name"]


def test_list_records_researcher_sparc(client: SparcClient) -> None:
    response = client.pennsieve.list_records(model='researcher', organization='SPARC')
    assert response["limit"] == 10 and response["totalCount"] >= len(response["records"]) > 0
    for record in response["records"]:
        assert record["model"] == "researcher"
        assert {"firstName", "lastName"} <= set(record["properties"])
        assert all(isinstance(v, str) for v in record["properties"].values())


def test_list_files_manifest_json(client: SparcClient) -> None:
    response = client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
    assert isinstance(response, list)
    expected = sample("discover-search-files_dataset-90_query-manifest_fileType-json.files.json")
    assert sorted(f["uri"] for f in response) == sorted(f["uri"] for f in expected)  # type: ignore[union-attr]
    assert all("path" not in f for f in response)


def test_download_file_single(client: SparcClient) -> None:
    response = client.pennsieve.list_files(dataset_id=90, query='manifest', file_type='json')
    target = next(f for f in response if "revisions" in f["uri"])
    saved = client.pennsieve.download_file(file_list=target)
    assert saved == Path.cwd() / "manifest.json"
    assert saved.stat().st_size == target["size"]
    node = client.pennsieve.get_file(90, "revisions/1/manifest.json", version=1)
    assert node["sha256"] is None  # 4.x nodes carry no sha256 in production
    entry = client.pennsieve.download_manifest(90, ["revisions/1/manifest.json"], 1)["data"][0]
    plain = httpx.get(entry["url"])  # the bytes fetched the naive way, and S3's MD5 ETag
    assert saved.read_bytes() == plain.content
    assert plain.headers["etag"].strip('"') == hashlib.md5(saved.read_bytes()).hexdigest()
    assert not list(Path.cwd().glob("*.incomplete"))


def test_generic_get_on_production_url(client: SparcClient) -> None:
    result = client.pennsieve.get(
        'https://api.pennsieve.io/discover/datasets/90/versions/1/files/browse',
        params={'limit': 2})
    assert result == sample("discover-browse_dataset-90_v1_limit-2.json")
