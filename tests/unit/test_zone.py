"""The elastic inference zone (engine/zone.py) and E-Spread's per-service caps: hand-built
snapshots, hand-computed node choices.

Cluster for the zone tables: eight 8-GPU nodes, leafA = gn01-02 and leafB = gn03-04 under
spine1, leafC = gn05-06 and leafD = gn07-08 under spine2, both spines under core. The
configured zone is gn01.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from kant_slurm.config import config_from_dict
from kant_slurm.engine.registry import get_policy
from kant_slurm.engine.zone import zone_view
from kant_slurm.model import ClusterSnapshot, Inventory, Partition, Topology

sys.path.insert(0, str(Path(__file__).parent))
from test_engine_policies import cluster, pending, running  # noqa: E402

NAMES = [f"gn{i:02d}" for i in range(1, 9)]


def two_spines() -> Inventory:
    topo = Topology.from_links(
        {"leafA": NAMES[0:2], "leafB": NAMES[2:4], "leafC": NAMES[4:6], "leafD": NAMES[6:8]},
        {"spine1": ["leafA", "leafB"], "spine2": ["leafC", "leafD"],
         "core": ["spine1", "spine2"]}, node_order=NAMES)
    return Inventory.build(NAMES, [8] * 8, [64] * 8,
                           partitions=[Partition("all", tuple(NAMES), default=True)],
                           topology=topo)


def mask(inv, names):
    m = np.zeros(len(inv), dtype=bool)
    for n in names:
        m[inv.index[n]] = True
    return m


def names_of(inv, m):
    return {inv.names[i] for i in np.flatnonzero(m)}


def inf_run(jid, node, g):
    return running(jid, node, g, job_class="inference")


def train(jid, node, g):
    return running(jid, node, g, job_class="training")


def inf(jid, g, **kw):
    return pending(jid, 1, g, job_class="inference", **kw)


ZONE_FULL = [inf_run("z1", "gn01", 8)]

BORROW_CASES = [
    # (name, jobs, max_borrow, expected newly borrowed, expected shortfall)
    ("the zone's own leaf group first",
     ZONE_FULL + [inf("p1", 4), inf("p2", 4)], 0, {"gn02"}, 8),
    ("then a sibling leaf under the same spine, least used node first",
     # gn02 full; leafB: gn03 4 used, gn04 idle; leafC whole idle; leafD gn07 2 used.
     ZONE_FULL + [train("t2", "gn02", 8), train("t3", "gn03", 4), train("t7", "gn07", 2),
                  inf("p1", 4), inf("p2", 4)], 0, {"gn04"}, 8),
    ("a whole idle leaf group last",
     # leafA, leafB full; leafC whole idle; leafD: gn07 2 used -> gn08 (idle) first.
     ZONE_FULL + [train("t2", "gn02", 8), train("t3", "gn03", 8), train("t4", "gn04", 8),
                  train("t7", "gn07", 2), inf("p1", 8)], 0, {"gn08"}, 8),
    ("more demand: least used nodes of the leaf, then the whole idle leaf",
     # 20 GPUs short: gn08 (8 free), gn07 (6 free), then leafC: gn05 (8) -> 22 >= 20.
     ZONE_FULL + [train("t2", "gn02", 8), train("t3", "gn03", 8), train("t4", "gn04", 8),
                  train("t7", "gn07", 2), inf("p1", 8), inf("p2", 8), inf("p3", 4)],
     0, {"gn08", "gn07", "gn05"}, 20),
    ("bounded by max_borrow_nodes",
     ZONE_FULL + [train("t2", "gn02", 8), train("t3", "gn03", 8), train("t4", "gn04", 8),
                  train("t7", "gn07", 2), inf("p1", 8), inf("p2", 8), inf("p3", 4)],
     2, {"gn08", "gn07"}, 20),
    ("nodes too full for one replica are not borrowed",
     # gn02..gn08 have at most 2 free; a replica asks 4.
     ZONE_FULL + [train(f"t{i}", f"gn{i:02d}", 6) for i in range(2, 9)] + [inf("p1", 4)],
     0, set(), 4),
    ("no shortfall: nothing borrowed",
     [inf_run("z1", "gn01", 4), inf("p1", 4)], 0, set(), 0),
    ("a job not yet eligible is no demand",
     ZONE_FULL + [inf("p1", 4, eligible_time=1e9)], 0, set(), 0),
]


@pytest.mark.parametrize("name, jobs, max_borrow, want, shortfall", BORROW_CASES,
                         ids=[c[0] for c in BORROW_CASES])
def test_borrowing(name, jobs, max_borrow, want, shortfall):
    inv = two_spines()
    snap = ClusterSnapshot.idle(inv, jobs)
    view = zone_view(snap, mask(inv, ["gn01"]), 100.0, max_borrow=max_borrow)
    assert names_of(inv, view.newly_borrowed) == want
    assert view.shortfall == shortfall
    assert names_of(inv, view.zone) == {"gn01"} | want


def test_a_node_running_inference_stays_borrowed_until_it_ends():
    inv = two_spines()
    snap = ClusterSnapshot.idle(inv, [inf_run("b", "gn06", 1)])
    view = zone_view(snap, mask(inv, ["gn01"]), 100.0)
    assert names_of(inv, view.borrowed) == {"gn06"}
    assert names_of(inv, view.newly_borrowed) == set()
    # Its inference job gone: gn06 is general again.
    view = zone_view(ClusterSnapshot.idle(inv, []), mask(inv, ["gn01"]), 100.0)
    assert names_of(inv, view.borrowed) == set()


@pytest.mark.parametrize("jobs, horizon, lendable", [
    ([], 3600.0, {"gn01", "gn02"}),  # idle zone, nobody waiting: lend both
    ([inf_run("z", "gn01", 1)], 3600.0, {"gn02"}),  # only wholly idle nodes
    ([inf("p", 1)], 3600.0, set()),  # an inference job waits: no lending
    ([], 0.0, set()),  # horizon 0: never lend
])
def test_lending(jobs, horizon, lendable):
    inv = two_spines()
    view = zone_view(ClusterSnapshot.idle(inv, jobs), mask(inv, ["gn01", "gn02"]), 100.0,
                     lend_horizon=horizon)
    assert names_of(inv, view.lendable) == lendable


# ------------------------------------------------------------------- through the kant policy


def kant(jobs, **zone):
    cfg = config_from_dict({"inference_zone": {"nodes": "gn[01-02]", "elastic": True} | zone})
    return get_policy("kant", cfg).plan(ClusterSnapshot.idle(two_spines(), jobs), 100.0)


def started(p):
    return {s.job_id: s.nodes for s in p.starts}


def test_kant_borrows_for_inference_and_keeps_training_off_borrowed_nodes():
    # Zone gn01-02 full; leafA is all zone, so the replica borrows from leafB, the sibling
    # leaf under spine1: gn03 (idle, first in node order). Training t may not use gn03 (zone
    # now); E-Binpack: every leaf it fits in is idle (fill 0), the one with the fewest free
    # GPUs wins: leafB (8 usable on gn04) -> gn04.
    jobs = [inf_run("z1", "gn01", 8), inf_run("z2", "gn02", 8),
            inf("p", 2, submit=1.0), pending("t", 1, 8, submit=2.0, job_class="training")]
    p = kant(jobs)
    assert started(p) == {"p": ("gn03",), "t": ("gn04",)}
    assert p.node_tiers["gn03"] == p.node_tiers["gn01"]  # a zone node for the actuator too


def test_kant_not_elastic_keeps_inference_in_the_zone():
    jobs = [inf_run("z1", "gn01", 8), inf_run("z2", "gn02", 8), inf("p", 2)]
    cfg = config_from_dict({"inference_zone": {"nodes": "gn[01-02]"}})
    p = get_policy("kant", cfg).plan(ClusterSnapshot.idle(two_spines(), jobs), 100.0)
    assert "p" not in started(p)


def test_kant_lends_idle_zone_nodes_to_short_jobs_only():
    # General nodes gn03-08 full; the zone gn01-02 idle and nobody waits for it.
    full = [running(f"f{i}", f"gn{i:02d}", 8, job_class="training") for i in range(3, 9)]
    jobs = full + [pending("short", 1, 8, submit=1.0, limit=600.0, job_class="training"),
                   pending("long", 1, 8, submit=2.0, limit=86400.0, job_class="training")]
    p = kant(jobs, lend_horizon=3600.0)
    assert started(p) == {"short": ("gn01",)}
    # With an inference job waiting, nothing is lent (it takes gn01 itself).
    p = kant(jobs + [inf("p", 8, submit=0.5)], lend_horizon=3600.0)
    assert started(p) == {"p": ("gn01",)}


# ------------------------------------------------------------------- E-Spread caps > 1


def spread_plan(jobs, spread_per_node=1):
    cfg = config_from_dict({"inference_zone": {"nodes": "gn[05-08]"},
                            "placement": {"spread_per_node": spread_per_node}})
    return get_policy("kant", cfg).plan(ClusterSnapshot.idle(cluster(), jobs), 100.0)


CHAT = dict(job_class="inference", service="chat")


def replicas(counts):
    out = []
    for node, k in counts.items():
        out += [running(f"{node}-{i}", node, 1, **CHAT) for i in range(k)]
    return out


@pytest.mark.parametrize("counts, cap, soft, want", [
    # gn05: 2 replicas (6 free), gn06: 1 (7 free), gn07 and gn08: none (8 free).
    # cap 2, soft 2: below 2 counts as none -> best fit among gn06-08 (gn05 at the cap): gn06.
    ({"gn05": 2, "gn06": 1}, 2, 2, "gn06"),
    # cap 3, soft 2: gn05 (2 replicas) is crowded (2 - 2 + 1 = 1), gn06-08 are not -> gn06.
    ({"gn05": 2, "gn06": 1}, 3, 2, "gn06"),
    # cap 3, soft 3: nobody crowded -> best fit: gn05 (6 free).
    ({"gn05": 2, "gn06": 1}, 3, 3, "gn05"),
    # cap 2, soft 1: fewest replicas first -> gn07 (8 free, node order before gn08).
    ({"gn05": 2, "gn06": 1}, 2, 1, "gn07"),
    # every node at 2 but gn08 (1): cap 2 leaves gn08 only.
    ({"gn05": 2, "gn06": 2, "gn07": 2, "gn08": 1}, 2, 3, "gn08"),
    # every node at 2, cap 2: no node left.
    ({"gn05": 2, "gn06": 2, "gn07": 2, "gn08": 2}, 2, 3, None),
])
def test_spread_caps_above_one(counts, cap, soft, want):
    p = spread_plan(replicas(counts) + [pending("r", 1, 1, **CHAT, max_per_node=cap)], soft)
    got = started(p).get("r")
    assert got == ((want,) if want else None)


def test_spread_cap_two_fills_each_node_twice():
    # Zone gn05-08, cap 2, soft 2: ten replicas -> 2 per node, two left waiting.
    jobs = [pending(f"r{i}", 1, 1, submit=float(i), **CHAT, max_per_node=2) for i in range(10)]
    p = spread_plan(jobs, spread_per_node=2)
    per_node: dict = {}
    for s in p.starts:
        per_node[s.nodes[0]] = per_node.get(s.nodes[0], 0) + 1
    assert per_node == {"gn05": 2, "gn06": 2, "gn07": 2, "gn08": 2}
    assert {"r8", "r9"} <= set(p.blocked)
