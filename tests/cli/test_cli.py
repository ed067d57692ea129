"""The `sparc` command line against the sandbox (data on stdout, clear one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sparc.cli import cli
from sparc.sandbox.process import SandboxProcess

Run = Callable[..., Result]


@pytest.fixture
def run(sandbox: SandboxProcess) -> Run:
    """``run("datasets", "show", "90")``: the CLI in-process, pointed at the sandbox."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), env=sandbox.env, catch_exceptions=False)

    return invoke


def test_datasets_search_table_and_json(run: Run) -> None:
    table = run("datasets", "search", "cancer", "--limit", "2")
    assert table.exit_code == 0 and "(2 of 2)" in table.output
    page = json.loads(run("datasets", "search", "cancer", "--json").output)
    assert {d["id"] for d in page["datasets"]} == {93, 33}


def test_datasets_show_and_errors(run: Run) -> None:
    shown = run("datasets", "show", "90")
    assert shown.exit_code == 0 and "doi:" in shown.output
    missing = run("datasets", "show", "987654")
    assert missing.exit_code == 1 and "NotFoundError" in missing.output
    assert "Traceback" not in missing.output


def test_files_ls_and_recursive(run: Run) -> None:
    level = run("files", "ls", "90", "--version", "1")
    assert level.exit_code == 0 and level.output.splitlines()[0].startswith("d ")
    nodes = json.loads(run("files", "ls", "90", "metadata", "-r", "--json").output)
    assert nodes and all(n["type"] == "File" and n["path"].startswith("metadata/") for n in nodes)


def test_download_lands_files_by_version_path_with_one_summary_line(
        run: Run, tmp_path: Path) -> None:
    result = run("download", "90", "metadata/records", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    records = sorted((tmp_path / "out" / "metadata" / "records").iterdir())
    assert len(records) == 8 and all(p.is_file() for p in records)
    assert result.stdout == ""
    summary = result.stderr.strip().splitlines()
    assert len(summary) == 1, summary
    assert summary[0].startswith("8 files") and "8 downloaded, 0 skipped, 0 failed" in summary[0]
    assert " in " in summary[0] and "/s)" in summary[0] and "checked: 8 md5" in summary[0]


def test_download_json_rerun_and_default_folder(run: Run, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """-o defaults to ./<dataset id>; --json prints the result; a rerun moves no bytes."""
    monkeypatch.chdir(tmp_path)
    first = json.loads(run("download", "90", "metadata/records", "--json", "-q").stdout)
    assert (tmp_path / "90" / "metadata" / "records").is_dir()
    assert len(first["files"]) == 8 and first["bytes_transferred"] > 0
    assert {f["status"] for f in first["files"]} == {"downloaded"}
    assert all(f["check"] in ("sha256", "md5", "md5-multipart", "size") for f in first["files"])
    again = run("download", "90", "metadata/records", "--json", "-q")
    assert again.exit_code == 0 and again.stderr == ""
    rerun = json.loads(again.stdout)
    assert rerun["bytes_transferred"] == 0
    assert {f["status"] for f in rerun["files"]} == {"skipped"}
    forced = json.loads(run("download", "90", "metadata/records", "--json", "-q",
                            "--existing", "overwrite", "--no-verify").stdout)
    assert {(f["status"], f["check"]) for f in forced["files"]} == {("downloaded", "none")}


def test_download_without_paths_takes_the_whole_version(
        run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    listed = json.loads(run("files", "ls", "107", "-r", "--json").stdout)
    result = json.loads(run("download", "107", "--json", "-q").stdout)
    assert sorted(f["path"] for f in result["files"]) == sorted(n["path"] for n in listed)
    assert all((tmp_path / "107" / n["path"]).stat().st_size == n["size"] for n in listed)


def test_download_verbose_lists_each_file(run: Run, tmp_path: Path) -> None:
    result = run("download", "90", "metadata/records", "-o", str(tmp_path), "-v")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 9 and all("metadata/records/" in line for line in lines[:8])
    assert lines[0].split()[0] == "downloaded"


def test_download_unknown_path_is_one_line(run: Run, tmp_path: Path) -> None:
    result = run("download", "90", "no/such/thing", "-o", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "NotFoundError" in result.stderr
    assert "no/such/thing" in result.stderr


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
