"""Plain-text tables of the Kant metrics: one row per policy (simulate) or per window (report)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..model import SIZE_BUCKETS


def fmt_duration(seconds: float | None) -> str:
    """Seconds as a short human figure: 42s, 7.5m, 3.2h, 4.1d ("-" for unknown)."""
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "-"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.1f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def fmt_ratio(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned: the first left, the rest right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [
            str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


HEADLINE_COLUMNS = (
    ("jobs", "jobs", lambda v: f"{v:,}"),
    ("gar_mean", "GAR", fmt_ratio),
    ("sor", "SOR", fmt_ratio),
    ("gfr_mean", "GFR", fmt_ratio),
    ("stranded_gpu_share", "stranded", fmt_ratio),
    ("wait_mean_s", "wait mean", fmt_duration),
    ("wait_p50_s", "p50", fmt_duration),
    ("wait_p90_s", "p90", fmt_duration),
    ("wait_p99_s", "p99", fmt_duration),
    ("jct_mean_s", "JCT mean", fmt_duration),
    ("makespan_s", "makespan", fmt_duration),
)


def headline_table(
    rows: Mapping[str, Mapping[str, Any]],
    first: str = "policy",
    extra: Sequence[tuple[str, str, Any]] = (),
) -> str:
    """One row per key of ``rows`` (policy name) with the headline metrics."""
    cols = list(HEADLINE_COLUMNS) + list(extra)
    header = [first] + [c[1] for c in cols]
    body = [[name] + [fmt(vals.get(key)) for key, _, fmt in cols] for name, vals in rows.items()]
    return render_table(header, body)


def detail_table(details: Mapping[str, Mapping[str, Any]], first: str = "policy") -> str:
    """Leaf-level stranded share, GAR/GFR spread, JTTED and limits accuracy per row."""
    header = [
        first,
        "leaf-stranded",
        "GAR p10-p90",
        "GFR p50",
        "backfilled",
        "JTTED slowdown",
        "gangs in 1 leaf",
        "actual/limit p50",
    ]
    body = []
    for name, d in details.items():
        jt = d.get("jtted", {})
        # Multi-node jobs only; "-" when the run has none (see metrics.jobs.gang_placement).
        gangs = d.get("gangs", {}).get("in_one_leaf_share")
        body.append(
            [
                name,
                fmt_ratio(d.get("stranded_gpu_share_leaf")),
                f"{fmt_ratio(d.get('gar_p10'), 2)}-{fmt_ratio(d.get('gar_p90'), 2)}",
                fmt_ratio(d.get("gfr_p50")),
                f"{d.get('backfilled', 0):,}",
                fmt_ratio(jt.get("slowdown_gpu_weighted")),
                fmt_ratio(gangs, 2),
                fmt_ratio(d.get("estimate_accuracy", {}).get("actual_over_time_limit_p50"), 2),
            ]
        )
    return render_table(header, body)


def wait_by_table(
    details: Mapping[str, Mapping[str, Any]],
    key: str = "by_size",
    label: str = "size_bucket",
    stat: str = "p99",
) -> str:
    """Wait ``stat`` per group (size bucket or class) per row: where starvation shows."""
    groups: list[str] = []
    for d in details.values():
        for row in d.get(key, []):
            if row[label] not in groups:
                groups.append(row[label])
    if label == "size_bucket":
        groups = [b for b in ("0",) + SIZE_BUCKETS if b in groups]
    header = ["policy"] + [f"{g} ({stat}/max)" for g in groups]
    body = []
    for name, d in details.items():
        by = {row[label]: row for row in d.get(key, [])}
        body.append(
            [name]
            + [
                f"{fmt_duration(by[g][stat])}/{fmt_duration(by[g]['max'])}" if g in by else "-"
                for g in groups
            ]
        )
    return render_table(header, body)


def inference_table(details: Mapping[str, Mapping[str, Any]], first: str = "policy") -> str:
    """Inference SLA and the cost of preemption to training, one row per policy (issue 8).

    Columns: inference jobs with an SLA and the share that started within it; inference wait
    p50/p90/p99/max (to the first start); preemptions, GPU-hours of work lost and preemptions
    per training job; training wait p50/p99 and mean JCT.
    """
    return render_table(*inference_rows(details, first))


def inference_rows(
    details: Mapping[str, Mapping[str, Any]], first: str = "policy"
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of :func:`inference_table` (the HTML report renders the same cells)."""
    header = [
        first,
        "inference",
        "SLA met",
        "inf wait p50",
        "p90",
        "p99",
        "max",
        "preemptions",
        "lost GPU-h",
        "per training job",
        "train wait p50",
        "p99",
        "train JCT mean",
    ]
    body = []
    for name, d in details.items():
        inf = d.get("inference", {})
        w = inf.get("wait", {})
        pre = d.get("preemption", {})
        tr = d.get("training", {})
        body.append(
            [
                name,
                f"{inf.get('jobs', 0):,}",
                "-"
                if not inf.get("jobs")
                else f"{fmt_ratio(inf.get('attainment'), 4)} ({inf.get('missed', 0):,} missed)",
                fmt_duration(w.get("p50")),
                fmt_duration(w.get("p90")),
                fmt_duration(w.get("p99")),
                fmt_duration(w.get("max")),
                f"{pre.get('preemptions', 0):,}",
                f"{pre.get('preempted_gpu_hours', 0.0):,.1f}",
                fmt_ratio(pre.get("preemptions_per_training_job"), 4),
                fmt_duration(tr.get("wait", {}).get("p50")),
                fmt_duration(tr.get("wait", {}).get("p99")),
                fmt_duration(tr.get("jct", {}).get("mean")),
            ]
        )
    return header, body
