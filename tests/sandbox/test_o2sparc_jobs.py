"""o²S²PARC solver jobs: create/start/inspect/stop/delete, outputs, logfile, metadata, listing.

The shared sandbox runs with ``--time-scale 0`` (sleeps take no time); tests that need a job still
running start their own sandbox with ``--time-scale 1``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import time
import uuid
import zipfile
from datetime import datetime
from typing import Any

import httpx
import pytest
from o2sparc_helpers import (  # noqa: F401
    CSV_STATS,
    SLEEPER,
    anonymous_fixture,
    api_fixture,
    auth_fixture,
    client_for,
    create_job,
    number_file,
    release_path,
    run_job,
    upload,
    validate_schema,
    wait,
)


def _logs(client: httpx.Client, job_path: str) -> dict[str, str]:
    r = client.get(f"{job_path}/outputs/logfile")
    assert r.status_code == 307, r.text
    archive = httpx.get(r.headers["location"])
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        return {name: z.read(name).decode() for name in z.namelist()}


def test_job_is_created_not_started(api: httpx.Client) -> None:
    job = create_job(api, {"input_1": number_file(api), "input_2": 1})
    base = str(api.base_url).rstrip("/")
    runner = f"{base}/v0/solvers/{SLEEPER}/releases/2.0.2"
    assert job["url"] == f"{runner}/jobs/{job['id']}" and job["runner_url"] == runner
    assert job["outputs_url"] == f"{runner}/jobs/{job['id']}/outputs"
    assert job["name"] == f"solvers/{SLEEPER.replace('/', '%2F')}/releases/2.0.2/jobs/{job['id']}"
    assert job["runner_name"] == f"solvers/{SLEEPER.replace('/', '%2F')}/releases/2.0.2"
    path = f"{release_path()}/jobs/{job['id']}"
    assert api.get(path).json() == job
    status = api.post(f"{path}:inspect").json()
    assert status["state"] == "NOT_STARTED" and status["progress"] == 0
    assert status["started_at"] is None and status["stopped_at"] is None
    outputs = api.get(f"{path}/outputs")
    assert outputs.status_code == 409
    assert outputs.json()["errors"] == [f"Cannot retrieve output for solver job '{job['id']}' because it has "
                                        "not completed successfully. Current state: RunningState.NOT_STARTED."]
    log = api.get(f"{path}/outputs/logfile")
    assert log.status_code == 404
    assert log.json()["errors"] == [f"Log for {SLEEPER}/releases/2.0.2/jobs/{job['id']} not found.Note that "
                                    "these logs are only available after the job is completed."]
    stopped = api.post(f"{path}:stop").json()
    assert stopped["state"] == "NOT_STARTED"


def test_the_guides_sleeper_run(api: httpx.Client) -> None:
    """The reference guide's inputs: 0 for the boolean input_3, 3.0 for the integer input_2."""
    job = create_job(api, {"input_3": 0, "input_2": 3.0, "input_1": number_file(api, 7)})
    path = f"{release_path()}/jobs/{job['id']}"
    first = api.post(f"{path}:start")
    assert first.status_code == 202
    assert first.json()["state"] in ("PUBLISHED", "PENDING", "STARTED", "SUCCESS")
    again = api.post(f"{path}:start")
    assert again.status_code == 200
    status = wait(api, path)
    assert status["state"] == "SUCCESS" and status["progress"] == 100 and status["errors"] is None
    started, stopped = (datetime.fromisoformat(status[k]) for k in ("started_at", "stopped_at"))
    assert datetime.fromisoformat(status["submitted_at"]) <= started <= stopped
    assert api.post(f"{path}:start").status_code == 200  # a finished job is not run again
    results = api.get(f"{path}/outputs").json()
    assert results["job_id"] == job["id"]
    output_1, output_2 = results["results"]["output_1"], results["results"]["output_2"]
    assert output_1["filename"] == "single_number.txt" and output_1["e_tag"]
    assert isinstance(output_2, int) and 1 <= output_2 <= 9
    assert output_1["id"] in {f["id"] for f in api.get("/v0/files").json()}  # soft-linked into api/
    assert api.get(f"/v0/files/{output_1['id']}").json() == output_1
    content = httpx.get(api.get(f"/v0/files/{output_1['id']}/content").headers["location"]).text
    assert 1 <= int(content) <= 9
    logs = _logs(api, path)
    assert list(logs) == ["sleeper_2.0.2.logs"]
    assert "Reading input_1 (single_number.txt): 7" in logs["sleeper_2.0.2.logs"]
    assert "Sleeping for 3 seconds" in logs["sleeper_2.0.2.logs"]


@pytest.mark.parametrize("values", [{"input_3": "false", "input_2": "2"}, {"input_3": False, "input_4": 2.0},
                                    {"input_3": 1.0 - 1.0, "input_2": 0}, {"input_3": "no"}])
def test_lax_input_values_run(api: httpx.Client, values: dict[str, Any]) -> None:
    _, status = run_job(api, {"input_1": number_file(api), **values})
    assert status["state"] == "SUCCESS"


def test_fail_after_sleep(api: httpx.Client) -> None:
    path, status = run_job(api, {"input_1": number_file(api), "input_2": 1, "input_3": True})
    assert status["state"] == "FAILED" and status["stopped_at"]
    assert status["errors"] and "input_3" in status["errors"][0]["msg"]
    outputs = api.get(f"{path}/outputs")
    assert outputs.status_code == 409
    assert outputs.json()["errors"][0].endswith("Current state: RunningState.FAILED.")
    log = _logs(api, path)["sleeper_2.0.2.logs"]
    assert "Sleeping for 1 seconds" in log and "ERROR: Failing after sleep" in log


@pytest.mark.parametrize("values, reason", [
    ({"input_2": 1}, "input_1: required input"),
    ({"input_2": 1.5}, "input_2: Input should be a valid integer"),
    ({"input_2": 66}, "input_2: Input should be less than or equal to 65"),
    ({"input_3": "maybe"}, "input_3: Input should be a valid boolean"),
    ({"input_2": -1}, "input_2: Input should be greater than or equal to 0"),
])
def test_inputs_that_do_not_fit_the_ports_fail_the_job(api: httpx.Client, values: dict[str, Any],
                                                       reason: str) -> None:
    if "input_1" not in values and reason != "input_1: required input":
        values = {"input_1": number_file(api), **values}
    path, status = run_job(api, values)
    assert status["state"] == "FAILED"
    assert status["errors"][0]["msg"].startswith(reason), status["errors"]
    assert reason in _logs(api, path)["sleeper_2.0.2.logs"]


def test_a_file_that_is_not_in_storage_fails_the_job(api: httpx.Client) -> None:
    ghost = {"id": str(uuid.uuid4()), "filename": "ghost.txt"}
    _, status = run_job(api, {"input_1": ghost})
    assert status["state"] == "FAILED" and "not found in storage" in status["errors"][0]["msg"]
    bad = upload(api, b"not a number", "word.txt")
    _, status = run_job(api, {"input_1": bad})
    assert status["state"] == "FAILED" and "only one integer" in status["errors"][0]["msg"]


@pytest.mark.parametrize("body, loc", [({}, ["body", "values"]), ({"values": []}, ["body", "values"]),
                                        ({"values": {"input_1": {"filename": "x"}}},
                                         ["body", "values", "input_1", "File", "id"]),
                                        ({"values": {"input_1": {"id": "nope", "filename": "x"}}},
                                         ["body", "values", "input_1", "File", "id"])])
def test_create_job_422(api: httpx.Client, body: dict[str, Any], loc: list[str]) -> None:
    r = api.post(f"{release_path()}/jobs", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == loc


def test_create_job_query_and_headers(api: httpx.Client) -> None:
    url = f"{release_path()}/jobs"
    assert api.post(url, params={"hidden": "false"}, json={"values": {}}).status_code == 201
    r = api.post(url, params={"hidden": "maybe"}, json={"values": {}})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "hidden"]
    parent = {"x-simcore-parent-project-uuid": str(uuid.uuid4()), "x-simcore-parent-node-id": str(uuid.uuid4())}
    assert api.post(url, headers=parent, json={"values": {}}).status_code == 201
    r = api.post(url, headers={"x-simcore-parent-node-id": "node"}, json={"values": {}})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["header", "x-simcore-parent-node-id"]


def test_create_job_for_an_unknown_release_404(api: httpx.Client) -> None:
    r = api.post(f"{release_path(version='1.2.3')}/jobs", json={"values": {}})
    assert r.status_code == 404


def test_job_of_another_release_or_unknown_is_404(api: httpx.Client) -> None:
    job = create_job(api, {"input_1": number_file(api)})
    other = f"{release_path(version='2.1.6')}/jobs/{job['id']}"
    assert api.post(f"{other}:inspect").status_code == 404
    r = api.post(f"{other}:inspect")
    assert r.json()["errors"] == [f"The solver or project job {job['id']} could not be found."]
    missing = f"{release_path()}/jobs/{uuid.uuid4()}"
    for method, suffix in [("GET", ""), ("POST", ":start"), ("POST", ":inspect"), ("POST", ":stop"),
                           ("GET", "/outputs"), ("GET", "/outputs/logfile"), ("DELETE", ""),
                           ("GET", "/metadata"), ("DELETE", "/assets")]:
        r = api.request(method, missing + suffix)
        assert r.status_code == 404, (method, suffix, r.text)


def test_list_jobs_and_pages(api: httpx.Client) -> None:
    ids = [create_job(api, {"input_1": number_file(api)}, version="2.1.6")["id"] for _ in range(3)]
    listed = [j["id"] for j in api.get(f"{release_path(version='2.1.6')}/jobs").json()]
    assert set(ids) <= set(listed) and len(listed) <= 20
    seen = []
    page = api.get(f"{release_path(version='2.1.6')}/jobs/page", params={"limit": 2}).json()
    total = page["total"]
    while True:
        seen += [j["id"] for j in page["items"]]
        if not page["links"]["next"]:
            break
        page = api.get(page["links"]["next"]).json()
    assert len(seen) == total and set(ids) <= set(seen)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 51}, {"offset": -1}, {"limit": "x"}])
def test_jobs_page_422(api: httpx.Client, params: dict[str, Any]) -> None:
    r = api.get(f"{release_path()}/jobs/page", params=params)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", next(iter(params))]


def test_metadata_get_and_replace(api: httpx.Client) -> None:
    job = create_job(api, {"input_1": number_file(api)})
    path = f"{release_path()}/jobs/{job['id']}/metadata"
    assert api.get(path).json() == {"job_id": job["id"], "metadata": {}, "url": job["url"] + "/metadata"}
    first = api.patch(path, json={"metadata": {"a": 1, "b": "two", "c": True, "d": 0.5}}).json()
    assert first["metadata"] == {"a": 1, "b": "two", "c": True, "d": 0.5}
    assert api.patch(path, json={"metadata": {"only": "this"}}).json()["metadata"] == {"only": "this"}
    assert api.get(path).json()["metadata"] == {"only": "this"}
    r = api.patch(path, json={"metadata": {"bad": [1]}})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "metadata", "bad"]


def test_delete_assets_then_outputs_409(api: httpx.Client) -> None:
    path, status = run_job(api, {"input_1": number_file(api)})
    output = api.get(f"{path}/outputs").json()["results"]["output_1"]
    assert api.delete(f"{path}/assets").status_code == 204
    r = api.get(f"{path}/outputs")
    assert r.status_code == 409 and r.json()["errors"] == ["Assets have been deleted"]
    r = api.post(f"{path}:start")
    assert r.status_code == 409 and r.json()["errors"] == [f"The assets for job {path[-36:]} are missing."]
    assert api.get(f"/v0/files/{output['id']}").status_code == 404
    assert api.get(f"{path}/outputs/logfile").status_code == 404


def test_output_files_are_linked_when_outputs_are_first_read(api: httpx.Client) -> None:
    """get_solver_job_outputs creates the soft link ``api/<id>/<name>`` on the first read."""
    path, _ = run_job(api, {"input_1": number_file(api)})
    before = {f["id"] for f in api.get("/v0/files").json()}
    output = api.get(f"{path}/outputs").json()["results"]["output_1"]
    assert output["id"] not in before
    assert api.get(f"/v0/files/{output['id']}").json() == output
    assert api.get(f"{path}/outputs").json()["results"]["output_1"] == output  # the same link


def test_delete_job(api: httpx.Client) -> None:
    path, _ = run_job(api, {"input_1": number_file(api)})
    output = api.get(f"{path}/outputs").json()["results"]["output_1"]
    r = api.delete(path)
    assert r.status_code == 204 and r.content == b""
    assert api.get(path).status_code == 404
    assert api.get(f"/v0/files/{output['id']}").status_code == 404


def test_dream_of_the_2_1_6_sleeper(api: httpx.Client) -> None:
    path, status = run_job(api, {"input_1": number_file(api), "input_5": 1234}, version="2.1.6")
    assert status["state"] == "SUCCESS"
    results = api.get(f"{path}/outputs").json()["results"]
    assert set(results) == {"output_1", "output_2", "output_3"}
    dream = httpx.get(api.get(f"/v0/files/{results['output_3']['id']}/content").headers["location"]).content
    assert len(dream) == 1234
    assert list(_logs(api, path)) == ["sleeper_2.1.6.logs"]


def test_csv_stats_summarises_an_uploaded_table(api: httpx.Client) -> None:
    rows = [(i, i * 0.5, f"name{i}", (i % 7) - 3) for i in range(1, 201)]
    text = "id,value,label,offset\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows)
    table = upload(api, text.encode(), "table.csv")
    path, status = run_job(api, {"input_1": table}, key=CSV_STATS, version="1.0.0")
    assert status["state"] == "SUCCESS", status
    results = api.get(f"{path}/outputs").json()["results"]
    assert results["output_2"] == 200
    summary = httpx.get(api.get(f"/v0/files/{results['output_1']['id']}/content").headers["location"]).text
    got = {r["column"]: r for r in csv.DictReader(io.StringIO(summary))}
    assert set(got) == {"id", "value", "offset"}  # "label" is not numeric
    for index, name in ((0, "id"), (1, "value"), (3, "offset")):
        column = [float(r[index]) for r in rows]
        assert int(got[name]["count"]) == len(column)
        assert float(got[name]["mean"]) == pytest.approx(statistics.fmean(column))
        assert float(got[name]["min"]) == min(column) and float(got[name]["max"]) == max(column)
    assert list(_logs(api, path)) == ["csv-stats_1.0.0.logs"]


def test_csv_stats_with_a_binary_file_fails(api: httpx.Client) -> None:
    path, status = run_job(api, {"input_1": upload(api, b"\xff\xfe\x00\x81", "x.csv")}, key=CSV_STATS,
                           version="1.0.0")
    assert status["state"] == "FAILED" and "not UTF-8" in status["errors"][0]["msg"]


# ---- real time (--time-scale 1) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def realtime(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sparc.sandbox.process import SandboxProcess

    with SandboxProcess(tmp_path_factory.mktemp("o2s-realtime"), "--time-scale", "1") as sb:
        yield sb


def test_running_job_stop_aborts(realtime: Any) -> None:
    with client_for(realtime) as client:
        job = create_job(client, {"input_1": number_file(client), "input_2": 60})
        path = f"{release_path()}/jobs/{job['id']}"
        assert client.post(f"{path}:start").status_code == 202
        status = client.post(f"{path}:inspect").json()
        while status["state"] != "STARTED":
            time.sleep(0.05)
            status = client.post(f"{path}:inspect").json()
        assert status["stopped_at"] is None and status["started_at"]
        r = client.get(f"{path}/outputs")
        assert r.status_code == 409 and r.json()["errors"][0].endswith("Current state: RunningState.STARTED.")
        assert client.get(f"{path}/outputs/logfile").status_code == 404
        r = client.delete(f"{path}/assets")
        assert r.status_code == 409
        assert r.json()["errors"] == [f"Solver job '{job['id']}' has not stopped yet. Current status: "
                                      "RunningState.STARTED."]
        stopped = client.post(f"{path}:stop").json()
        assert stopped["state"] == "ABORTED" and stopped["stopped_at"]
        assert client.post(f"{path}:inspect").json()["state"] == "ABORTED"
        assert "Stopped by the user" in _logs(client, path)["sleeper_2.0.2.logs"]


def test_progress_rises_while_the_job_runs(realtime: Any) -> None:
    with client_for(realtime) as client:
        job = create_job(client, {"input_1": number_file(client), "input_2": 2})
        path = f"{release_path()}/jobs/{job['id']}"
        client.post(f"{path}:start")
        seen: list[tuple[str, int]] = []
        while True:
            status = client.post(f"{path}:inspect").json()
            seen.append((status["state"], status["progress"]))
            if status["stopped_at"]:
                break
            time.sleep(0.05)
        progress = [p for _, p in seen]
        assert progress == sorted(progress) and progress[-1] == 100
        assert any(0 < p < 100 for p in progress)  # reported as it goes, not only at the end
        states = [s for s, _ in seen]
        assert states[-1] == "SUCCESS" and "STARTED" in states
        order = ["PUBLISHED", "PENDING", "STARTED", "SUCCESS"]
        assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)


def test_jobs_run_concurrently(realtime: Any) -> None:
    """Five 1 s jobs started together: every pair of run intervals overlaps."""
    with client_for(realtime) as client:
        file = number_file(client)
        paths = []
        for _ in range(5):
            job = create_job(client, {"input_1": file, "input_2": 1})
            paths.append(f"{release_path()}/jobs/{job['id']}")
        for path in paths:
            assert client.post(f"{path}:start").status_code == 202
        runs = [wait(client, path) for path in paths]
        assert all(r["state"] == "SUCCESS" for r in runs)
        spans = [(datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["stopped_at"]))
                 for r in runs]
        assert all(a0 < b1 and b0 < a1 for a0, a1 in spans for b0, b1 in spans)



def test_log_stream_while_the_job_runs(realtime: Any) -> None:
    with client_for(realtime) as client:
        job = create_job(client, {"input_1": number_file(client), "input_2": 1})
        path = f"{release_path()}/jobs/{job['id']}"
        client.post(f"{path}:start")
        auth = (realtime.env["O2SPARC_USERNAME"], realtime.env["O2SPARC_PASSWORD"])
        with httpx.stream("GET", realtime.url + path + "/logstream", auth=auth, timeout=30) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("application/x-ndjson")
            second = client.get(f"{path}/logstream")
            assert second.status_code == 409
            assert second.json()["errors"] == [f"A stream is already connected to {job['id']}. Only one "
                                               "stream can be connected at a time."]
            logs = [json.loads(line) for line in stream.iter_lines() if line]
        for log in logs:
            validate_schema("JobLog", log)
            assert log["job_id"] == job["id"]
        text = "\n".join(m for log in logs for m in log["messages"])
        assert "Sleeping for 1 seconds" in text and "finished: SUCCESS" in text
        assert client.post(f"{path}:inspect").json()["state"] == "SUCCESS"  # the stream ended with the job
        again = client.get(f"{path}/logstream")  # a stopped job: the whole log, then the end
        assert again.status_code == 200 and "finished: SUCCESS" in again.text
