"""``kant-slurm bench plan``: time full planning cycles on a synthetic snapshot."""

from __future__ import annotations

import click

from ..config import load_config
from ..engine.benchmark import BLOCKED_FILL, BLOCKED_GANG_SHARE, run_bench
from .options import echo_json, json_option


@click.group("bench")
def bench_group():
    """Benchmarks of the engine.

    \b
    Examples:
      kant-slurm bench plan --nodes 1250 --pending 5000 --running 2000
      kant-slurm bench plan --nodes 1250 --pending 5000 --blocked   # reservations, backfill
    """


@bench_group.command("plan")
@click.option("--nodes", type=click.IntRange(1), required=True, help="Nodes in the cluster.")
@click.option("--gpus-per-node", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--pending", type=click.IntRange(0), required=True, help="Pending jobs.")
@click.option(
    "--running",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Running jobs (fewer if the cluster fills up).",
)
@click.option(
    "--policy", type=click.Choice(["kant", "slurm", "fifo"]), default="kant", show_default=True
)
@click.option(
    "--cycles", type=click.IntRange(1), default=5, show_default=True, help="Planning cycles timed."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--trace",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Philly-format CSV for job shapes (default: the bundled slice).",
)
@click.option(
    "--blocked",
    is_flag=True,
    help=f"The blocked scenario: running jobs fill {BLOCKED_FILL:.0%} of the GPUs "
    f"and large gangs ({BLOCKED_GANG_SHARE:.0%} of the pending jobs, 8-32 "
    f"whole nodes) head the queue, so the cycle makes reservations and backfill "
    f"tests (--running is not used).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="KANT_CONFIG",
    default=None,
    help="kant config merged over the defaults.",
)
@json_option
def bench_plan_cmd(
    nodes,
    gpus_per_node,
    pending,
    running,
    policy,
    cycles,
    seed,
    trace,
    blocked,
    config_path,
    as_json,
):
    """Build a snapshot of N nodes x G GPUs with P pending and R running jobs (shapes drawn,
    seeded, from the real Philly trace), time CYCLES full planning cycles and print the median
    and max seconds and the peak memory.

    \b
    Examples:
      kant-slurm bench plan --nodes 1250 --gpus-per-node 8 --pending 5000 --running 2000
      kant-slurm bench plan --nodes 12500 --pending 20000 --running 20000 --json
      kant-slurm bench plan --nodes 1250 --pending 5000 --blocked
    """
    if blocked and running:
        raise click.UsageError(
            "--blocked fills the cluster with running jobs itself; leave out --running"
        )
    result = run_bench(
        nodes,
        gpus_per_node,
        pending,
        running,
        policy_name=policy,
        cycles=cycles,
        seed=seed,
        config=load_config(config_path),
        trace=trace,
        blocked=blocked,
    )
    if as_json:
        echo_json(result.to_dict())
        return
    r = result
    click.echo(
        f"{r.policy}: {r.nodes} nodes x {r.gpus_per_node} GPUs, {r.pending} pending, "
        f"{r.running} running; {r.cycles} cycles"
    )
    click.echo(
        f"  median {r.median_s:.3f} s   max {r.max_s:.3f} s   (CPU median "
        f"{r.median_cpu_s:.3f} s)   peak RSS {r.peak_rss_mb:.0f} MB"
    )
    click.echo(
        f"  last plan: {r.started} start now, {r.reservations} reservations"
        + (
            f"; {r.gangs_started} of the {r.head_gangs} gangs at the head of the queue start now"
            if r.blocked
            else ""
        )
    )


commands = [bench_group]
