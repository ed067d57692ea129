"""Ctrl-C during ``sparc download`` of a 1 GiB file: the process stops within 2 s (exit 130),
keeps a resumable ``*.incomplete`` partial (never the final name), and a rerun resumes it.

The transfer is held mid-file by a ``slow`` fault on the asset route (``after_bytes``), on a
sandbox of our own with real delays (``--time-scale 1``), so SIGINT always lands mid-stream
while the client waits on the socket: the hardest moment to stop.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from cli_helpers import SparcChild, sparc_run

from sparc.sandbox.process import SandboxProcess

DATASET = "90"
BIG_FILE = "files/primary/sub-1/sam-1/recording_full.dat"
BIG_SIZE = 1 << 30
STALL_AT = 96 * 2**20  # body bytes sent before the stream stalls
INTERRUPTED = "interrupted; partial files kept, run again to resume"


def _partials(folder: Path) -> list[Path]:
    return sorted(folder.glob("recording_full.dat*.incomplete"))


def _wait_for_partial(child: SparcChild, folder: Path, at_least: int,
                      timeout: float = 60) -> Path:
    """The partial file, once it holds ``at_least`` bytes (the child is mid-file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.proc.poll() is None, child.stderr_lines
        found = _partials(folder)
        if found and found[0].stat().st_size >= at_least:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no partial of {at_least} bytes in {folder}: {child.stderr_lines}")


def test_sigint_stops_download_within_2s_and_rerun_resumes(timed_sandbox: SandboxProcess,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder = out / Path(BIG_FILE).parent
    final = out / BIG_FILE
    timed_sandbox.reset()
    timed_sandbox.set_faults([{"route": "GET /_assets/*", "kind": "slow", "seconds": 120,
                               "after_bytes": STALL_AT, "count": 1}])
    child = SparcChild(timed_sandbox.env, "download", DATASET, BIG_FILE, "-o", str(out), "-q")
    try:
        # Bytes arrive in 1 MiB chunks; the stall holds the stream just short of STALL_AT.
        _wait_for_partial(child, folder, STALL_AT - 2 * 2**20)
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        code = child.wait(timeout=30)
        stopped_after = time.monotonic() - sent
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
        timed_sandbox.reset()  # faults and stats cleared for the rerun
    assert stopped_after < 2, f"sparc took {stopped_after:.1f} s to stop after SIGINT"
    assert code == 130, child.stderr_lines
    assert child.error_lines() == [INTERRUPTED], child.stderr_lines
    assert not final.exists(), "an interrupted download must never appear at its final name"
    partials = _partials(folder)
    assert len(partials) == 1 and 0 < partials[0].stat().st_size < BIG_SIZE
    kept = partials[0].stat().st_size

    rerun = sparc_run(timed_sandbox.env, "download", DATASET, BIG_FILE, "-o", str(out),
                      "--json", "-q", timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    [entry] = result["files"]
    assert entry["status"] == "downloaded" and entry["path"] == BIG_FILE
    # Only the missing bytes move again (a resume may re-fetch a little overlap, not more).
    assert BIG_SIZE - kept <= result["bytes_transferred"] <= BIG_SIZE - kept + 2**20
    assert timed_sandbox.stats()["bytes_sent"] < BIG_SIZE
    assert final.stat().st_size == BIG_SIZE and not _partials(folder)
