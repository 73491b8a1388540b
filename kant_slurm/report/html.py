"""A self-contained HTML page of a policy comparison: plots as base64 PNGs, no network needed.

Plots (matplotlib, Agg backend): GAR and GFR over time (hourly means, one line per policy),
the stranded-GPU share over time, wait CDFs per GPU size bucket and per job class, JTTED
(where gangs landed in the topology and the estimated training time distribution), and, when
the workload has inference jobs, the inference wait CDF against the SLA with the preemption
counts (issue 8).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..metrics.inference import inference_wait_cdf, job_slas
from ..metrics.jobs import TIERS, jtted, wait_cdf
from ..formats.records import size_buckets
from ..model import SIZE_BUCKETS
from .tables import HEADLINE_COLUMNS, fmt_duration, inference_rows

COLOURS = {"fifo": "#8c8c8c", "slurm": "#d95f02", "kant": "#1b9e77"}
_FALLBACK = ["#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]


# A CDF of fewer jobs than this is drawn, but marked: 2 jobs make a staircase that reads like a
# distribution.
SMALL_SAMPLE = 20
# Log-scale ticks in the units people read waits in.
_HUMAN_TICKS = (
    (1, "1s"),
    (10, "10s"),
    (60, "1m"),
    (600, "10m"),
    (3600, "1h"),
    (6 * 3600, "6h"),
    (86400, "1d"),
    (7 * 86400, "7d"),
    (30 * 86400, "30d"),
    (365 * 86400, "1y"),
)


def human_log_axis(ax, label: str) -> None:
    """A log-scale x axis of seconds labelled 1s, 1m, 1h, 1d ... instead of 10^k seconds."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [(v, t) for v, t in _HUMAN_TICKS if lo <= v <= hi] or list(_HUMAN_TICKS[:2])
    ax.set_xticks([v for v, _ in ticks], [t for _, t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(label)


def small_sample_note(n: int) -> str:
    """`` - small sample`` for fewer than :data:`SMALL_SAMPLE` jobs, else nothing."""
    return f" - small sample (<{SMALL_SAMPLE}), read with care" if n < SMALL_SAMPLE else ""


def _colour(name: str, k: int) -> str:
    return COLOURS.get(name, _FALLBACK[k % len(_FALLBACK)])


PLOTS_EXTRA = "pip install 'kant-slurm[plots]'"


def plotting_available() -> bool:
    """Whether matplotlib, which draws the HTML pages' plots, is installed (the ``plots``
    extra: the daemon and the reports' tables do without its 100 MB)."""
    return importlib.util.find_spec("matplotlib") is not None


def require_plotting(option: str = "--html") -> None:
    """Fail before any long work when ``option`` asks for plots that cannot be drawn."""
    if not plotting_available():
        raise InputError(
            f"{option}: the HTML report draws its plots with matplotlib, which is "
            f"not installed here: {PLOTS_EXTRA}"
        )


def png_b64(draw: Callable, figsize=(9, 3.2)) -> str:
    """Render ``draw(fig)`` into a PNG and return it base64-encoded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, dpi=100)
    try:
        draw(fig)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _over_time(runs, attr: str, ylabel: str, bin_s: float, t0: float):
    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        for k, (name, run) in enumerate(runs.items()):
            tl = getattr(run.occupancy, attr)
            starts, means = tl.binned(bin_s)
            ax.plot((starts - t0) / 86400, means, label=name, color=_colour(name, k), lw=1.2)
        ax.set_xlabel("days since first submit")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)

    return draw


def _cdf_panels(runs, key: str, groups: list[str], title: str):
    def draw(fig):
        n = max(1, len(groups))
        for i, g in enumerate(groups):
            ax = fig.add_subplot(1, n, i + 1)
            jobs = 0
            for k, (name, run) in enumerate(runs.items()):
                rec = run.result.records
                sel = (size_buckets(rec) == g) if key == "size_bucket" else (rec[key] == g)
                jobs = int(sel.sum())
                w, frac = wait_cdf(rec[sel])
                if len(w):
                    # A few jobs: the steps drawn with their points, so each job shows.
                    few = len(w) < SMALL_SAMPLE
                    ax.step(
                        np.maximum(w, 1),
                        frac,
                        where="post",
                        label=name,
                        color=_colour(name, k),
                        lw=1.2,
                        ls="--" if few else "-",
                        marker="o" if few else None,
                        ms=3,
                    )
            ax.set_ylim(0, 1.01)
            ax.set_title(
                f"{title} {g} ({jobs:,} jobs){small_sample_note(jobs)}",
                fontsize=9,
                color="#b00" if jobs < SMALL_SAMPLE else "black",
            )
            human_log_axis(ax, "wait (log; 0 drawn at 1s)")
            if i == 0:
                ax.set_ylabel("share of jobs started")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")

    return draw


def _jtted(runs, inventory):
    def draw(fig):
        ax1 = fig.add_subplot(1, 2, 1)
        width = 0.8 / max(1, len(runs))
        x = np.arange(len(TIERS))
        for k, (name, run) in enumerate(runs.items()):
            table = jtted(run.result.records, inventory)
            multi = table[table["num_nodes"] > 1]
            share = [(multi["tier"] == t).mean() if len(multi) else 0 for t in TIERS]
            ax1.bar(
                x + k * width,
                share,
                width,
                label=f"{name} ({len(multi)} jobs)",
                color=_colour(name, k),
            )
        ax1.set_xticks(
            x + width * (len(runs) - 1) / 2, ["one node", "one leaf", "one spine", "across spines"]
        )
        ax1.set_ylabel("share of multi-node training jobs")
        ax1.set_title("where multi-node gangs were placed", fontsize=9)
        ax1.legend(fontsize=7)
        ax2 = fig.add_subplot(1, 2, 2)
        for k, (name, run) in enumerate(runs.items()):
            table = jtted(run.result.records, inventory)
            multi = table[table["gpus"] > 1]
            v = np.sort(multi["estimated"].to_numpy(dtype=float))
            if len(v):
                ax2.step(
                    np.maximum(v, 1),
                    np.arange(1, len(v) + 1) / len(v),
                    where="post",
                    label=f"{name} (x{(multi['estimated'].sum() / multi['runtime'].sum()):.3f})",
                    color=_colour(name, k),
                )
        human_log_axis(ax2, "estimated training time under placement (log)")
        ax2.set_title("JTTED of multi-GPU training jobs (slowdown in legend)", fontsize=9)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)

    return draw


def _inference_cdf(runs, default_sla: float | None):
    """Inference wait CDF per policy with the SLA(s) as vertical lines; legend: attainment,
    preemptions and GPU-hours lost."""

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        slas: set[float] = set()
        for k, (name, run) in enumerate(runs.items()):
            rec = run.result.records
            w, frac = inference_wait_cdf(rec)
            inf = rec[rec["job_class"] == "inference"]
            slas |= {float(x) for x in job_slas(inf, default_sla) if x == x}
            head = run.headline
            att = head.get("inference_sla_attainment")
            label = (
                f"{name}: SLA met {att:.2%}" if att == att and att is not None else f"{name}"
            ) + (
                f", {head.get('preemptions', 0):,} preemptions, "
                f"{head.get('preempted_gpu_hours', 0.0):,.1f} GPU-h lost"
            )
            if len(w):
                label += small_sample_note(len(inf))
                ax.step(
                    np.concatenate([[1], np.maximum(w, 1)]),
                    np.concatenate([[0], frac]),
                    where="post",
                    label=label,
                    color=_colour(name, k),
                    lw=1.4,
                )
        for sla in sorted(slas)[:5]:
            ax.axvline(max(sla, 1), color="#444", ls="--", lw=1)
            ax.text(
                max(sla, 1),
                0.5,
                f"SLA {fmt_duration(sla)} ",
                fontsize=8,
                color="#444",
                rotation=90,
                ha="right",
                va="center",
            )
        ax.set_ylim(0, 1.01)
        human_log_axis(ax, "inference wait to first start (log; 0 drawn at 1s)")
        ax.set_ylabel("share of inference jobs started")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.02, 0.02))

    return draw


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }} .note {{ color: #666; font-size: 13px; }}
</style></head><body>
<h1>{title}</h1>
<p class="note">{meta}</p>
<h2>Summary</h2>
{table}
{sections}
</body></html>
"""


def simulate_html(comparison) -> str:
    """The whole page for a :class:`kant_slurm.sim.run.Comparison`."""
    c = comparison
    runs = c.runs
    first = next(iter(runs.values()))
    t0 = first.detail["window_s"][0]  # the same window for every policy (sim.run.shared_window)
    span = first.detail["window_s"][1] - t0
    bin_s = 3600.0 if span > 2 * 86400 else 600.0
    header = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in HEADLINE_COLUMNS)
    body = "".join(
        "<tr><td>"
        + html.escape(name)
        + "</td>"
        + "".join(
            f"<td>{html.escape(fmt(run.headline.get(key)))}</td>"
            for key, _, fmt in HEADLINE_COLUMNS
        )
        + "</tr>"
        for name, run in runs.items()
    )
    table = f"<table><tr><th>policy</th>{header}</tr>{body}</table>"
    rec0 = first.result.records
    buckets = [b for b in SIZE_BUCKETS if (size_buckets(rec0) == b).any()]
    classes = sorted(set(rec0["job_class"]))
    plots = [
        (
            "GPU allocation ratio (GAR) over time, hourly mean",
            _over_time(runs, "gar", "GAR", bin_s, t0),
            (9, 3.2),
        ),
        (
            "GPU node fragmentation ratio (GFR) over time: share of nodes partly used",
            _over_time(runs, "gfr", "GFR", bin_s, t0),
            (9, 3.2),
        ),
        (
            "Stranded GPUs: free GPUs on partly used nodes / all free GPUs",
            _over_time(runs, "stranded_share", "stranded share", bin_s, t0),
            (9, 3.2),
        ),
        (
            "Wait time CDF per GPU size bucket",
            _cdf_panels(runs, "size_bucket", buckets, "GPUs"),
            (3.2 * max(1, len(buckets)), 3.2),
        ),
        (
            "Wait time CDF per job class",
            _cdf_panels(runs, "job_class", classes, "class"),
            (3.4 * max(1, len(classes)), 3.2),
        ),
        (
            "JTTED: training time under the placement each job got",
            _jtted(runs, c.cluster.inventory),
            (10, 3.4),
        ),
    ]
    if "inference" in classes:
        plots.append(
            (
                "Inference wait CDF against the SLA (first start), with preemptions of training",
                _inference_cdf(runs, c.default_sla),
                (9, 3.4),
            )
        )
    extra = ""
    if "inference" in classes or any(r.headline.get("preemptions") for r in runs.values()):
        ih, ib = inference_rows({k: r.detail for k, r in runs.items()})
        extra = (
            "<h2>Inference SLA (first start) and preemption of training</h2><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in ih)
            + "</tr>"
            + "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                for row in ib
            )
            + "</table>"
        )
    sections = extra + "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{png_b64(draw, size)}">'
        for title, draw, size in plots
    )
    # The trace's file name only: its directory is this machine's (for the bundled trace, the
    # install path), which a page meant to be shared should not carry.
    source_dir = str(Path(c.trace.source).resolve().parent)
    notes = [
        n.replace(source_dir + "/", "").replace(str(Path(c.trace.source).parent) + "/", "")
        for n in c.notes
    ]
    meta = (
        f"trace {html.escape(Path(c.trace.source).name)} ({c.trace.fmt}, "
        f"{len(c.trace.jobs):,} jobs); "
        f"cluster {html.escape(c.cluster.describe())}; time limits {c.time_limit_model} "
        f"(seed {c.seed}); a cycle at most every {c.interval:g}s; metrics over first submit "
        f"to last start ({fmt_duration(span)}). Classes: "
        + ", ".join(f"{k} {v:,}" for k, v in c.class_counts.items())
        + "".join(f"; {html.escape(n)}" for n in notes)
    )
    return PAGE.format(
        title="kant-slurm simulate: " + " vs ".join(runs), meta=meta, table=table, sections=sections
    )
