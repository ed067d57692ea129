"""The official ``osparc`` client (0.8.x, generated from API 0.13.0) used directly against the sandbox.

A client we did not write checks the emulation: profile, upload (search-dedup, links, S3 parts,
complete), solver, create/start/inspect, outputs, file download, logfile, job listing, errors.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import osparc
import pytest

SLEEPER = "simcore/services/comp/itis/sleeper"


@pytest.fixture(scope="module")
def api_client(sandbox: Any) -> Iterator[Any]:
    cfg = osparc.Configuration(host=sandbox.env["O2SPARC_HOST"], username=sandbox.env["O2SPARC_USERNAME"],
                               password=sandbox.env["O2SPARC_PASSWORD"])
    with osparc.ApiClient(cfg) as client:
        yield client


def test_profile_and_meta(api_client: Any) -> None:
    profile = osparc.UsersApi(api_client).get_my_profile()
    assert profile.id > 0 and profile.role == "USER" and "@" in profile.login
    meta = osparc.MetaApi(api_client).get_service_metadata()
    assert meta.version == "0.13.0"


def test_upload_dedups_by_checksum_and_name(api_client: Any, tmp_path: Path) -> None:
    files = osparc.FilesApi(api_client)
    path = tmp_path / "numbers.txt"
    path.write_text("12345\n")
    first = files.upload_file(path)
    assert first.filename == "numbers.txt" and first.checksum and first.e_tag
    assert files.upload_file(path).id == first.id  # found by files:search, not uploaded again
    renamed = tmp_path / "other.txt"
    renamed.write_text("12345\n")
    assert files.upload_file(renamed).id != first.id  # same bytes, other name: a new upload
    assert files.get_file(str(first.id)).id == first.id
    downloaded = Path(files.download_file(str(first.id)))
    assert downloaded.read_text() == "12345\n"
    downloaded.unlink()


def test_the_guides_core_flow(api_client: Any, tmp_path: Path) -> None:
    files, solvers = osparc.FilesApi(api_client), osparc.SolversApi(api_client)
    number = tmp_path / "number.txt"
    number.write_text("3")
    input_file = files.upload_file(number)
    solver = solvers.get_solver_release(SLEEPER, "2.0.2")
    assert solver.id == SLEEPER and solver.version == "2.0.2"
    ports = solvers.list_solver_ports(solver.id, solver.version)
    assert [p.key for p in ports if p.kind == "input"] == ["input_1", "input_2", "input_3", "input_4"]

    job = solvers.create_job(solver.id, solver.version,
                             osparc.JobInputs({"input_3": 0, "input_2": 3.0, "input_1": input_file}))
    assert job.url and job.runner_url and job.outputs_url
    status = solvers.inspect_job(solver.id, solver.version, job.id)
    assert status.state == "NOT_STARTED"
    status = solvers.start_job(solver.id, solver.version, job.id)
    deadline = time.monotonic() + 60
    while not status.stopped_at:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        status = solvers.inspect_job(solver.id, solver.version, job.id)
        assert 0 <= status.progress <= 100
    assert status.state == "SUCCESS" and status.progress == 100

    outputs = solvers.get_job_outputs(solver.id, solver.version, job.id)
    output_file, number_out = outputs.results["output_1"], outputs.results["output_2"]
    assert isinstance(output_file, osparc.File) and 1 <= number_out <= 9
    assert files.get_file(str(output_file.id)).filename == "single_number.txt"
    assert 1 <= int(Path(files.download_file(str(output_file.id))).read_text()) <= 9

    logfile = solvers.get_job_output_logfile(solver.id, solver.version, job.id)
    with zipfile.ZipFile(logfile) as archive:
        assert archive.namelist() == ["sleeper_2.0.2.logs"]
        assert "Sleeping for 3 seconds" in archive.read("sleeper_2.0.2.logs").decode()
    Path(logfile).unlink()

    assert job.id in [j.id for j in solvers.iter_jobs(solver.id, solver.version)]
    assert job.id in [j.id for j in solvers.list_jobs(solver.id, solver.version)]
    solvers.delete_job(solver.id, solver.version, job.id)
    with pytest.raises(osparc.ApiException) as info:
        solvers.get_job(solver.id, solver.version, job.id)
    assert info.value.status == 404


def test_errors_are_api_exceptions_with_error_get(api_client: Any, sandbox: Any) -> None:
    solvers = osparc.SolversApi(api_client)
    with pytest.raises(osparc.ApiException) as info:
        solvers.get_solver_release(SLEEPER, "9.9.9")
    assert info.value.status == 404 and "not found" in info.value.body
    job = solvers.create_job(SLEEPER, "2.0.2", osparc.JobInputs({"input_2": 1}))
    with pytest.raises(osparc.ApiException) as info:
        solvers.get_job_outputs(SLEEPER, "2.0.2", job.id)
    assert info.value.status == 409 and "NOT_STARTED" in info.value.body
    cfg = osparc.Configuration(host=sandbox.env["O2SPARC_HOST"], username="nobody", password="nothing")
    with osparc.ApiClient(cfg) as wrong, pytest.raises(osparc.ApiException) as info:
        osparc.UsersApi(wrong).get_my_profile()
    assert info.value.status == 401


def test_failed_job_and_custom_metadata(api_client: Any, tmp_path: Path) -> None:
    files, solvers = osparc.FilesApi(api_client), osparc.SolversApi(api_client)
    number = tmp_path / "n.txt"
    number.write_text("1")
    job = solvers.create_job(SLEEPER, "2.1.6", osparc.JobInputs(
        {"input_1": files.upload_file(number), "input_2": 1, "input_3": True}))
    solvers.replace_job_custom_metadata(SLEEPER, "2.1.6", str(job.id),
                                        osparc.JobMetadataUpdate(metadata={"run": 1, "tag": "x"}))
    assert solvers.get_job_custom_metadata(SLEEPER, "2.1.6", str(job.id)).metadata == {"run": 1, "tag": "x"}
    status = solvers.start_job(SLEEPER, "2.1.6", job.id)
    while not status.stopped_at:
        time.sleep(0.05)
        status = solvers.inspect_job(SLEEPER, "2.1.6", job.id)
    assert status.state == "FAILED" and status.errors
    with zipfile.ZipFile(solvers.get_job_output_logfile(SLEEPER, "2.1.6", job.id)) as archive:
        assert "Fail after sleep" in archive.read("sleeper_2.1.6.logs").decode()
