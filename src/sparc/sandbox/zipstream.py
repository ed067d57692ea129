"""A streaming writer of STORED (uncompressed) ZIP archives: constant memory, ZIP64 when needed."""

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


def stored_zip(entries: Iterable[ZipEntry]) -> Iterator[bytes]:
    """Yield the bytes of a stored ZIP of ``entries``."""
    central: list[bytes] = []
    offset = 0
    count = 0
    for entry in entries:
        name = entry.name.encode()
        zip64 = entry.size >= ZIP32_LIMIT
        extra = struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b""
        sizes = ZIP32_LIMIT if zip64 else 0
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, FLAGS, 0, DOS_TIME, DOS_DATE,
                             0, sizes, sizes, len(name), len(extra)) + name + extra
        yield header
        crc, written = 0, 0
        for chunk in entry.chunks():
            crc = zlib.crc32(chunk, crc)
            written += len(chunk)
            yield chunk
        if written != entry.size:
            raise RuntimeError(f"{entry.name}: wrote {written} bytes, expected {entry.size}")
        yield (struct.pack("<IIQQ", 0x08074B50, crc, written, written) if zip64
               else struct.pack("<IIII", 0x08074B50, crc, written, written))
        big_offset = offset >= ZIP32_LIMIT
        cd_extra = b""
        if zip64 or big_offset:
            fields = ([written, written] if zip64 else []) + ([offset] if big_offset else [])
            cd_extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields)
        central.append(struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if cd_extra else 20, FLAGS, 0, DOS_TIME, DOS_DATE, crc,
            ZIP32_LIMIT if zip64 else written, ZIP32_LIMIT if zip64 else written, len(name), len(cd_extra),
            0, 0, 0, 0, ZIP32_LIMIT if big_offset else offset) + name + cd_extra)
        offset += len(header) + written + (24 if zip64 else 16)
        count += 1
    cd_start = offset
    cd = b"".join(central)
    yield cd
    cd_end = cd_start + len(cd)
    if count >= 0xFFFF or cd_start >= ZIP32_LIMIT or len(cd) >= ZIP32_LIMIT:
        yield struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(cd), cd_start)
        yield struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1)
        yield struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, ZIP32_LIMIT, ZIP32_LIMIT, 0)
    else:
        yield struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(cd), cd_start, 0)
