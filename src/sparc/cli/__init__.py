"""The ``sparc`` command line: a thin shell over :mod:`sparc.client` and :mod:`sparc.sandbox`.

Example::

    $ sparc sandbox serve --port 0
    http://127.0.0.1:53121
    export PENNSIEVE_API_HOST=http://127.0.0.1:53121
"""

from __future__ import annotations

import click

from sparc.cli._sandbox import sandbox


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparc.client", prog_name="sparc")
def cli() -> None:
    """SPARC data from the command line: search, browse and download public datasets."""


cli.add_command(sandbox)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sparc")


__all__ = ["cli", "main"]
