"""Pennsieve: the public SPARC Discover API (no account needed), and any Pennsieve endpoint.

Example::

    pennsieve = SparcClient(connect=False).pennsieve
    pennsieve.list_datasets(query="cancer", limit=2)["datasets"][0]["name"]
    files = pennsieve.list_files(dataset_id=90, query="manifest", file_type="json")
    pennsieve.download_file(file_list=files[1])          # -> Path('manifest.json')
    for node in pennsieve.walk(90, path="metadata"):
        print(node["path"], node["size"])

The service is composed by job: :class:`DiscoverMixin` (search, datasets, browse, walk; in
``discover.py``) and :class:`DownloadsMixin` (download, download_file,
download_version_archive; in ``downloads.py``); this module holds the generic verbs.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sparc.client._http import redact_url
from sparc.client.config import DEFAULT_PENNSIEVE_API_HOST
from sparc.client.errors import ArgumentError, TransportError
from sparc.client.services._base import ServiceBase
from sparc.client.services.pennsieve.discover import SEARCH_WINDOW, SERVICE, DiscoverMixin
from sparc.client.services.pennsieve.downloads import DownloadsMixin

__all__ = ["PennsieveService", "SEARCH_WINDOW"]

log = logging.getLogger("sparc.client")

#: How many times a garbled (undecodable) JSON answer is asked for again.
GARBLED_RETRIES = 2
#: Absolute URLs on this host go to the configured ``pennsieve_api_host`` instead.
PRODUCTION_HOST = urlsplit(DEFAULT_PENNSIEVE_API_HOST).hostname


class PennsieveService(DiscoverMixin, DownloadsMixin, ServiceBase):
    """Pennsieve Discover: search datasets, files and records; browse and download files.

    Every call goes to ``pennsieve_api_host`` (default ``https://api.pennsieve.io``); point it
    at the SPARC sandbox with ``PENNSIEVE_API_HOST=http://127.0.0.1:<port>``.
    """

    @property
    def host(self) -> str:
        """The Pennsieve API base URL in use."""
        return self.config.pennsieve_api_host.rstrip("/")

    # -- ServiceBase --------------------------------------------------------------------------
    def connect(self) -> PennsieveService:
        """Public Discover calls need no session; returns the service itself."""
        log.info("Pennsieve Discover at %s (public data, no sign-in needed)", self.host)
        return self

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
        if (parts.hostname or "").lower() == PRODUCTION_HOST and port in (443, 80):
            rest = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
            return self.host + (rest if rest.startswith("/") or not rest else "/" + rest)
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
