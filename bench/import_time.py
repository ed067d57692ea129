"""Import cost of sparc.client: the median of
``from sparc.client import SparcClient; SparcClient(connect=False)`` over a bare interpreter start,
and of ``sparc --help`` against ``python -c "import click"``, all measured in this run
(interleaved, so machine load affects them alike).

Targets: <= 0.10 s over the bare start; ``sparc --help`` <= 1.5x ``import click`` (issue 10).
Also lists heavy modules (tqdm, osparc, boto3, numpy) that ``import sparc.client`` or
``sparc --help`` would pull in (none should). Run: ``python bench/import_time.py [runs]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

SNIPPET = "from sparc.client import SparcClient; SparcClient(connect=False)"
HELP = "import sys; sys.argv = ['sparc', '--help']; from sparc.cli import main; main()"
CLICK = "import click"
TARGET_SECONDS = 0.10
TARGET_HELP_RATIO = 1.5
HEAVY = ("tqdm", "osparc", "boto3", "numpy", "pandas")
LOADED = ("import sys, json; {code}; print(json.dumps(sorted(m for m in sys.modules "
          "if m.split('.')[0] in {heavy!r})))")


def run(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def heavy_modules(code: str) -> str:
    """The heavy modules loaded after ``code`` (a ``--help`` exits: run it in a try)."""
    wrapped = f"try:\n    {code}\nexcept SystemExit:\n    pass"
    done = subprocess.run([sys.executable, "-c", LOADED.format(code="exec(" + repr(wrapped) + ")",
                                                                  heavy=HEAVY)],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def main(runs: int = 21) -> None:
    run(SNIPPET)  # warm the file cache and the bytecode
    run(HELP)
    bare, ours, click, cli = [], [], [], []
    for _ in range(runs):
        bare.append(run("pass"))
        ours.append(run(SNIPPET))
        click.append(run(CLICK))
        cli.append(run(HELP))
    base, total = statistics.median(bare), statistics.median(ours)
    cost = total - base
    print(f"bare interpreter start : {base * 1000:7.1f} ms (median of {runs})")
    print(f"with SparcClient       : {total * 1000:7.1f} ms")
    print(f"import + construct cost: {cost * 1000:7.1f} ms  "
          f"(target <= {TARGET_SECONDS * 1000:.0f} ms: {'met' if cost <= TARGET_SECONDS else 'MISSED'})")
    print(f"ratio to bare start    : {total / base:7.2f}x")
    help_s, click_s = statistics.median(cli), statistics.median(click)
    ratio = help_s / click_s
    print(f"python -c 'import click': {click_s * 1000:7.1f} ms")
    print(f"sparc --help            : {help_s * 1000:7.1f} ms  ratio {ratio:.2f}x "
          f"(target <= {TARGET_HELP_RATIO}x: {'met' if ratio <= TARGET_HELP_RATIO else 'MISSED'})")
    print(f"heavy modules after import sparc.client: {heavy_modules(SNIPPET)}; "
          f"after sparc --help: {heavy_modules(HELP)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
