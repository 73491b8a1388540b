"""A trace prepared for one cluster (:class:`Workload`): each job's partition and shape resolved,
the jobs no pool can ever hold dropped, as the simulator and the live replay take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Inventory


def job_shapes(
    gpus: np.ndarray, num_nodes: np.ndarray, node_gpus_max: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(num_nodes, gpus_per_node) per job on pools whose largest node has ``node_gpus_max`` GPUs.

    A job that fits one node stays on one node; a bigger one takes ceil(gpus / max) nodes with
    the GPUs spread evenly, rounded up (12 GPUs on 8-GPU nodes: 2 x 6). A trace that names the
    node count keeps it.
    """
    gpus = np.asarray(gpus, dtype=np.int64)
    given = np.asarray(num_nodes, dtype=np.int64)
    gmax = np.maximum(np.asarray(node_gpus_max, dtype=np.int64), 1)
    nodes = np.where(given > 0, given, np.maximum(1, -(-gpus // gmax)))
    per_node = -(-gpus // nodes)
    return nodes, per_node


@dataclass
class Workload:
    """A trace prepared for one cluster: per-job arrays and the jobs dropped on the way."""

    table: pd.DataFrame  # trace columns + num_nodes, gpus_per_node resolved
    notes: list[str]


def prepare_workload(jobs: pd.DataFrame, inventory: Inventory) -> Workload:
    """Resolve each job's partition and shape on ``inventory``; drop jobs no pool can ever hold.

    Slurm rejects such jobs at submit ("Requested node configuration is not available"); keeping
    them would block a strict-FIFO queue for ever.
    """
    default = inventory.default_partition
    part = jobs["partition"].replace("", default).fillna(default)
    unknown = sorted(set(part) - set(inventory.partition))
    if unknown:
        first = jobs.loc[part == unknown[0]].iloc[0]
        raise InputError(
            f"trace line {first['line']}: partition {unknown[0]!r} is not in the cluster "
            f"(partitions: {', '.join(inventory.partition)})"
        )
    pool_max = {}
    pool_nodes = {}
    for name, mask in inventory.partition_mask.items():
        g = inventory.gpus_total[mask]
        pool_max[name] = int(g.max()) if len(g) else 0
        pool_nodes[name] = (g, np.asarray(inventory.cpus_total)[mask])
    gmax = part.map(pool_max).to_numpy()
    nodes, per_node = job_shapes(jobs["gpus"].to_numpy(), jobs["num_nodes"].to_numpy(), gmax)
    cpn = (
        jobs["cpus_per_node"].to_numpy(dtype=np.int64)
        if "cpus_per_node" in jobs
        else np.zeros(len(jobs), dtype=np.int64)
    )
    fits = np.zeros(len(jobs), dtype=bool)
    for name, (g, c) in pool_nodes.items():
        sel = (part == name).to_numpy()
        if not sel.any():
            continue
        # nodes able to hold gpus_per_node (and the trace's CPUs per node where a node's CPU
        # count is known), per distinct per-node shape
        for size, cpus in set(zip(per_node[sel].tolist(), cpn[sel].tolist(), strict=True)):
            able = int(((g >= size) & ((c == 0) | (c >= cpus))).sum())
            s2 = sel & (per_node == size) & (cpn == cpus)
            fits[s2] = nodes[s2] <= able
    table = jobs.copy()
    table["partition"] = part.to_numpy()
    table["num_nodes"] = nodes
    table["gpus_per_node"] = per_node
    notes = []
    if not fits.all():
        notes.append(
            f"dropped {int((~fits).sum())} jobs larger than their pool "
            f"(Slurm rejects them at submit)"
        )
        table = table[fits].reset_index(drop=True)
    rounded = int((table["num_nodes"] * table["gpus_per_node"] != table["gpus"]).sum())
    if rounded:
        notes.append(f"{rounded} multi-node jobs rounded up to equal GPUs per node")
    return Workload(table=table, notes=notes)
