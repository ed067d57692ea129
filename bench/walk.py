"""Listing a deep tree: ``walk()`` fetching folder listings in parallel vs one at a time.

Dataset 318 of the sandbox holds 10,001 files in ~1,250 folders (one browse request each).
Both runs happen here, against the same local sandbox; pass ``--delay MS`` to add a fixed
per-request round trip on the client side (as a real server far away would), which is where
parallel listing pays off. Prints figures; asserts nothing. Run: ``python bench/walk.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx

from sparc.client import Config
from sparc.client._http import HttpCore
from sparc.client.services.pennsieve import PennsieveService
from sparc.sandbox.process import SandboxProcess


class DelayedTransport(httpx.HTTPTransport):
    """A real HTTP transport that waits ``delay`` seconds before each request (network RTT)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.delay)
        return super().handle_request(request)


def timed_walk(pennsieve: PennsieveService, workers: int) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(1 for _ in pennsieve.walk(318, max_workers=workers))
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.0, help="added round trip, ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, \
            SandboxProcess(Path(scratch) / "sb", "--time-scale", "0") as sandbox:
        os.environ.update(sandbox.env)
        for delay in sorted({0.0, args.delay}):
            http = HttpCore(transport=DelayedTransport(delay / 1000))
            with PennsieveService(config=Config.load(), http=http) as pennsieve, http:
                sandbox.reset_stats()
                count, one = timed_walk(pennsieve, 1)
                requests = sandbox.stats()["requests_total"]
                _, eight = timed_walk(pennsieve, 8)
                print(f"added delay {delay:4.0f} ms: {count} files, {requests} requests; "
                      f"sequential {one:6.2f} s, 8 at a time {eight:6.2f} s "
                      f"(ratio {one / eight:.2f}x)")


if __name__ == "__main__":
    main()
