"""Property tests of the policies on random snapshots (hypothesis).

- no node is over-allocated and only schedulable nodes get work;
- a gang gets all its nodes or none;
- pool (partition, GPU type, excluded nodes) and inference-zone constraints hold;
- no job started now delays a reservation: advancing time through the plan, every reservation
  fits at its start next to what is then still running (expected ends) and the other
  reservations active then;
- kant never leaves fewer whole free leaf groups than slurm on the same arrivals of small jobs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kant_slurm.config import config_from_dict
from kant_slurm.engine.estimate import expected_end
from kant_slurm.engine.pools import pool_mask
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NOW = 1000.0
LIMITS = (100.0, 500.0, 1000.0, 5000.0, 20000.0)


def build_inventory(leaf_sizes, gpus, two_types):
    n = sum(leaf_sizes)
    names = [f"n{i:02d}" for i in range(n)]
    leaves, k = {}, 0
    for j, size in enumerate(leaf_sizes):
        leaves[f"leaf{j}"] = names[k:k + size]
        k += size
    topo = Topology.from_links(leaves, {"spine": list(leaves)} if len(leaves) > 1 else None,
                               node_order=names)
    types = [("a" if i % 2 == 0 else "b") if two_types else "a" for i in range(n)]
    parts = [Partition("all", tuple(names), default=True),
             Partition("half", tuple(names[: max(1, n // 2)]))]
    return Inventory.build(names, [gpus] * n, [32] * n, gpu_type=types, partitions=parts,
                           topology=topo)


@st.composite
def scenarios(draw):
    leaf_sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    gpus = draw(st.sampled_from([4, 8]))
    two_types = draw(st.booleans())
    inv = build_inventory(leaf_sizes, gpus, two_types)
    n = len(inv)
    free = np.full(n, gpus)
    jobs = []
    for k in range(draw(st.integers(n // 2, 3 * n))):
        nn = draw(st.integers(1, 2))
        g = draw(st.integers(1, gpus))
        cand = [i for i in draw(st.permutations(range(n))) if free[i] >= g][:nn]
        if len(cand) < nn:
            continue
        limit = draw(st.sampled_from(LIMITS))
        start = NOW - draw(st.floats(0, 0.9)) * limit
        est = draw(st.one_of(st.none(), st.sampled_from([50.0, 300.0, 3000.0])))
        for i in cand:
            free[i] -= g
        jobs.append(Job(f"r{k}", "RUNNING", nn, g, start - 1,
                        nodes=tuple(inv.names[i] for i in cand),
                        node_gpus=(g,) * nn, start_time=start, time_limit=limit, est_runtime=est,
                        job_class=draw(st.sampled_from(["training", "batch", "inference"])),
                        service=draw(st.sampled_from([None, "svc"]))))
    for k in range(draw(st.integers(2, 14))):
        nn = draw(st.integers(1, 3))
        jobs.append(Job(
            f"p{k}", "PENDING", nn, draw(st.integers(1, gpus)), float(draw(st.integers(0, 900))),
            time_limit=draw(st.sampled_from(LIMITS)),
            est_runtime=draw(st.one_of(st.none(), st.sampled_from([50.0, 300.0, 3000.0]))),
            gpu_type=draw(st.sampled_from([None, "a", "b"])) if two_types else None,
            partitions=draw(st.sampled_from([(), ("half",)])),
            excluded_nodes=(inv.names[0],) if draw(st.booleans()) else (),
            job_class=draw(st.sampled_from(["training", "batch", "inference"])),
            service=draw(st.sampled_from([None, "svc"])),
            max_per_node=draw(st.sampled_from([None, 1, 2])),
        ))
    snap = ClusterSnapshot.idle(inv, jobs, taken_at=NOW)
    down = draw(st.lists(st.integers(0, n - 1), max_size=2))
    if down:
        sched = np.ones(n, dtype=bool)
        sched[down] = False
        snap = dataclasses.replace(snap, schedulable=sched)
    zone = draw(st.sampled_from(["", inv.names[-1]]))
    k_res = draw(st.sampled_from([1, 3, 8]))
    return snap, zone, k_res


def _check_plan(snap, policy, p, zone):
    inv = snap.inventory
    total = np.asarray(inv.gpus_total)
    alloc = np.array(snap.gpus_alloc, dtype=np.int64)
    jobs = snap.job
    zone_nodes = {zone} if zone else set()
    for s in p.starts:
        job = jobs[s.job_id]
        assert job.is_pending
        # gang: all its nodes, distinct, each with the GPUs it asked for
        assert len(s.nodes) == job.num_nodes == len(set(s.nodes))
        assert s.node_gpus == (job.gpus_per_node,) * job.num_nodes
        idx = inv.nodes_in(s.nodes)
        assert snap.schedulable[idx].all()
        assert pool_mask(inv, job)[idx].all(), (s, job)
        if policy.name == "kant" and zone_nodes and job.job_class != "inference":
            outside = pool_mask(inv, job) & ~np.isin(np.asarray(inv.names), list(zone_nodes))
            if outside.any():
                assert not (set(s.nodes) & zone_nodes)
        alloc[idx] += np.asarray(s.node_gpus)
    assert (alloc <= total).all(), "over-allocated"
    for r in p.reservations:
        job = jobs[r.job_id]
        assert len(r.nodes) == job.num_nodes == len(set(r.nodes))
        assert pool_mask(inv, job)[inv.nodes_in(r.nodes)].all()
        assert r.start_time >= NOW
    assert set(p.blocked) | {s.job_id for s in p.starts} == {j.job_id for j in snap.pending}


def _usage_at(t, snap, policy, p, skip_res):
    """GPUs per node in use at time t: running jobs and starts still running, reservations
    active then (except ``skip_res``)."""
    inv = snap.inventory
    use = np.zeros(len(inv), dtype=np.int64)
    for j in snap.running:
        est, _ = policy.estimate(j)
        if expected_end(j, NOW, est, j.time_limit) > t:
            use[inv.nodes_in(j.nodes)] += np.asarray(j.node_gpus)
    for s in p.starts:
        if NOW + s.runtime_estimate > t:
            use[inv.nodes_in(s.nodes)] += np.asarray(s.node_gpus)
    for r in p.reservations:
        if r.job_id != skip_res and r.start_time <= t < r.start_time + r.runtime_estimate:
            use[inv.nodes_in(r.nodes)] += np.asarray(r.node_gpus)
    return use


@SETTINGS
@given(scenarios(), st.sampled_from(["kant", "slurm", "fifo"]))
def test_plans_respect_capacity_gangs_pools_and_reservations(scenario, name):
    snap, zone, k_res = scenario
    cfg = config_from_dict({"inference_zone": {"nodes": zone},
                            "backfill": {"reservations": k_res}})
    policy = get_policy(name, cfg)
    p = policy.plan(snap, NOW)
    _check_plan(snap, policy, p, zone)
    inv = snap.inventory
    total = np.asarray(inv.gpus_total)
    for r in p.reservations:
        # Advance time to the reservation's start: it must fit beside everything then running.
        use = _usage_at(r.start_time, snap, policy, p, r.job_id)
        idx = inv.nodes_in(r.nodes)
        assert (use[idx] + np.asarray(r.node_gpus) <= total[idx]).all(), (r, use)


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=2, max_size=5), st.sampled_from([4, 8]),
       st.data())
def test_kant_breaks_an_idle_leaf_only_when_no_used_leaf_can_hold_the_job(leaf_sizes, gpus, data):
    # E-Binpack's promise, decision by decision: a single-node job goes into a wholly idle leaf
    # group only when no leaf group already in use has a node with room for it. (An earlier
    # form compared whole idle leaves at the end of a sequence with the slurm model's; that is
    # no theorem: Hypothesis found leaves [1, 2, 2] x 4 GPUs and jobs 1,4,1,2,2,2, where
    # filling the fuller, larger leaf first leaves kant with no idle leaf at the end and the
    # slurm model with one.)
    inv = build_inventory(leaf_sizes, gpus, False)
    names, leaf = inv.group_levels[0]
    sizes = data.draw(st.lists(st.integers(1, gpus), max_size=3 * len(inv)))
    policy = get_policy("kant")
    placed: list[Job] = []
    for k, g in enumerate(sizes):
        job = Job(f"j{k}", "PENDING", 1, g, float(k), time_limit=1e6)
        snap = ClusterSnapshot.idle(inv, placed + [job])
        p = policy.plan(snap, 0.0)
        if not p.starts:
            continue
        (s,) = p.starts
        alloc = np.asarray(snap.gpus_alloc)
        free = np.asarray(inv.gpus_total) - alloc
        leaf_used = np.bincount(leaf, weights=alloc, minlength=len(names)) > 0
        chosen = leaf[inv.index[s.nodes[0]]]
        if not leaf_used[chosen]:
            room_in_used = (leaf_used[leaf] & (free >= g)).any()
            assert not room_in_used, (k, g, s.nodes, alloc.tolist())
        placed.append(dataclasses.replace(job, state="RUNNING", nodes=s.nodes,
                                          node_gpus=s.node_gpus, start_time=0.0))


@SETTINGS
@given(scenarios(), st.sampled_from(["kant", "slurm"]), st.sampled_from(["leaf", "node"]))
def test_fast_paths_decide_exactly_as_the_general_path(scenario, name, single_node):
    """The leaf-aggregate shortcuts must not change a single decision (nor, for the
    fullest-node rule, its reason and alternatives)."""
    from kant_slurm.engine import select

    snap, zone, k_res = scenario
    cfg = config_from_dict({"inference_zone": {"nodes": zone},
                            "backfill": {"reservations": k_res},
                            "placement": {"single_node": single_node}})
    fast = get_policy(name, cfg).plan(snap, NOW)
    saved = {f: f.fast for f in (select.binpack, select.slurm_cons_tres)}
    try:
        for f in saved:
            del f.fast
        slow = get_policy(name, cfg).plan(snap, NOW)
    finally:
        for f, v in saved.items():
            f.fast = v
    assert [(s.job_id, s.nodes, s.group) for s in fast.starts] == \
        [(s.job_id, s.nodes, s.group) for s in slow.starts]
    if single_node == "node" and name == "kant":
        assert [(s.why, [dict(a) for a in s.alternatives]) for s in fast.starts] == \
            [(s.why, [dict(a) for a in s.alternatives]) for s in slow.starts]
    assert [(r.job_id, r.start_time, r.nodes) for r in fast.reservations] == \
        [(r.job_id, r.start_time, r.nodes) for r in slow.reservations]
