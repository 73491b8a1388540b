"""The compiled walk itself: one starts-only cycle over the ordered queue (see the package
docstring for what it mirrors of the Python walk in :mod:`kant_slurm.engine.policies.base`).
"""

from __future__ import annotations

import numpy as np

from .jit import jit
from .reserve import base_releases, grow, insert_sorted, merge_releases, search
from .select import select_nodes

_INF = np.inf


@jit
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
                c, grp, lvl = select_nodes(
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
                    ev_t, ev_lens, ev_idx, ev_g = base_releases(
                        now, run_start, run_est, run_limit, run_off, run_len, pool_idx, pool_g
                    )
                    have_base = True
                if merged_for != n_x:
                    m_t, m_off, m_idx, m_g, m_times = merge_releases(
                        ev_t, ev_lens, ev_idx, ev_g, n_x, x_t, x_off, x_idx, x_g
                    )
                    merged_for = n_x
                found, r_st, r_en, rc = search(
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
                    ok_shape = grow(ok_shape, n_ok + 1)
                    ok_rt = grow(ok_rt, n_ok + 1)
                    ok_start = grow(ok_start, n_ok + 1)
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
                    r_start = grow(r_start, cap)
                    r_end = grow(r_end, cap)
                    r_rank = grow(r_rank, cap)
                    r_gpn = grow(r_gpn, cap)
                    by_start = grow(by_start, cap)
                    by_end = grow(by_end, cap)
                    grown = np.empty((cap, n), dtype=np.int64)
                    grown[:n_res] = spare[:n_res]
                    spare = grown
                r_off = grow(r_off, n_res + 2)
                r_idx = grow(r_idx, r_off[n_res] + rc)
                r_start[n_res] = r_st
                r_end[n_res] = r_en
                r_rank[n_res] = rq
                r_gpn[n_res] = q_g
                for k in range(rc):
                    r_idx[r_off[n_res] + k] = out[k]
                r_off[n_res + 1] = r_off[n_res] + rc
                spare[n_res] = avail
                insert_sorted(by_start, n_res, r_start, n_res)
                insert_sorted(by_end, n_res, r_end, n_res)
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
            x_t = grow(x_t, n_x + 1)
            x_off = grow(x_off, n_x + 2)
            x_idx = grow(x_idx, x_off[n_x] + c)
            x_g = grow(x_g, x_off[n_x] + c)
            x_t[n_x] = end
            for k in range(c):
                x_idx[x_off[n_x] + k] = out[k]
                x_g[x_off[n_x] + k] = g
            x_off[n_x + 1] = x_off[n_x] + c
            n_x += 1
            s_rank = grow(s_rank, n_s + 1)
            s_group = grow(s_group, n_s + 1)
            s_level = grow(s_level, n_s + 1)
            s_bf = grow(s_bf, n_s + 1)
            s_off = grow(s_off, n_s + 2)
            s_idx = grow(s_idx, s_off[n_s] + c)
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
