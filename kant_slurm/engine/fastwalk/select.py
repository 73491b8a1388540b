"""The node selectors of the compiled walk: E-Binpack (``binpack``) and the Slurm model
(``slurm_cons_tres``) of :mod:`kant_slurm.engine.select`, over plain arrays.

Each fills ``out[:count]`` with node indices and returns (count, group, level); a count of 0
means no choice. :func:`select_nodes` dispatches on the job shape's selector kind.
"""

from __future__ import annotations

import numpy as np

from .jit import jit


# The selector kinds: select.binpack (one-node jobs: fullest leaf first, or with
# placement.single_node "node" the fullest node), select.slurm_cons_tres and, for one-node jobs
# under Slurm 26.05, select.slurm_lightest_node.
KIND_BINPACK, KIND_SLURM, KIND_BINPACK_NODE, KIND_SLURM_LIGHTEST = 1, 2, 3, 4

_INF = np.inf


@jit
def _better_group(gi, bi, fr, tot):
    """Is group gi ranked before group bi: fuller (1 - free/total), then fewer free, then
    lower index (scoring.rank_groups)."""
    sg = 1.0 - fr[gi] / tot[gi] if tot[gi] > 0 else 0.0
    sb = 1.0 - fr[bi] / tot[bi] if tot[bi] > 0 else 0.0
    if sg != sb:
        return sg > sb
    if fr[gi] != fr[bi]:
        return fr[gi] < fr[bi]
    return gi < bi


@jit
def _best_fit_into(cand, free, g, count, out, at):
    """``count`` of the node indices ``cand`` by least left over (free - g), then index, into
    ``out[at:]``; returns how many were written (0 when fewer candidates)."""
    m = cand.size
    if m < count:
        return 0
    left = np.empty(m, dtype=np.int64)
    for k in range(m):
        left[k] = free[cand[k]] - g
    _smallest_into(left, cand, count, out, at)
    return count


@jit
def _smallest_into(key, items, count, out, at):
    """The ``count`` items of smallest key, ties in item order, in that order into
    ``out[at:]``: a selection, O(count x items) -- counts are a job's nodes, and the sorts of
    numba's numpy would cost most of the compile time."""
    m = items.size
    used = np.zeros(m, dtype=np.bool_)
    for k in range(count):
        best = -1
        for j in range(m):
            if not used[j] and (best < 0 or key[j] < key[best]):
                best = j
        used[best] = True
        out[at + k] = items[best]


@jit
def _nodes_ge(avail, g):
    """Node indices with ``avail >= g``, ascending."""
    nodes = np.empty(avail.size, dtype=np.int64)
    k = 0
    for i in range(avail.size):
        if avail[i] >= g:
            nodes[k] = i
            k += 1
    return nodes[:k]


@jit
def _in_group(items, gidx, group):
    """The items (node indices, in order) whose group is ``group``."""
    nodes = np.empty(items.size, dtype=np.int64)
    k = 0
    for i in items:
        if gidx[i] == group:
            nodes[k] = i
            k += 1
    return nodes[:k]


@jit
def _group_counts(items, gidx, n_groups):
    """How many of the items (node indices) each group holds (nodes under none left out)."""
    counts = np.zeros(n_groups, dtype=np.int64)
    for i in items:
        if gidx[i] >= 0:
            counts[gidx[i]] += 1
    return counts


@jit
def _free_sums(avail, total, gidx, n_groups):
    """Per group, over the usable nodes (avail >= 0): (free GPUs, total GPUs)."""
    fr = np.zeros(n_groups)
    tot = np.zeros(n_groups)
    for i in range(avail.size):
        if avail[i] >= 0 and gidx[i] >= 0:
            fr[gidx[i]] += avail[i]
            tot[gidx[i]] += total[i]
    return fr, tot


@jit
def _fill_leaves(cand_nodes, avail, total, leaf, n_leaf, g, nn, out):
    """select._fill_leaves: as few leaf groups as possible; when one leaf can hold the rest,
    the fullest such leaf, nodes best-fit."""
    fr, tot = _free_sums(avail, total, leaf, n_leaf)
    free = np.maximum(avail, 0)
    cand = cand_nodes.copy()
    remaining = nn
    got = 0
    while remaining > 0:
        counts = _group_counts(cand, leaf, n_leaf)
        if counts.sum() == 0:
            return 0
        best = -1
        for lf in range(n_leaf):
            if counts[lf] >= remaining and (best < 0 or _better_group(lf, best, fr, tot)):
                best = lf
        if best >= 0:  # one leaf holds the rest: the fullest such
            got += _best_fit_into(_in_group(cand, leaf, best), free, g, remaining, out, got)
            break
        big = int(np.argmax(counts))  # else all of the leaf with the most candidates
        nodes = _in_group(cand, leaf, big)
        _best_fit_into(nodes, free, g, nodes.size, out, got)
        got += nodes.size
        remaining -= nodes.size
        keep = np.ones(cand.size, dtype=np.bool_)
        for k in range(cand.size):
            keep[k] = leaf[cand[k]] != big
        cand = cand[keep]
    return got


@jit
def _fullest_node(avail, elig, total, levels, n_groups, out):
    """select._fullest_node: of the nodes with room (``elig``, ascending), the fewest free
    GPUs, then the fullest leaf group (_better_group; nodes under no leaf after those under
    one), then the lower index. Returns (1, leaf group or -1, level 0 or -1)."""
    if levels.shape[0] == 0:
        best = elig[np.argmin(avail[elig])]  # first minimum = lowest index
        out[0] = best
        return 1, -1, -1
    leaf = levels[0]
    fr, tot = _free_sums(avail, total, leaf, n_groups[0])
    best = elig[0]
    for k in range(1, elig.size):
        i = elig[k]
        if avail[i] != avail[best]:
            if avail[i] < avail[best]:
                best = i
            continue
        li, lb = leaf[i], leaf[best]
        if li == lb or li < 0:
            continue  # same leaf or no leaf: the lower index (best) stays
        if lb < 0 or _better_group(li, lb, fr, tot):
            best = i
    out[0] = best
    if leaf[best] < 0:
        return 1, -1, -1
    return 1, leaf[best], 0


@jit
def _binpack(avail, nn, g, total, levels, n_groups, node_first, out):
    """select.binpack (E-Binpack) on an availability vector; ``node_first``: one-node jobs by
    select._fullest_node."""
    elig = _nodes_ge(avail, g)
    if elig.size < nn:
        return 0, -1, -1
    if nn == 1 and node_first:
        return _fullest_node(avail, elig, total, levels, n_groups, out)
    for lv in range(levels.shape[0]):
        gidx = levels[lv]
        ng = n_groups[lv]
        counts = _group_counts(elig, gidx, ng)
        fr, tot = _free_sums(avail, total, gidx, ng)
        best = -1
        for gi in range(ng):
            if counts[gi] >= nn and (best < 0 or _better_group(gi, best, fr, tot)):
                best = gi
        if best < 0:
            continue
        in_best = _in_group(elig, gidx, best)
        if nn == 1:
            out[0] = in_best[np.argmin(avail[in_best])]  # first minimum = lowest index
            c = 1
        elif lv == 0:
            c = _best_fit_into(in_best, avail, 0, nn, out, 0)
        else:
            c = _fill_leaves(in_best, avail, total, levels[0], n_groups[0], g, nn, out)
        if c < nn:
            continue
        return nn, best, lv
    # No single group holds it (or no topology): best fit over the whole pool.
    if _best_fit_into(elig, np.maximum(avail, 0), g, nn, out, 0) < nn:
        return 0, -1, -1
    return nn, -1, -1


@jit
def _lightest(avail, g, weight, out):
    """select.slurm_lightest_node (Slurm 26.05, one node): the lightest node Weight where the
    job fits, then the lowest node index."""
    best = -1
    for i in range(avail.size):
        if avail[i] >= g and (best < 0 or weight[i] < weight[best]):
            best = i
    if best < 0:
        return 0, -1, -1
    out[0] = best
    return 1, -1, -1


@jit
def _slurm(avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out):
    """select.slurm_cons_tres (the stock Slurm model) on an availability vector."""
    elig = _nodes_ge(avail, g)
    if elig.size < nn:
        return 0, -1, -1
    if levels.shape[0] > 0:
        return _slurm_tree(elig, nn, weight, levels, n_groups, out)
    ws = weight[elig]
    if ws.min() != ws.max():
        # The lightest Weight tiers that together hold the job: up to the nn-th smallest.
        picked = np.empty(nn, dtype=np.int64)
        _smallest_into(ws, ws, nn, picked, 0)
        elig = elig[ws <= picked[nn - 1]]
    cp = np.where(has_cpus[elig], cpus_free[elig], 0)
    _smallest_into(cp, elig, nn, out, 0)
    return nn, -1, -1


@jit
def _hops_into(anc, level, leaf, dist):
    """select._hops added to ``dist``: links from the switch at ``level`` above ``leaf`` to
    each leaf (infinite when unconnected)."""
    n_lv = anc.shape[1]
    for y in range(anc.shape[0]):
        d = _INF
        for m in range(level, n_lv):
            if anc[y, m] == anc[leaf, m]:
                d = float((m - level) + m)
                break
        dist[y] += d


@jit
def _compare_leaves(i, j, left, cnt, anc, rem):
    """select._compare_leaves (Slurm's _topo_compare_switches)."""
    lv = 0
    a = left[i]
    b = left[j]
    while True:
        fa = a >= rem
        fb = b >= rem
        if fa and fb:
            if a < b:
                return 1
            if a > b:
                return -1
            return 0
        if fa != fb:
            return 1 if fa else -1
        if lv + 1 < anc.shape[1] and anc[i, lv + 1] != anc[j, lv + 1]:
            lv += 1
            a = cnt[lv, anc[i, lv]]
            b = cnt[lv, anc[j, lv]]
            continue
        if a > b:
            return 1
        if a < b:
            return -1
        return 0


@jit
def _slurm_tree(usable, nn, weight, levels, n_groups, out):
    """select._tree_pick (Slurm's _eval_nodes_topo: lighter Weight groups taken whole, then
    leaves by distance and fit); returns (count, group, level) of the lowest group holding
    every picked node."""
    n_lv = levels.shape[0]
    n = levels.shape[1]
    top = levels[n_lv - 1]
    n_top = n_groups[n_lv - 1]
    counts = np.zeros(n_top, dtype=np.int64)
    lightest = np.zeros(n_top, dtype=np.int64)
    for i in usable:
        t = top[i]
        if t >= 0:
            if counts[t] == 0 or weight[i] < lightest[t]:
                lightest[t] = weight[i]
            counts[t] += 1
    best_top = -1
    for t in range(n_top):
        if counts[t] >= nn and (best_top < 0 or lightest[t] <= lightest[best_top]):
            best_top = t
    if best_top < 0:
        return 0, -1, -1
    under = _in_group(usable, top, best_top)
    wu = weight[under]
    cut_of = np.empty(nn, dtype=np.int64)
    _smallest_into(wu, wu, nn, cut_of, 0)
    cut = cut_of[nn - 1]
    leaf = levels[0]
    n_leaf = n_groups[0]
    anc = np.full((n_leaf, n_lv), -1, dtype=np.int64)
    for i in range(n):
        if leaf[i] >= 0:
            for lv in range(n_lv):
                anc[leaf[i], lv] = levels[lv, i]
    in_pool = np.zeros(n, dtype=np.bool_)
    taken = np.zeros(n, dtype=np.bool_)
    spent = np.zeros(n_leaf, dtype=np.bool_)
    width = n_groups.max()
    cnt = np.zeros((n_lv, width), dtype=np.int64)
    required = np.zeros((n_lv, width), dtype=np.bool_)
    rem = nn
    for k in range(under.size):
        i = under[k]
        if wu[k] <= cut:
            in_pool[i] = True
            for lv in range(n_lv):
                cnt[lv, levels[lv, i]] += 1
        if wu[k] < cut:
            taken[i] = True
            rem -= 1
            spent[leaf[i]] = True
            for lv in range(n_lv):
                required[lv, levels[lv, i]] = True
    for x in range(n_leaf):
        if spent[x]:
            for i in range(n):
                if rem > 0 and in_pool[i] and not taken[i] and leaf[i] == x:
                    taken[i] = True
                    rem -= 1
    left = cnt[0, :n_leaf].copy()
    dist = np.zeros(n_leaf)
    for x in range(n_leaf):
        if spent[x]:
            left[x] = 0
    for lv in range(n_lv):
        for gi in range(n_groups[lv]):
            if required[lv, gi]:
                for x in range(n_leaf):
                    if anc[x, lv] == gi:
                        _hops_into(anc, lv, x, dist)
                        break
    while rem > 0:
        best = -1
        for x in range(n_leaf):
            if left[x] == 0 or dist[x] == _INF:
                continue
            if best < 0:
                best = x
                continue
            tcs = _compare_leaves(x, best, left, cnt, anc, rem)
            if (dist[x] < dist[best] and tcs >= 0) or (dist[x] == dist[best] and tcs > 0):
                best = x
        if best < 0:
            return 0, -1, -1
        for i in range(n):
            if rem > 0 and in_pool[i] and not taken[i] and leaf[i] == best:
                taken[i] = True
                rem -= 1
        left[best] = 0
        _hops_into(anc, 0, best, dist)
    got = 0
    for i in range(n):
        if taken[i]:
            out[got] = i
            got += 1
    for lv in range(n_lv):
        same = True
        for k in range(1, got):
            if levels[lv, out[k]] != levels[lv, out[0]]:
                same = False
                break
        if same:
            return got, levels[lv, out[0]], lv
    return got, -1, -1


@jit
def _insertion_sort(a, m):
    """Sort ``a[:m]`` in place (a job's few nodes)."""
    for k in range(1, m):
        v = a[k]
        j = k - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@jit
def select_nodes(kind, avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out):
    if kind == KIND_SLURM_LIGHTEST:
        return _lightest(avail, g, weight, out)
    if kind != KIND_SLURM:  # KIND_BINPACK or KIND_BINPACK_NODE
        return _binpack(avail, nn, g, total, levels, n_groups, kind == KIND_BINPACK_NODE, out)
    return _slurm(avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out)
