"""``sparc o2sparc ...`` against the sandbox: in-process (CliRunner) and one real process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from o2s_helpers import SLEEPER

from sparc.cli import cli
from sparc.cli._o2sparc import parse_input, terminal_safe
from sparc.sandbox.process import SandboxProcess

Run = Callable[..., Result]


@pytest.fixture
def run(sandbox: SandboxProcess) -> Run:
    """``run("o2sparc", "profile")``: the CLI in-process, its environment from the sandbox."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
        merged: dict[str, str | None] = {**sandbox.env, "SPARC_DEBUG": None, **(env or {})}
        return runner.invoke(cli, ["o2sparc", *args], env=merged, catch_exceptions=False)

    return invoke


def _one_line_error(result: Result, *needles: str) -> None:
    """Exit 1 and the error as the last line of stderr (``run`` says ``job <id>`` before)."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and len(lines) <= 2, result.stderr
    assert all(line.startswith("job ") for line in lines[:-1]), result.stderr
    for needle in needles:
        assert needle in lines[-1]
    assert "Traceback" not in result.output


def test_profile(run: Run) -> None:
    shown = run("profile")
    assert shown.exit_code == 0 and shown.stdout.startswith("sandbox-user@example.com")
    data = json.loads(run("profile", "--json").stdout)
    assert data["login"] == "sandbox-user@example.com"


def test_solvers_releases_and_ports(run: Run) -> None:
    table = run("solvers")
    assert table.exit_code == 0 and SLEEPER in table.stdout
    every = json.loads(run("solvers", "--all", "--json").stdout)
    assert {(s["key"], s["version"]) for s in every} >= {(SLEEPER, "2.0.2"), (SLEEPER, "2.1.6")}
    releases = json.loads(run("releases", SLEEPER, "--json").stdout)
    assert releases[0]["version"] == "2.0.2"
    ports = run("ports", SLEEPER, "2.0.2")
    assert ports.exit_code == 0
    assert any(line.split()[:4] == ["input", "input_1", "string", "required"]
               for line in ports.stdout.splitlines())
    port_data = json.loads(run("ports", SLEEPER, "2.0.2", "--json").stdout)
    assert {p["key"] for p in port_data if p["kind"] == "output"} == {"output_1", "output_2"}


def test_run_jobs_status_logs_stop_delete(run: Run, tmp_path: Path) -> None:
    number = tmp_path / "n.txt"
    number.write_text("4")
    out = tmp_path / "out"
    done = run("run", SLEEPER, "2.0.2", "--input", f"input_1=@{number}", "-i", "input_2=1",
               "-i", "input_3=false", "-o", str(out), "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    job_id = data["job_id"]
    assert f"job {job_id}" in done.stderr
    assert Path(data["results"]["output_1"]) == out / "single_number.txt"
    assert (out / "single_number.txt").is_file() and isinstance(data["results"]["output_2"], int)
    plain = run("run", SLEEPER, "2.0.2", "-i", f"input_1=@{number}", "-o", str(tmp_path / "o2"))
    assert plain.exit_code == 0 and "output_1: " in plain.stdout

    jobs = json.loads(run("jobs", SLEEPER, "2.0.2", "--json", "--status").stdout)
    mine = next(j for j in jobs if j["id"] == job_id)
    assert mine["state"] == "SUCCESS" and mine["progress"] == 1.0
    assert job_id in run("jobs", SLEEPER, "2.0.2").stdout
    assert len(json.loads(run("jobs", SLEEPER, "2.0.2", "--limit", "1", "--json").stdout)) == 1

    status = run("status", SLEEPER, "2.0.2", job_id)
    assert status.stdout.startswith("SUCCESS 100%")
    assert json.loads(run("status", SLEEPER, "2.0.2", job_id, "--json").stdout)["state"] == "SUCCESS"

    log = run("logs", SLEEPER, "2.0.2", job_id)
    assert log.exit_code == 0 and "Reading input_1 (single_number.txt): 4" in log.stdout
    saved = run("logs", SLEEPER, "2.0.2", job_id, "-o", str(tmp_path / "logs"))
    assert saved.stdout.strip() == str(tmp_path / "logs" / "sleeper_2.0.2.logs")

    assert run("stop", SLEEPER, "2.0.2", job_id).stdout.strip() == f"{job_id} SUCCESS"
    assert run("delete", SLEEPER, "2.0.2", job_id).stdout.strip() == f"{job_id} deleted"
    _one_line_error(run("status", SLEEPER, "2.0.2", job_id), "NotFoundError", job_id)


def test_a_failed_job_is_one_line(run: Run, tmp_path: Path) -> None:
    number = tmp_path / "n.txt"
    number.write_text("4")
    _one_line_error(run("run", SLEEPER, "2.0.2", "-i", f"input_1=@{number}", "-i", "input_3=1"),
                    "JobFailedError", "FAILED", "Failing after sleep")


def test_errors_are_one_line(run: Run, tmp_path: Path) -> None:
    _one_line_error(run("ports", SLEEPER, "9.9.9"), "NotFoundError", "404")
    _one_line_error(run("run", SLEEPER, "2.0.2", "-i", "input_1=@/no/such/file"),
                    "InvalidJobInputError", "input_1", "does not exist")
    _one_line_error(run("run", SLEEPER, "2.0.2", "-i", "input_2=abc", "-i",
                        f"input_1=@{tmp_path}"), "InvalidJobInputError", "input_")
    _one_line_error(run("profile", env={"O2SPARC_PASSWORD": "wrong"}), "AuthenticationError",
                    "401")
    _one_line_error(run("profile", env={"O2SPARC_USERNAME": None, "O2SPARC_PASSWORD": None}),
                    "MissingCredentialsError", "O2SPARC_USERNAME", "O2SPARC_PASSWORD")
    bad = run("run", SLEEPER, "2.0.2", "-i", "no-equals-sign")
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.stderr


def test_parse_input() -> None:
    assert parse_input("a=3") == ("a", 3)
    assert parse_input("a=2.5") == ("a", 2.5)
    assert parse_input("a=true") == ("a", True)
    assert parse_input("a=[1, 2]") == ("a", [1, 2])
    assert parse_input("a=hello") == ("a", "hello")
    assert parse_input("a=@x/y.txt") == ("a", Path("x/y.txt"))
    assert parse_input("a=") == ("a", "")


def test_a_real_process_never_shows_the_secret(sandbox: SandboxProcess) -> None:
    env = {**os.environ, **sandbox.env, "O2SPARC_PASSWORD": "wrong-secret-value"}
    env.pop("SPARC_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "sparc.cli", "-vv", "o2sparc", "profile"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("Error: AuthenticationError")
    token = base64.b64encode(f"{sandbox.env['O2SPARC_USERNAME']}:wrong-secret-value".encode())
    shown = done.stderr + done.stdout
    assert "wrong-secret-value" not in shown and token.decode() not in shown
    assert "GET " in done.stderr  # -vv did log the requests


def test_a_log_printed_to_a_terminal_cannot_drive_it() -> None:
    assert terminal_safe("step 1\r\nok\t2\n") == "step 1\nok\t2\n"
    assert terminal_safe("\x1b]0;title\x07\x1b[2Jx\ry\x9b31m\x7f") == \
        "\\x1b]0;title\\x07\\x1b[2Jx\\x0dy\\x9b31m\\x7f"
