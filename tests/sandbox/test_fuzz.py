"""Spec-driven fuzzing of the live sandbox (schemathesis 4 + hypothesis) over real HTTP.

Every operation of the Discover and zipit specs gets valid (``positive``) and invalid (``negative``)
requests. The only 5xx allowed are the deliberate emulations listed in ``FIDELITY.md``: akka-http's
plain-text 500 "There was an internal server error." (cases the deployed Discover handlers do not
catch) and Express's bare 500 page (zipit's body-parser failures). A crash (Starlette's "Internal
Server Error"), a dropped connection or a hang fails the test. Valid requests answered 2xx with JSON
are also checked against the Discover spec.

The quick pass (a few examples per operation, fixed seed) runs in ``make test``; the long pass
(``-m slow``) draws many more, unseeded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "data" / "specs"  # copies; sources in SOURCES.md
DISCOVER_SPEC, ZIPIT_SPEC = SPECS / "pennsieve-discover.yml", SPECS / "pennsieve-zipit.yml"
AKKA_500 = "There was an internal server error."
EXPRESS_500 = "<pre>Internal Server Error</pre>"
QUICK_EXAMPLES, LONG_EXAMPLES = 6, 150


def _discover_schema() -> Any:
    return schemathesis.openapi.from_path(str(DISCOVER_SPEC))


def _zipit_schema() -> Any:
    spec = yaml.safe_load(ZIPIT_SPEC.read_text())
    body = spec["components"]["schemas"]["DiscoverBodySchema"]  # the spec's `datasetid` typo
    body["required"] = ["datasetId" if r == "datasetid" else r for r in body["required"]]
    return schemathesis.openapi.from_dict(spec)


def _operations() -> list[tuple[str, Any, str]]:
    """``(label, operation, mount)`` for every operation of both specs."""
    out = []
    for schema, mount in ((_discover_schema(), "/discover"), (_zipit_schema(), "/zipit")):
        for result in schema.get_all_operations():
            operation = result.ok()
            out.append((f"{operation.method.upper()} {mount}{operation.path}", operation, mount))
    return out


OPERATIONS = _operations()


def deliberate(response: httpx.Response) -> bool:
    """A 5xx the sandbox sends on purpose, as the deployed services do."""
    content_type = response.headers.get("content-type", "")
    if response.status_code == 500 and content_type.startswith("text/plain"):
        return response.text == AKKA_500
    return response.status_code == 500 and content_type.startswith("text/html") and EXPRESS_500 in response.text


def send(client: httpx.Client, case: Any, mount: str) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/") + mount)
    kwargs.pop("allow_redirects", None)
    kwargs.pop("follow_redirects", None)
    request = client.build_request(kwargs.pop("method"), kwargs.pop("url"), **{
        k: v for k, v in kwargs.items() if k in ("params", "headers", "json", "content", "data", "cookies")})
    return client.send(request)


def run(client: httpx.Client, validate: Callable[[httpx.Response], Any], operation: Any, mount: str,
        mode: GenerationMode, examples: int, fixed_seed: bool) -> None:
    checked = settings(max_examples=examples, deadline=None, database=None, derandomize=fixed_seed,
                       suppress_health_check=list(HealthCheck))

    @checked
    @given(case=operation.as_strategy(generation_mode=mode))
    def probe(case: Any) -> None:
        try:
            response = send(client, case, mount)
        except httpx.TransportError as exc:
            raise AssertionError(f"{case.method} {case.formatted_path}: {exc!r}") from exc
        assert response.status_code < 500 or deliberate(response), (
            f"{response.status_code} for {case.method} {response.request.url}: {response.text[:300]!r}")
        if (mode is GenerationMode.POSITIVE and mount == "/discover" and 200 <= response.status_code < 300
                and response.headers.get("content-type", "").startswith("application/json")):
            validate(response)

    try:
        probe()
    except Unsatisfiable:  # nothing invalid to send (e.g. GET /tags has no parameters)
        assert mode is GenerationMode.NEGATIVE


@pytest.fixture(scope="module")
def fuzz_client(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=60) as c:
        yield c


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("label, operation, mount", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_quick_fuzz(fuzz_client: httpx.Client, validate, label: str, operation: Any, mount: str,
                    mode: GenerationMode) -> None:
    run(fuzz_client, validate, operation, mount, mode, QUICK_EXAMPLES, fixed_seed=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("label, operation, mount", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_long_fuzz(fuzz_client: httpx.Client, validate, label: str, operation: Any, mount: str,
                   mode: GenerationMode) -> None:
    run(fuzz_client, validate, operation, mount, mode, LONG_EXAMPLES, fixed_seed=False)


def test_every_spec_operation_is_served(fuzz_client: httpx.Client) -> None:
    """Each operation of the Discover spec has a sandbox route (no spec path answers "not found")."""
    for label, operation, mount in OPERATIONS:
        path = mount + operation.path.replace("{datasetId}", "90").replace("{versionId}", "1") \
            .replace("{organizationId}", "367").replace("{doiPrefix}", "10.26275").replace("{doiSuffix}", "x") \
            .replace("{sourcePackageId}", "N:package:x")
        response = fuzz_client.request(operation.method.upper(), path, params={"path": "x"})
        assert response.status_code != 405 and (response.status_code, response.text) != (404, "Not Found"), label


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),  # lone surrogates too
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
BODIES = {
    "/discover/datasets/90/versions/1/files/download-manifest": st.fixed_dictionaries(
        {}, optional={"paths": st.lists(st.text(), max_size=4) | JSON_VALUES, "rootPath": JSON_VALUES}),
    "/discover/datasets/275/preview": st.fixed_dictionaries({}, optional={"dataUseAgreementId": JSON_VALUES}),
    "/zipit/discover": st.fixed_dictionaries({}, optional={"data": st.fixed_dictionaries({}, optional={
        name: JSON_VALUES | st.just(90) for name in ("datasetId", "version", "paths", "rootPath", "archiveName",
                                                      "userToken")}) | JSON_VALUES}),
}


@pytest.mark.parametrize("path", list(BODIES))
def test_arbitrary_json_bodies(fuzz_client: httpx.Client, path: str) -> None:
    """Any JSON body (lone surrogates, huge numbers, wrong types) gets a documented answer."""

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(body=BODIES[path])
    def probe(body: Any) -> None:
        response = fuzz_client.post(path, content=json.dumps(body).encode(),
                                    headers={"content-type": "application/json"})
        assert response.status_code < 500 or deliberate(response), (
            f"{response.status_code} for {json.dumps(body)[:200]}: {response.text[:200]!r}")

    probe()
