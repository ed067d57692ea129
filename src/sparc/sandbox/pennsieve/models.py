"""Pennsieve Discover state and queries (no HTTP here): raise :mod:`.errors`, return JSON-ready dicts."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparc.sandbox.http import Page
from sparc.sandbox.pennsieve import errors

SEARCH_TOTAL_CAP = 10_000  # Elasticsearch's index.max_result_window: totalCount and offset + limit
ORDER_BY = ("relevance", "date", "name", "size")
DIRECTIONS = ("asc", "desc")
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (a poor man's analyzer)."""
    return [w.lower() for w in _WORD.findall(text or "")]


def org_match(query: str | None, name: str | None) -> bool:
    """ES-style analyzed ``match`` on an organization name: any query token matches."""
    return not query or bool(set(words(query)) & set(words(name or "")))


def fts_query(text: str, operator: str = "AND", prefix: bool = False) -> str | None:
    """A safe FTS5 query from free text (each token quoted)."""
    tokens = [f'"{w}"' + ("*" if prefix else "") for w in words(text)]
    return f" {operator} ".join(tokens) or None


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
        by, way = (order_by or "relevance").lower(), (direction or "desc").lower()
        if by not in ORDER_BY:
            raise errors.bad_request(f"invalid orderBy: {order_by}; must be one of {', '.join(ORDER_BY)}")
        if way not in DIRECTIONS:
            raise errors.bad_request(f"invalid orderDirection: {direction}; must be one of asc, desc")
        return cls(by, way)


def check_search_window(page: Page) -> None:
    """Elasticsearch refuses ``offset + limit`` beyond ``index.max_result_window``; Discover answers 500."""
    end = page.offset + page.limit
    if end > SEARCH_TOTAL_CAP:
        raise errors.DiscoverError(500, (
            f"Result window is too large, from + size must be less than or equal to: [{SEARCH_TOTAL_CAP}] "
            f"but was [{end}]. See the scroll api for a more efficient way to request large data sets. "
            "This limit can be set by changing the [index.max_result_window] index level setting."))


def file_node(row: sqlite3.Row) -> dict[str, Any]:
    """A ``File`` FileTreeNodeDto."""
    return {"name": row["name"], "path": row["path"], "size": row["size"], "type": "File",
            "fileType": row["file_type"], "uri": row["uri"], "packageType": row["package_type"],
            "icon": row["icon"], "sourcePackageId": row["source_package_id"], "createdAt": row["created_at"],
            "s3Version": row["s3_version"], "sha256": row["sha256"]}


def search_hit(row: sqlite3.Row) -> dict[str, Any]:
    """A ``FileSearchResponse`` (no ``path``)."""
    return {"name": row["name"], "datasetId": row["dataset_id"], "datasetVersion": row["version"],
            "size": row["size"], "fileType": row["file_type"], "packageType": row["package_type"],
            "icon": row["icon"], "uri": row["uri"], "createdAt": row["created_at"],
            "sourcePackageId": row["source_package_id"]}


def relative_path(path: str, dataset_id: int, version: int) -> str:
    """A path as accepted by Discover (relative, leading ``/``, or full ``s3://`` uri) → relative."""
    if path.startswith("s3://"):
        path = path[len("s3://"):].partition("/")[2]
    path = path.strip("/")
    for prefix in (f"{dataset_id}/{version}/", f"{dataset_id}/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


class Discover:
    """The Discover backend over the sandbox database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.create_function("org_match", 2, org_match, deterministic=True)

    # ---- datasets ---------------------------------------------------------------------------
    def _tombstone(self, dataset_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT dto FROM tombstones WHERE id = ?", (dataset_id,)).fetchone()
        return json.loads(row["dto"]) if row else None

    def _version_row(self, dataset_id: int, version: int | None = None) -> sqlite3.Row:
        if (tomb := self._tombstone(dataset_id)) is not None:
            raise errors.gone(tomb)
        if version is None:
            row = self.conn.execute("SELECT * FROM datasets WHERE id = ? AND latest = 1", (dataset_id,)).fetchone()
            if row is None:
                raise errors.not_found(dataset_id)
            return row
        row = self.conn.execute("SELECT * FROM datasets WHERE id = ? AND version = ?",
                                (dataset_id, version)).fetchone()
        if row is None:
            exists = self.conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            raise errors.not_found(version if exists else dataset_id)
        return row

    def dataset(self, dataset_id: int, version: int | None = None) -> dict[str, Any]:
        """The latest (or given) version's PublicDatasetDTO."""
        return json.loads(self._version_row(dataset_id, version)["dto"])

    def versions(self, dataset_id: int) -> list[dict[str, Any]]:
        self._version_row(dataset_id)
        rows = self.conn.execute("SELECT dto FROM datasets WHERE id = ? ORDER BY version", (dataset_id,))
        return [json.loads(r["dto"]) for r in rows]

    def by_doi(self, doi: str) -> dict[str, Any]:
        """The dataset version published under ``doi``."""
        tomb = self.conn.execute("SELECT dto FROM tombstones WHERE lower(doi) = lower(?)", (doi,)).fetchone()
        if tomb:
            raise errors.gone(json.loads(tomb["dto"]))
        row = self.conn.execute("SELECT dto FROM datasets WHERE lower(doi) = lower(?)", (doi,)).fetchone()
        if row is None:
            raise errors.not_found(doi)
        return json.loads(row["dto"])

    def by_dois(self, dois: list[str]) -> dict[str, Any]:
        if not dois:
            raise errors.bad_request("missing DOIs")
        published, unpublished = {}, {}
        for doi in dois:
            try:
                published[doi] = self.by_doi(doi)
            except errors.DiscoverError as exc:
                if exc.status == 410:
                    unpublished[doi] = exc.body
        return {"published": published, "unpublished": unpublished}

    def _latest(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM datasets WHERE latest = 1").fetchall()

    def list_datasets(self, page: Page, sort: Sort, ids: list[str], tags: list[str], embargo: bool | None,
                      dataset_type: str | None) -> dict[str, Any]:
        """``GET /datasets``: the latest version of each dataset (relevance = date here)."""
        try:
            wanted = {int(i) for i in ids}
        except ValueError:
            raise errors.bad_request("ids must be numbers") from None
        rows = [r for r in self._latest() if self._keep(r, tags, embargo)
                and (not wanted or r["id"] in wanted)
                and (dataset_type is None or r["dataset_type"] == dataset_type)]
        return self._dataset_page(page, sort, rows, {})

    def search_datasets(self, page: Page, sort: Sort, query: str | None, organization: str | None,
                        organization_id: int | None, tags: list[str], embargo: bool | None) -> dict[str, Any]:
        """``GET /search/datasets``: FTS5 relevance over name, description, tags, contributors, readme."""
        check_search_window(page)
        scores: dict[int, float] = {}
        match = fts_query(query or "")
        if match:
            scores = {r[0]: r[1] for r in self.conn.execute(
                "SELECT rowid, bm25(datasets_fts, 10.0, 4.0, 6.0, 2.0, 1.0) FROM datasets_fts "
                "WHERE datasets_fts MATCH ?", (match,))}
        rows = [r for r in self._latest() if self._keep(r, tags, embargo)
                and (not match or r["pk"] in scores)
                and org_match(organization, r["organization_name"])
                and (organization_id is None or r["organization_id"] == organization_id)]
        result = self._dataset_page(page, sort, rows, scores)
        result["totalCount"] = min(result["totalCount"], SEARCH_TOTAL_CAP)
        return result

    @staticmethod
    def _keep(row: sqlite3.Row, tags: list[str], embargo: bool | None) -> bool:
        have = set(json.loads(row["tags"]))
        return (all(t.lower() in have for t in tags)
                and (embargo is None or bool(row["embargo"]) == embargo))

    @staticmethod
    def _dataset_page(page: Page, sort: Sort, rows: list[sqlite3.Row],
                      scores: dict[int, float]) -> dict[str, Any]:
        keys: dict[str, Callable[[sqlite3.Row], Any]] = {
            "date": lambda r: r["created_at"], "name": lambda r: r["name"].lower(),
            "size": lambda r: r["size"],
            # bm25: lower is better, so "desc" relevance sorts ascending by bm25
            "relevance": (lambda r: -scores.get(r["pk"], 0.0)) if scores else (lambda r: r["created_at"]),
        }
        rows = sorted(rows, key=lambda r: r["id"])
        rows.sort(key=keys[sort.by], reverse=sort.direction == "desc")
        return page.body("datasets", [json.loads(r["dto"]) for r in page.slice(rows)], len(rows))

    def tags(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for row in self._latest():
            for tag in json.loads(row["tags"]):
                counts[tag] = counts.get(tag, 0) + 1
        return [{"tag": t, "count": n} for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    # ---- files ------------------------------------------------------------------------------
    def _files_row(self, dataset_id: int, version: int) -> sqlite3.Row:
        """The version row, refusing embargoed data (no token in the sandbox)."""
        row = self._version_row(dataset_id, version)
        if row["embargo"]:
            raise errors.embargoed()
        return row

    def browse(self, dataset_id: int, version: int, path: str | None, page: Page) -> dict[str, Any]:
        """One directory level: directories first, then files, each by name."""
        pk = self._files_row(dataset_id, version)["pk"]
        parent = (path or "").strip("/")
        total = self.conn.execute(
            "SELECT (SELECT count(*) FROM dirs WHERE dataset_pk = ?1 AND parent = ?2)"
            " + (SELECT count(*) FROM files WHERE dataset_pk = ?1 AND parent = ?2)", (pk, parent)).fetchone()[0]
        rows = self.conn.execute(
            "SELECT 0 AS kind, name, path, size, NULL AS pk FROM dirs WHERE dataset_pk = ?1 AND parent = ?2"
            " UNION ALL SELECT 1, name, path, size, pk FROM files WHERE dataset_pk = ?1 AND parent = ?2"
            " ORDER BY kind, name LIMIT ?3 OFFSET ?4", (pk, parent, page.limit, page.offset)).fetchall()
        file_rows = {r["pk"]: r for r in self.conn.execute(
            f"SELECT * FROM files WHERE pk IN ({','.join('?' * len(rows))})", [r["pk"] for r in rows])}
        items = [file_node(file_rows[r["pk"]]) if r["kind"] else
                 {"name": r["name"], "path": r["path"], "size": r["size"], "type": "Directory"} for r in rows]
        return page.body("files", items, total)

    def file(self, dataset_id: int, version: int, path: str) -> dict[str, Any]:
        pk = self._files_row(dataset_id, version)["pk"]
        row = self.conn.execute("SELECT * FROM files WHERE dataset_pk = ? AND path = ?",
                                (pk, relative_path(path, dataset_id, version))).fetchone()
        if row is None:
            raise errors.not_found(path)
        return file_node(row)

    def metadata(self, dataset_id: int, version: int) -> bytes:
        """The raw ``manifest.json`` of the version."""
        pk = self._files_row(dataset_id, version)["pk"]
        row = self.conn.execute("SELECT content FROM files WHERE dataset_pk = ? AND path = 'manifest.json'",
                                (pk,)).fetchone()
        return bytes(row["content"])

    def select_files(self, dataset_id: int, version: int, paths: list[str],
                     root_path: str | None = None) -> list[tuple[list[str], sqlite3.Row]]:
        """Files matched by ``paths`` (a directory matches everything below), with their directory
        segments relative to ``root_path``; ordered by path, without duplicates."""
        pk = self._files_row(dataset_id, version)["pk"]
        root = (root_path or "").strip("/")
        wanted = [p.strip("/") for p in paths]
        if root and not all(p == root or p.startswith(root + "/") for p in wanted):
            raise errors.bad_request("if root path is specified, all paths must begin with root path")
        found: dict[str, sqlite3.Row] = {}
        for path in wanted:
            sql, args = "SELECT * FROM files WHERE dataset_pk = ?", [pk]
            if path:
                sql += " AND (path = ? OR substr(path, 1, ?) = ?)"
                args += [path, len(path) + 1, path + "/"]
            for row in self.conn.execute(sql, args):
                found[row["path"]] = row
        skip = len(root.split("/")) if root else 0
        return [(path.split("/")[skip:-1], found[path]) for path in sorted(found)]

    def download_manifest(self, dataset_id: int, version: int, paths: list[str], root_path: str | None,
                          size_cap: int, url_for: Callable[[sqlite3.Row], str]) -> dict[str, Any]:
        """``DownloadResponse`` with presigned-style URLs; 403 over ``size_cap`` bytes."""
        selected = self.select_files(dataset_id, version, paths, root_path)
        size = sum(row["size"] for _, row in selected)
        if size > size_cap:
            raise errors.too_large()
        return {"header": {"count": len(selected), "size": size},
                "data": [{"fileName": row["name"], "path": dirs, "url": url_for(row), "size": row["size"],
                          "sha256": row["sha256"]} for dirs, row in selected]}

    # ---- search -----------------------------------------------------------------------------
    def search_files(self, page: Page, query: str | None, file_type: str | None, organization: str | None,
                     organization_id: int | None, dataset_id: int | None) -> dict[str, Any]:
        """``GET /search/files``: published, non-embargoed files of latest versions."""
        sql = ("SELECT f.* FROM files f JOIN datasets d ON d.pk = f.dataset_pk"
               " WHERE f.searchable = 1 AND d.latest = 1")
        order = "f.pk"
        match = fts_query(query or "", "OR", prefix=True)
        if match:
            sql = sql.replace("FROM files f", "FROM files_fts JOIN files f ON f.pk = files_fts.rowid")
            order = "bm25(files_fts, 10.0, 1.0), f.pk"
        conditions, args = where(
            ("files_fts MATCH ?", match or None),
            ("(lower(f.file_type) = lower(?) OR lower(f.file_type) LIKE lower(?) || '%')",
             file_type or None),
            ("org_match(?, d.organization_name)", organization or None),
            ("d.organization_id = ?", organization_id),
            ("f.dataset_id = ?", dataset_id))
        sql += conditions
        return self._search_page(page, "files", sql, args, order, search_hit)

    def search_records(self, page: Page, model: str | None, organization: str | None,
                       dataset_id: int | None) -> dict[str, Any]:
        conditions, args = where(("r.model = ?", model or None),
                                 ("org_match(?, r.organization_name)", organization or None),
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
