"""Helpers shared by every emulated service: the error base class, query parsing and pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

INT32_MAX = 2**31 - 1


class SandboxError(Exception):
    """An error in the emulated service's own wire format; rendered by the app's one handler."""

    def response(self) -> Response:
        raise NotImplementedError


class JSONError(SandboxError):
    """A JSON body (for Pennsieve: usually a JSON *string*) with an HTTP status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status)


class PlainError(SandboxError):
    """A plain-text error (akka-http style rejections: malformed query parameters)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, text)
        self.status, self.text = status, text

    def response(self) -> Response:
        return PlainTextResponse(self.text, status_code=self.status)


async def render_error(request: Request, exc: Exception) -> Response:
    """The app's single exception handler for :class:`SandboxError`."""
    assert isinstance(exc, SandboxError)
    return exc.response()


def int_query(request: Request, name: str, default: int | None = None) -> int | None:
    """An int32 query parameter; malformed → 400 text/plain like akka-http."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
        if not -2**31 <= value <= INT32_MAX:
            raise ValueError
    except ValueError:
        raise PlainError(400, f"The query parameter '{name}' was malformed:\n"
                              f"'{raw}' is not a valid 32-bit signed integer value") from None
    return value


def bool_query(request: Request, name: str) -> bool | None:
    """A boolean query parameter (true/false); malformed → 400 text/plain."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise PlainError(400, f"The query parameter '{name}' was malformed:\n'{raw}' is not a valid Boolean value")
    return raw.lower() == "true"


def list_query(request: Request, name: str) -> list[str]:
    """A repeated query parameter (``tags=a&tags=b``)."""
    return request.query_params.getlist(name)


@dataclass(frozen=True)
class Page:
    """``limit``/``offset`` of a paginated request."""

    limit: int
    offset: int

    @classmethod
    def from_request(cls, request: Request, default_limit: int = 10) -> Page:
        limit = int_query(request, "limit", default_limit)
        offset = int_query(request, "offset", 0)
        assert limit is not None and offset is not None
        if limit < 0 or offset < 0:
            raise JSONError(400, "limit and offset must be non-negative")
        return cls(limit, offset)

    def body(self, key: str, items: list[Any], total: int) -> dict[str, Any]:
        """The ``{limit, offset, totalCount, <key>: items}`` page body."""
        return {"limit": self.limit, "offset": self.offset, "totalCount": total, key: items}

    def slice(self, items: list[Any]) -> list[Any]:
        return items[self.offset:self.offset + self.limit]


async def stream_chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """Serve a cheap synchronous chunk iterator from the event loop (no thread hop per chunk)."""
    for chunk in chunks:
        yield chunk
