"""``kant-slurm status``: the live cluster at a glance (issue 2 §4)."""

from __future__ import annotations

import click

from ..report.status import format_status, status_summary
from ..slurm import read_snapshot
from .options import (
    NO_HELP_SHORTCUT,
    echo_json,
    format_table,
    json_option,
    table_options,
    wants_table,
)

NODE_FIELDS = ("name", "state", "schedulable", "leaf_group", "gpus_total", "gpus_allocated")


@click.command("status", context_settings=NO_HELP_SHORTCUT)
@json_option
@table_options
def status(as_json: bool, noheader: bool, parsable: bool, fields: str | None) -> None:
    """GPUs used per leaf group and node, GAR, GFR, stranded GPUs and pending jobs.

    \b
    Examples:
      kant-slurm status
      kant-slurm status --json | jq .gar
      kant-slurm status -P -o name,leaf_group,gpus_allocated   # one row per node, like sinfo -N
    -o, -P and -h (--noheader, as in sinfo) print one row per node. Reads the cluster
    SLURM_CONF points at; slurmctld not answering exits with code 3.
    """
    table = wants_table(fields, parsable, noheader)
    if as_json and table:
        raise click.UsageError("--json and the node table (-o/-P/-h): choose one")
    summary = status_summary(read_snapshot())
    if as_json:
        echo_json(summary)
    elif table:
        click.echo(
            format_table(
                summary["nodes"], fields, NODE_FIELDS, parsable=parsable, noheader=noheader
            )
        )
    else:
        click.echo(format_status(summary))


commands = [status]
