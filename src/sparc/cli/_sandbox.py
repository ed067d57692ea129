"""``sparc sandbox ...``: run the SPARC sandbox server (a published, fixed command line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sparc.sandbox.settings import DEFAULT_CLI_PORT, SandboxSettings

_default = SandboxSettings.default

@click.group()
def sandbox() -> None:
    """The SPARC sandbox: an offline emulation of the Pennsieve and o2S2PARC APIs."""


@sandbox.command()
@click.option("--host", default=_default("host"), show_default=True, help="Address to bind.")
@click.option("--port", default=DEFAULT_CLI_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to bind; 0 picks a free port.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the SQLite database and uploads [default: a temporary folder].")
@click.option("--api-key", default=None,
              help=f"The sandbox user's API key [default: {_default('api_key')}].")
@click.option("--api-secret", default=None,
              help=f"The sandbox user's API secret [default: {_default('api_secret')}].")
@click.option("--url-expiry", default=_default("url_expiry"), show_default=True,
              type=click.IntRange(1), help="Lifetime of download URLs, in seconds.")
@click.option("--download-size-cap", default=_default("download_size_cap"), show_default=True,
              type=click.IntRange(0), help="Total-size cap of a download manifest, in bytes.")
@click.option("--time-scale", default=_default("time_scale"), show_default=True,
              type=click.FloatRange(0),
              help="Multiplies every simulated delay (0 = no delays).")
@click.option("--faults", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file with a list of fault rules to apply from the start "
                   "(see FAULTS.md; change them later with POST /_sandbox/faults).")
@click.option("--seed", type=int, default=None,
              help="Seed for the fault rules' rate draws (same seed, same requests: same faults).")
def serve(**options: Any) -> None:
    """Serve the sandbox until SIGINT/SIGTERM.

    The first line printed is the base URL; the next are `export NAME=value`
    lines that point the client at it.
    """
    try:
        from sparc.sandbox.server import StartupError
        from sparc.sandbox.server import serve as run
    except ImportError as exc:  # the sandbox extra is missing
        raise click.ClickException(
            f"the sandbox needs its extra: pip install 'sparc.client[sandbox]' ({exc})"
        ) from exc
    try:
        code = run(**options)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(code)
