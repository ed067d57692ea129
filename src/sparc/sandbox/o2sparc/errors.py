"""The api-server's error bodies: ``ErrorGet`` = ``{"errors": [...], "support_id": ...}`` for every status.

- ``HTTPException(detail)`` becomes ``{"errors": [detail], "support_id": null}``;
- 422 request validation: ``{"errors": [{"type", "loc", "msg", "input"}...]}`` (FastAPI's
  ``HTTPValidationError`` renamed ``detail`` -> ``errors``);
- a backend error (``BaseBackEndError``) with a 5xx status carries a ``support_id``
  ``OEC:<12 hex>-<epoch ms>``; an unexpected exception is a 500 whose *message* ends with
  ``[OEC:...]`` and whose ``support_id`` is null (``exceptions/handlers/_handlers_factory.py``);
  ``HTTPException`` bodies (429/503/504 passed through from a backend, 502) have no support id.

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


#: ``_constants.MSG_INTERNAL_ERROR_USER_FRIENDLY_TEMPLATE``: the answer to an unexpected error
INTERNAL_ERROR = ("Something went wrong on our end. We've been notified and will resolve this issue as "
                  "soon as possible. Thank you for your patience.")


class O2Error(SandboxError):
    """An api-server error answer: ``status``, the ``errors`` list, optional headers and support id.

    ``backend=True`` is a ``BaseBackEndError``: a 5xx gets a ``support_id``.
    """

    def __init__(self, status: int, *errors: Any, headers: dict[str, str] | None = None,
                 backend: bool = False) -> None:
        super().__init__(status, *errors)
        self.status, self.errors, self.headers = status, list(errors), headers or {}
        self.support_id = support_id() if backend and status >= 500 else None

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors, "support_id": self.support_id}

    def response(self) -> Response:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def internal_error() -> O2Error:
    """500 for an unexpected exception: the support id goes in the message, not in ``support_id``."""
    return O2Error(500, f"{INTERNAL_ERROR} [{support_id()}]")


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


def fault_error(status: int) -> O2Error:
    """What the api-server answers with ``status`` when its backend misbehaves.

    500: an unexpected error; 429/503/504: a backend's answer passed through ("The {service}
    service was unavailable."); 502: "Received unexpected response from {service}"
    (``exceptions/service_errors_utils.py``); anything else: the status phrase.
    """
    if status == 500:
        return internal_error()
    if status in (429, 503, 504):
        return O2Error(status, "The Webserver service was unavailable.")
    if status == 502:
        return O2Error(status, "Received unexpected response from Webserver")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return O2Error(status, phrase)


def fault_body(status: int) -> tuple[bytes, str]:
    """The body of an injected fault under ``/v0/`` (registered with :mod:`sparc.sandbox.faults`)."""
    return json.dumps(fault_error(status).body()).encode(), "application/json"
