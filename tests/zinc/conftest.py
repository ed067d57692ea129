"""Zinc tests: skipped (with the reason shown) only when the ``zinc`` extra is not installed.

Dataset exports run against the session's sandbox, reached only through ``PENNSIEVE_API_HOST``
(and the other variables the sandbox prints), as a user's notebook would.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zinc_readback import ALL_FORMATS, DATA, SETTINGS_PATH

from sparc.sandbox.process import SandboxProcess

MISSING = [name for name in ("cmlibs.zinc", "scaffoldmaker", "mbfxml2ex", "meshio", "trimesh")
           if importlib.util.find_spec(name.split(".")[0]) is None
           or importlib.util.find_spec(name) is None]
SKIP_REASON = (f"zinc extra not installed ({', '.join(MISSING)} missing): "
               "pip install 'sparc.client[zinc]'")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not MISSING:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and "no_extra" not in item.keywords:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A writable copy of tests/data/zinc."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def sandbox_env(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> Path:
    """Point the client at the sandbox through the environment only; cwd is an empty tmp dir."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture(scope="session")
def exports_292(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[Path, list[Path]]]:
    """Dataset 292's scaffold settings JSON exported once in every format."""
    yield _export_all(sandbox, tmp_path_factory, 292, file=SETTINGS_PATH, refinement=4)


@pytest.fixture(scope="session")
def exports_107(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[Path, list[Path]]]:
    """Dataset 107's MBF segmentation exported once in every format."""
    yield _export_all(sandbox, tmp_path_factory, 107)


def _export_all(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory,
                dataset: int, **options: Any) -> tuple[Path, list[Path]]:
    """Export ``dataset`` in every format into a new session temp dir, the client pointed at
    the sandbox through the environment: (that dir, the paths written)."""
    from sparc.client import SparcClient

    out = tmp_path_factory.mktemp(f"exports_{dataset}")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in sandbox.env.items():
            mp.setenv(name, value)
        with SparcClient(connect=False) as client:
            paths = client.zinc.export(dataset, ALL_FORMATS, out, **options)
    return out, paths
