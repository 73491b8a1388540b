"""Node selectors: given a job and the GPUs available per node, which nodes it gets.

Every selector has the signature ``(cycle, job, avail) -> Choice | None``; ``avail`` is free GPUs
per node with -1 where the job may not go. The same selector answers "run now" and "will it run
at T" (the cycle passes the availability of that moment).

- :func:`first_fit`: lowest node index first (``fifo``).
- :func:`binpack`: E-Binpack (``kant``): the smallest topology level that can hold the job,
  the fullest group there that still fits, nodes best-fit by free GPUs. A single-node job
  takes the fullest leaf first by default; with ``placement.single_node: node`` the fullest
  node (:func:`_fullest_node`).
- :func:`spread`: E-Spread (``kant``, inference jobs in the inference zone): replicas of one
  service on different nodes, the zone packed.
- :func:`slurm_cons_tres`: the ``slurm`` model's node choice (see :mod:`.policies`).
"""

from __future__ import annotations

import weakref

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


def _group_sums(
    gidx: np.ndarray, usable: np.ndarray, total: np.ndarray, free: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    m = usable & (gidx >= 0)
    g = gidx[m]
    tot = np.bincount(g, weights=total[m], minlength=n_groups)
    fr = np.bincount(g, weights=free[m], minlength=n_groups)
    return fr, tot


def _alternatives(
    names, ranked: np.ndarray, scores: np.ndarray, fr: np.ndarray, level: int, limit: int
) -> tuple:
    """The runner-up groups (after the chosen one), with their scores."""
    return tuple(
        {
            "group": names[int(gi)],
            "level": level,
            "score": round(float(sc), 4),
            "free_gpus": int(fr[gi]),
        }
        for gi, sc in zip(ranked[1 : limit + 1], scores[1 : limit + 1], strict=True)
    )


def _fill_leaves(
    cycle: Cycle, cand: np.ndarray, free: np.ndarray, usable: np.ndarray, job: Job
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
    if nn == 1 and cycle.single_node == "node":
        return _fullest_node(cycle, job, avail, elig_idx)
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
        how = (
            "whole free nodes"
            if nn > 1 and bool(np.all(avail[idx] == cycle.total[idx]))
            else "nodes best-fit by free GPUs"
        )
        lvn = level_name(lv)
        why = (
            f"{lvn} {names[best]}: fullest of {int(fits.sum())} {lvn}s that hold "
            f"{nn}x{g} GPUs (fill {float(scores[0]):.3f}, {int(fr[best])} GPUs free); {how}"
        )
        alts = _alternatives(names, ranked, scores, fr, lv, n_alt) if n_alt else ()
        return Choice(idx, _gpus(idx, job), names[best], why, alts)
    # No single group holds it (or no topology): best fit over the whole pool.
    free = np.where(avail >= 0, avail, 0)
    idx = pick_best_fit(elig, free, g, nn)
    if idx.size < nn:
        return None
    span = "no topology" if not inv.group_levels else "no single group holds it"
    return Choice(
        idx, _gpus(idx, job), None, f"{span}: nodes best-fit by free GPUs over the whole pool"
    )


def _fullest_node(cycle: Cycle, job: Job, avail: np.ndarray, elig_idx: np.ndarray) -> Choice:
    """E-Binpack for a single-node job: the smallest level that holds it is the node itself, so
    the fullest node that still fits -- fewest free GPUs of ``elig_idx`` (the nodes with
    room) -- and among equals the one in the fullest leaf group (:func:`.scoring.rank_groups`:
    fill, then fewer free GPUs, then lower index; nodes under no leaf last), then the lower
    node index.

    ``placement.single_node: node``. Why it is not the default: GFR counts partly used nodes,
    and the leaf-first rule can send a 4-GPU job to an idle node of the fullest leaf while a
    node of another leaf has exactly 4 free, which leaves both partly used. Node first lowers
    GFR where the cluster has room (Philly Sep-Oct on 96 x 8, seeds 0-2: 0.132 -> 0.105) but
    raises it where the queue is deep (64 x 8: 0.014 -> 0.017; 48 x 8: 0.012 -> 0.019);
    README, "Quality of the deployed product"."""
    inv = cycle.inv
    g = job.gpus_per_node
    left = avail[elig_idx]
    if not inv.group_levels:
        idx = elig_idx[[int(np.argmin(left))]]  # first minimum = lowest index
        return Choice(
            idx,
            _gpus(idx, job),
            None,
            f"no topology: node best-fit by free GPUs ({int(left.min())} free)",
        )
    names, gidx = inv.group_levels[0]
    fr, tot = cycle.group_sums(0, avail)
    ge = gidx[elig_idx]
    fits = np.bincount(ge[ge >= 0], minlength=len(names)) > 0
    ranked, scores = rank_groups(fits, fr, tot)
    pos = np.full(len(names) + 1, len(names), dtype=np.int64)  # pos[-1]: under no leaf, last
    pos[ranked] = np.arange(ranked.size)
    order = np.lexsort((elig_idx, pos[ge], left))
    idx = elig_idx[order[:1]]
    best = int(ge[order[0]])
    n_free = int(left[order[0]])
    if best < 0:
        return Choice(
            idx,
            _gpus(idx, job),
            None,
            f"node best-fit by free GPUs ({n_free} free), under no leaf group",
        )
    # Runner-up leaves: those holding a node as full as the chosen one first, as the node key
    # ranks them; each once.
    seen = dict.fromkeys(int(x) for x in ge[order] if x >= 0)
    alt = np.array([x for x in seen if x != best][: cycle.alternatives], dtype=np.int64)
    alt_scores = np.where(tot[alt] > 0, 1.0 - fr[alt] / np.maximum(tot[alt], 1), 0.0)
    sc = float(scores[int(pos[best])])
    return Choice(
        idx,
        _gpus(idx, job),
        names[best],
        _node_why(g, n_free, names[best], int(np.count_nonzero(fits)), sc, int(fr[best])),
        _alternatives(names, np.r_[best, alt], np.r_[sc, alt_scores], fr, 0, cycle.alternatives)
        if cycle.alternatives
        else (),
    )


def _node_why(g: int, n_free: int, leaf: str, n_fits: int, fill: float, leaf_free: int) -> str:
    return (
        f"node best-fit: fewest free GPUs that hold 1x{g} ({n_free} free), in leaf group "
        f"{leaf}, the fullest of the {n_fits} leaf groups with room that have such a node "
        f"(fill {fill:.3f}, {leaf_free} GPUs free)"
    )


def _binpack_fast(cycle: Cycle, job: Job, agg) -> Choice | None:
    """:func:`binpack` for a single-node job on plain free GPUs, from the leaf aggregates
    (same choice as the general path, in a handful of array operations)."""
    g = job.gpus_per_node
    if job.num_nodes != 1:
        return NotImplemented
    if g > agg.gmax:
        return None
    if cycle.single_node == "node":
        return _fullest_node_fast(cycle, job, agg)
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
    return Choice(
        pick,
        _gpus(pick, job),
        agg.names[best],
        _leaf_why(agg, best, fits, g, top),
        _fast_alternatives(cycle, agg, masked, best),
    )


def _leaf_why(agg, best: int, fits: np.ndarray, g: int, top: float) -> str:
    return (
        f"leaf group {agg.names[best]}: fullest of {int(np.count_nonzero(fits))} leaf "
        f"groups that hold 1x{g} GPUs (fill {top:.3f}, {int(agg.fr[best])} GPUs free); "
        f"nodes best-fit by free GPUs"
    )


def _fast_alternatives(cycle: Cycle, agg, masked: np.ndarray, best: int) -> tuple:
    n_alt = cycle.alternatives
    size = masked.size
    if n_alt <= 0 or size <= 1:
        return ()
    k = min(n_alt + 1, size)
    part = np.argpartition(masked, size - k)[size - k :] if size > k else np.arange(size)
    rows = sorted(
        (-v, f, i)
        for v, f, i in zip(masked[part].tolist(), agg.fr[part].tolist(), part.tolist(), strict=True)
        if v >= 0 and i != best
    )
    names = agg.names
    return tuple(
        {"group": names[i], "level": 0, "score": round(-v, 4), "free_gpus": int(f)}
        for v, f, i in rows[:n_alt]
    )


def _fullest_node_fast(cycle: Cycle, job: Job, agg) -> Choice | None:
    """:func:`_fullest_node` from the leaf aggregates: the same choice, reason and
    alternatives in O(leaf groups x GPUs per node) instead of O(nodes)."""
    g = job.gpus_per_node
    # exact[leaf, f]: nodes of the leaf with exactly f free GPUs (f = g .. gmax).
    ge = agg.cnt_ge[:, g:]
    exact = ge - np.concatenate([ge[:, 1:], np.zeros((ge.shape[0], 1), ge.dtype)], axis=1)
    has = exact > 0
    fits = has.any(axis=1)
    if not fits.any():
        return None
    leaf_min = np.where(fits, has.argmax(axis=1), _BIG)  # fewest free (minus g) per leaf
    rows = np.flatnonzero(fits)
    ranked = rows[np.lexsort((rows, agg.fr[rows], -agg.score[rows], leaf_min[rows]))]
    best = int(ranked[0])
    n_free = g + int(leaf_min[best])
    nodes = agg.nodes_of[best]
    pick = nodes[[int(np.argmax(agg.source[nodes] == n_free))]]  # lowest index with it
    if not cycle.inv.group_levels:
        return Choice(
            pick, _gpus(pick, job), None, f"no topology: node best-fit by free GPUs ({n_free} free)"
        )
    n_alt = cycle.alternatives
    sc = agg.score[ranked]
    return Choice(
        pick,
        _gpus(pick, job),
        agg.names[best],
        _node_why(g, n_free, agg.names[best], int(rows.size), float(sc[0]), int(agg.fr[best])),
        _alternatives(agg.names, ranked, sc, agg.fr, 0, n_alt) if n_alt else (),
    )


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
    why = (
        f"E-Spread in the inference zone: node with {reps} replica(s) of service "
        f"{job.service!r} already"
        if job.service
        else "E-Spread in the inference zone"
    )
    cap = f", cap {job.max_per_node} per node" if job.max_per_node else ""
    return Choice(
        pick, _gpus(pick, job), None, why + cap + "; best fit by free GPUs to keep the zone packed"
    )


# ------------------------------------------------------------------------------- Slurm


def slurm_cons_tres(cycle: Cycle, job: Job, avail: np.ndarray) -> Choice | None:
    """Stock Slurm's node choice, as modelled (table in :mod:`.policies`).

    Nodes need enough free GPUs (sufficiency only). With a switch tree, :func:`_tree_pick`
    (Slurm's ``_eval_nodes_topo``: node Weight groups, then leaf switches). Without a tree:
    the lightest Weight tiers that together hold the job, then fewest free CPUs first (best
    fit), then node order.
    """
    g, nn = job.gpus_per_node, job.num_nodes
    idx_e = np.flatnonzero(avail >= g)
    if idx_e.size < nn:
        return None
    inv = cycle.inv
    if inv.group_levels:
        return _tree_choice(inv, cycle.weight, idx_e, job)
    w = cycle.weight[idx_e]
    wnote = ""
    if w.size and w.min() != w.max():
        for tier in np.unique(w):
            if np.count_nonzero(w <= tier) >= nn:
                idx_e = idx_e[w <= tier]
                wnote = f"nodes of Weight <= {int(tier)}; "
                break
    cpus = np.where(cycle.has_cpus[idx_e], cycle.cpus_free[idx_e], 0)
    pick = idx_e[np.lexsort((idx_e, cpus))[:nn]]
    return Choice(
        pick,
        _gpus(pick, job),
        None,
        wnote + "no topology: fewest free CPUs first (best fit), GPUs only checked for sufficiency",
    )


LIGHTEST_NODE_WHY = (
    "Slurm 26.05's one-node path: the lightest node Weight where the job fits, then node order "
    "(no switch, leaf or best-fit ranking)"
)


def weight_places_one_node_jobs(release: str) -> bool:
    """Whether Slurm ``release`` (as ``SlurmPolicy.RELEASES`` names it) places a one-node job
    by node Weight alone (:func:`slurm_lightest_node`): from 26.05. The releases compare as
    text. The ``slurm`` model's selector and kant's Weight lever (``slurm.diff.best_fit_now``)
    both ask here."""
    return release >= "26.05"


def slurm_lightest_node(cycle: Cycle, job: Job, avail: np.ndarray) -> Choice | None:
    """Stock Slurm 26.05's node choice for a one-node job: the lightest node Weight where the
    job fits, then node order.

    26.05 added a path for jobs whose maximum node count is 1 (``_get_one_res`` in cons_tres'
    ``job_test.c``, commit 295100b5f6, taken with topology/tree, flat, block and ring). It
    sorts the nodes by scheduling weight (the node Weight; equal Weights keep node order) and
    takes the first where the job can run. Leaves, switch distance and best fit play no part.
    Slurm takes it for ``-N 1``, or ``-n 1`` without ``-N`` (kant's templates pass
    ``--nodes``); a job submitted with neither still takes the tree path. The model takes it
    for every one-node job (``SlurmPolicy.release``).
    """
    idx_e = np.flatnonzero(avail >= job.gpus_per_node)
    if idx_e.size == 0:
        return None
    pick = idx_e[[int(np.argmin(cycle.weight[idx_e]))]]  # first minimum: lowest node index
    return Choice(pick, _gpus(pick, job), None, LIGHTEST_NODE_WHY)


# Slurm's switches_dist between two unconnected switches (INFINITE): a leaf in another fabric.
_FAR = np.inf


def _tree_tables(inv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(levels x nodes group index, groups per level, leaves x levels ancestor group index),
    cached per inventory."""
    got = _TREES.get(inv)
    if got is None:
        gl = inv.group_levels
        levels = np.array([gi for _, gi in gl], dtype=np.int64).reshape(len(gl), len(inv))
        n_groups = np.array([len(names) for names, _ in gl], dtype=np.int64)
        anc = np.full((int(n_groups[0]), len(gl)), -1, dtype=np.int64)
        grouped = np.flatnonzero(levels[0] >= 0)
        anc[levels[0][grouped]] = levels[:, grouped].T
        got = _TREES[inv] = (levels, n_groups, anc)
    return got


_TREES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hops(anc: np.ndarray, level: int, leaf: int) -> np.ndarray:
    """Slurm's switches_dist from the switch at ``level`` above ``leaf`` to every leaf: links
    up to the lowest common switch and down again (every switch one level above its children);
    unconnected: :data:`_FAR`."""
    same = anc[:, level:] == anc[leaf, level:]
    joined = same.any(axis=1)
    top = np.argmax(same, axis=1) + level
    return np.where(joined, (top - level) + top, _FAR)


def _tree_pick(
    levels: np.ndarray,
    n_groups: np.ndarray,
    anc: np.ndarray,
    weight: np.ndarray,
    usable: np.ndarray,
    nn: int,
) -> tuple[np.ndarray, int, int]:
    """Nodes Slurm's topology/tree selection gives an ``nn``-node job: (nodes ascending, their
    node Weight cut-off, how many lighter nodes were taken whole); empty when none.

    The rule, read in slurm-22-05-8-1 ``src/plugins/select/cons_tres/job_test.c``
    ``_eval_nodes_topo`` (unchanged in substance in slurm-24-11-5-1 and slurm-26-05-3-1
    ``src/plugins/topology/tree/eval_nodes_tree.c`` ``_eval_nodes_topo``):

    1. Top switch: of the switches that hold ``nn`` usable nodes, the highest-level one whose
       lightest usable node is lightest (``top_switch_lowest_weight``; a later switch replaces
       on an equal Weight). In a connected tree that is the root.
    2. Weight groups, lightest first (``node_weight_list``): the usable nodes under the top
       switch are added group by group until they hold the job. **Every node of the lighter
       groups is taken as if required** (``req2_nodes_bitmap``: "All of the lower priority
       nodes should be included in the job's allocation"); only the last group is chosen from.
    3. Leaves holding those taken nodes are filled first, in switch order, nodes in node order
       ("Add additional resources for already required leaf switches").
    4. Then leaf by leaf (``_topo_choose_best_switch``): each candidate leaf's distance is the
       sum of hops to the switches already used (``_topo_add_dist``); a leaf replaces the best
       so far when it is closer and not a worse fit, or as close and a better fit
       (``_topo_compare_switches``: a leaf that holds the rest beats one that does not, the
       fewer nodes the better; when neither holds it, the parents are compared the same way,
       then the bigger). Its nodes are taken in node order; it is then spent.

    Consequence for the Weight lever: a lighter node is forced into every multi-node job that
    needs more nodes than the lighter groups hold, whatever leaf it is in, so two Weights on
    idle nodes split gangs that one Weight would keep in a leaf.
    Modelled as 22.05 does it: the parents' counts are not lowered as leaves are spent (24.11
    lowers them, ``_decrement_node_cnt``, and compares CPU counts too); switch order is leaf
    index order; with several fabrics, step 1 looks at the top level only.
    """
    n_lv = levels.shape[0]
    top = levels[n_lv - 1]
    usable = usable[top[usable] >= 0]
    tops = top[usable]
    counts = np.bincount(tops, minlength=int(n_groups[-1]))
    fits = np.flatnonzero(counts >= nn)
    if fits.size == 0:
        return usable[:0], 0, 0
    w = weight[usable]
    if counts.size > 1:
        lightest = np.full(counts.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(lightest, tops, w)
        best_top = fits[lightest[fits] == lightest[fits].min()][-1]
        inside = tops == best_top
        usable, w = usable[inside], w[inside]
    leaf = levels[0]
    if nn == 1:
        # Nothing is lighter than the lightest Weight, so nothing is forced and every leaf is
        # as close: the leaf with the fewest nodes of that Weight (first on ties), first node.
        cut = int(w.min())
        pool = usable[w == cut]
        per_leaf = np.bincount(leaf[pool], minlength=int(n_groups[0]))
        x = int(np.argmin(np.where(per_leaf > 0, per_leaf, np.iinfo(np.int64).max)))
        return pool[leaf[pool] == x][:1], cut, 0
    under = usable
    cut = int(np.partition(w, nn - 1)[nn - 1])
    forced = under[w < cut]
    pool = under[w <= cut]
    taken = np.zeros(leaf.size, dtype=bool)
    taken[forced] = True
    rem = nn - forced.size
    spent = np.zeros(int(n_groups[0]), dtype=bool)  # required leaves, then chosen ones
    spent[leaf[forced]] = True
    for x in np.flatnonzero(spent).tolist():  # step 3
        if rem <= 0:
            break
        more = pool[(leaf[pool] == x) & ~taken[pool]][:rem]
        taken[more] = True
        rem -= more.size
    cnt = [np.bincount(levels[lv][pool], minlength=int(n_groups[lv])) for lv in range(n_lv)]
    left = cnt[0].copy()
    left[spent] = 0
    dist = np.zeros(left.size)
    for lv in range(n_lv):  # every switch above a forced node is "required"
        for x in _leaves_below(anc, lv, levels[lv][forced]):
            dist += _hops(anc, lv, x)
    while rem > 0:
        cand = np.flatnonzero((left > 0) & (dist < _FAR))
        if cand.size == 0:
            break
        holds = cand[left[cand] >= rem]
        if holds.size and np.all(dist[cand] == dist[cand[0]]):
            # Every candidate as close: the tightest leaf that holds the rest, first on ties.
            x = int(holds[np.argmin(left[holds])])
        else:
            x = _choose_leaf(cand, left, cnt, anc, dist, rem)
        more = pool[(leaf[pool] == x) & ~taken[pool]][:rem]
        taken[more] = True
        rem -= more.size
        left[x] = 0
        dist += _hops(anc, 0, x)
    if rem > 0:
        return usable[:0], cut, forced.size
    return np.flatnonzero(taken), cut, forced.size


def _leaves_below(anc: np.ndarray, level: int, groups: np.ndarray) -> list[int]:
    """One leaf under each distinct switch of ``groups`` at ``level`` (its representative)."""
    return [int(np.flatnonzero(anc[:, level] == gi)[0]) for gi in np.unique(groups)]


def _choose_leaf(
    cand: np.ndarray, left: np.ndarray, cnt: list, anc: np.ndarray, dist: np.ndarray, rem: int
) -> int:
    """``_topo_choose_best_switch`` over the candidate leaves, in switch order."""
    best = int(cand[0])
    for x in cand[1:].tolist():
        tcs = _compare_leaves(x, best, left, cnt, anc, rem)
        if (dist[x] < dist[best] and tcs >= 0) or (dist[x] == dist[best] and tcs > 0):
            best = x
    return best


def _compare_leaves(i: int, j: int, left: np.ndarray, cnt: list, anc: np.ndarray, rem: int) -> int:
    """``_topo_compare_switches``: 1 when leaf ``i`` fits better, -1 when ``j`` does, else 0."""
    lv, a, b = 0, left[i], left[j]
    while True:
        fa, fb = a >= rem, b >= rem
        if fa and fb:
            return 1 if a < b else -1 if a > b else 0
        if fa != fb:
            return 1 if fa else -1
        if lv + 1 < anc.shape[1] and anc[i, lv + 1] != anc[j, lv + 1]:
            lv += 1
            a, b = cnt[lv][anc[i, lv]], cnt[lv][anc[j, lv]]
            continue
        return 1 if a > b else -1 if a < b else 0


def _tree_choice(inv, weight: np.ndarray, usable: np.ndarray, job: Job) -> Choice | None:
    levels, n_groups, anc = _tree_tables(inv)
    pick, cut, forced = _tree_pick(levels, n_groups, anc, weight, usable, job.num_nodes)
    if pick.size == 0:
        # topology.conf(5): "Jobs can only span nodes connected by the same switch fabric".
        return None
    lv = next(
        lv for lv in range(levels.shape[0]) if np.all(levels[lv][pick] == levels[lv][pick[0]])
    )
    names = inv.group_levels[lv][0]
    group = names[int(levels[lv][pick[0]])]
    wnote = (
        f"{forced} node(s) lighter than Weight {cut} taken whole, then "
        if forced
        else f"nodes of Weight {cut}: "
        if weight[usable].min() != weight[usable].max()
        else ""
    )
    why = (
        f"{wnote}leaf switches by distance and tightest fit, within {group} "
        f"({level_name(lv)}); nodes in node order (GPUs only checked for sufficiency)"
    )
    return Choice(pick, _gpus(pick, job), group, why)


def _slurm_fast(cycle: Cycle, job: Job, agg) -> Choice | None:
    """:func:`slurm_cons_tres` for a single-node job when every usable node has the same
    Weight and the tree has one top switch: the leaf with the fewest usable nodes that fits,
    then node order (with topology) or fewest free CPUs (without)."""
    g = job.gpus_per_node
    levels = cycle.inv.group_levels
    if job.num_nodes != 1 or not agg.equal_weight or (levels and len(levels[-1][0]) > 1):
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
        why = (
            f"lowest switch that fits: {agg.names[best]} (leaf group, {int(counts[best])} "
            f"usable nodes, fewest of {int(np.count_nonzero(counts))}); first node in node "
            f"order (GPUs only checked for sufficiency)"
        )
        return Choice(pick, _gpus(pick, job), agg.names[best], why)
    cpus = np.where(cycle.has_cpus[ok], cycle.cpus_free[ok], 0)
    pick = ok[[int(np.argmin(cpus))]]
    return Choice(
        pick,
        _gpus(pick, job),
        None,
        "no topology: fewest free CPUs (best fit), GPUs only checked for sufficiency",
    )


slurm_cons_tres.fast = _slurm_fast  # type: ignore[attr-defined]
