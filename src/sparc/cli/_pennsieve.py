"""``sparc datasets ...``, ``sparc files ...``, ``sparc download`` and ``sparc upload``:
Pennsieve from the shell. Data goes to stdout (``--json`` for machines), logs and bars to stderr.

Examples::

    sparc datasets search cancer --limit 5
    sparc datasets show 90
    sparc files ls 90 metadata/records
    sparc download 90 metadata/records -o data/
    sparc datasets mine                      # signed in: PENNSIEVE_API_KEY/_SECRET
    sparc datasets create "Pilot 3" --description "first pass"
    sparc upload "Pilot 3" data/ --target-path raw
    sparc datasets packages "Pilot 3"

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
    """Search and inspect published datasets; list, create and inspect your own."""


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


# -- your own workspace (signed in) ---------------------------------------------------------------


def _dataset_lines(items: list[dict[str, Any]]) -> list[str]:
    lines = []
    for d in items:
        c = d.get("content") or {}
        lines.append(f"{c.get('intId', ''):>6}  {c.get('id', '')}  {c.get('name', '')}")
    return lines + [f"({len(items)} dataset{'s' if len(items) != 1 else ''})"]


@datasets.command("mine")
@json_option
@click.pass_context
def datasets_mine(ctx: click.Context, as_json: bool) -> None:
    """List your own datasets (needs PENNSIEVE_API_KEY and PENNSIEVE_API_SECRET)."""
    _emit(_client(ctx).pennsieve.list_my_datasets(), as_json, _dataset_lines)


@datasets.command("create")
@click.argument("name")
@click.option("--description", help="The dataset's description.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@json_option
@click.pass_context
def datasets_create(ctx: click.Context, name: str, description: str | None,
                    tags: tuple[str, ...], as_json: bool) -> None:
    """Create a dataset in your organization; prints its node id."""
    d = _client(ctx).pennsieve.create_dataset(name, description=description,
                                              tags=list(tags) or None)
    _emit(d, as_json, lambda d: [str((d.get("content") or {}).get("id", ""))])


@datasets.command("packages")
@click.argument("dataset")
@json_option
@click.pass_context
def datasets_packages(ctx: click.Context, dataset: str, as_json: bool) -> None:
    """List the packages (files and folders) of one of your datasets.

    DATASET is a node id (N:dataset:...), an integer id or a name."""
    packages = _client(ctx).pennsieve.list_packages(dataset)
    _emit(packages, as_json, lambda ps: [
        f"{(p.get('content') or {}).get('packageType', ''):<12} "
        f"{(p.get('content') or {}).get('state', ''):<10} "
        f"{(p.get('content') or {}).get('nodeId', '')}  {(p.get('content') or {}).get('name', '')}"
        for p in ps] + [f"({len(ps)} package{'s' if len(ps) != 1 else ''})"])


@click.command()
@click.argument("dataset")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--target-path", default="", help="Folder in the dataset to upload into.")
@click.option("-j", "--jobs", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Files (and parts of large files) sent at once.")
@click.option("--on-conflict", type=click.Choice(["keepBoth", "replace"]), default="keepBoth",
              show_default=True,
              help="A file of the same name already there: keep both (the new one renamed "
                   "'name (1)') or replace it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.option("--progress/--no-progress", default=None, hidden=True,
              help="Force the progress bar on or off (default: when stderr is a terminal).")
@json_option
@click.pass_context
def upload(ctx: click.Context, dataset: str, paths: tuple[str, ...], target_path: str,
           jobs: int, on_conflict: str, quiet: bool, progress: bool | None,
           as_json: bool) -> None:
    """Upload files or folders to one of your datasets, without the Pennsieve Agent.

    DATASET is a node id (N:dataset:...), an integer id or a name. Folders are sent whole,
    each under its own name. Interrupted? Run the same command again: files already
    imported are skipped. Exits 1 when any file failed. Example:

    \b
        sparc upload "My dataset" data/ --target-path raw -j 8
    """
    from sparc.cli import _logging

    if quiet:
        _logging.quiet()
    result = _client(ctx).pennsieve.upload(
        dataset, list(paths), target_path=target_path, jobs=jobs,
        on_conflict=on_conflict, progress=False if quiet else progress)
    if as_json:
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    for path, why in result.failed.items():
        click.echo(one_line(f"failed  {path}: {why}"), err=True)
    if not quiet:
        click.echo(result.summary(), err=True)
    if result.failed:
        ctx.exit(1)
