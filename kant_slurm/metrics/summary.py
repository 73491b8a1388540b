"""Every Kant metric of one job-record table, as one flat dict (for tables and JSON).

:func:`summarize` gives the headline figures under the keys of ``kant-slurm simulate --json``
(``jobs, gar_mean, sor, gfr_mean, stranded_gpu_share, wait_mean_s, wait_p50_s, wait_p90_s,
wait_p99_s, jct_mean_s, makespan_s``) and :func:`details` the rest (quantiles, leaf level,
per class and size bucket, JTTED, estimate accuracy), so that ``kant-slurm report`` can reuse
both on sacct records.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..model import Inventory
from .inference import inference_wait_stats, preemption_stats, sla_attainment
from .jobs import (
    estimate_accuracy,
    gang_placement,
    jct_stats,
    jtted,
    jtted_summary,
    makespan,
    wait_stats,
    wait_table,
)
from .timeline import Occupancy, occupancy

HEADLINE_KEYS = (
    "jobs",
    "gar_mean",
    "sor",
    "gfr_mean",
    "stranded_gpu_share",
    "wait_mean_s",
    "wait_p50_s",
    "wait_p90_s",
    "wait_p99_s",
    "jct_mean_s",
    "makespan_s",
    "inference_sla_attainment",
    "inference_wait_p99_s",
    "preempted_gpu_hours",
    "preemptions",
)


def summarize(
    records: pd.DataFrame, occ: Occupancy, default_sla: float | None = None
) -> dict[str, Any]:
    """The headline metrics (keys :data:`HEADLINE_KEYS`); ``default_sla`` applies to inference
    jobs whose record has no SLA."""
    w = wait_stats(records)
    pre = preemption_stats(records)
    return {
        "jobs": int(len(records)),
        "gar_mean": occ.gar.mean(),
        "sor": occ.sor,
        "gfr_mean": occ.gfr.mean(),
        "stranded_gpu_share": occ.stranded_share.mean(),
        "wait_mean_s": w["mean"],
        "wait_p50_s": w["p50"],
        "wait_p90_s": w["p90"],
        "wait_p99_s": w["p99"],
        "jct_mean_s": jct_stats(records)["mean"],
        "makespan_s": makespan(records),
        "inference_sla_attainment": sla_attainment(records, default_sla)["attainment"],
        "inference_wait_p99_s": inference_wait_stats(records)["p99"],
        "preempted_gpu_hours": pre["preempted_gpu_hours"],
        "preemptions": pre["preemptions"],
    }


def details(
    records: pd.DataFrame, occ: Occupancy, inventory: Inventory, default_sla: float | None = None
) -> dict[str, Any]:
    """Everything else: quantiles over time, leaf level, waits by class/size, JTTED, accuracy,
    inference SLA and preemptions."""
    out: dict[str, Any] = {
        "gar_p50": occ.gar.quantile(0.5),
        "gar_p10": occ.gar.quantile(0.1),
        "gar_p90": occ.gar.quantile(0.9),
        "gfr_p50": occ.gfr.quantile(0.5),
        "gfr_p10": occ.gfr.quantile(0.1),
        "gfr_p90": occ.gfr.quantile(0.9),
        "stranded_gpu_share_leaf": occ.leaf_stranded_share.mean(),
        "wait_max_s": wait_stats(records)["max"],
        "not_started": wait_stats(records)["not_started"],
        "jct_p50_s": jct_stats(records)["p50"],
        "jct_p99_s": jct_stats(records)["p99"],
        "backfilled": int(records["backfilled"].sum()),
        "timeouts": int((records["state"] == "TIMEOUT").sum()),
    }
    out["by_size"] = wait_table(records, "size_bucket").to_dict("records")
    out["by_class"] = wait_table(records, "job_class").to_dict("records")
    out["jtted"] = jtted_summary(jtted(records, inventory))
    out["gangs"] = gang_placement(records, inventory)
    out["estimate_accuracy"] = estimate_accuracy(records)
    out["inference"] = sla_attainment(records, default_sla) | {
        "wait": inference_wait_stats(records)
    }
    out["preemption"] = preemption_stats(records)
    train = records[records["job_class"] == "training"]
    out["training"] = {"wait": wait_stats(train), "jct": jct_stats(train)}
    return out


def all_metrics(
    records: pd.DataFrame, inventory: Inventory, window: tuple[float, float] | None = None
) -> tuple[dict, dict, Occupancy]:
    """(headline, details, occupancy) in one call."""
    occ = occupancy(records, inventory, window)
    return summarize(records, occ), details(records, occ, inventory), occ
