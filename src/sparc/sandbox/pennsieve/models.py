"""Pennsieve Discover state and queries (no HTTP here): raise :mod:`.errors`, return JSON-ready values.

The behaviour follows the deployed discover-service (Pennsieve/discover-service at c1f582ce) where it
differs from its OpenAPI spec; ``FIDELITY.md`` lists each such place with its source line. Failures
that the deployed handlers map to a status are raised as the small exceptions below
(:class:`NoDataset`, :class:`NoVersion`, :class:`Unpublished`, :class:`Embargoed`, :class:`TooLarge`);
each route maps them as its Scala handler's ``recover`` block does, and anything it does not map
becomes akka-http's plain-text 500 (see ``routes.py``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from sparc.sandbox.http import Page
from sparc.sandbox.pennsieve import errors
from sparc.sandbox.storage.db import name_tokens

PAGE_CACHE_BYTES = 64 * 2**20  # browse bodies kept (Discover.browse_body), in all...
PAGE_CACHE_ENTRIES = 50_000  # ...and how many (any path may be asked for: most pages are small)
SEARCH_TOTAL_CAP = 10_000  # Elasticsearch's index.max_result_window: totalCount and offset + limit
ORDER_BY = ("name", "date", "relevance", "size")  # enumeratum declaration order (OrderBy.scala)
DIRECTIONS = ("asc", "desc")
# PublicDatasetVersionsTable.scala:101-107 (visibleStates)
VISIBLE = ("PUBLISH_SUCCEEDED", "EMBARGO_SUCCEEDED", "RELEASE_IN_PROGRESS", "RELEASE_FAILED", "UNPUBLISHED")
# DatasetHandler.scala:457 (getDatasetVersions)
LISTED_VERSIONS = ("PUBLISH_SUCCEEDED", "UNPUBLISHED", "EMBARGO_SUCCEEDED")
DATASET_TYPES = ("research", "trial", "collection", "release")  # core-models DatasetType (snake case)
DOWNLOAD_ORIGINS = ("SPARC", "Discover", "AllOrigins", "AWSRequesterPayer", "Unknown")  # DownloadOrigin.scala
PREFIX_LENGTH, MAX_EXPANSIONS = 2, 20  # SearchClient.scala:603-605
_WORD = re.compile(r"\w+", re.UNICODE)
_SQL_VISIBLE = ",".join(f"'{s}'" for s in VISIBLE)
# download-manifest lookups of many paths (a JSON list) at once, each by the (dataset_pk, path) key;
# CROSS JOIN fixes the loop order (SQLite would otherwise scan the whole dataset per listed path)
# what a file node needs (file_node), without the stored content
NODE_COLUMNS = ("pk, name, path, size, file_type, uri, package_type, icon, source_package_id, created_at,"
                " s3_version, sha256")
MANIFEST_COLUMNS = "path, name, size, bucket, key, s3_version"  # what a manifest row and its URL need
SELECT_NAMED_FILES = ("SELECT f.path, f.name, f.size, f.bucket, f.key, f.s3_version FROM json_each(?2) AS j CROSS JOIN files AS f"
                      " ON f.dataset_pk = ?1 AND f.path = j.value")
SELECT_NAMED_DIRS = ("SELECT d.path FROM json_each(?2) AS j CROSS JOIN dirs AS d"
                     " ON d.dataset_pk = ?1 AND d.path = j.value ORDER BY d.path")


class DiscoverFailure(Exception):
    """A failure a handler may map to a status (else it is an uncaught 500)."""


class NoDataset(DiscoverFailure):
    """``NoDatasetException``: no dataset with this id."""


class NoVersion(DiscoverFailure):
    """``NoDatasetVersionException``: the dataset has no visible version with this number."""


class Unpublished(DiscoverFailure):
    """``DatasetUnpublishedException``: carries the version's TombstoneDTO."""

    def __init__(self, tombstone: dict[str, Any]) -> None:
        super().__init__(tombstone)
        self.tombstone = tombstone


class Embargoed(DiscoverFailure):
    """``authorizeIfUnderEmbargo``: embargoed files asked for without a user token (401), or by a
    signed-in user whose access was not granted (``denied``: 403)."""

    def __init__(self, denied: bool = False) -> None:
        super().__init__(denied)
        self.denied = denied


#: Who is asking, for embargoed data: set per request (from its ``Authorization`` header) to a
#: function of a dataset id answering ``"granted"``, ``"denied"``, ``"signed_out"`` or
#: ``"invalid_token"``; unset means signed out. Example::
#:
#:     EMBARGO_ACCESS.set(lambda dataset_id: "granted" if dataset_id == 275 else "denied")
EMBARGO_ACCESS: ContextVar[Callable[[int], str] | None] = ContextVar("embargo_access", default=None)


def embargo_access(dataset_id: int) -> str:
    """The current request's access to embargoed dataset ``dataset_id`` (see EMBARGO_ACCESS)."""
    decide = EMBARGO_ACCESS.get()
    return decide(dataset_id) if decide is not None else "signed_out"


class TooLarge(DiscoverFailure):
    """``DatasetTooLargeException``."""


class NoFile(DiscoverFailure):
    """``NoFileException``."""


def words(text: str) -> list[str]:
    """Lower-cased word tokens (a poor man's analyzer)."""
    return [w.lower() for w in _WORD.findall(text or "")]


def org_match(query: str, name: str | None) -> bool:
    """ES-style analyzed ``match`` on an organization name: any query token matches (a query
    without tokens matches nothing, ES's ``zero_terms_query: none``)."""
    return bool(set(words(query)) & set(words(name or "")))


def fts_query(text: str, operator: str = "AND") -> str | None:
    """A safe FTS5 query from free text (each token quoted)."""
    return f" {operator} ".join(f'"{w}"' for w in words(text)) or None


def auto_fuzziness(term: str) -> int:
    """Elasticsearch ``fuzziness: AUTO``: 0 edits for 1-2 characters, 1 for 3-5, 2 above."""
    return 0 if len(term) <= 2 else 1 if len(term) <= 5 else 2


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, ``limit + 1`` once above ``limit``.

    Example: ``edit_distance("jpg", "jpeg", 2) == 1``.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


class FuzzyVocabulary:
    """Fuzzy term expansion over a fixed set of indexed terms, as an ES ``fuzzy``/``match`` with
    ``fuzziness: AUTO, prefix_length: 2, max_expansions: 20`` expands a query term."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.by_prefix: dict[str, list[str]] = {}
        for term in terms:
            self.by_prefix.setdefault(term[:PREFIX_LENGTH], []).append(term)
        self.expand = lru_cache(maxsize=4096)(self._expand)

    def _expand(self, term: str) -> tuple[tuple[str, int], ...]:
        """Indexed terms within the allowed edits of ``term``, with their distance (closest first)."""
        limit = auto_fuzziness(term)
        if limit == 0 or len(term) < PREFIX_LENGTH:
            return ((term, 0),) if term in self.by_prefix.get(term[:PREFIX_LENGTH], ()) else ()
        found = [(t, d) for t in self.by_prefix.get(term[:PREFIX_LENGTH], ())
                 if (d := edit_distance(term, t, limit)) <= limit]
        return tuple(sorted(found, key=lambda td: (td[1], td[0]))[:MAX_EXPANSIONS])


def where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``" AND <sql>"`` for each condition whose value is not None, and the matching arguments
    (the value once per ``?``)."""
    sql, args = "", list[Any]()
    for clause, value in conditions:
        if value is not None:
            sql += f" AND {clause}"
            args += [value] * clause.count("?")
    return sql, args


@dataclass(frozen=True)
class Sort:
    """``orderBy``/``orderDirection`` of a dataset listing."""

    by: str = "relevance"
    direction: str = "desc"

    @classmethod
    def parse(cls, order_by: str | None, direction: str | None) -> Sort:
        """Case-insensitive enum names; a bad one is 400 with enumeratum's message."""
        by, way = (order_by or "relevance").lower(), (direction or "desc").lower()
        if by not in ORDER_BY:
            raise errors.bad_request(f"{order_by} is not a member of Enum ({', '.join(ORDER_BY)})")
        if way not in DIRECTIONS:
            raise errors.bad_request(f"{direction} is not a member of Enum ({', '.join(DIRECTIONS)})")
        return cls(by, way)


def check_search_window(page: Page) -> None:
    """Elasticsearch refuses ``offset + limit`` beyond ``index.max_result_window``; Discover does not
    catch the failure (SearchHandler.scala:117-133), so akka answers its plain-text 500."""
    if page.offset + page.limit > SEARCH_TOTAL_CAP:
        raise errors.internal()


def file_node(row: sqlite3.Row, migrated: bool, created_at: str | None = None) -> dict[str, Any]:
    """A ``File`` FileTreeNodeDto as the deployed code builds it (FileTreeNode.scala:53-98):
    4.x nodes have ``s3Version``/``sha256`` null; 5.0 nodes carry the S3 version and the stored
    sha256; both carry a ``createdAt``."""
    return {"name": row["name"], "path": row["path"], "size": row["size"], "type": "File",
            "fileType": row["file_type"], "uri": row["uri"], "packageType": row["package_type"],
            "icon": row["icon"], "sourcePackageId": row["source_package_id"],
            "createdAt": created_at or row["created_at"],
            "s3Version": row["s3_version"] if migrated else None,
            "sha256": row["sha256"] if migrated else None}


def search_hit(row: sqlite3.Row) -> dict[str, Any]:
    """A ``FileSearchResponse`` (no ``path``)."""
    return {"name": row["name"], "datasetId": row["dataset_id"], "datasetVersion": row["version"],
            "size": row["size"], "fileType": row["file_type"], "packageType": row["package_type"],
            "icon": row["icon"], "uri": row["uri"], "createdAt": row["created_at"],
            "sourcePackageId": row["source_package_id"]}


def java_split(text: str) -> list[str]:
    """Java's ``String.split("/")``: trailing empty strings dropped (``"a/".split`` is ``[a]``)."""
    parts = text.split("/")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return [] if parts == [""] and text else parts


def truncate_path(root: list[str], path: list[str]) -> list[str]:
    """FileDownloadDTO.truncatePath: drop leading segments while they equal the root's."""
    i = 0
    while i < len(root) and i < len(path) and root[i] == path[i]:
        i += 1
    return path[i:]


def file_key(path: str, dataset_id: int, version: int, bucket: str, migrated: bool) -> str:
    """The S3 key ``files?path=`` looks up (DatasetHandler.scala:593-613): every ``s3://<bucket>``
    removed, one leading ``/`` removed, ``<id>/`` (5.0) or ``<id>/<v>/`` (4.x) prefixed unless the
    path already starts with ``<id>`` / ``<id>/<v>``. Example: ``file_key("/a.csv", 90, 1, "b", False)``
    is ``"90/1/a.csv"``."""
    path = path.replace(f"s3://{bucket}", "")
    if path.startswith("/"):
        path = path[1:]
    prefix = f"{dataset_id}" if migrated else f"{dataset_id}/{version}"
    return path if path.startswith(prefix) else f"{prefix}/{path}"


class Discover:
    """The Discover backend over the sandbox database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.create_function("org_match", 2, org_match, deterministic=True)
        self.name_terms = FuzzyVocabulary(r[0] for r in conn.execute("SELECT DISTINCT token FROM file_tokens"))
        self.type_terms: dict[str, list[str]] = {}
        for (file_type,) in conn.execute("SELECT DISTINCT file_type FROM files"):
            for term in words(file_type):
                self.type_terms.setdefault(term, []).append(file_type)
        self.file_type_vocabulary = FuzzyVocabulary(self.type_terms)
        self._layout: dict[int, tuple[bool, str]] = {}
        # visible versions found, by dataset id (latest) or (id, version); DTO bodies by version pk
        self._visible: dict[int | tuple[int, int], sqlite3.Row] = {}
        self._dto_bytes: dict[int, bytes] = {}
        self._pages: dict[tuple[int, str | None, int, int], bytes] = {}  # browse bodies
        self._pages_size = 0

    def layout(self, row: sqlite3.Row) -> tuple[bool, str]:
        """``(migrated, bucket)`` of a version row: publishing 5.0 ("migrated") versions have no
        version segment in their ``uri``. Cached per version (the DTO is decoded once)."""
        if row["pk"] not in self._layout:
            uri = json.loads(row["dto"])["uri"]
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            self._layout[row["pk"]] = (prefix.strip("/") == str(row["id"]), bucket)
        return self._layout[row["pk"]]

    # ---- datasets and versions -----------------------------------------------------------------
    def _dataset_exists(self, dataset_id: int) -> None:
        if self.conn.execute("SELECT 1 FROM datasets WHERE id = ? LIMIT 1", (dataset_id,)).fetchone() is None:
            raise NoDataset(dataset_id)

    def _tombstone(self, dataset_id: int, version: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT dto FROM tombstones WHERE id = ? AND version = ?",
                                (dataset_id, version)).fetchone()
        return json.loads(row["dto"])

    def latest_visible(self, dataset_id: int) -> sqlite3.Row:
        """``getLatestVisibleVersion`` (PublicDatasetVersionsTable.scala:302-312); 410 if unpublished.

        A found version is remembered (the datasets table does not change after the build)."""
        row = self._visible.get(dataset_id)
        if row is not None:
            return row
        self._dataset_exists(dataset_id)
        row = self.conn.execute(f"SELECT * FROM datasets WHERE id = ? AND status IN ({_SQL_VISIBLE})"
                                " ORDER BY version DESC LIMIT 1", (dataset_id,)).fetchone()
        if row is None:
            raise NoDataset(dataset_id)
        if row["status"] == "UNPUBLISHED":
            raise Unpublished(self._tombstone(dataset_id, row["version"]))
        self._visible[dataset_id] = row
        return row

    def visible_version(self, dataset_id: int, version: int) -> sqlite3.Row:
        """``getVisibleVersion`` (PublicDatasetVersionsTable.scala:314-331); remembered when found."""
        row = self._visible.get((dataset_id, version))
        if row is not None:
            return row
        self._dataset_exists(dataset_id)
        row = self.conn.execute(f"SELECT * FROM datasets WHERE id = ? AND version = ? AND status IN"
                                f" ({_SQL_VISIBLE})", (dataset_id, version)).fetchone()
        if row is None:
            raise NoVersion(dataset_id, version)
        if row["status"] == "UNPUBLISHED":
            raise Unpublished(self._tombstone(dataset_id, version))
        self._visible[(dataset_id, version)] = row
        return row

    def files_version(self, dataset_id: int, version: int) -> sqlite3.Row:
        """The visible version, refusing embargoed data (``authorizeIfUnderEmbargo`` without a token)."""
        row = self.visible_version(dataset_id, version)
        if row["embargo"]:
            access = embargo_access(dataset_id)
            if access != "granted":
                raise Embargoed(denied=access == "denied")
        return row

    @staticmethod
    def dto_text(row: sqlite3.Row) -> str:
        """The stored PublicDatasetDTO JSON (sent as is: no decode/encode per request)."""
        return str(row["dto"])

    def dto_bytes(self, row: sqlite3.Row) -> bytes:
        """:meth:`dto_text` as the UTF-8 body bytes, encoded once per version."""
        body = self._dto_bytes.get(row["pk"])
        if body is None:
            body = self._dto_bytes[row["pk"]] = self.dto_text(row).encode()
        return body

    def versions(self, dataset_id: int) -> str:
        """``GET /versions``: newest first, UNPUBLISHED versions included (DatasetHandler.scala:447-527)."""
        self._dataset_exists(dataset_id)
        rows = self.conn.execute(
            f"SELECT dto FROM datasets WHERE id = ? AND status IN ({','.join('?' * len(LISTED_VERSIONS))})"
            " ORDER BY version DESC", (dataset_id, *LISTED_VERSIONS))
        return "[" + ",".join(r["dto"] for r in rows) + "]"

    def by_doi(self, doi: str) -> str:
        """``getVersionByDoi``: exact DOI; published → DTO, unpublished → :class:`Unpublished`."""
        row = self.conn.execute("SELECT * FROM datasets WHERE doi = ? LIMIT 1", (doi,)).fetchone()
        if row is None or row["status"] not in ("PUBLISH_SUCCEEDED", "EMBARGO_SUCCEEDED", "UNPUBLISHED"):
            raise errors.not_found(doi)
        if row["status"] == "UNPUBLISHED":
            raise Unpublished(self._tombstone(row["id"], row["version"]))
        return self.dto_text(row)

    def by_dois(self, dois: list[str]) -> dict[str, Any]:
        if not dois:
            raise errors.bad_request("missing DOIs")
        published, unpublished = {}, {}
        for doi in dict.fromkeys(dois):
            try:
                published[doi] = json.loads(self.by_doi(doi))
            except Unpublished as gone:
                unpublished[doi] = gone.tombstone
            except errors.DiscoverError:
                pass
        return {"published": published, "unpublished": unpublished}

    def list_datasets(self, page: Page, sort: Sort, ids: list[str], tags: list[str], embargo: bool | None,
                      dataset_type: str | None) -> str:
        """``GET /datasets``: the latest published (or embargoed) version of each dataset."""
        try:
            wanted = {int(i) for i in ids}
            if any(not -2**31 <= i < 2**31 for i in wanted):
                raise ValueError
        except ValueError:
            raise errors.bad_request("ids must be numbers") from None
        if dataset_type is not None and dataset_type not in DATASET_TYPES:
            raise errors.internal()  # DatasetType.withName throws, uncaught (DatasetHandler.scala:206-209)
        rows = [r for r in self._latest() if self._keep(r, tags, embargo)
                and (not wanted or r["id"] in wanted)
                and (dataset_type is None or r["dataset_type"] == dataset_type)]
        return self._dataset_page(page, sort, rows, {})

    def search_datasets(self, page: Page, sort: Sort, query: str | None, organization: str | None,
                        organization_id: int | None, tags: list[str], embargo: bool | None) -> str:
        """``GET /search/datasets``: FTS5 relevance over name, description, tags, contributors, readme."""
        check_search_window(page)
        scores: dict[int, float] = {}
        match = fts_query(query or "")
        if match:
            scores = {r[0]: r[1] for r in self.conn.execute(
                "SELECT rowid, bm25(datasets_fts, 10.0, 4.0, 6.0, 2.0, 1.0) FROM datasets_fts "
                "WHERE datasets_fts MATCH ?", (match,))}
        rows = [r for r in self._latest() if self._keep(r, tags, embargo)
                and r["status"] in ("PUBLISH_SUCCEEDED", "EMBARGO_SUCCEEDED")
                and (not match or r["pk"] in scores)
                and (organization is None or org_match(organization, r["organization_name"]))
                and (organization_id is None or r["organization_id"] == organization_id)]
        return self._dataset_page(page, sort, rows, scores, cap=SEARCH_TOTAL_CAP)

    def _latest(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM datasets WHERE latest = 1").fetchall()

    @staticmethod
    def _keep(row: sqlite3.Row, tags: list[str], embargo: bool | None) -> bool:
        have = set(json.loads(row["tags"])) if tags else set()
        return (all(t.lower() in have for t in tags)
                and (embargo is None or bool(row["embargo"]) == embargo))

    @staticmethod
    def _dataset_page(page: Page, sort: Sort, rows: list[sqlite3.Row], scores: dict[int, float],
                      cap: int | None = None) -> str:
        keys: dict[str, Callable[[sqlite3.Row], Any]] = {
            "date": lambda r: r["created_at"], "name": lambda r: r["name"].lower(),
            "size": lambda r: r["size"],
            # bm25: lower is better, so "desc" relevance sorts ascending by bm25
            "relevance": (lambda r: -scores.get(r["pk"], 0.0)) if scores else (lambda r: r["created_at"]),
        }
        rows = sorted(rows, key=lambda r: r["id"])
        rows.sort(key=keys[sort.by], reverse=sort.direction == "desc")
        total = len(rows) if cap is None else min(len(rows), cap)
        head = json.dumps({"limit": page.limit, "offset": page.offset, "totalCount": total})
        return head[:-1] + ',"datasets":[' + ",".join(r["dto"] for r in page.slice(rows)) + "]}"

    def tags(self) -> list[dict[str, Any]]:
        """Tags of datasets whose latest PUBLISH_SUCCEEDED version exists, lower-cased, counted and
        sorted by tag (PublicDatasetsTable.scala:132-157)."""
        counts: dict[str, int] = {}
        rows = self.conn.execute(
            "SELECT d.tags FROM datasets d WHERE d.status = 'PUBLISH_SUCCEEDED' AND d.version ="
            " (SELECT max(version) FROM datasets x WHERE x.id = d.id AND x.status = 'PUBLISH_SUCCEEDED')")
        for (tags,) in rows:
            for tag in json.loads(tags):
                counts[tag] = counts.get(tag, 0) + 1
        return [{"tag": t, "count": n} for t, n in sorted(counts.items())]

    # ---- files ------------------------------------------------------------------------------
    def browse_body(self, dataset_id: int, version: int, path: str | None, page: Page) -> bytes:
        """One directory level as the JSON body Starlette's ``JSONResponse`` renders, built once
        per version, path and page (a published version's files never change; who may see it
        is checked each time). A deep walk asks for each folder again and again."""
        row = self.files_version(dataset_id, version)
        key = (row["pk"], path, page.limit, page.offset)
        body = self._pages.get(key)
        if body is None:
            body = json.dumps(self._browse(row, path, page), ensure_ascii=False, allow_nan=False,
                              indent=None, separators=(",", ":")).encode("utf-8")
            if self._pages_size + len(body) > PAGE_CACHE_BYTES or len(self._pages) >= PAGE_CACHE_ENTRIES:
                self._pages.clear()  # bounded: start afresh rather than track ages
                self._pages_size = 0
            self._pages[key] = body
            self._pages_size += len(body)
        return body

    def _browse(self, row: sqlite3.Row, path: str | None, page: Page) -> dict[str, Any]:
        """One directory level: directories first, then files, each by name (PublicFilesTable.scala:310-395).
        Node paths join the ``path`` as given with the name (``joinPath`` strips its slashes)."""
        migrated = self.layout(row)[0]
        pk = row["pk"]
        parent = (path or "").strip("/")
        total = self.conn.execute(
            "SELECT (SELECT count(*) FROM dirs WHERE dataset_pk = ?1 AND parent = ?2)"
            " + (SELECT count(*) FROM files WHERE dataset_pk = ?1 AND parent = ?2)", (pk, parent)).fetchone()[0]
        rows = self.conn.execute(
            "SELECT 0 AS kind, name, path, size, NULL AS pk FROM dirs WHERE dataset_pk = ?1 AND parent = ?2"
            " UNION ALL SELECT 1, name, path, size, pk FROM files WHERE dataset_pk = ?1 AND parent = ?2"
            " ORDER BY kind, name LIMIT ?3 OFFSET ?4",
            (pk, parent, min(page.limit, 2**62), min(page.offset, 2**62))).fetchall()
        file_rows = {r["pk"]: r for r in self.conn.execute(
            f"SELECT {NODE_COLUMNS} FROM files WHERE pk IN ({','.join('?' * len(rows))})",
            [r["pk"] for r in rows])}
        items = []
        for r in rows:
            node_path = _join_path(path, r["name"]) if path is not None else r["name"]
            if not r["kind"]:
                items.append({"name": r["name"], "path": node_path, "size": r["size"], "type": "Directory"})
                continue
            # createdAt: 4.x public_files.created_at; 5.0 the version-file link's created_at
            # (PublicFileVersionsTable.scala:579): the version's publication when not recorded
            file_row = file_rows[r["pk"]]
            created = row["created_at"] if migrated else file_row["created_at"] or row["created_at"]
            items.append({**file_node(file_row, migrated, created), "path": node_path})
        return page.body("files", items, total)

    def file(self, dataset_id: int, version: int, path: str) -> dict[str, Any]:
        """``files?path=``: one file node; 404 body = the path as given."""
        row = self.files_version(dataset_id, version)
        migrated, bucket = self.layout(row)
        file_row = self.conn.execute(
            "SELECT * FROM files WHERE bucket = ? AND key = ? AND dataset_pk = ?",
            (bucket, file_key(path, dataset_id, version, bucket, migrated), row["pk"])).fetchone()
        if file_row is None:
            raise NoFile(path)
        return file_node(file_row, migrated, file_row["created_at"] or row["created_at"])

    def metadata(self, dataset_id: int, version: int) -> bytes:
        """The raw ``manifest.json`` of the version."""
        pk = self.files_version(dataset_id, version)["pk"]
        row = self.conn.execute("SELECT content FROM files WHERE dataset_pk = ? AND path = 'manifest.json'",
                                (pk,)).fetchone()
        return bytes(row["content"])

    def select_files(self, dataset_id: int, version: int, paths: list[str]) -> list[sqlite3.Row]:
        """Files matched by ``paths`` (a directory matches everything below it; ``joinPath`` strips
        leading and trailing slashes), ordered by path, without duplicates; rows hold
        :data:`MANIFEST_COLUMNS` only."""
        pk = self.files_version(dataset_id, version)["pk"]
        wanted = list(dict.fromkeys(p.strip("/") for p in paths))
        if any("//" in path for path in wanted):  # an empty ltree label: a Postgres syntax error, uncaught
            raise errors.internal()
        if "" in wanted:  # the root: every file
            return self.conn.execute(f"SELECT {MANIFEST_COLUMNS} FROM files WHERE dataset_pk = ? ORDER BY path",
                                     (pk,)).fetchall()
        # one indexed query for the paths naming files, one for those naming directories, then
        # one range scan per directory not inside another one asked for
        names = json.dumps(wanted)
        found = {row["path"]: row for row in self.conn.execute(SELECT_NAMED_FILES, (pk, names))}
        outer: list[str] = []
        for (folder,) in self.conn.execute(SELECT_NAMED_DIRS, (pk, names)):
            if not outer or not folder.startswith(outer[-1] + "/"):
                outer.append(folder)
        for folder in outer:  # "0" sorts right after "/"
            found.update((row["path"], row) for row in self.conn.execute(
                f"SELECT {MANIFEST_COLUMNS} FROM files WHERE dataset_pk = ? AND path > ? AND path < ?",
                (pk, folder + "/", folder + "0")))
        return [found[p] for p in sorted(found)]

    def download_manifest(self, dataset_id: int, version: int, paths: list[str], root_path: str | None,
                          size_cap: int, url_for: Callable[[sqlite3.Row], str]) -> dict[str, Any]:
        """``DownloadResponse`` (DatasetHandler.scala:1035-1143): no ``sha256`` key in rows
        (PublicFilesTable.scala:275-281, PublicFileVersionsTable.scala:505-512 never read it)."""
        if root_path is not None and not all(p.startswith(root_path) for p in paths):
            raise errors.bad_request("if root path is specified, all paths must begin with root path")
        selected = self.select_files(dataset_id, version, paths)
        size = sum(row["size"] for row in selected)
        if size > size_cap:
            raise TooLarge()
        root = java_split(root_path) if root_path is not None else None
        data = []
        for row in selected:
            dirs = row["path"].split("/")[:-1]
            data.append({"fileName": row["name"], "path": truncate_path(root, dirs) if root is not None else dirs,
                         "url": url_for(row), "size": row["size"]})
        return {"header": {"count": len(selected), "size": size}, "data": data}

    def version_files(self, dataset_id: int, version: int, size_cap: int) -> tuple[sqlite3.Row, list[sqlite3.Row]]:
        """The files of a whole version in S3 listing order (by key), 403 over ``size_cap``."""
        row = self.files_version(dataset_id, version)
        if row["size"] > size_cap:
            raise TooLarge()
        files = self.conn.execute("SELECT * FROM files WHERE dataset_pk = ? ORDER BY key", (row["pk"],))
        return row, files.fetchall()

    def record_download(self, dataset_id: int, version: int, origin: str | None, when: str) -> None:
        self.conn.execute("INSERT INTO downloads VALUES (?, ?, ?, ?)", (dataset_id, version, origin, when))

    def downloads_summary(self, start: date, end: date) -> list[dict[str, Any]]:
        """``/metrics/dataset/downloads/summary``: downloads in [start, end + 1 day) by dataset, version
        and origin (MetricsHandler.scala:31, DatasetDownloadsTable.scala:83-118)."""
        rows = self.conn.execute(
            "SELECT dataset_id, version, origin, count(*) AS n FROM downloads WHERE downloaded_at >= ?"
            " AND downloaded_at < ? GROUP BY dataset_id, version, origin ORDER BY dataset_id, version, origin",
            (start.isoformat(), (end + timedelta(days=1)).isoformat()))
        out = [{"datasetId": r["dataset_id"], "version": r["version"],
                "origin": r["origin"] if r["origin"] in DOWNLOAD_ORIGINS else "Unknown", "downloads": r["n"]}
               for r in rows]
        return sorted(out, key=lambda d: (d["datasetId"], d["version"], d["origin"]))

    def doi_page(self, dataset_id: int, version: int, page: Page) -> dict[str, Any]:
        """``/versions/{v}/dois``: the DOIs a collection dataset lists (none in the sandbox)."""
        self.files_version(dataset_id, version)
        return page.body("dois", [], 0)

    def assets(self, dataset_id: int, version: int, page: Page | None) -> dict[str, Any]:
        """Release assets (code-release datasets only; none in the sandbox): an empty AssetTreePage."""
        self.files_version(dataset_id, version)
        if page is None:  # browseAllAssets answers limit/offset -1 (DatasetHandler.scala:1013-1014)
            return {"limit": -1, "offset": -1, "totalCount": 0, "assets": []}
        return page.body("assets", [], 0)

    def data_use_agreement(self, dataset_id: int) -> tuple[dict[str, Any] | None, sqlite3.Row]:
        """The dataset's current agreement (embargoed datasets have one here), else ``None`` (204)."""
        row = self.latest_visible(dataset_id)
        if not row["embargo"]:
            return None, row
        return {"id": 1, "name": "SPARC Data Use Agreement",
                "body": "Data must be cited and may not be redistributed before the embargo ends.",
                "organizationId": row["organization_id"]}, row

    def package_files(self, source_package_id: str, page: Page) -> dict[str, Any]:
        """``/packages/{id}/files``: files of 5.0 versions published from a workspace package
        (PublicFileVersionsMapper only, so 4.x packages are 404)."""
        rows = self.conn.execute(
            "SELECT f.*, d.organization_id AS org, d.dto AS dto, d.created_at AS published FROM files f"
            " JOIN datasets d ON d.pk = f.dataset_pk WHERE f.source_package_id = ? AND f.s3_version IS NOT NULL"
            " AND d.status IN ('PUBLISH_SUCCEEDED', 'EMBARGO_SUCCEEDED') ORDER BY f.pk",
            (source_package_id,)).fetchall()
        if not rows:
            raise errors.not_found(source_package_id)
        items = [file_node(r, True, r["created_at"] or r["published"]) for r in page.slice(rows)]
        body = page.body("files", items, len(rows))
        body["organizationId"] = rows[0]["org"]
        return body

    def organization_metrics(self, organization_id: int) -> dict[str, Any]:
        rows = self.conn.execute("SELECT id, name, size FROM datasets WHERE latest = 1 AND organization_id = ?"
                                 " ORDER BY id", (organization_id,))
        return {"datasets": [{"id": r["id"], "name": r["name"], "size": r["size"]} for r in rows]}

    # ---- search -----------------------------------------------------------------------------
    def _fuzzy_terms(self, vocabulary: FuzzyVocabulary, text: str) -> dict[str, float]:
        """Indexed terms matching any term of ``text`` (OR), weighted 1 for exact, less per edit."""
        weights: dict[str, float] = {}
        for term in name_tokens(text):
            for found, distance in vocabulary.expand(term):
                weights[found] = max(weights.get(found, 0.0), 1.0 / (1 + distance))
        return weights

    def search_files(self, page: Page, query: str | None, file_type: str | None, organization: str | None,
                     organization_id: int | None, dataset_id: int | None) -> dict[str, Any]:
        """``GET /search/files`` (SearchClient.scala:673-729): files of latest published versions;
        ``query`` fuzzy on the name's terms, ``fileType`` fuzzy on the type's terms (``jpg`` finds
        JPEG), both ``fuzziness: AUTO, prefix_length: 2``."""
        check_search_window(page)
        prefix, order, args = "", "f.pk", list[Any]()
        sql = ("SELECT f.* FROM files f JOIN datasets d ON d.pk = f.dataset_pk"
               " WHERE f.searchable = 1 AND d.latest = 1")
        if query is not None:
            terms = self._fuzzy_terms(self.name_terms, query)
            if not terms:
                return page.body("files", [], 0)
            prefix = ("WITH q(token, w) AS (VALUES " + ",".join("(?, ?)" for _ in terms) + "), "
                      "s AS (SELECT t.file_pk AS pk, sum(q.w) AS score FROM file_tokens t"
                      " JOIN q ON q.token = t.token GROUP BY t.file_pk) ")
            args = [v for kv in terms.items() for v in kv]
            sql = sql.replace("FROM files f", "FROM s JOIN files f ON f.pk = s.pk")
            order = "s.score DESC, length(f.path), f.pk"
        conditions, extra = where(("org_match(?, d.organization_name)", organization),
                                  ("d.organization_id = ?", organization_id),
                                  ("f.dataset_id = ?", dataset_id))
        if file_type is not None:
            types = sorted({t for term in words(file_type) for found, _ in self.file_type_vocabulary.expand(term)
                            for t in self.type_terms[found]})
            if not types:
                return page.body("files", [], 0)
            conditions += f" AND f.file_type IN ({','.join('?' * len(types))})"
            extra += types
        return self._search_page(page, "files", prefix + sql + conditions, args + extra, order, search_hit)

    def search_records(self, page: Page, model: str | None, organization: str | None,
                       dataset_id: int | None) -> dict[str, Any]:
        """``GET /search/records``: records of each dataset's latest version (indexed so at load)."""
        conditions, args = where(("r.model = ?", model),
                                 ("org_match(?, r.organization_name)", organization),
                                 ("r.dataset_id = ?", dataset_id))
        sql = "SELECT * FROM records r WHERE 1 = 1" + conditions
        return self._search_page(page, "records", sql, args, "r.pk", lambda r: {
            "datasetId": r["dataset_id"], "version": r["version"], "model": r["model"],
            "properties": json.loads(r["properties"])})

    def _search_page(self, page: Page, key: str, sql: str, args: list[Any], order: str,
                     render: Callable[[sqlite3.Row], dict[str, Any]]) -> dict[str, Any]:
        check_search_window(page)
        total = self.conn.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()[0]
        rows = self.conn.execute(f"{sql} ORDER BY {order} LIMIT ? OFFSET ?", [*args, page.limit, page.offset])
        return page.body(key, [render(r) for r in rows], min(total, SEARCH_TOTAL_CAP))


def _join_path(prefix: str, name: str) -> str:
    """``utils.joinPath``: slashes stripped from both sides, joined by one ``/``."""
    return f"{prefix.strip('/')}/{name}".lstrip("/")
