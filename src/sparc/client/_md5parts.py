"""The MD5 of each part of a file's bytes, read back from the file: a multipart ETag's parts.

An S3 multipart ETag is the MD5 of the parts' MD5s. MD5 is a chain of dependent steps, about
0.6-0.8 GB/s per core however it is written; the parts are independent, so this module hashes
eight of them at once, one per 32-bit lane of AVX2 instructions (``_md5lanes``, a small C
module built with the package when a compiler is there): about 2.5 GB/s per core, 4x hashlib.
The parts are read back from the file, a slice of each at a time, so eight parts need not be in
memory at once: through maps of the file by default (the page cache the bytes were just written
to, without a copy: a ``preadv`` copy cost 5x the system time here), with ``mapped=False`` (or
when the file cannot be mapped) through ``preadv``. A map of a file that shrinks under it, or
whose page fails to load, faults (SIGBUS) instead of failing: map only a file nothing else
changes, on a local file system (:func:`may_map`), and stop the jobs (``stop``) before
changing it.

Without the module (no compiler at install, no AVX2, Windows), :data:`LANES` is 0 and callers
hash with ``hashlib`` as they did. Example::

    if LANES:
        digests = part_md5s(fd, start=0, part_size=8 << 20, count=8)
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Iterable, Sequence

try:
    from sparc.client import _md5lanes
except ImportError:  # built without the C module
    _md5lanes = None  # type: ignore[assignment]

#: Parts hashed side by side (0: the C module is not there, or this CPU has no AVX2).
LANES: int = 8 if _md5lanes is not None and hasattr(os, "preadv") \
    and _md5lanes.available() else 0
#: Fewer parts than this go through hashlib: the kernel's cost is that of eight lanes, so three
#: lanes (about 0.9 GB/s) are where it starts to beat one hashlib stream (0.6-0.8 GB/s).
MIN_LANES = 3
#: Bytes of each part hashed per step (mapped or read at a time: 2 MiB per hashing thread).
SLICE = 256 * 1024
_INITIAL_STATE = struct.pack("<4I", 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
_buffers = threading.local()


class Stopped(Exception):  # noqa: N818 - a signal to a hashing job, not an error to users
    """A hashing job was told to stop (its file is about to change or be closed)."""


#: File system types whose pages may fail to load (a server away, a FUSE daemon gone): read
#: there, never map (a failed load of a mapped page kills the process with SIGBUS).
_NOT_MAPPED = ("nfs", "cifs", "smb", "fuse", "lustre", "gpfs", "beegfs", "ceph", "9p", "afs",
               "glusterfs", "virtiofs", "davfs", "sshfs")
_mappable: dict[int, bool] = {}


def may_map(fd: int) -> bool:
    """Whether the file of ``fd`` lives on a local file system (ext4, xfs, btrfs, tmpfs,
    overlay...), where reading it through maps is safe; ``False`` on network and FUSE file
    systems, and whenever it cannot be told (no ``/proc/self/mountinfo``). Once per device."""
    dev = os.fstat(fd).st_dev
    known = _mappable.get(dev)
    if known is None:
        known = _mappable[dev] = _local_device(dev)
    return known


def _local_device(dev: int) -> bool:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            kind = mount_kind(f"{os.major(dev)}:{os.minor(dev)}", mounts)
    except OSError:
        return False
    return kind is not None and not kind.startswith(_NOT_MAPPED)


def mount_kind(device: str, mountinfo: Iterable[str]) -> str | None:
    """The file system type of the mount of ``device`` (``"major:minor"``) in the lines of a
    ``/proc/self/mountinfo``, lower-case; ``None`` when none is listed.

    >>> mount_kind("0:53", ["61 29 0:53 / /home rw - nfs4 srv:/home rw,vers=4.2"])
    'nfs4'
    """
    for line in mountinfo:  # "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
        fields = line.split()
        if len(fields) > 2 and fields[2] == device and " - " in line:
            return line.split(" - ", 1)[1].split()[0].lower()
    return None


def _thread_buffers() -> list[bytearray]:
    """This thread's eight reusable read buffers (made on first use: mapped jobs need none)."""
    buffers: list[bytearray] | None = getattr(_buffers, "buffers", None)
    if buffers is None:
        buffers = _buffers.buffers = [bytearray(SLICE) for _ in range(8)]
    return buffers


def _pread_exactly(fd: int, buffer: bytearray | memoryview, offset: int) -> None:
    """Fill ``buffer`` from ``fd`` at ``offset``; :class:`OSError` when the file ends first."""
    view = memoryview(buffer)
    while view:
        n = os.preadv(fd, [view], offset)
        if not n:
            raise OSError(f"the file ends before byte {offset + len(view)}, where its part does")
        view, offset = view[n:], offset + n


def part_md5s(fd: int, start: int, part_size: int, count: int, tail: int = 0, *,
              mapped: bool = True, stop: threading.Event | None = None) -> list[bytes]:
    """The MD5 digests of ``count`` parts of ``part_size`` bytes at ``start`` in the file ``fd``,
    then of a last part of ``tail`` bytes (when ``tail``): ``count`` + 1 digests, in order.

    Whole parts go up to eight at a time through the lanes (at least :data:`MIN_LANES`) when
    ``part_size`` and ``start`` are whole pages, as every S3 part size is (whole MiB); anything
    else through ``hashlib``. Raises :class:`Stopped` soon after ``stop`` is set, and
    :class:`OSError` when the file ends before the parts.
    """
    digests: list[bytes] = []
    at = start
    aligned = part_size % mmap.ALLOCATIONGRANULARITY == 0 == start % mmap.ALLOCATIONGRANULARITY
    while count:
        lanes = min(count, LANES) if aligned else 0
        if lanes >= MIN_LANES:
            digests += _lane_md5s(fd, at, part_size, lanes, mapped, stop)
        else:
            lanes = 1
            digests.append(_hashlib_md5(fd, at, part_size, stop))
        at += lanes * part_size
        count -= lanes
    if tail:
        digests.append(_hashlib_md5(fd, at, tail, stop))
    return digests


def _lane_md5s(fd: int, start: int, part_size: int, lanes: int, mapped: bool,
               stop: threading.Event | None) -> list[bytes]:
    """The MD5s of ``lanes`` parts side by side, a slice of each at a time: mapped (each map
    closed once hashed: the resident size grows by a slice per lane, never by a part) or read."""
    end = start + lanes * part_size
    if os.fstat(fd).st_size < end:  # checked before any map: a map past the end faults
        raise OSError(f"the file ends before byte {end}, where its parts do")
    states = bytearray(_INITIAL_STATE * 8)
    for offset in range(0, part_size, SLICE):
        if stop is not None and stop.is_set():
            raise Stopped("told to stop")
        step = min(SLICE, part_size - offset)
        starts = [start + lane * part_size + offset for lane in range(lanes)]
        maps = _maps(fd, starts, step) if mapped else None
        if maps is None:
            mapped = False  # this file is not mapped: read the rest
            views = [memoryview(buffer)[:step] for buffer in _thread_buffers()[:lanes]]
            for view, at in zip(views, starts, strict=True):
                _pread_exactly(fd, view, at)
            _md5lanes.update(states, views)
            continue
        try:
            _md5lanes.update(states, maps)
        finally:
            for piece in maps:
                piece.close()
    # the padding of a message of whole 64-byte blocks: one block, the same for every lane
    padding = b"\x80" + bytes(55) + struct.pack("<Q", part_size * 8)
    _md5lanes.update(states, [padding] * lanes)
    return [bytes(states[16 * lane:16 * lane + 16]) for lane in range(lanes)]


def _maps(fd: int, starts: Sequence[int], size: int) -> list[mmap.mmap] | None:
    """Read-only maps of ``size`` bytes of ``fd`` at each of ``starts``; ``None`` when the file
    cannot be mapped (some FUSE file systems, an address-space limit)."""
    maps: list[mmap.mmap] = []
    try:
        for at in starts:
            maps.append(mmap.mmap(fd, size, offset=at, access=mmap.ACCESS_READ))
    except (OSError, ValueError):
        for piece in maps:
            piece.close()
        return None
    return maps


def _hashlib_md5(fd: int, start: int, size: int, stop: threading.Event | None) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    buffer = _thread_buffers()[0]
    offset = 0
    while offset < size:
        if stop is not None and stop.is_set():
            raise Stopped("told to stop")
        view = memoryview(buffer)[:min(SLICE, size - offset)]
        _pread_exactly(fd, view, start + offset)
        digest.update(view)
        offset += len(view)
    return digest.digest()
