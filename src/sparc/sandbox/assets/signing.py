"""Presigned asset URLs as S3 makes them: AWS Signature Version 4 in the query string.

The sandbox signs like discover-service does, with an IAM role's *temporary* credentials: URLs carry
``X-Amz-Credential`` (``ASIA…/<date>/us-east-1/s3/aws4_request``) and ``X-Amz-Security-Token``, and
both are part of the signed query, as are ``versionId`` and every other parameter. The canonical
request covers the method, path, query and ``Host`` header, so a URL presigned for GET does not
serve HEAD, and editing any parameter gives ``SignatureDoesNotMatch``.

Credentials rotate: each session lasts :attr:`Signer.session_seconds` and the next one is taken
:attr:`Signer.refresh_before` seconds ahead of its end (as AWS SDKs refresh role credentials). A URL
signed late in a session dies with the session (400 ``ExpiredToken``), before its ``X-Amz-Expires``.

Example::

    signer = Signer(secret=b"k" * 32, expiry=3600)
    query = signer.query("GET", "127.0.0.1:8000", "/_assets/bucket/key", {"versionId": "v1"})
    signer.check("GET", "127.0.0.1:8000", "/_assets/bucket/key", list(query.items()))  # no error
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from sparc.sandbox.assets.errors import S3Error, request_expired

ALGORITHM = "AWS4-HMAC-SHA256"
REGION = "us-east-1"
SERVICE = "s3"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_EXPIRES = 604800  # a week: S3's limit on X-Amz-Expires
CLOCK_SKEW = 900  # S3 accepts an X-Amz-Date up to 15 minutes ahead of its clock
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_VERIFIED = 4096  # verified requests Signer.check remembers
TOKEN_PREFIX = "IQoJb3JpZ2luX2Vj"  # how STS session tokens begin
REQUIRED = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
            "X-Amz-SignedHeaders", "X-Amz-Expires")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@lru_cache(maxsize=1 << 14)
def _uri_encode(value: str, safe: str = "-_.~") -> str:
    """RFC 3986 percent-encoding (cached: the 400-character session token recurs in every URL)."""
    return quote(value, safe=safe)


@lru_cache(maxsize=64)
def _signing_key(secret_key: str, day: str) -> bytes:
    """SigV4's derived key of a secret on one day (us-east-1, s3): four HMACs, computed once."""
    return _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), REGION), SERVICE), "aws4_request")


def canonical_request(method: str, path: str, params: list[tuple[str, str]], host: str) -> str:
    """SigV4's canonical request of a presigned URL (``params`` without ``X-Amz-Signature``).

    >>> canonical_request("GET", "/b/k", [("b", "2"), ("a", "1")], "h").splitlines()[:3]
    ['GET', '/b/k', 'a=1&b=2']
    """
    query = "&".join(f"{k}={v}" for k, v in sorted((_uri_encode(k), _uri_encode(v)) for k, v in params))
    return "\n".join((method, _uri_encode(path, safe="/-_.~"), query, f"host:{host.strip()}", "",
                      "host", UNSIGNED_PAYLOAD))


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    return "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()))


def sigv4_signature(secret_key: str, amz_date: str, request: str) -> str:
    """The hex signature of a canonical ``request`` made at ``amz_date`` (us-east-1, s3)."""
    day = amz_date[:8]
    scope = f"{day}/{REGION}/{SERVICE}/aws4_request"
    return hmac.digest(_signing_key(secret_key, day), string_to_sign(amz_date, scope, request).encode(),
                       "sha256").hex()


@lru_cache(maxsize=16)
def _key_mask(secret: bytes) -> int:
    return int(struct.unpack(">I", hmac.new(secret, b"akid-mask/0/0", hashlib.sha256).digest()[:4])[0])


@dataclass(frozen=True)
class Credentials:
    """One session's temporary credentials (what STS hands an assumed role)."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: float


@dataclass(frozen=True)
class Signer:
    """Signs and checks asset URLs; ``expiry`` is ``X-Amz-Expires`` in seconds."""

    secret: bytes
    expiry: int
    started: float = field(default_factory=time.time)
    session_seconds: int = 6 * 3600
    refresh_before: int = 15 * 60
    # sessions already derived (each costs a dozen HMACs), by index; not part of the value
    _sessions: dict[int, Credentials] = field(default_factory=dict, init=False, repr=False, compare=False)
    _last_moment: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)
    _issued: dict[str, Credentials] = field(default_factory=dict, init=False, repr=False, compare=False)
    # requests whose signature was verified (see ``check``): key -> (issued, lifetime, credentials, token)
    _verified: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], tuple[int, int, Credentials, str]] = \
        field(default_factory=dict, init=False, repr=False, compare=False)

    # ---- credentials ------------------------------------------------------------------------
    def _mac(self, label: str, index: int, size: int = 32) -> bytes:
        out, counter = b"", 0
        while len(out) < size:
            out += hmac.new(self.secret, f"{label}/{index}/{counter}".encode(), hashlib.sha256).digest()
            counter += 1
        return out[:size]

    def session(self, index: int) -> Credentials:
        """The credentials of session ``index`` (0 at start-up); derived once per index."""
        credentials = self._sessions.get(index)
        if credentials is None:
            if len(self._sessions) > 64:  # forged key ids could name any index: bound the cache
                self._sessions.clear()
            credentials = self._sessions[index] = self._derive(index)
        return credentials

    def _derive(self, index: int) -> Credentials:
        hidden = index ^ self._mask()  # looks random, decodes
        key_id = "ASIA" + base64.b32encode(struct.pack(">I", hidden) + self._mac("akid", index, 6)).decode()
        secret_key = base64.b64encode(self._mac("secret", index, 30)).decode()
        token = TOKEN_PREFIX + base64.b64encode(self._mac("token", index, 300)).decode()
        issued = self.started + index * (self.session_seconds - self.refresh_before)
        return Credentials(key_id, secret_key, token, issued + self.session_seconds)

    def _mask(self) -> int:
        """The number key ids hide their session index under (XOR): ``_mac("akid-mask", 0, 4)``."""
        return _key_mask(self.secret)

    def current(self, now: float) -> Credentials:
        """The credentials in use at ``now``."""
        return self.session(max(0, int((now - self.started) // (self.session_seconds - self.refresh_before))))

    def lookup(self, access_key_id: str) -> Credentials | None:
        """The session that issued ``access_key_id``, ``None`` for an unknown key."""
        known = self._issued.get(access_key_id)  # key ids already seen valid (one per session)
        if known is not None:
            return known
        credentials = self._lookup(access_key_id)
        if credentials is not None:
            if len(self._issued) > 64:
                self._issued.clear()
            self._issued[access_key_id] = credentials
        return credentials

    def _lookup(self, access_key_id: str) -> Credentials | None:
        try:
            raw = base64.b32decode(access_key_id[4:]) if access_key_id.startswith("ASIA") else b""
        except ValueError:
            return None
        if len(raw) != 10:
            return None
        index = struct.unpack(">I", raw[:4])[0] ^ self._mask()
        credentials = self.session(index)
        return credentials if hmac.compare_digest(credentials.access_key_id, access_key_id) else None

    # ---- signing ----------------------------------------------------------------------------
    def query(self, method: str, host: str, path: str, params: dict[str, str],
              now: float | None = None) -> dict[str, str]:
        """``params`` plus the SigV4 query parameters of a URL presigned for ``method``."""
        credentials, amz_date, fields = self._moment(time.time() if now is None else now)
        signed = {**params, **fields}
        request = canonical_request(method, path, list(signed.items()), host)
        return {**signed, "X-Amz-Signature": sigv4_signature(credentials.secret_access_key, amz_date, request)}

    def _moment(self, now: float) -> tuple[Credentials, str, dict[str, str]]:
        """The credentials, ``X-Amz-Date`` and SigV4 query fields of URLs signed at ``now``
        (the same for every URL of one second: kept for the last second asked)."""
        index = max(0, int((now - self.started) // (self.session_seconds - self.refresh_before)))
        second = int(now // 1)
        last = self._last_moment
        if last and last[0] == (index, second):
            return last[1]
        credentials = self.session(index)
        amz_date = time.strftime(DATE_FORMAT, time.gmtime(now))
        fields = {"X-Amz-Algorithm": ALGORITHM,
                  "X-Amz-Credential": f"{credentials.access_key_id}/{amz_date[:8]}/{REGION}/{SERVICE}"
                                      "/aws4_request",
                  "X-Amz-Date": amz_date, "X-Amz-Expires": str(self.expiry), "X-Amz-SignedHeaders": "host",
                  "X-Amz-Security-Token": credentials.session_token}
        moment = (credentials, amz_date, fields)
        last[:] = [(index, second), moment]
        return moment

    def check(self, method: str, host: str, path: str, params: Sequence[tuple[str, str]],
              now: float | None = None) -> None:
        """Raise the :class:`S3Error` S3 would answer for this request; return when it is valid.

        Order as S3: no signature at all (anonymous: 403 AccessDenied), malformed parameters (400
        AuthorizationQueryParametersError), expired URL (403 AccessDenied "Request has expired"),
        unknown key (403 InvalidAccessKeyId), bad or expired token (400 InvalidToken/ExpiredToken),
        then the signature (403 SignatureDoesNotMatch).

        A verified signature is remembered (at most :data:`MAX_VERIFIED` requests): it depends only on
        the method, host, path and parameters, so the same URL again skips the canonical request, the
        hash and the HMAC. Every time-dependent condition (expiry, "not valid yet", the session's end)
        is still checked on each call, in the same order, so a remembered URL fails as a new one
        would; failures are never remembered.
        """
        now = time.time() if now is None else now
        memo = (method, host, path, tuple(params))
        verified = self._verified.get(memo)
        if verified is not None:
            at, valid_for, session, session_token = verified
            if now > at + valid_for:
                raise request_expired(valid_for, _iso(at + valid_for), _iso(now))
            if at > now + CLOCK_SKEW:
                raise S3Error(403, "AccessDenied", "Request is not valid yet")
            if now > session.expiration:
                raise S3Error(400, "ExpiredToken", "The provided token has expired.",
                              fields={"Token-0": session_token})
            return
        given = dict(reversed(params))  # the first value of a repeated parameter
        if not any(name in given for name in REQUIRED):
            raise S3Error(403, "AccessDenied", "Access Denied")
        amz_date, credential = given.get("X-Amz-Date", ""), given.get("X-Amz-Credential", "")
        issued, lifetime = _parse_date_and_expiry(given)
        if now > issued + lifetime:
            raise request_expired(lifetime, _iso(issued + lifetime), _iso(now))
        if issued > now + CLOCK_SKEW:
            raise S3Error(403, "AccessDenied", "Request is not valid yet")
        key_id, _, scope = credential.partition("/")
        credentials = self.lookup(key_id)
        if credentials is None:
            raise S3Error(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our records.",
                          fields={"AWSAccessKeyId": key_id})
        token = given.get("X-Amz-Security-Token", "")
        if not hmac.compare_digest(token.encode(), credentials.session_token.encode()):
            raise S3Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.",
                          fields={"Token-0": token})
        if now > credentials.expiration:
            raise S3Error(400, "ExpiredToken", "The provided token has expired.", fields={"Token-0": token})
        request = canonical_request(method, path, [(k, v) for k, v in params if k != "X-Amz-Signature"], host)
        expected = sigv4_signature(credentials.secret_access_key, amz_date, request)
        provided = given.get("X-Amz-Signature", "")
        if not hmac.compare_digest(expected.encode(), provided.encode()):
            to_sign = string_to_sign(amz_date, scope, request)
            raise S3Error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided. "
                          "Check your key and signing method.",
                          fields={"AWSAccessKeyId": key_id, "StringToSign": to_sign,
                                  "SignatureProvided": provided, "StringToSignBytes": _hex_bytes(to_sign),
                                  "CanonicalRequest": request, "CanonicalRequestBytes": _hex_bytes(request)})
        if len(self._verified) >= MAX_VERIFIED:  # bounded: start afresh rather than track ages
            self._verified.clear()
        self._verified[memo] = (issued, lifetime, credentials, token)


def _parse_date_and_expiry(given: dict[str, str]) -> tuple[int, int]:
    """``(issued epoch, X-Amz-Expires)``; 400 AuthorizationQueryParametersError when malformed."""
    def bad(message: str) -> S3Error:
        return S3Error(400, "AuthorizationQueryParametersError", message)

    if not all(given.get(name) for name in REQUIRED):
        raise bad("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                  "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    if given["X-Amz-Algorithm"] != ALGORITHM:
        raise bad('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    parts = given["X-Amz-Credential"].split("/")
    if len(parts) != 5 or parts[3:] != [SERVICE, "aws4_request"]:
        raise bad('Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting '
                  '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    if parts[2] != REGION:
        raise bad(f"Error parsing the X-Amz-Credential parameter; the region '{parts[2]}' is wrong; "
                  f"expecting '{REGION}'")
    try:
        issued = _amz_epoch(given["X-Amz-Date"])
    except (ValueError, OverflowError):
        raise bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from None
    raw = given["X-Amz-Expires"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise bad("X-Amz-Expires should be a number")
    if int(raw) > MAX_EXPIRES:
        raise bad("X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds")
    return issued, int(raw)


@lru_cache(maxsize=1024)
def _amz_epoch(amz_date: str) -> int:
    """Epoch seconds of an ``X-Amz-Date`` (strptime is slow; the URLs of one second share one)."""
    return calendar.timegm(time.strptime(amz_date, DATE_FORMAT))


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _hex_bytes(text: str) -> str:
    return " ".join(f"{b:02x}" for b in text.encode())


def asset_path(bucket: str, key: str) -> str:
    """The sandbox path of an object (its canonical URI before encoding)."""
    return f"/_assets/{bucket}/{key}"


def presigned_url(signer: Signer, base_url: str, row: sqlite3.Row | dict[str, Any]) -> str:
    """The GET URL of a file row, presigned for the host of ``base_url`` (the request's)."""
    return presigner(signer, base_url)(row)


def presigner(signer: Signer, base_url: str) -> Callable[[sqlite3.Row | dict[str, Any]], str]:
    """:func:`presigned_url` for many rows of one request: the same URLs, the parts they share
    (host, credentials, encoded SigV4 fields) worked out once per second instead of per row.

    Example: ``urls = [presigner(signer, base)(row) for row in rows]``.
    """
    host, prefix = urlsplit(base_url).netloc, base_url.rstrip("/")
    shared: list[Any] = []  # [fields dict, canonical query, URL query] of the current moment

    def url(row: sqlite3.Row | dict[str, Any]) -> str:
        credentials, amz_date, fields = signer._moment(time.time())
        if not shared or shared[0] is not fields:
            # the canonical query sorts by name: every X-Amz-* field, then versionId
            encoded = [(_uri_encode(k), _uri_encode(v)) for k, v in fields.items()]
            shared[:] = [fields, "&".join(f"{k}={v}" for k, v in sorted(encoded)),
                         "&".join(f"{k}={v}" for k, v in encoded)]
        path = _uri_encode(asset_path(row["bucket"], row["key"]), "/-_.~")
        version = f"versionId={_uri_encode(row['s3_version'])}" if row["s3_version"] else ""
        canonical = shared[1] + "&" + version if version else shared[1]
        request = "\n".join(("GET", path, canonical, f"host:{host.strip()}", "", "host", UNSIGNED_PAYLOAD))
        signature = sigv4_signature(credentials.secret_access_key, amz_date, request)
        query = f"{version}&{shared[2]}" if version else shared[2]
        return f"{prefix}{path}?{query}&X-Amz-Signature={signature}"

    return url
