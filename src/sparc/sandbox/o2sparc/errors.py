"""The api-server's error bodies: ``ErrorGet`` = ``{"errors": [...], "support_id": ...}`` for every status.

- ``HTTPException(detail)`` becomes ``{"errors": [detail], "support_id": null}``;
- 422 request validation: ``{"errors": [{"type", "loc", "msg", "input"}...]}`` (FastAPI's
  ``HTTPValidationError`` renamed ``detail`` -> ``errors``);
- 5xx carry a ``support_id`` ``OEC:<12 hex>-<epoch ms>``.

Example: ``raise O2Error(404, "File with identifier 1234 not found")``.
"""

from __future__ import annotations

import json
import secrets
import time
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response

from sparc.sandbox.http import SandboxError


def support_id() -> str:
    """An ``OEC:`` support id as the server writes it (``OEC:([a-fA-F0-9]{12})-(\\d{13,14})``)."""
    return f"OEC:{secrets.token_hex(6)}-{int(time.time() * 1000)}"


def error_body(errors: list[Any], status: int) -> dict[str, Any]:
    return {"errors": errors, "support_id": support_id() if status >= 500 else None}


class O2Error(SandboxError):
    """An api-server error answer: ``status``, the ``errors`` list and optional headers."""

    def __init__(self, status: int, *errors: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, *errors)
        self.status, self.errors, self.headers = status, list(errors), headers or {}

    def response(self) -> Response:
        return JSONResponse(error_body(self.errors, self.status), status_code=self.status,
                            headers=self.headers)


def unauthorized() -> O2Error:
    """401 for a missing or wrong Basic credential (the server's auth dependency)."""
    return O2Error(401, "Invalid API credentials", headers={"WWW-Authenticate": "Basic"})


def not_found(message: str) -> O2Error:
    return O2Error(404, message)


def conflict(message: str) -> O2Error:
    return O2Error(409, message)


def validation(*errors: dict[str, Any]) -> O2Error:
    """422 with pydantic error dicts (``{"type", "loc", "msg", "input"}``)."""
    return O2Error(422, *errors)


def invalid(loc: list[str | int], msg: str, type_: str, value: Any = None) -> dict[str, Any]:
    """One pydantic error dict. Example: ``invalid(["query", "limit"], "Input should be ...", "less_than_equal", 99)``."""
    return {"type": type_, "loc": loc, "msg": msg, "input": value}


def fault_body(status: int) -> tuple[bytes, str]:
    """The body of an injected fault under ``/v0/`` (registered with :mod:`sparc.sandbox.faults`)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return json.dumps(error_body([phrase], status)).encode(), "application/json"


def storage_fault_body(status: int) -> tuple[bytes, str]:
    """The body of an injected fault on the sandbox's object storage (S3 XML, as S3 writes it)."""
    codes = {403: ("AccessDenied", "Access Denied"), 404: ("NoSuchKey", "The specified key does not exist."),
             500: ("InternalError", "We encountered an internal error. Please try again."),
             503: ("SlowDown", "Please reduce your request rate.")}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code, message = codes.get(status, (phrase.replace(" ", ""), phrase))
    return s3_xml(code, message), "application/xml"


def s3_xml(code: str, message: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>").encode()


class StorageError(SandboxError):
    """An S3-style XML error from the sandbox's object storage (presigned URLs)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        return Response(s3_xml(self.code, self.message), status_code=self.status,
                        media_type="application/xml")
