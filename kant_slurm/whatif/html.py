"""Self-contained HTML pages of a sweep and of a what-if: the merged table (mean ±95% over
seeds) and one bar chart per headline metric with the intervals as error bars."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ..report.html import PAGE, PLOTS_EXTRA, _colour, plotting_available, png_b64
from . import stats


def _table(cells: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ["#", "cell", "status", "seeds"] + [m[1] for m in stats.METRICS]
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in [c["index"], c["label"], c["status"], len(c["seeds_done"])]
            + [stats.cell_text(c, key, kind) for key, _, kind, _ in stats.METRICS]
        )
        + "</tr>"
        for c in cells
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _bars(cells: Sequence[Mapping[str, Any]], key: str, label: str, kind: str):
    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        shown = [c for c in cells if c["metrics"][key]["mean"] is not None]
        scale = 3600.0 if kind == "duration" else 1.0
        means = [c["metrics"][key]["mean"] / scale for c in shown]
        errs = [(c["metrics"][key]["ci95"] or 0.0) / scale for c in shown]
        # One colour per policy (the fallback palette indexed by the policy's first cell).
        policies = list(dict.fromkeys(c["spec"]["policy"] for c in cells))
        colour = {p: _colour(p, k) for k, p in enumerate(policies)}
        ax.bar(
            range(len(shown)),
            means,
            yerr=errs,
            capsize=3,
            color=[colour[c["spec"]["policy"]] for c in shown],
        )
        from matplotlib.patches import Patch

        ax.legend(
            handles=[Patch(color=colour[p], label=p) for p in policies],
            fontsize=8,
            loc="lower right",
        )
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels([str(c["index"]) for c in shown])
        ax.set_xlabel("cell # (see the table)")
        ax.set_ylabel(label + (" (hours)" if kind == "duration" else ""))

    return draw


def _charts(cells: Sequence[Mapping[str, Any]]) -> str:
    if not plotting_available():  # a sweep's page is written whatever is installed
        return f"<p>Charts need matplotlib: {html.escape(PLOTS_EXTRA)}</p>"
    parts = []
    width = max(6.0, min(14.0, 0.35 * len(cells) + 3))
    for key, label, kind, better in stats.METRICS:
        if not any(c["metrics"][key]["mean"] is not None for c in cells):
            continue
        title = f"{label} per cell, mean and 95% interval over seeds ({better} is better)"
        parts.append(
            f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
            f'src="data:image/png;base64,'
            f'{png_b64(_bars(cells, key, label, kind), (width, 3.0))}">'
        )
    return "".join(parts)


def sweep_html(grid, cells: Sequence[Mapping[str, Any]]) -> str:
    """The page of a merged sweep."""
    failed = [c for c in cells if c["status"] != "done"]
    meta = (
        f"grid {html.escape(grid.name)}: {len(cells)} cells x {len(grid.seeds)} seeds "
        f"({', '.join(map(str, grid.seeds))}); policies {', '.join(grid.policies)}; "
        f"traces {', '.join(html.escape(t.label) for t in grid.traces)}; clusters "
        f"{', '.join(html.escape(c.label) for c in grid.clusters)}"
        + (f"; not complete: {', '.join(str(c['index']) for c in failed)}" if failed else "")
    )
    return PAGE.format(
        title=f"kant-slurm sweep: {html.escape(grid.name)}",
        meta=meta,
        table=_table(cells),
        sections=_charts(cells),
    )


def whatif_html(
    title: str, meta: str, cells: Sequence[Mapping[str, Any]], findings: Sequence[str]
) -> str:
    """The page of a what-if: the recommendation first, then the table and the charts."""
    advice = (
        "<h2>Recommendation</h2><ul>"
        + "".join(f"<li>{html.escape(f)}</li>" for f in findings)
        + "</ul>"
    )
    return PAGE.format(
        title=html.escape(title),
        meta=html.escape(meta),
        table=_table(cells),
        sections=advice + _charts(cells),
    )
