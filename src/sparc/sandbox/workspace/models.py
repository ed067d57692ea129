"""The signed-in user's side of the platform, in memory: datasets, packages, upload manifests and
the storage credentials issued for them (one :class:`Workspace` per server, ``app.state.workspace``).

Everything is guarded by one lock: the routes run on the event loop, S3 requests in threads.
Example::

    ws = Workspace(user)
    ds = ws.create_dataset("Dataset_0", None, [])
    ws.dataset_dto(ds)["content"]["id"]   # 'N:dataset:<uuid>'
"""

from __future__ import annotations

import posixpath
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sparc.sandbox.workspace.tokens import ORGANIZATION_INT_ID, User

#: Manifest file statuses (pennsieve-go-core ``manifest/manifestFile/models.go``): the int is what
#: ``POST /manifest`` speaks, the name what the listings return.
FILE_STATUSES = ("Local", "Registered", "Imported", "Finalized", "Verified", "Failed", "Removed",
                 "Unknown", "Changed", "Uploaded", "FailedOrphan")
LOCAL, REGISTERED, IMPORTED, FINALIZED, VERIFIED, FAILED, REMOVED, UNKNOWN, CHANGED = 0, 1, 2, 3, 4, 5, 6, 7, 8
#: Seconds storage credentials live (``storage_credentials.go``: STS DurationSeconds 3600).
STORAGE_CREDENTIALS_LIFETIME = 3600
#: Package types by file extension (a subset of pennsieve-go-core's fileType dictionary) and
#: whether the type has a processing workflow (then the package stays UPLOADED, else READY).
PACKAGE_TYPES: dict[str, tuple[str, str, bool]] = {
    # ext: (file type, package type, processed)
    "txt": ("Text", "Text", False), "md": ("Markdown", "Text", False),
    "csv": ("CSV", "CSV", False), "tsv": ("TSV", "CSV", False),
    "json": ("Json", "Unknown", False), "xml": ("XML", "Unknown", False),
    "pdf": ("PDF", "PDF", False), "png": ("PNG", "Image", False), "jpg": ("JPEG", "Image", False),
    "jpeg": ("JPEG", "Image", False), "tif": ("TIFF", "Image", False), "tiff": ("TIFF", "Image", False),
    "xlsx": ("MSExcel", "MSExcel", False), "xls": ("MSExcel", "MSExcel", False),
    "docx": ("MSWord", "MSWord", False), "zip": ("ZIP", "ZIP", False), "h5": ("HDF5", "HDF5", False),
    "hdf5": ("HDF5", "HDF5", False), "mp4": ("MP4", "Video", False), "avi": ("AVI", "Video", False),
    "nwb": ("NWB", "HDF5", False), "edf": ("EDF", "TimeSeries", True), "mef": ("MEF", "TimeSeries", True),
    "dcm": ("DICOM", "MRI", True), "nii": ("NIFTI", "MRI", True),
}
DEFAULT_TYPE = ("GenericData", "Unknown", False)


def now_iso(ts: float | None = None) -> str:
    """An ISO-8601 UTC instant with microseconds, as the Scala API writes them."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_type(name: str) -> tuple[str, str, bool]:
    """``(file type, package type, has a workflow)`` of a file name by extension."""
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return PACKAGE_TYPES.get(ext, DEFAULT_TYPE)


@dataclass
class Package:
    int_id: int
    node_id: str
    name: str
    package_type: str
    dataset: Dataset
    parent: Package | None
    state: str = "READY"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = ""
    size: int | None = None
    extension: str | None = None
    upload_id: str | None = None
    key: str | None = None
    bucket: str | None = None

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at

    @property
    def hidden(self) -> bool:
        return self.state in ("DELETING", "DELETED", "RESTORING")

    def wrapped_dto(self, owner_int_id: int) -> dict[str, Any]:
        """``PackageDTO`` with the deprecated ``WrappedPackage`` content (a dataset's ``children``):
        ``id`` and ``datasetId`` are node ids, ``intId`` / ``datasetIntId`` the ints."""
        out = self.dto(owner_int_id)
        content = out["content"]
        content.update(id=self.node_id, datasetId=self.dataset.node_id, intId=self.int_id,
                       datasetIntId=self.dataset.int_id)
        return out

    def dto(self, owner_int_id: int) -> dict[str, Any]:
        """``ExtendedPackageDTO`` (``core-models/.../dtos/PackageDTO.scala``) with ``PackageContent``
        (``id`` and ``datasetId`` ints), as ``GET /datasets/{id}/packages`` lists them."""
        content: dict[str, Any] = {
            "id": self.int_id, "nodeId": self.node_id, "name": self.name, "packageType": self.package_type,
            "datasetId": self.dataset.int_id, "datasetNodeId": self.dataset.node_id,
            "ownerId": owner_int_id, "state": self.state, "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.parent is not None:
            content["parentId"] = self.parent.int_id
        out: dict[str, Any] = {"content": content, "properties": [], "children": []}
        if self.package_type != "Collection":
            out["storage"] = self.size or 0
            if self.extension:
                out["extension"] = self.extension
        return out


@dataclass
class Dataset:
    int_id: int
    node_id: str
    name: str
    description: str | None
    tags: list[str]
    created_at: str = field(default_factory=now_iso)
    updated_at: str = ""
    license: str | None = None
    automatically_process: bool = False

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at


@dataclass
class ManifestFile:
    upload_id: str
    target_path: str
    target_name: str
    status: int
    file_type: str
    merge_package_id: str = ""


@dataclass
class Manifest:
    id: str
    dataset: Dataset
    user_int_id: int
    date_created: int
    status: str = "Initiated"
    files: dict[str, ManifestFile] = field(default_factory=dict)

    @property
    def key_prefix(self) -> str:
        """``O{org}/D{dataset}/{manifest}`` (storage resolver ``KeyPrefix``)."""
        return f"O{ORGANIZATION_INT_ID}/D{self.dataset.int_id}/{self.id}"


@dataclass
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: float
    bucket: str
    key_prefix: str
    manifest_id: str

    @property
    def expired(self) -> bool:
        return time.time() >= self.expiration


class WorkspaceError(Exception):
    """A failure a route renders in its service's error shape (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


def _key(prefix: str, n: int) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(n))


class Workspace:
    """Datasets, packages, manifests and storage credentials of the sandbox user."""

    def __init__(self, user: User, bucket: str) -> None:
        self.user = user
        self.bucket = bucket
        self.lock = threading.RLock()
        self.datasets: dict[int, Dataset] = {}
        self.packages: dict[int, Package] = {}
        self.manifests: dict[str, Manifest] = {}
        self.credentials: dict[str, Credentials] = {}
        self.credentials_lifetime = STORAGE_CREDENTIALS_LIFETIME
        #: Seconds between a successful finalize and the import (the SQS + upload lambda hop).
        self.import_delay = 0.0
        self._next_dataset = 1001
        self._next_package = 1

    # ---- datasets ---------------------------------------------------------------------------------
    def create_dataset(self, name: str, description: str | None, tags: list[str],
                       license: str | None = None, automatically_process: bool = False) -> Dataset:
        """``POST /datasets`` (DatasetManager.scala: name non-empty, < 256 chars, unique in the org)."""
        name = name.strip()
        if not name:
            raise WorkspaceError(400, "dataset name must not be empty")
        with self.lock:
            if any(d.name == name for d in self.datasets.values()):
                raise WorkspaceError(400, "dataset name must be unique")
            if len(name) >= 256:
                raise WorkspaceError(400, "dataset name must be less than 255 characters")
            ds = Dataset(self._next_dataset, f"N:dataset:{uuid.uuid4()}", name, description, list(tags),
                         license=license, automatically_process=automatically_process)
            self._next_dataset += 1
            self.datasets[ds.int_id] = ds
            return ds

    def dataset(self, ref: str) -> Dataset:
        """A dataset by node id (``DatasetManager.getByNodeId``: an int id is not found); 404."""
        with self.lock:
            found = next((d for d in self.datasets.values() if d.node_id == ref), None)
        if found is None:
            raise WorkspaceError(404, f"{ref} not found")
        return found

    def storage(self, ds: Dataset) -> int:
        with self.lock:
            return sum(p.size or 0 for p in self.packages.values() if p.dataset is ds and not p.hidden)

    def dataset_dto(self, ds: Dataset, children: bool = False) -> dict[str, Any]:
        """``DataSetDTO`` as ``GET /datasets`` and ``GET /datasets/{id}`` (with ``children``) send it."""
        content = {
            "id": ds.node_id, "intId": ds.int_id, "name": ds.name, "description": ds.description,
            "state": "READY", "createdAt": ds.created_at, "updatedAt": ds.updated_at,
            "packageType": "DataSet", "datasetType": "research", "status": "NO_STATUS",
            "automaticallyProcessPackages": ds.automatically_process, "license": ds.license,
            "tags": list(ds.tags),
        }
        out: dict[str, Any] = {
            "content": content, "organization": self.user.organization_node_id, "owner": self.user.node_id,
            "collaboratorCounts": {"users": 0, "organizations": 0, "teams": 0},
            "storage": self.storage(ds),
            "status": {"id": 1, "name": "NO_STATUS", "displayName": "No Status", "color": "#71747C",
                       "inUse": True},
            "publication": {"status": "draft"},
            "properties": [], "canPublish": False, "locked": False, "role": "owner",
        }
        if children:
            with self.lock:
                roots = [p for p in self.packages.values() if p.dataset is ds and p.parent is None and not p.hidden]
            out["children"] = [p.wrapped_dto(self.user.int_id) for p in roots]
        return out

    # ---- packages ---------------------------------------------------------------------------------
    def _add_package(self, ds: Dataset, name: str, package_type: str, parent: Package | None,
                     node_id: str, **extra: Any) -> Package:
        pkg = Package(self._next_package, node_id, name, package_type, ds, parent, **extra)
        self._next_package += 1
        self.packages[pkg.int_id] = pkg
        return pkg

    def list_packages(self, ds: Dataset, page_size: int, cursor: int | None, types: set[str],
                      filename: str | None) -> tuple[list[Package], int | None]:
        """Packages of a dataset in id order from ``cursor`` (inclusive); and the next cursor."""
        with self.lock:
            rows = [p for p in self.packages.values()
                    if p.dataset is ds and not p.hidden and (cursor is None or p.int_id >= cursor)
                    and (not types or p.package_type.lower() in types)
                    and (filename is None or p.name == filename)]
        rows.sort(key=lambda p: p.int_id)
        page = rows[:page_size]
        return page, (rows[page_size].int_id if len(rows) > page_size else None)

    def delete_packages(self, node_ids: list[str]) -> tuple[list[str], list[dict[str, str]]]:
        """``POST /data/delete``: soft-delete packages (a folder with its contents)."""
        success: list[str] = []
        failures: list[dict[str, str]] = []
        with self.lock:
            by_node = {p.node_id: p for p in self.packages.values() if not p.hidden}
            for node_id in node_ids:
                pkg = by_node.get(node_id)
                if pkg is None:
                    failures.append({"id": node_id, "error": f"{node_id} not found"})
                    continue
                self._delete_tree(pkg)
                success.append(node_id)
        return success, failures

    def _delete_tree(self, pkg: Package) -> None:
        pkg.state = "DELETED"
        pkg.updated_at = now_iso()
        for child in [p for p in self.packages.values() if p.parent is pkg and not p.hidden]:
            self._delete_tree(child)

    def _folder(self, ds: Dataset, path: str) -> Package | None:
        """The Collection package for ``a/b`` (created as needed), ``None`` for the root."""
        parent: Package | None = None
        for part in [p for p in path.strip("/").split("/") if p]:
            found = next((p for p in self.packages.values()
                          if p.dataset is ds and p.parent is parent and p.name == part
                          and p.package_type == "Collection" and not p.hidden), None)
            if found is None:
                found = self._add_package(ds, part, "Collection", parent, f"N:collection:{uuid.uuid4()}")
            parent = found
        return parent

    def import_file(self, manifest: Manifest, mf: ManifestFile, size: int, on_conflict: str) -> Package:
        """The upload lambda's import (``store.go``): folders from ``target_path``, then the file as
        ``N:package:<upload_id>`` (keepBoth: renamed ``name (N)``; replace: predecessor deleted)."""
        ds = manifest.dataset
        with self.lock:
            existing = next((p for p in self.packages.values() if p.node_id == f"N:package:{mf.upload_id}"), None)
            if existing is not None:
                return existing
            parent = self._folder(ds, mf.target_path)
            siblings = {p.name: p for p in self.packages.values()
                        if p.dataset is ds and p.parent is parent and not p.hidden}
            name = mf.target_name
            if name in siblings:
                if on_conflict == "replace" and siblings[name].package_type != "Collection":
                    self._delete_tree(siblings[name])
                else:
                    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
                    n = 1
                    while (candidate := f"{stem} ({n}){dot}{ext}") in siblings:
                        n += 1
                    name = candidate
            ftype, ptype, processed = file_type(mf.target_name)
            pkg = self._add_package(ds, name, ptype, parent, f"N:package:{mf.upload_id}",
                                    state="UPLOADED" if processed else "READY", size=size,
                                    extension=posixpath.splitext(mf.target_name)[1].lstrip(".") or None,
                                    upload_id=mf.upload_id, key=f"{manifest.key_prefix}/{mf.upload_id}",
                                    bucket=self.bucket)
            mf.status = FINALIZED
            ds.updated_at = now_iso()
            return pkg

    # ---- manifests --------------------------------------------------------------------------------
    def create_manifest(self, ds: Dataset) -> Manifest:
        with self.lock:
            m = Manifest(str(uuid.uuid4()), ds, self.user.int_id, int(time.time()))
            self.manifests[m.id] = m
            return m

    def manifest(self, manifest_id: str) -> Manifest | None:
        with self.lock:
            return self.manifests.get(manifest_id)

    def issue_credentials(self, manifest: Manifest) -> Credentials:
        """Short-lived STS-like credentials limited to the manifest's key prefix."""
        with self.lock:
            creds = Credentials(
                access_key_id=_key("ASIA", 16), secret_access_key=secrets.token_urlsafe(30)[:40],
                session_token=secrets.token_urlsafe(96), expiration=time.time() + self.credentials_lifetime,
                bucket=self.bucket, key_prefix=manifest.key_prefix, manifest_id=manifest.id)
            self.credentials[creds.access_key_id] = creds
            return creds

    def expire_credentials(self) -> int:
        """Make every storage credential issued so far expired; how many there were."""
        with self.lock:
            for creds in self.credentials.values():
                creds.expiration = min(creds.expiration, time.time() - 1)
            return len(self.credentials)
