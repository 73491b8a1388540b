"""``slurm``'s preemption (:func:`slurm_preemptions`), used with ``preemption.slurm: true``.

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
- node selection: the ``slurm`` policy's own model of cons_tres
  (:func:`kant_slurm.engine.select.slurm_cons_tres`) on the GPUs (and CPUs) free once the
  removed candidates are gone.

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

import numpy as np

from ...model import ClusterSnapshot, Job
from ..classify import JobRules
from ..estimate import runtime_estimate
from ..plan import Placement, Plan, Preemption
from ..pools import pool_mask
from .amend import ROOM_REASONS, amend_plan
from .victims import SearchState

REORDER_COUNT = 1
"""``PreemptParameters=reorder_count`` default (slurm.conf(5), 22.05)."""


def slurm_preemptions(snapshot: ClusterSnapshot, now: float, plan: Plan, config) -> Plan:
    """``plan`` plus what Slurm's preempt/qos would preempt for blocked inference jobs."""
    from ..cycle import Cycle
    from ..select import slurm_cons_tres

    rules = JobRules.from_config(config)
    youngest = config.preemption.slurm_youngest_first
    pend = [j for j in snapshot.pending if j.job_class == "inference"]
    if not pend:
        return plan
    started = {p.job_id for p in plan.starts}
    blocked = plan.blocked
    pend = [
        j
        for j in pend
        if j.job_id not in started
        and not (j.eligible_time is not None and j.eligible_time > now)
        and blocked.get(j.job_id, "").startswith(ROOM_REASONS)
    ]
    if not pend:
        return plan
    pend.sort(key=lambda j: (-j.priority, j.submit_time, j.job_id))
    state = SearchState(snapshot, plan, now, rules)
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
            preemptions.append(
                Preemption(
                    job_id=vic.job.job_id,
                    for_job=job.job_id,
                    nodes=tuple(names[i] for i in vic.idx.tolist()),
                    node_gpus=tuple(int(x) for x in vic.gpus.tolist()),
                    lost_gpu_seconds=round(vic.lost, 3),
                    why=f"preempt/qos: candidate removed for {job.job_id} and on its nodes",
                )
            )
        why = f"preempt/qos REQUEUE: {len(vs)} candidate(s) removed; " + choice.why
        runtime, source = runtime_estimate(
            job, unlimited=config.estimator.unlimited_runtime, limit_only=True
        )
        starts.append(
            Placement(
                job_id=job.job_id,
                nodes=tuple(names[i] for i in choice.idx.tolist()),
                node_gpus=tuple(int(x) for x in gpus.tolist()),
                group=choice.group,
                runtime_estimate=runtime,
                estimate_source=source,
                why=why,
            )
        )
        notes[job.job_id] = why
        state.take(vs, job, np.asarray(choice.idx, dtype=np.int64), gpus)
    return amend_plan(plan, preemptions, starts, notes)


def slurm_candidates(state: SearchState, job: Job, youngest: bool) -> list[int]:
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


def slurm_run_now(state: SearchState, cycle, job: Job, youngest: bool, select):
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
            vs = tuple(v for v in removed if sel.intersection(state.victims[v].idx.tolist()))
            return choice, vs
        # Re-sort: the last removed first, the other removed by nodes in the selection, the
        # rest after (stable).
        rank = {v: len(sel.intersection(state.victims[v].idx.tolist())) for v in removed[:-1]}
        moved = [removed[-1]] + sorted(
            (v for v in removed[:-1] if rank[v] > 0), key=lambda v: -rank[v]
        )
        ahead = set(moved)
        cands = moved + [v for v in cands if v not in ahead]
