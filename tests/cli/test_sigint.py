"""Ctrl-C during ``sparc download`` of a 1 GiB file: the process stops within 2 s (exit 130),
keeps a resumable ``*.incomplete`` partial (never the final name), and a rerun resumes it.

The transfer is held mid-file by a ``slow`` fault on the asset route (``after_bytes``), on a
sandbox of our own with real delays (``--time-scale 1``), so SIGINT always lands mid-stream
while the client waits on the socket: the hardest moment to stop.
"""

from __future__ import annotations

import json
import signal
import sys
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


def _interrupt(child: SparcChild) -> tuple[int, float]:
    """Send SIGINT; the exit code and the seconds the process took to end."""
    sent = time.monotonic()
    child.proc.send_signal(signal.SIGINT)
    code = child.wait(timeout=30)
    return code, time.monotonic() - sent


def _end(child: SparcChild, sandbox: SandboxProcess) -> None:
    """Kill the child if it still runs; clear the sandbox's faults and stats."""
    if child.proc.poll() is None:
        child.proc.kill()
        child.proc.wait()
    sandbox.reset()


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
        code, stopped_after = _interrupt(child)
    finally:
        _end(child, timed_sandbox)  # faults and stats cleared for the rerun
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


def _wait_for_hits(sandbox: SandboxProcess, child: SparcChild, timeout: float = 30) -> None:
    """Until the sandbox's first fault rule has been applied (the request is in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.proc.poll() is None, child.stderr_lines
        if sandbox.faults()[0]["hits"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the asset request never arrived: {child.stderr_lines}")


def test_sigint_before_the_answer_exits_130_within_2s(timed_sandbox: SandboxProcess,
                                                      tmp_path: Path) -> None:
    """SIGINT while the asset request waits for its answer (a 20 s ``slow`` fault before the
    headers): the process ends within 2 s, exit 130, one line, nothing at the final name."""
    out = tmp_path / "out"
    timed_sandbox.reset()
    timed_sandbox.set_faults([{"route": "GET /_assets/*", "kind": "slow", "seconds": 20}])
    child = SparcChild(timed_sandbox.env, "download", DATASET, BIG_FILE, "-o", str(out))
    try:
        _wait_for_hits(timed_sandbox, child)
        time.sleep(0.2)  # the worker is now blocked reading the response headers
        code, stopped_after = _interrupt(child)
    finally:
        _end(child, timed_sandbox)
    assert stopped_after < 2, f"sparc took {stopped_after:.1f} s to stop after SIGINT"
    assert code == 130, child.stderr_lines
    assert child.error_lines() == [INTERRUPTED], child.stderr_lines
    assert not (out / BIG_FILE).exists()


HUNG_WORKER = """
import sys, threading, time
from sparc.cli import cli, main

@cli.command("hang")
def hang() -> None:
    # a non-daemon worker that ignores cancellation, as one blocked on a socket would
    threading.Thread(target=time.sleep, args=(60,), name="stuck-worker").start()
    print("ready", file=sys.stderr, flush=True)
    time.sleep(60)

sys.argv = ["sparc", "hang"]
main()
"""


def _hard_stopped(script: str) -> SparcChild:
    """Run ``script`` (a ``sparc`` command that prints "ready" and never ends by itself), send
    SIGINT once it is ready: the hard stop must end it with status 130 within 2 s."""
    child = SparcChild({}, "-c", script, program=[sys.executable])
    try:
        child.wait_for_stderr("ready", timeout=30)
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        code = child.wait(timeout=30)
        stopped_after = time.monotonic() - sent
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()
    assert stopped_after < 2, f"took {stopped_after:.1f} s to stop after SIGINT"
    assert code == 130, child.stderr_lines
    return child


def test_sigint_ends_the_process_even_when_a_worker_thread_hangs() -> None:
    """The hard stop: a worker thread that never finishes does not keep ``sparc`` alive after
    Ctrl-C; the "interrupted" line is shown once and the exit status is 130, within 2 s."""
    child = _hard_stopped(HUNG_WORKER)
    assert child.error_lines() == ["ready", "interrupted"], child.stderr_lines


LINE_LOCK_HELD = """
import sys, time
from sparc.cli import cli, main
import sparc.cli._errors as errors

@cli.command("hold")
def hold() -> None:
    # the interrupted line's lock held for ever, as by a thread stuck writing to stderr
    errors._hard_stop.lock.acquire()
    print("ready", file=sys.stderr, flush=True)
    time.sleep(60)

sys.argv = ["sparc", "hold"]
main()
"""


def test_sigint_ends_the_process_even_when_the_line_cannot_be_printed() -> None:
    """The hard stop never waits on a lock: with the interrupted line's lock held for ever,
    the process still exits 130 within 2 s of Ctrl-C, and the line reaches stderr directly."""
    child = _hard_stopped(LINE_LOCK_HELD)
    assert child.error_lines()[-1] == "interrupted", child.stderr_lines
