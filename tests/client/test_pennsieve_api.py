"""Every public method of client.pennsieve over real HTTP, with bad inputs and their errors."""

from __future__ import annotations

import hashlib
import logging
import time
import zipfile
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.client.errors import (
    ArgumentError,
    AuthenticationError,
    GoneError,
    InvalidRequestError,
    NotFoundError,
    SparcError,
)
from sparc.sandbox.process import SandboxProcess


def test_list_filenames_derives_paths(client: SparcClient) -> None:
    names = client.pennsieve.list_filenames(dataset_id=90, query="manifest", file_type="json")
    assert sorted(names) == ["manifest.json", "revisions/1/manifest.json"]


def test_get_dataset_and_versions(client: SparcClient) -> None:
    dataset = client.pennsieve.get_dataset(90)
    assert dataset["id"] == 90 and dataset["version"] >= 1
    assert client.pennsieve.get_dataset(90, version=1)["version"] == 1
    versions = client.pennsieve.list_versions(90)
    assert [v["version"] for v in versions] and all(v["id"] == 90 for v in versions)


def test_a_dataset_with_several_versions(client: SparcClient) -> None:
    multi = next(d for d in client.pennsieve.iter_datasets()
                 if len(client.pennsieve.list_versions(d["id"])) > 1)
    versions = sorted(v["version"] for v in client.pennsieve.list_versions(multi["id"]))
    assert versions[-1] == multi["version"] and len(versions) >= 2
    old = client.pennsieve.browse(multi["id"], version=versions[0])
    assert old and all(n["datasetVersion"] == versions[0] for n in old)


def test_unknown_dataset_is_not_found(client: SparcClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.pennsieve.get_dataset(987654)
    assert info.value.status == 404 and info.value.server_message == "987654"
    assert "987654" in str(info.value)
    with pytest.raises(NotFoundError):
        client.pennsieve.get_dataset(90, version=999)


def test_unpublished_dataset_is_gone_with_tombstone(client: SparcClient,
                                                   tombstoned_id: int) -> None:
    gone_id = tombstoned_id
    with pytest.raises(GoneError) as info:
        client.pennsieve.get_dataset(gone_id)
    assert info.value.tombstone["status"] == "UNPUBLISHED"
    assert info.value.tombstone["id"] == gone_id


def test_embargoed_files_need_access(client: SparcClient) -> None:
    assert client.pennsieve.get_dataset(275)["embargo"] is True
    with pytest.raises(AuthenticationError) as info:
        client.pennsieve.browse(275)
    assert info.value.status == 401
    embargoed = client.pennsieve.list_datasets(embargo=True, limit=50)["datasets"]
    assert embargoed and all(d["embargo"] for d in embargoed)


def test_browse_one_level_directories_first(client: SparcClient) -> None:
    nodes = client.pennsieve.browse(90, version=1)
    kinds = [n["type"] for n in nodes]
    assert kinds == sorted(kinds)  # "Directory" < "File"
    dirs = [n["name"] for n in nodes if n["type"] == "Directory"]
    assert dirs == sorted(dirs) and {"files", "metadata"} <= set(dirs)
    assert len(nodes) == 6
    records = client.pennsieve.browse(90, path="metadata/records")
    assert {n["name"] for n in records} >= {"researcher.csv", "award.csv"}
    with pytest.raises(NotFoundError, match="not a folder"):
        client.pennsieve.browse(90, path="no/such/folder")
    with pytest.raises(NotFoundError, match="is a file"):
        client.pennsieve.browse(90, path="metadata/records/award.csv")


def test_walk_lists_every_file_below(client: SparcClient) -> None:
    files = list(client.pennsieve.walk(90, path="metadata/records"))
    assert len(files) == 8 and all(f["type"] == "File" for f in files)
    assert all(f["path"].startswith("metadata/records/") for f in files)
    with pytest.raises(NotFoundError, match="not a folder"):
        list(client.pennsieve.walk(90, path="no/such/folder"))


def test_walk_deep_tree_pages_through_everything(client: SparcClient) -> None:
    deep = max(client.pennsieve.iter_datasets(), key=lambda d: d["fileCount"])
    count = sum(1 for _ in client.pennsieve.walk(deep["id"]))
    assert count >= 10_000
    assert count == len(client.pennsieve.get_metadata(deep["id"])["files"])


def test_iterators_cover_every_page(client: SparcClient) -> None:
    total = client.pennsieve.list_datasets(limit=1)["totalCount"]
    ids = [d["id"] for d in client.pennsieve.iter_datasets(page_size=7)]
    assert len(ids) == total == len(set(ids)) >= 25
    records = list(client.pennsieve.iter_records(model="researcher", page_size=50))
    assert len(records) == client.pennsieve.list_records(model="researcher")["totalCount"]
    hits = list(client.pennsieve.iter_files(dataset_id=90, query="csv", page_size=3))
    assert hits and all(h["datasetId"] == 90 for h in hits)


def test_filters_reach_the_server(client: SparcClient) -> None:
    sparc = client.pennsieve.list_datasets(organization="SPARC", limit=100)["datasets"]
    assert sparc and all(d["organizationName"] == "SPARC Consortium" for d in sparc)
    by_id = client.pennsieve.list_datasets(organization_id=629, limit=100)["datasets"]
    assert by_id and all(d["organizationId"] == 629 for d in by_id)
    tagged = client.pennsieve.list_datasets(tags=["cancer"], limit=100)["datasets"]
    assert tagged and all("cancer" in d["tags"] for d in tagged)
    by_name = client.pennsieve.list_datasets(order_by="name", order_direction="asc", limit=100)
    names = [d["name"] for d in by_name["datasets"]]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    assert client.pennsieve.list_tags()


@pytest.mark.parametrize("call", [
    lambda p: p.list_datasets(limit=-1),
    lambda p: p.list_datasets(offset="x"),
    lambda p: p.list_files(dataset_id="ninety"),
    lambda p: p.get_dataset(90, version=0),
    lambda p: p.browse(90, version=1, page_size=0),
    lambda p: list(p.iter_datasets(page_size=0)),
])
def test_bad_arguments_fail_before_the_network(client: SparcClient, sandbox: SandboxProcess,
                                               call) -> None:  # type: ignore[no-untyped-def]
    sandbox.reset_stats()
    with pytest.raises(ArgumentError):
        call(client.pennsieve)
    assert sandbox.stats()["requests_total"] == 0


def test_bad_values_are_rejected_by_the_server(client: SparcClient) -> None:
    """list_datasets checks orderBy itself (ArgumentError); the server's 400 still maps."""
    with pytest.raises(InvalidRequestError) as info:
        client.pennsieve.get("/discover/search/datasets", params={"orderBy": "colour"})
    assert info.value.status == 400 and info.value.server_message


def test_generic_verbs(client: SparcClient) -> None:
    assert client.pennsieve.get("/discover/datasets/90")["id"] == 90
    assert client.pennsieve.get(f"{client.pennsieve.host}/discover/datasets/90")["id"] == 90
    manifest = client.pennsieve.post(
        "https://api.pennsieve.io/discover/datasets/90/versions/1/files/download-manifest",
        json={"paths": ["metadata/records"]})
    assert manifest["header"]["count"] == 8
    with pytest.raises(NotFoundError):
        client.pennsieve.get("/discover/no-such-route")
    with pytest.raises(SparcError):
        client.pennsieve.delete("/discover/datasets/90")


def test_connect_and_info(client: SparcClient) -> None:
    assert client.connect() is True
    assert client.pennsieve.host in client.pennsieve.info()


def test_resolve_url_repoints_only_production(client: SparcClient) -> None:
    p = client.pennsieve
    for production in ("https://api.pennsieve.io/discover/tags",
                       "https://api.pennsieve.io:443/discover/tags",
                       "HTTPS://API.PENNSIEVE.IO/discover/tags"):
        assert p.resolve_url(production) == f"{p.host}/discover/tags"
    assert p.resolve_url("discover/tags") == f"{p.host}/discover/tags"
    assert p.resolve_url("https://api.pennsieve.io") == p.host
    assert p.resolve_url("https://api.example.org/x") == "https://api.example.org/x"
    assert p.resolve_url("https://api.pennsieve.io.evil.org/x") == \
        "https://api.pennsieve.io.evil.org/x"


def test_put_reaches_the_server(client: SparcClient) -> None:
    with pytest.raises(SparcError) as info:  # Discover is read-only: the server refuses PUT
        client.pennsieve.put("/discover/datasets/90", json={"name": "x"})
    assert info.value.status == 405  # type: ignore[attr-defined]


def test_small_pages_give_the_same_listings(client: SparcClient) -> None:
    p = client.pennsieve
    assert p.browse(90, 1, "metadata/records", page_size=3) == p.browse(90, 1, "metadata/records")
    small = [f["path"] for f in p.walk(90, 1, "metadata", page_size=2)]
    assert small == [f["path"] for f in p.walk(90, 1, "metadata")] and len(small) > 2


def test_search_window_is_reported(client: SparcClient,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sparc.client")
    hits = sum(1 for _ in client.pennsieve.iter_files(dataset_id=318, page_size=1000))
    assert hits == 10_000
    assert "walk()" in caplog.text


def test_publishing_50_layout_end_to_end(client: SparcClient, tmp_path: Path) -> None:
    hits = client.pennsieve.list_files(dataset_id=396, query="map-client-workflow", limit=3)
    assert hits and all("/396/files/" in h["uri"] for h in hits)
    paths = client.pennsieve.list_filenames(dataset_id=396, query="map-client-workflow", limit=3)
    assert all(path.startswith("files/") for path in paths)
    node = client.pennsieve.get_file(396, paths[0], version=hits[0]["datasetVersion"])
    saved = client.pennsieve.download_file(hits[0], output_name=tmp_path)
    assert saved.stat().st_size == node["size"]
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == node["sha256"]
    archive = client.pennsieve.download_file(hits[:2], output_name=tmp_path / "two.zip")
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(paths[:2])


def test_parallel_walk_keeps_the_sequential_order(client: SparcClient,
                                                  sandbox: SandboxProcess) -> None:
    sequential = [f["path"] for f in client.pennsieve.walk(318, max_workers=1)]
    parallel = [f["path"] for f in client.pennsieve.walk(318, max_workers=8)]
    assert parallel == sequential and len(parallel) >= 10_000
    sandbox.reset_stats()
    first = next(iter(client.pennsieve.walk(318)))
    assert first["type"] == "File"
    time.sleep(0.3)  # an abandoned walk stops fetching
    assert sandbox.stats()["requests_total"] < 100


def test_publishing_50_versions_share_keys(client: SparcClient, tmp_path: Path) -> None:
    """Older 5.0 versions are served by S3 object version under the same key."""
    p = client.pennsieve
    assert [v["version"] for v in p.list_versions(396)] == [3, 2, 1]  # newest first
    by_version = {v: {n["path"]: n for n in p.walk(396, v)} for v in (1, 2, 3)}
    changed = [path for path, node in by_version[2].items()
               if path in by_version[3] and node["sha256"] != by_version[3][path]["sha256"]
               and path != "manifest.json"]
    assert changed, "396 v2 should rewrite a file that v3 also has"
    path = changed[0]
    saved = {v: p.download(396, path, tmp_path / f"v{v}", version=v)[0] for v in (2, 3)}
    for v, file in saved.items():
        assert hashlib.sha256(file.read_bytes()).hexdigest() == by_version[v][path]["sha256"]
    assert saved[2].read_bytes() != saved[3].read_bytes()
    same = next(k for k, n in by_version[1].items() if k != "manifest.json"
                and by_version[3].get(k, {}).get("s3Version") == n["s3Version"])
    assert by_version[1][same]["sha256"] == by_version[3][same]["sha256"]
