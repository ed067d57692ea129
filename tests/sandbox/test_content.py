"""Generated file content: range consistency and catalogue sha256 values."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from sparc.sandbox.catalogue import CATALOGUE_PATH
from sparc.sandbox.catalogue.content import BLOCK_SIZE, generated_sha256, iter_generated
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


def test_catalogue_sha256_of_small_files(catalogue: dict) -> None:
    for f in generated(catalogue, 1, 200_000)[:20]:
        assert generated_sha256(f["seed"], f["size"]) == f["sha256"]
    stored = [f for d in catalogue["datasets"] for f in d["files"] if "content" in f]
    assert all(len(f["content"].encode()) == f["size"] for f in stored)
    assert all(hashlib.sha256(f["content"].encode()).hexdigest() == f["sha256"] for f in stored[:50])


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
def test_one_gib_file_sha256(catalogue: dict) -> None:
    big = max(generated(catalogue), key=lambda f: f["size"])
    assert generated_sha256(big["seed"], big["size"]) == big["sha256"]
