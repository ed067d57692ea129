"""The download engine: verified, resumable, cancellable downloads to disk in constant memory.

A file is streamed to ``<name>.<key>.incomplete`` beside its destination and renamed only when
it passes the strongest check the service allows (see :class:`Verifier`): its sha256 when the
caller knows it, else the S3 ``ETag`` as an MD5 (single-part objects without SSE-KMS), else the
multipart ETag when the part size can be inferred, else its size. An interrupted download
(dropped connection, Ctrl-C, crash) leaves the partial file; the next attempt resumes it with
an HTTP ``Range`` request (``If-Range`` guards against a changed object) and re-hashes the
bytes already on disk. Example::

    outcome = fetch_file(http, RemoteFile(url, size=702), Path("out/animal.csv"))
    outcome.check            # 'md5'

There is ONE retry layer for file bytes: the HTTP core does not retry these streams
(``retries=0``); :func:`fetch_file` resumes them, with backoff, a budget of attempts that
resets whenever bytes arrive, and a log line (INFO) plus a progress-bar note on every retry.
A shared :class:`CancelToken` stops every transfer within a second (its sockets are shut down).

Speed: bytes come through :meth:`HttpCore.stream_file` (kept-alive sockets, no httpx objects
per request) into unbuffered partial files; files of :data:`BLOCK_SINK_MIN` or more are
received straight into reused blocks and written at once (:class:`_BlockSink`), hashed on a
thread of their own, and a multipart ETag's parts are hashed in parallel on :func:`hash_pool`
where they lie, while the partial file stays a contiguous prefix (resuming is unchanged).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import hashlib
import json
import logging
import math
import mmap
import os
import queue
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import IO, Any, NoReturn, Protocol, overload

import httpx

from sparc.client import _md5parts
from sparc.client._http import (
    FileResponse,
    HttpCore,
    RetryPolicy,
    clear_interrupt,
    interrupt_response,
    interrupt_thread,
)
from sparc.client.errors import (
    ArgumentError,
    ChecksumMismatchError,
    ClientError,
    DownloadError,
    LinkExpiredError,
    RateLimitedError,
    ServerError,
    SparcError,
    TransportError,
    UnsafePathError,
    summarize_failures,
)

__all__ = ["FolderNames", "RemoteFile", "FetchOutcome", "FileResult", "DownloadResult",
           "CancelToken", "Cancelled", "Verifier", "DownloadRecords", "fetch_file",
           "safe_join", "SafeJoin", "save_target", "partial_path", "part_size_candidates",
           "plan_existing", "same_as_remote", "EXISTING_MODES", "CHECKS"]

log = logging.getLogger("sparc.client")

CHUNK_SIZE = 1024 * 1024
MiB = 1024 * 1024
# Failed attempts in a row (no byte arrived in between) before a file is given up, the
# backoff between them and the low-speed limit (no_progress_limit, min_progress_bytes) follow
# the HTTP core's RetryPolicy.
#: After this long without a byte, a transfer logs it (INFO) and notes it on the progress bar.
STALL_NOTICE = 5.0
#: How many times an expired presigned link is renewed for one file.
MAX_LINK_RENEWALS = 3
#: Standard multipart upload part sizes (MiB) tried to reproduce an S3 multipart ETag.
STANDARD_PART_SIZES_MIB = (5, 8, 16, 32, 64, 100, 128, 256, 512)
#: The checks a file can pass, strongest first ("none": ``verify=False``, size still checked).
CHECKS = ("sha256", "md5", "md5-multipart", "size", "none")
EXISTING_MODES = ("skip", "overwrite", "refresh")
#: Where download() keeps what it saved (JSON lines), relative to the output folder.
RECORDS_FILE = Path(".sparc") / "downloads.jsonl"
#: How often (seconds) new records are written out while a download runs.
RECORDS_FLUSH_SECONDS = 0.5

_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_ETAG = re.compile(r"^([0-9a-f]{32})-(\d+)$")


@dataclass(frozen=True)
class RemoteFile:
    """Where to get a file's bytes, and what they must be."""

    url: str
    size: int | None = None
    sha256: str | None = None


# -- results ------------------------------------------------------------------------------------
@dataclass
class FileResult:
    """What happened to one file of a download.

    ``status`` is "downloaded" | "skipped" | "failed"; ``check`` is the evidence the bytes on
    disk were verified with: "sha256" | "md5" | "md5-multipart" | "size" | "none"; ``note``
    says why a file was skipped (or what was odd about it).
    """

    path: str
    local_path: Path
    status: str
    size: int
    bytes_transferred: int
    check: str
    error: BaseException | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the error as its class name and message)."""
        return {"path": self.path, "local_path": str(self.local_path), "status": self.status,
                "size": self.size, "bytes_transferred": self.bytes_transferred,
                "check": self.check, "note": self.note or None,
                "error": None if self.error is None else
                f"{type(self.error).__name__}: {self.error}"}


class DownloadResult(Sequence[Path]):
    """The outcome of a download, still a sequence of the local paths of the good files
    (downloaded or skipped), sorted. Example::

        result = client.pennsieve.download(90, "metadata/records", "data/")
        print(result.summary())          # 8 files: 8 downloaded, 0 skipped, 0 failed, ...
        result.downloaded[0].check       # 'md5'
    """

    def __init__(self, files: Sequence[FileResult], seconds: float = 0.0) -> None:
        self.files: list[FileResult] = list(files)
        self.seconds = seconds

    def _good(self) -> list[Path]:
        return sorted(f.local_path for f in self.files if f.status != "failed")

    @overload
    def __getitem__(self, index: int) -> Path: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Path]: ...
    def __getitem__(self, index: int | slice) -> Path | Sequence[Path]:
        return self._good()[index]

    def __len__(self) -> int:
        return sum(1 for f in self.files if f.status != "failed")

    def __iter__(self) -> Iterator[Path]:
        return iter(self._good())

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same local paths (it reads as a list of paths)."""
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return self._good() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<DownloadResult {self.summary()}>"

    @property
    def downloaded(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "downloaded"]

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "skipped"]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def bytes_transferred(self) -> int:
        return sum(f.bytes_transferred for f in self.files)

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def summary(self) -> str:
        """One line: files, bytes, rate, skipped, failed, checks."""
        moved = self.bytes_transferred
        rate = moved / self.seconds if self.seconds > 0 else 0.0
        checks: dict[str, int] = {}
        for f in self.files:
            if f.status != "failed":
                checks[f.check] = checks.get(f.check, 0) + 1
        checked = ", ".join(f"{n} {kind}" for kind, n in sorted(checks.items()))
        count = len(self.files)
        return (f"{count} file{'' if count == 1 else 's'}: {len(self.downloaded)} downloaded, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed; "
                f"{_human(moved)} in {self.seconds:.1f} s ({_human(rate)}/s)"
                + (f"; checked: {checked}" if checked else ""))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: totals and one entry per file."""
        return {"ok": self.ok, "seconds": round(self.seconds, 3),
                "bytes_transferred": self.bytes_transferred,
                "downloaded": len(self.downloaded), "skipped": len(self.skipped),
                "failed": len(self.failed), "files": [f.to_json() for f in self.files]}

    def raise_for_failures(self) -> None:
        """Raise :class:`DownloadError` (with ``.result``) when any file failed."""
        if self.failed:
            failures = {f.path: f.error or DownloadError("failed") for f in self.failed}
            raise DownloadError(summarize_failures(failures), failures=failures, result=self)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# -- paths --------------------------------------------------------------------------------------
def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``.

    Rejects absolute paths (POSIX or Windows), drive letters, ``..`` segments, and paths that
    resolve through a symbolic link to somewhere else. Many paths under one root: use
    :class:`SafeJoin` (the root and each folder are resolved once).
    """
    return SafeJoin(root)(relative)


class FolderNames:
    """The names in each folder, listed once, so deciding about thousands of new files costs
    no lookup each: :meth:`may_exist` is ``False`` only when the folder's listing (taken the
    first time it is asked about) has no such name in any case; else the caller asks the file
    system. Names beyond ASCII (which file systems fold and normalize in ways of their own) are
    always asked, and so are all names of a folder holding any. One per download call: files
    it creates itself are not asked about again. Example::

        names = FolderNames()
        names.may_exist(Path("out/a.csv"))   # lists out/ once; False: a new file
    """

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str] | None] = {}  # None: ask about every name

    def may_exist(self, path: Path | str) -> bool:
        folder, name = os.path.split(os.fspath(path))
        try:
            names = self._names[folder]
        except KeyError:
            names = self._names[folder] = self._list(folder)
        return names is None or not name.isascii() or name.lower() in names

    @staticmethod
    def _list(folder: str) -> frozenset[str] | None:
        try:
            listed = os.listdir(folder or ".")
        except FileNotFoundError:
            return frozenset()
        except OSError:  # unreadable, or not a folder: ask the file system each time
            return None
        if not all(n.isascii() for n in listed):
            return None
        return frozenset(n.lower() for n in listed)


class SafeJoin:
    """:func:`safe_join` for many paths under one ``root``: the root is resolved once, each
    distinct folder once, and each file is only checked for being a link itself. Its
    :attr:`names` serve the caller's decisions about each file. Example::

        join = SafeJoin(Path("out"))
        join("files/a.csv")          # Path('out/files/a.csv'); join("../x") raises
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.resolved_root = root.resolve()
        self._folders: dict[str, Path | None] = {}  # folder within root -> its Path if inside
        self._resolved: dict[str, Path] = {}  # folder within root -> where it resolves
        self._windows = isinstance(root, PureWindowsPath)
        self.names = FolderNames()

    def _folder(self, key: str, parts: list[str]) -> Path | None:
        """The folder ``parts`` under the root, or ``None`` when it resolves outside. Each
        folder is resolved from its parent's resolution, so only its own last segment is
        looked up (a link is resolved whole); on Windows each is resolved whole (junctions)."""
        for depth in range(len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub in self._folders:
                continue
            path = self.root.joinpath(*parts[:depth])
            parent = "/".join(parts[:depth - 1])
            if not depth:
                resolved: Path | None = self.resolved_root
            elif self._folders.get(parent) is None:
                resolved = None  # under a folder that leads out
            elif os.name == "nt" or os.path.islink(path):
                resolved = path.resolve()
            else:
                resolved = self._resolved[parent] / parts[depth - 1]
            inside = resolved is not None and resolved.is_relative_to(self.resolved_root)
            self._folders[sub] = path if inside else None
            if inside:
                self._resolved[sub] = resolved  # type: ignore[assignment]
        return self._folders[key]

    def __call__(self, relative: str) -> Path:
        if not relative or "\x00" in relative:
            raise UnsafePathError(relative, "empty or contains NUL")
        # absolute in POSIX or Windows terms: a root, a drive ("C:"), a UNC share ("\\\\srv")
        if relative[0] in "/\\" or relative[1:2] == ":":
            raise UnsafePathError(relative, "absolute paths are not allowed")
        parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafePathError(relative, "'..' segments are not allowed")
        if self._windows and any(":" in p for p in parts[:-1]):  # "a/D:x/f": drive D
            raise UnsafePathError(relative, "it names a drive")
        if not parts:
            raise UnsafePathError(relative, "names no file")
        key = "/".join(parts[:-1])
        try:
            folder = self._folders[key]
        except KeyError:  # each distinct folder resolved once
            folder = self._folder(key, parts[:-1])
        if folder is None:
            raise UnsafePathError(relative, "it resolves outside the output folder (a link?)")
        target = folder / parts[-1]
        if ":" in parts[-1] and (target.parent != folder or target.name != parts[-1]):
            raise UnsafePathError(relative, "it names a drive")  # Windows: "D:x", "C:x"
        if os.path.islink(target) and not target.resolve().is_relative_to(self.resolved_root):
            raise UnsafePathError(relative, "it resolves outside the output folder (a link?)")
        return target


def check_output_name(output_name: Any, what: str = "output_name") -> Path | None:
    """``output_name`` as a Path (``None`` stays ``None``), or :class:`ArgumentError`."""
    if output_name is None:
        return None
    if not isinstance(output_name, (str, os.PathLike)):
        raise ArgumentError(f"{what} must be a file or folder path (str or pathlib.Path), "
                            f"got {type(output_name).__name__} {output_name!r}")
    text = os.fspath(output_name)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise ArgumentError(f"{what} must be a non-empty path without NUL characters, "
                            f"got {output_name!r}")
    return Path(text).expanduser()


def save_target(output_name: str | os.PathLike[str] | None, server_name: str,
                suffix: str | None = None) -> Path:
    """Where to save a download the server named ``server_name``: exactly ``output_name`` (a
    file), inside it (an existing folder), or ``./server_name``. With ``suffix`` (e.g.
    ``".zip"``), an ``output_name`` whose suffix differs is kept as given, with a warning.
    A server name holding a folder part is refused."""
    if "/" in server_name or "\\" in server_name or server_name in ("", ".", ".."):
        raise UnsafePathError(server_name, "a server-given file name must not name a folder")
    path = check_output_name(output_name)
    if path is None:
        return Path.cwd() / server_name
    if path.is_dir():
        return path / server_name
    if suffix and path.suffix.lower() != suffix:
        warnings.warn(f"saving a {suffix.lstrip('.').upper()} archive as {str(path)!r}, as asked "
                      f"(its name does not end in {suffix})", UserWarning, stacklevel=3)
    return path


def partial_path(dest: Path, remote: RemoteFile) -> Path:
    """The resumable partial file for ``dest``: same content promise -> same name."""
    return Path(_partial_name(dest, remote))


def _partial_name(dest: Path, remote: RemoteFile) -> str:
    """:func:`partial_path` as a string (no Path made per file)."""
    key = remote.sha256[:16] if remote.sha256 else hashlib.sha256(
        f"{remote.url.split('?', 1)[0]}|{remote.size}".encode()).hexdigest()[:16]
    return f"{dest}.{key}.incomplete"  # dest's name + a suffix: never another folder


def _file_blocks(path: Path, limit: int | None = None,
                 cancel: CancelToken | None = None) -> Iterator[bytes]:
    remaining = limit
    with path.open("rb") as f:
        while remaining is None or remaining > 0:
            if cancel is not None:
                cancel.check()
            block = f.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not block:
                return
            yield block
            if remaining is not None:
                remaining -= len(block)


# -- cancellation -------------------------------------------------------------------------------
class Cancelled(Exception):  # noqa: N818 - a signal between threads, not an error to users
    """Raised in a worker when its download was cancelled (Ctrl-C or another failure)."""


class CancelToken:
    """Stops every transfer that watches it: :meth:`cancel` sets the flag and shuts down the
    sockets of the responses being read and of the threads :meth:`guarding` it (also while
    they wait for a server's first reply), so even a stalled server releases them at once.
    Example::

        with cancel.guarding():       # in a worker thread
            fetch_file(http, remote, dest, cancel=cancel)
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._responses: set[httpx.Response | FileResponse] = set()
        self._threads: dict[int, int] = {}  # thread id -> nesting depth of guarding()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            responses = list(self._responses)
            threads = list(self._threads)
        for thread_id in threads:
            interrupt_thread(thread_id)
        for response in responses:
            interrupt_response(response)

    @contextlib.contextmanager
    def guarding(self) -> Iterator[None]:
        """While inside, :meth:`cancel` wakes this thread out of any network wait of an
        :class:`HttpCore` request (raising :class:`Cancelled` here when already cancelled)."""
        thread_id = self.guard()
        try:
            yield
        finally:
            self.unguard(thread_id)

    def guard(self) -> int:
        """:meth:`guarding` without a context manager (once per file): pair with
        :meth:`unguard` in a ``finally``."""
        thread_id = threading.get_ident()
        with self._lock:
            self._threads[thread_id] = self._threads.get(thread_id, 0) + 1
        try:
            self.check()
        except Cancelled:
            self.unguard(thread_id)
            raise
        return thread_id

    def unguard(self, thread_id: int) -> None:
        with self._lock:
            depth = self._threads.pop(thread_id) - 1
            if depth:
                self._threads[thread_id] = depth
        if not depth:
            clear_interrupt(thread_id)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancelled."""
        if self._event.is_set():
            raise Cancelled("download cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or raise :class:`Cancelled` as soon as cancelled."""
        if self._event.wait(seconds):
            raise Cancelled("download cancelled")

    def watch(self, response: httpx.Response | FileResponse) -> None:
        """Shut ``response``'s socket down on :meth:`cancel` (raising :class:`Cancelled` here
        when already cancelled): pair with :meth:`unwatch` in a ``finally``."""
        with self._lock:
            self._responses.add(response)
        if self._event.is_set():
            self.unwatch(response)
            interrupt_response(response)
            raise Cancelled("download cancelled")

    def unwatch(self, response: httpx.Response | FileResponse) -> None:
        with self._lock:
            self._responses.discard(response)


# -- verification -------------------------------------------------------------------------------
def part_size_candidates(size: int, parts: int) -> list[int]:
    """Part sizes (bytes) that split ``size`` bytes into exactly ``parts`` parts: the standard
    sizes, ``size/parts`` rounded up to a whole MiB, and the next whole MiB sizes that still
    give ``parts`` parts (at most 8 of them). Example::

        part_size_candidates(100 * MiB, 13) == [8 * MiB]
    """
    if parts < 1 or size < 0:
        return []
    if parts == 1:
        return [max(size, 1)]
    guesses = [mib * MiB for mib in STANDARD_PART_SIZES_MIB]
    smallest = math.ceil(size / parts / MiB)
    largest = (size - 1) // (parts - 1) // MiB  # every whole MiB between fits, if only a few
    guesses += [mib * MiB for mib in range(smallest, min(largest, smallest + 7) + 1)]
    guesses.append(smallest * MiB)
    return sorted({p for p in guesses if p > 0 and math.ceil(size / p) == parts})


#: Multipart ETag parts up to this size are hashed on the hash pool, several at a time.
PARALLEL_PART_MAX = 32 * MiB
#: How many finished parts may wait for the hash pool per file (bounds memory).
PENDING_PARTS = 2
#: How many groups of parts read back from the file may wait per file (each holds a descriptor).
PENDING_GROUPS = 4
#: Files at least this large are received into reused blocks, hashed on a thread of their own,
#: off the thread reading the socket (see :class:`_BlockSink`; smaller ones inline: a thread
#: per small file costs more than it saves).
BLOCK_SINK_MIN = 8 * MiB
#: The size of those blocks, unless a multipart ETag's part (up to :data:`PARALLEL_PART_MAX`)
#: sets it: then a block holds exactly one part, hashed where it lies.
BLOCK_SIZE = 8 * MiB
#: The memory a transfer's blocks may take (at least 3 blocks: one filling, one written, one
#: hashed).
BLOCK_MEMORY = 32 * MiB

_hash_pool_lock = threading.Lock()
_hash_pool: ThreadPoolExecutor | None = None


def hash_pool() -> ThreadPoolExecutor:
    """The shared threads hashing multipart ETag parts (hashlib releases the GIL)."""
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                                            thread_name_prefix="sparc-hash")
        return _hash_pool


class _PartsJob:
    """One call of :func:`~sparc.client._md5parts.part_md5s` on the hash pool, through a
    duplicate of the file's descriptor that it closes once, whoever gets there first (the
    job when done, or the submitter when the submission fails)."""

    def __init__(self, fd: int, start: int, part_size: int, count: int, tail: int,
                 mapped: bool, stop: threading.Event) -> None:
        self.fd, self.start, self.part_size, self.count, self.tail = fd, start, part_size, count, tail
        self.mapped, self.stop = mapped, stop
        self._closing = threading.Lock()

    def run(self) -> list[bytes]:
        try:
            return _md5parts.part_md5s(self.fd, self.start, self.part_size, self.count,
                                       self.tail, mapped=self.mapped, stop=self.stop)
        finally:
            self.close()

    def close(self) -> None:
        with self._closing:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def _md5_of(buffer: bytearray | memoryview, size: int) -> bytes:
    with memoryview(buffer) as view:
        return hashlib.md5(view[:size], usedforsecurity=False).digest()


_Pending = tuple["Future[bytes] | Future[list[bytes]]", "bytearray | None"]


class _MultipartMD5:
    """The S3 multipart ETag of a byte stream for one assumed part size.

    With ``parallel`` (parts up to :data:`PARALLEL_PART_MAX`), each finished part is hashed on
    :func:`hash_pool` while the next one arrives, at most :data:`PENDING_PARTS` at a time: MD5
    runs at about 0.6-0.8 GB/s per core, so one thread hashing a multi-GB file in order would
    be slower than the network. The bytes of a part are copied into a part buffer, reused once its
    hash is done: memory stays at ``PENDING_PARTS + 1`` parts and the received chunks are freed as
    soon as they are written (chunks held until their part was hashed fragmented the heap: peak
    RSS rose by a third on a 1 GiB download).

    With ``file`` as well (the descriptor of the file every fed byte has already been written
    to, in order) and the eight-lane MD5 there (:mod:`sparc.client._md5parts`), the bytes are
    not kept at all: each group of eight whole parts is read back from the file and hashed side
    by side on the hash pool, at about four times hashlib's speed per core, checking what is on
    disk. :meth:`update` then only counts the bytes.
    """

    def __init__(self, part_size: int, parallel: bool = False, file: int | None = None,
                 size: int | None = None, mapped: bool = True) -> None:
        self.part_size = part_size
        # read back from ``file`` and hashed eight parts at a time (see _md5parts): for files
        # of at least eight parts (fewer are as fast hashed in memory, while they stream)
        self.file = file if (parallel and file is not None and _md5parts.LANES and size
                             and size >= _md5parts.LANES * part_size) else None
        self.parallel = parallel and part_size <= PARALLEL_PART_MAX and self.file is None
        self.size = size or 0
        # (with ``file``) read through maps: a file nothing else changes, on a local disk
        self._mapped = mapped and self.file is not None and _md5parts.may_map(self.file)
        self._stop = threading.Event()  # (with ``file``) tells the jobs to stop: see settle()
        self._on_disk = 0  # (with ``file``) bytes fed: all in the file
        self._submitted = 0  # (with ``file``) bytes whose parts went to the hash pool
        self._current = hashlib.md5(usedforsecurity=False)
        self._buffer: bytearray | None = None  # the part being filled (parallel)
        self._spare: list[bytearray] = []  # part buffers whose hash is done
        # parts being hashed, in order, with the part buffer to reuse (None: a lent block or,
        # with ``file``, a group read back: its future gives a list of digests)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._filled = 0
        self._digests: list[bytes] = []

    def update(self, data: bytes | memoryview) -> None:
        if self.file is not None:
            self.advance(len(data))
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self._filled)
            if self.parallel:
                if self._buffer is None:
                    self._buffer = self._spare.pop() if self._spare else bytearray(self.part_size)
                self._buffer[self._filled:self._filled + take] = view[:take]
            else:
                self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.part_size:
                self._close_part()

    def lend(self, view: memoryview, last: bool) -> Future[bytes] | None:
        """Hash ``view`` on the hash pool where it lies, without copying it, when it is one
        whole part starting at a part boundary (or, with ``last``, the file's last part): the
        caller keeps its bytes unchanged until the returned future is done. Any other bytes are
        taken by :meth:`update` (copied) and ``None`` returned."""
        if not self.parallel or self._filled or not (len(view) == self.part_size or last):
            self.update(view)
            return None
        while self._pending and self._pending[0][0].done():
            self._collect()  # keep the queue short; parts stay in order
        future = hash_pool().submit(_md5_of, view, len(view))
        self._pending.append((future, None))
        return future

    def _close_part(self) -> None:
        if self.parallel:
            while len(self._pending) >= PENDING_PARTS:
                self._collect()
            buffer, self._buffer = self._buffer, None
            assert buffer is not None
            self._pending.append((hash_pool().submit(_md5_of, buffer, self._filled), buffer))
        else:
            self._digests.append(self._current.digest())
            self._current = hashlib.md5(usedforsecurity=False)
        self._filled = 0

    def advance(self, n: int, cancel: CancelToken | None = None) -> None:
        """(With ``file``) the next ``n`` bytes are in the file: each group of
        :data:`~sparc.client._md5parts.LANES` whole parts goes to the hash pool, and the file's
        last parts (too few for a group) one by one as they come."""
        if self.file is None:
            raise ValueError("advance() is for a hasher reading its file (see file=)")
        self._on_disk += n
        if self._stop.is_set():  # stopped: nothing more is read
            return
        part, lanes = self.part_size, _md5parts.LANES
        while True:
            ready = (self._on_disk - self._submitted) // part  # whole parts on disk, not sent
            left = (self.size - self._submitted) // part  # whole parts in the file, not sent
            if ready < lanes and not (ready and left < lanes):
                break
            if cancel is not None:
                cancel.check()
            self._submit(min(ready, lanes), 0)
        if self._on_disk == self.size > self._submitted:  # the short last part
            self._submit(0, self.size - self._submitted)

    def _submit(self, count: int, tail: int) -> None:
        """Hash the next ``count`` parts and a last one of ``tail`` bytes from the file, on the
        hash pool, through a descriptor of its own (the caller's may close first)."""
        while len(self._pending) >= PENDING_GROUPS:
            self._collect()
        assert self.file is not None
        job = _PartsJob(os.dup(self.file), self._submitted, self.part_size, count, tail,
                        self._mapped, self._stop)
        try:
            future = hash_pool().submit(job.run)
        except BaseException:
            job.close()
            raise
        self._pending.append((future, None))
        self._submitted += count * self.part_size + tail

    def stop(self) -> None:
        """Tell the jobs reading the file to stop soon, without waiting (then :meth:`settle`)."""
        self._stop.set()

    def settle(self) -> None:
        """Stop the jobs reading the file and wait until they have (call before the file is
        truncated or given up: a job reading a map of a shrunk file would fault, and each
        holds a duplicate of its descriptor, so its lock). The digest cannot be asked for
        afterwards."""
        self.stop()
        while self._pending:
            future, _ = self._pending.popleft()
            with contextlib.suppress(Exception):
                future.result()

    def _collect(self) -> None:
        future, buffer = self._pending.popleft()
        if self._stop.is_set():  # told to stop: the jobs' answers no longer count
            with contextlib.suppress(Exception):
                future.result()
            return
        digest = future.result()
        if isinstance(digest, list):  # a group of parts read back from the file
            self._digests += digest
        else:
            self._digests.append(digest)
        if buffer is not None:
            self._spare.append(buffer)

    def hexdigest(self) -> str:
        if self._stop.is_set():
            raise RuntimeError("this hasher was stopped: its digest is incomplete")
        if self.file is not None and self._on_disk > self._submitted:
            self._submit(*divmod(self._on_disk - self._submitted, self.part_size))
        while self._pending:
            self._collect()
        if self.parallel:
            tail = _md5_of(self._buffer, self._filled) if self._buffer is not None else b""
        else:
            tail = self._current.digest()
        digests = self._digests + ([tail] if self._filled else [])
        return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-" \
               f"{len(digests)}"


def _etag_value(headers: Mapping[str, str]) -> str | None:
    etag = headers.get("etag")
    if not etag:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        return None  # a weak validator says nothing about the bytes
    return etag.strip('"').lower()


def _is_kms(headers: Mapping[str, str]) -> bool:
    sse = headers.get("x-amz-server-side-encryption", "").lower()
    return sse.startswith("aws:kms") or bool(
        headers.get("x-amz-server-side-encryption-customer-algorithm"))


class Verifier:
    """The strongest check the evidence allows, fed with the file's bytes in order.

    Evidence, strongest first: the caller's sha256; the S3 ``ETag`` when it is a plain MD5 (a
    single-part object not encrypted with SSE-KMS/SSE-C); a multipart ETag ``<md5>-<n>`` when a
    part size splitting the file into ``n`` parts can be guessed (each guess is hashed while
    streaming); else the size. ``verify=False`` gives ``"none"`` (the size is still checked).
    """

    def __init__(self, kind: str, expected: str | None, size: int | None,
                 hashers: Sequence[Any] = ()) -> None:
        self.kind, self.expected, self.size = kind, expected, size
        self._hashers = list(hashers)
        self.fed = 0

    @classmethod
    def choose(cls, remote: RemoteFile, headers: Mapping[str, str] | None,
               verify: bool = True, file: int | None = None, mapped: bool = True) -> Verifier:
        """The check for ``remote`` given the answer's ``headers``. ``file``: the descriptor of
        the file each byte fed is written to first (a multipart ETag's parts are then read
        back from it, through maps unless ``mapped`` is false: see :class:`_MultipartMD5`)."""
        size = remote.size
        if not verify:
            return cls("none", None, size)
        if remote.sha256:
            return cls("sha256", remote.sha256.lower(), size, [hashlib.sha256()])
        headers = headers or {}
        etag = _etag_value(headers)
        if etag and not _is_kms(headers):
            if _MD5_ETAG.match(etag):
                return cls("md5", etag, size, [hashlib.md5(usedforsecurity=False)])
            multipart = _MULTIPART_ETAG.match(etag)
            if multipart and size is not None:
                candidates = part_size_candidates(size, int(multipart[2]))
                if candidates:  # one guess (the usual case): its parts hashed in parallel
                    return cls("md5-multipart", etag, size,
                               [_MultipartMD5(p, len(candidates) == 1, file, size, mapped)
                                for p in candidates])
        return cls("size", None, size)

    def update(self, data: bytes) -> None:
        for hasher in self._hashers:
            hasher.update(data)
        self.fed += len(data)

    @property
    def part_size(self) -> int | None:
        """The part size when the only check is a multipart ETag hashed in parallel: blocks of
        whole parts go to :meth:`lend` and are hashed where they lie."""
        if len(self._hashers) == 1 and isinstance(hasher := self._hashers[0], _MultipartMD5) \
                and hasher.parallel:
            return hasher.part_size
        return None

    def settle(self) -> None:
        """Stop reading the file (see :meth:`_MultipartMD5.settle`): before it is truncated or
        given up. The verifier is not to be used afterwards."""
        for hasher in self._multipart():
            hasher.settle()

    def stop(self) -> None:
        """Tell the jobs reading the file to stop, without waiting (Ctrl-C: then settle)."""
        for hasher in self._multipart():
            hasher.stop()

    def _multipart(self) -> list[_MultipartMD5]:
        return [h for h in self._hashers if isinstance(h, _MultipartMD5)]

    @property
    def reads_file(self) -> bool:
        """Whether the check reads the bytes back from the file (then nothing is kept)."""
        return len(self._hashers) == 1 and getattr(self._hashers[0], "file", None) is not None

    def lend(self, view: memoryview, last: bool) -> Future[bytes] | None:
        """Like :meth:`update`, but a whole part (see :attr:`part_size`; ``last``: the file's
        last bytes) is hashed on the hash pool without a copy: keep ``view`` unchanged until
        the returned future is done (``None``: nothing was lent)."""
        self.fed += len(view)
        if self.part_size is None:
            for hasher in self._hashers:
                hasher.update(view)
            return None
        multipart: _MultipartMD5 = self._hashers[0]
        return multipart.lend(view, last)

    def feed_file(self, source: Path | _PartialFile, limit: int,
                  cancel: CancelToken | None = None) -> None:
        """Feed the first ``limit`` bytes of ``source`` (bytes kept from an earlier attempt)."""
        if self.reads_file:  # the hasher reads them back from the file itself
            self._hashers[0].advance(limit, cancel)
            self.fed += limit
            return
        if self._hashers and limit:
            blocks = source.blocks(limit, cancel) if isinstance(source, _PartialFile) else \
                _file_blocks(source, limit, cancel)
            for block in blocks:
                self.update(block)
        else:
            self.fed += limit

    def digests(self) -> list[str]:
        return [h.hexdigest() for h in self._hashers]

    def problem(self, received: int) -> str | None:
        """Why the bytes fail the check, or ``None`` when they pass."""
        if self.size is not None and received != self.size:
            return f"size {received} differs from the expected {self.size}"
        if self.expected is None:
            return None
        digests = self.digests()
        if self.expected in digests:
            return None
        shown = digests[0] if len(digests) == 1 else f"{len(digests)} part-size guesses"
        return f"{self.kind} {shown} differs from the expected {self.expected}"

    @property
    def checksum(self) -> str | None:
        """``kind:value`` of the verified checksum (after a successful :meth:`problem`)."""
        return f"{self.kind}:{self.expected}" if self.expected else None


# -- one file -----------------------------------------------------------------------------------
@dataclass
class FetchOutcome:
    """What :func:`fetch_file` did: ``status`` "downloaded" or "skipped" (not modified)."""

    path: Path
    status: str
    bytes_transferred: int
    check: str
    checksum: str | None = None
    etag: str | None = None
    note: str = ""
    #: The saved file's status, taken before it was closed (a rename keeps size and mtime):
    #: no second lookup of the path. ``None`` when skipped.
    stat: os.stat_result | None = field(default=None, repr=False)


class OutageBreaker:
    """Stops a many-file download early when the server is down, instead of letting every
    file spend its own retries: once ``limit`` files in a row have failed with a transport or
    server error (no file came from the server in between), the files not yet started fail at
    once, and so do running files at their next retry.

    Thread-safe; one per download. Example::

        breaker = OutageBreaker(limit=4)
        breaker.check()            # before a file: raises TransportError once tripped
        breaker.check_running()    # before a running file retries: the same
        breaker.failed(exc)        # a file gave up; breaker.succeeded() when the server
                                   # delivered one (a file kept locally says nothing)
    """

    OUTAGE_ERRORS = (TransportError, ServerError, RateLimitedError)

    def __init__(self, limit: int) -> None:
        self.limit = max(2, limit)
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._reason: BaseException | None = None

    @property
    def tripped(self) -> bool:
        return self._in_a_row >= self.limit

    def succeeded(self) -> None:
        with self._lock:
            self._in_a_row, self._reason = 0, None

    def failed(self, error: BaseException) -> None:
        if not isinstance(error, self.OUTAGE_ERRORS):
            return  # a bad checksum or a missing file says nothing about the server
        with self._lock:
            self._in_a_row += 1
            self._reason = self._reason or error

    def check(self, running: bool = False) -> None:
        """Raise :class:`TransportError` when the breaker has tripped: "not attempted" before a
        file starts, "gave up" for a ``running`` file about to retry."""
        if self.tripped:
            what = "gave up retrying" if running else "not attempted"
            raise TransportError(
                f"{what}: {self._in_a_row} files in a row failed ({self._reason}); the server "
                "looks unavailable, run the download again later to resume")

    def check_running(self) -> None:
        """:meth:`check` for a file already transferring, before it retries."""
        self.check(running=True)


@dataclass
class _Hooks:
    on_bytes: Callable[[int], None] | None = None
    on_note: Callable[[str], None] | None = None
    on_received: Callable[[int], None] | None = None

    def received(self, n: int) -> None:
        if self.on_received and n:
            self.on_received(n)

    def bytes(self, n: int) -> None:
        if self.on_bytes and n:
            self.on_bytes(n)

    def note(self, text: str) -> None:
        if self.on_note:
            self.on_note(text)


def _retry_delay(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float:
    """Seconds before resume number ``attempt`` (1-based): the HTTP core's backoff, or the
    server's ``Retry-After`` (at most the policy's ``no_progress_limit``)."""
    if retry_after is not None:
        return min(max(0.0, retry_after), policy.no_progress_limit)
    return policy.delay(attempt - 1, None)


class _StallWatch:
    """One daemon thread that notices transfers waiting for data: after :data:`STALL_NOTICE`
    seconds without a byte, one INFO line per stall and a progress-bar note
    ("waiting for data: 7 s") refreshed every second; it stops when nothing is watched."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transfers: set[_Transfer] = set()
        self._thread: threading.Thread | None = None

    def add(self, transfer: _Transfer) -> None:
        """Watch ``transfer`` until :meth:`discard`."""
        with self._lock:
            self._transfers.add(transfer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sparc-stall-watch",
                                                daemon=True)
                self._thread.start()

    def discard(self, transfer: _Transfer) -> None:
        with self._lock:
            self._transfers.discard(transfer)

    def _run(self) -> None:
        idle = 0
        while True:
            time.sleep(1.0)
            with self._lock:
                transfers = list(self._transfers)
                idle = 0 if transfers else idle + 1
                if idle >= 3:  # lingers a little: many small files do not start one each
                    self._thread = None
                    return
            now = time.monotonic()
            for transfer in transfers:
                with contextlib.suppress(Exception):  # a progress bar must not kill the watch
                    transfer.check_stall(now)


_STALLS = _StallWatch()


try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the unique name still protects the target
    fcntl = None  # type: ignore[assignment]

_PARTIAL_FLAGS = (os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
                  | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
                  | getattr(os, "O_NOFOLLOW", 0))  # never write through a link put there
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
#: Files up to this size (bytes) are received into an unnamed file (Linux ``O_TMPFILE``) that
#: gets its name once checked: one name operation per file, not a create and a rename. A crash
#: loses what such a file had received (at most this much per file); bigger files keep a named
#: partial file to resume from.
UNNAMED_PARTIAL_MAX = 1 * MiB
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
_unnamed_state: dict[str, Any] = {"proc": None, "refused": set()}  # /proc fd; folders refusing


#: What ``open(O_TMPFILE)`` fails with where the file system has no unnamed files.
_NO_TMPFILE_ERRNOS = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL})
_proc_lock = threading.Lock()


def _proc_fd() -> int | None:
    """A descriptor of ``/proc`` (names an unnamed file: ``self/fd/<n>``), or ``None``."""
    fd = _unnamed_state["proc"]
    if fd is None:
        with _proc_lock:
            fd = _unnamed_state["proc"]
            if fd is None:
                try:
                    fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    os.stat("self/fd", dir_fd=fd)
                except (OSError, AttributeError, NotImplementedError):
                    fd = -1
                _unnamed_state["proc"] = fd
    return fd if fd >= 0 else None


class _PartialFile:
    """A partial download open for appending, on a raw descriptor: unbuffered (see
    :func:`_write_all`) and its size counted here (no seek or stat per call). A named one
    (``<name>.<key>.incomplete``) holds an exclusive advisory lock, so two downloads never
    interleave (released when closed), and stays after a failure to be resumed; an unnamed one
    (small files, Linux) has no name to clash on and vanishes when closed. :meth:`publish`
    gives the checked bytes their final name. Example::

        with _PartialFile.open(part, size) as handle:
            _write_all(handle, data)
            handle.publish(dest)        # or handle.discard()
    """

    def __init__(self, path: Path | str, unnamed: bool = False) -> None:
        self.name = os.fspath(path)
        self.unnamed = unnamed
        self.copied = False
        if unnamed:  # in the same folder: published with a link, no copy
            self.fd = os.open(os.path.dirname(self.name) or ".",  # the folder may be a link
                              _O_TMPFILE | _PARTIAL_FLAGS & ~_O_NOFOLLOW, 0o666)
            self.size = 0
            return
        try:  # the usual case, a new file: known empty without a seek
            self.fd = os.open(self.name, _PARTIAL_FLAGS | os.O_CREAT | os.O_EXCL, 0o666)
            self.size = 0
        except FileExistsError:  # bytes of an earlier attempt: resume after them
            self.fd = os.open(self.name, _PARTIAL_FLAGS)
            try:
                self.size = os.lseek(self.fd, 0, os.SEEK_END)
            except BaseException:
                os.close(self.fd)
                raise
        if fcntl is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(self.fd)
                raise TransportError(f"{self.name} is being downloaded by another process") \
                    from exc

    @classmethod
    def open(cls, part: Path | str, size: int | None,
             names: FolderNames | None = None) -> _PartialFile:
        """The partial file for ``part``: unnamed for a small file with no partial bytes kept
        where the system allows it, else named; its folder made when missing. ``names``: the
        folder listings of a many-file download (no lookup for a partial file not listed)."""
        folder = os.path.dirname(part)
        unnamed = (bool(_O_TMPFILE) and size is not None and size <= UNNAMED_PARTIAL_MAX
                   and folder not in _unnamed_state["refused"] and _proc_fd() is not None
                   and not ((names is None or names.may_exist(part))
                            and os.path.lexists(part)))
        made_folder = False
        while True:
            try:
                return cls(part, unnamed)
            except FileNotFoundError:  # its folder is missing: made once, not stat-ed per file
                if made_folder:
                    raise
                with _disk(folder):
                    os.makedirs(folder or ".", exist_ok=True)
                made_folder = True
            except OSError as exc:
                if not unnamed or exc.errno not in _NO_TMPFILE_ERRNOS:
                    raise
                _unnamed_state["refused"].add(folder)  # this file system has no O_TMPFILE
                unnamed = False

    def write(self, data: bytes | memoryview) -> int:
        n = os.write(self.fd, data)
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self.size = size  # appending: the next write lands here

    def fileno(self) -> int:
        return self.fd

    def blocks(self, limit: int, cancel: CancelToken | None = None) -> Iterator[bytes]:
        """The first ``limit`` bytes, a block at a time (bytes kept from an earlier attempt)."""
        if not hasattr(os, "pread"):  # Windows: a partial file there always has a name
            yield from _file_blocks(Path(self.name), limit, cancel)
            return
        offset = 0
        while offset < limit:
            if cancel is not None:
                cancel.check()
            data = os.pread(self.fd, min(CHUNK_SIZE, limit - offset), offset)
            if not data:
                return
            yield data
            offset += len(data)

    def publish(self, dest: Path) -> None:
        """Give the bytes the name ``dest`` (replacing a file there) and close. ``copied`` is
        then true when the bytes had to be copied to a new file (its times differ)."""
        if not self.unnamed:
            if os.name == "nt":  # Windows renames no open file
                self.close()
            os.replace(self.name, dest)  # POSIX: still locked while it is renamed
            self.close()
            return
        source = f"self/fd/{self.fd}"
        try:
            os.link(source, dest, src_dir_fd=_proc_fd())
        except FileExistsError:  # a file is there (overwrite, refresh): replace it at once
            temporary = os.path.join(os.path.dirname(self.name),
                                     f".sparc-{os.getpid()}-{threading.get_ident()}.tmp")
            try:
                os.link(source, temporary, src_dir_fd=_proc_fd())
                os.replace(temporary, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:  # no links to unnamed files here: copy the bytes to a name
            log.debug("%s: cannot link an unnamed file (%s); copying it", dest, exc)
            _unnamed_state["refused"].add(os.path.dirname(self.name))
            self._publish_copy(dest)
            self.copied = True
        self.close()

    def _publish_copy(self, dest: Path) -> None:
        with _PartialFile(Path(self.name)) as named:  # locked, resumable name
            named.truncate(0)
            for data in self.blocks(self.size):
                _write_all(named, data)
            named.publish(dest)

    def discard(self) -> None:
        """Close and leave nothing behind."""
        if not self.unnamed:
            if os.name == "nt":
                self.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name)  # POSIX: still locked while it goes
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> _PartialFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch_file(
    http: HttpCore,
    remote: RemoteFile,
    dest: Path,
    *,
    refresh: Callable[[], RemoteFile] | None = None,
    verify: bool = True,
    cancel: CancelToken | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    if_none_match: str | None = None,
    service: str = "",
    before_retry: Callable[[], None] | None = None,
    on_received: Callable[[int], None] | None = None,
    names: FolderNames | None = None,
) -> FetchOutcome:
    """Download ``remote`` to ``dest`` atomically, resuming an earlier partial download.

    ``refresh`` renews an expired presigned link (:class:`LinkExpiredError`). A failed check
    discards the partial file and downloads once more before raising
    :class:`ChecksumMismatchError`; nothing unverified ever lands at ``dest``. With
    ``if_none_match`` (an ETag) and no partial file, a 304 answer means "unchanged": the outcome
    is "skipped" and ``dest`` is left alone. ``on_bytes(n)`` reports bytes as they arrive
    (negative when a restart discards some); ``on_note(text)`` each retry.
    ``before_retry()`` runs before every resume; it may raise to stop (a download-wide outage
    breaker does). ``on_received(n)`` counts bytes that came over the network (also for a
    file that fails in the end). ``names``: the folder listings of a many-file download (no
    lookup for a partial file not listed).
    """
    cancel = cancel or CancelToken()
    guarded = cancel.guard()
    try:
        return _fetch_file(http, remote, dest, refresh, verify, cancel,
                           _Hooks(on_bytes, on_note, on_received), if_none_match, service,
                           before_retry, names)
    finally:
        cancel.unguard(guarded)


def with_path(error: OSError, path: Path | str) -> OSError:
    """``error`` naming ``path`` (same class and errno) when it names no file yet: a write to
    a full disk says ``[Errno 28] No space left on device: '<path>'``, not just the reason."""
    if error.filename is not None or isinstance(error, SparcError):
        return error
    try:
        named = type(error)(error.errno, error.strerror or str(error), str(path))
    except TypeError:  # a subclass with another signature
        named = OSError(error.errno, error.strerror or str(error), str(path))
    named.__cause__ = error
    return named


@contextlib.contextmanager
def _disk(path: Path | str) -> Iterator[None]:
    """Re-raise an OSError from file work on ``path`` with the path attached."""
    try:
        yield
    except OSError as exc:
        _raise_with_path(exc, path)


def _raise_with_path(error: OSError, path: Path | str) -> NoReturn:
    """Raise ``error`` with ``path`` attached (:func:`with_path`); in an ``except`` block."""
    named = with_path(error, path)
    if named is error:
        raise error
    raise named from error


def _fetch_file(http: HttpCore, remote: RemoteFile, dest: Path,
                refresh: Callable[[], RemoteFile] | None, verify: bool, cancel: CancelToken,
                hooks: _Hooks, if_none_match: str | None, service: str,
                before_retry: Callable[[], None] | None = None,
                names: FolderNames | None = None) -> FetchOutcome:
    moved, last_digests = 0, None
    for round_ in (1, 2):
        part = _partial_name(dest, remote)
        state = _Transfer(http, remote, dest.name, verify, cancel, hooks, refresh, service,
                          if_none_match if round_ == 1 else None, before_retry)
        try:  # a full disk, a read-only folder: name the file
            handle = _PartialFile.open(part, remote.size, names if round_ == 1 else None)
        except OSError as exc:
            _raise_with_path(exc, part)
        with handle:  # closed at the end: a named partial file stays for a resume
            try:
                verifier = state.run(handle)
            except OSError as exc:
                _raise_with_path(exc, part)
            remote = state.remote
            moved += state.moved
            if verifier is None:  # 304 Not Modified
                handle.discard()
                return FetchOutcome(dest, "skipped", moved, "none", etag=state.etag)
            try:  # (the parts of a multipart ETag may still be read back from the file)
                problem = verifier.problem(state.offset)
                digests = verifier.digests()
            except BaseException as exc:
                verifier.settle()
                if isinstance(exc, OSError):
                    _raise_with_path(exc, part)
                raise
            kind = verifier.kind
            if (problem is not None and kind == "md5-multipart" and digests == last_digests
                    and verifier.size == state.offset):
                # The same bytes twice: the part size is what we could not guess, not the data.
                log.warning("%s: multipart ETag %s matches no guessed part size; the same "
                            "bytes came twice, so only the size is checked", dest.name,
                            verifier.expected)
                problem, kind = None, "size"
            if problem is None:
                try:
                    handle.publish(dest)
                except OSError as exc:
                    _raise_with_path(exc, dest)
                note = "" if round_ == 1 else \
                    "checksum mismatch on the first download; downloaded again"
                return FetchOutcome(dest, "downloaded", moved, kind,
                                    verifier.checksum if kind == verifier.kind else None,
                                    state.etag, note, None if handle.copied else state.stat)
            handle.discard()
        hooks.bytes(-state.offset)
        last_digests = digests
        if round_ == 2:
            raise ChecksumMismatchError(f"{dest.name}: {problem} (after a second full download)",
                                        failures={str(dest): ValueError(problem)})
        log.warning("%s: %s; downloading it again", dest.name, problem)
        hooks.note("checksum mismatch: downloading again")
    raise AssertionError("unreachable")


class _Transfer:
    """One pass over a file: stream into the partial file until it is whole, resuming."""

    def __init__(self, http: HttpCore, remote: RemoteFile, label: str, verify: bool,
                 cancel: CancelToken, hooks: _Hooks, refresh: Callable[[], RemoteFile] | None,
                 service: str, if_none_match: str | None,
                 before_retry: Callable[[], None] | None = None) -> None:
        self.http, self.remote, self.label = http, remote, label
        self.verify, self.cancel, self.hooks, self.refresh = verify, cancel, hooks, refresh
        self.service, self.if_none_match = service, if_none_match
        self.before_retry = before_retry
        self.offset = 0
        self.moved = 0
        self.stat: os.stat_result | None = None  # the partial file's, once whole
        self.etag: str | None = None
        self._etag_header: str | None = None
        self.verifier: Verifier | None = None  # the current answer's check
        # stall watch: the last time data came (or the current attempt began), while receiving
        self.receiving = False
        self.last_data_at = time.monotonic()
        self._stall_noted = False
        # low-speed limit: (time, bytes moved) samples, about one a second
        self._samples: collections.deque[tuple[float, int]] = collections.deque(
            [(self.last_data_at, 0)])

    def check_stall(self, now: float) -> None:
        """Called every second by the stall watch: log and note a wait for data."""
        silent = now - self.last_data_at
        if not self.receiving or silent < STALL_NOTICE:
            return
        if not self._stall_noted:
            self._stall_noted = True
            log.info("%s: no data for %.0f s at byte %d; still waiting (read timeout %s)",
                     self.label, silent, self.offset, _read_timeout(self.http))
        self.hooks.note(f"waiting for data: {silent:.0f} s")

    def _data_came(self, now: float) -> None:
        self.last_data_at = now
        if self._stall_noted:
            self._stall_noted = False
            log.info("%s: data is coming again", self.label)
            self.hooks.note("receiving")
        if now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, self.moved))

    def too_slow(self, now: float) -> str | None:
        """Why the file is given up (fewer than ``min_progress_bytes`` in the last
        ``no_progress_limit`` seconds, whatever the attempts), or ``None``."""
        policy = self.http.retry
        limit = policy.no_progress_limit
        samples = self._samples
        samples.append((now, self.moved))
        while len(samples) > 1 and samples[1][0] <= now - limit:
            samples.popleft()
        since, moved_then = samples[0]
        if now - since < limit:
            return None
        made = self.moved - moved_then
        size = self.remote.size
        remaining_then = (size - self.offset + made) if size is not None else None
        wanted = policy.min_progress_bytes if remaining_then is None else \
            min(policy.min_progress_bytes, max(remaining_then, 1))
        if made >= wanted:
            return None
        return (f"only {made} bytes arrived in the last {limit:.0f} s (at byte {self.offset}"
                f"{f' of {size}' if size is not None else ''}): the server stalls")

    def run(self, handle: _PartialFile) -> Verifier | None:
        """Receive the file into ``handle`` (resuming after its bytes): the verifier fed with
        every byte, or ``None`` for a 304 Not Modified."""
        size = self.remote.size
        self.offset = handle.tell()
        if size is not None and self.offset >= size > 0:
            # complete bytes but no headers seen yet: fetch the last byte again for them
            handle.truncate(size - 1)
            self.offset = size - 1
        elif size is not None and self.offset > size:
            handle.truncate(0)
            self.offset = 0
        if self.offset:
            log.info("%s: resuming at byte %d", self.label, self.offset)
            self.hooks.bytes(self.offset)
        try:
            verifier = self._loop(handle)
            if os.name != "nt":  # Windows may set the write time at close: stat after
                self.stat = os.fstat(handle.fileno())
            return verifier
        except BaseException:
            if self.verifier is not None:  # its jobs stop reading the file (and unlock it)
                self.verifier.settle()
            with contextlib.suppress(OSError):
                if handle.tell() == 0:  # nothing to resume from: leave no empty partial
                    handle.discard()
            raise

    def _loop(self, handle: _PartialFile) -> Verifier | None:
        _STALLS.add(self)
        try:
            return self._attempts(handle)
        finally:
            _STALLS.discard(self)

    def _attempts(self, handle: _PartialFile) -> Verifier | None:
        attempts, renewals = 0, 0
        while True:
            self.cancel.check()
            before = self.offset
            try:
                self.last_data_at, self.receiving = time.monotonic(), True
                try:
                    verifier, done = self._attempt(handle)
                finally:
                    self.receiving = False
                if done:
                    return verifier
                size = self.remote.size
                raise TransportError(f"the stream ended at byte {self.offset} of {size}")
            except LinkExpiredError:
                if self.refresh is None or renewals >= MAX_LINK_RENEWALS:
                    raise
                renewals += 1
                log.info("%s: the download link expired; asking for a new one", self.label)
                self.hooks.note("link expired: renewing")
                self.remote = self.refresh()
                continue
            except (TransportError, ServerError, RateLimitedError, ClientError) as exc:
                if isinstance(exc, ClientError) and exc.status != 408:
                    raise
                self.cancel.check()
                now = time.monotonic()
                if self.offset > before:
                    attempts = 0  # the budget is for failures in a row
                attempts += 1
                policy = self.http.retry
                stalled = self.too_slow(now)
                if stalled is not None:
                    log.info("%s: %s; giving up", self.label, stalled)
                    raise TransportError(f"{self.label}: {stalled}; giving up ({exc})",
                                         url=getattr(exc, "url", "")) from exc
                if attempts > policy.max_retries:
                    raise
                if self.before_retry is not None:
                    self.before_retry()
                retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
                delay = _retry_delay(policy, attempts, retry_after)
                why = str(exc).split(": ", 1)[-1] if isinstance(exc, TransportError) else \
                    f"HTTP {exc.status}"
                log.info("%s: %s; retry %d of %d in %.1f s, resuming at byte %d", self.label,
                         why, attempts, policy.max_retries, delay, self.offset)
                self.hooks.note(f"retry {attempts}/{policy.max_retries} in "
                                f"{delay:.0f} s at {_human(self.offset)}")
                self.cancel.sleep(delay)

    def _received(self, n: int) -> None:
        """Account for ``n`` bytes just received: progress, the low-speed limit, stalls."""
        if self.cancel.cancelled:
            raise Cancelled("download cancelled")
        self.offset += n
        self.moved += n
        hooks = self.hooks
        if hooks.on_bytes:
            hooks.on_bytes(n)
        if hooks.on_received:
            hooks.on_received(n)
        now = time.monotonic()
        if now - self._samples[-1][0] >= 1.0 and self.too_slow(now):
            raise TransportError(f"{self.label}: too slow")  # decided in _attempts
        self.last_data_at = now
        if self._stall_noted:
            self._data_came(now)

    def _attempt(self, handle: _PartialFile) -> tuple[Verifier | None, bool]:
        headers: dict[str, str] = {}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            if self._etag_header:
                headers["If-Range"] = self._etag_header
        elif self.if_none_match:
            headers["If-None-Match"] = f'"{self.if_none_match}"'
        with self.http.stream_file(self.remote.url, headers=headers, service=self.service) \
                as resp:
            self.cancel.watch(resp)
            try:
                return self._receive(resp, handle)
            finally:
                self.cancel.unwatch(resp)

    def _receive(self, resp: httpx.Response | FileResponse,
                 handle: _PartialFile) -> tuple[Verifier | None, bool]:
        """The body of one answer into the partial file (see :meth:`_attempt`): the check goes
        on from the last attempt's (even one that broke off), which took every byte kept."""
        if resp.status_code == 304:
            self.etag = _etag_value(resp.headers) or self.if_none_match
            return None, True
        verifier = self.verifier
        if verifier is not None and verifier.fed != self.offset:  # (never seen: a safety net)
            verifier.settle()
            verifier = None
        if self.offset and resp.status_code != 206:
            log.info("%s: the server sent the whole file (changed, or no ranges); "
                     "starting over", self.label)
            if verifier is not None:  # its jobs stop reading the bytes about to go
                verifier.settle()
            handle.truncate(0)
            self.hooks.bytes(-self.offset)
            self.offset, verifier = 0, None
        etag = _etag_value(resp.headers)
        if verifier is None or etag != self.etag:  # each byte is written before it is fed
            if verifier is not None:
                verifier.settle()
            verifier = self.verifier = Verifier.choose(self.remote, resp.headers, self.verify,
                                                       handle.fileno())
            verifier.feed_file(handle, self.offset, self.cancel)
        self.etag, self._etag_header = etag, resp.headers.get("etag")
        self.if_none_match = None
        size = self.remote.size
        if size is not None and size - self.offset < BLOCK_SINK_MIN:
            for chunk in resp.iter_bytes():  # as received, not re-chunked: a drop loses nothing
                _write_all(handle, chunk)
                verifier.update(chunk)
                self._received(len(chunk))
        else:
            sink = _BlockSink(handle, verifier, self.offset)
            try:
                if isinstance(resp, FileResponse) and resp.remaining is not None:
                    while n := resp.readinto(sink.take()):
                        sink.commit(n)
                        self._received(n)
                else:
                    for chunk in resp.iter_bytes():
                        sink.put(chunk)
                        self._received(len(chunk))
            except (Cancelled, KeyboardInterrupt):
                verifier.stop()  # no part is read back any more: close() returns at once
                raise
            finally:  # every byte received is on disk before anything else
                sink.close()
        size = self.remote.size
        return verifier, size is None or self.offset >= size


class _Writable(Protocol):
    """A raw file: ``write`` may take only part of the bytes (see :func:`_write_all`)."""

    def write(self, data: Any, /) -> int | None: ...


def _write_all(handle: _Writable, data: bytes | memoryview) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    written = handle.write(data) or 0
    if written < len(data):
        with memoryview(data) as view:
            while written < len(view):
                n = handle.write(view[written:])
                if not n:
                    raise OSError(errno.EIO, "the file took no bytes")
                written += n


class _BlockSink:
    """Takes a large body in a few reused blocks (anonymous maps: returned to the system when
    the transfer ends, not kept by the allocator). The thread reading the socket reads straight
    into a block (:meth:`FileResponse.readinto`: no bytes object per read, no copy) and writes
    each piece to the file at once, while it is still in this core's cache (writing whole blocks
    later, from another thread, cost twice the kernel time: the bytes had left the cache).
    Blocks end on multipart part boundaries; a full block goes to a hashing thread, which lends
    a whole part to the hash pool, hashed where it lies (:meth:`Verifier.lend`), or hashes it in
    order (other checks), while the next block fills. :meth:`close` hands over the last bytes,
    waits until the hashing thread has taken them (lent parts are awaited by the verifier's
    digest), then raises that thread's error, if any. Example::

        sink = _BlockSink(handle, verifier, offset)
        while n := response.readinto(sink.take()): sink.commit(n)
        sink.close()
    """

    def __init__(self, handle: _Writable, verifier: Verifier, offset: int) -> None:
        self.handle, self.verifier = handle, verifier
        self.error: BaseException | None = None
        part = verifier.part_size
        self.block_size = part if part is not None and part <= PARALLEL_PART_MAX else BLOCK_SIZE
        self._blocks_left = max(3, BLOCK_MEMORY // self.block_size)  # still to be made
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None] = queue.SimpleQueue()
        self._start = offset  # the file offset of the block being filled
        self._block: mmap.mmap | None = None
        self._view = memoryview(b"")
        self._filled = 0
        self._thread = threading.Thread(target=self._run, name="sparc-hasher", daemon=True)
        self._thread.start()

    def take(self) -> memoryview:
        """The free room of the block being filled (up to the next part boundary)."""
        if self._block is None:
            if self.error is not None:
                raise self.error
            self._block = self._next_block()
            room = self.block_size - self._start % self.block_size
            self._view = memoryview(self._block)[:room]
            self._filled = 0
        return self._view[self._filled:]

    def commit(self, n: int) -> None:
        """``n`` bytes were put at the start of the last :meth:`take`: write them now."""
        filled = self._filled
        _write_all(self.handle, self._view[filled:filled + n])
        self._filled = filled + n
        if self._filled == len(self._view):
            self._hand_over()

    def put(self, chunk: bytes) -> None:
        """Copy ``chunk`` in (bodies read as bytes, e.g. through httpx)."""
        with memoryview(chunk) as data:
            while data:
                room = self.take()
                n = min(len(room), len(data))
                room[:n] = data[:n]
                data = data[n:]
                self.commit(n)

    def _hand_over(self) -> None:
        if self._block is not None and self._filled:
            self._work.put((self._block, self._filled, self._start))
            self._start += self._filled
        elif self._block is not None:
            self._free.put(self._block)
        self._block, self._view = None, memoryview(b"")

    def _next_block(self) -> mmap.mmap:
        with contextlib.suppress(queue.Empty):
            return self._free.get_nowait()
        if self._blocks_left:
            self._blocks_left -= 1
            return mmap.mmap(-1, self.block_size)  # unmapped when freed: RSS falls back
        while True:  # all in use: wait for the hashing thread or the hash pool to give one back
            with contextlib.suppress(queue.Empty):
                return self._free.get(timeout=0.5)
            if self.error is not None:
                raise self.error

    def _run(self) -> None:
        lend, size = self.verifier.lend, self.verifier.size
        while (item := self._work.get()) is not None:
            block, n, start = item
            if self.error is not None:  # after an error: drain, so nobody waits for ever
                self._free.put(block)
                continue
            try:
                hashed = lend(memoryview(block)[:n], start + n == size)
            except BaseException as exc:  # noqa: BLE001 - raised by take()/close()
                self.error = exc
                self._free.put(block)
                continue
            if hashed is None:
                self._free.put(block)
            else:  # back to the free list once hashed
                hashed.add_done_callback(functools.partial(self._give_back, block))

    def _give_back(self, block: mmap.mmap, _done: object = None) -> None:
        self._free.put(block)

    def close(self) -> None:
        self._hand_over()
        self._work.put(None)
        try:
            self._thread.join()
        except BaseException:  # Ctrl-C while waiting: the thread still ends before we leave
            self.verifier.stop()
            self._thread.join()
            raise
        if self.error is not None:
            raise self.error


def _read_timeout(http: HttpCore) -> str:
    timeout = http.timeout.read
    return "none" if timeout is None else f"{timeout:g} s"


# -- what is already on disk --------------------------------------------------------------------
@dataclass
class Record:
    """What download() saved at a path: enough to know later that the file is intact."""

    path: str
    size: int
    mtime_ns: int
    check: str
    checksum: str | None = None
    etag: str | None = None
    source: str = ""  # e.g. "pennsieve:90/1": the dataset version the file came from

    def matches_disk(self, local: Path) -> bool:
        try:
            stat = local.stat()
        except OSError:
            return False
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


class DownloadRecords:
    """The sidecar of an output folder: ``<folder>/.sparc/downloads.jsonl``, one JSON line per
    file saved (the last line for a path wins), so a re-run knows complete files without
    re-hashing them. Thread-safe; compacted when it grows. Written out with the first record
    added :data:`RECORDS_FLUSH_SECONDS` after the last write-out, and on :meth:`close` (not a
    write per file): a crash loses the records since the last write-out, which only costs a
    re-check of those files on the next run."""

    def __init__(self, root: Path) -> None:
        self.file = root / RECORDS_FILE
        self._lock = threading.Lock()
        self.records: dict[str, Record] = {}
        self._unwritable = False
        self._handle: IO[str] | None = None
        self._flushed_at = 0.0
        lines = 0
        try:
            with self.file.open(encoding="utf-8") as handle:
                for line in handle:
                    lines += 1
                    with contextlib.suppress(ValueError, TypeError, KeyError):
                        data = json.loads(line)
                        self.records[data["path"]] = Record(**data)
        except OSError:
            return
        if lines > 2 * len(self.records) + 100:
            with contextlib.suppress(OSError):
                self._compact()

    def get(self, path: str) -> Record | None:
        return self.records.get(path)

    def add(self, record: Record) -> None:
        """Remember ``record`` (a sidecar that cannot be written only costs a re-check later)."""
        line = json.dumps(record.__dict__, separators=(",", ":")) + "\n"
        with self._lock:
            self.records[record.path] = record
            if self._unwritable:
                return
            try:
                if self._handle is None:  # opened once per download, not once per file
                    self.file.parent.mkdir(parents=True, exist_ok=True)
                    self._handle = self.file.open("a", encoding="utf-8")
                self._handle.write(line)
                now = time.monotonic()
                if now - self._flushed_at >= RECORDS_FLUSH_SECONDS:
                    self._handle.flush()
                    self._flushed_at = now
            except OSError as exc:
                log.warning("cannot record downloads in %s (%s); a re-run will check the "
                            "files again", self.file, exc)
                self._unwritable = True

    def close(self) -> None:
        """Close the sidecar (a later :meth:`add` opens it again)."""
        with self._lock:
            if self._handle is not None:
                with contextlib.suppress(OSError):
                    self._handle.close()
                self._handle = None

    def __enter__(self) -> DownloadRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _compact(self) -> None:
        tmp = self.file.with_name(self.file.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in self.records.values():
                handle.write(json.dumps(record.__dict__, separators=(",", ":")) + "\n")
        os.replace(tmp, self.file)


@dataclass
class Plan:
    """What to do with one file given what is on disk: "download", "skip", "conditional"
    (ask the server with ``If-None-Match: etag``: unchanged -> skip), or "probe" (compare the
    file with the server's ETag: :func:`same_as_remote`)."""

    action: str
    note: str = ""
    check: str = "none"
    etag: str | None = None
    warn: bool = False
    record: Record | None = field(default=None, repr=False)


def plan_existing(local: Path, remote: RemoteFile, mode: str, record: Record | None,
                  source: str, cancel: CancelToken | None = None,
                  names: FolderNames | None = None) -> Plan:
    """Decide, per ``existing`` mode, whether ``local`` must be downloaded.

    * ``overwrite``: always download.
    * ``skip``: keep any file already there (warn when it changed since it was downloaded,
      or differs in size from the remote).
    * ``refresh``: keep it when it is known intact (the record matches the file on disk and
      names the same dataset version and size) or proven equal to the remote (sha256, the
      server's ETag as MD5 or multipart MD5: "probe"); else download.

    ``names``: the folder listings of this download (no lookup for a name not listed).
    """
    if (names is not None and not names.may_exist(local)) or not local.exists():
        return Plan("download")
    if not local.is_file():
        raise DownloadError(f"{local} exists and is not a file")
    if mode == "overwrite":
        return Plan("download", "overwritten")
    size = local.stat().st_size
    intact = record is not None and record.matches_disk(local)
    if mode == "skip":
        if intact and record is not None:
            return Plan("skip", "complete (as recorded)", record.check)
        if record is not None:
            return Plan("skip", "changed locally since it was downloaded; kept as is", "none",
                        warn=True)
        if remote.size is not None and size != remote.size:
            return Plan("skip", f"differs from the remote ({size} vs {remote.size} bytes); "
                        "kept as is", "none", warn=True)
        return Plan("skip", "already there (same size; not downloaded by sparc.client)", "size")
    # refresh
    if remote.size is not None and size != remote.size:
        return Plan("download", "size differs from the remote")
    if intact and record is not None:
        sha = remote.sha256.lower() if remote.sha256 else None
        if sha and record.checksum and record.checksum.startswith("sha256:"):
            same = record.checksum == f"sha256:{sha}"
            return Plan("skip", "complete (as recorded)", record.check) if same else \
                Plan("download", "sha256 differs from the remote")
        if record.source == source:
            return Plan("skip", "complete (as recorded)", record.check)
        if record.etag:
            return Plan("conditional", "recorded from another version", record.check,
                        etag=record.etag, record=record)
        return Plan("download", "recorded from another version")
    if remote.sha256:
        same = sha256_of_cancellable(local, cancel) == remote.sha256.lower()
        return Plan("skip", "already there (sha256 matches)", "sha256") if same else \
            Plan("download", "sha256 differs from the remote")
    return Plan("probe", "already there: comparing it with the server's ETag")


def same_as_remote(http: HttpCore, remote: RemoteFile, local: Path,
                   cancel: CancelToken | None = None, service: str = "") -> FetchOutcome | None:
    """Whether ``local`` (same size as ``remote``) holds the remote's bytes, proven by the S3
    ETag: one ``Range: bytes=0-0`` request reads it, then the file is hashed once, as a plain
    MD5 or, for a multipart ETag, per guessed part size. Returns a "skipped" outcome when
    proven equal; ``None`` when it differs or cannot be proven (SSE-KMS, no ETag, an error).
    """
    cancel = cancel or CancelToken()
    try:
        with cancel.guarding(), http.stream("GET", remote.url, headers={"Range": "bytes=0-0"},
                                            service=service, auth=False) as resp:
            headers = resp.headers
    except SparcError as exc:
        log.info("%s: cannot read the server's ETag (%s); downloading it again", local, exc)
        return None
    if Verifier.choose(remote, headers, True).kind not in ("md5", "md5-multipart"):
        return None
    try:
        fd = os.open(local, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        log.info("%s: cannot read it (%s); downloading it again", local, exc)
        return None
    # a multipart ETag's parts are read side by side, not mapped: another program may change
    # the file meanwhile (a shrunk map faults), and it may live on a network file system
    verifier = Verifier.choose(remote, headers, True, fd, mapped=False)
    try:
        size = os.fstat(fd).st_size
        verifier.feed_file(local, size, cancel)
        problem = verifier.problem(size)
    except OSError as exc:
        log.info("%s: cannot read it (%s); downloading it again", local, exc)
        return None
    finally:
        verifier.settle()  # (jobs still reading after an error or Ctrl-C stop)
        os.close(fd)
    if problem is not None:
        return None
    return FetchOutcome(local, "skipped", 0, verifier.kind, verifier.checksum,
                        _etag_value(headers),
                        f"already there ({verifier.kind} matches the server's ETag)")


def sha256_of_cancellable(path: Path, cancel: CancelToken | None) -> str:
    digest = hashlib.sha256()
    for block in _file_blocks(path, None, cancel):
        digest.update(block)
    return digest.hexdigest()
