"""Every error sparc.client raises, in one tree.

::

    SparcError
    ├── ArgumentError (ValueError)            a bad argument, caught before any request
    ├── ConfigError (ValueError)              bad or missing configuration
    │   ├── MissingCredentialsError           a call needs a key/secret that is not configured
    │   └── InsecureTransportError            credentials would go over plain HTTP
    ├── TransportError (ConnectionError)      network failure or timeout, after retries
    ├── ApiError                              the server answered with an error
    │   ├── InvalidRequestError (ValueError)  400 / 422: fix the arguments
    │   ├── AuthenticationError (PermissionError)  401: sign in, or embargoed data
    │   ├── PermissionDeniedError (PermissionError) 403: not allowed
    │   │   ├── LinkExpiredError                S3 "Request has expired" / ExpiredToken: renew the link
    │   │   └── DownloadTooLargeError           Discover "too large": ask for fewer files at once
    │   ├── NotFoundError (LookupError)       404: unknown dataset id, version or path
    │   │   └── GoneError                     410: unpublished dataset (``.tombstone``)
    │   ├── ConflictError                     409
    │   ├── RateLimitedError                  429 (``.retry_after``)
    │   ├── ClientError                       any other 4xx (405, 412, 416...): not an argument fault
    │   ├── ServerError                       5xx
    │   └── ArchiveError                      zipit reported an error inside a 200 ``!ERROR.txt``
    └── DownloadError                         files could not be saved intact (``.failures``, ``.result``)
        ├── ChecksumMismatchError             size or sha256 differ from the catalogue
        └── UnsafePathError (ValueError)      a server-given path would escape the output folder

Every :class:`ApiError` carries ``status``, ``method``, ``url`` (secrets stripped),
``service``, ``server_message`` (the server's own words) and ``code`` (a machine-readable
error code when the server sends one, e.g. S3's ``AccessDenied``). The class is chosen in ONE
place, :func:`error_class_for`, from the status and the server's code and message. Every error
pickles (process pools, Dask). Example::

    try:
        client.pennsieve.get_dataset(999999)
    except NotFoundError as err:
        print(err.status, err.server_message)   # 404 999999
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "SparcError",
    "ArgumentError",
    "ConfigError",
    "MissingCredentialsError",
    "InsecureTransportError",
    "TransportError",
    "ApiError",
    "InvalidRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "GoneError",
    "ConflictError",
    "RateLimitedError",
    "ClientError",
    "LinkExpiredError",
    "DownloadTooLargeError",
    "ServerError",
    "ArchiveError",
    "DownloadError",
    "ChecksumMismatchError",
    "UnsafePathError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...],
             state: dict[str, Any]) -> BaseException:
    """Unpickle an error without calling its ``__init__`` (whose keywords differ by class)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class SparcError(Exception):
    """Base of every error raised by sparc.client."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class ArgumentError(SparcError, ValueError):
    """An argument is wrong (type, range, mix of datasets); nothing was sent to the server."""


class ConfigError(SparcError, ValueError):
    """The configuration (file, profile, environment or argument) is wrong or incomplete."""


class MissingCredentialsError(ConfigError):
    """The call needs credentials that are not configured."""


class InsecureTransportError(ConfigError):
    """Credentials would be sent over plain HTTP to a host that is not loopback."""


class TransportError(SparcError, ConnectionError):
    """The request did not get an answer (connection refused or dropped, timeout), after retries."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ApiError(SparcError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        url: str = "",
        service: str = "",
        server_message: str | None = None,
        body: Any = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.service = service
        self.server_message = server_message
        self.body = body
        self.code = code


class InvalidRequestError(ApiError, ValueError):
    """400/422: the server rejected the arguments."""


class AuthenticationError(ApiError, PermissionError):
    """401: credentials missing or refused (also: embargoed data without access)."""


class PermissionDeniedError(ApiError, PermissionError):
    """403: not allowed."""


class LinkExpiredError(PermissionDeniedError):
    """A presigned download link (or its temporary credentials) expired: ask for a new link.

    S3 answers 403 ``AccessDenied`` "Request has expired", or 400 ``ExpiredToken``.
    """


class DownloadTooLargeError(PermissionDeniedError):
    """Discover refuses a download over its size cap (403 "... too large ..."): ask for fewer
    files per request, or download them one by one."""


class NotFoundError(ApiError, LookupError):
    """404: no such dataset, version, file or route."""


class GoneError(NotFoundError):
    """410: the dataset was unpublished; ``tombstone`` holds what the server still says of it."""

    @property
    def tombstone(self) -> dict[str, Any] | None:
        return self.body if isinstance(self.body, dict) else None


class ConflictError(ApiError):
    """409: the request conflicts with the resource's state."""


class RateLimitedError(ApiError):
    """429: too many requests; ``retry_after`` is the server's advice in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ClientError(ApiError):
    """Any other 4xx (405 method, 412 precondition, 415 media type, 416 range...): the request
    does not suit the server, but the caller's arguments are not known to be at fault."""


class ServerError(ApiError):
    """5xx: the server failed."""


class ArchiveError(ApiError):
    """The zipit archive service answered 200 with an ``!ERROR.txt`` attachment."""


class DownloadError(SparcError):
    """One or more files could not be saved intact; ``failures`` maps each path to its error
    and ``result`` (when raised by ``download()``) is the whole
    :class:`~sparc.client.DownloadResult`: what was downloaded, skipped and failed."""

    def __init__(self, message: str, *, failures: dict[str, BaseException] | None = None,
                 result: Any = None) -> None:
        super().__init__(message)
        self.failures = failures or {}
        self.result = result


class ChecksumMismatchError(DownloadError):
    """The bytes received differ (size or sha256) from what the catalogue promises."""


class UnsafePathError(DownloadError, ValueError):
    """A path from the server would write outside the chosen output folder."""

    def __init__(self, path: str, reason: str = "escapes the output folder") -> None:
        super().__init__(f"refusing unsafe path {path!r}: {reason}")
        self.path = path


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidRequestError,
    429: RateLimitedError,
}
#: S3 error codes that mean "this presigned link can no longer be used: get a new one".
_EXPIRED_CODES = frozenset({"ExpiredToken", "TokenRefreshRequired"})


def error_class_for(status: int, message: str | None = None,
                    code: str | None = None) -> type[ApiError]:
    """The most specific :class:`ApiError` subclass for an error answer: the ONE place where
    status, server code (S3 XML ``<Code>``) and server message (Pennsieve's text) are read.

    >>> error_class_for(403, "Request has expired", "AccessDenied").__name__
    'LinkExpiredError'
    """
    text = (message or "").lower()
    if code in _EXPIRED_CODES or (status == 403 and "request has expired" in text):
        return LinkExpiredError
    if status == 403 and "too large" in text:
        return DownloadTooLargeError
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    if status >= 500:
        return ServerError
    if 400 <= status < 500:
        return ClientError
    return ApiError


def error_class_for_status(status: int) -> type[ApiError]:
    """The :class:`ApiError` subclass for a bare status (no server code or message)."""
    return error_class_for(status)


def summarize_failures(failures: dict[str, BaseException], what: str = "files") -> str:
    """One line naming how many items failed and the first few reasons, each path once.

    >>> summarize_failures({"a/m.json": ValueError("m.json: md5 differs")})
    '1 file failed: a/m.json: md5 differs'
    """
    head: Sequence[tuple[str, BaseException]] = list(failures.items())[:3]
    detail = "; ".join(f"{path}: {_without_name(path, str(err))}" for path, err in head)
    more = f" (+{len(failures) - len(head)} more)" if len(failures) > len(head) else ""
    noun = what[:-1] if len(failures) == 1 and what.endswith("s") else what
    return f"{len(failures)} {noun} failed: {detail}{more}"


def _without_name(path: str, text: str) -> str:
    """``text`` without a leading ``<path>: `` or ``<file name>: `` (already said)."""
    for prefix in (path, path.replace("\\", "/").rsplit("/", 1)[-1]):
        if prefix and text.startswith(f"{prefix}: "):
            return text[len(prefix) + 2:]
    return text
