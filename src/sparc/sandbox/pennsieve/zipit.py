"""The zipit service: ``POST /zipit/discover`` streams one file, or a stored ZIP of several.

zipit reports every request-level error as HTTP 200 with a ``!ERROR.txt`` attachment (a JSON document);
per-file failures inside an otherwise successful archive become a ``!ERROR.txt`` entry of the ZIP.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sparc.sandbox.http import INT32_MAX, SandboxError, stream_chunks
from sparc.sandbox.pennsieve.errors import DiscoverError
from sparc.sandbox.storage.objects import object_chunks
from sparc.sandbox.zipstream import ZipEntry, stored_zip

INVALID = "the request was invalid"
NO_DATA = "no data to download"
NOT_FOUND = "some files could not be found"
TOO_BIG = "archive is too big to download"
ZIP_FAILED = "there was an error creating the zip, please check the logs"
ERROR_FILE = "!ERROR.txt"
# characters JavaScript's encodeURI leaves alone (besides letters, digits and ``-_.~``)
_ENCODE_URI_SAFE = ";,/?:@&=+$!*'()#"

log = logging.getLogger(__name__)
Selection = list[tuple[list[str], sqlite3.Row]]


def error_document(status: int, error: str, info: Any) -> str:
    """The JSON text of an ``!ERROR.txt`` file."""
    return json.dumps({"status": status, "error": error, "info": info})


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value; the name is encodeURI-encoded like zipit's (no ``"`` or CR/LF)."""
    return f'attachment; filename="{quote(filename, safe=_ENCODE_URI_SAFE)}"'


class ZipitError(SandboxError):
    """An error file: HTTP 200, ``attachment; filename="!ERROR.txt"``."""

    def __init__(self, status: int, error: str, info: str = "") -> None:
        super().__init__(status, error, info)
        self.status, self.error, self.info = status, error, info

    def response(self) -> Response:
        return Response(error_document(self.status, self.error, self.info), media_type="text/plain",
                        headers={"Content-Disposition": attachment(ERROR_FILE)})


def _int(value: Any, name: str) -> int:
    """An int32 field; numeric strings coerce (as in zipit), booleans and floats do not."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT32_MAX:
        return value
    raise ValueError(f"{name} must be an integer")


def _optional_str(data: dict[str, Any], name: str) -> None:
    if data.get(name) is not None and not isinstance(data[name], str):
        raise ValueError(f"{name} must be a string")


async def parse_body(request: Request) -> dict[str, Any]:
    """The ``data`` object of a JSON body or of a form field ``data=<json>``; validated."""
    try:
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            data = json.loads(parse_qs((await request.body()).decode())["data"][0])
        else:
            data = json.loads(await request.body()).get("data")
        if not isinstance(data, dict):
            raise ValueError("data must be an object")
        for name in ("datasetId", "version"):
            data[name] = _int(data.get(name), name)
        paths = data.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ValueError("paths must be a non-empty list of strings")
        for name in ("rootPath", "archiveName", "userToken"):
            _optional_str(data, name)
        if data.get("archiveName") is not None and len(paths) < 2:
            raise ValueError("archiveName is only allowed with several paths")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ZipitError(400, INVALID, str(exc) or type(exc).__name__) from None
    return data


def archive_name(data: dict[str, Any], single_folder: bool) -> str:
    if data.get("archiveName"):
        return f"{data['archiveName']}.zip"
    if single_folder:
        return f"{data['paths'][0].strip('/').split('/')[0]}.zip"
    return "pennsieve-data.zip"


def unique_names(names: list[str]) -> list[str]:
    """Rename duplicates ``name (1).ext`` like zipit."""
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


def unmatched_paths(paths: list[str], selected: Selection) -> list[str]:
    """The requested paths that matched no selected file (neither the file nor a folder above it)."""
    covered = {""}
    for _, row in selected:
        parts = row["path"].split("/")
        covered.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [p for p in paths if p.strip("/") not in covered]


def select(request: Request, data: dict[str, Any]) -> tuple[Selection, int]:
    """The files to send and their total size; every failure becomes a :class:`ZipitError`."""
    state = request.app.state
    try:
        selected = state.discover.select_files(data["datasetId"], data["version"], data["paths"],
                                               data.get("rootPath"))
        size = sum(row["size"] for _, row in selected)
        if size > state.settings.download_size_cap:
            raise DiscoverError(403, "requested files are too large to download")
    except DiscoverError as exc:
        raise ZipitError(500, ZIP_FAILED, f"download-manifest returned {exc.status}: {json.dumps(exc.body)}") from exc
    except Exception as exc:
        log.exception("zipit: selecting files failed")
        raise ZipitError(500, ZIP_FAILED, f"{type(exc).__name__}: {exc}") from exc
    return selected, size


async def zipit_discover(request: Request) -> Response:
    data = await parse_body(request)
    selected, size = select(request, data)
    if not selected:
        raise ZipitError(400, NO_DATA, f"no files matched {data['paths']}")
    if size > request.app.state.settings.archive_size_cap:
        raise ZipitError(422, TOO_BIG, f"{size} bytes exceeds {request.app.state.settings.archive_size_cap}")
    missing = unmatched_paths(data["paths"], selected)
    if len(selected) == 1 and not missing:
        row = selected[0][1]
        return StreamingResponse(stream_chunks(object_chunks(row)), media_type="application/octet-stream",
                                 headers={"Content-Disposition": attachment(row["name"]),
                                          "Content-Length": str(row["size"])})
    names = unique_names(["/".join([*dirs, row["name"]]) for dirs, row in selected]
                         + ([ERROR_FILE] if missing else []))
    entries = [ZipEntry(name, row["size"], lambda row=row: object_chunks(row))
               for name, (_, row) in zip(names[:len(selected)], selected, strict=True)]
    if missing:
        report = error_document(404, NOT_FOUND, missing).encode()
        entries.append(ZipEntry(names[-1], len(report), lambda: [report]))
    single_folder = len(data["paths"]) == 1
    return StreamingResponse(stream_chunks(stored_zip(entries)), media_type="application/zip",
                             headers={"Content-Disposition": attachment(archive_name(data, single_folder))})


routes = [Route("/discover", zipit_discover, methods=["POST"])]
