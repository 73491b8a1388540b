"""``kant``'s preemption (:func:`kant_preemptions`): least-harm victims for an inference job
about to miss its SLA.

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
``preemption``, see :mod:`kant_slurm.engine.classify`), never inference. A victim's loss is
the work since its last checkpoint, ``lost = GPUs x ((now - start) mod checkpoint_interval)``
GPU-seconds (its own interval, else ``preemption.checkpoint_interval``; unknown start: a whole
interval). A gang is preempted whole: all its nodes are freed and all its GPUs count in
``lost``.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...model import ClusterSnapshot, Job
from ..classify import JobRules
from ..estimate import runtime_estimate
from ..plan import Placement, Plan, Preemption
from .amend import ROOM_REASONS, amend_plan
from .victims import SearchState

LOST_RESOLUTION_S = 60.0
"""Lost work is compared in whole GPU-minutes (rule 1), so near ties go to the next rules."""


def _partial(alloc: np.ndarray, total: np.ndarray) -> np.ndarray:
    return (alloc > 0) & (alloc < total)


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
        return (
            _q(self.lost),
            len(self.victims),
            self.frag,
            self.where,
            self.left,
            self.idx.tolist(),
        )


def _node_victims(
    state: SearchState, i: int, need: int, budget: int, skip: Sequence[int], need_cpus: int = 0
) -> tuple[float, tuple[int, ...]] | None:
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


def _frag_delta(state: SearchState, free_after: np.ndarray, touched: np.ndarray) -> int:
    before = _partial(state.total[touched] - state.free[touched], state.total[touched])
    after = _partial(state.total[touched] - free_after[touched], state.total[touched])
    return int(after.sum()) - int(before.sum())


def _where(
    i: int, zone: np.ndarray | None, zone_leaves: np.ndarray | None, state: SearchState
) -> int:
    if zone is not None and zone[i]:
        return 0
    if zone_leaves is not None:
        lf = state.inv.leaf_index[i]
        if lf >= 0 and zone_leaves[lf]:
            return 1
    return 2


def _candidates(
    state: SearchState,
    g: int,
    cand: np.ndarray,
    free: np.ndarray,
    pre: np.ndarray,
    skip: Sequence[int],
    cneed: np.ndarray,
    cfree: np.ndarray,
    cpre: np.ndarray,
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


def _single(
    state: SearchState, job: Job, cand: np.ndarray, budget: int, zone, zone_leaves
) -> _Pick | None:
    g = job.gpus_per_node
    best: _Pick | None = None
    best_key = None
    cneed = state.need_cpus(job)
    nodes, lbs = _candidates(
        state, g, cand, state.free, state.pre_gpus, (), cneed, state.cpus_free, state.pre_cpus
    )
    for i, lb in zip(nodes.tolist(), lbs.tolist(), strict=True):
        if best_key is not None and _q(lb) > best_key[0]:
            break  # every node left loses more than the best (rule 1)
        got = _node_victims(
            state,
            i,
            int(g - max(state.free[i], 0)),
            budget,
            (),
            int(cneed[i] - max(state.cpus_free[i], 0)),
        )
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
        pick = _Pick(
            vs,
            idx,
            vl,
            _frag_delta(state, free_after, t),
            _where(i, zone, zone_leaves, state),
            int(free_after[i]),
        )
        k = pick.key()
        if best_key is None or k < best_key:
            best, best_key = pick, k
    return best


def _pick_nodes(
    state: SearchState, job: Job, cand: np.ndarray, budget: int, zone, zone_leaves, one_leaf: bool
) -> _Pick | None:
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
            got = _node_victims(
                state,
                i,
                int(g - max(free[i], 0)),
                budget - len(chosen_vics),
                chosen_vics,
                int(cneed[i] - max(cfree[i], 0)),
            )
            if got is None:
                continue
            vl, vs = got
            freed = sum(gg for v, gg, _ in state.by_node(i) if v in vs)
            key = (
                _q(vl),
                len(vs),
                _where(i, zone, zone_leaves, state),
                int(max(free[i], 0) + freed - g),
                i,
            )
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


def choose_victims(
    state: SearchState, job: Job, budget: int, zone: np.ndarray | None = None
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


def at_risk(
    snapshot: ClusterSnapshot, now: float, plan: Plan, rules: JobRules, lead: float
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
        if not reason.startswith(ROOM_REASONS):
            continue
        out.append((deadline, j.job_id, j))
    out.sort(key=lambda x: (x[0], x[1]))
    return [j for _, _, j in out]


def kant_preemptions(
    snapshot: ClusterSnapshot,
    now: float,
    plan: Plan,
    config,
    zone: np.ndarray | None = None,
    limit_only: bool = False,
) -> Plan:
    """``plan`` plus the preemptions (and starts) that save at-risk inference jobs."""
    p = config.preemption
    rules = JobRules.from_config(config)
    jobs = at_risk(snapshot, now, plan, rules, p.lead_seconds)
    if not jobs:
        return plan
    state = SearchState(snapshot, plan, now, rules)
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
            notes[job.job_id] = (
                "preemption: no preemptible jobs free enough room for it within the victim bound"
            )
            continue
        sla = job.sla if job.sla is not None else rules.sla_of(job)
        gpus = np.full(len(pick.idx), job.gpus_per_node, dtype=np.int64)
        vdesc = []
        for v in pick.victims:
            vic = state.victims[v]
            vdesc.append(f"{vic.job.job_id} ({vic.lost / 3600:.2f} GPU-h lost)")
            preemptions.append(
                Preemption(
                    job_id=vic.job.job_id,
                    for_job=job.job_id,
                    nodes=tuple(names[i] for i in vic.idx.tolist()),
                    node_gpus=tuple(int(x) for x in vic.gpus.tolist()),
                    lost_gpu_seconds=round(vic.lost, 3),
                    why=(
                        f"inference job {job.job_id} waited {now - job.submit_time:.0f} s of its "
                        f"{sla:.0f} s SLA; least harm: {vic.lost / 3600:.2f} GPU-h since its last "
                        f"checkpoint"
                    ),
                )
            )
        why = (
            "SLA rescue: "
            + (f"preempts {', '.join(vdesc)}" if vdesc else "free room")
            + f"; {len(pick.victims)} job(s), {pick.lost / 3600:.2f} GPU-h lost, "
            f"fragmentation {pick.frag:+d}"
        )
        runtime, source = runtime_estimate(
            job,
            use_user=est.use_user_estimate,
            unlimited=est.unlimited_runtime,
            limit_only=limit_only,
        )
        starts.append(
            Placement(
                job_id=job.job_id,
                nodes=tuple(names[i] for i in pick.idx.tolist()),
                node_gpus=tuple(int(x) for x in gpus.tolist()),
                backfilled=False,
                group=None,
                runtime_estimate=runtime,
                estimate_source=source,
                why=why,
            )
        )
        notes[job.job_id] = why
        state.take(pick.victims, job, pick.idx, gpus)
        budget -= len(pick.victims)
    return amend_plan(plan, preemptions, starts, notes)
