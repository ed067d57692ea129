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


@pytest.mark.parametrize("params", [{"orderBy": "popularity"}, {"orderDirection": "up"}])
def test_bad_values_are_400_json_string(client: httpx.Client, params) -> None:
    for path in ("/discover/search/datasets", "/discover/datasets"):
        response = client.get(path, params=params)
        assert response.status_code == 400 and isinstance(response.json(), str)
    assert client.get("/discover/datasets", params={"orderBy": "popularity"}).json() == \
        "popularity is not a member of Enum (name, date, relevance, size)"


@pytest.mark.parametrize("params", [{"limit": -1}, {"offset": -5}])
def test_negative_paging_is_an_uncaught_500(client: httpx.Client, params) -> None:
    """Postgres and Elasticsearch refuse negative LIMIT/OFFSET (from/size); no handler catches it."""
    for path in ("/discover/search/datasets", "/discover/datasets", "/discover/datasets/90/versions/1/files/browse"):
        response = client.get(path, params=params)
        assert (response.status_code, response.text) == (500, "There was an internal server error.")


def test_unknown_route_is_404_text(client: httpx.Client) -> None:
    response = client.get("/discover/nope")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/plain")


def test_dataset_and_versions(client: httpx.Client, sample, validate) -> None:
    assert validate(client.get("/discover/datasets/275")) == sample("discover-dataset_embargoed_275.json")
    versions = validate(client.get("/discover/datasets/292/versions"))
    assert [v["version"] for v in versions] == [3, 2, 1]  # newest first (getVersions sortBy desc)
    assert validate(client.get("/discover/datasets/292/versions/2"))["version"] == 2
    doi = versions[0]["doi"]
    assert client.get(f"/discover/datasets/doi/{doi}").json() == versions[0]
    gone_doi = client.get("/discover/datasets/150").json()["doi"]
    by_dois = client.get("/discover/datasets/doi", params={"doi": [doi, "10.26275/none", gone_doi]}).json()
    assert by_dois["published"] == {doi: versions[0]}
    assert list(by_dois["unpublished"]) == [gone_doi] and by_dois["unpublished"][gone_doi]["version"] == 2


@pytest.mark.parametrize("path, body", [("/discover/datasets/5", "5"), ("/discover/datasets/5/versions", "5"),
                                        ("/discover/datasets/292/versions/9", "292"),
                                        ("/discover/datasets/292/versions/9/files/browse", "292"),
                                        ("/discover/datasets/292/versions/9/metadata", "292")])
def test_not_found(client: httpx.Client, validate, path, body) -> None:
    response = client.get(path)
    assert response.status_code == 404 and validate(response) == body


@pytest.mark.parametrize("path, version", [("/discover/datasets/150", 2), ("/discover/datasets/150/versions/2", 2),
                                           ("/discover/datasets/150/versions/1", 1),
                                           ("/discover/datasets/150/versions/1/files?path=files/README.md", 1)])
def test_tombstone_is_410(client: httpx.Client, validate, path, version) -> None:
    response = client.get(path)
    assert response.status_code == 410
    tombstone = validate(response) if "files" not in path else response.json()
    assert (tombstone["status"], tombstone["id"], tombstone["version"]) == ("UNPUBLISHED", 150, version)
    assert set(tombstone) == {"id", "version", "name", "tags", "status", "doi", "updatedAt"}


def test_unpublished_dataset_lists_its_versions(client: httpx.Client, validate) -> None:
    versions = validate(client.get("/discover/datasets/150/versions"))
    assert [(v["version"], v["status"]) for v in versions] == [(2, "UNPUBLISHED"), (1, "UNPUBLISHED")]
    listed = client.get("/discover/datasets", params={"limit": 1000}).json()["datasets"]
    assert 150 not in {d["id"] for d in listed}


@pytest.mark.parametrize("path", ["/discover/datasets/150/versions/2/metadata",
                                  "/discover/datasets/150/versions/1/download"])
def test_raw_routes_answer_410_without_a_body(client: httpx.Client, path) -> None:
    response = client.get(path)
    assert (response.status_code, response.content) == (410, b"")


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/discover/datasets/150/versions/2/files/browse", None),
    ("GET", "/discover/datasets/150/versions/2/dois", None),
    ("GET", "/discover/datasets?datasetType=experiment", None),
    ("POST", "/discover/datasets/5/versions/1/files/download-manifest", {"paths": ["files"]}),
    ("POST", "/discover/datasets/90/versions/7/files/download-manifest", {"paths": ["files"]}),
    ("POST", "/discover/datasets/150/versions/2/files/download-manifest", {"paths": ["files"]}),
])
def test_cases_the_handlers_do_not_catch_are_plain_500(client: httpx.Client, method, path, body) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/plain")
    assert response.text == "There was an internal server error."


@pytest.mark.parametrize("path", ["/files/browse", "/files?path=manifest.json", "/metadata"])
def test_embargoed_files_are_401(client: httpx.Client, path) -> None:
    response = client.get(f"/discover/datasets/275/versions/1{path}")
    assert response.status_code == 401 and response.json() == "Dataset is under embargo"


def test_browse(client: httpx.Client, sample, validate) -> None:
    body = validate(client.get("/discover/datasets/90/versions/1/files/browse", params={"limit": 2}))
    assert body == sample("discover-browse_dataset-90_v1_limit-2.json")
    files = validate(client.get("/discover/datasets/90/versions/1/files/browse",
                                params={"path": "/files/primary/sub-1/sam-1/"}))["files"]
    assert files and all(f["sha256"] is None and f["s3Version"] is None and f["createdAt"] for f in files)
    assert files[0]["path"] == "files/primary/sub-1/sam-1/" + files[0]["name"]  # joinPath(path, name)
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
    assert node["sha256"] is None and node["s3Version"] is None and node["createdAt"]
    five = client.get("/discover/datasets/396/versions/3/files",
                      params={"path": "s3://prd-sparc-discover50-use1/396/files/primary/sub-11352/"
                                      "map-client-workflow.proj"}).json()
    assert five["path"] == "files/primary/sub-11352/map-client-workflow.proj" and five["s3Version"]
    assert five["createdAt"] and len(five["sha256"]) == 64  # 5.0 nodes carry the stored sha256
    five_browse = client.get("/discover/datasets/396/versions/3/files/browse",
                             params={"path": "files/primary/sub-11352"}).json()["files"]
    assert all(f["s3Version"] and f["sha256"] and f["createdAt"] for f in five_browse if f["type"] == "File")
    missing = client.get("/discover/datasets/90/versions/1/files", params={"path": "no/such.txt"})
    assert missing.status_code == 404 and missing.json() == "no/such.txt"
    no_version = client.get("/discover/datasets/90/versions/4/files", params={"path": "x"})
    assert no_version.status_code == 404 and no_version.json() == "4"  # NoDatasetVersion → the version
    no_path = client.get("/discover/datasets/90/versions/1/files")
    assert (no_path.status_code, no_path.text) == (404, "Request is missing required query parameter 'path'")


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
    assert [t["tag"] for t in tags] == sorted(t["tag"] for t in tags)  # by name
    names = {t["tag"] for t in tags}
    assert "retracted" not in names  # 150 is unpublished
    embargoed_only = set(client.get("/discover/datasets/275").json()["tags"]) - {
        t for d in client.get("/discover/datasets", params={"embargo": "false", "limit": 1000}).json()["datasets"]
        for t in d["tags"]}
    assert embargoed_only and not embargoed_only & names  # 275 has no PUBLISH_SUCCEEDED version
    vagus = next(t["count"] for t in tags if t["tag"] == "vagus nerve")
    assert vagus == sum("vagus nerve" in d["tags"] for d in client.get(
        "/discover/datasets", params={"embargo": "false", "limit": 1000}).json()["datasets"])


def test_records_are_indexed_for_the_latest_version_only(client: httpx.Client) -> None:
    records = client.get("/discover/search/records", params={"datasetId": 396, "limit": 100}).json()["records"]
    assert records and {r["version"] for r in records} == {3}


@pytest.mark.parametrize("params, expect", [
    ({"fileType": "jpg"}, {"JPEG"}),  # AUTO: one edit for 3-5 characters
    ({"fileType": "jpeg"}, {"JPEG"}),
    ({"fileType": "JSON"}, {"Json"}),
    ({"fileType": "tiff"}, {"TIFF"}),
    ({"fileType": "ts"}, set()),  # 1-2 characters: exact only
])
def test_file_type_is_fuzzy_like_elasticsearch_auto(client: httpx.Client, validate, params, expect) -> None:
    body = validate(client.get("/discover/search/files", params={**params, "limit": 50}))
    assert {f["fileType"] for f in body["files"]} == expect
    assert (body["totalCount"] > 0) == bool(expect)


def test_query_is_fuzzy_on_file_name_terms(client: httpx.Client) -> None:
    exact = client.get("/discover/search/files", params={"query": "manifest", "datasetId": 90}).json()
    typo = client.get("/discover/search/files", params={"query": "manifst", "datasetId": 90}).json()
    assert typo == {**exact, "files": exact["files"]} and exact["totalCount"] == 2
    two_edits = client.get("/discover/search/files", params={"query": "workfolw", "datasetId": 396}).json()
    assert any("workflow" in f["name"] for f in two_edits["files"])  # 8 characters: two edits
    prefix = client.get("/discover/search/files", params={"query": "anifest", "datasetId": 90}).json()
    assert prefix["totalCount"] == 0  # prefix_length 2: the first two characters must match
    assert client.get("/discover/search/files", params={"query": ""}).json()["totalCount"] == 0


def test_download_manifest(client: httpx.Client, sample, validate) -> None:
    response = client.post("/discover/datasets/90/versions/1/files/download-manifest",
                           json={"paths": ["metadata/records"]})
    body = validate(response)
    expected = sample("discover-download-manifest_dataset-90_v1_metadata-records.json")
    assert body["header"] == expected["header"]
    assert [(d["fileName"], d["path"], d["size"]) for d in body["data"]] == \
        [(d["fileName"], d["path"], d["size"]) for d in expected["data"]]
    assert all(d["url"].startswith(str(client.base_url)) for d in body["data"])
    assert all(set(d) == {"fileName", "path", "url", "size"} for d in body["data"])  # never a sha256
    five = client.post("/discover/datasets/396/versions/3/files/download-manifest",
                       json={"paths": ["files/primary"]}).json()
    assert five["data"] and all("sha256" not in d and "versionId=" in d["url"] for d in five["data"])
    manifest = "/discover/datasets/90/versions/1/files/download-manifest"
    rooted = client.post(manifest, json={"paths": ["metadata/records/award.csv"], "rootPath": "metadata"}).json()
    assert rooted["data"][0]["path"] == ["records"]
    # the rootPath check is a plain string prefix, its removal goes by whole segments
    partial = client.post(manifest, json={"paths": ["metadata/records/award.csv"], "rootPath": "meta"}).json()
    assert partial["data"][0]["path"] == ["metadata", "records"]
    slashed = client.post(manifest, json={"paths": ["/metadata/records/award.csv"], "rootPath": "/metadata"}).json()
    assert slashed["data"][0]["path"] == ["metadata", "records"]  # "".split → ["", "metadata"]
    bad = client.post(manifest, json={"paths": ["/metadata/records/award.csv"], "rootPath": "metadata"})
    assert bad.status_code == 400 and bad.json() == "if root path is specified, all paths must begin with root path"
    none = client.post(manifest, json={"paths": ["x"]})
    assert none.json() == {"header": {"count": 0, "size": 0}, "data": []}


def test_download_manifest_body_errors_are_akka_rejections(client: httpx.Client) -> None:
    manifest = "/discover/datasets/90/versions/1/files/download-manifest"
    malformed = client.post(manifest, content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.text.startswith("The request content was malformed:")
    assert malformed.headers["content-type"].startswith("text/plain")
    wrong_type = client.post(manifest, content=b'{"paths": []}', headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and wrong_type.headers["content-type"].startswith("text/plain")
    assert client.post(manifest, json={"paths": "files"}).status_code == 400
    assert client.post(manifest, json=[1, 2]).status_code == 400
    deep = b"[" * 200_000 + b"]" * 200_000
    nested = client.post(manifest, content=deep, headers={"content-type": "application/json"})
    assert nested.status_code == 400 and nested.text.startswith("The request content was malformed:")
    embargoed = client.post("/discover/datasets/275/versions/1/files/download-manifest", json={"paths": [""]})
    assert (embargoed.status_code, embargoed.json()) == (401, "Dataset is under embargo")


def test_search_total_count_saturates(client: httpx.Client, validate) -> None:
    assert client.get("/discover/datasets/318").json()["fileCount"] > 10_000
    body = validate(client.get("/discover/search/files", params={"datasetId": 318, "limit": 1}))
    assert body["totalCount"] == 10_000


@pytest.mark.parametrize("path", ["/discover/search/datasets", "/discover/search/files",
                                  "/discover/search/records"])
def test_search_result_window(client: httpx.Client, path) -> None:
    assert client.get(path, params={"offset": 9990, "limit": 10}).status_code == 200
    assert client.get(path, params={"offset": 0, "limit": 10_000}).status_code == 200
    for params in ({"offset": 9991, "limit": 10}, {"offset": 0, "limit": 10_001}, {"offset": 20_000},
                   {"offset": 2147483646}, {"offset": 2147483647, "limit": 2147483647}):
        response = client.get(path, params=params)
        assert response.status_code == 500 and response.headers["content-type"].startswith("text/plain")
        assert response.text == "There was an internal server error."
    assert client.get("/discover/datasets", params={"offset": 9991, "limit": 10}).status_code == 200
    huge = client.get("/discover/datasets", params={"offset": 2147483646, "limit": 2147483647})
    assert huge.status_code == 200 and huge.json()["datasets"] == []


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


@pytest.mark.parametrize("path", ["/discover/datasets/99999999999999999999",
                                  "/discover/datasets/2147483648/versions",
                                  "/discover/datasets/90/versions/99999999999999999999999/files/browse",
                                  "/discover/datasets/-1", "/discover/datasets/%C3%A9"])
def test_ids_beyond_int32_do_not_match_a_route(client: httpx.Client, path) -> None:
    """akka's IntNumber matcher refuses them, so no route matches: 404 text, never a crash."""
    response = client.get(path)
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/plain")


def test_ids_with_leading_zeros_match(client: httpx.Client) -> None:
    assert client.get("/discover/datasets/0090").json()["id"] == 90


@pytest.mark.parametrize("params", [
    {"limit": "9" * 5000}, {"limit": "١٢"[:0] + "1e3"}, {"offset": "0x10"}, {"limit": " 5"},
    {"datasetId": "٣"}, {"organizationId": "2147483648"},
])
def test_malformed_numbers_are_400_text(client: httpx.Client, params) -> None:
    response = client.get("/discover/search/files", params=params)
    if "datasetId" in params:  # Java's parseInt reads Unicode digits
        assert response.status_code == 200
        return
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/plain")
    assert len(response.text) < 1000


@pytest.mark.parametrize("params", [
    {"query": "x" * 60_000}, {"query": "é" * 5000 + "\u0000\ud7ff"}, {"tags": ["a"] * 500},
    {"organization": "\u202e" * 100}, {"fileType": "%" * 2000},
])
def test_huge_and_odd_query_strings(client: httpx.Client, params) -> None:
    for path in ("/discover/search/files", "/discover/search/datasets", "/discover/datasets"):
        assert client.get(path, params=params).status_code == 200


def test_request_line_beyond_the_server_limit_is_refused_not_crashed(sandbox_url: str) -> None:
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(sandbox_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"GET /discover/search/files?query=" + b"x" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status = sock.recv(64).split(b" ")[1]
    assert status.startswith(b"4") or status == b"200"


def test_bad_boolean_is_400_text(client: httpx.Client) -> None:
    response = client.get("/discover/search/datasets", params={"embargo": "\x00"})
    assert response.status_code == 400 and response.text.endswith("is not a valid Boolean value")


def test_accepts_akka_boolean_spellings(client: httpx.Client) -> None:
    yes = client.get("/discover/datasets", params={"embargo": "YES", "limit": 100}).json()
    assert yes["datasets"] and all(d["embargo"] for d in yes["datasets"])
    assert client.get("/discover/datasets", params={"embargo": "0"}).status_code == 200


@pytest.mark.parametrize("body, count", [
    (b'{"paths": ["\\ud800"]}', 0),  # Java sends a lone surrogate as "?"
    (b'{"paths": ["metadata/records/award.csv"], "rootPath": "\\udfff"}', None),
    (b'{"paths": ["metadata//records"]}', None),  # an empty ltree label: uncaught
    (b'{"paths": ["metadata"], "rootPath": 1e999}', "400"),
    (b'{"paths": [' + b'"x",' * 20_000 + b'"metadata"]}', 9),
])
def test_hostile_manifest_bodies(client: httpx.Client, body: bytes, count) -> None:
    response = client.post("/discover/datasets/90/versions/1/files/download-manifest", content=body,
                           headers={"content-type": "application/json"})
    if count is None:
        assert response.status_code in (400, 500) and response.headers["content-type"].startswith(
            ("application/json", "text/plain"))
        assert response.status_code == 400 or response.text == "There was an internal server error."
    elif count == "400":
        assert response.status_code == 400
    else:
        assert response.status_code == 200 and response.json()["header"]["count"] == count
