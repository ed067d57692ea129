"""The upload service and its S3 storage, end to end with boto3: manifests, storage credentials
scoped to the manifest's key prefix, PutObject and multipart uploads with SHA-256 checksums,
finalize checks per file, status paging, packages, read-back."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from workspace_helpers import Signed, b64sha256, owner_s3, s3_client

from sparc.sandbox.process import SandboxProcess

MiB = 2**20


@pytest.fixture
def ws(sandbox: SandboxProcess) -> Signed:
    return Signed.sign_in(sandbox.url)


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox for tests that expire every storage credential or delay imports."""
    with SandboxProcess(tmp_path_factory.mktemp("ws-upload"), "--time-scale", "0") as sb:
        yield sb


def _error(info: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = info.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_whole_protocol_with_put_object(ws: Signed) -> None:
    ds = ws.create_dataset()
    created = ws.post("/upload/manifest", {"dataset_id": ds}, params={"dataset_id": ds}).json()
    # SyncFiles' nil slices: null when nothing was registered
    assert (created["nr_files_updated"], created["updated_files"], created["failed_files"]) == (0, None, None)
    manifest = created["manifest_node_id"]
    uuid.UUID(manifest)
    data = {"x.txt": b"hello sandbox", "a/b/y.csv": b"1,2\n3,4\n"}
    ids = {p: str(uuid.uuid4()) for p in data}
    reply = ws.register(ds, manifest, [(p.rpartition("/")[0], p.rpartition("/")[2], u) for p, u in ids.items()])
    assert reply["manifest_node_id"] == manifest and reply["nr_files_updated"] == 2
    assert {f["upload_id"]: f["status"] for f in reply["updated_files"]} == {u: 1 for u in ids.values()}

    creds = ws.credentials(ds, manifest)
    intid = ws.get(f"/datasets/{ds}").json()["content"]["intId"]
    assert creds["keyPrefix"] == f"O367/D{intid}/{manifest}"
    assert creds["region"] == "us-east-1" and creds["bucket"]
    expiry = datetime.strptime(creds["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert 3500 < expiry - time.time() <= 3600

    s3 = ws.s3(creds)
    for path, body in data.items():
        put = s3.put_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{ids[path]}", Body=body,
                            ChecksumAlgorithm="SHA256")
        assert put["ChecksumSHA256"] == b64sha256(body)
    # files under the manifest are not packages until finalized
    assert ws.packages(ds) == []
    fin = ws.finalize(ds, manifest, [{"uploadId": ids[p], "size": len(d), "sha256": b64sha256(d)}
                                     for p, d in data.items()])
    assert fin.json() == {"results": [{"uploadId": ids[p], "status": "finalized"} for p in data]}

    status = ws.get("/upload/manifest/status", params={"manifest_id": manifest, "status": "Finalized",
                                                        "verify": "true"}).json()
    assert status["manifest_id"] == manifest and status["verified"] is True
    assert sorted(status["files"]) == sorted(ids.values()) and status["continuation_token"] == ""
    verified = ws.get("/upload/manifest/files", params={"manifest_id": manifest}).json()
    assert {f["status"] for f in verified["files"]} == {"Verified"}

    packages = {p["content"]["name"]: p for p in ws.packages(ds)}
    assert set(packages) == {"x.txt", "a", "b", "y.csv"}
    assert packages["x.txt"]["content"]["nodeId"] == f"N:package:{ids['x.txt']}"
    assert packages["y.csv"]["content"]["packageType"] == "CSV"
    assert packages["a"]["content"]["packageType"] == "Collection"
    assert packages["y.csv"]["content"]["parentId"] == packages["b"]["content"]["id"]
    assert packages["b"]["content"]["parentId"] == packages["a"]["content"]["id"]

    owner = owner_s3(ws.base)
    for path, body in data.items():
        got = owner.get_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{ids[path]}")
        assert got["Body"].read() == body
    manifests = ws.get("/upload/manifest", params={"dataset_id": ds}).json()["manifests"]
    assert [(m["id"], m["status"], m["dataset_node_id"]) for m in manifests] == [(manifest, "Completed", ds)]


def test_multipart_upload_with_sha256_parts(ws: Signed) -> None:
    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    upload_id = str(uuid.uuid4())
    ws.register(ds, manifest, [("big", "data.bin", upload_id)])
    creds = ws.credentials(ds, manifest)
    s3, key = ws.s3(creds), f"{creds['keyPrefix']}/{upload_id}"
    data = os.urandom(11 * MiB + 123)
    chunks = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    mpu = s3.create_multipart_upload(Bucket=creds["bucket"], Key=key, ChecksumAlgorithm="SHA256")
    assert mpu["ChecksumAlgorithm"] == "SHA256"
    parts = []
    for n, chunk in enumerate(chunks, 1):
        part = s3.upload_part(Bucket=creds["bucket"], Key=key, UploadId=mpu["UploadId"], PartNumber=n,
                              Body=chunk, ChecksumAlgorithm="SHA256")
        assert part["ChecksumSHA256"] == b64sha256(chunk)
        parts.append({"PartNumber": n, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]})
    listed = s3.list_parts(Bucket=creds["bucket"], Key=key, UploadId=mpu["UploadId"])
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    # the complete request must name every part's checksum (the upload was created with SHA256)
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=creds["bucket"], Key=key, UploadId=mpu["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
    assert _error(info) == (400, "InvalidRequest")
    done = s3.complete_multipart_upload(Bucket=creds["bucket"], Key=key, UploadId=mpu["UploadId"],
                                        MultipartUpload={"Parts": parts})
    composite = base64.b64encode(hashlib.sha256(
        b"".join(hashlib.sha256(c).digest() for c in chunks)).digest()).decode() + f"-{len(chunks)}"
    assert done["ChecksumSHA256"] == composite and done["ChecksumType"] == "COMPOSITE"
    # the full-object SHA-256 is not what S3 stored: finalize says so
    assert ws.finalize(ds, manifest, [{"uploadId": upload_id, "size": len(data), "sha256": b64sha256(data)}]
                       ).json()["results"][0]["error"] == "sha256 mismatch"
    ok = ws.finalize(ds, manifest, [{"uploadId": upload_id, "size": len(data), "sha256": composite}])
    assert ok.json()["results"] == [{"uploadId": upload_id, "status": "finalized"}]
    owner = owner_s3(ws.base)
    head = owner.head_object(Bucket=creds["bucket"], Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == composite and head["ContentLength"] == len(data)
    assert owner.get_object(Bucket=creds["bucket"], Key=key)["Body"].read() == data
    assert [p["content"]["name"] for p in ws.packages(ds)] == ["big", "data.bin"]


def test_managed_transfer_upload_file(ws: Signed, tmp_path: Path) -> None:
    """boto3's own multipart transfer (upload_file) with SHA-256 works against the storage."""
    from boto3.s3.transfer import TransferConfig

    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    upload_id = str(uuid.uuid4())
    ws.register(ds, manifest, [("", "managed.bin", upload_id)])
    creds = ws.credentials(ds, manifest)
    data = os.urandom(10 * MiB + 7)
    source = tmp_path / "managed.bin"
    source.write_bytes(data)
    key = f"{creds['keyPrefix']}/{upload_id}"
    ws.s3(creds).upload_file(str(source), creds["bucket"], key, ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                             Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    sha = owner_s3(ws.base).head_object(Bucket=creds["bucket"], Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"]
    assert sha.endswith("-3")
    assert ws.finalize(ds, manifest, [{"uploadId": upload_id, "size": len(data), "sha256": sha}]
                       ).json()["results"][0]["status"] == "finalized"


def test_credentials_are_scoped_to_the_manifest_prefix(ws: Signed) -> None:
    ds = ws.create_dataset()
    manifest, other = ws.manifest(ds), ws.manifest(ds)
    creds, other_creds = ws.credentials(ds, manifest), ws.credentials(ds, other)
    s3, bucket = ws.s3(creds), creds["bucket"]
    inside = f"{creds['keyPrefix']}/{uuid.uuid4()}"
    s3.put_object(Bucket=bucket, Key=inside, Body=b"ok", ChecksumAlgorithm="SHA256")
    refused = [
        lambda: s3.put_object(Bucket=bucket, Key=f"{other_creds['keyPrefix']}/{uuid.uuid4()}", Body=b"x"),
        lambda: s3.put_object(Bucket=bucket, Key=f"{creds['keyPrefix']}x/{uuid.uuid4()}", Body=b"x"),
        lambda: s3.put_object(Bucket=bucket, Key="elsewhere.txt", Body=b"x"),
        lambda: s3.get_object(Bucket=bucket, Key=inside),
        lambda: s3.delete_object(Bucket=bucket, Key=inside),
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix=creds["keyPrefix"]),
        lambda: s3.copy_object(Bucket=bucket, Key=f"{creds['keyPrefix']}/copy",
                               CopySource={"Bucket": bucket, "Key": inside}),
        lambda: s3.put_object(Bucket="another-bucket", Key=inside, Body=b"x"),
        lambda: s3.list_buckets(),
    ]
    for call in refused:
        with pytest.raises(ClientError) as info:
            call()
        assert _error(info) == (403, "AccessDenied")
    # what the session policy allows besides PutObject
    s3.put_object_tagging(Bucket=bucket, Key=inside, Tagging={"TagSet": [{"Key": "OrgId", "Value": "367"}]})
    mpu = s3.create_multipart_upload(Bucket=bucket, Key=f"{creds['keyPrefix']}/{uuid.uuid4()}")
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=creds["keyPrefix"])["Uploads"]
    assert [u["UploadId"] for u in uploads] == [mpu["UploadId"]]
    s3.abort_multipart_upload(Bucket=bucket, Key=mpu["Key"], UploadId=mpu["UploadId"])


def test_wrong_secret_unknown_key_and_wrong_token(ws: Signed) -> None:
    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    creds = ws.credentials(ds, manifest)
    key = f"{creds['keyPrefix']}/{uuid.uuid4()}"
    cases = [
        (s3_client(ws.base, creds["accessKeyId"], "wrong" + creds["secretAccessKey"], creds["sessionToken"]),
         (403, "SignatureDoesNotMatch")),
        (s3_client(ws.base, "ASIAUNKNOWNKEY000000", creds["secretAccessKey"], creds["sessionToken"]),
         (403, "InvalidAccessKeyId")),
        (s3_client(ws.base, creds["accessKeyId"], creds["secretAccessKey"], "other-token"),
         (400, "InvalidToken")),
        (s3_client(ws.base, "sandbox-key", "not-the-secret"), (403, "SignatureDoesNotMatch")),
    ]
    for client, expected in cases:
        with pytest.raises(ClientError) as info:
            client.put_object(Bucket=creds["bucket"], Key=key, Body=b"x")
        assert _error(info) == expected
    anonymous = httpx.put(f"{ws.base}/s3/{creds['bucket']}/{key}", content=b"x")
    assert anonymous.status_code == 403 and b"<Code>AccessDenied</Code>" in anonymous.content


def test_checksums_are_verified_as_s3_does(ws: Signed) -> None:
    ds = ws.create_dataset()
    creds = ws.credentials(ds, ws.manifest(ds))
    s3 = ws.s3(creds)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{uuid.uuid4()}", Body=b"abc",
                      ChecksumSHA256=b64sha256(b"abd"))
    assert _error(info) == (400, "BadDigest")


def test_expired_storage_credentials(own_sandbox: SandboxProcess) -> None:
    ws = Signed.sign_in(own_sandbox.url)
    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    creds = ws.credentials(ds, manifest)
    s3 = ws.s3(creds)
    key = f"{creds['keyPrefix']}/{uuid.uuid4()}"
    s3.put_object(Bucket=creds["bucket"], Key=key, Body=b"before")
    assert httpx.post(own_sandbox.url + "/_workspace/expire-storage-credentials").json()["expired"] >= 1
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=creds["bucket"], Key=key, Body=b"after")
    assert _error(info) == (400, "ExpiredToken")
    # fresh credentials work again; a short lifetime expires by the clock
    ws.s3(ws.credentials(ds, manifest)).put_object(Bucket=creds["bucket"], Key=key, Body=b"again")
    httpx.put(own_sandbox.url + "/_workspace/lifetimes", json={"storage_credentials": 1})
    try:
        short = ws.credentials(ds, manifest)
        expiry = datetime.strptime(short["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        assert expiry - time.time() <= 1
        time.sleep(1.2)
        with pytest.raises(ClientError) as info:
            ws.s3(short).put_object(Bucket=creds["bucket"], Key=key, Body=b"late")
        assert _error(info) == (400, "ExpiredToken")
    finally:
        httpx.put(own_sandbox.url + "/_workspace/lifetimes", json={"storage_credentials": 3600})


def test_finalize_reports_each_failure(ws: Signed) -> None:
    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    good, changed, short, missing, stranger = (str(uuid.uuid4()) for _ in range(5))
    ws.register(ds, manifest, [("", f"{n}.txt", u) for n, u in
                               (("good", good), ("changed", changed), ("short", short), ("missing", missing))])
    creds = ws.credentials(ds, manifest)
    s3 = ws.s3(creds)
    registered = b"content when registered"
    for upload_id, body in ((good, b"good"), (changed, b"content changed before upload"), (short, b"12345")):
        s3.put_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{upload_id}", Body=body,
                      ChecksumAlgorithm="SHA256")
    reply = ws.finalize(ds, manifest, [
        {"uploadId": good, "size": 4, "sha256": b64sha256(b"good")},
        {"uploadId": changed, "size": len(b"content changed before upload"), "sha256": b64sha256(registered)},
        {"uploadId": short, "size": 6, "sha256": b64sha256(b"12345")},
        {"uploadId": missing, "size": 1, "sha256": b64sha256(b"x")},
        {"uploadId": stranger, "size": 1, "sha256": b64sha256(b"x")},
    ])
    assert reply.status_code == 200
    assert reply.json()["results"] == [
        {"uploadId": good, "status": "finalized"},
        {"uploadId": changed, "status": "failed", "error": "sha256 mismatch"},
        {"uploadId": short, "status": "failed", "error": "size mismatch"},
        {"uploadId": missing, "status": "failed", "error": "object not found"},
        {"uploadId": stranger, "status": "failed", "error": "uploadId not found in manifest"},
    ]
    # only the finalized file became a package; finalize again is idempotent
    assert [p["content"]["nodeId"] for p in ws.packages(ds)] == [f"N:package:{good}"]
    again = ws.finalize(ds, manifest, [{"uploadId": good, "size": 4, "sha256": b64sha256(b"good")}])
    assert again.json()["results"] == [{"uploadId": good, "status": "finalized"}]
    assert len(ws.packages(ds)) == 1
    statuses = {f["upload_id"]: f["status"] for f in
                ws.get("/upload/manifest/files", params={"manifest_id": manifest, "limit": 10}).json()["files"]}
    assert statuses == {good: "Finalized", changed: "Registered", short: "Registered", missing: "Registered"}
    # registering again (getWriteRequest): a finalized file answers Verified, a new file sent as
    # Registered is unknown to the server and not added, one sent as Local is registered
    newcomer, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    sync = ws.post("/upload/manifest", {"id": manifest, "dataset_id": ds, "files": [
        {"upload_id": good, "target_path": "", "target_name": "good.txt", "status": 0},
        {"upload_id": unknown, "target_path": "", "target_name": "u.txt", "status": 1},
        {"upload_id": newcomer, "target_path": "", "target_name": "n.txt", "status": 0},
        {"upload_id": changed, "target_path": "", "target_name": "changed.txt", "status": 5}]},
        params={"dataset_id": ds}).json()
    assert sync["updated_files"] == [{"upload_id": good, "status": 4}, {"upload_id": unknown, "status": 7},
                                     {"upload_id": newcomer, "status": 1}, {"upload_id": changed, "status": 1}]
    assert sync["nr_files_updated"] == 3
    statuses = {f["upload_id"]: f["status"] for f in
                ws.get("/upload/manifest/files", params={"manifest_id": manifest, "limit": 10}).json()["files"]}
    assert statuses[good] == "Verified" and statuses[newcomer] == "Registered" and unknown not in statuses


def test_finalize_validates_the_batch(ws: Signed) -> None:
    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    file = {"uploadId": str(uuid.uuid4()), "size": 1, "sha256": "x"}
    cases = [
        ({"manifestNodeId": "nope", "files": [file]}, "manifestNodeId must be a UUID"),
        ({"manifestNodeId": manifest, "files": []}, "files is required and must be non-empty"),
        ({"manifestNodeId": manifest, "files": [file] * 251}, "batch_too_large: max 250 files per request"),
        ({"manifestNodeId": manifest, "files": [file], "onConflict": "overwrite"},
         "onConflict must be one of: keepBoth, replace"),
        ({"manifestNodeId": manifest, "files": [{**file, "uploadId": "x"}]}, "files[0].uploadId must be a UUID"),
        ({"manifestNodeId": manifest, "files": [{**file, "size": -1}]}, "files[0].size must be non-negative"),
        ({"manifestNodeId": manifest, "files": [{**file, "sha256": ""}]}, "files[0].sha256 is required"),
    ]
    for body, message in cases:
        r = ws.post("/upload/manifest/files/finalize", body, params={"dataset_id": ds})
        assert (r.status_code, r.json()) == (400, {"Code": 400, "Message": message})
    r = ws.post("/upload/manifest/files/finalize", {"manifestNodeId": str(uuid.uuid4()), "files": [file]},
                params={"dataset_id": ds})
    assert r.status_code == 404
    other = ws.create_dataset()
    r = ws.post("/upload/manifest/files/finalize", {"manifestNodeId": manifest, "files": [file]},
                params={"dataset_id": other})
    assert r.status_code == 403
    r = ws.post("/upload/manifest/storage-credentials", {"manifestNodeId": manifest}, params={"dataset_id": other})
    assert (r.status_code, r.json()["Message"]) == (403, "Manifest does not belong to this dataset")


def test_status_and_file_listings_page_with_continuation_tokens(ws: Signed) -> None:
    ds = ws.create_dataset()
    manifest = ws.manifest(ds)
    ids = sorted(str(uuid.uuid4()) for _ in range(1001))
    for start in range(0, len(ids), 250):
        ws.register(ds, manifest, [("deep/er", f"f{i}.txt", u) for i, u in enumerate(ids[start:start + 250], start)])
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"manifest_id": manifest, "status": "Registered"}
        if token:
            params["continuation_token"] = token
        page = ws.get("/upload/manifest/status", params=params).json()
        seen += page["files"] or []
        pages += 1
        token = page["continuation_token"]
        if not token:
            break
    assert pages == 3 and seen == ids
    first = ws.get("/upload/manifest/files", params={"manifest_id": manifest, "limit": 2}).json()
    assert [f["upload_id"] for f in first["files"]] == ids[:2] and first["continuation_token"] == ids[1]
    assert first["files"][0]["file_path"] == "deep/er" and first["files"][0]["status"] == "Registered"
    second = ws.get("/upload/manifest/files", params={"manifest_id": manifest, "limit": 2,
                                                       "continuation_token": first["continuation_token"]}).json()
    assert [f["upload_id"] for f in second["files"]] == ids[2:4]
    # removing a registered file (status 6) drops it from the manifest
    removed = ws.post("/upload/manifest", {"id": manifest, "dataset_id": ds, "files": [
        {"upload_id": ids[0], "target_path": "", "target_name": "f0.txt", "status": 6}]}, params={"dataset_id": ds})
    # a delete request counts as an update; nr_files_removed is never incremented (SyncFiles)
    assert removed.json()["nr_files_updated"] == 1 and removed.json()["nr_files_removed"] == 0
    assert removed.json()["updated_files"] == [{"upload_id": ids[0], "status": 6}]
    page = ws.get("/upload/manifest/status", params={"manifest_id": manifest, "status": "Registered"}).json()
    assert page["files"][0] == ids[1]
    r = ws.get("/upload/manifest/status", params={"manifest_id": manifest, "status": "Registered", "verify": "true"})
    assert (r.status_code, r.json()["Message"]) == (
        400, "Error: Status parameter needs to be set to 'Finalized' when verifying upload.")
    r = ws.get("/upload/manifest/status", params={"manifest_id": manifest})
    assert (r.status_code, r.json()) == (400, {"Code": 400, "Message": "Error: status not specified"})
    # a page that ends the listing exactly still carries a token (DynamoDB's LastEvaluatedKey)
    full = ws.get("/upload/manifest/files", params={"manifest_id": manifest, "limit": 1000}).json()
    assert len(full["files"]) == 1000 and full["continuation_token"] == ids[-1]
    after = ws.get("/upload/manifest/files", params={"manifest_id": manifest, "limit": 1000,
                                                      "continuation_token": ids[-1]}).json()
    assert (after["files"], after["continuation_token"]) == (None, "")


def test_name_conflicts_keep_both_or_replace(ws: Signed) -> None:
    ds = ws.create_dataset()
    ws.upload(ds, {"notes.txt": b"one"})
    ws.upload(ds, {"notes.txt": b"two"})
    ws.upload(ds, {"notes.txt": b"three"})
    assert sorted(p["content"]["name"] for p in ws.packages(ds)) == ["notes (1).txt", "notes (2).txt", "notes.txt"]
    _, ids, _ = ws.upload(ds, {"notes.txt": b"four"}, on_conflict="replace")
    listed = {p["content"]["name"]: p["content"]["nodeId"] for p in ws.packages(ds)}
    assert listed["notes.txt"] == f"N:package:{ids['notes.txt']}" and len(listed) == 3


def test_delayed_import_is_seen_by_polling_status(own_sandbox: SandboxProcess) -> None:
    base = own_sandbox.url
    # 3 s: the first status call comes before the import even on a loaded machine
    httpx.put(base + "/_workspace/lifetimes", json={"import_delay": 3.0})
    try:
        ws = Signed.sign_in(base)
        ds = ws.create_dataset()
        manifest, ids, reply = ws.upload(ds, {"later.txt": b"eventually"})
        assert reply["results"][0]["status"] == "finalized"  # queued, not imported yet
        status = {"manifest_id": manifest, "status": "Finalized"}
        assert ws.get("/upload/manifest/status", params=status).json()["files"] is None  # Go's nil slice
        deadline = time.monotonic() + 30
        while not ws.get("/upload/manifest/status", params=status).json()["files"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert [p["content"]["nodeId"] for p in ws.packages(ds)] == [f"N:package:{ids['later.txt']}"]
    finally:
        httpx.put(base + "/_workspace/lifetimes", json={"import_delay": 0})


@pytest.mark.parametrize(("route", "shape"), [
    ("/upload/manifest", lambda r: r.json() == {"message": "Service Unavailable"}),
    ("/datasets", lambda r: r.json()["code"] == 503 and "message" in r.json()),
    ("/cognito", lambda r: r.json()["__type"] == "InternalErrorException"),
    ("/s3/*", lambda r: b"<Error><Code>SlowDown</Code>" in r.content),
])
def test_injected_faults_answer_in_each_service_shape(sandbox: SandboxProcess, route: str, shape: object) -> None:
    sandbox.set_faults([{"route": route, "kind": "status", "status": 503, "count": 1}])
    path = route.replace("*", "bucket/key")
    r = httpx.post(sandbox.url + path, content=b"{}") if route == "/cognito" else httpx.get(sandbox.url + path)
    assert r.status_code == 503
    assert callable(shape) and shape(r)


def test_multipart_part_checksums_are_enforced(ws: Signed) -> None:
    ds = ws.create_dataset()
    creds = ws.credentials(ds, ws.manifest(ds))
    s3, bucket = ws.s3(creds), creds["bucket"]
    key = f"{creds['keyPrefix']}/{uuid.uuid4()}"
    mpu = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    # a part of a SHA-256 upload sent without its checksum (boto3 would add CRC32 by default)
    plain = s3_client(ws.base, creds["accessKeyId"], creds["secretAccessKey"], creds["sessionToken"])
    plain.meta.config.request_checksum_calculation = "when_required"
    with pytest.raises(ClientError) as info:
        plain.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=b"x" * 10)
    assert _error(info) == (400, "InvalidRequest")
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=b"y" * 10,
                          ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": b64sha256(b"z" * 10)}]})
    assert _error(info) == (400, "InvalidPart")


def test_signatures_as_s3_checks_them(ws: Signed, monkeypatch: pytest.MonkeyPatch) -> None:
    """Presigned URLs of the owner's keys work and break when edited; a body that does not match its
    signed ``x-amz-content-sha256`` is refused."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    ds = ws.create_dataset()
    manifest, ids, _ = ws.upload(ds, {"p.txt": b"presigned"})
    creds = ws.credentials(ds, manifest)
    owner = owner_s3(ws.base)
    key = f"{creds['keyPrefix']}/{ids['p.txt']}"
    url = owner.generate_presigned_url("get_object", Params={"Bucket": creds["bucket"], "Key": key}, ExpiresIn=60)
    assert httpx.get(url).content == b"presigned"
    tampered = httpx.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"))
    assert tampered.status_code == 403 and b"SignatureDoesNotMatch" in tampered.content
    short = owner.generate_presigned_url("get_object", Params={"Bucket": creds["bucket"], "Key": key}, ExpiresIn=1)
    time.sleep(2.1)
    late = httpx.get(short)
    assert late.status_code == 403 and b"<Message>Request has expired</Message>" in late.content

    target = f"{ws.base}/s3/{creds['bucket']}/{creds['keyPrefix']}/{uuid.uuid4()}"
    request = AWSRequest(method="PUT", url=target, data=b"signed body",
                         headers={"x-amz-content-sha256": hashlib.sha256(b"signed body").hexdigest()})
    S3SigV4Auth(Credentials("sandbox-key", "sandbox-secret"), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert httpx.put(target, content=b"signed body", headers=headers).status_code == 200
    r = httpx.put(target, content=b"other body!", headers=headers)
    assert r.status_code == 400 and b"<Code>XAmzContentSHA256Mismatch</Code>" in r.content
    skewed = AWSRequest(method="PUT", url=target, data=b"x", headers={"x-amz-content-sha256": hashlib.sha256(b"x").hexdigest()})
    import botocore.auth

    now = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: now(*a, **k) - timedelta(minutes=30))
    S3SigV4Auth(Credentials("sandbox-key", "sandbox-secret"), "s3", "us-east-1").add_auth(skewed)
    monkeypatch.undo()
    r = httpx.put(target, content=b"x", headers=dict(skewed.headers.items()))
    assert r.status_code == 403 and b"<Code>RequestTimeTooSkewed</Code>" in r.content
    sigv2 = httpx.put(target, content=b"x", headers={"Authorization": "AWS sandbox-key:c2lnbmF0dXJl"})
    assert sigv2.status_code == 400 and b"<Code>InvalidRequest</Code>" in sigv2.content


@pytest.mark.parametrize("expires", ["%C2%B2", "9" * 5000, ""])
def test_a_malformed_presigned_expiry_is_an_s3_error_not_a_500(client: httpx.Client, expires: str) -> None:
    """``X-Amz-Expires`` of a superscript digit ("²".isdigit() is true, int() fails), of 5,000
    digits or empty: S3's XML error answer, never the server's 500."""
    query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAX%2F20261130%2Fus-east-1%2Fs3"
             f"%2Faws4_request&X-Amz-Date=20261130T000000Z&X-Amz-Expires={expires}"
             "&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "0" * 64)
    response = client.get(f"/s3/some-bucket/some/key?{query}")
    assert 400 <= response.status_code < 500, response.text
    assert response.text.startswith("<?xml") and "<Code>" in response.text
