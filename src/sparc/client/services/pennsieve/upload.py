"""Agent-free upload to a Pennsieve dataset (the upload service's manifest protocol).

1. create a manifest (``POST {api2}/upload/manifest``) and register the files in it, 250 a call;
2. get short-lived storage credentials (``POST .../storage-credentials``), renewed before
   they expire;
3. send each file to S3 with boto3 at ``{keyPrefix}/{upload_id}``: one ``PutObject`` up to
   the part size, else a parallel multipart upload (parts of at least 8 MiB); S3 computes
   SHA-256 checksums (``ChecksumAlgorithm=SHA256``);
4. finalize, 250 files a call (``POST .../files/finalize`` with each file's size and the
   SHA-256 hashed from the local file: a file changed meanwhile fails here);
5. poll ``GET .../manifest/status`` until every finalized file is imported.

A file counts as uploaded only after step 5. Interrupted? Run the same upload again: a small
record (``upload_state_dir()``) names the manifest, so finalized files are skipped and only
the others are sent again. Example::

    result = client.pennsieve.upload("N:dataset:...", ["data/"], target_path="raw")
    print(result.summary())        # 12 files uploaded (3.4 MiB), 0 skipped, 0 failed
    result.failed                  # {local path: reason}

Needs the ``upload`` extra (boto3): ``pip install 'sparc.client[upload]'``.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from sparc.client._http import RetryPolicy, is_loopback
from sparc.client.errors import (
    ArgumentError,
    ConfigError,
    InsecureTransportError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    SparcError,
)

if TYPE_CHECKING:
    from sparc.client.services.pennsieve.service import PennsieveService

__all__ = ["UploadMixin", "UploadResult", "UploadFile", "UploadEngine", "UploadError",
           "UploadNotInstalledError", "upload_state_dir", "collect_files", "PART_SIZE",
           "BATCH_SIZE"]

log = logging.getLogger("sparc.client")

SERVICE = "pennsieve-upload"
INSTALL_HINT = "pip install 'sparc.client[upload]'"
#: Multipart part size (S3's minimum is 5 MiB; Pennsieve's agent uses 32 MiB).
PART_SIZE = 16 * 2**20
MIN_PART_SIZE = 8 * 2**20
MAX_PARTS = 10_000
#: Files per register/finalize call (the upload service refuses more than 250).
BATCH_SIZE = 250
#: Finalize what is ready at least this often while files are still being sent.
FINALIZE_EVERY = 2.0
#: Renew storage credentials this many seconds before they expire (capped at half their life).
CREDENTIALS_MARGIN = 300.0
#: Attempts per file or part (boto3 retries each attempt itself too, so a failure it retried
#: counts twice).
ATTEMPTS = 4
#: Waits between those attempts (the HTTP core's jittered backoff: 0.25 s doubling, 4 s at most).
_S3_BACKOFF = RetryPolicy(backoff=0.25, max_backoff=4.0)
#: Times per file or part new storage credentials are fetched after S3 called them expired.
RENEWALS = 5
_EXPIRED_CODES = frozenset({"ExpiredToken", "TokenRefreshRequired", "ExpiredTokenException",
                            "InvalidToken", "RequestExpired"})
_RETRY_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                          "Throttling", "ThrottlingException", "RequestTimeTooSkewed",
                          "TooManyRequests", "BadGateway", "GatewayTimeout", "500", "502",
                          "503", "504", "429"})
CONFLICT_CHOICES = ("keepBoth", "replace")


class UploadError(SparcError):
    """An upload could not be completed; ``result`` is the :class:`UploadResult` so far."""

    def __init__(self, message: str, *, result: UploadResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class UploadNotInstalledError(ConfigError, ImportError):
    """boto3 (the ``upload`` extra) is missing."""

    def __init__(self) -> None:
        super().__init__(f"uploading needs boto3, which is not installed: {INSTALL_HINT}")


def _boto() -> tuple[Any, Any]:
    try:
        import boto3
        import botocore.config
    except ImportError:
        raise UploadNotInstalledError() from None
    return boto3, botocore.config


# -- the files -------------------------------------------------------------------------------------
@dataclass
class UploadFile:
    """One local file and where it goes; ``status`` is ``local``, ``registered``, ``sent``,
    ``finalizing`` (queued for import), ``uploaded`` (imported: finalized), ``skipped``
    (finalized by an earlier run) or ``failed`` (``error`` says why)."""

    source: Path
    target_path: str
    target_name: str
    size: int
    mtime_ns: int
    sha256: str
    part_size: int  # 0: one PutObject
    upload_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "local"
    error: str | None = None
    s3_upload: str | None = None  # an unfinished multipart upload's UploadId (for resuming)

    @property
    def remote_path(self) -> str:
        """The path in the dataset, e.g. ``raw/a/b.txt``."""
        return f"{self.target_path}/{self.target_name}" if self.target_path else self.target_name

    def record(self) -> dict[str, Any]:
        return {"upload_id": self.upload_id, "size": self.size, "mtime_ns": self.mtime_ns,
                "sha256": self.sha256, "part_size": self.part_size,
                "target_path": self.target_path, "target_name": self.target_name,
                "status": self.status, "s3_upload": self.s3_upload}


@dataclass
class UploadResult:
    """What an upload did. ``uploaded``/``skipped`` list local paths, ``failed`` maps local
    paths to reasons; ``bytes`` counts the bytes of the files uploaded now. Example::

        result = client.pennsieve.upload(ds, ["data/"])
        if not result.ok:
            print(result.failed)
    """

    dataset_id: str
    manifest_id: str
    files: list[UploadFile]
    bytes_sent: int = 0

    @property
    def uploaded(self) -> list[str]:
        return [str(f.source) for f in self.files if f.status == "uploaded"]

    @property
    def skipped(self) -> list[str]:
        return [str(f.source) for f in self.files if f.status == "skipped"]

    @property
    def failed(self) -> dict[str, str]:
        return {str(f.source): f.error or "not finalized" for f in self.files
                if f.status not in ("uploaded", "skipped")}

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files if f.status == "uploaded")

    @property
    def ok(self) -> bool:
        """True when every file is uploaded or was already."""
        return not self.failed

    def summary(self) -> str:
        """One line, e.g. ``12 files uploaded (3.4 MiB), 1 skipped, 0 failed``."""
        failed = self.failed
        text = (f"{len(self.uploaded)} file{'s' if len(self.uploaded) != 1 else ''} uploaded "
                f"({_human(self.bytes)}), {len(self.skipped)} skipped, {len(failed)} failed")
        if failed:
            first = next(iter(failed.items()))
            text += f" (first: {first[0]}: {first[1]})"
        return text

    def raise_for_failures(self) -> UploadResult:
        """Raise :class:`UploadError` when any file failed; else return the result."""
        if self.failed:
            raise UploadError(self.summary(), result=self)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "manifest_id": self.manifest_id,
                "uploaded": self.uploaded, "skipped": self.skipped, "failed": self.failed,
                "bytes": self.bytes,
                "files": [{"source": str(f.source), "path": f.remote_path, "size": f.size,
                           "upload_id": f.upload_id, "status": f.status, "error": f.error}
                          for f in self.files]}

    def __repr__(self) -> str:
        return f"<UploadResult {self.summary()}>"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def clean_target(target_path: str) -> str:
    """``target_path`` as ``a/b`` (no leading/trailing slash); ``..`` is refused."""
    if not isinstance(target_path, str):
        raise ArgumentError(f"target_path must be a folder path in the dataset such as 'raw/day1', "
                            f"got {type(target_path).__name__} {target_path!r}")
    parts = [p for p in target_path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArgumentError(f"target_path {target_path!r} must not contain '..'")
    return "/".join(parts)


def collect_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                  target_path: str = "", *, keep_folder_name: bool = True
                  ) -> list[tuple[Path, str, str]]:
    """``(local file, target folder, name)`` for every file under ``paths``.

    A folder is walked recursively; with ``keep_folder_name`` its own name is kept
    (``data/a.txt`` -> ``<target_path>/data/a.txt``, as ``cp -r``), else only its content
    goes to ``target_path`` (as the Pennsieve Agent's manifests).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    base = clean_target(target_path)
    items: list[tuple[Path, str, str]] = []
    seen: set[tuple[str, str]] = set()
    given = list(paths)
    if not given:
        raise ArgumentError("no paths to upload: give files or folders")
    for raw in given:
        if not isinstance(raw, (str, os.PathLike)):
            raise ArgumentError(f"paths must be local files or folders, got "
                                f"{type(raw).__name__} {raw!r}")
        path = Path(raw).expanduser()
        if path.is_file():
            found = [(path.resolve(), base, path.name)]
        elif path.is_dir():
            root = path.resolve()
            prefix = [root.name] if keep_folder_name else []
            found = []
            for dirpath, dirnames, filenames in os.walk(root):
                for name in [d for d in dirnames if Path(dirpath, d).is_symlink()]:
                    log.warning("skipping %s: a symbolic link to a folder (not followed)",
                                Path(dirpath, name))
                    dirnames.remove(name)
                dirnames.sort()
                rel = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
                folder = "/".join([*([base] if base else []), *prefix,
                                   *(p for p in rel.parts if p != ".")])
                for name in sorted(filenames):
                    full = Path(dirpath, name)
                    if _inside(full, root):
                        found.append((full, folder, name))
        elif path.exists():
            raise ArgumentError(f"{str(path)!r} is neither a file nor a folder")
        else:
            raise ArgumentError(f"{str(path)!r}: no such file or folder")
        for source, folder, name in found:
            key = (folder, name)
            if key in seen:
                raise ArgumentError(f"two files would both go to {folder + '/' if folder else ''}"
                                    f"{name} (from {str(source)!r}); upload them separately")
            seen.add(key)
            items.append((source, folder, name))
    return items


def _inside(path: Path, root: Path) -> bool:
    """True for a regular file of the folder ``root``: a symbolic link is followed only when
    it leads to a file inside ``root`` (never to files the user did not name), and FIFOs,
    sockets and devices are left out. Folder links are not walked (``os.walk``), so link
    loops cannot trap it."""
    if not path.is_symlink():
        return path.is_file()
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling link or a loop
        log.warning("skipping %s: a broken symbolic link", path)
        return False
    if not target.is_relative_to(root):
        log.warning("skipping %s: a symbolic link to %s, outside %s", path, target, root)
        return False
    return target.is_file()


def part_size_for(size: int, part_size: int = PART_SIZE) -> int:
    """The multipart part size for a file of ``size`` bytes (0: one PutObject)."""
    if size <= part_size:
        return 0
    needed = -(-size // MAX_PARTS)
    return max(part_size, -(-needed // 2**20) * 2**20)


def file_sha256(path: Path, part_size: int) -> str:
    """The SHA-256 S3 reports for the object: base64 of the digest, or for a multipart upload
    base64 of the digest of the parts' digests followed by ``-<parts>``."""
    whole = hashlib.sha256()
    parts: list[bytes] = []
    with path.open("rb") as handle:
        if part_size == 0:
            for chunk in iter(lambda: handle.read(2**20), b""):
                whole.update(chunk)
            return base64.b64encode(whole.digest()).decode()
        while True:
            data = handle.read(part_size)
            if not data:
                break
            parts.append(hashlib.sha256(data).digest())
    composite = hashlib.sha256(b"".join(parts)).digest()
    return f"{base64.b64encode(composite).decode()}-{len(parts)}"


def plan_files(items: Sequence[tuple[Path, str, str]], part_size: int = PART_SIZE,
               known: dict[str, dict[str, Any]] | None = None) -> list[UploadFile]:
    """Stat and hash each file (reusing a ``known`` record when size and mtime still match)."""
    planned: list[UploadFile] = []
    for source, folder, name in items:
        try:
            stat = source.stat()
        except OSError as exc:
            raise ArgumentError(f"{str(source)!r} cannot be read: {exc.strerror or exc}") from exc
        record = (known or {}).get(str(source))
        if (record and record.get("size") == stat.st_size
                and record.get("mtime_ns") == stat.st_mtime_ns
                and record.get("target_path") == folder and record.get("target_name") == name):
            planned.append(UploadFile(source, folder, name, stat.st_size, stat.st_mtime_ns,
                                      str(record["sha256"]), int(record["part_size"]),
                                      str(record["upload_id"]), str(record.get("status", "local")),
                                      s3_upload=record.get("s3_upload") or None))
            continue
        size = stat.st_size
        psize = part_size_for(size, part_size)
        try:
            digest = file_sha256(source, psize)
        except OSError as exc:
            raise ArgumentError(f"{str(source)!r} cannot be read: {exc.strerror or exc}") from exc
        planned.append(UploadFile(source, folder, name, size, stat.st_mtime_ns, digest, psize))
    return planned


# -- the local record (resume) ---------------------------------------------------------------------
def upload_state_dir() -> Path:
    """Where upload records live: ``$SPARC_UPLOAD_STATE_DIR``, else
    ``$XDG_CACHE_HOME/sparc.client/uploads`` (``~/.cache/...``). A record names the manifest,
    local paths, upload ids and checksums, never a token or storage credential; it is written
    readable by its owner only (0600)."""
    explicit = os.environ.get("SPARC_UPLOAD_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "sparc.client" / "uploads"


class _Record:
    """The JSON record of one upload (dataset, target, sources) -> manifest and file states."""

    def __init__(self, key_parts: Sequence[str]) -> None:
        key = hashlib.sha256(json.dumps(list(key_parts)).encode()).hexdigest()[:32]
        self.path = upload_state_dir() / f"{key}.json"

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, dataset_id: str, manifest_id: str, files: Sequence[UploadFile]) -> None:
        data = {"version": 1, "dataset_id": dataset_id, "manifest_id": manifest_id,
                "files": {str(f.source): f.record() for f in files}}
        try:
            # private to the user (0700 folder, 0600 file): it names local paths and manifests
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(data))
            os.replace(tmp, self.path)
        except OSError as exc:  # resuming is a convenience: never fail an upload for it
            log.warning("cannot save the upload record %s: %s", self.path, exc)


# -- storage credentials ---------------------------------------------------------------------------
class _Storage:
    """Short-lived S3 credentials for one manifest, and a boto3 client built from them."""

    def __init__(self, engine: UploadEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._creds: dict[str, Any] | None = None
        self._client: Any = None
        self._expires = 0.0
        self._lifetime = 3600.0
        self.refreshes = 0

    def get(self) -> tuple[Any, dict[str, Any]]:
        """``(boto3 client, credentials)`` with time left."""
        with self._lock:
            margin = min(CREDENTIALS_MARGIN, self._lifetime / 4)
            if self._client is None or time.time() > self._expires - margin:
                self._renew()
            return self._client, self._creds  # type: ignore[return-value]

    def renew(self, stale: dict[str, Any]) -> None:
        """S3 called the credentials expired: fetch new ones (unless another thread did)."""
        with self._lock:
            if self._creds is stale:
                self._renew()

    def _renew(self) -> None:
        engine = self._engine
        creds = engine.service.private_request(
            "POST", f"{engine.api2}/upload/manifest/storage-credentials",
            params={"dataset_id": engine.dataset_id},
            json={"manifestNodeId": engine.manifest_id}, idempotent=True)
        try:
            for name in ("accessKeyId", "secretAccessKey", "sessionToken", "bucket", "keyPrefix"):
                if not creds.get(name):
                    raise KeyError(name)
        except (AttributeError, KeyError) as exc:
            raise ServerError(f"storage-credentials answered without {exc}", status=502,
                              service=SERVICE) from None
        expires = _parse_time(creds.get("expiration"))
        now = time.time()
        self._expires = expires if expires else now + 3600
        self._lifetime = max(1.0, self._expires - now)
        _SECRETS.add(str(creds["secretAccessKey"]), str(creds["sessionToken"]))
        self._creds = creds
        self._client = engine.s3_client(creds)
        self.refreshes += 1
        log.info("storage credentials for manifest %s (valid %.0f s)", engine.manifest_id,
                 self._lifetime)


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _SecretFilter(logging.Filter):
    """Masks storage secrets in botocore's DEBUG lines (it logs the signed request, session
    token included); installed on the botocore loggers that print requests."""

    LOGGERS = ("botocore.endpoint", "botocore.auth", "botocore.httpsession", "botocore.hooks",
               "botocore.retryhandler", "botocore.parsers", "urllib3.connectionpool")

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if not secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logger's business
            return True
        if any(secret in text for secret in secrets):
            for secret in secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, ()
        return True


_SECRETS = _SecretFilter()
for _name in _SecretFilter.LOGGERS:
    logging.getLogger(_name).addFilter(_SECRETS)


class _SendFailed(Exception):
    """One file could not be sent to storage (the reason is the message)."""


def check_args(jobs: int, on_conflict: str) -> None:
    """:class:`ArgumentError` for a bad ``jobs`` or ``on_conflict``."""
    if on_conflict not in CONFLICT_CHOICES:
        raise ArgumentError(f"on_conflict must be 'keepBoth' or 'replace', got {on_conflict!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise ArgumentError(f"jobs must be an integer from 1 to 64, got {jobs!r}")


# -- the engine --------------------------------------------------------------------------------
class UploadEngine:
    """Runs the manifest protocol for planned files (see the module docstring)."""

    def __init__(self, service: PennsieveService, dataset_id: str, *, jobs: int = 4,
                 on_conflict: str = "keepBoth", progress: bool | None = None,
                 poll_timeout: float = 600.0,
                 on_event: Callable[[str, UploadFile | None], None] | None = None) -> None:
        check_args(jobs, on_conflict)
        _boto()  # fail before any request without the extra
        self.service = service
        self.api2 = service.api2_host
        self.dataset_id = dataset_id
        self.jobs = jobs
        self.on_conflict = on_conflict
        self.progress = progress
        self.poll_timeout = poll_timeout
        self.manifest_id = ""
        self.bytes_sent = 0
        self._sent_lock = threading.Lock()
        self._on_event = on_event
        self.storage = _Storage(self)
        self._boto_session: Any = None
        self._record: _Record | None = None
        self._files: list[UploadFile] = []
        self._record_lock = threading.Lock()
        endpoint = service.config.pennsieve_s3_endpoint
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
                raise InsecureTransportError(
                    f"refusing to send storage credentials over plain HTTP to {parts.hostname}; "
                    "pennsieve_s3_endpoint must be https:// (plain http only for loopback)")

    def save_record(self) -> None:
        """Write the local record now (any thread)."""
        if self._record is not None:
            with self._record_lock:
                self._record.save(self.dataset_id, self.manifest_id, self._files)

    def _event(self, what: str, f: UploadFile | None = None) -> None:
        if self._on_event is not None:
            self._on_event(what, f)

    # -- boto3 ----------------------------------------------------------------------------------
    def s3_client(self, creds: dict[str, Any]) -> Any:
        boto3, botocore_config = _boto()
        timeout = self.service.http.timeout
        config = botocore_config.Config(
            connect_timeout=timeout.connect or 10, read_timeout=timeout.read or 60,
            retries={"max_attempts": 3, "mode": "standard"},  # x2 ours (_call_s3)
            max_pool_connections=2 * self.jobs + 2,
            s3={"addressing_style": "path"} if self.service.config.pennsieve_s3_endpoint else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="sparc.client-upload")
        if self._boto_session is None:  # one session: a new client from it takes ms, not 0.3 s
            self._boto_session = boto3.session.Session()
        return self._boto_session.client(
            "s3", region_name=creds.get("region") or "us-east-1",
            endpoint_url=self.service.config.pennsieve_s3_endpoint or None,
            aws_access_key_id=creds["accessKeyId"], aws_secret_access_key=creds["secretAccessKey"],
            aws_session_token=creds["sessionToken"], config=config)

    # -- manifest ---------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any], **params: Any) -> Any:
        return self.service.private_request(
            "POST", f"{self.api2}/upload/manifest{path}",
            params={"dataset_id": self.dataset_id, **params}, json=body, idempotent=True)

    def create_manifest(self) -> str:
        """A new manifest on the server; its node id."""
        answer = self._post("", {"dataset_id": self.dataset_id})
        manifest = answer.get("manifest_node_id") if isinstance(answer, dict) else None
        if not manifest:
            raise ServerError("the upload service created no manifest (no manifest_node_id)",
                              status=502, service=SERVICE)
        self.manifest_id = str(manifest)
        log.info("manifest %s for dataset %s", self.manifest_id, self.dataset_id)
        return self.manifest_id

    def register(self, files: Sequence[UploadFile]) -> None:
        """Register ``files`` in the manifest, :data:`BATCH_SIZE` a call."""
        for start in range(0, len(files), BATCH_SIZE):
            batch = files[start:start + BATCH_SIZE]
            answer = self._post("", {
                "id": self.manifest_id, "dataset_id": self.dataset_id, "status": 0,
                "files": [{"upload_id": f.upload_id, "s3_key": f"{self.manifest_id}/{f.upload_id}",
                           "target_path": f.target_path, "target_name": f.target_name,
                           "status": 0, "merge_package_id": "", "file_type": ""}
                          for f in batch]})
            failed = set(answer.get("failed_files") or []) if isinstance(answer, dict) else set()
            for f in batch:
                if f.upload_id in failed:
                    f.status, f.error = "failed", "the upload service refused to register it"
                elif f.status == "local":
                    f.status = "registered"

    def server_done(self) -> set[str]:
        """Upload ids the server has imported (Finalized or Verified)."""
        done: set[str] = set()
        for status in ("Verified", "Finalized"):
            done |= self._status_page_all(status, verify=False)
        return done

    def _status_page_all(self, status: str, verify: bool) -> set[str]:
        found: set[str] = set()
        token: str | None = None
        for _ in range(100_000):
            params: dict[str, Any] = {"manifest_id": self.manifest_id, "status": status}
            if verify:
                params["verify"] = "true"
            if token:
                params["continuation_token"] = token
            answer = self.service.private_request(
                "GET", f"{self.api2}/upload/manifest/status", params=params)
            if not isinstance(answer, dict):
                raise ServerError("manifest status is not a JSON object", status=502,
                                  service=SERVICE)
            page = [str(u) for u in answer.get("files") or []]
            found.update(page)
            token = answer.get("continuation_token") or None
            if not token or not page:
                break
        return found

    def finalize(self, files: Sequence[UploadFile]) -> None:
        """Ask the server to check and import ``files`` (:data:`BATCH_SIZE` a call)."""
        for start in range(0, len(files), BATCH_SIZE):
            batch = files[start:start + BATCH_SIZE]
            answer = self.service.private_request(
                "POST", f"{self.api2}/upload/manifest/files/finalize",
                params={"dataset_id": self.dataset_id}, idempotent=True,
                json={"manifestNodeId": self.manifest_id, "onConflict": self.on_conflict,
                      "files": [{"uploadId": f.upload_id, "size": f.size, "sha256": f.sha256}
                                for f in batch]})
            results = {str(r.get("uploadId")): r for r in (answer or {}).get("results") or []
                       if isinstance(r, dict)}
            for f in batch:
                r = results.get(f.upload_id)
                if r is None:
                    f.status, f.error = "failed", "finalize did not answer for this file"
                elif r.get("status") == "finalized":
                    f.status = "finalizing"
                else:
                    f.status = "failed"
                    f.error = f"finalize refused it: {r.get('error') or r.get('status')}"
                self._event(f.status, f)

    # -- storage ----------------------------------------------------------------------------------
    def _count(self, n: int, bar: Any) -> None:
        with self._sent_lock:
            self.bytes_sent += n
        bar.update(n)

    def _call_s3(self, what: str, call: Callable[[Any, dict[str, Any]], Any]) -> Any:
        """``call(client, creds)`` with renewed credentials when S3 says they expired, and a few
        attempts for transient failures (boto3 retries within each attempt too)."""
        from botocore.exceptions import BotoCoreError, ClientError

        last = ""
        attempt = renewals = 0
        while attempt < ATTEMPTS:
            # a failure boto3 already retried (5xx, throttling, connection) costs two attempts:
            # a persistent one then ends after 2 x 3 tries of a part
            cost = 2
            client, creds = self.storage.get()
            try:
                return call(client, creds)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                last = f"S3 {what}: {code or status} {error.get('Message', '')}".strip()
                if code in _EXPIRED_CODES or (status == 400 and "expired" in last.lower()):
                    if renewals < RENEWALS:  # its own budget: not a failure of the attempt
                        renewals += 1
                        log.info("%s: storage credentials expired; renewing them", what)
                        self.storage.renew(creds)
                        continue
                    raise _SendFailed(last) from None
                # a 400 with no S3 error document (botocore then uses the status as the code)
                # comes from a proxy or a connection the server gave up on, not from S3: retry
                bare = code == str(status)
                if code not in _RETRY_CODES and not bare \
                        and not (isinstance(status, int) and status >= 500):
                    raise _SendFailed(last) from None
                if bare and status == 400:
                    cost = 1
            except BotoCoreError as exc:
                last = f"S3 {what}: {type(exc).__name__}: {exc}"
            except OSError as exc:
                last = f"{what}: {exc.strerror or exc}"
                raise _SendFailed(last) from None
            attempt += cost
            if attempt < ATTEMPTS:
                delay = _S3_BACKOFF.delay(attempt - 1, None)
                log.warning("%s; trying again in %.1f s", last, delay)
                time.sleep(delay)
        raise _SendFailed(last or f"S3 {what} failed")

    def send(self, f: UploadFile, parts_pool: cf.Executor, bar: Any) -> None:
        """Send one file to storage (raises :class:`_SendFailed`)."""
        if f.part_size == 0:
            def put(client: Any, creds: dict[str, Any]) -> None:
                data = _read(f, 0, f.size)
                client.put_object(Bucket=creds["bucket"], Key=f"{creds['keyPrefix']}/{f.upload_id}",
                                  Body=data, ChecksumAlgorithm="SHA256")
            self._call_s3(f"PutObject {f.remote_path}", put)
            self._count(f.size, bar)
        else:
            self._send_multipart(f, parts_pool, bar)
        f.status = "sent"
        self._event("sent", f)

    def _send_multipart(self, f: UploadFile, parts_pool: cf.Executor, bar: Any) -> None:
        state: dict[str, Any] = {}
        count = -(-f.size // f.part_size)
        stored = self._stored_parts(f, state) if f.s3_upload else {}

        def create(client: Any, creds: dict[str, Any]) -> None:
            key = f"{creds['keyPrefix']}/{f.upload_id}"
            answer = client.create_multipart_upload(Bucket=creds["bucket"], Key=key,
                                                    ChecksumAlgorithm="SHA256")
            state.update(bucket=creds["bucket"], key=key, upload=answer["UploadId"])

        if not state:
            self._call_s3(f"CreateMultipartUpload {f.remote_path}", create)
            f.s3_upload = state["upload"]
            self.save_record()

        def part(number: int) -> dict[str, Any]:
            offset = (number - 1) * f.part_size
            length = min(f.part_size, f.size - offset)
            known = stored.get(number)
            if known is not None and known.get("Size") == length:
                data = _read(f, offset, length)
                if _part_matches(known, data):
                    bar.update(length)  # stored by an earlier run: not sent again
                    return {"PartNumber": number, "ETag": known["ETag"],
                            "ChecksumSHA256": known.get("ChecksumSHA256")
                            or base64.b64encode(hashlib.sha256(data).digest()).decode()}

            def upload(client: Any, creds: dict[str, Any]) -> dict[str, Any]:
                data = _read(f, offset, length)
                answer = client.upload_part(Bucket=state["bucket"], Key=state["key"],
                                            UploadId=state["upload"], PartNumber=number,
                                            Body=data, ChecksumAlgorithm="SHA256")
                return {"PartNumber": number, "ETag": answer["ETag"],
                        "ChecksumSHA256": answer.get("ChecksumSHA256")}

            done = self._call_s3(f"UploadPart {number}/{count} of {f.remote_path}", upload)
            self._count(length, bar)
            return done

        futures = [parts_pool.submit(part, n) for n in range(1, count + 1)]
        try:
            parts = [fut.result() for fut in futures]
        except BaseException as exc:
            for fut in futures:
                fut.cancel()
            if not isinstance(exc, Exception) or isinstance(exc, cf.CancelledError):
                # interrupted (Ctrl-C here, or the pools shut down by an interrupted run):
                # keep the parts sent, a rerun resumes them
                raise
            f.s3_upload = None
            with contextlib.suppress(Exception):
                client, _ = self.storage.get()
                client.abort_multipart_upload(Bucket=state["bucket"], Key=state["key"],
                                              UploadId=state["upload"])
            raise

        def complete(client: Any, creds: dict[str, Any]) -> None:
            client.complete_multipart_upload(
                Bucket=state["bucket"], Key=state["key"], UploadId=state["upload"],
                MultipartUpload={"Parts": [{k: v for k, v in p.items() if v is not None}
                                           for p in parts]})

        self._call_s3(f"CompleteMultipartUpload {f.remote_path}", complete)
        f.s3_upload = None

    def _stored_parts(self, f: UploadFile, state: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """The parts an interrupted run stored for ``f`` (``state`` filled to resume them), or
        ``{}`` when that multipart upload is gone."""
        parts: dict[int, dict[str, Any]] = {}

        def listing(client: Any, creds: dict[str, Any]) -> None:
            key = f"{creds['keyPrefix']}/{f.upload_id}"
            marker = 0
            while True:
                answer = client.list_parts(Bucket=creds["bucket"], Key=key, UploadId=f.s3_upload,
                                           PartNumberMarker=marker)
                for p in answer.get("Parts") or []:
                    parts[int(p["PartNumber"])] = p
                if not answer.get("IsTruncated"):
                    break
                marker = int(answer.get("NextPartNumberMarker") or 0)
            state.update(bucket=creds["bucket"], key=key, upload=f.s3_upload)

        try:
            self._call_s3(f"ListParts {f.remote_path}", listing)
        except _SendFailed as exc:
            log.info("%s: the interrupted multipart upload cannot be resumed (%s); starting it "
                     "again", f.remote_path, exc)
            state.clear()
            f.s3_upload = None
            return {}
        log.info("%s: resuming, %d of its parts already stored", f.remote_path, len(parts))
        return parts

    # -- the whole run ----------------------------------------------------------------------------
    def run(self, files: list[UploadFile], record: _Record | None = None,
            manifest_id: str | None = None) -> UploadResult:
        """Upload ``files`` (resuming ``manifest_id`` when given) and wait for the import."""
        result = UploadResult(self.dataset_id, "", files)
        self._record, self._files = record, files
        if not manifest_id:
            for f in files:
                f.status, f.error, f.s3_upload = "local", None, None
        else:
            self.manifest_id = manifest_id
            try:
                done = self.server_done()
            except (NotFoundError, PermissionDeniedError):
                log.info("manifest %s is gone; starting a new one", manifest_id)
                self.manifest_id, done = "", set()
                for f in files:
                    f.status, f.s3_upload = "local", None
            for f in files:
                if f.upload_id in done:
                    f.status = "skipped"
                elif f.status not in ("finalizing",):
                    f.status = "local"
        if not self.manifest_id:
            self.create_manifest()
        result.manifest_id = self.manifest_id
        carried = [f for f in files if f.status == "finalizing"]
        if carried:  # queued by an earlier run, not imported yet: ask again (idempotent), so
            self.finalize(carried)  # one whose import was lost does not wait here forever
            for f in carried:
                if f.status == "failed":  # its object is gone or differs: send it again
                    f.status, f.error = "local", None
        todo = [f for f in files if f.status == "local"]
        self.register(todo)
        self.save_record()
        self._event("registered")
        to_send = [f for f in todo if f.status == "registered"]
        self._transfer(to_send)
        self._await_import([f for f in files if f.status == "finalizing"])
        self.save_record()
        result.bytes_sent = self.bytes_sent
        return result

    def _transfer(self, to_send: list[UploadFile]) -> None:
        from sparc.client.progress import byte_bar

        if not to_send:
            return
        total = sum(f.size for f in to_send)
        ready: list[UploadFile] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if ready:
                self.finalize(list(ready))
                ready.clear()
                self.save_record()
            last_flush = time.monotonic()

        files_pool = cf.ThreadPoolExecutor(self.jobs, thread_name_prefix="sparc-upload")
        parts_pool = cf.ThreadPoolExecutor(self.jobs, thread_name_prefix="sparc-upload-part")
        try:
            with byte_bar(total=total, desc="upload", progress=self.progress) as bar:
                futures = {files_pool.submit(self.send, f, parts_pool, bar): f for f in to_send}
                for fut in cf.as_completed(futures):
                    f = futures[fut]
                    try:
                        fut.result()
                    except _SendFailed as exc:
                        f.status, f.error = "failed", str(exc)
                        self._event("failed", f)
                    except SparcError as exc:  # storage credentials refused, sign-in lost...
                        f.status, f.error = "failed", f"{type(exc).__name__}: {exc}"
                        self._event("failed", f)
                    else:
                        ready.append(f)
                    if len(ready) >= BATCH_SIZE or time.monotonic() - last_flush > FINALIZE_EVERY:
                        flush()
                flush()
        except BaseException:
            files_pool.shutdown(wait=False, cancel_futures=True)
            parts_pool.shutdown(wait=False, cancel_futures=True)
            raise
        files_pool.shutdown()
        parts_pool.shutdown()

    def _await_import(self, waiting: list[UploadFile]) -> None:
        """Poll the manifest status until every finalized file is imported, or time is up."""
        pending = {f.upload_id: f for f in waiting}
        deadline = time.monotonic() + self.poll_timeout
        delay = 0.1
        while pending:
            done = self._status_page_all("Finalized", verify=True)
            if len(done & pending.keys()) < len(pending):
                done |= self._status_page_all("Verified", verify=False)
            for upload_id in done & pending.keys():
                f = pending.pop(upload_id)
                f.status = "uploaded"
                self._event("uploaded", f)
            if not pending:
                break
            if time.monotonic() + delay > deadline:
                for f in pending.values():
                    f.error = (f"finalized but not imported within {self.poll_timeout:.0f} s "
                               "(run the upload again to check)")
                break
            time.sleep(delay)
            delay = min(2.0, delay * 1.5)


def _part_matches(stored: dict[str, Any], data: bytes) -> bool:
    """True when a stored part (ListParts) holds ``data``: its SHA-256, else its MD5 ETag."""
    if stored.get("ChecksumSHA256"):
        return bool(stored["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()
                                                                 ).decode())
    return bool(str(stored.get("ETag", "")).strip('"') == hashlib.md5(data).hexdigest())


def _read(f: UploadFile, offset: int, length: int) -> bytes:
    with f.source.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if len(data) != length:
        raise _SendFailed(f"{f.source} changed while uploading (now shorter than "
                          f"{offset + length} bytes)")
    return data


# -- the service methods -----------------------------------------------------------------------
class UploadMixin:
    """``upload()`` for :class:`~sparc.client.services.pennsieve.PennsieveService`."""

    if TYPE_CHECKING:
        @property
        def api2_host(self) -> str: ...

        def resolve_dataset(self, dataset: str | int) -> str: ...

    def upload(self, dataset: str | int,
               paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
               target_path: str = "", jobs: int = 4, on_conflict: str = "keepBoth",
               progress: bool | None = True, *, resume: bool = True,
               part_size: int = PART_SIZE, poll_timeout: float = 600.0) -> UploadResult:
        """Upload files or folders (recursively, each folder under its own name) to
        ``target_path`` in one of your datasets, without the Pennsieve Agent.

        ``dataset`` is a node id (``N:dataset:...``), an integer id or a name. ``jobs`` files
        (and multipart parts) go at once; ``on_conflict`` decides what a file of the same name
        does: ``keepBoth`` (renamed ``name (1)``) or ``replace``. Run it again after an
        interruption: files already imported are skipped (``resume=False`` starts afresh).
        Returns an :class:`UploadResult` (``uploaded``, ``skipped``, ``failed`` with reasons,
        ``bytes``); it never counts a file the server did not finalize. Example::

            result = client.pennsieve.upload("My dataset", ["data/"], target_path="raw", jobs=8)
            assert result.ok, result.failed
        """
        if not isinstance(part_size, int) or part_size < MIN_PART_SIZE:
            raise ArgumentError(f"part_size must be at least {MIN_PART_SIZE} bytes (8 MiB)")
        check_args(jobs, on_conflict)
        _boto()
        items = collect_files(paths, target_path)
        node_id = self.resolve_dataset(dataset)
        engine = UploadEngine(cast("PennsieveService", self), node_id, jobs=jobs,
                              on_conflict=on_conflict, progress=progress,
                              poll_timeout=poll_timeout)
        record = _Record([self.api2_host, node_id, clean_target(target_path), on_conflict,
                          *sorted(str(s) for s, _, _ in items)])
        known = record.load() if resume else None
        if known and known.get("dataset_id") != node_id:
            known = None
        files = plan_files(items, part_size, (known or {}).get("files"))
        manifest = str(known["manifest_id"]) if known and known.get("manifest_id") else None
        result = engine.run(files, record, manifest_id=manifest)
        log.info("upload to %s: %s", node_id, result.summary())
        return result

    def upload_engine(self, dataset: str | int, **kwargs: Any) -> UploadEngine:
        """An :class:`UploadEngine` for one of your datasets (for custom flows)."""
        return UploadEngine(cast("PennsieveService", self), self.resolve_dataset(dataset), **kwargs)

