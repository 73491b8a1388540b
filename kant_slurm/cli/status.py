"""``kant-slurm status``: the live cluster at a glance (issue 2 §4)."""

from __future__ import annotations

import click

from ..report.status import format_status, status_summary
from ..slurm import read_snapshot
from .options import echo_json, json_option


@click.command("status")
@json_option
def status(as_json: bool) -> None:
    """GPUs used per leaf group and node, GAR, GFR, stranded GPUs and pending jobs.

    \b
    Examples:
      kant-slurm status
      kant-slurm status --json | jq .gar
    Reads the cluster SLURM_CONF points at; slurmctld not answering exits with code 2.
    """
    summary = status_summary(read_snapshot())
    if as_json:
        echo_json(summary)
    else:
        click.echo(format_status(summary))


commands = [status]
