"""Node Weight with topology/tree on the real dev cluster (issue 15, item 3).

16 nodes x 8 GPUs, leaves of 4 under one spine. (a) With kant's Weights in force, a 2 x 8 GPU
gang that fits in one leaf lands in one leaf, where stock Weights put it. (b) The ``slurm``
model, run on a snapshot read from the cluster, gives a job the nodes real Slurm gives it, for
Weight/occupancy layouts where the Weight groups decide (see select._tree_pick).
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from kant_slurm.engine.policies.slurm import modelled_release
from kant_slurm.engine.registry import get_policy
from kant_slurm.hostlist import compress, expand
from kant_slurm.model import Job
from kant_slurm.slurm import actuator as act
from kant_slurm import devcluster as dc
from kant_slurm.slurm import read_snapshot
from kant_slurm.steer import run_cycle
from kant_slurm.slurm.backend import slurm_version

pytestmark = pytest.mark.slurm


def fill(cluster, used: dict[str, int]) -> None:
    """One job per node holding that many GPUs."""
    ids = [cluster.sbatch(f"--nodelist={n}", f"--gres=gpu:{g}", "-t", "5", "--wrap", "sleep 300")
           for n, g in used.items()]
    cluster.wait_running(ids)


def probe(cluster, nn: int, g: int) -> list[str]:
    """Submit an ``nn`` x ``g`` GPU job, return the nodes Slurm starts it on, cancel it and wait
    until those nodes are idle again."""
    job = cluster.sbatch("-N", str(nn), f"--gres=gpu:{g}", "-t", "5", "--wrap", "sleep 300")
    cluster.wait_running([job])
    nodes = expand(cluster.run("squeue", "-h", "-j", job, "-o", "%N").stdout.strip())
    cluster.run("scancel", job)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = dc.node_states(cluster.conf_path)
        gone = not cluster.run("squeue", "-h", "-j", job, check=False).stdout.strip()
        if gone and all(states.get(n) in ("idle", "mix") for n in nodes):
            return nodes
        time.sleep(0.5)
    raise AssertionError(f"nodes of probe job {job} not free 60 s after scancel")


def leaves_of(cluster, nodes) -> set[str]:
    leaf = {n: name for name, members in cluster.spec.leaves for n in members}
    return {leaf[n] for n in nodes}


def set_weights(cluster, weight: dict[str, int]) -> None:
    by_value: dict[int, list[str]] = {}
    for node in cluster.nodes:
        by_value.setdefault(weight.get(node, weight.get("*")), []).append(node)
    for value, nodes in by_value.items():
        if value is not None:
            cluster.run("scontrol", "update", f"NodeName={compress(nodes)}", f"Weight={value}")


def test_kant_weights_keep_a_gang_that_fits_a_leaf_in_one_leaf(steer_env):
    """Issue 15's A/B: gn01-03 full, gn04 idle. Before the fix kant's Weights (gn04 = 11,
    gn05-16 = 21) made Slurm take gn04 whole and split the gang over gn[04-05]."""
    cluster, config, state = steer_env
    fill(cluster, {n: 8 for n in ("gn01", "gn02", "gn03")})
    stock = probe(cluster, 2, 8)
    report = run_cycle(config, state)
    assert report.ok and report.applied
    w = cluster.node_weights()
    # kant's Weights are in force: the full nodes lightest, idle nodes of the used leaf (gn04)
    # and of idle leaves on one Weight.
    assert w["gn01"] < w["gn04"] == w["gn05"] == w["gn16"] != act.config_weights(
        cluster.conf_path)["gn05"]
    steered = probe(cluster, 2, 8)
    assert len(leaves_of(cluster, steered)) == 1, steered
    assert steered == stock == ["gn05", "gn06"]


FULL = 8
# (layout, GPUs in use per node, Weight per node ("*" = every other), job nodes x GPUs)
LAYOUTS = [
    ("stock Weights, gang", {"gn01": FULL, "gn02": FULL, "gn03": FULL}, {}, (2, 8)),
    ("idle tiers 11/21 split a gang", {"gn01": FULL, "gn02": FULL, "gn03": FULL},
     {"*": 21, "gn04": 11}, (2, 8)),
    ("lighter node's leaf filled first", {"gn05": FULL, "gn06": FULL},
     {"*": 11, "gn04": 2}, (3, 8)),
    ("lighter partly used nodes split a partial gang", {"gn01": 4, "gn05": 4},
     {"*": 11, "gn01": 5, "gn05": 5}, (2, 4)),
    ("single node: lightest, then tightest leaf", {"gn01": 4, "gn09": 6},
     {"*": 11, "gn01": 5, "gn09": 3}, (1, 2)),
    ("gang over two leaves", {"gn01": FULL, "gn02": FULL, "gn05": FULL}, {}, (6, 8)),
    ("single node, one idle Weight: tightest leaf", {"gn01": FULL, "gn05": FULL, "gn06": FULL},
     {"*": 11, "gn01": 1, "gn05": 1, "gn06": 1}, (1, 8)),
]


@pytest.mark.parametrize("layout,used,weight,shape", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_slurm_model_chooses_the_nodes_slurm_chooses(slurm_clean, layout, used, weight, shape):
    """The model of the release that runs here: on 26.05 the one-node layouts take 26.05's
    one-node path (the last layout: gn02, the first idle node of the lightest Weight, where
    22.05 and 24.11 take the tightest leaf, gn07)."""
    cluster = slurm_clean
    conf = act.config_weights(cluster.conf_path)
    try:
        fill(cluster, used)
        set_weights(cluster, weight)
        snap = read_snapshot()
        assert [int(x) for x in snap.weight] == [weight.get(n, weight.get("*", conf[n]))
                                                 for n in snap.inventory.names]
        nn, g = shape
        job = Job("probe", "PENDING", nn, g, snap.taken_at, time_limit=300.0)
        model = get_policy("slurm")
        model.release = modelled_release(slurm_version())
        plan = model.plan(dataclasses.replace(snap, jobs=tuple(snap.jobs) + (job,)), snap.taken_at)
        modelled = [list(p.nodes) for p in plan.starts if p.job_id == "probe"]
        real = probe(cluster, nn, g)
        assert modelled == [real], (layout, modelled, real)
    finally:
        cluster.cancel_all()
        set_weights(cluster, conf)
