"""The root command imports its subcommands only when they run."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from sparc.cli import COMMANDS, cli


def test_every_listed_command_loads_under_its_name() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert cli.get_command(ctx, "nope") is None


def test_root_help_lists_every_command_without_importing_them() -> None:
    code = ("import sys\nfrom sparc.cli import cli\n"
            "try:\n    cli(['--help'], prog_name='sparc')\nexcept SystemExit:\n    pass\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('sparc.cli._') "
            "and m not in ('sparc.cli._errors',))\n"
            "print('LOADED', loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in out
    assert "LOADED []" in out


def test_a_subcommand_still_runs_and_shows_its_own_help() -> None:
    result = CliRunner().invoke(cli, ["upload", "--help"])
    assert result.exit_code == 0, result.output
    assert "DATASET" in result.output
    result = CliRunner().invoke(cli, ["nonsense"])
    assert result.exit_code == 2 and "No such command 'nonsense'" in result.output
