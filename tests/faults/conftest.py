"""Fixtures of the fault-matrix suite: a sandbox of each module's own, and clients on it.

Faults never leak: each module starts its own sandbox (real delays, ``--time-scale 1``; a fixed
``--seed``) and every test ends with the rules and counters cleared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sparc.client import SparcClient
from sparc.client._http import HttpCore, RetryPolicy
from sparc.sandbox.process import SandboxProcess

#: The client's retry COUNT stays its default; only the waits shrink, to keep the matrix quick.
FAST_RETRY = RetryPolicy(backoff=0.05, max_backoff=0.2, max_total=30.0)
#: A short read timeout, so a stalled answer ends an attempt in seconds.
TIMEOUT = httpx.Timeout(2.0, connect=3.0)


@pytest.fixture(scope="module")
def faulty_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """This module's own sandbox (``sb.set_faults(...)`` affects nothing else)."""
    with SandboxProcess(tmp_path_factory.mktemp("faulty-sandbox"), "--time-scale", "1",
                        "--seed", "6") as sb:
        yield sb


@pytest.fixture(autouse=True)
def no_faults_left(faulty_sandbox: SandboxProcess) -> Iterator[None]:
    faulty_sandbox.reset()
    yield
    faulty_sandbox.reset()


def make_client(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> SparcClient:
    """A client whose only link to ``sandbox`` is the environment, with quick retries."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    return SparcClient(connect=False, http=HttpCore(retry=FAST_RETRY, timeout=TIMEOUT))


@pytest.fixture(scope="session")
def client_factory() -> Callable[[SandboxProcess, pytest.MonkeyPatch], SparcClient]:
    """:func:`make_client`, for fixtures of any scope."""
    return make_client


@pytest.fixture
def client(faulty_sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> Iterator[SparcClient]:
    monkeypatch.chdir(tmp_path)
    with make_client(faulty_sandbox, monkeypatch) as c:
        yield c
