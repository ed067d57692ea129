"""``sparc zinc export`` and ``sparc zinc analyse``: organ scaffolds and MBF segmentations to
mesh files, from a SPARC dataset or a local file (needs the ``zinc`` extra).

Examples::

    sparc zinc export 292 -f stl -o meshes/          # a dataset's scaffold(s)
    sparc zinc export 107 -f glb --file 10991_20180817_143553.xml
    sparc zinc export cube.exf -f vtk -f obj         # a local file, two formats
    sparc zinc analyse segmentation.xml --organ stomach --organ esophagus --species Mice

Every written path is printed on its own line (stdout); errors are one line on stderr.
"""

from __future__ import annotations

import os

import click

from sparc.cli._pennsieve import _client

FORMAT_CHOICES = ("vtk", "stl", "obj", "ply", "glb", "webgl")


@click.group()
def zinc() -> None:
    """Export organ scaffolds and MBF segmentations to VTK, STL, OBJ, PLY, GLB or WebGL."""


@zinc.command("export")
@click.argument("source")
@click.option("-f", "--format", "formats", multiple=True, default=("vtk",), show_default=True,
              type=click.Choice(FORMAT_CHOICES, case_sensitive=False),
              help="Output format (repeat for several; one load serves all).")
@click.option("-o", "--output", "output", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the written files.")
@click.option("--file", "file", help="Only this file of the dataset (path or name).")
@click.option("--version", "version", type=click.IntRange(1),
              help="Dataset version (default: the latest).")
@click.option("--refinement", default=6, show_default=True, type=click.IntRange(1, 64),
              help="Divisions per element edge for the curved surfaces.")
@click.option("--tube-radius", type=click.FloatRange(0, min_open=True),
              help="Radius of the tubes around MBF lines (default: the file's radii).")
@click.option("--quiet", "-q", is_flag=True, help="No download progress bar.")
@click.pass_context
def zinc_export(ctx: click.Context, source: str, formats: tuple[str, ...], output: str,
                file: str | None, version: int | None, refinement: int,
                tube_radius: float | None, quiet: bool) -> None:
    """Export SOURCE (a dataset id such as 292, or a local .json/.exf/.ex/.xml file).

    All formats keep the source's coordinates (no axis swap), so they agree with each other.
    """
    target: int | str = source
    if source.strip().isdigit() and not os.path.isfile(source):  # a folder 107 is no file
        target = int(source)
    paths = _client(ctx).zinc.export(
        target, [f.lower() for f in formats], output, version=version, file=file,
        refinement=refinement, tube_radius=tube_radius, progress=False if quiet else None)
    for path in paths:
        click.echo(str(path))


@zinc.command("analyse")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--organ", "organs", multiple=True, required=True,
              help="Organ whose scaffoldmaker terms to match (repeatable), e.g. stomach.")
@click.option("--species", help="Species, e.g. Mice (accepted for compatibility).")
@click.pass_context
def zinc_analyse(ctx: click.Context, file: str, organs: tuple[str, ...],
                 species: str | None) -> None:
    """Say which groups of the MBF XML FILE the organs' annotation terms know."""
    click.echo(_client(ctx).zinc.analyse(file, list(organs), species))
