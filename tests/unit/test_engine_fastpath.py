"""Differential test of the deep-queue fast path (cached static order keys, numpy sort, early
stop of the walk, lazily filled order/blocked/explain) against the general path: on random
deep-queue snapshots the two plans must be identical in every field, cycle after cycle with
the same Job objects (as the simulator passes them)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kant_slurm.config import config_from_dict
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import (ClusterSnapshot, Inventory, Job, Partition, PendingChanges,
                              Topology)

NOW = 10_000.0
LIMITS = (300.0, 3600.0, 7200.0, 36000.0, None)


def _inventory(n_leaves: int, gpus: int) -> Inventory:
    names = [f"g{i:02d}" for i in range(4 * n_leaves)]
    leaves = {f"leaf{j}": names[4 * j:4 * j + 4] for j in range(n_leaves)}
    topo = Topology.from_links(leaves, {"spine": list(leaves)} if n_leaves > 1 else None,
                               node_order=names)
    types = ["v100" if i % 3 else "p100" for i in range(len(names))]
    parts = [Partition("gpu", tuple(names), default=True, max_time=86400),
             Partition("short", tuple(names[:8]), priority_tier=2),
             Partition("inf", tuple(names[-4:]))]
    return Inventory.build(names, [gpus] * len(names), [64] * len(names), gpu_type=types,
                           partitions=parts, topology=topo)


@st.composite
def deep_queues(draw):
    inv = _inventory(draw(st.integers(1, 4)), draw(st.sampled_from([4, 8])))
    n = len(inv)
    gpus = int(inv.gpus_total[0])
    free = np.full(n, gpus)
    jobs = []
    for k in range(draw(st.integers(0, 3 * n))):
        g = draw(st.integers(1, gpus))
        cand = [i for i in draw(st.permutations(range(n))) if free[i] >= g][:1]
        if not cand:
            continue
        free[cand[0]] -= g
        limit = draw(st.sampled_from(LIMITS[:-1]))
        jobs.append(Job(f"r{k}", "RUNNING", 1, g, 0.0, nodes=(inv.names[cand[0]],),
                        node_gpus=(g,),
                        # Quarter steps make expected ends meet pending jobs' (ties matter).
                        start_time=NOW - draw(st.one_of(st.floats(0, 0.9),
                                                        st.sampled_from([0.0, 0.25, 0.5, 0.75]))
                                              ) * limit,
                        time_limit=limit, service=draw(st.sampled_from([None, "svc"])),
                        job_class=draw(st.sampled_from(["training", "inference", "batch"]))))
    n_pending = draw(st.integers(20, 160))
    submits = draw(st.lists(st.integers(0, 50), min_size=n_pending, max_size=n_pending))
    for k in range(n_pending):
        nn = draw(st.sampled_from([1, 1, 1, 2, 4]))
        cls = draw(st.sampled_from(["training", "batch", "inference", "other"]))
        odd = draw(st.integers(0, 9))
        jobs.append(Job(
            draw(st.sampled_from([f"{k}", f"{100 + k}_{k % 3}", f"j{k}"])), "PENDING", nn,
            draw(st.sampled_from([1, 1, 2, gpus])), float(submits[k] * 100),
            time_limit=draw(st.sampled_from(LIMITS)),
            est_runtime=draw(st.sampled_from([None, None, 600.0])),
            gpu_type=draw(st.sampled_from([None, None, "v100", "p100"])),
            partitions=draw(st.sampled_from([(), ("gpu",), ("short",), ("inf",),
                                             ("gpu", "short")])),
            required_nodes=(inv.names[odd],) if odd == 1 and nn == 1 else (),
            excluded_nodes=(inv.names[0], inv.names[1]) if odd == 2 else (),
            cpus_per_node=16 if odd == 3 else 0,
            exclusive=odd == 4,
            eligible_time=NOW + 500.0 if odd == 5 else None,
            priority=draw(st.sampled_from([0, 0, 10])),
            job_class=cls,
            service="svc" if cls == "inference" and odd < 5 else None,
            max_per_node=draw(st.sampled_from([None, 1])),
        ))
    ids = [j.job_id for j in jobs]
    if len(set(ids)) != len(ids):  # job ids are unique in a snapshot
        seen = set()
        out = []
        for j in jobs:
            if j.job_id not in seen:
                seen.add(j.job_id)
                out.append(j)
        jobs = out
    snap = ClusterSnapshot.idle(inv, jobs, taken_at=NOW)
    return snap


def run_starts(snap, starts, log, now):
    """The snapshot's jobs with ``starts`` running from ``now`` (the same Job objects for the
    others, as the simulator passes them), the started ones taken off the change ``log``."""
    started = {s.job_id: s for s in starts}
    jobs = []
    for j in snap.jobs:
        s = started.get(j.job_id)
        if s is not None:
            log.remove(j)
            j = dataclasses.replace(j, state="RUNNING", nodes=s.nodes, node_gpus=s.node_gpus,
                                    start_time=now)
        jobs.append(j)
    return jobs


def _plan_fields(p):
    return (
        [(e.job_id, e.rank, dict(e.factors)) for e in p.order],
        p.starts, p.reservations, dict(p.blocked), dict(p.node_tiers),
        {k: tuple(v) for k, v in p.explain.items()}, dict(p.stats), list(p.blocked),
        list(p.explain),
    )


def _both(name, cfg, snap, now):
    fast = get_policy(name, cfg)
    slow = get_policy(name, cfg)
    slow.fast = False
    return fast, slow


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from(["kant", "slurm", "fifo"]), st.sampled_from([0, 1, 3, 8]),
       st.sampled_from([0, 0, 15]), st.booleans(), st.sampled_from(["leaf", "node"]))
def test_fast_path_plans_equal_the_general_path(snap, name, k_res, max_test, zone, single_node):
    cfg = config_from_dict({"inference_zone": {"partition": "inf" if zone else ""},
                            "backfill": {"reservations": k_res, "max_job_test": max_test},
                            "placement": {"single_node": single_node}})
    fast, slow = _both(name, cfg, snap, NOW)
    now = NOW
    for _cycle in range(3):
        pf, ps = fast.plan(snap, now), slow.plan(snap, now)
        assert _plan_fields(pf) == _plan_fields(ps)
        # Next cycle: the started jobs run, the same Job objects stay pending (the cache
        # hits), one new job arrives, time moves on.
        started = {s.job_id: s for s in pf.starts}
        jobs = []
        for j in snap.jobs:
            s = started.get(j.job_id)
            jobs.append(dataclasses.replace(j, state="RUNNING", nodes=s.nodes,
                                            node_gpus=s.node_gpus, start_time=now)
                        if s is not None else j)
        jobs.append(Job(f"new{_cycle}", "PENDING", 1, 1, now, time_limit=600.0))
        now += 600.0
        snap = ClusterSnapshot.idle(snap.inventory, jobs, taken_at=now)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from(["kant", "slurm", "fifo"]), st.sampled_from([0, 1, 3, 8]),
       st.sampled_from([0, 0, 15]), st.booleans())
def test_kept_queue_and_starts_only_plans_start_what_the_full_plan_starts(snap, name, k_res,
                                                                         max_test, zone):
    """The simulator's way: the queue order kept across cycles from the change log, and
    reservations worked out only when a start needs them. Same order and starts as the full
    plan, cycle after cycle; the reservations it did work out are the full plan's first ones."""
    cfg = config_from_dict({"inference_zone": {"partition": "inf" if zone else ""},
                            "backfill": {"reservations": k_res, "max_job_test": max_test}})
    full = get_policy(name, cfg)
    # The Python walk (the compiled one, test_engine_fastwalk.py, is held to it).
    quick = get_policy(name, cfg)
    quick.starts_only = True
    quick.compiled = False
    late = get_policy(name, cfg)  # plans every other cycle only
    late.starts_only = True
    late.compiled = False
    log = PendingChanges()
    for j in snap.pending:
        log.add(j)
    now = NOW
    for _cycle in range(4):
        pf = full.plan(snap, now)
        logged = dataclasses.replace(snap, pending_changes=(log, len(log)))
        for pq in [quick.plan(logged, now)] + ([late.plan(logged, now)] if _cycle % 2 == 0 else []):
            assert pq.starts == pf.starts
            assert [(e.job_id, e.rank) for e in pq.order] == [(e.job_id, e.rank) for e in pf.order]
            assert pq.reservations == pf.reservations[:len(pq.reservations)]
            assert set(pq.blocked) == set(pf.blocked)
        log.trim()  # as the simulator does: `late`, which skips a cycle, reads the queue again
        jobs = run_starts(snap, pf.starts, log, now)
        for k in range(_cycle + 1):  # arrivals, one of them older than queued jobs
            new = Job(f"new{_cycle}_{k}", "PENDING", 1, 1 + k % 2, now - 3000.0 * k,
                      time_limit=600.0 * (k + 1))
            jobs.append(new)
            log.add(new)
        now += 600.0
        snap = ClusterSnapshot.idle(snap.inventory, jobs, taken_at=now)


def test_fast_path_with_quotas_equals_the_general_path():
    """With quotas the kant order is not static: the general order, still the early stop."""
    inv = _inventory(2, 8)
    jobs = [Job(f"{k}", "PENDING", 1, 1 + k % 8, float(k), account="a" if k % 2 else "b",
                time_limit=3600.0) for k in range(200)]
    jobs += [Job("r", "RUNNING", 1, 8, 0.0, nodes=(inv.names[0],), node_gpus=(8,),
                 start_time=0.0, time_limit=3600.0, account="a")]
    snap = ClusterSnapshot.idle(inv, jobs, taken_at=NOW)
    cfg = config_from_dict({"quota": {"accounts": {"a": {"*": 16}, "b": {"*": 40}},
                                      "borrow_limit": 0.5}})
    fast, slow = _both("kant", cfg, snap, NOW)
    pf, ps = fast.plan(snap, NOW), slow.plan(snap, NOW)
    assert _plan_fields(pf) == _plan_fields(ps)
    assert pf.stats["started"] > 0 and len(pf.blocked) == 200 - pf.stats["started"]


def test_walk_stops_early_on_a_deep_full_queue_and_fills_in_the_rest():
    """1,000 one-node jobs on a full cluster: the walk stops, the plan still lists and
    explains every job."""
    inv = _inventory(1, 8)
    run = [Job(f"r{i}", "RUNNING", 1, 8, 0.0, nodes=(n,), node_gpus=(8,), start_time=NOW - 10,
               time_limit=3600.0) for i, n in enumerate(inv.names)]
    pend = [Job(f"{k}", "PENDING", 1, 1 + k % 2, float(k), time_limit=7200.0)
            for k in range(1000)]
    snap = ClusterSnapshot.idle(inv, run + pend, taken_at=NOW)
    cfg = config_from_dict({"backfill": {"reservations": 2}})
    p = get_policy("kant", cfg).plan(snap, NOW)
    assert len(p.order) == 1000 and p.order[999].job_id == "999"
    assert p.stats["memo_rejects"] == 998 and len(p.blocked) == 1000
    assert p.blocked["999"] == ("does not fit now; no reservation (all 2 reservations held "
                                "by higher-ranked jobs)")
    assert p.explain["999"][0].startswith("rank 999 in kant order: class=batch")
    assert p.explain["999"][-1] == p.blocked["999"]
    assert "999" in p.explain and "nope" not in p.explain and "nope" not in p.blocked


def test_a_held_plan_keeps_its_order_and_reasons_while_the_kept_queue_moves_on():
    """The kept queue hands its lists to the plan without copying and changes them in place
    next cycle unless something still holds them: a plan kept by the caller must still show
    the queue of its own cycle."""
    inv = _inventory(2, 8)
    full = [Job(f"r{k}", "RUNNING", 1, 8, 0.0, nodes=(inv.names[k],), node_gpus=(8,),
                start_time=0.0, time_limit=7200.0) for k in range(len(inv.names))]
    pending = [Job(str(100 + k), "PENDING", 1, 1 + k % 8, float(k), time_limit=3600.0)
               for k in range(60)]
    # Next cycle: ten jobs left, three arrived (one older than every queued job).
    arrivals = [Job(f"n{k}", "PENDING", 1, 2, -100.0 + 500.0 * k, time_limit=600.0)
                for k in range(3)]
    for name in ("kant", "slurm", "fifo"):
        pol = get_policy(name, None)
        pol.starts_only = True
        log = PendingChanges()
        for j in pending:
            log.add(j)
        snap = ClusterSnapshot.idle(inv, full + pending, taken_at=NOW)
        held = pol.plan(dataclasses.replace(snap, pending_changes=(log, len(log))), NOW)
        order = [(e.job_id, e.rank) for e in held.order]
        reasons = dict(held.blocked)
        assert len(order) == 60 and len(reasons) == 60
        log.trim()
        for j in pending[:10]:
            log.remove(j)
        for j in arrivals:
            log.add(j)
        snap2 = ClusterSnapshot.idle(inv, full + pending[10:] + arrivals, taken_at=NOW + 60)
        nxt = pol.plan(dataclasses.replace(snap2, pending_changes=(log, len(log))), NOW + 60)
        assert [e.job_id for e in nxt.order][0] == "n0"  # the queue did move
        assert [(e.job_id, e.rank) for e in held.order] == order
        assert dict(held.blocked) == reasons
