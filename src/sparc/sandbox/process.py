"""Start ``sparc sandbox serve`` as a child process, for tests, benchmarks and the demo.

Example::

    with SandboxProcess(data_dir=tmp) as sb:
        os.environ.update(sb.env)          # PENNSIEVE_API_HOST=<sb.url>, O2SPARC_HOST=..., ...
        sb.set_faults([{"route": "GET /_assets/*", "kind": "truncate", "count": 1}])
        print(sb.stats()["requests_total"], sb.faults()[0]["hits"])
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from sparc.sandbox.settings import EXPORT_NAMES


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
                    if all(n in self.env for n in EXPORT_NAMES):
                        pointed.set()

        threading.Thread(target=read_exports, daemon=True).start()
        if not pointed.wait(self.startup_timeout):
            missing = [n for n in EXPORT_NAMES if n not in self.env]
            self.stop()
            raise RuntimeError(f"sandbox printed no export line for {', '.join(missing)}")
        return self

    def get_json(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Call a control route; a JSON ``body`` is sent as such. A 4xx raises ``ValueError``."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                detail = exc.read().decode(errors="replace")
                try:
                    detail = json.loads(detail)["error"]
                except (ValueError, KeyError, TypeError):
                    pass
                raise ValueError(f"{method} {path}: {detail}") from None
            raise

    def stats(self) -> dict:
        """``GET /_sandbox/stats``."""
        return self.get_json("/_sandbox/stats")

    def reset_stats(self) -> None:
        """``POST /_sandbox/stats/reset``."""
        self.get_json("/_sandbox/stats/reset", method="POST")

    def set_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the fault rules (``POST /_sandbox/faults``); ``ValueError`` names a bad rule.

        Example: ``sb.set_faults([{"route": "GET /_assets/*", "kind": "reset", "count": 1}])``.
        """
        return self.get_json("/_sandbox/faults", method="POST", body=rules)

    def faults(self) -> list[dict[str, Any]]:
        """The active rules with their ``hits`` and ``remaining`` counts (``GET /_sandbox/faults``)."""
        return self.get_json("/_sandbox/faults")

    def clear_faults(self) -> None:
        """Remove every fault rule (``DELETE /_sandbox/faults``)."""
        self.get_json("/_sandbox/faults", method="DELETE")

    def reset(self) -> None:
        """Clear the stats and the fault rules (``POST /_sandbox/reset``)."""
        self.get_json("/_sandbox/reset", method="POST")

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
