"""Pennsieve Discover calls: search, datasets and versions, the file tree (browse, walk).

Mixed into :class:`~sparc.client.services.pennsieve.PennsieveService`. Example::

    pennsieve.list_datasets(query="cancer", limit=2)["datasets"][0]["name"]
    for node in pennsieve.walk(90, path="metadata"):
        print(node["path"], node["size"])

Arguments are checked before any request (:class:`ArgumentError`), including the search
index's window: ``offset + limit`` may not pass 10,000 on ``/search/*``. Where the deployed
service answers a plain-text 500 for a case it does not catch (an unknown or unpublished
dataset version on browse/download-manifest), the client asks the version route instead and
raises :class:`NotFoundError`/:class:`GoneError` at once, without retrying the 500.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from sparc.client.errors import ArgumentError, NotFoundError, ServerError
from sparc.client.services.pennsieve.paths import relative_path

if TYPE_CHECKING:
    from sparc.client._http import HttpCore

log = logging.getLogger("sparc.client")

SERVICE = "pennsieve"
#: Elasticsearch refuses offset + limit beyond this on /search/*.
SEARCH_WINDOW = 10_000
#: Discover's body for exceptions its handlers do not catch (plain text, HTTP 500).
UNCAUGHT_ERROR = "There was an internal server error."

#: Discover's ids and version numbers are 32-bit signed integers.
INT32_MAX = 2**31 - 1
#: ``orderBy`` and ``orderDirection`` of a dataset search (case-insensitive enum names).
ORDER_BY = ("relevance", "date", "name", "size")
ORDER_DIRECTIONS = ("asc", "desc")

T = TypeVar("T")


def check_count(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number >= ``minimum`` (and <= ``maximum``), or :class:`ArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{name} must be at most {maximum:,}, got {value!r}")
    return value


def version_arg(value: Any) -> int:
    """A dataset version number (1 .. 2**31-1), or :class:`ArgumentError`."""
    return check_count("version", value, 1, INT32_MAX)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str | None:
    """An optional value among ``choices`` (case-insensitive), lower-cased."""
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in choices:
        raise ArgumentError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.lower()


def check_id(name: str, value: Any) -> int | None:
    """An optional id filter: ``None`` stays ``None``."""
    return None if value is None else dataset_id_arg(value, name)


def dataset_id_arg(value: Any, name: str = "dataset_id") -> int:
    """A required dataset (or organization) id; numeric strings are accepted."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{name} must be a dataset/organization number such as 90, "
                            f"got {value!r}")
    if value > INT32_MAX:
        raise ArgumentError(f"{name} {value} is out of range: Discover ids are 32-bit "
                            f"(at most {INT32_MAX:,})")
    return value


def check_text(name: str, value: Any) -> str | None:
    """An optional text filter (``None`` stays ``None``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ArgumentError(f"{name} must be text, got {type(value).__name__} {value!r}")
    if "\x00" in value:
        raise ArgumentError(f"{name} contains a NUL character")
    return value


def search_params(limit: int, offset: int, **filters: Any) -> dict[str, Any]:
    """Query parameters of a search page: checked ``limit``/``offset`` (within the search
    index's window) and the given filters (``None`` ones are dropped by the HTTP core)."""
    limit, offset = check_count("limit", limit), check_count("offset", offset)
    if offset + limit > SEARCH_WINDOW:
        raise ArgumentError(
            f"Discover search returns only the first {SEARCH_WINDOW:,} results "
            f"(offset + limit <= {SEARCH_WINDOW}), got offset={offset}, limit={limit}: narrow "
            "the search, or list a dataset's files with walk()")
    return {"limit": limit, "offset": offset, **filters}


def paginate(fetch: Callable[[int, int], dict[str, Any]], key: str, page_size: int,
             window: int | None = None) -> Iterator[dict[str, Any]]:
    """Every item of a paged listing: ``fetch(offset, limit)`` returns one page, whose items
    are under ``key``; search listings stop at the search index's ``window``."""
    page_size = check_count("page_size", page_size, 1)
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


def version_route(dataset_id: int, version: int) -> str:
    return f"/datasets/{dataset_id}/versions/{version}"


def is_uncaught_error(response: httpx.Response) -> bool:
    """True for Discover's deterministic crash answer (never worth a retry)."""
    if response.status_code != 500:
        return False
    try:
        return response.text.strip().strip('"') == UNCAUGHT_ERROR
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return False


def retry_unless_uncaught(response: httpx.Response) -> bool:
    return not is_uncaught_error(response)


class DiscoverMixin:
    """Search, datasets, versions and the file tree of Pennsieve Discover."""

    if TYPE_CHECKING:
        http: HttpCore

        def get(self, url: str, **kwargs: Any) -> Any: ...
        def resolve_url(self, url: str) -> str: ...

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
        return self._discover("/search/datasets", params=search_params(
            limit, offset, query=check_text("query", query),
            organization=check_text("organization", organization),
            organizationId=check_id("organization_id", organization_id),
            tags=[tags] if isinstance(tags, str) else (list(tags) if tags else None),
            embargo=embargo, orderBy=check_choice("order_by", order_by, ORDER_BY),
            orderDirection=check_choice("order_direction", order_direction,
                                        ORDER_DIRECTIONS)))

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
        """Search files: the list of file dicts of ``/discover/search/files``. An unknown
        ``dataset_id`` raises :class:`NotFoundError` (not an empty list)."""
        page = self._files_page(limit, offset, file_type, query, organization, organization_id,
                                dataset_id)
        files = list(page.get("files", []))
        if not files and dataset_id is not None:
            self.get_dataset(dataset_id)  # raises NotFoundError/GoneError for a wrong id
        return files

    def _files_page(self, limit: int = 10, offset: int = 0, file_type: str | None = None,
                    query: str | None = None, organization: str | None = None,
                    organization_id: int | None = None,
                    dataset_id: int | None = None) -> dict[str, Any]:
        return self._discover("/search/files", params=search_params(
            limit, offset, fileType=check_text("file_type", file_type),
            query=check_text("query", query),
            organization=check_text("organization", organization),
            organizationId=check_id("organization_id", organization_id),
            datasetId=check_id("dataset_id", dataset_id)))

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
        return self._discover("/search/records", params=search_params(
            limit, offset, model=check_text("model", model),
            organization=check_text("organization", organization),
            datasetId=check_id("dataset_id", dataset_id)))

    # -- iterators over every result ----------------------------------------------------------
    def iter_datasets(self, query: str | None = None, *, page_size: int = 100,
                      **filters: Any) -> Iterator[dict[str, Any]]:
        """Every dataset matching a search, across pages (filters as :meth:`list_datasets`)."""
        return paginate(lambda offset, limit: self.list_datasets(
            limit, offset, query, **filters), "datasets", page_size, SEARCH_WINDOW)

    def iter_files(self, query: str | None = None, *, page_size: int = 100,
                   **filters: Any) -> Iterator[dict[str, Any]]:
        """Every file search hit, across pages (filters as :meth:`list_files`)."""
        return paginate(lambda offset, limit: self._files_page(
            limit, offset, query=query, **filters), "files", page_size, SEARCH_WINDOW)

    def iter_records(self, model: str | None = None, *, page_size: int = 100,
                     **filters: Any) -> Iterator[dict[str, Any]]:
        """Every metadata record, across pages (filters as :meth:`list_records`)."""
        return paginate(lambda offset, limit: self.list_records(
            limit, offset, model, **filters), "records", page_size, SEARCH_WINDOW)

    # -- datasets and versions ----------------------------------------------------------------
    def get_dataset(self, dataset_id: int, version: int | None = None) -> dict[str, Any]:
        """One dataset (its latest version, or ``version``): a ``PublicDatasetDTO`` dict.

        Raises :class:`NotFoundError` for an unknown id and :class:`GoneError` (with
        ``.tombstone``) for an unpublished one.
        """
        dataset_id = dataset_id_arg(dataset_id)
        if version is None:
            return self._discover(f"/datasets/{dataset_id}")
        return self._discover(version_route(dataset_id, version_arg(version)))

    def list_versions(self, dataset_id: int) -> list[dict[str, Any]]:
        """Every published version of a dataset."""
        return self._discover(f"/datasets/{dataset_id_arg(dataset_id)}/versions")

    def list_tags(self) -> list[dict[str, Any]]:
        """Every tag with its dataset count: ``[{tag, count}]``."""
        return self._discover("/tags")

    def get_metadata(self, dataset_id: int, version: int | None = None) -> dict[str, Any]:
        """The dataset version's ``manifest.json`` (name, contributors, every file...)."""
        dataset_id, version = self._ids(dataset_id, version)
        return self._explained(dataset_id, version, lambda: self._discover(
            f"{version_route(dataset_id, version)}/metadata", retry_if=retry_unless_uncaught))

    def _ids(self, dataset_id: Any, version: int | None) -> tuple[int, int]:
        """The dataset id and a concrete version number (the latest when ``None``)."""
        dataset_id = dataset_id_arg(dataset_id)
        if version is None:
            return dataset_id, int(self.get_dataset(dataset_id)["version"])
        return dataset_id, version_arg(version)

    def _explained(self, dataset_id: int, version: int, call: Callable[[], T]) -> T:
        """``call()``, but Discover's uncaught-case 500 becomes the version route's own answer
        (:class:`NotFoundError`/:class:`GoneError`) at once."""
        try:
            return call()
        except ServerError as exc:
            if exc.server_message != UNCAUGHT_ERROR:
                raise
            self.get_dataset(dataset_id, version)  # 404 / 410 when that is the cause
            raise

    # -- file tree ----------------------------------------------------------------------------
    def browse(self, dataset_id: int, version: int | None = None, path: str | None = None,
               *, page_size: int = 500) -> list[dict[str, Any]]:
        """One level of a dataset version's file tree (all pages): directories first, then
        files. Each node gains ``datasetId`` and ``datasetVersion`` so it can be downloaded.
        A ``path`` that is not a folder raises :class:`NotFoundError`."""
        folder = check_text("path", path)
        dataset_id, version = self._ids(dataset_id, version)
        nodes = list(self._browse(dataset_id, version, folder, page_size))
        if not nodes and folder and folder.strip("/"):
            self._check_folder(dataset_id, version, folder)
        return nodes

    def _browse(self, dataset_id: int, version: int, path: str | None,
                page_size: int = 500) -> Iterator[dict[str, Any]]:
        route = f"{version_route(dataset_id, version)}/files/browse"
        folder = path.strip("/") if path else None
        pages = paginate(lambda offset, limit: self._explained(
            dataset_id, version, lambda: self._discover(
                route, params={"path": folder, "limit": limit, "offset": offset},
                retry_if=retry_unless_uncaught)), "files", page_size)
        for node in pages:
            yield {**node, "datasetId": dataset_id, "datasetVersion": version}

    def _check_folder(self, dataset_id: int, version: int, path: str) -> None:
        """Raise :class:`NotFoundError` unless ``path`` is a folder of the version (one listing
        of its parent)."""
        folder = path.strip("/")
        parent, _, name = folder.rpartition("/")
        for node in self._browse(dataset_id, version, parent or None):
            if node["name"] == name:
                if node.get("type") == "Directory":
                    return
                raise NotFoundError(f"{path!r} is a file of dataset {dataset_id} version "
                                    f"{version}, not a folder", status=404, service=SERVICE)
        raise NotFoundError(f"{path!r} is not a folder of dataset {dataset_id} version "
                            f"{version}", status=404, service=SERVICE)

    def walk(self, dataset_id: int, version: int | None = None, path: str | None = None,
             *, page_size: int = 500, max_workers: int = 8) -> Iterator[dict[str, Any]]:
        """Every file below ``path`` (the whole version by default), depth first, by name.

        Folder listings are fetched ``max_workers`` at a time ahead of the traversal: every
        folder is asked for as soon as its parent's listing names it (nearest first in the
        walk's order), so deep trees cost round trips in parallel; the order is the same as a
        sequential walk, and a caller that stops iterating stops the listing.
        """
        dataset_id, version = self._ids(dataset_id, version)
        max_workers = check_count("max_workers", max_workers, 1)
        folder = check_text("path", path)
        folder = folder.strip("/") if folder else None
        if folder:
            self._check_folder(dataset_id, version, folder)

        def listing(folder: str | None) -> list[dict[str, Any]]:
            return list(self._browse(dataset_id, version, folder, page_size))

        return _walk_ahead(listing, folder, max_workers)

    def get_file(self, dataset_id: int, path: str, version: int | None = None) -> dict[str, Any]:
        """One file's node, by its path within the version (or its full ``s3://`` uri)."""
        if not isinstance(path, str) or not path or "\x00" in path:
            raise ArgumentError(f"path must be a file path such as 'files/primary/a.csv', "
                                f"got {path!r}")
        dataset_id, version = self._ids(dataset_id, version)
        return self._explained(dataset_id, version, lambda: self._discover(
            f"{version_route(dataset_id, version)}/files", params={"path": path},
            retry_if=retry_unless_uncaught))


#: How many folder listings walk() may hold ahead of its caller, per worker (bounded memory).
WALK_BUFFER_PER_WORKER = 16

_Key = tuple[int, ...]  # a folder's place in the walk: child indices from the top (DFS order)


class _WalkAhead:
    """Folder listings fetched ahead of a depth-first traversal, ``max_workers`` in flight.

    Each folder gets a key (its child indices from the top): sorted keys are the walk's order.
    Every folder named by a finished listing is queued at once, and the smallest queued keys are
    fetched first, so the folder the caller needs next is never behind folders it needs later.
    At most ``buffer`` listings are held (in flight or finished, not yet walked).
    """

    def __init__(self, listing: Callable[[str | None], list[dict[str, Any]]],
                 max_workers: int, buffer: int) -> None:
        self.listing = listing
        self.max_workers = max_workers
        self.buffer = max(buffer, max_workers)
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sparc-walk")
        self.changed = threading.Condition()
        self.queued: list[tuple[_Key, str | None]] = []  # a heap: known, not asked for yet
        self.results: dict[_Key, Future[list[dict[str, Any]]]] = {}
        self.in_flight = 0
        self.stopped = False

    def add(self, key: _Key, folder: str | None) -> None:
        with self.changed:
            heapq.heappush(self.queued, (key, folder))
            self._fill()

    def _fill(self) -> None:
        """Ask for queued folders, nearest first (call holding ``changed``)."""
        while (self.queued and not self.stopped and self.in_flight < self.max_workers
               and (len(self.results) < self.buffer or self.in_flight == 0)):
            key, folder = heapq.heappop(self.queued)
            result: Future[list[dict[str, Any]]] = Future()
            self.results[key] = result
            self.in_flight += 1
            self.pool.submit(self._run, key, folder, result)

    def _run(self, key: _Key, folder: str | None,
             result: Future[list[dict[str, Any]]]) -> None:
        nodes: list[dict[str, Any]] = []
        error: BaseException | None = None
        try:
            nodes = self.listing(folder)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller at this folder
            error = exc
        with self.changed:  # its subfolders are known before its listing is
            self.in_flight -= 1
            for i, node in enumerate(n for n in nodes if n.get("type") == "Directory"):
                heapq.heappush(self.queued, ((*key, i), node["path"]))
            self._fill()
            self.changed.notify_all()
        if error is None:
            result.set_result(nodes)
        else:
            result.set_exception(error)

    def take(self, key: _Key) -> list[dict[str, Any]]:
        """The listing of ``key`` (waiting for it), forgotten once taken."""
        with self.changed:
            while (result := self.results.get(key)) is None:
                self._fill()  # it is queued: it goes first when a worker is free
                if key not in self.results:
                    self.changed.wait(1.0)
        nodes = result.result()
        with self.changed:
            del self.results[key]
            self._fill()
        return nodes

    def stop(self) -> None:
        with self.changed:
            self.stopped = True
            self.queued.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _walk_ahead(listing: Callable[[str | None], list[dict[str, Any]]], top: str | None,
                max_workers: int) -> Iterator[dict[str, Any]]:
    """The files below ``top`` in the order of a sequential depth-first walk (each folder's
    files, then its subfolders by name), with listings fetched ahead by :class:`_WalkAhead`."""
    ahead = _WalkAhead(listing, max_workers, WALK_BUFFER_PER_WORKER * max_workers)
    try:
        ahead.add((), top)
        stack: list[_Key] = [()]
        while stack:
            key = stack.pop()
            nodes = ahead.take(key)
            folders = sum(1 for n in nodes if n.get("type") == "Directory")
            yield from (n for n in nodes if n.get("type") != "Directory")
            stack.extend((*key, i) for i in reversed(range(folders)))
    finally:  # also when the caller stops early: ask for nothing more
        ahead.stop()
