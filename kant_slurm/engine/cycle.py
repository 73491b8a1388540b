"""One planning cycle: walk an ordered queue over a scratch copy of node usage.

This is the machinery the policies share (as Slurm's "run now" and "will it run at T" share one
placement routine): a job either starts now, gets a reservation (one of the first K blocked
jobs), or waits. A job started while a higher-ranked job is blocked (backfill) must not delay any
reservation; the check is exact for the engine's own runtime estimates:

- Each reservation ``r`` (start ``t_r``, nodes and GPUs ``need_r``) keeps ``spare_r``: per node,
  the GPUs free at ``t_r`` beyond what ``r`` and the reservations overlapping it need.
- A job that would still run at ``t_r`` may take at most ``spare_r`` on each node (and what is
  free now); taking it lowers ``spare_r``. A job that ends before ``t_r`` is not limited by it.
- With ``whole_node_reservations`` (Slurm's backfill keeps node bitmaps, not GPU counts) a
  reserved node's spare is 0.

The earliest start of a blocked job is found by replaying expected ends (running jobs and jobs
started this cycle) in time order and calling the same node selector on the availability at each
end time, minus the holds of reservations whose window overlaps.

Within one cycle availability only shrinks, so a job shape that failed to start once fails again
for any job of that shape running at least as long: a memo turns most of a long queue into
dictionary lookups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import ClusterSnapshot, Job
from .plan import Placement
from .pools import pool_key, pool_mask, room_mask, running_replicas
from .reserve import ReservationSearch, _Res

log = logging.getLogger(__name__)


def lookup_ids(known: np.ndarray, objects: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object ids, position in ``known``, found) for each of ``objects``, ``known`` being a
    sorted array of ``id()``s kept from an earlier cycle: the tables that persist across cycles
    find the jobs they already hold without a dict look-up per job."""
    n = len(objects)
    ids = np.fromiter(map(id, objects), dtype=np.uint64, count=n)
    if known.size:
        pos = np.minimum(np.searchsorted(known, ids), known.size - 1)
        return ids, pos, known[pos] == ids
    return ids, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)


class RunningTable:
    """Per running job, what does not change while it runs: node indices, GPUs per node, its
    start plus runtime estimate and start plus time limit. Kept by a policy across cycles.

    Jobs are immutable and the simulator passes the same objects cycle after cycle: rows are
    found by ``id(job)`` in a sorted id array, so a cycle looks only at jobs that started since
    the last one, and the expected ends of thousands of running jobs are one array operation.
    The table holds the previous cycle's jobs, so an id found in it belongs to the very same
    (still living) object.
    """

    def __init__(self, token: Any = None) -> None:
        self.token = token
        self._clear()

    def _clear(self) -> None:
        """Forget every job (a new inventory)."""
        self.ids = np.empty(0, dtype=np.uint64)
        self.jobs: Sequence[Job] = ()
        # Per job (columns, in id order): start (nan: none, then "now"), estimate, time limit
        # (nan: none), offset of its nodes in the pool, node count (-1: unknown nodes, ignored).
        self.rows = np.empty((5, 0))
        # Node indices and GPUs of every job seen, back to back (compacted now and then).
        self.pool_idx = np.empty(0, dtype=np.int64)
        self.pool_g = np.empty(0, dtype=np.int64)
        self.inv = None

    def _row(self, job: Job, index, estimate):
        idx = None
        gpus = None
        if job.nodes:
            try:
                idx = np.fromiter(
                    (index[n] for n in job.nodes), dtype=np.int64, count=len(job.nodes)
                )
            except KeyError:
                log.warning("running job %s on unknown nodes %s: ignored", job.job_id, job.nodes)
                idx = None
            else:
                gpus = np.asarray(job.node_gpus or (job.gpus_per_node,) * len(idx), dtype=np.int64)
        est, _ = estimate(job)
        return (
            np.nan if job.start_time is None else job.start_time,
            est,
            np.nan if job.time_limit is None else job.time_limit,
            idx,
            gpus,
        )

    @staticmethod
    def _gather(off: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Pool positions of the node runs (offset, length), back to back."""
        if lens.size == 0:
            return np.empty(0, dtype=np.int64)
        ends = np.cumsum(lens)
        return np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(off - (ends - lens), lens)

    def releases(self, running: Sequence[Job], inv, estimate, now: float):
        """(expected ends ascending, nodes per job, node indices, GPUs) of ``running`` at
        ``now``, as :func:`~.estimate.expected_end` gives them; equal ends in running order."""
        rows, off, nlen = self.table(running, inv, estimate)
        start, est, limit = rows[0], rows[1], rows[2]
        # expected_end, vectorised: start + estimate; past it, start + limit; past that, now + 1.
        st = np.where(np.isnan(start), now, start)
        end = st + est
        by_limit = st + limit
        end = np.where(end > now, end, np.where(by_limit > now, by_limit, now + 1.0))
        keep = np.flatnonzero(nlen >= 0)
        order = keep[np.argsort(end[keep], kind="stable")]
        lens = nlen[order]
        take = self._gather(off[order], lens)
        return end[order], lens, self.pool_idx[take], self.pool_g[take]

    def table(
        self, running: Sequence[Job], inv, estimate
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of ``running`` in its order: ((start, estimate, limit, pool offset, node
        count) x jobs, pool offsets and node counts as integers); their nodes and GPUs are in
        ``pool_idx`` and ``pool_g``."""
        if inv is not self.inv:
            self._clear()
            self.inv = inv
        n = len(running)
        ids, pos, hit = lookup_ids(self.ids, running)
        rows = np.empty((5, n))
        h = np.flatnonzero(hit)
        if h.size:
            rows[:, h] = self.rows[:, pos[h]]
        miss = np.flatnonzero(~hit).tolist()
        if miss:
            index = inv.index
            add_idx, add_g = [], []
            at = self.pool_idx.size
            for i in miss:
                st, est, lim, idx, gpus = self._row(running[i], index, estimate)
                if idx is None:
                    rows[:, i] = (st, est, lim, -1, -1)
                else:
                    rows[:, i] = (st, est, lim, at, idx.size)
                    at += idx.size
                    add_idx.append(idx)
                    add_g.append(gpus)
            if add_idx:
                self.pool_idx = np.concatenate([self.pool_idx] + add_idx)
                self.pool_g = np.concatenate([self.pool_g] + add_g)
        nlen = rows[4].astype(np.int64)
        off = rows[3].astype(np.int64)
        live = int(nlen[nlen > 0].sum())
        if self.pool_idx.size > 2 * live + 4096:  # mostly ended jobs' nodes: compact
            known = np.flatnonzero(nlen >= 0)
            take = self._gather(off[known], nlen[known])
            self.pool_idx, self.pool_g = self.pool_idx[take], self.pool_g[take]
            new_off = np.cumsum(nlen[known]) - nlen[known]
            off[known] = new_off
            rows[3, known] = new_off
        srt = np.argsort(ids, kind="stable")
        self.ids, self.jobs = ids[srt], running
        self.rows = rows[:, srt]
        return rows, off, nlen


@dataclass(slots=True)
class Choice:
    """What a node selector picked for a job."""

    idx: np.ndarray  # node indices
    gpus: np.ndarray  # GPUs on each
    group: str | None = None
    why: str = ""
    alternatives: tuple = ()


Selector = Callable[["Cycle", Job, np.ndarray], "Choice | None"]
"""(cycle, job, avail) -> Choice or None. ``avail`` is free GPUs per node, -1 where the job may
not go (outside its pool, not schedulable, too few CPUs)."""


class LeafAgg:
    """Per leaf group, over one usable-node mask: how many nodes have at least k free GPUs,
    and the free/total GPU sums. Kept up to date as jobs start, so that placing a single-node
    job costs O(leaf groups), not O(nodes). Without topology all nodes form one group."""

    def __init__(self, cycle: Cycle, usable: np.ndarray, source: np.ndarray | None = None) -> None:
        inv = cycle.inv
        # What "free" means for this aggregate: the plain free GPUs, or what a job running
        # through every reservation may take (free, capped by every reservation's spare room).
        self.source = cycle.free if source is None else source
        has_topo = bool(inv.group_levels)
        leaf = inv.leaf_index if has_topo else np.zeros(len(inv), dtype=np.int32)
        self.ok = not bool((usable & (leaf < 0)).any())
        self.leaf = leaf
        self.usable = usable
        self.n_leaf = len(inv.leaf_names) if has_topo else 1
        self.names = inv.leaf_names if has_topo else ("",)
        self.gmax = int(cycle.total.max()) if len(cycle.total) else 0
        u = np.flatnonzero(usable)
        lu = leaf[u].astype(np.int64)
        fu = np.clip(self.source[u], 0, self.gmax)
        hist = np.zeros((self.n_leaf, self.gmax + 1), dtype=np.int64)
        np.add.at(hist, (lu, fu), 1)
        self.cnt_ge = hist[:, ::-1].cumsum(axis=1)[:, ::-1].copy()
        self.fr = np.bincount(lu, weights=fu, minlength=self.n_leaf)
        self.tot = np.bincount(lu, weights=cycle.total[u], minlength=self.n_leaf)
        order = np.argsort(lu, kind="stable")
        bounds = np.searchsorted(lu[order], np.arange(self.n_leaf + 1))
        self.nodes_of = [u[order[bounds[i] : bounds[i + 1]]] for i in range(self.n_leaf)]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.score = np.where(self.tot > 0, 1.0 - self.fr / np.maximum(self.tot, 1), 0.0)
        w = cycle.weight[u]
        self.equal_weight = bool(w.size == 0 or (w == w[0]).all())

    def update(self, idx: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Nodes ``idx`` went from ``old`` to ``new`` (source) GPUs."""
        usable, leaf, gmax = self.usable, self.leaf, self.gmax
        cnt_ge, fr, tot, score = self.cnt_ge, self.fr, self.tot, self.score
        for i, a, b in zip(idx.tolist(), old.tolist(), new.tolist(), strict=True):
            if not usable[i]:
                continue
            lf = int(leaf[i])
            a = min(max(a, 0), gmax)
            b = min(max(b, 0), gmax)
            if b < a:
                cnt_ge[lf, b + 1 : a + 1] -= 1
            elif b > a:
                cnt_ge[lf, a + 1 : b + 1] += 1
            f = float(fr[lf]) - (a - b)
            fr[lf] = f
            t = float(tot[lf])
            score[lf] = 1.0 - f / t if t > 0 else 0.0


@dataclass
class Cycle(ReservationSearch):
    """Scratch state of one planning cycle."""

    snapshot: ClusterSnapshot
    now: float
    whole_node_reservations: bool = False
    reservation_window: float | None = None  # Slurm's bf_window: no reservation beyond now+window
    pool_of: Callable[[Job], np.ndarray] | None = None  # job -> node mask (default: its pool)
    alternatives: int = 3  # alternative groups a selector reports
    spread_per_node: int = 1  # E-Spread's soft replicas-per-node target
    single_node: str = "leaf"  # E-Binpack for one-node jobs: fullest "leaf" or fullest "node"

    free: np.ndarray = field(init=False)
    cpus_free: np.ndarray = field(init=False)
    starts: list[Placement] = field(init=False, default_factory=list)
    reservations: list[_Res] = field(init=False, default_factory=list)
    fail_memo: dict = field(init=False, default_factory=dict)
    service_counts: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        snap = self.snapshot
        inv = snap.inventory
        self.inv = inv
        self.total = np.asarray(inv.gpus_total, dtype=np.int64)
        self.free = np.array(snap.free_gpus, dtype=np.int64)
        self.schedulable = np.asarray(snap.schedulable, dtype=bool)
        self.cpus_free = np.where(self.schedulable, inv.cpus_total - snap.cpus_alloc, 0).astype(
            np.int64
        )
        self.has_cpus = np.asarray(inv.cpus_total) > 0
        # (nodes that report memory, free MB per node): made when a job asking for memory comes
        self._mem_free: tuple[np.ndarray, np.ndarray] | None = None
        self.weight = np.asarray(snap.weight, dtype=np.int64)
        self._usable_cache: dict = {}
        self._pool_size: dict = {}
        self._gsum: dict = {}
        self._leaf_aggs: dict = {}
        self._lim_aggs: dict = {}
        self._lim_n = -1
        self.lim_all: np.ndarray | None = None
        self.cur_usable: np.ndarray | None = None  # the usable mask of the job being placed
        self.cur_limited = True  # avail differs from the plain free GPUs (reservations, future)
        self.starts = []
        self.reservations = []
        self._running: tuple | None = None  # (running jobs, estimate, RunningTable), lazily
        self._base_ev: tuple | None = None  # running jobs' releases as flat arrays
        self._extra: list[tuple[float, np.ndarray, np.ndarray]] = []  # jobs started this cycle
        self.fail_memo = {}
        self.res_memo: dict = {}  # shape -> (runtime, start or None, reason), read by the walk
        self.res_fail: dict = {}  # shape -> (shortest runtime whose search failed, reason)
        self.res_ok: dict = {}  # shape -> {runtime: latest reserved start}
        self.service_counts = {}

    # ----------------------------------------------------------------------------- timeline
    def add_release(self, end: float, idx: np.ndarray, gpus: np.ndarray) -> None:
        """Record that ``gpus`` on nodes ``idx`` come back at ``end``."""
        self._extra.append((end, idx, gpus))

    def load_running(
        self,
        running: Sequence[Job],
        estimate: Callable[[Job], tuple[float, str]],
        table: RunningTable | None = None,
    ) -> None:
        """Expected ends of running jobs into the timeline.

        Only a reservation search reads the timeline, so the releases are worked out when the
        first search of the cycle asks (:meth:`_base_events`); ``table`` (kept by the policy
        across cycles) holds what does not change while a job runs."""
        self._running = (running, estimate, table if table is not None else RunningTable())
        self._base_ev = None

    def running_table(self):
        """(rows, pool offsets, node counts, pool node indices, pool GPUs) of the running jobs
        (:meth:`RunningTable.table`), for the compiled walk, which sorts the releases itself
        when a search first needs them."""
        if self._running is None:
            e = np.empty(0, np.int64)
            return np.empty((5, 0)), e, e, e, e
        running, estimate, table = self._running
        rows, off, nlen = table.table(running, self.inv, estimate)
        return rows, off, nlen, table.pool_idx, table.pool_g

    def _base_events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Running jobs' releases: (expected ends ascending, nodes per job, node indices, GPUs),
        equal ends in the order of ``snapshot.running``."""
        if self._base_ev is None:
            if self._running is None:
                self._base_ev = (
                    np.empty(0),
                    np.empty(0, np.int64),
                    np.empty(0, np.int64),
                    np.empty(0, np.int64),
                )
            else:
                running, estimate, table = self._running
                self._base_ev = table.releases(running, self.inv, estimate, self.now)
        return self._base_ev

    @property
    def n_events(self) -> int:
        """Expected ends on the timeline (running jobs and jobs started this cycle)."""
        return int(self._base_events()[0].size) + len(self._extra)

    # ----------------------------------------------------------------------------- masks
    def usable(self, job: Job) -> np.ndarray:
        """Nodes the job may use at all: its pool, its room by the cluster's rules,
        schedulable, enough CPUs in total."""
        pool = self.pool_of(job) if self.pool_of else pool_mask(self.inv, job)
        # The live cluster's rules that change with the snapshot (advance reservations, free
        # memory); None in the simulator.
        room = room_mask(self.snapshot, job, self.now)
        key = (id(pool), id(room), job.cpus_per_node, job.gpus_per_node)
        m = self._usable_cache.get(key)
        if m is None:
            m = pool & self.schedulable & (self.total >= job.gpus_per_node)
            if room is not None:
                m &= room
            if job.cpus_per_node > 0:
                m &= ~self.has_cpus | (np.asarray(self.inv.cpus_total) >= job.cpus_per_node)
            for other in self._usable_cache.values():  # one object per distinct mask
                if np.array_equal(other, m):
                    m = other
                    break
            self._usable_cache[key] = m
        return m

    def group_sums(self, level: int, avail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(free GPUs, total GPUs) per group of ``level`` over the usable nodes of ``avail``.

        For a plain "run now" question the sums are kept up to date across the cycle instead of
        recomputed per job (the big-queue fast path).
        """
        names, gidx = self.inv.group_levels[level]
        if self.cur_limited or self.cur_usable is None:
            m = (avail >= 0) & (gidx >= 0)
            g = gidx[m]
            return (
                np.bincount(g, weights=avail[m], minlength=len(names)),
                np.bincount(g, weights=self.total[m], minlength=len(names)),
            )
        key = (id(self.cur_usable), level)
        entry = self._gsum.get(key)
        if entry is None:
            m = self.cur_usable & (gidx >= 0)
            g = gidx[m]
            fr = np.bincount(g, weights=np.clip(self.free[m], 0, None), minlength=len(names))
            tot = np.bincount(g, weights=self.total[m], minlength=len(names))
            entry = (fr, tot, m)
            self._gsum[key] = entry
        return entry[0], entry[1]

    def leaf_agg(self, usable: np.ndarray, through_all: bool = False) -> LeafAgg:
        if not through_all:
            agg = self._leaf_aggs.get(id(usable))
            if agg is None:
                agg = LeafAgg(self, usable)
                self._leaf_aggs[id(usable)] = agg
            return agg
        n_res = len(self.reservations)
        if self._lim_n != n_res:  # a new reservation: the capped view changes
            lim = self.free.copy()
            for r in self.reservations:
                np.minimum(lim, r.spare, out=lim)
            old = self.lim_all
            if old is not None and self._lim_aggs:
                # Update the aggregates on the nodes whose cap moved (a reservation caps few
                # nodes) instead of building them again; they hold ``old``'s values, even if
                # jobs started since (commit_start leaves a stale view alone).
                moved = np.flatnonzero(lim != old)
                for agg in self._lim_aggs.values():
                    agg.update(moved, old[moved], lim[moved])
                    agg.source = lim
            self.lim_all = lim
            self._lim_n = n_res
        agg = self._lim_aggs.get(id(usable))
        if agg is None:
            agg = LeafAgg(self, usable, source=self.lim_all)
            self._lim_aggs[id(usable)] = agg
        return agg

    def shape_key(self, job: Job) -> tuple:
        return shape_key(job)

    # ----------------------------------------------------------------------------- now
    def try_start(self, job: Job, end: float, select: Selector) -> Choice | None:
        """Can ``job`` start now without delaying a reservation? (No state change.)"""
        key = self.shape_key(job)
        failed_end = self.fail_memo.get(key)
        if failed_end is not None and end >= failed_end:
            return None
        usable = self.usable(job)
        limit = self.free
        limited = False
        for r in self.reservations:
            if r.start < end:
                limit = np.minimum(limit, r.spare)
                limited = True
        fast = getattr(select, "fast", None)
        if fast is not None and job.cpus_per_node == 0 and not job.mem_per_node_mb:
            # The leaf aggregates answer for a job limited by no reservation, or by every one
            # (it runs through all of them, which the "through all" aggregate tracks as jobs
            # start); a job overlapping only some takes the general path below.
            through_all = limited and all(r.start < end for r in self.reservations)
            if through_all or not limited:
                agg = self.leaf_agg(usable, through_all=through_all)
                if agg.ok:
                    choice = fast(self, job, agg)
                    if choice is not NotImplemented:
                        if choice is None:
                            self._remember_failure(key, end)
                        return choice
        avail = np.where(usable, limit, -1)
        if job.cpus_per_node > 0:
            avail[self.has_cpus & (self.cpus_free < job.cpus_per_node)] = -1
        if job.mem_per_node_mb:  # what jobs started this cycle took counts too
            has_memory, mem_free = self.memory_free()
            avail[has_memory & (mem_free < job.mem_per_node_mb)] = -1
            limited = True  # group sums come from avail, not the plain free GPUs
        self.cur_usable, self.cur_limited = usable, limited
        choice = select(self, job, avail)
        self.cur_usable, self.cur_limited = None, True
        if choice is None:
            self._remember_failure(key, end)
        return choice

    def memory_free(self) -> tuple[np.ndarray, np.ndarray]:
        """(nodes that report memory, free MB per node after this cycle's starts)."""
        if self._mem_free is None:
            mem = np.asarray(self.inv.memory_mb, dtype=np.int64)
            self._mem_free = (
                mem > 0,
                mem - np.asarray(self.snapshot.memory_alloc_mb, dtype=np.int64),
            )
        return self._mem_free

    def _remember_failure(self, key: tuple, end: float) -> None:
        # A shape that cannot start with this end cannot start with any later end either
        # (it would overlap the same reservations and more): keep the earliest failed end.
        prev = self.fail_memo.get(key)
        self.fail_memo[key] = end if prev is None else min(prev, end)

    def commit_start(self, job: Job, choice: Choice, end: float, placement: Placement) -> None:
        idx, gpus = choice.idx, choice.gpus
        old = self.free[idx]
        self.free[idx] = old - gpus
        for agg in self._leaf_aggs.values():
            agg.update(idx, old, old - gpus)
        if job.cpus_per_node > 0:
            self.cpus_free[idx] -= job.cpus_per_node
        if job.mem_per_node_mb:
            self.memory_free()[1][idx] -= job.mem_per_node_mb
        for r in self.reservations:
            if r.start < end:
                r.spare[idx] = np.maximum(r.spare[idx] - gpus, 0)
        if self.lim_all is not None and self._lim_n == len(self.reservations):
            old_lim = self.lim_all[idx]
            new_lim = self.free[idx].copy()
            for r in self.reservations:
                np.minimum(new_lim, r.spare[idx], out=new_lim)
            self.lim_all[idx] = new_lim
            for agg in self._lim_aggs.values():
                agg.update(idx, old_lim, new_lim)
        self.add_release(end, idx, gpus)
        if self._gsum:
            levels = self.inv.group_levels
            pairs = list(zip(idx.tolist(), gpus.tolist(), strict=True))
            for (_, level), (fr, _tot, m) in self._gsum.items():
                gidx = levels[level][1]
                for i, g in pairs:
                    if m[i]:
                        fr[gidx[i]] -= g
        if job.service is not None:
            counts = self.service_count_array(job.service)
            counts[idx] += 1
        self.starts.append(placement)

    def service_count_array(self, service: str) -> np.ndarray:
        """Replicas of ``service`` per node (running plus started this cycle)."""
        arr = self.service_counts.get(service)
        if arr is None:
            arr = running_replicas(self.snapshot, service)
            self.service_counts[service] = arr
        return arr

    def names_of(self, idx: np.ndarray) -> tuple[str, ...]:
        names = self.inv.names
        return tuple([names[i] for i in idx.tolist()])


def shape_key(job: Job) -> tuple:
    """Everything about a job that decides whether and where it fits (its "shape"): jobs with
    equal keys see the same nodes and ask for the same room, so within one cycle a shape that
    failed to start fails again for every job of that shape running at least as long."""
    return (
        pool_key(job),
        job.job_class,
        job.num_nodes,
        job.gpus_per_node,
        job.cpus_per_node,
        job.service,
        job.max_per_node,
        job.exclusive,
    )


def describe_nodes(names: Sequence[str], gpus: Sequence[int]) -> str:
    """``gn01:4,gn02:8`` style, shortened for long lists."""
    parts = [f"{n}:{int(g)}" for n, g in zip(names, gpus, strict=False)]
    if len(parts) > 8:
        return ",".join(parts[:8]) + f",... ({len(parts)} nodes)"
    return ",".join(parts)


_ = Any
