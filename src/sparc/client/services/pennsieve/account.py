"""Your own Pennsieve workspace (signed in): who you are, your datasets, their packages.

Every method signs in first (``pennsieve_api_key``/``pennsieve_api_secret``) and returns the
API's JSON as plain dicts: a dataset is Pennsieve's DataSetDTO (``d["content"]["id"]`` is its
node id ``N:dataset:...``, ``d["content"]["intId"]`` its integer id, ``d["content"]["name"]``);
a package is ``{"content": {"nodeId", "name", "packageType", "state", ...}, ...}``. Example::

    pennsieve = SparcClient().pennsieve
    ds = pennsieve.create_dataset("Pilot 3", description="first pass", tags=["pilot"])
    [p["content"]["name"] for p in pennsieve.list_packages("Pilot 3")]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sparc.client.errors import ArgumentError, NotFoundError

__all__ = ["AccountMixin", "DATASET_NODE_PREFIX"]

DATASET_NODE_PREFIX = "N:dataset:"
#: Packages per page (the API allows up to 1000).
PACKAGE_PAGE = 500


class AccountMixin:
    """Signed-in calls of :class:`~sparc.client.services.pennsieve.PennsieveService`."""

    if TYPE_CHECKING:
        def private_request(self, method: str, url: str, **kwargs: Any) -> Any: ...

    def whoami(self) -> dict[str, Any]:
        """The signed-in user (``GET /user``: ``id``, ``email``, ``firstName``, ``lastName``,
        ``preferredOrganization``, ...)."""
        return self.private_request("GET", "/user")

    def list_my_datasets(self) -> list[dict[str, Any]]:
        """Every dataset you can see in your organization (``GET /datasets``: DataSetDTOs)."""
        answer = self.private_request("GET", "/datasets")
        return list(answer or [])

    def resolve_dataset(self, dataset: str | int) -> str:
        """The node id of one of your datasets given by node id, integer id or name.

        A node id is used as is (the server checks it); an integer id or a name is looked up
        in :meth:`list_my_datasets` (:class:`NotFoundError` when none matches)."""
        if isinstance(dataset, bool) or not isinstance(dataset, (str, int)):
            raise ArgumentError(f"dataset must be a node id ('N:dataset:...'), an integer id or "
                                f"a name, got {type(dataset).__name__} {dataset!r}")
        if isinstance(dataset, str):
            if not dataset.strip():
                raise ArgumentError("dataset must not be empty")
            if dataset.startswith(DATASET_NODE_PREFIX):
                return dataset
        return str(self._find_dataset(dataset)["content"]["id"])

    def _find_dataset(self, dataset: str | int) -> dict[str, Any]:
        datasets = self.list_my_datasets()
        wanted_int = int(dataset) if isinstance(dataset, int) or str(dataset).isdigit() else None
        for key, wanted in (("intId", wanted_int), ("name", dataset), ("id", dataset)):
            if wanted is None:
                continue
            for d in datasets:
                if (d.get("content") or {}).get(key) == wanted:
                    return d
        names = ", ".join(repr((d.get("content") or {}).get("name")) for d in datasets[:10])
        raise NotFoundError(f"no dataset {dataset!r} among your {len(datasets)} datasets "
                            f"({names}{', ...' if len(datasets) > 10 else ''}); give its node "
                            "id, integer id or exact name", status=404, service="pennsieve")

    def get_my_dataset(self, dataset: str | int) -> dict[str, Any]:
        """One of your datasets by node id, integer id or name (``GET /datasets/{id}``: a
        DataSetDTO with its root ``children``)."""
        node_id = self.resolve_dataset(dataset)
        return self.private_request(
            "GET", f"/datasets/{quote(node_id, safe=':')}")

    def create_dataset(self, name: str, description: str | None = None,
                       tags: Sequence[str] | None = None) -> dict[str, Any]:
        """Create a dataset (``POST /datasets``) and return its DataSetDTO. A name already used
        in your organization is refused by the server
        (:class:`~sparc.client.errors.InvalidRequestError`)."""
        if not isinstance(name, str) or not name.strip():
            raise ArgumentError(f"name must be a non-empty string, got {name!r}")
        if len(name) >= 255:
            raise ArgumentError(f"name must be under 255 characters, got {len(name)}")
        if description is not None and not isinstance(description, str):
            raise ArgumentError(f"description must be a string, got {type(description).__name__}")
        if isinstance(tags, str) or (tags is not None and not all(isinstance(t, str)
                                                                 for t in tags)):
            raise ArgumentError(f"tags must be a list of strings, got {tags!r}")
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = list(tags)
        return self.private_request("POST", "/datasets", json=body)

    def iter_packages(self, dataset: str | int,
                      types: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Yield every package of a dataset (folders included), following the cursor."""
        node_id = self.resolve_dataset(dataset)
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"pageSize": PACKAGE_PAGE, "cursor": cursor,
                                      "types": ",".join(types) if types else None}
            page = self.private_request("GET", f"/datasets/{quote(node_id, safe=':')}/packages",
                                        params=params) or {}
            yield from page.get("packages") or []
            cursor = page.get("cursor") or None
            if not cursor or cursor in seen or not page.get("packages"):
                return
            seen.add(cursor)

    def list_packages(self, dataset: str | int,
                      types: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every package of a dataset (``GET /datasets/{id}/packages``, all pages): files and
        ``Collection`` folders, each ``{"content": {"nodeId", "name", "packageType", "state",
        "parentId", ...}}``."""
        return list(self.iter_packages(dataset, types))

    def delete_package(self,
                       packages: str | Sequence[str]) -> dict[str, Any]:
        """Delete packages (or folders) by node id (``POST /data/delete``); returns the API's
        ``{"success": [...], "failures": [...]}``."""
        ids = [packages] if isinstance(packages, str) else list(packages)
        if not ids or not all(isinstance(i, str) and i.startswith("N:") for i in ids):
            raise ArgumentError(f"packages must be package node ids ('N:package:...'), got "
                                f"{packages!r}")
        return self.private_request(
            "POST", "/data/delete", json={"things": ids})
