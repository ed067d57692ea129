"""``sparc datasets ...``, ``sparc files ...`` and ``sparc download``: Pennsieve Discover
from the shell. Data goes to stdout (``--json`` for machines), logs and bars to stderr.

Examples::

    sparc datasets search cancer --limit 5
    sparc datasets show 90
    sparc files ls 90 metadata/records
    sparc download 90 metadata/records -o data/

Errors are shown as one line by the root group (:mod:`sparc.cli._errors`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sparc.cli._errors import one_line


def _client(ctx: click.Context) -> Any:
    from sparc.client import SparcClient

    obj = ctx.ensure_object(dict)
    if "client" not in obj:
        obj["client"] = ctx.with_resource(SparcClient(
            config_file=obj.get("config_file"), profile=obj.get("profile")))
    return obj["client"]


def _emit(data: Any, as_json: bool, lines: Callable[[Any], list[str]]) -> None:
    if as_json:
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for line in lines(data):
            click.echo(line)


json_option = click.option("--json", "as_json", is_flag=True, help="Print raw JSON.")


@click.group()
def datasets() -> None:
    """Search and inspect published datasets."""


@datasets.command("search")
@click.argument("query", required=False)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(0))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option("--organization", help="Organization name, e.g. SPARC.")
@click.option("--tag", "tags", multiple=True, help="Only datasets with this tag (repeatable).")
@json_option
@click.pass_context
def datasets_search(ctx: click.Context, query: str | None, limit: int, offset: int,
                    organization: str | None, tags: tuple[str, ...], as_json: bool) -> None:
    """Search datasets by words (name, description, tags, contributors)."""
    page = _client(ctx).pennsieve.list_datasets(limit=limit, offset=offset, query=query,
                                                organization=organization, tags=list(tags) or None)
    _emit(page, as_json, lambda p: [
        f"{d['id']:>6}  v{d['version']:<3} {d['size'] / 2**20:>10.1f} MiB  {d['name']}"
        for d in p["datasets"]] + [f"({len(p['datasets'])} of {p['totalCount']})"])


@datasets.command("show")
@click.argument("dataset_id", type=int)
@click.option("--version", type=click.IntRange(1), help="A version (default: the latest).")
@json_option
@click.pass_context
def datasets_show(ctx: click.Context, dataset_id: int, version: int | None,
                  as_json: bool) -> None:
    """Show one dataset's metadata."""
    d = _client(ctx).pennsieve.get_dataset(dataset_id, version)
    _emit(d, as_json, lambda d: [
        f"{d['name']} (id {d['id']}, version {d['version']})",
        f"doi:   {d['doi']}", f"owner: {d['ownerFirstName']} {d['ownerLastName']}",
        f"org:   {d['organizationName']}", f"files: {d['fileCount']} ({d['size']} bytes)",
        f"tags:  {', '.join(d['tags'])}", "", d["description"]])


@click.group()
def files() -> None:
    """Browse the files of a dataset version."""


@files.command("ls")
@click.argument("dataset_id", type=int)
@click.argument("path", required=False)
@click.option("--version", type=click.IntRange(1), help="A version (default: the latest).")
@click.option("-r", "--recursive", is_flag=True, help="Every file below PATH.")
@json_option
@click.pass_context
def files_ls(ctx: click.Context, dataset_id: int, path: str | None, version: int | None,
             recursive: bool, as_json: bool) -> None:
    """List a folder of a dataset version (its root by default)."""
    pennsieve = _client(ctx).pennsieve
    nodes = (list(pennsieve.walk(dataset_id, version, path)) if recursive
             else pennsieve.browse(dataset_id, version, path))
    _emit(nodes, as_json, lambda ns: [
        f"{'d' if n['type'] == 'Directory' else '-'} {n['size']:>14}  {n['path']}" for n in ns])


@click.command()
@click.argument("dataset_id", type=click.IntRange(0))
@click.argument("paths", nargs=-1)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to download into [default: ./DATASET_ID].")
@click.option("-j", "--jobs", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Files downloaded at once.")
@click.option("--version", type=click.IntRange(1), help="A version (default: the latest).")
@click.option("--existing", type=click.Choice(["skip", "overwrite", "refresh"]),
              default="refresh", show_default=True,
              help="A file already there: keep it, download it again, or download it again "
                   "only when it differs from the remote.")
@click.option("--no-verify", is_flag=True,
              help="Do not checksum the bytes (each file's check is then 'none').")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.option("-v", "--verbose", is_flag=True, help="One line per file on stderr.")
@click.option("--progress/--no-progress", default=None, hidden=True,
              help="Force the progress bar on or off (default: when stderr is a terminal).")
@json_option
@click.pass_context
def download(ctx: click.Context, dataset_id: int, paths: tuple[str, ...],
             output_dir: Path | None, jobs: int, version: int | None, existing: str,
             no_verify: bool, quiet: bool, verbose: bool, progress: bool | None,
             as_json: bool) -> None:
    """Download PATHs (files or folders; the whole version when none) of a dataset version.

    Files land at OUTPUT_DIR/<path in the version>, checked against the strongest evidence
    the service gives (sha256, else MD5 ETag, else size). Interrupted? Run the same command
    again: partial files are resumed. Exits 1 when any file failed. Example:

    \b
        sparc download 90 files/primary -o data/ -j 8
    """
    from sparc.cli import _logging
    from sparc.client.errors import DownloadError

    if quiet:
        _logging.quiet()
    target = output_dir if output_dir is not None else Path(str(dataset_id))
    per_file = verbose or bool(ctx.ensure_object(dict).get("verbose"))  # -v here or global
    try:
        result = _client(ctx).pennsieve.download(
            dataset_id, list(paths) or None, target, version=version, max_workers=jobs,
            existing=existing, verify=not no_verify, progress=False if quiet else progress)
    except DownloadError as exc:
        if getattr(exc, "result", None) is not None:
            _report_download(exc.result, as_json, quiet, per_file)
        raise  # the root group shows it as one line, exit 1
    _report_download(result, as_json, quiet, per_file)


def _report_download(result: Any, as_json: bool, quiet: bool, per_file: bool) -> None:
    """The result: JSON on stdout with ``--json``; one line per file (``-v``) and a summary
    line on stderr unless ``--quiet``."""
    if as_json:
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    if per_file:
        for f in result.files:
            why = f"{type(f.error).__name__}: {f.error}" if f.error is not None else f.note
            click.echo(one_line(f"{f.status:<10} {f.check:<13} {f.size:>12}  {f.path}"
                                + (f"  {why}" if why else "")), err=True)
    if not quiet:
        click.echo(result.summary(), err=True)
