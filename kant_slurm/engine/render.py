"""Plans as text: the tables ``kant-slurm plan`` prints (JSON is ``Plan.to_dict()``)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from .. import hostlist
from .plan import Plan


def _at(t: float) -> str:
    if t > 1e9:  # epoch seconds of a live cluster
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return f"{t:.0f}"


def _when(t: float, now: float) -> str:
    d = t - now
    if d < 120:
        return f"+{d:.0f}s"
    if d < 7200:
        return f"+{d / 60:.0f}m"
    return f"+{d / 3600:.1f}h"


def format_plan(plan: Plan, limit: int = 50) -> str:
    """The queue order with its factors (as sprio shows), starts with nodes and why,
    reservations, node preference tiers; ``limit`` rows per table."""
    out: list[str] = []
    st = plan.stats
    out.append(
        f"policy {plan.policy} at {_at(plan.now)}: {st.get('pending', len(plan.order))} "
        f"pending, {st.get('running', 0)} running; {len(plan.starts)} start now "
        f"({st.get('backfilled', 0)} by backfill), {len(plan.reservations)} reservations"
    )
    out.append("")
    out.append("Queue order (factors as sprio shows them)")
    keys: list[str] = []
    for e in plan.order[:limit]:
        for k in e.factors:
            if k not in keys:
                keys.append(k)
    out.append(
        "  "
        + f"{'RANK':>5} {'JOBID':<12} "
        + " ".join(f"{k.upper():>12}" for k in keys)
        + "  OUTCOME"
    )
    started = {p.job_id for p in plan.starts}
    for e in plan.order[:limit]:
        vals = []
        for k in keys:
            v = e.factors.get(k, "")
            vals.append(f"{v:>12.0f}" if isinstance(v, float) else f"{str(v):>12}")
        outcome = "start" if e.job_id in started else plan.blocked.get(e.job_id, "")
        out.append(f"  {e.rank:>5} {e.job_id:<12} " + " ".join(vals) + f"  {outcome}")
    if len(plan.order) > limit:
        out.append(f"  ... {len(plan.order) - limit} more")
    out.append("")
    out.append("Starts now")
    if not plan.starts:
        out.append("  (none)")
    for p in plan.starts[:limit]:
        gpus = sum(p.node_gpus)
        bf = " backfill" if p.backfilled else ""
        out.append(
            f"  {p.job_id:<12} {gpus:>4} GPUs on {hostlist.compress(p.nodes)}{bf}"
            f"  [{p.estimate_source} {p.runtime_estimate or 0:.0f}s]"
        )
        out.append(f"      why: {p.why}")
        for a in p.alternatives:
            out.append(
                f"      alternative {a['group']}: score {a['score']:.3f}, "
                f"{a['free_gpus']} GPUs free"
            )
    if len(plan.starts) > limit:
        out.append(f"  ... {len(plan.starts) - limit} more")
    out.append("")
    out.append("Reservations")
    if not plan.reservations:
        out.append("  (none)")
    for r in plan.reservations[:limit]:
        out.append(
            f"  {r.job_id:<12} from {_at(r.start_time)} ({_when(r.start_time, plan.now)}) "
            f"on {hostlist.compress(r.nodes)} ({sum(r.node_gpus)} GPUs) "
            f"[{r.estimate_source} {r.runtime_estimate or 0:.0f}s]"
        )
    if plan.held:
        out.append("")
        out.append("Held back by Slurm (not planned, not touched)")
        for job_id, reason in list(plan.held.items())[:limit]:
            out.append(f"  {job_id:<12} {reason}")
        if len(plan.held) > limit:
            out.append(f"  ... {len(plan.held) - limit} more")
    if plan.node_tiers:
        out.append("")
        out.append("Node preference tiers (0 = used first)")
        by_tier: dict[int, list[str]] = defaultdict(list)
        for node, tier in plan.node_tiers.items():
            by_tier[tier].append(node)
        for tier in sorted(by_tier):
            out.append(f"  tier {tier}: {hostlist.compress(by_tier[tier])}")
    return "\n".join(out)


def format_explain(plan: Plan, job_id: str) -> str:
    """One job's reasoning, as ``plan --explain`` prints it."""
    lines = plan.explain[job_id]
    return "\n".join([f"job {job_id} ({plan.policy}):"] + [f"  {x}" for x in lines])


# The fields of ``plan -o/-P/-h`` that print when -o names none (``plan -o help`` lists all).
PLAN_ROW_FIELDS = ("job_id", "rank", "outcome", "gpus", "start_time", "nodes", "reason")


def plan_rows(plan: Plan, job_gpus: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per pending job, as squeue/sprio print one line per job: the jobs in queue
    order, then those Slurm holds back. ``outcome`` is ``start``, ``backfill``, ``reserved``,
    ``waits`` or ``held``; ``start_time`` is now for a start and the reservation's time for a
    reserved job; every order factor is a field of its own (empty where a job has none).
    ``job_gpus`` (job id -> GPUs asked) fills ``gpus`` of jobs that neither start nor reserve."""
    job_gpus = job_gpus or {}
    starts = {p.job_id: p for p in plan.starts}
    reserved = {r.job_id: r for r in plan.reservations}
    factor_keys: list[str] = []
    for e in plan.order:
        for k in e.factors:
            if k not in factor_keys:
                factor_keys.append(k)
    rows: list[dict[str, Any]] = []
    gpus: int | None
    for e in plan.order:
        p, r = starts.get(e.job_id), reserved.get(e.job_id)
        if p is not None:
            outcome, when, nodes, gpus = (
                ("backfill" if p.backfilled else "start"),
                plan.now,
                p.nodes,
                sum(p.node_gpus),
            )
            estimate, source = p.runtime_estimate, p.estimate_source
        elif r is not None:
            outcome, when, nodes, gpus = "reserved", r.start_time, r.nodes, sum(r.node_gpus)
            estimate, source = r.runtime_estimate, r.estimate_source
        else:
            outcome, when, nodes, gpus = "waits", None, (), job_gpus.get(e.job_id)
            estimate, source = None, None
        rows.append(
            {
                "job_id": e.job_id,
                "rank": e.rank,
                "outcome": outcome,
                "gpus": gpus,
                "start_time": _at(when) if when is not None else None,
                "nodes": hostlist.compress(nodes) if nodes else None,
                **{k: e.factors.get(k) for k in factor_keys},
                "estimate_s": estimate,
                "estimate_source": source,
                "reason": "" if p is not None else plan.blocked.get(e.job_id, ""),
            }
        )
    for job_id, reason in plan.held.items():
        rows.append(
            {
                "job_id": job_id,
                "rank": None,
                "outcome": "held",
                "gpus": job_gpus.get(job_id),
                "start_time": None,
                "nodes": None,
                **{k: None for k in factor_keys},
                "estimate_s": None,
                "estimate_source": None,
                "reason": reason,
            }
        )
    return rows
