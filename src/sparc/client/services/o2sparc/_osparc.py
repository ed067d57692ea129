"""The one module that touches the official ``osparc`` client: lazy import, configuration
(host, credentials, timeouts, the tuned urllib3 retry) and the ONE place where its exceptions
become :mod:`sparc.client.errors`.

Nothing here imports ``osparc`` at import time; :func:`load_osparc` does, on first use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sparc.client.errors import (
    ApiError,
    ArgumentError,
    InsecureTransportError,
    MissingCredentialsError,
    RateLimitedError,
    SparcError,
    TransportError,
    error_class_for,
)
from sparc.client.services.o2sparc.errors import (
    O2SparcNotInstalledError,
    UnexpectedResponseError,
)

log = logging.getLogger("sparc.client")

SERVICE = "o2sparc"
#: Statuses the official client retries (the api-server and its proxy send them with
#: ``Retry-After`` when they know how long to wait).
RETRY_STATUSES = frozenset({429, 503, 504})
#: The one POST that must not be repeated once it went out: creating a job (a second job).
#: Every other POST of the API reads (``:inspect``) or is idempotent (``:start``, ``:stop``,
#: ``:complete``; new upload links are harmless), so a read error on it is retried like a GET.
UNSAFE_POST_SUFFIXES = ("/jobs",)

_lock = threading.Lock()
_osparc: ModuleType | None = None


def load_osparc() -> ModuleType:
    """``import osparc`` (once), or :class:`O2SparcNotInstalledError` naming the install command."""
    global _osparc
    if _osparc is None:
        with _lock:
            if _osparc is None:
                try:
                    import osparc
                except ImportError as exc:
                    raise O2SparcNotInstalledError(str(exc)) from exc
                _osparc = osparc
    return _osparc


def osparc_version() -> str | None:
    """The installed osparc version, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("osparc")
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Settings:
    """What a session is built from: host, credentials, timeouts and the retry budget."""

    host: str
    username: str | None = field(repr=False)
    password: str | None = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_total: float = 120.0

    def check(self) -> None:
        """Credentials present, and never sent over plain HTTP except to loopback."""
        from sparc.client._http import redact_url

        missing = [name for name, value in (("o2sparc_username", self.username),
                                            ("o2sparc_password", self.password)) if not value]
        if missing:
            raise MissingCredentialsError(
                f"o²S²PARC needs an API key and secret, but {' and '.join(missing)} "
                "is not set: put o2sparc_username (the API key) and o2sparc_password (the API "
                "secret) in the config file, or export O2SPARC_USERNAME and O2SPARC_PASSWORD; "
                f"o2sparc_host (O2SPARC_HOST) says where, now {redact_url(self.host)}")
        self.check_transport()

    def check_transport(self) -> None:
        """:class:`InsecureTransportError` for a plain ``http://`` host that is not loopback."""
        from urllib.parse import urlsplit

        from sparc.client._http import is_loopback

        parts = urlsplit(self.host)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise InsecureTransportError(
                f"refusing to send o²S²PARC credentials over plain HTTP to {parts.hostname}; "
                "use an https:// o2sparc_host (plain http is allowed only for loopback)")


def retry_class() -> type:
    """urllib3's ``Retry``, bounded in total time and careful with POSTs (built lazily)."""
    from urllib3.exceptions import MaxRetryError, ResponseError
    from urllib3.util.retry import Retry

    class BoundedRetry(Retry):
        """``Retry`` that also gives up once ``max_total`` seconds have passed since the first
        failure (or when a ``Retry-After`` would take it past that), honours ``Retry-After`` on
        504 too, and does not repeat a non-idempotent POST after a read error."""

        RETRY_AFTER_STATUS_CODES = frozenset({413, 429, 503, 504})

        def __init__(self, *args: Any, max_total: float = 120.0,
                     first_failure: float | None = None, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.max_total = max_total
            self.first_failure = first_failure

        def new(self, **kw: Any) -> BoundedRetry:
            kw.setdefault("max_total", self.max_total)
            kw.setdefault("first_failure", self.first_failure)
            return super().new(**kw)

        def increment(self, method: str | None = None, url: str | None = None,
                      response: Any = None, error: Exception | None = None,
                      _pool: Any = None, _stacktrace: Any = None) -> BoundedRetry:
            if (error is not None and self._is_read_error(error) and method == "POST"
                    and (url or "").split("?")[0].endswith(UNSAFE_POST_SUFFIXES)):
                raise error
            now = time.monotonic()
            started = self.first_failure if self.first_failure is not None else now
            new = super().increment(method, url, response, error, _pool, _stacktrace)
            new.first_failure = started
            if response is not None and not response.get_redirect_location():
                wait = (new.get_retry_after(response) if new.respect_retry_after_header
                        else None)
                wait = new.get_backoff_time() if wait is None else wait
                if now - started + wait > self.max_total:
                    reason = ResponseError(f"giving up: the next retry (in {wait:.0f} s) would "
                                           f"pass the {self.max_total:.0f} s budget")
                    raise MaxRetryError(_pool, url, reason)
                log.warning("o2sparc: %s %s -> %s; retrying in %.1f s", method, url,
                            response.status, wait)
            elif error is not None:
                if now - started > self.max_total:
                    raise MaxRetryError(_pool, url, error) from error
                log.warning("o2sparc: %s %s failed (%s); retrying", method, url,
                            type(error).__name__)
            return new

    return BoundedRetry


class Session:
    """An ``osparc.ApiClient`` with its API objects, built from :class:`Settings`."""

    def __init__(self, settings: Settings, api_client: Any = None, http: Any = None) -> None:
        osparc = load_osparc()
        self.settings = settings
        self.osparc = osparc
        #: the client's :class:`~sparc.client._http.HttpCore`, for plain file downloads
        self.http = http
        if api_client is None:
            settings.check()
            configuration = osparc.Configuration(host=settings.host, username=settings.username,
                                                 password=settings.password)
            configuration.retries = retry_class()(
                total=settings.max_retries, connect=settings.max_retries,
                read=settings.max_retries, status=settings.max_retries,
                backoff_factor=settings.backoff, backoff_max=settings.max_backoff,
                status_forcelist=RETRY_STATUSES, allowed_methods=None,
                respect_retry_after_header=True, raise_on_status=False,
                max_total=settings.max_total)
            configuration.connection_pool_maxsize = 64
            api_client = osparc.ApiClient(configuration)
            _read_bodies_inside_retries(api_client)
        self.configuration = api_client.configuration
        self.api_client = api_client
        self.users = osparc.UsersApi(self.api_client)
        self.solvers = osparc.SolversApi(self.api_client)
        self.files = osparc.FilesApi(self.api_client)

    @classmethod
    def from_api_client(cls, api_client: Any) -> Session:
        """A session around an ``osparc.ApiClient`` made elsewhere (its own retry settings)."""
        configuration = api_client.configuration
        settings = Settings(host=str(configuration.host).rstrip("/"),
                            username=configuration.username, password=configuration.password)
        if settings.username or settings.password:
            settings.check_transport()
        return cls(settings, api_client)

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, passed as ``_request_timeout`` on every call."""
        return (self.settings.connect_timeout, self.settings.read_timeout)

    @property
    def transfer_timeout(self) -> int:
        """Seconds for each step of a file upload/download (httpx), at least 1."""
        return max(1, round(self.settings.read_timeout))

    def call(self, method: str, path: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` with the session's timeouts; errors translated."""
        kwargs.setdefault("_request_timeout", self.timeout)
        with translated(method, self.settings.host + path):
            return func(*args, **kwargs)

    def upload_file(self, path: Any) -> Any:
        """The official client's upload (its ``osparc.File``); its bare ``RuntimeError`` /
        ``AssertionError`` on an answer it cannot use become :class:`UnexpectedResponseError`."""
        try:
            with translated("POST", self.settings.host + "/v0/files/content"):
                return self.files.upload_file(path, timeout_seconds=self.transfer_timeout)
        except (RuntimeError, AssertionError) as exc:
            raise UnexpectedResponseError(f"uploading {path} failed: {exc or type(exc).__name__}"
                                          ) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.rest_client.pool_manager.clear()

    def __repr__(self) -> str:
        from sparc.client._http import redact_url

        return f"<o2sparc Session {redact_url(self.settings.host)}>"


def _read_bodies_inside_retries(api_client: Any) -> None:
    """Make urllib3 read each answer's body before returning it (``preload_content``), so a
    body cut short or stalled is a read error its ``Retry`` handles like a dropped connection.
    The generated client asks for a lazy body, then reads all of it at once anyway."""
    pool_manager = api_client.rest_client.pool_manager
    request = pool_manager.request

    def preloading(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["preload_content"] = True
        return request(method, url, *args, **kwargs)

    pool_manager.request = preloading


def _server_words(body: Any) -> tuple[str | None, Any]:
    """The server's message from an ``ErrorGet`` body ``{"errors": [...], "support_id": ...}``."""
    if body is None:
        return None, None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    decoded: Any = body
    if isinstance(body, str):
        try:
            decoded = json.loads(body) if body.strip() else None
        except ValueError:
            return (body.strip()[:500] or None), body
    if isinstance(decoded, dict):
        errors = decoded.get("errors", decoded.get("detail"))
        if isinstance(errors, list):
            words = "; ".join(
                (f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
                 if e.get("loc") else str(e.get("msg")))
                if isinstance(e, dict) and "msg" in e else str(e) for e in errors)
            return words or None, decoded
        if errors:
            return str(errors), decoded
    if isinstance(decoded, str):
        return decoded, decoded
    return (str(decoded)[:500] if decoded is not None else None), decoded


def _retry_after(headers: Any) -> float | None:
    from sparc.client._http import parse_retry_after

    if not headers:
        return None
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    return parse_retry_after(value)


def api_error(status: int, method: str, url: str, body: Any, reason: str = "",
              headers: Any = None) -> ApiError:
    """The typed error for an error answer of the o²S²PARC API."""
    message, decoded = _server_words(body)
    cls = error_class_for(status, message)
    text = f"{method} {url} -> {status}{' ' + reason if reason else ''}"
    if message:
        text += f": {message}"
    kwargs: dict[str, Any] = dict(status=status, method=method, url=url, service=SERVICE,
                                  server_message=message, body=decoded)
    if cls is RateLimitedError:
        kwargs["retry_after"] = _retry_after(headers)
    return cls(text, **kwargs)


def _foreign(exc: BaseException, method: str, url: str) -> SparcError | None:
    """The sparc error for an exception of osparc, urllib3, httpx or pydantic, else None."""
    import httpx
    import pydantic
    import urllib3

    from sparc.client._http import redact_url

    osparc = _osparc
    if osparc is not None and isinstance(exc, osparc.ApiException):
        cause = exc.__cause__
        if isinstance(cause, (httpx.HTTPError, urllib3.exceptions.HTTPError)):
            return _foreign(cause, method, url)
        status = getattr(exc, "status", None)
        if not status:  # status 0/None: no answer (SSL failure) or a request not sent
            reason = getattr(exc, "reason", None) or str(exc)
            return TransportError(f"{method} {url} failed: {' '.join(str(reason).split())}",
                                  method=method, url=url)
        return api_error(int(status), method, url, getattr(exc, "body", None),
                         str(getattr(exc, "reason", "") or ""), getattr(exc, "headers", None))
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        target = redact_url(response.request.url)
        try:
            body: Any = response.text
        except (httpx.ResponseNotRead, UnicodeDecodeError):
            body = None
        return api_error(response.status_code, response.request.method, target, body,
                         response.reason_phrase, response.headers)
    if isinstance(exc, httpx.HTTPError):
        target = url
        with contextlib.suppress(RuntimeError):  # the request is known, e.g. a storage PUT
            target, method = redact_url(exc.request.url), exc.request.method
        return TransportError(f"{method} {target} failed: {type(exc).__name__}: "
                              f"{exc or 'no answer'}", method=method, url=target)
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        why = exc.reason if exc.reason is not None else exc
        return TransportError(f"{method} {url} failed after retries: {type(why).__name__}: "
                              f"{_short(why)}", method=method, url=url)
    if isinstance(exc, (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError)):
        return TransportError(f"{method} {url} failed: {type(exc).__name__}: {_short(exc)}",
                              method=method, url=url)
    if isinstance(exc, pydantic.ValidationError) and "." in str(exc.title):
        # the official client checks a call's arguments (``SolversApi.inspect_job``) before
        # sending anything; a model name (``JobStatus``) means the server's answer was refused
        return ArgumentError(f"{method} {url}: an argument is not valid: {_short(exc)}")
    if isinstance(exc, pydantic.ValidationError):
        return UnexpectedResponseError(f"{method} {url}: the answer does not match the "
                                       f"o²S²PARC API: {_short(exc)}")
    if osparc is not None and isinstance(exc, osparc.OpenApiException):
        return UnexpectedResponseError(f"{method} {url}: {_short(exc)}")
    return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


@contextlib.contextmanager
def translated(method: str, url: str) -> Iterator[None]:
    """Run a call of the official client; its exceptions come out as sparc errors (chained).
    ``url`` is only quoted in messages, without user info or signed query values."""
    try:
        yield
    except SparcError:
        raise
    except Exception as exc:
        from sparc.client._http import redact_url

        mapped = _foreign(exc, method, redact_url(url))
        if mapped is None:
            raise
        raise mapped from exc
