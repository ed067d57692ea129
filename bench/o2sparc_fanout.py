"""o²S²PARC fan-out: 50 sleeper jobs of 2 s each through ``solver.map``, against one job alone.

* baseline: one job (``solver.run``: upload, create, start, wait, results), median of 3;
* fan-out: ``solver.map`` over 50 input sets, ``max_concurrency=50``, one progress bar off;
* polling: ``:inspect`` requests per job (the wait loop sleeps 0.2 s growing to 2 s).

Targets: fan-out wall time <= 1.5 x one job's; a few polls per job (a spinning loop would
make hundreds). Starts its own sandbox with real time (``--time-scale 1``). Prints figures,
asserts nothing. Run: ``python bench/o2sparc_fanout.py [jobs] [seconds]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from sparc.client import SparcClient
from sparc.client.config import Config
from sparc.sandbox.process import SandboxProcess

SLEEPER = "simcore/services/comp/itis/sleeper"
INSPECT = "POST /v0/solvers/{solver_key}/releases/{version}/jobs/{job_id}:inspect"
TARGET_RATIO = 1.5


def _requests(sb: SandboxProcess) -> dict[str, int]:
    return dict(sb.stats()["requests"])


def main(jobs: int = 50, seconds: int = 2) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="sparc-bench-o2s-"))
    number = scratch / "number.txt"
    number.write_text("3")
    inputs = {"input_1": number, "input_2": seconds, "input_3": 0}
    with SandboxProcess(scratch / "sb", "--time-scale", "1") as sb:
        config = Config.from_mapping({}, environ=sb.env)
        with SparcClient(config=config) as client:
            solver = client.o2sparc.get_solver(SLEEPER, "2.0.2")
            solver.run(inputs, progress=False, output_dir=scratch / "warm")  # warm-up
            singles = []
            for i in range(3):
                started = time.perf_counter()
                solver.run(inputs, progress=False, output_dir=scratch / f"one{i}")
                singles.append(time.perf_counter() - started)
            one = statistics.median(singles)
            before = _requests(sb)
            started = time.perf_counter()
            results = solver.map([inputs] * jobs, max_concurrency=jobs, progress=False,
                                 output_dir=scratch / "many")
            many = time.perf_counter() - started
            after = _requests(sb)
    assert len(results) == jobs
    polls = after.get(INSPECT, 0) - before.get(INSPECT, 0)
    total = sum(after.values()) - sum(before.values())
    ratio = many / one
    print(f"sleeper 2.0.2, {seconds} s per job (sandbox --time-scale 1)")
    print(f"one job (median of 3):      {one:6.2f} s")
    print(f"{jobs} jobs via solver.map:    {many:6.2f} s   "
          f"ratio {ratio:.2f}x (target <= {TARGET_RATIO}x) "
          f"{'OK' if ratio <= TARGET_RATIO else 'MISSED'}")
    print(f"polling: {polls / jobs:.1f} inspect requests per job; "
          f"all requests: {total / jobs:.1f} per job")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
