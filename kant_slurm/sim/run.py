"""One call that replays a trace under several policies and measures each: the library side of
``kant-slurm simulate`` and of the benchmarks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..metrics.summary import details, summarize
from ..metrics.timeline import Occupancy, occupancy, scheduling_window
from .cluster import ClusterSpec
from .simulator import SimResult, SimSettings, Simulator, prepare_workload
from .timelimit import apply_time_limits
from .traces import Trace

log = logging.getLogger(__name__)


@dataclass
class PolicyRun:
    """One policy's replay and its metrics."""

    result: SimResult
    headline: dict[str, Any]  # the --json keys (sim_seconds included)
    detail: dict[str, Any]
    occupancy: Occupancy


@dataclass
class Comparison:
    """Every policy on the same workload and cluster."""

    trace: Trace
    cluster: ClusterSpec
    runs: dict[str, PolicyRun]
    class_counts: dict[str, int]
    class_sources: dict[str, int]
    notes: list[str] = field(default_factory=list)
    time_limit_model: str = "ladder"
    seed: int = 0
    interval: float = 30.0
    default_sla: float | None = None  # the config's inference SLA (jobs without their own)


def _engine_config(config, cluster: ClusterSpec):
    """The config with the cluster spec's inference zone, when the spec has one."""
    if config is None:
        from ..config import load_config

        config = load_config()
    if cluster.inference_zone and hasattr(config, "inference_zone"):
        from ..hostlist import compress

        zone = dataclasses.replace(config.inference_zone, nodes=compress(cluster.inference_zone))
        config = dataclasses.replace(config, inference_zone=zone)
    return config


def compare_policies(trace: Trace, cluster: ClusterSpec, policies: Sequence[str], *,
                     config=None, seed: int = 0, time_limit_model: str = "ladder",
                     interval: float = 30.0,
                     progress: Callable[[str, int, int], None] | None = None) -> Comparison:
    """Replay ``trace`` on ``cluster`` once per policy (same workload each time) and measure."""
    from ..engine.registry import get_policy

    config = _engine_config(config, cluster)
    try:
        from ..engine.classify import make_classifier

        classifier = make_classifier(config)
    except ImportError:  # engine without rules: trace classes or batch
        classifier = None
    inference_cfg = getattr(config, "inference", None)
    default_sla = getattr(inference_cfg, "sla", None)
    jobs = apply_time_limits(trace.jobs, time_limit_model, seed)
    workload = prepare_workload(jobs, cluster.inventory)
    settings = SimSettings(interval=interval, fill_until_full=trace.fill_until_full)
    runs: dict[str, PolicyRun] = {}
    for name in policies:
        policy = get_policy(name, config)
        cb = (lambda done, total, _n=name: progress(_n, done, total)) if progress else None
        result = Simulator(cluster.inventory, workload, policy, settings=settings,
                           classifier=classifier, progress=cb).run()
        result.policy = name
        window = scheduling_window(result.records)
        occ = occupancy(result.records, cluster.inventory, window)
        head = summarize(result.records, occ, default_sla) | {"sim_seconds": result.sim_seconds}
        det = details(result.records, occ, cluster.inventory, default_sla) | {
            "window_s": [window[0], window[1]], "cycles": result.cycles,
            "cycles_skipped": result.cycles_skipped, "plan_seconds": result.plan_seconds,
            "preempt_polls": result.preempt_cycles,
        }
        if cluster.inference_zone:
            # GFR inside and outside the inference zone: spread 1-GPU replicas leave zone nodes
            # partly used by design; training fragmentation shows outside it.
            zone = np.zeros(len(cluster.inventory), dtype=bool)
            zone[[cluster.inventory.index[n] for n in cluster.inference_zone]] = True
            det["gfr_zone_mean"] = occupancy(result.records, cluster.inventory, window,
                                             nodes=zone).gfr.mean()
            det["gfr_outside_zone_mean"] = occupancy(result.records, cluster.inventory, window,
                                                     nodes=~zone).gfr.mean()
        if result.stopped_full:
            det["fill_stop"] = {"jobs_started": result.starts,
                                "gar_at_stop": float(occ.gar.values[-1]),
                                "gfr_at_stop": float(occ.gfr.values[-1])}
            result.notes.append(
                f"{name}: fill stopped after {result.starts:,} jobs started; at the stop GAR "
                f"{det['fill_stop']['gar_at_stop']:.3f}, GFR {det['fill_stop']['gfr_at_stop']:.3f}")
        runs[name] = PolicyRun(result=result, headline=head, detail=det, occupancy=occ)
    first = next(iter(runs.values())).result.records if runs else pd.DataFrame()
    counts = Counter(first["job_class"]) if len(first) else Counter()
    sources = Counter(first["class_source"]) if len(first) else Counter()
    return Comparison(
        trace=trace, cluster=cluster, runs=runs, class_counts=dict(sorted(counts.items())),
        class_sources=dict(sorted(sources.items())),
        notes=list(trace.notes) + workload.notes + [n for r in runs.values()
                                                   for n in r.result.notes[len(workload.notes):]],
        time_limit_model=time_limit_model, seed=seed, interval=interval,
        default_sla=default_sla,
    )
