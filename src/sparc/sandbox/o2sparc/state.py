"""The emulated api-server's state: files, pending uploads, jobs and the object store behind them.

Everything lives in memory (one sandbox process, one event loop) with file bytes on disk under
``<data_dir>/o2sparc/``. Routes call these methods and render what they return; failures are
raised as :class:`~sparc.sandbox.o2sparc.errors.O2Error` in the api-server's own words.

Example::

    state = O2State(Path("/tmp/sb"), url_expiry=3600)
    f = state.add_file("a.txt", Path("/tmp/a.txt"))
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import secrets
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from sparc.sandbox.assets.signing import Signer as SigV4Signer
from sparc.sandbox.o2sparc import errors
from sparc.sandbox.o2sparc.catalog import Release

#: ``models_library.projects_nodes_io`` namespace for file ids (``uuid3(NS, ...)``).
NAMESPACE_FILEID_KEY = uuid.UUID("aa154444-d22d-4290-bb15-df37dba87865")
STORAGE_PREFIX = "/v0/_storage/simcore/"  # presigned "S3" URLs of the sandbox's object store
MiB = 2**20
#: storage's upload schema: below this, one presigned PUT of the whole file; else S3 multipart
MULTIPART_THRESHOLD = 100 * MiB
MAX_PARTS = 10000
_CHUNK_SIZES = (10 * MiB, 50 * MiB, 100 * MiB, 200 * MiB, 400 * MiB, 1024 * MiB, 2048 * MiB,
                3072 * MiB, 4096 * MiB, 5120 * MiB)
TERMINAL = ("SUCCESS", "FAILED", "ABORTED")
RUNNING = ("PUBLISHED", "PENDING", "WAITING_FOR_CLUSTER", "WAITING_FOR_RESOURCES", "STARTED")


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """A timestamp as pydantic v2 writes an aware UTC datetime (``2024-05-01T12:00:00.123456Z``)."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def upload_chunk_size(filesize: int) -> int:
    """storage's chunk size: the whole file under 100 MiB, else the smallest size under 10000 parts."""
    if filesize < MULTIPART_THRESHOLD:
        return filesize
    for size in _CHUNK_SIZES:
        if -(-filesize // size) < MAX_PARTS:
            return size
    raise errors.O2Error(422, errors.invalid(["body", "filesize"], "File is too large", "value_error",
                                             filesize))


@dataclass
class StoredFile:
    """A file the api-server knows: an upload (``listed``) or a job output (a soft link)."""

    id: str
    filename: str
    path: Path
    object_key: str
    checksum: str | None
    e_tag: str | None
    listed: bool = True
    content_type: str = ""

    def __post_init__(self) -> None:
        self.content_type = self.content_type or content_type(self.filename)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "filename": self.filename, "content_type": self.content_type,
                "checksum": self.checksum, "e_tag": self.e_tag}


@dataclass
class Upload:
    """A chunked upload between ``POST /v0/files/content`` and ``:complete`` / ``:abort``."""

    file_id: str
    filename: str
    filesize: int
    sha256: str
    chunk_size: int
    upload_id: str
    folder: Path
    parts: dict[int, str] = field(default_factory=dict)  # part number -> md5 hex

    @property
    def n_parts(self) -> int:
        return max(1, -(-self.filesize // self.chunk_size)) if self.chunk_size else 1

    @property
    def object_key(self) -> str:
        return f"api/{self.file_id}/{self.filename}"


@dataclass
class Job:
    """One solver job (a project with one node, in the real platform)."""

    id: str
    release: Release
    values: dict[str, Any]
    inputs_checksum: str
    created_at: datetime
    folder: Path
    state: str = "NOT_STARTED"
    progress: int = 0
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    errors: list[dict[str, Any]] | None = None
    results: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    logs_zip: Path | None = None
    assets_deleted: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> str:
        return str(uuid.uuid5(uuid.UUID(self.id), "node"))

    @property
    def started(self) -> bool:
        return self.state != "NOT_STARTED"

    def write_log(self, message: str) -> None:
        stamp = now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.log.append(f"{stamp} [{self.release.name}] {message}")

    def status(self) -> dict[str, Any]:
        """``JobStatus``. A never-started job: NOT_STARTED, ``submitted_at`` = now (no run yet)."""
        return {"job_id": self.id, "state": self.state, "progress": self.progress,
                "submitted_at": iso(self.submitted_at or now()), "started_at": iso(self.started_at),
                "stopped_at": iso(self.stopped_at), "errors": self.errors}


FILE_FIELDS = ("id", "filename", "content_type", "checksum", "e_tag")


def inputs_checksum(values: dict[str, Any]) -> str:
    """``JobInputs.compute_checksum``: sha256 of ``key:str(value)`` over the sorted keys; a File
    value by the same checksum of its (complete) field dict."""
    dump = ""
    for key in sorted(values):
        value = values[key]
        if isinstance(value, dict):
            value = inputs_checksum({name: value.get(name) for name in FILE_FIELDS})
        dump += f"{key}:{value}"
    return hashlib.sha256(dump.encode()).hexdigest()


def storage_failed() -> errors.O2Error:
    """Storage refused (S3 ``InvalidPart``, unknown upload): the api-server's 502."""
    return errors.O2Error(502, "Received unexpected response from Storage")


class Signer:
    """Presigned URLs of the sandbox's object store: SigV4, signed and checked as the asset store
    does (:class:`sparc.sandbox.assets.signing.Signer`)."""

    def __init__(self, expiry: int) -> None:
        self.sigv4 = SigV4Signer(secrets.token_bytes(32), expiry)

    def url(self, base: str, method: str, key: str, **extra: str) -> str:
        path = STORAGE_PREFIX + key
        query = self.sigv4.query(method, urlsplit(base).netloc, path, extra)
        return f"{base}{quote(path, safe='/-_.~')}?{urlencode(query, quote_via=quote)}"

    def check(self, method: str, host: str, path: str, params: list[tuple[str, str]]) -> None:
        """Raise S3's error unless ``params`` sign ``method path`` for ``host`` and have not expired."""
        self.sigv4.check(method, host, path, params)


def _join_parts(folder: Path, numbers: list[int]) -> Path:
    """The parts ``numbers`` of an upload, in that order, as one file (a single part is renamed)."""
    target = folder / "assembled"
    if len(numbers) == 1:
        (folder / f"part-{numbers[0]}").replace(target)
        return target
    with target.open("wb") as out:
        for number in numbers:
            with (folder / f"part-{number}").open("rb") as part:
                shutil.copyfileobj(part, out, MiB)
    return target


class O2State:
    """Files, uploads, jobs and stored objects of the one sandbox user."""

    def __init__(self, root: Path, url_expiry: int, time_scale: float = 1.0) -> None:
        self.root = root
        for sub in ("files", "uploads", "jobs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.signer = Signer(url_expiry)
        self.time_scale = time_scale
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, Upload] = {}
        self.jobs: dict[str, Job] = {}
        self.objects: dict[str, Path] = {}  # object key -> bytes on disk
        self.streaming: set[str] = set()  # jobs with a log stream connected
        self.profile: dict[str, str | None] = {"first_name": "Sandbox", "last_name": "User"}

    # ---- files -----------------------------------------------------------------------------------
    def new_file_id(self, prefix: str | int, filename: str) -> str:
        return str(uuid.uuid3(NAMESPACE_FILEID_KEY, f"{prefix}:{filename}:{iso(now())}"))

    def store_file(self, file_id: str, filename: str, source: Path, *, sha256: str | None,
                   e_tag: str | None, listed: bool = True, object_key: str | None = None) -> StoredFile:
        """Move ``source`` into the store and register it under ``file_id``."""
        folder = self.root / "files" / file_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "content"
        shutil.move(str(source), target)
        stored = StoredFile(file_id, filename, target, object_key or f"api/{file_id}/{filename}",
                            sha256, e_tag, listed)
        self.files[file_id] = stored
        self.objects[stored.object_key] = target
        return stored

    def get_file(self, file_id: str) -> StoredFile:
        found = self.files.get(file_id)
        if found is None or not found.listed:
            raise errors.not_found(f"File with identifier {file_id} not found")
        return found

    def delete_file(self, file_id: str) -> None:
        stored = self.get_file(file_id)
        del self.files[file_id]
        self.objects.pop(stored.object_key, None)
        shutil.rmtree(stored.path.parent, ignore_errors=True)

    def listed_files(self) -> list[StoredFile]:
        return [f for f in self.files.values() if f.listed]

    # ---- uploads ---------------------------------------------------------------------------------
    def start_upload(self, filename: str, filesize: int, sha256: str) -> Upload:
        file_id = self.new_file_id(filesize, filename)
        folder = self.root / "uploads" / file_id
        folder.mkdir(parents=True, exist_ok=True)
        upload = Upload(file_id, filename, filesize, sha256, upload_chunk_size(filesize),
                        secrets.token_urlsafe(24), folder)
        self.uploads[file_id] = upload
        return upload

    def upload_for(self, object_key: str, upload_id: str) -> Upload | None:
        return next((u for u in self.uploads.values()
                     if u.object_key == object_key and u.upload_id == upload_id), None)

    async def complete_upload(self, file_id: str, parts: list[tuple[int, str]]) -> StoredFile:
        """S3 CompleteMultipartUpload: the listed parts, in part-number order, must all be uploaded.

        The parts are joined off the event loop (a copy of the whole file); the state changes on it.
        """
        upload = self.uploads.get(file_id)
        if upload is None:
            done = self.files.get(file_id)
            if done is not None:  # completing twice: storage answers with the file it has
                return done
            raise storage_failed()
        numbers = sorted(parts)
        if not numbers:
            raise storage_failed()
        md5s = []
        for number, e_tag in numbers:
            part_md5 = upload.parts.get(number)
            if part_md5 is None or part_md5 != e_tag.strip('"'):
                raise storage_failed()  # S3 InvalidPart
            md5s.append(part_md5)
        del self.uploads[file_id]  # a concurrent second complete waits for nothing: it fails or finds the file
        try:
            target = await asyncio.to_thread(_join_parts, upload.folder, [n for n, _ in numbers])
        except BaseException:
            self.uploads[file_id] = upload
            raise
        if len(md5s) == 1:
            e_tag = md5s[0]
        else:
            e_tag = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest() + f"-{len(md5s)}"
        stored = self.store_file(file_id, upload.filename, target, sha256=upload.sha256, e_tag=e_tag)
        shutil.rmtree(upload.folder, ignore_errors=True)
        return stored

    def abort_upload(self, file_id: str) -> None:
        upload = self.uploads.pop(file_id, None)
        if upload is not None:
            shutil.rmtree(upload.folder, ignore_errors=True)

    # ---- jobs ------------------------------------------------------------------------------------
    def create_job(self, release: Release, values: dict[str, Any]) -> Job:
        job_id = str(uuid.uuid4())
        folder = self.root / "jobs" / job_id
        folder.mkdir(parents=True)
        job = Job(job_id, release, values, inputs_checksum(values), now(), folder)
        self.jobs[job_id] = job
        return job

    def get_job(self, release: Release, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.release is not release:
            raise errors.not_found(f"The solver or project job {job_id} could not be found.")
        return job

    def jobs_of(self, release: Release) -> list[Job]:
        return sorted((j for j in self.jobs.values() if j.release is release),
                      key=lambda j: j.created_at, reverse=True)

    def link_outputs(self, job: Job) -> dict[str, Any]:
        """The job's results, its output files soft-linked into ``api/`` (listed) from now on."""
        for value in (job.results or {}).values():
            if isinstance(value, dict) and value.get("id") in self.files:
                self.files[value["id"]].listed = True
        return job.results or {}

    def drop_outputs(self, job: Job) -> None:
        for value in (job.results or {}).values():
            if isinstance(value, dict) and value.get("id") in self.files:
                self.files[value["id"]].listed = True
                self.delete_file(value["id"])
        if job.logs_zip is not None:
            self.objects = {k: p for k, p in self.objects.items() if p != job.logs_zip}

    def delete_job(self, job: Job) -> None:
        if job.task is not None and not job.task.done():
            job.task.cancel()
        self.drop_outputs(job)
        self.jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)
