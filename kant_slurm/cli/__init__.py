"""The ``kant-slurm`` command: a thin click layer over the library.

Each command area lives in its own module here and exposes ``commands`` (a list of click
commands or groups). Library errors (:class:`kant_slurm.errors.KantError`) become a one-line
message and the error's exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from .. import __version__
from ..errors import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_PARTIAL,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    KantError,
    SlurmUnreachable,
)

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = (
    "devcluster",
    "status",
    "plan",
    "config",
    "simulate",
    "bench",
    "jobs",
    "steer",
    "report",
    "whatif",
    "sweep",
)


def exit_code_of(exc: KantError) -> int:
    """The documented exit code of ``exc`` (see :data:`kant_slurm.errors.EXIT_CODES_HELP`):
    3 for Slurm not answering and for the steering lock held (steer.LockHeld), the error's own
    code when it is one of the documented ones, else 1."""
    if isinstance(exc, SlurmUnreachable):
        return EXIT_UNREACHABLE
    documented = (EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_PARTIAL)
    return exc.exit_code if exc.exit_code in documented else EXIT_ERROR


class KantGroup(click.Group):
    """Turns KantError into `error: ...` on stderr with its documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KantError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code_of(exc))


@click.group(
    cls=KantGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  kant-slurm simulate                      # the bundled Philly slice, four policies
  kant-slurm devcluster up --nodes 16      # a real local Slurm with 16 x 8 GPUs
  kant-slurm status                        # GPUs, leaf groups, GAR/GFR of the live cluster
  kant-slurm plan --explain 42             # why job 42 waits, and what may backfill
"""
    + "\n"
    + EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="kant-slurm")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Kant-style GPU scheduling for Slurm: plan, steer, simulate and measure."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    for _command in _module.commands:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="kant-slurm")
