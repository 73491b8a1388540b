"""The compiled walk's reservation search (:meth:`kant_slurm.engine.cycle.Cycle._profile`):
the releases of running and started jobs in time order, and the first time at which the
job's selector accepts what is free then, net of the reservations that overlap its run.
"""

from __future__ import annotations

import numpy as np

from .jit import jit
from .select import select_nodes

_INF = np.inf


@jit
def grow(a, need):
    """``a``, or a copy at least twice as long when it holds fewer than ``need`` items."""
    if need <= a.size:
        return a
    b = np.empty(max(need, 2 * a.size), dtype=a.dtype)
    b[: a.size] = a
    return b


@jit
def base_releases(now, run_start, run_est, run_limit, run_off, run_len, pool_idx, pool_g):
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


@jit
def merge_releases(ev_t, ev_lens, ev_idx, ev_g, n_x, x_t, x_off, x_idx, x_g):
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


@jit
def insert_sorted(order, n, key, r):
    """Put index ``r`` into ``order[:n]`` (sorted by ``key``), after equal keys."""
    j = n - 1
    while j >= 0 and key[order[j]] > key[r]:
        order[j + 1] = order[j]
        j -= 1
    order[j + 1] = r


@jit
def _held_avail(free, held, total, whole):
    """GPUs a job may take on a node with ``free`` GPUs and ``held`` holds of overlapping
    reservations (whole nodes: any hold empties the node; else the held GPUs), at most its
    ``total``."""
    a = (0 if held > 0 else free) if whole else (free - held if free > held else 0)
    return a if a < total else total


@jit
def search(
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
        c, grp, lvl = select_nodes(
            kind, avail, nn, g, total, weight, cpus_free, has_cpus, levels, n_groups, out
        )
        if c > 0:
            # The spare room to record counts every node, also those outside the pool.
            for i in range(n):
                if not mask[i]:
                    avail[i] = _held_avail(F[i], hold[i], total[i], whole)
            return True, start, end, c
    return False, 0.0, 0.0, 0
