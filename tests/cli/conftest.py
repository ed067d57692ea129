"""CLI fixtures: a sandbox with real delays for slow-fault tests (helpers: cli_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sparc.sandbox.process import SandboxProcess


@pytest.fixture(scope="session")
def timed_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox of our own with real delays (``--time-scale 1``), for slow-fault tests."""
    data_dir: Path = tmp_path_factory.mktemp("timed-sandbox")
    with SandboxProcess(data_dir, "--time-scale", "1") as sb:
        yield sb
