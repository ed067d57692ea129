"""Presigned-style asset URLs: HMAC-SHA256 over (bucket, key, version, date, expiry) with a per-server secret."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import sqlite3
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Signer:
    """Signs and checks asset URLs; ``expiry`` is the URL lifetime in seconds."""

    secret: bytes
    expiry: int

    def signature(self, bucket: str, key: str, version_id: str, date: str, expires: str) -> str:
        message = "\n".join((bucket, key, version_id, date, expires)).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def query(self, bucket: str, key: str, version_id: str | None, now: float | None = None) -> dict[str, str]:
        date = time.strftime(DATE_FORMAT, time.gmtime(time.time() if now is None else now))
        expires = str(self.expiry)
        params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Date": date,
                  "X-Amz-SignedHeaders": "host", "X-Amz-Expires": expires,
                  "X-Amz-Signature": self.signature(bucket, key, version_id or "", date, expires)}
        if version_id:
            params["versionId"] = version_id
        return params

    def check(self, bucket: str, key: str, params: dict[str, str], now: float | None = None) -> str | None:
        """``None`` when the URL is valid, else the S3 error message."""
        date, expires = params.get("X-Amz-Date", ""), params.get("X-Amz-Expires", "")
        expected = self.signature(bucket, key, params.get("versionId", ""), date, expires)
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            return "The request signature we calculated does not match the signature you provided."
        try:
            issued = calendar.timegm(time.strptime(date, DATE_FORMAT))
            lifetime = int(expires)
        except ValueError:
            return "Invalid date or expiry"
        if (time.time() if now is None else now) > issued + lifetime:
            return "Request has expired"
        return None


def presigned_url(signer: Signer, base_url: str, row: sqlite3.Row) -> str:
    """The asset URL of a file row, relative to the request's ``base_url``."""
    params = signer.query(row["bucket"], row["key"], row["s3_version"])
    return f"{base_url.rstrip('/')}/_assets/{row['bucket']}/{quote(row['key'])}?{urlencode(params)}"
