"""A SparcClient pointed at the session's sandbox through the environment only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.sandbox.process import SandboxProcess


@pytest.fixture
def client(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> Iterator[SparcClient]:
    """A fresh client whose only link to the sandbox is ``PENNSIEVE_API_HOST``; cwd is tmp."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    with SparcClient(connect=False) as c:
        yield c


@pytest.fixture
def tombstoned_id(client: SparcClient) -> int:
    """An unpublished dataset of the catalogue, found through the API (410 on its route)."""
    from sparc.client.errors import GoneError, NotFoundError

    listed = {d["id"] for d in client.pennsieve.iter_datasets()}
    for candidate in range(1, 1000):
        if candidate in listed:
            continue
        try:
            client.pennsieve.get_dataset(candidate)
        except GoneError:
            return candidate
        except NotFoundError:
            continue
    raise AssertionError("the sandbox catalogue has no unpublished dataset")


@pytest.fixture
def faults(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session sandbox, its fault rules cleared after the test."""
    sandbox.clear_faults()
    try:
        yield sandbox
    finally:
        sandbox.clear_faults()
