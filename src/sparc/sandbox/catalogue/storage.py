"""How the catalogue's files are stored as S3 objects: upload part size, encryption, ETag, Last-Modified.

Used by the build script (``build.py``); see ``STORAGE.md`` for the S3 behaviours this seeds:

- files of 64 MiB or more were uploaded in parts (8 MiB, the AWS CLI default, unless listed in
  :data:`PART_SIZES`): ETag ``<md5 of the parts' binary MD5s>-<parts>``;
- smaller files in one part: ETag = MD5 of the bytes;
- objects under :data:`SSE_KMS` are encrypted with SSE-KMS: an opaque ETag (not the MD5; multipart
  ones keep the ``-<parts>`` suffix) and ``x-amz-server-side-encryption: aws:kms``;
- other objects written since S3's default encryption (2023-01-05) say ``AES256`` (SSE-S3), older
  ones say nothing; both have MD5 ETags.

Example: ``store_objects([(dto, spec), ...])`` fills ``spec.sha256`` and ``spec.storage``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sparc.sandbox.catalogue.content import Digests, digests, generated_digests

MiB = 1 << 20
MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_PART_SIZE = 8 * MiB
SSE_S3_SINCE = "2023-01-05"  # S3 encrypts every new object (SSE-S3) from this date on

# (dataset id, path) -> part size, for multipart objects not uploaded with 8 MiB parts
PART_SIZES: dict[tuple[int, str], int] = {
    (120, "files/derivative/summary.mat"): 16 * MiB,
    (426, "files/primary/sub-f006/R/020-stitching/Segmentation_Stitcher.exf"): 16 * MiB,
    (426, "files/derivative/sub-f006/L/020-stitching/Segmentation_Stitcher.exf"): 16 * MiB,
    (426, "files/derivative/sub-f006/R/020-stitching/Segmentation_Stitcher.exf"): 5 * MiB,
}
# dataset id -> paths (a trailing "/" means every file below) of SSE-KMS objects
SSE_KMS: dict[int, tuple[str, ...]] = {
    120: ("files/derivative/summary.mat", "files/primary/sub-1/ecap_run2.edf"),
    318: ("files/primary/sub-07/sam-2/run-3/",),
}


class StoredFile(Protocol):
    """What :func:`store_objects` reads and fills on a build ``FileSpec``."""

    path: str
    size: int
    content: str | None
    seed: int | None
    sha256: str | None
    storage: dict[str, Any] | None


def part_size(dataset_id: int, path: str, size: int) -> int | None:
    """The upload part size of a file, ``None`` for a single-part object.

    >>> part_size(90, "files/primary/sub-1/sam-1/recording_full.dat", 1 << 30) // MiB
    8
    """
    if size < MULTIPART_THRESHOLD:
        return None
    return PART_SIZES.get((dataset_id, path), DEFAULT_PART_SIZE)


def encryption(dataset_id: int, path: str, written: str) -> str | None:
    """``x-amz-server-side-encryption`` of an object written at ``written`` (ISO 8601), or ``None``."""
    if any(path == p or (p.endswith("/") and path.startswith(p)) for p in SSE_KMS.get(dataset_id, ())):
        return "aws:kms"
    return "AES256" if written >= SSE_S3_SINCE else None


def etag(dataset_id: int, path: str, sums: Digests, sse: str | None) -> str:
    """The object's ETag, unquoted: MD5, multipart form, or opaque for SSE-KMS."""
    if sse == "aws:kms":
        opaque = hashlib.md5(f"sse-kms/{dataset_id}/{path}/{sums.sha256}".encode()).hexdigest()
        return f"{opaque}-{len(sums.part_md5s)}" if sums.part_md5s else opaque
    return sums.multipart_etag() if sums.part_md5s else sums.md5


def _digests(spec: StoredFile, parts: int | None) -> Digests:
    if spec.content is not None:
        data = spec.content.encode()
        return digests([data[i:i + MiB] for i in range(0, len(data), MiB)] or [b""], parts)
    return generated_digests(spec.seed or 0, spec.size, parts)


def store_objects(files: Sequence[tuple[dict[str, Any], StoredFile]]) -> None:
    """Hash each file once (threads: hashlib releases the GIL) and record how S3 stores it.

    ``files`` pairs each file with the DTO of the first version that holds it (the object was
    written when that version was published). Files already stored (``storage`` set) are skipped.
    """
    todo = [(dto, spec) for dto, spec in files if spec.storage is None]
    sizes = [part_size(dto["id"], spec.path, spec.size) for dto, spec in todo]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(_digests, [spec for _, spec in todo], sizes))
    for (dto, spec), parts, sums in zip(todo, sizes, results, strict=True):
        written = dto["versionPublishedAt"][:19] + "Z"
        sse = encryption(dto["id"], spec.path, written)
        spec.sha256 = sums.sha256
        spec.storage = {"md5": sums.md5, "etag": etag(dto["id"], spec.path, sums, sse), "sse": sse,
                        "partSize": parts, "lastModified": written}
