"""GAR, GFR and stranded shares of one instant, on hand-computed cases."""

import math

import numpy as np
import pytest

from kant_slurm.metrics.instant import (
    gar,
    gfr,
    stranded_gpu_share,
    stranded_gpu_share_leaf,
    whole_free_nodes,
)

TOTAL = np.array([8, 8, 8, 8])


@pytest.mark.parametrize(
    "alloc,gar_v,gfr_v,stranded",
    [
        ([0, 0, 0, 0], 0.0, 0.0, 0.0),
        ([8, 8, 8, 8], 1.0, 0.0, 0.0),
        # two 3-GPU jobs on one node: 6/32 allocated, 1 of 4 nodes partial,
        # 2 of 26 free GPUs stranded
        ([6, 0, 0, 0], 6 / 32, 0.25, 2 / 26),
        # the same jobs scattered: 2 nodes partial, 10 of 26 free GPUs stranded
        ([3, 3, 0, 0], 6 / 32, 0.5, 10 / 26),
        ([8, 4, 0, 1], 13 / 32, 0.5, 11 / 19),
    ],
)
def test_instant_figures(alloc, gar_v, gfr_v, stranded):
    alloc = np.array(alloc)
    assert gar(alloc, TOTAL) == pytest.approx(gar_v)
    assert gfr(alloc, TOTAL) == pytest.approx(gfr_v)
    assert stranded_gpu_share(alloc, TOTAL) == pytest.approx(stranded)


def test_unschedulable_and_cpu_nodes_do_not_count():
    total = np.array([8, 8, 0])
    alloc = np.array([4, 0, 0])
    sched = np.array([True, False, True])
    assert gar(alloc, total, sched) == pytest.approx(0.5)
    assert gfr(alloc, total, sched) == pytest.approx(1.0)
    assert stranded_gpu_share(alloc, total, sched) == pytest.approx(1.0)
    assert whole_free_nodes(alloc, total, sched).tolist() == [False, False, False]


def test_no_gpus_gives_nan_not_a_crash():
    assert math.isnan(gar(np.array([0]), np.array([0])))
    assert math.isnan(gfr(np.array([0]), np.array([0])))


def test_leaf_level_stranded_share():
    # leaf 0 = nodes 0,1 (one GPU used); leaf 1 = nodes 2,3 (idle); node 4 under no switch.
    alloc = np.array([1, 0, 0, 0, 0])
    total = np.array([8, 8, 8, 8, 8])
    leaf = np.array([0, 0, 1, 1, -1])
    # free: leaf0 15, leaf1 16 -> 15 of 31 free GPUs sit in a partly used leaf
    assert stranded_gpu_share_leaf(alloc, total, leaf) == pytest.approx(15 / 31)
