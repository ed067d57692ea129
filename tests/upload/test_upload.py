"""Own datasets and agent-free uploads against the real sandbox: the manifest protocol end to end,
bytes read back from the sandbox's S3, resume after a kill, a changed file caught by finalize."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from upload_helpers import read_back, unique, write_tree

from sparc.client import SparcClient
from sparc.client.errors import ArgumentError, InvalidRequestError, NotFoundError
from sparc.client.services.pennsieve.upload import UploadResult, collect_files
from sparc.sandbox.process import SandboxProcess


def _names(client: SparcClient, dataset: Any) -> dict[str, str]:
    """{name: packageType} of every package of a dataset."""
    return {p["content"]["name"]: p["content"]["packageType"]
            for p in client.pennsieve.list_packages(dataset)}


def test_create_dataset_and_duplicate_name(ws: SparcClient) -> None:
    p = ws.pennsieve
    name = unique()
    created = p.create_dataset(name, description="about", tags=["a", "b"])
    content = created["content"]
    assert content["name"] == name and content["id"].startswith("N:dataset:")
    assert content["tags"] == ["a", "b"] and content["description"] == "about"
    with pytest.raises(InvalidRequestError, match="unique"):
        p.create_dataset(name)
    mine = {d["content"]["id"] for d in p.list_my_datasets()}
    assert content["id"] in mine
    for ref in (content["id"], content["intId"], str(content["intId"]), name):
        assert p.get_my_dataset(ref)["content"]["id"] == content["id"]
    with pytest.raises(NotFoundError, match="no dataset"):
        p.get_my_dataset(unique("missing"))
    with pytest.raises(ArgumentError):
        p.create_dataset("  ")


def test_upload_one_file_reads_back(ws: SparcClient, sandbox: SandboxProcess,
                                    dataset: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello sparc\n" * 100)
    node_id = dataset["content"]["id"]
    result = ws.pennsieve.upload(node_id, str(source), target_path="raw/day1", progress=False)
    assert isinstance(result, UploadResult)
    assert result.ok and result.uploaded == [str(source)] and result.bytes == 1200
    assert read_back(sandbox, ws, result) == {str(source): source.read_bytes()}
    packages = ws.pennsieve.list_packages(node_id)
    by_name = {p["content"]["name"]: p["content"] for p in packages}
    assert by_name["notes.txt"]["nodeId"] == f"N:package:{result.files[0].upload_id}"
    assert by_name["raw"]["packageType"] == by_name["day1"]["packageType"] == "Collection"
    assert by_name["notes.txt"]["parentId"] == by_name["day1"]["id"]
    assert [p["content"]["name"] for p in ws.pennsieve.list_packages(node_id, types=["Text"])] \
        == ["notes.txt"]
    deleted = ws.pennsieve.delete_package(by_name["notes.txt"]["nodeId"])
    assert deleted["success"] == [by_name["notes.txt"]["nodeId"]] and not deleted["failures"]
    assert sorted(_names(ws, node_id)) == ["day1", "raw"]


def test_folder_of_1000_small_files(ws: SparcClient, sandbox: SandboxProcess,
                                    dataset: dict[str, Any], tmp_path: Path) -> None:
    files = write_tree(tmp_path / "tree", 1000, size=100)
    sandbox.reset_stats()
    result = ws.pennsieve.upload(dataset["content"]["name"], [tmp_path / "tree"], jobs=8,
                                 progress=False)
    assert result.ok, result.failed
    assert len(result.uploaded) == 1000 and result.bytes == 100_000
    stats = sandbox.stats()["requests"]
    # registered and finalized in batches of at most 250
    assert stats.get("POST /upload/manifest/files/finalize", 0) >= 4
    assert 5 <= stats.get("POST /upload/manifest", 0) <= 6  # create + 4 batches
    stored = read_back(sandbox, ws, result)
    assert {Path(k).relative_to(tmp_path / "tree").as_posix(): v
            for k, v in stored.items()} == files
    packages = ws.pennsieve.list_packages(dataset["content"]["id"])  # > one page of 500
    kinds = [p["content"]["packageType"] for p in packages]
    assert len(kinds) - kinds.count("Collection") == 1000
    assert kinds.count("Collection") == 1 + 7 + 7 * 3  # tree, d0..d6, their e0..e2


def test_multipart_file_of_100_mib(ws: SparcClient, sandbox: SandboxProcess,
                                   dataset: dict[str, Any], tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    block = os.urandom(2**20)
    with big.open("wb") as handle:
        for i in range(100):
            handle.write(bytes([i]) + block[1:])
        handle.write(b"tail")
    result = ws.pennsieve.upload(dataset["content"]["id"], [big], jobs=4, progress=False)
    assert result.ok, result.failed
    assert result.files[0].part_size >= 8 * 2**20 and result.files[0].sha256.endswith("-7")
    stored = read_back(sandbox, ws, result)[str(big)]
    assert hashlib.sha256(stored).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_multipart_file_small_parts(ws: SparcClient, sandbox: SandboxProcess,
                                    dataset: dict[str, Any], tmp_path: Path) -> None:
    """The multipart path with the smallest allowed parts (8 MiB): 3 parts, sent in parallel."""
    big = tmp_path / "mid.bin"
    big.write_bytes(os.urandom(2 * 8 * 2**20 + 12345))
    result = ws.pennsieve.upload(dataset["content"]["id"], [big], jobs=3, progress=False,
                                 part_size=8 * 2**20)
    assert result.ok, result.failed
    assert result.files[0].sha256.endswith("-3")
    assert read_back(sandbox, ws, result)[str(big)] == big.read_bytes()


def test_conflicts_keep_both_or_replace(ws: SparcClient, dataset: dict[str, Any],
                                        tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("one")
    node_id = dataset["content"]["id"]
    p = ws.pennsieve
    assert p.upload(node_id, [source], progress=False).ok
    source.write_text("two")
    assert p.upload(node_id, [source], progress=False, resume=False).ok
    assert sorted(_names(ws, node_id)) == ["a (1).txt", "a.txt"]
    source.write_text("three")
    assert p.upload(node_id, [source], on_conflict="replace", progress=False, resume=False).ok
    assert sorted(_names(ws, node_id)) == ["a (1).txt", "a.txt"]


def test_rerun_skips_what_was_uploaded(ws: SparcClient, sandbox: SandboxProcess,
                                       dataset: dict[str, Any], tmp_path: Path) -> None:
    write_tree(tmp_path / "t", 20)
    node_id = dataset["content"]["id"]
    first = ws.pennsieve.upload(node_id, [tmp_path / "t"], progress=False)
    assert len(first.uploaded) == 20
    (tmp_path / "t" / "d0" / "e0" / "f0000.txt").write_text("changed, longer than before")
    sandbox.reset_stats()
    again = ws.pennsieve.upload(node_id, [tmp_path / "t"], progress=False)
    assert len(again.skipped) == 19 and len(again.uploaded) == 1
    assert again.manifest_id == first.manifest_id
    puts = {k: n for k, n in sandbox.stats()["requests"].items() if k.startswith("PUT /s3")}
    assert list(puts.values()) == [1], puts  # the changed file only
    records = list(Path(os.environ["SPARC_UPLOAD_STATE_DIR"]).glob("*.json"))
    assert len(records) == 1
    assert stat.S_IMODE(records[0].stat().st_mode) == 0o600  # private to the user
    assert stat.S_IMODE(records[0].parent.stat().st_mode) == 0o700


def test_rerun_finalizes_again_what_an_earlier_run_left_queued(
        ws: SparcClient, dataset: dict[str, Any], tmp_path: Path) -> None:
    """A file the record calls queued for import (finalizing) that the server never imported
    is finalized again, and sent again when its object is missing: no endless wait."""
    source = tmp_path / "a.txt"
    source.write_text("queued, then lost")
    node_id = dataset["content"]["id"]
    first = ws.pennsieve.upload(node_id, [source], progress=False)
    assert first.ok
    [path] = Path(os.environ["SPARC_UPLOAD_STATE_DIR"]).glob("*.json")
    record = json.loads(path.read_text())
    lost = str(uuid.uuid4())  # an upload id the server never saw
    record["files"][str(source)].update(upload_id=lost, status="finalizing")
    path.write_text(json.dumps(record))
    again = ws.pennsieve.upload(node_id, [source], progress=False, poll_timeout=20)
    assert again.ok and again.uploaded == [str(source)], again.failed
    assert again.manifest_id == first.manifest_id and again.files[0].upload_id == lost
    assert sorted(_names(ws, node_id)) == ["a (1).txt", "a.txt"]  # keepBoth: sent again


def test_import_is_awaited_by_polling_and_bounded(ws: SparcClient, sandbox: SandboxProcess,
                                                 dataset: dict[str, Any],
                                                 tmp_path: Path) -> None:
    """finalize only queues the import: upload() polls the manifest status (pausing between
    polls) until the file is imported; past poll_timeout the file is failed, not uploaded,
    and a rerun finds it imported."""
    source = tmp_path / "late.txt"
    source.write_text("imported later")
    node_id = dataset["content"]["id"]
    sandbox.get_json("/_workspace/lifetimes", "PUT", {"import_delay": 3.0})
    try:
        sandbox.reset_stats()
        result = ws.pennsieve.upload(node_id, [source], progress=False)
        assert result.ok and result.uploaded == [str(source)], result.failed
        polls = sandbox.stats()["requests"]["GET /upload/manifest/status"]
        assert 2 < polls < 100  # polled until imported, not in a busy loop
        sandbox.get_json("/_workspace/lifetimes", "PUT", {"import_delay": 8.0})
        other = tmp_path / "later.txt"
        other.write_text("imported after the client stopped waiting")
        cut = ws.pennsieve.upload(node_id, [other], progress=False, poll_timeout=0.5)
        assert cut.uploaded == [] and not cut.ok
        assert "not imported within" in cut.failed[str(other)]
        assert cut.files[0].status == "finalizing"
    finally:
        sandbox.get_json("/_workspace/lifetimes", "PUT", {"import_delay": 0})
    again = ws.pennsieve.upload(node_id, [other], progress=False)  # waits for that import
    assert again.ok and again.manifest_id == cut.manifest_id
    assert sorted(_names(ws, node_id)) == ["late.txt", "later.txt"]  # imported once each


def test_folders_yield_only_their_own_regular_files(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Links leading out of a named folder, link loops, FIFOs: never read, never uploaded."""
    outside = tmp_path / "secret.txt"
    outside.write_text("not named")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    (tree / "inner-link.txt").symlink_to(tree / "sub" / "b.txt")  # inside: followed
    (tree / "outer-link.txt").symlink_to(outside)
    (tree / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tree / "sub" / "loop").symlink_to(tree / "sub", target_is_directory=True)
    (tree / "dangling").symlink_to(tmp_path / "nothing")
    (tree / "self").symlink_to(tree / "self")
    os.mkfifo(tree / "pipe")
    found = {f"{folder}/{name}": source for source, folder, name in collect_files([tree])}
    assert sorted(found) == ["tree/a.txt", "tree/inner-link.txt", "tree/sub/b.txt"]
    said = caplog.text
    assert "outer-link.txt: a symbolic link to" in said and "loop: a symbolic link to a folder" \
        in said and "dangling: a broken symbolic link" in said
    with pytest.raises(ArgumentError, match="neither a file nor a folder"):
        collect_files([tree / "pipe"])
    with pytest.raises(ArgumentError, match=r"\.\."):
        collect_files([tree], target_path="raw/../../x")
    assert collect_files([tree / "a.txt"], target_path="/raw//./day1/")[0][1] == "raw/day1"


_KILLED_UPLOAD = """
import sys
from sparc.client import SparcClient
from sparc.client.services.pennsieve import upload as up
up.FINALIZE_EVERY = 0.0   # finalize as files arrive, so a kill finds some finalized
with SparcClient() as client:
    client.pennsieve.upload(sys.argv[1], [sys.argv[2]], jobs=2, progress=False)
"""


def test_killed_upload_resumes(ws: SparcClient, sandbox: SandboxProcess,
                               dataset: dict[str, Any], tmp_path: Path) -> None:
    files = write_tree(tmp_path / "k", 400, size=2000)
    node_id = dataset["content"]["id"]
    child = subprocess.Popen([sys.executable, "-c", _KILLED_UPLOAD, node_id, str(tmp_path / "k")],
                             env=dict(os.environ), stderr=subprocess.PIPE)
    records = Path(os.environ["SPARC_UPLOAD_STATE_DIR"])
    deadline = time.monotonic() + 120
    finalized = 0
    while time.monotonic() < deadline and child.poll() is None:
        for record in records.glob("*.json"):
            try:
                states = [f["status"] for f in json.loads(record.read_text())["files"].values()]
            except (OSError, ValueError, KeyError):
                continue
            finalized = states.count("finalizing")
        if finalized >= 50:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert 50 <= finalized < 400, "the upload ended before it could be killed midway"
    result = ws.pennsieve.upload(node_id, [tmp_path / "k"], jobs=2, progress=False)
    assert result.ok, result.failed
    assert len(result.skipped) >= 50 and len(result.skipped) + len(result.uploaded) == 400
    names = _names(ws, node_id)
    files_only = [n for n, kind in names.items() if kind != "Collection"]
    assert sorted(files_only) == sorted(Path(f).name for f in files)  # no "(1)" duplicates
    assert {Path(k).name: v for k, v in read_back(sandbox, ws, result).items()} == {
        Path(k).name: v for k, v in files.items() if str(tmp_path / "k" / k) in result.uploaded}


def test_file_changed_after_indexing_fails_at_finalize(ws: SparcClient, dataset: dict[str, Any],
                                                       tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    good, bad = tmp_path / "m" / "good.txt", tmp_path / "m" / "bad.txt"
    good.write_text("stays the same")
    bad.write_text("original bytes")
    p = ws.pennsieve.connect()
    p.use_dataset(dataset["content"]["name"])
    p.manifest.create(str(tmp_path / "m"))
    bad.write_text("edited! bytes!")  # same size, other content
    reply = p.manifest.upload(progress=False)
    result = reply.result
    assert result.uploaded == [str(good)]
    assert result.failed == {str(bad): "finalize refused it: sha256 mismatch"}
    assert not result.ok
    assert sorted(_names(ws, dataset["content"]["id"])) == ["good.txt"]


def test_bad_arguments_fail_before_any_request(ws: SparcClient, sandbox: SandboxProcess,
                                               tmp_path: Path) -> None:
    sandbox.reset_stats()
    p = ws.pennsieve
    with pytest.raises(ArgumentError, match="no such file"):
        p.upload("N:dataset:x", [tmp_path / "missing"])
    with pytest.raises(ArgumentError, match="on_conflict"):
        p.upload("N:dataset:x", [tmp_path], on_conflict="overwrite")
    with pytest.raises(ArgumentError, match="jobs"):
        p.upload("N:dataset:x", [tmp_path], jobs=0)
    with pytest.raises(ArgumentError, match=r"\.\."):
        p.upload("N:dataset:x", [tmp_path], target_path="../up")
    assert not sandbox.stats()["requests"].get("POST /upload/manifest")


def test_without_boto3_names_the_extra(sandbox: SandboxProcess, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['boto3'] = None\n"
            "from sparc.client import SparcClient\n"
            "from sparc.client.services.pennsieve.upload import UploadNotInstalledError\n"
            "try:\n"
            f"    SparcClient().pennsieve.upload('N:dataset:x', [{str(tmp_path)!r}])\n"
            "except UploadNotInstalledError as e:\n"
            "    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **sandbox.env}, timeout=60)
    assert "pip install 'sparc.client[upload]'" in done.stdout, done.stderr


_KILLED_MULTIPART = """
import sys
from sparc.client import SparcClient
with SparcClient() as client:
    client.pennsieve.upload(sys.argv[1], [sys.argv[2]], jobs=1, progress=False,
                            part_size=8 * 2**20)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_killed_multipart_upload_resumes_its_parts(ws: SparcClient, sandbox: SandboxProcess,
                                                   dataset: dict[str, Any], tmp_path: Path,
                                                   sig: signal.Signals) -> None:
    """Killed, or interrupted with Ctrl-C (the multipart upload is then not aborted), a rerun
    sends only the parts not stored yet."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 8 * 2**20 + 100))  # 9 parts of 8 MiB (the last: 100 B)
    node_id = dataset["content"]["id"]
    sandbox.reset_stats()
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MULTIPART, node_id, str(big)],
                             env=dict(os.environ))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if sandbox.stats()["bytes_received"] >= 4 * 8 * 2**20:
            break
        time.sleep(0.05)
    child.send_signal(sig)
    child.wait(60)
    first = sandbox.stats()["bytes_received"]
    assert 4 * 8 * 2**20 <= first < big.stat().st_size, "not killed midway"
    sandbox.reset_stats()
    result = ws.pennsieve.upload(node_id, [big], jobs=2, progress=False, part_size=8 * 2**20)
    assert result.ok, result.failed
    again = sandbox.stats()["bytes_received"]
    # the parts stored before the kill are not sent again (at most one was cut mid-way)
    assert again <= big.stat().st_size - first + 8 * 2**20 + 2**20
    assert read_back(sandbox, ws, result)[str(big)] == big.read_bytes()
    assert sorted(_names(ws, node_id)) == ["big.bin"]


def test_storage_secrets_and_tokens_stay_out_of_debug_logs(
        ws: SparcClient, dataset: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    (tmp_path / "x.txt").write_text("x")
    caplog.set_level(logging.DEBUG)
    engine = ws.pennsieve.upload_engine(dataset["content"]["id"], progress=False)
    from sparc.client.services.pennsieve.upload import collect_files, plan_files

    result = engine.run(plan_files(collect_files([tmp_path / "x.txt"])))
    assert result.ok
    _, creds = engine.storage.get()
    session = ws.pennsieve.auth.session
    assert session is not None
    assert "X-Amz-Security-Token" in caplog.text or "x-amz-security-token" in caplog.text
    for secret in (creds["sessionToken"], creds["secretAccessKey"], session.token):
        assert secret not in caplog.text
