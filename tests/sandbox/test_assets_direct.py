"""The asset store's small reads are answered by the front layer itself (``direct_answer``):
the same status, headers and bytes as the route gives, counted the same, over real HTTP.

With any fault rule installed the front layer sends every request through the app (the route),
so the same request is asked both ways: once with no rule, once with a rule that matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from sparc.sandbox.process import SandboxProcess

MANIFEST = "/discover/datasets/{}/versions/{}/files/download-manifest"
GENERATED = (120, 1, "files/primary/sub-1/ecap_run1.edf")  # 1 MiB generated, SSE-S3
STORED = (90, 1, "readme.md")  # stored text
KMS = (120, 1, "files/primary/sub-1/ecap_run2.edf")
BIG = (90, 1, "files/primary/sub-1/sam-1/recording_full.dat")  # 1 GiB: streamed, not direct
PER_REQUEST = {"x-amz-request-id", "x-amz-id-2", "date"}
NO_MATCH = [{"route": "GET /nothing/here", "kind": "status", "status": 503}]


@pytest.fixture
def both_ways(sandbox: SandboxProcess) -> Callable[..., tuple[httpx.Response, httpx.Response]]:
    """``both_ways(method, url, headers)``: the answer without fault rules (direct) and with a
    rule that matches nothing (through the route)."""
    def ask(method: str, url: str, headers: dict[str, str] | None = None,
            ) -> tuple[httpx.Response, httpx.Response]:
        sandbox.clear_faults()
        direct = httpx.request(method, url, headers=headers, timeout=30)
        sandbox.set_faults(NO_MATCH)
        try:
            routed = httpx.request(method, url, headers=headers, timeout=30)
        finally:
            sandbox.clear_faults()
        return direct, routed
    return ask


def url_of(sandbox: SandboxProcess, entry: tuple[int, int, str]) -> str:
    dataset, version, path = entry
    response = httpx.post(sandbox.url + MANIFEST.format(dataset, version), json={"paths": [path]},
                          timeout=30)
    return response.json()["data"][0]["url"]


def same(direct: httpx.Response, routed: httpx.Response) -> None:
    assert direct.status_code == routed.status_code
    assert [(k, v) for k, v in direct.headers.multi_items() if k not in PER_REQUEST] == \
        [(k, v) for k, v in routed.headers.multi_items() if k not in PER_REQUEST]
    assert {k for k, _ in direct.headers.multi_items()} >= PER_REQUEST - {"date"}
    assert _without_ids(direct.content) == _without_ids(routed.content)


def _without_ids(body: bytes) -> bytes:
    """An error body without its request ids (fresh for every request, as S3's)."""
    return re.sub(rb"<RequestId>[^<]*</RequestId><HostId>[^<]*</HostId>", b"", body)


@pytest.mark.parametrize("entry", [GENERATED, STORED, KMS])
@pytest.mark.parametrize(("method", "headers"), [
    ("GET", None),
    ("GET", {"Range": "bytes=1000-5095"}),
    ("GET", {"Range": "bytes=-100"}),
    ("GET", {"Range": "bytes=0-1,5-6"}),            # multi-range: the whole object
    ("GET", {"Range": "bytes=999999999-"}),          # unsatisfiable: 416 (through the route)
    ("GET", {"If-Range": '"nope"', "Range": "bytes=0-9"}),  # If-Range fails: the whole object
    ("GET", {"If-None-Match": "*"}),                 # 304 (through the route)
    ("GET", {"If-Match": '"nope"'}),                 # 412 (through the route)
    ("HEAD", None),
    ("HEAD", {"Range": "bytes=0-9"}),
])
def test_direct_answers_equal_the_route(sandbox: SandboxProcess, both_ways: Callable[..., tuple],
                                        entry: tuple[int, int, str], method: str,
                                        headers: dict[str, str] | None) -> None:
    same(*both_ways(method, url_of(sandbox, entry), headers))


def test_errors_and_streams_are_the_route_s(sandbox: SandboxProcess,
                                            both_ways: Callable[..., tuple]) -> None:
    url = url_of(sandbox, GENERATED)
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    direct, routed = both_ways("GET", tampered)
    assert direct.status_code == 403
    same(direct, routed)
    missing = url.split("?")[0].rsplit("/", 1)[0] + "/no-such-key?" + url.split("?")[1]
    assert both_ways("GET", missing)[0].status_code in (403, 404)
    big = url_of(sandbox, BIG)
    direct, routed = both_ways("GET", big, {"Range": "bytes=0-9999999"})  # > one block: streamed
    same(direct, routed)
    assert len(direct.content) == 10_000_000


def test_direct_answers_are_counted_as_the_route_s(sandbox: SandboxProcess) -> None:
    url = url_of(sandbox, GENERATED)
    sandbox.clear_faults()
    sandbox.reset_stats()
    httpx.get(url, headers={"Range": "bytes=0-4095"}, timeout=30)
    httpx.head(url, timeout=30)
    stats = sandbox.stats()
    assert stats["requests"]["GET /_assets/{bucket}/{key}"] == 1
    assert stats["requests"]["HEAD /_assets/{bucket}/{key}"] == 1
    assert stats["bytes_sent"] == 4096
