"""Placement and planning table tests: hand-built snapshots, hand-computed exact outcomes."""

from __future__ import annotations

import json

import pytest

from kant_slurm.config import config_from_dict
from kant_slurm.engine.classify import make_classifier
from kant_slurm.engine.registry import get_policy, policy_names
from kant_slurm.errors import ConfigError
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology


def cluster(leaves=(4, 4), gpus=8, types=None, partitions=None, spine=True):
    """gn01.. in leaf groups leaf1.. of the given sizes, under one spine."""
    n = sum(leaves)
    names = [f"gn{i:02d}" for i in range(1, n + 1)]
    leaf_nodes, k = {}, 0
    for j, size in enumerate(leaves, start=1):
        leaf_nodes[f"leaf{j}"] = names[k:k + size]
        k += size
    topo = Topology.from_links(leaf_nodes, {"spine": list(leaf_nodes)} if spine else None,
                               node_order=names)
    parts = partitions or [Partition("all", tuple(names), default=True)]
    return Inventory.build(names, [gpus] * n, [64] * n, gpu_type=types, partitions=parts,
                           topology=topo)


def running(jid, nodes, gpus, start=0.0, limit=100_000.0, **kw):
    if isinstance(nodes, str):
        nodes = (nodes,)
    return Job(jid, "RUNNING", len(nodes), gpus, start - 1, nodes=tuple(nodes),
               node_gpus=(gpus,) * len(nodes), start_time=start, time_limit=limit, **kw)


def pending(jid, nn, g, submit=1.0, limit=3600.0, **kw):
    return Job(jid, "PENDING", nn, g, submit, time_limit=limit, **kw)


def plan(policy, inv, jobs, now=100.0, config=None):
    return get_policy(policy, config).plan(ClusterSnapshot.idle(inv, jobs), now)


def started(p):
    return {s.job_id: s.nodes for s in p.starts}


def test_registry_names_and_unknown_policy():
    assert policy_names() == ("fifo", "kant", "kant-steered", "slurm")
    with pytest.raises(ConfigError,
                       match="unknown policy 'lsf'; choose one of: "
                             "fifo, kant, kant-steered, slurm"):
        get_policy("lsf")


# Cluster A: two leaves of 4 x 8 GPUs; gn03 has 6 GPUs used, gn05 has 4.
A_RUNNING = [running("r1", "gn03", 6), running("r2", "gn05", 4)]


@pytest.mark.parametrize("policy, nodes", [
    ("kant", ("gn03",)),  # fullest leaf (leaf1: 6/32 used) then best fit: gn03 has 2 free
    ("slurm", ("gn01",)),  # both leaves have 4 usable nodes: leaf1, first node in node order
    ("fifo", ("gn01",)),  # first node with room
])
def test_single_gpu_job_node_choice(policy, nodes):
    p = plan(policy, cluster(), A_RUNNING + [pending("j", 1, 1)])
    assert started(p) == {"j": nodes}


def test_kant_explains_group_and_alternatives():
    p = plan("kant", cluster(), A_RUNNING + [pending("j", 1, 1)])
    (s,) = p.starts
    assert s.group == "leaf1"
    assert s.why == ("leaf group leaf1: fullest of 2 leaf groups that hold 1x1 GPUs (fill 0.188, "
                     "26 GPUs free); nodes best-fit by free GPUs")
    assert [dict(a) for a in s.alternatives] == [
        {"group": "leaf2", "level": 0, "score": 0.125, "free_gpus": 28}]
    node_first = config_from_dict({"placement": {"single_node": "node"}})
    (s,) = plan("kant", cluster(), A_RUNNING + [pending("j", 1, 1)], config=node_first).starts
    assert s.nodes == ("gn03",) and s.group == "leaf1"
    assert s.why == ("node best-fit: fewest free GPUs that hold 1x1 (2 free), in leaf group "
                     "leaf1, the fullest of the 2 leaf groups with room that have such a node "
                     "(fill 0.188, 26 GPUs free)")
    assert [dict(a) for a in s.alternatives] == [
        {"group": "leaf2", "level": 0, "score": 0.125, "free_gpus": 28}]
    assert s.estimate_source == "time_limit" and s.runtime_estimate == 3600.0
    assert not s.backfilled


# Single-node E-Binpack, the default (leaf) and placement.single_node: node (the node with the
# fewest free GPUs that hold the job, ties to the fullest leaf group, then the lower index).
# Two leaves of 3 nodes; the running GPUs per node.
@pytest.mark.parametrize("used, g, leaf_first, node_first", [
    # leaf2 is fuller (6 vs 4 used) but gn04 cannot hold 4: gn05 leaf-first; gn01 fits exactly
    ({"gn01": 4, "gn04": 6}, 4, "gn05", "gn01"),
    ({"gn01": 4, "gn04": 6}, 2, "gn04", "gn04"),  # gn04 has exactly 2 free, in the fuller leaf
    ({"gn01": 4, "gn04": 6}, 5, "gn05", "gn05"),  # only idle nodes hold 5: leaf2 is fuller
    ({"gn01": 4, "gn04": 4, "gn05": 2}, 4, "gn04", "gn04"),  # tie on 4 free: leaf2 is fuller
    ({"gn02": 5, "gn03": 5}, 3, "gn02", "gn02"),  # tie in one leaf: the lower index
    ({"gn01": 8, "gn02": 8, "gn03": 8, "gn04": 7}, 1, "gn04", "gn04"),  # full nodes: no
    # leaf1 is fuller (17 vs 7 used) and holds 1 on gn03 (3 free); gn05 has 1 free
    ({"gn01": 8, "gn02": 4, "gn03": 5, "gn05": 7}, 1, "gn03", "gn05"),
])
def test_single_node_binpack(used, g, leaf_first, node_first):
    inv = cluster(leaves=(3, 3))
    jobs = [running(f"r-{n}", n, k) for n, k in used.items()] + [pending("j", 1, g)]
    assert started(plan("kant", inv, jobs)) == {"j": (leaf_first,)}
    cfg = config_from_dict({"placement": {"single_node": "node"}})
    assert started(plan("kant", inv, jobs, config=cfg)) == {"j": (node_first,)}


def test_gang_takes_whole_free_nodes_in_the_fullest_leaf():
    for policy, nodes in [("kant", ("gn01", "gn02")), ("slurm", ("gn01", "gn02"))]:
        p = plan(policy, cluster(), A_RUNNING + [pending("g", 2, 8)])
        assert started(p) == {"g": nodes}, policy
        assert p.starts[0].node_gpus == (8, 8)


def test_job_larger_than_a_leaf_spans_the_spine():
    # 5 whole nodes: leaf1 has 3 whole free (gn01, gn02, gn04), leaf2 has 3 (gn06-08).
    p = plan("kant", cluster(), A_RUNNING + [pending("big", 5, 8)])
    assert started(p) == {"big": ("gn01", "gn02", "gn04", "gn06", "gn07")}
    assert p.starts[0].group == "spine"
    p = plan("slurm", cluster(), A_RUNNING + [pending("big", 5, 8)])
    assert started(p) == {"big": ("gn01", "gn02", "gn04", "gn06", "gn07")}


def test_fullest_group_that_still_fits_keeps_idle_leaves_whole():
    # Three leaves of 2 nodes: leaf1 gn01 4 used; leaf2 gn03 6 used; leaf3 idle.
    inv = cluster(leaves=(2, 2, 2))
    jobs = [running("r1", "gn01", 4), running("r2", "gn03", 6), pending("j", 1, 4)]
    # kant: leaf2 is fullest (6/16) and gn04 fits -> gn04; leaf3 stays whole.
    assert started(plan("kant", inv, jobs)) == {"j": ("gn04",)}
    # with placement.single_node: node, gn01 (exactly 4 free) fills up; gn04 stays whole too.
    cfg = config_from_dict({"placement": {"single_node": "node"}})
    assert started(plan("kant", inv, jobs, config=cfg)) == {"j": ("gn01",)}
    # slurm: usable nodes for 4 GPUs: leaf1 2, leaf2 1, leaf3 2 -> leaf2 -> gn04.
    assert started(plan("slurm", inv, jobs)) == {"j": ("gn04",)}
    # a 2-GPU job: kant still prefers leaf2 (gn03 has exactly 2 free: best fit).
    jobs[-1] = pending("j", 1, 2)
    assert started(plan("kant", inv, jobs)) == {"j": ("gn03",)}
    # slurm: usable for 2 GPUs: leaf1 2, leaf2 2, leaf3 2 -> leaf1, first node gn01.
    assert started(plan("slurm", inv, jobs)) == {"j": ("gn01",)}


def test_pool_filter_partition_and_gpu_type():
    names = [f"gn{i:02d}" for i in range(1, 9)]
    parts = [Partition("all", tuple(names), default=True), Partition("p2", tuple(names[6:]))]
    inv = cluster(types=["a100"] * 4 + ["h100"] * 4, partitions=parts)
    jobs = [pending("h", 1, 1, gpu_type="h100"), pending("p", 1, 1, submit=2.0,
                                                          partitions=("p2",)),
            pending("x", 1, 1, submit=3.0, excluded_nodes=("gn01",))]
    for policy in ("kant", "slurm", "fifo"):
        got = started(plan(policy, inv, jobs))
        assert got["h"][0] in names[4:], policy
        assert got["p"][0] in names[6:], policy
        assert got["x"][0] != "gn01", policy


def test_reservation_times_and_backfill():
    # 2 nodes; gn01 full until 1000, gn02 half used until 3000. now = 100.
    inv = cluster(leaves=(2,))
    jobs = [running("r1", "gn01", 8, limit=1000.0), running("r2", "gn02", 4, limit=3000.0),
            pending("big", 2, 8, submit=10.0, limit=5000.0),
            pending("short", 1, 4, submit=20.0, limit=500.0),
            pending("long", 1, 4, submit=30.0, limit=5000.0)]
    for policy in ("kant", "slurm"):
        p = plan(policy, inv, jobs)
        # big fits when r2 ends at 3000; short ends at 600, before that: backfills on gn02.
        assert started(p) == {"short": ("gn02",)}, policy
        assert p.starts[0].backfilled
        res = {r.job_id: (r.start_time, r.nodes) for r in p.reservations}
        # long would still run at 3000: it waits until big is done (3000 + 5000).
        assert res == {"big": (3000.0, ("gn01", "gn02")), "long": (8000.0, ("gn01",))}, policy
    p = plan("fifo", inv, jobs)
    assert p.starts == () and p.reservations == ()
    assert p.blocked["short"] == "behind big (strict order, no backfill)"


def test_kant_backfills_into_spare_gpus_slurm_holds_whole_nodes():
    # gn01 and gn02 each half used; r2 runs long. A 2x6 job waits for r2 (at 5000) and needs
    # 6 of 8 on each node: 2 GPUs per node stay spare during its reservation.
    inv = cluster(leaves=(2,))
    jobs = [running("r1", "gn01", 4, limit=1000.0), running("r2", "gn02", 4, limit=5000.0),
            pending("big", 2, 6, submit=10.0, limit=5000.0),
            pending("small", 1, 2, submit=20.0, limit=9000.0)]
    k = plan("kant", inv, jobs)
    assert [(r.job_id, r.start_time, r.node_gpus) for r in k.reservations][0] == \
        ("big", 5000.0, (6, 6))
    assert started(k) == {"small": ("gn01",)}
    assert "uses only GPUs they leave spare" in " ".join(k.explain["small"])
    s = plan("slurm", inv, jobs)
    assert "small" not in started(s)  # whole-node reservation: gn01 and gn02 are held


def test_explain_of_a_reserved_job_lists_what_may_backfill():
    inv = cluster(leaves=(2,))
    jobs = [running("r1", "gn01", 8, limit=1000.0), running("r2", "gn02", 4, limit=3000.0),
            pending("big", 2, 8, submit=10.0, limit=5000.0),
            pending("short", 1, 4, submit=20.0, limit=500.0)]
    p = plan("kant", inv, jobs)
    lines = p.explain["big"]
    assert lines[0] == ("rank 0 in kant order: class=batch, class_tier=2, quota_tier=0, "
                        "age_s=90.0")
    assert lines[1] == "runtime estimate 5000 s from time_limit"
    assert lines[2] == ("does not fit now; reservation 1 of 8: starts 3000 (now+2900s) on "
                        "gn01:8,gn02:8")
    assert lines[-1] == ("may backfill ahead of it without delaying it: short (ends 600 "
                         "(now+500s), before it starts)")
    assert p.blocked["big"] == "does not fit now; reserved from 3000 (now+2900s)"
    assert "backfilled: ends by 600 (now+500s), before every reservation starts" in \
        p.explain["short"]


def test_user_estimate_moves_the_reservation_earlier_for_kant_only():
    inv = cluster(leaves=(1,))
    jobs = [running("r1", "gn01", 8, limit=1000.0, est_runtime=300.0),
            pending("next", 1, 8, submit=5.0, limit=1000.0, est_runtime=200.0)]
    k = plan("kant", inv, jobs)
    assert [(r.start_time, r.runtime_estimate, r.estimate_source) for r in k.reservations] == \
        [(300.0, 200.0, "user")]
    s = plan("slurm", inv, jobs)
    assert [(r.start_time, r.runtime_estimate, r.estimate_source) for r in s.reservations] == \
        [(1000.0, 1000.0, "time_limit")]


def test_quota_tiers_order_and_borrowing_limit():
    cfg = config_from_dict({"quota": {"accounts": {"a": {"*": 8}}, "borrow_limit": 0.5}})
    inv = cluster()
    jobs = [running("r1", "gn01", 8, account="a"),
            pending("a-borrow", 1, 4, submit=1.0, account="a"),
            pending("b-new", 1, 1, submit=50.0, account="b"),
            pending("a-over", 1, 8, submit=2.0, account="a")]
    p = plan("kant", inv, jobs, config=cfg)
    assert [e.job_id for e in p.order] == ["b-new", "a-borrow", "a-over"]
    f = {e.job_id: dict(e.factors) for e in p.order}
    assert f["a-borrow"]["quota_tier"] == 1 and f["a-borrow"]["quota"] == 8
    assert f["a-over"]["quota_tier"] == 2 and f["b-new"]["quota_tier"] == 0
    assert set(started(p)) == {"b-new", "a-borrow"}
    assert p.blocked["a-over"] == ("over the borrowing limit: account 'a' holds 12 of quota 8 "
                                   "(any GPUs), may reach 12")


def test_class_tiers_put_inference_first():
    inv = cluster(leaves=(1,))
    jobs = [pending("t", 1, 8, submit=1.0, job_class="training"),
            pending("i", 1, 8, submit=9.0, job_class="inference")]
    p = plan("kant", inv, jobs)
    assert [e.job_id for e in p.order] == ["i", "t"]
    assert started(p) == {"i": ("gn01",)}
    # slurm and fifo ignore classes: oldest first.
    assert started(plan("slurm", inv, jobs)) == {"t": ("gn01",)}


def test_e_spread_replicas_on_different_zone_nodes():
    cfg = config_from_dict({"inference_zone": {"nodes": "gn[05-08]"}})
    inv = cluster()
    jobs = [running("rep0", "gn05", 1, job_class="inference", service="chat"),
            running("filler", "gn07", 4),
            pending("rep1", 1, 1, submit=1.0, job_class="inference", service="chat"),
            pending("rep2", 1, 1, submit=2.0, job_class="inference", service="chat"),
            pending("rep3", 1, 1, submit=3.0, job_class="inference", service="chat"),
            pending("rep4", 1, 1, submit=4.0, job_class="inference", service="chat"),
            pending("rep5", 1, 1, submit=5.0, job_class="inference", service="chat",
                    max_per_node=1),
            pending("batch", 1, 1, submit=6.0)]
    p = plan("kant", inv, jobs, config=cfg)
    got = started(p)
    # rep1: zone nodes without a replica: gn06 (8 free), gn07 (4), gn08 (8) -> best fit gn07.
    # rep2, rep3: gn06, gn08. rep4: every zone node has one: best fit -> gn07 (3 free).
    assert (got["rep1"], got["rep2"], got["rep3"], got["rep4"]) == \
        (("gn07",), ("gn06",), ("gn08",), ("gn07",))
    assert "rep5" not in got  # capped at 1 per node and every zone node has a replica
    assert got["batch"][0] in ("gn01", "gn02", "gn03", "gn04")  # training/batch stay out
    assert p.node_tiers["gn05"] == 3 and p.node_tiers["gn01"] in (0, 1)
    assert "E-Spread" in p.starts[0].why


def test_node_tiers_after_the_plan():
    inv = cluster(leaves=(2, 2))
    p = plan("kant", inv, [running("r1", "gn01", 2), pending("j", 1, 1)])
    # j goes to gn01 (best fit); gn02 is idle in a used leaf; leaf2 stays whole.
    assert dict(p.node_tiers) == {"gn01": 0, "gn02": 1, "gn03": 2, "gn04": 2}
    assert plan("slurm", inv, [pending("j", 1, 1)]).node_tiers == {}


def test_job_that_can_never_fit():
    p = plan("kant", cluster(leaves=(2,)), [pending("huge", 3, 8)])
    assert p.blocked["huge"] == ("does not fit now; no reservation: can never fit: its pool has "
                                 "2 usable nodes with 16 GPUs")


def test_plan_is_json_ready():
    p = plan("kant", cluster(), A_RUNNING + [pending("j", 1, 1), pending("g", 9, 8)])
    data = json.loads(json.dumps(p.to_dict()))
    assert data["policy"] == "kant"
    assert data["starts"][0]["job_id"] == "j"
    assert set(data["explain"]) == {"j", "g"}
    assert data["stats"]["started"] == 1


def test_classifier_uses_qos_then_partition_and_keeps_tags():
    cfg = config_from_dict({"classes": {"by_qos": {"serve": "inference"},
                                        "by_partition": {"train": "training"}}})
    classify = make_classifier(cfg)
    j = pending("1", 1, 1, qos="serve", partitions=("train",))
    assert (classify(j).job_class, classify(j).class_source) == ("inference", "qos")
    j = pending("2", 1, 1, qos="normal", partitions=("train",))
    assert (classify(j).job_class, classify(j).class_source) == ("training", "partition")
    j = pending("3", 1, 1, qos="serve", job_class="batch", class_source="tag")
    assert classify(j) is j
    j = pending("4", 1, 1)
    assert classify(j) is j
    assert make_classifier(config_from_dict({}))(j) is j


def test_bad_zone_is_a_config_error():
    cfg = config_from_dict({"inference_zone": {"partition": "nope"}})
    with pytest.raises(ConfigError, match="inference_zone.partition = 'nope': no such partition"):
        plan("kant", cluster(), [pending("j", 1, 1)], config=cfg)


def test_history_estimates_only_when_enabled():
    from kant_slurm.engine.estimate import HistoryEstimator

    h = HistoryEstimator({("u", "a", "train"): 600.0})
    inv = cluster(leaves=(1,))
    jobs = [running("r1", "gn01", 8, limit=1000.0),
            pending("next", 1, 8, limit=5000.0, user="u", account="a", name="train")]
    snap = ClusterSnapshot.idle(inv, jobs)
    on = config_from_dict({"estimator": {"history": True}})
    p = get_policy("kant", on).with_history(h).plan(snap, 100.0)
    assert [(r.start_time, r.runtime_estimate, r.estimate_source) for r in p.reservations] == \
        [(1000.0, 600.0, "history")]
    p = get_policy("kant").with_history(h).plan(snap, 100.0)  # estimator.history is off
    assert p.reservations[0].estimate_source == "time_limit"


def test_plan_as_text_tables_and_explain():
    from kant_slurm.engine.render import format_explain, format_plan

    inv = cluster(leaves=(2,))
    jobs = [running("r1", "gn01", 8, limit=1000.0), running("r2", "gn02", 4, limit=3000.0),
            pending("big", 2, 8, submit=10.0, limit=5000.0),
            pending("short", 1, 4, submit=20.0, limit=500.0)]
    p = plan("kant", inv, jobs)
    text = format_plan(p)
    lines = text.splitlines()
    assert lines[0] == ("policy kant at 100: 2 pending, 2 running; 1 start now (1 by backfill), "
                        "1 reservations")
    assert "  big          from 3000 (+48m) on gn[01-02] (16 GPUs) [time_limit 5000s]" in lines
    assert "  short           4 GPUs on gn02 backfill  [time_limit 500s]" in lines
    assert "  tier 0: gn[01-02]" in lines
    assert format_explain(p, "short").splitlines()[0] == "job short (kant):"
    # live-cluster epoch times print as UTC
    p = plan("kant", inv, [dataclasses_replace(j) for j in jobs], now=1_800_000_000.0)
    assert "2027-01-15T08:00:00Z" in format_plan(p)


def dataclasses_replace(job):
    import dataclasses

    shift = 1_800_000_000.0 - 100.0
    return dataclasses.replace(job, submit_time=job.submit_time + shift,
                               start_time=None if job.start_time is None
                               else job.start_time + shift)


def test_jobs_not_yet_eligible_wait():
    inv = cluster(leaves=(1,))
    jobs = [pending("later", 1, 1, submit=1.0, eligible_time=500.0),
            pending("now", 1, 1, submit=2.0)]
    for policy in ("kant", "slurm", "fifo"):
        p = plan(policy, inv, jobs)
        assert started(p) == {"now": ("gn01",)}, policy
        assert p.blocked["later"] == "not eligible before 500 (now+400s)"
