"""The one HTTP core every service uses: pooling, timeouts, retries, error mapping.

Example::

    http = HttpCore()
    resp = http.request("GET", "https://api.pennsieve.io/discover/datasets/90", service="pennsieve")
    resp.json()["name"]

Retries cover connection errors, timeouts, 408/429/5xx, for idempotent requests only
(GET/HEAD/PUT/DELETE/OPTIONS, or ``idempotent=True`` for read-only POSTs), with exponential
backoff and full jitter, honouring ``Retry-After``, bounded in count and in total time.
A caller that retries by itself (the downloader resumes streams) passes ``retries=0``, so
there is only ever ONE retry layer. Errors come out as :mod:`sparc.client.errors`; no raw
httpx exception escapes (a URL httpx cannot build is an :class:`ArgumentError`).

Credentials: ``HttpCore(auth=..., auth_hosts={"api.pennsieve.io"})`` signs requests to those
hosts only (never a presigned S3 link, never a redirect elsewhere), and never over plain HTTP
except to loopback.

File bytes (unsigned GETs of presigned links, resumed by the downloader) go through
:meth:`HttpCore.stream_file`: kept-alive HTTP/1.1 sockets read straight into bytes, with the
same errors, timeouts, cancellation and TLS certificate store as httpx, at about a tenth of its
CPU per request and per MB (``HttpCore.fast_files = False`` sends them through httpx). So do
plain unsigned API GETs read whole (listings, searches: :meth:`HttpCore.request`), answered as
an ``httpx.Response``, with the same retries: about 0.1 ms of CPU each instead of 0.8.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import json
import logging
import os
import random
import re
import select
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from threading import get_ident
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpcore
import httpx

from sparc.client._version import package_version
from sparc.client.config import SECRET_PARAM_WORDS
from sparc.client.errors import (
    ApiError,
    ArgumentError,
    InsecureTransportError,
    RateLimitedError,
    TransportError,
    error_class_for,
)

__all__ = ["HttpCore", "RetryPolicy", "HostBoundAuth", "FileResponse", "redact_url", "is_loopback",
           "interrupt_response", "interrupt_thread", "clear_interrupt"]

log = logging.getLogger("sparc.client")

#: The most one socket read takes (httpcore asks for 64 KiB; see _WatchedStream.read). Each
#: piece is written at once, while still in the core's cache: 256 KiB stays in a 1 MiB L2 beside
#: the hash threads' work (1 GiB to disk, 5 rounds each, a busy host: 1.79 s against 2.08 s
#: with 512 KiB, 1.86 s with 128 KiB; the kernel's copy into the page cache 0.87 s against 1.39).
READ_SIZE = 256 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRYABLE_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    ``backoff * 2**attempt`` seconds (full jitter), at most ``max_backoff`` each, and never past
    ``max_total`` seconds overall; a ``Retry-After`` header replaces the computed wait.
    File transfers (which resume rather than retry) give up when fewer than
    ``min_progress_bytes`` arrived in the last ``no_progress_limit`` seconds, across attempts
    (a low-speed limit, as curl's ``--speed-limit``): a server that stalls after every few
    bytes cannot keep a download alive forever. The read timeout is the core's ``timeout``.
    """

    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_total: float = 120.0
    no_progress_limit: float = 60.0
    min_progress_bytes: int = 64 * 1024
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({408, 429, 500, 502, 503, 504}))

    def ceiling(self, attempt: int) -> float:
        """The longest backoff before retry number ``attempt`` (0-based)."""
        return min(self.max_backoff, self.backoff * (2**attempt))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt``: ``Retry-After`` when given, else
        a jittered backoff between half the ceiling and the ceiling."""
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = self.ceiling(attempt)
        return random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str | httpx.URL) -> str:
    """The URL with credentials and signed query values replaced by ``***``."""
    try:
        parts = urlsplit(str(url))
    except ValueError:  # not even splittable: show no query and no user info
        text = str(url).split("?", 1)[0]
        return text.rsplit("@", 1)[-1] if "@" in text else text
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(k, "***" if any(w in k.lower() for w in SECRET_PARAM_WORDS) else v)
         for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*/:",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _s3_error(text: str) -> dict[str, str] | None:
    """The fields of an S3 XML error document (``<Error><Code>..</Code>...``), else None."""
    if "<Error>" not in text[:200]:
        return None
    try:
        root = ElementTree.fromstring(text.encode())
    except (ElementTree.ParseError, ValueError):
        return None
    if root.tag != "Error":
        return None
    return {child.tag: (child.text or "") for child in root}


def server_code(body: Any) -> str | None:
    """The machine-readable error code in a decoded error body (S3 ``Code``, JSON ``code``)."""
    if isinstance(body, dict):
        code = body.get("Code", body.get("code"))
        return str(code) if code not in (None, "") else None
    return None


def server_message(response: httpx.Response) -> tuple[str | None, Any]:
    """The server's own words from an error body, and the decoded body.

    Pennsieve sends a JSON string (``"5"``, ``"Dataset is under embargo"``); S3 an XML
    ``<Error>`` (decoded to a dict of its fields); others ``{"message": ...}``/
    ``{"errors": [...]}``/``{"detail": ...}`` or plain text.
    """
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return None, None
    s3 = _s3_error(text.lstrip()) if text else None
    if s3 is not None:
        return (s3.get("Message") or s3.get("Code") or None), s3
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        return (text.strip()[:500] or None), text
    if isinstance(body, str):
        return body, body
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "errors", "msg"):
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v.get("msg", v) if isinstance(v, dict) else v) for v in value)
            if value:
                return str(value), body
        if "name" in body and "status" in body:  # a Pennsieve tombstone
            return f"dataset {body.get('name')!r} is {str(body['status']).lower()}", body
    return (text[:500] if text else None), body


def _check_secure(url: httpx.URL) -> None:
    if url.scheme == "http" and not is_loopback(url.host):
        raise InsecureTransportError(
            f"refusing to send credentials over plain HTTP to {url.host}; "
            "use an https:// host (plain http is allowed only for loopback)"
        )


class HostBoundAuth(httpx.Auth):
    """An ``httpx.Auth`` applied only to requests for ``hosts`` (a request to any other host,
    e.g. a presigned S3 link, goes out unsigned), and never over plain HTTP except loopback.

    Example: ``HostBoundAuth(httpx.BasicAuth("key", "secret"), {"api.pennsieve.io"})``.
    """

    def __init__(self, auth: httpx.Auth, hosts: Collection[str]) -> None:
        if not isinstance(auth, httpx.Auth):
            raise ArgumentError(f"auth must be an httpx.Auth, got {type(auth).__name__}")
        self.auth = auth
        self.hosts = frozenset(h.lower().strip("[]") for h in hosts)
        if not self.hosts:
            raise ArgumentError("auth needs the host(s) it may be sent to (auth_hosts=...)")
        self.requires_request_body = auth.requires_request_body
        self.requires_response_body = auth.requires_response_body

    def applies_to(self, url: httpx.URL) -> bool:
        """True when credentials may be attached to a request for ``url``."""
        return self.applies_to_host(url.host)

    def applies_to_host(self, host: str) -> bool:
        """True when credentials may be attached to a request for ``host``."""
        return host.lower().strip("[]") in self.hosts

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.applies_to(request.url):
            yield request
            return
        _check_secure(request.url)
        yield from self.auth.sync_auth_flow(request)


def interrupt_response(response: httpx.Response | FileResponse) -> None:
    """Wake a thread blocked reading ``response`` (from any thread): shut its socket down.

    Closing a socket does not wake a blocked ``recv`` on every platform; ``shutdown`` does.
    """
    if isinstance(response, FileResponse):
        response.cut = True
    _shutdown(response.extensions.get("network_stream"))


def _shutdown(stream: Any) -> None:
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


#: A CPython build without the GIL: orderings the GIL gives must be locked for.
_FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()


class _BlockedStreams:
    """Which network stream each thread is blocked on (reading or writing), so another thread
    can wake it: :func:`interrupt_thread` shuts that socket down, and any later read or write
    by the thread fails at once until :func:`clear_interrupt`. This reaches a thread waiting
    for a server's first reply, before any ``httpx.Response`` exists.

    No lock on the hot path (a few per file GET): :meth:`enter` stores the stream, then looks
    for an interrupt; :meth:`interrupt` stores the interrupt, then looks for a stream. Each dict
    and set operation is atomic under the GIL and they run in one order, so at least one side
    sees the other: the thread fails at once, or its socket is shut down. A build without the
    GIL (free-threaded) takes the lock instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, Any] = {}
        self._interrupted: set[int] = set()

    def interrupt(self, thread_id: int) -> None:
        with self._lock:
            self._interrupted.add(thread_id)
            stream = self._active.get(thread_id)
        _shutdown(stream)

    def interrupted(self, thread_id: int) -> bool:
        return thread_id in self._interrupted

    def clear(self, thread_id: int) -> None:
        self._interrupted.discard(thread_id)

    def enter(self, stream: Any) -> int:
        """Mark this thread blocked on ``stream`` (pair with :meth:`leave`); its id."""
        thread_id = get_ident()
        if _FREE_THREADED:
            with self._lock:
                self._active[thread_id] = stream
                hit = thread_id in self._interrupted
        else:
            self._active[thread_id] = stream
            hit = thread_id in self._interrupted
        if hit:
            self._active.pop(thread_id, None)
            raise httpcore.ReadError("interrupted (download cancelled)")
        return thread_id

    def leave(self, thread_id: int) -> None:
        self._active.pop(thread_id, None)

    def call(self, stream: Any, func: Callable[..., Any], *args: Any) -> Any:
        """``func(*args)`` (a blocking socket call), this thread marked blocked on ``stream``."""
        thread_id = self.enter(stream)
        try:
            return func(*args)
        finally:
            self._active.pop(thread_id, None)

    @contextlib.contextmanager
    def blocked_on(self, stream: httpcore.NetworkStream) -> Iterator[None]:
        thread_id = self.enter(stream)
        try:
            yield
        finally:
            self.leave(thread_id)


_BLOCKED = _BlockedStreams()


def interrupt_thread(thread_id: int) -> None:
    """Wake thread ``thread_id`` out of any network read or write done through an
    :class:`HttpCore` (waiting for headers or for body bytes), and fail its next ones until
    :func:`clear_interrupt`. Safe from any thread."""
    _BLOCKED.interrupt(thread_id)


def clear_interrupt(thread_id: int) -> None:
    """Let ``thread_id`` use the network again after :func:`interrupt_thread`."""
    _BLOCKED.clear(thread_id)


class _WatchedStream(httpcore.NetworkStream):
    """A network stream whose blocking calls are visible to :func:`interrupt_thread`."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KiB; taking what is there up to READ_SIZE halves the CPU spent
        # per received byte (fewer passes through h11 and httpx per MB)
        with _BLOCKED.blocked_on(self._inner):
            return self._inner.read(max(max_bytes, READ_SIZE), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _BLOCKED.blocked_on(self._inner):
            self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        with _BLOCKED.blocked_on(self._inner):
            return _WatchedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _WatchedBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every stream a :class:`_WatchedStream`."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _WatchedStream(self._inner.connect_tcp(host, port, timeout, local_address,
                                                      socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _WatchedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _watched_transport(verify: bool, limits: httpx.Limits) -> httpx.BaseTransport:
    """httpx's own transport, its streams visible to :func:`interrupt_thread` (when this httpx
    keeps its httpcore pool where 0.2x does; else plain: cancel then waits for headers)."""
    transport = httpx.HTTPTransport(verify=verify, limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _WatchedBackend(backend)  # type: ignore[union-attr]
    else:
        log.debug("httpx %s: streams cannot be interrupted before their headers",
                  httpx.__version__)
    return transport


class HttpCore:
    """One pooled ``httpx.Client`` with the project's retries, logging and error mapping.

    Services hold a reference; :class:`~sparc.client.SparcClient` owns it and closes it.
    ``transport`` may be injected (e.g. ``httpx.MockTransport``) for unit tests of pure logic.
    ``auth`` (an ``httpx.Auth``) is sent only to ``auth_hosts``; a request may pass its own
    ``auth=`` (bound to that request's host) or ``auth=False`` (no credentials at all).
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 32,
        sleep: Callable[[float], None] = time.sleep,
        auth: httpx.Auth | None = None,
        auth_hosts: Collection[str] | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        if auth is not None and isinstance(auth_hosts, str):
            auth_hosts = [auth_hosts]
        self.auth: HostBoundAuth | None = (
            None if auth is None else auth if isinstance(auth, HostBoundAuth)
            else HostBoundAuth(auth, auth_hosts or ()))
        self._options: dict[str, Any] = dict(
            timeout=timeout if timeout is not None else httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            headers={"User-Agent": f"sparc.client/{package_version()} httpx/{httpx.__version__}"},
            transport=transport,
            follow_redirects=True,
            verify=True,
        )
        self._pool: httpx.Client | None = None
        self._pool_lock = threading.Lock()
        #: File GETs, and plain unsigned API GETs, go through :class:`_FileConnections` unless
        #: a transport was injected.
        self.fast_files = transport is None
        self._lean_api = True  # off once a server sets cookies (httpx keeps and sends them)
        self._files = _FileConnections(self)

    @property
    def pool(self) -> httpx.Client:
        """The pooled ``httpx.Client``, opened on first use and again after :meth:`close`."""
        with self._pool_lock:
            if self._pool is None or self._pool.is_closed:
                options = dict(self._options)
                if options["transport"] is None:
                    options["transport"] = _watched_transport(options["verify"],
                                                              options["limits"])
                self._pool = httpx.Client(**options)
            return self._pool

    @property
    def timeout(self) -> httpx.Timeout:
        """The default timeouts (connect, read, write, pool) of every request."""
        return httpx.Timeout(self._options["timeout"])

    @property
    def closed(self) -> bool:
        """True when no connection pool is open (none yet, or closed)."""
        return self._pool is None or self._pool.is_closed

    def close(self) -> None:
        """Release every pooled connection (a later request opens a new pool)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
        self._files.close()

    def __enter__(self) -> HttpCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------
    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Send one request (with retries) and return the successful, fully read response.

        Options: ``service`` (named in errors), ``params`` (``None`` values dropped, lists
        repeated: ``tags=a&tags=b``), ``headers``, ``idempotent`` (retry a POST that only
        reads), ``timeout``, ``retries`` (this request's retry count instead of the policy's;
        0 = the caller retries), ``retry_if`` (``response -> bool``: retry this error answer?
        e.g. not a deterministic crash), ``auth`` (an ``httpx.Auth`` for this request's host,
        or ``False`` for none), and httpx's ``json=``/``data=``/``content=``/``files=``.
        Raises the matching :class:`~sparc.client.errors.ApiError` for 4xx/5xx,
        :class:`~sparc.client.errors.TransportError` when no (whole) answer came and
        :class:`~sparc.client.errors.ArgumentError` for a URL that cannot be sent.
        """
        return self._send(method, url, read=True, **options)

    @contextlib.contextmanager
    def stream(self, method: str, url: str, **options: Any) -> Iterator[httpx.Response]:
        """Like :meth:`request` (same options), but the successful body is left unread::

            with http.stream("GET", url) as resp:
                for chunk in resp.iter_bytes(): ...

        Failures while reading the stream raise :class:`TransportError`; resuming is the
        caller's job (see :mod:`sparc.client._download`).
        """
        response = self._send(method, url, read=False, **options)
        try:
            yield response
        except httpx.HTTPError as exc:
            shown = redact_url(response.request.url)
            raise TransportError(f"{method.upper()} {shown} broke off: {type(exc).__name__}: "
                                 f"{exc or 'connection lost'}", method=method, url=shown) from exc
        finally:
            response.close()

    @contextlib.contextmanager
    def stream_file(self, url: str, *, headers: Mapping[str, str] | None = None,
                    service: str = "") -> Iterator[httpx.Response | FileResponse]:
        """GET a file's bytes, unsigned (``auth=False``) and not retried (``retries=0``: the
        downloader resumes), like :meth:`stream`; the same typed errors. Example::

            with http.stream_file(presigned_url, headers={"Range": "bytes=100-"}) as resp:
                for chunk in resp.iter_bytes(): ...

        Plain http(s) links without a proxy go over :class:`_FileConnections` (HTTP/1.1
        keep-alive sockets read straight into bytes: about a tenth of httpx's CPU per
        request and per MB); anything else (an injected transport, a proxy, a redirect, a URL
        that needs encoding) through httpx.
        """
        response = self._files.get(url, headers or {}, service) if self.fast_files else None
        if response is None:
            with self.stream("GET", url, headers=headers, service=service, retries=0,
                             auth=False) as resp:
                yield resp
            return
        try:
            yield response
        finally:
            response.close()

    def _send(
        self,
        method: str,
        url: str,
        *,
        read: bool,
        service: str = "",
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | httpx.Timeout | None = None,
        retries: int | None = None,
        retry_if: Callable[[httpx.Response], bool] | None = None,
        auth: httpx.Auth | bool | None = None,
        **body: Any,
    ) -> httpx.Response:
        method = method.upper()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        retryable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        max_retries = self.retry.max_retries if retries is None else retries
        extra: dict[str, Any] = {k: v for k, v in body.items() if v is not None}
        if timeout is not None:
            extra["timeout"] = timeout
        started = time.monotonic()
        attempt = 0
        lean = self._lean_url(method, url, read, clean, headers, extra, auth) if retryable \
            else None
        while True:
            sent_to: str | httpx.URL
            try:
                if lean is not None:
                    answer = self._files.fetch(lean)
                    if answer is None:  # a redirect, or cookies: httpx's way from now on
                        lean = None
                        continue
                    response, sent_to = answer, lean
                else:
                    response, sent_to = self._send_httpx(method, url, read, clean, headers,
                                                         extra, auth, retryable)
            except _NoRetry:
                raise
            except TransportError as exc:  # no (whole) answer: once more, or the last word
                if not isinstance(exc, _SentOnce) and self._may_retry(attempt, started, None,
                                                                      max_retries):
                    self._wait(attempt, None, max_retries, str(exc))
                    attempt += 1
                    continue
                raise TransportError(f"{exc} (after {attempt + 1} attempt"
                                     f"{'s' if attempt else ''})", method=method,
                                     url=exc.url) from exc
            if log.isEnabledFor(logging.INFO):  # redacting a signed URL costs: only if shown
                log.info("%s %s -> %d", method, redact_url(sent_to), response.status_code)
            if not response.is_error:
                return response
            if (retryable and response.status_code in self.retry.statuses
                    and (retry_if is None or retry_if(response))):
                wait = parse_retry_after(response.headers.get("Retry-After"))
                if self._may_retry(attempt, started, wait, max_retries):
                    response.close()
                    self._wait(attempt, wait, max_retries,
                               f"{method} {redact_url(sent_to)}: HTTP {response.status_code}")
                    attempt += 1
                    continue
            response.close()
            raise self.error_for(response, service=service, method=method,
                                 url=redact_url(sent_to))

    def _lean_url(self, method: str, url: str, read: bool, params: dict[str, Any],
                  headers: Mapping[str, str] | None, extra: dict[str, Any],
                  auth: httpx.Auth | bool | None) -> str | None:
        """The URL (with its query) of a request :class:`_FileConnections` can send: a GET
        read whole, with no body, headers, own timeout, credentials or cookies, to a plain
        http(s) URL; ``None``: httpx sends it."""
        if (method != "GET" or not read or headers or extra or not self.fast_files
                or not self._lean_api or not isinstance(url, str)
                or (auth is not None and not isinstance(auth, bool))  # its own credentials
                or (self._pool is not None and self._pool.cookies)):
            return None
        if params:
            if "?" in url or "#" in url:
                return None  # httpx merges the two queries
            try:
                url = f"{url}?{httpx.QueryParams(params)}"  # as httpx encodes them
            except (TypeError, ValueError):
                return None  # httpx's way raises the ArgumentError
        place = self._files.target(url) if len(url) <= _MAX_URL_LENGTH else None
        if (place is None  # too long, or not plain http(s): httpx's way says so or sends it
                or _REWRITTEN.search(place[1].partition("?")[0]) or _ENCODED.search(place[1])):
            return None  # httpx sends it otherwise than typed: let httpx send it
        host = place[0][1]
        if auth is not False and self.auth is not None and (
                self.auth.applies_to_host(host) or "xn--" in host.lower()):
            return None  # signed (httpx compares the Unicode name of an xn-- host)
        return url

    def _send_httpx(self, method: str, url: str, read: bool, params: dict[str, Any],
                    headers: Mapping[str, str] | None, extra: dict[str, Any],
                    auth: httpx.Auth | bool | None, retryable: bool
                    ) -> tuple[httpx.Response, httpx.URL]:
        """One attempt through httpx: its answer and URL. No (whole) answer raises
        :class:`TransportError` (:class:`_SentOnce` for a request not to be sent twice,
        :class:`_NoRetry` for an answer httpx cannot read)."""
        pool = self.pool
        request = self._build(pool, method, url, params, headers, extra)
        if headers and any(k.lower() == "authorization" for k in headers):
            _check_secure(request.url)
        response: httpx.Response | None = None
        try:
            response = pool.send(request, stream=True, auth=self._auth_for(request, auth))
            if read or response.is_error:
                response.read()
        except _RETRYABLE_EXCEPTIONS as exc:
            if response is not None:
                response.close()
            sent = response is not None or not isinstance(
                exc, (httpx.ConnectError, httpx.ConnectTimeout))
            shown = redact_url(request.url)
            failure = _SentOnce if sent and not retryable else TransportError
            raise failure(f"{method} {shown} failed: {type(exc).__name__}: "
                          f"{exc or 'no answer'}", method=method, url=shown) from exc
        except httpx.HTTPError as exc:
            if response is not None:
                response.close()
            shown = redact_url(request.url)
            raise _NoRetry(f"{method} {shown} failed: {exc}", method=method, url=shown) from exc
        return response, request.url

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _build(pool: httpx.Client, method: str, url: str, params: dict[str, Any],
               headers: Mapping[str, str] | None, extra: dict[str, Any]) -> httpx.Request:
        """The request, or :class:`ArgumentError` when httpx cannot build it (bad or
        over-long URL, a header that cannot be encoded...)."""
        try:
            return pool.build_request(method, url, params=params or None, headers=headers,
                                      **extra)
        except (httpx.InvalidURL, ValueError, UnicodeError, TypeError) as exc:
            shown = redact_url(url) if isinstance(url, str) else repr(url)
            if len(shown) > 200:
                shown = shown[:200] + "..."
            raise ArgumentError(f"cannot send {method} {shown}: {exc} (an argument is too long "
                                "or holds characters a URL or header cannot carry)") from exc

    def _auth_for(self, request: httpx.Request,
                  auth: httpx.Auth | bool | None) -> httpx.Auth | None:
        """The credentials for this request: its own (bound to its host), none, or the core's."""
        if auth is False:
            return None
        if isinstance(auth, httpx.Auth):
            return auth if isinstance(auth, HostBoundAuth) else HostBoundAuth(
                auth, {request.url.host})
        if auth not in (None, True):
            raise ArgumentError(f"auth must be an httpx.Auth or False, got {auth!r}")
        return self.auth

    def _may_retry(self, attempt: int, started: float, wait: float | None,
                   max_retries: int | None = None) -> bool:
        policy = self.retry
        if attempt >= (policy.max_retries if max_retries is None else max_retries):
            return False
        if _BLOCKED.interrupted(get_ident()):
            return False  # cancelled: the failure was ours
        projected = wait if wait is not None else policy.ceiling(attempt)
        return time.monotonic() - started + projected <= policy.max_total

    def _wait(self, attempt: int, retry_after: float | None, max_retries: int,
              why: str) -> None:
        delay = self.retry.delay(attempt, retry_after)
        log.warning("retrying in %.1f s (retry %d of %d): %s", delay, attempt + 1,
                    max_retries, why)
        self._sleep(delay)

    @staticmethod
    def error_for(
        response: httpx.Response, *, service: str = "", method: str = "", url: str = ""
    ) -> ApiError:
        """The typed error for an error response (its body must have been read)."""
        status = response.status_code
        message, body = server_message(response)
        code = server_code(body)
        url = url or redact_url(response.request.url)
        method = method or response.request.method
        cls = error_class_for(status, message, code)
        reason = response.reason_phrase or "error"
        text = f"{method} {url} -> {status} {reason}"
        if message:
            text += f": {message}"
        kwargs: dict[str, Any] = dict(status=status, method=method, url=url, service=service,
                                      server_message=message, body=body, code=code)
        if cls is RateLimitedError:
            kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
        return cls(text, **kwargs)


# -- file GETs: HTTP/1.1 keep-alive sockets, read straight into bytes ---------------------------
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")  # spaces, controls, non-ASCII
_MAX_HEAD = 64 * 1024
_MAX_URL_LENGTH = 65536  # httpx refuses longer URLs (httpx._urlparse.MAX_URL_LENGTH)
_REWRITTEN = re.compile(r"(?:^|/)\.\.?(?:/|$)")  # dot segments: httpx removes them
_ENCODED = re.compile(r'[<>"\\^`{|}]')  # characters httpx percent-encodes
#: Kept-alive file connections idle for less than this (seconds) are reused without polling
#: them first (see :meth:`_Connection.stale`).
STALE_CHECK_AFTER = 1.0
_MAX_ERROR_BODY = 1024 * 1024


class _SocketStream:
    """What :func:`interrupt_response` and :func:`interrupt_thread` need of a connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, info: str) -> Any:
        return self.sock if info == "socket" else None


class _Connection:
    """One HTTP/1.1 connection: its socket and the bytes read past the last message."""

    def __init__(self, key: tuple[str, str, int], sock: socket.socket) -> None:
        self.key, self.sock = key, sock
        self.stream = _SocketStream(sock)
        self.buffer = b""
        self.idle_since = 0.0  # when it went back to the idle pool
        self.reason = ""  # the reason phrase of the last answer's status line

    def stale(self, now: float, expiry: float | None, fresh: float = 0.0) -> bool:
        """Whether an idle connection must not be reused: idle longer than ``expiry`` (servers
        close idle connections), or readable (the server closed it, or sent what nobody asked).
        One idle for less than ``fresh`` seconds is not polled (a syscall per file saved; if the
        server did close it, the GET is sent once more on a new connection)."""
        idle = now - self.idle_since
        if expiry is not None and idle > expiry:
            return True
        if idle < fresh:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def recv(self, size: int = READ_SIZE) -> bytes:
        data = _BLOCKED.call(self.stream, self.sock.recv, size)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def read_head(self) -> tuple[int, FileHeaders, bool]:
        """The status, the headers and whether the server keeps the connection open."""
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > _MAX_HEAD:
                raise ConnectionError("response headers too long")
            buffer += self.recv(_MAX_HEAD)  # small: a READ_SIZE buffer per answer costs an mmap
        head, self.buffer = buffer[:end].decode("latin-1"), buffer[end + 4:]
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status, self.reason = int(rest[:3]), rest[4:].strip()
        headers = FileHeaders(line.partition(":")[::2] for line in lines[1:])
        connection = dict.get(headers, "connection", "").lower()
        keep = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        return status, headers, keep

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _file_get_error(url: str, what: str, exc: BaseException, empty: str = "",
                    kind: str | None = None) -> TransportError:
    """The TransportError of a file GET that ``what`` ("failed", "broke off"), worded as
    :meth:`HttpCore.stream` words httpx's; the URL redacted only now that it is shown."""
    shown = redact_url(url)
    kind = kind or ("ReadTimeout" if isinstance(exc, TimeoutError) else type(exc).__name__)
    return TransportError(f"GET {shown} {what}: {kind}: {exc or empty}", method="GET", url=shown)


class _NoRetry(TransportError):
    """An answer that came whole but cannot be read (httpx's ``DecodingError``): raised as it
    is, not asked for again."""


class _SentOnce(TransportError):
    """A request that must not be sent twice (not idempotent) failed after it was sent."""


class _LeanResponse(httpx.Response):
    """The ``httpx.Response`` of :meth:`_FileConnections.fetch`: its ``request`` is made when
    first asked for (parsing its URL costs more than the rest of the answer)."""

    def __init__(self, *args: Any, url_sent: str = "", **kwargs: Any) -> None:
        self.url_sent = url_sent
        super().__init__(*args, **kwargs)

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            self._request = httpx.Request("GET", self.url_sent)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value

    def raise_for_status(self) -> httpx.Response:
        self.request  # noqa: B018 - httpx reads the private attribute: made now
        return super().raise_for_status()


class FileHeaders(dict[str, str]):
    """A response's headers by lower-case name (repeated ones joined with ", "), looked up
    whatever the case: the few ``get``s of a file GET without building an ``httpx.Headers``."""

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        merged: dict[str, str] = {}  # built as a plain dict: no overridden method per field
        for name, value in fields:
            key, value = name.strip().lower(), value.strip()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        super().__init__(merged)

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


class FileResponse:
    """The answer to :meth:`HttpCore.stream_file` over a kept-alive socket: ``status_code``,
    ``headers`` and :meth:`iter_bytes` (bytes as received), as an ``httpx.Response`` offers."""

    def __init__(self, files: _FileConnections, conn: _Connection, status: int,
                 headers: FileHeaders, keep: bool, url: str) -> None:
        self._files, self._conn, self._keep, self._url = files, conn, keep, url
        self.status_code = status
        self.reason = conn.reason  # the server's own words ("200 OK": "OK")
        self.headers = headers
        self.extensions = {"network_stream": conn.stream}
        self.cut = False  # set by interrupt_response: an end of stream then is no end of body
        self._done = status in (204, 304)
        length = dict.get(headers, "content-length")
        self._chunked = "chunked" in dict.get(headers, "transfer-encoding", "").lower()
        #: Body bytes not yet read when the body has a Content-Length (not chunked), else None:
        #: only such bodies can be read with :meth:`readinto`.
        self.remaining: int | None = None
        if length is not None and length.isdigit() and not self._chunked:
            self.remaining = int(length)
        if self._done:
            self._release()

    def answer(self, body: bytes) -> httpx.Response:
        """This answer, with its ``body`` read, as an ``httpx.Response`` (the body decompressed
        as httpx would: ``httpx.DecodingError`` when it does not decode)."""
        return _LeanResponse(self.status_code, headers=list(self.headers.items()), content=body,
                             url_sent=self._url,
                             extensions={"reason_phrase": self.reason.encode("latin-1")})

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            yield from self._body()
        except (OSError, ValueError, httpcore.ReadError) as exc:
            self.close()
            raise _file_get_error(self._url, "broke off", exc, "connection lost") from exc
        self._done = True
        self._release()

    def _body(self) -> Iterator[bytes]:
        if self._done:
            return
        conn = self._conn
        if self._chunked:
            yield from self._chunks()
            return
        length = dict.get(self.headers, "content-length")
        if length is None:  # the body ends when the connection does: a clean end of stream
            self._keep = False
            if conn.buffer:
                yield conn.buffer
                conn.buffer = b""
            while True:
                # a reset raises: a break, not the end
                data = _BLOCKED.call(conn.stream, conn.sock.recv, READ_SIZE)
                if data:
                    yield data
                    continue
                if self.cut or _BLOCKED.interrupted(get_ident()):
                    raise ConnectionAbortedError("interrupted (download cancelled)")
                return
        remaining = int(length)
        if conn.buffer:
            piece, conn.buffer = conn.buffer[:remaining], conn.buffer[remaining:]
            remaining -= len(piece)
            yield piece
        while remaining > 0:
            piece = conn.recv(min(READ_SIZE, remaining))
            remaining -= len(piece)
            yield piece

    def readinto(self, view: memoryview) -> int:
        """Read body bytes straight into ``view`` (no copy through a bytes object): how many,
        0 at the end of the body; at most :data:`READ_SIZE` a call, so a caller writing each
        piece at once copies it while still in this core's cache (whole socket buffers of
        several MB cost ~40 % more kernel time on the write). Only for bodies with a
        Content-Length (``remaining`` is not ``None``); do not mix with :meth:`iter_bytes`.
        Example::

            while n := resp.readinto(view[filled:]): filled += n
        """
        remaining = self.remaining
        if remaining is None:
            raise ValueError("readinto needs a body with a Content-Length")
        if self._done or not remaining:
            self._done = True
            self._release()
            return 0
        conn = self._conn
        try:
            if conn.buffer:
                n = min(len(view), len(conn.buffer), remaining)
                view[:n] = conn.buffer[:n]
                conn.buffer = conn.buffer[n:]
            else:
                n = _BLOCKED.call(conn.stream, conn.sock.recv_into, view,
                                  min(len(view), remaining, READ_SIZE))
                if not n:
                    raise ConnectionError("the server closed the connection")
        except (OSError, ValueError, httpcore.ReadError) as exc:
            self.close()
            raise _file_get_error(self._url, "broke off", exc, "connection lost") from exc
        self.remaining = remaining - n
        return n

    def _chunks(self) -> Iterator[bytes]:
        conn = self._conn

        def line() -> bytes:
            while (end := conn.buffer.find(b"\r\n")) < 0:
                if len(conn.buffer) > _MAX_HEAD:
                    raise ValueError("a chunk header too long")
                conn.buffer += conn.recv()
            text, conn.buffer = conn.buffer[:end], conn.buffer[end + 2:]
            return text

        while True:
            size = int(line().split(b";", 1)[0], 16)
            if size == 0:
                while line():  # trailers, up to the empty line
                    pass
                return
            while size > 0:
                if not conn.buffer:
                    conn.buffer = conn.recv(min(READ_SIZE, size + 2))
                piece, conn.buffer = conn.buffer[:size], conn.buffer[size:]
                size -= len(piece)
                yield piece
            if line():
                raise ValueError("a chunk longer than it said")

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None  # type: ignore[assignment]
            self.extensions = {}  # the socket may serve another transfer now: not ours to cut
            self._files.release(conn, self._keep and self._done)

    def close(self) -> None:
        """Give the connection back when the body was read whole, else close it."""
        if self._conn is not None:
            self._release()


class _FileConnections:
    """Kept-alive HTTP/1.1 connections for file GETs (S3 presigned links): one request line
    and a few headers out, the status and headers parsed, the body read from the socket as it
    comes (no per-request objects of httpx, no copies through h11). TLS with the same
    certificate store as httpx; timeouts, cancellation (:func:`interrupt_thread`) and errors
    as the HTTP core's."""

    def __init__(self, core: HttpCore) -> None:
        self.core = core
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: Any = None
        self._fixed_headers = (f"User-Agent: {core._options['headers']['User-Agent']}\r\n"
                               "Accept: */*\r\n")
        self._api_encoding: str | None = None  # httpx's Accept-Encoding, read on first use
        #: "scheme://netloc" -> ((scheme, host, port), Host header), or None: httpx sends it
        self._origins: dict[str, tuple[tuple[str, str, int], str] | None] = {}
        # read once, as httpx reads them when its client is made: a proxy means httpx's way
        self._proxied = any(os.environ.get(v) or os.environ.get(v.upper())
                            for v in _PROXY_VARIABLES)

    def target(self, url: str) -> tuple[tuple[str, str, int], str, str] | None:
        """(scheme, host, port), the request target and the Host header, or ``None`` when
        httpx must send it (a proxy, user info, characters that need encoding...). The
        ``scheme://host:port`` start of each URL is parsed once (many files, one host)."""
        if not isinstance(url, str) or _UNSENDABLE.search(url) or self._proxied:
            return None
        start = url.find("://")
        cut = url.find("/", start + 3) if start > 0 else -1
        if cut < 0 or "?" in url[:cut] or "#" in url:  # the general parse, nothing kept
            place = self._parse_origin(url)
            if place is None:
                return None
            parts = urlsplit(url)
            return place[0], (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), \
                place[1]
        origin = url[:cut]
        try:
            place = self._origins[origin]
        except KeyError:
            place = self._origins[origin] = self._parse_origin(origin)
        if place is None:
            return None
        return place[0], url[cut:], place[1]

    @staticmethod
    def _parse_origin(url: str) -> tuple[tuple[str, str, int], str] | None:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            return None
        return (parts.scheme, parts.hostname, port), parts.netloc

    def get(self, url: str, headers: Mapping[str, str], service: str) -> FileResponse | None:
        """Send the GET; the response with its body unread, or ``None``: let httpx do it.
        An error status raises its :class:`~sparc.client.errors.ApiError`."""
        response = self.exchange(url, headers)
        if log.isEnabledFor(logging.INFO) and response is not None:
            log.info("GET %s -> %d", redact_url(url), response.status_code)
        if response is None or response.status_code < 400:
            return response
        try:
            body = b"".join(_limited(response.iter_bytes(), _MAX_ERROR_BODY))
        except TransportError:
            body = b""
        finally:
            response.close()
        raise self.core.error_for(response.answer(body), service=service, method="GET",
                                  url=redact_url(url))

    def fetch(self, url: str) -> httpx.Response | None:
        """GET ``url`` and read its body whole, compressed as httpx would ask: an
        ``httpx.Response`` (any status), or ``None``: httpx must send it (a redirect, a URL
        it must encode, a server setting cookies). No retry (the caller's): a failure
        raises :class:`~sparc.client.errors.TransportError`."""
        if self._api_encoding is None:
            self._api_encoding = self.core.pool.headers.get("Accept-Encoding", "identity")
        response = self.exchange(url, {}, self._api_encoding)
        if response is None:
            return None
        try:
            body = b"".join(response.iter_bytes())
        finally:
            response.close()
        if "set-cookie" in response.headers:  # httpx keeps cookies and sends them back
            self.core._lean_api = False
            return None
        try:
            return response.answer(body)
        except httpx.DecodingError as exc:
            shown = redact_url(url)
            raise _NoRetry(f"GET {shown} failed: {exc}", method="GET", url=shown) from exc

    def exchange(self, url: str, headers: Mapping[str, str],
                 encoding: str = "identity") -> FileResponse | None:
        """Send the GET (``encoding``: its ``Accept-Encoding``); the answer (any status but a
        redirect) with its body unread, or ``None``: let httpx do it."""
        target = self.target(url)
        if target is None:
            return None
        key, path, host = target
        extra = ""
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ArgumentError(f"header {name!r} holds a line break")
            extra += f"{name}: {value}\r\n"
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{self._fixed_headers}"
                   f"Accept-Encoding: {encoding}\r\n{extra}\r\n").encode("latin-1")
        for attempt in (0, 1):
            conn, reused = self._checkout(key, url, fresh=attempt > 0)
            try:
                _BLOCKED.call(conn.stream, conn.sock.sendall, request)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("GET %s: sent, waiting for the answer", redact_url(url))
                status, response_headers, keep = conn.read_head()
                break
            except (OSError, ValueError, httpcore.ReadError) as exc:
                conn.close()
                if (reused and attempt == 0 and not isinstance(exc, TimeoutError)
                        and not _BLOCKED.interrupted(get_ident())):
                    continue  # a kept-alive connection the server had closed: once more
                raise _file_get_error(url, "failed", exc, "no answer") from exc
        if 300 <= status < 400 and status != 304:  # a redirect: httpx follows it
            conn.close()
            return None
        return FileResponse(self, conn, status, response_headers, keep, url)

    def _checkout(self, key: tuple[str, str, int], url: str,
                  fresh: bool = False) -> tuple[_Connection, bool]:
        """An idle connection to ``key`` still fit for use (stale ones are closed), else a new
        one; ``fresh``: always a new one (the retry after a kept-alive one failed)."""
        expiry = self.core._options["limits"].keepalive_expiry
        while not fresh:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if not conn.stale(time.monotonic(), expiry, STALE_CHECK_AFTER):
                return conn, True
            conn.close()
        timeout = self.core.timeout
        scheme, host, port = key
        try:
            with _BLOCKED.blocked_on(_SocketStream(None)):  # type: ignore[arg-type]
                sock = socket.create_connection((host, port), timeout.connect)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = httpx.create_ssl_context()
                try:
                    sock = self._ssl.wrap_socket(sock, server_hostname=host)
                except BaseException:
                    sock.close()
                    raise
        except (OSError, httpcore.ReadError) as exc:
            raise _file_get_error(url, "failed", exc, kind="ConnectError") from exc
        sock.settimeout(timeout.read)
        return _Connection(key, sock), False

    def release(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not conn.buffer:
            conn.idle_since = time.monotonic()
            with self._lock:
                idle = self._idle.setdefault(conn.key, [])
                if len(idle) < self.core._options["limits"].max_keepalive_connections:
                    idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _limited(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        yield chunk[: limit - total]
        total += len(chunk)
        if total >= limit:
            return
