"""Occupancy figures of one instant (shared/DESIGN.md, "Metrics"), over per-node arrays.

These are the building blocks of the time-weighted metrics and of ``kant-slurm status``. Only
schedulable GPU nodes count: a drained or down node has no capacity to allocate or fragment.
All functions are pure and take numpy arrays indexed by node.
"""

from __future__ import annotations

import numpy as np


def _gpu_nodes(gpus_total: np.ndarray, schedulable: np.ndarray | None) -> np.ndarray:
    mask = np.asarray(gpus_total) > 0
    if schedulable is not None:
        mask &= np.asarray(schedulable, dtype=bool)
    return mask


def gar(
    gpus_alloc: np.ndarray, gpus_total: np.ndarray, schedulable: np.ndarray | None = None
) -> float:
    """GPU Allocation Ratio: allocated GPUs / schedulable GPUs (NaN with no schedulable GPU)."""
    mask = _gpu_nodes(gpus_total, schedulable)
    total = int(np.asarray(gpus_total)[mask].sum())
    if total == 0:
        return float("nan")
    return float(np.asarray(gpus_alloc)[mask].sum()) / total


def gfr(
    gpus_alloc: np.ndarray, gpus_total: np.ndarray, schedulable: np.ndarray | None = None
) -> float:
    """GPU Node Fragmentation Ratio: share of schedulable GPU nodes that are partly allocated."""
    mask = _gpu_nodes(gpus_total, schedulable)
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    alloc = np.asarray(gpus_alloc)[mask]
    total = np.asarray(gpus_total)[mask]
    return float(((alloc > 0) & (alloc < total)).sum()) / n


def stranded_gpu_share(
    gpus_alloc: np.ndarray, gpus_total: np.ndarray, schedulable: np.ndarray | None = None
) -> float:
    """Free GPUs on partly used nodes / all free GPUs (0 when nothing is free).

    A free GPU on a partly used node cannot serve a job that wants whole nodes: it is stranded.
    """
    mask = _gpu_nodes(gpus_total, schedulable)
    alloc = np.asarray(gpus_alloc)[mask]
    total = np.asarray(gpus_total)[mask]
    free = total - alloc
    all_free = int(free.sum())
    if all_free == 0:
        return 0.0
    return float(free[alloc > 0].sum()) / all_free


def stranded_gpu_share_leaf(
    gpus_alloc: np.ndarray,
    gpus_total: np.ndarray,
    leaf_index: np.ndarray,
    schedulable: np.ndarray | None = None,
) -> float:
    """The stranded share at leaf-group level: free GPUs in leaf groups that are partly used
    (some GPU allocated) / all free GPUs. Nodes under no switch are left out."""
    mask = _gpu_nodes(gpus_total, schedulable) & (np.asarray(leaf_index) >= 0)
    if not mask.any():
        return 0.0
    leaf = np.asarray(leaf_index)[mask]
    alloc = np.asarray(gpus_alloc)[mask]
    free = np.asarray(gpus_total)[mask] - alloc
    n_leaf = int(leaf.max()) + 1
    leaf_alloc = np.bincount(leaf, weights=alloc, minlength=n_leaf)
    leaf_free = np.bincount(leaf, weights=free, minlength=n_leaf)
    all_free = float(leaf_free.sum())
    if all_free == 0:
        return 0.0
    return float(leaf_free[leaf_alloc > 0].sum()) / all_free


def whole_free_nodes(
    gpus_alloc: np.ndarray, gpus_total: np.ndarray, schedulable: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask: schedulable GPU nodes with nothing allocated."""
    mask = _gpu_nodes(gpus_total, schedulable)
    return mask & (np.asarray(gpus_alloc) == 0)
