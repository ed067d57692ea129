"""Verification levels over real HTTP: sha256 > S3 ETag as MD5 > multipart ETag > size.

Production's download-manifest gives no sha256, so the S3 ETag is what protects most files.
Faults (a flipped byte, a dropped connection) come from the sandbox's /_sandbox/faults.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.client._download import (
    MiB,
    RemoteFile,
    Verifier,
    fetch_file,
    part_size_candidates,
    partial_path,
)
from sparc.client.errors import ChecksumMismatchError
from sparc.sandbox.process import SandboxProcess


def remote_of(client: SparcClient, dataset: int, path: str, version: int = 1,
              sha256: str | None = None) -> RemoteFile:
    """A presigned link without the sandbox's sha256: what production gives."""
    entry = client.pennsieve.download_manifest(dataset, [path], version)["data"][0]
    return RemoteFile(entry["url"], int(entry["size"]), sha256)


RECORD = "metadata/records/file.csv"        # 11,751 bytes, single-part, no SSE-KMS
MID = "files/primary/sub-2/ecap_run1.edf"   # dataset 120: 25 MiB, single-part
KMS = "files/primary/sub-1/ecap_run2.edf"   # dataset 120: 5 MB, SSE-KMS (ETag is not an MD5)


def test_etag_md5_is_checked_without_sha256(client: SparcClient, tmp_path: Path) -> None:
    remote = remote_of(client, 90, RECORD)
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "file.csv")
    assert outcome.check == "md5" and outcome.status == "downloaded"
    assert outcome.checksum == f"md5:{hashlib.md5((tmp_path / 'file.csv').read_bytes()).hexdigest()}"
    assert outcome.bytes_transferred == remote.size


def test_download_records_the_check_per_file(client: SparcClient, tmp_path: Path) -> None:
    result = client.pennsieve.download(90, "metadata/records", tmp_path, version=1)
    manifest = client.pennsieve.download_manifest(90, ["metadata/records"], 1)["data"]
    expected = "sha256" if all(e.get("sha256") for e in manifest) else "md5"
    assert {f.check for f in result.files} == {expected}
    kms = client.pennsieve.download(120, KMS, tmp_path / "kms", version=1)
    manifest = client.pennsieve.download_manifest(120, [KMS], 1)["data"]
    assert kms.files[0].check == ("sha256" if manifest[0].get("sha256") else "size")


def test_kms_object_is_checked_by_size_only(client: SparcClient, tmp_path: Path) -> None:
    outcome = fetch_file(client.pennsieve.http, remote_of(client, 120, KMS), tmp_path / "k.edf")
    assert outcome.check == "size"
    assert (tmp_path / "k.edf").stat().st_size == 5_000_000


def test_verify_false_checks_the_size_only(client: SparcClient, tmp_path: Path) -> None:
    outcome = fetch_file(client.pennsieve.http, remote_of(client, 90, RECORD), tmp_path / "f",
                         verify=False)
    assert outcome.check == "none"
    result = client.pennsieve.download(90, RECORD, tmp_path / "out", version=1, verify=False)
    assert result.files[0].check == "none"


def test_a_corrupted_byte_is_caught_by_the_md5_etag(client: SparcClient, faults: SandboxProcess,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sparc.client")
    remote = remote_of(client, 90, RECORD)
    faults.set_faults([{"route": "GET /_assets/*", "kind": "corrupt", "count": 1}])
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "file.csv")
    assert outcome.check == "md5" and outcome.bytes_transferred == 2 * remote.size
    assert "md5" in caplog.text and "downloading it again" in caplog.text
    assert faults.faults()[0]["hits"] == 1

    faults.set_faults([{"route": "GET /_assets/*", "kind": "corrupt"}])  # every time
    dest = tmp_path / "never.csv"
    with pytest.raises(ChecksumMismatchError, match="md5"):
        fetch_file(client.pennsieve.http, remote, dest)
    assert not dest.exists() and not partial_path(dest, remote).exists()


def test_a_corrupted_byte_is_caught_by_sha256(client: SparcClient, faults: SandboxProcess,
                                              tmp_path: Path) -> None:
    clean = fetch_file(client.pennsieve.http, remote_of(client, 90, RECORD), tmp_path / "c.csv")
    sha = hashlib.sha256(clean.path.read_bytes()).hexdigest()
    faults.set_faults([{"route": "GET /_assets/*", "kind": "corrupt"}])
    dest = tmp_path / "never.csv"
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        fetch_file(client.pennsieve.http, remote_of(client, 90, RECORD, sha256=sha), dest)
    assert not dest.exists()


def test_resume_rehashes_the_bytes_on_disk(client: SparcClient, sandbox: SandboxProcess,
                                           tmp_path: Path) -> None:
    remote = remote_of(client, 120, MID)
    reference = fetch_file(client.pennsieve.http, remote, tmp_path / "ref.edf").path.read_bytes()
    half = len(reference) // 2
    dest = tmp_path / "resumed.edf"
    partial_path(dest, remote).write_bytes(reference[:half])
    sandbox.reset_stats()
    outcome = fetch_file(client.pennsieve.http, remote, dest)
    assert outcome.check == "md5" and outcome.bytes_transferred == len(reference) - half
    assert sandbox.stats()["bytes_sent"] <= len(reference) - half + 64 * 1024
    assert dest.read_bytes() == reference

    # a partial file changed on disk before the resume: caught, downloaded again whole
    damaged = bytearray(reference[:half])
    damaged[1000] ^= 0xFF
    dest2 = tmp_path / "damaged.edf"
    partial_path(dest2, remote).write_bytes(bytes(damaged))
    outcome = fetch_file(client.pennsieve.http, remote, dest2)
    assert outcome.check == "md5" and dest2.read_bytes() == reference
    assert outcome.bytes_transferred == len(reference) - half + len(reference)


def test_drops_mid_file_resume_and_still_verify(client: SparcClient, faults: SandboxProcess,
                                                tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """More drops than the retry budget: each attempt brings bytes, so the budget resets."""
    caplog.set_level(logging.INFO, logger="sparc.client")
    remote = remote_of(client, 120, MID)
    faults.set_faults([{"route": "GET /_assets/*", "kind": "reset", "after_bytes": 2_000_000,
                        "count": 8}])
    notes: list[str] = []
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "m.edf", on_note=notes.append)
    assert outcome.check == "md5" and outcome.bytes_transferred == remote.size
    retries = [r.getMessage() for r in caplog.records if "retry 1 of 5" in r.getMessage()]
    assert len(retries) == 8 and all(r.levelno == logging.INFO for r in caplog.records
                                     if "retry 1 of 5" in r.getMessage())
    assert len(notes) == 8 and notes[0].startswith("retry 1/5")


# -- multipart ETags: the part size is inferred -------------------------------------------------
def s3_multipart_etag(data: bytes, part_size: int) -> str:
    digests = [hashlib.md5(data[i:i + part_size]).digest() for i in range(0, len(data), part_size)]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


@pytest.mark.parametrize("part_mib", [5, 8, 7])
def test_multipart_etag_with_inferred_part_size(part_mib: int) -> None:
    data = bytes(range(256)) * (4 * part_mib * MiB // 256 + 977)  # 4 parts and a bit
    part = part_mib * MiB
    etag = s3_multipart_etag(data, part)
    assert part in part_size_candidates(len(data), 5)
    verifier = Verifier.choose(RemoteFile("u", len(data)), {"etag": etag})
    assert verifier.kind == "md5-multipart"
    for i in range(0, len(data), 1_000_003):  # chunks straddle part boundaries
        verifier.update(data[i:i + 1_000_003])
    assert verifier.problem(len(data)) is None
    bad = Verifier.choose(RemoteFile("u", len(data)), {"etag": etag})
    bad.update(data[:-1] + b"\0")
    assert "differs" in (bad.problem(len(data)) or "")


def test_evidence_order() -> None:
    md5 = '"' + "a" * 32 + '"'
    assert Verifier.choose(RemoteFile("u", 3, "f" * 64), {"etag": md5}).kind == "sha256"
    assert Verifier.choose(RemoteFile("u", 3), {"etag": md5}).kind == "md5"
    kms = {"etag": md5, "x-amz-server-side-encryption": "aws:kms"}
    assert Verifier.choose(RemoteFile("u", 3), kms).kind == "size"
    assert Verifier.choose(RemoteFile("u", 3), {}).kind == "size"
    assert Verifier.choose(RemoteFile("u", 3), {"etag": 'W/"x"'}).kind == "size"
    assert Verifier.choose(RemoteFile("u", 10 * MiB), {"etag": f'"{"b" * 32}-7"'}).kind == "size"
    assert Verifier.choose(RemoteFile("u", 3), {"etag": md5}, verify=False).kind == "none"
    assert part_size_candidates(100 * MiB, 13) == [8 * MiB]


@pytest.mark.slow
def test_one_gib_multipart_object_verified_across_a_drop(client: SparcClient,
                                                         faults: SandboxProcess,
                                                         tmp_path: Path) -> None:
    remote = remote_of(client, 90, "files/primary/sub-1/sam-1/recording_full.dat")
    faults.set_faults([{"route": "GET /_assets/*", "kind": "reset", "after_bytes": 300 * MiB,
                        "count": 1}])
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "full.dat")
    assert outcome.check == "md5-multipart" and outcome.bytes_transferred == 2**30


def test_download_file_uses_the_callers_sha256(client: SparcClient, faults: SandboxProcess,
                                               tmp_path: Path) -> None:
    """A node that knows its sha256 (5.0 nodes, or the caller's own) gets the strongest check."""
    clean = fetch_file(client.pennsieve.http, remote_of(client, 90, RECORD), tmp_path / "c.csv")
    node = {"datasetId": 90, "datasetVersion": 1, "path": RECORD,
            "sha256": hashlib.sha256(clean.path.read_bytes()).hexdigest()}
    saved = client.pennsieve.download_file(node, output_name=tmp_path / "ok.csv")
    assert saved.read_bytes() == clean.path.read_bytes()
    faults.set_faults([{"route": "GET /_assets/*", "kind": "corrupt"}])
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        client.pennsieve.download_file(node, output_name=tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
