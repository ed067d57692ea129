"""Listing a deep tree: ``walk()`` with 1, 8 and 32 workers, against the ideal.

Dataset 318 of the sandbox holds 10,002 files in 1,242 folders (one browse request each).
A fixed round trip is added to each listing (``--delay`` ms, default 0 and 20), as a real
server far away would add: the sandbox's own ``slow`` fault on the browse route, so the client
runs exactly as a user's does (its default HTTP core, no injected transport). The ideal with ``w`` workers is ``listings / w x round trip``
(every worker always busy); at 0 ms the figure is the time per listing (CPU-bound: client and
sandbox share this machine). Targets (issue 10): at 20 ms, 8 workers <= 1.3x the ideal, and 32
workers faster than 8. The sandbox's CPU share is printed beside each run.
Prints figures; asserts nothing. Run: ``python bench/walk.py [--delay 0 20] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sparc.client import Config
from sparc.client._http import HttpCore
from sparc.client.services.pennsieve import PennsieveService
from sparc.sandbox.process import SandboxProcess

BROWSE = "GET /discover/datasets/*/files/browse"  # the listings walk() asks for


def sandbox_cpu(sandbox: SandboxProcess) -> float:
    return float(sandbox.get_json("/_sandbox/process")["cpu_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, nargs="+", default=[20.0],
                        help="added round trips, ms (0 is always measured too)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, \
            SandboxProcess(Path(scratch) / "sb", "--time-scale", "1") as sandbox:
        os.environ.update(sandbox.env)
        print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
              f"{args.rounds} interleaved rounds, medians")
        for delay in sorted({0.0, *args.delay}):  # 0 ms always: the CPU-bound figure
            sandbox.set_faults([{"route": BROWSE, "kind": "slow", "seconds": delay / 1000}]
                               if delay else [])
            http = HttpCore()
            pennsieve = PennsieveService(config=Config.load(), http=http)
            with pennsieve, http:
                sandbox.reset_stats()
                files = sum(1 for _ in pennsieve.walk(318, 1))
                listings = sandbox.stats()["requests_total"]
                runs: dict[int, list[tuple[float, float]]] = {}
                for _ in range(args.rounds):
                    for workers in (1, 8, 32):
                        if workers == 1 and delay >= 10 and args.rounds > 1 and runs.get(1):
                            continue  # one sequential run is enough (it takes a while)
                        cpu0 = sandbox_cpu(sandbox)
                        started = time.perf_counter()
                        count = sum(1 for _ in pennsieve.walk(318, 1, max_workers=workers))
                        took = time.perf_counter() - started
                        assert count == files
                        runs.setdefault(workers, []).append(
                            (took, (sandbox_cpu(sandbox) - cpu0) / took))
            print(f"\nadded round trip {delay:.0f} ms: {files} files, {listings} listings")
            medians = {w: statistics.median(t for t, _ in rs) for w, rs in runs.items()}
            for workers, took in medians.items():
                share = statistics.median(c for _, c in runs[workers])
                ideal = listings / workers * delay / 1000
                vs = f"{took / ideal:5.2f}x the ideal {ideal:5.2f} s" if ideal else \
                    f"{took / listings * 1000:5.2f} ms per listing"
                print(f"  {workers:2d} workers: {took:6.2f} s  ({vs}; sandbox CPU "
                      f"{share * 100:3.0f}% of a core)")
            if delay:
                ratio = medians[8] / (listings / 8 * delay / 1000)
                print(f"  -> 8 workers: {ratio:.2f}x the ideal (target <= 1.3x: "
                      f"{'met' if ratio <= 1.3 else 'MISSED'})")
                print(f"  -> 32 workers {medians[32]:.2f} s vs 8 workers {medians[8]:.2f} s "
                      f"(target: faster: {'met' if medians[32] < medians[8] else 'MISSED'})")


if __name__ == "__main__":
    main()
