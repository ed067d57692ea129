"""Bytes of generated files: a pure function of (file seed, offset), cheap to serve at any range.

A 1 MiB pseudo-random block (fixed seed) is repeated; the first 16 bytes of block ``i`` of a file are
replaced by ``(file_seed, i)`` so that blocks (and files) differ.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator
from functools import lru_cache

BLOCK_SIZE = 1 << 20
BLOCK_SEED = 0x5BA4C
_STAMP = struct.Struct("<QQ")


@lru_cache(maxsize=1)
def _block() -> bytes:
    return random.Random(BLOCK_SEED).randbytes(BLOCK_SIZE)


def generated_block(seed: int, index: int) -> bytes:
    """Block ``index`` (full 1 MiB) of the file with ``seed``."""
    return _STAMP.pack(seed & 0xFFFFFFFFFFFFFFFF, index) + _block()[_STAMP.size:]


def iter_generated(seed: int, start: int, end: int) -> Iterator[bytes]:
    """Yield bytes ``[start, end)`` of the generated file ``seed`` in chunks of at most 1 MiB."""
    pos = start
    while pos < end:
        index, within = divmod(pos, BLOCK_SIZE)
        stop = min(BLOCK_SIZE, within + end - pos)
        block = generated_block(seed, index)
        chunk = block if within == 0 and stop == BLOCK_SIZE else block[within:stop]
        yield chunk
        pos += len(chunk)


def iter_stored(data: bytes, start: int, end: int, chunk: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Yield bytes ``[start, end)`` of stored content in chunks."""
    for pos in range(start, end, chunk):
        yield data[pos:min(end, pos + chunk)]


def generated_sha256(seed: int, size: int) -> str:
    """The sha256 (hex) of a generated file (slow for big files; done by the build script)."""
    digest = hashlib.sha256()
    for chunk in iter_generated(seed, 0, size):
        digest.update(chunk)
    return digest.hexdigest()
