"""Fixtures of the upload suite: clients signed in to a real sandbox through the environment
only, and fresh datasets. Every test gets its own upload-record folder
(``SPARC_UPLOAD_STATE_DIR``) and working folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from upload_helpers import unique, use_sandbox

from sparc.client import SparcClient
from sparc.sandbox.process import SandboxProcess


@pytest.fixture
def ws(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,
       tmp_path: Path) -> Iterator[SparcClient]:
    """A client on the session sandbox, configured only by the environment (with credentials)."""
    use_sandbox(sandbox, monkeypatch, tmp_path)
    with SparcClient(connect=False) as client:
        yield client


@pytest.fixture
def dataset(ws: SparcClient) -> dict[str, Any]:
    """A new, empty dataset of the sandbox user (a DataSetDTO)."""
    return ws.pennsieve.create_dataset(unique(), description="upload test")


@pytest.fixture
def own_sandbox(sandbox_factory: Callable[..., SandboxProcess], monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> SandboxProcess:
    """A sandbox of this test's own (for token lifetimes and expiry), the env pointing at it."""
    sb = sandbox_factory("--time-scale", "0")
    use_sandbox(sb, monkeypatch, tmp_path)
    return sb

