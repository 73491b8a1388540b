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
from .scoring import best_group, pick_best_fit, rank_groups

_BIG = np.iinfo(np.int64).max
LEVEL_NAMES = ("leaf group", "spine group", "core group")


def level_name(level: int) -> str:
    return LEVEL_NAMES[level] if level < len(LEVEL_NAMES) else f"level-{level} group"


def _gpus(idx: np.ndarray, job: Job) -> np.ndarray:
    return np.array([job.gpus_per_node] * len(idx), dtype=np.int64)


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


def _alternatives(names, ranked: np.ndarray, scores: np.ndarray, fr: np.ndarray, level: int,
                  limit: int) -> tuple:
    """The runner-up groups (after the chosen one), with their scores."""
    return tuple(
        {"group": names[int(gi)], "level": level, "score": round(float(sc), 4),
         "free_gpus": int(fr[gi])}
        for gi, sc in zip(ranked[1:limit + 1], scores[1:limit + 1])
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
    elig_idx = np.flatnonzero(elig)
    if elig_idx.size < nn:
        return None
    inv = cycle.inv
    n_alt = cycle.alternatives
    for lv, (names, gidx) in enumerate(inv.group_levels):
        ge = gidx[elig_idx]
        counts = np.bincount(ge[ge >= 0], minlength=len(names))
        fits = counts >= nn
        if not fits.any():
            continue
        fr, tot = cycle.group_sums(lv, avail)
        ranked, scores = rank_groups(fits, fr, tot, top=n_alt + 1)
        best = int(ranked[0])
        in_best = elig_idx[ge == best]
        if nn == 1:
            left = avail[in_best]
            idx = in_best[[int(np.argmin(left))]]  # first minimum = lowest index
        elif lv == 0:
            order = np.lexsort((in_best, avail[in_best]))[:nn]
            idx = in_best[order]
        else:
            usable = avail >= 0
            cand = np.zeros(len(avail), dtype=bool)
            cand[in_best] = True
            idx = _fill_leaves(cycle, cand, np.where(usable, avail, 0), usable, job)
        if idx.size < nn:
            continue
        how = ("whole free nodes" if nn > 1 and bool(np.all(avail[idx] == cycle.total[idx]))
               else "nodes best-fit by free GPUs")
        lvn = level_name(lv)
        why = (f"{lvn} {names[best]}: fullest of {int(fits.sum())} {lvn}s that hold "
               f"{nn}x{g} GPUs (fill {float(scores[0]):.3f}, {int(fr[best])} GPUs free); {how}")
        alts = _alternatives(names, ranked, scores, fr, lv, n_alt) if n_alt else ()
        return Choice(idx, _gpus(idx, job), names[best], why, alts)
    # No single group holds it (or no topology): best fit over the whole pool.
    free = np.where(avail >= 0, avail, 0)
    idx = pick_best_fit(elig, free, g, nn)
    if idx.size < nn:
        return None
    span = "no topology" if not inv.group_levels else "no single group holds it"
    return Choice(idx, _gpus(idx, job), None,
                  f"{span}: nodes best-fit by free GPUs over the whole pool")


def _binpack_fast(cycle: Cycle, job: Job, agg) -> Choice | None:
    """:func:`binpack` for a single-node job on plain free GPUs, from the leaf aggregates
    (same choice as the general path, in a handful of array operations)."""
    g = job.gpus_per_node
    if job.num_nodes != 1:
        return NotImplemented
    if g > agg.gmax:
        return None
    fits = agg.cnt_ge[:, g] > 0
    masked = np.where(fits, agg.score, -1.0)
    top = float(masked.max())
    if top < 0:
        return None
    cand = np.flatnonzero(masked == top)
    best = int(cand[0]) if cand.size == 1 else int(cand[int(np.argmin(agg.fr[cand]))])
    nodes = agg.nodes_of[best]
    f = agg.source[nodes]
    pick = nodes[[int(np.argmin(np.where(f >= g, f, _BIG)))]]
    if not cycle.inv.group_levels:
        why = "no topology: node best-fit by free GPUs over the whole pool"
        return Choice(pick, _gpus(pick, job), None, why)
    return Choice(pick, _gpus(pick, job), agg.names[best], _leaf_why(agg, best, fits, g, top),
                  _fast_alternatives(cycle, agg, masked, best))


def _leaf_why(agg, best: int, fits: np.ndarray, g: int, top: float) -> str:
    return (f"leaf group {agg.names[best]}: fullest of {int(np.count_nonzero(fits))} leaf "
            f"groups that hold 1x{g} GPUs (fill {top:.3f}, {int(agg.fr[best])} GPUs free); "
            f"nodes best-fit by free GPUs")


def _fast_alternatives(cycle: Cycle, agg, masked: np.ndarray, best: int) -> tuple:
    n_alt = cycle.alternatives
    size = masked.size
    if n_alt <= 0 or size <= 1:
        return ()
    k = min(n_alt + 1, size)
    part = np.argpartition(masked, size - k)[size - k:] if size > k else np.arange(size)
    rows = sorted((-v, f, i) for v, f, i in zip(masked[part].tolist(), agg.fr[part].tolist(),
                                                part.tolist()) if v >= 0 and i != best)
    names = agg.names
    return tuple({"group": names[i], "level": 0, "score": round(-v, 4), "free_gpus": int(f)}
                 for v, f, i in rows[:n_alt])


binpack.fast = _binpack_fast  # type: ignore[attr-defined]


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

    Nodes need enough free GPUs (sufficiency only). Node Weight first: the lightest weight
    tiers that together hold the job. With a switch tree: the lowest-level switch that holds
    the job, the one with the fewest usable nodes (best fit); inside a switch above the leaves,
    a leaf that holds the rest (fewest nodes) else the leaf with the most nodes; nodes in node
    order. Without a tree: fewest free CPUs first (best fit), then node order.
    """
    g, nn = job.gpus_per_node, job.num_nodes
    idx_e = np.flatnonzero(avail >= g)
    if idx_e.size < nn:
        return None
    w = cycle.weight[idx_e]
    wnote = ""
    if w.size and w.min() != w.max():
        for tier in np.unique(w):
            if np.count_nonzero(w <= tier) >= nn:
                idx_e = idx_e[w <= tier]
                wnote = f"nodes of Weight <= {int(tier)}; "
                break
    inv = cycle.inv
    levels = inv.group_levels
    if not levels:
        cpus = np.where(cycle.has_cpus[idx_e], cycle.cpus_free[idx_e], 0)
        pick = idx_e[np.lexsort((idx_e, cpus))[:nn]]
        return Choice(pick, _gpus(pick, job), None,
                      wnote + "no topology: fewest free CPUs first (best fit), GPUs only "
                      "checked for sufficiency")
    for lv, (names, gidx) in enumerate(levels):
        ge = gidx[idx_e]
        counts = np.bincount(ge[ge >= 0], minlength=len(names))
        fits = np.flatnonzero(counts >= nn)
        if fits.size == 0:
            continue
        best = int(fits[np.argmin(counts[fits])])  # first minimum = lowest index
        inside = idx_e[ge == best]
        if lv == 0 or nn == 1:
            pick = inside[:nn]
        else:
            pick = _slurm_leaves(inv.leaf_index[inside], inside, nn)
        why = (f"{wnote}lowest switch that fits: {names[best]} ({level_name(lv)}, "
               f"{int(counts[best])} usable nodes, fewest of {fits.size}); nodes in node order "
               f"(GPUs only checked for sufficiency)")
        return Choice(pick, _gpus(pick, job), names[best], why)
    # topology.conf(5): "Jobs can only span nodes connected by the same switch fabric".
    return None


def _slurm_leaves(leaf_of: np.ndarray, nodes: np.ndarray, nn: int) -> np.ndarray:
    """Leaf by leaf: one that holds the rest (fewest usable nodes) else the biggest."""
    picked: list[np.ndarray] = []
    remaining = nn
    left = np.ones(len(nodes), dtype=bool)
    while remaining > 0:
        leaves, counts = np.unique(leaf_of[left], return_counts=True)
        if leaves.size == 0:
            break
        holds = counts >= remaining
        if holds.any():
            lf = leaves[holds][np.argmin(counts[holds])]
            picked.append(nodes[left & (leaf_of == lf)][:remaining])
            break
        lf = leaves[np.argmax(counts)]
        sel = left & (leaf_of == lf)
        picked.append(nodes[sel])
        remaining -= int(sel.sum())
        left &= ~sel
    return np.sort(np.concatenate(picked)) if picked else nodes[:0]


def _slurm_fast(cycle: Cycle, job: Job, agg) -> Choice | None:
    """:func:`slurm_cons_tres` for a single-node job when every usable node has the same
    Weight: the leaf with the fewest usable nodes that fits, then node order (with topology)
    or fewest free CPUs (without)."""
    g = job.gpus_per_node
    if job.num_nodes != 1 or not agg.equal_weight:
        return NotImplemented
    if g > agg.gmax:
        return None
    counts = agg.cnt_ge[:, g]
    masked = np.where(counts > 0, counts, _BIG)
    best = int(np.argmin(masked))
    if masked[best] == _BIG:
        return None
    nodes = agg.nodes_of[best]
    ok = nodes[agg.source[nodes] >= g]
    if cycle.inv.group_levels:
        pick = ok[:1]
        why = (f"lowest switch that fits: {agg.names[best]} (leaf group, {int(counts[best])} "
               f"usable nodes, fewest of {int(np.count_nonzero(counts))}); first node in node "
               f"order (GPUs only checked for sufficiency)")
        return Choice(pick, _gpus(pick, job), agg.names[best], why)
    cpus = np.where(cycle.has_cpus[ok], cycle.cpus_free[ok], 0)
    pick = ok[[int(np.argmin(cpus))]]
    return Choice(pick, _gpus(pick, job), None,
                  "no topology: fewest free CPUs (best fit), GPUs only checked for sufficiency")


slurm_cons_tres.fast = _slurm_fast  # type: ignore[attr-defined]
