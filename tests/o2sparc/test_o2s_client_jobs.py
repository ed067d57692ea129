"""O2SparcSolver against the sandbox: submit, status, results, logs, validation before any
upload, failures, stop/delete/list, wait and its poll loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from o2s_helpers import CSV_STATS, SLEEPER

from sparc.client import SparcClient
from sparc.client.errors import ArgumentError, NotFoundError
from sparc.client.services.o2sparc import (
    InvalidJobInputError,
    Job,
    JobFailedError,
    JobNotDoneError,
    JobStatus,
    JobTimeoutError,
    O2SparcService,
    O2SparcSolver,
)
from sparc.client.services.o2sparc import solver as solver_module
from sparc.sandbox.process import SandboxProcess

UPLOAD_ROUTES = ("POST /v0/files/content", "PUT /v0/files/content")
JOB_ROUTE = "POST /v0/solvers/{solver_key}/releases/{version}/jobs"
INSPECT_ROUTE = "POST /v0/solvers/{solver_key}/releases/{version}/jobs/{job_id}:inspect"


def _count(sb: SandboxProcess, *routes: str) -> int:
    requests = sb.stats()["requests"]
    return sum(requests.get(r, 0) for r in routes)


def test_submit_wait_results_and_log(sleeper: O2SparcSolver, number_file: Path) -> None:
    job_id = sleeper.submit_job({"input_3": 0, "input_2": 3.0, "input_1": number_file})
    assert isinstance(job_id, str) and len(job_id) == 36
    status = sleeper.wait(job_id, progress=False)
    assert isinstance(status, JobStatus)
    assert status.state == "SUCCESS" and status.progress == 1.0 and status.done
    assert sleeper.job_done(job_id) is True
    assert sleeper.get_job_progress(job_id) == 1.0
    results = sleeper.get_results(job_id)
    assert set(results) == {"output_1", "output_2"}
    assert isinstance(results["output_1"], Path) and results["output_1"].is_file()
    assert results["output_1"].name == "single_number.txt"
    assert 1 <= int(results["output_1"].read_text()) <= 9
    assert isinstance(results["output_2"], int)
    log_dir = sleeper.get_job_log(job_id)
    assert isinstance(log_dir, TemporaryDirectory)
    files = [p for p in Path(log_dir.name).rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["sleeper_2.0.2.logs"]
    text = files[0].read_text()
    assert "Reading input_1 (single_number.txt): 3" in text and "SUCCESS" in text
    assert sleeper.get_job_log_text(job_id) == text
    log_dir.cleanup()


def test_results_into_an_output_dir(sleeper: O2SparcSolver, number_file: Path,
                                    tmp_path: Path) -> None:
    job_id = sleeper.submit_job({"input_1": number_file, "input_2": 1, "input_3": False})
    sleeper.wait(job_id, progress=False)
    out = tmp_path / "out"
    results = sleeper.get_results(job_id, output_dir=out)
    assert results["output_1"] == out / "single_number.txt"
    assert sorted(p.name for p in out.iterdir()) == ["single_number.txt"]
    paths = sleeper.download_job_log(job_id, tmp_path / "logs")
    assert [p.name for p in paths] == ["sleeper_2.0.2.logs"]


def test_run_and_a_solver_doing_real_work(o2sparc: O2SparcService, tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("x,y,name\n1,10,a\n2,20,b\n6,30,c\n")
    solver = o2sparc.get_solver(CSV_STATS, "1.0.0")
    results = solver.run({"input_1": table}, progress=False, output_dir=tmp_path / "out")
    assert results["output_2"] == 3
    summary = results["output_1"].read_text().splitlines()
    assert summary[0] == "column,count,mean,min,max"
    assert summary[1].startswith("x,3,3.0,1.0,6.0")


def test_create_then_start(sleeper: O2SparcSolver, number_file: Path) -> None:
    job_id = sleeper.create_job({"input_1": number_file})
    assert sleeper.get_job_status(job_id).state == "NOT_STARTED"
    with pytest.raises(JobNotDoneError, match="never started"):
        sleeper.wait(job_id, progress=False)
    assert sleeper.start_job(job_id).state != "NOT_STARTED"
    assert sleeper.wait(job_id, progress=False).state == "SUCCESS"
    assert sleeper.get_job(job_id).id == job_id


@pytest.mark.parametrize(("inputs", "name", "words"), [
    ({"input_9": 1}, "input_9", "has no input 'input_9'"),
    ({"input_2": "3"}, "input_2", "expects a whole number"),
    ({"input_2": 2.5}, "input_2", "expects a whole number"),
    ({"input_2": True}, "input_2", "expects a whole number"),
    ({"input_2": -1}, "input_2", "must be >= 0"),
    ({"input_3": 2}, "input_3", "expects a boolean"),
    ({"input_3": "yes"}, "input_3", "expects a boolean"),
    ({"input_2": Path("x.txt")}, "input_2", "got the path"),
    ({"input_1": 3}, "input_1", "expects a string"),
    ({"input_1": Path("/no/such/file.txt")}, "input_1", "does not exist"),
    ({"input_2": 1}, "input_1", "needs input input_1"),
    ({"input_1": None}, "input_1", "is required"),
])
def test_invalid_inputs_fail_before_any_upload(
        sandbox: SandboxProcess, sleeper: O2SparcSolver, number_file: Path,
        inputs: dict, name: str, words: str) -> None:
    job = {"input_1": number_file, **inputs} if "input_1" not in inputs and name != "input_1" \
        else inputs
    before = _count(sandbox, *UPLOAD_ROUTES, JOB_ROUTE, "GET /v0/files:search")
    with pytest.raises(InvalidJobInputError) as err:
        sleeper.submit_job(job)
    assert err.value.name == name and name in str(err.value) and words in str(err.value)
    assert isinstance(err.value, ArgumentError) and isinstance(err.value, ValueError)
    assert _count(sandbox, *UPLOAD_ROUTES, JOB_ROUTE, "GET /v0/files:search") == before


def test_a_folder_is_not_a_file_and_inputs_must_be_a_dict(sleeper: O2SparcSolver,
                                                          tmp_path: Path) -> None:
    with pytest.raises(InvalidJobInputError, match="is not a file"):
        sleeper.submit_job({"input_1": tmp_path})
    with pytest.raises(InvalidJobInputError, match="must be a dict"):
        sleeper.submit_job([("input_1", tmp_path)])  # type: ignore[arg-type]


def test_zero_one_for_a_boolean_and_whole_floats_pass(sleeper: O2SparcSolver,
                                                      number_file: Path) -> None:
    checked = sleeper.validate_inputs({"input_1": number_file, "input_2": 3.0, "input_3": 0})
    assert checked == {"input_1": number_file, "input_2": 3, "input_3": 0}
    assert isinstance(checked["input_2"], int)
    assert sleeper.validate_inputs({"input_1": number_file, "input_3": 1})["input_3"] == 1
    assert "input_2" not in sleeper.validate_inputs({"input_1": number_file, "input_2": None})


def test_a_failed_job_raises_with_state_and_log_tail(sleeper: O2SparcSolver,
                                                     number_file: Path) -> None:
    job_id = sleeper.submit_job({"input_1": number_file, "input_2": 1, "input_3": True})
    with pytest.raises(JobFailedError) as err:
        sleeper.wait(job_id, progress=False)
    failure = err.value
    assert failure.state == "FAILED" and failure.job_id == job_id
    assert failure.log_tail is not None and "Failing after sleep" in failure.log_tail
    assert "FAILED" in str(failure) and job_id in str(failure)
    assert failure.errors and "input_3" in str(failure.errors)
    with pytest.raises(JobFailedError):
        sleeper.get_results(job_id)
    assert sleeper.job_done(job_id)  # the guide's loop ends on a failed job too


def test_a_bad_input_file_fails_the_job_not_the_client(sleeper: O2SparcSolver,
                                                      tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not a number")
    job_id = sleeper.submit_job({"input_1": bad})
    with pytest.raises(JobFailedError, match="FAILED") as err:
        sleeper.wait(job_id, progress=False)
    assert "not a number" in (err.value.log_tail or "")


def test_list_stop_and_delete_jobs(timed_sleeper: O2SparcSolver, number_file: Path) -> None:
    job_id = timed_sleeper.submit_job({"input_1": number_file, "input_2": 60})
    assert job_id in [j.id for j in timed_sleeper.list_jobs()]
    assert all(isinstance(j, Job) for j in timed_sleeper.list_jobs(limit=1))
    assert len(timed_sleeper.list_jobs(limit=1)) == 1
    assert not timed_sleeper.job_done(job_id)
    with pytest.raises(JobNotDoneError) as err:
        timed_sleeper.get_results(job_id)
    assert err.value.status == 409 and "solver.wait" in str(err.value)
    with pytest.raises(NotFoundError):
        timed_sleeper.get_job_log(job_id)  # logs exist once the job finished
    timed_sleeper.stop_job(job_id)
    with pytest.raises(JobFailedError) as failed:
        timed_sleeper.wait(job_id, progress=False)  # a 60 s job: not stopped, it succeeds
    assert failed.value.state == "ABORTED"
    timed_sleeper.delete_job(job_id)
    with pytest.raises(NotFoundError):
        timed_sleeper.get_job_status(job_id)
    assert job_id not in [j.id for j in timed_sleeper.list_jobs()]


def test_wait_timeout_leaves_the_job_running(timed_sleeper: O2SparcSolver,
                                             number_file: Path) -> None:
    job_id = timed_sleeper.submit_job({"input_1": number_file, "input_2": 60})
    with pytest.raises(JobTimeoutError) as err:
        timed_sleeper.wait(job_id, timeout=0.5, progress=False)
    assert err.value.job_id == job_id and err.value.state in ("PUBLISHED", "PENDING", "STARTED")
    assert isinstance(err.value, TimeoutError) and "stop_job" in str(err.value)
    assert not timed_sleeper.job_done(job_id)
    timed_sleeper.stop_job(job_id)


def test_wait_polls_with_growing_sleeps_and_shows_progress(
        timed_sandbox: SandboxProcess, timed_sleeper: O2SparcSolver, number_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    job_id = timed_sleeper.submit_job({"input_1": number_file, "input_2": 3})
    before = _count(timed_sandbox, INSPECT_ROUTE)
    started = time.monotonic()
    timed_sleeper.wait(job_id, progress=True)
    elapsed = time.monotonic() - started
    polls = _count(timed_sandbox, INSPECT_ROUTE) - before
    # sleeps of 0.2 s growing x1.5 to 2 s: ~7 polls in the first 3 s, then one per 2 s;
    # a loop without sleeps would make hundreds
    bound = 8 + elapsed / solver_module.POLL_MAX + 2
    assert 2 <= polls <= bound, (polls, elapsed)
    err = capsys.readouterr().err
    assert "100/100" in err and "sleeper" in err  # the tqdm bar, on stderr


def test_bad_arguments(sleeper: O2SparcSolver, o2sparc: O2SparcService) -> None:
    for bad in ("", "a/b", 3, "not-a-uuid", None):
        with pytest.raises(ArgumentError, match="job_id"):
            sleeper.get_job_status(bad)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        sleeper.get_job_status("00000000-0000-4000-8000-000000000000")
    with pytest.raises(ArgumentError, match="timeout"):
        sleeper.wait("00000000-0000-4000-8000-000000000000", timeout=-1)
    with pytest.raises(ArgumentError, match="solver_key"):
        o2sparc.get_solver("", "2.0.2")
    with pytest.raises(ArgumentError, match="limit"):
        sleeper.list_jobs(limit=-1)


def test_upstream_constructor_with_an_osparc_api_client(o2sparc: O2SparcService,
                                                        number_file: Path) -> None:
    solver = O2SparcSolver(o2sparc.connect(), SLEEPER, "2.0.2")
    job_id = solver.submit_job({"input_1": number_file, "input_2": 1, "input_3": 0})
    assert solver.wait(job_id, progress=False).state == "SUCCESS"


def test_jobs_of_another_client_are_reachable(make_client: Callable[..., SparcClient],
                                              sleeper: O2SparcSolver, number_file: Path) -> None:
    job_id = sleeper.submit_job({"input_1": number_file})
    other = make_client().o2sparc.get_solver(SLEEPER, "2.0.2")
    assert other.wait(job_id, progress=False).state == "SUCCESS"
