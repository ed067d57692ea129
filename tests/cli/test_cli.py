"""The `sparc` command line against the sandbox (data on stdout, clear one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparc.cli import cli
from sparc.sandbox.process import SandboxProcess


@pytest.fixture
def run(sandbox: SandboxProcess):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), env=sandbox.env, catch_exceptions=False)

    return invoke


def test_datasets_search_table_and_json(run) -> None:  # type: ignore[no-untyped-def]
    table = run("datasets", "search", "cancer", "--limit", "2")
    assert table.exit_code == 0 and "(2 of 2)" in table.output
    page = json.loads(run("datasets", "search", "cancer", "--json").output)
    assert {d["id"] for d in page["datasets"]} == {93, 33}


def test_datasets_show_and_errors(run) -> None:  # type: ignore[no-untyped-def]
    shown = run("datasets", "show", "90")
    assert shown.exit_code == 0 and "doi:" in shown.output
    missing = run("datasets", "show", "987654")
    assert missing.exit_code == 1 and "NotFoundError" in missing.output
    assert "Traceback" not in missing.output


def test_files_ls_and_recursive(run) -> None:  # type: ignore[no-untyped-def]
    level = run("files", "ls", "90", "--version", "1")
    assert level.exit_code == 0 and level.output.splitlines()[0].startswith("d ")
    nodes = json.loads(run("files", "ls", "90", "metadata", "-r", "--json").output)
    assert nodes and all(n["type"] == "File" and n["path"].startswith("metadata/") for n in nodes)


def test_download_command(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("download", "90", "metadata/records", "-o", str(tmp_path), "--no-progress")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 8 and all(Path(line).is_file() for line in lines)


def test_sandbox_serve_prints_url_then_exports_and_stops_cleanly(tmp_path: Path) -> None:
    proc = SandboxProcess(tmp_path / "sb").start()
    try:
        assert proc.url.startswith("http://127.0.0.1:")
        assert proc.env["PENNSIEVE_API_HOST"] == proc.url
        assert proc.stats()["requests_total"] == 0
    finally:
        assert proc.stop() == 0


def test_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "sparc.cli", "--version"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("sparc, version")
