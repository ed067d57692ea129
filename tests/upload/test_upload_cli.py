"""``sparc upload`` and ``sparc datasets mine|create|packages`` against the sandbox (the export
lines of ``sparc sandbox serve`` in the environment are all they need)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from upload_helpers import unique

from sparc.cli import cli
from sparc.client import SparcClient
from sparc.sandbox.process import SandboxProcess


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_datasets_create_mine_packages_and_upload(ws: SparcClient, tmp_path: Path) -> None:
    name = unique("cli")
    code, out, _ = _run("datasets", "create", name, "--description", "from the CLI", "--json")
    assert code == 0
    created = json.loads(out)
    node_id = created["content"]["id"]
    assert created["content"]["description"] == "from the CLI"
    code, out, _ = _run("datasets", "create", name)
    assert code == 1
    code, out, _ = _run("datasets", "mine", "--json")
    assert code == 0 and node_id in [d["content"]["id"] for d in json.loads(out)]
    code, out, _ = _run("datasets", "mine")
    assert code == 0 and node_id in out and name in out

    (tmp_path / "data" / "x").mkdir(parents=True)
    (tmp_path / "data" / "x" / "a.txt").write_text("a")
    (tmp_path / "data" / "b.txt").write_text("bb")
    code, out, err = _run("upload", name, str(tmp_path / "data"), "--target-path", "raw", "-j", "2",
                          "--on-conflict", "replace")
    assert code == 0, err
    assert "2 files uploaded" in err
    code, out, _ = _run("datasets", "packages", str(created["content"]["intId"]), "--json")
    packages = json.loads(out)
    assert sorted(p["content"]["name"] for p in packages) == ["a.txt", "b.txt", "data", "raw", "x"]
    code, out, _ = _run("datasets", "packages", node_id)
    assert code == 0 and "(5 packages)" in out and "Collection" in out


def test_a_dataset_named_with_digits_is_found_by_name(ws: SparcClient, tmp_path: Path) -> None:
    """DATASET may be an integer id or a name: digits that are no id of yours are a name."""
    name = str(9_000_000_000 + int(unique("")[-6:], 16))
    assert _run("datasets", "create", name)[0] == 0
    (tmp_path / "a.txt").write_text("a")
    code, _, err = _run("upload", name, str(tmp_path / "a.txt"))
    assert code == 0, err
    code, out, _ = _run("datasets", "packages", name, "--json")
    assert code == 0 and [p["content"]["name"] for p in json.loads(out)] == ["a.txt"]


def test_upload_exits_1_when_a_file_fails(ws: SparcClient, sandbox: SandboxProcess,
                                          tmp_path: Path) -> None:
    name = unique("cli")
    assert _run("datasets", "create", name)[0] == 0
    (tmp_path / "refused.txt").write_text("refused by storage")
    (tmp_path / "ok.txt").write_text("fine")
    # storage refuses the first PutObject (403 AccessDenied is not retried); -j 1: in order
    sandbox.set_faults([{"route": "PUT /s3/*", "kind": "status", "status": 403, "count": 1}])
    code, out, err = _run("upload", name, str(tmp_path / "refused.txt"), str(tmp_path / "ok.txt"),
                          "-j", "1", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["uploaded"] == [str(tmp_path / "ok.txt")]
    assert list(report["failed"]) == [str(tmp_path / "refused.txt")]
    assert "1 file uploaded" in err and "1 failed" in err and "AccessDenied" in err
    packages = [p["content"]["name"] for p in SparcClient().pennsieve.list_packages(name)]
    assert packages == ["ok.txt"]  # never a package for the failed file
    code, _, err = _run("upload", unique("missing"), str(tmp_path / "ok.txt"))
    assert code == 1 and "no dataset" in err


def test_private_commands_without_credentials_name_the_settings(
        ws: SparcClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PENNSIEVE_API_KEY")
    code, _, err = _run("datasets", "mine")
    assert code == 1 and "PENNSIEVE_API_KEY" in err
