"""Every command and subcommand has help text with an example, and the README names it."""

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        path = prefix + (name,)
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


ALL = list(_commands(cli))


def test_there_are_commands():
    assert len(ALL) >= 15


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p))
def test_help_has_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`kant-slurm {' '.join(path)} --help` shows no example"


@pytest.mark.parametrize("path", [p for p, c in ALL if len(p) == 1], ids=lambda p: p[0])
def test_readme_mentions_every_top_level_command(path):
    assert f"kant-slurm {path[0]}" in README.read_text(), \
        f"README does not show `kant-slurm {path[0]}`"
