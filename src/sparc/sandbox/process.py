"""Start ``sparc sandbox serve`` as a child process, for tests, benchmarks and the demo.

Example::

    with SandboxProcess(data_dir=tmp) as sb:
        os.environ.update(sb.env)          # PENNSIEVE_API_HOST=<sb.url>, ...
        print(sb.stats()["requests_total"])
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import TracebackType


class SandboxProcess:
    """A sandbox server in a child process on a free loopback port."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *extra_args: str,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.url = ""
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> SandboxProcess:
        cmd = [sys.executable, "-m", "sparc.cli", "sandbox", "serve", "--port", "0"]
        if self.data_dir:
            cmd += ["--data-dir", str(self.data_dir)]
        cmd += self.extra_args
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        first_line: list[str] = []
        stdout = self._proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: first_line.append(stdout.readline()))
        reader.start()
        reader.join(self.startup_timeout)
        if not first_line or not first_line[0].startswith("http"):
            self.stop()
            raise RuntimeError(f"sandbox did not start: first line {first_line!r}")
        self.url = first_line[0].strip()
        pointed = threading.Event()

        def read_exports() -> None:
            """Collect the ``export NAME=value`` lines that follow the URL (the pipe stays open)."""
            for line in stdout:
                if line.startswith("export "):
                    name, _, value = line[len("export "):].strip().partition("=")
                    self.env[name] = value
                    if name == "PENNSIEVE_API_HOST":
                        pointed.set()

        threading.Thread(target=read_exports, daemon=True).start()
        pointed.wait(self.startup_timeout)
        return self

    def get_json(self, path: str, method: str = "GET") -> dict:
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stats(self) -> dict:
        """``GET /_sandbox/stats``."""
        return self.get_json("/_sandbox/stats")

    def reset_stats(self) -> None:
        """``POST /_sandbox/stats/reset``."""
        self.get_json("/_sandbox/stats/reset", method="POST")

    def stop(self) -> int | None:
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        code = self._proc.returncode
        self._proc = None
        return code

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
