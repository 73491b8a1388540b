"""``kant-slurm whatif``: what kant would have done on this cluster's own history."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click

from ..errors import InputError
from .options import TIME_FORMS, SlurmTime, echo_json, json_option, parse_slurm_time
from .sweep import Progress

DEFAULT_POLICIES = "slurm,kant-steered,kant"


def _local(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise click.BadParameter(
            f"{text!r}: expected distinct whole numbers >= 0, e.g. 0,1,2", param_hint="--seeds"
        )
    return seeds


@click.command("whatif")
@click.option(
    "-S",
    "--starttime",
    "since",
    type=SlurmTime(),
    default=None,
    help=f"History window start: {TIME_FORMS}  [default: now-30days; with --input: "
    "the dump's first job].",
)
@click.option(
    "-E",
    "--endtime",
    "until",
    type=SlurmTime(),
    default=None,
    help="History window end (same forms)  [default: now; with --input: the dump's last job].",
)
@click.option(
    "--input",
    "dump_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="A saved sacct -P or sacct --json dump instead of the live sacct.",
)
@click.option(
    "--slurm-conf",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="The cluster from a slurm.conf (+ gres.conf, topology.conf beside it) and "
    "its SchedulerParameters, instead of the live cluster.",
)
@click.option(
    "--cluster",
    "cluster_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="The cluster from a cluster spec YAML instead.",
)
@click.option(
    "--policies",
    default=DEFAULT_POLICIES,
    show_default=True,
    help="Policies to compare; slurm (stock Slurm as configured) is the baseline.",
)
@click.option(
    "--seeds",
    "seeds_text",
    default="0,1,2",
    show_default=True,
    help="Seeds of the time-limit model (jobs without a limit get a seeded one).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="KANT_CONFIG",
    default=None,
    help="kant config merged over the defaults [env KANT_CONFIG].",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Policies replayed at once (default: the CPU count).",
)
@click.option(
    "--save-history",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keep the live sacct history read as this sacct -P dump (for --input later).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a self-contained HTML report.",
)
@json_option
def whatif_cmd(
    since,
    until,
    dump_path,
    slurm_conf,
    cluster_path,
    policies,
    seeds_text,
    config_path,
    workers,
    save_history,
    html_path,
    as_json,
):
    """Replay this cluster's own job history (sacct over a window, default the last 30 days)
    on its own shape (nodes, GRES, partitions, switches, and the SchedulerParameters the slurm
    model reads: bf_max_job_test, bf_window, bf_interval) under stock Slurm as configured
    (slurm), Slurm steered by kant's daemon (kant-steered, what a site deploys) and kant's own
    scheduler (kant), over several seeds. Prints each metric's mean and 95% interval over the
    seeds, and where kant helps and where it does not.

    \b
    Examples:
      kant-slurm whatif                                 # live sacct, last 30 days
      kant-slurm whatif -S now-7days --html whatif.html
      kant-slurm whatif --input sacct-dump.txt --slurm-conf /etc/slurm/slurm.conf --json
      kant-slurm whatif --save-history last-month.txt   # keep the history for --input
    """
    from ..config import load_config
    from ..sim.run import compare_policies
    from ..whatif import history, recommend, schedparams, stats

    if slurm_conf and cluster_path:
        raise click.UsageError("give --slurm-conf or --cluster, not both")
    if html_path:
        from ..report.html import require_plotting

        require_plotting("--html")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise click.UsageError("--policies: give at least one policy, e.g. slurm,kant")
    seeds = _seeds(seeds_text)
    now = time.time()
    t_start = time.monotonic()
    config = load_config(config_path)
    progress = Progress()
    t0 = parse_slurm_time(since, now) if since else None
    t1 = parse_slurm_time(until, now) if until else None
    if dump_path:
        source = dump_path
        trace = history.read_history(dump_path, t0, t1)
    else:
        t0 = now - 30 * 86400.0 if t0 is None else t0
        t1 = now if t1 is None else t1
        keep = save_history or tempfile.mkstemp(prefix="kant-whatif-", suffix=".txt")[1]
        try:
            progress("reading sacct history")
            lines = history.dump_live_history(t0, t1, Path(keep))
            progress(f"sacct: {lines:,} allocations", force=True)
            try:
                trace = history.read_history(keep)
            except InputError as exc:
                # Say which window was read; the reader's own message says what is wrong
                # (no GPU job started in it, or a record it cannot read).
                raise InputError(
                    f"sacct -S {_local(t0)} -E {_local(t1)} ({lines:,} allocations): {exc}"
                ) from exc
        finally:
            if not save_history:
                os.unlink(keep)
        source = f"live sacct ({lines:,} allocations)" + (
            f", saved as {save_history}" if save_history else ""
        )
    cluster, sched, shape_source = history.cluster_shape(slurm_conf, cluster_path)
    setup = schedparams.PolicySetup(sched.values) if sched.values else None
    interval = schedparams.interval_of(sched.values, 30.0)
    results: dict[str, dict[int, dict]] = {n: {} for n in names}
    notes: list[str] = []
    for k, seed in enumerate(seeds):

        def show(policy, done, total, _k=k, _s=seed):
            progress(f"seed {_s} ({_k + 1}/{len(seeds)}): {policy} {100 * done // max(total, 1)}%")

        comparison = compare_policies(
            trace,
            cluster,
            names,
            config=config,
            seed=seed,
            interval=interval,
            policy_setup=setup,
            progress=show,
            workers=workers or min(len(names), os.cpu_count() or 1),
        )
        notes = comparison.notes
        for name, run in comparison.runs.items():
            results[name][seed] = {
                "metrics": {k2: v for k2, v in run.headline.items() if k2 != "sim_seconds"}
            }
    progress.close()
    cells = [
        stats.merge_cell(
            {"index": i, "key": name, "label": name, "spec": {"policy": name}},
            seeds,
            results[name],
            {},
        )
        for i, name in enumerate(names)
    ]
    advice = recommend.recommend(cells)
    limits_given = bool(trace.jobs["time_limit"].notna().all())
    if limits_given and len(seeds) > 1:
        notes = notes + [
            (
                "every job has its own time limit in the history, so the seeds replay "
                "the same workload and the spread over them is 0"
            )
        ]
    elapsed = time.monotonic() - t_start
    window = None
    if trace.epoch is not None and len(trace.jobs):
        first = trace.epoch.timestamp()
        window = [first, first + float(trace.jobs["submit_time"].max())]
    doc = {
        "history": {"source": source, "jobs": len(trace.jobs), "submit_window": window},
        "cluster": {
            "name": cluster.name,
            "source": shape_source,
            "gpus": cluster.total_gpus,
            "nodes": len(cluster.inventory),
        },
        "scheduler_parameters": {
            "modelled": dict(sched.values),
            "not_modelled": list(sched.ignored),
        },
        "seeds": seeds,
        "notes": notes,
        "cells": cells,
        "recommendation": advice,
        "elapsed_s": elapsed,
    }
    meta = (
        f"history: {source}, {len(trace.jobs):,} jobs; cluster: {cluster.describe()} from "
        f"{shape_source}; SchedulerParameters: {sched.describe()}; seeds "
        f"{','.join(map(str, seeds))}"
    )
    if html_path:
        from ..whatif.html import whatif_html

        Path(html_path).write_text(
            whatif_html(
                "kant-slurm whatif", meta + "".join(f"; {n}" for n in notes), cells, advice["lines"]
            ),
            encoding="utf-8",
        )
    if as_json:
        echo_json(doc)
        return
    click.echo(meta)
    for n in notes:
        click.echo(f"note: {n}")
    click.echo("")
    click.echo(stats.cells_table(cells))
    click.echo("")
    for line in advice["lines"]:
        click.echo(f"- {line}")
    click.echo(f"\n({elapsed:.1f}s" + (f"; HTML report: {html_path})" if html_path else ")"))


commands = [whatif_cmd]
