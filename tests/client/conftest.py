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
