"""Helpers shared by every emulated service: the error base class, query parsing and pagination."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

INT32_MAX = 2**31 - 1
_INTEGER = re.compile(r"[+-]?\d{1,40}")  # Java's Integer.parseInt syntax (Unicode digits too)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")  # akka's Boolean unmarshaller


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


def first_query(request: Request, name: str) -> str | None:
    """The first value of a query parameter, as akka-http's ``parameter`` directive reads it."""
    values = request.query_params.getlist(name)
    return values[0] if values else None


def int_query(request: Request, name: str, default: int | None = None) -> int | None:
    """An int32 query parameter; malformed → 400 text/plain like akka-http.

    Example: ``limit=abc`` → 400 ``The query parameter 'limit' was malformed:\n'abc' is not a valid
    32-bit signed integer value``.
    """
    raw = first_query(request, name)
    if raw is None:
        return default
    if _INTEGER.fullmatch(raw) and -2**31 <= (value := int(raw)) <= INT32_MAX:
        return value
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    raise PlainError(400, f"The query parameter '{name}' was malformed:\n"
                          f"'{shown}' is not a valid 32-bit signed integer value")


def bool_query(request: Request, name: str) -> bool | None:
    """A boolean query parameter (true/yes/on/1, false/no/off/0); malformed → 400 text/plain."""
    raw = first_query(request, name)
    if raw is None:
        return None
    if raw.lower() not in _TRUE + _FALSE:
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        raise PlainError(400, f"The query parameter '{name}' was malformed:\n'{shown}' is not a valid Boolean value")
    return raw.lower() in _TRUE


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
            # Postgres ("LIMIT must not be negative") and Elasticsearch refuse them; no handler
            # catches that, so akka answers its plain-text 500
            raise PlainError(500, "There was an internal server error.")
        return cls(limit, offset)

    def body(self, key: str, items: list[Any], total: int) -> dict[str, Any]:
        """The ``{limit, offset, totalCount, <key>: items}`` page body."""
        return {"limit": self.limit, "offset": self.offset, "totalCount": total, key: items}

    def slice(self, items: list[Any]) -> list[Any]:
        return items[self.offset:self.offset + self.limit]


#: Chunks at least this big (bytes) give the event loop a turn after them.
_YIELD_AFTER = 64 * 1024


async def stream_chunks(chunks: Iterable[bytes | memoryview],
                        gone: Callable[[], bool] | None = None
                        ) -> AsyncIterator[bytes | memoryview]:
    """Serve a cheap synchronous chunk iterator from the event loop (no thread hop per chunk).

    The loop runs between chunks (``asyncio.sleep(0)``), so a lost connection is noticed, and
    the stream ends as soon as ``gone()`` says the client hung up: no writing the rest of a
    1 GiB object into a dead socket. Example::

        StreamingResponse(stream_chunks(object_chunks(row), connections.hung_up(client)))
    """
    for chunk in chunks:
        if gone is not None and gone():
            return
        yield chunk
        if len(chunk) >= _YIELD_AFTER:  # not after a block's 16-byte stamp
            await asyncio.sleep(0)
