"""Per-job metrics over the job-record table: JWTD, JTTED, estimate accuracy, JCT, makespan.

Definitions (shared/DESIGN.md, "Metrics"):

- wait = start - submit (JWTD: its distribution, split by class and GPU size bucket). Jobs that
  never started are counted apart (``not_started``), never as a wait of 0.
- JCT = end - submit for jobs that ended.
- makespan = last end - first submit.
- JTTED, for training jobs that started: estimated training time under the placement they got =
  run time x slowdown(tier), where the tier is the lowest topology level holding all the job's
  nodes. The slowdown model (:data:`SLOWDOWN`) is an assumption, not a measurement: a gang that
  stays on one node talks over NVLink (1.00); one leaf switch adds one network hop at full
  bisection (1.10); crossing leaves under one spine meets the spine's oversubscription (1.25);
  crossing spines, more hops and more contention (1.40). Single-GPU jobs do not communicate
  and always get 1.00. A scheduler that keeps gangs inside leaves scores lower (better).
- Estimate accuracy: actual run time / the scheduler's runtime estimate (``est_runtime``) and
  actual / time limit (how well users' limits let backfill plan).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import SIZE_BUCKETS, Inventory
from ..formats.records import last_start, size_buckets, wait_s

TIERS = ("node", "leaf", "spine", "cross")
SLOWDOWN = {"node": 1.00, "leaf": 1.10, "spine": 1.25, "cross": 1.40}
QUANTILES = (0.5, 0.9, 0.99)


def _stats(values: np.ndarray) -> dict[str, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return {
            "mean": float("nan"),
            "p50": float("nan"),
            "p90": float("nan"),
            "p99": float("nan"),
            "max": float("nan"),
        }
    qs = np.quantile(v, QUANTILES)
    return {
        "mean": float(v.mean()),
        "p50": float(qs[0]),
        "p90": float(qs[1]),
        "p99": float(qs[2]),
        "max": float(v.max()),
    }


def wait_stats(records: pd.DataFrame) -> dict[str, float]:
    """Wait (seconds) over all jobs: mean, p50, p90, p99, max, plus counts."""
    w = wait_s(records).to_numpy(dtype=float)
    out = _stats(w)
    out["jobs"] = int(len(w))
    out["not_started"] = int(np.isnan(w).sum())
    return out


def wait_table(records: pd.DataFrame, by: str = "size_bucket") -> pd.DataFrame:
    """JWTD split by ``size_bucket`` or ``job_class`` (or both: ``"job_class,size_bucket"``).

    One row per group with jobs, not_started, mean, p50, p90, p99, max (seconds).
    """
    keys = by.split(",")
    frame = pd.DataFrame({"wait": wait_s(records)})
    for k in keys:
        frame[k] = size_buckets(records) if k == "size_bucket" else records[k].to_numpy()
    rows = []
    for name, grp in frame.groupby(keys, sort=False):
        name = name if isinstance(name, tuple) else (name,)
        st = _stats(grp["wait"].to_numpy(dtype=float))
        rows.append(
            dict(zip(keys, name, strict=True))
            | {"jobs": len(grp), "not_started": int(grp["wait"].isna().sum())}
            | st
        )
    out = pd.DataFrame(
        rows, columns=keys + ["jobs", "not_started", "mean", "p50", "p90", "p99", "max"]
    )
    if "size_bucket" in keys:
        out["_o"] = out["size_bucket"].map({b: i for i, b in enumerate(("0",) + SIZE_BUCKETS)})
        out = out.sort_values(["_o"] + [k for k in keys if k != "size_bucket"]).drop(columns="_o")
    return out.reset_index(drop=True)


def wait_cdf(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(sorted waits of started jobs, share of all jobs waiting at most that long)."""
    w = wait_s(records).to_numpy(dtype=float)
    n = len(w)
    w = np.sort(w[~np.isnan(w)])
    return w, (np.arange(1, len(w) + 1) / n if n else np.array([]))


def jct_stats(records: pd.DataFrame) -> dict[str, float]:
    """Job completion time (end - submit) of ended jobs: mean, p50, p90, p99, max."""
    return _stats((records["end_time"] - records["submit_time"]).to_numpy(dtype=float))


def makespan(records: pd.DataFrame) -> float:
    """Last end - first submit (NaN when no job ended)."""
    ends = records["end_time"].to_numpy(dtype=float)
    if records.empty or np.isnan(ends).all():
        return float("nan")
    return float(np.nanmax(ends) - records["submit_time"].min())


def placement_tiers(records: pd.DataFrame, inventory: Inventory) -> pd.Series:
    """Per job, the topology tier its nodes span: node, leaf, spine, cross ("" if not started).

    A job on one node is ``node``; on several nodes under one leaf switch ``leaf``; under one
    level-1 switch ``spine``; beyond, or on nodes under no switch, ``cross``.
    """
    levels = inventory.group_levels
    index = inventory.index
    out = np.full(len(records), "", dtype=object)
    for k, nodes in enumerate(records["nodes"]):
        if not nodes:
            continue
        if len(nodes) == 1:
            out[k] = "node"
            continue
        idx = [index[n] for n in nodes]
        tier = "cross"
        for lv, (_, grp) in enumerate(levels[:2]):
            g = grp[idx]
            if g[0] >= 0 and (g == g[0]).all():
                tier = TIERS[lv + 1]
                break
        out[k] = tier
    return pd.Series(out, index=records.index, name="tier")


def gang_placement(records: pd.DataFrame, inventory: Inventory) -> dict[str, float]:
    """Gangs (started jobs on more than one node, of any class) and the share of them placed
    under one leaf switch (NaN when there is no gang: no figure, rather than a perfect 1.00).

    Single-node jobs are left out: they are inside one leaf by construction, and counting them
    made a scheduler that splits every multi-node gang across spines score near 1.00.
    """
    multi = records[records["nodes"].map(len) > 1]
    if multi.empty:
        return {"gangs": 0, "in_one_leaf": 0, "in_one_leaf_share": float("nan")}
    tiers = placement_tiers(multi, inventory)
    in_leaf = int((tiers == "leaf").sum())
    return {
        "gangs": int(len(multi)),
        "in_one_leaf": in_leaf,
        "in_one_leaf_share": in_leaf / len(multi),
    }


def jtted(
    records: pd.DataFrame, inventory: Inventory, slowdown: dict[str, float] | None = None
) -> pd.DataFrame:
    """JTTED rows for started training jobs: job_id, gpus, num_nodes, tier, slowdown, runtime,
    estimated.

    ``runtime`` is the job's real run time (``duration``, else end - start); ``estimated`` is
    runtime x slowdown(tier); single-GPU jobs get slowdown 1.
    """
    slowdown = slowdown or SLOWDOWN
    sel = (records["job_class"] == "training") & records["start_time"].notna()
    rec = records[sel]
    tiers = placement_tiers(rec, inventory)
    run = rec["duration"].where(rec["duration"].notna(), rec["end_time"] - last_start(rec))
    factor = tiers.map(slowdown).astype(float).where(rec["gpus"] > 1, 1.0)
    return pd.DataFrame(
        {
            "job_id": rec["job_id"].to_numpy(),
            "gpus": rec["gpus"].to_numpy(),
            "num_nodes": rec["num_nodes"].to_numpy(),
            "tier": tiers.to_numpy(),
            "slowdown": factor.to_numpy(),
            "runtime": run.to_numpy(dtype=float),
            "estimated": (run * factor).to_numpy(dtype=float),
        }
    )


def jtted_summary(table: pd.DataFrame) -> dict[str, float]:
    """Mean slowdown, GPU-time-weighted slowdown, share of multi-GPU jobs per tier."""
    if table.empty:
        return {"jobs": 0, "slowdown_mean": float("nan"), "slowdown_gpu_weighted": float("nan")}
    w = (table["runtime"] * table["gpus"]).to_numpy(dtype=float)
    out = {
        "jobs": int(len(table)),
        "slowdown_mean": float(table["slowdown"].mean()),
        "slowdown_gpu_weighted": float(np.nansum(w * table["slowdown"]) / np.nansum(w))
        if np.nansum(w) > 0
        else float("nan"),
    }
    multi = table[table["gpus"] > 1]
    for tier in TIERS:
        out[f"multi_gpu_share_{tier}"] = (
            float((multi["tier"] == tier).mean()) if len(multi) else 0.0
        )
    return out


def estimate_accuracy(records: pd.DataFrame) -> dict[str, float]:
    """Median and mean of actual / estimate and actual / time limit over ended jobs."""
    ended = records[records["end_time"].notna() & records["start_time"].notna()]
    # the last run: a requeued job's limit starts over with it
    actual = (ended["end_time"] - last_start(ended)).to_numpy(dtype=float)
    out = {}
    for key, denom in (("estimate", ended["est_runtime"]), ("time_limit", ended["time_limit"])):
        d = denom.to_numpy(dtype=float)
        ok = ~np.isnan(d) & (d > 0)
        r = actual[ok] / d[ok]
        out[f"actual_over_{key}_p50"] = float(np.median(r)) if len(r) else float("nan")
        out[f"actual_over_{key}_mean"] = float(r.mean()) if len(r) else float("nan")
        out[f"actual_over_{key}_jobs"] = int(ok.sum())
    return out
