"""The fault-injection control plane over real HTTP: every kind, rates and seeds, counts, matching,
validation, ``/_sandbox/reset`` and ``bytes_sent`` under cut answers.

A dedicated sandbox per module (``--seed``, ``--time-scale 1``) keeps these faults away from the
session sandbox; every test starts and ends with no rules.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sparc.sandbox.process import SandboxProcess

pytestmark = pytest.mark.timeout(60)

SMALL = "files/derivative/sub-1/fiber_counts.csv"  # 4,096 bytes
MEDIUM = "files/dataset_description.xlsx"  # 189,677 bytes
SEED = 1234


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox of this module's own, with real delays (time-scale 1) and a fixed seed."""
    with SandboxProcess(tmp_path_factory.mktemp("faults"), "--time-scale", "1",
                        "--seed", str(SEED)) as sb:
        yield sb


@pytest.fixture
def sb(faulty: SandboxProcess) -> Iterator[SandboxProcess]:
    faulty.reset()
    yield faulty
    faulty.reset()


@pytest.fixture
def http(sb: SandboxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.url, timeout=20) as c:
        yield c


def asset_url(http: httpx.Client, path: str) -> str:
    """A fresh presigned asset URL for ``path`` in dataset 90 version 1."""
    folder, _, name = path.rpartition("/")
    manifest = http.post("/discover/datasets/90/versions/1/files/download-manifest",
                         json={"paths": [path]})
    manifest.raise_for_status()
    [entry] = [e for e in manifest.json()["data"] if e["fileName"] == name]
    return entry["url"]


def fetch(http: httpx.Client, url: str) -> tuple[bytes, BaseException | None]:
    """The body bytes received, and the transport error that ended the answer (if any)."""
    received = bytearray()
    try:
        with http.stream("GET", url) as response:
            for chunk in response.iter_raw():
                received += chunk
    except httpx.TransportError as exc:
        return bytes(received), exc
    return bytes(received), None


# --- each kind ---------------------------------------------------------------------------------------


def test_reset_before_the_answer_drops_the_connection(sb: SandboxProcess, http: httpx.Client) -> None:
    sb.set_faults([{"route": "/discover/datasets/*", "kind": "reset", "count": 1}])
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.get("/discover/datasets/90")
    assert http.get("/discover/datasets/90").status_code == 200  # spent after one use
    assert sb.stats()["requests"]["GET /discover/datasets/{datasetId}"] == 2


def test_reset_mid_body_sends_that_many_bytes_then_a_rst(sb: SandboxProcess,
                                                         http: httpx.Client) -> None:
    url = asset_url(http, MEDIUM)
    sb.reset_stats()
    sb.set_faults([{"route": "GET /_assets/*", "kind": "reset", "after_bytes": 50_000}])
    body, error = fetch(http, url)
    assert isinstance(error, httpx.ReadError | httpx.RemoteProtocolError)
    assert len(body) <= 50_000
    assert sb.stats()["bytes_sent"] == 50_000


def test_status_fault_speaks_each_service_s_error_shape(sb: SandboxProcess,
                                                        http: httpx.Client) -> None:
    url = asset_url(http, SMALL)
    sb.set_faults([{"route": "*", "kind": "status"}])
    discover = http.get("/discover/datasets/90")
    assert discover.status_code == 503 and discover.json() == "Service Unavailable"
    asset = http.get(url)
    assert asset.status_code == 503 and asset.headers["content-type"] == "application/xml"
    assert "<Code>SlowDown</Code>" in asset.text
    zipit = http.post("/zipit/discover", json={"data": {"datasetId": 90, "version": 1,
                                                        "paths": [SMALL, MEDIUM]}})
    assert zipit.status_code == 503 and zipit.text == "Service Unavailable"
    assert zipit.headers["content-type"].startswith("text/plain")

    sb.set_faults([{"route": "/discover/*", "kind": "status", "status": 500},
                   {"route": "/_assets/*", "kind": "status", "status": 500}])
    internal = http.get("/discover/datasets/90")
    assert (internal.status_code, internal.text) == (500, "There was an internal server error.")
    assert "<Code>InternalError</Code>" in http.get(url).text


def test_retry_after_answers_429_with_the_header(sb: SandboxProcess, http: httpx.Client) -> None:
    sb.set_faults([{"route": "/discover/*", "kind": "retry_after", "seconds": 7}])
    response = http.get("/discover/datasets/90")
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json() == "Too Many Requests"
    sb.set_faults([{"route": "/_assets/*", "kind": "retry_after", "status": 503}])
    response = http.get(asset_url(http, SMALL))
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")


def test_slow_delays_the_answer_or_stalls_mid_body(sb: SandboxProcess, http: httpx.Client) -> None:
    url = asset_url(http, MEDIUM)
    whole = http.get(url).content
    sb.set_faults([{"route": "/discover/datasets/*", "kind": "slow", "seconds": 0.6}])
    started = time.monotonic()
    assert http.get("/discover/datasets/90").status_code == 200
    assert time.monotonic() - started >= 0.55

    sb.set_faults([{"route": "GET /_assets/*", "kind": "slow", "seconds": 0.6,
                    "after_bytes": 1000}])
    stamps: list[tuple[int, float]] = []
    received = 0
    with http.stream("GET", url) as response:
        for chunk in response.iter_raw():
            received += len(chunk)
            stamps.append((received, time.monotonic()))
    assert received == len(whole)
    gaps = [(n, later - earlier) for (n, earlier), (_, later) in zip(stamps, stamps[1:], strict=False)]
    stall = max(gaps, key=lambda g: g[1])
    assert stall[1] >= 0.55 and stall[0] == 1000  # the pause came right after byte 1,000


def test_truncate_sends_full_length_then_closes(sb: SandboxProcess, http: httpx.Client) -> None:
    url = asset_url(http, MEDIUM)
    sb.reset_stats()
    sb.set_faults([{"route": "GET /_assets/*", "kind": "truncate", "after_bytes": 12_345}])
    with pytest.raises(httpx.RemoteProtocolError, match="received 12345 bytes, expected 189677"):
        http.get(url)
    assert sb.stats()["bytes_sent"] == 12_345


def test_truncate_defaults_to_mid_body_and_never_completes(sb: SandboxProcess,
                                                           http: httpx.Client) -> None:
    url = asset_url(http, SMALL)
    sb.set_faults([{"route": "GET /_assets/*", "kind": "truncate"}])
    body, error = fetch(http, url)
    assert isinstance(error, httpx.RemoteProtocolError) and len(body) == 2048
    sb.set_faults([{"route": "GET /_assets/*", "kind": "truncate", "after_bytes": 10**9}])
    body, error = fetch(http, url)  # past the end: cut before the last byte
    assert isinstance(error, httpx.RemoteProtocolError) and len(body) == 4095


def test_truncate_a_chunked_zipit_archive(sb: SandboxProcess, http: httpx.Client) -> None:
    request = {"data": {"datasetId": 90, "version": 1, "paths": [SMALL, MEDIUM]}}
    whole = http.post("/zipit/discover", json=request).content
    sb.set_faults([{"route": "POST /zipit/*", "kind": "truncate", "after_bytes": 5000}])
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with http.stream("POST", "/zipit/discover", json=request) as response:
            assert "content-length" not in response.headers
            for chunk in response.iter_raw():
                received += chunk
    assert bytes(received) == whole[:5000]


def test_corrupt_flips_one_byte(sb: SandboxProcess, http: httpx.Client) -> None:
    url = asset_url(http, MEDIUM)
    good = http.get(url)
    sb.set_faults([{"route": "GET /_assets/*", "kind": "corrupt", "after_bytes": 100_000},
                   {"route": "GET /_assets/*", "kind": "corrupt"}])
    for offset in (100_000, len(good.content) // 2):
        bad = http.get(url)
        assert bad.status_code == 200 and bad.headers["etag"] == good.headers["etag"]
        differ = [i for i, (a, b) in enumerate(zip(good.content, bad.content, strict=True)) if a != b]
        assert len(bad.content) == len(good.content) and differ == [offset]
        assert bad.content[offset] == good.content[offset] ^ 0xFF
        sb.set_faults(sb.faults()[1:])  # the first rule matched; now the default offset


def test_expire_answers_as_s3_does_for_a_stale_link(sb: SandboxProcess, http: httpx.Client) -> None:
    url = asset_url(http, SMALL)
    sb.set_faults([{"route": "/_assets/*", "kind": "expire", "count": 1}])
    response = http.get(url)
    assert response.status_code == 403 and response.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in response.text
    assert "<X-Amz-Expires>" in response.text and "<ServerTime>" in response.text
    assert http.get(url).status_code == 200


# --- rates, seeds, counts, matching ----------------------------------------------------------------


def _pattern(http: httpx.Client, n: int = 40) -> list[int]:
    return [http.get("/discover/datasets/90").status_code for _ in range(n)]


def test_rate_draws_are_repeatable_with_a_seed(sb: SandboxProcess, http: httpx.Client) -> None:
    rules = [{"route": "/discover/datasets/*", "kind": "status", "rate": 0.5}]
    sb.set_faults(rules)
    first = _pattern(http)
    assert 5 < first.count(503) < 35 and set(first) == {200, 503}
    assert sb.faults()[0]["hits"] == first.count(503)
    sb.set_faults(rules)  # the same list again replays the same draws
    assert _pattern(http) == first


def test_seed_given_at_start_gives_the_same_draws(faulty: SandboxProcess, tmp_path: Path) -> None:
    rules = [{"route": "/discover/datasets/*", "kind": "status", "rate": 0.3}]
    (tmp_path / "faults.json").write_text(json.dumps(rules))
    with SandboxProcess(None, "--time-scale", "0", "--seed", str(SEED),
                        "--faults", str(tmp_path / "faults.json")) as other, \
            httpx.Client(base_url=other.url) as c:
        assert other.faults() == [{**rules[0], "status": 503, "hits": 0, "remaining": None}]
        from_file = _pattern(c)
    faulty.set_faults(rules)
    with httpx.Client(base_url=faulty.url) as c:
        assert _pattern(c) == from_file
    faulty.clear_faults()


def test_rate_zero_never_fires_and_count_spends_a_rule(sb: SandboxProcess,
                                                       http: httpx.Client) -> None:
    sb.set_faults([{"route": "*", "kind": "status", "rate": 0},
                   {"route": "/discover/*", "kind": "status", "status": 502, "count": 2}])
    assert _pattern(http, 4) == [502, 502, 200, 200]
    assert [(r["hits"], r["remaining"]) for r in sb.faults()] == [(0, None), (2, 0)]


def test_glob_and_method_matching(sb: SandboxProcess, http: httpx.Client) -> None:
    url = asset_url(http, SMALL)
    sb.set_faults([{"route": "HEAD /_assets/*", "kind": "status", "status": 500},
                   {"route": "/discover/datasets/9?", "kind": "status", "status": 502},
                   {"route": "POST /discover/*", "kind": "status", "status": 504}])
    assert http.head(url).status_code == 500
    assert http.get(url).status_code == 200  # HEAD only
    assert http.get("/discover/datasets/90").status_code == 502
    assert http.get("/discover/datasets/90/versions").status_code == 200  # '?' is one character
    assert http.get("/discover/datasets/100").status_code == 404  # not faulted: unknown id
    manifest = http.post("/discover/datasets/90/versions/1/files/download-manifest",
                         json={"paths": [SMALL]})
    assert manifest.status_code == 504
    assert http.get("/discover/search/datasets").status_code == 200


def test_first_matching_rule_wins(sb: SandboxProcess, http: httpx.Client) -> None:
    sb.set_faults([{"route": "/discover/datasets/90", "kind": "status", "status": 502},
                   {"route": "/discover/*", "kind": "status", "status": 504}])
    assert http.get("/discover/datasets/90").status_code == 502
    assert http.get("/discover/datasets/93").status_code == 504
    assert [r["hits"] for r in sb.faults()] == [1, 1]


def test_control_routes_are_never_faulted(sb: SandboxProcess, http: httpx.Client) -> None:
    sb.set_faults([{"route": "*", "kind": "reset"}])
    assert http.get("/_sandbox/stats").status_code == 200
    assert http.get("/_sandbox/faults").json()[0]["kind"] == "reset"
    assert http.post("/_sandbox/faults", json=[{"route": "/_sandbox/*", "kind": "reset"}]
                     ).status_code == 400


def test_faulted_requests_are_counted_under_their_route(sb: SandboxProcess,
                                                        http: httpx.Client) -> None:
    sb.set_faults([{"route": "/discover/*", "kind": "status"}])
    http.get("/discover/datasets/90")
    http.get("/discover/nope")
    assert sb.stats()["requests"] == {"GET /discover/datasets/{datasetId}": 1,
                                      "GET <unmatched>": 1}


# --- the control routes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "words"), [
    ({"route": "/x", "kind": "reset"}, "JSON list"),
    ([{"route": "/x", "kind": "explode"}], "kind must be one of"),
    ([{"route": "/x"}], "kind must be one of"),
    ([{"kind": "reset"}], "route must be a path glob"),
    ([{"route": "x/*", "kind": "reset"}], "must start with '/'"),
    ([{"route": "FETCH /x", "kind": "reset"}], "unknown method 'FETCH'"),
    ([{"route": "/x", "kind": "reset", "rate": 1.5}], "rate must be between 0 and 1"),
    ([{"route": "/x", "kind": "reset", "rate": "0.5"}], "rate must be a number"),
    ([{"route": "/x", "kind": "status", "status": 200}], "status must be an integer 400..599"),
    ([{"route": "/x", "kind": "slow", "seconds": -1}], "seconds must be a finite number"),
    ([{"route": "/x", "kind": "slow", "seconds": 1e308}], "seconds must be at most 3600"),
    ([{"route": "/x", "kind": "slow", "seconds": 3600.5}], "seconds must be at most 3600"),
    ([{"route": "/x", "kind": "retry_after", "seconds": 1e9}], "seconds must be at most 86400"),
    ([{"route": "/x", "kind": "truncate", "after_bytes": -1}], "after_bytes must be an integer"),
    ([{"route": "/x", "kind": "reset", "count": 0}], "count must be an integer >= 1"),
    ([{"route": "/x", "kind": "reset", "status": 503}], "'status' does not apply to kind 'reset'"),
    ([{"route": "/x", "kind": "slow", "after_byte": 3}], "'after_byte' does not apply"),
    (["reset"], "rule 0: expected an object"),
    ([{"route": "/x", "kind": "reset"}, {"route": "/x", "kind": "nope"}], "rule 1"),
])
def test_bad_rules_are_400_with_a_reason(sb: SandboxProcess, http: httpx.Client, body: object,
                                         words: str) -> None:
    sb.set_faults([{"route": "/keep", "kind": "reset"}])
    response = http.post("/_sandbox/faults", json=body)
    assert response.status_code == 400 and words in response.json()["error"]
    assert [r["route"] for r in sb.faults()] == ["/keep"]  # all or nothing
    with pytest.raises(ValueError, match="rule|JSON list"):
        sb.set_faults(body)  # type: ignore[arg-type]


def test_a_body_that_is_not_json_is_400(http: httpx.Client) -> None:
    response = http.post("/_sandbox/faults", content=b"[{")
    assert response.status_code == 400 and "JSON list" in response.json()["error"]


def test_get_post_delete_and_round_trip(sb: SandboxProcess, http: httpx.Client) -> None:
    posted = http.post("/_sandbox/faults", json=[{"route": "GET /discover/*", "kind": "slow",
                                                  "seconds": 0, "count": 3}])
    assert posted.status_code == 200
    listing = [{"route": "GET /discover/*", "kind": "slow", "rate": 1.0, "count": 3,
                "seconds": 0.0, "hits": 0, "remaining": 3}]
    assert posted.json() == listing
    http.get("/discover/datasets/90")
    listing[0].update(hits=1, remaining=2)
    assert http.get("/_sandbox/faults").json() == listing
    assert http.post("/_sandbox/faults", json=listing).status_code == 200  # a listing posts back
    assert http.get("/_sandbox/faults").json()[0]["hits"] == 0  # as new rules
    assert http.delete("/_sandbox/faults").json() == []
    assert sb.faults() == []


def test_reset_route_clears_stats_and_faults(sb: SandboxProcess, http: httpx.Client) -> None:
    sb.set_faults([{"route": "/discover/*", "kind": "status"}])
    http.get("/discover/datasets/90")
    answer = http.post("/_sandbox/reset").json()
    assert answer == {"stats": {"requests_total": 0, "requests": {}, "bytes_sent": 0,
                                "bytes_received": 0}, "faults": []}
    assert http.get("/discover/datasets/90").status_code == 200


def test_bytes_sent_counts_body_bytes_that_left(sb: SandboxProcess, http: httpx.Client) -> None:
    url = asset_url(http, MEDIUM)
    sb.reset_stats()
    assert len(http.get(url).content) == 189_677
    assert sb.stats()["bytes_sent"] == 189_677  # body only: no headers
    http.head(url)
    assert sb.stats()["bytes_sent"] == 189_677  # HEAD sends no body
    sb.set_faults([{"route": "GET /_assets/*", "kind": "truncate", "after_bytes": 70_000},
                   {"route": "/discover/*", "kind": "status"}])
    fetch(http, url)
    http.get("/discover/datasets/90")
    assert sb.stats()["bytes_sent"] == 189_677 + 70_000 + len(b'"Service Unavailable"')


def test_bad_faults_file_stops_the_server_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "faults.json").write_text('[{"route": "/x", "kind": "melt"}]')
    done = subprocess.run([sys.executable, "-m", "sparc.cli", "sandbox", "serve", "--port", "0",
                           "--faults", str(tmp_path / "faults.json")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "rule 0: kind must be one of" in done.stderr and "Traceback" not in done.stderr


def test_asset_faults_reach_zipit_s_own_fetches(sb: SandboxProcess, http: httpx.Client) -> None:
    import io
    import zipfile

    sb.set_faults([{"route": "GET /_assets/*", "kind": "status", "status": 500, "count": 1}])
    paths = ["metadata/records/award.csv", "metadata/records/term.csv"]
    response = http.post("/zipit/discover",
                         json={"data": {"datasetId": 90, "version": 1, "paths": paths}})
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        report = archive.read("!ERROR.txt").decode()
    assert "FILE Error:" in report and "award.csv" in report
    assert any(name.endswith("term.csv") for name in names)
    assert sb.faults()[0]["remaining"] == 0


def test_slow_fault_ends_with_its_client_and_never_holds_the_shutdown(
        tmp_path: Path) -> None:
    """A 1000 s ``slow`` rule: a client that gives up after 1 s ends the wait at once (the
    request is over in the stats), and SIGTERM stops the server within 5 s even while another
    client still waits."""
    stalled = SandboxProcess(tmp_path / "data", "--time-scale", "1").start()
    try:
        stalled.set_faults([{"route": "/discover/datasets/*", "kind": "slow", "seconds": 1000}])
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{stalled.url}/discover/datasets/90", timeout=1)
        key = "GET /discover/datasets/{datasetId}"
        deadline = time.monotonic() + 3
        while stalled.stats()["requests"].get(key) != 1:  # counted when the request ends
            assert time.monotonic() < deadline, stalled.stats()
            time.sleep(0.05)
        waiting = threading.Thread(target=_get_ignoring_errors,
                                   args=(f"{stalled.url}/discover/datasets/90",), daemon=True)
        waiting.start()
        while stalled.faults()[0]["hits"] < 2:  # the second request waits in its fault
            assert time.monotonic() < deadline + 5
            time.sleep(0.05)
    finally:
        sent = time.monotonic()
        code = stalled.stop()
        stopped_after = time.monotonic() - sent
    assert stopped_after < 5, f"the sandbox took {stopped_after:.1f} s to stop"
    assert code == 0


def _get_ignoring_errors(url: str) -> None:
    try:
        httpx.get(url, timeout=60)
    except httpx.HTTPError:
        pass
