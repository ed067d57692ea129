"""CLI test helpers: run ``sparc`` as a real process (``python -m sparc.cli``) against a sandbox.

Example::

    from cli_helpers import sparc_run

    done = sparc_run(sandbox.env, "datasets", "show", "90")
    assert done.returncode == 0
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SPARC = [sys.executable, "-m", "sparc.cli"]


def sparc_env(sandbox_env: Mapping[str, str], **extra: str | None) -> dict[str, str]:
    """The environment of a ``sparc`` child: ours, pointed at the sandbox, no debug mode;
    ``extra`` adds variables (``None`` removes one)."""
    env = {**os.environ, **sandbox_env}
    if "SPARC_DEBUG" not in extra:
        env.pop("SPARC_DEBUG", None)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def sparc_run(sandbox_env: Mapping[str, str], *args: str, timeout: float = 60,
              **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``sparc ARGS...`` to completion; stdout and stderr captured as text unless given."""
    kwargs.setdefault("capture_output", "stdout" not in kwargs and "stderr" not in kwargs)
    env = sparc_env(sandbox_env, **kwargs.pop("extra_env", {}))
    return subprocess.run([*SPARC, *args], env=env, text=True, timeout=timeout, **kwargs)


def download_and_edit(sandbox_env: Mapping[str, str], out: Path, path: str) -> None:
    """Download dataset 90's ``path`` into ``out`` (quietly), then change it locally."""
    first = sparc_run(sandbox_env, "download", "90", path, "-o", str(out), "-q")
    assert first.returncode == 0, first.stderr
    with open(out / path, "a") as changed:
        changed.write("a local edit\n")


def error_lines(stderr: str) -> list[str]:
    """The non-empty lines of a child's stderr."""
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str,
                          exit_code: int = 1) -> str:
    """The child failed with ``exit_code`` and exactly one ``Error: ...`` line holding every
    needle, and no traceback. Returns that line."""
    lines = error_lines(done.stderr)
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def is_log_line(line: str) -> bool:
    """A logging record of ``sparc -v`` (``LEVEL logger: message``), not an error line."""
    return line.split(" ", 1)[0] in ("DEBUG", "INFO", "WARNING")


class SparcChild:
    """``sparc ARGS...`` running in the background, its stderr read as it comes.

    Example::

        child = SparcChild(sandbox.env, "-vv", "datasets", "search", "x")
        child.wait_for_stderr("waiting for the answer")
        child.proc.send_signal(signal.SIGINT)
    """

    def __init__(self, sandbox_env: Mapping[str, str], *args: str,
                 program: Sequence[str] = tuple(SPARC), **extra_env: str) -> None:
        """``program`` is what runs ``args`` (default ``python -m sparc.cli``)."""
        self.proc = subprocess.Popen([*program, *args], env=sparc_env(sandbox_env, **extra_env),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr_lines: list[str] = []
        self._seen = threading.Condition()
        self._stdout: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.stderr_lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._stdout.append(self.proc.stdout.read())

    def wait_for_stderr(self, marker: str, timeout: float = 30) -> None:
        """Until a stderr line contains ``marker``; fails if the child ends first."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(marker in line for line in self.stderr_lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no {marker!r} on stderr: {self.stderr_lines[-20:]}")
                self._seen.wait(min(left, 0.1))

    def wait(self, timeout: float) -> int:
        """The exit status, once the child and its output readers are done."""
        code = self.proc.wait(timeout)
        deadline = time.monotonic() + 5
        while not self._stdout and time.monotonic() < deadline:
            time.sleep(0.01)
        return code

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    def error_lines(self) -> list[str]:
        """Stderr lines that are neither log records nor blank."""
        return [line for line in self.stderr_lines if line.strip() and not is_log_line(line)]
