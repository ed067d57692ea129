"""A streaming ZIP writer, STORED (zipit's ``archiver({store: true})``) or DEFLATED (Java's
``ZipOutputStream`` default, used by Discover's whole-version download): constant memory, data
descriptors, ZIP64 when needed.

:class:`ZipWriter` is push-style (feed it entries and chunks, it returns the bytes to send), so a
synchronous generator (:func:`zip_stream`) and zipit's asynchronous fetch loop share one writer.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

ZIP32_LIMIT = 0xFFFFFFFF
DOS_TIME, DOS_DATE = 0, (2024 - 1980) << 9 | 1 << 5 | 1  # 2024-01-01 00:00
FLAGS = 0x0808  # data descriptor follows, UTF-8 names


@dataclass
class ZipEntry:
    """A member: its archive name, size (known in advance) and a chunk source."""

    name: str
    size: int
    chunks: Callable[[], Iterable[bytes]]


class ZipWriter:
    """Builds a ZIP as a byte stream: ``start`` → ``write``… → ``finish`` per entry, then ``close``.

    Example::

        w = ZipWriter(compress=True)
        out = [w.start("a.txt", 2), w.write(b"hi"), w.finish(), w.close()]
    """

    def __init__(self, compress: bool = False) -> None:
        self.compress = compress
        self.central: list[bytes] = []
        self.offset = 0  # bytes emitted so far
        self._entry: tuple[bytes, int, bool] | None = None  # name, header offset, zip64
        self._crc = self._plain = self._written = 0
        self._engine: zlib._Compress | None = None

    def _emit(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def start(self, name: str, size: int) -> bytes:
        """The local header of an entry of ``size`` bytes (the expected uncompressed size)."""
        encoded = name.encode()
        zip64 = size >= ZIP32_LIMIT - 2**20  # deflate may grow incompressible data a little
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        sizes = ZIP32_LIMIT if zip64 else 0
        self._entry = (encoded, self.offset, zip64)
        self._crc = self._plain = self._written = 0
        # level 0: DEFLATE "stored" blocks, method 8 as Java writes, at memcpy speed (level 1 is 30 MB/s)
        self._engine = zlib.compressobj(0, zlib.DEFLATED, -15) if self.compress else None
        return self._emit(struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, FLAGS, 8 if self.compress else 0, DOS_TIME,
            DOS_DATE, 0, sizes, sizes, len(encoded), len(extra)) + encoded + extra)

    def write(self, chunk: bytes) -> bytes:
        """The bytes to send for ``chunk`` of the current entry (deflated: maybe none yet)."""
        self._crc = zlib.crc32(chunk, self._crc)
        self._plain += len(chunk)
        out = self._engine.compress(chunk) if self._engine else chunk
        self._written += len(out)
        return self._emit(out)

    def finish(self) -> bytes:
        """The rest of the current entry (deflate's tail) and its data descriptor."""
        assert self._entry is not None
        name, header_offset, zip64 = self._entry
        tail = self._engine.flush() if self._engine else b""
        self._written += len(tail)
        crc, plain, written = self._crc, self._plain, self._written
        descriptor = (struct.pack("<IIQQ", 0x08074B50, crc, written, plain) if zip64
                      else struct.pack("<IIII", 0x08074B50, crc, written, plain))
        big_offset = header_offset >= ZIP32_LIMIT
        cd_extra = b""
        if zip64 or big_offset:
            fields = ([plain, written] if zip64 else []) + ([header_offset] if big_offset else [])
            cd_extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields)
        self.central.append(struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if cd_extra else 20, FLAGS, 8 if self.compress else 0,
            DOS_TIME, DOS_DATE, crc, ZIP32_LIMIT if zip64 else written, ZIP32_LIMIT if zip64 else plain,
            len(name), len(cd_extra), 0, 0, 0, 0, ZIP32_LIMIT if big_offset else header_offset)
            + name + cd_extra)
        self._entry = None
        return self._emit(tail + descriptor)

    @property
    def entry_size(self) -> int:
        """Uncompressed bytes written to the current entry so far."""
        return self._plain

    def close(self) -> bytes:
        """The central directory and end records."""
        count, cd_start = len(self.central), self.offset
        cd = b"".join(self.central)
        cd_end = cd_start + len(cd)
        out = cd
        if count >= 0xFFFF or cd_start >= ZIP32_LIMIT or len(cd) >= ZIP32_LIMIT:
            out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(cd), cd_start)
            out += struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1)
            out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, ZIP32_LIMIT, ZIP32_LIMIT, 0)
        else:
            out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(cd), cd_start, 0)
        return self._emit(out)


def zip_stream(entries: Iterable[ZipEntry], compress: bool = False) -> Iterator[bytes]:
    """Yield the bytes of a ZIP of ``entries``, stored or deflated.

    Example: ``b"".join(zip_stream([ZipEntry("a.txt", 2, lambda: [b"hi"])], compress=True))``.
    """
    writer = ZipWriter(compress)
    for entry in entries:
        yield writer.start(entry.name, entry.size)
        for chunk in entry.chunks():
            out = writer.write(chunk)
            if out:
                yield out
        if writer.entry_size != entry.size:
            raise RuntimeError(f"{entry.name}: wrote {writer.entry_size} bytes, expected {entry.size}")
        yield writer.finish()
    yield writer.close()


def stored_zip(entries: Iterable[ZipEntry]) -> Iterator[bytes]:
    """Yield the bytes of a stored ZIP of ``entries``."""
    return zip_stream(entries)
