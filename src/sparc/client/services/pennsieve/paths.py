"""Where a Discover file sits inside its dataset version, whatever the URI layout.

Search hits carry no ``path``; it is derived from ``uri``:

* ``s3://bucket/<id>/<version>/files/a.csv`` (publishing 4.x) -> ``files/a.csv``
* ``s3://bucket/<id>/files/a.csv`` (publishing 5.0, no version)  -> ``files/a.csv``

Example::

    relative_path({"uri": "s3://b/90/1/manifest.json", "datasetId": 90, "datasetVersion": 1})
    # 'manifest.json'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FileRef", "relative_path", "file_ref"]


@dataclass(frozen=True)
class FileRef:
    """One file of one dataset version: what download-manifest and zipit take."""

    dataset_id: int
    version: int | None
    path: str
    name: str
    size: int | None = None


def _uri_key_parts(uri: str) -> list[str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.path.strip("/"):
        raise ValueError(f"not an s3:// file URI: {uri!r}")
    return [p for p in parts.path.split("/") if p]


def relative_path(file: Mapping[str, Any]) -> str:
    """The file's path relative to its dataset version root (``files/primary/a.csv``)."""
    if file.get("path"):
        return str(file["path"]).lstrip("/")
    if not file.get("uri"):
        raise ValueError(f"file entry has neither 'path' nor 'uri': {dict(file)!r}")
    key = _uri_key_parts(str(file["uri"]))
    dataset_id = file.get("datasetId")
    if dataset_id is not None and key[0] != str(dataset_id):
        raise ValueError(f"uri {file['uri']!r} does not belong to dataset {dataset_id}")
    rest = key[1:]
    version = file.get("datasetVersion")
    if version is not None and len(rest) > 1 and rest[0] == str(version):
        rest = rest[1:]
    if not rest:
        raise ValueError(f"uri {file['uri']!r} names a dataset, not a file")
    return "/".join(rest)


def file_ref(file: Mapping[str, Any]) -> FileRef:
    """A :class:`FileRef` from a search hit, a browse/walk node, or a metadata ``files`` entry."""
    if not isinstance(file, Mapping):
        raise TypeError(
            f"expected a file dict (from list_files, browse or walk), got {type(file).__name__}"
        )
    dataset_id = file.get("datasetId")
    version = file.get("datasetVersion")
    if dataset_id is None and file.get("uri"):
        key = _uri_key_parts(str(file["uri"]))
        dataset_id = int(key[0]) if key[0].isdigit() else None
        path = str(file.get("path") or "")
        if version is None and len(key) > 2 and key[1].isdigit() and "/".join(key[2:]) == path:
            version = int(key[1])
    if dataset_id is None:
        raise ValueError(f"cannot tell which dataset this file belongs to: {dict(file)!r}")
    path = relative_path(file)
    name = str(file.get("name") or path.rsplit("/", 1)[-1])
    size = file.get("size")
    return FileRef(int(dataset_id), int(version) if version is not None else None, path, name,
                   int(size) if size is not None else None)
