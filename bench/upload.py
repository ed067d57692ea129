"""Upload throughput of ``client.pennsieve.upload`` against raw boto3 S3 PUTs, in the same run, on
the same local sandbox storage (the same S3 gate, the same scoped credentials).

Workloads (issue 9):

* ``large``: one file (default 128 MiB): ours = the whole manifest protocol (hash, register,
  parallel multipart with SHA-256 checksums, finalize, poll until imported); baseline = boto3's
  ``upload_file`` (multipart, same part size and concurrency, ``ChecksumAlgorithm=SHA256``);
* ``small``: 1,000 files of 4 KiB in folders: ours = the whole protocol; baseline = one
  ``put_object`` each on a pool of the same number of threads.

Rounds alternate (baseline, ours), medians are printed with the ratio ours/baseline in MB/s and
files/s (1.0 = as fast as raw S3 PUTs; the protocol's extra calls cost the rest). Starts its own
sandbox; prints; asserts nothing. Run::

    python bench/upload.py [--rounds 3] [--size-mib 128] [--files 1000] [--jobs 8]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sparc.client import SparcClient
from sparc.sandbox.process import SandboxProcess

MiB = 1 << 20
PART = 16 * MiB


def _s3(client: SparcClient, dataset: str, jobs: int) -> tuple[Any, dict[str, Any]]:
    """A boto3 client with fresh storage credentials of a new manifest of ``dataset``."""
    engine = client.pennsieve.upload_engine(dataset, jobs=jobs, progress=False)
    engine.create_manifest()
    s3, creds = engine.storage.get()
    return s3, creds


def baseline_large(client: SparcClient, dataset: str, path: Path, jobs: int) -> float:
    from boto3.s3.transfer import TransferConfig

    s3, creds = _s3(client, dataset, jobs)
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART,
                            max_concurrency=jobs, use_threads=True)
    started = time.perf_counter()
    s3.upload_file(str(path), creds["bucket"], f"{creds['keyPrefix']}/{uuid.uuid4()}",
                   ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=config)
    return time.perf_counter() - started


def baseline_small(client: SparcClient, dataset: str, files: list[Path], jobs: int) -> float:
    s3, creds = _s3(client, dataset, jobs)

    def put(path: Path) -> None:
        s3.put_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{uuid.uuid4()}",
                      Body=path.read_bytes(), ChecksumAlgorithm="SHA256")

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(jobs) as pool:
        list(pool.map(put, files))
    return time.perf_counter() - started


def ours(client: SparcClient, dataset: str, paths: list[Path], jobs: int, count: int) -> float:
    started = time.perf_counter()
    result = client.pennsieve.upload(dataset, paths, jobs=jobs, progress=False, resume=False)
    elapsed = time.perf_counter() - started
    if not result.ok or len(result.uploaded) != count:
        raise SystemExit(f"upload did not complete: {result.summary()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sparc-bench-upload-") as scratch_name:
        scratch = Path(scratch_name)
        big = scratch / "large.bin"
        with big.open("wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(MiB))
        small_root = scratch / "small"
        small = []
        for i in range(args.files):
            path = small_root / f"d{i % 10}" / f"f{i:05d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(4096))
            small.append(path)
        with SandboxProcess(scratch / "sandbox", "--time-scale", "0") as sb:
            os.environ.update(sb.env)
            os.environ["SPARC_UPLOAD_STATE_DIR"] = str(scratch / "records")
            with SparcClient(connect=False) as client:
                dataset = client.pennsieve.create_dataset(f"bench {uuid.uuid4().hex[:6]}")
                node_id = dataset["content"]["id"]
                times: dict[str, list[float]] = {k: [] for k in ("large raw", "large ours",
                                                                 "small raw", "small ours")}
                for _ in range(args.rounds):
                    times["large raw"].append(baseline_large(client, node_id, big, args.jobs))
                    times["large ours"].append(ours(client, node_id, [big], args.jobs, 1))
                    times["small raw"].append(baseline_small(client, node_id, small, args.jobs))
                    times["small ours"].append(ours(client, node_id, [small_root], args.jobs,
                                                    args.files))
        median = {k: statistics.median(v) for k, v in times.items()}
        size = args.size_mib * MiB
        print(f"upload to the local sandbox, {args.jobs} jobs, median of {args.rounds} rounds")
        print(f"large ({args.size_mib} MiB):  raw boto3 {size / median['large raw'] / 1e6:7.1f} MB/s"
              f"   ours {size / median['large ours'] / 1e6:7.1f} MB/s"
              f"   ratio {median['large raw'] / median['large ours']:.2f}x")
        print(f"small ({args.files} x 4 KiB): raw boto3 {args.files / median['small raw']:7.1f} files/s"
              f"   ours {args.files / median['small ours']:7.1f} files/s"
              f"   ratio {median['small raw'] / median['small ours']:.2f}x")
        print("(ours includes hashing, registering, finalizing and waiting for the import)")


if __name__ == "__main__":
    main()
