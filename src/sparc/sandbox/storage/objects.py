"""Stored objects (file bytes) by S3 location or dataset path, and their content."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from sparc.sandbox.catalogue.content import generated_range, iter_generated, iter_stored

#: What serving an object needs (its bytes and S3 headers): a third of the row, read faster.
OBJECT_COLUMNS = "bucket, key, size, content, seed, etag, sse, last_modified, s3_version, version"


def find_object(conn: sqlite3.Connection, bucket: str, key: str,
                version_id: str | None = None) -> sqlite3.Row | None:
    """The file row stored at ``bucket``/``key`` (optionally a given S3 version), with the
    :data:`OBJECT_COLUMNS`."""
    sql = f"SELECT {OBJECT_COLUMNS} FROM files WHERE bucket = ? AND key = ?"
    args: list[object] = [bucket, key]
    if version_id:
        sql += " AND s3_version = ?"
        args.append(version_id)
    return conn.execute(sql + " ORDER BY version DESC LIMIT 1", args).fetchone()


def object_chunks(row: sqlite3.Row, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of a file row, in chunks of at most 1 MiB."""
    stop = row["size"] if end is None else end
    if row["content"] is not None:
        return iter_stored(bytes(row["content"]), start, stop)
    return iter_generated(row["seed"], start, stop)


def object_bytes(row: sqlite3.Row, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a file row in one piece (for small spans: only they are built).

    Example: ``object_bytes(row, 1 << 20, (1 << 20) + 4096)`` copies 4 KiB, not a 1 MiB block.
    """
    if row["content"] is not None:
        return bytes(row["content"][start:end])
    return generated_range(row["seed"], start, end)
