"""Import cost of sparc.client: the median of
``from sparc.client import SparcClient; SparcClient(connect=False)`` over a bare interpreter start,
both measured in this run (interleaved, so machine load affects both alike).

Target: <= 0.10 s over the bare start. Run: ``python bench/import_time.py [runs]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

SNIPPET = "from sparc.client import SparcClient; SparcClient(connect=False)"
TARGET_SECONDS = 0.10


def run(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main(runs: int = 21) -> None:
    run(SNIPPET)  # warm the file cache and the bytecode
    bare, ours = [], []
    for _ in range(runs):
        bare.append(run("pass"))
        ours.append(run(SNIPPET))
    base, total = statistics.median(bare), statistics.median(ours)
    cost = total - base
    print(f"bare interpreter start : {base * 1000:7.1f} ms (median of {runs})")
    print(f"with SparcClient       : {total * 1000:7.1f} ms")
    print(f"import + construct cost: {cost * 1000:7.1f} ms  "
          f"(target <= {TARGET_SECONDS * 1000:.0f} ms: {'met' if cost <= TARGET_SECONDS else 'MISSED'})")
    print(f"ratio to bare start    : {total / base:7.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
