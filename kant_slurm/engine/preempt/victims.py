"""The running preemptible jobs as a victim search sees them, and the room it changes.

:class:`SearchState` holds the free GPUs and CPUs once the plan's starts are placed, and every
running preemptible job (:class:`Victim`) with its node indices, GPUs, CPUs and the work it
would lose, also as flat arrays (one entry per victim and node) for vectorised bounds. Both
models (:mod:`.kant`, :mod:`.slurm`) search over it and call :meth:`SearchState.take` for each
job they start.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...model import ClusterSnapshot, Job
from ..classify import JobRules
from ..plan import Plan
from ..pools import pool_mask, room_mask, running_replicas

_JOB_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""inventory -> {id(job): (job, rules, (node indices, GPUs, interval) or None)}."""


def lost_gpu_seconds(job: Job, now: float, interval: float) -> float:
    """GPU-seconds of work since the job's last checkpoint (a whole interval if its start is
    unknown)."""
    if job.start_time is None or interval <= 0:
        return float(job.gpus) * float(interval)
    ran = max(0.0, now - job.start_time)
    return float(job.gpus) * (ran % interval)


@dataclass(slots=True)
class Victim:
    """A running preemptible job as the victim search sees it."""

    job: Job
    idx: np.ndarray  # node indices
    gpus: np.ndarray  # GPUs on each
    lost: float  # GPU-seconds lost if preempted now
    cpus: np.ndarray  # CPUs on each node


class SearchState:
    """Free GPUs after the plan's starts, and the preemptible running jobs by node (also as
    flat arrays, one entry per victim and node, for vectorised bounds)."""

    def __init__(self, snapshot: ClusterSnapshot, plan: Plan, now: float, rules: JobRules) -> None:
        inv = snapshot.inventory
        self.inv = inv
        self.snapshot = snapshot
        self.now = now
        self.total = np.asarray(inv.gpus_total, dtype=np.int64)
        self.free = np.array(snapshot.free_gpus, dtype=np.int64)
        self.schedulable = np.asarray(snapshot.schedulable, dtype=bool)
        # CPUs: checked only on nodes that report a count (as the cycle does).
        self.has_cpus = np.asarray(inv.cpus_total) > 0
        self.cpus_free = np.where(self.schedulable, inv.cpus_total - snapshot.cpus_alloc, 0).astype(
            np.int64
        )
        self.cpus_free[~self.has_cpus] = 1 << 40  # unknown count: never the limit
        index = inv.index
        job_of = snapshot.job
        for p in plan.starts:
            started = job_of.get(p.job_id)
            cpn = started.cpus_per_node if started is not None else 0
            for n, g in zip(p.nodes, p.node_gpus, strict=False):
                self.free[index[n]] -= int(g)
                self.cpus_free[index[n]] -= cpn
        jobs: list[Job] = []
        f_node: list[int] = []
        f_gpus: list[int] = []
        f_cpus: list[int] = []
        lens: list[int] = []
        starts: list[float] = []
        intervals: list[float] = []
        # Per running Job object (the simulator passes the same ones cycle after cycle): its
        # node indices, GPUs and interval, or None when it is no victim.
        cache = _JOB_CACHE.setdefault(inv, {})
        if len(cache) > 4 * len(snapshot.running) + 1024:
            cache.clear()
        for job in snapshot.running:
            hit = cache.get(id(job))
            if hit is not None and hit[0] is job and hit[1] == rules:
                entry = hit[2]
            else:
                entry = None
                if job.nodes and rules.preemptible(job):
                    try:
                        idx = [index[n] for n in job.nodes]
                        entry = (
                            idx,
                            list(job.node_gpus or (job.gpus_per_node,) * len(idx)),
                            rules.checkpoint_of(job),
                            list(job.node_cpus or (job.cpus_per_node,) * len(idx)),
                        )
                    except KeyError:
                        entry = None
                cache[id(job)] = (job, rules, entry)
            if entry is None:
                continue
            jobs.append(job)
            f_node.extend(entry[0])
            f_gpus.extend(entry[1])
            f_cpus.extend(entry[3])
            lens.append(len(entry[0]))
            st = job.start_time
            starts.append(np.nan if st is None else st)
            intervals.append(entry[2])
        self.f_node = np.asarray(f_node, dtype=np.int64)
        f_g = np.asarray(f_gpus, dtype=np.int64)
        self.f_gpus = f_g
        self.f_cpus = np.asarray(f_cpus, dtype=np.int64)
        self.pre_cpus = np.bincount(self.f_node, weights=self.f_cpus, minlength=len(inv)).astype(
            np.int64
        )
        lens_a = np.asarray(lens, dtype=np.int64)
        self.f_vic = np.repeat(np.arange(len(jobs), dtype=np.int64), lens_a)
        self.pre_gpus = np.bincount(self.f_node, weights=f_g, minlength=len(inv)).astype(np.int64)
        # Lost work, vectorised: GPUs x ((now - start) mod interval); unknown start: interval.
        gsum = np.bincount(self.f_vic, weights=f_g, minlength=len(jobs))
        start = np.asarray(starts, dtype=float)
        interval = np.asarray(intervals, dtype=float)
        ran = np.maximum(0.0, now - np.nan_to_num(start, nan=now))
        self.v_lost = np.where(
            np.isnan(start),
            gsum * interval,
            gsum * np.mod(ran, np.where(interval > 0, interval, 1.0)),
        )
        self.v_start = np.nan_to_num(start, nan=0.0)
        self.v_prio = np.asarray([j.priority for j in jobs], dtype=np.int64)
        offs = np.concatenate(([0], np.cumsum(lens_a))).tolist()
        lost_l = self.v_lost.tolist()
        fc = self.f_cpus
        self.victims = [
            Victim(
                j,
                self.f_node[offs[k] : offs[k + 1]],
                f_g[offs[k] : offs[k + 1]],
                lost_l[k],
                fc[offs[k] : offs[k + 1]],
            )
            for k, j in enumerate(jobs)
        ]
        self.alive = np.ones(len(jobs), dtype=bool)
        order = np.argsort(self.f_node, kind="stable")
        self._by_order = order
        self._by_bounds = np.searchsorted(self.f_node[order], np.arange(len(inv) + 1))
        self._by_node: dict[int, list[tuple[int, int, int]]] = {}
        self.service_extra: dict[str, np.ndarray] = {}
        self._plan_starts = plan.starts

    def by_node(self, i: int) -> list[tuple[int, int, int]]:
        """(victim, GPUs, CPUs it holds on node ``i``) for every victim on ``i``."""
        out = self._by_node.get(i)
        if out is None:
            sl = self._by_order[self._by_bounds[i] : self._by_bounds[i + 1]]
            out = list(
                zip(
                    self.f_vic[sl].tolist(),
                    self.f_gpus[sl].tolist(),
                    self.f_cpus[sl].tolist(),
                    strict=True,
                )
            )
            self._by_node[i] = out
        return out

    def take(self, victims: Sequence[int], job: Job, idx: np.ndarray, gpus: np.ndarray) -> None:
        """Victims stop, ``job`` starts on ``idx``."""
        for v in victims:
            vic = self.victims[v]
            self.free[vic.idx] += vic.gpus
            self.pre_gpus[vic.idx] -= vic.gpus
            self.cpus_free[vic.idx] += vic.cpus
            self.pre_cpus[vic.idx] -= vic.cpus
            self.alive[v] = False
        self.free[idx] -= gpus
        self.cpus_free[idx] -= job.cpus_per_node
        if job.service is not None and job.service in self.service_extra:
            self.service_extra[job.service][idx] += 1

    def min_lost(self, skip: Sequence[int] = ()) -> np.ndarray:
        """Per node, the smallest loss of a live victim on it (inf: none)."""
        out = np.full(len(self.inv), np.inf)
        if self.f_vic.size:
            live = self.alive.copy()
            if skip:
                live[list(skip)] = False
            m = live[self.f_vic]
            np.minimum.at(out, self.f_node[m], self.v_lost[self.f_vic[m]])
        return out

    def service_counts(self, service: str) -> np.ndarray:
        """Replicas of ``service`` per node: running, started by the plan, started here."""
        arr = self.service_extra.get(service)
        if arr is None:
            arr = running_replicas(self.snapshot, service)
            index = self.inv.index
            job_of = self.snapshot.job
            for p in self._plan_starts:
                j = job_of.get(p.job_id)
                if j is not None and j.service == service:
                    for n in p.nodes:
                        arr[index[n]] += 1
            self.service_extra[service] = arr
        return arr

    def need_cpus(self, job: Job) -> np.ndarray:
        """CPUs the job needs per node where they are checked (0 elsewhere)."""
        return np.where(self.has_cpus, job.cpus_per_node, 0)

    def candidate_mask(self, job: Job) -> np.ndarray:
        """Nodes the job may use at all: its pool, schedulable, big enough, below its cap."""
        g = job.gpus_per_node
        m = pool_mask(self.inv, job) & self.schedulable & (self.total >= g)
        room = room_mask(self.snapshot, job, self.now)  # reservations, memory (live only)
        if room is not None:
            m &= room
        if job.cpus_per_node > 0:
            m &= ~self.has_cpus | (np.asarray(self.inv.cpus_total) >= job.cpus_per_node)
        if job.service is not None and job.max_per_node:
            m &= self.service_counts(job.service) < job.max_per_node
        return m
