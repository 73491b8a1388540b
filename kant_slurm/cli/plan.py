"""``kant-slurm plan``: what the engine would do on the live cluster now (read-only)."""

from __future__ import annotations

import click

from ..config import load_config
from ..engine.classify import make_classifier
from ..engine.render import PLAN_ROW_FIELDS, format_explain, format_plan, plan_rows
from ..errors import InputError
from .options import (
    NO_HELP_SHORTCUT,
    echo_json,
    format_table,
    json_option,
    table_options,
    wants_table,
)


def config_option(f):
    """``--config FILE``: a kant config merged over the shipped defaults (env KANT_CONFIG)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar="KANT_CONFIG",
        default=None,
        help="kant config (YAML/TOML) merged over the defaults [env KANT_CONFIG].",
    )(f)


def plan_live(policy: str | None, config_path: str | None, release_held: bool = False):
    """Read the live cluster and plan once, as ``schedule`` and ``daemon`` do (with
    ``release_held``, as if the user/admin holds were released); returns (plan, snapshot)."""
    from ..slurm import read_snapshot  # the only module that talks to Slurm
    from ..steer import live_plan

    config = load_config(config_path)
    snapshot = read_snapshot(classify=make_classifier(config))
    if release_held:
        snapshot = snapshot.released()
    return live_plan(config, snapshot, snapshot.taken_at, policy=policy), snapshot


def unexplained_job_message(job_id: str, snapshot) -> str:
    """The one-line error for ``--explain JOBID`` when the plan has no reasoning for that job:
    what the job is instead (running, or not in the queue) and the pending jobs it could be."""
    job = next((j for j in snapshot.jobs + snapshot.held if j.job_id == job_id), None)
    if job is None:
        what = f"no job {job_id} in the queue"
    else:
        what = f"job {job_id} is {job.state.lower()}"
    queued = [j.job_id for j in snapshot.queued]
    pending = ", ".join(queued[:10]) or "(none)"
    more = f", ... ({len(queued)} in all)" if len(queued) > 10 else ""
    return (
        f"--explain {job_id}: not a pending job in the snapshot: {what}; pending: {pending}{more}"
    )


@click.command("plan", context_settings=NO_HELP_SHORTCUT)
@click.option(
    "--policy",
    type=click.Choice(["kant", "slurm", "fifo"]),
    default=None,
    help="Policy to plan with (default: the config's `policy`, kant).",
)
@click.option(
    "--explain",
    "explain_job",
    metavar="JOBID",
    default=None,
    help="Print one pending job's reasoning: order factors, placement or reservation.",
)
@click.option(
    "--limit", type=click.IntRange(1), default=50, show_default=True, help="Rows per table."
)
@click.option(
    "--release-held",
    is_flag=True,
    help="What-if: plan as if user/admin holds were released (read-only; schedule "
    "and daemon never plan a held job).",
)
@config_option
@json_option
@table_options
def plan_cmd(
    policy, explain_job, limit, release_held, config_path, as_json, noheader, parsable, fields
):
    """Plan one cycle on the live cluster, read-only: the queue order with each factor (as
    sprio shows Slurm's), the jobs that would start now with their nodes and why (group chosen,
    the alternatives' scores), reservations with times and nodes, node preference tiers.

    \b
    Examples:
      kant-slurm plan                       # kant's plan as tables
      kant-slurm plan --policy slurm --json # what stock Slurm would do, as JSON
      kant-slurm plan --explain 42          # why job 42 waits, and what may backfill
      kant-slurm plan --release-held        # what would start if the held jobs were released
      kant-slurm plan -P -h -o job_id,outcome,nodes   # one row per pending job, like squeue

    Jobs that Slurm itself would not start now (held, dependency, begin time, association or
    QOS limit, partition down, reservation, licences, array throttle) are listed with
    Slurm's reason and left alone: no start, pin, reservation or SiteFactor.

    -o, -P and -h (--noheader, as in squeue) print one row per pending job, every one
    (--limit is for the tables): its rank, outcome (start, backfill, reserved, waits, held),
    GPUs, start time, nodes and reason; -o help lists every field, the order factors included.
    """
    table = wants_table(fields, parsable, noheader)
    if table and (as_json or explain_job is not None):
        raise click.UsageError(
            f"{'--json' if as_json else '--explain'} and the job table (-o/-P/-h): choose one"
        )
    if explain_job is not None and not explain_job.strip():
        raise click.BadParameter(
            "expected a pending job id (squeue -h -t PD -o %i lists them), got ''",
            param_hint="--explain",
        )
    plan, snapshot = plan_live(policy, config_path, release_held)
    if explain_job is not None:
        if explain_job not in plan.explain:
            raise InputError(unexplained_job_message(explain_job, snapshot))
        if as_json:
            data = {
                "job_id": explain_job,
                "policy": plan.policy,
                "lines": list(plan.explain[explain_job]),
                "blocked": plan.blocked.get(explain_job),
                "start": next(
                    (p for p in plan.to_dict()["starts"] if p["job_id"] == explain_job), None
                ),
                "reservation": next(
                    (r for r in plan.to_dict()["reservations"] if r["job_id"] == explain_job), None
                ),
            }
            echo_json(data)
        else:
            click.echo(format_explain(plan, explain_job))
        return
    if as_json:
        echo_json(plan.to_dict())
    elif table:
        job_gpus = {j.job_id: j.gpus for j in snapshot.jobs + snapshot.held}
        click.echo(
            format_table(
                plan_rows(plan, job_gpus),
                fields,
                PLAN_ROW_FIELDS,
                parsable=parsable,
                noheader=noheader,
            )
        )
    else:
        click.echo(format_plan(plan, limit=limit))


commands = [plan_cmd]
