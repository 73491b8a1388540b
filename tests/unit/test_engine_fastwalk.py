"""Differential test of the compiled walk (:mod:`kant_slurm.engine.fastwalk`) against the
Python walk it mirrors: on random deep queues, cycle after cycle, a starts-only plan from the
compiled walk starts the same jobs on the same nodes, and the reservations it works out are the
Python starts-only plan's."""

from __future__ import annotations

import dataclasses

import numpy as np

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kant_slurm.config import config_from_dict
from kant_slurm.engine import fastwalk
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Job, PendingChanges

from test_engine_fastpath import NOW, deep_queues, run_starts


def _starts(plan):
    return [(p.job_id, p.nodes, p.node_gpus, p.backfilled, p.group, p.runtime_estimate,
             p.estimate_source) for p in plan.starts]


def _policies(name, cfg, release=None):
    full = get_policy(name, cfg)  # the full plan: every blocked job's reservation
    ref = get_policy(name, cfg)
    ref.starts_only = True
    ref.compiled = False
    fast = get_policy(name, cfg)
    fast.starts_only = True
    if release is not None:  # the Slurm release the `slurm` model follows
        for policy in (full, ref, fast):
            policy.release = release
    return full, ref, fast


def run_cycles(snap, name, cfg, cycles=4, weight=None, compiled=True, release=None):
    """Plan ``cycles`` cycles with both walks (the compiled one must be taken, or with
    ``compiled=False`` must not be); returns how many jobs started. ``weight``: node Weights;
    ``release``: the Slurm release of the `slurm` model."""
    assert fastwalk.prepare()
    full, ref, fast = _policies(name, cfg, release)
    log = PendingChanges()
    for j in snap.pending:
        log.add(j)
    now = NOW
    started_total = 0
    for cycle in range(cycles):
        if weight is not None:
            snap = dataclasses.replace(snap, weight=weight)
        logged = dataclasses.replace(snap, pending_changes=(log, len(log)))
        pf = full.plan(snap, now)
        pr = ref.plan(logged, now)
        pc = fast.plan(logged, now)
        if snap.pending:
            assert (pc.stats.get("walk") == "compiled") == compiled, pc.stats
        assert _starts(pc) == _starts(pr) == _starts(pf), (cycle, _starts(pc), _starts(pr))
        # Both starts-only walks work out a prefix of the full plan's reservations (the Python
        # one in doubling batches, so it may have worked out more).
        assert pc.reservations == pf.reservations[:len(pc.reservations)]
        assert len(pc.reservations) <= len(pr.reservations)
        assert [(e.job_id, e.rank) for e in pc.order] == [(e.job_id, e.rank) for e in pr.order]
        assert dict(pc.node_tiers) == dict(pr.node_tiers)
        log.trim()
        started_total += len(pr.starts)
        jobs = run_starts(snap, pr.starts, log, now)
        for k in range(cycle + 1):
            new = Job(f"new{cycle}_{k}", "PENDING", 1 + k % 2, 1 + k % 2, now - 3000.0 * k,
                      time_limit=600.0 * (k + 1))
            jobs.append(new)
            log.add(new)
        now += 600.0
        snap = ClusterSnapshot.idle(snap.inventory, jobs, taken_at=now)
    return started_total


def _plain(snap):
    """The queue without what the compiled walk hands back to Python: CPU counts, and
    one-node inference jobs (E-Spread in the zone). Multi-node inference jobs stay (E-Binpack
    inside the zone), so pools differ when there is a zone."""
    jobs = [dataclasses.replace(
        j, cpus_per_node=0, service=None, max_per_node=None,
        job_class="training" if j.job_class == "inference" and j.num_nodes == 1
        else j.job_class)
        if j.state == "PENDING" else j for j in snap.jobs]
    return ClusterSnapshot.idle(snap.inventory, jobs, taken_at=snap.taken_at)


def test_numba_is_there_and_the_walk_compiles():
    assert fastwalk.available()
    assert fastwalk.prepare()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from(["kant", "slurm"]), st.sampled_from([0, 1, 3, 8]),
       st.sampled_from([0, 0, 15]), st.booleans(), st.sampled_from(["leaf", "node"]))
def test_compiled_walk_starts_what_the_python_walk_starts(snap, name, k_res, max_test, zone,
                                                          single_node):
    cfg = config_from_dict({"inference_zone": {"partition": "inf" if zone else ""},
                            "backfill": {"reservations": k_res, "max_job_test": max_test},
                            "placement": {"single_node": single_node}})
    run_cycles(_plain(snap), name, cfg)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues(), st.sampled_from([1, 8]), st.sampled_from(["22.05", "26.05"]), st.data())
def test_compiled_walk_with_node_weights(snap, k_res, release, data):
    """The Slurm model's lightest-Weight-tiers-first node choice, and on 26.05 its one-node
    path (lightest Weight, then node order)."""
    n = len(snap.inventory)
    weight = np.array(data.draw(st.lists(st.sampled_from([1, 1, 5, 10]), min_size=n,
                                         max_size=n)), dtype=np.int64)
    cfg = config_from_dict({"backfill": {"reservations": k_res}})
    run_cycles(_plain(snap), "slurm", cfg, weight=weight, release=release)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deep_queues())
def test_queues_the_compiled_walk_does_not_handle_take_the_python_walk(snap):
    """A job with a CPU count in the queue: the plan comes from the Python walk."""
    jobs = list(_plain(snap).jobs) + [Job("cpu-job", "PENDING", 1, 1, 0.0, time_limit=600.0,
                                          cpus_per_node=4)]
    cfg = config_from_dict({})
    for name in ("kant", "slurm"):
        run_cycles(ClusterSnapshot.idle(snap.inventory, jobs, taken_at=NOW), name, cfg,
                   cycles=1, compiled=False)


def test_a_simulation_of_the_bundled_real_slice_is_the_same_with_the_compiled_walk():
    """The first 1,200 cycles of the bundled Philly slice (a real trace, with queues): the job
    records are equal with and without the compiled walk, which planned the cycles."""
    from kant_slurm.engine.classify import make_classifier
    from kant_slurm.sim.cluster import bundled_cluster_path, load_cluster_spec
    from kant_slurm.sim.run import _engine_config
    from kant_slurm.sim.simulator import SimSettings, Simulator
    from kant_slurm.sim.workload import prepare_workload
    from kant_slurm.sim.timelimit import apply_time_limits
    from kant_slurm.formats.traces import bundled_trace_path, read_trace

    assert fastwalk.prepare()
    cluster = load_cluster_spec(bundled_cluster_path())
    config = _engine_config(None, cluster)
    workload = prepare_workload(apply_time_limits(read_trace(bundled_trace_path()).jobs,
                                                  "ladder", 0), cluster.inventory)
    for name in ("slurm", "kant"):
        results = []
        for compiled in (False, True):
            policy = get_policy(name, config)
            policy.compiled = compiled
            results.append(Simulator(
                cluster.inventory, workload, policy,
                settings=SimSettings(max_cycles=1200, compile_min_jobs=0),
                classifier=make_classifier(config)).run())
        python, fast = results
        assert python.compiled_cycles == 0
        assert fast.compiled_cycles == min(fast.cycles, 1200) == 1200  # (cycles counts the stop)
        cols = ["job_id", "start_time", "end_time", "nodes", "node_gpus"]
        assert python.records[cols].astype(str).equals(fast.records[cols].astype(str))
        assert python.records["start_time"].notna().sum() > 1000


def test_an_elastic_zone_takes_the_python_walk():
    """The elastic zone lends nodes by a job's estimate and the cycle's state, not by its
    shape alone: those plans stay in Python (with the same starts as the full plan)."""
    from test_engine_fastpath import _inventory

    inv = _inventory(2, 4)
    jobs = [Job(f"p{k}", "PENDING", 1, 1 + k % 2, float(k), time_limit=600.0 * (1 + k % 3))
            for k in range(40)]
    cfg = config_from_dict({"inference_zone": {"partition": "inf", "elastic": True}})
    assert run_cycles(ClusterSnapshot.idle(inv, jobs, taken_at=NOW), "kant", cfg, cycles=2,
                      compiled=False) > 0
