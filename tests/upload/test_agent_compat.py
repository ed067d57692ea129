"""The tutorial's "Uploading files" cells (nih-sparc/sparc.client docs/tutorial.ipynb), written for
pennsieve 7.x and its Agent, run unchanged against the sandbox with no Agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparc.client import SparcClient
from sparc.client.errors import ArgumentError, NotFoundError


def test_tutorial_upload_cells_as_written(ws: SparcClient, dataset: dict[str, Any],
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    name = dataset["content"]["name"]
    (tmp_path / "manifest.json").write_text('{"files": []}')
    client = ws
    # --- the notebook's cells -------------------------------------------------------------
    p = client.pennsieve.connect()
    assert capsys.readouterr().out == "Please set the dataset with use_dataset([name])\n"
    dataset_list = p.get_datasets()
    dataset_reply = p.use_dataset(name)
    created = p.manifest.create("manifest.json")
    uploaded = p.manifest.upload()
    # --- what the Agent's replies showed ----------------------------------------------------
    assert dataset_list[name] == dataset["content"]["id"]
    assert dataset_reply.dataset_id == dataset["content"]["id"]
    assert created.manifest_id == 1
    assert repr(created) == 'manifest_id: 1\nmessage: "Successfully indexed 1 files."'
    assert uploaded.status == "Upload initiated."
    assert uploaded.result.ok and uploaded.result.uploaded == [str(tmp_path / "manifest.json")]
    names = [pk["content"]["name"] for pk in client.pennsieve.list_packages(name)]
    assert names == ["manifest.json"]


def test_manifest_add_list_and_background_upload(ws: SparcClient, dataset: dict[str, Any],
                                                 tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("1")
    more = tmp_path / "more"
    (more / "sub").mkdir(parents=True)
    (more / "a.csv").write_text("x,y\n1,2\n")
    (more / "sub" / "b.txt").write_text("b")
    p = ws.pennsieve.connect()
    with pytest.raises(ArgumentError, match="use_dataset"):
        p.manifest.create(str(tmp_path / "one.txt"))
    with pytest.raises(NotFoundError):
        p.use_dataset("no such dataset anywhere")
    p.use_dataset(dataset["content"]["id"])  # a node id works too
    assert p.manifest.create(str(tmp_path / "one.txt")).manifest_id == 1
    added = p.manifest.add(str(more), target_base_path="raw")
    assert added.status == "Successfully indexed 2 files."
    listed = p.manifest.list_files()
    assert [(f.id, f.target_path, f.status) for f in listed.file] == [
        (1, "one.txt", "LOCAL"), (2, "raw/a.csv", "LOCAL"), (3, "raw/sub/b.txt", "LOCAL")]
    manifests = p.manifest.list_manifests()
    assert [(m.id, m.dataset_id, m.status) for m in manifests] == [
        (1, dataset["content"]["id"], "Initiated")]
    assert p.manifest.upload(wait=False, progress=False).status == "Upload initiated."
    result = p.manifest.wait(timeout=120)
    assert result.ok and len(result.uploaded) == 3
    assert [f.status for f in p.manifest.list_files().file] == ["VERIFIED"] * 3
    assert p.list_manifests()[0].status == "Completed"
    assert p.list_manifests()[0].node_id == result.manifest_id
    kinds = {pk["content"]["name"]: pk["content"]["packageType"]
             for pk in ws.pennsieve.list_packages(dataset["content"]["id"])}
    assert kinds == {"one.txt": "Text", "raw": "Collection", "a.csv": "CSV", "sub": "Collection",
                     "b.txt": "Text"}
    # the object is also the service: Discover and the generic verbs still work
    assert p.list_datasets(limit=1)["datasets"]
    assert p.get("/user")["id"].startswith("N:user:")


def test_a_pennsieve_notebook_changes_only_its_import(ws: SparcClient, dataset: dict[str, Any],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from sparc.client.services.pennsieve.agent import Pennsieve  # was: from pennsieve import ...

    (tmp_path / "a.txt").write_text("a")
    p = Pennsieve()
    assert capsys.readouterr().out == "Please set the dataset with use_dataset([name])\n"
    p.use_dataset(dataset["content"]["name"])
    p.manifest.create(str(tmp_path / "a.txt"), target_base_path="x")
    assert p.manifest.upload(progress=False).result.ok
    assert p.manifest.list_files().file[0].target_path == "x/a.txt"
    assert Pennsieve(connect=False).user is not None
    p.close()


def test_manifest_remove_file_and_delete(ws: SparcClient, dataset: dict[str, Any],
                                         tmp_path: Path) -> None:
    """pennsieve 7.x's remove_file(file_id, manifest_id) and delete(manifest_id), locally."""
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / "m" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "m" / name).write_text(name)
    p = ws.pennsieve.connect()
    p.use_dataset(dataset["content"]["id"])
    p.manifest.create(str(tmp_path / "m"))
    assert p.manifest.remove_file(2).status == "Removed 1 files."
    assert [f.target_path for f in p.manifest.list_files().file] == ["a.txt", "c.txt"]
    for bad in (0, 3, "x", [1, 1], []):
        with pytest.raises(ArgumentError, match="file_id"):
            p.manifest.remove_file(bad)
    assert p.manifest.add(str(tmp_path / "m" / "b.txt"), target_base_path="again").status \
        == "Successfully indexed 1 files."
    p.manifest.create(str(tmp_path / "m" / "a.txt"))  # manifest 2
    assert p.manifest.delete(1).status == "Manifest deleted."
    assert [m.id for m in p.manifest.list_manifests()] == [2]
    with pytest.raises(ArgumentError, match=r"one of \[2\]"):
        p.manifest.list_files(1)
    reply = p.manifest.upload(progress=False)  # the current manifest: 2
    assert reply.result.ok and reply.result.uploaded == [str(tmp_path / "m" / "a.txt")]
    p.manifest.delete(2)
    assert p.manifest.list_manifests() == []
    assert p.manifest.add(str(tmp_path / "m" / "c.txt")).manifest_id == 3  # a new one


def test_switching_to_a_missing_profile_keeps_the_chosen_dataset(ws: SparcClient,
                                                                 dataset: dict[str, Any]) -> None:
    from sparc.client.errors import SparcError
    from sparc.client.services.pennsieve.agent import Pennsieve

    p = Pennsieve()
    p.use_dataset(dataset["content"]["name"])
    chosen = p.dataset
    with pytest.raises(SparcError):
        p.switch("no-such-profile-anywhere")
    assert p.dataset == chosen  # a failed switch changes nothing
    p.close()
