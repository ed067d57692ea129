"""S3-compatible storage for uploads at ``/s3`` (path-style): moto's S3 server app, run in a worker
thread, behind a gate that enforces what production's STS session policy allows.

The upload service's storage credentials (``storage_credentials.go``) allow only ``s3:PutObject``,
``s3:PutObjectTagging``, ``s3:AbortMultipartUpload``, ``s3:ListMultipartUploadParts`` on
``<bucket>/<keyPrefix>/*`` and ``s3:ListBucketMultipartUploads`` on the bucket. Anything else with
those keys is 403 ``AccessDenied``; expired keys are 400 ``ExpiredToken``. The sandbox user's API
key/secret are the storage owner's keys (full access: how tests read uploads back). Example::

    s3 = boto3.client("s3", endpoint_url=base + "/s3", aws_access_key_id=creds["accessKeyId"], ...,
                      config=Config(s3={"addressing_style": "path"}))
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sparc.sandbox.assets.errors import S3Error, request_expired
from sparc.sandbox.settings import S3_PATH
from sparc.sandbox.workspace import sigv4
from sparc.sandbox.workspace.models import Credentials, Workspace

MAX_SKEW = 900  # seconds S3 allows between X-Amz-Date and its clock
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
#: Query keys naming an S3 sub-resource (they decide the operation).
_SUBRESOURCES = ("uploads", "uploadId", "tagging", "acl", "versioning", "policy", "cors", "lifecycle",
                 "location", "versions", "delete", "list-type", "restore", "select", "attributes",
                 "retention", "legal-hold", "object-lock", "website", "logging", "notification",
                 "replication", "encryption", "accelerate", "requestPayment", "ownershipControls")


class Storage:
    """moto's S3 app (created on first use) and the sandbox's upload bucket."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._app: Callable[..., Iterable[bytes]] | None = None
        self._backend: Any = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._app is not None:
                return
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends
            from moto.server import create_backend_app

            app = create_backend_app("s3")
            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            if self.bucket not in backend.buckets:
                backend.create_bucket(self.bucket, "us-east-1")
            self._backend, self._app = backend, app

    async def ready(self) -> None:
        """Start moto (in a thread: its import takes about a second) if it is not running."""
        if self._app is None:
            await anyio.to_thread.run_sync(self._start)

    def head(self, bucket: str, key: str) -> tuple[int, str | None] | None:
        """``(size, ChecksumSHA256)`` of an object as HeadObject with ChecksumMode=ENABLED; ``None``
        when it does not exist. Multipart objects carry S3's ``<base64>-<parts>`` composite."""
        self._start()
        try:
            obj = self._backend.get_object(bucket, key)
        except Exception:  # moto raises MissingBucket / MissingKey
            return None
        if obj is None:
            return None
        if (obj.checksum_algorithm or "").upper() != "SHA256" or not obj.checksum_value:
            return int(obj.size), None
        checksum = str(obj.checksum_value)
        if obj.checksum_type == "COMPOSITE" and obj.checksum_parts:
            checksum += f"-{obj.checksum_parts}"
        return int(obj.size), checksum

    def multipart_algorithm(self, bucket: str, upload_id: str) -> str | None:
        """The checksum algorithm a multipart upload was created with (``None``: none, or unknown)."""
        try:
            upload = self._backend.get_bucket(bucket).multiparts.get(upload_id)
        except Exception:
            return None
        algorithm = upload.metadata.get("x-amz-checksum-algorithm") if upload is not None else None
        return str(algorithm).upper() if algorithm else None

    def part_checksums(self, bucket: str, upload_id: str) -> dict[int, str]:
        """Base64 SHA-256 of each uploaded part of a multipart upload."""
        try:
            upload = self._backend.get_bucket(bucket).multiparts[upload_id]
        except Exception:
            return {}
        return {n: base64.b64encode(hashlib.sha256(bytes(p.value)).digest()).decode()
                for n, p in list(upload.parts.items())}

    def composite(self, method: str, bucket: str, key: str, query: Any, headers: list[tuple[str, str]],
                  content: bytes) -> tuple[list[tuple[str, str]], bytes]:
        """S3's checksum answers where moto's differ: a multipart object's SHA-256 is
        ``<base64>-<parts>`` (``COMPOSITE``), sent by CompleteMultipartUpload and HEAD/GET."""
        found = self.head(bucket, key)
        if found is None or found[1] is None:
            return headers, content
        obj = self._backend.get_object(bucket, key)
        kind = "COMPOSITE" if obj is not None and obj.checksum_type == "COMPOSITE" else "FULL_OBJECT"
        if method == "POST" and "uploadId" in query and b"<CompleteMultipartUploadResult" in content:
            extra = f"<ChecksumSHA256>{found[1]}</ChecksumSHA256><ChecksumType>{kind}</ChecksumType>"
            content = content.replace(b"</CompleteMultipartUploadResult>",
                                      extra.encode() + b"</CompleteMultipartUploadResult>")
            return headers, content
        if method in ("GET", "HEAD") and any(k.lower() == "x-amz-checksum-sha256" for k, _ in headers):
            headers = [(k, v) for k, v in headers if k.lower() not in ("x-amz-checksum-sha256", "x-amz-checksum-type")]
            headers += [("x-amz-checksum-sha256", found[1]), ("x-amz-checksum-type", kind)]
        return headers, content

    def read(self, bucket: str, key: str) -> bytes | None:
        """An object's bytes (tests use the S3 API instead; this is for the sandbox's own checks)."""
        self._start()
        try:
            obj = self._backend.get_object(bucket, key)
        except Exception:
            return None
        return None if obj is None else bytes(obj.value)

    def call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run one request through moto's WSGI app (in the calling thread)."""
        self._start()
        assert self._app is not None
        status: list[Any] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status[:] = [int(line.split(" ", 1)[0]), headers]

        chunks = self._app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        return status[0], status[1], body


# ---- the gate -------------------------------------------------------------------------------------
def access_key(request: Request) -> str | None:
    """The SigV4 (or SigV2) access key id of a request: header or presigned query."""
    auth = request.headers.get("authorization", "")
    if match := _CREDENTIAL.search(auth):
        return match.group(1)
    if auth.startswith("AWS ") and ":" in auth:
        return auth[4:].split(":", 1)[0]
    cred = request.query_params.get("X-Amz-Credential")
    if cred:
        return cred.split("/", 1)[0]
    return request.query_params.get("AWSAccessKeyId")


def _denied(resource: str) -> S3Error:
    return S3Error(403, "AccessDenied", "Access Denied", resource)


def _operation(method: str, key: str, query: dict[str, str], headers: Any) -> str:
    """The S3 action (IAM name) a request performs."""
    if not key:
        if method == "GET" and "uploads" in query:
            return "s3:ListBucketMultipartUploads"
        return "s3:ListBucket" if method in ("GET", "HEAD") else f"s3:{method}Bucket"
    if "uploadId" in query:
        return {"GET": "s3:ListMultipartUploadParts", "DELETE": "s3:AbortMultipartUpload"}.get(method, "s3:PutObject")
    if "uploads" in query and method == "POST":
        return "s3:PutObject"
    if "tagging" in query:
        return "s3:PutObjectTagging" if method == "PUT" else f"s3:{method}ObjectTagging"
    if method == "PUT" and not headers.get("x-amz-copy-source") and not any(q in query for q in _SUBRESOURCES):
        return "s3:PutObject"
    return {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "DELETE": "s3:DeleteObject"}.get(method, "s3:Other")


_ALLOWED_OBJECT = {"s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}


class Gate:
    """What S3 checks before it runs a request: the signature, the keys' scope, the body's hashes."""

    def __init__(self, ws: Workspace, storage: Storage, owner_key: str, owner_secret: str) -> None:
        self.ws, self.storage = ws, storage
        self.owner_key, self.owner_secret = owner_key, owner_secret

    def check(self, request: Request, bucket: str, key: str, body: bytes) -> None:
        """Raise the :class:`S3Error` S3 would answer, or return to let moto run the request."""
        resource = f"/{bucket}/{key}" if key else f"/{bucket or ''}"
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        signed = sigv4.parse(request.method, raw_path, request.url.query, request.headers)
        if signed is None:
            if access_key(request) is not None:  # SigV2
                raise S3Error(400, "InvalidRequest", "The authorization mechanism you have provided is not "
                              "supported. Please use AWS4-HMAC-SHA256.", resource)
            raise _denied(resource)
        creds: Credentials | None = None
        if signed.access_key == self.owner_key:
            secret = self.owner_secret
        else:
            with self.ws.lock:
                creds = self.ws.credentials.get(signed.access_key)
            if creds is None:
                raise S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in "
                              "our records.", resource, fields={"AWSAccessKeyId": signed.access_key})
            token = request.headers.get("x-amz-security-token") or request.query_params.get("X-Amz-Security-Token")
            if token != creds.session_token:
                raise S3Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.",
                              resource, fields={"Token-0": token or ""})
            if creds.expired:
                raise S3Error(400, "ExpiredToken", "The provided token has expired.", resource,
                              fields={"Token-0": token})
            secret = creds.secret_access_key
        if not signed.valid(secret):
            raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.", resource,
                          fields={"AWSAccessKeyId": signed.access_key})
        self._fresh(signed, resource)
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if creds is not None:
            self._scope(creds, request, bucket, key, query, resource)
        self._payload(request, bucket, key, query, body, resource)

    @staticmethod
    def _fresh(signed: sigv4.Signed, resource: str) -> None:
        """A presigned URL past ``X-Amz-Expires``: 403 "Request has expired"; a signed request more
        than 15 minutes off the server's clock: 403 ``RequestTimeTooSkewed``."""
        now = time.time()
        issued = signed.issued()
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        if issued is None:
            raise S3Error(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header",
                          resource)
        if signed.expires is not None:
            if now > issued + signed.expires:
                raise request_expired(signed.expires, time.strftime(stamp, time.gmtime(issued + signed.expires)),
                                      time.strftime(stamp, time.gmtime(now)), resource)
        elif abs(now - issued) > MAX_SKEW:
            raise S3Error(403, "RequestTimeTooSkewed", "The difference between the request time and the current "
                          "time is too large.", resource,
                          fields={"RequestTime": signed.amz_date, "ServerTime": time.strftime(stamp, time.gmtime(now)),
                                  "MaxAllowedSkewMilliseconds": MAX_SKEW * 1000})

    @staticmethod
    def _scope(creds: Credentials, request: Request, bucket: str, key: str, query: dict[str, str],
               resource: str) -> None:
        """The STS session policy of ``storage_credentials.go``."""
        action = _operation(request.method, key, query, request.headers)
        if bucket != creds.bucket:
            raise _denied(resource)
        if not key:
            if action != "s3:ListBucketMultipartUploads":
                raise _denied(resource)
            return
        if action not in _ALLOWED_OBJECT or not key.startswith(creds.key_prefix + "/"):
            raise _denied(resource)

    def _payload(self, request: Request, bucket: str, key: str, query: dict[str, str], body: bytes,
                 resource: str) -> None:
        """``x-amz-content-sha256`` and ``x-amz-checksum-sha256`` against the body; SHA-256 multipart
        uploads need a checksum on every part and in the complete request."""
        declared = request.headers.get("x-amz-content-sha256", sigv4.UNSIGNED)
        streaming = declared.startswith("STREAMING-")
        checksum = request.headers.get("x-amz-checksum-sha256")
        if not streaming and (declared != sigv4.UNSIGNED or checksum):  # hash the body only to compare
            digest = hashlib.sha256(body).digest()
            if declared != sigv4.UNSIGNED and declared != digest.hex():
                raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header "
                              "does not match what was computed.", resource,
                              fields={"ClientComputedContentSHA256": declared,
                                      "S3ComputedContentSHA256": digest.hex()})
            if checksum and checksum != base64.b64encode(digest).decode():
                raise S3Error(400, "BadDigest", "The SHA256 you specified did not match the calculated checksum.",
                              resource)
        upload_id = query.get("uploadId")
        if not key or not upload_id or streaming:
            return
        algorithm = self.storage.multipart_algorithm(bucket, upload_id)
        if algorithm != "SHA256":
            return
        if request.method == "PUT" and "partNumber" in query and not checksum:
            raise S3Error(400, "InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: "
                          "sha256, actual checksum Type: null", resource)
        if request.method == "POST":
            self._complete_checksums(bucket, upload_id, body, resource)

    def _complete_checksums(self, bucket: str, upload_id: str, body: bytes, resource: str) -> None:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return  # moto answers MalformedXML
        stored = self.storage.part_checksums(bucket, upload_id)
        for part in root.iter():
            if not part.tag.endswith("Part"):
                continue
            fields = {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in part}
            number = fields.get("PartNumber", "")
            if not fields.get("ChecksumSHA256"):
                raise S3Error(400, "InvalidRequest", "The upload was created using a sha256 checksum. The "
                              "complete request must include the checksum for each part. It was missing for "
                              f"part {number} in the request.", resource)
            if number.isdigit() and int(number) in stored and stored[int(number)] != fields["ChecksumSHA256"]:
                raise S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.  The "
                              "part may not have been uploaded, or the specified entity tag may not have matched "
                              "the part's entity tag.", resource,
                              fields={"UploadId": upload_id, "PartNumber": number})


class S3Endpoint:
    """The ASGI endpoint behind ``/s3``: the gate, then moto in a worker thread."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        app = request.app
        storage: Storage = app.state.workspace_storage
        path = scope["path"][len(S3_PATH):] or "/"
        bucket, _, key = path.lstrip("/").partition("/")
        head = scope["method"] == "HEAD"
        try:
            body = await request.body()
        except ClientDisconnect:
            return  # the client hung up mid-upload: nothing stored, nobody to answer
        await storage.ready()
        gate = Gate(app.state.workspace, storage, app.state.settings.api_key, app.state.settings.api_secret)
        try:
            # hashing a large part takes a while: off the event loop
            await anyio.to_thread.run_sync(gate.check, request, bucket, key, body)
        except S3Error as error:
            await error.response(head=head)(scope, receive, send)
            return
        environ = _environ(scope, path, body)
        status, headers, content = await anyio.to_thread.run_sync(storage.call, environ)
        if status < 300 and key:
            headers, content = storage.composite(scope["method"], bucket, key, request.query_params,
                                                 headers, content)
        response = Response(b"" if head else content, status_code=status)
        response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
                                if k.lower() not in ("content-length",)]
        length = _header(headers, "content-length")
        response.raw_headers.append((b"content-length", (length if head and length else str(len(content))).encode()))
        await response(scope, receive, send)


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _environ(scope: Scope, path: str, body: bytes) -> dict[str, Any]:
    """A WSGI environ for moto: the path below ``/s3`` (path-style addressing)."""
    server = scope.get("server") or ("127.0.0.1", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "",
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "RAW_URI": scope.get("raw_path", b"")[len(S3_PATH):].decode("latin-1") or path,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0], "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_LENGTH":
            continue
        key = key if key == "CONTENT_TYPE" else f"HTTP_{key}"
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


routes = [
    Route(S3_PATH, S3Endpoint(), methods=["GET", "HEAD", "PUT", "POST", "DELETE"]),
    Route(S3_PATH + "/{path:path}", S3Endpoint(), methods=["GET", "HEAD", "PUT", "POST", "DELETE"]),
]
