"""Every bad input of issue 6: a typed error, before any request when the fault is the
argument's, and never a raw httpx/ValueError; wrong folders and ids are NotFoundError."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.client.errors import ArgumentError, GoneError, NotFoundError, SparcError
from sparc.sandbox.process import SandboxProcess

GOOD = {"datasetId": 90, "datasetVersion": 1, "path": "metadata/records/award.csv"}


@pytest.mark.parametrize("call", [
    pytest.param(lambda p: p.download_file(None), id="download_file(None)"),
    pytest.param(lambda p: p.download_file("manifest.json"), id="download_file(str)"),
    pytest.param(lambda p: p.download_file([42]), id="download_file([42])"),
    pytest.param(lambda p: p.download_file({"datasetId": 90, "name": "a.csv"}), id="no uri"),
    pytest.param(lambda p: p.download_file(GOOD, output_name="a\x00b"), id="NUL output_name"),
    pytest.param(lambda p: p.download_file(GOOD, output_name=3.5), id="float output_name"),
    pytest.param(lambda p: p.download(90, [], "out"), id="download(90, [])"),
    pytest.param(lambda p: p.download(90, [7], "out"), id="download path not str"),
    pytest.param(lambda p: p.download(90, "a", "out", existing="sometimes"), id="existing"),
    pytest.param(lambda p: p.download(90, "a", "o\x00ut"), id="NUL output_dir"),
    pytest.param(lambda p: p.download(90, "a", "out", max_workers=0), id="max_workers=0"),
    pytest.param(lambda p: p.list_datasets(limit=10**9), id="limit=10**9"),
    pytest.param(lambda p: p.list_datasets(offset=9999, limit=2), id="offset+limit>10000"),
    pytest.param(lambda p: p.list_files(offset=10_000), id="files offset 10000"),
    pytest.param(lambda p: p.list_records(limit=10_001), id="records limit 10001"),
    pytest.param(lambda p: p.list_datasets(query=["cancer"]), id="query not text"),
    pytest.param(lambda p: p.get_file(90, None, 1), id="get_file(None)"),
    pytest.param(lambda p: p.get(5), id="get(5)"),
    pytest.param(lambda p: p.request(None, "/discover/datasets/90"), id="request(None)"),
    pytest.param(lambda p: p.list_datasets(order_by="bogus"), id="order_by"),
    pytest.param(lambda p: p.list_datasets(order_direction="up"), id="order_direction"),
    pytest.param(lambda p: p.list_datasets(order_by=1), id="order_by not text"),
    pytest.param(lambda p: p.download(90, "../etc/passwd", "out"), id="download ../"),
    pytest.param(lambda p: p.download(90, "files/../../etc", "out"), id="download a/../b"),
    pytest.param(lambda p: p.download_manifest(90, ["..\\x"], 1), id="manifest ..\\"),
    pytest.param(lambda p: p.get_dataset(2**31), id="id > int32"),
    pytest.param(lambda p: p.get_dataset(90, version=2**31), id="version > int32"),
    pytest.param(lambda p: p.download(2**40, "a", "out"), id="download id > int32"),
    pytest.param(lambda p: p.list_files(dataset_id=2**31), id="files dataset_id > int32"),
    pytest.param(lambda p: p.list_datasets(organization_id=2**63), id="org id > int32"),
])
def test_bad_arguments_are_argument_errors_before_any_request(
        client: SparcClient, sandbox: SandboxProcess, call) -> None:  # type: ignore[no-untyped-def]
    sandbox.reset_stats()
    with pytest.raises(ArgumentError):
        call(client.pennsieve)
    assert sandbox.stats()["requests_total"] == 0


def test_order_names_are_checked_but_not_their_case(client: SparcClient) -> None:
    page = client.pennsieve.list_datasets(order_by="Name", order_direction="ASC", limit=3)
    names = [d["name"] for d in page["datasets"]]
    assert names == sorted(names, key=str.lower) or names == sorted(names)


def test_dotdot_is_named(client: SparcClient) -> None:
    with pytest.raises(ArgumentError, match=r"'\.\.' segments"):
        client.pennsieve.download(90, "../etc/passwd", "out")


@pytest.mark.parametrize("make", [
    pytest.param(lambda: SparcClient(http=5), id="http=5"),
    pytest.param(lambda: SparcClient(http="http://x"), id="http=str"),
    pytest.param(lambda: SparcClient(profile=5), id="profile=5"),
    pytest.param(lambda: SparcClient(profile=""), id="profile=''"),
    pytest.param(lambda: SparcClient(connect=False).add_module(paths=5), id="add_module(5)"),
    pytest.param(lambda: SparcClient(connect=False).add_module(paths=[]), id="add_module([])"),
    pytest.param(lambda: SparcClient(connect=False).add_module(
        "sparc.client.services.pennsieve", config=5, connect=False), id="add_module config=5"),
])
def test_bad_client_arguments_are_argument_errors(
        make, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    sandbox.reset_stats()
    with pytest.raises(ArgumentError):
        make()
    assert sandbox.stats()["requests_total"] == 0


def test_a_huge_query_is_an_argument_error(client: SparcClient) -> None:
    started = time.monotonic()
    with pytest.raises(ArgumentError, match="too long"):
        client.pennsieve.list_datasets(query="x" * 100_000)
    assert time.monotonic() - started < 2


def test_wrong_folder_is_not_found(client: SparcClient, sandbox: SandboxProcess) -> None:
    with pytest.raises(NotFoundError, match="'nope' is not a folder"):
        client.pennsieve.browse(90, path="nope")
    with pytest.raises(NotFoundError, match="not a folder"):
        client.pennsieve.browse(90, version=1, path="metadata/nope/deeper")
    assert client.pennsieve.browse(90, version=1, path="metadata")  # a real folder still lists


def test_unknown_dataset_filter_is_not_found(client: SparcClient) -> None:
    with pytest.raises(NotFoundError):
        client.pennsieve.list_files(dataset_id=999999)
    with pytest.raises(NotFoundError):
        client.pennsieve.list_filenames(dataset_id=999999)
    assert client.pennsieve.list_files(dataset_id=90, query="zzzzqqqq") == []  # real, no hits


def test_unknown_version_is_not_found_at_once(client: SparcClient, sandbox: SandboxProcess,
                                              tmp_path) -> None:  # type: ignore[no-untyped-def]
    """download-manifest/browse of an unknown version answer a plain 500 in production:
    the client asks the version route instead of retrying the 500."""
    for call in (lambda p: p.download(90, "metadata", tmp_path, version=99),
                 lambda p: p.browse(90, version=99),
                 lambda p: p.download(987654, "metadata", tmp_path, version=1),
                 lambda p: p.download_manifest(987654, ["metadata"], 1)):
        sandbox.reset_stats()
        started = time.monotonic()
        with pytest.raises(NotFoundError):
            call(client.pennsieve)
        assert time.monotonic() - started < 2
        assert sandbox.stats()["requests_total"] <= 3  # no retries


def test_unpublished_dataset_is_gone_at_once(client: SparcClient, tmp_path: Path,
                                             tombstoned_id: int) -> None:
    gone = tombstoned_id
    started = time.monotonic()
    with pytest.raises(GoneError):
        client.pennsieve.download(gone, "files", tmp_path, version=1)
    with pytest.raises(GoneError):
        client.pennsieve.browse(gone, version=1)
    assert time.monotonic() - started < 3


def test_no_raw_exceptions_escape(client: SparcClient) -> None:
    """Odd but well-typed inputs end as SparcError subclasses, never httpx or bare errors."""
    for call in (lambda p: p.get("/discover/datasets/" + "9" * 30),
                 lambda p: p.get_file(90, "x" * 70_000, 1),
                 lambda p: p.list_datasets(query="\udcff")):
        with pytest.raises(SparcError):
            call(client.pennsieve)
