"""status_summary / format_status on a hand-built snapshot with hand-computed figures."""

import numpy as np

from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology
from kant_slurm.report.status import format_status, gpu_bar, status_summary


def snapshot():
    names = ["gn01", "gn02", "gn03", "gn04"]
    topo = Topology.from_links({"leaf1": names[:2], "leaf2": names[2:]},
                               {"spine": ["leaf1", "leaf2"]}, node_order=names)
    inv = Inventory.build(names, [8, 8, 8, 8],
                          partitions=[Partition("gpu", tuple(names), default=True)],
                          topology=topo)
    jobs = [
        Job("1", "RUNNING", 1, 3, 0.0, nodes=("gn01",), node_gpus=(3,)),
        Job("2", "RUNNING", 1, 3, 0.0, nodes=("gn01",), node_gpus=(3,)),
        Job("3", "RUNNING", 1, 8, 0.0, nodes=("gn03",), node_gpus=(8,)),
        Job("4", "PENDING", 2, 8, 0.0),
        Job("5", "PENDING", 1, 1, 0.0),
    ]
    base = ClusterSnapshot.idle(inv, jobs)
    schedulable = np.array([True, True, True, False])  # gn04 drained
    return ClusterSnapshot(inventory=inv, gpus_alloc=base.gpus_alloc, cpus_alloc=base.cpus_alloc,
                           memory_alloc_mb=base.memory_alloc_mb, schedulable=schedulable,
                           weight=base.weight,
                           node_state=("MIXED", "IDLE", "ALLOCATED", "IDLE+DRAIN"),
                           jobs=tuple(jobs),
                           held=(Job("6", "PENDING", 1, 2, 0.0, slurm_blocked="JobHeldUser"),))


def test_summary_figures():
    s = status_summary(snapshot())
    assert s["gpus_total"] == 32 and s["gpus_allocated"] == 14
    # Schedulable GPUs: 24 (gn04 drained). GAR 14/24; GFR: gn01 partly used of 3 nodes.
    assert s["gar"] == 14 / 24
    assert s["gfr"] == 1 / 3
    # Free GPUs: gn01 2, gn02 8, gn03 0 -> 2 of 10 are stranded.
    assert s["stranded_gpu_share"] == 2 / 10
    assert s["leaf_groups"] == [
        {"name": "leaf1", "nodes": ["gn01", "gn02"], "gpus_total": 16, "gpus_allocated": 6,
         "free_nodes": 1},
        {"name": "leaf2", "nodes": ["gn03", "gn04"], "gpus_total": 16, "gpus_allocated": 8,
         "free_nodes": 0},
    ]
    # Pending counts every job in the queue, the held one too, and says how many are held.
    assert s["pending_jobs"] == {"count": 3, "gpus": 19, "held_by_slurm": 1,
                                 "by_gpu_size": {"1": 1, "2-8": 1, "9-64": 1, "65+": 0}}
    assert [n["leaf_group"] for n in s["nodes"]] == ["leaf1", "leaf1", "leaf2", "leaf2"]


def test_table_shows_bars_by_leaf_group():
    text = format_status(status_summary(snapshot()))
    assert "leaf1: 6/16 GPUs, 1 whole free node" in text
    assert "gn01       [######..] 6/8" in text
    assert "gn04       [xxxxxxxx] 0/8  idle+drain" in text
    assert "GAR                 58.3%" in text and "GFR                 33.3%" in text
    assert "pending jobs        3 (19 GPUs;" in text and "  held by Slurm     1 " in text


def test_gpu_bar():
    assert gpu_bar(3, 8) == "[###.....]"
    assert gpu_bar(9, 8) == "[########]"
    assert gpu_bar(0, 0) == "[-]"
    assert gpu_bar(2, 4, schedulable=False) == "[xxxx]"
