"""What a what-if says: per metric, whether a kant policy is better, worse or no different from
stock Slurm on this history, and one plain recommendation (pure).

A difference counts when it is both

- beyond the noise: larger than the two 95% half-widths combined in quadrature (with one seed,
  or seeds that all give the same replay, there is no noise to beat), and
- material: at least :data:`MATERIAL_RATIO` absolute on a ratio (GAR, SOR, GFR, stranded
  share) or :data:`MATERIAL_SHARE` of the stock value on a time. Smaller moves are reported as
  "no clear difference": an administrator should not switch schedulers for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import stats

MATERIAL_RATIO = 0.005  # GAR/SOR/GFR points: half a percentage point of the cluster
MATERIAL_SHARE = 0.02  # waits, JCT, makespan: 2% of stock Slurm's figure
BASELINE = "slurm"
DEPLOYED = "kant-steered"  # what a site deploys: stock Slurm steered by kant's daemon


def compare(base: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, list[dict]]:
    """``{"better": [...], "worse": [...], "same": [...]}`` of ``other`` against ``base``
    (merged cells, see :func:`kant_slurm.whatif.stats.merge_cell`); each item names the metric,
    both means and the change."""
    out: dict[str, list[dict]] = {"better": [], "worse": [], "same": []}
    for key, label, kind, better in stats.METRICS:
        a, b = base["metrics"][key], other["metrics"][key]
        if a["mean"] is None or b["mean"] is None:
            continue
        delta = b["mean"] - a["mean"]
        noise = math.hypot(a["ci95"] or 0.0, b["ci95"] or 0.0)
        material = MATERIAL_RATIO if kind == "ratio" else MATERIAL_SHARE * abs(a["mean"])
        item = {
            "metric": key,
            "label": label,
            "unit": kind,
            "base": a["mean"],
            "other": b["mean"],
            "delta": delta,
            "relative": delta / a["mean"] if a["mean"] else None,
        }
        if abs(delta) <= noise or abs(delta) < material:
            out["same"].append(item)
        elif (delta > 0) == (better == "higher"):
            out["better"].append(item)
        else:
            out["worse"].append(item)
    return out


def _change(item: Mapping[str, Any]) -> str:
    fmt = stats._fmt
    text = (
        f"{item['label']} {fmt(item['unit'], item['base'])} -> {fmt(item['unit'], item['other'])}"
    )
    if item["relative"] is not None:
        text += f" ({item['relative'] * 100:+.0f}%)"
    return text


def recommend(cells: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The findings for every non-baseline policy against ``slurm``, and the summary line.

    ``cells``: one merged cell per policy (``spec.policy``)."""
    by_policy = {c["spec"]["policy"]: c for c in cells}
    base = by_policy.get(BASELINE)
    if base is None or base["status"] != "done":
        why = "no recommendation: stock Slurm (policy slurm) did not run"
        return {"per_policy": {}, "lines": [why], "summary": why}
    per_policy: dict[str, Any] = {}
    lines: list[str] = []
    for name, cell in by_policy.items():
        if name == BASELINE or cell["status"] != "done":
            continue
        found = compare(base, cell)
        per_policy[name] = found
        if found["better"]:
            lines.append(f"{name} helps: " + "; ".join(map(_change, found["better"])))
        if found["worse"]:
            lines.append(f"{name} hurts: " + "; ".join(map(_change, found["worse"])))
        if found["same"]:
            lines.append(
                f"{name} makes no clear difference to: "
                + ", ".join(i["label"] for i in found["same"])
            )
    summary = _summary(per_policy)
    return {"per_policy": per_policy, "lines": [summary] + lines, "summary": summary}


def _summary(per_policy: Mapping[str, Any]) -> str:
    steered = per_policy.get(DEPLOYED)
    ideal = per_policy.get("kant")
    if steered is None:
        target, found = ("kant", ideal) if ideal else (None, None)
    else:
        target, found = DEPLOYED, steered
    if found is None:
        return "no recommendation: neither kant-steered nor kant ran"
    nb, nw = len(found["better"]), len(found["worse"])
    better = ", ".join(i["label"] for i in found["better"])
    worse = ", ".join(i["label"] for i in found["worse"])
    if nb and not nw:
        verdict = f"recommended: {target} improves {better} on this history and worsens nothing"
    elif nb and nw:
        verdict = (
            f"a trade-off: {target} improves {better} but worsens {worse}; weigh them "
            "before deploying"
        )
    elif nw:
        verdict = f"not recommended: {target} worsens {worse} and improves nothing here"
    else:
        verdict = (
            f"no gain: {target} makes no clear difference on this history; stock Slurm "
            "as configured does as well"
        )
    if target == DEPLOYED and ideal is not None and ideal["better"] and not nb:
        verdict += "; kant's own scheduler (the ideal) would improve " + ", ".join(
            i["label"] for i in ideal["better"]
        )
    return verdict
