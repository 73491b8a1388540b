"""``kant-steered`` (issue 15): stock Slurm's model makes every start; kant reaches it only
through the levers the live daemon sets, computed by the daemon's own code."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from kant_slurm.config import load_config
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology
from kant_slurm.sim.cluster import bundled_cluster_path, load_cluster_spec
from kant_slurm.sim.simulator import SimSettings, Simulator
from kant_slurm.sim.workload import prepare_workload
from kant_slurm.sim.steered import SteeredKant
from kant_slurm.sim.timelimit import apply_time_limits
from kant_slurm.formats.traces import bundled_trace_path, read_trace
from kant_slurm.steer import run_cycle

NOW = 10_000.0


def _config(pin_jobs="all"):
    config = load_config()
    return dataclasses.replace(config, actuator=dataclasses.replace(config.actuator,
                                                                    pin_jobs=pin_jobs))


def _snapshot():
    """8 nodes of 8 GPUs in two leaves; gn01-02 partly used; a 1-GPU, a 2 x 8 and an 8-GPU job
    pending, the 8-GPU one older."""
    names = [f"gn0{i}" for i in range(1, 9)]
    topo = Topology.from_links({"leaf1": names[:4], "leaf2": names[4:]},
                               {"spine": ["leaf1", "leaf2"]}, node_order=names)
    inv = Inventory.build(names, [8] * 8, partitions=[Partition("gpu", tuple(names), True)],
                          topology=topo)
    jobs = [
        Job("1", "RUNNING", 1, 5, 0.0, nodes=("gn01",), node_gpus=(5,), start_time=NOW - 600,
            time_limit=3600.0),
        Job("2", "RUNNING", 1, 3, 0.0, nodes=("gn02",), node_gpus=(3,), start_time=NOW - 300,
            time_limit=7200.0),
        Job("10", "PENDING", 1, 8, NOW - 900, time_limit=3600.0),
        Job("11", "PENDING", 2, 8, NOW - 100, time_limit=3600.0),
        Job("12", "PENDING", 1, 1, NOW - 50, time_limit=600.0),
    ]
    return ClusterSnapshot.idle(inv, jobs, taken_at=NOW)


def test_a_steering_cycle_sets_what_the_daemon_would(tmp_path):
    config = _config()
    snap = _snapshot()
    daemon = run_cycle(config, tmp_path / "state.json", dry_run=True,
                       read=lambda: (snap, {j.job_id: 0 for j in snap.pending}))
    assert daemon.ok and daemon.changes
    steered = SteeredKant(config)
    steered.steer(snap, NOW)
    want = {(c.kind, c.target): c.value for c in daemon.changes}
    got = {("weight", n): w for n, w in steered.weights.items()}
    got |= {("site_factor", j): v for j, v in steered.site_factors.items()}
    got |= {("pin", j): v for j, v in steered.pins.items()}
    assert got == want
    assert {m: set(steered.marks.marks[m]) for m in steered.marks.marks} == \
        {m: {t for k, t in want if k == m} for m in steered.marks.marks}


def test_the_model_sees_kant_only_through_the_levers():
    config = _config()
    steered = SteeredKant(config)
    snap = _snapshot()
    steered.steer(snap, NOW)
    shown = steered.shown(snap)
    index = snap.inventory.index
    assert all(shown.weight[index[n]] == w for n, w in steered.weights.items())
    for job in shown.pending:
        assert job.priority == steered.site_factors.get(job.job_id, 0)
        assert job.excluded_nodes == steered.pins.get(job.job_id, ())
    # The model's starts keep to the pins: each pinned job starts off its excluded nodes.
    plan = steered.plan(snap, NOW + 1)  # inside the interval: no second steering cycle
    assert steered.steer_cycles == 1
    for p in plan.starts:
        assert not set(p.nodes) & set(steered.pins.get(p.job_id, ()))
    # Nothing else of the job changed.
    before = {j.job_id: j for j in snap.pending}
    for job in shown.pending:
        assert dataclasses.replace(job, priority=0, site_factor=0, excluded_nodes=()) == \
            before[job.job_id]


@pytest.fixture(scope="module")
def slice_workload():
    """The first 600 jobs of the bundled Philly slice on its 48 x 8 cluster."""
    spec = load_cluster_spec(bundled_cluster_path())
    trace = read_trace(bundled_trace_path())
    jobs = apply_time_limits(trace.jobs.iloc[:600].reset_index(drop=True), "ladder", 0)
    return spec.inventory, prepare_workload(jobs, spec.inventory)


def _records(inv, workload, policy):
    res = Simulator(inv, workload, policy, settings=SimSettings()).run()
    return res.records.drop(columns=["est_runtime", "estimate_source"]).reset_index(drop=True)


def test_never_steered_is_stock_slurm(slice_workload):
    inv, workload = slice_workload
    config = _config("multi-node")
    slurm = _records(inv, workload, get_policy("slurm", config))
    idle = _records(inv, workload, SteeredKant(config, steer_interval=math.inf))
    assert slurm.equals(idle)


def test_steered_run_is_deterministic_and_steers(slice_workload):
    inv, workload = slice_workload
    config = _config("multi-node")
    a, b = SteeredKant(config), SteeredKant(config)
    ra, rb = _records(inv, workload, a), _records(inv, workload, b)
    assert ra.equals(rb)
    assert a.steer_cycles > 100 and a.changes_applied > 0
    slurm = _records(inv, workload, get_policy("slurm", config))
    assert not ra[["start_time", "nodes"]].equals(slurm[["start_time", "nodes"]])
    assert np.isfinite(ra["start_time"]).all()


@pytest.mark.parametrize("max_changes", [200, 5])
def test_cycles_that_diff_the_moved_targets_steer_as_whole_cycles(slice_workload, max_changes):
    """Each daemon cycle diffs only the targets that may need something (the speed of
    kant-steered); checked against the whole diff every cycle, and the run's records against
    a run whose every cycle reads the whole queue (as the quota tiers make it). A bound of 5
    changes per cycle defers most of them, so deferred targets come back the next cycle."""
    inv, workload = slice_workload
    base = _config("multi-node")
    config = dataclasses.replace(base, actuator=dataclasses.replace(base.actuator,
                                                                    max_changes=max_changes))
    whole = SteeredKant(config)
    whole._tiers_fixed = False  # every cycle reads the whole plan and queue
    some = SteeredKant(config)
    some.check = True
    kept_cycles = []
    inputs = some._kept_inputs
    some._kept_inputs = lambda *a: kept_cycles.append(1) or inputs(*a)
    assert _records(inv, workload, some).equals(_records(inv, workload, whole))
    assert len(kept_cycles) == some.steer_cycles - 1  # all but the first
    assert some.changes_applied == whole.changes_applied > 0
