"""walk() looks ahead for real: every folder a listing names is asked for at once, up to
``max_workers`` listings in flight, in the order of a sequential walk; an abandoned walk stops.

Concurrency is counted on the client's own transport (real HTTP to a sandbox whose listings
each take 0.3 s: a ``slow`` fault), not guessed from timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from sparc.client import Config
from sparc.client._http import HttpCore
from sparc.client.services.pennsieve import PennsieveService
from sparc.sandbox.process import SandboxProcess

BROWSE = "GET /discover/datasets/*/versions/*/files/browse"


class CountingTransport(httpx.HTTPTransport):
    """httpx's own transport, counting the requests in flight (and the most at once)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.browse_calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        browse = request.url.path.endswith("/files/browse")
        with self._lock:
            self.in_flight += browse
            self.browse_calls += browse
            self.most = max(self.most, self.in_flight)
        try:
            response = super().handle_request(request)
            response.read()
            return response
        finally:
            with self._lock:
                self.in_flight -= browse


@pytest.fixture
def slow_listings(sandbox_factory: Callable[..., SandboxProcess],
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    sb = sandbox_factory("--time-scale", "1")
    for name, value in sb.env.items():
        monkeypatch.setenv(name, value)
    yield sb


def service(transport: httpx.BaseTransport) -> PennsieveService:
    return PennsieveService(config=Config.load(), http=HttpCore(transport=transport))


def test_walk_keeps_max_workers_listings_in_flight(slow_listings: SandboxProcess) -> None:
    """sub-01 of dataset 318: 5 samples x 5 runs. Once the 5 sample listings are back, all
    25 run folders are known: a walk asking for subfolders only when it reaches their parent
    never has more than 5 in flight; a real look-ahead fills all 8 workers."""
    slow_listings.set_faults([{"route": BROWSE, "kind": "slow", "seconds": 0.3}])
    transport = CountingTransport()
    with service(transport) as pennsieve:
        walked = [n["path"] for n in pennsieve.walk(318, 1, "files/primary/sub-01",
                                                    max_workers=8)]
    assert len(walked) == 250 and transport.most == 8, transport.most
    slow_listings.clear_faults()
    with service(httpx.HTTPTransport()) as pennsieve:  # the same order as one at a time
        assert walked == [n["path"] for n in pennsieve.walk(318, 1, "files/primary/sub-01",
                                                            max_workers=1)]


def test_more_workers_more_listings_in_flight(slow_listings: SandboxProcess) -> None:
    slow_listings.set_faults([{"route": BROWSE, "kind": "slow", "seconds": 0.2}])
    transport = CountingTransport()
    with service(transport) as pennsieve:
        count = sum(1 for _ in pennsieve.walk(318, 1, "files/primary/sub-02", max_workers=32))
    assert count == 250 and transport.most > 8, transport.most


def test_an_abandoned_walk_stops_listing(slow_listings: SandboxProcess) -> None:
    """The caller takes one file of 10,001 and stops: only the listings already in flight
    finish; nothing more is asked for."""
    slow_listings.set_faults([{"route": BROWSE, "kind": "slow", "seconds": 0.1}])
    transport = CountingTransport()
    with service(transport) as pennsieve:
        walk = pennsieve.walk(318, 1, max_workers=4)
        first = next(walk)
        walk.close()
        asked = transport.browse_calls
        time.sleep(1.0)
        assert first["path"] == "manifest.json"  # the top folder's own files come first
        assert transport.browse_calls <= asked + 4 and transport.browse_calls < 40, \
            (asked, transport.browse_calls)
