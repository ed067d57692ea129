"""Downloads: verified, atomic, resumable, parallel; zipit archives and their errors."""

from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path

import pytest

from sparc.client import SparcClient
from sparc.client._download import RemoteFile, fetch_file, partial_path
from sparc.client.errors import (
    ArchiveError,
    ArgumentError,
    ChecksumMismatchError,
    NotFoundError,
    PermissionDeniedError,
)
from sparc.client.services.pennsieve.zipit import save_archive_response
from sparc.sandbox.process import SandboxProcess


def asset_requests(stats: dict) -> int:
    """How many file-byte requests the sandbox served (its asset route)."""
    return sum(n for route, n in stats["requests"].items()
               if route.startswith("GET ") and not route.startswith("GET /discover")
               and not route.startswith("GET /zipit"))


def records(client: SparcClient) -> list[dict]:
    return list(client.pennsieve.walk(90, version=1, path="metadata/records"))


def reference_sha256(client: SparcClient, dataset: int, path: str, version: int = 1) -> str:
    """The sha256 of a file fetched the naive way (one plain httpx GET), to compare against:
    production (and the sandbox) give no sha256 for 4.x files."""
    import httpx

    entry = client.pennsieve.download_manifest(dataset, [path], version)["data"][0]
    return hashlib.sha256(httpx.get(entry["url"]).content).hexdigest()


def test_download_folder_in_parallel_verified(client: SparcClient, sandbox: SandboxProcess,
                                              tmp_path: Path) -> None:
    saved = client.pennsieve.download(90, "metadata/records", tmp_path / "out", max_workers=4)
    nodes = {n["path"]: n for n in records(client)}
    assert {str(p.relative_to(tmp_path / "out")) for p in saved} == set(nodes)
    for path in saved:
        node = nodes[str(path.relative_to(tmp_path / "out"))]
        assert path.stat().st_size == node["size"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == reference_sha256(
            client, 90, node["path"])

    sandbox.reset_stats()
    again = client.pennsieve.download(90, "metadata/records", tmp_path / "out")
    assert again == saved
    assert asset_requests(sandbox.stats()) == 0  # complete files are skipped


def test_interrupted_download_resumes_with_range(client: SparcClient, sandbox: SandboxProcess,
                                                 tmp_path: Path) -> None:
    big = _mid_size_file(client)
    entry = client.pennsieve.download_manifest(big["datasetId"], [big["path"]],
                                               big["datasetVersion"])["data"][0]
    remote = RemoteFile(entry["url"], int(entry["size"]), entry.get("sha256"))
    reference = tmp_path / "ref.bin"
    fetch_file(client.pennsieve.http, remote, reference)
    dest = tmp_path / "resumed.bin"
    half = remote.size // 2  # type: ignore[operator]
    partial_path(dest, remote).write_bytes(reference.read_bytes()[:half])

    sandbox.reset_stats()
    fetch_file(client.pennsieve.http, remote, dest)
    stats = sandbox.stats()
    assert dest.read_bytes() == reference.read_bytes()
    assert asset_requests(stats) == 1
    assert stats["bytes_sent"] <= remote.size - half + 64 * 1024  # only the missing half moved
    assert not partial_path(dest, remote).exists()


def test_corrupt_partial_is_detected_and_redownloaded(client: SparcClient,
                                                      tmp_path: Path) -> None:
    node = records(client)[0]
    entry = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
    remote = RemoteFile(entry["url"], int(entry["size"]), entry.get("sha256"))
    dest = tmp_path / node["name"]
    partial_path(dest, remote).write_bytes(b"\0" * (remote.size // 2))  # type: ignore[operator]
    fetch_file(client.pennsieve.http, remote, dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == reference_sha256(client, 90,
                                                                             node["path"])


def test_wrong_checksum_never_lands(client: SparcClient, tmp_path: Path) -> None:
    node = records(client)[0]
    entry = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
    lie = RemoteFile(entry["url"], int(entry["size"]), "0" * 64)
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        fetch_file(client.pennsieve.http, lie, tmp_path / "x.csv")
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
        assert hashlib.sha256(archive.read(first["path"])).hexdigest() == reference_sha256(
            client, 90, first["path"])


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
        save_archive_response(response, tmp_path / "x.zip")
    assert "no data to download" in str(info.value) and info.value.status == 500
    assert list(tmp_path.iterdir()) == []


def test_zipit_archive_missing_files_is_refused(client: SparcClient, tmp_path: Path) -> None:
    """zipit leaves out paths that match nothing (no !ERROR.txt for them): the entry count
    tells."""
    from sparc.client.errors import DownloadError

    with zipit_stream(client, ["metadata/records/award.csv", "metadata/records/sample.csv",
                               "nope/1.csv"]) as response, pytest.raises(DownloadError) as info:
        save_archive_response(response, tmp_path / "x.zip", expected_entries=3)
    assert "2 files, 3 were expected" in str(info.value)
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
    # links live 3 s (signed to the second: 2-3 s), long enough for a renewed one to be used
    # at once even on a loaded machine, short enough to wait out
    with SandboxProcess(tmp_path / "sb", "--url-expiry", "3", "--time-scale", "0") as short:
        monkeypatch.setenv("PENNSIEVE_API_HOST", short.url)
        with SparcClient() as client:
            node = next(client.pennsieve.walk(90, version=1, path="metadata/records"))
            stale = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
            time.sleep(3.1)
            remote = RemoteFile(stale["url"], int(stale["size"]), stale.get("sha256"))
            with pytest.raises(PermissionDeniedError):
                fetch_file(client.pennsieve.http, remote, tmp_path / "a.csv")

            def fresh() -> RemoteFile:
                e = client.pennsieve.download_manifest(90, [node["path"]], 1)["data"][0]
                return RemoteFile(e["url"], int(e["size"]), e.get("sha256"))

            saved = tmp_path / "a.csv"
            fetch_file(client.pennsieve.http, remote, saved, refresh=fresh)
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == reference_sha256(
                client, 90, node["path"])


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


def test_overlapping_paths_download_each_file_once(client: SparcClient,
                                                   tmp_path: Path) -> None:
    result = client.pennsieve.download(
        90, ["metadata/records", "metadata/records/award.csv", "metadata/records/"], tmp_path,
        version=1)
    assert len(result.files) == 8 and result.ok


def test_download_names_missing_paths(client: SparcClient, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="'metadata/nope'"):
        client.pennsieve.download(90, ["metadata/records", "metadata/nope"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_paths_are_whole_segments(client: SparcClient, tmp_path: Path) -> None:
    """A folder asked for is found through any file below it, at any depth; a path that is
    only the start of a name ('metadata/rec') matches nothing and is the only one named."""
    with pytest.raises(NotFoundError) as caught:
        client.pennsieve.download(90, ["metadata", "metadata/rec", "metadata/records/award.csv",
                                       "metadata/records"], tmp_path, version=1)
    message = str(caught.value)
    assert "no file or folder 'metadata/rec'" in message and "'metadata'" not in message
    assert "award" not in message and list(tmp_path.iterdir()) == []


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
    monkeypatch.setenv("PENNSIEVE_API_HOST", sandbox.url)
    with SparcClient() as direct:  # not through the proxy
        expected = reference_sha256(direct, 120, "files/primary/sub-1/ecap_run2.edf")
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == expected


# -- existing=, the sidecar record, the result object ----------------------------------------------
@pytest.fixture
def faults(sandbox: SandboxProcess):  # type: ignore[no-untyped-def]
    sandbox.clear_faults()
    try:
        yield sandbox
    finally:
        sandbox.clear_faults()


def test_existing_modes_and_the_sidecar(client: SparcClient, sandbox: SandboxProcess,
                                        tmp_path: Path) -> None:
    import json

    p = client.pennsieve
    out = tmp_path / "out"
    first = p.download(90, "metadata/records", out, version=1)
    assert len(first.downloaded) == 8 and first.ok and first.bytes_transferred == sum(
        f.size for f in first.files)
    sidecar = out / ".sparc" / "downloads.jsonl"
    lines = [json.loads(line) for line in sidecar.read_text().splitlines()]
    assert {r["path"] for r in lines} == {f.path for f in first.files}
    assert all({"size", "mtime_ns", "check", "checksum"} <= set(r) for r in lines)

    sandbox.reset_stats()
    again = p.download(90, "metadata/records", out, version=1)  # refresh: nothing moves
    assert len(again.skipped) == 8 and again.bytes_transferred == 0
    assert asset_requests(sandbox.stats()) == 0

    changed = out / "metadata/records/award.csv"
    changed.write_bytes(changed.read_bytes() + b"local edit\n")
    with pytest.warns(UserWarning, match="changed locally"):
        kept = p.download(90, "metadata/records", out, version=1, existing="skip")
    note = next(f for f in kept.files if f.local_path == changed)
    assert note.status == "skipped" and "changed locally" in note.note
    assert changed.read_bytes().endswith(b"local edit\n")

    refreshed = p.download(90, "metadata/records", out, version=1)  # refresh repairs it
    assert [f.path for f in refreshed.downloaded] == ["metadata/records/award.csv"]
    assert not changed.read_bytes().endswith(b"local edit\n")

    sandbox.reset_stats()
    overwritten = p.download(90, "metadata/records", out, version=1, existing="overwrite")
    assert len(overwritten.downloaded) == 8 and asset_requests(sandbox.stats()) == 8


def test_refresh_without_a_record_asks_the_server(client: SparcClient, sandbox: SandboxProcess,
                                                  tmp_path: Path) -> None:
    """A file already there, not downloaded by us: its MD5 goes out as If-None-Match; 304
    means it is current and nothing moves."""
    out = tmp_path / "out"
    client.pennsieve.download(90, "metadata/records/award.csv", out, version=1)
    (out / ".sparc" / "downloads.jsonl").unlink()
    sandbox.reset_stats()
    again = client.pennsieve.download(90, "metadata/records/award.csv", out, version=1)
    assert again.files[0].status == "skipped" and again.files[0].bytes_transferred == 0
    assert again.files[0].note in ("already there (md5 matches the server's ETag)",
                                   "already there (sha256 matches)")  # production: no sha256
    assert sandbox.stats()["bytes_sent"] < again.files[0].size  # JSON only, no file bytes


def test_refresh_without_a_record_knows_a_multipart_file(client: SparcClient,
                                                         sandbox: SandboxProcess,
                                                         tmp_path: Path) -> None:
    """A multipart object's ETag is no MD5 of the file: the file on disk is hashed per guessed
    part size (5 MiB here, 33 parts) against the ETag read with a one-byte range request."""
    path = "files/derivative/sub-f006/R/020-stitching/Segmentation_Stitcher.exf"
    out = tmp_path / "out"
    first = client.pennsieve.download(426, path, out)
    assert first.files[0].check == "md5-multipart"
    (out / ".sparc" / "downloads.jsonl").unlink()
    sandbox.reset_stats()
    again = client.pennsieve.download(426, path, out)
    found = again.files[0]
    assert found.status == "skipped" and found.check == "md5-multipart", found
    assert found.note == "already there (md5-multipart matches the server's ETag)"
    assert sandbox.stats()["bytes_sent"] < 100_000  # the manifest and one byte
    assert "downloads.jsonl" in str(list((out / ".sparc").iterdir()))  # recorded now
    sandbox.reset_stats()
    assert client.pennsieve.download(426, path, out).files[0].status == "skipped"
    assert asset_requests(sandbox.stats()) == 0  # the record is enough


def test_result_object(client: SparcClient, tmp_path: Path) -> None:
    import json

    result = client.pennsieve.download(90, "metadata/records", tmp_path, version=1)
    assert len(result) == 8 and all(isinstance(p, Path) and p.is_file() for p in result)
    assert result[0] == sorted(result)[0] and list(result) == sorted(result)
    assert result.summary().startswith("8 files: 8 downloaded, 0 skipped, 0 failed")
    data = json.loads(json.dumps(result.to_json()))
    assert data["downloaded"] == 8 and data["ok"] is True
    assert {f["check"] for f in data["files"]} <= {"sha256", "md5"}
    result.raise_for_failures()  # nothing failed
    from sparc.client import DownloadResult, FileResult
    from sparc.client.services.pennsieve import DownloadResult as Same

    assert DownloadResult is Same and isinstance(result.files[0], FileResult)


def test_a_small_file_shows_no_partial_name_and_still_resumes(
        client: SparcClient, faults: SandboxProcess, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, unnamed_files: bool) -> None:
    """A small file is received into an unnamed file (Linux): while it waits to resume after a
    break, nothing is in the folder; it resumes with a Range and lands whole."""
    import logging

    caplog.set_level(logging.INFO, logger="sparc.client")
    path = "metadata/records/award.csv"
    entry = client.pennsieve.download_manifest(90, [path], 1)["data"][0]
    remote = RemoteFile(entry["url"], int(entry["size"]), entry.get("sha256"))
    assert remote.size > 100  # type: ignore[operator]
    faults.set_faults([{"route": "GET /_assets/*/award.csv", "kind": "reset",
                        "after_bytes": 100, "count": 1}])
    seen: list[list[str]] = []
    dest = tmp_path / "award.csv"
    fetch_file(client.pennsieve.http, remote, dest,
               before_retry=lambda: seen.append(sorted(p.name for p in tmp_path.iterdir())))
    assert seen == ([[]] if unnamed_files else [[partial_path(dest, remote).name]])
    assert any("resuming at byte 100" in r.getMessage() for r in caplog.records)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == reference_sha256(client, 90, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["award.csv"]


def test_failed_files_are_reported_with_the_result(client: SparcClient, faults: SandboxProcess,
                                                   tmp_path: Path) -> None:
    from sparc.client.errors import DownloadError

    faults.set_faults([{"route": "GET /_assets/*/award.csv", "kind": "status", "status": 404}])
    with pytest.raises(DownloadError) as info:
        client.pennsieve.download(90, "metadata/records", tmp_path, version=1)
    result = info.value.result
    assert len(result.failed) == 1 and len(result.downloaded) == 7 and not result.ok
    failed = result.failed[0]
    assert failed.path == "metadata/records/award.csv" and isinstance(failed.error, NotFoundError)
    assert set(info.value.failures) == {"metadata/records/award.csv"}
    assert not (tmp_path / "metadata/records/award.csv").exists()


def test_ctrl_c_stops_every_transfer_within_a_second(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while four workers read stalled streams: all stop at once, partial files
    stay, and the next call resumes them."""
    import _thread
    import threading

    with SandboxProcess(tmp_path / "sb", "--time-scale", "1") as sb:
        monkeypatch.setenv("PENNSIEVE_API_HOST", sb.url)
        sb.set_faults([{"route": "GET /_assets/*", "kind": "slow", "after_bytes": 300_000,
                        "seconds": 10}])
        out = tmp_path / "out"
        with SparcClient() as client:
            timer = threading.Timer(1.5, _thread.interrupt_main)
            timer.start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                client.pennsieve.download(120, "files/primary", out, version=1, max_workers=4)
            stopped = time.monotonic() - started
            assert stopped < 1.5 + 1.0, stopped
            time.sleep(0.2)
            assert not [t for t in threading.enumerate() if t.name.startswith("sparc-download")]
            partials = list(out.rglob("*.incomplete"))
            assert partials and all(p.stat().st_size > 0 for p in partials)
            sb.clear_faults()
            sb.reset_stats()
            result = client.pennsieve.download(120, "files/primary", out, version=1)
            assert result.ok and not list(out.rglob("*.incomplete"))
            assert sb.stats()["bytes_sent"] < sum(f.size for f in result.files)


def test_ctrl_c_stops_workers_still_waiting_for_the_first_reply(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while every worker waits for response headers (the server answers after 20 s):
    the sockets are shut down, so every worker stops at once, not after the read timeout."""
    import _thread
    import threading

    with SandboxProcess(tmp_path / "sb", "--time-scale", "1") as sb:
        monkeypatch.setenv("PENNSIEVE_API_HOST", sb.url)
        sb.set_faults([{"route": "GET /_assets/*", "kind": "slow", "seconds": 20}])
        with SparcClient() as client:
            timer = threading.Timer(1.5, _thread.interrupt_main)
            interrupted = time.monotonic() + 1.5
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                client.pennsieve.download(120, "files/primary", tmp_path / "out", version=1,
                                          max_workers=4)
            while ([t for t in threading.enumerate() if t.name.startswith("sparc-download")]
                   and time.monotonic() - interrupted < 5):
                time.sleep(0.05)
            workers_stopped = time.monotonic() - interrupted
            assert sb.stats()["bytes_sent"] < 100_000  # no file byte had come: all waited
    assert workers_stopped < 1.5, workers_stopped


def test_dead_server_fails_in_bounded_time(tmp_path: Path) -> None:
    import socket

    from sparc.client._http import HttpCore
    from sparc.client.errors import TransportError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with HttpCore() as http, pytest.raises(TransportError):
        fetch_file(http, RemoteFile(f"http://127.0.0.1:{port}/_assets/b/k", 10), tmp_path / "k")
    assert time.monotonic() - started < 20


def test_multi_file_zip_resumes_after_a_failure(client: SparcClient, faults: SandboxProcess,
                                                tmp_path: Path) -> None:
    from sparc.client.errors import DownloadError

    nodes = records(client)[:3]
    dest = tmp_path / "three.zip"
    faults.set_faults([{"route": "GET /_assets/*/" + nodes[2]["name"], "kind": "status",
                        "status": 404}])
    with pytest.raises(DownloadError):
        client.pennsieve.download_file(nodes, output_name=dest)
    assert not dest.exists()
    parts = tmp_path / ".three.zip.parts"
    assert (parts / nodes[0]["path"]).is_file()
    faults.clear_faults()
    faults.reset_stats()
    saved = client.pennsieve.download_file(nodes, output_name=dest)
    assert saved == dest and asset_requests(faults.stats()) == 1  # only the missing file
    with zipfile.ZipFile(dest) as archive:
        assert archive.namelist() == [n["path"] for n in nodes] and archive.testzip() is None
    assert not parts.exists()


def test_auth_is_sent_only_to_its_host_over_real_http(tmp_path: Path) -> None:
    import http.server
    import threading

    import httpx

    from sparc.client._http import HttpCore

    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.headers["Host"], self.headers.get("Authorization")))
            if self.path == "/hop":  # redirect to the same server under another name
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{port}/landed")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with HttpCore(auth=httpx.BasicAuth("key", "secret"), auth_hosts={"127.0.0.1"}) as core:
            core.request("GET", f"http://127.0.0.1:{port}/api")
            core.request("GET", f"http://localhost:{port}/elsewhere")
            core.request("GET", f"http://127.0.0.1:{port}/hop")
            core.request("GET", f"http://127.0.0.1:{port}/presigned", auth=False)
    finally:
        server.shutdown()
    by_path = dict(zip(["api", "elsewhere", "hop", "landed", "presigned"], seen, strict=True))
    assert by_path["api"][1] and by_path["api"][1].startswith("Basic ")
    assert by_path["elsewhere"][1] is None and by_path["landed"][1] is None
    assert by_path["hop"][1] is not None and by_path["presigned"][1] is None


def test_whole_version_archive(client: SparcClient, tmp_path: Path) -> None:
    from sparc.client.errors import DownloadTooLargeError

    saved = client.pennsieve.download_version_archive(396, output_name=tmp_path)
    version = client.pennsieve.get_dataset(396)["version"]
    assert saved == tmp_path / f"Pennsieve-dataset-396-version-{version}.zip"
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None and archive.namelist()
    assert not list(tmp_path.glob("*.incomplete")) and not list(tmp_path.glob(".*"))
    exact = client.pennsieve.download_version_archive(396, version, tmp_path / "v.zip")
    assert exact == tmp_path / "v.zip" and zipfile.is_zipfile(exact)
    with pytest.raises(DownloadTooLargeError, match="too large"):  # 90 holds a 1 GiB file
        client.pennsieve.download_version_archive(90, 1, tmp_path / "big.zip")
    assert not (tmp_path / "big.zip").exists()


def test_failed_and_repaired_files_say_what_moved_and_why(client: SparcClient,
                                                          faults: SandboxProcess,
                                                          tmp_path: Path) -> None:
    from sparc.client.errors import DownloadError

    award, file_csv = "metadata/records/award.csv", "metadata/records/file.csv"
    faults.set_faults([{"route": f"GET /_assets/*/{award}", "kind": "corrupt"},
                       {"route": f"GET /_assets/*/{file_csv}", "kind": "corrupt", "count": 1}])
    with pytest.raises(DownloadError) as info:
        client.pennsieve.download(90, [award, file_csv], tmp_path, version=1)
    result = info.value.result
    failed = result.failed[0]
    assert failed.path == award and failed.bytes_transferred == 2 * failed.size  # both tries
    message = str(info.value)
    assert message.startswith(f"1 file failed: {award}: md5 "), message
    assert message.count("award.csv") == 1, message
    repaired = result.downloaded[0]
    assert repaired.path == file_csv and repaired.bytes_transferred == 2 * repaired.size
    assert repaired.note == "checksum mismatch on the first download; downloaded again"
    assert result.bytes_transferred == 2 * failed.size + 2 * repaired.size


def test_download_file_returns_absolute_paths(client: SparcClient) -> None:
    nodes = records(client)[:2]
    archive = client.pennsieve.download_file(nodes, output_name="two.zip")  # cwd is tmp
    single = client.pennsieve.download_file(nodes[0], output_name="one.csv")
    assert archive.is_absolute() and archive == Path("two.zip").absolute()
    assert single.is_absolute() and single == Path("one.csv").absolute()
