"""Table tests of the ``slurm`` model's node choice with node Weights on a switch tree.

Each expected placement is worked out by hand from Slurm's ``_eval_nodes_topo`` (slurm-22-05-8-1
``src/plugins/select/cons_tres/job_test.c``; the rule is written out in
:func:`kant_slurm.engine.select._tree_pick`): lighter Weight groups are taken whole, the leaves
holding them are filled first, then leaves by distance to the switches used and tightest fit,
nodes in node order. Both the Python selector and the compiled walk's mirror are held to it,
as the ``slurm`` model of 22.05 (24.11 chooses alike) and of 26.05, whose one-node path differs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kant_slurm.engine import fastwalk
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology

NAMES = [f"gn{i:02d}" for i in range(1, 17)]
LEAVES = {f"leaf{j + 1}": NAMES[4 * j:4 * j + 4] for j in range(4)}


def _inventory(spines: bool) -> Inventory:
    """The dev cluster's shape: 16 x 8 GPUs, leaves of 4. ``spines``: leaf1-2 under s1,
    leaf3-4 under s2, both under a root; else the four leaves under one spine."""
    links = ({"s1": ["leaf1", "leaf2"], "s2": ["leaf3", "leaf4"], "root": ["s1", "s2"]}
             if spines else {"spine": list(LEAVES)})
    topo = Topology.from_links(LEAVES, links, node_order=NAMES)
    return Inventory.build(NAMES, [8] * 16, [64] * 16, partitions=[
        Partition("all", tuple(NAMES), default=True)], topology=topo)


def _snapshot(spines: bool, used: dict[str, int], weight: dict[str, int]) -> ClusterSnapshot:
    jobs = [Job(f"r-{node}", "RUNNING", 1, gpus, 0.0, nodes=(node,), node_gpus=(gpus,),
                start_time=1.0, time_limit=100_000.0) for node, gpus in used.items()]
    snap = ClusterSnapshot.idle(_inventory(spines), jobs, taken_at=10.0)
    w = np.array([weight.get(n, weight.get("*", 1)) for n in NAMES], dtype=np.int64)
    return dataclasses.replace(snap, weight=w)


FULL = 8
# (case, spine layout, GPUs in use per node, Weight per node ("*" = every other), job nodes x
#  GPUs per node, the nodes Slurm gives it)
CASES = [
    # Issue 15's A/B, stock Weights: leaf1 has one idle node; the tightest leaf that holds 2
    # is leaf2 (leaves 2-4 tie at 4, the first wins).
    ("issue 15, stock Weights", False, {"gn01": FULL, "gn02": FULL, "gn03": FULL},
     {"*": 1}, (2, 8), ("gn05", "gn06")),
    # Old kant tiers: gn04 (Weight 11) is lighter than the rest (21), so it is taken whole;
    # its leaf has no other idle node; leaves 2-4 are equally far, each holds the last node:
    # the tightest, first -> gn05. Two leaves, as measured on the dev cluster.
    ("issue 15, idle tiers 11/21", False, {"gn01": FULL, "gn02": FULL, "gn03": FULL},
     {"*": 21, "gn04": 11}, (2, 8), ("gn04", "gn05")),
    # One Weight on every idle node: Slurm's own leaf choice, as with stock Weights.
    ("issue 15, one idle Weight", False, {"gn01": FULL, "gn02": FULL, "gn03": FULL},
     {"*": 11}, (2, 8), ("gn05", "gn06")),
    # A lighter partly used node takes a single-node job first (E-Binpack through Weight).
    ("partly used node first", False, {"gn01": 4, "gn09": 6},
     {"*": 11, "gn01": 5, "gn09": 3}, (1, 2), ("gn09",)),
    # Single node, one Weight on idle nodes: the leaf with the fewest usable nodes (leaf2 has
    # two idle nodes), first node in node order.
    ("single node, tightest leaf", False, {"gn01": FULL, "gn05": FULL, "gn06": FULL},
     {"*": 11}, (1, 8), ("gn07",)),
    # Two lighter partly used nodes in two leaves hold a 2 x 4 job between them: no leaf holds
    # both, the first of two equal leaves, then the other. Stock Weights keep it in leaf1.
    ("partial gang split by lighter nodes", False, {"gn01": 4, "gn05": 4},
     {"*": 11, "gn01": 5, "gn05": 5}, (2, 4), ("gn01", "gn05")),
    ("partial gang, stock Weights", False, {"gn01": 4, "gn05": 4},
     {"*": 1}, (2, 4), ("gn01", "gn02")),
    # A lighter node's leaf is filled before any tighter leaf: gn04 forced, then gn01-02.
    ("forced node's leaf first", False, {"gn05": FULL, "gn06": FULL},
     {"*": 11, "gn04": 1}, (3, 8), ("gn01", "gn02", "gn04")),
    # No leaf holds 6: the biggest leaf first (leaf3, first of two with 4), then the tightest
    # leaf that holds the last 2 (leaf1).
    ("gang over two leaves", False, {"gn01": FULL, "gn02": FULL, "gn05": FULL},
     {"*": 1}, (6, 8), ("gn03", "gn04", "gn09", "gn10", "gn11", "gn12")),
    # Distance: gn01 is forced; leaf2 (same spine, 5 hops in sum from leaf1, s1 and root)
    # beats the tighter leaf3 (9 hops).
    ("closer leaf beats tighter leaf", True,
     {"gn02": FULL, "gn03": FULL, "gn04": FULL, "gn05": FULL, "gn09": FULL, "gn10": FULL},
     {"*": 11, "gn01": 1}, (3, 8), ("gn01", "gn06", "gn07")),
]


# Slurm 26.05 takes a one-node job (max nodes 1) through its new one-node path
# (``_get_one_res`` in cons_tres' job_test.c at slurm-26-05-3-1): the nodes sorted by Weight,
# equal Weights in node order, the first where the job fits; no leaf search. Multi-node jobs
# keep the tree path, so only the one-node cases differ, where they differ.
SLURM_26_05 = {
    # Every idle node has Weight 11: the first idle node in node order, not leaf2's gn07.
    "single node, tightest leaf": ("gn02",),
}
# Cases of the 26.05 path alone: (case, GPUs in use per node, Weight per node, GPUs, nodes).
ONE_NODE_26_05 = [
    ("lightest Weight beats node order", {}, {"*": 11, "gn12": 3}, 8, ("gn12",)),
    ("a lighter node without room is passed", {"gn12": 4}, {"*": 11, "gn12": 3}, 8, ("gn01",)),
    ("no best fit: a lighter idle node before a fuller one", {"gn02": 6},
     {"*": 11, "gn01": 5, "gn02": 5}, 2, ("gn01",)),
    ("equal Weights: node order", {"gn01": FULL, "gn02": 7}, {"*": 1}, 1, ("gn02",)),
    ("nowhere to fit: no start", {n: 4 for n in NAMES}, {"*": 1}, 8, None),
]
RELEASES = ["22.05", "26.05"]


def _expected(case: str, release: str, expected: tuple[str, ...]) -> tuple[str, ...]:
    return SLURM_26_05.get(case, expected) if release == "26.05" else expected


def _model_starts(snap: ClusterSnapshot, nn: int, g: int, release: str) -> dict:
    job = Job("j", "PENDING", nn, g, 5.0, time_limit=3600.0)
    model = get_policy("slurm")
    model.release = release
    plan = model.plan(dataclasses.replace(snap, jobs=tuple(snap.jobs) + (job,)), 10.0)
    return {p.job_id: p.nodes for p in plan.starts}


def _compiled_choice(snap: ClusterSnapshot, nn: int, g: int, release: str):
    from kant_slurm.engine.policies.compiled import _levels_of

    assert fastwalk.prepare()
    inv = snap.inventory
    avail = (np.asarray(inv.gpus_total) - np.asarray(snap.gpus_alloc)).astype(np.int64)
    levels, n_groups = _levels_of(inv)
    out = np.empty(16, dtype=np.int64)
    kind = (fastwalk.KIND_SLURM_LIGHTEST if release == "26.05" and nn == 1
            else fastwalk.KIND_SLURM)
    got, _, _ = fastwalk.select.select_nodes(
        kind, avail, nn, g, avail, np.asarray(snap.weight, dtype=np.int64),
        np.zeros(16, dtype=np.int64), np.zeros(16, dtype=bool), levels, n_groups, out)
    return tuple(NAMES[i] for i in out[:got]) or None


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("case,spines,used,weight,shape,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_slurm_model_places_as_eval_nodes_topo(case, spines, used, weight, shape, expected,
                                               release):
    nn, g = shape
    got = _model_starts(_snapshot(spines, used, weight), nn, g, release)
    assert got == {"j": _expected(case, release, expected)}


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("case,spines,used,weight,shape,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_compiled_mirror_places_the_same(case, spines, used, weight, shape, expected, release):
    nn, g = shape
    got = _compiled_choice(_snapshot(spines, used, weight), nn, g, release)
    assert got == _expected(case, release, expected)


@pytest.mark.parametrize("spines", [False, True])
@pytest.mark.parametrize("case,used,weight,g,expected", ONE_NODE_26_05,
                         ids=[c[0] for c in ONE_NODE_26_05])
def test_slurm_26_05_one_node_path(case, used, weight, g, expected, spines):
    snap = _snapshot(spines, used, weight)
    assert _model_starts(snap, 1, g, "26.05") == ({"j": expected} if expected else {})
    assert _compiled_choice(snap, 1, g, "26.05") == expected


def test_the_model_follows_the_release_that_runs():
    from kant_slurm.engine.policies.slurm import modelled_release

    assert [modelled_release(v) for v in (None, (22, 5), (23, 11), (24, 11), (25, 11),
                                          (26, 5), (27, 1))] == \
        ["22.05", "22.05", "22.05", "24.11", "24.11", "26.05", "26.05"]
