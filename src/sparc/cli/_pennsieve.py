"""``sparc datasets ...``, ``sparc files ...`` and ``sparc download``: Pennsieve Discover
from the shell. Data goes to stdout (``--json`` for machines), logs and bars to stderr.

Examples::

    sparc datasets search cancer --limit 5
    sparc datasets show 90
    sparc files ls 90 metadata/records
    sparc download 90 metadata/records -o data/
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click


def _client(ctx: click.Context) -> Any:
    from sparc.client import SparcClient

    obj = ctx.ensure_object(dict)
    if "client" not in obj:
        obj["client"] = ctx.with_resource(SparcClient(
            config_file=obj.get("config_file"), profile=obj.get("profile")))
    return obj["client"]


def errors_as_messages(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show library errors as one clear line (exit 1) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sparc.client.errors import SparcError

        try:
            return func(*args, **kwargs)
        except SparcError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


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
@errors_as_messages
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
@errors_as_messages
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
@errors_as_messages
def files_ls(ctx: click.Context, dataset_id: int, path: str | None, version: int | None,
             recursive: bool, as_json: bool) -> None:
    """List a folder of a dataset version (its root by default)."""
    pennsieve = _client(ctx).pennsieve
    nodes = (list(pennsieve.walk(dataset_id, version, path)) if recursive
             else pennsieve.browse(dataset_id, version, path))
    _emit(nodes, as_json, lambda ns: [
        f"{'d' if n['type'] == 'Directory' else '-'} {n['size']:>14}  {n['path']}" for n in ns])


@click.command()
@click.argument("dataset_id", type=int)
@click.argument("paths", nargs=-1)
@click.option("-o", "--output-dir", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Folder to download into.")
@click.option("--version", type=click.IntRange(1), help="A version (default: the latest).")
@click.option("-j", "--jobs", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Files downloaded at once.")
@click.option("--progress/--no-progress", default=None, help="Progress bars on stderr.")
@click.pass_context
@errors_as_messages
def download(ctx: click.Context, dataset_id: int, paths: tuple[str, ...], output_dir: str,
             version: int | None, jobs: int, progress: bool | None) -> None:
    """Download files or folders (PATHS; the whole dataset when none) of a dataset version,
    verified and resumable: run it again to finish an interrupted download."""
    saved = _client(ctx).pennsieve.download(dataset_id, list(paths) or None, output_dir,
                                            version=version, max_workers=jobs, progress=progress)
    for path in saved:
        click.echo(str(path))
