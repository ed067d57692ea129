"""Stored objects (file bytes) by S3 location or dataset path, and their content."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sparc.sandbox.catalogue.content import (
    BLOCK_SIZE,
    generated_range,
    generated_span,
    iter_generated,
    iter_generated_views,
    iter_stored,
)

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


T = TypeVar("T")


class ObjectCache(Generic[T]):
    """:func:`find_object` with a memory: each ``(bucket, key, versionId)`` is looked up once.

    Sound because the ``files`` table is only written while the database is built
    (``storage/db.py``); later nothing inserts, updates or deletes rows. ``prepare`` turns a found
    row into what the caller keeps (a row plus its ready-made headers, say); misses are remembered
    too (``None``). Bounded: at most ``max_entries`` lookups and ``max_content`` bytes of inline
    ``content`` blobs are held, the oldest dropped first; a row whose blob alone exceeds a quarter of
    ``max_content`` is never kept (it is read again on each request).

    Example: ``ObjectCache(conn, lambda row: row).get("bucket", "key", None)``.
    """

    def __init__(self, conn: sqlite3.Connection, prepare: Callable[[sqlite3.Row], T],
                 max_entries: int = 4096, max_content: int = 32 << 20) -> None:
        self.conn = conn
        self.prepare = prepare
        self.max_entries, self.max_content = max_entries, max_content
        self.content_bytes = 0  # inline content held now
        self._entries: dict[tuple[str, str, str | None], tuple[T | None, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, bucket: str, key: str, version_id: str | None = None) -> T | None:
        """The prepared object at ``bucket``/``key`` (that S3 version if given), ``None`` if absent."""
        where = (bucket, key, version_id or None)
        entry = self._entries.get(where)
        if entry is not None:
            return entry[0]
        row = find_object(self.conn, bucket, key, version_id)
        value = None if row is None else self.prepare(row)
        size = 0 if row is None or row["content"] is None else len(row["content"])
        if size <= self.max_content // 4:
            entries = self._entries
            entries[where] = (value, size)
            self.content_bytes += size
            while len(entries) > self.max_entries or self.content_bytes > self.max_content:
                _, dropped = entries.pop(next(iter(entries)))
                self.content_bytes -= dropped
        return value


def object_chunks(row: sqlite3.Row, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of a file row, in chunks of at most 1 MiB."""
    stop = row["size"] if end is None else end
    if row["content"] is not None:
        return iter_stored(bytes(row["content"]), start, stop)
    return iter_generated(row["seed"], start, stop)


def object_views(row: sqlite3.Row, start: int, end: int) -> Iterator[bytes | memoryview]:
    """:func:`object_chunks` for sending a response: views, not copies (see
    :func:`~sparc.sandbox.catalogue.content.iter_generated_views`)."""
    if row["content"] is not None:
        data = memoryview(bytes(row["content"]))
        for pos in range(start, end, BLOCK_SIZE):
            yield data[pos:min(end, pos + BLOCK_SIZE)]
        return
    yield from iter_generated_views(row["seed"], start, end)


def span_bytes(content: bytes | None, seed: int | None, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of an object in one piece, from its row's ``content`` (stored) or
    ``seed`` (generated) column: only those bytes are built.

    Example: ``span_bytes(None, 7, 1 << 20, (1 << 20) + 4096)`` makes 4 KiB, not a 1 MiB block.
    """
    if content is not None:
        return bytes(content[start:end])
    if start >= end:
        return b""
    if start // BLOCK_SIZE == (end - 1) // BLOCK_SIZE:  # within one block: one slice, no list
        return generated_span(seed, start, end)  # type: ignore[arg-type]
    return generated_range(seed, start, end)  # type: ignore[arg-type]
