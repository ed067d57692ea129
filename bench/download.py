"""Download throughput and memory against a local sandbox, with a baseline measured in the same run.

* baseline: the naive way — one plain ``httpx`` stream per file, one after another, no checks;
* ours: ``client.pennsieve.download(...)`` — parallel, verified (sha256, or the S3 ETag as
  MD5 when the manifest gives no sha256, as production), atomic, resumable;
* resume: bytes moved to finish a download interrupted half-way, against a full download.

Prints figures (ratios), asserts nothing. Run: ``python bench/download.py [dataset] [path]``
(default: dataset 120, ``files``: four generated files, 132 MB).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sparc.client import SparcClient
from sparc.client._download import RemoteFile, fetch_file, partial_path
from sparc.sandbox.process import SandboxProcess


def naive(entries: list[dict], out: Path) -> None:
    with httpx.Client() as http:
        for e in entries:
            dest = out / "/".join([*e["path"], e["fileName"]])
            dest.parent.mkdir(parents=True, exist_ok=True)
            with http.stream("GET", e["url"]) as resp, dest.open("wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)


def timed(func, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def main(dataset: int = 120, path: str = "files") -> None:
    scratch = Path(tempfile.mkdtemp(prefix="sparc-bench-"))
    try:
        with SandboxProcess(scratch / "sb", "--time-scale", "0") as sandbox:
            os.environ.update(sandbox.env)
            with SparcClient() as client:
                p = client.pennsieve
                entries = p.download_manifest(dataset, [path])["data"]
                total = sum(int(e["size"]) for e in entries)
                print(f"dataset {dataset} '{path}': {len(entries)} files, {total / 1e6:.1f} MB")
                rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                runs: dict[str, list[float]] = {"base": [], "w1": [], "w4": []}
                checks: set[str] = set()
                for i in range(5):  # interleaved rounds; medians below
                    runs["base"].append(timed(naive, entries, scratch / f"naive{i}"))
                    for workers in (1, 4):
                        runs[f"w{workers}"].append(timed(
                            lambda out, n: checks.update(f.check for f in p.download(
                                dataset, path, out, max_workers=n, progress=False).files),
                            scratch / f"ours{i}-{workers}", workers))
                base, one, four = (statistics.median(runs[k]) for k in ("base", "w1", "w4"))
                print(f"baseline (plain httpx stream, sequential, unverified): "
                      f"{total / base / 1e6:7.1f} MB/s")
                for label, secs in (("1 worker ", one), ("4 workers", four)):
                    print(f"sparc.client download, {label} (verified: {'/'.join(sorted(checks))}): "
                          f"{total / secs / 1e6:7.1f} MB/s  ratio {base / secs:.2f}x baseline")
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                print(f"peak RSS growth during downloads: {(rss - rss0) / 1024:.1f} MiB "
                      f"(files up to {max(int(e['size']) for e in entries) / 1e6:.0f} MB)")

                big = max(entries, key=lambda e: int(e["size"]))
                remote = RemoteFile(big["url"], int(big["size"]), big.get("sha256"))
                done = scratch / "ours0-4" / "/".join([*big["path"], big["fileName"]])
                dest = scratch / "resume.bin"
                partial_path(dest, remote).write_bytes(done.read_bytes()[: remote.size // 2])
                sandbox.reset_stats()
                fetch_file(p.http, remote, dest)
                moved = sandbox.stats()["bytes_sent"]
                print(f"resume after 50%: moved {moved / 1e6:.1f} MB of {remote.size / 1e6:.1f} MB "
                      f"({moved / remote.size:.2f}x a full download)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))  # type: ignore[arg-type]
