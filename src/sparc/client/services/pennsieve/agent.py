"""The Pennsieve client's (``pennsieve`` 7.x, ``pennsieve2``) upload surface, without the Agent.

``client.pennsieve.connect()`` returns a :class:`Pennsieve` with the names, argument names and
order of ``pennsieve.Pennsieve``, so a notebook written for the Agent changes only its import::

    p = client.pennsieve.connect()       # prints "Please set the dataset with use_dataset([name])"
    p.user.whoami()
    p.get_datasets()                     # {dataset name: node id}
    p.use_dataset("Dataset_0")           # a name or a node id
    p.manifest.create("manifest.json")   # manifest_id: 1 / message: "Successfully indexed 1 files."
    p.manifest.add("more/", target_base_path="raw")
    p.manifest.list_files(); p.manifest.list_manifests()
    p.manifest.upload()                  # status: "Upload initiated."; returns once imported

The Agent queued uploads in the background; here ``upload()`` returns when every file is
finalized (its reply's ``result`` is the :class:`~.upload.UploadResult`), with a progress
bar. ``upload(wait=False)`` starts it in a thread instead, and ``p.manifest.wait()`` waits for
it. Manifests live in this process (the Agent kept them in its database). Any other attribute
(``p.list_datasets(...)``, ``p.upload(...)``) is the service's own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparc.client.errors import ArgumentError, NotFoundError
from sparc.client.services.pennsieve.upload import (
    UploadEngine,
    UploadFile,
    UploadResult,
    clean_target,
    collect_files,
    plan_files,
)

if TYPE_CHECKING:
    from sparc.client import SparcClient
    from sparc.client.services.pennsieve.service import PennsieveService

__all__ = ["Pennsieve", "Manifest", "UserProfile", "Reply"]

USE_DATASET_MESSAGE = "Please set the dataset with use_dataset([name])"
#: The Agent's file status names (ListManifestFilesResponse.StatusType).
_FILE_STATUS = {"local": "LOCAL", "registered": "REGISTERED", "sent": "UPLOADED",
                "finalizing": "FINALIZED", "uploaded": "VERIFIED", "skipped": "VERIFIED",
                "failed": "FAILED"}


class Reply:
    """An Agent reply: attributes as the protobuf message's fields, shown as protobuf text
    (``manifest_id: 1`` / ``message: "..."``); ``reply["field"]`` and ``dict(reply)`` work."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def keys(self) -> list[str]:
        return [k for k in self.__dict__ if not k.startswith("_")]

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and dict(self) == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        lines: list[str] = []
        for key in self.keys():
            value = self.__dict__[key]
            if value in (None, "", 0, [], False) or isinstance(value, UploadResult):
                continue
            if isinstance(value, list):
                for item in value:
                    inner = repr(item).replace("\n", "\n  ")
                    lines.append(f"{key} {{\n  {inner}\n}}")
            elif isinstance(value, str) and value.isupper() and value.isidentifier():
                lines.append(f"{key}: {value}")  # an enum name
            elif isinstance(value, str):
                lines.append(f"{key}: {_quote(value)}")
            else:
                lines.append(f"{key}: {value}")
        return "\n".join(lines)

    __str__ = __repr__


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class UserProfile:
    """``p.user``: who is signed in (``whoami()``), as the Agent's UserResponse (no token)."""

    def __init__(self, service: PennsieveService) -> None:
        self._service = service

    def whoami(self) -> Reply:
        """The signed-in user: ``id``, ``name``, ``profile``, ``environment``,
        ``organization_id``, ``organization_name``, ``api_host``, ``api2_host``,
        ``token_expire`` (the token itself is never shown)."""
        service = self._service
        user = service.whoami()
        session = service.auth.current()
        org_name = ""
        for org in _organizations(service):
            if (org.get("organization") or {}).get("id") == session.organization_node_id:
                org_name = str(org["organization"].get("name") or "")
        return Reply(
            id=str(user.get("id", "")),
            name=" ".join(str(user.get(k) or "") for k in ("firstName", "lastName")).strip(),
            token_expire=int(session.expires_at),
            profile=service.get_profile() or "",
            environment="",
            organization_id=session.organization_node_id,
            organization_name=org_name,
            api_host=service.host,
            api2_host=service.api2_host,
        )

    def reauthenticate(self) -> Reply:
        """Sign in again now; the reply says until when the new token lives."""
        session = self._service.auth.sign_in()
        return Reply(token_expire=int(session.expires_at),
                     organization_id=session.organization_node_id)

    def switch(self, profile: str) -> Reply:
        """Switch to another profile of the config file (and sign in with it)."""
        self._service.set_profile(profile)
        return self.whoami()


def _organizations(service: PennsieveService) -> list[dict[str, Any]]:
    try:
        answer = service.private_request("GET", "/organizations")
    except (NotFoundError, ArgumentError):
        return []
    except Exception:  # noqa: BLE001 - the name is a nicety; whoami must not fail for it
        return []
    if isinstance(answer, dict):
        answer = answer.get("organizations") or []
    return [o for o in answer if isinstance(o, dict)] if isinstance(answer, list) else []


class _LocalManifest:
    def __init__(self, number: int, dataset_id: str, dataset_name: str) -> None:
        self.id = number
        self.dataset_id = dataset_id
        self.dataset_name = dataset_name
        self.node_id = ""
        self.files: list[UploadFile] = []
        self.status = "Initiated"
        self.result: UploadResult | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None


class Manifest:
    """``p.manifest``: index files locally, then ``upload()`` them (no Agent)."""

    def __init__(self, owner: Pennsieve) -> None:
        self._owner = owner
        self._manifests: list[_LocalManifest] = []
        self.manifest: Reply | None = None

    # -- indexing ------------------------------------------------------------------------------
    def create(self, base_path: str, target_base_path: str = "", recursive: bool = True,
               files: Sequence[str] | None = None) -> Reply:
        """Index a file or folder (a folder's content goes to ``target_base_path``) into a new
        manifest for the dataset chosen with ``use_dataset``; reply ``manifest_id``,
        ``message``. Files are hashed now: one changed before ``upload()`` fails there."""
        owner = self._owner
        if owner.dataset is None:
            raise ArgumentError(f"no dataset chosen: {USE_DATASET_MESSAGE}")
        manifest = _LocalManifest(len(self._manifests) + 1, owner.dataset, owner.dataset_name)
        count = self._index(manifest, base_path, target_base_path, recursive, files)
        self._manifests.append(manifest)
        self.manifest = self._dto(manifest)
        return Reply(manifest_id=manifest.id, message=f"Successfully indexed {count} files.")

    def add(self, base_path: str, target_base_path: str = "", manifest_id: int | None = None,
            recursive: bool = True, files: Sequence[str] | None = None) -> Reply:
        """Add a file or folder to the current manifest (or ``manifest_id``); creates one
        when there is none."""
        if self.manifest is None and manifest_id is None:
            return self.create(base_path, target_base_path, recursive, files)
        manifest = self._get(manifest_id)
        count = self._index(manifest, base_path, target_base_path, recursive, files)
        return Reply(status=f"Successfully indexed {count} files.")

    def _index(self, manifest: _LocalManifest, base_path: str, target_base_path: str,
               recursive: bool, files: Sequence[str] | None) -> int:
        if not isinstance(base_path, (str, Path)):
            raise ArgumentError(f"base_path must be a file or folder, got {base_path!r}")
        base = Path(base_path).expanduser()
        target = clean_target(target_base_path)
        if files:
            items = collect_files([base / f for f in files], target)
        else:
            items = collect_files([base], target, keep_folder_name=False)
        if not recursive and base.is_dir():
            items = [i for i in items if i[1] == target]
        known = {str(f.source) for f in manifest.files}
        taken = {(f.target_path, f.target_name) for f in manifest.files}
        fresh = [i for i in items if str(i[0]) not in known and (i[1], i[2]) not in taken]
        manifest.files.extend(plan_files(fresh))
        return len(fresh)

    def remove_file(self, file_id: int | str | Sequence[int | str],
                    manifest_id: int | None = None) -> Reply:
        """Take files (by their ``id`` in :meth:`list_files`) out of a manifest before its
        upload; the ids of the files after them move up."""
        manifest = self._idle(manifest_id)
        ids = [file_id] if isinstance(file_id, (int, str)) else list(file_id)
        try:
            wanted = {int(i) for i in ids if not isinstance(i, bool)}
        except (TypeError, ValueError):
            wanted = set()
        if not wanted or len(wanted) != len(ids) \
                or not all(1 <= i <= len(manifest.files) for i in wanted):
            raise ArgumentError(f"file_id must be file ids of manifest {manifest.id} "
                                f"(1..{len(manifest.files)}, see list_files()), got {file_id!r}")
        manifest.files = [f for n, f in enumerate(manifest.files, 1) if n not in wanted]
        return Reply(status=f"Removed {len(wanted)} files.")

    def delete(self, manifest_id: int) -> Reply:
        """Forget a manifest (the other manifests keep their ids)."""
        manifest = self._idle(manifest_id)
        manifest.files, manifest.status = [], "Deleted"
        if self.manifest is not None and self.manifest["id"] == manifest.id:
            self.manifest = None
        return Reply(status="Manifest deleted.")

    def _idle(self, manifest_id: int | None) -> _LocalManifest:
        manifest = self._get(manifest_id)
        if manifest.thread is not None and manifest.thread.is_alive():
            raise ArgumentError(f"manifest {manifest.id} is uploading: wait() for it first")
        return manifest

    # -- listing -------------------------------------------------------------------------------
    def list_manifests(self) -> list[Reply]:
        """Every manifest of this session (``id``, ``node_id``, ``dataset_name``,
        ``dataset_id``, ``status``, ...)."""
        return [self._dto(m) for m in self._manifests if m.status != "Deleted"]

    def get_manifest(self, manifest_id: int | None = None) -> Reply | None:
        """The manifest ``manifest_id`` (1-based), else the current one."""
        if not self._manifests:
            return None
        return self._dto(self._get(manifest_id))

    def set_manifest(self, manifest_id: int | None = None) -> None:
        """Make ``manifest_id`` (default: the newest) the current manifest."""
        if not self._manifests:
            raise ArgumentError("Please create a manifest by calling p.manifest.create()")
        self.manifest = self._dto(self._get(manifest_id or len(self._manifests)))

    def list_files(self, manifest_id: int | None = None, offset: int = 0,
                   limit: int = 100) -> Reply:
        """The manifest's files: reply ``file``, a list of (``id``, ``manifest_id``,
        ``source_path``, ``target_path``, ``upload_id``, ``status``)."""
        manifest = self._get(manifest_id)
        chosen = manifest.files[offset:offset + limit]
        return Reply(file=[Reply(id=offset + n + 1, manifest_id=manifest.id,
                                 source_path=str(f.source), target_path=f.remote_path,
                                 upload_id=f.upload_id, status=_FILE_STATUS.get(f.status, "UNKNOWN"))
                           for n, f in enumerate(chosen)])

    # -- upload --------------------------------------------------------------------------------
    def upload(self, manifest_id: int | None = None, wait: bool = True,
               on_conflict: str = "keepBoth", jobs: int = 4,
               progress: bool | None = True) -> Reply:
        """Upload the manifest's files (status ``"Upload initiated."``). By default it returns
        once every file is finalized (reply ``result``: the UploadResult, also
        ``manifest_status``); ``wait=False`` uploads in a background thread: call
        :meth:`wait` for the result."""
        manifest = self._get(manifest_id)
        if manifest.thread is not None and manifest.thread.is_alive():
            return Reply(status="Upload already in progress.")
        service = self._owner._service
        engine = UploadEngine(service, manifest.dataset_id, jobs=jobs, on_conflict=on_conflict,
                              progress=progress)
        todo = [f for f in manifest.files if f.status not in ("uploaded", "skipped")]
        manifest.status = "Uploading"

        def run() -> None:
            try:
                result = engine.run(todo, manifest_id=None)
                manifest.node_id = result.manifest_id
                manifest.result = UploadResult(manifest.dataset_id, result.manifest_id,
                                               manifest.files, result.bytes_sent)
                manifest.status = "Completed" if manifest.result.ok else "Failed"
            except BaseException as exc:
                manifest.error = exc
                manifest.status = "Failed"
                raise

        if not wait:
            manifest.error = None
            manifest.thread = threading.Thread(target=_quiet(run), name="sparc-manifest-upload",
                                               daemon=False)
            manifest.thread.start()
            return Reply(status="Upload initiated.")
        run()
        return Reply(status="Upload initiated.", manifest_status=manifest.status,
                     result=manifest.result)

    start_upload = upload

    def wait(self, manifest_id: int | None = None, timeout: float | None = None) -> UploadResult:
        """Wait for ``upload(wait=False)`` to end; the :class:`~.upload.UploadResult`."""
        manifest = self._get(manifest_id)
        if manifest.thread is not None:
            manifest.thread.join(timeout)
            if manifest.thread.is_alive():
                raise TimeoutError(f"manifest {manifest.id} is still uploading after {timeout} s")
        if manifest.error is not None:
            raise manifest.error
        if manifest.result is None:
            raise ArgumentError(f"manifest {manifest.id} was not uploaded: call "
                                "p.manifest.upload() first")
        return manifest.result

    def reset(self, manifest_id: int | None = None) -> Reply:
        """Mark every not-yet-imported file of the manifest for upload again."""
        manifest = self._get(manifest_id)
        for f in manifest.files:
            if f.status not in ("uploaded", "skipped"):
                f.status, f.error = "local", None
        return Reply(status="Manifest reset.")

    # -- helpers -------------------------------------------------------------------------------
    def _get(self, manifest_id: int | None) -> _LocalManifest:
        if not self._manifests:
            raise ArgumentError("Please create a manifest first.")
        if manifest_id is None:
            live = [m.id for m in self._manifests if m.status != "Deleted"]
            if self.manifest is None and not live:
                raise ArgumentError("Please create a manifest first.")
            manifest_id = self.manifest["id"] if self.manifest is not None else live[-1]
        if isinstance(manifest_id, bool) or not isinstance(manifest_id, int) \
                or not 1 <= manifest_id <= len(self._manifests) \
                or self._manifests[manifest_id - 1].status == "Deleted":
            live = [m.id for m in self._manifests if m.status != "Deleted"]
            raise ArgumentError(f"manifest_id must be one of {live} (see list_manifests()), "
                                f"got {manifest_id!r}")
        return self._manifests[manifest_id - 1]

    def _dto(self, m: _LocalManifest) -> Reply:
        session = self._owner._service.auth.session
        return Reply(id=m.id, node_id=m.node_id, user_name="", user_id="",
                     organization_name="",
                     organization_id=session.organization_node_id if session else "",
                     dataset_name=m.dataset_name, dataset_id=m.dataset_id, status=m.status)


def _quiet(run: Any) -> Any:
    def target() -> None:
        try:
            run()
        except BaseException:  # noqa: BLE001 - kept on the manifest for wait() to raise
            pass
    return target


class Pennsieve:
    """pennsieve 7.x's ``Pennsieve`` object, signed in over HTTP instead of an Agent.

    ``user``, ``manifest``, ``get_datasets()``, ``use_dataset()``/``set_dataset()``,
    ``get/post/put/delete``; anything else is :class:`PennsieveService`'s. Built by
    ``client.pennsieve.connect()``, or directly, as in a pennsieve notebook, changing only the
    import::

        from sparc.client.services.pennsieve.agent import Pennsieve
        p = Pennsieve()                      # was: from pennsieve import Pennsieve
        p = Pennsieve(profile_name="lab")    # a profile of ~/.pennsieve/config.ini

    ``target`` and ``connect_timeout_seconds`` (the Agent's address) are accepted and unused.
    """

    def __init__(self, connect: bool = True, target: str = "localhost:9000",
                 connect_timeout_seconds: float | None = 1, profile_name: str | None = None,
                 http_api_client: Any = None) -> None:
        from sparc.client import SparcClient

        settings = {"pennsieve_profile_name": profile_name} if profile_name else {}
        self._client: SparcClient | None = SparcClient(connect=False, config=settings)
        self._setup(self._client.pennsieve)
        if connect:
            try:
                self.connect()
            except BaseException:  # no client (and its connection pool) left behind
                self._client.close()
                raise

    @classmethod
    def for_service(cls, service: PennsieveService, connected: bool) -> Pennsieve:
        """The object ``service.connect()`` returns (signed in when ``connected``)."""
        self = cls.__new__(cls)
        self._client = None
        self._setup(service)
        if connected:
            print(USE_DATASET_MESSAGE)
        return self

    def _setup(self, service: PennsieveService) -> None:
        self._service = service
        self.api = self
        self._datasets: dict[str, str] | None = None
        self.dataset: str | None = None
        self.dataset_name = ""
        self.user = UserProfile(service)
        self.manifest = Manifest(self)

    def connect(self, target: str = "localhost:9000", connect_timeout_seconds: float | None = 1,
                profile_name: str | None = None) -> Pennsieve:
        """Sign in (no Agent): prints ``Please set the dataset with use_dataset([name])``."""
        if profile_name and profile_name != self._service.config.pennsieve_profile_name:
            raise ArgumentError(f"to use Pennsieve profile {profile_name!r}, build "
                                f"Pennsieve(profile_name={profile_name!r})")
        self._service.sign_in()
        print(USE_DATASET_MESSAGE)
        return self

    def close(self) -> None:
        """Close the client this object made itself (if any)."""
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_service"], name)

    def __repr__(self) -> str:
        state = "signed in" if self._service.signed_in else "signed out"
        return f"<Pennsieve (agent-free) {state} at {self._service.host}>"

    def get_user(self) -> UserProfile:
        return self.user

    def get_datasets(self) -> dict[str, str]:
        """Your datasets: ``{name: node id}``."""
        if self._datasets is None:
            self._datasets = {str(d["content"]["name"]): str(d["content"]["id"])
                              for d in self._service.list_my_datasets()
                              if "name" in (d.get("content") or {})}
        return self._datasets

    def use_dataset(self, dataset_id: str) -> Reply:
        """Choose the dataset manifests upload to, by name or node id (reply ``dataset_id``)."""
        self._datasets = None
        datasets = self.get_datasets()
        if dataset_id in datasets:
            self.dataset, self.dataset_name = datasets[dataset_id], dataset_id
        elif dataset_id in datasets.values():
            self.dataset = dataset_id
            self.dataset_name = next(n for n, i in datasets.items() if i == dataset_id)
        else:
            raise NotFoundError(f"no dataset {dataset_id!r} among yours: "
                                f"{', '.join(map(repr, list(datasets)[:10])) or 'none'}",
                                status=404, service="pennsieve")
        return Reply(dataset_id=self.dataset)

    set_dataset = use_dataset

    def switch(self, profile_name: str) -> None:
        """Use another profile of the config file (no dataset or manifest chosen after; a
        profile that fails to sign in leaves the current choice as it was)."""
        self.user.switch(profile_name)
        self._datasets, self.dataset, self.dataset_name = None, None, ""
        self.manifest.manifest = None

    def list_manifests(self) -> list[Reply]:
        return self.manifest.list_manifests()

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._service.get(url, **kwargs)

    def post(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self._service.post(url, json=json, **kwargs)

    def put(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self._service.put(url, json=json, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self._service.delete(url, **kwargs)

    def agent_version(self) -> None:
        print("No Pennsieve Agent: sparc.client uploads over HTTP")

