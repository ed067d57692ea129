"""S3-style XML errors of the asset store."""

from __future__ import annotations

from xml.sax.saxutils import escape

from starlette.responses import Response

from sparc.sandbox.http import SandboxError


class S3Error(SandboxError):
    """``<Error><Code>…</Code><Message>…</Message>…</Error>`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, resource: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, code, message)
        self.status, self.code, self.message, self.resource = status, code, message, resource
        self.headers = headers or {}

    def response(self) -> Response:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>"
                f"<Resource>{escape(self.resource)}</Resource><RequestId>sandbox</RequestId></Error>")
        return Response(body, status_code=self.status, media_type="application/xml", headers=self.headers)
