"""The client library and the sandbox meet only over HTTP: neither imports the other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sparc"


def imported_modules(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


@pytest.mark.parametrize(("package", "forbidden"), [("client", "sparc.sandbox"),
                                                    ("sandbox", "sparc.client")])
def test_no_cross_imports(package: str, forbidden: str) -> None:
    bad = {m for m in imported_modules(SRC / package) if m.startswith(forbidden)}
    assert not bad, f"sparc.{package} imports {bad}"


def test_import_is_light() -> None:
    code = ("import sys; from sparc.client import SparcClient; SparcClient(connect=False); "
            "heavy = [m for m in ('httpx', 'tqdm', 'starlette', 'sparc.client.services.pennsieve')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
