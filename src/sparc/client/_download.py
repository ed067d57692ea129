"""Verified, resumable downloads to disk in constant memory.

A file is streamed to ``<name>.<key>.incomplete`` beside its destination and renamed only when
its size and sha256 agree with what the server promised. An interrupted download (dropped
connection, Ctrl-C, crash) leaves the partial file, and the next call resumes it with an HTTP
``Range`` request. Example::

    fetch_to_file(http, RemoteFile(url, size=702, sha256="ab12..."), Path("out/animal.csv"))
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

from sparc.client._http import HttpCore
from sparc.client.errors import (
    ChecksumMismatchError,
    PermissionDeniedError,
    TransportError,
    UnsafePathError,
)
from sparc.client.progress import byte_bar

__all__ = ["RemoteFile", "fetch_to_file", "safe_join", "save_target", "partial_path", "sha256_of"]

log = logging.getLogger("sparc.client")

CHUNK_SIZE = 1024 * 1024
#: How many times a broken stream is resumed within one call.
MAX_RESUMES = 5


@dataclass(frozen=True)
class RemoteFile:
    """Where to get a file's bytes, and what they must be."""

    url: str
    size: int | None = None
    sha256: str | None = None


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``.

    Rejects absolute paths (POSIX or Windows), drive letters, ``..`` segments, and paths that
    resolve through a symbolic link to somewhere else.
    """
    if not relative or "\x00" in relative:
        raise UnsafePathError(relative, "empty or contains NUL")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or relative.startswith("\\"):
        raise UnsafePathError(relative, "absolute paths are not allowed")
    parts = relative.replace("\\", "/").split("/")
    if ".." in parts:
        raise UnsafePathError(relative, "'..' segments are not allowed")
    target = root.joinpath(*[p for p in parts if p not in ("", ".")])
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise UnsafePathError(relative, "it resolves outside the output folder (a link?)")
    return target


def save_target(output_name: str | os.PathLike[str] | None, server_name: str,
                suffix: str | None = None) -> Path:
    """Where to save a download the server named ``server_name``: ``output_name`` (a file, or an
    existing folder to put it in) or ``./server_name``; ``suffix`` is added to an
    ``output_name`` lacking it. A server name holding a folder part is refused."""
    if "/" in server_name or "\\" in server_name or server_name in ("", ".", ".."):
        raise UnsafePathError(server_name, "a server-given file name must not name a folder")
    if output_name is None:
        return Path.cwd() / server_name
    path = Path(output_name).expanduser()
    if path.is_dir():
        return path / server_name
    if suffix and path.suffix.lower() != suffix:
        path = path.with_name(path.name + suffix)
    return path


def partial_path(dest: Path, remote: RemoteFile) -> Path:
    """The resumable partial file for ``dest``: same content promise -> same name."""
    key = remote.sha256[:16] if remote.sha256 else hashlib.sha256(
        f"{remote.url.split('?', 1)[0]}|{remote.size}".encode()).hexdigest()[:16]
    return dest.with_name(f"{dest.name}.{key}.incomplete")


def sha256_of(path: Path, limit: int | None = None) -> hashlib._Hash:
    """A sha256 object fed with the first ``limit`` bytes (all by default) of ``path``."""
    digest = hashlib.sha256()
    remaining = limit
    with path.open("rb") as f:
        while remaining is None or remaining > 0:
            block = f.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest


def matches(path: Path, remote: RemoteFile) -> bool:
    """True when ``path`` already holds exactly the promised bytes (size and sha256)."""
    if not path.is_file() or remote.sha256 is None and remote.size is None:
        return False
    if remote.size is not None and path.stat().st_size != remote.size:
        return False
    return remote.sha256 is None or sha256_of(path).hexdigest() == remote.sha256


@contextlib.contextmanager
def _locked(handle: IO[bytes]) -> Iterator[None]:
    """An exclusive advisory lock on the partial file, so two downloads never interleave."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the unique name still protects the target
        yield
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise TransportError(f"{handle.name} is being downloaded by another process") from exc
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fetch_to_file(
    http: HttpCore,
    remote: RemoteFile,
    dest: Path,
    *,
    refresh: Callable[[], RemoteFile] | None = None,
    progress: bool | None = None,
    service: str = "",
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Download ``remote`` to ``dest`` atomically, resuming any earlier partial download.

    ``refresh`` is called once if the (presigned) URL has expired (HTTP 403). A checksum or
    size mismatch discards the partial file and downloads again once before raising
    :class:`ChecksumMismatchError`. Returns ``dest``.
    """
    if matches(dest, remote):
        log.info("%s is already complete; skipped", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    refreshed, mismatches = False, 0
    while True:
        part = partial_path(dest, remote)
        try:
            digest = _stream_into(http, remote, part, dest.name, progress, service, on_bytes)
        except PermissionDeniedError:
            if refresh is None or refreshed:
                raise
            log.info("download link for %s expired; asking for a new one", dest.name)
            remote, refreshed = refresh(), True
            continue
        problem = _verify(part, remote, digest)
        if problem is None:
            os.replace(part, dest)
            return dest
        part.unlink(missing_ok=True)
        mismatches += 1
        if mismatches == 2:
            raise ChecksumMismatchError(f"{dest.name}: {problem} (after a second full download)",
                                        failures={str(dest): ValueError(problem)})
        log.warning("%s: %s; downloading again", dest.name, problem)


def _verify(part: Path, remote: RemoteFile, digest: str) -> str | None:
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size {size} differs from the expected {remote.size}"
    if remote.sha256 is not None and digest != remote.sha256.lower():
        return f"sha256 {digest} differs from the expected {remote.sha256}"
    return None


def _stream_into(
    http: HttpCore,
    remote: RemoteFile,
    part: Path,
    label: str,
    progress: bool | None,
    service: str,
    on_bytes: Callable[[int], None] | None,
) -> str:
    """Append the missing bytes of ``remote`` to ``part``, resuming after broken streams.

    Returns the sha256 hex digest of the whole partial file (its earlier bytes are hashed from
    disk, the new ones while they stream).
    """
    with part.open("ab") as handle, _locked(handle):
        offset = handle.tell()
        if remote.size is not None and offset > remote.size:
            handle.truncate(0)
            offset = 0
        digest = sha256_of(part, offset) if offset else hashlib.sha256()
        with byte_bar(remote.size, label, progress, initial=offset) as bar:
            for resume in range(MAX_RESUMES + 1):
                if remote.size is not None and offset == remote.size:
                    return digest.hexdigest()
                headers = {"Range": f"bytes={offset}-"} if offset else None
                try:
                    with http.stream("GET", remote.url, headers=headers, service=service) as resp:
                        if offset and resp.status_code != 206:
                            log.info("%s: server ignored Range; starting over", label)
                            handle.seek(0)
                            handle.truncate(0)
                            bar.reset(total=remote.size)
                            offset, digest = 0, hashlib.sha256()
                        for chunk in resp.iter_bytes():  # as received: a drop loses nothing
                            handle.write(chunk)
                            digest.update(chunk)
                            offset += len(chunk)
                            bar.update(len(chunk))
                            if on_bytes:
                                on_bytes(len(chunk))
                    handle.flush()
                    if remote.size is None or offset >= remote.size:
                        return digest.hexdigest()
                    log.warning("%s: stream ended at %d of %d bytes; resuming", label, offset,
                                remote.size)
                except TransportError as exc:
                    handle.flush()
                    if resume == MAX_RESUMES:
                        raise
                    log.warning("%s: %s; resuming at byte %d", label, exc, offset)
    raise AssertionError("unreachable")
