"""Helpers for the o²S²PARC sandbox tests: an httpx client that checks every answer against the spec.

``api`` (fixture): an ``httpx.Client`` on the session sandbox with the sandbox user's Basic auth.
Every response it gets under ``/v0`` is validated against ``tests/data/specs/osparc-api.json``
(API 0.13.0, the official ``osparc`` 0.8.x client's contract): the JSON body against the schema the
spec gives for that operation and status, and every error body against ``ErrorGet``.
Import the fixtures a module uses by their function names, e.g.
``from o2sparc_helpers import api_fixture, auth_fixture  # noqa: F401`` (registers ``api``, ``auth``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "specs" / "osparc-api.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
SLEEPER = "simcore/services/comp/itis/sleeper"
CSV_STATS = "simcore/services/comp/sparc/csv-stats"
ENCODED_SLEEPER = SLEEPER.replace("/", "%2F")
TERMINAL = ("SUCCESS", "FAILED", "ABORTED")
STATES = SPEC["components"]["schemas"]["RunningState"]["enum"]

_FORMATS = FormatChecker()


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(re.match(r"^https?://[^\s/]+(/\S*)?$", value))


_REGISTRY = Registry().with_resource("spec", Resource.opaque(SPEC))


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({"$ref": "spec#" + schema["$ref"][1:]} if "$ref" in schema else
                                _rebase(schema), registry=_REGISTRY, format_checker=_FORMATS)


def _rebase(node: Any) -> Any:
    """Point the spec's local ``#/components/...`` refs at the registered ``spec`` resource."""
    if isinstance(node, dict):
        return {k: ("spec" + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _rebase(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def validate_schema(name: str, value: Any) -> None:
    """Check ``value`` against the spec's ``components.schemas[name]`` (raises when invalid)."""
    _validator({"$ref": f"#/components/schemas/{name}"}).validate(value)


def _template_regex(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part == "{solver_key}":
            out += "(.+?)"
        elif part.startswith("{"):
            out += "([^/]+)"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}$")


_OPERATIONS = [(_template_regex(path), path, method, op) for path, ops in SPEC["paths"].items()
               for method, op in ops.items()]
# literal paths (/v0/solvers/releases, .../jobs/page) win over templated ones
_OPERATIONS.sort(key=lambda entry: entry[1].count("{"))


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The spec's ``(path template, operation)`` for a request, or ``None``."""
    for regex, template, op_method, op in _OPERATIONS:
        if op_method == method.lower() and regex.match(path):
            return template, op
    return None


def check_response(response: httpx.Response) -> None:
    """Assert that ``response`` (to a ``/v0`` route) conforms to the spec; errors must be ErrorGet."""
    request = response.request
    path = unquote(urlsplit(str(request.url)).path)
    if not path.startswith("/v0/") or path.startswith("/v0/_storage/"):
        return
    response.read()
    status = response.status_code
    if status >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text
        body = response.json()
        schema = SPEC["components"]["schemas"]["HTTPValidationError" if status == 422 else "ErrorGet"]
        _validator(schema).validate(body)
        assert isinstance(body["errors"], list) and body["errors"], body
        if status == 422:
            for error in body["errors"]:
                assert {"loc", "msg", "type"} <= set(error), error
        else:
            assert "support_id" in body, body
        return
    found = operation(request.method, path)
    assert found is not None, f"{request.method} {path} is not in the spec"
    template, op = found
    spec_response = op["responses"].get(str(status))
    assert spec_response is not None, f"{request.method} {template}: status {status} is not in the spec"
    content = spec_response.get("content", {})
    if "application/json" in content and status not in (204, 307):
        _validator(content["application/json"]["schema"]).validate(response.json())


@pytest.fixture(scope="session", name="auth")
def auth_fixture(sandbox: Any) -> tuple[str, str]:
    return sandbox.env["O2SPARC_USERNAME"], sandbox.env["O2SPARC_PASSWORD"]


@pytest.fixture(scope="session", name="api")
def api_fixture(sandbox: Any, auth: tuple[str, str]) -> Iterator[httpx.Client]:
    """httpx on the sandbox with Basic auth; every ``/v0`` answer is checked against the spec."""
    with httpx.Client(base_url=sandbox.url, auth=auth, timeout=30,
                      event_hooks={"response": [check_response]}) as client:
        yield client


@pytest.fixture(scope="session", name="anonymous")
def anonymous_fixture(sandbox: Any) -> Iterator[httpx.Client]:
    """httpx on the sandbox without credentials (answers still checked against the spec)."""
    with httpx.Client(base_url=sandbox.url, timeout=30,
                      event_hooks={"response": [check_response]}) as client:
        yield client


def client_for(sb: Any) -> httpx.Client:
    """A checked, authenticated client on another sandbox (``sandbox_factory``)."""
    return httpx.Client(base_url=sb.url, auth=(sb.env["O2SPARC_USERNAME"], sb.env["O2SPARC_PASSWORD"]),
                        timeout=30, event_hooks={"response": [check_response]})


def upload(client: httpx.Client, data: bytes, filename: str = "data.txt") -> dict[str, Any]:
    """The osparc 0.8 upload flow over raw HTTP: links, PUT each chunk (no auth), complete."""
    user_file = {"filename": filename, "filesize": len(data),
                 "sha256_checksum": hashlib.sha256(data).hexdigest()}
    r = client.post("/v0/files/content", json=user_file)
    assert r.status_code == 200, r.text
    schema = r.json()["upload_schema"]
    size = schema["chunk_size"] or 1
    parts = []
    with httpx.Client(timeout=30) as s3:
        for number, url in enumerate(schema["urls"], start=1):
            put = s3.put(url, content=data[(number - 1) * size:number * size])
            assert put.status_code == 200, put.text
            parts.append({"number": number, "e_tag": json.loads(put.headers["etag"])})
    done = client.post(schema["links"]["complete_upload"],
                       json={"client_file": user_file, "uploaded_parts": {"parts": parts}})
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


def release_path(key: str = SLEEPER, version: str = "2.0.2", encoded: bool = True) -> str:
    return f"/v0/solvers/{key.replace('/', '%2F') if encoded else key}/releases/{version}"


def create_job(client: httpx.Client, values: dict[str, Any], key: str = SLEEPER,
               version: str = "2.0.2") -> dict[str, Any]:
    r = client.post(f"{release_path(key, version)}/jobs", json={"values": values})
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def wait(client: httpx.Client, job_path: str, timeout: float = 60) -> dict[str, Any]:
    """Inspect until ``stopped_at`` is set (the official tutorial's loop); the last JobStatus."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.post(f"{job_path}:inspect").json()
        assert status["state"] in STATES
        if status["stopped_at"]:
            return status
        assert time.monotonic() < deadline, f"job still {status['state']} after {timeout} s"
        time.sleep(0.02)


def run_job(client: httpx.Client, values: dict[str, Any], key: str = SLEEPER,
            version: str = "2.0.2") -> tuple[str, dict[str, Any]]:
    """Create, start and wait for a job: ``(job path, final JobStatus)``."""
    job = create_job(client, values, key, version)
    path = f"{release_path(key, version)}/jobs/{job['id']}"
    r = client.post(f"{path}:start")
    assert r.status_code == 202, r.text
    return path, wait(client, path)


def number_file(client: httpx.Client, number: int = 42) -> dict[str, Any]:
    return upload(client, f"{number}\n".encode(), f"number-{uuid.uuid4().hex[:8]}.txt")
