"""Sandbox test helpers: an httpx client on the session sandbox and an OpenAPI response validator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

SPECS = Path(__file__).resolve().parents[1] / "data" / "specs"  # copies; sources in SOURCES.md
DISCOVER_SPEC = SPECS / "pennsieve-discover.yml"
ZIPIT_SPEC = SPECS / "pennsieve-zipit.yml"
SPEC_HOST = "https://api.pennsieve.io"


_NULL = {"type": "object", "nullable": True, "enum": [None]}


def _nullable(node: Any) -> None:
    """Let optional properties be ``null`` (Discover sends absent optional values as ``null``).

    Required properties stay strict. A ``$ref`` property becomes ``anyOf: [ref, null]``: OpenAPI 3.0 ignores
    siblings of ``$ref``, and ``{"allOf": [ref], "nullable": true}`` does not admit ``null`` under OAS 3.0.3
    (``nullable`` only qualifies a ``type`` in the same schema; openapi-schema-validator follows that).
    """
    if isinstance(node, dict):
        required = set(node.get("required", []))
        for name, prop in node.get("properties", {}).items():
            if name in required or not isinstance(prop, dict):
                continue
            if "$ref" in prop:
                node["properties"][name] = {"anyOf": [prop, _NULL]}
            else:
                prop["nullable"] = True
        for value in node.values():
            _nullable(value)
    elif isinstance(node, list):
        for value in node:
            _nullable(value)


class _Request:
    """openapi-core Request protocol over an httpx request, presented at api.pennsieve.io."""

    def __init__(self, request: httpx.Request) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        url = urlsplit(str(request.url))
        self.host_url = SPEC_HOST
        self.path = url.path
        self.full_url_pattern = SPEC_HOST + url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())), cookie=ImmutableMultiDict(), path={})
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "application/json")


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        from werkzeug.datastructures import Headers

        self.status_code = response.status_code
        self.data = response.content
        self.content_type = response.headers.get("content-type", "").split(";")[0]
        self.headers = Headers(list(response.headers.items()))


@pytest.fixture(scope="session")
def openapi() -> Any:
    from openapi_core import OpenAPI

    spec = yaml.safe_load(DISCOVER_SPEC.read_text())
    _nullable(spec.get("components", {}))
    return OpenAPI.from_dict(spec)


@pytest.fixture(scope="session")
def validate_zipit_request() -> Callable[[httpx.Request], None]:
    """Check a ``POST /zipit/discover`` request against the zipit spec (raises when invalid).

    The spec requires ``datasetid``, a typo: zipit's code (and every client) sends ``datasetId``, so the
    loaded spec is corrected to require ``datasetId``; everything else is checked as published.
    """
    from openapi_core import OpenAPI

    spec = yaml.safe_load(ZIPIT_SPEC.read_text())
    body = spec["components"]["schemas"]["DiscoverBodySchema"]
    body["required"] = ["datasetId" if r == "datasetid" else r for r in body["required"]]
    openapi = OpenAPI.from_dict(spec)

    def check(request: httpx.Request) -> None:
        openapi.validate_request(_Request(request))

    return check


@pytest.fixture(scope="session")
def validate(openapi: Any) -> Callable[[httpx.Response], Any]:
    """Check a Discover response against the spec; returns its JSON."""

    def check(response: httpx.Response) -> Any:
        openapi.validate_response(_Request(response.request), _Response(response))
        return response.json()

    return check


@pytest.fixture(scope="session")
def client(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def sample() -> Callable[[str], Any]:
    """Load a captured real response (``tests/data/specs/samples``); a missing one fails loudly."""

    def load(name: str) -> Any:
        return json.loads((SPECS / "samples" / name).read_text())

    return load
