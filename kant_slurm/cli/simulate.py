"""``kant-slurm simulate``: replay a real trace under fifo, slurm and kant, print the metrics."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ..engine.policies.slurm import SlurmPolicy
from ..errors import InputError
from ..steer import DAEMON_INTERVAL_S
from ..whatif.schedparams import PolicySetup
from .options import echo_json, json_option

SLURM_RELEASES = SlurmPolicy.RELEASES


class _Progress:
    """A one-line progress display on stderr, only when stderr is a terminal: one bar while
    policies run one after another, one percentage per policy while they run side by side."""

    def __init__(self, enabled: bool, parallel: bool = False) -> None:
        self.enabled = enabled
        self.parallel = parallel
        self.t0 = time.monotonic()
        self.last = 0.0
        self.state: dict[str, tuple[int, int]] = {}

    def __call__(self, policy: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        self.state[policy] = (done, total)
        now = time.monotonic()
        finished = all(d >= t for d, t in self.state.values())
        if not (done >= total) and now - self.last < 0.2:
            return
        self.last = now
        if self.parallel:
            parts = "  ".join(f"{p} {100 * d // max(t, 1):3d}%" for p, (d, t) in self.state.items())
            click.echo(f"\r{parts}  {now - self.t0:5.1f}s", err=True, nl=False)
            return
        width = 30
        filled = int(width * done / max(total, 1))
        click.echo(
            f"\r{policy:>6} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} "
            f"jobs  {now - self.t0:5.1f}s",
            err=True,
            nl=done >= total and finished,
        )

    def close(self) -> None:
        if self.enabled and self.parallel and self.state:
            click.echo("", err=True)


def _load_cluster(cluster_path, slurm_conf):
    from ..sim.cluster import bundled_cluster_path, load_cluster_spec, spec_from_inventory

    if cluster_path and slurm_conf:
        raise click.UsageError("give --cluster or --slurm-conf, not both")
    if slurm_conf:
        from ..formats.slurm_conf import read_slurm_conf

        inventory = read_slurm_conf(slurm_conf)
        return spec_from_inventory(inventory, name=Path(slurm_conf).name, source=slurm_conf)
    return load_cluster_spec(cluster_path or bundled_cluster_path())


@click.command("simulate")
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Trace file (default: the bundled 3-day Philly slice).",
)
@click.option(
    "--trace-format",
    type=click.Choice(["philly", "swf", "openb", "sacct", "alibaba-inference"]),
    default=None,
    help="Trace format (default: guessed from the file).",
)
@click.option(
    "--inference-trace",
    "inference_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Add the inference services of the Alibaba alibaba-dlrm-inference-2025.csv "
    "to the training trace (a mixed workload; see kant_slurm/sim/mixed.py).",
)
@click.option(
    "--inference-share",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.15,
    show_default=True,
    help="Mixed workload: inference apps are added (seeded by --seed) while their "
    "peak GPUs stay within this share of the cluster's GPUs.",
)
@click.option(
    "--inference-offset",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Mixed workload: seconds into the inference trace laid over the training trace's start.",
)
@click.option(
    "--cluster",
    "cluster_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Cluster spec YAML (default: the bundled 48 x 8 GPU cluster).",
)
@click.option(
    "--slurm-conf",
    type=click.Path(dir_okay=False),
    default=None,
    help="Use a site's slurm.conf (+ gres.conf, topology.conf beside it) as the cluster.",
)
@click.option(
    "--slurm-release",
    type=click.Choice(SLURM_RELEASES),
    default=SLURM_RELEASES[0],
    show_default=True,
    help="The Slurm that the slurm and kant-steered policies model: 26.05 places one-node "
    "jobs on the lightest node Weight, then in node order, without a leaf search.",
)
@click.option(
    "--policies",
    default="fifo,slurm,kant-steered,kant",
    show_default=True,
    help="Comma-separated policies to compare: fifo, slurm (stock Slurm), "
    "kant-steered (stock Slurm steered by kant's daemon: what a site deploys), "
    "kant (kant's own scheduler, the ideal).",
)
@click.option(
    "--steer-interval",
    type=click.FloatRange(0),
    default=DAEMON_INTERVAL_S,
    show_default=True,
    help="kant-steered: seconds of trace time between two daemon cycles.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the time-limit model."
)
@click.option(
    "--time-limit-model",
    default="ladder",
    show_default=True,
    help="Limits for jobs whose trace has none: ladder, exact, fixed:SECONDS, none.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds between scheduling cycles at most (Slurm's bf_interval).",
)
@click.option(
    "--procs-per-gpu",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="SWF: processors that make one GPU.",
)
@click.option(
    "--openb-mode",
    type=click.Choice(["arrival", "fill"]),
    default="arrival",
    show_default=True,
    help="openb: replay arrivals, or fill until a pod does not fit.",
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
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a self-contained HTML report with plots.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Policies replayed at once, one process each (default: the CPU count, at "
    "most the number of policies; 1 = one after another). Same results.",
)
@json_option
def simulate_cmd(
    trace_path,
    trace_format,
    inference_path,
    inference_share,
    inference_offset,
    cluster_path,
    slurm_conf,
    slurm_release,
    policies,
    steer_interval,
    seed,
    time_limit_model,
    interval,
    procs_per_gpu,
    openb_mode,
    config_path,
    html_path,
    workers,
    as_json,
):
    """Replay a real job trace on a virtual cluster under each policy and compare the Kant
    metrics side by side: GAR, SOR, GFR (+ stranded GPUs), waits (JWTD), JCT, makespan.
    The simulator drives the real engine; times are trace seconds. `kant-steered` is what a
    site deploys: stock Slurm's model makes every start, steered by kant's daemon through
    SiteFactor, node Weight and pins every --steer-interval; `kant` is kant's own scheduler,
    the ideal. On traces of 20,000 jobs or more, slurm and kant walk the queue in compiled
    code (numba); the first such run compiles it once in a child process (about 40 s) and
    plans in Python meanwhile, with the same decisions.

    \b
    Examples:
      kant-slurm simulate          # bundled Philly slice on 48 x 8 GPUs, all four policies
      kant-slurm simulate --policies slurm,kant-steered --steer-interval 10
      kant-slurm simulate --policies slurm,kant-steered --slurm-release 26.05
      kant-slurm simulate --trace philly-2017-sep-oct.csv --cluster site.yaml --json
      kant-slurm simulate --trace pods.csv --trace-format openb --openb-mode fill
      kant-slurm simulate --slurm-conf /etc/slurm/slurm.conf --html report.html
      kant-slurm simulate --trace philly.csv --inference-trace alibaba-dlrm-inference-2025.csv \\
          --config kant.yaml --policies slurm,kant   # training + inference, preemption
    """
    from ..config import load_config
    from ..sim.run import compare_policies
    from ..formats.traces import bundled_trace_path, read_trace

    if html_path:
        from ..report.html import require_plotting

        require_plotting("--html")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise InputError("--policies: give at least one policy, e.g. fifo,slurm,kant")
    config = load_config(config_path)
    cluster = _load_cluster(cluster_path, slurm_conf)
    trace = read_trace(
        trace_path or bundled_trace_path(),
        trace_format,
        procs_per_gpu=procs_per_gpu,
        openb_mode=openb_mode,
    )
    if inference_path:
        from ..sim.mixed import mix_workload
        from ..formats.traces import read_alibaba_inference

        trace = mix_workload(
            trace,
            read_alibaba_inference(inference_path),
            cluster.total_gpus,
            share=inference_share,
            seed=seed,
            offset=inference_offset,
        )
    if workers is None:
        workers = min(len(names), os.cpu_count() or 1)
    progress = _Progress(sys.stderr.isatty() and not as_json, parallel=workers > 1)
    comparison = compare_policies(
        trace,
        cluster,
        names,
        config=config,
        seed=seed,
        time_limit_model=time_limit_model,
        interval=interval,
        progress=progress,
        workers=workers,
        steer_interval=steer_interval,
        policy_setup=PolicySetup({}, release=slurm_release),
    )
    progress.close()
    if html_path:
        from ..report.html import simulate_html

        Path(html_path).write_text(simulate_html(comparison))
    if as_json:
        doc = comparison_json(comparison)
        doc["slurm_release"] = slurm_release
        echo_json(doc)
        return
    if slurm_release != SLURM_RELEASES[0]:
        click.echo(f"slurm and kant-steered model Slurm {slurm_release}")
    click.echo(comparison_text(comparison))
    if html_path:
        click.echo(f"\nHTML report: {html_path}")


def comparison_json(c) -> dict:
    """The --json document: run settings, job classes, and one object per policy.

    Each policy's object holds its headline keys (as before) and ``detail``: every other figure
    the table and the HTML print (waits by GPU size and by class, JTTED, gangs, backfill counts,
    GAR/GFR spread, time-limit accuracy, inference SLA, preemptions, cycle counts).
    """
    return {
        "trace": {"path": c.trace.source, "format": c.trace.fmt, "jobs": len(c.trace.jobs)},
        "cluster": {
            "name": c.cluster.name,
            "gpus": c.cluster.total_gpus,
            "nodes": len(c.cluster.inventory),
        },
        "time_limit_model": c.time_limit_model,
        "seed": c.seed,
        "interval_s": c.interval,
        "steer_interval_s": c.steer_interval,
        # One window for every policy (sim.run.shared_window): first submit .. last start.
        "window_s": list(c.window),
        "job_classes": c.class_counts,
        "class_sources": c.class_sources,
        "notes": c.notes,
        "policies": {name: run.headline | {"detail": run.detail} for name, run in c.runs.items()},
    }


def comparison_text(c) -> str:
    from ..report.tables import (
        detail_table,
        fmt_ratio,
        headline_table,
        inference_table,
        wait_by_table,
    )

    window = ""
    if c.runs:
        t0, t1 = c.window
        window = (
            f"; metrics over first submit .. last start of any policy "
            f"({(t1 - t0) / 86400:.1f} days, the same for all)"
        )
    classes = ", ".join(f"{k} {v:,}" for k, v in c.class_counts.items())
    sources = ", ".join(f"{k} {v:,}" for k, v in c.class_sources.items())
    lines = [
        f"trace:   {Path(c.trace.source).name} ({c.trace.fmt}, {len(c.trace.jobs):,} jobs)",
        f"cluster: {c.cluster.describe()}",
        f"model:   time limits {c.time_limit_model} (seed {c.seed}); a cycle at most every "
        f"{c.interval:g}s{window}"
        + (
            f"; kant-steered: a daemon cycle every {c.steer_interval:g}s"
            if "kant-steered" in c.runs
            else ""
        ),
        f"classes: {classes} (class from: {sources})",
    ]
    lines += [f"note:    {n}" for n in c.notes]
    lines += [
        "",
        headline_table(
            {k: r.headline | {"sim_s": r.headline["sim_seconds"]} for k, r in c.runs.items()},
            extra=[("sim_s", "sim s", lambda v: f"{v:.1f}")],
        ),
    ]
    details = {k: r.detail for k, r in c.runs.items()}
    lines += ["", detail_table(details)]
    lines += ["", "wait by GPU size bucket (p99/max):", wait_by_table(details)]
    if len(c.class_counts) > 1:
        lines += ["", "wait by class (p99/max):", wait_by_table(details, "by_class", "job_class")]
    if any("gfr_zone_mean" in d for d in details.values()):
        lines += ["", "GFR inside / outside the inference zone (time-weighted mean):"]
        lines += [
            f"  {k}: {fmt_ratio(d.get('gfr_zone_mean'))} / "
            f"{fmt_ratio(d.get('gfr_outside_zone_mean'))}"
            for k, d in details.items()
        ]
    if c.class_counts.get("inference") or any(
        r.headline.get("preemptions") for r in c.runs.values()
    ):
        lines += [
            "",
            "inference SLA (first start) and preemption of training:",
            inference_table(details),
        ]
    return "\n".join(lines)


commands = [simulate_cmd]
