"""Nothing heavy is imported unless used: a download with ``progress=False`` never imports
tqdm, and neither does importing the client (checked in a fresh interpreter each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sparc.sandbox.process import SandboxProcess

DOWNLOAD = """
import json, sys
from sparc.client import SparcClient
with SparcClient(connect=False) as client:
    result = client.pennsieve.download(90, "metadata/records", sys.argv[1], version=1,
                                       progress=False)
    walked = sum(1 for _ in client.pennsieve.walk(90, 1, "metadata"))
print(json.dumps({"files": len(result), "walked": walked,
                  "heavy": sorted(m for m in sys.modules
                                  if m.split(".")[0] in ("tqdm", "osparc", "boto3", "numpy"))}))
"""


def run(code: str, *args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_download_without_progress_imports_no_tqdm(sandbox: SandboxProcess,
                                                   tmp_path: Path) -> None:
    out = run(DOWNLOAD, str(tmp_path / "out"), env=sandbox.env)
    assert out["files"] == 8 and out["walked"] > 8
    assert out["heavy"] == [], out["heavy"]


def test_a_bar_imports_tqdm_only_when_drawn() -> None:
    code = """
import json, sys
from sparc.client.progress import byte_bar, step_bar
with byte_bar(10, "x", progress=False) as bar:
    bar.update(5); bar.set_postfix_str("note")
with step_bar(100, "job", progress=False, unit="%", leave=True) as bar:  # what o2sparc draws
    bar.n = 40; bar.set_postfix_str("STARTED", refresh=False); bar.refresh(); bar.set_description("x")
off = "tqdm" in sys.modules
with byte_bar(10, "x", progress=True) as bar:
    bar.update(5)
print(json.dumps({"off": off, "on": "tqdm.auto" in sys.modules}))
"""
    assert run(code) == {"off": False, "on": True}
