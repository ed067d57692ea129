"""o²S²PARC api-server emulation: meta, auth, users, routing, solvers, injected faults.

Every answer of the ``api``/``anonymous`` clients is checked against the 0.13.0 spec
(``o2sparc_helpers.check_response``).
"""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from o2sparc_helpers import (  # noqa: F401
    CSV_STATS,
    ENCODED_SLEEPER,
    SLEEPER,
    anonymous_fixture,
    api_fixture,
    auth_fixture,
    check_response,
    release_path,
)

OEC_IN_MESSAGE = re.compile(r"Thank you for your patience\. \[OEC:[a-f0-9]{12}-\d{13,14}\]$")


def test_meta_needs_no_auth_and_says_0_13_0(anonymous: httpx.Client) -> None:
    r = anonymous.get("/v0/meta")
    assert r.status_code == 200
    meta = r.json()
    assert meta["version"] == "0.13.0" and meta["name"] == "simcore_service_api_server"
    assert meta["docs_url"].startswith(str(anonymous.base_url).rstrip("/"))


PROTECTED = [("GET", "/v0/me"), ("PUT", "/v0/me"), ("GET", "/v0/files"), ("POST", "/v0/files/content"),
             ("GET", "/v0/solvers"), ("GET", f"/v0/solvers/{ENCODED_SLEEPER}/releases/2.0.2/ports"),
             ("POST", f"/v0/solvers/{ENCODED_SLEEPER}/releases/2.0.2/jobs"),
             ("GET", "/v0/files/00000000-0000-0000-0000-000000000000"),
             ("GET", "/v0/credits/price")]


@pytest.mark.parametrize("method, path", PROTECTED)
def test_missing_credentials_401(anonymous: httpx.Client, method: str, path: str) -> None:
    r = anonymous.request(method, path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Basic"
    assert r.json() == {"errors": ["Not authenticated"], "support_id": None}


@pytest.mark.parametrize("credentials", [("sandbox-key", "wrong"), ("wrong", "sandbox-secret"), ("", "")])
def test_wrong_credentials_401(anonymous: httpx.Client, credentials: tuple[str, str]) -> None:
    r = anonymous.get("/v0/me", auth=credentials)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Basic"
    assert r.json() == {"errors": ["Invalid API credentials"], "support_id": None}


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Bearer sandbox-secret"])
def test_malformed_authorization_401(anonymous: httpx.Client, header: str) -> None:
    r = anonymous.get("/v0/me", headers={"Authorization": header})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Basic"


def test_profile_get_and_update(api: httpx.Client) -> None:
    profile = api.get("/v0/me").json()
    assert profile["id"] > 0 and "@" in profile["login"] and profile["role"] == "USER"
    assert set(profile["groups"]) == {"me", "all", "organizations"}
    updated = api.put("/v0/me", json={"first_name": "Ada"}).json()
    assert updated["first_name"] == "Ada" and updated["last_name"] == profile["last_name"]
    assert api.get("/v0/me").json()["first_name"] == "Ada"
    api.put("/v0/me", json={"first_name": profile["first_name"]})


@pytest.mark.parametrize("body, loc", [({"first_name": 3}, ["body", "first_name"]),
                                        ({"last_name": "x" * 256}, ["body", "last_name"]),
                                        ([], ["body"])])
def test_profile_update_422(api: httpx.Client, body: object, loc: list[str]) -> None:
    r = api.put("/v0/me", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == loc


def test_422_for_a_body_that_is_not_json(api: httpx.Client) -> None:
    r = api.put("/v0/me", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["type"] == "json_invalid"
    missing = api.put("/v0/me")
    assert missing.status_code == 422 and missing.json()["errors"][0]["type"] == "missing"


def test_unknown_route_404_and_wrong_method_405_are_error_get(api: httpx.Client, anonymous: httpx.Client) -> None:
    for client in (api, anonymous):
        r = client.get("/v0/nothing/here")
        assert r.status_code == 404 and r.json() == {"errors": ["Not Found"], "support_id": None}
    r = api.delete("/v0/solvers")
    assert r.status_code == 405 and r.json()["errors"] == ["Method Not Allowed"]


def test_credits_price_is_free(api: httpx.Client) -> None:
    assert api.get("/v0/credits/price").json()["usdPerCredit"] is None


# ---- solvers -------------------------------------------------------------------------------------------
def test_list_solvers_latest_of_each(api: httpx.Client) -> None:
    solvers = api.get("/v0/solvers").json()
    by_id = {s["id"]: s for s in solvers}
    assert set(by_id) == {SLEEPER, CSV_STATS}
    assert by_id[SLEEPER]["version"] == "2.1.6"
    releases = api.get("/v0/solvers/releases").json()
    assert {(s["id"], s["version"]) for s in releases} >= {(SLEEPER, "2.0.2"), (SLEEPER, "2.1.6"),
                                                          (CSV_STATS, "1.0.0")}


@pytest.mark.parametrize("encoded", [True, False])
def test_solver_release_with_encoded_or_raw_key(api: httpx.Client, encoded: bool) -> None:
    solver = api.get(release_path(encoded=encoded)).json()
    assert solver["id"] == SLEEPER and solver["version"] == "2.0.2" and solver["title"] == "sleeper"
    base = str(api.base_url).rstrip("/")
    assert solver["url"] == f"{base}/v0/solvers/{SLEEPER}/releases/2.0.2"  # slashes left raw
    assert api.get(solver["url"]).json() == solver


def test_latest_and_releases_of_a_solver(api: httpx.Client) -> None:
    assert api.get(f"/v0/solvers/{ENCODED_SLEEPER}/latest").json()["version"] == "2.1.6"
    versions = [s["version"] for s in api.get(f"/v0/solvers/{ENCODED_SLEEPER}/releases").json()]
    assert versions == ["2.0.2", "2.1.6"]


def test_sleeper_ports_are_the_real_services(api: httpx.Client) -> None:
    page = api.get(release_path() + "/ports").json()
    ports = {(p["key"], p["kind"]): p["content_schema"] for p in page["items"]}
    assert page["total"] == len(page["items"]) == 6
    assert ports[("input_1", "input")]["type"] == "string"  # a file port
    assert ports[("input_2", "input")] == {"title": "Sleep interval", "type": "integer", "x_unit": "second",
                                           "minimum": 0, "maximum": 65}
    assert ports[("input_3", "input")]["type"] == "boolean"
    assert ports[("input_4", "input")]["x_unit"] == "meter"
    assert {k for k, kind in ports if kind == "output"} == {"output_1", "output_2"}
    newer = {p["key"] for p in api.get(release_path(version="2.1.6") + "/ports").json()["items"]}
    assert {"input_5", "output_3"} <= newer


@pytest.mark.parametrize("path, message", [
    (f"/v0/solvers/{ENCODED_SLEEPER}/releases/9.9.9", f"Solver {SLEEPER}:9.9.9 not found"),
    ("/v0/solvers/simcore%2Fservices%2Fcomp%2Fnope/releases/1.0.0", "Solver simcore/services/comp/nope:1.0.0 not found"),
    ("/v0/solvers/simcore%2Fservices%2Fcomp%2Fnope/latest", "Solver with id=simcore/services/comp/nope not found"),
    ("/v0/solvers/simcore%2Fservices%2Fcomp%2Fnope/releases",
     "Solver with id=simcore/services/comp/nope not found"),
    (f"/v0/solvers/{ENCODED_SLEEPER}/releases/9.9.9/ports",
     f"The program, solver, or project '{SLEEPER}' version 9.9.9 could not be found."),
    (f"/v0/solvers/{ENCODED_SLEEPER}/releases/9.9.9/jobs/page",
     f"The program, solver, or project '{SLEEPER}' version 9.9.9 could not be found."),
])
def test_unknown_solver_404(api: httpx.Client, path: str, message: str) -> None:
    r = api.get(path)
    assert r.status_code == 404
    assert r.json() == {"errors": [message], "support_id": None}


@pytest.mark.parametrize("path, loc", [
    ("/v0/solvers/simcore%2Fservices%2Fdynamic%2Fx/releases/1.0.0", ["path", "solver_key"]),
    (f"/v0/solvers/{ENCODED_SLEEPER}/releases/2.s.6", ["path", "version"]),
])
def test_malformed_path_parameters_422(api: httpx.Client, path: str, loc: list[str]) -> None:
    r = api.get(path)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [loc]


def test_a_job_id_that_is_not_a_uuid_matches_no_route(api: httpx.Client) -> None:
    """``{job_id:uuid}`` is a path convertor in the api-server: another id is an unknown route."""
    r = api.get(release_path() + "/jobs/not-a-uuid")
    assert r.status_code == 404 and r.json()["errors"] == ["Not Found"]


def test_pricing_plan_of_a_free_product_is_an_unexpected_error(api: httpx.Client) -> None:
    r = api.get(release_path() + "/pricing_plan")
    assert r.status_code == 500
    body = r.json()
    assert body["support_id"] is None and OEC_IN_MESSAGE.search(body["errors"][0])


# ---- injected faults answer in ErrorGet ------------------------------------------------------------------
def test_status_fault_on_v0_is_error_get(sandbox, api: httpx.Client) -> None:
    sandbox.set_faults([{"route": "POST /v0/solvers/*", "kind": "status", "status": 503, "count": 1}])
    r = api.post(release_path() + "/jobs", json={"values": {}})
    assert r.status_code == 503
    assert r.json() == {"errors": ["The Webserver service was unavailable."], "support_id": None}
    assert api.post(release_path() + "/jobs", json={"values": {}}).status_code == 201
    assert sandbox.faults()[0]["hits"] == 1


@pytest.mark.parametrize("status, message", [(502, "Received unexpected response from Webserver"),
                                             (504, "The Webserver service was unavailable."),
                                             (404, "Not Found")])
def test_other_status_faults(sandbox, api: httpx.Client, status: int, message: str) -> None:
    sandbox.set_faults([{"route": "/v0/files", "kind": "status", "status": status}])
    r = api.get("/v0/files")
    assert r.status_code == status and r.json() == {"errors": [message], "support_id": None}


def test_500_fault_carries_its_support_id_in_the_message(sandbox, api: httpx.Client) -> None:
    sandbox.set_faults([{"route": "GET /v0/solvers", "kind": "status", "status": 500}])
    body = api.get("/v0/solvers").json()
    assert body["support_id"] is None and OEC_IN_MESSAGE.search(body["errors"][0])


def test_retry_after_fault_keeps_the_header(sandbox, api: httpx.Client) -> None:
    sandbox.set_faults([{"route": "GET /v0/me", "kind": "retry_after", "seconds": 7}])
    r = api.get("/v0/me")
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json() == {"errors": ["The Webserver service was unavailable."], "support_id": None}
    sandbox.clear_faults()
    assert api.get("/v0/me").status_code == 200


def test_storage_faults_answer_as_s3(sandbox, api: httpx.Client) -> None:
    sandbox.set_faults([{"route": "PUT /v0/_storage/*", "kind": "status", "status": 503}])
    links = api.post("/v0/files/content", json={"filename": "f.txt", "filesize": 1,
                                                "sha256_checksum": "0" * 64}).json()
    r = httpx.put(links["upload_schema"]["urls"][0], content=b"x")
    assert r.status_code == 503 and b"<Code>SlowDown</Code>" in r.content


def test_reset_fault_on_v0_drops_the_connection(sandbox, api: httpx.Client) -> None:
    sandbox.set_faults([{"route": "POST /v0/files/content", "kind": "reset", "count": 1}])
    body = {"filename": "r.txt", "filesize": 1, "sha256_checksum": "0" * 64}
    with pytest.raises(httpx.TransportError):
        api.post("/v0/files/content", json=body)
    assert api.post("/v0/files/content", json=body).status_code == 200


def test_fault_routes_match_the_decoded_solver_key(sandbox, api: httpx.Client) -> None:
    """Keys arrive as ``%2F``; fault globs (like routing) see the decoded path."""
    sandbox.set_faults([{"route": "GET /v0/solvers/simcore/services/comp/itis/sleeper/releases/2.0.2",
                         "kind": "status", "status": 503}])
    assert api.get(release_path()).status_code == 503
    assert api.get(release_path(version="2.1.6")).status_code == 200
    requests = sandbox.stats()["requests"]
    assert requests["GET /v0/solvers/{solver_key}/releases/{version}"] >= 2
