"""Preemption for inference jobs (issue 8): which running jobs to stop so a pending inference
job starts now. Pure: a snapshot, ``now``, the policy's plan and the config in; the plan with
``preemptions`` and the extra ``starts`` out. No Slurm, no files, no clock.

The simulator carries out ``Plan.preemptions`` first (the victim ends now, loses the work since
its last checkpoint and returns to the queue), then ``starts``; the actuator signals and
requeues the victims (``preemption.grace_seconds`` for them to checkpoint).

``kant`` (:func:`kant_preemptions`)
-----------------------------------
*When.* A pending inference job ``j`` is *at risk* when the plan does not start it, it is
eligible, what blocks it is room (the plan's reason starts with "does not fit now" or "not
tested by backfill"; a quota gate or an eligibility time is never overridden), and

- ``now >= submit + sla - preemption.lead_seconds`` (its deadline is near or past: the lead
  leaves time for the victims' grace period and one more cycle), and
- the plan gives it no reservation starting by ``submit + sla`` (if the engine's own forecast
  says it starts in time, waiting costs nobody anything).

``sla`` is the job's (kant tag ``sla=``) else ``inference.sla``. Until a pending inference job
gets that close, this module costs one pass over the pending jobs' class.

*Whom.* Only running jobs that are preemptible (QOS, partition or class listed under
``preemption``, see :mod:`.classify`), never inference. A victim's loss is the work since its
last checkpoint, ``lost = GPUs x ((now - start) mod checkpoint_interval)`` GPU-seconds (its
own interval, else ``preemption.checkpoint_interval``; unknown start: a whole interval). A gang
is preempted whole: all its nodes are freed and all its GPUs count in ``lost``.

*Which.* Among the nodes of the job's pool (partitions, GPU type, per-node service cap) the
victim sets that free what the job needs (GPUs, and CPUs on nodes that report a CPU count),
compared lexicographically by

1. fewest GPU-hours lost (compared in whole GPU-minutes, so that the next rules can decide),
2. fewest jobs preempted,
3. least new fragmentation: (nodes partly used afterwards) - (before), over the touched nodes
   (the job's nodes and every node a victim frees), so a node that becomes whole or fully
   used is preferred to one left partly used,
4. where: a node in the inference zone, then in a leaf group holding zone nodes (for a
   multi-node job: all nodes in one leaf group first), then anywhere,
5. best fit: fewest GPUs left free on the chosen node, then node order.

A node with room already (zero victims: e.g. outside the zone, or room the plan held for a
reservation) wins by rule 1, so an at-risk job first borrows free GPUs. Per node the cheapest
victim set is exact (a 0/1 knapsack over the node's preemptible jobs, GPUs and CPUs as
weights; nodes are visited in order of a lower bound of their loss, and the search stops once
the bound exceeds the best found);
multi-node jobs take nodes greedily, one at a time, each time the cheapest given the victims
already chosen (victims on several of its nodes are counted once). At most
``preemption.max_victims`` victims per cycle; at-risk jobs are served earliest deadline first.

``slurm`` (:func:`slurm_preemptions`), ``preemption.slurm: true``
-----------------------------------------------------------------
A model of Slurm 22.05 with ``PreemptType=preempt/qos``, ``PreemptMode=REQUEUE`` and the
inference jobs in a QOS whose ``Preempt=`` lists the QOS of the preemptible jobs. There is no
SLA: any pending inference job the plan does not start, eligible, preempts at once if
removing candidates lets it run. Sources (read with the ``search`` tool):

- ``src/slurmctld/preempt.c`` (``slurm_find_preemptable_jobs``, ``_add_preemptable_job``,
  ``_sort_by_prio``, ``_sort_by_youngest``): candidates are running preemptible jobs on the
  preemptor's partition nodes, sorted by preemption priority, lowest first (the job priority
  here; the QOS part is equal among one QOS), or with ``PreemptParameters=youngest_first`` by
  start time, newest first.
- ``src/plugins/select/cons_common/job_test.c`` ``_run_now`` (22.05): test without preemption;
  else remove candidates one at a time in list order from a scratch copy of node usage and run
  the node selection after each removal. On success and while ``pass_count <=
  reorder_count`` (``PreemptParameters=reorder_count``, default 1) and more candidates than
  passes remain, re-sort the candidates (the last one removed first, then the others removed by
  how many of their nodes the selection uses, then the rest) and start again. The preemptees
  are the removed candidates that overlap the selected nodes: all of them are requeued, even
  ones the job would not have needed.
- node selection: the ``slurm`` policy's own model of cons_tres (:func:`.select.slurm_cons_tres`)
  on the GPUs (and CPUs) free once the removed candidates are gone.

The preemptors are the pending inference jobs, highest ``Job.priority`` first (a live snapshot
carries Slurm's priority, which includes the QOS priority; a simulator must give inference
jobs the higher priority their QOS would, or the ``slurm`` policy's queue order will not put
them first).

Simplifications: Slurm starts the preemptor in a later pass once the victims have exited (after
``GraceTime``); here it is started in the same plan on the freed GPUs (the simulator may add the
grace delay). Ties in Slurm's ``list_sort`` (qsort, unstable) are broken by list order here.
No bound on victims per cycle (Slurm has none). Preemption by partition priority, suspend and
gang modes are not modelled.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..model import ClusterSnapshot, Job
from .classify import JobRules
from .estimate import runtime_estimate
from .plan import Placement, Plan, Preemption
from .pools import pool_mask, room_mask, running_replicas

log = logging.getLogger(__name__)

LOST_RESOLUTION_S = 60.0
"""Lost work is compared in whole GPU-minutes (rule 1), so near ties go to the next rules."""

_JOB_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""inventory -> {id(job): (job, rules, (node indices, GPUs, interval) or None)}."""

_ROOM_REASONS = ("does not fit now", "not tested by backfill")


# --------------------------------------------------------------------------------------------
# Victims and scratch state
# --------------------------------------------------------------------------------------------


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


class _State:
    """Free GPUs after the plan's starts, and the preemptible running jobs by node (also as
    flat arrays, one entry per victim and node, for vectorised bounds)."""

    def __init__(self, snapshot: ClusterSnapshot, plan: Plan, now: float, rules: JobRules
                 ) -> None:
        inv = snapshot.inventory
        self.inv = inv
        self.snapshot = snapshot
        self.now = now
        self.total = np.asarray(inv.gpus_total, dtype=np.int64)
        self.free = np.array(snapshot.free_gpus, dtype=np.int64)
        self.schedulable = np.asarray(snapshot.schedulable, dtype=bool)
        # CPUs: checked only on nodes that report a count (as the cycle does).
        self.has_cpus = np.asarray(inv.cpus_total) > 0
        self.cpus_free = np.where(self.schedulable, inv.cpus_total - snapshot.cpus_alloc,
                                  0).astype(np.int64)
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
                        entry = (idx, list(job.node_gpus or (job.gpus_per_node,) * len(idx)),
                                 rules.checkpoint_of(job),
                                 list(job.node_cpus or (job.cpus_per_node,) * len(idx)))
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
        self.pre_cpus = np.bincount(self.f_node, weights=self.f_cpus,
                                    minlength=len(inv)).astype(np.int64)
        lens_a = np.asarray(lens, dtype=np.int64)
        self.f_vic = np.repeat(np.arange(len(jobs), dtype=np.int64), lens_a)
        self.pre_gpus = np.bincount(self.f_node, weights=f_g, minlength=len(inv)).astype(np.int64)
        # Lost work, vectorised: GPUs x ((now - start) mod interval); unknown start: interval.
        gsum = np.bincount(self.f_vic, weights=f_g, minlength=len(jobs))
        start = np.asarray(starts, dtype=float)
        interval = np.asarray(intervals, dtype=float)
        ran = np.maximum(0.0, now - np.nan_to_num(start, nan=now))
        self.v_lost = np.where(np.isnan(start), gsum * interval,
                               gsum * np.mod(ran, np.where(interval > 0, interval, 1.0)))
        self.v_start = np.nan_to_num(start, nan=0.0)
        self.v_prio = np.asarray([j.priority for j in jobs], dtype=np.int64)
        offs = np.concatenate(([0], np.cumsum(lens_a))).tolist()
        lost_l = self.v_lost.tolist()
        fc = self.f_cpus
        self.victims = [Victim(j, self.f_node[offs[k]:offs[k + 1]], f_g[offs[k]:offs[k + 1]],
                               lost_l[k], fc[offs[k]:offs[k + 1]]) for k, j in enumerate(jobs)]
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
            sl = self._by_order[self._by_bounds[i]:self._by_bounds[i + 1]]
            out = list(zip(self.f_vic[sl].tolist(), self.f_gpus[sl].tolist(),
                           self.f_cpus[sl].tolist(), strict=True))
            self._by_node[i] = out
        return out

    def take(self, victims: Sequence[int], job: Job, idx: np.ndarray, gpus: np.ndarray
             ) -> None:
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


def _partial(alloc: np.ndarray, total: np.ndarray) -> np.ndarray:
    return (alloc > 0) & (alloc < total)


# --------------------------------------------------------------------------------------------
# kant: least-harm victims
# --------------------------------------------------------------------------------------------


def _q(lost: float) -> int:
    return round(lost / LOST_RESOLUTION_S)


@dataclass(slots=True)
class _Pick:
    """Victims and nodes for one job, with the harm that ranks it."""

    victims: tuple[int, ...]
    idx: np.ndarray
    lost: float
    frag: int
    where: int  # 0 zone, 1 a zone leaf, 2 elsewhere
    left: int  # GPUs left free on the chosen nodes

    def key(self) -> tuple:
        return (_q(self.lost), len(self.victims), self.frag, self.where, self.left,
                self.idx.tolist())


def _node_victims(state: _State, i: int, need: int, budget: int, skip: Sequence[int],
                  need_cpus: int = 0) -> tuple[float, tuple[int, ...]] | None:
    """Cheapest set (lost, then count) of live victims on node ``i`` freeing >= ``need`` GPUs
    (and >= ``need_cpus`` CPUs) there: exact 0/1 knapsack, the freed amounts capped at the
    need."""
    need = max(need, 0)
    need_cpus = max(need_cpus, 0)
    if need == 0 and need_cpus == 0:
        return 0.0, ()
    alive = state.alive
    lost_of = state.v_lost
    # (GPUs freed, CPUs freed), capped -> (lost rounded, count, lost, victims)
    dp: dict[tuple[int, int], tuple] = {(0, 0): (0, 0, 0.0, ())}
    for v, g, c in state.by_node(i):
        if not alive[v] or v in skip:
            continue
        lost = float(lost_of[v])
        for (fg, fc), cur in list(dp.items()):
            if cur[1] + 1 > budget:
                continue
            key = (min(need, fg + g), min(need_cpus, fc + c))
            tot = cur[2] + lost
            cand = (_q(tot), cur[1] + 1, tot, cur[3] + (v,))
            old = dp.get(key)
            if old is None or cand[:3] < old[:3]:
                dp[key] = cand
    best = dp.get((need, need_cpus))
    if best is None:
        return None
    return best[2], best[3]


def _frag_delta(state: _State, free_after: np.ndarray, touched: np.ndarray) -> int:
    before = _partial(state.total[touched] - state.free[touched], state.total[touched])
    after = _partial(state.total[touched] - free_after[touched], state.total[touched])
    return int(after.sum()) - int(before.sum())


def _where(i: int, zone: np.ndarray | None, zone_leaves: np.ndarray | None, state: _State
           ) -> int:
    if zone is not None and zone[i]:
        return 0
    if zone_leaves is not None:
        lf = state.inv.leaf_index[i]
        if lf >= 0 and zone_leaves[lf]:
            return 1
    return 2


def _candidates(state: _State, g: int, cand: np.ndarray, free: np.ndarray, pre: np.ndarray,
                skip: Sequence[int], cneed: np.ndarray, cfree: np.ndarray, cpre: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes that could hold ``g`` GPUs (and ``cneed`` CPUs) once their preemptible jobs are
    gone, with a lower bound of the loss there (0 with room already, else the cheapest live
    victim), in bound order: the search stops once the bound exceeds the best found."""
    ok = cand & (np.maximum(free, 0) + pre >= g) & (np.maximum(cfree, 0) + cpre >= cneed)
    lb = np.where((free >= g) & (cfree >= cneed), 0.0, state.min_lost(skip))
    nodes = np.flatnonzero(ok & np.isfinite(lb))
    lbn = lb[nodes]
    order = np.lexsort((nodes, lbn))
    return nodes[order], lbn[order]


def _single(state: _State, job: Job, cand: np.ndarray, budget: int, zone, zone_leaves
            ) -> _Pick | None:
    g = job.gpus_per_node
    best: _Pick | None = None
    best_key = None
    cneed = state.need_cpus(job)
    nodes, lbs = _candidates(state, g, cand, state.free, state.pre_gpus, (), cneed,
                             state.cpus_free, state.pre_cpus)
    for i, lb in zip(nodes.tolist(), lbs.tolist(), strict=True):
        if best_key is not None and _q(lb) > best_key[0]:
            break  # every node left loses more than the best (rule 1)
        got = _node_victims(state, i, int(g - max(state.free[i], 0)), budget, (),
                            int(cneed[i] - max(state.cpus_free[i], 0)))
        if got is None:
            continue
        vl, vs = got
        if best_key is not None and (_q(vl), len(vs)) > best_key[:2]:
            continue
        idx = np.asarray([i], dtype=np.int64)
        free_after = state.free.copy()
        touched = [idx]
        for v in vs:
            vic = state.victims[v]
            free_after[vic.idx] += vic.gpus
            touched.append(vic.idx)
        free_after[i] -= g
        t = np.unique(np.concatenate(touched))
        pick = _Pick(vs, idx, vl, _frag_delta(state, free_after, t),
                     _where(i, zone, zone_leaves, state), int(free_after[i]))
        k = pick.key()
        if best_key is None or k < best_key:
            best, best_key = pick, k
    return best


def _pick_nodes(state: _State, job: Job, cand: np.ndarray, budget: int, zone, zone_leaves,
                one_leaf: bool) -> _Pick | None:
    """Greedy over a multi-node job's nodes: each time the cheapest node (lost, count, where,
    left) given the victims already chosen; with ``one_leaf`` all in the first node's leaf."""
    g, nn = job.gpus_per_node, job.num_nodes
    free = state.free.copy()
    pre = state.pre_gpus.copy()
    cneed = state.need_cpus(job)
    cfree = state.cpus_free.copy()
    cpre = state.pre_cpus.copy()
    chosen_nodes: list[int] = []
    chosen_vics: list[int] = []
    lost = 0.0
    cand = cand.copy()
    for _ in range(nn):
        best = None
        nodes, lbs = _candidates(state, g, cand, free, pre, chosen_vics, cneed, cfree, cpre)
        for i, lb in zip(nodes.tolist(), lbs.tolist(), strict=True):
            if best is not None and _q(lb) > best[0][0]:
                break
            got = _node_victims(state, i, int(g - max(free[i], 0)), budget - len(chosen_vics),
                                chosen_vics, int(cneed[i] - max(cfree[i], 0)))
            if got is None:
                continue
            vl, vs = got
            freed = sum(gg for v, gg, _ in state.by_node(i) if v in vs)
            key = (_q(vl), len(vs), _where(i, zone, zone_leaves, state),
                   int(max(free[i], 0) + freed - g), i)
            if best is None or key < best[0]:
                best = (key, i, vl, vs)
        if best is None:
            return None
        _, i, vl, vs = best
        for v in vs:
            vic = state.victims[v]
            free[vic.idx] += vic.gpus
            pre[vic.idx] -= vic.gpus
            cfree[vic.idx] += vic.cpus
            cpre[vic.idx] -= vic.cpus
        free[i] -= g
        cfree[i] -= job.cpus_per_node
        chosen_nodes.append(i)
        chosen_vics.extend(vs)
        lost += vl
        cand[i] = False
        if one_leaf and len(chosen_nodes) == 1:
            leaf = state.inv.leaf_index
            cand &= leaf == leaf[i]
    idx = np.asarray(sorted(chosen_nodes), dtype=np.int64)
    touched = [idx] + [state.victims[v].idx for v in chosen_vics]
    frag = _frag_delta(state, free, np.unique(np.concatenate(touched)))
    where = max(_where(int(i), zone, zone_leaves, state) for i in idx.tolist())
    return _Pick(tuple(chosen_vics), idx, lost, frag, where, int(free[idx].sum()))


def choose_victims(state: _State, job: Job, budget: int, zone: np.ndarray | None = None
                   ) -> _Pick | None:
    """The least-harm victim set and nodes for ``job`` (module docstring), or None."""
    cand = state.candidate_mask(job)
    g, nn = job.gpus_per_node, job.num_nodes
    room = np.maximum(state.free, 0) + state.pre_gpus
    croom = np.maximum(state.cpus_free, 0) + state.pre_cpus
    if int(np.count_nonzero(cand & (room >= g) & (croom >= state.need_cpus(job)))) < nn:
        return None
    zone_leaves = None
    if zone is not None and zone.any():
        leaf = state.inv.leaf_index
        zl = leaf[zone & (leaf >= 0)]
        if zl.size:
            zone_leaves = np.zeros(len(state.inv.leaf_names), dtype=bool)
            zone_leaves[zl] = True
    else:
        zone = None
    if nn == 1:
        return _single(state, job, cand, budget, zone, zone_leaves)
    # Multi-node: inside one leaf group and anywhere; the less harmful wins, one leaf group
    # breaking ties after fragmentation.
    picks = []
    for one_leaf in (True, False):
        pick = _pick_nodes(state, job, cand, budget, zone, zone_leaves, one_leaf=one_leaf)
        if pick is None:
            continue
        leaf = state.inv.leaf_index[pick.idx]
        spans = 0 if (leaf >= 0).all() and np.unique(leaf).size == 1 else 1
        k = pick.key()
        picks.append((k[:3] + (spans,) + k[3:], pick))
    if not picks:
        return None
    return min(picks, key=lambda kp: kp[0])[1]


def at_risk(snapshot: ClusterSnapshot, now: float, plan: Plan, rules: JobRules, lead: float
            ) -> list[Job]:
    """Pending inference jobs about to miss their SLA that the plan does not rescue
    (module docstring, "When"), earliest deadline first."""
    out = []
    started: set[str] | None = None
    res: dict[str, float] = {}
    for j in snapshot.pending:
        if j.job_class != "inference":
            continue
        sla = j.sla if j.sla is not None else rules.sla_of(j)
        if sla is None:
            continue
        deadline = j.submit_time + sla
        if now < deadline - lead:
            continue
        if j.eligible_time is not None and j.eligible_time > now:
            continue
        if started is None:
            started = {p.job_id for p in plan.starts}
            res = {r.job_id: r.start_time for r in plan.reservations}
        if j.job_id in started:
            continue
        r = res.get(j.job_id)
        if r is not None and r <= deadline:
            continue
        reason = plan.blocked.get(j.job_id, "")
        if not reason.startswith(_ROOM_REASONS):
            continue
        out.append((deadline, j.job_id, j))
    out.sort(key=lambda x: (x[0], x[1]))
    return [j for _, _, j in out]


def kant_preemptions(snapshot: ClusterSnapshot, now: float, plan: Plan, config,
                     zone: np.ndarray | None = None, limit_only: bool = False) -> Plan:
    """``plan`` plus the preemptions (and starts) that save at-risk inference jobs."""
    p = config.preemption
    rules = JobRules.from_config(config)
    jobs = at_risk(snapshot, now, plan, rules, p.lead_seconds)
    if not jobs:
        return plan
    state = _State(snapshot, plan, now, rules)
    budget = p.max_victims
    preemptions: list[Preemption] = []
    starts: list[Placement] = []
    notes: dict[str, str] = {}
    names = snapshot.inventory.names
    est = config.estimator
    for job in jobs:
        # With the victim bound used up, only room that is free already can still help.
        pick = choose_victims(state, job, budget, zone)
        if pick is None:
            notes[job.job_id] = ("preemption: no preemptible jobs free enough room for it "
                                 "within the victim bound")
            continue
        sla = job.sla if job.sla is not None else rules.sla_of(job)
        gpus = np.full(len(pick.idx), job.gpus_per_node, dtype=np.int64)
        vdesc = []
        for v in pick.victims:
            vic = state.victims[v]
            vdesc.append(f"{vic.job.job_id} ({vic.lost / 3600:.2f} GPU-h lost)")
            preemptions.append(Preemption(
                job_id=vic.job.job_id, for_job=job.job_id,
                nodes=tuple(names[i] for i in vic.idx.tolist()),
                node_gpus=tuple(int(x) for x in vic.gpus.tolist()),
                lost_gpu_seconds=round(vic.lost, 3),
                why=(f"inference job {job.job_id} waited {now - job.submit_time:.0f} s of its "
                     f"{sla:.0f} s SLA; least harm: {vic.lost / 3600:.2f} GPU-h since its last "
                     f"checkpoint"),
            ))
        why = ("SLA rescue: " + (f"preempts {', '.join(vdesc)}" if vdesc else "free room")
               + f"; {len(pick.victims)} job(s), {pick.lost / 3600:.2f} GPU-h lost, "
               f"fragmentation {pick.frag:+d}")
        runtime, source = runtime_estimate(job, use_user=est.use_user_estimate,
                                           unlimited=est.unlimited_runtime,
                                           limit_only=limit_only)
        starts.append(Placement(job_id=job.job_id, nodes=tuple(names[i] for i in pick.idx.tolist()),
                                node_gpus=tuple(int(x) for x in gpus.tolist()), backfilled=False,
                                group=None, runtime_estimate=runtime, estimate_source=source,
                                why=why))
        notes[job.job_id] = why
        state.take(pick.victims, job, pick.idx, gpus)
        budget -= len(pick.victims)
    return amend_plan(plan, preemptions, starts, notes)


# --------------------------------------------------------------------------------------------
# slurm: preempt/qos + cons_tres _run_now
# --------------------------------------------------------------------------------------------


REORDER_COUNT = 1
"""``PreemptParameters=reorder_count`` default (slurm.conf(5), 22.05)."""


def slurm_preemptions(snapshot: ClusterSnapshot, now: float, plan: Plan, config) -> Plan:
    """``plan`` plus what Slurm's preempt/qos would preempt for blocked inference jobs."""
    from .cycle import Cycle
    from .select import slurm_cons_tres

    rules = JobRules.from_config(config)
    youngest = config.preemption.slurm_youngest_first
    pend = [j for j in snapshot.pending if j.job_class == "inference"]
    if not pend:
        return plan
    started = {p.job_id for p in plan.starts}
    blocked = plan.blocked
    pend = [j for j in pend if j.job_id not in started
            and not (j.eligible_time is not None and j.eligible_time > now)
            and blocked.get(j.job_id, "").startswith(_ROOM_REASONS)]
    if not pend:
        return plan
    pend.sort(key=lambda j: (-j.priority, j.submit_time, j.job_id))
    state = _State(snapshot, plan, now, rules)
    if not state.victims:
        return plan
    cycle = Cycle(snapshot, now)
    names = snapshot.inventory.names
    preemptions: list[Preemption] = []
    starts: list[Placement] = []
    notes: dict[str, str] = {}
    for job in pend:
        got = slurm_run_now(state, cycle, job, youngest, slurm_cons_tres)
        if got is None:
            continue
        choice, vs = got
        gpus = np.asarray(choice.gpus, dtype=np.int64)
        for v in vs:
            vic = state.victims[v]
            preemptions.append(Preemption(
                job_id=vic.job.job_id, for_job=job.job_id,
                nodes=tuple(names[i] for i in vic.idx.tolist()),
                node_gpus=tuple(int(x) for x in vic.gpus.tolist()),
                lost_gpu_seconds=round(vic.lost, 3),
                why=f"preempt/qos: candidate removed for {job.job_id} and on its nodes"))
        why = (f"preempt/qos REQUEUE: {len(vs)} candidate(s) removed; " + choice.why)
        runtime, source = runtime_estimate(job, unlimited=config.estimator.unlimited_runtime,
                                           limit_only=True)
        starts.append(Placement(job_id=job.job_id,
                                nodes=tuple(names[i] for i in choice.idx.tolist()),
                                node_gpus=tuple(int(x) for x in gpus.tolist()),
                                group=choice.group, runtime_estimate=runtime,
                                estimate_source=source, why=why))
        notes[job.job_id] = why
        state.take(vs, job, np.asarray(choice.idx, dtype=np.int64), gpus)
    return amend_plan(plan, preemptions, starts, notes)


def slurm_candidates(state: _State, job: Job, youngest: bool) -> list[int]:
    """preempt.c: running preemptible jobs on the preemptor's partition nodes, lowest
    priority first (or youngest first); equal keys in list (snapshot) order."""
    if not state.victims:
        return []
    pool = pool_mask(state.inv, job)
    hit = np.zeros(len(state.victims), dtype=bool)
    on = pool[state.f_node]
    hit[state.f_vic[on]] = True
    out = np.flatnonzero(hit & state.alive)
    key = -state.v_start[out] if youngest else state.v_prio[out]
    return out[np.argsort(key, kind="stable")].tolist()


def slurm_run_now(state: _State, cycle, job: Job, youngest: bool, select):
    """cons_tres ``_run_now`` with preemptee candidates: (choice, victims) or None.

    The node selection only looks at which nodes have room, so it is asked again only when a
    removal gives a node room (the answer cannot change otherwise)."""
    usable = state.candidate_mask(job)
    g = job.gpus_per_node
    cneed = state.need_cpus(job)

    def test(free: np.ndarray, cfree: np.ndarray):
        avail = np.where(usable & (cfree >= cneed), np.maximum(free, 0), -1)
        return select(cycle, job, avail)

    first = test(state.free, state.cpus_free)
    if first is not None:
        return first, ()
    cands = slurm_candidates(state, job, youngest)
    if not cands:
        return None
    pass_count = 0
    while True:
        free = state.free.copy()
        cfree = state.cpus_free.copy()
        removed: list[int] = []
        choice = None
        for v in cands:
            vic = state.victims[v]
            ix = vic.idx
            before = (free[ix] >= g) & (cfree[ix] >= cneed[ix])
            free[ix] += vic.gpus
            cfree[ix] += vic.cpus
            removed.append(v)
            if ((free[ix] >= g) & (cfree[ix] >= cneed[ix]) & ~before & usable[ix]).any():
                choice = test(free, cfree)
                if choice is not None:
                    break
        if choice is None:
            return None
        stop = pass_count > REORDER_COUNT or len(cands) <= pass_count + 1
        pass_count += 1
        sel = set(np.asarray(choice.idx).tolist())
        if stop:
            vs = tuple(v for v in removed
                       if sel.intersection(state.victims[v].idx.tolist()))
            return choice, vs
        # Re-sort: the last removed first, the other removed by nodes in the selection, the
        # rest after (stable).
        rank = {v: len(sel.intersection(state.victims[v].idx.tolist())) for v in removed[:-1]}
        moved = [removed[-1]] + sorted((v for v in removed[:-1] if rank[v] > 0),
                                       key=lambda v: -rank[v])
        ahead = set(moved)
        cands = moved + [v for v in cands if v not in ahead]


# --------------------------------------------------------------------------------------------
# The amended plan
# --------------------------------------------------------------------------------------------


class _Blocked(Mapping):
    """``plan.blocked`` without the jobs preemption started (the rest stays lazy)."""

    def __init__(self, base: Mapping[str, str], drop: set[str]) -> None:
        self._base, self._drop = base, drop

    def __getitem__(self, k: str) -> str:
        if k in self._drop:
            raise KeyError(k)
        return self._base[k]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._base if k not in self._drop)

    def __len__(self) -> int:
        return len(self._base) - sum(1 for k in self._drop if k in self._base)


def amend_plan(plan: Plan, preemptions: list[Preemption], starts: list[Placement],
               notes: Mapping[str, str]) -> Plan:
    """``plan`` with ``preemptions`` and the extra ``starts``; their jobs leave ``blocked`` and
    ``reservations``; ``explain`` gets the notes."""
    records = getattr(plan.explain, "records", None)
    if records is not None:
        for jid, line in notes.items():
            rec = records.get(jid)
            if rec is not None:
                rec.append(line)
    if not starts and not preemptions:
        return plan
    drop = {s.job_id for s in starts}
    stats = dict(plan.stats)
    stats["preempted"] = stats.get("preempted", 0) + len(preemptions)
    stats["started"] = stats.get("started", 0) + len(starts)
    if "blocked" in stats:
        stats["blocked"] = max(0, stats["blocked"] - len(drop))
    reservations = tuple(r for r in plan.reservations if r.job_id not in drop)
    if "reservations" in stats:
        stats["reservations"] = len(reservations)
    return dataclasses.replace(
        plan,
        starts=tuple(plan.starts) + tuple(starts),
        reservations=reservations,
        blocked=_Blocked(plan.blocked, drop),
        preemptions=tuple(plan.preemptions) + tuple(preemptions),
        stats=stats,
    )
