"""Generated file content: range consistency, and the catalogue's digests and S3 object fields."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from sparc.sandbox.catalogue import CATALOGUE_PATH
from sparc.sandbox.catalogue.content import (
    BLOCK_SIZE,
    Digests,
    digests,
    generated_digests,
    generated_sha256,
    iter_generated,
)
from sparc.sandbox.catalogue.storage import MULTIPART_THRESHOLD, SSE_KMS
from sparc.sandbox.zipstream import ZipEntry, stored_zip


@pytest.fixture(scope="module")
def catalogue() -> dict:
    return json.loads(gzip.decompress(CATALOGUE_PATH.read_bytes()))


def generated(catalogue: dict, min_size: int = 0, max_size: int = 2**62) -> list[dict]:
    return [f for d in catalogue["datasets"] for f in d["files"]
            if "seed" in f and min_size <= f["size"] <= max_size]


def test_ranges_are_consistent() -> None:
    whole = b"".join(iter_generated(42, 0, 3 * BLOCK_SIZE + 17))
    for start, end in [(0, 1), (5, BLOCK_SIZE + 5), (BLOCK_SIZE - 3, 2 * BLOCK_SIZE + 9), (len(whole) - 4, len(whole))]:
        assert b"".join(iter_generated(42, start, end)) == whole[start:end]
    assert whole[:BLOCK_SIZE] != whole[BLOCK_SIZE:2 * BLOCK_SIZE]
    assert b"".join(iter_generated(43, 0, 64)) != whole[:64]
    for start in range(0, 40):  # every cut through the 16-byte stamp of block 1
        stop = BLOCK_SIZE + start
        assert b"".join(iter_generated(42, stop - 3, stop + 7)) == whole[stop - 3:stop + 7]
    assert [len(c) for c in iter_generated(42, 500, 510)] == [10]


def test_digests_in_one_pass() -> None:
    data = bytes(range(256)) * 100
    chunks = [data[i:i + 999] for i in range(0, len(data), 999)]  # chunks cut across parts
    sums = digests(chunks, part_size=4096)
    assert sums.sha256 == hashlib.sha256(data).hexdigest() and sums.md5 == hashlib.md5(data).hexdigest()
    assert sums.part_md5s == tuple(hashlib.md5(data[i:i + 4096]).digest() for i in range(0, len(data), 4096))
    expected = hashlib.md5(b"".join(sums.part_md5s)).hexdigest() + f"-{len(sums.part_md5s)}"
    assert sums.multipart_etag() == expected and len(sums.part_md5s) == 7
    assert digests(chunks) == Digests(sums.sha256, sums.md5)
    whole = b"".join(iter_generated(5, 0, 3 * BLOCK_SIZE + 9))
    assert generated_digests(5, len(whole), BLOCK_SIZE).part_md5s[-1] == hashlib.md5(whole[-9:]).digest()


def test_catalogue_sha256_of_small_files(catalogue: dict) -> None:
    for f in generated(catalogue, 1, 200_000)[:20]:
        assert generated_sha256(f["seed"], f["size"]) == f["sha256"]
    stored = [f for d in catalogue["datasets"] for f in d["files"] if "content" in f]
    assert all(len(f["content"].encode()) == f["size"] for f in stored)
    assert all(hashlib.sha256(f["content"].encode()).hexdigest() == f["sha256"] for f in stored[:50])


def test_catalogue_s3_fields(catalogue: dict) -> None:
    files = [(d["dto"]["id"], f) for d in catalogue["datasets"] for f in d["files"]]
    assert all(f["lastModified"].endswith("Z") and f["etag"] and f["md5"] for _, f in files)
    for f in generated(catalogue, 1, 200_000)[:20]:
        assert generated_digests(f["seed"], f["size"]).md5 == f["md5"] == f["etag"]
    stored = [f for _, f in files if "content" in f and f["sse"] != "aws:kms"]
    assert all(hashlib.md5(f["content"].encode()).hexdigest() == f["etag"] for f in stored)
    multipart = [f for _, f in files if f["partSize"]]
    assert {f["partSize"] >> 20 for f in multipart} == {5, 8, 16}
    assert all(f["size"] >= MULTIPART_THRESHOLD and f["partSize"] % (1 << 20) == 0 for f in multipart)
    assert all(f["etag"].endswith(f"-{-(-f['size'] // f['partSize'])}") for f in multipart)
    assert all(f["partSize"] is None for _, f in files if f["size"] < MULTIPART_THRESHOLD)
    kms = [(i, f) for i, f in files if f["sse"] == "aws:kms"]
    assert {i for i, _ in kms} == set(SSE_KMS) and all(f["etag"][:32] != f["md5"] for _, f in kms)
    assert any(f["partSize"] for _, f in kms) and any(not f["partSize"] for _, f in kms)
    assert {f["sse"] for _, f in files} == {None, "AES256", "aws:kms"}


def test_catalogue_shape(catalogue: dict) -> None:
    ids = {d["dto"]["id"] for d in catalogue["datasets"]}
    assert len(ids) >= 25 and {33, 90, 93, 275, 292, 318, 396} <= ids
    assert max(f["size"] for f in generated(catalogue)) >= 2**30


def test_zip64_stream_is_readable() -> None:
    import io
    import zipfile

    entries = [ZipEntry("a/b.bin", 3 * BLOCK_SIZE + 1, lambda: iter_generated(1, 0, 3 * BLOCK_SIZE + 1)),
               ZipEntry("c.txt", 3, lambda: [b"abc"])]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(stored_zip(entries))))
    assert archive.testzip() is None and archive.read("c.txt") == b"abc"


@pytest.mark.slow
def test_one_gib_file_digests(catalogue: dict) -> None:
    big = max(generated(catalogue), key=lambda f: f["size"])
    sums = generated_digests(big["seed"], big["size"], big["partSize"])
    assert (sums.sha256, sums.md5, sums.multipart_etag()) == (big["sha256"], big["md5"], big["etag"])
