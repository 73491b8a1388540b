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
from .simulator import SimResult, SimSettings, Simulator
from .workload import prepare_workload
from .timelimit import apply_time_limits
from ..formats.traces import Trace

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
    window: tuple[float, float] = (0.0, 0.0)  # the metrics window every policy is measured over
    steer_interval: float = 30.0  # kant-steered: seconds of trace time between daemon cycles


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


# What a worker process needs, set by the parent just before the pool forks (the classifier is a
# closure and the workload a large table: inherited through fork, not pickled per task).
_SHARED: dict[str, Any] = {}


def _run_policy(name: str, progress: Callable[[int, int], None] | None = None) -> SimResult:
    """Replay the shared workload under one policy (measured later, over the shared window)."""
    from ..engine.registry import get_policy

    sh = _SHARED
    cluster = sh["cluster"]
    policy = get_policy(name, sh["config"])
    if hasattr(policy, "steer_interval"):
        policy.steer_interval = float(sh["steer_interval"])
    if sh.get("policy_setup") is not None:
        sh["policy_setup"](policy)
    result = Simulator(
        cluster.inventory,
        sh["workload"],
        policy,
        settings=sh["settings"],
        classifier=sh["classifier"],
        progress=progress,
    ).run()
    result.policy = name
    return result


def shared_window(results: Sequence[SimResult]) -> tuple[float, float]:
    """The one metrics window of a run: the first submit to the last start of any policy.

    Each policy's own window (first submit .. its own last start) would measure GAR and SOR of
    a policy that starts its last job later over more time, while the header prints one window;
    one window for all keeps the figures comparable.
    """
    spans = [scheduling_window(r.records) for r in results if len(r.records)]
    if not spans:
        return (0.0, 0.0)
    return (min(t0 for t0, _ in spans), max(t1 for _, t1 in spans))


def measure_run(
    name: str,
    result: SimResult,
    cluster: ClusterSpec,
    window: tuple[float, float],
    default_sla: float | None = None,
) -> PolicyRun:
    """One policy's metrics over ``window`` (the headline, the details and the occupancy)."""
    occ = occupancy(result.records, cluster.inventory, window)
    head = summarize(result.records, occ, default_sla) | {"sim_seconds": result.sim_seconds}
    det = details(result.records, occ, cluster.inventory, default_sla) | {
        "window_s": [window[0], window[1]],
        "cycles": result.cycles,
        "cycles_skipped": result.cycles_skipped,
        "plan_seconds": result.plan_seconds,
        "preempt_polls": result.preempt_cycles,
        "compiled_cycles": result.compiled_cycles,
    }
    if cluster.inference_zone:
        # GFR inside and outside the inference zone: spread 1-GPU replicas leave zone nodes
        # partly used by design; training fragmentation shows outside it.
        zone = np.zeros(len(cluster.inventory), dtype=bool)
        zone[[cluster.inventory.index[n] for n in cluster.inference_zone]] = True
        det["gfr_zone_mean"] = occupancy(
            result.records, cluster.inventory, window, nodes=zone
        ).gfr.mean()
        det["gfr_outside_zone_mean"] = occupancy(
            result.records, cluster.inventory, window, nodes=~zone
        ).gfr.mean()
    if result.stopped_full:
        det["fill_stop"] = {
            "jobs_started": result.starts,
            "gar_at_stop": float(occ.gar.values[-1]),
            "gfr_at_stop": float(occ.gfr.values[-1]),
        }
        result.notes.append(
            f"{name}: fill stopped after {result.starts:,} jobs started; at the stop GAR "
            f"{det['fill_stop']['gar_at_stop']:.3f}, GFR {det['fill_stop']['gfr_at_stop']:.3f}"
        )
    return PolicyRun(result=result, headline=head, detail=det, occupancy=occ)


def _worker(name: str) -> SimResult:
    queue = _SHARED.get("queue")
    report = (lambda done, total: queue.put((name, done, total))) if queue is not None else None
    return _run_policy(name, report)


def _run_parallel(
    policies: Sequence[str], workers: int, progress: Callable[[str, int, int], None] | None
) -> dict[str, SimResult]:
    """One process per policy, at most ``workers`` at a time; progress relayed from the
    children through a queue. Each replay is deterministic, so the results are the same as
    one after another; only the wall time changes."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("fork")
    q = ctx.Queue() if progress else None
    _SHARED["queue"] = q
    runs: dict[str, SimResult] = {}
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_worker, name): name for name in policies}
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.2)
                while q is not None and progress is not None:  # q only with progress
                    try:
                        progress(*q.get_nowait())
                    except queue_mod.Empty:
                        break
                for fut in done:
                    runs[futures[fut]] = fut.result()  # a child's error is raised here
    finally:
        _SHARED.pop("queue", None)
    return {name: runs[name] for name in policies}


def compare_policies(
    trace: Trace,
    cluster: ClusterSpec,
    policies: Sequence[str],
    *,
    config=None,
    seed: int = 0,
    time_limit_model: str = "ladder",
    interval: float = 30.0,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 1,
    steer_interval: float | None = None,
    policy_setup: Callable[[Any], None] | None = None,
) -> Comparison:
    """Replay ``trace`` on ``cluster`` once per policy (same workload each time) and measure.

    ``workers`` > 1 runs the policies in that many processes at once (Linux fork); the results
    are identical, the wall time is that of the slowest policy rather than the sum.
    ``policy_setup`` is called on each policy object before its replay (the sweeps set the
    ``slurm`` model's SchedulerParameters through it: kant_slurm/whatif/schedparams.py)."""
    from ..engine.registry import get_policy

    config = _engine_config(config, cluster)
    if steer_interval is None:
        from ..steer import DAEMON_INTERVAL_S

        steer_interval = DAEMON_INTERVAL_S
    for name in policies:  # an unknown name fails here, before any replay or process starts
        get_policy(name, config)
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
    _SHARED.clear()
    _SHARED.update(
        cluster=cluster,
        config=config,
        workload=workload,
        settings=settings,
        classifier=classifier,
        default_sla=default_sla,
        steer_interval=steer_interval,
        policy_setup=policy_setup,
    )
    try:
        if workers > 1 and len(policies) > 1:
            results = _run_parallel(policies, min(workers, len(policies)), progress)
        else:
            results = {}
            for name in policies:
                cb = (lambda done, total, _n=name: progress(_n, done, total)) if progress else None
                results[name] = _run_policy(name, cb)
    finally:
        _SHARED.clear()
    window = shared_window(list(results.values()))
    runs = {name: measure_run(name, r, cluster, window, default_sla) for name, r in results.items()}
    first = next(iter(runs.values())).result.records if runs else pd.DataFrame()
    counts = Counter(first["job_class"]) if len(first) else Counter()
    sources = Counter(first["class_source"]) if len(first) else Counter()
    # kant's own config decides whether the inference in the workload is served well.
    from ..config import KantConfig, inference_advice

    advice = (
        inference_advice(config, counts.get("inference", 0))
        if isinstance(config, KantConfig) and any(name.startswith("kant") for name in policies)
        else []
    )
    return Comparison(
        trace=trace,
        cluster=cluster,
        runs=runs,
        class_counts=dict(sorted(counts.items())),
        class_sources=dict(sorted(sources.items())),
        notes=list(trace.notes)
        + workload.notes
        + [n for r in runs.values() for n in r.result.notes[len(workload.notes) :]]
        + advice,
        time_limit_model=time_limit_model,
        seed=seed,
        interval=interval,
        default_sla=default_sla,
        window=window,
        steer_interval=steer_interval,
    )
