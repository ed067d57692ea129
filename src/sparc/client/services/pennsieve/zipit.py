"""Saving what the zipit archive service streams back.

zipit always answers 200: a raw file (one file asked for), a stored ZIP (several), or an
``!ERROR.txt`` attachment holding ``{"status", "error", "info"}`` when it failed. The error is
detected from the headers before any byte is saved, and raised as :class:`ArchiveError`.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
import zlib
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from sparc.client._download import CHUNK_SIZE, _disk, save_target
from sparc.client.errors import ArchiveError, DownloadError
from sparc.client.progress import byte_bar

ERROR_ATTACHMENT = "!ERROR.txt"


def attachment_name(response: httpx.Response) -> str | None:
    """The file name in ``Content-Disposition`` (``filename*`` or ``filename``), percent-decoded."""
    header = response.headers.get("content-disposition")
    if not header:
        return None
    message = Message()
    message["content-disposition"] = header
    name = message.get_filename()
    return unquote(name) if name else None


def raise_for_zipit_error(response: httpx.Response) -> None:
    """Raise :class:`ArchiveError` when zipit sent its ``!ERROR.txt`` instead of data."""
    if attachment_name(response) != ERROR_ATTACHMENT:
        return
    _raise_archive_error(response.read().decode("utf-8", "replace"), str(response.request.url))


def _raise_archive_error(text: str, url: str, partial: bool = False) -> None:
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = {"error": text.strip()}
    status = int(body.get("status") or 500) if isinstance(body, dict) else 500
    message = body.get("error", text) if isinstance(body, dict) else text
    info = body.get("info") if isinstance(body, dict) else None
    detail = f"{message} ({info})" if info else str(message)
    what = "left files out of the archive" if partial else "could not build the archive"
    raise ArchiveError(f"zipit {what}: {detail}", status=status, method="POST", url=url,
                       service="pennsieve", server_message=str(message), body=body)


def save_archive_response(response: httpx.Response,
                          output_name: str | os.PathLike[str] | None, *,
                          default_name: str = "pennsieve-data.zip", progress: bool | None = None,
                          expected_entries: int | None = None) -> Path:
    """Stream an archive answer (zipit's, or Discover's whole-version ZIP) to disk under a
    temporary name, check it, rename it, and return its absolute path.

    A ZIP is checked before it is renamed into place: every entry's CRC, no ``!ERROR.txt``
    entry (zipit's list of files it failed to add: :class:`ArchiveError`), and
    ``expected_entries`` entries; a short or corrupt body is a :class:`DownloadError`.
    """
    raise_for_zipit_error(response)
    name = attachment_name(response) or default_name
    is_zip = "zip" in response.headers.get("content-type", "") or name.endswith(".zip")
    dest = save_target(output_name, name, ".zip" if is_zip else None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.incomplete")
    total = response.headers.get("content-length")
    try:
        with _disk(tmp), tmp.open("wb") as handle, byte_bar(
                int(total) if total else None, dest.name, progress) as bar:
            for chunk in response.iter_bytes(CHUNK_SIZE):
                handle.write(chunk)
                bar.update(len(chunk))
        if total is not None and tmp.stat().st_size != int(total):
            raise DownloadError(f"{dest.name}: got {tmp.stat().st_size} of {total} bytes")
        if is_zip:
            check_zip(tmp, dest.name, expected_entries, str(response.request.url))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest.absolute()


def check_zip(path: Path, label: str, expected_entries: int | None = None,
              url: str = "") -> None:
    """Every entry's CRC, no ``!ERROR.txt`` entry at any depth (:class:`ArchiveError` with
    its text), and ``expected_entries`` entries; else :class:`DownloadError`."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
            reports = [n for n in names if n.rsplit("/", 1)[-1] == ERROR_ATTACHMENT]
            errors = archive.read(reports[0]).decode("utf-8", "replace") if reports else None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        # a flipped byte in a header can give an undecodable name or a bogus method too
        raise DownloadError(f"{label}: the archive received is not a valid ZIP ({exc})") from exc
    if bad is not None:
        raise DownloadError(f"{label}: entry {bad!r} of the archive is corrupt (CRC mismatch)")
    if errors is not None:
        _raise_archive_error(errors, url, partial=True)
    if expected_entries is not None and len(names) != expected_entries:
        raise DownloadError(f"{label}: the archive holds {len(names)} files, "
                            f"{expected_entries} were expected")
