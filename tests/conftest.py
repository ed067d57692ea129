"""Shared fixtures: one real sandbox server (``sparc sandbox serve --port 0``) per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sparc.sandbox.process import SandboxProcess


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """The sandbox, started once; ``sandbox.url`` is its base URL."""
    with SandboxProcess(tmp_path_factory.mktemp("sandbox"), "--time-scale", "0") as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_url(sandbox: SandboxProcess) -> str:
    return sandbox.url
