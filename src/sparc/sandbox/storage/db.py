"""The sandbox's SQLite state: built from the shipped catalogue at first start, reused afterwards."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

from sparc.sandbox.catalogue import CATALOGUE_PATH

DB_NAME = "sandbox.sqlite3"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE datasets (
    pk INTEGER PRIMARY KEY, id INTEGER NOT NULL, version INTEGER NOT NULL, latest INTEGER NOT NULL,
    status TEXT NOT NULL, embargo INTEGER NOT NULL, organization_id INTEGER, organization_name TEXT,
    name TEXT NOT NULL, created_at TEXT NOT NULL, size INTEGER NOT NULL, dataset_type TEXT,
    doi TEXT, tags TEXT NOT NULL, dto TEXT NOT NULL, UNIQUE (id, version));
CREATE TABLE tombstones (id INTEGER NOT NULL, version INTEGER NOT NULL, doi TEXT, dto TEXT NOT NULL,
    PRIMARY KEY (id, version));
CREATE INDEX datasets_doi ON datasets (doi);
CREATE TABLE downloads (dataset_id INTEGER NOT NULL, version INTEGER NOT NULL, origin TEXT,
    downloaded_at TEXT NOT NULL);
CREATE INDEX downloads_at ON downloads (downloaded_at);
CREATE TABLE files (
    pk INTEGER PRIMARY KEY, dataset_pk INTEGER NOT NULL, dataset_id INTEGER NOT NULL,
    version INTEGER NOT NULL, path TEXT NOT NULL, parent TEXT NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, file_type TEXT NOT NULL, package_type TEXT NOT NULL, icon TEXT NOT NULL,
    uri TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL, source_package_id TEXT, created_at TEXT,
    s3_version TEXT, sha256 TEXT, content BLOB, seed INTEGER, searchable INTEGER NOT NULL,
    md5 TEXT, etag TEXT, sse TEXT, part_size INTEGER, last_modified TEXT);
CREATE UNIQUE INDEX files_path ON files (dataset_pk, path);
CREATE INDEX files_parent ON files (dataset_pk, parent, name);
CREATE INDEX files_package ON files (source_package_id);
CREATE TABLE file_tokens (token TEXT NOT NULL, file_pk INTEGER NOT NULL,
    PRIMARY KEY (token, file_pk)) WITHOUT ROWID;
CREATE TABLE dirs (dataset_pk INTEGER NOT NULL, path TEXT NOT NULL, parent TEXT NOT NULL,
    name TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (dataset_pk, path));
CREATE INDEX dirs_parent ON dirs (dataset_pk, parent, name);
CREATE TABLE records (pk INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, version INTEGER NOT NULL,
    model TEXT NOT NULL, organization_name TEXT, properties TEXT NOT NULL);
CREATE INDEX records_model ON records (model);
CREATE VIRTUAL TABLE datasets_fts USING fts5(name, description, tags, contributors, readme,
    tokenize = 'porter unicode61');
CREATE VIRTUAL TABLE files_fts USING fts5(name, path, tokenize = 'unicode61');
"""


# An object by S3 location, newest version first, without a sort (asset GETs, files?path=).
# Created on reuse too: databases built before it existed gain it in milliseconds.
OBJECT_INDEX = "CREATE INDEX IF NOT EXISTS files_object ON files (bucket, key, version)"


_LETTERS = re.compile(r"[^\W\d_]+")
_STANDARD = re.compile(r"\w+(?:[.']\w+)*")


def name_tokens(text: str) -> set[str]:
    """Lower-cased terms of a file name as Discover's ES file index holds them: the standard
    analyzer's words (``workflow.proj``) and the ``simple`` analyzer's letter runs (``workflow``,
    ``proj``), see discover-service SearchClient.scala:98-107. Example: ``name_tokens("a-1.csv")``
    is ``{"a", "1.csv", "csv"}``."""
    text = text.lower()
    return set(_STANDARD.findall(text)) | set(_LETTERS.findall(text))


def catalogue_version(path: Path = CATALOGUE_PATH) -> str:
    """The catalogue's identity: the sha256 of its compressed bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_database(data_dir: Path, catalogue: Path = CATALOGUE_PATH) -> sqlite3.Connection:
    """Open ``data_dir/sandbox.sqlite3``, (re)building it when absent, corrupt or from another catalogue."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DB_NAME
    version = catalogue_version(catalogue)
    if path.exists():
        conn = _reuse(path, version)
        if conn is not None:
            return conn
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
    conn = _connect(path)
    with conn:
        conn.executescript(SCHEMA)
        load_catalogue(conn, json.loads(gzip.decompress(catalogue.read_bytes())))
        conn.execute(OBJECT_INDEX)
        conn.execute("INSERT INTO meta VALUES ('catalogue', ?)", (version,))
    return conn


def _reuse(path: Path, version: str) -> sqlite3.Connection | None:
    """The existing database if it is sound and built from catalogue ``version``, else ``None``.

    Another catalogue is replaced silently; a corrupt file is reported on stderr.
    """
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect(path)
        row = conn.execute("SELECT value FROM meta WHERE key = 'catalogue'").fetchone()
        if row is not None and row[0] == version:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check == "ok":
                try:
                    conn.execute(OBJECT_INDEX)
                except sqlite3.OperationalError:  # locked by another server: it only speeds lookups
                    pass
                return conn
            raise sqlite3.DatabaseError(check)
    except sqlite3.DatabaseError as exc:
        print(f"sandbox: {path} is corrupt ({exc}); rebuilding it from the catalogue",
              file=sys.stderr, flush=True)
    if conn is not None:
        conn.close()
    return None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def load_catalogue(conn: sqlite3.Connection, catalogue: dict[str, Any]) -> None:
    """Insert the catalogue's datasets, files, directory sizes, records and search indexes."""
    conn.execute("BEGIN")
    latest: dict[int, int] = {}  # the latest published (or embargoed) version of each dataset
    for entry in catalogue["datasets"]:
        dto = entry["dto"]
        if dto["status"] in ("PUBLISH_SUCCEEDED", "EMBARGO_SUCCEEDED"):
            latest[dto["id"]] = max(latest.get(dto["id"], 0), dto["version"])
    organizations: dict[int, str] = {}
    for entry in catalogue["datasets"]:
        dto = entry["dto"]
        organizations[dto["id"]] = dto["organizationName"]
        cur = conn.execute(
            "INSERT INTO datasets (id, version, latest, status, embargo, organization_id, organization_name,"
            " name, created_at, size, dataset_type, doi, tags, dto) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (dto["id"], dto["version"], int(latest.get(dto["id"]) == dto["version"]), dto["status"],
             int(bool(dto.get("embargo"))), dto.get("organizationId"), dto["organizationName"], dto["name"],
             dto["createdAt"], dto["size"], dto.get("datasetType"), dto["doi"],
             json.dumps([t.lower() for t in dto["tags"]]), json.dumps(dto)))
        pk = cur.lastrowid
        assert pk is not None
        contributors = " ".join(f"{c['firstName']} {c['lastName']}" for c in dto["contributors"])
        conn.execute("INSERT INTO datasets_fts (rowid, name, description, tags, contributors, readme) "
                     "VALUES (?,?,?,?,?,?)", (pk, dto["name"], dto["description"], " ".join(dto["tags"]),
                                              contributors, entry.get("readme", "")))
        _load_files(conn, pk, dto, entry["files"])
    for tomb in catalogue["tombstones"]:
        conn.execute("INSERT INTO tombstones VALUES (?,?,?,?)",  # one per unpublished version
                     (tomb["id"], tomb["version"], tomb["doi"], json.dumps(tomb)))
    conn.executemany(
        "INSERT INTO records (dataset_id, version, model, organization_name, properties) VALUES (?,?,?,?,?)",
        [(r["datasetId"], r["version"], r["model"], organizations.get(r["datasetId"]),
          json.dumps(r["properties"])) for r in catalogue["records"]
         if latest.get(r["datasetId"]) == r["version"]])  # indexed for the latest version only
    conn.executemany("INSERT INTO downloads VALUES (?,?,?,?)",
                     [(d["datasetId"], d["version"], d["origin"], d["downloadedAt"])
                      for d in catalogue.get("downloads", [])])
    conn.execute("COMMIT")


def _load_files(conn: sqlite3.Connection, pk: int, dto: dict[str, Any], files: list[dict[str, Any]]) -> None:
    bucket, _, prefix = dto["uri"][len("s3://"):].partition("/")
    searchable = int(dto["status"] == "PUBLISH_SUCCEEDED" and not dto.get("embargo"))
    dirs: dict[str, int] = {}
    rows = []
    for f in files:
        parent, _, name = f["path"].rpartition("/")
        key = prefix + f["path"]
        content = f.get("content")
        rows.append((pk, dto["id"], dto["version"], f["path"], parent, name, f["size"], f["fileType"],
                     f["packageType"], f["icon"], f"s3://{bucket}/{key}", bucket, key,
                     f.get("sourcePackageId"), f.get("createdAt"), f.get("s3Version"), f.get("sha256"),
                     content.encode() if content is not None else None, f.get("seed"), searchable,
                     f.get("md5"), f.get("etag"), f.get("sse"), f.get("partSize"), f.get("lastModified")))
        while parent:
            dirs[parent] = dirs.get(parent, 0) + f["size"]
            parent = parent.rpartition("/")[0]
    conn.executemany(
        "INSERT INTO files (dataset_pk, dataset_id, version, path, parent, name, size, file_type, package_type,"
        " icon, uri, bucket, key, source_package_id, created_at, s3_version, sha256, content, seed,"
        " searchable, md5, etag, sse, part_size, last_modified)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO dirs VALUES (?,?,?,?,?)",
                     [(pk, d, d.rpartition("/")[0], d.rpartition("/")[2], s) for d, s in dirs.items()])
    if searchable:
        conn.execute("INSERT INTO files_fts (rowid, name, path) SELECT pk, name, path FROM files "
                     "WHERE dataset_pk = ?", (pk,))
        conn.executemany("INSERT OR IGNORE INTO file_tokens VALUES (?, ?)",
                         [(token, row[0]) for row in conn.execute(
                             "SELECT pk, name FROM files WHERE dataset_pk = ?", (pk,))
                          for token in name_tokens(row[1])])
