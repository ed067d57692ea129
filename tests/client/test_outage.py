"""A server that goes down mid-download: the whole download fails in about one file's retry
budget (the outage breaker stops files not yet started AND files already retrying), and only
files the server actually delivered count as signs of life."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparc.client import SparcClient
from sparc.client._http import HttpCore, RetryPolicy
from sparc.client.errors import DownloadError, TransportError
from sparc.sandbox.process import SandboxProcess

FOLDER = "files/derivative/sub-f006/L/010-data-preparation"  # dataset 426: 17 files
#: Eight retries 0.25-0.5 s apart: one file's budget is 2-4 s, with little spread.
POLICY = RetryPolicy(max_retries=8, backoff=0.5, max_backoff=0.5)


def timed_failure(client: SparcClient, paths: str | list[str], out: Path) -> tuple[float, Any]:
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        client.pennsieve.download(426, paths, out, max_workers=4)
    return time.monotonic() - started, info.value.result


def test_an_outage_fails_a_folder_in_about_one_files_retry_budget(
        sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path) -> None:
    sb = sandbox_factory("--time-scale", "0")
    with SparcClient(config={"pennsieve_api_host": sb.url}, http=HttpCore(retry=POLICY)) as client:
        files = [n["path"] for n in client.pennsieve.walk(426, path=FOLDER)]
        assert len(files) >= 9
        # some files are already complete locally: skipping them says nothing about the server
        kept = [files[4], files[6], files[8]]
        client.pennsieve.download(426, kept, tmp_path / "out")
        sb.set_faults([{"route": "GET /_assets/*", "kind": "reset"}])
        one_file, _ = timed_failure(client, files[0], tmp_path / "one")
        whole, result = timed_failure(client, FOLDER, tmp_path / "out")
    print(f"one file {one_file:.1f} s, the folder {whole:.1f} s")
    assert whole < one_file + 2.0, (whole, one_file)  # before: 3 s + 6 s
    assert {f.path for f in result.skipped} == set(kept)
    assert len(result.failed) == len(files) - len(kept)
    errors = [str(f.error) for f in result.failed]
    assert all(isinstance(f.error, TransportError) for f in result.failed)
    assert any("not attempted" in e or "gave up retrying" in e for e in errors), errors


def test_a_failed_file_leaves_a_partial_only_when_bytes_arrived(
        sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path) -> None:
    """Failing before any byte leaves no empty ``.incomplete`` behind; failing after some keeps
    them, for the next run to resume from."""
    sb = sandbox_factory("--time-scale", "0")
    quick = RetryPolicy(max_retries=1, backoff=0.01, max_backoff=0.01)
    with SparcClient(config={"pennsieve_api_host": sb.url}, http=HttpCore(retry=quick)) as client:
        files = [n["path"] for n in client.pennsieve.walk(426, path=FOLDER)][:3]
        sb.set_faults([{"route": "GET /_assets/*", "kind": "status", "status": 500}])
        with pytest.raises(DownloadError):
            client.pennsieve.download(426, files, tmp_path / "none", max_workers=2)
        assert not [p for p in (tmp_path / "none").rglob("*") if p.is_file()
                    and p.parent.name != ".sparc"]
        sb.set_faults([{"route": "GET /_assets/*", "kind": "reset", "after_bytes": 100}])
        with pytest.raises(DownloadError):
            client.pennsieve.download(426, files[0], tmp_path / "some")
        partials = list((tmp_path / "some").rglob("*.incomplete"))
        assert len(partials) == 1 and partials[0].stat().st_size >= 100
