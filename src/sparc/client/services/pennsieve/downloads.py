"""Pennsieve downloads: files and folders of a dataset version, verified, resumable, parallel.

Mixed into :class:`~sparc.client.services.pennsieve.PennsieveService`. Example::

    result = client.pennsieve.download(90, "metadata/records", "data/")
    print(result.summary())                    # 8 files: 8 downloaded, 0 skipped, 0 failed...
    client.pennsieve.download_file(file_list=hits[:3], output_name="three.zip")

* :meth:`download` saves files at ``<output_dir>/<path in the version>`` with the download
  engine (:mod:`sparc.client._download`) and records each one in
  ``<output_dir>/.sparc/downloads.jsonl`` (size, mtime, checksum), so a re-run knows complete
  files without re-hashing them (``existing="skip"|"overwrite"|"refresh"``).
* :meth:`download_file` saves one file as is, or several as ONE stored ZIP built locally with
  zipit's entry names: the files are fetched (resumably) into the hidden folder
  ``.<archive name>.parts`` next to the archive, then packed, then the folder is removed. An
  interrupted call resumes where it stopped, which zipit's one-shot stream could not.
* :meth:`download_version_archive` saves the whole-version ZIP Discover builds.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparc.client._download import (
    EXISTING_MODES,
    CancelToken,
    DownloadRecords,
    DownloadResult,
    FileResult,
    FolderNames,
    OutageBreaker,
    Plan,
    Record,
    RemoteFile,
    SafeJoin,
    _disk,
    check_output_name,
    fetch_file,
    partial_path,
    plan_existing,
    same_as_remote,
    save_target,
)
from sparc.client.errors import (
    ArgumentError,
    DownloadError,
    DownloadTooLargeError,
    NotFoundError,
    SparcError,
    TransportError,
    summarize_failures,
)
from sparc.client.progress import byte_bar
from sparc.client.services.pennsieve.discover import (
    SERVICE,
    check_count,
    retry_unless_uncaught,
    version_route,
)
from sparc.client.services.pennsieve.paths import file_ref
from sparc.client.services.pennsieve.zipit import save_archive_response

if TYPE_CHECKING:
    import httpx

    from sparc.client._http import HttpCore

log = logging.getLogger("sparc.client")

#: The note of a file the server said is unchanged (304): the server answered.
UNCHANGED_NOTE = "unchanged on the server (ETag)"
#: How long a cancelled download waits for its workers (they stop between chunks, < 1 s).
CANCEL_GRACE = 2.0


class DownloadsMixin:
    """download(), download_file(), download_version_archive() and their engine glue."""

    if TYPE_CHECKING:
        http: HttpCore

        def post(self, url: str, **kwargs: Any) -> Any: ...
        def resolve_url(self, url: str) -> str: ...
        def _ids(self, dataset_id: Any, version: int | None) -> tuple[int, int]: ...
        def _browse(self, dataset_id: int, version: int, path: str | None,
                    page_size: int = 500) -> Any: ...
        def _explained(self, dataset_id: int, version: int, call: Callable[[], Any]) -> Any: ...
        @property
        def signed_in(self) -> bool: ...
        def _bound_auth(self) -> httpx.Auth: ...

    # -- the presign route --------------------------------------------------------------------
    def download_manifest(self, dataset_id: int, paths: Sequence[str],
                          version: int | None = None) -> dict[str, Any]:
        """Presigned download links for files and folders: ``{header: {count, size}, data}``.
        Production rows carry no sha256 (the file's S3 ETag is checked instead)."""
        wanted = _check_paths(paths)
        dataset_id, version = self._ids(dataset_id, version)
        return self._explained(dataset_id, version, lambda: self.post(
            f"/discover{version_route(dataset_id, version)}/files/download-manifest",
            json={"paths": wanted}, idempotent=True, retry_if=retry_unless_uncaught))

    # -- one file, or several as a ZIP --------------------------------------------------------
    def download_file(
        self,
        file_list: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        output_name: str | os.PathLike[str] | None = None,
        *,
        progress: bool | None = None,
        verify: bool = True,
    ) -> Path:
        """Download one file, or several files (or folders) of one dataset version as a ZIP.

        ``file_list`` holds file dicts from :meth:`list_files`, :meth:`browse` or :meth:`walk`.
        One file is saved under its own name, or exactly as ``output_name``; several are
        packed into one stored ZIP with zipit's entry names and archive name, saved exactly as
        ``output_name`` when given (a warning if its name does not end in ``.zip``).
        ``output_name`` may be an existing folder. Every file is verified (sha256 when given,
        else the S3 ETag, else the size) and an interrupted call resumes. Returns the path.
        Every path is checked first: a missing one raises :class:`NotFoundError` naming it.
        """
        files = _file_list(file_list)
        out = check_output_name(output_name)
        refs = list({(r.dataset_id, r.version, r.path): r  # drop repeats, keep order
                     for r in map(_ref, files)}.values())
        versions = {(r.dataset_id, r.version) for r in refs}
        if len(versions) > 1:
            listed = ", ".join(f"{d} v{v if v is not None else 'latest'}" for d, v in sorted(
                versions, key=lambda x: (x[0], x[1] or 0)))
            raise ArgumentError(
                f"download_file packs files of ONE dataset version into one archive, but the list "
                f"spans {listed}; call it once per dataset version (or use download())")
        dataset_id, version = self._ids(refs[0].dataset_id, refs[0].version)
        paths = [r.path for r in refs]
        known = {r.path: str(f["sha256"]) for f in files if f.get("sha256")
                 for r in [_ref(f)]}  # the caller's nodes may know a sha256; the manifest not
        entries = [e if e.get("sha256") or _entry_path(e) not in known
                   else {**e, "sha256": known[_entry_path(e)]}
                   for e in self._resolve_entries(dataset_id, version, paths)]
        if len(entries) == 1:  # one file (or a folder holding one file)
            entry = entries[0]
            return self._download_one(dataset_id, version, entry,
                                      save_target(out, entry["fileName"]), progress,
                                      verify).absolute()
        dest = save_target(out, _archive_name(paths), ".zip")
        parts = dest.with_name(f".{dest.name}.parts")
        join = SafeJoin(parts)
        targets = [(e, join(_entry_path(e))) for e in entries]
        result = self._download_entries(dataset_id, version, targets, parts, "refresh", verify,
                                        4, progress, join.names)
        result.raise_for_failures()
        _build_zip(dest, [(name, local) for name, (_, local) in
                          zip(_unique_names([_entry_path(e) for e, _ in targets]), targets,
                              strict=True)])
        shutil.rmtree(parts, ignore_errors=True)
        return dest.absolute()

    def _download_one(self, dataset_id: int, version: int, entry: Mapping[str, Any],
                      dest: Path, progress: bool | None, verify: bool) -> Path:
        """One file, in the calling thread (Ctrl-C stops it at once; the partial file stays).
        A file already there is kept when it is proven current (sha256, or a 304 answer to
        its MD5), else downloaded again."""
        remote = _remote(entry)
        plan = plan_existing(dest, remote, "refresh", None, _source(dataset_id, version))
        if plan.action == "probe":
            same = same_as_remote(self.http, remote, dest, service=SERVICE)
            if same is not None:
                plan = Plan("skip", same.note, same.check)
        if plan.action == "skip":
            log.info("%s: %s; skipped", dest, plan.note)
            return dest
        with byte_bar(remote.size, dest.name, progress) as bar:
            fetch_file(self.http, remote, dest, verify=verify, on_bytes=bar.update,
                       on_note=bar.set_postfix_str, service=SERVICE,
                       if_none_match=plan.etag if plan.action == "conditional" else None,
                       refresh=self._refresher(dataset_id, version, _entry_path(entry)))
        return dest

    # -- many files into a folder -------------------------------------------------------------
    def download(
        self,
        dataset_id: int,
        paths: str | Sequence[str] | None = None,
        output_dir: str | os.PathLike[str] = ".",
        *,
        version: int | None = None,
        max_workers: int = 4,
        existing: str = "refresh",
        verify: bool = True,
        progress: bool | None = None,
    ) -> DownloadResult:
        """Download files and folders of a dataset version into ``output_dir``, keeping their
        layout (``<output_dir>/<path in the version>``), in parallel, each verified and
        resumable. The whole version when ``paths`` is None. Example::

            result = client.pennsieve.download(90, "metadata/records", "data/")
            result.summary(); [f.check for f in result.files]

        ``existing``: "refresh" (default: download again only what differs from the remote),
        "skip" (keep whatever is there, warning when it changed) or "overwrite". ``verify=False``
        checks sizes only. Returns a :class:`~sparc.client.DownloadResult` (a sequence of the
        local paths); when any file failed, raises :class:`DownloadError` with ``.result``.
        Ctrl-C stops every transfer at once and keeps partial files for the next call.
        """
        max_workers = check_count("max_workers", max_workers, 1)
        if existing not in EXISTING_MODES:
            raise ArgumentError(f"existing must be one of {', '.join(EXISTING_MODES)}, "
                                f"got {existing!r}")
        if not isinstance(verify, bool):
            raise ArgumentError(f"verify must be True or False, got {verify!r}")
        wanted = None if paths is None else _check_paths(paths)
        root = check_output_name(output_dir, "output_dir")
        assert root is not None
        dataset_id, version = self._ids(dataset_id, version)
        if wanted is None:  # the whole version: every top-level file and folder
            wanted = [n["path"] for n in self._browse(dataset_id, version, None)]
        entries = self._resolve_entries(dataset_id, version, wanted)
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        join = SafeJoin(root)
        targets = [(e, join(_entry_path(e))) for e in entries]
        result = self._download_entries(dataset_id, version, targets, root, existing, verify,
                                        max_workers, progress, join.names)
        result.raise_for_failures()
        return result

    def _download_entries(self, dataset_id: int, version: int,
                          targets: Sequence[tuple[Mapping[str, Any], Path]], root: Path,
                          existing: str, verify: bool, max_workers: int,
                          progress: bool | None, names: FolderNames | None = None
                          ) -> DownloadResult:
        """Run the engine over manifest entries, ``max_workers`` at a time. Per-file failures
        are reported in the result; anything else (Ctrl-C, a full disk, a bug) cancels every
        transfer within a second and propagates."""
        started = time.monotonic()
        records = DownloadRecords(root)
        source = _source(dataset_id, version)
        cancel = CancelToken()
        breaker = OutageBreaker(max_workers)  # a dead server fails the rest at once
        lock = threading.Lock()
        total = sum(int(e["size"]) for e, _ in targets)
        label = f"dataset {dataset_id} v{version}: {len(targets)} files"
        results: list[FileResult] = []
        to_warn: list[str] = []
        with records, byte_bar(total, label, progress) as bar:

            def count(n: int) -> None:
                with lock:
                    bar.update(n)

            def job(entry: Mapping[str, Any], dest: Path) -> FileResult:
                path, remote = _entry_path(entry), _remote(entry)
                size = remote.size or 0
                received = [0]

                def receive(n: int) -> None:
                    received[0] += n

                try:
                    breaker.check()
                    result = self._fetch_entry(dataset_id, version, path, remote, dest,
                                               records, source, existing, verify, cancel,
                                               count, note, to_warn, breaker.check_running,
                                               receive, names)
                except SparcError as exc:
                    log.info("%s failed: %s", path, exc)
                    breaker.failed(exc)
                    return FileResult(path, dest, "failed", size, received[0], "none", exc)
                if result.status == "downloaded" or result.note == UNCHANGED_NOTE:
                    breaker.succeeded()  # the server delivered (a local skip says nothing)
                return result

            def note(text: str) -> None:
                with lock:
                    bar.set_postfix_str(text, refresh=True)

            _run_jobs(job, targets, max_workers, cancel, results)
        for text in to_warn:
            warnings.warn(text, UserWarning, stacklevel=3)
        order = {dest: i for i, (_, dest) in enumerate(targets)}
        results.sort(key=lambda r: order.get(r.local_path, 0))
        return DownloadResult(results, time.monotonic() - started)

    def _fetch_entry(self, dataset_id: int, version: int, path: str, remote: RemoteFile,
                     dest: Path, records: DownloadRecords, source: str, existing: str,
                     verify: bool, cancel: CancelToken, count: Callable[[int], None],
                     note: Callable[[str], None], to_warn: list[str],
                     before_retry: Callable[[], None] | None = None,
                     on_received: Callable[[int], None] | None = None,
                     names: FolderNames | None = None) -> FileResult:
        """One file of :meth:`download`: decide from what is on disk, fetch, record."""
        size = remote.size or 0
        plan = plan_existing(dest, remote, existing, records.get(path), source, cancel, names)
        if plan.action == "probe":
            same = same_as_remote(self.http, remote, dest, cancel, SERVICE)
            if same is None:
                plan = Plan("download", "differs from the remote (or cannot be proven equal)")
            else:
                stat = dest.stat()
                records.add(Record(path, stat.st_size, stat.st_mtime_ns, same.check,
                                   same.checksum, same.etag, source))
                plan = Plan("skip", same.note, same.check)
        if plan.action == "skip":
            if plan.warn:
                log.warning("%s: %s", dest, plan.note)
                to_warn.append(f"{dest}: {plan.note}")
            count(size)
            return FileResult(path, dest, "skipped", size, 0, plan.check, note=plan.note)
        if existing == "overwrite":
            partial_path(dest, remote).unlink(missing_ok=True)
        outcome = fetch_file(
            self.http, remote, dest, verify=verify, cancel=cancel, on_bytes=count,
            on_note=lambda text: note(f"{dest.name}: {text}"), service=SERVICE,
            if_none_match=plan.etag if plan.action == "conditional" else None,
            refresh=self._refresher(dataset_id, version, path), before_retry=before_retry,
            on_received=on_received, names=names)
        stat = outcome.stat or dest.stat()
        if outcome.status == "skipped":  # 304: the file on disk is the remote's
            count(size)
            check = plan.record.check if plan.record else plan.check
            checksum = plan.record.checksum if plan.record else f"md5:{plan.etag}"
            records.add(Record(path, stat.st_size, stat.st_mtime_ns, check, checksum,
                               outcome.etag, source))
            return FileResult(path, dest, "skipped", size, 0, check, note=UNCHANGED_NOTE)
        records.add(Record(path, stat.st_size, stat.st_mtime_ns, outcome.check,
                           outcome.checksum, outcome.etag, source))
        return FileResult(path, dest, "downloaded", size, outcome.bytes_transferred,
                          outcome.check, note="; ".join(n for n in (plan.note, outcome.note) if n))

    def _refresher(self, dataset_id: int, version: int, path: str) -> Callable[[], RemoteFile]:
        return lambda: _remote(self._manifest_entry(dataset_id, version, path))

    # -- the whole version --------------------------------------------------------------------
    def download_version_archive(
        self,
        dataset_id: int,
        version: int | None = None,
        output_name: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> Path:
        """Save the ZIP Discover builds of a whole dataset version
        (``Pennsieve-dataset-<id>-version-<v>.zip``), atomically, checked entry by entry.

        Over Discover's size cap it raises :class:`DownloadTooLargeError`: use
        :meth:`download` (file by file, resumable) instead. Example::

            client.pennsieve.download_version_archive(90, output_name="data/")
        """
        out = check_output_name(output_name)
        dataset_id, version = self._ids(dataset_id, version)
        url = self.resolve_url(f"/discover{version_route(dataset_id, version)}/download")
        for attempt in (1, 2):  # one stream, no ranges: a broken one is fetched again whole
            try:
                return self._save_version_archive(url, dataset_id, version, out, progress)
            except (TransportError, DownloadError) as exc:
                if attempt == 2:
                    raise
                log.warning("whole-version archive of dataset %d v%d: %s; downloading it "
                            "again", dataset_id, version, exc)
        raise AssertionError("unreachable")

    def _save_version_archive(self, url: str, dataset_id: int, version: int, out: Path | None,
                              progress: bool | None) -> Path:
        with self.http.stream("GET", url, params={"downloadOrigin": "SPARC"}, service=SERVICE,
                              retry_if=retry_unless_uncaught,  # embargoed data: the user's token
                              auth=self._bound_auth() if self.signed_in else None) as resp:
            return save_archive_response(
                resp, out, progress=progress,
                default_name=f"Pennsieve-dataset-{dataset_id}-version-{version}.zip")

    # -- manifest helpers ---------------------------------------------------------------------
    def _resolve_entries(self, dataset_id: int, version: int,
                         paths: list[str]) -> list[dict[str, Any]]:
        """Manifest entries for files and folders, raising :class:`NotFoundError` naming any
        path that matches nothing."""
        listed = self._manifest_entries(dataset_id, version, paths) if paths else []
        by_path = {_entry_path(e): e for e in listed}  # asked for a file and its folder: once
        named = set(by_path)  # each file and each folder above one: a path asked for is missing
        for found in by_path:  # unless named (one set lookup, not a scan, per path asked for)
            cut = found.rfind("/")
            while cut > 0 and found[:cut] not in named:
                named.add(found[:cut])
                cut = found.rfind("/", 0, cut)
        entries = list(by_path.values())
        missing = [p for p in paths if p not in named]
        if missing or not entries:
            raise NotFoundError(
                f"dataset {dataset_id} version {version} has no file or folder "
                f"{', '.join(map(repr, missing or paths))}", status=404, service=SERVICE)
        return entries

    def _manifest_entry(self, dataset_id: int, version: int, path: str) -> dict[str, Any]:
        """The download-manifest entry (fresh presigned URL) of one file."""
        for entry in self.download_manifest(dataset_id, [path], version).get("data", []):
            if _entry_path(entry) == path:
                return entry
        raise NotFoundError(f"dataset {dataset_id} has no file {path!r}", status=404,
                            service=SERVICE)

    def _manifest_entries(self, dataset_id: int, version: int,
                          paths: list[str]) -> list[dict[str, Any]]:
        """download-manifest entries for ``paths``, splitting requests over the size cap."""
        try:
            manifest = self.download_manifest(dataset_id, paths, version)
            return list(manifest.get("data", []))
        except DownloadTooLargeError:
            if len(paths) == 1:
                children = [n["path"] for n in self._browse(dataset_id, version, paths[0])]
                if not children or children == paths:
                    raise
                paths = children
            log.info("download manifest too large; asking for %d parts", len(paths))
            return [e for p in paths for e in self._manifest_entries(dataset_id, version, [p])]


# -- helpers --------------------------------------------------------------------------------------
def _run_jobs(job: Callable[[Mapping[str, Any], Path], FileResult],
              targets: Sequence[tuple[Mapping[str, Any], Path]], max_workers: int,
              cancel: CancelToken, results: list[FileResult]) -> None:
    """``job`` for every target, on ``max_workers`` threads that take the next target when
    free; results are appended to ``results``. The calling thread waits in short steps (so
    Ctrl-C is seen at once) and is woken only at the end or by a failure, not once per file;
    Ctrl-C or an unexpected error in a job cancels every transfer within a second and
    propagates. The cost per file is constant (no future per file)."""
    jobs = iter(list(targets))
    expected = len(results) + len(targets)  # every result in: the calling thread wakes
    take = threading.Lock()
    finished = threading.Event()  # every target done, or a job raised
    failures: list[BaseException] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with take:
                target = next(jobs, None)
            if target is None:
                return
            try:
                results.append(job(*target))  # list.append is atomic
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
                failures.append(exc)
                finished.set()
                return
            if len(results) == expected:
                finished.set()

    workers = min(max_workers, len(targets))
    pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="sparc-download")
    futures = [pool.submit(worker) for _ in range(workers)]
    try:
        while targets and not finished.wait(0.2):  # short waits: Ctrl-C is seen at once
            if all(f.done() for f in futures) and not finished.is_set():
                raise DownloadError("the download workers stopped early")
        if failures:
            raise failures[0]
    except BaseException:  # Ctrl-C, or a fatal error: stop every transfer now
        stop.set()
        cancel.cancel()
        wait_futures(futures, timeout=CANCEL_GRACE)
        raise
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _source(dataset_id: int, version: int) -> str:
    return f"{SERVICE}:{dataset_id}/{version}"


def _check_paths(paths: Any) -> list[str]:
    """Paths within a dataset version (one string, or a non-empty list of them)."""
    items = [paths] if isinstance(paths, str) else paths
    if not isinstance(items, Iterable) or isinstance(items, (bytes, Mapping)):
        raise ArgumentError(f"paths must be a path such as 'files/primary' or a list of "
                            f"them, got {type(paths).__name__} {paths!r}")
    items = list(items)
    if not items:
        raise ArgumentError("paths is empty: name at least one file or folder (or pass "
                            "paths=None for the whole version)")
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip("/") or "\x00" in item:
            raise ArgumentError(f"each path must be a non-empty path within the dataset "
                                f"version such as 'files/primary/a.csv', got {item!r}")
        if ".." in item.replace("\\", "/").split("/"):
            raise ArgumentError(f"refusing path {item!r}: '..' segments are not allowed (paths "
                                "are within the dataset version, e.g. 'files/primary/a.csv')")
        out.append(item.strip("/"))
    return out


def _file_list(file_list: Any) -> list[Mapping[str, Any]]:
    """The file dicts of a ``download_file`` call, or :class:`ArgumentError`."""
    hint = ("pass file dicts from list_files(), browse() or walk(); to download by path use "
            "download(dataset_id, path)")
    if file_list is None:
        raise ArgumentError(f"file_list is None: {hint}")
    if isinstance(file_list, (str, bytes, os.PathLike)):
        raise ArgumentError(f"file_list is a path ({file_list!r}), not a file dict: {hint}")
    if isinstance(file_list, Mapping):
        return [file_list]
    if not isinstance(file_list, Iterable):
        raise ArgumentError(f"file_list must be a file dict or a list of them, got "
                            f"{type(file_list).__name__}: {hint}")
    files = list(file_list)
    if not files:
        raise ArgumentError("file_list is empty: pass one or more file dicts")
    for item in files:
        if not isinstance(item, Mapping):
            raise ArgumentError(f"file_list holds {type(item).__name__} {item!r}, not a file "
                                f"dict: {hint}")
    return files


def _ref(file: Mapping[str, Any]) -> Any:
    try:
        return file_ref(file)
    except (ValueError, TypeError, KeyError) as exc:
        raise ArgumentError(f"not a downloadable file dict: {exc}") from exc


def _archive_name(paths: Sequence[str]) -> str:
    """zipit's archive name: the first path segment when one path (a folder) was asked for."""
    if len(paths) == 1:
        return f"{paths[0].strip('/').split('/')[0]}.zip"
    return "pennsieve-data.zip"


def _unique_names(names: Sequence[str]) -> list[str]:
    """zipit's renaming of repeated entry names: ``name (1).ext``."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"
        seen.add(candidate)
        out.append(candidate)
    return out


def _build_zip(dest: Path, members: Sequence[tuple[str, Path]]) -> None:
    """A stored (uncompressed) ZIP of verified local files, written atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.incomplete")
    try:
        with _disk(tmp), zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED,
                                         allowZip64=True) as z:
            for name, local in members:
                z.write(local, arcname=name)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _entry_path(entry: Mapping[str, Any]) -> str:
    """A download-manifest entry's path within its version (folders + file name)."""
    return "/".join([*entry.get("path", []), entry["fileName"]])


def _remote(entry: Mapping[str, Any]) -> RemoteFile:
    return RemoteFile(entry["url"], int(entry["size"]), entry.get("sha256") or None)


__all__ = ["DownloadsMixin", "summarize_failures"]
