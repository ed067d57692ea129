"""The ``sparc`` command line: a thin shell over :mod:`sparc.client` and :mod:`sparc.sandbox`.

Example::

    $ sparc sandbox serve --port 0
    http://127.0.0.1:53121
    export PENNSIEVE_API_HOST=http://127.0.0.1:53121
"""

from __future__ import annotations

import importlib
import os

import click

from sparc.cli._errors import BadArgumentLine, SparcGroup, install_hard_stop

#: The subcommands: name -> (module, attribute, the one line ``sparc --help`` shows). A
#: command's module is imported only when that command runs (or shows its own help), so
#: ``sparc --help`` and every command start fast; tests check these lines against the commands.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "datasets": ("sparc.cli._pennsieve", "datasets",
                 "Search published datasets; list and create your own."),
    "files": ("sparc.cli._pennsieve", "files", "Browse the files of a dataset version."),
    "download": ("sparc.cli._pennsieve", "download",
                 "Download files or folders (verified, resumable)."),
    "upload": ("sparc.cli._pennsieve", "upload",
               "Upload files or folders to your dataset (no Agent)."),
    "o2sparc": ("sparc.cli._o2sparc", "o2sparc",
                "o²S²PARC: your profile, solvers, and jobs that run them."),
    "sandbox": ("sparc.cli._sandbox", "sandbox",
                "Serve the offline SPARC sandbox (Pennsieve, o²S²PARC)."),
    "zinc": ("sparc.cli._zinc", "zinc",
             "Export scaffolds and segmentations to VTK, STL, ..."),
}


class _LazyGroup(SparcGroup):
    """The root group with :data:`COMMANDS` imported on first use (commands added with
    ``add_command`` work as in any group)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.commands[name].get_short_help_str() if name in self.commands
                 else COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    """SPARC from the command line: search, browse, download and upload Pennsieve datasets,
    run o²S²PARC solvers, export Zinc meshes, serve the offline sandbox.

    Hosts and credentials come from the config file and from environment variables
    (PENNSIEVE_API_HOST, O2SPARC_HOST, ...), e.g. those printed by `sparc sandbox serve`.
    """
    from sparc.cli import _logging

    _logging.configure(verbose)
    ctx.call_on_close(_logging.unconfigure)
    typed = os.path.expanduser(config_file) if config_file is not None else None
    if typed is not None and not os.path.isfile(typed):  # the user typed it: it must exist
        why = "is a folder" if os.path.isdir(typed) else "no such file"
        raise BadArgumentLine(f"--config {config_file}: {why}")
    ctx.ensure_object(dict).update(config_file=config_file, profile=profile, verbose=verbose)



def main() -> None:
    """Console-script entry point (Ctrl-C ends it within about a second, exit 130)."""
    install_hard_stop()
    cli(prog_name="sparc")


__all__ = ["cli", "main"]
