"""S3-style XML errors of the asset store, written as S3 writes them.

``<Error><Code/><Message/>`` then the code's own elements (``<Key>``, ``<Condition>``,
``<StringToSign>``…) then ``<RequestId/><HostId/>``; the same ids go in ``x-amz-request-id`` and
``x-amz-id-2``. A HEAD request gets the status and headers without a body, as from S3.

Example: ``raise S3Error(404, "NoSuchKey", "The specified key does not exist.", fields={"Key": key})``.
"""

from __future__ import annotations

import binascii
import random
import re
import secrets

from starlette.responses import Response

from sparc.sandbox.http import SandboxError

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as XML character data: escaped, characters XML 1.0 cannot hold dropped.

    >>> xml_text("a<b&\\x00c")
    'a&lt;b&amp;c'
    """
    text = _XML_ILLEGAL.sub("", str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# request ids are only unique labels: a seeded generator makes them without a system call each
_IDS = random.Random(secrets.randbits(128))


def request_id_bytes() -> tuple[bytes, bytes]:
    """Fresh ``x-amz-request-id`` and ``x-amz-id-2`` values as header bytes (S3's shapes: 16
    upper-case hex digits, base64 of 57 bytes), from one draw of 65 random bytes.

    >>> [len(v) for v in request_id_bytes()]
    [16, 76]
    """
    drawn = _IDS.randbytes(65)
    return binascii.hexlify(drawn[:8]).upper(), binascii.b2a_base64(drawn[8:], newline=False)


def request_ids() -> dict[str, str]:
    """Fresh ``x-amz-request-id`` / ``x-amz-id-2`` headers (:func:`request_id_bytes`, as text)."""
    request_id, id_2 = request_id_bytes()
    return {"x-amz-request-id": request_id.decode(), "x-amz-id-2": id_2.decode()}


class S3Error(SandboxError):
    """An S3 error answer: status, ``Code``, ``Message`` and the code's extra elements (``fields``).

    ``resource`` (the ``/bucket/key`` concerned) is kept for callers' logs; S3's GetObject errors do
    not write a ``<Resource>`` element (``NoSuchKey`` names the ``<Key>`` instead).
    """

    def __init__(self, status: int, code: str, message: str, resource: str = "",
                 headers: dict[str, str] | None = None, *, fields: dict[str, object] | None = None) -> None:
        super().__init__(status, code, message)
        self.status, self.code, self.message, self.resource = status, code, message, resource
        self.headers = headers or {}
        self.fields = fields or {}

    def body(self, ids: dict[str, str]) -> str:
        extra = "".join(f"<{name}>{xml_text(value)}</{name}>" for name, value in self.fields.items())
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{self.code}</Code><Message>{xml_text(self.message)}</Message>{extra}"
                f"<RequestId>{ids['x-amz-request-id']}</RequestId><HostId>{ids['x-amz-id-2']}</HostId>"
                "</Error>")

    def response(self, head: bool = False) -> Response:
        """The answer; ``head=True`` for a HEAD request (no body)."""
        ids = request_ids()
        headers = {**ids, **self.headers}
        if head:
            return Response(status_code=self.status, headers=headers, media_type="application/xml")
        return Response(self.body(ids), status_code=self.status, media_type="application/xml",
                        headers=headers)


def request_expired(expires: int, expired_at: str, server_time: str, resource: str = "") -> S3Error:
    """403 AccessDenied "Request has expired" (a presigned URL used after ``X-Amz-Expires``)."""
    return S3Error(403, "AccessDenied", "Request has expired", resource,
                   fields={"X-Amz-Expires": expires, "Expires": expired_at, "ServerTime": server_time})
