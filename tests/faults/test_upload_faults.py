"""The fault matrix over sign-in, the upload-service routes and S3: each upload either completes
with every byte stored as sent, or ends with a typed error in bounded time; a file is never
reported uploaded unless the server finalized (imported) it.

Faults come only from the sandbox (``set_faults`` and its ``/_workspace`` controls); the client
is the one users get, with its default retry counts (shorter waits, see ``conftest.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sparc.client import SparcClient
from sparc.client.errors import ServerError, SparcError
from sparc.sandbox.process import SandboxProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "upload"))
from upload_helpers import read_back, unique, write_tree  # noqa: E402

#: An upload that ends in a typed error must end within this many seconds.
BOUND = 90.0


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SPARC_UPLOAD_STATE_DIR", str(tmp_path / "records"))
    return tmp_path / "records"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Six small files in folders and one file of two multipart parts (8 MiB + 1 KiB)."""
    write_tree(tmp_path / "tree", 6, size=3000)
    (tmp_path / "tree" / "big.bin").write_bytes(bytes(range(256)) * (8 * 4096 + 4))
    return tmp_path / "tree"


def _upload(client: SparcClient, tree: Path) -> tuple[Any, str]:
    name = unique("fault")
    client.pennsieve.create_dataset(name)
    return client.pennsieve.upload(name, [tree], jobs=3, progress=False,
                                   part_size=8 * 2**20), name


def _assert_complete(client: SparcClient, sb: SandboxProcess, result: Any, tree: Path,
                     name: str) -> None:
    assert result.ok, result.failed
    assert len(result.uploaded) == 7
    stored = read_back(sb, client, result)
    assert stored == {str(p): p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    kinds = [p["content"]["packageType"] for p in client.pennsieve.list_packages(name)]
    assert len(kinds) - kinds.count("Collection") == 7  # each file once, no "(1)" copies


# -- transient faults: the upload completes, every byte right ---------------------------------
TRANSIENT = {
    "cognito 503": [{"route": "POST /cognito*", "kind": "status", "status": 503, "count": 2}],
    "cognito 429": [{"route": "POST /cognito*", "kind": "retry_after", "status": 429,
                     "seconds": 0, "count": 2}],
    "cognito-config reset": [{"route": "GET /authentication/cognito-config", "kind": "reset",
                              "count": 1}],
    "create/register 503": [{"route": "POST /upload/manifest", "kind": "status", "status": 503,
                             "count": 2}],
    "storage-credentials 500": [{"route": "POST /upload/manifest/storage-credentials",
                                 "kind": "status", "status": 500, "count": 1}],
    "finalize 502": [{"route": "POST /upload/manifest/files/finalize", "kind": "status",
                      "status": 502, "count": 2}],
    "finalize reset": [{"route": "POST /upload/manifest/files/finalize", "kind": "reset",
                        "count": 1}],
    "status 429": [{"route": "GET /upload/manifest/status", "kind": "retry_after", "status": 429,
                    "seconds": 0, "count": 3}],
    "upload routes 401": [{"route": "POST /upload/manifest*", "kind": "status", "status": 401,
                           "count": 1}],
    "S3 PUT 503": [{"route": "PUT /s3/*", "kind": "status", "status": 503, "count": 3}],
    "S3 PUT 500": [{"route": "PUT /s3/*", "kind": "status", "status": 500, "count": 2}],
    "S3 429": [{"route": "PUT /s3/*", "kind": "retry_after", "status": 429, "seconds": 0,
                "count": 2}],
    "S3 reset mid-part": [{"route": "PUT /s3/*", "kind": "reset", "count": 3}],
    "S3 stalls past the read timeout": [{"route": "PUT /s3/*", "kind": "slow", "seconds": 4,
                                         "count": 1}],
    "S3 multipart create/complete 503": [{"route": "POST /s3/*", "kind": "status",
                                          "status": 503, "count": 2}],
    "S3 random 5xx": [{"route": "/s3/*", "kind": "status", "status": 503, "rate": 0.3}],
}


@pytest.mark.parametrize("rules", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_transient_faults_complete(client: SparcClient, faulty_sandbox: SandboxProcess,
                                   records: Path, tree: Path, rules: list[dict[str, Any]]) -> None:
    faulty_sandbox.set_faults(rules)
    result, name = _upload(client, tree)
    assert any(r["hits"] for r in faulty_sandbox.faults()), "the fault never fired"
    faulty_sandbox.clear_faults()
    _assert_complete(client, faulty_sandbox, result, tree, name)


@pytest.fixture
def background(faulty_sandbox: SandboxProcess) -> Iterator[list[str]]:
    """Control routes to call three times, 0.6 s apart, while the test runs (e.g. expire every
    storage credential or token issued so far): expiry in the middle of the upload, without
    making the run a race the client cannot win on a loaded machine."""
    routes: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        calls = 0
        while calls < 3 and not stop.wait(0.6):
            for route in list(routes):
                faulty_sandbox.get_json(route, "POST")
                calls += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield routes
    stop.set()
    thread.join(5)


@pytest.mark.parametrize("route", ["/_workspace/expire-storage-credentials",
                                   "/_workspace/expire-tokens"])
def test_credentials_expiring_during_the_upload(client: SparcClient,
                                                faulty_sandbox: SandboxProcess, records: Path,
                                                tree: Path, background: list[str],
                                                route: str) -> None:
    name = unique("fault")
    client.pennsieve.create_dataset(name)
    # slow storage a little, so the upload is still running when the credentials expire
    faulty_sandbox.set_faults([{"route": "PUT /s3/*", "kind": "slow", "seconds": 0.5,
                                "count": 6}])
    background.append(route)
    result = client.pennsieve.upload(name, [tree], jobs=3, progress=False, part_size=8 * 2**20)
    background.clear()
    faulty_sandbox.clear_faults()
    _assert_complete(client, faulty_sandbox, result, tree, name)


def test_short_lived_storage_credentials_are_renewed(client: SparcClient,
                                                     faulty_sandbox: SandboxProcess,
                                                     records: Path, tree: Path) -> None:
    faulty_sandbox.get_json("/_workspace/lifetimes", "PUT", {"storage_credentials": 2})
    try:
        name = unique("fault")
        client.pennsieve.create_dataset(name)
        engine = client.pennsieve.upload_engine(name, jobs=2, progress=False)
        from sparc.client.services.pennsieve.upload import collect_files, plan_files

        files = plan_files(collect_files([tree]), part_size=8 * 2**20)
        # slow storage: the upload outlives its first credentials
        faulty_sandbox.set_faults([{"route": "PUT /s3/*", "kind": "slow", "seconds": 1.5,
                                    "count": 3}])
        result = engine.run(files)
        assert engine.storage.refreshes >= 1
        _assert_complete(client, faulty_sandbox, result, tree, name)
    finally:
        faulty_sandbox.get_json("/_workspace/lifetimes", "PUT", {"storage_credentials": 3600})


# -- persistent faults: a typed error or failed files, in bounded time --------------------------
def test_storage_always_failing_fails_every_file(client: SparcClient,
                                                 faulty_sandbox: SandboxProcess, records: Path,
                                                 tree: Path) -> None:
    # one small file and the multipart one, 3 at once: every file gives up in one round (each
    # S3 call is tried a few times with backoff: 7 files took over a minute on a loaded box)
    for extra in sorted(tree.rglob("*.txt"))[1:]:
        extra.unlink()
    faulty_sandbox.set_faults([{"route": "/s3/*", "kind": "status", "status": 503}])
    started = time.monotonic()
    result, name = _upload(client, tree)
    assert time.monotonic() - started < BOUND
    faulty_sandbox.clear_faults()
    assert result.uploaded == [] and len(result.failed) == 2
    # each reason names the S3 call and its last answer (503 SlowDown; a loaded machine may
    # time out first; or the 400 the sandbox gives a connection whose faulted request body it
    # never read, see the report)
    assert all(why.startswith("S3 ") for why in result.failed.values()), result.failed
    assert client.pennsieve.list_packages(name) == []


def test_storage_refusing_keys_fails_every_file(client: SparcClient,
                                                faulty_sandbox: SandboxProcess, records: Path,
                                                tree: Path) -> None:
    faulty_sandbox.set_faults([{"route": "/s3/*", "kind": "status", "status": 403}])
    started = time.monotonic()
    result, name = _upload(client, tree)
    assert time.monotonic() - started < BOUND
    assert result.uploaded == [] and all("AccessDenied" in why for why in result.failed.values())


@pytest.mark.parametrize("route", ["POST /upload/manifest/files/finalize",
                                   "POST /upload/manifest/storage-credentials",
                                   "POST /cognito*", "GET /upload/manifest/status"])
def test_service_routes_always_failing_raise_typed_errors(
        client: SparcClient, faulty_sandbox: SandboxProcess, records: Path, tree: Path,
        route: str) -> None:
    name = unique("fault")
    client.pennsieve.create_dataset(name)
    client.pennsieve.auth.sign_out()
    faulty_sandbox.set_faults([{"route": route, "kind": "status", "status": 500}])
    started = time.monotonic()
    outcome: Any = None
    try:
        outcome = client.pennsieve.upload(name, [tree], jobs=3, progress=False,
                                          part_size=8 * 2**20)
    except SparcError as exc:
        assert isinstance(exc, ServerError), repr(exc)
    assert time.monotonic() - started < BOUND
    faulty_sandbox.clear_faults()
    if outcome is not None:  # storage-credentials: every file failed, with the reason
        assert outcome.uploaded == [] and len(outcome.failed) == 7
        assert all("500" in why for why in outcome.failed.values()), outcome.failed
    if route != "GET /upload/manifest/status":
        assert client.pennsieve.list_packages(name) == []
