"""The ``sparc`` command line: a thin shell over :mod:`sparc.client` and :mod:`sparc.sandbox`.

Example::

    $ sparc sandbox serve --port 0
    http://127.0.0.1:53121
    export PENNSIEVE_API_HOST=http://127.0.0.1:53121
"""

from __future__ import annotations

import click

from sparc.cli._pennsieve import datasets, download, files
from sparc.cli._sandbox import sandbox


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparc.client", prog_name="sparc")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="INI config file with profiles (optional).")
@click.option("--profile", help="Profile of the config file to use.")
@click.option("-v", "--verbose", count=True, help="Log requests to stderr (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, profile: str | None, verbose: int) -> None:
    """SPARC data from the command line: search, browse and download public datasets.

    Hosts and credentials come from the config file and from environment variables
    (PENNSIEVE_API_HOST, ...), e.g. those printed by `sparc sandbox serve`.
    """
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict).update(config_file=config_file, profile=profile)


for command in (datasets, files, download, sandbox):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sparc")


__all__ = ["cli", "main"]
