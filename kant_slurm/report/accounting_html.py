"""``kant-slurm report --html``: the report as one self-contained HTML file.

Plots are matplotlib PNGs embedded as base64 ``data:`` URIs and the style sheet is inline, so the
file opens in a browser with no network and can be mailed as it is.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jinja2
import numpy as np

from .accounting import _dur, _pct
from .html import SMALL_SAMPLE, human_log_axis, png_b64, small_sample_note


def _plots(report: dict[str, Any]) -> dict[str, str]:
    """The report's plots as data URIs: occupancy over time, wait CDF, waits by size.

    Drawn through :func:`kant_slurm.report.html.png_b64`, as the simulator's page is.
    """
    import matplotlib.dates as mdates
    from datetime import datetime

    out: dict[str, str] = {}
    tl = report["timeline"]
    if tl["time"]:

        def occupancy(fig):
            times = [datetime.fromtimestamp(t) for t in tl["time"]]
            ax = fig.add_subplot()
            for key, label in (
                ("gar", "GAR"),
                ("gfr", "GFR"),
                ("stranded_gpu_share", "stranded GPU share"),
            ):
                ax.step(times, np.array(tl[key], dtype=float) * 100, where="post", label=label)
            ax.set_ylabel("%")
            ax.set_ylim(0, 105)
            ax.grid(alpha=0.3)
            ax.legend(
                loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=9, frameon=False
            )
            locator = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            ax.set_title("Occupancy over time (bin means)")

        out["occupancy"] = _uri(occupancy, (9, 3.4))
    cdf = report["wait_cdf"]
    if cdf["wait_s"]:
        started = int(report.get("runs_started", len(cdf["wait_s"])))

        def wait_cdf(fig):
            ax = fig.add_subplot()
            w = np.maximum(np.array(cdf["wait_s"], dtype=float), 1.0)
            few = started < SMALL_SAMPLE
            ax.step(
                w,
                np.array(cdf["share"]) * 100,
                where="post",
                ls="--" if few else "-",
                marker="o" if few else None,
                ms=3,
            )
            human_log_axis(ax, "wait (log; waits under 1s shown at 1s)")
            ax.set_ylabel("% of jobs waiting at most")
            ax.set_ylim(0, 102)
            ax.grid(alpha=0.3)
            ax.set_title(
                f"Job waiting time CDF ({started:,} jobs){small_sample_note(started)}",
                fontsize=10 if few else 12,
                color="#b00" if few else "black",
            )

        out["wait_cdf"] = _uri(wait_cdf, (4.6, 3.4))
    rows = [r for r in report["by_size"] if r["jobs"]]
    if rows:

        def wait_by_size(fig):
            ax = fig.add_subplot()
            x = np.arange(len(rows))
            top = max([float(r["p99"]) for r in rows if r["p99"] is not None] + [0.0])
            unit, div = next(
                (u, d)
                for u, d in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
                if top >= 2 * d or d == 1
            )
            for k, q in enumerate(("p50", "p90", "p99")):
                vals = [(r[q] if r[q] is not None else 0) / div for r in rows]
                ax.bar(x + (k - 1) * 0.27, vals, width=0.27, label=q)
            ax.set_xticks(x, [f"{r['size_bucket']} GPU" for r in rows])
            ax.set_ylabel(f"wait ({unit})")
            ax.grid(alpha=0.3, axis="y")
            ax.legend(
                fontsize=9, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False
            )
            ax.set_title("Wait by GPU size bucket")

        out["wait_by_size"] = _uri(wait_by_size, (4.6, 3.4))
    return out


def _uri(draw, figsize) -> str:
    return "data:image/png;base64," + png_b64(draw, figsize)


_TEMPLATE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kant-slurm report {{ since }} .. {{ until }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 24px auto; max-width: 1000px; color: #1d2330; background: #fff; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 28px;
     border-bottom: 1px solid #d8dce4; padding-bottom: 4px; }
.sub { color: #5b6475; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin-top: 14px; }
.card { border: 1px solid #d8dce4; border-radius: 6px; padding: 8px 12px; }
.card .v { font-size: 22px; font-weight: 600; } .card .k { font-size: 12px; color: #5b6475; }
table { border-collapse: collapse; font-size: 13px; margin-top: 6px; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #eceef2; }
th:first-child, td:first-child { text-align: left; } th { background: #f4f6f9; }
img { max-width: 100%; } .row { display: flex; gap: 12px; flex-wrap: wrap; }
.note { font-size: 12px; color: #5b6475; max-width: 900px; }
</style></head><body>
<h1>kant-slurm accounting report</h1>
<div class="sub">{{ since }} .. {{ until }} · {{ r.jobs }} jobs ({{ r.runs_started }} started)
 · {{ r.gpus_total }} GPUs on {{ r.gpu_nodes }} nodes\
{% if filters %} · {{ filters }}{% endif %}</div>
<div class="cards">
{% for k, v in cards %}<div class="card"><div class="v">{{ v }}</div>\
<div class="k">{{ k }}</div></div>
{% endfor %}</div>
<h2>Occupancy</h2>
<table><tr><th>metric</th><th>mean</th><th>p10</th><th>p50</th><th>p90</th></tr>
{% for name, row in occ_rows %}<tr><td>{{ name }}</td>\
{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if plots.occupancy %}<img alt="occupancy over time" src="{{ plots.occupancy }}">{% endif %}
<p class="note">GAR: allocated / GPUs. GFR: share of GPU nodes partly allocated. Stranded share:
free GPUs on partly used nodes / all free GPUs. SOR: allocated GPU-time / min(GPUs, demand)
GPU-time.</p>
<h2>Waiting (JWTD)</h2>
<div class="row">{% if plots.wait_cdf %}<img alt="wait CDF" src="{{ plots.wait_cdf }}">{% endif %}
{% if plots.wait_by_size %}<img alt="wait by size" src="{{ plots.wait_by_size }}">{% endif %}</div>
<table><tr><th>class / size</th><th>jobs</th><th>not started</th><th>mean</th><th>p50</th>\
<th>p90</th><th>p99</th><th>max</th></tr>
{% for row in wait_rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Time-limit accuracy (elapsed / limit)</h2>
<p class="note">Backfill plans with time limits: jobs that use a small share of their limit leave
holes backfill cannot plan for.</p>
{% for label, rows in tl_tables %}<table><tr><th>{{ label }}</th><th>jobs</th><th>mean</th>\
<th>p10</th><th>p50</th><th>p90</th><th>timeouts</th></tr>
{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="7">no ended job with a time limit</td></tr>{% endfor %}</table>
{% endfor %}
<h2>Top users</h2>
<div class="row">{% for title, rows in top_tables %}<table><tr><th>{{ title }}</th>\
<th>GPU-hours</th><th>share</th><th>jobs</th></tr>
{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="4">none</td></tr>{% endfor %}</table>{% endfor %}</div>
<p class="note">Stranded GPU-hours are the free GPUs on partly used nodes, shared among the jobs
on the node by the GPUs each holds. Generated by kant-slurm {{ version }} at {{ generated }}.</p>
</body></html>
""",
    autoescape=True,
)


def render_html(report: dict[str, Any]) -> str:
    """The self-contained HTML page of a report from :func:`build_report`."""
    from .. import __version__

    fmt = "%Y-%m-%d %H:%M"
    r = report

    def stats(row):
        return [_dur(row[k]) for k in ("mean", "p50", "p90", "p99", "max")]

    cards = [
        ("GPU-hours allocated", f"{r['gpu_hours_allocated']:.1f}"),
        ("GAR mean", _pct(r["gar_mean"])),
        ("SOR", _pct(r["sor"])),
        ("GFR mean", _pct(r["gfr_mean"])),
        ("stranded GPU share", _pct(r["stranded_gpu_share"])),
        ("wait p50", _dur(r["wait_p50_s"])),
        ("wait p90", _dur(r["wait_p90_s"])),
        ("wait p99", _dur(r["wait_p99_s"])),
    ]
    occ_rows = [
        ("GAR", [_pct(r["gar_mean"]), _pct(r["gar_p10"]), _pct(r["gar_p50"]), _pct(r["gar_p90"])]),
        ("GFR", [_pct(r["gfr_mean"]), _pct(r["gfr_p10"]), _pct(r["gfr_p50"]), _pct(r["gfr_p90"])]),
        (
            "stranded share",
            [
                _pct(r["stranded_gpu_share"]),
                _pct(r["stranded_gpu_share_p10"]),
                _pct(r["stranded_gpu_share_p50"]),
                _pct(r["stranded_gpu_share_p90"]),
            ],
        ),
        ("stranded share (leaf)", [_pct(r.get("stranded_gpu_share_leaf")), "", "", ""]),
    ]
    wait_rows = [
        [row["job_class"], row["jobs"], row["not_started"], *stats(row)] for row in r["by_class"]
    ] + [
        [f"{row['size_bucket']} GPU", row["jobs"], row["not_started"], *stats(row)]
        for row in r["by_size"]
    ]
    tl_tables = []
    for label in ("account", "user"):
        rows = [
            [
                row[label],
                row["jobs"],
                _pct(row["elapsed_over_limit_mean"]),
                _pct(row["elapsed_over_limit_p10"]),
                _pct(row["elapsed_over_limit_p50"]),
                _pct(row["elapsed_over_limit_p90"]),
                int(row["timeouts"]),
            ]
            for row in r["time_limit_accuracy"][f"by_{label}"][:15]
        ]
        tl_tables.append((label, rows))
    top_tables = [
        (
            title,
            [
                [row["user"], f"{row['gpu_hours']:.1f}", _pct(row["share"]), int(row["jobs"])]
                for row in r["top_users"][key]
            ],
        )
        for key, title in (
            ("waiting_gpus", "waiting GPUs: user"),
            ("stranded_gpus", "stranded GPUs: user"),
        )
    ]
    # The dump's file name only: its directory is this machine's business, not the page's.
    filters = ", ".join(
        f"{k}={os.path.basename(str(v)) if k == 'input' else v}"
        for k, v in (r.get("filters") or {}).items()
        if v
    )
    return _TEMPLATE.render(
        r=r,
        since=time.strftime(fmt, time.localtime(r["window"]["since"])),
        until=time.strftime(fmt, time.localtime(r["window"]["until"])),
        cards=cards,
        occ_rows=occ_rows,
        wait_rows=wait_rows,
        tl_tables=tl_tables,
        top_tables=top_tables,
        plots=_plots(r),
        filters=filters,
        version=__version__,
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
