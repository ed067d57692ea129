"""The large-file path: chunks written and hashed on a writer thread, multipart ETag parts
hashed in parallel on the hash pool. Same bytes, same verdicts as hashing in order, also
across drops (resume) and corruption (caught, downloaded again).

The file: dataset 426 v3, 167,666,455 bytes stored in 20 parts of 8 MiB (ETag ``<md5>-20``).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import httpx
import pytest
from test_disk_errors import tiny_disk  # noqa: F401 - the 1 MiB tmpfs fixture

from sparc.client import SparcClient
from sparc.client._download import (
    PENDING_PARTS,
    WRITER_THREAD_MIN,
    MiB,
    RemoteFile,
    Verifier,
    _MultipartMD5,
    fetch_file,
    partial_path,
)
from sparc.sandbox.process import SandboxProcess

BIG = "files/primary/sub-f006/L/020-stitching/Segmentation_Stitcher.exf"


@pytest.fixture(scope="module")
def big(sandbox: SandboxProcess) -> tuple[RemoteFile, str]:
    """The file's link and the sha256 of its bytes, read with a plain httpx stream."""
    base = sandbox.url
    entry = httpx.post(f"{base}/discover/datasets/426/versions/3/files/download-manifest",
                       json={"paths": [BIG]}, timeout=60).json()["data"][0]
    digest = hashlib.sha256()
    with httpx.stream("GET", entry["url"], timeout=60) as resp:
        for chunk in resp.iter_bytes():
            digest.update(chunk)
    return RemoteFile(entry["url"], int(entry["size"])), digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def test_parallel_part_hashes_equal_hashing_in_order() -> None:
    """Pure logic: the same ETag whatever the chunking, parallel or not, with a tail part."""
    data = random.Random(5).randbytes(5 * MiB + 12345)
    expected = _MultipartMD5(MiB)
    expected.update(data)
    for chunking in (1, 4095, 65536, 3 * MiB):
        parallel = _MultipartMD5(MiB, parallel=True)
        assert parallel.parallel
        for i in range(0, len(data), chunking):
            parallel.update(memoryview(data)[i:i + chunking])
        assert parallel.hexdigest() == expected.hexdigest() == parallel.hexdigest()
    assert expected.hexdigest().endswith("-6")


def test_one_guess_hashes_in_parallel_several_in_order() -> None:
    verifier = Verifier.choose(RemoteFile("u", 100 * MiB), {"etag": f'"{"a" * 32}-13"'})
    assert verifier.kind == "md5-multipart"
    assert [h.parallel for h in verifier._hashers] == [True]  # 8 MiB is the only guess
    several = Verifier.choose(RemoteFile("u", 60 * MiB), {"etag": f'"{"a" * 32}-2"'})
    assert len(several._hashers) > 1 and not any(h.parallel for h in several._hashers)


def test_large_file_verified_by_multipart_etag(client: SparcClient, big: tuple[RemoteFile, str],
                                               tmp_path: Path) -> None:
    remote, sha = big
    assert remote.size is not None and remote.size >= WRITER_THREAD_MIN
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and outcome.bytes_transferred == remote.size
    assert outcome.checksum is not None and outcome.checksum.endswith("-20")
    assert sha256_of(tmp_path / "big.exf") == sha


def test_large_file_resumes_across_drops(client: SparcClient, faults: SandboxProcess,
                                         big: tuple[RemoteFile, str], tmp_path: Path) -> None:
    """Two drops mid-part (not on a part boundary): resumed where they broke, parts hashed
    across the break, the same bytes, about one file's worth moved."""
    remote, sha = big
    faults.set_faults([{"route": "GET /_assets/*", "kind": "reset",
                        "after_bytes": 50 * MiB + 777, "count": 2}])
    faults.reset_stats()
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and outcome.bytes_transferred == remote.size
    assert sha256_of(tmp_path / "big.exf") == sha
    # Bytes the sandbox handed to the kernel count as sent; at each reset those still in the
    # loopback socket buffers (autotuned: several MiB) are lost. Restarting from byte 0 instead
    # of resuming would resend the 50 and 100 MiB already received: 150 MiB over the size.
    assert faults.stats()["bytes_sent"] <= (remote.size or 0) + 2 * 12 * MiB


def test_a_partial_on_disk_is_rehashed_in_parallel(client: SparcClient,
                                                   big: tuple[RemoteFile, str],
                                                   tmp_path: Path) -> None:
    """A partial of 70 MiB + 5 bytes from an earlier run: fed to the parallel hasher from
    disk, only the rest moves; a damaged partial is caught and the file downloaded again."""
    remote, sha = big
    reference = tmp_path / "ref.exf"
    fetch_file(client.pennsieve.http, remote, reference)
    kept = 70 * MiB + 5
    with reference.open("rb") as f:
        head = f.read(kept)
    dest = tmp_path / "resumed.exf"
    partial_path(dest, remote).write_bytes(head)
    outcome = fetch_file(client.pennsieve.http, remote, dest)
    assert outcome.check == "md5-multipart"
    assert outcome.bytes_transferred == (remote.size or 0) - kept
    assert sha256_of(dest) == sha

    damaged = bytearray(head)
    damaged[9 * MiB + 3] ^= 0xFF  # in the second part
    dest2 = tmp_path / "damaged.exf"
    partial_path(dest2, remote).write_bytes(bytes(damaged))
    outcome = fetch_file(client.pennsieve.http, remote, dest2)
    assert outcome.check == "md5-multipart" and sha256_of(dest2) == sha
    assert outcome.bytes_transferred == (remote.size or 0) - kept + (remote.size or 0)
    assert "downloaded again" in outcome.note


def test_corruption_in_flight_is_caught_by_parallel_hashing(
        client: SparcClient, faults: SandboxProcess, big: tuple[RemoteFile, str],
        tmp_path: Path) -> None:
    remote, sha = big
    faults.set_faults([{"route": "GET /_assets/*", "kind": "corrupt",
                        "after_bytes": 100 * MiB, "count": 1}])
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and "downloaded again" in outcome.note
    assert sha256_of(tmp_path / "big.exf") == sha
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".incomplete")]


def test_a_full_disk_on_the_writer_thread_names_the_partial(
        client: SparcClient, big: tuple[RemoteFile, str],
        tiny_disk: Path) -> None:  # noqa: F811 - the fixture imported above
    """ENOSPC raised on the writer thread comes out of fetch_file as the same OSError, naming
    the partial file; nothing lands at the final name."""
    import errno

    remote, _ = big
    with pytest.raises(OSError) as info:
        fetch_file(client.pennsieve.http, remote, tiny_disk / "big.exf")
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename and str(info.value.filename).endswith(".incomplete")
    assert not (tiny_disk / "big.exf").exists()


def test_parallel_parts_copy_chunks_and_reuse_their_buffers() -> None:
    """A received chunk is not kept until its part is hashed (chunks held that long fragmented the
    heap: peak RSS +30 % on 1 GiB); the part buffers are reused: PENDING_PARTS + 1 at the most."""
    hasher = _MultipartMD5(MiB, parallel=True)
    expected = _MultipartMD5(MiB)
    buffers: set[int] = set()
    for i in range(12):
        chunk = bytes([i]) * (MiB // 2 + 7)
        before = sys.getrefcount(chunk)
        hasher.update(chunk)
        expected.update(chunk)
        assert sys.getrefcount(chunk) == before  # no view of it left behind
        if hasher._buffer is not None:
            buffers.add(id(hasher._buffer))
    assert hasher.hexdigest() == expected.hexdigest()
    assert len(buffers) <= PENDING_PARTS + 1
