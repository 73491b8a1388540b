"""Scoring maths of the engine, as plain functions (table-tested with exact values).

Everything the policies rank by is here, so that a number in a Plan can be recomputed by hand:
queue-order tiers, group fullness, node best-fit keys, node preference tiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Quota tiers (kant queue order, second factor).
QUOTA_WITHIN = 0  # the job fits inside the account's quota for its GPU type
QUOTA_BORROW = 1  # it needs to borrow, within the borrowing limit
QUOTA_OVER = 2  # it would go beyond quota x (1 + borrow_limit): it waits

# Node preference tiers (Plan.node_tiers; 0 = use first).
TIER_PARTLY_USED = 0  # some GPU allocated: fill it first (E-Binpack)
TIER_IDLE_IN_USED_LEAF = 1  # idle node in a leaf group that already has work
TIER_IDLE_LEAF = 2  # idle node in a wholly idle leaf group: keep it whole for big jobs
TIER_INFERENCE_ZONE = 3  # inference zone node: kept for inference services


def class_tier(job_class: str, order: Sequence[str]) -> int:
    """Position of the job's class in ``order`` (unknown classes go last)."""
    try:
        return list(order).index(job_class)
    except ValueError:
        return len(order)


def quota_for(
    accounts: Mapping[str, Mapping[str, int]], account: str, gpu_type: str | None
) -> int | None:
    """The account's GPU quota for ``gpu_type`` (``'*'`` entries are the fallbacks at both
    levels); ``None`` when quotas are off or nothing applies."""
    if not accounts:
        return None
    per_type = accounts.get(account)
    if per_type is None:
        per_type = accounts.get("*")
    if per_type is None:
        return None
    if gpu_type is not None and gpu_type in per_type:
        return int(per_type[gpu_type])
    if "*" in per_type:
        return int(per_type["*"])
    return None


def quota_tier(used: int, asked: int, quota: int | None, borrow_limit: float) -> int:
    """0 within quota, 1 borrowing within the limit, 2 beyond ``quota * (1 + borrow_limit)``.

    ``used`` is what the account holds now (of that GPU type), ``asked`` what the job adds.
    No quota (``None``) is tier 0 when quotas are off for the account.
    """
    if quota is None:
        return QUOTA_WITHIN
    after = used + asked
    if after <= quota:
        return QUOTA_WITHIN
    if after <= quota * (1.0 + borrow_limit):
        return QUOTA_BORROW
    return QUOTA_OVER


def age_seconds(now: float, submit_time: float, eligible_time: float | None = None) -> float:
    """Time waited since the job became eligible (or was submitted), never negative."""
    since = eligible_time if eligible_time is not None else submit_time
    return max(0.0, now - since)


def kant_order_key(class_t: int, quota_t: int, age: float, job_id: str) -> tuple:
    """Sort key of the kant queue: class tier, quota tier, oldest first, then job id."""
    return (class_t, quota_t, -age, _id_key(job_id))


def slurm_order_key(partition_tier: int, priority: int, submit_time: float, job_id: str) -> tuple:
    """Sort key of Slurm's queue: partition PriorityTier (high first), priority (high first),
    then submit time and job id (older first), as slurmctld's sort_job_queue2 orders."""
    return (-partition_tier, -priority, submit_time, _id_key(job_id))


def fifo_order_key(submit_time: float, job_id: str) -> tuple:
    """Strict arrival order."""
    return (submit_time, _id_key(job_id))


def _id_key(job_id: str) -> tuple:
    # Numeric ids sort numerically ("9" < "10"); array ids like "12_3" by their parts.
    if job_id.isdigit():
        return ((0, int(job_id), ""),)
    parts = job_id.replace("+", "_").split("_")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def group_fill_score(free_gpus: float, total_gpus: float) -> float:
    """How full a topology group is: allocated / total GPUs in the job's pool (1.0 = full).

    E-Binpack picks the fullest group that still fits, so wholly idle groups stay whole.
    """
    if total_gpus <= 0:
        return 0.0
    return 1.0 - float(free_gpus) / float(total_gpus)


def rank_groups(
    fits: np.ndarray, free: np.ndarray, total: np.ndarray, top: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Groups that fit, best first: fullest (highest :func:`group_fill_score`), then fewer free
    GPUs, then lower index. Returns (group indices, their scores). With ``top``, only the best
    ``top`` groups (exact, ties included in the ordering)."""
    idx = np.flatnonzero(fits)
    if idx.size == 0:
        return idx, np.empty(0)
    tot = total[idx]
    fr = free[idx]
    # Free and total are whole numbers, so equal fractions give identical doubles: no rounding.
    score = np.where(tot > 0, 1.0 - fr / np.where(tot > 0, tot, 1), 0.0)
    if top is not None and idx.size > top:
        thr = np.partition(score, idx.size - top)[idx.size - top]
        keep = score >= thr
        idx, fr, score = idx[keep], fr[keep], score[keep]
    order = np.lexsort((idx, fr, -score))
    if top is not None:
        order = order[:top]
    return idx[order], score[order]


def best_group(fits: np.ndarray, free: np.ndarray, total: np.ndarray) -> int:
    """Index of the fullest group among those that fit (ties: fewer free GPUs, lower index);
    -1 when none fits."""
    idx, _ = rank_groups(fits, free, total)
    return int(idx[0]) if idx.size else -1


def node_leftover(free_gpus: np.ndarray, gpus_per_node: int) -> np.ndarray:
    """Best-fit key by free GPUs: what would be left on each node after the job (lower first)."""
    return free_gpus - gpus_per_node


def pick_best_fit(
    candidates: np.ndarray, free_gpus: np.ndarray, gpus_per_node: int, count: int
) -> np.ndarray:
    """``count`` candidate node indices, best fit by free GPUs (least left over, then index)."""
    idx = np.flatnonzero(candidates)
    if idx.size < count:
        return idx[:0]
    left = free_gpus[idx] - gpus_per_node
    if count == 1:
        return idx[[int(np.argmin(left))]]
    order = np.lexsort((idx, left))
    return idx[order[:count]]


def node_tier(gpus_alloc: int, gpus_total: int, leaf_used: bool, in_zone: bool) -> int:
    """Preference tier of one node (see the TIER_* constants)."""
    if in_zone:
        return TIER_INFERENCE_ZONE
    if gpus_alloc > 0 or gpus_total == 0:
        return TIER_PARTLY_USED
    return TIER_IDLE_IN_USED_LEAF if leaf_used else TIER_IDLE_LEAF


def node_tiers(
    gpus_alloc: np.ndarray, gpus_total: np.ndarray, leaf_index: np.ndarray, zone: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`node_tier` over all nodes (a node under no switch counts as its own
    leaf group)."""
    used = gpus_alloc > 0
    n_leaf = int(leaf_index.max()) + 1 if leaf_index.size and leaf_index.max() >= 0 else 0
    leaf_used = np.zeros(len(gpus_alloc), dtype=bool)
    if n_leaf:
        has = leaf_index >= 0
        used_per_leaf = np.bincount(leaf_index[has], weights=used[has], minlength=n_leaf) > 0
        leaf_used[has] = used_per_leaf[leaf_index[has]]
    tiers = np.where(leaf_used, TIER_IDLE_IN_USED_LEAF, TIER_IDLE_LEAF)
    tiers = np.where(used | (gpus_total == 0), TIER_PARTLY_USED, tiers)
    return np.where(zone, TIER_INFERENCE_ZONE, tiers).astype(np.int64)


def tier_weight(tier: int, base: int, step: int) -> int:
    """Slurm node Weight for a preference tier (lower Weight = Slurm uses it first).

    Idle nodes share one Weight whether their leaf is used or idle. Slurm's topology/tree
    selection takes every node of a lighter Weight whole and lets the switch tree choose only
    among the heaviest Weight a job needs (rule and source in :func:`.select._tree_pick`), so a
    lighter idle node in a used leaf is forced into any gang that needs more nodes, and splits
    it from a leaf that would hold it whole (issue 15: gn04 + gn05 instead of gn05-06). One
    Weight leaves the choice to Slurm's tightest-fit leaf, which already prefers used leaves:
    they have fewer idle nodes. Whole-node gangs then land as with stock Weights.
    Left: a partly used node keeps its lighter Weight until the next cycle, so if it empties
    meanwhile it is forced into the next gang like any lighter node.
    """
    rank = TIER_IDLE_IN_USED_LEAF if tier == TIER_IDLE_LEAF else tier
    return base + rank * step
