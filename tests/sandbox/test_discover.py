"""Discover routes over real HTTP, validated against the published OpenAPI spec."""

from __future__ import annotations

import httpx
import pytest


def test_search_datasets_cancer_matches_capture(client: httpx.Client, sample, validate) -> None:
    body = validate(client.get("/discover/search/datasets", params={"query": "cancer", "limit": 2}))
    assert body == sample("discover-search-datasets_query-cancer_limit-2.json")


@pytest.mark.parametrize("params, check", [
    ({"organization": "Sparc"}, lambda d: d["organizationName"] == "SPARC Consortium"),
    ({"organization": "SPARC"}, lambda d: d["organizationId"] == 367),
    ({"organizationId": 629}, lambda d: d["organizationName"] == "Northeastern University"),
    ({"tags": ["VAGUS NERVE", "pig"]}, lambda d: {"vagus nerve", "pig"} <= set(d["tags"])),
    ({"embargo": "true"}, lambda d: d["embargo"]),
    ({"embargo": "false"}, lambda d: not d["embargo"]),
])
def test_search_datasets_filters(client: httpx.Client, validate, params, check) -> None:
    body = validate(client.get("/discover/search/datasets", params={**params, "limit": 100}))
    assert body["datasets"] and all(check(d) for d in body["datasets"])
    assert body["totalCount"] == len(body["datasets"])


def test_search_datasets_embargoed_sample(client: httpx.Client, sample) -> None:
    body = client.get("/discover/search/datasets", params={"organization": "Sparc", "embargo": "true",
                                                           "orderBy": "date", "orderDirection": "asc"}).json()
    assert body["datasets"][0] == sample("discover-dataset_embargoed_275.json")


@pytest.mark.parametrize("order_by, key", [("name", lambda d: d["name"].lower()), ("size", lambda d: d["size"]),
                                            ("date", lambda d: d["createdAt"])])
def test_search_datasets_ordering(client: httpx.Client, order_by, key) -> None:
    for direction in ("asc", "desc"):
        items = client.get("/discover/search/datasets", params={"orderBy": order_by, "orderDirection": direction,
                                                               "limit": 100}).json()["datasets"]
        assert [key(d) for d in items] == sorted(map(key, items), reverse=direction == "desc")


def test_list_datasets(client: httpx.Client, validate) -> None:
    body = validate(client.get("/discover/datasets", params={"limit": 1000}))
    ids = [d["id"] for d in body["datasets"]]
    assert len(ids) >= 25 and len(set(ids)) == len(ids) and 150 not in ids
    assert next(d for d in body["datasets"] if d["id"] == 292)["version"] == 3
    page = validate(client.get("/discover/datasets", params={"ids": [90, 93], "limit": 5, "offset": 1}))
    assert (page["totalCount"], page["limit"], page["offset"], len(page["datasets"])) == (2, 5, 1, 1)
    assert client.get("/discover/datasets", params={"datasetType": "collection"}).json()["totalCount"] == 1
    assert client.get("/discover/datasets", params={"ids": "x"}).json() == "ids must be numbers"


@pytest.mark.parametrize("path, params", [
    ("/discover/search/datasets", {"limit": "abc"}), ("/discover/datasets", {"offset": "1.5"}),
    ("/discover/search/files", {"datasetId": "x"}), ("/discover/search/datasets", {"embargo": "maybe"}),
])
def test_malformed_query_param_is_400_text(client: httpx.Client, path, params) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("params", [{"orderBy": "popularity"}, {"orderDirection": "up"}, {"limit": -1},
                                    {"offset": -5}])
def test_bad_values_are_400_json_string(client: httpx.Client, params) -> None:
    for path in ("/discover/search/datasets", "/discover/datasets"):
        response = client.get(path, params=params)
        assert response.status_code == 400 and isinstance(response.json(), str)


def test_unknown_route_is_404_text(client: httpx.Client) -> None:
    response = client.get("/discover/nope")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/plain")


def test_dataset_and_versions(client: httpx.Client, sample, validate) -> None:
    assert validate(client.get("/discover/datasets/275")) == sample("discover-dataset_embargoed_275.json")
    versions = validate(client.get("/discover/datasets/292/versions"))
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert validate(client.get("/discover/datasets/292/versions/2"))["version"] == 2
    doi = versions[0]["doi"]
    assert client.get(f"/discover/datasets/doi/{doi}").json() == versions[0]
    by_dois = client.get("/discover/datasets/doi", params={"doi": [doi, "10.26275/none"]}).json()
    assert by_dois == {"published": {doi: versions[0]}, "unpublished": {}}


@pytest.mark.parametrize("path, body", [("/discover/datasets/5", "5"), ("/discover/datasets/5/versions", "5"),
                                        ("/discover/datasets/292/versions/9", "9")])
def test_not_found(client: httpx.Client, validate, path, body) -> None:
    response = client.get(path)
    assert response.status_code == 404 and validate(response) == body


@pytest.mark.parametrize("path", ["/discover/datasets/150", "/discover/datasets/150/versions/2",
                                  "/discover/datasets/150/versions/2/files/browse"])
def test_tombstone_is_410(client: httpx.Client, path) -> None:
    response = client.get(path)
    assert response.status_code == 410
    assert response.json()["status"] == "UNPUBLISHED" and response.json()["id"] == 150


@pytest.mark.parametrize("path", ["/files/browse", "/files?path=manifest.json", "/metadata"])
def test_embargoed_files_are_401(client: httpx.Client, path) -> None:
    response = client.get(f"/discover/datasets/275/versions/1{path}")
    assert response.status_code == 401 and response.json() == "Dataset is under embargo"


def test_browse(client: httpx.Client, sample, validate) -> None:
    body = validate(client.get("/discover/datasets/90/versions/1/files/browse", params={"limit": 2}))
    assert body == sample("discover-browse_dataset-90_v1_limit-2.json")
    root = validate(client.get("/discover/datasets/90/versions/1/files/browse"))
    assert [f["type"] for f in root["files"]] == ["Directory"] * 3 + ["File"] * 3
    records = validate(client.get("/discover/datasets/90/versions/1/files/browse",
                                  params={"path": "/metadata/records/"}))
    assert [f["name"] for f in records["files"]] == sorted(f["name"] for f in records["files"])
    assert sum(f["size"] for f in records["files"]) == 24898
    empty = client.get("/discover/datasets/90/versions/1/files/browse", params={"path": "nope"}).json()
    assert empty["totalCount"] == 0 and empty["files"] == []


def test_deep_tree(client: httpx.Client, validate) -> None:
    dto = client.get("/discover/datasets/318").json()
    assert dto["fileCount"] >= 10_000
    page = validate(client.get("/discover/datasets/318/versions/1/files/browse",
                               params={"path": "files/primary", "limit": 5, "offset": 38}))
    assert page["totalCount"] == 40 and [f["name"] for f in page["files"]] == ["sub-39", "sub-40"]


def test_get_file(client: httpx.Client, validate) -> None:
    node = validate(client.get("/discover/datasets/90/versions/1/files", params={"path": "manifest.json"}))
    assert node["size"] == 19928 and node["type"] == "File"
    for path in (node["uri"], "/manifest.json", "90/1/manifest.json"):
        assert client.get("/discover/datasets/90/versions/1/files", params={"path": path}).json() == node
    five = client.get("/discover/datasets/396/versions/3/files",
                      params={"path": "s3://prd-sparc-discover50-use1/396/files/primary/sub-11352/"
                                      "map-client-workflow.proj"}).json()
    assert five["path"] == "files/primary/sub-11352/map-client-workflow.proj" and five["s3Version"]
    missing = client.get("/discover/datasets/90/versions/1/files", params={"path": "no/such.txt"})
    assert missing.status_code == 404 and missing.json() == "no/such.txt"


def test_metadata_lists_every_file(client: httpx.Client) -> None:
    response = client.get("/discover/datasets/90/versions/1/metadata")
    assert response.status_code == 200 and len(response.content) == 19928
    manifest = response.json()
    assert manifest["pennsieveDatasetId"] == 90 and manifest["creator"]["first_name"]
    assert len(manifest["files"]) == client.get("/discover/datasets/90").json()["fileCount"]


def test_search_files(client: httpx.Client, sample, validate) -> None:
    body = validate(client.get("/discover/search/files", params={"query": "manifest", "fileType": "json",
                                                                 "datasetId": 90}))
    assert body["files"] == sample("discover-search-files_dataset-90_query-manifest_fileType-json.files.json")
    assert all("path" not in f for f in body["files"])
    five = validate(client.get("/discover/search/files", params={"query": "map-client-workflow",
                                                                 "datasetId": 396, "limit": 50}))
    captured = sample("discover-search-files_items_sparc-datasets-11-292-396-426.json")
    assert {f["uri"] for f in five["files"]} >= {f["uri"] for f in captured["mock_response_project_files_396"]}
    neu = {d["id"] for d in client.get("/discover/search/datasets",
                                       params={"organizationId": 629, "limit": 100}).json()["datasets"]}
    org = validate(client.get("/discover/search/files", params={"organization": "northeastern", "limit": 3}))
    assert {f["datasetId"] for f in org["files"]} <= neu and org["totalCount"] > 3
    assert client.get("/discover/search/files", params={"datasetId": 275}).json()["totalCount"] == 0


def test_search_records(client: httpx.Client, sample, validate) -> None:
    body = validate(client.get("/discover/search/records", params={"model": "researcher",
                                                                   "organization": "SPARC"}))
    assert body["records"] == sample("discover-search-records_model-researcher_org-SPARC.json")["records"]
    awards = validate(client.get("/discover/search/records", params={"model": "award", "datasetId": 90}))
    assert awards["totalCount"] == 1 and awards["records"][0]["model"] == "award"


def test_tags(client: httpx.Client, validate) -> None:
    tags = validate(client.get("/discover/tags"))
    assert {"tag": "cancer", "count": 1} in tags


def test_download_manifest(client: httpx.Client, sample, validate) -> None:
    response = client.post("/discover/datasets/90/versions/1/files/download-manifest",
                           json={"paths": ["metadata/records"]})
    body = validate(response)
    expected = sample("discover-download-manifest_dataset-90_v1_metadata-records.json")
    assert body["header"] == expected["header"]
    assert [(d["fileName"], d["path"], d["size"]) for d in body["data"]] == \
        [(d["fileName"], d["path"], d["size"]) for d in expected["data"]]
    assert all(d["url"].startswith(str(client.base_url)) for d in body["data"])
    rooted = client.post("/discover/datasets/90/versions/1/files/download-manifest",
                         json={"paths": ["/metadata/records/award.csv"], "rootPath": "metadata"}).json()
    assert rooted["data"][0]["path"] == ["records"]
    bad = client.post("/discover/datasets/90/versions/1/files/download-manifest",
                      json={"paths": ["files"], "rootPath": "metadata"})
    assert bad.status_code == 400 and "root path" in bad.json()
    none = client.post("/discover/datasets/90/versions/1/files/download-manifest", json={"paths": ["x"]})
    assert none.json() == {"header": {"count": 0, "size": 0}, "data": []}


def test_search_total_count_saturates(client: httpx.Client, validate) -> None:
    assert client.get("/discover/datasets/318").json()["fileCount"] > 10_000
    body = validate(client.get("/discover/search/files", params={"datasetId": 318, "limit": 1}))
    assert body["totalCount"] == 10_000


@pytest.mark.parametrize("path", ["/discover/search/datasets", "/discover/search/files",
                                  "/discover/search/records"])
def test_search_result_window(client: httpx.Client, path) -> None:
    assert client.get(path, params={"offset": 9990, "limit": 10}).status_code == 200
    assert client.get(path, params={"offset": 0, "limit": 10_000}).status_code == 200
    for params in ({"offset": 9991, "limit": 10}, {"offset": 0, "limit": 10_001}, {"offset": 20_000}):
        response = client.get(path, params=params)
        assert response.status_code == 500 and response.headers["content-type"] == "application/json"
        assert response.json().startswith(
            "Result window is too large, from + size must be less than or equal to: [10000]")
    assert client.get("/discover/datasets", params={"offset": 9991, "limit": 10}).status_code == 200


def test_spec_check_allows_null_only_where_optional(client: httpx.Client, validate) -> None:
    from openapi_core.validation.response.exceptions import InvalidData

    response = client.get("/discover/datasets/90")
    dto = validate(response)

    def replay(**changes: object) -> httpx.Response:
        return httpx.Response(200, json={**dto, **changes}, request=response.request)

    validate(replay(sponsorship=None, revision=None, embargoReleaseDate=None))
    for required in ({"name": None}, {"doi": None}, {"contributors": None}):
        with pytest.raises(InvalidData):
            validate(replay(**required))
