"""The private API's datasets and packages: create, duplicate names, list, paginate, get, packages
with cursor paging, delete."""

from __future__ import annotations

import uuid

import pytest
from workspace_helpers import Signed

from sparc.sandbox.process import SandboxProcess


@pytest.fixture
def ws(sandbox: SandboxProcess) -> Signed:
    return Signed.sign_in(sandbox.url)


def test_create_answers_201_with_a_dataset_dto(ws: Signed) -> None:
    name = f"Dataset {uuid.uuid4().hex[:6]}"
    r = ws.post("/datasets", {"name": name, "description": "about it", "tags": ["a", "b"]})
    assert r.status_code == 201
    dto = r.json()
    content = dto["content"]
    assert content["id"].startswith("N:dataset:") and isinstance(content["intId"], int)
    assert (content["name"], content["description"], content["tags"]) == (name, "about it", ["a", "b"])
    assert content["packageType"] == "DataSet" and content["state"] == "READY"
    assert dto["organization"].startswith("N:organization:") and dto["owner"].startswith("N:user:")
    assert dto["children"] == [] and dto["storage"] == 0
    assert set(dto) >= {"collaboratorCounts", "status", "publication", "properties", "canPublish", "locked"}


def test_duplicate_and_empty_names_are_refused(ws: Signed) -> None:
    name = f"dup-{uuid.uuid4().hex[:6]}"
    assert ws.post("/datasets", {"name": name}).status_code == 201
    r = ws.post("/datasets", {"name": name})
    assert r.status_code == 400
    assert r.json() == {"type": "BadRequest", "message": "dataset name must be unique", "code": 400}
    assert ws.post("/datasets", {"name": "  "}).json()["message"] == "dataset name must not be empty"
    assert ws.post("/datasets", {"name": "x" * 256}).status_code == 400
    assert ws.post("/datasets", {"description": "no name"}).status_code == 400


def test_list_get_and_paginate(ws: Signed) -> None:
    tag = uuid.uuid4().hex[:6]
    made = [ws.create_dataset(f"{tag}-{i}") for i in range(3)]
    listed = ws.get("/datasets").json()
    assert isinstance(listed, list)
    by_id = {d["content"]["id"]: d for d in listed}
    assert set(made) <= set(by_id)
    one = by_id[made[1]]
    # by node id, with root-level children; an int id is not looked up (getByNodeId)
    got = ws.get(f"/datasets/{made[1]}").json()
    assert got["content"]["id"] == made[1] and got["children"] == []
    int_id = str(one["content"]["intId"])
    r = ws.get(f"/datasets/{int_id}")
    assert (r.status_code, r.json()) == (404, {"type": "NotFound", "message": f"{int_id} not found", "code": 404})
    page = ws.get("/datasets/paginated", params={"limit": 2, "offset": 0, "query": tag}).json()
    assert (page["limit"], page["offset"], page["totalCount"]) == (2, 0, 3)
    assert [d["content"]["name"] for d in page["datasets"]] == [f"{tag}-0", f"{tag}-1"]
    rest = ws.get("/datasets/paginated", params={"limit": 2, "offset": 2, "query": tag,
                                                 "orderDirection": "Desc"}).json()
    assert [d["content"]["name"] for d in rest["datasets"]] == [f"{tag}-0"]
    assert ws.get("/datasets/paginated", params={"orderBy": "Popularity"}).status_code == 400
    by_id = ws.get("/datasets/paginated", params={"orderBy": "IntId", "orderDirection": "Desc", "query": tag}).json()
    assert [d["content"]["id"] for d in by_id["datasets"]] == made[::-1]


def test_unknown_dataset_is_404(ws: Signed) -> None:
    assert ws.get(f"/datasets/N:dataset:{uuid.uuid4()}").status_code == 404
    assert ws.get("/datasets/999999/packages").status_code == 404
    assert ws.get(f"/datasets/N:dataset:{uuid.uuid4()}/packages").json()["type"] == "NotFound"


def test_packages_pages_follow_the_cursor(ws: Signed) -> None:
    ds = ws.create_dataset()
    files = {f"folder/f{i}.txt": f"file {i}".encode() for i in range(7)}
    ws.upload(ds, files)
    first = ws.get(f"/datasets/{ds}/packages", params={"pageSize": 3}).json()
    assert len(first["packages"]) == 3 and first["cursor"].startswith("package:")
    everything = ws.packages(ds, page_size=3)
    assert len(everything) == 8  # the folder and its 7 files, each once
    assert len({p["content"]["id"] for p in everything}) == 8
    folder = [p for p in everything if p["content"]["packageType"] == "Collection"]
    assert [f["content"]["name"] for f in folder] == ["folder"]
    assert folder[0]["content"]["nodeId"].startswith("N:collection:")
    names = sorted(p["content"]["name"] for p in everything if p["content"]["packageType"] != "Collection")
    assert names == sorted(f"f{i}.txt" for i in range(7))
    assert all(p["content"]["parentId"] == folder[0]["content"]["id"]
               for p in everything if p["content"]["packageType"] != "Collection")
    bad = ws.get(f"/datasets/{ds}/packages", params={"cursor": "nope"})
    assert (bad.status_code, bad.text) == (400, "Cursor format must be package:{integer}")
    bad = ws.get(f"/datasets/{ds}/packages", params={"pageSize": 1001})
    assert (bad.status_code, bad.text) == (400, "Invalid page size must be less than or equal to 1000")
    assert ws.get(f"/datasets/{ds}/packages", params={"types": "Spreadsheet"}).status_code == 400
    only = ws.get(f"/datasets/{ds}/packages", params={"types": "collection"}).json()["packages"]
    assert [p["content"]["name"] for p in only] == ["folder"]
    # the dataset's root children and storage follow its packages
    dto = ws.get(f"/datasets/{ds}").json()
    assert [c["content"]["name"] for c in dto["children"]] == ["folder"]
    # children carry the deprecated WrappedPackage content: node ids in id/datasetId
    child = dto["children"][0]["content"]
    assert (child["id"], child["datasetId"]) == (folder[0]["content"]["nodeId"], ds)
    assert child["intId"] == folder[0]["content"]["id"] and isinstance(child["datasetIntId"], int)
    assert dto["storage"] == sum(len(d) for d in files.values())


def test_deleted_packages_are_hidden(ws: Signed) -> None:
    ds = ws.create_dataset()
    _, ids, _ = ws.upload(ds, {"keep.txt": b"k", "drop/gone.txt": b"g"})
    folder = next(p for p in ws.packages(ds) if p["content"]["name"] == "drop")
    r = ws.post("/data/delete", {"things": [folder["content"]["nodeId"], "N:package:nope"]})
    assert r.status_code == 200
    assert r.json()["success"] == [folder["content"]["nodeId"]]
    assert [f["id"] for f in r.json()["failures"]] == ["N:package:nope"]
    assert [p["content"]["name"] for p in ws.packages(ds)] == ["keep.txt"]
