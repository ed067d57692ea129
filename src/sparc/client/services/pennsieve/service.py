"""Pennsieve: the public SPARC Discover API (no account needed), and any Pennsieve endpoint.

Example::

    pennsieve = SparcClient(connect=False).pennsieve
    pennsieve.list_datasets(query="cancer", limit=2)["datasets"][0]["name"]
    files = pennsieve.list_files(dataset_id=90, query="manifest", file_type="json")
    pennsieve.download_file(file_list=files[1])          # -> Path('manifest.json')
    for node in pennsieve.walk(90, path="metadata"):
        print(node["path"], node["size"])
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sparc.client._download import RemoteFile, fetch_to_file, safe_join, save_target
from sparc.client.config import DEFAULT_PENNSIEVE_API_HOST
from sparc.client.errors import (
    ArgumentError,
    DownloadError,
    NotFoundError,
    PermissionDeniedError,
    SparcError,
    summarize_failures,
)
from sparc.client.progress import byte_bar
from sparc.client.services._base import ServiceBase
from sparc.client.services.pennsieve.paths import file_ref, relative_path
from sparc.client.services.pennsieve.zipit import save_zipit_response

__all__ = ["PennsieveService"]

log = logging.getLogger("sparc.client")

SERVICE = "pennsieve"
#: Elasticsearch refuses offset + limit beyond this on /search/*.
SEARCH_WINDOW = 10_000
#: Absolute URLs on this host go to the configured ``pennsieve_api_host`` instead.
PRODUCTION_HOST = urlsplit(DEFAULT_PENNSIEVE_API_HOST).hostname


def _check_count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _check_id(name: str, value: Any) -> int | None:
    """An optional id filter: ``None`` stays ``None``."""
    return None if value is None else _dataset_id(value, name)


def _dataset_id(value: Any, name: str = "dataset_id") -> int:
    """A required dataset (or organization) id; numeric strings are accepted."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{name} must be a dataset/organization number such as 90, "
                            f"got {value!r}")
    return value


class PennsieveService(ServiceBase):
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
        """Call any Pennsieve endpoint; returns decoded JSON (or text, or bytes)."""
        response = self.http.request(method, self.resolve_url(url), service=SERVICE, **kwargs)
        return _decode(response)

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

    def _discover(self, path: str, **kwargs: Any) -> Any:
        return self.get(f"/discover{path}", **kwargs)

    # -- search (guide-compatible) ------------------------------------------------------------
    def list_datasets(
        self,
        limit: int = 10,
        offset: int = 0,
        query: str | None = None,
        organization: str | None = None,
        organization_id: int | None = None,
        tags: Sequence[str] | None = None,
        embargo: bool | None = None,
        order_by: str | None = None,
        order_direction: str | None = None,
    ) -> dict[str, Any]:
        """Search published datasets: the ``/discover/search/datasets`` page
        ``{limit, offset, totalCount, datasets: [...]}``."""
        return self._discover("/search/datasets", params=_page_params(
            limit, offset, query=query, organization=organization,
            organizationId=_check_id("organization_id", organization_id),
            tags=[tags] if isinstance(tags, str) else (list(tags) if tags else None),
            embargo=embargo, orderBy=order_by, orderDirection=order_direction))

    def list_files(
        self,
        limit: int = 10,
        offset: int = 0,
        file_type: str | None = None,
        query: str | None = None,
        organization: str | None = None,
        organization_id: int | None = None,
        dataset_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Search files: the list of file dicts of ``/discover/search/files``."""
        page = self._files_page(limit, offset, file_type, query, organization, organization_id,
                                dataset_id)
        return list(page.get("files", []))

    def _files_page(self, limit: int = 10, offset: int = 0, file_type: str | None = None,
                    query: str | None = None, organization: str | None = None,
                    organization_id: int | None = None,
                    dataset_id: int | None = None) -> dict[str, Any]:
        return self._discover("/search/files", params=_page_params(
            limit, offset, fileType=file_type, query=query, organization=organization,
            organizationId=_check_id("organization_id", organization_id),
            datasetId=_check_id("dataset_id", dataset_id)))

    def list_filenames(self, *args: Any, **kwargs: Any) -> list[str]:
        """Like :meth:`list_files` (same arguments), but each file's path within its dataset
        version, for both URI layouts: ``['files/primary/a.csv', 'manifest.json']``."""
        return [relative_path(f) for f in self.list_files(*args, **kwargs)]

    def list_records(
        self,
        limit: int = 10,
        offset: int = 0,
        model: str | None = None,
        organization: str | None = None,
        dataset_id: int | None = None,
    ) -> dict[str, Any]:
        """Search metadata records: the ``/discover/search/records`` page
        ``{limit, offset, totalCount, records: [...]}``."""
        return self._discover("/search/records", params=_page_params(
            limit, offset, model=model, organization=organization,
            datasetId=_check_id("dataset_id", dataset_id)))

    # -- iterators over every result ----------------------------------------------------------
    def iter_datasets(self, query: str | None = None, *, page_size: int = 100,
                      **filters: Any) -> Iterator[dict[str, Any]]:
        """Every dataset matching a search, across pages (filters as :meth:`list_datasets`)."""
        return _paginate(lambda offset, limit: self.list_datasets(
            limit, offset, query, **filters), "datasets", page_size, SEARCH_WINDOW)

    def iter_files(self, query: str | None = None, *, page_size: int = 100,
                   **filters: Any) -> Iterator[dict[str, Any]]:
        """Every file search hit, across pages (filters as :meth:`list_files`)."""
        return _paginate(lambda offset, limit: self._files_page(
            limit, offset, query=query, **filters), "files", page_size, SEARCH_WINDOW)

    def iter_records(self, model: str | None = None, *, page_size: int = 100,
                     **filters: Any) -> Iterator[dict[str, Any]]:
        """Every metadata record, across pages (filters as :meth:`list_records`)."""
        return _paginate(lambda offset, limit: self.list_records(
            limit, offset, model, **filters), "records", page_size, SEARCH_WINDOW)

    # -- datasets and versions ----------------------------------------------------------------
    def get_dataset(self, dataset_id: int, version: int | None = None) -> dict[str, Any]:
        """One dataset (its latest version, or ``version``): a ``PublicDatasetDTO`` dict.

        Raises :class:`NotFoundError` for an unknown id and :class:`GoneError` (with
        ``.tombstone``) for an unpublished one.
        """
        dataset_id = _dataset_id(dataset_id)
        if version is None:
            return self._discover(f"/datasets/{dataset_id}")
        return self._discover(_version_route(dataset_id, _check_count("version", version, 1)))

    def list_versions(self, dataset_id: int) -> list[dict[str, Any]]:
        """Every published version of a dataset."""
        return self._discover(f"/datasets/{_dataset_id(dataset_id)}/versions")

    def list_tags(self) -> list[dict[str, Any]]:
        """Every tag with its dataset count: ``[{tag, count}]``."""
        return self._discover("/tags")

    def get_metadata(self, dataset_id: int, version: int | None = None) -> dict[str, Any]:
        """The dataset version's ``manifest.json`` (name, contributors, every file...)."""
        return self._discover(f"{self._version_path(dataset_id, version)}/metadata")

    def _version_path(self, dataset_id: int, version: int | None) -> str:
        """``/datasets/<id>/versions/<v>``, the latest version when ``version`` is None."""
        return _version_route(*self._ids(dataset_id, version))

    # -- file tree ----------------------------------------------------------------------------
    def browse(self, dataset_id: int, version: int | None = None, path: str | None = None,
               *, page_size: int = 500) -> list[dict[str, Any]]:
        """One level of a dataset version's file tree (all pages): directories first, then
        files. Each node gains ``datasetId`` and ``datasetVersion`` so it can be downloaded."""
        return list(self._browse(*self._ids(dataset_id, version), path, page_size))

    def _browse(self, dataset_id: int, version: int, path: str | None,
                page_size: int = 500) -> Iterator[dict[str, Any]]:
        route = f"{_version_route(dataset_id, version)}/files/browse"
        folder = path.strip("/") if path else None
        pages = _paginate(lambda offset, limit: self._discover(
            route, params={"path": folder, "limit": limit, "offset": offset}), "files", page_size)
        for node in pages:
            yield {**node, "datasetId": dataset_id, "datasetVersion": version}

    def walk(self, dataset_id: int, version: int | None = None, path: str | None = None,
             *, page_size: int = 500, max_workers: int = 8) -> Iterator[dict[str, Any]]:
        """Every file below ``path`` (the whole version by default), depth first, by name.

        Folder listings are fetched ``max_workers`` at a time ahead of the traversal, so deep
        trees cost round trips in parallel; the order is the same as a sequential walk.
        """
        dataset_id, version = self._ids(dataset_id, version)
        max_workers = _check_count("max_workers", max_workers, 1)
        folder = path.strip("/") if path else None
        if folder:
            parent, _, name = folder.rpartition("/")
            if not any(n["name"] == name and n["type"] == "Directory"
                       for n in self._browse(dataset_id, version, parent or None)):
                raise NotFoundError(f"{path!r} is not a folder of dataset {dataset_id} "
                                    f"version {version}", status=404, service=SERVICE)

        def listing(folder: str | None) -> list[dict[str, Any]]:
            return list(self._browse(dataset_id, version, folder, page_size))

        pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sparc-walk")
        try:
            stack = [pool.submit(listing, folder)]
            while stack:
                nodes = stack.pop().result()
                subfolders = [pool.submit(listing, n["path"]) for n in nodes
                              if n.get("type") == "Directory"]
                yield from (n for n in nodes if n.get("type") != "Directory")
                stack.extend(reversed(subfolders))
        finally:  # also when the caller stops early: fetch nothing more
            pool.shutdown(wait=False, cancel_futures=True)

    def get_file(self, dataset_id: int, path: str, version: int | None = None) -> dict[str, Any]:
        """One file's node, by its path within the version (or its full ``s3://`` uri)."""
        return self._discover(f"{self._version_path(dataset_id, version)}/files",
                              params={"path": path})

    # -- downloads ----------------------------------------------------------------------------
    def download_manifest(self, dataset_id: int, paths: Sequence[str],
                          version: int | None = None) -> dict[str, Any]:
        """Presigned download links for files and folders: ``{header: {count, size}, data}``."""
        return self.post(f"/discover{self._version_path(dataset_id, version)}"
                         "/files/download-manifest", json={"paths": list(paths)}, idempotent=True)

    def download_file(
        self,
        file_list: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        output_name: str | os.PathLike[str] | None = None,
        *,
        progress: bool | None = None,
    ) -> Path:
        """Download one file, or several files (or folders) of one dataset version as a ``.zip``.

        ``file_list`` holds file dicts from :meth:`list_files`, :meth:`browse` or :meth:`walk`.
        One file is saved under its own name (or ``output_name``), verified against its size
        and sha256; several are packed by the zipit service into a stored ZIP saved as
        ``output_name`` (``.zip`` added) or under the name zipit gives, and checked entry by
        entry. ``output_name`` may be an existing folder. Returns the saved path. Every path
        is checked first: a missing one raises :class:`NotFoundError` naming it.
        """
        files = [file_list] if isinstance(file_list, Mapping) else list(file_list)
        if not files:
            raise ArgumentError("file_list is empty: pass one or more file dicts")
        refs = list({(r.dataset_id, r.version, r.path): r  # drop repeats, keep order
                     for r in map(file_ref, files)}.values())
        versions = {(r.dataset_id, r.version) for r in refs}
        if len(versions) > 1:
            listed = ", ".join(f"{d} v{v if v is not None else 'latest'}" for d, v in sorted(
                versions, key=lambda x: (x[0], x[1] or 0)))
            raise ArgumentError(
                f"download_file packs files of ONE dataset version into one archive, but the list "
                f"spans {listed}; call it once per dataset version (or use download())")
        dataset_id, version = self._ids(refs[0].dataset_id, refs[0].version)
        entries = self._resolve_entries(dataset_id, version, [r.path for r in refs])
        if len(entries) == 1:  # one file (or a folder holding one file): verified download
            entry = entries[0]
            dest = save_target(output_name, entry["fileName"])
            return self._fetch_entry(dataset_id, version, entry, dest, progress)
        body = {"data": {"datasetId": dataset_id, "version": version,
                         "paths": [r.path for r in refs]}}
        url = self.resolve_url("/zipit/discover")
        with self.http.stream("POST", url, json=body, service=SERVICE, idempotent=True) as resp:
            return save_zipit_response(resp, output_name, progress=progress,
                                       expected_entries=len(entries))

    def download(
        self,
        dataset_id: int,
        paths: str | Sequence[str] | None = None,
        output_dir: str | os.PathLike[str] = ".",
        *,
        version: int | None = None,
        max_workers: int = 4,
        progress: bool | None = None,
    ) -> list[Path]:
        """Download files and folders of a dataset version into ``output_dir``, keeping their
        layout: in parallel, each verified (size + sha256), resuming partial files and skipping
        files already complete. The whole version when ``paths`` is None. Example::

            client.pennsieve.download(90, "metadata/records", "data/")
        """
        max_workers = _check_count("max_workers", max_workers, 1)
        dataset_id, version = self._ids(dataset_id, version)
        if paths is None:  # the whole version: every top-level file and folder
            wanted = [n["path"] for n in self._browse(dataset_id, version, None)]
        else:
            wanted = [p.strip("/") for p in ([paths] if isinstance(paths, str) else paths)]
        entries = self._resolve_entries(dataset_id, version, wanted)
        root = Path(output_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        targets = [(e, safe_join(root, _entry_path(e))) for e in entries]
        saved: list[Path] = []
        failures: dict[str, BaseException] = {}
        lock = threading.Lock()
        total = sum(int(e["size"]) for e in entries)
        label = f"dataset {dataset_id} v{version}: {len(targets)} files"
        with byte_bar(total, label, progress) as bar, \
                ThreadPoolExecutor(max_workers=max_workers) as pool:

            def count(n: int) -> None:
                with lock:
                    bar.update(n)

            def fetch(entry: Mapping[str, Any], dest: Path) -> Path:
                moved = 0

                def on_bytes(n: int) -> None:
                    nonlocal moved
                    moved += n
                    count(n)

                path = self._fetch_entry(dataset_id, version, entry, dest, False, on_bytes)
                count(max(0, int(entry["size"]) - moved))  # bytes skipped or resumed
                return path

            futures = {pool.submit(fetch, entry, dest): dest for entry, dest in targets}
            try:
                for future in as_completed(futures):
                    try:
                        saved.append(future.result())
                    except SparcError as exc:
                        failures[str(futures[future])] = exc
            except BaseException:  # Ctrl-C: start nothing new; partial files stay for a resume
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if failures:
            raise DownloadError(summarize_failures(failures), failures=failures)
        return sorted(saved)

    def _ids(self, dataset_id: Any, version: int | None) -> tuple[int, int]:
        """The dataset id and a concrete version number (the latest when ``None``)."""
        dataset_id = _dataset_id(dataset_id)
        if version is None:
            return dataset_id, int(self.get_dataset(dataset_id)["version"])
        return dataset_id, _check_count("version", version, 1)

    def _resolve_entries(self, dataset_id: int, version: int,
                         paths: list[str]) -> list[dict[str, Any]]:
        """Manifest entries for files and folders, raising :class:`NotFoundError` naming any
        path that matches nothing."""
        entries = self._manifest_entries(dataset_id, version, paths) if paths else []
        found = [_entry_path(e) for e in entries]
        missing = [p for p in paths if not any(f == p or f.startswith(p + "/") for f in found)]
        if missing or not entries:
            raise NotFoundError(
                f"dataset {dataset_id} version {version} has no file or folder "
                f"{', '.join(map(repr, missing or paths))}", status=404, service=SERVICE)
        return entries

    def _manifest_entry(self, dataset_id: int, version: int, path: str) -> dict[str, Any]:
        """The download-manifest entry (fresh presigned URL) of one file."""
        for entry in self.download_manifest(dataset_id, [path], version).get("data", []):
            if _entry_path(entry) == path:
                return entry
        raise NotFoundError(f"dataset {dataset_id} has no file {path!r}", status=404,
                            service=SERVICE)

    def _fetch_entry(self, dataset_id: int, version: int, entry: Mapping[str, Any],
                     dest: Path, progress: bool | None,
                     on_bytes: Callable[[int], None] | None = None) -> Path:
        """Save one manifest entry to ``dest``, verified; an expired link is renewed once."""
        path = _entry_path(entry)
        return fetch_to_file(
            self.http, _remote(entry), dest, progress=progress, service=SERVICE,
            refresh=lambda: _remote(self._manifest_entry(dataset_id, version, path)),
            on_bytes=on_bytes)

    def _manifest_entries(self, dataset_id: int, version: int,
                          paths: list[str]) -> list[dict[str, Any]]:
        """download-manifest entries for ``paths``, splitting requests over the size cap."""
        try:
            manifest = self.download_manifest(dataset_id, paths, version)
            return list(manifest.get("data", []))
        except PermissionDeniedError:
            if len(paths) == 1:
                children = [n["path"] for n in self._browse(dataset_id, version, paths[0])]
                if not children or children == paths:
                    raise
                paths = children
            log.info("download manifest too large; asking for %d parts", len(paths))
            return [e for p in paths for e in self._manifest_entries(dataset_id, version, [p])]


def _page_params(limit: int, offset: int, **filters: Any) -> dict[str, Any]:
    """Query parameters of a paged call: checked ``limit``/``offset`` and the given filters
    (``None`` ones are dropped by the HTTP core)."""
    return {"limit": _check_count("limit", limit), "offset": _check_count("offset", offset),
            **filters}


def _paginate(fetch: Callable[[int, int], dict[str, Any]], key: str, page_size: int,
              window: int | None = None) -> Iterator[dict[str, Any]]:
    """Every item of a paged listing: ``fetch(offset, limit)`` returns one page, whose items
    are under ``key``; search listings stop at the search index's ``window``."""
    page_size = _check_count("page_size", page_size, 1)
    offset = 0
    while window is None or offset < window:
        page = fetch(offset, page_size if window is None else min(page_size, window - offset))
        items = page.get(key, [])
        yield from items
        offset += len(items)
        if not items or offset >= int(page.get("totalCount", 0)):
            if window is None or offset < window:
                return
    log.warning("search results stop at %d (the search index's window; its totalCount "
                "saturates there): narrow the search, or list a dataset's files with walk()",
                window)


def _version_route(dataset_id: int, version: int) -> str:
    return f"/datasets/{dataset_id}/versions/{version}"


def _entry_path(entry: Mapping[str, Any]) -> str:
    """A download-manifest entry's path within its version (folders + file name)."""
    return "/".join([*entry.get("path", []), entry["fileName"]])


def _remote(entry: Mapping[str, Any]) -> RemoteFile:
    return RemoteFile(entry["url"], int(entry["size"]), entry.get("sha256"))


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
