"""The MD5 of each part of a file's bytes, read back from the file: a multipart ETag's parts.

An S3 multipart ETag is the MD5 of the parts' MD5s. MD5 is a chain of dependent steps, about
0.6-0.8 GB/s per core however it is written; the parts are independent, so this module hashes
eight of them at once, one per 32-bit lane of AVX2 instructions (``_md5lanes``, a small C
module built with the package when a compiler is there): about 2.5 GB/s per core, 4x hashlib.
The parts are read back from the file through a map of it (from the page cache the bytes were
just written to, without a copy), a slice of each at a time: eight parts need not be in memory
at once, and what is checked is what is on disk.

Without the module (no compiler at install, no AVX2, Windows), :data:`LANES` is 0 and callers
hash with ``hashlib`` as they did. Example::

    if LANES:
        digests = part_md5s(fd, start=0, part_size=8 << 20, count=8, tail=0)
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading

try:
    from sparc.client import _md5lanes
except ImportError:  # built without the C module
    _md5lanes = None  # type: ignore[assignment]

#: Parts hashed side by side (0: the C module is not there, or this CPU has no AVX2).
LANES: int = 8 if _md5lanes is not None and hasattr(mmap, "MADV_DONTNEED") \
    and _md5lanes.available() else 0
#: Bytes of each part hashed per step (and mapped at a time: 2 MiB per hashing thread).
SLICE = 256 * 1024
_INITIAL_STATE = struct.pack("<4I", 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
_buffers = threading.local()


def _buffer() -> bytearray:
    """This thread's reusable read buffer (for parts hashed with hashlib)."""
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(SLICE)
    return buffer


def _pread_exactly(fd: int, buffer: bytearray | memoryview, offset: int) -> None:
    """Fill ``buffer`` from ``fd`` at ``offset``; :class:`OSError` when the file ends first."""
    view = memoryview(buffer)
    while view:
        n = os.preadv(fd, [view], offset)
        if not n:
            raise OSError(f"the file ended at byte {offset}, before the part did")
        view, offset = view[n:], offset + n


def part_md5s(fd: int, start: int, part_size: int, count: int, tail: int = 0) -> list[bytes]:
    """The MD5 digests of ``count`` parts of ``part_size`` bytes at ``start`` in the file ``fd``,
    then of a last part of ``tail`` bytes (when ``tail``): ``count`` + 1 digests, in order.

    Whole parts go eight at a time through the lanes when ``part_size`` and ``start`` are
    whole pages, as every S3 part size is (whole MiB); anything else through ``hashlib``.
    """
    digests: list[bytes] = []
    at = start
    aligned = part_size % mmap.ALLOCATIONGRANULARITY == 0 == start % mmap.ALLOCATIONGRANULARITY
    while count:
        lanes = min(count, LANES) if aligned else 0
        if lanes:
            digests += _lane_md5s(fd, at, part_size, lanes)
        else:
            lanes = 1
            digests.append(_hashlib_md5(fd, at, part_size))
        at += lanes * part_size
        count -= lanes
    if tail:
        digests.append(_hashlib_md5(fd, at, tail))
    return digests


def _lane_md5s(fd: int, start: int, part_size: int, lanes: int) -> list[bytes]:
    """The MD5s of ``lanes`` parts side by side, read through a map of the file: hashed where
    they lie in the page cache (a ``preadv`` copy cost 5x the system time here), each slice
    unmapped once hashed (the process's resident size grows by a slice per lane, not a group)."""
    length = lanes * part_size
    if os.fstat(fd).st_size < start + length:  # a map past the end would fault, not fail
        raise OSError(f"the file ends before byte {start + length}, where its parts do")
    states = bytearray(_INITIAL_STATE * 8)
    with mmap.mmap(fd, length, offset=start, access=mmap.ACCESS_READ) as mapped, \
            memoryview(mapped) as whole:
        for offset in range(0, part_size, SLICE):
            step = min(SLICE, part_size - offset)
            views = [whole[lane * part_size + offset:lane * part_size + offset + step]
                     for lane in range(lanes)]
            try:
                _md5lanes.update(states, views)
            finally:
                for view in views:
                    view.release()
            for lane in range(lanes):
                mapped.madvise(mmap.MADV_DONTNEED, lane * part_size + offset, step)
    # the padding of a message of whole 64-byte blocks: one block, the same for every lane
    padding = b"\x80" + bytes(55) + struct.pack("<Q", part_size * 8)
    _md5lanes.update(states, [padding] * lanes)
    return [bytes(states[16 * lane:16 * lane + 16]) for lane in range(lanes)]


def _hashlib_md5(fd: int, start: int, size: int) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    buffer = _buffer()
    offset = 0
    while offset < size:
        view = memoryview(buffer)[:min(SLICE, size - offset)]
        _pread_exactly(fd, view, start + offset)
        digest.update(view)
        offset += len(view)
    return digest.digest()
