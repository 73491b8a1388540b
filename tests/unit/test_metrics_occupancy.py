"""Table tests of the Kant metrics with hand-computed expected values.

The fixture cluster: nodes n1, n2 with 4 GPUs each, both under leaf switch s1.
Jobs (submit, start, end, node x GPUs):
  J1 (0, 0, 10, n1 x 2)   J2 (0, 5, 20, n2 x 4)   J3 (10, 10, 20, n1 x 4)
  J4 (15, never, -, 1 GPU)
Allocated GPUs: [0,5) 2, [5,10) 6, [10,20) 8.
"""

import math

import numpy as np
import pytest

from kant_slurm.metrics.jobs import (estimate_accuracy, jct_stats, jtted, makespan,
                                     placement_tiers, wait_stats, wait_table)
from kant_slurm.formats.records import make_records
from kant_slurm.metrics.timeline import Timeline, occupancy, scheduling_window
from kant_slurm.model import Inventory, Partition, Topology


def _inv(leaves=None, spines=None, n=2, gpus=4):
    names = [f"n{i + 1}" for i in range(n)]
    leaves = leaves or {"s1": names}
    return Inventory.build(names, [gpus] * n, partitions=[Partition("gpu", tuple(names), True)],
                           topology=Topology.from_links(leaves, spines, node_order=names))


def _records():
    nan = float("nan")
    return make_records(
        job_id=["J1", "J2", "J3", "J4"],
        job_class=["training", "training", "batch", "inference"],
        partition=["gpu"] * 4,
        submit_time=[0, 0, 10, 15], start_time=[0, 5, 10, nan], end_time=[10, 20, 20, nan],
        gpus=[2, 4, 4, 1], nodes=[("n1",), ("n2",), ("n1",), ()],
        node_gpus=[(2,), (4,), (4,), ()],
        time_limit=[40, 30, nan, 60], est_runtime=[20, nan, nan, nan],
        duration=[10, 15, 10, nan],
    )


def test_gar_gfr_stranded_sor_hand_computed():
    occ = occupancy(_records(), _inv(), window=(0, 20))
    # GAR: (2*5 + 6*5 + 8*10) / (8 * 20)
    assert occ.gar.mean() == pytest.approx(120 / 160)
    # GFR: n1 partly used on [0,10), n2 never partly used: (1*10) / (2 nodes * 20 s)
    assert occ.gfr.mean() == pytest.approx(10 / 40)
    # stranded share: [0,5) 2 of 6 free GPUs, [5,10) 2 of 2, [10,20) nothing free -> 0
    assert occ.stranded_share.mean() == pytest.approx((5 * 2 / 6 + 5 * 1 + 0) / 20)
    # leaf level (one leaf holds both nodes): [0,10) every free GPU is in a used leaf
    assert occ.leaf_stranded_share.mean() == pytest.approx(10 / 20)
    # SOR: demand [0,10) 6, [10,15) 8, [15,20) 9 -> min with 8: 6*10 + 8*10 = 140
    assert occ.sor == pytest.approx(120 / 140)
    # time-weighted median of GAR: 0.25 for 5 s, 0.75 for 5 s, 1.0 for 10 s
    assert occ.gar.quantile(0.5) == pytest.approx(0.75)
    assert occ.gar.quantile(0.9) == pytest.approx(1.0)


def test_leaf_level_with_two_leaves():
    occ = occupancy(_records(), _inv(leaves={"s1": ["n1"], "s2": ["n2"]}), window=(0, 20))
    # per leaf = per node here: [0,5) 2/6, [5,10) 2/2, then nothing free
    assert occ.leaf_stranded_share.mean() == pytest.approx((5 / 3 + 5) / 20)


def test_window_clips_jobs_at_its_edges():
    # window [5, 15): J1 holds 2 on [5,10), J2 4 on [5,15), J3 4 on [10,15)
    occ = occupancy(_records(), _inv(), window=(5, 15))
    assert occ.allocated.integral() == pytest.approx(2 * 5 + 4 * 10 + 4 * 5)
    assert occ.gar.mean() == pytest.approx(70 / 80)


def test_same_instant_end_and_start_on_one_node():
    # J1 ends at 10 on n1 and J3 starts there at 10: n1 goes 2 -> 4 with no idle instant
    occ = occupancy(_records(), _inv(), window=(0, 20))
    assert occ.partial_nodes.at([9.9, 10.0, 19.0]).tolist() == [1, 0, 0]


def test_scheduling_window_is_first_submit_to_last_start():
    assert scheduling_window(_records()) == (0.0, 15.0)  # last start 10, last submit 15


def test_wait_jct_makespan():
    rec = _records()
    w = wait_stats(rec)
    assert w["jobs"] == 4 and w["not_started"] == 1
    assert w["mean"] == pytest.approx(5 / 3)
    assert w["p50"] == 0 and w["max"] == 5
    assert jct_stats(rec)["mean"] == pytest.approx(40 / 3)
    assert makespan(rec) == 20


def test_wait_table_by_size_and_class():
    rec = _records()
    by_size = wait_table(rec, "size_bucket")
    assert by_size["size_bucket"].tolist() == ["1", "2-8"]
    assert by_size["jobs"].tolist() == [1, 3]
    assert by_size["not_started"].tolist() == [1, 0]
    assert by_size.loc[1, "mean"] == pytest.approx(5 / 3)
    assert math.isnan(by_size.loc[0, "mean"])
    by_class = wait_table(rec, "job_class").set_index("job_class")
    assert by_class.loc["training", "mean"] == pytest.approx(2.5)
    assert by_class.loc["batch", "mean"] == 0


def test_estimate_accuracy():
    acc = estimate_accuracy(_records())
    # J1 ran 10 s of an estimate of 20; limits: J1 10/40, J2 15/30 (J3 has none)
    assert acc["actual_over_estimate_p50"] == pytest.approx(0.5)
    assert acc["actual_over_time_limit_mean"] == pytest.approx((0.25 + 0.5) / 2)
    assert acc["actual_over_time_limit_jobs"] == 2


def test_placement_tiers_and_jtted():
    names = [f"n{i}" for i in range(1, 7)]
    inv = Inventory.build(
        names, [8] * 6, partitions=[Partition("gpu", tuple(names), True)],
        topology=Topology.from_links({"l1": names[:2], "l2": names[2:4], "l3": names[4:]},
                                     {"sp1": ["l1", "l2"], "sp2": ["l3"], "root": ["sp1", "sp2"]},
                                     node_order=names))
    rec = make_records(
        job_id=["a", "b", "c", "d", "e"], job_class=["training"] * 4 + ["batch"],
        submit_time=[0] * 5, start_time=[0] * 5, end_time=[100] * 5, gpus=[8, 16, 16, 16, 16],
        nodes=[("n1",), ("n1", "n2"), ("n1", "n3"), ("n1", "n5"), ("n2", "n4")],
        node_gpus=[(8,), (8, 8), (8, 8), (8, 8), (8, 8)], duration=[100] * 5,
    )
    assert placement_tiers(rec, inv).tolist() == ["node", "leaf", "spine", "cross", "spine"]
    table = jtted(rec, inv)
    assert table["job_id"].tolist() == ["a", "b", "c", "d"]  # training only
    assert table["estimated"].tolist() == pytest.approx([100, 110, 125, 140])


def test_timeline_binned_and_at():
    tl = Timeline(np.array([0.0, 10.0, 30.0]), np.array([1.0, 4.0]))
    starts, means = tl.binned(20)
    assert starts.tolist() == [0, 20]
    assert means.tolist() == pytest.approx([(10 + 40) / 20, 4.0])
    assert tl.at([0, 9.99, 10, 29]).tolist() == [1, 1, 4, 4]


def test_pool_restricts_nodes_and_jobs():
    names = ["a1", "b1"]
    inv = Inventory.build(names, [4, 4], partitions=[Partition("pa", ("a1",), True),
                                                     Partition("pb", ("b1",))])
    rec = make_records(job_id=["x", "y"], partition=["pa", "pb"], submit_time=[0, 0],
                       start_time=[0, 0], end_time=[10, 10], gpus=[1, 4],
                       nodes=[("a1",), ("b1",)], node_gpus=[(1,), (4,)])
    occ = occupancy(rec, inv, window=(0, 10), pool="pa")
    assert occ.capacity == 4
    assert occ.gar.mean() == pytest.approx(0.25)
    assert occ.gfr.mean() == pytest.approx(1.0)


def test_utilization_over_time_bins():
    from kant_slurm.metrics.timeline import utilization_over_time

    occ = occupancy(_records(), _inv(), window=(0, 20))
    u = utilization_over_time(occ, 10)
    assert u["time"].tolist() == [0, 10]
    # GAR: [0,10) (2*5 + 6*5) / 10 / 8 = 0.5; [10,20) 1.0
    assert u["gar"].tolist() == pytest.approx([0.5, 1.0])
    assert u["gfr"].tolist() == pytest.approx([0.5, 0.0])
    assert u["demand_gpus"].tolist() == pytest.approx([6, 8.5])
