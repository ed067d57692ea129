"""The download-wide outage breaker: a dead server fails the files not yet started at once."""

from __future__ import annotations

import pytest

from sparc.client._download import OutageBreaker
from sparc.client.errors import (
    ChecksumMismatchError,
    NotFoundError,
    ServerError,
    TransportError,
)


def test_trips_after_limit_outage_failures_in_a_row() -> None:
    breaker = OutageBreaker(limit=3)
    for _ in range(2):
        breaker.failed(TransportError("connection refused"))
        breaker.check()  # not yet
    breaker.failed(ServerError("boom", status=503))
    with pytest.raises(TransportError, match="not attempted: 3 files in a row failed"):
        breaker.check()


def test_a_finished_file_resets_it() -> None:
    breaker = OutageBreaker(limit=2)
    breaker.failed(TransportError("reset"))
    breaker.succeeded()
    breaker.failed(TransportError("reset"))
    breaker.check()
    assert not breaker.tripped


def test_errors_that_say_nothing_about_the_server_do_not_count() -> None:
    breaker = OutageBreaker(limit=2)
    for _ in range(5):
        breaker.failed(ChecksumMismatchError("bad bytes"))
        breaker.failed(NotFoundError("gone", status=404))
    breaker.check()


def test_never_trips_on_a_single_failure() -> None:
    breaker = OutageBreaker(limit=1)  # one worker: still two failures in a row are needed
    breaker.failed(TransportError("reset"))
    breaker.check()


def test_running_files_are_stopped_too() -> None:
    breaker = OutageBreaker(limit=2)
    breaker.check_running()
    breaker.failed(TransportError("reset"))
    breaker.failed(TransportError("reset"))
    with pytest.raises(TransportError, match="gave up retrying: 2 files in a row failed"):
        breaker.check_running()
