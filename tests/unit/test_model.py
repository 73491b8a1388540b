"""The frozen cluster model: topology levels, inventory indices, snapshot invariants."""

import dataclasses

import numpy as np
import pytest

from kant_slurm.errors import InputError
from kant_slurm.model import (
    ClusterSnapshot,
    Inventory,
    Job,
    Partition,
    Topology,
    replace_job,
    size_bucket,
)


def two_leaf_inventory() -> Inventory:
    topo = Topology.from_links(
        {"leaf1": ["gn01", "gn02"], "leaf2": ["gn03", "gn04"]}, {"spine": ["leaf1", "leaf2"]}
    )
    names = ["gn01", "gn02", "gn03", "gn04", "cpu1"]
    return Inventory.build(
        names,
        gpus_total=[8, 8, 8, 8, 0],
        partitions=[Partition("gpu", tuple(names[:4]), default=True), Partition("cpu", ("cpu1",))],
        topology=topo,
    )


def test_topology_levels_follow_slurm():
    inv = two_leaf_inventory()
    topo = inv.topology
    assert topo.switches["leaf1"].level == 0
    assert topo.switches["spine"].level == 1
    assert topo.switches["spine"].nodes == ("gn01", "gn02", "gn03", "gn04")
    assert topo.chain("gn03") == ("leaf2", "spine")
    assert topo.chain("cpu1") == ()
    assert [s.name for s in topo.leaf_groups] == ["leaf1", "leaf2"]


def test_group_levels_index_every_grouped_node():
    inv = two_leaf_inventory()
    (leaf_names, leaf_idx), (spine_names, spine_idx) = inv.group_levels
    assert leaf_names == ("leaf1", "leaf2")
    assert leaf_idx.tolist() == [0, 0, 1, 1, -1]
    assert spine_names == ("spine",)
    assert spine_idx.tolist() == [0, 0, 0, 0, -1]


def test_uneven_tree_keeps_highest_group_above_short_chains():
    # leafB sits straight under the root while leafA is under a mid switch.
    topo = Topology.from_links(
        {"leafA": ["a1"], "leafB": ["b1"]}, {"mid": ["leafA"], "root": ["mid", "leafB"]}
    )
    assert topo.switches["root"].level == 2
    inv = Inventory.build(["a1", "b1"], [8, 8], topology=topo)
    names1, idx1 = inv.group_levels[1]
    assert [names1[i] for i in idx1] == ["mid", "leafB"]
    names2, idx2 = inv.group_levels[2]
    assert [names2[i] for i in idx2] == ["root", "root"]


@pytest.mark.parametrize(
    "leaves,switches,message",
    [
        ({"l1": ["a"]}, {"s1": ["s2"], "s2": ["s1"]}, "cycle"),
        ({"l1": ["a"]}, {"s1": ["nope"]}, "unknown child switch 'nope'"),
        ({"l1": ["a"]}, {"s1": ["l1"], "s2": ["l1"]}, "two parents"),
    ],
)
def test_bad_topology_is_named(leaves, switches, message):
    with pytest.raises(InputError, match=message):
        Topology.from_links(leaves, switches)


def test_partition_with_unknown_node_is_an_error():
    with pytest.raises(InputError, match="partition 'gpu' names unknown nodes"):
        Inventory.build(["a"], [8], partitions=[Partition("gpu", ("a", "b"))])


def test_snapshot_from_running_jobs_and_free_gpus():
    inv = two_leaf_inventory()
    jobs = [
        Job("1", "RUNNING", 1, 3, 0.0, nodes=("gn01",), node_gpus=(3,)),
        Job("2", "RUNNING", 2, 8, 0.0, nodes=("gn03", "gn04"), node_gpus=(8, 8)),
        Job("3", "PENDING", 1, 1, 5.0),
    ]
    snap = ClusterSnapshot.idle(inv, jobs)
    assert snap.gpus_alloc.tolist() == [3, 0, 8, 8, 0]
    assert snap.free_gpus.tolist() == [5, 8, 0, 0, 0]
    assert [j.job_id for j in snap.pending] == ["3"]
    assert snap.job["2"].gpus == 16
    assert snap.node("gn01").leaf_group == "leaf1"
    with pytest.raises(ValueError):
        snap.gpus_alloc[0] = 1  # read-only: policies cannot change the snapshot


def test_snapshot_rejects_over_allocation():
    inv = two_leaf_inventory()
    with pytest.raises(InputError, match="gn01 has 9 GPUs allocated of 8"):
        ClusterSnapshot.idle(inv, [Job("1", "RUNNING", 1, 9, 0.0, nodes=("gn01",), node_gpus=(9,))])


def test_unschedulable_node_has_no_free_gpus():
    inv = two_leaf_inventory()
    snap = ClusterSnapshot.idle(inv)
    drained = ClusterSnapshot(
        inventory=inv,
        gpus_alloc=snap.gpus_alloc,
        cpus_alloc=snap.cpus_alloc,
        memory_alloc_mb=snap.memory_alloc_mb,
        schedulable=np.array([True, False, True, True, True]),
        weight=snap.weight,
        node_state=("IDLE", "DRAINED", "IDLE", "IDLE", "IDLE"),
        jobs=(),
    )
    assert drained.free_gpus.tolist() == [8, 0, 8, 8, 0]


@pytest.mark.parametrize(
    "gpus,bucket",
    [(0, "0"), (1, "1"), (2, "2-8"), (8, "2-8"), (9, "9-64"), (64, "9-64"), (65, "65+")],
)
def test_size_bucket(gpus, bucket):
    assert size_bucket(gpus) == bucket


@pytest.mark.parametrize("changes", [
    {},
    {"state": "RUNNING", "start_time": 5.0, "nodes": ("a", "b"), "node_gpus": (8, 4)},
    {"checkpoint_interval": 600.0, "job_id": "x"},  # the last field and the first
    {"eligible_time": None, "time_limit": None},
])
def test_replace_job_equals_dataclasses_replace(changes):
    job = Job("7", "PENDING", 2, 4, 100.0, name="n", user="u", account="acc",
              time_limit=3600.0, eligible_time=50.0)
    assert replace_job(job, **changes) == dataclasses.replace(job, **changes)


def test_replace_job_names_an_unknown_field():
    with pytest.raises(TypeError, match="no field 'bogus'"):
        replace_job(Job("7", "PENDING", 1, 1, 0.0), bogus=1)
