"""The fault matrix: every fault kind x every client operation, against a real sandbox.

Each cell sets fault rules on the routes the operation depends on, runs the operation, and checks
the contract of issue 6: the client either completes with correct bytes (equal to a fault-free
run) after bounded retries, or raises the documented typed error (``sparc.client.errors``) within
a bounded time; never a hang, never a wrong file at its final name (``*.incomplete`` partials and
hidden bookkeeping are allowed). Every cell also checks that its fault really fired.

Cells expecting success (``OK``) are transient faults the retry/resume layer exists for; cells
with an error tuple are persistent faults (the error may also come inside a ``DownloadError``'s
``failures``); ``OK_OR`` cells accept either a correct result or that error.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sparc.client import SparcClient
from sparc.client.errors import (
    ChecksumMismatchError,
    DownloadError,
    LinkExpiredError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    SparcError,
    TransportError,
)
from sparc.sandbox.process import SandboxProcess

#: A hang guard, not a speed target: the slowest legitimate cell (a persistent stall past the
#: read timeout on 9 files, 4 at a time) needs about 3 x 6 attempts x 2 s.
BOUND = 45.0

FILE = "files/dataset_description.xlsx"  # 189,677 bytes, MD5 ETag
FOLDER = "metadata"  # 9 small files, MD5 ETags
RECORDS = "metadata/records"  # 8 files: the several-file download_file (zipit's job)
ARCHIVE_DATASET = 396  # the smallest dataset: its whole-version ZIP is ~77 kB

OK = "ok"


@dataclass(frozen=True)
class Scenario:
    """A fault (applied to each of an operation's routes) and what the client must do."""

    name: str
    rule: dict[str, Any]
    expect: str | tuple[type[BaseException], ...]
    also_ok: bool = False  # OK_OR: a correct result is fine too
    min_seconds: float = 0.0  # e.g. a Retry-After that must be honoured


def OK_OR(*errors: type[BaseException]) -> dict[str, Any]:  # noqa: N802
    return {"expect": errors, "also_ok": True}


SCENARIOS = [
    Scenario("reset-x2", {"kind": "reset", "count": 2}, OK),
    Scenario("reset-always", {"kind": "reset"}, (TransportError,)),
    Scenario("reset-mid-x2", {"kind": "reset", "after_bytes": 100, "count": 2}, OK),
    Scenario("503-x2", {"kind": "status", "status": 503, "count": 2}, OK),
    Scenario("503-always", {"kind": "status", "status": 503}, (ServerError,)),
    Scenario("429-x1", {"kind": "retry_after", "seconds": 1, "count": 1}, OK, min_seconds=0.9),
    Scenario("429-always", {"kind": "retry_after", "seconds": 1}, (RateLimitedError,)),
    Scenario("slow-x2", {"kind": "slow", "seconds": 0.5, "count": 2}, OK),
    Scenario("slow-past-timeout", {"kind": "slow", "seconds": 5}, (TransportError,)),
    Scenario("stall-mid-x2", {"kind": "slow", "seconds": 0.5, "after_bytes": 100, "count": 2}, OK),
    Scenario("truncate-x2", {"kind": "truncate", "count": 2}, OK),
    Scenario("truncate-always", {"kind": "truncate"}, (TransportError,)),
    Scenario("corrupt-x1", {"kind": "corrupt", "count": 1}, **OK_OR(ChecksumMismatchError)),
    Scenario("corrupt-always", {"kind": "corrupt"}, (ChecksumMismatchError,)),
    Scenario("expire-x1", {"kind": "expire", "count": 1}, OK),
    Scenario("expire-always", {"kind": "expire"}, (LinkExpiredError,)),
]


@dataclass
class Operation:
    """A client call, the routes it depends on, and how its outcome is compared."""

    name: str
    routes: list[str]
    run: Callable[[SparcClient, Path, dict[str, Any]], Any]
    output: str  # "json" | "files" | "zip"
    overrides: dict[str, Scenario] = field(default_factory=dict)


def _one_file(c: SparcClient, out: Path, ref: dict[str, Any]) -> Any:
    return c.pennsieve.download(90, FILE, output_dir=out)


def _file_dict(c: SparcClient, out: Path, ref: dict[str, Any]) -> Any:
    return c.pennsieve.download_file(ref["file_node"], output_name=out / Path(FILE).name)


def _folder(c: SparcClient, out: Path, ref: dict[str, Any]) -> Any:
    return c.pennsieve.download(90, FOLDER, output_dir=out)


def _several(c: SparcClient, out: Path, ref: dict[str, Any]) -> Any:
    return c.pennsieve.download_file(ref["record_nodes"], output_name=out / "records.zip")


def _version_archive(c: SparcClient, out: Path, ref: dict[str, Any]) -> Any:
    return c.pennsieve.download_version_archive(ARCHIVE_DATASET, output_name=out)


def _json_overrides(link_errors: tuple[type[BaseException], ...]) -> dict[str, Scenario]:
    """JSON answers: a flipped byte is never valid UTF-8, so a corrupt answer must be caught
    (retried, or any typed error); an S3 "expired" 403 from an API route is a permission error."""
    return {
        "corrupt-x1": Scenario("corrupt-x1", {"kind": "corrupt", "count": 1},
                               **OK_OR(SparcError)),
        "corrupt-always": Scenario("corrupt-always", {"kind": "corrupt"}, (SparcError,)),
        "expire-x1": Scenario("expire-x1", {"kind": "expire", "count": 1},
                              **OK_OR(*link_errors)),
        "expire-always": Scenario("expire-always", {"kind": "expire"}, link_errors),
    }


def _archive_overrides() -> dict[str, Scenario]:
    """The whole-version ZIP is one stream without Range support: a cut stream can only be
    fetched again from zero; a flipped byte is caught by the ZIP's CRCs."""
    mid = {"reset-mid-x2", "stall-mid-x2", "truncate-x2"}
    out = {s.name: Scenario(s.name, s.rule, **OK_OR(TransportError, DownloadError))
           for s in SCENARIOS if s.name in mid}
    out["truncate-always"] = Scenario("truncate-always", {"kind": "truncate"},
                                      (TransportError, DownloadError))
    out["corrupt-x1"] = Scenario("corrupt-x1", {"kind": "corrupt", "count": 1},
                                 **OK_OR(DownloadError))
    out["corrupt-always"] = Scenario("corrupt-always", {"kind": "corrupt"}, (DownloadError,))
    out["expire-x1"] = Scenario("expire-x1", {"kind": "expire", "count": 1},
                                **OK_OR(PermissionDeniedError))
    out["expire-always"] = Scenario("expire-always", {"kind": "expire"},
                                    (PermissionDeniedError,))
    return out


OPERATIONS = [
    Operation("search", ["/discover/search/*"],
              lambda c, out, ref: c.pennsieve.list_datasets(limit=25), "json",
              _json_overrides((PermissionDeniedError,))),
    Operation("walk", ["/discover/datasets/*/files/browse"],
              lambda c, out, ref: list(c.pennsieve.walk(90)), "json",
              _json_overrides((PermissionDeniedError,))),
    Operation("file", ["GET /_assets/*"], _one_file, "files"),
    Operation("file-manifest", ["POST /discover/datasets/*/files/download-manifest"], _one_file,
              "files", _json_overrides((PermissionDeniedError,))),
    Operation("file-dict", ["GET /_assets/*"], _file_dict, "files"),
    Operation("folder", ["GET /_assets/*"], _folder, "files"),
    Operation("several-zip", ["POST /zipit/*", "GET /_assets/*"], _several, "zip"),
    Operation("version-zip", ["/discover/datasets/*/versions/*/download"], _version_archive,
              "zip", _archive_overrides()),
]


# --- reading what an operation left on disk -----------------------------------------------------


def final_files(root: Path) -> dict[str, bytes]:
    """Every file at a final name below ``root``: not hidden, not a partial."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if path.name.endswith((".incomplete", ".part", ".partial")):
            continue
        out[rel.as_posix()] = path.read_bytes()
    return out


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def comparable(op: Operation, result: Any, root: Path) -> Any:
    """What a run produced, in a form equal between two correct runs."""
    if op.output == "json":
        return result
    files = final_files(root)
    if op.output == "zip":
        return {name: zip_members(data) for name, data in files.items()}
    return files


# --- the reference run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(faulty_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory,
              client_factory: Callable[..., SparcClient]) -> dict[str, Any]:
    """Fault-free results of every operation (and the file dicts some operations take)."""
    faulty_sandbox.reset()
    ref: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        with client_factory(faulty_sandbox, mp) as c:
            ref["file_node"] = c.pennsieve.get_file(90, FILE)
            ref["record_nodes"] = list(c.pennsieve.walk(90, path=RECORDS))
            for op in OPERATIONS:
                out = tmp_path_factory.mktemp(f"ref-{op.name}")
                ref[op.name] = comparable(op, op.run(c, out, ref), out)
    assert len(ref["folder"]) == 9 and len(ref["record_nodes"]) == 8
    assert any(name.endswith(".zip") for name in ref["version-zip"])
    return ref


def _errors_in(exc: BaseException) -> list[BaseException]:
    """The error and, for a DownloadError, the per-file errors it carries."""
    found = [exc]
    if isinstance(exc, DownloadError):
        found += list(exc.failures.values())
    return found


# --- the matrix ----------------------------------------------------------------------------------


#: Persistent stalls and 429s on the multi-file operations take 10-25 s each (the first
#: ``max_workers`` files run out their attempts before the download's outage breaker fails the
#: rest): they run with ``make test-slow`` (``-m slow``); the other persistent faults stay quick.
MULTI_FILE = {"folder", "several-zip"}
PERSISTENT = {"slow-past-timeout", "429-always"}
CELLS = [pytest.param(op, scenario, id=f"{op.name}-{scenario.name}",
                      marks=[pytest.mark.slow] if op.name in MULTI_FILE
                      and scenario.name in PERSISTENT else [])
         for op in OPERATIONS for scenario in SCENARIOS]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("op", "scenario"), CELLS)
def test_fault_matrix(op: Operation, scenario: Scenario, client: SparcClient,
                      faulty_sandbox: SandboxProcess, reference: dict[str, Any],
                      tmp_path: Path) -> None:
    scenario = op.overrides.get(scenario.name, scenario)
    out = tmp_path / "out"
    out.mkdir()
    faulty_sandbox.set_faults([{**scenario.rule, "route": route} for route in op.routes])

    started = time.monotonic()
    result: Any = None
    error: BaseException | None = None
    try:
        result = op.run(client, out, reference)
    except Exception as exc:  # judged below
        error = exc
    elapsed = time.monotonic() - started
    hits = sum(rule["hits"] for rule in faulty_sandbox.faults())
    faulty_sandbox.clear_faults()

    assert hits >= 1, f"the fault never fired on {op.routes}"
    assert elapsed < BOUND, f"{op.name} took {elapsed:.1f} s under {scenario.name}"
    got = comparable(op, result, out)
    if error is None:
        assert scenario.expect == OK or scenario.also_ok, (
            f"expected {scenario.expect} but {op.name} completed")
        assert got == reference[op.name], "completed with a wrong result"
        assert elapsed >= scenario.min_seconds, "a Retry-After was not honoured"
        return

    # failed: a typed error, within the bound, and nothing wrong at a final name
    if scenario.expect == OK:
        raise AssertionError(f"a transient fault should be absorbed; got "
                             f"{type(error).__name__}: {error}") from error
    if not isinstance(error, SparcError):
        raise AssertionError(f"untyped error {type(error).__module__}."
                             f"{type(error).__name__}: {error}") from error
    assert any(isinstance(e, scenario.expect) for e in _errors_in(error)), (
        f"expected {[t.__name__ for t in scenario.expect]}, got {type(error).__name__} "
        f"({[type(e).__name__ for e in _errors_in(error)]}): {error}")
    if op.output == "files":
        expected = reference[op.name]
        for name, data in got.items():
            assert data == expected.get(name), f"a wrong file at its final name: {name}"
        if isinstance(error, DownloadError):
            for path in error.failures:
                assert not (out / path).exists() or (out / path).read_bytes() == expected.get(
                    path), f"{path} failed but a file sits at its final name"
        if op.name in ("file", "file-manifest", "file-dict"):
            assert got == {}, "the download failed, yet a final file exists"
    elif op.output == "zip":
        assert got == {}, "the call failed, yet an archive sits at its final name"
