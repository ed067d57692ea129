"""Discover's error shapes: 4xx bodies are JSON strings, 410 bodies are TombstoneDTO objects."""

from __future__ import annotations

from typing import Any

from sparc.sandbox.http import JSONError


class DiscoverError(JSONError):
    """A Discover error response (status + JSON body)."""


def not_found(what: object) -> DiscoverError:
    """404 with the id/path that was not found as a JSON string."""
    return DiscoverError(404, str(what))


def bad_request(message: str) -> DiscoverError:
    return DiscoverError(400, message)


def gone(tombstone: dict[str, Any]) -> DiscoverError:
    """410 with the dataset's TombstoneDTO."""
    return DiscoverError(410, tombstone)


def embargoed() -> DiscoverError:
    """401: embargoed dataset files requested without a token."""
    return DiscoverError(401, "Dataset is under embargo")


def too_large() -> DiscoverError:
    return DiscoverError(403, "requested files are too large to download")
