"""The reference guide's o²S²PARC section, run as written against the sandbox: only the
``O2SPARC_HOST``/``O2SPARC_USERNAME``/``O2SPARC_PASSWORD`` environment points it there.

The guide text is copied in ``guide_o2sparc.py.txt`` (source: the project's reference guide,
section "o²S²PARC module"; the notebook's ``! pip install`` lines are ``_shell(...)`` calls in
``except ImportError`` branches that never run). ``getpass`` answers from the environment.
"""

from __future__ import annotations

import ast
import getpass
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sparc.sandbox.process import SandboxProcess

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PROMPTS = {"osparc host": "O2SPARC_HOST", "API Key": "O2SPARC_USERNAME",
           "API Secret": "O2SPARC_PASSWORD"}


def _guide_env(monkeypatch: pytest.MonkeyPatch, sb: SandboxProcess, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("O2SPARC_", "PENNSIEVE_")):
            monkeypatch.delenv(name)
    for name in PROMPTS.values():
        monkeypatch.setenv(name, sb.env[name])
    asked: list[str] = []

    def answer(prompt: str = "Password: ", stream: object = None) -> str:
        asked.append(prompt)
        return next(os.environ[n] for p, n in PROMPTS.items() if prompt.startswith(p))

    monkeypatch.setattr(getpass, "getpass", answer)
    monkeypatch.chdir(tmp_path)


def _run_guide(sb: SandboxProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               capsys: pytest.CaptureFixture[str]) -> str:
    _guide_env(monkeypatch, sb, tmp_path)
    code = (HERE / "guide_o2sparc.py.txt").read_text()

    def shell(command: str) -> None:
        raise AssertionError(f"the guide ran '! {command}'")

    namespace: dict = {"__name__": "__guide__", "_shell": shell}
    with pytest.warns(UserWarning, match="config.ini"):  # the guide names a file it lacks
        exec(compile(code, "guide_o2sparc", "exec"), namespace)
    namespace["pbar"].close()
    namespace["client"].close()
    return capsys.readouterr().out


def test_the_guide_runs_as_written(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run_guide(sandbox, monkeypatch, tmp_path, capsys)
    lines = out.splitlines()
    assert lines[0] == "sandbox-user@example.com"
    assert lines[1] == "job outputs:"
    assert re.fullmatch(r"output_1: [1-9]", lines[2])  # the file's content, read by the guide
    assert any(re.fullmatch(r"output_2: [1-9]", line) for line in lines)
    log = out.split("job log:\n", 1)[1]
    assert "Reading input_1 (single_number.txt): 3" in log
    assert "Sleeping for 3 seconds" in log and "finished: SUCCESS" in log


def test_the_guide_with_real_time(timed_sandbox: SandboxProcess,
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """With a job that really sleeps 3 s, the guide's loop polls and its bar moves."""
    out = _run_guide(timed_sandbox, monkeypatch, tmp_path, capsys)
    assert "[PROGRESS] 20/20" in out and "finished: SUCCESS" in out


def test_the_demo_runs_the_same_guide_text() -> None:
    """The demo's copy of the guide cells is this test's copy, to the letter."""
    demo = ast.parse((ROOT / "examples" / "demo_o2sparc.py").read_text())
    guide = next(node.value for node in demo.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "GUIDE" for t in node.targets))
    assert isinstance(guide, ast.Constant)
    assert guide.value.strip() == (HERE / "guide_o2sparc.py.txt").read_text().strip()


def test_the_demo_script_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("O2SPARC_", "PENNSIEVE_"))}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo_o2sparc.py")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("sandbox-user@example.com\njob outputs:\n")
    assert "### solver.map over 3 input sets" in done.stdout
    assert "InvalidJobInputError: input 'input_2'" in done.stdout
