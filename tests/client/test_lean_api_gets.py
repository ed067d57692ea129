"""Plain unsigned API GETs (listings, searches) over the kept-alive sockets of file GETs, not
httpx: the same answers as httpx's, the same retries and errors, and httpx's own way whenever
credentials, cookies, a redirect, a body or an odd URL ask for it. Over the real sandbox (and a
small local server for what the sandbox never answers: cookies, redirects, gzip)."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sparc.client import SparcClient
from sparc.client._http import HttpCore
from sparc.client.errors import ArgumentError, NotFoundError, SparcError, TransportError
from sparc.sandbox.process import SandboxProcess


@pytest.fixture
def httpx_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs httpx sent (its real ``Client.send``, counted)."""
    sent: list[str] = []
    real = httpx.Client.send

    def counted(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(str(request.url))
        return real(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", counted)
    return sent


def test_listings_and_searches_send_nothing_through_httpx(client: SparcClient,
                                                          httpx_sends: list[str]) -> None:
    files = list(client.pennsieve.walk(318, 1, path="files/primary/sub-01", max_workers=4))
    found = client.pennsieve.list_datasets(query="cancer", limit=2)
    assert len(files) > 100 and found["datasets"]
    assert httpx_sends == []


def test_answers_are_httpx_answers(sandbox: SandboxProcess) -> None:
    """Status, headers in any case, JSON, the URL with its query (encoded as httpx encodes it)."""
    url = f"{sandbox.url}/discover/datasets/318/versions/1/files/browse"
    params = {"path": "files/primary/sub-01", "limit": 3, "offset": 1}
    with HttpCore() as lean, HttpCore() as plain:
        plain.fast_files = False
        ours, theirs = (h.request("GET", url, params=params) for h in (lean, plain))
    assert type(ours).__mro__[1] is httpx.Response
    assert ours.status_code == theirs.status_code == 200
    assert ours.json() == theirs.json() and len(ours.json()["files"]) == 3
    assert ours.headers["Content-Type"] == theirs.headers["content-type"]
    assert str(ours.request.url) == str(theirs.request.url) and ours.request.method == "GET"
    assert ours.url == theirs.url
    ours.raise_for_status()


def test_error_answers_and_retries_are_the_cores(faults: SandboxProcess,
                                                 httpx_sends: list[str]) -> None:
    url = f"{faults.url}/discover/search/datasets"
    with HttpCore() as http:
        faults.set_faults([{"route": "/discover/search/*", "kind": "retry_after", "seconds": 0,
                            "count": 1},
                           {"route": "/discover/search/*", "kind": "status", "status": 503,
                            "count": 1},
                           {"route": "/discover/search/*", "kind": "reset", "count": 1}])
        answer = http.request("GET", url, params={"query": "cancer", "limit": 1})
        assert answer.json()["datasets"]
        hits = sum(rule["hits"] for rule in faults.faults())
        assert hits == 3  # a 429, a 503 and a reset, each retried
        with pytest.raises(NotFoundError, match="404"):
            http.request("GET", f"{faults.url}/discover/datasets/999999")
        faults.set_faults([{"route": "/discover/search/*", "kind": "reset"}])
        with pytest.raises(TransportError, match=r"after 2 attempts"):
            http.request("GET", url, retries=1)
    assert httpx_sends == []


def test_credentials_bodies_and_long_urls_go_through_httpx(sandbox: SandboxProcess,
                                                          httpx_sends: list[str]) -> None:
    host = httpx.URL(sandbox.url).host
    url = f"{sandbox.url}/discover/datasets/90"
    with HttpCore(auth=httpx.BasicAuth("k", "s"), auth_hosts={host}) as signed:
        assert signed.request("GET", url).json()["id"] == 90
        assert signed.request("GET", url, auth=False).json()["id"] == 90  # no credentials
    assert httpx_sends == [url]
    with HttpCore() as http:
        http.request("GET", url, headers={"X-Trace": "1"})
        http.request("GET", url, timeout=5)
        assert len(httpx_sends) == 3
        with pytest.raises(ArgumentError, match="'query' too long"):
            http.request("GET", url, params={"q": "x" * 70_000})
        http.request("GET", url, idempotent=False)  # not to be retried: httpx's own way
        assert len(httpx_sends) == 4
    signed = HttpCore(auth=httpx.BasicAuth("k", "s"), auth_hosts={"bücher.example"})
    assert signed._lean_url("GET", "http://xn--bcher-kva.example/x", True, {}, None, {},
                            None) is None  # httpx matches the Unicode name: it signs this


class _Odd(http.server.BaseHTTPRequestHandler):
    """Answers the sandbox never gives: a cookie, a redirect, a gzip body."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, str]] = []  # path, Accept-Encoding, Cookie

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.seen.append((self.path, self.headers.get("Accept-Encoding", ""),
                          self.headers.get("Cookie", "")))
        body = json.dumps({"path": self.path}).encode()
        if self.path == "/teapot":
            self.send_response(418, "Short And Stout")
        else:
            self.send_response(302 if self.path == "/moved" else 200)
        if self.path == "/moved":
            self.send_header("Location", "/json")
            body = b""
        if self.path == "/cookie":
            self.send_header("Set-Cookie", "session=abc; Path=/")
        if self.path == "/gzip" and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        if self.path == "/badgzip":
            self.send_header("Content-Encoding", "gzip")  # but not gzip
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def odd_server() -> Iterator[str]:
    _Odd.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_odd_answers_read_as_httpx_reads_them(odd_server: str,
                                              httpx_sends: list[str]) -> None:
    """A body that does not decode, the server's own reason phrase, a path httpx rewrites."""
    with HttpCore() as http, HttpCore() as plain:
        plain.fast_files = False
        for core in (http, plain):
            _Odd.seen = []
            with pytest.raises(TransportError, match="failed: .*(decompress|gzip|header)"):
                core.request("GET", f"{odd_server}/badgzip")
            assert len(_Odd.seen) == 1  # a whole answer: not asked for again
            with pytest.raises(SparcError, match="418 Short And Stout"):
                core.request("GET", f"{odd_server}/teapot")
        assert len(httpx_sends) == 2  # the plain core's
        assert http.request("GET", f"{odd_server}/a/../json").json() == {"path": "/json"}
        assert httpx_sends[-1] == f"{odd_server}/json"  # httpx removes the dot segments


def test_redirects_gzip_and_cookies(odd_server: str, httpx_sends: list[str]) -> None:
    with HttpCore() as http:
        assert http.request("GET", f"{odd_server}/gzip").json() == {"path": "/gzip"}
        assert "gzip" in _Odd.seen[-1][1]  # asked compressed, as httpx asks
        assert httpx_sends == []
        assert http.request("GET", f"{odd_server}/moved").json() == {"path": "/json"}
        assert httpx_sends == [f"{odd_server}/moved"]  # httpx follows the redirect
        assert http.request("GET", f"{odd_server}/cookie").json() == {"path": "/cookie"}
        http.request("GET", f"{odd_server}/json")
        assert _Odd.seen[-1] == ("/json", _Odd.seen[-1][1], "session=abc")  # sent back
        assert httpx_sends[-1] == f"{odd_server}/json"  # cookies: httpx's way from now on
