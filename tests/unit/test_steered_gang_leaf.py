"""Issue 15's A/B in the simulator: between two steering cycles the ``slurm`` model places a job
by itself with kant's Weights in force, as real Slurm does at submit (before a cycle can pin).

16 x 8 GPUs in leaves of 4 (the dev cluster), gn01-03 full, gn04 idle. The expected nodes
follow from Slurm's rule (select._tree_pick) with kant's Weights: the full nodes lightest, every
idle node on one Weight; the dev-cluster test ``test_weight_topology_cluster.py`` checks the
same A/B on a real Slurm.
"""

from __future__ import annotations

import pytest
from test_slurm_tree_weights import _inventory

from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Job

NOW = 10_000.0


@pytest.mark.parametrize("shape, expected", [
    # A gang that fits a leaf: the tightest leaf that holds it, as with stock Weights. With
    # the old idle tiers (gn04 lighter) it went to gn04 + gn05.
    ((2, 8), ("gn05", "gn06")),
    # One node: the leaf with the fewest idle nodes, i.e. the used leaf (E-Binpack's leaf
    # preference, kept by Slurm's own tightest fit).
    ((1, 8), ("gn04",)),
])
def test_a_job_slurm_starts_between_cycles_with_kants_weights(shape, expected):
    inv = _inventory(spines=False)
    full = [Job(f"r{i}", "RUNNING", 1, 8, 0.0, nodes=(f"gn0{i}",), node_gpus=(8,),
                start_time=NOW - 600, time_limit=7200.0) for i in (1, 2, 3)]
    steered = get_policy("kant-steered")
    steered.plan(ClusterSnapshot.idle(inv, full, taken_at=NOW), NOW)  # a steering cycle
    shown = steered.shown(ClusterSnapshot.idle(inv, full, taken_at=NOW))
    w = dict(zip(inv.names, shown.weight.tolist(), strict=True))  # what the simulated Slurm shows
    assert w["gn04"] == w["gn05"] == w["gn16"] > w["gn01"]
    nn, g = shape
    job = Job("new", "PENDING", nn, g, NOW + 5, time_limit=3600.0)
    later = ClusterSnapshot.idle(inv, full + [job], taken_at=NOW + 5)
    plan = steered.plan(later, NOW + 5)  # no steering cycle: 5 s after the last one
    assert steered.steer_cycles == 1
    assert not steered.pins
    assert {p.job_id: p.nodes for p in plan.starts} == {"new": expected}
