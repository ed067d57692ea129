"""Downloads: verified, atomic, resumable, parallel; zipit archives and their errors."""

from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.client._download import RemoteFile, fetch_to_file, partial_path
from sparc.client.errors import (
    ArchiveError,
    ArgumentError,
    ChecksumMismatchError,
    NotFoundError,
    PermissionDeniedError,
)
from sparc.client.services.pennsieve.zipit import save_zipit_response
from sparc.sandbox.process import SandboxProcess


def asset_requests(stats: dict) -> int:
    """How many file-byte requests the sandbox served (its asset route)."""
    return sum(n for route, n in stats["requests"].items()
               if route.startswith("GET ") and not route.startswith("GET /discover")
               and not route.startswith("GET /zipit"))


def records(client: SparcClient) -> list[dict]:
    return list(client.pennsieve.walk(90, version=1, path="metadata/records"))


def test_download_folder_in_parallel_verified(client: SparcClient, sandbox: SandboxProcess,
                                              tmp_path: Path) -> None:
    saved = client.pennsieve.download(90, "metadata/records", tmp_path / "out", max_workers=4)
    nodes = {n["path"]: n for n in records(client)}
    assert {str(p.relative_to(tmp_path / "out")) for p in saved} == set(nodes)
    for path in saved:
        node = nodes[str(path.relative_to(tmp_path / "out"))]
        assert path.stat().st_size == node["size"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == node["sha256"]

    sandbox.reset_stats()
    again = client.pennsieve.download(90, "metadata/records", tmp_path / "out")
    assert again == saved
    assert asset_requests(sandbox.stats()) == 0  # complete files are skipped


def test_interrupted_download_resumes_with_range(client: SparcClient, sandbox: SandboxProcess,
                                                 tmp_path: Path) -> None:
    big = _mid_size_file(client)
    entry = client.pennsieve.download_manifest(big["datasetId"], [big["path"]],
                                               big["datasetVersion"])["data"][0]
    remote = RemoteFile(entry["url"], int(entry["size"]), entry["sha256"])
    reference = fetch_to_file(client.pennsieve.http, remote, tmp_path / "ref.bin", progress=False)
    dest = tmp_path / "resumed.bin"
    half = remote.size // 2  # type: ignore[operator]
    partial_path(dest, remote).write_bytes(reference.read_bytes()[:half])

    sandbox.reset_stats()
    fetch_to_file(client.pennsieve.http, remote, dest, progress=False)
    stats = sandbox.stats()
    assert dest.read_bytes() == reference.read_bytes()
    assert asset_requests(stats) == 1
    assert stats["bytes_sent"] <= remote.size - half + 64 * 1024  # only the missing half moved
    assert not partial_path(dest, remote).exists()


def test_corrupt_partial_is_detected_and_redownloaded(client: SparcClient,
                                                      tmp_path: Path) -> None:
    node = records(client)[0]
    entry = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
    remote = RemoteFile(entry["url"], int(entry["size"]), entry["sha256"])
    dest = tmp_path / node["name"]
    partial_path(dest, remote).write_bytes(b"\0" * (remote.size // 2))  # type: ignore[operator]
    fetch_to_file(client.pennsieve.http, remote, dest, progress=False)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == node["sha256"]


def test_wrong_checksum_never_lands(client: SparcClient, tmp_path: Path) -> None:
    node = records(client)[0]
    entry = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
    lie = RemoteFile(entry["url"], int(entry["size"]), "0" * 64)
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        fetch_to_file(client.pennsieve.http, lie, tmp_path / "x.csv", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_several_files_come_as_one_zip(client: SparcClient, tmp_path: Path) -> None:
    nodes = records(client)
    with pytest.warns(UserWarning, match="does not end in .zip"):
        saved = client.pennsieve.download_file(file_list=nodes[:3], output_name=tmp_path / "three")
    assert saved == tmp_path / "three"  # exactly the name given
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == sorted(n["path"] for n in nodes[:3])
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
        first = nodes[0]
        assert hashlib.sha256(archive.read(first["path"])).hexdigest() == first["sha256"]


def test_zip_without_output_name_uses_zipit_name(client: SparcClient) -> None:
    saved = client.pennsieve.download_file(file_list=records(client)[:2])
    assert saved.parent == Path.cwd() and saved.suffix == ".zip"
    assert zipfile.is_zipfile(saved)


def zipit_stream(client: SparcClient, paths: list[str]):  # type: ignore[no-untyped-def]
    body = {"data": {"datasetId": 90, "version": 1, "paths": paths}}
    return client.pennsieve.http.stream("POST", client.pennsieve.resolve_url("/zipit/discover"),
                                        json=body)


def test_zipit_error_attachment_is_raised_not_saved(client: SparcClient, tmp_path: Path) -> None:
    with zipit_stream(client, ["nope/1.csv", "nope/2.csv"]) as response, \
            pytest.raises(ArchiveError) as info:
        save_zipit_response(response, tmp_path / "x.zip")
    assert "no data to download" in str(info.value) and info.value.status == 400
    assert list(tmp_path.iterdir()) == []


def test_zipit_error_entry_inside_archive_is_raised(client: SparcClient, tmp_path: Path) -> None:
    with zipit_stream(client, ["metadata/records/award.csv", "metadata/records/sample.csv",
                               "nope/1.csv"]) as response, pytest.raises(ArchiveError) as info:
        save_zipit_response(response, tmp_path / "x.zip")
    assert "left files out" in str(info.value) and "nope/1.csv" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_paths_are_named_before_anything_moves(client: SparcClient,
                                                       sandbox: SandboxProcess) -> None:
    with pytest.raises(NotFoundError, match="no file or folder 'nope.csv'"):
        client.pennsieve.download_file({"datasetId": 90, "datasetVersion": 1, "path": "nope.csv"})
    good = {"datasetId": 90, "datasetVersion": 1, "path": "metadata/records/award.csv"}
    sandbox.reset_stats()
    with pytest.raises(NotFoundError, match="'nope/x.csv'"):
        client.pennsieve.download_file([good, {**good, "path": "nope/x.csv"}])
    assert not any(r.startswith("POST /zipit") for r in sandbox.stats()["requests"])
    assert list(Path.cwd().iterdir()) == []


def test_repeated_files_are_downloaded_once(client: SparcClient) -> None:
    node = records(client)[0]
    saved = client.pennsieve.download_file([node, dict(node)])
    assert saved.name == node["name"] and saved.stat().st_size == node["size"]


def test_a_folder_node_comes_as_a_zip(client: SparcClient) -> None:
    folder = next(n for n in client.pennsieve.browse(90, 1, "metadata")
                  if n["name"] == "records")
    saved = client.pennsieve.download_file(folder)
    assert saved.suffix == ".zip" and len(zipfile.ZipFile(saved).namelist()) == 8


def test_files_of_two_datasets_are_refused(client: SparcClient) -> None:
    a = {"datasetId": 90, "datasetVersion": 1, "path": "manifest.json"}
    b = {"datasetId": 93, "datasetVersion": 1, "path": "manifest.json"}
    with pytest.raises(ArgumentError, match="ONE dataset version"):
        client.pennsieve.download_file([a, b])
    old = {"datasetId": 292, "datasetVersion": 1, "path": "manifest.json"}
    with pytest.raises(ArgumentError, match="292 v1, 292 v3"):
        client.pennsieve.download_file([old, {**old, "datasetVersion": 3}])
    with pytest.raises(ArgumentError, match="empty"):
        client.pennsieve.download_file([])


def test_download_into_existing_folder(client: SparcClient, tmp_path: Path) -> None:
    node = records(client)[0]
    saved = client.pennsieve.download_file(node, output_name=tmp_path)
    assert saved == tmp_path / node["name"]


def test_expired_link_is_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SandboxProcess(tmp_path / "sb", "--url-expiry", "1", "--time-scale", "0") as short:
        monkeypatch.setenv("PENNSIEVE_API_HOST", short.url)
        with SparcClient() as client:
            node = next(client.pennsieve.walk(90, version=1, path="metadata/records"))
            stale = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
            time.sleep(2.1)
            remote = RemoteFile(stale["url"], int(stale["size"]), stale["sha256"])
            with pytest.raises(PermissionDeniedError):
                fetch_to_file(client.pennsieve.http, remote, tmp_path / "a.csv", progress=False)

            def fresh() -> RemoteFile:
                e = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
                return RemoteFile(e["url"], int(e["size"]), e["sha256"])

            saved = fetch_to_file(client.pennsieve.http, remote, tmp_path / "a.csv",
                                  refresh=fresh, progress=False)
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == node["sha256"]


def test_size_cap_splits_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SandboxProcess(tmp_path / "sb", "--download-size-cap", "15000",
                        "--time-scale", "0") as capped:
        monkeypatch.setenv("PENNSIEVE_API_HOST", capped.url)
        with SparcClient() as client:
            saved = client.pennsieve.download(90, "metadata/records", tmp_path / "out", version=1)
            assert len(saved) == 8
            with pytest.raises(PermissionDeniedError, match="too large"):
                client.pennsieve.download(90, "manifest.json", tmp_path / "big", version=1)


def _mid_size_file(client: SparcClient) -> dict:
    """A generated file of 1-100 MB somewhere in the catalogue."""
    for hit in client.pennsieve.iter_files(page_size=200):
        if 1_000_000 <= hit["size"] <= 100_000_000:
            from sparc.client.services.pennsieve import relative_path
            return {**hit, "path": relative_path(hit)}
    raise AssertionError("no mid-size file in the sandbox catalogue")


@pytest.mark.slow
def test_one_gib_file_verified_in_constant_memory(client: SparcClient, tmp_path: Path) -> None:
    import resource

    node = client.pennsieve.get_file(90, "files/primary/sub-1/sam-1/recording_full.dat", 1)
    assert node["size"] == 2**30
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    saved = client.pennsieve.download_file({**node, "datasetId": 90, "datasetVersion": 1},
                                           output_name=tmp_path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert saved.stat().st_size == 2**30
    assert grown_mib < 200  # streamed, never held in memory


def test_download_names_missing_paths(client: SparcClient, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="'metadata/nope'"):
        client.pennsieve.download(90, ["metadata/records", "metadata/nope"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_client_is_usable_after_close(client: SparcClient) -> None:
    client.close()
    assert client.pennsieve.get_dataset(90)["id"] == 90


def test_dropped_connections_resume_within_one_call(sandbox: SandboxProcess, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from flaky_proxy import FlakyProxy

    caplog.set_level(logging.INFO, logger="sparc.client")
    with FlakyProxy(sandbox.url, drop_after=1_500_000, drops=2) as proxy:
        monkeypatch.setenv("PENNSIEVE_API_HOST", proxy.url)
        with SparcClient() as client:
            node = client.pennsieve.get_file(120, "files/primary/sub-1/ecap_run2.edf", 1)
            saved = client.pennsieve.download_file({**node, "datasetId": 120,
                                                    "datasetVersion": 1}, output_name=tmp_path)
        assert proxy.dropped == 2
    resumes = [r.getMessage() for r in caplog.records if "resuming at byte" in r.getMessage()]
    assert len(resumes) == 2, resumes
    assert saved.stat().st_size == node["size"] == 5_000_000
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == node["sha256"]
