"""The reservation search of a planning cycle: when and where a blocked job could start.

:class:`ReservationSearch` is the part of :class:`~kant_slurm.engine.cycle.Cycle` that looks
ahead: it replays the expected ends of running jobs and of jobs started this cycle in time
order, and calls the job's node selector on what is free at each end, net of the holds of
reservations whose window overlaps the job's run (see the ``cycle`` module's docstring for the
spare-room rule that keeps backfill from delaying a reservation). The first time the selector
accepts is the job's reservation; the memos make later searches of the same shape cheap.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..model import ClusterSnapshot, Inventory, Job
from .plan import Reservation

if TYPE_CHECKING:
    from .cycle import Choice, Cycle, Selector


@dataclass(slots=True)
class _Res:
    job_id: str
    start: float
    end: float
    idx: np.ndarray
    gpus: np.ndarray
    spare: np.ndarray  # per node: GPUs a job running through `start` may still take


class ReservationSearch:
    """Mixed into :class:`~kant_slurm.engine.cycle.Cycle`, whose state it reads and updates
    (so ``self`` is always a Cycle: the selectors it calls are given it as one)."""

    # What it reads of the cycle (set by Cycle.__post_init__ and the timeline methods).
    snapshot: ClusterSnapshot
    now: float
    inv: Inventory
    free: np.ndarray
    total: np.ndarray
    whole_node_reservations: bool
    reservation_window: float | None
    alternatives: int
    reservations: list[_Res]
    res_memo: dict
    res_fail: dict
    res_ok: dict
    _pool_size: dict
    _extra: list[tuple[float, np.ndarray, np.ndarray]]
    _running: tuple | None
    _base_ev: tuple | None
    last_reservation_choice: Choice

    def usable(self, job: Job) -> np.ndarray:
        raise NotImplementedError

    def shape_key(self, job: Job) -> tuple:
        raise NotImplementedError

    def _base_events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def n_events(self) -> int:
        raise NotImplementedError

    # ----------------------------------------------------------------------------- later
    def reserve(self, job: Job, runtime: float, select: Selector) -> tuple[_Res | None, str]:
        """Earliest (time, nodes) at which ``job`` fits, replaying expected ends; records it.

        Candidate times are the expected ends of running jobs (and of jobs started this cycle)
        and the ends of earlier reservations. At each, the availability is what is free then
        minus the holds of reservations overlapping ``[t, t + runtime)``; the holds are kept
        in a sliding window, so a sweep costs O(times + reservations). Returns (reservation or
        None, reason when None).
        """
        # A reservation shows its nodes and why, not the runner-up groups: selectors skip them.
        alternatives, self.alternatives = self.alternatives, 0
        try:
            return self._reserve(job, runtime, select)
        finally:
            self.alternatives = alternatives

    def _reserve(self, job: Job, runtime: float, select: Selector) -> tuple[_Res | None, str]:
        usable = self.usable(job)
        need = job.num_nodes * job.gpus_per_node
        key = self.shape_key(job)
        size = self._pool_size.get(id(usable))
        if size is None:  # (usable nodes, their GPUs): per mask object, fixed in a cycle
            size = self._pool_size[id(usable)] = (
                int(usable.sum()),
                int(np.sum(self.total[usable])),
            )
        if size[1] < need or size[0] < job.num_nodes:
            reason = f"can never fit: its pool has {size[0]} usable nodes with {size[1]} GPUs"
            self.res_memo[key] = (0.0, None, reason)  # the same for every job of this shape
            self.res_fail[key] = (0.0, reason)
            return None, reason
        # Availability only shrinks within a cycle: a job of the same shape running at least as
        # long as an earlier one cannot start before that one could, and fails where it failed.
        # Kept per runtime (time limits come in a few rungs), so a long job's failed search is
        # not repeated for the next long job behind a short one that succeeded.
        fail = self.res_fail.get(key)
        if fail is not None and runtime >= fail[0]:
            return None, fail[1]
        t_min = -np.inf
        oks = self.res_ok.get(key)
        if oks:
            for r_rt, r_start in oks.items():
                if r_rt <= runtime and r_start > t_min:
                    t_min = r_start
        n_times = self.n_events + len(self.reservations)
        got = None
        if (
            self.single_fast
            and self.whole_node_reservations
            and job.num_nodes == 1
            and job.gpus_per_node >= 1
        ):
            got = self._earliest_single(
                job,
                runtime,
                select,
                usable,
                t_min,
                "no start found: not enough capacity frees up when running jobs end",
            )
        if got is not None:
            res, reason = got
        elif n_times * len(self.free) <= self.MATRIX_CELLS:
            res, reason = self._profile(job, runtime, select, usable, t_min)
        else:
            res, reason = self._sweep(job, runtime, select, usable, need, t_min)
        if res is None:
            self.res_fail[key] = (runtime, reason)
            # What the walk's early stop and the tail read: the shortest failed runtime.
            self.res_memo[key] = (runtime, None, reason)
        else:
            if oks is None:
                oks = self.res_ok[key] = {}
            if res.start > oks.get(runtime, -np.inf):  # the latest start per runtime is enough
                oks[runtime] = res.start
            prev = self.res_memo.get(key)
            if prev is None or (prev[1] is not None and runtime <= prev[0]):
                self.res_memo[key] = (runtime, res.start, reason)
        return res, reason

    single_fast = True
    """One-node jobs under whole-node reservations: :meth:`_earliest_single` instead of the
    matrix (the same answer; a differential test holds it)."""

    PROFILE_CHUNK = 32
    """Candidate times in the matrix search's first chunk (then 4x as many each time)."""

    MATRIX_CELLS = 250_000
    """Above this many (times x nodes) cells the reservation search sweeps instead of building
    the availability profile as one matrix."""

    def _event_arrays(self):
        """Expected ends as flat arrays in time order: (times, nodes per release, node indices,
        GPUs as float), cached until a job starts."""
        key = len(self._extra)
        cache = getattr(self, "_ev_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        ev_t, lens, idx, gpus = self._base_events()
        if self._extra:
            x = self._extra
            ev_t = np.concatenate([ev_t, np.fromiter((e[0] for e in x), float, len(x))])
            lens = np.concatenate([lens, np.fromiter((len(e[1]) for e in x), np.int64, len(x))])
            idx = np.concatenate([idx] + [e[1] for e in x])
            gpus = np.concatenate([gpus] + [e[2] for e in x])
            order = np.argsort(ev_t, kind="stable")
            if (order != np.arange(order.size)).any():
                off = np.concatenate(([0], np.cumsum(lens)))
                take = (
                    np.concatenate([np.arange(off[i], off[i + 1]) for i in order.tolist()])
                    if idx.size
                    else idx
                )
                ev_t, lens, idx, gpus = ev_t[order], lens[order], idx[take], gpus[take]
        arrays = (ev_t, lens, idx.astype(np.int64, copy=False), gpus.astype(float))
        self._ev_cache = (key, arrays)
        return arrays

    def _free_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """(unique expected-end times, nodes x (1 + times) free GPUs: now, then after each),
        cached until a job starts. Node-major so the cumulative sum runs along contiguous
        memory."""
        key = len(self._extra)
        cache = getattr(self, "_free_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        n = len(self.free)
        ev_t, ev_lens, ev_idx, ev_g = self._event_arrays()
        ev_times = np.unique(ev_t)
        T = ev_times.size + 1
        cols = np.searchsorted(ev_times, ev_t) + 1
        delta = np.bincount(
            ev_idx * T + np.repeat(cols, ev_lens), weights=ev_g, minlength=n * T
        ).reshape(n, T)
        free_ev = np.cumsum(delta, axis=1).astype(np.int64) + self.free[:, None]
        self._free_cache = (key, (ev_times, free_ev))
        return ev_times, free_ev

    def _node_releases(self):
        """Releases node by node: (time, node, GPUs free on that node after it) per (release,
        node) pair, node-major and in time order within a node, plus the unique release
        times; cached until a job starts. Linear in the releases, whatever the cluster size
        (the (nodes x times) profile is not built)."""
        key = len(self._extra)
        cache = getattr(self, "_nr_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        ev_t, ev_lens, ev_idx, ev_g = self._event_arrays()
        t = np.repeat(ev_t, ev_lens)
        order = np.lexsort((t, ev_idx))  # by node, then time (stable: equal times keep order)
        node, tt, gg = ev_idx[order], t[order], ev_g[order].astype(np.int64)
        cum = np.cumsum(gg)
        if node.size:
            starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
            base = np.repeat(cum[starts] - gg[starts], np.diff(np.r_[starts, node.size]))
            cum = cum - base + self.free[node]
        out = (tt, node, cum, np.unique(ev_t))
        self._nr_cache = (key, out)
        return out

    def _free_at(self, t: float) -> np.ndarray:
        """Free GPUs per node after every release at or before ``t``."""
        ev_t, ev_lens, ev_idx, ev_g = self._event_arrays()
        k = int(np.searchsorted(ev_t, t, side="right"))
        m = int(ev_lens[:k].sum())
        return self.free + np.bincount(
            ev_idx[:m], weights=ev_g[:m], minlength=len(self.free)
        ).astype(np.int64)

    def _res_arrays(self):
        """Reservations as flat arrays: starts, ends, node counts, node indices, GPUs (views of
        buffers grown by doubling as reservations are added, never rebuilt)."""
        rs = self.reservations
        key = len(rs)
        # [reservations, nodes, starts, ends, node counts, node indices, GPUs]
        buf: list[Any] | None = getattr(self, "_res_buf", None)
        if buf is None or buf[0] > key:
            buf = [
                0,
                0,
                np.empty(16),
                np.empty(16),
                np.empty(16, np.int64),
                np.empty(64, np.int64),
                np.empty(64),
            ]
            self._res_buf = buf
        k, m = buf[0], buf[1]
        if k < key:
            new = rs[k:]
            add = sum(len(r.idx) for r in new)
            if key > buf[2].size:
                cap = max(2 * buf[2].size, key)
                for j in (2, 3, 4):
                    grown = np.empty(cap, dtype=buf[j].dtype)
                    grown[:k] = buf[j][:k]
                    buf[j] = grown
            if m + add > buf[5].size:
                cap = max(2 * buf[5].size, m + add)
                for j in (5, 6):
                    grown = np.empty(cap, dtype=buf[j].dtype)
                    grown[:m] = buf[j][:m]
                    buf[j] = grown
            for r in new:
                ln = len(r.idx)
                buf[2][k], buf[3][k], buf[4][k] = r.start, r.end, ln
                buf[5][m : m + ln] = r.idx
                buf[6][m : m + ln] = r.gpus
                k += 1
                m += ln
            buf[0], buf[1] = k, m
        return buf[2][:k], buf[3][:k], buf[4][:k], buf[5][:m], buf[6][:m]

    def _spare_row(self, spare: np.ndarray) -> np.ndarray:
        """Store the spare room of the reservation about to be added as a row of one matrix
        (rows are the reservations' ``spare`` views), so that overlapping reservations are
        updated in one array operation."""
        k = len(self.reservations)
        mat = getattr(self, "_spare_mat", None)
        if mat is None or k >= mat.shape[0]:
            grown = np.zeros((max(8, 2 * k), len(self.free)), dtype=np.int64)
            if mat is not None:
                grown[:k] = mat[:k]
            self._spare_mat = mat = grown
            for i, r in enumerate(self.reservations):
                r.spare = mat[i]
        row = mat[k]
        row[:] = spare
        return row

    def _profile(
        self, job: Job, runtime: float, select: Selector, usable: np.ndarray, t_min: float
    ) -> tuple[_Res | None, str]:
        """The reservation search on a (times x nodes) availability matrix: what is free at
        each candidate time (cumulated releases) minus the holds of reservations overlapping
        the window starting then. Same answer as :meth:`_sweep`, in a few array operations.

        Candidate times are the expected ends and reservation ends from ``t_min`` on. With a
        backfill window the times inside it are looked at first; past it only whether some
        time would fit matters (it decides the reason given)."""
        no_start = "no start found: not enough capacity frees up when running jobs end"
        ev_times, free_ev = self._free_profile()
        r_end = self._res_arrays()[1]
        lo_t = t_min if np.isfinite(t_min) else -np.inf
        times = np.unique(
            np.concatenate(
                [ev_times[ev_times >= lo_t], r_end[(r_end > self.now) & (r_end >= lo_t)]]
            )
        )
        if times.size == 0:
            return None, no_start
        window_end = None if self.reservation_window is None else self.now + self.reservation_window
        late = None
        if window_end is not None and times[-1] > window_end:
            cut = int(np.searchsorted(times, window_end, side="right"))
            times, late = times[:cut], times[cut:]
        # In growing chunks of candidate times: the start is usually among the first few, and
        # each column depends on its own time only.
        lo_c, size = 0, self.PROFILE_CHUNK
        while lo_c < times.size:
            chunk = times[lo_c : lo_c + size]
            lo_c += size
            size *= 4
            avail_t, starts, ends = self._avail_matrix(job, runtime, usable, chunk)
            ok = (
                np.count_nonzero((avail_t >= job.gpus_per_node) & usable[:, None], axis=0)
                >= job.num_nodes
            )
            for row in np.flatnonzero(ok).tolist():
                col_all = np.ascontiguousarray(avail_t[:, row])
                choice = select(cast("Cycle", self), job, np.where(usable, col_all, -1))
                if choice is None:
                    continue
                # The spare room counts every node, also those outside the job's pool.
                return self._record(job, float(starts[row]), float(ends[row]), choice, col_all), ""
        if late is None:
            return None, no_start
        window = f"no start found inside the backfill window ({self.reservation_window:.0f} s)"
        # The last candidate time comes after every expected end and every reservation's end,
        # so it nearly always fits: try it alone before all the late times.
        for chunk in (late[-1:], late[:-1]):
            if chunk.size == 0:
                continue
            avail_t, _, _ = self._avail_matrix(job, runtime, usable, chunk)
            if (
                np.count_nonzero((avail_t >= job.gpus_per_node) & usable[:, None], axis=0)
                >= job.num_nodes
            ).any():
                return None, window
        return None, no_start

    def _earliest_single(
        self,
        job: Job,
        runtime: float,
        select: Selector,
        usable: np.ndarray,
        t_min: float,
        no_start: str,
    ) -> tuple[_Res | None, str] | None:
        """:meth:`_profile` for a one-node job under whole-node reservations (Slurm's
        node_space), without the (times x nodes) matrix: per node, the first candidate time at
        which it has the GPUs (free GPUs only grow over the profile), pushed past the end of
        every reservation on it that the window ``[t, t + runtime)`` would overlap, until none
        does; the earliest over the nodes is the first time the matrix search finds a node.
        Returns None (use the matrix) when the selector turns that time down."""
        now = self.now
        g = job.gpus_per_node
        p_time, p_node_ev, p_cum, ev_times = self._node_releases()
        key = (len(self._extra), g)
        fc = getattr(self, "_first_free", None)
        if fc is None or fc[0] != key:
            # Per node, the first release after which it has g GPUs free (-inf: free now).
            first = np.full(len(self.free), np.inf)
            first[self.free >= g] = -np.inf
            hit = np.flatnonzero(p_cum >= g)
            if hit.size:
                nodes, at = np.unique(p_node_ev[hit], return_index=True)
                first[nodes] = np.minimum(first[nodes], p_time[hit[at]])
            self._first_free = fc = (key, first)
        first = fc[1]
        lo = t_min if np.isfinite(t_min) else -np.inf
        # The first candidate time at or after lo: an expected end or a reservation's end.
        k = int(np.searchsorted(ev_times, lo, side="left"))
        c0 = float(ev_times[k]) if k < ev_times.size else np.inf
        pk = getattr(self, "_pairs", None)
        if pk is None or pk[0] != len(self.reservations):
            r_start, r_end, r_lens, r_idx, _ = self._res_arrays()
            ends = np.sort(r_end[r_end > now])
            pk = self._pairs = (
                len(self.reservations),
                r_idx,
                np.repeat(r_start, r_lens),
                np.repeat(r_end, r_lens),
                ends,
            )
        _, p_node, p_s, p_e, res_ends = pk
        k = int(np.searchsorted(res_ends, lo, side="left"))
        if k < res_ends.size and res_ends[k] < c0:
            c0 = float(res_ends[k])
        # Per node: that time, or the first time it has the GPUs if later (an expected end).
        cur = np.maximum(first, c0)
        cur[~usable] = np.inf
        while True:
            st = np.maximum(cur[p_node], now)
            blk = (st + runtime > p_s) & (st < p_e)
            if not blk.any():
                break
            np.maximum.at(cur, p_node[blk], p_e[blk])
        t = float(cur.min()) if cur.size else np.inf
        if not np.isfinite(t):
            return None, no_start
        window_end = None if self.reservation_window is None else now + self.reservation_window
        if window_end is not None and t > window_end:
            return None, (
                f"no start found inside the backfill window ({self.reservation_window:.0f} s)"
            )
        start = max(t, now)
        end = start + runtime
        held = np.zeros(len(self.free), dtype=bool)
        held[p_node[(start + runtime > p_s) & (start < p_e)]] = True
        free_t = self._free_at(t)
        col_all = np.minimum(np.where(held, 0, free_t), self.total)
        choice = select(cast("Cycle", self), job, np.where(usable, col_all, -1))
        if choice is None:
            return None
        return self._record(job, float(start), float(end), choice, col_all), ""

    def _avail_matrix(
        self, job: Job, runtime: float, usable: np.ndarray, times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(nodes x times available GPUs for a job starting at each time and running
        ``runtime``, on every node: the caller masks ``usable``; the starts; the ends)."""
        n = len(self.free)
        whole = self.whole_node_reservations
        r_start, r_end, r_lens, r_idx, r_g = self._res_arrays()
        ev_times, free_ev = self._free_profile()
        T = times.size
        # Free GPUs at each candidate time: the column of the last expected end at or before it.
        free_t = free_ev[:, np.searchsorted(ev_times, times, side="right")]
        starts = np.maximum(times, self.now)
        ends = starts + runtime
        if r_start.size:
            lo = np.searchsorted(ends, r_start, side="right")
            hi = np.searchsorted(starts, r_end, side="left")
            keep = np.repeat(lo < hi, r_lens)
            w = (np.ones(r_idx.size) if whole else r_g)[keep]
            nodes = r_idx[keep] * (T + 1)
            hd = np.bincount(
                nodes + np.repeat(lo, r_lens)[keep], weights=w, minlength=n * (T + 1)
            ) - np.bincount(nodes + np.repeat(hi, r_lens)[keep], weights=w, minlength=n * (T + 1))
            held = np.cumsum(hd.reshape(n, T + 1)[:, :T], axis=1)
            if whole:
                avail_t = np.where(held > 0.5, 0, free_t)
            else:
                avail_t = np.maximum(free_t - held, 0).astype(np.int64)
        else:
            avail_t = np.maximum(free_t, 0)
        np.minimum(avail_t, self.total[:, None], out=avail_t)
        return avail_t, starts, ends

    def _record(
        self, job: Job, start: float, end: float, choice: Choice, avail_now: np.ndarray
    ) -> _Res:
        """Keep a reservation: its spare room, and less room for overlapping earlier ones."""
        whole = self.whole_node_reservations
        if whole and avail_now.dtype == np.int64 and (avail_now >= 0).all():
            spare = avail_now  # a fresh array from the search
            spare[choice.idx] = 0
        else:
            spare = avail_now.astype(np.int64)
            spare[choice.idx] -= choice.gpus
            if whole:
                spare[choice.idx] = 0
            spare = np.maximum(spare, 0)
        if self.reservations:
            r_start, r_end = self._res_arrays()[:2]
            over = np.flatnonzero((r_start < end) & (start < r_end))
            if over.size:
                mat = self._spare_mat
                if whole and len(choice.idx) == 1:
                    mat[over, int(choice.idx[0])] = 0
                else:
                    cells = np.ix_(over, choice.idx)  # node indices of a choice are distinct
                    if whole:
                        mat[cells] = 0
                    else:
                        mat[cells] = np.maximum(mat[cells] - choice.gpus, 0)
        res = _Res(job.job_id, start, end, choice.idx, choice.gpus, self._spare_row(spare))
        self.reservations.append(res)
        self.last_reservation_choice = choice
        return res

    def _sweep(
        self,
        job: Job,
        runtime: float,
        select: Selector,
        usable: np.ndarray,
        need: int,
        t_min: float,
    ) -> tuple[_Res | None, str]:
        n = len(self.free)
        whole = self.whole_node_reservations
        F = self.free.copy()
        pool_free = int(np.clip(F[usable], 0, None).sum())
        rs = self.reservations
        res_ends = {r.end for r in rs if r.end > self.now}
        ev_t, ev_lens, ev_idx, ev_g = self._event_arrays()
        ev_g = ev_g.astype(np.int64)
        ev_off = np.concatenate(([0], np.cumsum(ev_lens)))
        times = sorted(set(ev_t.tolist()) | res_ends)
        by_start = sorted(range(len(rs)), key=lambda i: rs[i].start)
        hold = np.zeros(n, dtype=np.int64)  # GPUs held (or, whole-node, reservations per node)
        active: list[tuple[float, int]] = []  # heap of (end, index) of reservations in the window
        si = 0
        k = 0
        n_ev = ev_t.size
        window_end = None if self.reservation_window is None else self.now + self.reservation_window
        for t in times:
            touched = t in res_ends
            if k < n_ev and ev_t[k] <= t:
                k1 = int(np.searchsorted(ev_t, t, side="right"))
                lo, hi = int(ev_off[k]), int(ev_off[k1])
                idx, gpus = ev_idx[lo:hi], ev_g[lo:hi]
                np.add.at(F, idx, gpus)
                u = usable[idx]
                if u.any():
                    touched = True
                    pool_free += int(gpus[u].sum())
                k = k1
            if t < t_min:
                continue
            if window_end is not None and t > window_end:
                return None, (
                    f"no start found inside the backfill window ({self.reservation_window:.0f} s)"
                )
            start = max(t, self.now)
            end = start + runtime
            while si < len(by_start) and rs[by_start[si]].start < end:
                r = rs[by_start[si]]
                si += 1
                if r.end > start:
                    hold[r.idx] += 1 if whole else r.gpus
                    heapq.heappush(active, (r.end, by_start[si - 1]))
                    touched = True
            while active and active[0][0] <= start:
                _, i = heapq.heappop(active)
                r = rs[i]
                hold[r.idx] -= 1 if whole else r.gpus
                touched = True
            if not touched or pool_free < need:
                continue
            avail_now = np.where(hold > 0, 0, F) if whole else np.maximum(F - hold, 0)
            avail_now = np.minimum(avail_now, self.total)
            avail = np.where(usable, avail_now, -1)
            if np.count_nonzero(avail >= job.gpus_per_node) < job.num_nodes:
                continue
            choice = select(cast("Cycle", self), job, avail)
            if choice is None:
                continue
            return self._record(job, start, end, choice, avail_now), ""
        return None, "no start found: not enough capacity frees up when running jobs end"

    def reservation_record(self, res: _Res, estimate_source: str) -> Reservation:
        names = self.inv.names
        return Reservation(
            job_id=res.job_id,
            start_time=float(res.start),
            nodes=tuple(names[i] for i in res.idx),
            node_gpus=tuple(int(g) for g in res.gpus),
            runtime_estimate=float(res.end - res.start),
            estimate_source=estimate_source,
        )
