"""The ``sparc`` command line: a thin shell over :mod:`sparc.client` and :mod:`sparc.sandbox`.

Example::

    $ sparc sandbox serve --port 0
    http://127.0.0.1:53121
    export PENNSIEVE_API_HOST=http://127.0.0.1:53121
"""

from __future__ import annotations

import os

import click

from sparc.cli import _logging
from sparc.cli._errors import BadArgumentLine, SparcGroup, install_hard_stop
from sparc.cli._o2sparc import o2sparc
from sparc.cli._pennsieve import datasets, download, files, upload
from sparc.cli._sandbox import sandbox
from sparc.cli._zinc import zinc


@click.group(cls=SparcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparc.client", prog_name="sparc")
@click.option("--config", "config_file", type=click.Path(),
              help="INI config file with profiles (optional).")
@click.option("--profile", help="Profile of the config file to use.")
@click.option("-v", "--verbose", count=True, help="Log requests to stderr (-vv for debug).")
@click.option("--traceback", is_flag=True,
              help="Show the full traceback of an error (also: SPARC_DEBUG=1).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, profile: str | None, verbose: int,
        traceback: bool) -> None:
    """SPARC data from the command line: search, browse and download public datasets.

    Hosts and credentials come from the config file and from environment variables
    (PENNSIEVE_API_HOST, ...), e.g. those printed by `sparc sandbox serve`.
    """
    _logging.configure(verbose)
    ctx.call_on_close(_logging.unconfigure)
    typed = os.path.expanduser(config_file) if config_file is not None else None
    if typed is not None and not os.path.isfile(typed):  # the user typed it: it must exist
        why = "is a folder" if os.path.isdir(typed) else "no such file"
        raise BadArgumentLine(f"--config {config_file}: {why}")
    ctx.ensure_object(dict).update(config_file=config_file, profile=profile, verbose=verbose)


for command in (datasets, files, download, upload, o2sparc, sandbox, zinc):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point (Ctrl-C ends it within about a second, exit 130)."""
    install_hard_stop()
    cli(prog_name="sparc")


__all__ = ["cli", "main"]
