"""The reference guide's o²S²PARC section, run verbatim against a local SPARC sandbox.

``python examples/demo_o2sparc.py`` starts a sandbox, points the client at it with the
``O2SPARC_HOST``/``O2SPARC_USERNAME``/``O2SPARC_PASSWORD`` environment variables only, and runs the
guide's cells as written (``getpass`` answers from those variables; the ``! pip install`` lines
sit in ``except ImportError`` branches that do not run). ``examples/guide_demo.py`` calls
:func:`run` with the variables already set. :func:`beyond` shows what the module adds.
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The guide's o²S²PARC code cells, verbatim (the notebook's ``!`` shell lines become
#: ``_shell(...)`` calls, which only run if an import fails).
GUIDE = '''
# import the necessary packages
import importlib, getpass
try:
  import sparc.client
except ImportError:
  _shell("pip install sparc.client")
try:
  from tqdm import tqdm
except ImportError:
  _shell("pip install tqdm")
from pprint import pprint
import os
from tqdm import tqdm
from sparc.client import SparcClient
from sparc.client.services.o2sparc import (
  O2SparcService,
  O2SparcSolver
)
from time import sleep
from pathlib import Path
from tempfile import TemporaryDirectory

os.environ["O2SPARC_HOST"] = getpass.getpass("osparc host, e.g. https://api.osparc.io:")
os.environ["O2SPARC_USERNAME"] = getpass.getpass("API Key:")
os.environ["O2SPARC_PASSWORD"] = getpass.getpass("API Secret:")
assert "O2SPARC_HOST" in os.environ, "O2SPARC_HOST must be exposed as an environment variable"
assert "O2SPARC_USERNAME" in os.environ, "O2SPARC_USERNAME must be exposed as an environment variable"
assert "O2SPARC_PASSWORD" in os.environ, "O2SPARC_PASSWORD must be exposed as an environment variable"

client = SparcClient(connect=False, config_file='config.ini')
o2sparc: O2SparcService = client.o2sparc

print(o2sparc.get_profile())
# [email protected]

with TemporaryDirectory() as tmp_dir:
  input_file: Path = Path(tmp_dir) / "input_file.txt"
  input_file.write_text("3")

  job: dict = {
    "input_3": 0,
    "input_2": 3.0,
    "input_1": input_file
  }

  solver: O2SparcSolver = o2sparc.get_solver(solver_key="simcore/services/comp/itis/sleeper",solver_version="2.0.2")

  job_id = solver.submit_job(job)

  pbar = tqdm(total=1.0)
  progress: float = 0
  while not solver.job_done(job_id):
    sleep(1)
    if solver.get_job_progress(job_id) > progress:
      pbar.update(solver.get_job_progress(job_id) - progress)
      progress = solver.get_job_progress(job_id)

  print("job outputs:")
  for output_name, result in solver.get_results(job_id).items():
    if isinstance(result,Path):
      print(f"{output_name}: {Path(result).read_text()}")
    else:
      print(f"{output_name}: {result}")


  print("job log:")
  log_dir: TemporaryDirectory = solver.get_job_log(job_id)
  for elm in Path(log_dir.name).rglob("*"):
    if elm.is_file():
      print(elm.read_text())
'''

_PROMPTS = {"osparc host": "O2SPARC_HOST", "API Key": "O2SPARC_USERNAME",
            "API Secret": "O2SPARC_PASSWORD"}


def _answer(prompt: str = "Password: ", stream: Any = None) -> str:
    """``getpass.getpass`` for a non-interactive run: the value already in the environment."""
    for start, name in _PROMPTS.items():
        if prompt.startswith(start):
            return os.environ[name]
    raise RuntimeError(f"unexpected prompt {prompt!r}")


def _shell(command: str) -> None:
    raise RuntimeError(f"the guide wanted to run '! {command}': install sparc.client[o2sparc]")


def run(client: Any = None) -> dict[str, Any]:
    """Run the guide's o²S²PARC cells as written (the ``O2SPARC_*`` variables must point at the
    sandbox); returns the cells' namespace. ``client`` is unused (the guide makes its own)."""
    namespace: dict[str, Any] = {"__name__": "__guide__", "_shell": _shell}
    real = getpass.getpass
    getpass.getpass = _answer
    try:
        exec(compile(GUIDE, "<guide: o2sparc>", "exec"), namespace)  # noqa: S102
    finally:
        getpass.getpass = real
    return namespace


def beyond(client: Any) -> None:
    """What the module adds: solvers and ports, validation, wait with a bar, fan-out."""
    o2sparc = client.o2sparc
    print("\n### solvers")
    for s in o2sparc.list_solvers(all_releases=True):
        print(f"{s.key} {s.version}: {s.title}")
    solver = o2sparc.get_solver("simcore/services/comp/itis/sleeper", "2.0.2")
    print("\n### ports of sleeper 2.0.2")
    for p in solver.ports:
        print(f"{p.kind:<6} {p.key:<8} {p.type or '-':<8} {p.title}")
    with tempfile.TemporaryDirectory() as tmp:
        number = Path(tmp) / "n.txt"
        number.write_text("5")
        try:
            solver.submit_job({"input_1": number, "input_2": "soon"})
        except ValueError as err:
            print(f"\n### a wrong input, caught before any upload\n{type(err).__name__}: {err}")
        results = solver.map([{"input_1": number, "input_2": s} for s in (1, 2, 1)],
                             max_concurrency=3, output_dir=Path(tmp) / "out")
        print("\n### solver.map over 3 input sets (results in input order)")
        for i, r in enumerate(results):
            print(i, {k: (v.name if isinstance(v, Path) else v) for k, v in r.items()})


def main() -> int:
    from sparc.client import SparcClient
    from sparc.sandbox.process import SandboxProcess

    with tempfile.TemporaryDirectory(prefix="sparc-o2s-demo-") as scratch, \
            SandboxProcess(Path(scratch) / "sandbox", "--time-scale", "0.5") as sandbox:
        for name in ("O2SPARC_HOST", "O2SPARC_USERNAME", "O2SPARC_PASSWORD"):
            os.environ[name] = sandbox.env[name]
        os.chdir(scratch)
        namespace = run()
        namespace["pbar"].close()
        with SparcClient(connect=False) as client:
            beyond(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
