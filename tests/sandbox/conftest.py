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

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
DISCOVER_SPEC = SHARED / "specs" / "pennsieve-discover.yml"
SPEC_HOST = "https://api.pennsieve.io"
PACKAGED_SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sparc" / "sandbox" / "catalogue" / "samples"


def _nullable(node: Any) -> None:
    """Mark every schema nullable: Discover sends absent optional values as ``null``."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str) or "allOf" in node:
            node["nullable"] = True
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

    if not DISCOVER_SPEC.exists():
        pytest.skip(f"{DISCOVER_SPEC} not found")
    spec = yaml.safe_load(DISCOVER_SPEC.read_text())
    _nullable(spec.get("components", {}))
    return OpenAPI.from_dict(spec)


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
    """Load a captured real response (``shared/specs/samples``, else the copy shipped with the sandbox)."""

    def load(name: str) -> Any:
        path = SHARED / "specs" / "samples" / name
        if not path.exists():
            path = PACKAGED_SAMPLES / name
            if not path.exists():
                pytest.skip(f"sample {name} not available")
        return json.loads(path.read_text())

    return load
