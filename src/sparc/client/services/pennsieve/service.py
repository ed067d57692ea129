"""Pennsieve: the public SPARC Discover API (no account needed), and any Pennsieve endpoint.

Example::

    pennsieve = SparcClient(connect=False).pennsieve
    pennsieve.list_datasets(query="cancer", limit=2)["datasets"][0]["name"]
    files = pennsieve.list_files(dataset_id=90, query="manifest", file_type="json")
    pennsieve.download_file(file_list=files[1])          # -> Path('manifest.json')
    for node in pennsieve.walk(90, path="metadata"):
        print(node["path"], node["size"])

Signed in (an API key and secret configured; see :mod:`.auth`), the same service reaches
your own workspace and uploads without the Pennsieve Agent::

    p = SparcClient().pennsieve.connect()     # signs in; a pennsieve 7.x-compatible object
    pennsieve = SparcClient().pennsieve
    ds = pennsieve.create_dataset("my dataset")
    pennsieve.upload(ds["content"]["id"], ["data/"])   # -> UploadResult

The service is composed by job: :class:`DiscoverMixin` (search, datasets, browse, walk; in
``discover.py``), :class:`DownloadsMixin` (download, download_file,
download_version_archive; in ``downloads.py``), :class:`AccountMixin` (your datasets and
packages; ``account.py``) and :class:`UploadMixin` (``upload.py``); this module holds sign-in
and the generic verbs. Public Discover calls never sign in by themselves; once signed in
(``connect()`` or any private call) the token goes to the Pennsieve hosts, never elsewhere.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sparc.client._http import HostBoundAuth, redact_url
from sparc.client.config import DEFAULT_PENNSIEVE_API2_HOST, DEFAULT_PENNSIEVE_API_HOST
from sparc.client.errors import ArgumentError, TransportError
from sparc.client.services._base import ServiceBase
from sparc.client.services.pennsieve.account import AccountMixin
from sparc.client.services.pennsieve.auth import CREDENTIAL_HINT, PennsieveAuth
from sparc.client.services.pennsieve.discover import SEARCH_WINDOW, SERVICE, DiscoverMixin
from sparc.client.services.pennsieve.downloads import DownloadsMixin
from sparc.client.services.pennsieve.upload import UploadMixin

__all__ = ["PennsieveService", "SEARCH_WINDOW"]

log = logging.getLogger("sparc.client")

#: How many times a garbled (undecodable) JSON answer is asked for again.
GARBLED_RETRIES = 2
#: Absolute URLs on this host go to the configured ``pennsieve_api_host`` instead.
PRODUCTION_HOST = urlsplit(DEFAULT_PENNSIEVE_API_HOST).hostname
PRODUCTION_API2_HOST = urlsplit(DEFAULT_PENNSIEVE_API2_HOST).hostname


class PennsieveService(DiscoverMixin, DownloadsMixin, AccountMixin, UploadMixin, ServiceBase):
    """Pennsieve: Discover (public data, no account) and, signed in, your own datasets and
    agent-free uploads.

    Every call goes to ``pennsieve_api_host`` (default ``https://api.pennsieve.io``) or, for the
    upload service, ``pennsieve_api2_host``; point them at the SPARC sandbox with the lines
    ``sparc sandbox serve`` prints.
    """

    _auth_state: PennsieveAuth | None = None

    @property
    def host(self) -> str:
        """The Pennsieve API base URL in use."""
        return self.config.pennsieve_api_host.rstrip("/")

    @property
    def api2_host(self) -> str:
        """The Pennsieve API v2 base URL (upload service) in use."""
        return self.config.pennsieve_api2_host.rstrip("/")

    # -- sign-in ------------------------------------------------------------------------------
    @property
    def auth(self) -> PennsieveAuth:
        """The sign-in state (:class:`~.auth.PennsieveAuth`); nothing is sent until needed."""
        if self._auth_state is None or self._auth_state._config is not self.config:
            self._auth_state = PennsieveAuth(self.http, self.config)
        return self._auth_state

    @property
    def signed_in(self) -> bool:
        """True once this service signed in (``connect()`` or a private call)."""
        return self._auth_state is not None and self._auth_state.signed_in \
            and self._auth_state._config is self.config

    def sign_in(self) -> PennsieveService:
        """Sign in now (API key + secret -> Cognito -> bearer token). Raises
        :class:`~sparc.client.errors.MissingCredentialsError` (naming the settings to add) or
        :class:`~sparc.client.errors.AuthenticationError` (refused)."""
        self.auth.current()
        return self

    def _bound_auth(self) -> HostBoundAuth:
        hosts = {urlsplit(h).hostname or "" for h in (self.host, self.api2_host)}
        return HostBoundAuth(self.auth, {h for h in hosts if h})

    def private_request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, signing in first: for calls that need an account."""
        self.auth.current()
        return self.request(method, url, **kwargs)

    # -- ServiceBase --------------------------------------------------------------------------
    def connect(self) -> Any:
        """Sign in when an API key and secret are configured, and return a pennsieve
        7.x-compatible object (``p.user.whoami()``, ``p.get_datasets()``,
        ``p.use_dataset(name)``, ``p.manifest.create(path)``, ``p.manifest.upload()``; see
        :mod:`.agent`) that also has every method of this service. Without credentials
        public Discover calls work as before; private ones say which settings to add."""
        from sparc.client.services.pennsieve.agent import Pennsieve

        if not self.auth.has_credentials:
            log.info("Pennsieve at %s: public data only, no sign-in (for your own datasets "
                     "and uploads, %s)", self.host, CREDENTIAL_HINT)
            return Pennsieve.for_service(self, connected=False)
        self.sign_in()
        return Pennsieve.for_service(self, connected=True)

    def info(self) -> str:
        from sparc.client._version import package_version

        return f"Pennsieve Discover at {self.host} (sparc.client {package_version()})"

    def get_profile(self) -> str | None:
        """The configuration profile in use (``pennsieve_profile_name`` if set)."""
        return self.config.pennsieve_profile_name or self.config.profile

    # -- generic verbs ------------------------------------------------------------------------
    def resolve_url(self, url: str) -> str:
        """An absolute URL for ``url``: paths join the configured host, and absolute URLs on
        ``https://api.pennsieve.io`` are re-pointed at it (so production notebooks run
        unchanged against the sandbox)."""
        if "://" not in url:
            return f"{self.host}/{url.lstrip('/')}"
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
        for production, host in ((PRODUCTION_HOST, self.host),
                                 (PRODUCTION_API2_HOST, self.api2_host)):
            if (parts.hostname or "").lower() == production and port in (443, 80):
                rest = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
                return host + (rest if rest.startswith("/") or not rest else "/" + rest)
        return url

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Call any Pennsieve endpoint; returns decoded JSON (or text, or bytes).

        A JSON answer that does not decode (garbled in transit) is asked for again (reads
        only), then raises :class:`~sparc.client.errors.TransportError`.
        """
        if not isinstance(method, str) or not method.isalpha():
            raise ArgumentError(f"method must be an HTTP method such as 'GET', got {method!r}")
        if not isinstance(url, str) or not url:
            raise ArgumentError(f"url must be a URL or a path such as '/discover/datasets/90', "
                                f"got {type(url).__name__} {url!r}")
        target = self.resolve_url(url)
        if self.signed_in and "auth" not in kwargs:
            kwargs["auth"] = self._bound_auth()
        rereadable = method.upper() in ("GET", "HEAD", "OPTIONS") or bool(kwargs.get("idempotent"))
        for attempt in range(GARBLED_RETRIES + 1):
            response = self.http.request(method, target, service=SERVICE, **kwargs)
            try:
                return _decode(response)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                shown = redact_url(response.request.url)
                if not rereadable or attempt == GARBLED_RETRIES:
                    raise TransportError(f"{method.upper()} {shown}: the answer is not valid "
                                         f"JSON (garbled in transit?): {exc}",
                                         method=method.upper(), url=shown) from exc
                log.warning("%s %s: the answer is not valid JSON (%s); asking again",
                            method.upper(), shown, exc)
        raise AssertionError("unreachable")

    def get(self, url: str, **kwargs: Any) -> Any:
        """``GET`` any Pennsieve URL or path, e.g. ``get('/discover/datasets/90')``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        """``POST`` to any Pennsieve URL or path (``json=``, ``data=``, ``params=``)."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        """``PUT`` to any Pennsieve URL or path."""
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        """``DELETE`` any Pennsieve URL or path."""
        return self.request("DELETE", url, **kwargs)


def _decode(response: httpx.Response) -> Any:
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        return response.json() if response.content else None
    if content_type.startswith("text/"):
        return response.text
    try:
        return json.loads(response.content)
    except ValueError:
        return response.content
