"""``solver.map``: many jobs with bounded concurrency, one progress bar, results in input order."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
from o2s_helpers import CSV_STATS

from sparc.client.errors import ArgumentError
from sparc.client.services.o2sparc import (
    FanOutError,
    InvalidJobInputError,
    JobFailedError,
    JobStatus,
    O2SparcService,
    O2SparcSolver,
)
from sparc.sandbox.process import SandboxProcess

JOB_ROUTE = "POST /v0/solvers/{solver_key}/releases/{version}/jobs"


def _tables(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"table_{i}.csv"
        path.write_text("v\n" + "".join(f"{i}\n" for _ in range(i + 1)))
        paths.append(path)
    return paths


def test_twenty_jobs_results_in_input_order(o2sparc: O2SparcService, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    solver = o2sparc.get_solver(CSV_STATS, "1.0.0")
    tables = _tables(tmp_path, 20)
    results = solver.map([{"input_1": t} for t in tables], max_concurrency=6,
                         output_dir=tmp_path / "out")
    assert len(results) == 20
    for i, result in enumerate(results):
        assert result["output_2"] == i + 1  # the row count tells which input it came from
        assert result["output_1"] == tmp_path / "out" / str(i) / "summary.csv"
        assert result["output_1"].read_text().splitlines()[1].startswith(f"v,{i + 1},{i}.0")
    err = capsys.readouterr().err
    assert "20/20 done" in err and "100%" in err and "x20" in err  # one combined bar


def test_twenty_sleeper_jobs(sleeper: O2SparcSolver, number_file: Path) -> None:
    results = sleeper.map([{"input_1": number_file, "input_2": 1, "input_3": 0}] * 20,
                          max_concurrency=8, progress=False)
    assert len(results) == 20
    assert all(isinstance(r["output_1"], Path) and r["output_1"].is_file() for r in results)
    assert len({r["output_1"] for r in results}) == 20  # each job's file downloaded apart


def _new_jobs(solver: O2SparcSolver, before: set[str]) -> list[JobStatus]:
    return [solver.get_job_status(j.id) for j in solver.list_jobs() if j.id not in before]


def test_concurrency_is_bounded(timed_sleeper: O2SparcSolver, number_file: Path) -> None:
    """From the server's own times: at most 2 jobs between submission and stop at once (and
    2 did run together: 2 s jobs, started side by side)."""
    before = {j.id for j in timed_sleeper.list_jobs()}
    results = timed_sleeper.map([{"input_1": number_file, "input_2": 2}] * 4,
                                max_concurrency=2, progress=False)
    assert len(results) == 4
    runs = [(datetime.fromisoformat(str(s.submitted_at)), datetime.fromisoformat(str(s.stopped_at)))
            for s in _new_jobs(timed_sleeper, before)]
    assert len(runs) == 4
    at_once = [sum(1 for start, stop in runs if start <= t < stop) for t, _ in runs]
    assert max(at_once) == 2, runs


def test_a_failure_is_reported_after_all_jobs_ended(sleeper: O2SparcSolver,
                                                    number_file: Path) -> None:
    inputs = [{"input_1": number_file, "input_3": i == 2} for i in range(5)]
    with pytest.raises(FanOutError) as err:
        sleeper.map(inputs, max_concurrency=3, progress=False)
    assert set(err.value.failures) == {2}
    assert isinstance(err.value.failures[2], JobFailedError)
    assert err.value.results[2] is None
    assert all(isinstance(err.value.results[i], dict) for i in (0, 1, 3, 4))
    assert "inputs[2]" in str(err.value)
    mixed = sleeper.map(inputs, max_concurrency=3, progress=False, return_exceptions=True)
    assert isinstance(mixed[2], JobFailedError) and isinstance(mixed[4], dict)


def test_every_input_set_is_checked_before_any_job(sandbox: SandboxProcess,
                                                   sleeper: O2SparcSolver,
                                                   number_file: Path) -> None:
    before = sandbox.stats()["requests"].get(JOB_ROUTE, 0)
    inputs = [{"input_1": number_file}] * 3 + [{"input_1": number_file, "input_2": "x"}]
    with pytest.raises(InvalidJobInputError) as err:
        sleeper.map(inputs)
    assert str(err.value).startswith("inputs[3]: ") and err.value.name == "input_2"
    assert sandbox.stats()["requests"].get(JOB_ROUTE, 0) == before
    with pytest.raises(ArgumentError, match="max_concurrency"):
        sleeper.map([{"input_1": number_file}], max_concurrency=0)
    assert sleeper.map([]) == []


def test_ctrl_c_stops_waiting_and_names_the_jobs_left_running(
        timed_sleeper: O2SparcSolver, number_file: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    import _thread

    before = {j.id for j in timed_sleeper.list_jobs()}
    done = threading.Event()

    def interrupt_once_all_run() -> None:  # Ctrl-C once the server runs the 3 jobs
        while not done.wait(0.1):
            jobs = _new_jobs(timed_sleeper, before)
            if len(jobs) == 3 and all(s.state == "STARTED" for s in jobs):
                _thread.interrupt_main()
                return

    watcher = threading.Thread(target=interrupt_once_all_run)
    watcher.start()
    try:
        with caplog.at_level("WARNING", logger="sparc.client"), \
                pytest.raises(KeyboardInterrupt):
            timed_sleeper.map([{"input_1": number_file, "input_2": 60}] * 3, progress=False)
    finally:
        done.set()
        watcher.join()
    warning = next(r.getMessage() for r in caplog.records if "map interrupted" in r.getMessage())
    left = [j.strip() for j in warning.split(": ")[-1].split(",")]
    assert sorted(left) == sorted(s.job_id for s in _new_jobs(timed_sleeper, before))
    for job_id in left:  # they really are still running; stop them
        assert not timed_sleeper.job_done(job_id)
        timed_sleeper.stop_job(job_id)
