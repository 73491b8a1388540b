"""Node selectors: given a job and the GPUs available per node, which nodes it gets.

Every selector has the signature ``(cycle, job, avail) -> Choice | None``; ``avail`` is free GPUs
per node with -1 where the job may not go. The same selector answers "run now" and "will it run
at T" (the cycle passes the availability of that moment).

- :func:`first_fit`: lowest node index first (``fifo``).
- :func:`binpack`: E-Binpack (``kant``): smallest topology level that can hold the job, the
  fullest group there that still fits, nodes best-fit by free GPUs.
- :func:`spread`: E-Spread (``kant``, inference jobs in the inference zone): replicas of one
  service on different nodes, the zone packed.
- :func:`slurm_cons_tres`: the ``slurm`` model's node choice (see :mod:`.policies`).
"""

from __future__ import annotations

import numpy as np

from ..model import Job
from .cycle import Choice, Cycle
from .scoring import best_group, group_fill_score, pick_best_fit

LEVEL_NAMES = ("leaf group", "spine group", "core group")


def level_name(level: int) -> str:
    return LEVEL_NAMES[level] if level < len(LEVEL_NAMES) else f"level-{level} group"


def _gpus(idx: np.ndarray, job: Job) -> np.ndarray:
    return np.full(len(idx), job.gpus_per_node, dtype=np.int64)


def first_fit(cycle: Cycle, job: Job, avail: np.ndarray) -> Choice | None:
    """The first ``num_nodes`` nodes (inventory order) with enough free GPUs."""
    idx = np.flatnonzero(avail >= job.gpus_per_node)
    if idx.size < job.num_nodes:
        return None
    idx = idx[: job.num_nodes]
    return Choice(idx, _gpus(idx, job), None, "first fit: lowest-numbered nodes with room")


# ------------------------------------------------------------------------------- E-Binpack


def _group_sums(gidx: np.ndarray, usable: np.ndarray, total: np.ndarray, free: np.ndarray,
                n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    m = usable & (gidx >= 0)
    g = gidx[m]
    tot = np.bincount(g, weights=total[m], minlength=n_groups)
    fr = np.bincount(g, weights=free[m], minlength=n_groups)
    return fr, tot


def _alternatives(names, fits, fr, tot, chosen: int, level: int, limit: int) -> tuple:
    if limit <= 0:
        return ()
    idx = np.flatnonzero(fits)
    idx = idx[idx != chosen]
    if idx.size == 0:
        return ()
    scores = np.round(np.where(tot[idx] > 0, 1.0 - fr[idx] / np.maximum(tot[idx], 1), 0.0), 6)
    order = np.lexsort((idx, fr[idx], -scores))[:limit]
    return tuple(
        {"group": names[int(idx[o])], "level": level, "score": float(scores[o]),
         "free_gpus": int(fr[idx[o]])}
        for o in order
    )


def _fill_leaves(cycle: Cycle, cand: np.ndarray, free: np.ndarray, usable: np.ndarray, job: Job
                 ) -> np.ndarray:
    """Nodes for a multi-node job inside a group above the leaves: fill as few leaf groups as
    possible; when one leaf can hold the rest, the fullest such leaf (best fit)."""
    inv = cycle.inv
    leaf = inv.leaf_index
    n_leaf = len(inv.leaf_names)
    g = job.gpus_per_node
    remaining = job.num_nodes
    cand = cand.copy()
    picked: list[np.ndarray] = []
    fr, tot = _group_sums(leaf, usable, cycle.total, free, n_leaf)
    while remaining > 0:
        counts = np.bincount(leaf[cand & (leaf >= 0)], minlength=n_leaf)
        if counts.sum() == 0:
            return np.empty(0, dtype=np.int64)
        holds = counts >= remaining
        if holds.any():
            best = best_group(holds, fr, tot)
            take = pick_best_fit(cand & (leaf == best), free, g, remaining)
            picked.append(take)
            break
        big = int(np.argmax(counts))
        take = pick_best_fit(cand & (leaf == big), free, g, int(counts[big]))
        picked.append(take)
        cand[take] = False
        remaining -= int(counts[big])
    return np.concatenate(picked)


def binpack(cycle: Cycle, job: Job, avail: np.ndarray) -> Choice | None:
    """E-Binpack placement (shared/DESIGN.md, "Engine semantics", step 3)."""
    g, nn = job.gpus_per_node, job.num_nodes
    elig = avail >= g
    if int(elig.sum()) < nn:
        return None
    usable = avail >= 0
    free = np.where(usable, avail, 0)
    inv = cycle.inv
    n_alt = cycle.alternatives
    for lv, (names, gidx) in enumerate(inv.group_levels):
        ge = gidx[elig]
        ge = ge[ge >= 0]
        if ge.size < nn:
            break  # not enough grouped nodes at any level
        counts = np.bincount(ge, minlength=len(names))
        fits = counts >= nn
        if not fits.any():
            continue
        fr, tot = _group_sums(gidx, usable, cycle.total, free, len(names))
        best = best_group(fits, fr, tot)
        cand = elig & (gidx == best)
        if nn == 1 or lv == 0:
            idx = pick_best_fit(cand, free, g, nn)
        else:
            idx = _fill_leaves(cycle, cand, free, usable, job)
        if idx.size < nn:
            continue
        score = group_fill_score(fr[best], tot[best])
        how = "whole free nodes" if nn > 1 and bool(np.all(free[idx] == cycle.total[idx])) \
            else "nodes best-fit by free GPUs"
        why = (f"{level_name(lv)} {names[best]}: fullest of {int(fits.sum())} "
               f"{level_name(lv)}s that hold {nn}x{g} GPUs (fill {score:.3f}, "
               f"{int(fr[best])} GPUs free); {how}")
        alts = _alternatives(names, fits, fr, tot, best, lv, n_alt)
        return Choice(idx, _gpus(idx, job), names[best], why, alts)
    # No single group holds it (or no topology): best fit over the whole pool.
    idx = pick_best_fit(elig, free, g, nn)
    if idx.size < nn:
        return None
    span = "no topology" if not inv.group_levels else "no single group holds it"
    return Choice(idx, _gpus(idx, job), None,
                  f"{span}: nodes best-fit by free GPUs over the whole pool")


# ------------------------------------------------------------------------------- E-Spread


def spread(cycle: Cycle, job: Job, avail: np.ndarray) -> Choice | None:
    """E-Spread: a replica goes to a node with the fewest replicas of its service (below
    ``placement.spread_per_node`` counts as none), never above ``job.max_per_node``; among
    those, best fit by free GPUs so that the zone as a whole stays packed."""
    g, nn = job.gpus_per_node, job.num_nodes
    elig = avail >= g
    if job.service is not None:
        counts = cycle.service_count_array(job.service)
        if job.max_per_node is not None and job.max_per_node > 0:
            elig &= counts < job.max_per_node
    else:
        counts = np.zeros(len(avail), dtype=np.int64)
    idx = np.flatnonzero(elig)
    if idx.size < nn:
        return None
    soft = cycle.spread_per_node
    crowd = np.where(counts[idx] < soft, 0, counts[idx] - soft + 1)
    left = avail[idx] - g
    order = np.lexsort((idx, left, crowd))[:nn]
    pick = idx[order]
    reps = int(counts[pick].max()) if pick.size else 0
    why = (f"E-Spread in the inference zone: node with {reps} replica(s) of service "
           f"{job.service!r} already" if job.service else "E-Spread in the inference zone")
    cap = f", cap {job.max_per_node} per node" if job.max_per_node else ""
    return Choice(pick, _gpus(pick, job), None,
                  why + cap + "; best fit by free GPUs to keep the zone packed")


# ------------------------------------------------------------------------------- Slurm


def slurm_cons_tres(cycle: Cycle, job: Job, avail: np.ndarray) -> Choice | None:
    """Stock Slurm 22.05 node choice, as modelled (table in :mod:`.policies`).

    Nodes need enough free GPUs (sufficiency only). With a switch tree: the lowest-level switch
    that holds the job, the one with the fewest usable nodes among those (best fit); without one,
    the whole pool. Inside: lowest Weight first, then the fewest free CPUs (best fit), then node
    order.
    """
    g, nn = job.gpus_per_node, job.num_nodes
    elig = avail >= g
    if int(elig.sum()) < nn:
        return None
    inv = cycle.inv
    region = elig
    group = None
    why = "no topology: whole partition"
    levels = inv.group_levels
    if levels:
        found = False
        for lv, (names, gidx) in enumerate(levels):
            ge = gidx[elig]
            ge = ge[ge >= 0]
            if ge.size < nn:
                break
            counts = np.bincount(ge, minlength=len(names))
            fits = np.flatnonzero(counts >= nn)
            if fits.size == 0:
                continue
            best = int(fits[np.lexsort((fits, counts[fits]))[0]])
            region = elig & (gidx == best)
            group = names[best]
            why = (f"lowest switch that fits: {names[best]} ({level_name(lv)}, "
                   f"{int(counts[best])} usable nodes, fewest of {fits.size})")
            found = True
            break
        if not found:
            why = "no single switch holds it: whole partition"
    idx = np.flatnonzero(region)
    cpus = np.where(cycle.has_cpus, cycle.cpus_free, 0)[idx]
    order = np.lexsort((idx, cpus, cycle.weight[idx]))[:nn]
    pick = idx[order]
    return Choice(pick, _gpus(pick, job), group,
                  why + "; nodes by lowest Weight, then fewest free CPUs (GPUs only checked "
                  "for sufficiency)")
