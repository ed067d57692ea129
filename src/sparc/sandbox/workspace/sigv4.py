"""AWS Signature Version 4 as S3 checks it: the header form (``Authorization: AWS4-HMAC-SHA256
Credential=..., SignedHeaders=..., Signature=...``) and the presigned-query form.

Example::

    parsed = parse(method, raw_path, query_string, headers)   # None: not SigV4
    if parsed and not parsed.valid(secret): raise SignatureDoesNotMatch
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
_HEADER = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)")
_SPACES = re.compile(r"\s+")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


@dataclass(frozen=True)
class Signed:
    """One request's SigV4 parts and the canonical request they sign."""

    access_key: str
    scope: str  # date/region/service/aws4_request
    amz_date: str
    signature: str
    canonical_request: str
    expires: int | None = None  # X-Amz-Expires of a presigned URL

    def issued(self) -> float | None:
        """``X-Amz-Date`` as a Unix time (``None`` when malformed)."""
        try:
            return calendar.timegm(time.strptime(self.amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None

    def valid(self, secret: str) -> bool:
        """Whether ``secret`` produces the request's signature."""
        date, region, service, _ = (self.scope.split("/") + ["", "", "", ""])[:4]
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")
        to_sign = "\n".join([ALGORITHM, self.amz_date, self.scope,
                             hashlib.sha256(self.canonical_request.encode()).hexdigest()])
        return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), self.signature)


def parse(method: str, raw_path: str, query_string: str, headers: Mapping[str, str]) -> Signed | None:
    """The SigV4 signature of a request, or ``None`` when it carries none (anonymous or SigV2).

    ``raw_path`` is the path as sent (S3 does not normalize or re-encode it); ``headers`` is
    case-insensitive (a Starlette ``Headers``).
    """
    pairs = parse_qsl(query_string, keep_blank_values=True)
    query = dict(pairs)
    if match := _HEADER.match(headers.get("authorization", "")):
        credential, signed_headers, signature = match.groups()
        amz_date = headers.get("x-amz-date", "")
        payload = headers.get("x-amz-content-sha256", UNSIGNED)
        kept = pairs
        expires = None
    elif query.get("X-Amz-Algorithm") == ALGORITHM:
        credential, signed_headers = query.get("X-Amz-Credential", ""), query.get("X-Amz-SignedHeaders", "")
        signature, amz_date, payload = query.get("X-Amz-Signature", ""), query.get("X-Amz-Date", ""), UNSIGNED
        kept = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        raw = query.get("X-Amz-Expires", "")  # "²".isdigit() is true, int("²") fails: ASCII only
        expires = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else 0
    else:
        return None
    access_key, _, scope = credential.partition("/")
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(kept))
    names = signed_headers.split(";")
    canonical_headers = "".join(f"{n}:{_SPACES.sub(' ', headers.get(n, '').strip())}\n" for n in names)
    canonical = "\n".join([method, raw_path or "/", canonical_query, canonical_headers, signed_headers, payload])
    return Signed(access_key, scope, amz_date, signature, canonical, expires)
