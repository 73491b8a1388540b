"""The walk of a starts-only plan in compiled code (numba): the simulator's hot loop.

:meth:`~.policies._QueuePolicy.plan` walks the queue in Python over numpy arrays; a deep queue
costs it about 10 ms per cycle, most of it interpreter overhead around small array operations.
This module runs the same walk -- start tests, reservation searches, the node selectors
``binpack`` (E-Binpack) and ``slurm_cons_tres`` (the Slurm model), and the bookkeeping of free
GPUs and reservations' spare room -- as one compiled function over plain arrays. It is used
only for starts-only plans (what the simulator asks for) of policies that backfill (fifo's
strict walk stops at its first blocked job and is cheap in Python), and only when every queued
job is of a kind it handles (``_QueuePolicy._compiled_inputs``); anything else takes the
Python walk, which stays the reference: ``tests/unit/test_engine_fastwalk.py`` holds the two
to the same starts, nodes and reservations on random queues and on real-trace cycles.

What it mirrors, and why its starts are the full plan's:

- **Start test** (:meth:`.cycle.Cycle.try_start`): free GPUs capped on each node by the spare
  room of every reservation starting before the job's expected end, -1 outside the job's
  usable nodes, then the policy's selector. A shape that failed with some end fails with any
  later end (availability only shrinks within a cycle): the same fail memo.
- **Reservation search** (:meth:`.cycle.Cycle._profile`): candidate times are the expected
  ends (running jobs and jobs started this cycle) and the reservations' ends, from the start
  bound of the shape's earlier searches on; at each, free GPUs after the releases up to it,
  reservations overlapping ``[start, start + runtime)`` held (whole nodes or their GPUs), -1
  outside usable nodes; the first time whose availability the selector accepts. The spare room
  recorded is that availability on every node, inside the pool or not. The memos (failed
  runtime per shape, latest start per shape and runtime) are the same, so the same searches
  run.
- **Deferred reservations**: a blocked job's reservation is worked out only when a later job
  fits what the reservations made so far leave; then the queued ones are made in rank order
  until it no longer fits (the Python walk does them in doubling batches; the outcome is the
  same because a start happens only once none is queued, so every search sees the state it
  would have seen at the job's turn).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

njit: Callable[..., Any] | None
try:  # numba is a dependency; the import is guarded so that a broken install falls back
    from numba import njit as _numba_njit

    njit = _numba_njit
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None

log = logging.getLogger(__name__)

# The node selectors it has: select.binpack (one-node jobs: fullest leaf first, or with
# placement.single_node "node" the fullest node) and select.slurm_cons_tres.
KIND_BINPACK, KIND_SLURM, KIND_BINPACK_NODE = 1, 2, 3

_INF = np.inf


def available() -> bool:
    """Whether the compiled walk can run here (numba imported)."""
    return njit is not None


def _jit(fn):
    return njit(cache=True, nogil=True)(fn) if njit is not None else fn


# ------------------------------------------------------------------------------ readiness
# Compiling the walk takes numba 30-60 s on a small machine; its on-disk cache makes every later
# process load it in under a second. A simulation does not wait for the first compile: it
# starts one in a child process (numba writes the cache) and walks in Python until the child
# is done, then loads the compiled walk. The two walks start the same jobs, so when the switch
# happens changes no decision.

_state: dict = {"proc": None, "ready": False, "broken": False}


def start_warm_up() -> None:
    """Compile (or find in numba's cache) the walk in a child process, without waiting. The
    child is left to finish even if this process ends first, so that the cache is written."""
    if not available() or _state["ready"] or _state["broken"] or _state["proc"] is not None:
        return
    try:
        # The child imports this very file (numba's cache is per source file), wherever
        # this process found it.
        root = str(Path(__file__).resolve().parents[2])
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from kant_slurm.engine import fastwalk; fastwalk._warm_up()"
        )
        _state["proc"] = subprocess.Popen(
            [sys.executable, "-c", code, root],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as e:  # no child processes here: compile on first use instead
        log.warning(
            "cannot start the compile of the walk in a child process (%s); compiling here", e
        )
        prepare()


def prepare() -> bool:
    """Compile or load the walk in this process now (waits); True when it is usable."""
    if _state["ready"]:
        return True
    if not available() or _state["broken"]:
        return False
    try:
        _warm_up()
    except Exception as e:  # a numba that cannot compile here: the Python walk stays
        _state["broken"] = True
        log.warning("the compiled walk is not usable here (%s); the Python walk is used", e)
        return False
    # Any later call with other argument types would compile again for a minute: refuse it
    # (TypeError, then the Python walk) instead.
    walk.disable_compile()
    _state["ready"] = True
    return True


def ready() -> bool:
    """Whether a plan may use the compiled walk now: it was prepared in this process, or the
    child started by :func:`start_warm_up` has finished (then it is loaded from the cache)."""
    if _state["ready"]:
        return True
    proc = _state["proc"]
    if proc is None or _state["broken"] or proc.poll() is None:
        return False
    if proc.returncode != 0:
        err = (
            proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
        )
        _state["broken"] = True
        log.warning(
            "compiling the walk failed (%s); the Python walk is used",
            err[-1] if err else f"exit {proc.returncode}",
        )
        return False
    return prepare()


def mark_broken(reason: str) -> None:
    """Stop using the compiled walk in this process (a call it refused)."""
    if not _state["broken"]:
        log.warning("the compiled walk refused a call (%s); the Python walk is used", reason)
    _state["broken"] = True
    _state["ready"] = False


def _as(a, dtype):
    """``a`` as a writable C-contiguous array of ``dtype`` (copied only if it is not one)."""
    a = np.asarray(a)
    if a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.require(a, dtype=dtype, requirements=("C", "W"))


def _i64(a):
    return _as(a, np.int64)


def _f64(a):
    return _as(a, np.float64)


def _b1(a):
    return _as(a, np.bool_)


def run(
    now,
    free,
    total,
    weight,
    cpus_free,
    has_cpus,
    levels,
    n_groups,
    masks,
    shape_nn,
    shape_g,
    shape_mask,
    shape_kind,
    est,
    elig,
    shape,
    run_rows,
    run_off,
    run_len,
    pool_idx,
    pool_g,
    k_max,
    depth,
    strict,
    whole,
    window_end,
):
    """:func:`walk` with every argument in the one type it is compiled for (``free`` must
    already be a writable int64 array: the starts are taken from it in place)."""
    if free.dtype != np.int64 or not free.flags.c_contiguous or not free.flags.writeable:
        raise TypeError("free must be a writable, contiguous int64 array")
    return walk(
        float(now),
        free,
        _i64(total),
        _i64(weight),
        _i64(cpus_free),
        _b1(has_cpus),
        _i64(levels),
        _i64(n_groups),
        _b1(masks),
        _i64(shape_nn),
        _i64(shape_g),
        _i64(shape_mask),
        _i64(shape_kind),
        _f64(est),
        _f64(elig),
        _i64(shape),
        _f64(run_rows[0]),
        _f64(run_rows[1]),
        _f64(run_rows[2]),
        _i64(run_off),
        _i64(run_len),
        _i64(pool_idx),
        _i64(pool_g),
        int(k_max),
        int(depth),
        bool(strict),
        bool(whole),
        float(window_end),
    )


def _warm_up() -> None:
    """One tiny cycle through :func:`run`: compiles the walk, or loads it from the cache."""
    n = 2
    ones = np.ones(n, dtype=np.int64)
    run(
        0.0,
        np.full(n, 4, dtype=np.int64),
        ones * 4,
        ones,
        ones,
        np.ones(n, dtype=bool),
        np.zeros((1, n), dtype=np.int64),
        np.ones(1, dtype=np.int64),
        np.ones((1, n), dtype=bool),
        np.ones(1),
        np.ones(1),
        np.zeros(1),
        np.ones(1),
        np.array([60.0, 60.0]),
        np.array([np.nan, np.nan]),
        np.zeros(2),
        np.array([[0.0], [30.0], [np.nan], [0.0], [1.0]]),
        np.zeros(1),
        np.ones(1),
        np.zeros(1),
        np.array([4]),
        8,
        0,
        False,
        True,
        np.inf,
    )


# ------------------------------------------------------------------------------ selectors
# Each fills ``out[:count]`` with node indices and returns (count, group, level); count 0 =
# no choice. GPUs per node are always the job's gpus_per_node.


@_jit
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


@_jit
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


@_jit
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


@_jit
def _nodes_ge(avail, g):
    """Node indices with ``avail >= g``, ascending."""
    nodes = np.empty(avail.size, dtype=np.int64)
    k = 0
    for i in range(avail.size):
        if avail[i] >= g:
            nodes[k] = i
            k += 1
    return nodes[:k]


@_jit
def _in_group(items, gidx, group):
    """The items (node indices, in order) whose group is ``group``."""
    nodes = np.empty(items.size, dtype=np.int64)
    k = 0
    for i in items:
        if gidx[i] == group:
            nodes[k] = i
            k += 1
    return nodes[:k]


@_jit
def _group_counts(items, gidx, n_groups):
    """How many of the items (node indices) each group holds (nodes under none left out)."""
    counts = np.zeros(n_groups, dtype=np.int64)
    for i in items:
        if gidx[i] >= 0:
            counts[gidx[i]] += 1
    return counts


@_jit
def _free_sums(avail, total, gidx, n_groups):
    """Per group, over the usable nodes (avail >= 0): (free GPUs, total GPUs)."""
    fr = np.zeros(n_groups)
    tot = np.zeros(n_groups)
    for i in range(avail.size):
        if avail[i] >= 0 and gidx[i] >= 0:
            fr[gidx[i]] += avail[i]
            tot[gidx[i]] += total[i]
    return fr, tot


@_jit
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


@_jit
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


@_jit
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


@_jit
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


@_jit
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


@_jit
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


@_jit
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


@_jit
def _insertion_sort(a, m):
    """Sort ``a[:m]`` in place (a job's few nodes)."""
    for k in range(1, m):
        v = a[k]
        j = k - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@_jit
def _select(kind, avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out):
    if kind != KIND_SLURM:  # KIND_BINPACK or KIND_BINPACK_NODE
        return _binpack(avail, nn, g, total, levels, n_groups, kind == KIND_BINPACK_NODE, out)
    return _slurm(avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out)


# ------------------------------------------------------------------------------ the walk


@_jit
def _grow(a, need):
    """``a``, or a copy at least twice as long when it holds fewer than ``need`` items."""
    if need <= a.size:
        return a
    b = np.empty(max(need, 2 * a.size), dtype=a.dtype)
    b[: a.size] = a
    return b


@_jit
def _base_releases(now, run_start, run_est, run_limit, run_off, run_len, pool_idx, pool_g):
    """RunningTable.releases: running jobs' expected ends (start + estimate; past it, start +
    limit; past that, now + 1), ascending (equal ends in running order), with their nodes and
    GPUs gathered from the pool."""
    n = run_start.size
    end = np.empty(n)
    keep = np.empty(n, dtype=np.int64)
    n_keep = 0
    for i in range(n):
        st = now if np.isnan(run_start[i]) else run_start[i]
        e = st + run_est[i]
        if not e > now:
            by_limit = st + run_limit[i]
            e = by_limit if by_limit > now else now + 1.0
        end[i] = e
        if run_len[i] >= 0:
            keep[n_keep] = i
            n_keep += 1
    # Stable bottom-up merge sort of the kept rows by end.
    order = keep[:n_keep].copy()
    tmp = np.empty(n_keep, dtype=np.int64)
    width = 1
    while width < n_keep:
        lo = 0
        while lo < n_keep:
            mid = min(lo + width, n_keep)
            hi = min(lo + 2 * width, n_keep)
            a, b, k = lo, mid, lo
            while a < mid and b < hi:
                if end[order[b]] < end[order[a]]:
                    tmp[k] = order[b]
                    b += 1
                else:
                    tmp[k] = order[a]
                    a += 1
                k += 1
            while a < mid:
                tmp[k] = order[a]
                a += 1
                k += 1
            while b < hi:
                tmp[k] = order[b]
                b += 1
                k += 1
            lo = hi
        order, tmp = tmp, order
        width *= 2
    ev_t = np.empty(n_keep)
    ev_lens = np.empty(n_keep, dtype=np.int64)
    total = 0
    for k in range(n_keep):
        ev_t[k] = end[order[k]]
        ev_lens[k] = run_len[order[k]]
        total += ev_lens[k]
    ev_idx = np.empty(total, dtype=np.int64)
    ev_g = np.empty(total, dtype=np.int64)
    p = 0
    for k in range(n_keep):
        o = run_off[order[k]]
        for q in range(ev_lens[k]):
            ev_idx[p] = pool_idx[o + q]
            ev_g[p] = pool_g[o + q]
            p += 1
    return ev_t, ev_lens, ev_idx, ev_g


@_jit
def _merge_releases(ev_t, ev_lens, ev_idx, ev_g, n_x, x_t, x_off, x_idx, x_g):
    """Running jobs' releases (in time order) plus those of jobs started this cycle, merged
    in time order: (times, offsets, nodes, GPUs, unique times)."""
    nb = ev_t.size
    m = nb + n_x
    base_off = np.zeros(nb + 1, dtype=np.int64)
    for k in range(nb):
        base_off[k + 1] = base_off[k] + ev_lens[k]
    x_order = np.arange(n_x)
    for k in range(1, n_x):  # insertion sort by time (stable; a cycle starts few jobs)
        v = x_order[k]
        j = k - 1
        while j >= 0 and x_t[x_order[j]] > x_t[v]:
            x_order[j + 1] = x_order[j]
            j -= 1
        x_order[j + 1] = v
    total_len = base_off[nb] + x_off[n_x]
    off = np.zeros(m + 1, dtype=np.int64)
    idx = np.empty(total_len, dtype=np.int64)
    gg = np.empty(total_len, dtype=np.int64)
    tt = np.empty(m)
    uniq = np.empty(m)
    n_u = 0
    p = 0
    bi = 0
    xi = 0
    for j in range(m):
        # equal times: running jobs' releases first
        if xi >= n_x or (bi < nb and ev_t[bi] <= x_t[x_order[xi]]):
            tt[j] = ev_t[bi]
            for q in range(base_off[bi], base_off[bi + 1]):
                idx[p] = ev_idx[q]
                gg[p] = ev_g[q]
                p += 1
            bi += 1
        else:
            e = x_order[xi]
            tt[j] = x_t[e]
            for q in range(x_off[e], x_off[e + 1]):
                idx[p] = x_idx[q]
                gg[p] = x_g[q]
                p += 1
            xi += 1
        off[j + 1] = p
        if n_u == 0 or tt[j] != uniq[n_u - 1]:
            uniq[n_u] = tt[j]
            n_u += 1
    return tt, off, idx, gg, uniq[:n_u].copy()


@_jit
def _insert_sorted(order, n, key, r):
    """Put index ``r`` into ``order[:n]`` (sorted by ``key``), after equal keys."""
    j = n - 1
    while j >= 0 and key[order[j]] > key[r]:
        order[j + 1] = order[j]
        j -= 1
    order[j + 1] = r


@_jit
def _held_avail(free, held, total, whole):
    """GPUs a job may take on a node with ``free`` GPUs and ``held`` holds of overlapping
    reservations (whole nodes: any hold empties the node; else the held GPUs), at most its
    ``total``."""
    a = (0 if held > 0 else free) if whole else (free - held if free > held else 0)
    return a if a < total else total


@_jit
def _search(
    now,
    runtime,
    t_min,
    nn,
    g,
    kind,
    mask,
    free,
    total,
    weight,
    cpus_free,
    has_cpus,
    levels,
    n_groups,
    n_res,
    r_start,
    r_end,
    r_off,
    r_idx,
    r_gpn,
    by_start,
    by_end,
    whole,
    window_end,
    m_t,
    m_off,
    m_idx,
    m_g,
    m_times,
    F,
    hold,
    avail,
    out,
):
    """Cycle._profile: the earliest candidate time whose availability the selector accepts.
    Returns (found, start, end, nodes chosen); the choice is in ``out`` and the availability
    at that time on every node (the spare room to record) in ``avail``."""
    n = free.size
    # Candidate times: expected ends and reservations' ends (after now), from t_min on,
    # merged from the two sorted lists without repeats.
    times = np.empty(m_times.size + n_res)
    n_cand = 0
    ti = 0
    while ti < m_times.size and m_times[ti] < t_min:
        ti += 1
    ri = 0
    while ti < m_times.size or ri < n_res:
        if ri < n_res:
            re = r_end[by_end[ri]]
            if re <= now or re < t_min:
                ri += 1
                continue
        if ri >= n_res or (ti < m_times.size and m_times[ti] <= re):
            t = m_times[ti]
            ti += 1
        else:
            t = re
            ri += 1
        if n_cand == 0 or t != times[n_cand - 1]:
            times[n_cand] = t
            n_cand += 1
    # Sweep: free GPUs after the releases so far; a reservation is held while the window
    # [start, start + runtime) overlaps it (it enters as the window's end passes its start
    # and leaves as the window's start passes its end, both only move later).
    F[:] = free
    hold[:] = 0
    state = np.zeros(n_res, dtype=np.int64)  # 0 not yet, 1 held, 2 done
    si = 0
    ei = 0
    p = 0
    n_rel = m_t.size
    touched = True
    for t in times[:n_cand]:
        if t > window_end:
            break
        while p < n_rel and m_t[p] <= t:
            for q in range(m_off[p], m_off[p + 1]):
                F[m_idx[q]] += m_g[q]
                if mask[m_idx[q]]:
                    touched = True
            p += 1
        start = t if t > now else now
        end = start + runtime
        while si < n_res and r_start[by_start[si]] < end:
            r = by_start[si]
            si += 1
            if state[r] == 0:
                if r_end[r] > start:
                    state[r] = 1
                    w = 1 if whole else r_gpn[r]
                    for q in range(r_off[r], r_off[r + 1]):
                        hold[r_idx[q]] += w
                    touched = True
                else:
                    state[r] = 2
        while ei < n_res and r_end[by_end[ei]] <= start:
            r = by_end[ei]
            ei += 1
            if state[r] == 1:
                w = 1 if whole else r_gpn[r]
                for q in range(r_off[r], r_off[r + 1]):
                    hold[r_idx[q]] -= w
                touched = True
            state[r] = 2
        if not touched:
            continue  # the same availability as the time looked at last: the same answer
        touched = False
        cnt = 0
        for i in range(n):
            if not mask[i]:
                avail[i] = -1
                continue
            a = _held_avail(F[i], hold[i], total[i], whole)
            avail[i] = a
            if a >= g:
                cnt += 1
        if cnt < nn:
            continue
        c, grp, lvl = _select(
            kind, avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out
        )
        if c > 0:
            # The spare room to record counts every node, also those outside the pool.
            for i in range(n):
                if not mask[i]:
                    avail[i] = _held_avail(F[i], hold[i], total[i], whole)
            return True, start, end, c
    return False, 0.0, 0.0, 0


@_jit
def walk(
    now,
    free,
    total,
    weight,
    cpus_free,
    has_cpus,
    levels,
    n_groups,
    masks,
    shape_nn,
    shape_g,
    shape_mask,
    shape_kind,
    est,
    elig,
    shape,
    run_start,
    run_est,
    run_limit,
    run_off,
    run_len,
    pool_idx,
    pool_g,
    k_max,
    depth,
    strict,
    whole,
    window_end,
):
    """One cycle's walk over the queue (``est``, ``elig``, ``shape`` in queue order). ``free``
    is updated in place by the starts. Returns (start ranks, start node offsets, start nodes,
    start groups, start levels, backfilled flags, reservation ranks, reservation starts,
    reservation ends, reservation node offsets, reservation nodes)."""
    n = free.size
    n_jobs = est.size
    n_shapes = shape_nn.size
    # NaN = none yet (any comparison with it is false, so an infinite estimate is still
    # tested, as in the Python walk's dict look-ups)
    fail_end = np.full(n_shapes, np.nan)  # shape -> earliest end whose start test failed
    res_fail = np.full(n_shapes, np.nan)  # shape -> runtime whose reservation search failed
    # Per mask: usable nodes and their GPUs (fixed in a cycle).
    n_masks = masks.shape[0]
    mask_nodes = np.zeros(n_masks, dtype=np.int64)
    mask_gpus = np.zeros(n_masks, dtype=np.int64)
    for mi in range(n_masks):
        for i in range(n):
            if masks[mi, i]:
                mask_nodes[mi] += 1
                mask_gpus[mi] += total[i]
    # Latest reserved start per (shape, runtime): a bound on later searches of the shape.
    ok_shape = np.empty(16, dtype=np.int64)
    ok_rt = np.empty(16)
    ok_start = np.empty(16)
    n_ok = 0
    # Reservations, each with its spare room per node (a row of ``spare``).
    r_start = np.empty(8)
    r_end = np.empty(8)
    r_rank = np.empty(8, dtype=np.int64)
    r_gpn = np.empty(8, dtype=np.int64)
    by_start = np.empty(8, dtype=np.int64)  # reservation indices by start, then by end
    by_end = np.empty(8, dtype=np.int64)
    r_off = np.zeros(9, dtype=np.int64)
    r_idx = np.empty(64, dtype=np.int64)
    spare = np.empty((8, n), dtype=np.int64)
    n_res = 0
    # Releases of jobs started this cycle, and all releases merged in time order.
    x_t = np.empty(8)
    x_off = np.zeros(9, dtype=np.int64)
    x_idx = np.empty(64, dtype=np.int64)
    x_g = np.empty(64, dtype=np.int64)
    n_x = 0
    # Running jobs' releases, sorted when the first search needs them.
    ev_t = np.empty(0)
    ev_lens = np.empty(0, dtype=np.int64)
    ev_idx = np.empty(0, dtype=np.int64)
    ev_g = np.empty(0, dtype=np.int64)
    have_base = False
    m_t = np.empty(0)
    m_off = np.zeros(1, dtype=np.int64)
    m_idx = np.empty(0, dtype=np.int64)
    m_g = np.empty(0, dtype=np.int64)
    m_times = np.empty(0)
    merged_for = -1
    # Starts.
    s_rank = np.empty(16, dtype=np.int64)
    s_off = np.zeros(17, dtype=np.int64)
    s_idx = np.empty(64, dtype=np.int64)
    s_group = np.empty(16, dtype=np.int64)
    s_level = np.empty(16, dtype=np.int64)
    s_bf = np.empty(16, dtype=np.int64)
    n_s = 0
    # Blocked jobs whose reservation is not worked out yet (ranks, in order).
    dq = np.empty(max(n_jobs, 1), dtype=np.int64)
    dq_head = 0
    dq_tail = 0

    avail = np.empty(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    F = np.empty(n, dtype=np.int64)
    hold = np.empty(n, dtype=np.int64)
    first_blocked = -1

    for rank in range(n_jobs):
        if depth > 0 and rank >= depth and first_blocked >= 0:
            break  # past the depth nothing behind a blocked job is tested
        if strict and first_blocked >= 0:
            break
        if elig[rank] > now:
            continue
        s = shape[rank]
        nn = shape_nn[s]
        g = shape_g[s]
        end = now + est[rank]
        c = 0
        grp = -1
        lvl = -1
        while True:
            # ---- start test (Cycle.try_start)
            c = 0
            if not end >= fail_end[s]:
                mk = shape_mask[s]
                for i in range(n):
                    avail[i] = free[i] if masks[mk, i] else -1
                for r in range(n_res):
                    if r_start[r] < end:
                        for i in range(n):
                            if avail[i] > spare[r, i]:
                                avail[i] = spare[r, i]
                c, grp, lvl = _select(
                    shape_kind[s],
                    avail,
                    nn,
                    g,
                    total,
                    weight,
                    cpus_free,
                    has_cpus,
                    levels,
                    n_groups,
                    out,
                )
                if c == 0:
                    fail_end[s] = end
            if c == 0 or dq_head == dq_tail:
                break
            # It fits what the reservations made so far leave: work out the next queued one
            # (then test again).
            if n_res >= k_max:
                dq_head = dq_tail  # every reservation is held: the queued jobs get none
                continue
            rq = dq[dq_head]
            dq_head += 1
            q_s = shape[rq]
            todo = True
            while todo:
                todo = False
                # ---- reservation search (Cycle._reserve) for the job at rank rq
                q_nn = shape_nn[q_s]
                q_g = shape_g[q_s]
                q_mk = shape_mask[q_s]
                rt = est[rq]
                if mask_gpus[q_mk] < q_nn * q_g or mask_nodes[q_mk] < q_nn:
                    res_fail[q_s] = 0.0  # can never fit: the same for every job of the shape
                    break
                if rt >= res_fail[q_s]:
                    break
                t_min = -_INF
                for k in range(n_ok):
                    if ok_shape[k] == q_s and ok_rt[k] <= rt and ok_start[k] > t_min:
                        t_min = ok_start[k]
                if not have_base:
                    ev_t, ev_lens, ev_idx, ev_g = _base_releases(
                        now, run_start, run_est, run_limit, run_off, run_len, pool_idx, pool_g
                    )
                    have_base = True
                if merged_for != n_x:
                    m_t, m_off, m_idx, m_g, m_times = _merge_releases(
                        ev_t, ev_lens, ev_idx, ev_g, n_x, x_t, x_off, x_idx, x_g
                    )
                    merged_for = n_x
                found, r_st, r_en, rc = _search(
                    now,
                    rt,
                    t_min,
                    q_nn,
                    q_g,
                    shape_kind[q_s],
                    masks[q_mk],
                    free,
                    total,
                    weight,
                    cpus_free,
                    has_cpus,
                    levels,
                    n_groups,
                    n_res,
                    r_start,
                    r_end,
                    r_off,
                    r_idx,
                    r_gpn,
                    by_start,
                    by_end,
                    whole,
                    window_end,
                    m_t,
                    m_off,
                    m_idx,
                    m_g,
                    m_times,
                    F,
                    hold,
                    avail,
                    out,
                )
                if not found:
                    res_fail[q_s] = rt
                    break
                # remember the latest start per (shape, runtime)
                k_hit = -1
                for k in range(n_ok):
                    if ok_shape[k] == q_s and ok_rt[k] == rt:
                        k_hit = k
                if k_hit < 0:
                    ok_shape = _grow(ok_shape, n_ok + 1)
                    ok_rt = _grow(ok_rt, n_ok + 1)
                    ok_start = _grow(ok_start, n_ok + 1)
                    ok_shape[n_ok] = q_s
                    ok_rt[n_ok] = rt
                    ok_start[n_ok] = r_st
                    n_ok += 1
                elif r_st > ok_start[k_hit]:
                    ok_start[k_hit] = r_st
                # ---- record it (Cycle._record): its spare room, less room for earlier ones
                for k in range(rc):
                    i = out[k]
                    if whole:
                        avail[i] = 0
                    else:
                        v = avail[i] - q_g
                        avail[i] = v if v > 0 else 0
                for r in range(n_res):
                    if r_start[r] < r_en and r_st < r_end[r]:
                        for k in range(rc):
                            i = out[k]
                            if whole:
                                spare[r, i] = 0
                            else:
                                v = spare[r, i] - q_g
                                spare[r, i] = v if v > 0 else 0
                if n_res + 1 > r_start.size:
                    cap = 2 * r_start.size
                    r_start = _grow(r_start, cap)
                    r_end = _grow(r_end, cap)
                    r_rank = _grow(r_rank, cap)
                    r_gpn = _grow(r_gpn, cap)
                    by_start = _grow(by_start, cap)
                    by_end = _grow(by_end, cap)
                    grown = np.empty((cap, n), dtype=np.int64)
                    grown[:n_res] = spare[:n_res]
                    spare = grown
                r_off = _grow(r_off, n_res + 2)
                r_idx = _grow(r_idx, r_off[n_res] + rc)
                r_start[n_res] = r_st
                r_end[n_res] = r_en
                r_rank[n_res] = rq
                r_gpn[n_res] = q_g
                for k in range(rc):
                    r_idx[r_off[n_res] + k] = out[k]
                r_off[n_res + 1] = r_off[n_res] + rc
                spare[n_res] = avail
                _insert_sorted(by_start, n_res, r_start, n_res)
                _insert_sorted(by_end, n_res, r_end, n_res)
                n_res += 1
        if c > 0:
            # ---- commit the start (Cycle.commit_start)
            for k in range(c):
                free[out[k]] -= g
            for r in range(n_res):
                if r_start[r] < end:
                    for k in range(c):
                        v = spare[r, out[k]] - g
                        spare[r, out[k]] = v if v > 0 else 0
            x_t = _grow(x_t, n_x + 1)
            x_off = _grow(x_off, n_x + 2)
            x_idx = _grow(x_idx, x_off[n_x] + c)
            x_g = _grow(x_g, x_off[n_x] + c)
            x_t[n_x] = end
            for k in range(c):
                x_idx[x_off[n_x] + k] = out[k]
                x_g[x_off[n_x] + k] = g
            x_off[n_x + 1] = x_off[n_x] + c
            n_x += 1
            s_rank = _grow(s_rank, n_s + 1)
            s_group = _grow(s_group, n_s + 1)
            s_level = _grow(s_level, n_s + 1)
            s_bf = _grow(s_bf, n_s + 1)
            s_off = _grow(s_off, n_s + 2)
            s_idx = _grow(s_idx, s_off[n_s] + c)
            s_rank[n_s] = rank
            s_group[n_s] = grp
            s_level[n_s] = lvl
            s_bf[n_s] = 1 if first_blocked >= 0 else 0
            for k in range(c):
                s_idx[s_off[n_s] + k] = out[k]
            s_off[n_s + 1] = s_off[n_s] + c
            n_s += 1
            continue
        if first_blocked < 0:
            first_blocked = rank
        if strict:
            break
        # Blocked: its reservation is worked out when a later job could start (defer), or now.
        dq[dq_tail] = rank
        dq_tail += 1
    return (
        s_rank[:n_s].copy(),
        s_off[: n_s + 1].copy(),
        s_idx[: s_off[n_s]].copy(),
        s_group[:n_s].copy(),
        s_level[:n_s].copy(),
        s_bf[:n_s].copy(),
        r_rank[:n_res].copy(),
        r_start[:n_res].copy(),
        r_end[:n_res].copy(),
        r_off[: n_res + 1].copy(),
        r_idx[: r_off[n_res]].copy(),
    )
