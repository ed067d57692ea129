"""Discover routes (mounted at ``/discover``): parse the request, call :class:`.models.Discover`, render.

Each handler maps the model's failures as the deployed Scala handler's ``recover`` block does
(DatasetHandler.scala, c1f582ce); a failure it does not map is akka-http's plain-text 500
"There was an internal server error." (see ``FIDELITY.md``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from sparc.sandbox.assets.signing import presigner
from sparc.sandbox.http import Page, SandboxError, bool_query, first_query, int_query, list_query
from sparc.sandbox.pennsieve import errors
from sparc.sandbox.pennsieve.models import (
    DOWNLOAD_ORIGINS,
    Discover,
    DiscoverFailure,
    Embargoed,
    NoDataset,
    NoFile,
    NoVersion,
    Sort,
    TooLarge,
    Unpublished,
    embargo_access,
)
from sparc.sandbox.storage.objects import object_chunks
from sparc.sandbox.zipstream import ZipEntry, zip_stream

JSON = "application/json"
MAX_BODY = 8 * 2**20  # akka-http's default max-content-length


class Int32Convertor(Convertor[int]):
    """akka-http's ``IntNumber`` path matcher: digits up to ``Int.MaxValue`` (leading zeros allowed).

    A longer number does not match, so ``/datasets/99999999999999999999`` is an unmatched route (404).
    """

    regex = ("0*(?:[0-9]{1,9}|1[0-9]{9}|20[0-9]{8}|21[0-3][0-9]{7}|214[0-6][0-9]{6}|2147[0-3][0-9]{5}"
             "|21474[0-7][0-9]{4}|214748[0-2][0-9]{3}|2147483[0-5][0-9]{2}|21474836[0-3][0-9]|214748364[0-7])")

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("int32", Int32Convertor())


#: Where an app's Discover is kept in the app's instance dict: one dict lookup per request, not
#: ``app.state``'s Python-level ``__getattr__`` (``create_app`` sets ``state.discover`` once).
_DISCOVER = "_sandbox_discover"


def _discover(request: Request) -> Discover:
    app = request.scope["app"]
    discover: Discover | None = vars(app).get(_DISCOVER)
    if discover is None:
        discover = app.state.discover
        setattr(app, _DISCOVER, discover)
    return discover


def _ids(request: Request) -> tuple[int, int]:
    return request.path_params["datasetId"], request.path_params["versionId"]


def _sort(request: Request) -> Sort:
    return Sort.parse(first_query(request, "orderBy"), first_query(request, "orderDirection"))


def json_text(text: str, status: int = 200) -> Response:
    """A JSON body already serialized (stored DTOs are sent without a decode/encode)."""
    return Response(text, status_code=status, media_type=JSON)


#: Ready 200 answers of stored JSON bodies, by body: a :class:`Response` holds only its status,
#: body and header list, and sending it changes none of them, so one serves every request.
_READY: dict[bytes, Response] = {}
MAX_READY = 4096  # bodies answered ready-made (then the memory starts afresh)


def json_body(body: bytes) -> Response:
    """A 200 with JSON body bytes already encoded (a stored DTO, as stored): the same
    ``Response(body, media_type=JSON)`` for the same body, built once."""
    response = _READY.get(body)
    if response is None:
        if len(_READY) >= MAX_READY:
            _READY.clear()
        response = _READY[body] = Response(body, media_type=JSON)
    return response


def recover(failure: DiscoverFailure,
            cases: dict[type[DiscoverFailure], Callable[[DiscoverFailure], SandboxError]]) -> SandboxError:
    """The error a handler's ``recover`` block maps ``failure`` to, else akka's plain-text 500.

    Example: ``recover(NoDataset(5), {NoDataset: lambda f: errors.not_found(5)})``.
    """
    render = cases.get(type(failure))
    return render(failure) if render else errors.internal()


def _gone(failure: DiscoverFailure) -> SandboxError:
    assert isinstance(failure, Unpublished)
    return errors.gone(failure.tombstone)


def _gone_empty(_: DiscoverFailure) -> SandboxError:
    return errors.EmptyError(410)


def _unauthorized(failure: DiscoverFailure) -> SandboxError:
    return errors.embargo_denied() if getattr(failure, "denied", False) else errors.embargoed()


def _dto(discover: Discover, row: Any, dataset_id: int) -> Response:
    """A stored dataset DTO, with ``embargoAccess: "Granted"`` for a signed-in user whose access
    to this embargoed dataset was granted (production fills it per user)."""
    body = discover.dto_bytes(row)
    if row["embargo"] and embargo_access(dataset_id) == "granted":
        dto = json.loads(body)
        dto["embargoAccess"] = "Granted"
        return JSONResponse(dto)
    return json_body(body)


def _dataset_404(request: Request) -> Callable[[DiscoverFailure], SandboxError]:
    return lambda _: errors.not_found(request.path_params["datasetId"])


# ---- datasets ------------------------------------------------------------------------------------
async def get_datasets(request: Request) -> Response:
    return json_text(_discover(request).list_datasets(
        Page.from_request(request), _sort(request), list_query(request, "ids"), list_query(request, "tags"),
        bool_query(request, "embargo"), first_query(request, "datasetType")))


async def get_dataset(request: Request) -> Response:
    """DatasetHandler.scala:239-308: 404 id, 410 TombstoneDTO."""
    try:
        discover = _discover(request)
        dataset_id = request.path_params["datasetId"]
        return _dto(discover, discover.latest_visible(dataset_id), dataset_id)
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), Unpublished: _gone}) from None


async def get_versions(request: Request) -> Response:
    """DatasetHandler.scala:447-527: newest first, UNPUBLISHED versions listed, no 410."""
    try:
        return json_text(_discover(request).versions(request.path_params["datasetId"]))
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request)}) from None


async def get_version(request: Request) -> Response:
    """DatasetHandler.scala:529-575: 404 body is the dataset id, even for a missing version."""
    try:
        discover = _discover(request)
        dataset_id, version = _ids(request)
        return _dto(discover, discover.visible_version(dataset_id, version), dataset_id)
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), NoVersion: _dataset_404(request),
                      Unpublished: _gone}) from None


async def get_by_doi(request: Request) -> Response:
    p = request.path_params
    try:
        return json_text(_discover(request).by_doi(f"{p['doiPrefix']}/{p['doiSuffix']}"))
    except DiscoverFailure as failure:
        raise recover(failure, {Unpublished: _gone}) from None


async def get_by_dois(request: Request) -> Response:
    return JSONResponse(_discover(request).by_dois(list_query(request, "doi")))


# ---- files ---------------------------------------------------------------------------------------
async def browse_files(request: Request) -> Response:
    """DatasetHandler.scala:858-921: an unpublished version is not caught (500)."""
    page = Page.from_request(request, default_limit=100)
    try:
        return json_body(_discover(request).browse_body(*_ids(request), first_query(request, "path"), page))
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), NoVersion: _dataset_404(request),
                      Embargoed: _unauthorized}) from None


async def get_file(request: Request) -> Response:
    """DatasetHandler.scala:577-654: 404 body = dataset id, version id or the path as given."""
    path = first_query(request, "path")
    if path is None:
        raise errors.missing_query_parameter("path")
    try:
        return JSONResponse(_discover(request).file(*_ids(request), path))
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request),
                      NoVersion: lambda _: errors.not_found(request.path_params["versionId"]),
                      NoFile: lambda _: errors.not_found(path), Unpublished: _gone,
                      Embargoed: _unauthorized}) from None


async def get_metadata(request: Request) -> Response:
    """DatasetHandler.scala:779-856: 410 without a body."""
    try:
        return Response(_discover(request).metadata(*_ids(request)), media_type=JSON)
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), NoVersion: _dataset_404(request),
                      Unpublished: _gone_empty, Embargoed: _unauthorized}) from None


async def read_json(request: Request) -> Any:
    """An ``entity(as[...])`` body: 415 unless ``application/json``, 400 text when malformed."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise errors.unsupported_content_type()
    body = await request.body()
    if len(body) > MAX_BODY:
        raise errors.PlainError(413, f"Request Content-Length of {len(body)} bytes exceeds the configured "
                                     f"limit of {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except RecursionError:
        raise errors.malformed_content("JSON nesting too deep") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError
        raise errors.malformed_content(f"exhausted input ({type(exc).__name__}: {str(exc)[:200]})") from None


async def download_manifest(request: Request) -> Response:
    """DatasetHandler.scala:1035-1143: only too-large and embargo are caught; the rootPath check is a
    plain string prefix; rows carry no sha256."""
    body = await read_json(request)
    paths = body.get("paths") if isinstance(body, dict) else None
    root = body.get("rootPath") if isinstance(body, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise errors.malformed_content("Attempt to decode value on failed cursor: DownField(paths)")
    if root is not None and not isinstance(root, str):
        raise errors.malformed_content("String: DownField(rootPath)")
    paths, root = [java_utf8(p) for p in paths], java_utf8(root) if root is not None else None
    state = request.app.state
    base = str(request.base_url)
    try:
        manifest = _discover(request).download_manifest(
            *_ids(request), paths, root, state.settings.download_size_cap,
            presigner(state.signer, base))
    except DiscoverFailure as failure:
        raise recover(failure, {TooLarge: lambda _: errors.too_large(), Embargoed: _unauthorized}) from None
    return JSONResponse(manifest)


def java_utf8(text: str) -> str:
    """A string as Java's ``getBytes(UTF_8)`` sends it on: lone surrogates (JSON ``"\\ud800"``)
    become ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


async def download_version(request: Request) -> Response:
    """``GET …/versions/{v}/download``: the whole version as a ZIP (DatasetHandler.scala:660-773).

    Entries ``Pennsieve-dataset-<id>-version-<v>/<path>`` deflated as Java's ZipOutputStream does,
    throttled to ``whole_version_zip_rate`` bytes/s (``download.rate-per-second``, 5 MB) with delays
    multiplied by the time scale; 403 over ``whole_version_zip_cap`` (``download.max-size``, 1 GB);
    an unknown ``downloadOrigin`` is an uncaught 500; 410 without a body.
    """
    settings = request.app.state.settings
    discover = _discover(request)
    dataset_id, version = _ids(request)
    try:
        row, files = discover.version_files(dataset_id, version, settings.whole_version_zip_cap)
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), NoVersion: _dataset_404(request),
                      Unpublished: _gone_empty, Embargoed: _unauthorized,
                      TooLarge: lambda _: errors.too_large("Dataset is too large to download directly.")}) from None
    origin = first_query(request, "downloadOrigin")
    known = {o.lower(): o for o in DOWNLOAD_ORIGINS}
    if origin is not None and origin.lower() not in known:
        raise errors.internal()  # UnknownOrigin is not in recoverWith
    discover.record_download(dataset_id, version, known.get((origin or "").lower()),
                             datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    prefix = f"Pennsieve-dataset-{dataset_id}-version-{version}"
    migrated = discover.layout(row)[0]
    key_prefix_len = len(f"{dataset_id}/" if migrated else f"{dataset_id}/{version}/")
    entries = [ZipEntry(f"{prefix}/{f['key'][key_prefix_len:]}", f["size"], partial(object_chunks, f))
               for f in files]
    rate = float(getattr(settings, "whole_version_zip_rate", 5e6))
    chunks = throttled(zip_stream(entries, compress=True), rate, float(settings.time_scale))
    return StreamingResponse(chunks, media_type="application/zip",
                             headers={"Content-Disposition": f"attachment; filename={prefix}.zip"})


async def throttled(chunks: Iterator[bytes], rate: float, time_scale: float) -> AsyncIterator[bytes]:
    """Yield ``chunks`` at about ``rate`` bytes/s of simulated time (``time_scale`` 0: no delay)."""
    start, sent = time.monotonic(), 0
    for chunk in chunks:
        yield chunk
        sent += len(chunk)
        if time_scale > 0 and rate > 0:
            ahead = start + sent / rate * time_scale - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)


async def get_doi_page(request: Request) -> Response:
    """``…/versions/{v}/dois`` (DatasetHandler.scala:1281-1368): an unpublished version is a 500."""
    try:
        return JSONResponse(_discover(request).doi_page(*_ids(request), Page.from_request(request)))
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), NoVersion: _dataset_404(request),
                      Embargoed: _unauthorized}) from None


async def browse_all_assets(request: Request) -> Response:
    """``…/assets``: every asset of the version, unpaged."""
    return _assets(request, None)


async def browse_assets(request: Request) -> Response:
    """``…/assets/browse``: one page (100 by default)."""
    return _assets(request, Page.from_request(request, default_limit=100))


def _assets(request: Request, page: Page | None) -> Response:
    try:
        return JSONResponse(_discover(request).assets(*_ids(request), page))
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), NoVersion: _dataset_404(request),
                      Embargoed: _unauthorized}) from None


async def get_data_use_agreement(request: Request) -> Response:
    """DatasetHandler.scala:1153-1209: 200 with the agreement, 204 without one."""
    try:
        agreement, _ = _discover(request).data_use_agreement(request.path_params["datasetId"])
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), Unpublished: _gone}) from None
    return JSONResponse(agreement) if agreement else Response(status_code=204)


async def download_data_use_agreement(request: Request) -> Response:
    """DatasetHandler.scala:1215-1279: text/plain attachment, 204 without one, 410 without a body."""
    dataset_id = request.path_params["datasetId"]
    try:
        agreement, row = _discover(request).data_use_agreement(dataset_id)
    except DiscoverFailure as failure:
        raise recover(failure, {NoDataset: _dataset_404(request), Unpublished: _gone_empty}) from None
    if agreement is None:
        return Response(status_code=204)
    text = f"{row['name']} ({row['doi']})\n\n{date.today().isoformat()}\n\n{agreement['body']}"
    return PlainTextResponse(text, headers={
        "Content-Disposition": f"attachment; filename=Pennsieve-dataset-{dataset_id}-data-use-agreement.txt"})


async def request_preview(request: Request) -> Response:
    """DatasetHandler.scala:379-445: needs a signed-in user; the sandbox has none (401)."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        raise errors.unauthenticated("The supplied authentication is invalid")
    body = await read_json(request)
    agreement = body.get("dataUseAgreementId") if isinstance(body, dict) else None
    if not isinstance(body, dict) or (agreement is not None and (
            not isinstance(agreement, int) or isinstance(agreement, bool) or not -2**31 <= agreement < 2**31)):
        raise errors.malformed_content("Int: DownField(dataUseAgreementId)")
    raise errors.DiscoverError(401, "missing token")


# ---- tags, search, metrics -------------------------------------------------------------------------
async def get_tags(request: Request) -> Response:
    return JSONResponse(_discover(request).tags())


async def search_datasets(request: Request) -> Response:
    query = first_query(request, "query")
    return json_text(_discover(request).search_datasets(
        Page.from_request(request), _sort(request), query if query and query.strip() else None,
        first_query(request, "organization"), int_query(request, "organizationId"),
        list_query(request, "tags"), bool_query(request, "embargo")))


async def search_files(request: Request) -> Response:
    return JSONResponse(_discover(request).search_files(
        Page.from_request(request), first_query(request, "query"), first_query(request, "fileType"),
        first_query(request, "organization"), int_query(request, "organizationId"),
        int_query(request, "datasetId")))


async def search_records(request: Request) -> Response:
    return JSONResponse(_discover(request).search_records(
        Page.from_request(request), first_query(request, "model"), first_query(request, "organization"),
        int_query(request, "datasetId")))


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def date_query(request: Request, name: str) -> date:
    """A required ``YYYY-MM-DD`` query parameter (akka: missing → 404 text, malformed → 400 text)."""
    raw = first_query(request, name)
    if raw is None:
        raise errors.missing_query_parameter(name)
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        raise errors.PlainError(400, f"The query parameter '{name}' was malformed:\n"
                                     f"Text '{shown}' could not be parsed") from None


async def downloads_summary(request: Request) -> Response:
    start, end = date_query(request, "startDate"), date_query(request, "endDate")
    return JSONResponse(_discover(request).downloads_summary(start, end))


async def organization_metrics(request: Request) -> Response:
    return JSONResponse(_discover(request).organization_metrics(request.path_params["organizationId"]))


async def package_files(request: Request) -> Response:
    return JSONResponse(_discover(request).package_files(request.path_params["sourcePackageId"],
                                                         Page.from_request(request, default_limit=100)))


DATASET = "/datasets/{datasetId:int32}"
VERSION = DATASET + "/versions/{versionId:int32}"

# No two patterns match the same path, so the order only sets how many patterns a request is
# tried against: the routes a download or a walk calls most come first.
routes = [
    Route(VERSION + "/files/browse", browse_files),
    Route(VERSION + "/files", get_file),
    Route(VERSION + "/files/download-manifest", download_manifest, methods=["POST"]),
    Route(DATASET, get_dataset),
    Route(VERSION, get_version),
    Route("/datasets", get_datasets),
    Route("/datasets/doi", get_by_dois),
    Route("/datasets/doi/{doiPrefix}/{doiSuffix}", get_by_doi),
    Route(DATASET + "/versions", get_versions),
    Route(DATASET + "/preview", request_preview, methods=["POST"]),
    Route(DATASET + "/data-use-agreement", get_data_use_agreement),
    Route(DATASET + "/data-use-agreement/download", download_data_use_agreement),
    Route(VERSION + "/metadata", get_metadata),
    Route(VERSION + "/download", download_version),
    Route(VERSION + "/dois", get_doi_page),
    Route(VERSION + "/assets", browse_all_assets),
    Route(VERSION + "/assets/browse", browse_assets),
    Route("/tags", get_tags),
    Route("/search/datasets", search_datasets),
    Route("/search/files", search_files),
    Route("/search/records", search_records),
    Route("/metrics/dataset/downloads/summary", downloads_summary),
    Route("/organizations/{organizationId:int32}/datasets/metrics", organization_metrics),
    Route("/packages/{sourcePackageId}/files", package_files),
]
