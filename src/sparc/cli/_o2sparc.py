"""``sparc o2sparc ...``: run o²S²PARC solvers from the command line (a fixed command line)."""

from __future__ import annotations

import click


@click.group()
def o2sparc() -> None:
    """o²S²PARC: your profile, solvers, and jobs that run them."""
