"""What ``kant-slurm report`` shows: the Kant metrics of one accounting window.

Pure: job records (:mod:`kant_slurm.formats.records`) and the node inventory in, one dict out
(the ``--json`` document), plus CSV tables. The metrics themselves come from
:mod:`kant_slurm.metrics` (shared with the simulator); this module adds what only an accounting
report needs:

- allocated GPU-hours in the window (each allocation clipped to it);
- time-limit accuracy per user and per account: elapsed / time limit of ended jobs. Backfill
  plans with time limits, so a site whose jobs use 10% of their limit backfills badly;
- top users of waiting GPUs: GPU-hours their jobs spent pending inside the window;
- top users of stranded GPUs: the free GPUs on partly used nodes, GPU-hours, shared among the
  jobs on that node in proportion to the GPUs each holds (a node with 3 of 8 GPUs held by jobs A
  (2) and B (1) strands 5 GPUs; A is charged 5 x 2/3, B 5 x 1/3 per unit of time).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..metrics.jobs import wait_cdf
from ..formats.records import explode_nodes
from ..metrics.summary import all_metrics
from ..metrics.timeline import Occupancy
from ..model import Inventory
from .tables import fmt_duration

TOP_N = 10
REPORT_KEYS = (
    "window",
    "jobs",
    "gpu_hours_allocated",
    "gar_mean",
    "sor",
    "gfr_mean",
    "stranded_gpu_share",
    "wait_p50_s",
    "wait_p90_s",
    "wait_p99_s",
    "by_class",
    "by_size",
)


def allocated_gpu_seconds(records: pd.DataFrame, window: tuple[float, float]) -> np.ndarray:
    """Per job, GPUs x its run time inside ``window`` (a job with no end runs to the window's
    end)."""
    t0, t1 = window
    start = records["start_time"].to_numpy(dtype=float)
    end = records["end_time"].to_numpy(dtype=float)
    end = np.where(np.isnan(end), t1, end)
    held = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0, None)
    held = np.where(np.isnan(start), 0.0, held)
    return held * records["gpus"].to_numpy(dtype=float)


def waiting_gpu_seconds(records: pd.DataFrame, window: tuple[float, float]) -> np.ndarray:
    """Per job, GPUs x the time it pended inside ``window`` (never started: until cancelled or the
    window's end)."""
    t0, t1 = window
    submit = records["submit_time"].to_numpy(dtype=float)
    start = records["start_time"].to_numpy(dtype=float)
    end = records["end_time"].to_numpy(dtype=float)
    # Never started: it waited until it was cancelled, or to the window's end.
    until = np.where(np.isnan(start), np.where(np.isnan(end), t1, end), start)
    waited = np.clip(np.minimum(until, t1) - np.maximum(submit, t0), 0, None)
    return waited * records["gpus"].to_numpy(dtype=float)


def stranded_gpu_seconds(
    records: pd.DataFrame, inventory: Inventory, window: tuple[float, float]
) -> np.ndarray:
    """Per job, its share of the stranded GPU-time of the nodes it held (see module doc).

    Per node, f(t) = stranded(t) / allocated(t) is a step function; a job holding g GPUs on the
    node from s to e is charged g x integral of f over [s, e]. Vectorised: one sort of all node
    events by (node, time), a cumulative integral per node, and a lookup at each s and e.
    """
    t0, t1 = window
    n = len(records)
    out = np.zeros(n)
    if n == 0:
        return out
    rows, idx, g = explode_nodes(records, inventory.index)
    start = records["start_time"].to_numpy(dtype=float)[rows]
    end = records["end_time"].to_numpy(dtype=float)[rows]
    end = np.where(np.isnan(end), t1, end)
    ok = ~np.isnan(start) & (inventory.gpus_total[idx] > 0)
    s = np.clip(start, t0, t1)
    e = np.clip(end, t0, t1)
    ok &= e > s
    rows, idx, g, s, e = rows[ok], idx[ok], g[ok], s[ok], e[ok]
    if len(rows) == 0:
        return out
    total = inventory.gpus_total.astype(np.int64)
    node = np.concatenate([idx, idx])
    t = np.concatenate([s, e])
    d = np.concatenate([g, -g]).astype(np.int64)
    order = np.lexsort((t, node))
    node_s, t_s, d_s = node[order], t[order], d[order]
    first = np.ones(len(node_s), dtype=bool)
    first[1:] = node_s[1:] != node_s[:-1]
    cum = np.cumsum(d_s)
    starts = np.maximum.accumulate(np.where(first, np.arange(len(node_s)), 0))
    alloc = cum - (cum[starts] - d_s[starts])  # allocation on the node after each event
    tot = total[node_s]
    partly = (alloc > 0) & (alloc < tot)
    f = np.where(partly, (tot - alloc) / np.where(alloc > 0, alloc, 1), 0.0)
    # Integral of f from each event to the node's next event (0 after its last event).
    nxt = np.empty(len(t_s))
    nxt[:-1] = t_s[1:]
    nxt[-1] = t_s[-1]
    last = np.ones(len(node_s), dtype=bool)
    last[:-1] = node_s[1:] != node_s[:-1]
    seg = np.where(last, 0.0, f * (nxt - t_s))
    # F at an event = integral of f from the node's first event up to that event's time.
    cum_seg = np.cumsum(seg)
    F = cum_seg - seg - (cum_seg[starts] - seg[starts])
    # Each (job, node) pair's start is event k < m (its end). Equal times: the lexsort put
    # them in input order, and F is the same at equal times whatever the order, because the
    # segments between equal times have length 0.
    pos = np.empty(len(order), dtype=np.int64)
    pos[order] = np.arange(len(order))
    m = len(rows)
    charge = g * (F[pos[m:]] - F[pos[:m]])
    np.add.at(out, rows, charge)
    return out


def _ratio_table(records: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    """Elapsed / time limit of ended jobs with a limit, per ``by`` (user or account)."""
    ended = records[
        records["end_time"].notna() & records["start_time"].notna() & (records["time_limit"] > 0)
    ]
    if ended.empty:
        return []
    run = ended["duration"].where(
        ended["duration"].notna(), ended["end_time"] - ended["start_time"]
    )
    frame = pd.DataFrame(
        {
            by: ended[by].to_numpy(),
            "r": (run / ended["time_limit"]).to_numpy(),
            "timeout": (ended["state"] == "TIMEOUT").to_numpy(),
        }
    )
    g = frame.groupby(by, sort=False)["r"]
    table = (
        pd.DataFrame(
            {
                "jobs": g.size(),
                "elapsed_over_limit_mean": g.mean(),
                "elapsed_over_limit_p10": g.quantile(0.1),
                "elapsed_over_limit_p50": g.median(),
                "elapsed_over_limit_p90": g.quantile(0.9),
                "timeouts": frame.groupby(by, sort=False)["timeout"].sum(),
            }
        )
        .reset_index()
        .sort_values(["jobs", by], ascending=[False, True])
    )
    return table.to_dict("records")


def _top_users(
    records: pd.DataFrame, gpu_seconds: np.ndarray, n: int = TOP_N
) -> list[dict[str, Any]]:
    frame = pd.DataFrame(
        {"user": records["user"].to_numpy(), "s": gpu_seconds, "job": gpu_seconds > 0}
    )
    g = frame.groupby("user", sort=False).agg(gpu_seconds=("s", "sum"), jobs=("job", "sum"))
    g = g[g["gpu_seconds"] > 0].reset_index()
    total = float(gpu_seconds.sum())
    g["gpu_hours"] = g["gpu_seconds"] / 3600.0
    g["share"] = g["gpu_seconds"] / total if total > 0 else 0.0
    g = g.sort_values(["gpu_seconds", "user"], ascending=[False, True]).head(n)
    return g[["user", "gpu_hours", "share", "jobs"]].to_dict("records")


def timeline_table(occ: Occupancy, bins: int = 200) -> pd.DataFrame:
    """GAR, GFR and stranded share over time, averaged over ``bins`` equal bins (for plots/CSV)."""
    t0, t1 = occ.window
    width = max((t1 - t0) / bins, 1.0)
    times, gar = occ.gar.binned(width)
    _, gfr = occ.gfr.binned(width)
    _, stranded_free = occ.stranded_free.binned(width)
    _, free = occ.free.binned(width)
    _, demand = occ.demand.binned(width)
    with np.errstate(invalid="ignore", divide="ignore"):
        stranded = np.where(free > 0, stranded_free / np.where(free > 0, free, 1), 0.0)
    table = pd.DataFrame(
        {
            "time": times,
            "gar": gar,
            "gfr": gfr,
            "stranded_gpu_share": stranded,
            "demand_gpus": demand,
        }
    )
    # Rounding can leave a last bin of (almost) no width at the window's end: it is no sample.
    return table[table["time"] < t1 - 1e-3 * width].reset_index(drop=True)


def build_report(
    records: pd.DataFrame,
    inventory: Inventory,
    window: tuple[float, float],
    *,
    top_n: int = TOP_N,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report of ``records`` over ``window`` (JSON-ready apart from NaN).

    Keys: :data:`REPORT_KEYS` first, then quantiles, JTTED, estimate accuracy, time-limit
    accuracy by user and account, top users, and ``timeline`` (binned, for plots).
    """
    headline, detail, occ = all_metrics(records, inventory, window)
    alloc = allocated_gpu_seconds(records, window)
    waiting = waiting_gpu_seconds(records, window)
    stranded = stranded_gpu_seconds(records, inventory, window)
    st = occ.stranded_share
    report: dict[str, Any] = {
        "window": {"since": window[0], "until": window[1], "seconds": window[1] - window[0]},
        "filters": filters or {},
        "jobs": headline["jobs"],
        "runs_started": int(records["start_time"].notna().sum()),
        "gpus_total": occ.capacity,
        "gpu_nodes": occ.gpu_nodes,
        "gpu_hours_allocated": float(alloc.sum()) / 3600.0,
        "gpu_hours_capacity": occ.capacity * (window[1] - window[0]) / 3600.0,
        "gar_mean": headline["gar_mean"],
        "sor": headline["sor"],
        "gfr_mean": headline["gfr_mean"],
        "stranded_gpu_share": headline["stranded_gpu_share"],
        "wait_mean_s": headline["wait_mean_s"],
        "wait_p50_s": headline["wait_p50_s"],
        "wait_p90_s": headline["wait_p90_s"],
        "wait_p99_s": headline["wait_p99_s"],
        "by_class": detail.pop("by_class"),
        "by_size": detail.pop("by_size"),
        "stranded_gpu_share_p50": st.quantile(0.5),
        "stranded_gpu_share_p10": st.quantile(0.1),
        "stranded_gpu_share_p90": st.quantile(0.9),
        "gpu_hours_waiting": float(waiting.sum()) / 3600.0,
        "gpu_hours_stranded": occ.stranded_free.integral() / 3600.0,
    }
    report.update(detail)
    report["jct_mean_s"] = headline["jct_mean_s"]
    report["time_limit_accuracy"] = {
        "by_user": _ratio_table(records, "user"),
        "by_account": _ratio_table(records, "account"),
    }
    report["top_users"] = {
        "waiting_gpus": _top_users(records, waiting, top_n),
        "stranded_gpus": _top_users(records, stranded, top_n),
    }
    report["timeline"] = timeline_table(occ).to_dict("list")
    w, share = wait_cdf(records)
    if len(w) > 400:  # enough points for a plot, bounded size for JSON
        pick = np.linspace(0, len(w) - 1, 400).astype(int)
        w, share = w[pick], share[pick]
    report["wait_cdf"] = {"wait_s": w.tolist(), "share": share.tolist()}
    return report


def report_tables(report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The report as CSV tables: file stem -> DataFrame."""
    scalars = {k: v for k, v in report.items() if not isinstance(v, (dict, list)) and k != "window"}
    summary = pd.DataFrame(
        {
            "metric": ["since", "until"] + list(scalars),
            "value": [report["window"]["since"], report["window"]["until"]]
            + list(scalars.values()),
        }
    )
    tl = report["time_limit_accuracy"]
    top = report["top_users"]
    return {
        "summary": summary,
        "by_class": pd.DataFrame(report["by_class"]),
        "by_size": pd.DataFrame(report["by_size"]),
        "timeline": pd.DataFrame(report["timeline"]),
        "time_limit_by_user": pd.DataFrame(tl["by_user"]),
        "time_limit_by_account": pd.DataFrame(tl["by_account"]),
        "top_waiting_users": pd.DataFrame(top["waiting_gpus"]),
        "top_stranded_users": pd.DataFrame(top["stranded_gpus"]),
    }


def _pct(x) -> str:
    if x is None or x != x:
        return "n/a"
    if 0 < x < 0.001:
        return "<0.1%"  # a 5 s job under a 1-day limit is not 0%
    return f"{100 * x:.1f}%"


def _dur(x) -> str:
    """Seconds as 42s, 7.5m, 3.2h, 4.1d (the simulator's tables use the same form)."""
    return fmt_duration(x)


def format_report(report: dict[str, Any]) -> str:
    """The plain-text table of the report (the default output)."""
    import time as _time

    w = report["window"]
    fmt = "%Y-%m-%d %H:%M"
    lines = [
        f"window          {_time.strftime(fmt, _time.localtime(w['since']))} .. "
        f"{_time.strftime(fmt, _time.localtime(w['until']))}",
        f"jobs            {report['jobs']} ({report['runs_started']} started)",
        f"GPUs            {report['gpus_total']} on {report['gpu_nodes']} nodes",
        f"GPU-hours       {report['gpu_hours_allocated']:.1f} allocated of "
        f"{report['gpu_hours_capacity']:.1f}; {report['gpu_hours_waiting']:.1f} waiting; "
        f"{report['gpu_hours_stranded']:.1f} stranded",
        f"GAR             mean {_pct(report['gar_mean'])}  p10 {_pct(report['gar_p10'])}  "
        f"p50 {_pct(report['gar_p50'])}  p90 {_pct(report['gar_p90'])}",
        f"SOR             {_pct(report['sor'])}",
        f"GFR             mean {_pct(report['gfr_mean'])}  p10 {_pct(report['gfr_p10'])}  "
        f"p50 {_pct(report['gfr_p50'])}  p90 {_pct(report['gfr_p90'])}",
        f"stranded share  mean {_pct(report['stranded_gpu_share'])}  "
        f"p10 {_pct(report['stranded_gpu_share_p10'])}  "
        f"p50 {_pct(report['stranded_gpu_share_p50'])}  "
        f"p90 {_pct(report['stranded_gpu_share_p90'])}",
        f"wait            p50 {_dur(report['wait_p50_s'])}  p90 {_dur(report['wait_p90_s'])}  "
        f"p99 {_dur(report['wait_p99_s'])}  mean {_dur(report['wait_mean_s'])}",
        "",
        # Each table: the header's first column as wide as the rows' indent plus name, so
        # numbers sit right under their headings.
        f"{'wait by class / size':<26}{'jobs':>6}   {'p50':<8} {'p90':<8} p99",
    ]
    for name, row in [(row["job_class"], row) for row in report["by_class"]] + [
        (row["size_bucket"] + " GPU", row) for row in report["by_size"]
    ]:
        lines.append(
            f"  {name:<24}{row['jobs']:>6}   {_dur(row['p50']):<8} "
            f"{_dur(row['p90']):<8} {_dur(row['p99'])}"
        )
    lines += ["", f"{'time-limit accuracy (elapsed / limit)':<40}{'jobs':>6}   {'p50':<7} p90"]
    for label in ("account", "user"):
        for row in report["time_limit_accuracy"][f"by_{label}"][:TOP_N]:
            lines.append(
                f"  {label + ' ' + str(row[label]):<38}{row['jobs']:>6}   "
                f"{_pct(row['elapsed_over_limit_p50']):<7} "
                f"{_pct(row['elapsed_over_limit_p90'])}"
            )
    for key, title in (
        ("waiting_gpus", "top users of waiting GPUs"),
        ("stranded_gpus", "top users of stranded GPUs"),
    ):
        lines += ["", f"{title:<38}{'GPU-h':>8}  share"]
        for row in report["top_users"][key]:
            lines.append(f"  {str(row['user']):<36}{row['gpu_hours']:>8.1f}  {_pct(row['share'])}")
    return "\n".join(lines)
