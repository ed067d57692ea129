"""Discover's error shapes, as the deployed akka-http service writes them.

Handler-mapped 4xx bodies are JSON strings (``"90"``, ``"Dataset is under embargo"``); 410 is a
TombstoneDTO, or no body at all on the raw-response routes (metadata, whole-version download);
akka-http's own rejections and uncaught failures are plain text.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from sparc.sandbox.http import JSONError, PlainError, SandboxError

INTERNAL_ERROR = "There was an internal server error."


class DiscoverError(JSONError):
    """A Discover error response (status + JSON body)."""


class EmptyError(SandboxError):
    """A status without a body (``Marshal(...Gone)`` on the raw-response routes)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status

    def response(self) -> Response:
        return Response(status_code=self.status)


def not_found(what: object) -> DiscoverError:
    """404 with the id/path that was not found as a JSON string."""
    return DiscoverError(404, str(what))


def bad_request(message: str) -> DiscoverError:
    return DiscoverError(400, message)


def gone(tombstone: dict[str, Any]) -> DiscoverError:
    """410 with the version's TombstoneDTO."""
    return DiscoverError(410, tombstone)


def embargoed() -> DiscoverError:
    """401: embargoed dataset files requested without a token."""
    return DiscoverError(401, "Dataset is under embargo")


def embargo_denied() -> DiscoverError:
    """403: a signed-in user without granted access asked for embargoed files (``ForbiddenException``
    of ``authorizeIfUnderEmbargo``; the body text is the sandbox's, not read from the source)."""
    return DiscoverError(403, "Dataset is under embargo: access has not been granted")


def too_large(message: str = "requested files are too large to download") -> DiscoverError:
    return DiscoverError(403, message)


def internal() -> PlainError:
    """akka-http's default answer to an exception no handler caught (``Route.seal``, Server.scala:97)."""
    return PlainError(500, INTERNAL_ERROR)


def missing_query_parameter(name: str) -> PlainError:
    """akka-http's ``MissingQueryParamRejection``: 404 text."""
    return PlainError(404, f"Request is missing required query parameter '{name}'")


def malformed_content(detail: str) -> PlainError:
    """akka-http's ``MalformedRequestContentRejection``: 400 text."""
    return PlainError(400, f"The request content was malformed:\n{detail}")


def unsupported_content_type() -> PlainError:
    """akka-http's ``UnsupportedRequestContentTypeRejection``: 415 text."""
    return PlainError(415, "The request's Content-Type is not supported. Expected:\napplication/json")


def unauthenticated(message: str = "The resource requires authentication, which was not supplied "
                                   "with the request") -> PlainError:
    return PlainError(401, message)
