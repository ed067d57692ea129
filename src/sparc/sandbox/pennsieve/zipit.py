"""The zipit service: ``POST /zipit/discover`` streams one file, or a stored ZIP of several.

zipit reports every error as HTTP 200 with a ``!ERROR.txt`` attachment (a JSON document).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sparc.sandbox.http import SandboxError, stream_chunks
from sparc.sandbox.pennsieve.errors import DiscoverError
from sparc.sandbox.storage.objects import object_chunks
from sparc.sandbox.zipstream import ZipEntry, stored_zip

INVALID = "the request was invalid"
NO_DATA = "no data to download"
TOO_BIG = "archive is too big to download"
ZIP_FAILED = "there was an error creating the zip, please check the logs"


class ZipitError(SandboxError):
    """An error file: HTTP 200, ``attachment; filename="!ERROR.txt"``."""

    def __init__(self, status: int, error: str, info: str = "") -> None:
        super().__init__(status, error, info)
        self.status, self.error, self.info = status, error, info

    def response(self) -> Response:
        body = json.dumps({"status": self.status, "error": self.error, "info": self.info})
        return Response(body, media_type="text/plain",
                        headers={"Content-Disposition": 'attachment; filename="!ERROR.txt"'})


async def parse_body(request: Request) -> dict[str, Any]:
    """The ``data`` object of a JSON body or of a form field ``data=<json>``; validated."""
    try:
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            data = json.loads(parse_qs((await request.body()).decode())["data"][0])
        else:
            data = json.loads(await request.body()).get("data")
        data["datasetId"], data["version"] = int(data["datasetId"]), int(data["version"])
        paths = data["paths"]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ValueError("paths must be a non-empty list of strings")
        if data.get("archiveName") is not None and len(paths) < 2:
            raise ValueError("archiveName is only allowed with several paths")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
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


async def zipit_discover(request: Request) -> Response:
    data = await parse_body(request)
    state = request.app.state
    try:
        selected = state.discover.select_files(data["datasetId"], data["version"], data["paths"],
                                               data.get("rootPath"))
        size = sum(row["size"] for _, row in selected)
        if size > state.settings.download_size_cap:
            raise DiscoverError(403, "requested files are too large to download")
    except DiscoverError as exc:
        raise ZipitError(500, ZIP_FAILED, f"download-manifest returned {exc.status}: {json.dumps(exc.body)}") from exc
    if not selected:
        raise ZipitError(400, NO_DATA, f"no files matched {data['paths']}")
    if size > state.settings.archive_size_cap:
        raise ZipitError(422, TOO_BIG, f"{size} bytes exceeds {state.settings.archive_size_cap}")
    if len(selected) == 1:
        row = selected[0][1]
        return StreamingResponse(stream_chunks(object_chunks(row)), media_type="application/octet-stream",
                                 headers={"Content-Disposition": f'attachment; filename="{quote(row["name"])}"',
                                          "Content-Length": str(row["size"])})
    names = unique_names(["/".join([*dirs, row["name"]]) for dirs, row in selected])
    entries = [ZipEntry(name, row["size"], lambda row=row: object_chunks(row))
               for name, (_, row) in zip(names, selected, strict=True)]
    single_folder = len(data["paths"]) == 1
    return StreamingResponse(stream_chunks(stored_zip(entries)), media_type="application/zip",
                             headers={"Content-Disposition":
                                      f'attachment; filename="{archive_name(data, single_folder)}"'})


routes = [Route("/discover", zipit_discover, methods=["POST"])]
