"""Differential test of the reservation search's one-node fast path (whole-node reservations,
:meth:`Cycle._earliest_single`) against the (times x nodes) matrix search, and of the
per-runtime reservation memo: on random deep queues the ``slurm`` plans must be identical,
cycle after cycle."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kant_slurm.config import config_from_dict
from kant_slurm.engine.cycle import Cycle
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Job

from test_engine_fastpath import NOW, _plan_fields, deep_queues


def _plans(snap, cfg, single_fast: bool, cycles: int = 3, policy: str = "slurm",
           chunk: int = 32):
    pol = get_policy(policy, cfg)
    out = []
    now = NOW
    old, old_chunk = Cycle.single_fast, Cycle.PROFILE_CHUNK
    Cycle.single_fast, Cycle.PROFILE_CHUNK = single_fast, chunk
    try:
        for c in range(cycles):
            p = pol.plan(snap, now)
            out.append(_plan_fields(p))
            started = {s.job_id: s for s in p.starts}
            jobs = [dataclasses.replace(j, state="RUNNING", nodes=started[j.job_id].nodes,
                                        node_gpus=started[j.job_id].node_gpus, start_time=now)
                    if j.job_id in started else j for j in snap.jobs]
            jobs.append(Job(f"new{c}", "PENDING", 1, 1, now, time_limit=600.0))
            now += 600.0
            snap = ClusterSnapshot.idle(snap.inventory, jobs, taken_at=now)
    finally:
        Cycle.single_fast, Cycle.PROFILE_CHUNK = old, old_chunk
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from([0, 15]))
def test_one_node_search_equals_the_matrix_search(snap, max_test):
    cfg = config_from_dict({"backfill": {"max_job_test": max_test}})
    assert _plans(snap, cfg, True) == _plans(snap, cfg, False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from(["kant", "slurm"]), st.sampled_from([1, 3, 8]))
def test_chunked_matrix_search_equals_the_whole_matrix(snap, policy, k_res):
    cfg = config_from_dict({"backfill": {"reservations": k_res}})
    assert (_plans(snap, cfg, False, policy=policy, chunk=2)
            == _plans(snap, cfg, False, policy=policy, chunk=10**9))


def test_one_node_search_is_used_and_finds_the_hand_computed_start():
    """Two 4-GPU nodes, both full until 1000 s (node 0) and 2000 s (node 1); the first blocked
    1-GPU job reserves node 0 from 1000 s (whole node, to 1000 + 3600 s); the second, with a
    one-hour limit, cannot use node 0 before 4600 s, so it gets node 1 from 2000 s."""
    from kant_slurm.model import Inventory, Partition

    inv = Inventory.build(["a", "b"], [4, 4], [8, 8],
                          partitions=[Partition("gpu", ("a", "b"), default=True)])
    jobs = [Job("r0", "RUNNING", 1, 4, 0.0, nodes=("a",), node_gpus=(4,), start_time=0.0,
                time_limit=1000.0),
            Job("r1", "RUNNING", 1, 4, 0.0, nodes=("b",), node_gpus=(4,), start_time=0.0,
                time_limit=2000.0),
            Job("p0", "PENDING", 1, 1, 1.0, time_limit=3600.0),
            Job("p1", "PENDING", 1, 1, 2.0, time_limit=3600.0)]
    snap = ClusterSnapshot.idle(inv, jobs, taken_at=10.0)
    calls = []
    orig = Cycle._earliest_single

    def spy(self, *a, **k):
        got = orig(self, *a, **k)
        calls.append(got)
        return got

    Cycle._earliest_single = spy
    try:
        plan = get_policy("slurm", None).plan(snap, 10.0)
    finally:
        Cycle._earliest_single = orig
    res = {r.job_id: (r.start_time, r.nodes) for r in plan.reservations}
    assert res == {"p0": (1000.0, ("a",)), "p1": (2000.0, ("b",))}
    assert len(calls) == 2 and all(c is not None for c in calls)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from(["kant", "slurm", "fifo"]))
def test_numeric_ids_order_like_the_general_path(snap, policy):
    """All-numeric job ids (as in the Philly trace) are ordered by number in one lexsort; ties
    in every other key (equal submit times) make the id decide."""
    jobs = []
    for k, j in enumerate(snap.jobs):
        if j.state == "PENDING":
            j = dataclasses.replace(j, job_id=str(1000 - k), submit_time=float(k % 3))
        jobs.append(j)
    snap = ClusterSnapshot.idle(snap.inventory, jobs, taken_at=NOW)
    fast, slow = get_policy(policy, None), get_policy(policy, None)
    slow.fast = False
    assert _plan_fields(fast.plan(snap, NOW)) == _plan_fields(slow.plan(snap, NOW))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from(["kant", "slurm"]), st.booleans())
def test_sweep_search_equals_the_matrix_search(snap, policy, zone):
    """Large clusters search by sweeping (``Cycle.MATRIX_CELLS``), small ones by matrix: the
    same starts and reservations. Both record a reservation's spare room on every node, also
    outside the job's pool (with an inference zone, pools differ)."""
    cfg = config_from_dict({"inference_zone": {"partition": "inf" if zone else ""}})
    old = Cycle.MATRIX_CELLS
    try:
        Cycle.MATRIX_CELLS = 0
        swept = _plans(snap, cfg, False, policy=policy)
    finally:
        Cycle.MATRIX_CELLS = old
    matrix = _plans(snap, cfg, False, policy=policy)
    assert [(p[1], p[2]) for p in swept] == [(p[1], p[2]) for p in matrix]
