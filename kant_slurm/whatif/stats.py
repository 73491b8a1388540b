"""Merging per-seed results into per-cell figures, and the table, CSV and JSON of them (pure).

A cell's figure is the mean over its seeds and a 95% confidence interval of that mean
(Student's t with n-1 degrees of freedom: the seeds are few, so the normal 1.96 would be too
narrow). One seed gives the value with no interval. The merge reads nothing but the per-seed
metrics and sorts by the grid's cell order and by seed, so any backend and any finishing order
give the same table.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from ..report.tables import fmt_duration, fmt_ratio, render_table

# (key in simulate's headline, column label, "ratio" or "duration", which way is better)
METRICS = (
    ("gar_mean", "GAR", "ratio", "higher"),
    ("sor", "SOR", "ratio", "higher"),
    ("gfr_mean", "GFR", "ratio", "lower"),
    ("stranded_gpu_share", "stranded", "ratio", "lower"),
    ("wait_mean_s", "wait mean", "duration", "lower"),
    ("wait_p90_s", "wait p90", "duration", "lower"),
    ("wait_p99_s", "wait p99", "duration", "lower"),
    ("jct_mean_s", "JCT mean", "duration", "lower"),
    ("makespan_s", "makespan", "duration", "lower"),
)
METRIC_KEYS = tuple(m[0] for m in METRICS)


@cache
def t_quantile_975(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (bisection on the
    CDF, the density integrated by Simpson's rule; good to 1e-4, which a 3-digit table needs)."""
    if dof < 1:
        return math.nan
    nu = float(dof)
    logc = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)

    def pdf(x: float) -> float:
        return math.exp(logc - (nu + 1) / 2 * math.log1p(x * x / nu))

    def cdf(t: float, steps: int = 2000) -> float:
        h = t / steps
        s = pdf(0.0) + pdf(t) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
        return 0.5 + s * h / 3

    lo, hi = 0.0, 64.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if cdf(mid) < 0.975:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mean_ci95(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "ci95", "n"}``: the mean and the half-width of its 95% interval (None with
    one value; 0 when every seed gave the same figure). Missing values (None/NaN) are left out."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if not n:
        return {"mean": None, "ci95": None, "n": 0}
    mean = math.fsum(xs) / n
    if n == 1:
        return {"mean": mean, "ci95": None, "n": 1}
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return {"mean": mean, "ci95": t_quantile_975(n - 1) * math.sqrt(var / n), "n": n}


def merge_cell(
    cell: Mapping[str, Any],
    seeds: Sequence[int],
    results: Mapping[int, Mapping[str, Any]],
    errors: Mapping[int, str],
) -> dict[str, Any]:
    """One cell's merged entry. ``cell``: its identity (index, key, label, spec); ``results``:
    seed -> that seed's saved result; ``errors``: seed -> why it failed."""
    done = [s for s in seeds if s in results]
    failed = {str(s): errors[s] for s in seeds if s not in results and s in errors}
    if len(done) == len(seeds):
        status = "done"
    elif not done:
        status = "failed" if failed else "missing"
    else:
        status = "partial"
    metrics = {
        k: mean_ci95([results[s]["metrics"].get(k) for s in done])
        | {"values": [results[s]["metrics"].get(k) for s in done]}
        for k in METRIC_KEYS
    }
    jobs = sorted({results[s]["metrics"].get("jobs") for s in done} - {None})
    provenance = [
        {
            "seed": s,
            **{
                k: results[s].get(k) for k in ("version", "command", "cell_command", "wall_seconds")
            },
        }
        for s in done
    ]
    return dict(cell) | {
        "status": status,
        "seeds_done": done,
        "seeds_failed": failed,
        "jobs": jobs[0] if len(jobs) == 1 else jobs,
        "metrics": metrics,
        "runs": provenance,
    }


def _fmt(kind: str, value: float | None) -> str:
    return fmt_ratio(value) if kind == "ratio" else fmt_duration(value)


def cell_text(entry: Mapping[str, Any], key: str, kind: str) -> str:
    m = entry["metrics"][key]
    if m["mean"] is None:
        return "-"
    text = _fmt(kind, m["mean"])
    if m["ci95"] is not None:
        text += " ±" + _fmt(kind, m["ci95"])
    return text


def cells_table(cells: Sequence[Mapping[str, Any]]) -> str:
    """The merged table: one row per cell, each metric as mean ±95% half-width."""
    header = ["#", "cell", "status", "seeds"] + [label for _, label, _, _ in METRICS]
    rows = [
        [str(c["index"]), c["label"], c["status"], str(len(c["seeds_done"]))]
        + [cell_text(c, key, kind) for key, _, kind, _ in METRICS]
        for c in cells
    ]
    return render_table(header, rows)


def cells_csv(cells: Sequence[Mapping[str, Any]]) -> str:
    """One CSV row per cell: identity, status, and per metric its mean, 95% half-width, n."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["index", "key", "label", "policy", "trace", "cluster", "overrides", "status", "seeds_done"]
        + [f"{k}_{part}" for k in METRIC_KEYS for part in ("mean", "ci95", "n")]
    )
    for c in cells:
        spec = c["spec"]
        over = ";".join(f"{k}={v}" for k, v in spec["overrides"].items())
        row = [
            c["index"],
            c["key"],
            c["label"],
            spec["policy"],
            spec["trace"]["path"],
            spec["cluster"]["path"],
            over,
            c["status"],
            len(c["seeds_done"]),
        ]
        for k in METRIC_KEYS:
            m = c["metrics"][k]
            row += [_csv_num(m["mean"]), _csv_num(m["ci95"]), m["n"]]
        writer.writerow(row)
    return out.getvalue()


def _csv_num(value: float | None) -> str:
    return "" if value is None else repr(float(value))
