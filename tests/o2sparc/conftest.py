"""Fixtures of the o²S²PARC client tests: clients on the shared sandbox (``--time-scale 0``: jobs
finish at once) and on a sandbox of our own with real time (``--time-scale 1``) for jobs that
must still be running when the test looks at them.

The clients' only link to a sandbox is its export lines (``sb.env``), read as the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from o2s_helpers import SLEEPER

from sparc.client import SparcClient
from sparc.client._http import HttpCore, RetryPolicy
from sparc.client.config import Config
from sparc.client.services.o2sparc import O2SparcService, O2SparcSolver
from sparc.sandbox.process import SandboxProcess

#: Quick retries (count unchanged) and a short read timeout, so error paths end in seconds.
FAST_RETRY = RetryPolicy(backoff=0.05, max_backoff=0.2, max_total=20.0)


def client_for(sb: SandboxProcess, **env: str) -> SparcClient:
    """A client configured from ``sb``'s export lines (plus ``env`` overrides), quick retries."""
    environ = {**sb.env, **env}
    return SparcClient(config=Config.from_mapping({}, environ=environ),
                       http=HttpCore(retry=FAST_RETRY, timeout=httpx.Timeout(10.0, connect=5.0)))


@pytest.fixture
def make_client(sandbox: SandboxProcess) -> Iterator[Callable[..., SparcClient]]:
    made: list[SparcClient] = []

    def make(sb: SandboxProcess | None = None, **env: str) -> SparcClient:
        client = client_for(sb or sandbox, **env)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def o2sparc(make_client: Callable[..., SparcClient]) -> O2SparcService:
    service: O2SparcService = make_client().o2sparc
    return service


@pytest.fixture
def sleeper(o2sparc: O2SparcService) -> O2SparcSolver:
    return o2sparc.get_solver(solver_key=SLEEPER, solver_version="2.0.2")


@pytest.fixture
def number_file(tmp_path: Path) -> Path:
    path = tmp_path / "input_file.txt"
    path.write_text("3")
    return path


@pytest.fixture(scope="session")
def timed_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox with real time (``--time-scale 1``): a job sleeping N s runs N s."""
    with SandboxProcess(tmp_path_factory.mktemp("o2s-timed"), "--time-scale", "1") as sb:
        yield sb


@pytest.fixture
def timed_sleeper(timed_sandbox: SandboxProcess,
                  make_client: Callable[..., SparcClient]) -> O2SparcSolver:
    solver: O2SparcSolver = make_client(timed_sandbox).o2sparc.get_solver(SLEEPER, "2.0.2")
    return solver
