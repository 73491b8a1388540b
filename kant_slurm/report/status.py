"""What ``kant-slurm status`` shows: per leaf group and node GPUs used, GAR, GFR, stranded share.

Pure: a snapshot in, a dict (stable JSON keys of issue 2 §4) or text out.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..metrics.instant import gar, gfr, stranded_gpu_share, whole_free_nodes
from ..model import SIZE_BUCKETS, ClusterSnapshot, size_bucket

NO_GROUP = "(no switch)"


def status_summary(snap: ClusterSnapshot) -> dict:
    """The figures of ``status --json``: nodes, GPUs, leaf groups, GAR, GFR, stranded share,
    pending."""
    inv = snap.inventory
    total = np.asarray(inv.gpus_total)
    alloc = np.asarray(snap.gpus_alloc)
    sched = np.asarray(snap.schedulable)
    free_whole = whole_free_nodes(alloc, total, sched)
    leaf_idx = np.asarray(inv.leaf_index)
    groups = []
    names = list(inv.leaf_names)
    for g, name in enumerate(names + ([NO_GROUP] if (leaf_idx < 0).any() else [])):
        mask = leaf_idx == (g if g < len(names) else -1)
        groups.append(
            {
                "name": name,
                "nodes": [inv.names[i] for i in np.nonzero(mask)[0]],
                "gpus_total": int(total[mask].sum()),
                "gpus_allocated": int(alloc[mask].sum()),
                "free_nodes": int(free_whole[mask].sum()),
            }
        )
    pending = snap.queued  # array tasks one by one; held and dependent jobs included
    by_size = Counter(size_bucket(j.gpus) for j in pending)
    return {
        "nodes": [
            {
                "name": inv.names[i],
                "state": snap.node_state[i],
                "schedulable": bool(sched[i]),
                "leaf_group": (names[leaf_idx[i]] if leaf_idx[i] >= 0 else None),
                "gpus_total": int(total[i]),
                "gpus_allocated": int(alloc[i]),
            }
            for i in range(len(inv))
        ],
        "gpus_total": int(total.sum()),
        "gpus_allocated": int(alloc.sum()),
        "leaf_groups": groups,
        "gar": gar(alloc, total, sched),
        "gfr": gfr(alloc, total, sched),
        "stranded_gpu_share": stranded_gpu_share(alloc, total, sched),
        "pending_jobs": {
            "count": len(pending),
            "gpus": int(sum(j.gpus for j in pending)),
            "held_by_slurm": len(snap.held),
            "by_gpu_size": {
                b: by_size.get(b, 0) for b in ("0",) + SIZE_BUCKETS if b != "0" or by_size.get(b)
            },
        },
        "running_jobs": len(snap.running),
    }


def gpu_bar(used: int, total: int, schedulable: bool = True) -> str:
    """``[###.....]``: one mark per GPU; ``x`` marks GPUs of a node that takes no work."""
    if total <= 0:
        return "[-]"
    if not schedulable:
        return "[" + "x" * total + "]"
    used = max(0, min(used, total))
    return "[" + "#" * used + "." * (total - used) + "]"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def format_status(summary: dict) -> str:
    """The table: per leaf group its nodes as bars, then the cluster figures."""
    node_by_name = {n["name"]: n for n in summary["nodes"]}
    lines = []
    for grp in summary["leaf_groups"]:
        lines.append(
            f"{grp['name']}: {grp['gpus_allocated']}/{grp['gpus_total']} GPUs, "
            f"{grp['free_nodes']} whole free node{'s' if grp['free_nodes'] != 1 else ''}"
        )
        for name in grp["nodes"]:
            n = node_by_name[name]
            bar = gpu_bar(n["gpus_allocated"], n["gpus_total"], n["schedulable"])
            state = "" if n["schedulable"] else f"  {n['state'].lower()}"
            lines.append(f"  {name:<10} {bar} {n['gpus_allocated']}/{n['gpus_total']}{state}")
    pend = summary["pending_jobs"]
    sizes = ", ".join(f"{k} GPU: {v}" for k, v in pend["by_gpu_size"].items())
    lines += [
        "",
        f"GPUs allocated      {summary['gpus_allocated']}/{summary['gpus_total']}",
        f"GAR                 {_pct(summary['gar'])}   (allocated / schedulable GPUs)",
        f"GFR                 {_pct(summary['gfr'])}   (partly allocated GPU nodes)",
        (
            f"stranded GPU share  {_pct(summary['stranded_gpu_share'])}   "
            "(free GPUs on partly used nodes)"
        ),
        f"running jobs        {summary['running_jobs']}",
        f"pending jobs        {pend['count']} ({pend['gpus']} GPUs; {sizes})",
        f"  held by Slurm     {pend['held_by_slurm']}   (held, dependency, limit, throttle: "
        f"kant leaves them alone)",
    ]
    return "\n".join(lines)
