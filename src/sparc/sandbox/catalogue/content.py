"""Bytes of generated files: a pure function of (file seed, offset), cheap to serve at any range.

A 1 MiB pseudo-random block (fixed seed) is repeated; the first 16 bytes of block ``i`` of a file are
replaced by ``(file_seed, i)`` so that blocks (and files) differ. A range only costs its own bytes:
``b"".join(iter_generated(seed, 500, 510))`` copies 10 bytes, not a 1 MiB block.

The build script hashes every file once (:func:`digests`): sha256, MD5 and, for objects stored in
parts, each part's MD5, in a single pass over the bytes.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

BLOCK_SIZE = 1 << 20
BLOCK_SEED = 0x5BA4C
_STAMP = struct.Struct("<QQ")
_SEED_MASK = 0xFFFFFFFFFFFFFFFF


@lru_cache(maxsize=1)
def _block() -> memoryview:
    return memoryview(random.Random(BLOCK_SEED).randbytes(BLOCK_SIZE))


def _block_slice(seed: int, index: int, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of block ``index`` of file ``seed`` (one copy of just those bytes)."""
    if start >= _STAMP.size:
        return bytes(_block()[start:stop])
    stamp = _STAMP.pack(seed & _SEED_MASK, index)
    return b"".join((stamp[start:stop], _block()[_STAMP.size:max(stop, _STAMP.size)]))


def generated_block(seed: int, index: int) -> bytes:
    """Block ``index`` (full 1 MiB) of the file with ``seed``."""
    return _block_slice(seed, index, 0, BLOCK_SIZE)


def iter_generated(seed: int, start: int, end: int) -> Iterator[bytes]:
    """Yield bytes ``[start, end)`` of the generated file ``seed`` in chunks of at most 1 MiB.

    >>> len(b"".join(iter_generated(1, 10, 20)))
    10
    """
    pos = start
    while pos < end:
        index, within = divmod(pos, BLOCK_SIZE)
        stop = min(BLOCK_SIZE, within + end - pos)
        yield _block_slice(seed, index, within, stop)
        pos += stop - within


def iter_generated_views(seed: int, start: int, end: int) -> Iterator[bytes | memoryview]:
    """:func:`iter_generated` for sending, without copying: read-only views of the shared
    block, each block's 16-byte stamp a small chunk of its own (a socket copies the bytes
    anyway; the copy of every 1 MiB block cost ~17 % of the sandbox's CPU on a 1 GiB file).

    >>> b"".join(iter_generated_views(1, 5, 3 << 20)) == b"".join(iter_generated(1, 5, 3 << 20))
    True
    """
    block, pos = _block(), start
    while pos < end:
        index, within = divmod(pos, BLOCK_SIZE)
        stop = min(BLOCK_SIZE, within + end - pos)
        if within < _STAMP.size:
            yield _STAMP.pack(seed & _SEED_MASK, index)[within:min(stop, _STAMP.size)]
        if stop > max(within, _STAMP.size):
            yield block[max(within, _STAMP.size):stop]
        pos += stop - within


def generated_span(seed: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the generated file ``seed``, within one block (``start`` and
    ``end - 1`` in the same block): :func:`generated_range` without its generator and list.

    >>> generated_span(1, 10, 20) == generated_range(1, 10, 20)
    True
    """
    index, within = divmod(start, BLOCK_SIZE)
    return _block_slice(seed, index, within, within + end - start)


def generated_range(seed: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the generated file ``seed`` as one ``bytes`` (only those bytes made).

    >>> generated_range(1, 10, 20) == b"".join(iter_generated(1, 10, 20))
    True
    """
    chunks = list(iter_generated(seed, start, end))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def iter_stored(data: bytes, start: int, end: int, chunk: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Yield bytes ``[start, end)`` of stored content in chunks."""
    for pos in range(start, end, chunk):
        yield data[pos:min(end, pos + chunk)]


@dataclass(frozen=True)
class Digests:
    """What the build records about an object's bytes.

    ``part_md5s`` holds the binary MD5 of each part when the object is stored in parts, else is empty.
    """

    sha256: str
    md5: str
    part_md5s: tuple[bytes, ...] = ()

    def multipart_etag(self) -> str:
        """S3's ETag of a multipart object (unquoted): MD5 of the concatenated part MD5s, ``-<parts>``.

        >>> Digests("", "", (bytes(16), bytes(16))).multipart_etag()
        '70bc8f4b72a86921468bf8e8441dce51-2'
        """
        return f"{hashlib.md5(b''.join(self.part_md5s)).hexdigest()}-{len(self.part_md5s)}"


def digests(chunks: Iterable[bytes], part_size: int | None = None) -> Digests:
    """sha256, MD5 and (with ``part_size``) per-part MD5s of the bytes in ``chunks``, in one pass.

    >>> digests([b"ab", b"c"], part_size=2).part_md5s == (hashlib.md5(b"ab").digest(), hashlib.md5(b"c").digest())
    True
    """
    sha, md5 = hashlib.sha256(), hashlib.md5()
    parts: list[bytes] = []
    part, filled = hashlib.md5(), 0
    for chunk in chunks:
        sha.update(chunk)
        md5.update(chunk)
        if part_size is None:
            continue
        view = memoryview(chunk)
        while view:
            take = min(len(view), part_size - filled)
            part.update(view[:take])
            filled += take
            view = view[take:]
            if filled == part_size:
                parts.append(part.digest())
                part, filled = hashlib.md5(), 0
    if filled:
        parts.append(part.digest())
    return Digests(sha.hexdigest(), md5.hexdigest(), tuple(parts))


def generated_digests(seed: int, size: int, part_size: int | None = None) -> Digests:
    """:func:`digests` of a generated file (slow for big files; done by the build script)."""
    return digests(iter_generated(seed, 0, size), part_size)


def generated_sha256(seed: int, size: int) -> str:
    """The sha256 (hex) of a generated file."""
    return generated_digests(seed, size).sha256
