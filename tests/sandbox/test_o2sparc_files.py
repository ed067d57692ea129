"""o²S²PARC files: chunked upload (links, S3 parts, complete/abort), legacy multipart, search, download."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import httpx
import pytest
from o2sparc_helpers import anonymous_fixture, api_fixture, auth_fixture, client_for, upload  # noqa: F401


def test_chunked_upload_then_get_download_search_delete(api: httpx.Client) -> None:
    data = b"0123456789" * 1000
    sha = hashlib.sha256(data).hexdigest()
    user_file = {"filename": "digits.txt", "filesize": len(data), "sha256_checksum": sha}
    links = api.post("/v0/files/content", json=user_file).json()
    schema = links["upload_schema"]
    assert schema["chunk_size"] == len(data) and len(schema["urls"]) == 1  # under 100 MiB: one PUT
    assert schema["links"] == {"abort_upload": f"/v0/files/{links['file_id']}:abort",
                               "complete_upload": f"/v0/files/{links['file_id']}:complete"}
    put = httpx.put(schema["urls"][0], content=data)  # presigned: no auth
    assert put.status_code == 200
    etag = put.headers["etag"]
    assert etag.startswith('"') and json.loads(etag) == hashlib.md5(data).hexdigest()
    done = api.post(schema["links"]["complete_upload"],
                    json={"client_file": user_file, "uploaded_parts": {"parts": [{"number": 1, "e_tag": json.loads(etag)}]}})
    file = done.json()
    assert file == {"id": links["file_id"], "filename": "digits.txt", "content_type": "text/plain",
                    "checksum": sha, "e_tag": hashlib.md5(data).hexdigest()}
    assert api.get(f"/v0/files/{file['id']}").json() == file
    assert file in api.get("/v0/files").json()

    content = api.get(f"/v0/files/{file['id']}/content")
    assert content.status_code == 307
    assert httpx.get(content.headers["location"]).content == data

    page = api.get("/v0/files:search", params={"sha256_checksum": sha}).json()
    assert page["items"] == [file] and page["total"] == 1 and page["links"]["next"] is None
    by_id = api.get("/v0/files:search", params={"file_id": file["id"]}).json()
    assert by_id["items"] == [file]

    gone = api.delete(f"/v0/files/{file['id']}")
    assert gone.status_code == 200 and gone.json() is None
    for path in (f"/v0/files/{file['id']}", f"/v0/files/{file['id']}/content"):
        r = api.get(path)
        assert r.status_code == 404
        assert r.json()["errors"] == [f"File with identifier {file['id']} not found"]
    assert api.delete(f"/v0/files/{file['id']}").status_code == 404
    assert api.get("/v0/files:search", params={"sha256_checksum": sha}).json()["total"] == 0


def test_each_upload_gets_a_new_id(api: httpx.Client) -> None:
    first, second = upload(api, b"same", "same.txt"), upload(api, b"same", "same.txt")
    assert first["id"] != second["id"] and first["checksum"] == second["checksum"]
    hits = api.get("/v0/files:search", params={"sha256_checksum": first["checksum"]}).json()["items"]
    assert {h["id"] for h in hits} >= {first["id"], second["id"]}


def test_search_answers_one_storage_page(api: httpx.Client) -> None:
    """As files.py: storage returns the page, ``total`` is its length, and an offset past it is 404."""
    data = uuid.uuid4().bytes
    ids = [upload(api, data, f"p{i}.bin")["id"] for i in range(3)]
    sha = hashlib.sha256(data).hexdigest()
    first = api.get("/v0/files:search", params={"sha256_checksum": sha, "limit": 2}).json()
    assert len(first["items"]) == first["total"] == 2 and first["links"]["next"] is None
    assert first["links"]["prev"] is None
    rest = api.get("/v0/files:search", params={"sha256_checksum": sha, "limit": 2, "offset": 1}).json()
    assert rest["total"] == 2 and rest["links"]["prev"] is not None
    assert {f["id"] for f in first["items"] + rest["items"]} == set(ids)
    everything = api.get("/v0/files:search", params={"sha256_checksum": sha}).json()
    assert everything["total"] == 3 and everything["links"]["next"] is None
    # offset 2 leaves one file on the page, and 2 > 1: the server's "not found" (files.py)
    r = api.get("/v0/files:search", params={"sha256_checksum": sha, "offset": 2})
    assert r.status_code == 404 and r.json()["errors"] == ["Not found in storage"]
    none = api.get("/v0/files:search", params={"sha256_checksum": "f" * 64}).json()
    assert none["items"] == [] and none["total"] == 0


@pytest.mark.parametrize("params, loc", [({"sha256_checksum": "abc"}, ["query", "sha256_checksum"]),
                                          ({"file_id": "x"}, ["query", "file_id"]),
                                          ({"limit": 51}, ["query", "limit"]),
                                          ({"limit": 0}, ["query", "limit"]),
                                          ({"offset": -1}, ["query", "offset"]),
                                          ({"limit": "ten"}, ["query", "limit"])])
def test_search_422(api: httpx.Client, params: dict[str, object], loc: list[str]) -> None:
    r = api.get("/v0/files:search", params=params)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == loc


def test_large_file_gets_multipart_links_then_abort(api: httpx.Client) -> None:
    size = 250 * 2**20
    user_file = {"filename": "big.bin", "filesize": size, "sha256_checksum": "a" * 64}
    links = api.post("/v0/files/content", json=user_file).json()
    schema = links["upload_schema"]
    assert schema["chunk_size"] == 10 * 2**20 and len(schema["urls"]) == 25
    assert all("uploadId=" in u and f"partNumber={i}" in u for i, u in enumerate(schema["urls"], 1))
    aborted = api.post(schema["links"]["abort_upload"], json={"client_file": user_file})
    assert aborted.status_code == 200 and aborted.json() is None
    r = httpx.put(schema["urls"][0], content=b"x")
    assert r.status_code == 404 and b"NoSuchUpload" in r.content


def test_complete_with_a_wrong_etag_or_missing_part_is_502(api: httpx.Client) -> None:
    """Storage refuses (S3 InvalidPart); the api-server maps any storage 4xx to 502."""
    data = b"hello"
    user_file = {"filename": "h.txt", "filesize": 5, "sha256_checksum": hashlib.sha256(data).hexdigest()}
    links = api.post("/v0/files/content", json=user_file).json()
    complete = links["upload_schema"]["links"]["complete_upload"]
    body = {"client_file": user_file, "uploaded_parts": {"parts": [{"number": 1, "e_tag": "0" * 32}]}}
    r = api.post(complete, json=body)  # nothing uploaded yet
    assert r.status_code == 502 and r.json()["errors"] == ["Received unexpected response from Storage"]
    etag = json.loads(httpx.put(links["upload_schema"]["urls"][0], content=data).headers["etag"])
    assert api.post(complete, json=body).status_code == 502  # wrong e_tag
    body["uploaded_parts"]["parts"][0]["e_tag"] = etag
    assert api.post(complete, json=body).json()["id"] == links["file_id"]


@pytest.mark.parametrize("body, loc", [
    ({"filesize": 1, "sha256_checksum": "0" * 64}, ["body", "filename"]),
    ({"filename": "a", "filesize": -1, "sha256_checksum": "0" * 64}, ["body", "filesize"]),
    ({"filename": "a", "filesize": 1, "sha256_checksum": "zz"}, ["body", "sha256_checksum"]),
])
def test_upload_links_422(api: httpx.Client, body: dict[str, object], loc: list[str]) -> None:
    r = api.post("/v0/files/content", json=body)
    assert r.status_code == 422 and loc in [e["loc"] for e in r.json()["errors"]]


def test_complete_and_abort_422_and_502(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    user_file = {"filename": "a", "filesize": 1, "sha256_checksum": "0" * 64}
    r = api.post(f"/v0/files/{missing}:complete", json={"client_file": user_file})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "uploaded_parts"]
    r = api.post(f"/v0/files/{missing}:complete",
                 json={"client_file": user_file, "uploaded_parts": {"parts": [{"number": 0, "e_tag": "x"}]}})
    assert r.status_code == 422
    r = api.post(f"/v0/files/{missing}:complete",
                 json={"client_file": user_file, "uploaded_parts": {"parts": [{"number": 1, "e_tag": "x"}]}})
    assert r.status_code == 502  # storage: no such upload
    assert api.post(f"/v0/files/{missing}:abort", json={}).status_code == 422
    assert api.post("/v0/files/nope:abort", json={"client_file": user_file}).status_code == 422


def test_presigned_urls_are_checked(api: httpx.Client) -> None:
    file = upload(api, b"secret bytes", "s.txt")
    url = api.get(f"/v0/files/{file['id']}/content").headers["location"]
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    r = httpx.get(tampered)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
    assert httpx.put(url, content=b"x").status_code == 403  # signed for GET only
    ok = httpx.get(url)
    assert ok.status_code == 200 and ok.content == b"secret bytes"
    assert 's.txt' in ok.headers["content-disposition"]


def test_a_changed_query_breaks_the_signature(api: httpx.Client) -> None:
    user_file = {"filename": "c.txt", "filesize": 4, "sha256_checksum": "0" * 64}
    url = api.post("/v0/files/content", json=user_file).json()["upload_schema"]["urls"][0]
    r = httpx.put(url + "&partNumber=2", content=b"abcd")
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content


def test_legacy_multipart_upload(api: httpx.Client) -> None:
    data = b"legacy upload \x00\xff"
    r = api.put("/v0/files/content", files={"file": ("legacy.bin", data, "application/octet-stream")})
    assert r.status_code == 200
    file = r.json()
    assert file["filename"] == "legacy.bin" and file["checksum"] == hashlib.sha256(data).hexdigest()
    assert file["e_tag"] == hashlib.md5(data).hexdigest()
    again = api.put("/v0/files/content", files={"file": ("legacy.bin", data)}).json()
    assert again["id"] != file["id"]
    location = api.get(f"/v0/files/{file['id']}/content").headers["location"]
    assert httpx.get(location).content == data


def test_legacy_upload_without_file_field_is_422(api: httpx.Client) -> None:
    r = api.put("/v0/files/content", files={"other": ("x.txt", b"x")})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "file"]
    assert api.put("/v0/files/content", content=b"raw").status_code == 422


def test_malformed_file_id_is_422(api: httpx.Client) -> None:
    for path in ("/v0/files/nope", "/v0/files/nope/content"):
        r = api.get(path)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["path", "file_id"]


def test_presigned_urls_expire(sandbox_factory) -> None:
    sb = sandbox_factory("--time-scale", "0", "--url-expiry", "1")
    with client_for(sb) as client:
        # the legacy upload: no presigned URL that could expire on a loaded machine before its PUT
        file = client.put("/v0/files/content", files={"file": ("e.txt", b"short-lived")}).json()
        url = client.get(f"/v0/files/{file['id']}/content").headers["location"]
        assert "X-Amz-Expires=1" in url
        time.sleep(2.1)  # past the URL's lifetime (not a timing assertion)
        r = httpx.get(url)
        assert r.status_code == 403 and b"Request has expired" in r.content
        fresh = client.get(f"/v0/files/{file['id']}/content").headers["location"]
        assert fresh != url  # signed again, with a new X-Amz-Date


def test_multipart_upload_joins_parts_in_number_order(api: httpx.Client) -> None:
    """101 MiB: eleven 10 MiB parts, PUT last-first and listed out of order; S3's multipart ETag."""
    data = bytes(range(256)) * (101 * 2**20 // 256)
    user_file = {"filename": "big.bin", "filesize": len(data), "sha256_checksum": hashlib.sha256(data).hexdigest()}
    schema = api.post("/v0/files/content", json=user_file).json()["upload_schema"]
    size = schema["chunk_size"]
    assert size == 10 * 2**20 and len(schema["urls"]) == 11
    parts, md5s = [], {}
    with httpx.Client(timeout=60) as s3:
        for number in range(11, 0, -1):
            chunk = data[(number - 1) * size:number * size]
            etag = json.loads(s3.put(schema["urls"][number - 1], content=chunk).headers["etag"])
            assert etag == hashlib.md5(chunk).hexdigest()
            parts.append({"number": number, "e_tag": etag})
            md5s[number] = etag
    file = api.post(schema["links"]["complete_upload"],
                    json={"client_file": user_file, "uploaded_parts": {"parts": parts}}).json()
    joined = hashlib.md5(b"".join(bytes.fromhex(md5s[n]) for n in range(1, 12))).hexdigest()
    assert file["e_tag"] == f"{joined}-11"
    with httpx.stream("GET", api.get(f"/v0/files/{file['id']}/content").headers["location"]) as r:
        digest = hashlib.sha256()
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == user_file["sha256_checksum"]
