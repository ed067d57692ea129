"""A server that stalls: the wait is visible within seconds (an INFO line and a progress-bar
note), and a transfer that keeps stalling after a few bytes is given up by the low-speed limit
(``RetryPolicy.no_progress_limit``), however many attempts made some progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sparc.client import SparcClient
from sparc.client._download import RemoteFile, fetch_file, partial_path
from sparc.client._http import HttpCore, RetryPolicy
from sparc.client.errors import TransportError
from sparc.sandbox.process import SandboxProcess

KMS = "files/primary/sub-1/ecap_run2.edf"  # dataset 120: 5 MB


def remote_in(sandbox: SandboxProcess, http: HttpCore) -> RemoteFile:
    with SparcClient(config={"pennsieve_api_host": sandbox.url}, http=http) as client:
        entry = client.pennsieve.download_manifest(120, [KMS], 1)["data"][0]
    return RemoteFile(entry["url"], int(entry["size"]))


def test_a_stall_is_logged_and_noted_within_seconds(
        sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sparc.client")
    sb = sandbox_factory("--time-scale", "1")
    sb.set_faults([{"route": "GET /_assets/*", "kind": "slow", "after_bytes": 100_000,
                    "seconds": 7, "count": 1}])
    notes: list[str] = []
    with HttpCore() as http:
        remote = remote_in(sb, http)
        outcome = fetch_file(http, remote, tmp_path / "f.edf", on_note=notes.append)
    assert outcome.status == "downloaded" and (tmp_path / "f.edf").stat().st_size == remote.size
    assert any(n.startswith("waiting for data: ") for n in notes), notes
    assert int(next(n for n in notes if n.startswith("waiting"))[18:].split()[0]) >= 5
    lines = [r.getMessage() for r in caplog.records]
    assert sum("no data for" in line for line in lines) == 1, lines  # one line per stall
    assert any("data is coming again" in line for line in lines)


def test_a_server_stalling_after_every_few_bytes_is_given_up(
        sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path) -> None:
    """1,000 bytes then a 30 s stall on every attempt: each attempt makes progress (so the
    attempt budget never runs out), but the low-speed limit gives the file up."""
    sb = sandbox_factory("--time-scale", "1")
    policy = RetryPolicy(backoff=0.05, max_backoff=0.2, no_progress_limit=6.0)
    with HttpCore(timeout=httpx.Timeout(2.0, connect=5.0), retry=policy) as http:
        remote = remote_in(sb, http)
        sb.set_faults([{"route": "GET /_assets/*", "kind": "slow", "after_bytes": 1_000,
                        "seconds": 30}])
        started = time.monotonic()
        with pytest.raises(TransportError, match="the server stalls"):
            fetch_file(http, remote, tmp_path / "f.edf")
        took = time.monotonic() - started
    assert 6.0 <= took < 6.0 + 2.0 + 3.0, took  # the window, one read timeout, slack
    assert not (tmp_path / "f.edf").exists()
    assert partial_path(tmp_path / "f.edf", remote).stat().st_size >= 2_000  # kept, resumable
