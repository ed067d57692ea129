"""The o²S²PARC fault matrix: every fault kind x each step of a job's life (upload,
create, start, inspect/wait, outputs, logfile), against a real sandbox.

Each cell sets fault rules on the routes one step depends on, runs that step through the
o2sparc module, and checks the contract: the step finishes correctly (equal to a fault-free
run) or raises the typed error listed, within a bounded time; the rules really fired. The
retry layer is the official client's (urllib3 ``Retry`` tuned by the module, and its httpx
uploads); only the waits are shortened here (``FAST_RETRY``), never the counts.
A second group checks that the wait loop sleeps between polls whatever the server does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_fault_matrix import OK, Scenario  # the matrix's own cell type

from sparc.client import SparcClient
from sparc.client.errors import (
    RateLimitedError,
    ServerError,
    SparcError,
    TransportError,
)
from sparc.client.services.o2sparc import O2SparcSolver
from sparc.sandbox.process import SandboxProcess

SLEEPER = "simcore/services/comp/itis/sleeper"
#: A hang guard, not a speed target: the slowest cell (a read that stalls past the 2 s timeout
#: on every attempt) needs about 6 attempts x 2 s.
BOUND = 45.0
INSPECT = "POST /v0/solvers/{solver_key}/releases/{version}/jobs/{job_id}:inspect"

SCENARIOS = [
    Scenario("503-x2", {"kind": "status", "status": 503, "count": 2}, OK),
    Scenario("503-always", {"kind": "status", "status": 503}, (ServerError,)),
    Scenario("504-x1", {"kind": "status", "status": 504, "count": 1}, OK),
    Scenario("429-x1", {"kind": "retry_after", "seconds": 1, "count": 1}, OK, min_seconds=0.9),
    Scenario("429-always", {"kind": "retry_after", "seconds": 1}, (RateLimitedError,)),
    Scenario("reset-x1", {"kind": "reset", "count": 1}, OK),
    Scenario("reset-always", {"kind": "reset"}, (TransportError,)),
    Scenario("slow-x1", {"kind": "slow", "seconds": 0.5, "count": 1}, OK),
    Scenario("slow-past-timeout", {"kind": "slow", "seconds": 5}, (TransportError,)),
    Scenario("truncate-x1", {"kind": "truncate", "count": 1}, OK),
    Scenario("truncate-always", {"kind": "truncate"}, (TransportError,)),
]


@dataclass
class Step:
    """One step of a job's life: the routes it uses, how to prepare and run it, and what a
    correct result looks like."""

    name: str
    routes: list[str]
    prepare: Callable[[O2SparcSolver, Path], dict[str, Any]]
    run: Callable[[O2SparcSolver, dict[str, Any]], Any]
    check: Callable[[Any, dict[str, Any]], None]
    #: scenarios whose expectation differs for this step
    overrides: dict[str, Scenario] | None = None


def _unique_file(tmp: Path) -> Path:
    """A new input (the official client skips uploading content the server already has)."""
    path = tmp / f"number-{uuid.uuid4().hex[:8]}.txt"
    path.write_text(f"7\n# {uuid.uuid4()}\n")
    return path


def _number_file(tmp: Path) -> Path:
    path = tmp / "number.txt"
    path.write_text("7")
    return path


def _finished_job(solver: O2SparcSolver, tmp: Path) -> dict[str, Any]:
    job_id = solver.submit_job({"input_1": _number_file(tmp), "input_2": 0})
    solver.wait(job_id, progress=False)
    return {"job_id": job_id}


def _check_results(result: Any, ref: dict[str, Any]) -> None:
    assert set(result) == {"output_1", "output_2"}
    assert isinstance(result["output_1"], Path) and int(result["output_1"].read_text()) in range(1, 10)


def _check_job(result: Any, ref: dict[str, Any]) -> None:
    assert isinstance(result, str) and len(result) == 36


def _check_log(result: Any, ref: dict[str, Any]) -> None:
    files = [p for p in Path(result.name).rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["sleeper_2.0.2.logs"]
    assert "finished: SUCCESS" in files[0].read_text()


#: A create that reached the server before its answer broke cannot be repeated safely
#: (a second job): the module reports it instead.
_CREATE = {
    "reset-x1": Scenario("reset-x1", {"kind": "reset", "count": 1}, (TransportError,)),
    "truncate-x1": Scenario("truncate-x1", {"kind": "truncate", "count": 1},
                            (TransportError,)),
}

#: The official client's chunk upload (httpx) retries error statuses but not a connection
#: that breaks: the upload then fails with a TransportError (submit again).
_UPLOAD = {
    "reset-x1": Scenario("reset-x1", {"kind": "reset", "count": 1}, (TransportError,),
                         also_ok=True),
    "truncate-x1": Scenario("truncate-x1", {"kind": "truncate", "count": 1},
                            (TransportError,), also_ok=True),
}
#: An output file whose body breaks off is not resumed (get_results again); the JSON answers
#: before it are retried.
_OUTPUTS = {
    "truncate-x1": Scenario("truncate-x1", {"kind": "truncate", "count": 1},
                            (TransportError,), also_ok=True),
}

STEPS = [
    Step("upload", ["POST /v0/files/content", "PUT /v0/_storage/*", "POST /v0/files/*:complete"],
         lambda s, tmp: {"file": _unique_file(tmp)},
         lambda s, ref: s.create_job({"input_1": ref["file"], "input_2": 0}),
         _check_job, _UPLOAD),
    Step("create", ["POST /v0/solvers/*/jobs"],
         lambda s, tmp: {"file": _number_file(tmp)},
         lambda s, ref: s.create_job({"input_1": ref["file"], "input_2": 0}),
         _check_job, _CREATE),
    Step("start", ["POST /v0/solvers/*:start"],
         lambda s, tmp: {"job_id": s.create_job({"input_1": _number_file(tmp), "input_2": 0})},
         lambda s, ref: (s.start_job(ref["job_id"]), ref["job_id"])[1],
         _check_job),
    Step("inspect", ["POST /v0/solvers/*:inspect"],
         lambda s, tmp: {"job_id": s.submit_job({"input_1": _number_file(tmp), "input_2": 0})},
         lambda s, ref: s.wait(ref["job_id"], progress=False).state,
         lambda result, ref: None if result == "SUCCESS" else pytest.fail(result)),
    Step("outputs", ["GET /v0/solvers/*/outputs", "GET /v0/files/*/content",
                     "GET /v0/_storage/*"],
         _finished_job, lambda s, ref: s.get_results(ref["job_id"]), _check_results, _OUTPUTS),
    Step("logfile", ["GET /v0/solvers/*/outputs/logfile", "GET /v0/_storage/*"],
         _finished_job, lambda s, ref: s.get_job_log(ref["job_id"]), _check_log),
]


@pytest.fixture
def solver(client: SparcClient) -> O2SparcSolver:
    return client.o2sparc.get_solver(SLEEPER, "2.0.2")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_fault_cell(faulty_sandbox: SandboxProcess, solver: O2SparcSolver, tmp_path: Path,
                    step: Step, scenario: Scenario) -> None:
    scenario = (step.overrides or {}).get(scenario.name, scenario)
    ref = step.prepare(solver, tmp_path)
    faulty_sandbox.set_faults([{"route": route, **scenario.rule} for route in step.routes])
    started = time.monotonic()
    outcome: Any = None
    error: BaseException | None = None
    try:
        outcome = step.run(solver, ref)
    except SparcError as exc:
        error = exc
    elapsed = time.monotonic() - started
    fired = sum(rule["hits"] for rule in faulty_sandbox.faults())
    faulty_sandbox.clear_faults()
    assert fired >= 1, "the fault never fired: the cell tests nothing"
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    if error is None:
        assert scenario.expect == OK or scenario.also_ok, f"expected {scenario.expect}, got a result"
        step.check(outcome, ref)
        assert elapsed >= scenario.min_seconds, "Retry-After was not honoured"
    else:
        assert scenario.expect != OK, f"expected success, got {type(error).__name__}: {error}"
        assert isinstance(error, scenario.expect), f"{type(error).__name__}: {error}"
        assert "sandbox-secret" not in str(error)


def test_a_retry_after_longer_than_the_budget_fails_at_once(
        faulty_sandbox: SandboxProcess, client_factory: Callable[..., SparcClient],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``Retry-After`` past the retry budget (``max_total``) is not slept through: the 429
    comes back at once, with the server's advice in ``retry_after``."""
    client = client_factory(faulty_sandbox, monkeypatch)
    faulty_sandbox.set_faults([{"route": "GET /v0/me", "kind": "retry_after",
                                "seconds": 3600}])
    before = faulty_sandbox.stats()["requests"].get("GET /v0/me", 0)
    with pytest.raises(RateLimitedError) as err:
        client.o2sparc.get_profile()
    # asked once: no retry, so no sleep through the hour either
    assert faulty_sandbox.stats()["requests"].get("GET /v0/me", 0) - before == 1
    assert err.value.retry_after == 3600 and err.value.status == 429
    client.close()


@pytest.mark.parametrize("rule", [
    {"kind": "status", "status": 503, "count": 3},
    {"kind": "slow", "seconds": 0.3},
    {"kind": "reset", "count": 2},
], ids=["503-x3", "slow", "reset-x2"])
def test_the_wait_loop_sleeps_between_polls(faulty_sandbox: SandboxProcess,
                                            solver: O2SparcSolver, tmp_path: Path,
                                            rule: dict[str, Any]) -> None:
    """A 3 s job, inspected under faults: a handful of polls, never a spin."""
    job_id = solver.submit_job({"input_1": _number_file(tmp_path), "input_2": 3})
    faulty_sandbox.set_faults([{"route": "POST /v0/solvers/*:inspect", **rule}])
    before = faulty_sandbox.stats()["requests"].get(INSPECT, 0)
    started = time.monotonic()
    assert solver.wait(job_id, progress=False).state == "SUCCESS"
    elapsed = time.monotonic() - started
    polls = faulty_sandbox.stats()["requests"].get(INSPECT, 0) - before
    # growing sleeps (0.2 s x1.5 up to 2 s) plus the retries the faults cost
    assert polls <= 8 + elapsed / 2.0 + 6, (polls, elapsed)
