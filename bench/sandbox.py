"""The sandbox must never be the bottleneck: start-up time and content streaming speed.

Prints, each against a baseline measured in the same run:
* start-up of ``sparc sandbox serve --port 0`` (fresh data folder, then reused) vs a bare
  interpreter start (target: under 2 s);
* generated file content, in-process on one core, vs copying the same bytes (target: well over
  1 GB/s);
* the 1 GiB file over HTTP through a raw socket reader (no client-side parsing).

Run: ``python bench/sandbox.py``.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from sparc.sandbox.catalogue.content import BLOCK_SIZE, _block, iter_generated
from sparc.sandbox.process import SandboxProcess

GIB = 1 << 30


def startup(data_dir: Path) -> float:
    started = time.perf_counter()
    with SandboxProcess(data_dir):
        return time.perf_counter() - started


def bare_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def generation_rate(size: int = GIB) -> tuple[float, float]:
    started = time.perf_counter()
    for _ in iter_generated(42, 0, size):
        pass
    generated = size / (time.perf_counter() - started)
    block = _block()
    started = time.perf_counter()
    for _ in range(size // BLOCK_SIZE):
        bytes(bytearray(block))  # one copy of each block: the cheapest real producer
    copied = size / (time.perf_counter() - started)
    return generated, copied


def raw_http_rate(url: str) -> tuple[int, float]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        target = parts.path + ("?" + parts.query if parts.query else "")
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        buf = bytearray(4 << 20)
        received, started = 0, time.perf_counter()
        while n := sock.recv_into(buf):
            received += n
        return received, received / (time.perf_counter() - started)


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="sparc-bench-"))
    try:
        bare = statistics.median(bare_start() for _ in range(5))
        fresh = statistics.median(startup(scratch / f"fresh{i}") for i in range(3))
        reused = statistics.median(startup(scratch / "fresh0") for _ in range(3))
        print(f"bare interpreter start        : {bare * 1000:7.0f} ms")
        print(f"sandbox start, fresh data dir : {fresh * 1000:7.0f} ms ({fresh / bare:.1f}x bare; "
              f"target < 2000 ms: {'met' if fresh < 2 else 'MISSED'})")
        print(f"sandbox start, reused data dir: {reused * 1000:7.0f} ms ({reused / bare:.1f}x bare)")

        generated, copied = generation_rate()
        print(f"generated content, one core   : {generated / 1e9:6.2f} GB/s "
              f"({generated / copied:.2f}x a plain copy at {copied / 1e9:.2f} GB/s)")

        with SandboxProcess(scratch / "serve", "--time-scale", "0") as sandbox:
            request = urllib.request.Request(
                sandbox.url + "/discover/datasets/90/versions/1/files/download-manifest",
                data=json.dumps({"paths": ["files/primary/sub-1/sam-1/recording_full.dat"]})
                .encode(), headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request) as resp:
                url = json.load(resp)["data"][0]["url"]
            received, rate = raw_http_rate(url)
            print(f"1 GiB file over loopback HTTP : {rate / 1e9:6.2f} GB/s "
                  f"({received / GIB:.2f} GiB received; {rate / generated:.2f}x generation)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
