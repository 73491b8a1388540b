"""The cluster as Slurm sees it (issue 16, part 2): advance reservations, node states,
--constraint, --exclusive, memory, partition limits and two GPU types, as parsers and as the
nodes a job may use. Hand-built snapshots with hand-worked outcomes; the parsers also run on
output recorded from the real dev cluster (tests/fixtures/slurm-22.05/)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from kant_slurm.engine.pools import (constraint_mask, has_room_rules, job_has_room_rules,
                                     parse_constraint, pool_key, pool_mask, room_mask)
from kant_slurm.engine.registry import get_policy
from kant_slurm.errors import DevClusterError, InputError, SlurmError
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Reservation, Topology
from kant_slurm import devcluster as dc
from kant_slurm.formats.slurm_nodes import (NodeRecord, parse_nodes_scontrol,
                                            parse_partitions_scontrol, parse_reservations)
from kant_slurm.formats.snapshot import admit_jobs, build_snapshot
from kant_slurm.formats.slurm_jobs import parse_jobs_json
from kant_slurm.formats.slurm_values import schedulable_state, state_words

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-22.05"
NOW = 1_000_000.0
HOUR = 3600.0


def cluster(n=8, gpus=8, types=None, features=None, partitions=None, memory=None):
    names = [f"gn{i:02d}" for i in range(1, n + 1)]
    topo = Topology.from_links({"leaf1": names[:n // 2], "leaf2": names[n // 2:]},
                               {"spine": ["leaf1", "leaf2"]}, node_order=names)
    parts = partitions or [Partition("gpu", tuple(names), default=True)]
    return Inventory.build(names, [gpus] * n, [64] * n, memory_mb=memory, gpu_type=types,
                           features=features, partitions=parts, topology=topo)


def pending(jid, nn=1, g=8, limit=HOUR, **kw):
    return Job(jid, "PENDING", nn, g, NOW - 100, time_limit=limit, **kw)


def running(jid, nodes, g, **kw):
    return Job(jid, "RUNNING", len(nodes), g, NOW - 200, nodes=tuple(nodes),
               node_gpus=(g,) * len(nodes), start_time=NOW - 100, time_limit=10 * HOUR, **kw)


def snapshot(inv, jobs=(), reservations=(), unschedulable=(), **changes):
    snap = ClusterSnapshot.idle(inv, jobs, taken_at=NOW)
    sched = np.ones(len(inv), dtype=bool)
    sched[[inv.index[x] for x in unschedulable]] = False
    return dataclasses.replace(snap, schedulable=sched, reservations=tuple(reservations),
                               **changes)


def names_of(inv, mask):
    return [inv.names[i] for i in np.flatnonzero(mask)]


def starts(policy, snap):
    plan = get_policy(policy).plan(snap, NOW)
    return {s.job_id: s.nodes for s in plan.starts}, plan


MAINT = Reservation("maint", NOW + 2 * HOUR, NOW + 4 * HOUR, ("gn01", "gn02"), ("MAINT",))
OPEN = Reservation("team", NOW - HOUR, NOW + 5 * HOUR, ("gn07", "gn08"))


# --------------------------------------------------------------------------------------------
# scontrol show reservation -o
# --------------------------------------------------------------------------------------------


def test_no_reservations_in_the_system():
    assert parse_reservations("No reservations in the system\n") == []
    assert parse_reservations("") == []


def test_reservation_line_fields():
    line = ("ReservationName=maint StartTime=2026-12-06T22:00:00 EndTime=2026-12-06T23:00:00 "
            "Duration=01:00:00 Nodes=gn[01-02] NodeCnt=2 CoreCnt=64 Features=(null) "
            "PartitionName=(null) Flags=MAINT,SPEC_NODES TRES=cpu=64 Users=root Groups=(null) "
            "Accounts=(null) Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a "
            "MaxStartDelay=(null)")
    (r,) = parse_reservations(line + "\n")
    assert r.name == "maint" and r.nodes == ("gn01", "gn02")
    assert r.flags == ("MAINT", "SPEC_NODES")
    assert r.end_time - r.start_time == HOUR


def test_reservation_without_start_names_the_line():
    text = "No reservations in the system\nReservationName=x StartTime=soon Nodes=gn01\n"
    with pytest.raises(SlurmError, match=r"line 2 \(x\): expected StartTime=YYYY-MM-DDTHH:MM:SS"):
        parse_reservations(text)
    with pytest.raises(SlurmError, match="line 1: expected ReservationName="):
        parse_reservations("Nodes=gn01 StartTime=2026-12-06T22:00:00\n")


def test_recorded_reservations():
    text = (FIXTURES / "scontrol_show_reservation.txt").read_text()
    res = {r.name: r for r in parse_reservations(text)}
    assert set(res) == {"maint", "team"}
    assert res["maint"].nodes == ("gn01", "gn02") and "MAINT" in res["maint"].flags
    assert res["team"].nodes == ("gn15", "gn16")
    assert res["team"].end_time - res["team"].start_time == 4 * HOUR


@pytest.mark.parametrize("start, end, overlaps", [
    (NOW, NOW + HOUR, False),  # ends before the window
    (NOW, NOW + 2 * HOUR, False),  # ends as it opens
    (NOW, NOW + 2 * HOUR + 1, True),
    (NOW + 3 * HOUR, NOW + 9 * HOUR, True),  # starts inside
    (NOW + 4 * HOUR, None, False),  # starts as it closes
    (NOW, None, True),  # no time limit: runs into it
])
def test_reservation_window_overlap(start, end, overlaps):
    assert MAINT.overlaps(start, end) is overlaps


# --------------------------------------------------------------------------------------------
# Node states
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state, schedulable", [
    ("IDLE", True), ("MIXED", True), ("ALLOCATED", True),
    ("IDLE+DRAIN", False),  # drained
    ("MIXED+DRAIN", False),  # draining: runs its jobs, takes no new one
    ("DRAINING", False), ("DRAINED", False),
    ("DOWN", False), ("DOWN*", False), ("IDLE+NOT_RESPONDING", False), ("IDLE*", False),
    ("IDLE+FAIL", False), ("MIXED+FAIL", False), ("FAILING", False),
    # In a reservation: closed as a state; build_snapshot opens it when the reservation is read.
    ("IDLE+MAINTENANCE+RESERVED", False), ("IDLE+MAINT", False), ("IDLE+RESERVED", False),
    ("idle$", False),
    ("IDLE+PLANNED", True), ("idle-", True),  # held by backfill for a job the engine plans
    ("IDLE+POWERED_DOWN", True), ("idle~", True),  # power saving resumes it for a job
    ("IDLE+POWERING_UP", True), ("idle#", True),
    ("IDLE+POWERING_DOWN", False), ("idle%", False), ("IDLE+POWER_DOWN", False),
    ("idle!", False),
    ("IDLE+COMPLETING", True), ("FUTURE", False), ("INVAL", False),
])
def test_node_state_table(state, schedulable):
    assert schedulable_state(state_words(state)) is schedulable


def test_state_suffix_becomes_its_flag():
    assert state_words("IDLE*") == ["IDLE", "NOT_RESPONDING"]
    assert state_words("mixed~") == ["MIXED", "POWERED_DOWN"]
    assert state_words(["IDLE", "DRAIN"]) == ["IDLE", "DRAIN"]


def _records(states):
    return [NodeRecord(name=f"gn{i:02d}", state=s, schedulable=schedulable_state(state_words(s)),
                       gpus_total=8, gpus_alloc=0, gpu_type="h100", cpus_total=32, cpus_alloc=0,
                       memory_mb=1000, memory_alloc_mb=0, features=(), partitions=("gpu",),
                       weight=1) for i, s in enumerate(states, 1)]


def test_reserved_node_opens_only_under_an_open_reservation():
    nodes = _records(["IDLE+MAINTENANCE+RESERVED", "IDLE+MAINT", "IDLE+RESERVED", "IDLE",
                      "IDLE+MAINT+DRAIN"])
    part = [Partition("gpu", tuple(n.name for n in nodes), default=True)]
    res = [Reservation("maint", NOW - 10, NOW + HOUR, ("gn01", "gn05"), ("MAINT",)),
           Reservation("later", NOW + HOUR, NOW + 2 * HOUR, ("gn02",))]
    snap = build_snapshot(nodes, part, Topology.empty(), [], taken_at=NOW, reservations=res)
    # gn01: covered by an open reservation; gn02: only by one not yet open; gn03: by none;
    # gn05: covered, but drained as well.
    assert snap.schedulable.tolist() == [True, False, False, True, False]
    assert [r.name for r in snap.reservations] == ["maint", "later"]


def test_recorded_node_states_and_reservations():
    nodes = parse_nodes_scontrol((FIXTURES / "scontrol_show_node_states.txt").read_text())
    records = {r.name: r for r in nodes}
    assert records["gn01"].state == "IDLE+MAINTENANCE+RESERVED"
    assert records["gn03"].state == "IDLE+DRAIN" and records["gn15"].state == "MIXED+RESERVED"
    res = parse_reservations((FIXTURES / "scontrol_show_reservation.txt").read_text())
    snap = build_snapshot(nodes, parse_partitions_scontrol(
        (FIXTURES / "scontrol_show_partition_limits.txt").read_text()), Topology.empty(), [],
        taken_at=res[0].start_time + 60, reservations=res)
    sched = dict(zip(snap.inventory.names, snap.schedulable.tolist(), strict=True))
    # Reserved nodes are open under their reservations (room_mask decides who); gn03 drained.
    assert (sched["gn01"], sched["gn03"], sched["gn15"], sched["gn06"]) == (True, False, True,
                                                                          True)
    outside = Job("x", "PENDING", 1, 1, 0.0, time_limit=HOUR)
    inside = Job("y", "PENDING", 1, 1, 0.0, time_limit=HOUR, reservation="team")
    now = res[0].start_time + 60
    assert not {"gn01", "gn02", "gn15", "gn16"} & set(
        names_of(snap.inventory, room_mask(snap, outside, now)))
    assert names_of(snap.inventory, room_mask(snap, inside, now)) == ["gn15", "gn16"]
    # Read before the reservations existed: every reserved node is kept out.
    snap = build_snapshot(nodes, [], Topology.empty(), [], taken_at=now)
    assert not dict(zip(snap.inventory.names, snap.schedulable.tolist(), strict=True))["gn01"]
    assert parse_reservations((FIXTURES / "scontrol_show_reservation_none.txt").read_text()) == []


# --------------------------------------------------------------------------------------------
# --constraint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, tree", [
    ("ib", ("feature", "ib")),
    ("ib&nvl", ("&", (("feature", "ib"), ("feature", "nvl")))),
    ("a|b|c", ("|", (("feature", "a"), ("feature", "b"), ("feature", "c")))),
    ("(a|b)&c", ("&", (("|", (("feature", "a"), ("feature", "b"))), ("feature", "c")))),
    ("[rack1|rack2]", ("[]", ("|", (("feature", "rack1"), ("feature", "rack2"))))),
])
def test_constraint_forms_read(text, tree):
    assert parse_constraint(text) == tree


@pytest.mark.parametrize("text, why", [
    ("a*2", r"node counts \('\*N'\) are not read"),
    ("[rack1*2&rack2*4]", "node counts"),
    ("a&b|c", "mixed without parentheses"),
    ("!a", "unexpected '!'"),
    ("a,b", "unexpected ','"),
    ("(a|b", r"missing '\)'"),
    ("a&", "expected a feature name at the end"),
    ("", "expected a feature name"),
])
def test_constraint_forms_not_read(text, why):
    with pytest.raises(InputError, match=why):
        parse_constraint(text)


FEATURES = [("h100", "ib"), ("h100", "ib"), ("h100",), ("h100",),
            ("a100", "ib"), ("a100",), ("a100", "nvl"), ("a100", "nvl")]


@pytest.mark.parametrize("text, nodes, expect", [
    ("ib", 1, ["gn01", "gn02", "gn05"]),
    ("a100&ib", 1, ["gn05"]),
    ("ib|nvl", 1, ["gn01", "gn02", "gn05", "gn07", "gn08"]),
    ("(ib|nvl)&a100", 1, ["gn05", "gn07", "gn08"]),
    ("[ib|nvl]", 1, ["gn01", "gn02", "gn05", "gn07", "gn08"]),
    ("[nvl]", 2, ["gn07", "gn08"]),
    ("gb200", 1, []),
])
def test_constraint_mask(text, nodes, expect):
    inv = cluster(features=FEATURES)
    assert names_of(inv, constraint_mask(inv, text, nodes)) == expect


def test_matching_or_for_several_nodes_is_not_a_mask():
    inv = cluster(features=FEATURES)
    with pytest.raises(InputError, match="matching OR"):
        constraint_mask(inv, "[ib|nvl]", 2)


def test_constrained_job_starts_only_on_nodes_with_the_feature():
    inv = cluster(features=FEATURES)
    snap = snapshot(inv, [pending("c", 1, 8, features="nvl"), pending("d", 2, 8, features="ib")])
    for policy in ("fifo", "slurm", "kant"):
        got, _ = starts(policy, snap)
        assert set(got["c"]) <= {"gn07", "gn08"}, policy
        assert set(got["d"]) <= {"gn01", "gn02", "gn05"}, policy


def test_unreadable_constraint_keeps_the_job_out_of_steering(caplog):
    inv = cluster(features=FEATURES)
    snap = snapshot(inv, [pending("odd", 2, 8, features="ib*2"), pending("ok", 1, 8)])
    with caplog.at_level(logging.WARNING, logger="kant_slurm.engine.pools"):
        got, plan = starts("kant", snap)
    assert "odd" not in got and "ok" in got
    assert all(r.job_id != "odd" for r in plan.reservations)
    lines = [r.getMessage() for r in caplog.records if "odd" in r.getMessage()]
    assert lines == ["job odd: --constraint 'ib*2': node counts ('*N') are not read; it is left "
                     "out of steering (no start, no pin)"]


# --------------------------------------------------------------------------------------------
# Advance reservations in planning
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job, expect", [
    # Runs into the maintenance window (opens in 2 h) and the open reservation: neither.
    (pending("long", limit=3 * HOUR), ["gn03", "gn04", "gn05", "gn06"]),
    # Ends before maintenance starts: only the open reservation is closed to it.
    (pending("short", limit=HOUR), ["gn01", "gn02", "gn03", "gn04", "gn05", "gn06"]),
    (pending("nolimit", limit=None), ["gn03", "gn04", "gn05", "gn06"]),
    # Bound to the open reservation: only inside it.
    (pending("in", limit=3 * HOUR, reservation="team"), ["gn07", "gn08"]),
    # Bound to a reservation not open yet, or unknown: nowhere now.
    (pending("early", reservation="maint"), []),
    (pending("ghost", reservation="nope"), []),
])
def test_reservation_room(job, expect):
    inv = cluster()
    snap = snapshot(inv, [job], [MAINT, OPEN])
    room = room_mask(snap, job, NOW)
    assert names_of(inv, room) == expect


def test_flex_reservation_lets_its_jobs_out():
    inv = cluster()
    flex = dataclasses.replace(OPEN, flags=("FLEX",))
    job = pending("in", limit=3 * HOUR, reservation="team")
    room = room_mask(snapshot(inv, [job], [MAINT, flex]), job, NOW)
    assert names_of(inv, room) == ["gn03", "gn04", "gn05", "gn06", "gn07", "gn08"]


def test_no_rule_no_room_mask():
    inv = cluster()
    job = pending("a")
    assert room_mask(snapshot(inv, [job]), job, NOW) is None


def test_plan_keeps_reserved_and_drained_nodes_free():
    inv = cluster()
    jobs = [pending(f"j{i}", 1, 8, limit=3 * HOUR) for i in range(8)]
    jobs.append(pending("in", 1, 8, limit=HOUR, reservation="team"))
    snap = snapshot(inv, jobs, [MAINT, OPEN], unschedulable=["gn03"])
    for policy in ("fifo", "slurm", "kant"):
        got, plan = starts(policy, snap)
        used = {n for job_id, nodes in got.items() if job_id != "in" for n in nodes}
        assert not used & {"gn01", "gn02", "gn03", "gn07", "gn08"}, policy
        assert len(used) == 3, policy  # gn04..gn06
        assert got["in"][0] in ("gn07", "gn08"), policy
        for r in plan.reservations:  # planned later starts avoid them too (conservative)
            assert not set(r.nodes) & {"gn01", "gn02", "gn03", "gn07", "gn08"}


# --------------------------------------------------------------------------------------------
# Partitions sharing nodes, their limits
# --------------------------------------------------------------------------------------------

PARTS = [Partition("short", tuple(f"gn{i:02d}" for i in range(1, 9)), default=True,
                   max_time=2 * HOUR, priority_tier=2),
         Partition("long", tuple(f"gn{i:02d}" for i in range(5, 9))),
         Partition("off", ("gn01",), up=False)]


@pytest.mark.parametrize("partitions, limit, closed, expect", [
    (("short",), HOUR, (), [f"gn{i:02d}" for i in range(1, 9)]),
    (("short",), 3 * HOUR, ("short",), []),  # above MaxTime: not startable there
    (("short", "long"), 3 * HOUR, ("short",), ["gn05", "gn06", "gn07", "gn08"]),
    ((), 3 * HOUR, ("short",), []),  # the default partition is `short`
    (("short",), None, (), [f"gn{i:02d}" for i in range(1, 9)]),  # gets the default limit
    (("off",), HOUR, ("off",), []),  # partition not up
])
def test_partition_limits(partitions, limit, closed, expect):
    inv = cluster(partitions=PARTS)
    (job,) = admit_jobs([pending("p", limit=limit, partitions=partitions)], PARTS,
                        _records(["IDLE"] * 8))
    assert job.closed_partitions == closed
    assert names_of(inv, pool_mask(inv, job)) == expect


def test_plan_respects_max_time():
    inv = cluster(partitions=PARTS)
    jobs = admit_jobs([pending("too-long", limit=3 * HOUR, partitions=("short",)),
                       pending("either", limit=3 * HOUR, partitions=("short", "long"))],
                      PARTS, _records(["IDLE"] * 8))
    snap = snapshot(inv, jobs)
    for policy in ("fifo", "slurm", "kant"):
        got, _ = starts(policy, snap)
        assert "too-long" not in got, policy
        assert got["either"][0] in ("gn05", "gn06", "gn07", "gn08"), policy


def test_drained_partition_still_starts_its_queued_jobs():
    line = "PartitionName=p Nodes=gn01 MaxTime=UNLIMITED State={}"
    up = [parse_partitions_scontrol(line.format(s))[0].up for s in ("UP", "DRAIN", "DOWN",
                                                                    "INACTIVE")]
    assert up == [True, True, False, False]


def test_recorded_partition_limits():
    parts = {p.name: p for p in parse_partitions_scontrol(
        (FIXTURES / "scontrol_show_partition_limits.txt").read_text())}
    assert parts["gpu"].max_time is None and parts["gpu"].default
    assert parts["debug"].max_time == 1800 and parts["debug"].priority_tier == 10
    assert parts["debug"].nodes == parts["gpu"].nodes[:4]


# --------------------------------------------------------------------------------------------
# Memory, --exclusive, GPU types
# --------------------------------------------------------------------------------------------


def test_memory_per_node_against_free_memory():
    inv = cluster(n=4, memory=[1000, 4000, 4000, 0])  # gn04 reports no memory: not checked
    job = pending("m", g=1, mem_per_node_mb=2000)
    snap = snapshot(inv, [job], memory_alloc_mb=np.array([0, 0, 3000, 0], dtype=np.int64))
    assert names_of(inv, room_mask(snap, job, NOW)) == ["gn02", "gn04"]


def test_exclusive_job_asks_for_whole_nodes():
    # Slurm gives an exclusive job every GPU of its nodes: it fits only where all are free,
    # and nothing joins it there.
    inv = cluster(n=4, types=["h100"] * 2 + ["a100"] * 2, gpus=8)
    nodes = _records(["IDLE"] * 4)
    nodes[2] = dataclasses.replace(nodes[2], gpus_total=4, gpu_type="a100")
    nodes[3] = dataclasses.replace(nodes[3], gpu_type="a100")
    part = [Partition("gpu", inv.names, default=True)]
    x, a, plain = admit_jobs([pending("x", g=1, exclusive=True),
                              pending("a", g=1, exclusive=True, gpu_type="a100"),
                              pending("s", g=1)], part, nodes)
    assert (x.gpus_per_node, a.gpus_per_node, plain.gpus_per_node) == (8, 8, 1)
    snap = snapshot(inv, [running("r", ["gn01"], 1), dataclasses.replace(x, job_id="1x"),
                          dataclasses.replace(plain, job_id="2s")])
    for policy in ("fifo", "slurm", "kant"):
        got, plan = starts(policy, snap)
        assert got["1x"] in (("gn02",), ("gn04",)), policy  # every GPU free there
        assert {p.job_id: p.node_gpus for p in plan.starts}["1x"] == (8,), policy
        assert got["2s"] != got["1x"], policy


def test_two_gpu_types():
    inv = cluster(types=["h100"] * 4 + ["a100"] * 4)
    # Fill the h100 nodes but gn04, so a plain-gpu job has one h100 node left.
    snap = snapshot(inv, [running(f"r{i}", [f"gn0{i}"], 8) for i in range(1, 4)]
                    # Ids in queue order (equal submit times): a100, h100, then plain gpu.
                    + [pending("1a", 1, 8, gpu_type="a100"), pending("2h", 1, 8, gpu_type="h100"),
                       pending("3any", 2, 8)])
    for policy in ("fifo", "slurm", "kant"):
        got, _ = starts(policy, snap)
        assert got["1a"][0] in ("gn05", "gn06", "gn07", "gn08"), policy
        assert got["2h"] == ("gn04",), policy
        assert set(got["3any"]) <= {"gn05", "gn06", "gn07", "gn08"} - set(got["1a"]), policy

    # A plain-gpu job may use an h100 node as well as an a100 one.
    snap = snapshot(inv, [running(f"r{i}", [f"gn0{i}"], 8) for i in range(1, 4)]
                    + [running(f"s{i}", [f"gn0{i}"], 8) for i in range(5, 9)]
                    + [pending("1any", 1, 8), pending("2a", 1, 8, gpu_type="a100")])
    for policy in ("fifo", "slurm", "kant"):
        got, _ = starts(policy, snap)
        assert got == {"1any": ("gn04",)}, policy


# --------------------------------------------------------------------------------------------
# squeue --json: reservation, memory, constraint, exclusive (recorded)
# --------------------------------------------------------------------------------------------


def test_recorded_jobs_with_cluster_fields():
    data = json.loads((FIXTURES / "squeue_cluster_state.json").read_text())
    jobs = {j.name: j for j in parse_jobs_json(data)}
    assert jobs["in-resv"].reservation == "team"
    assert jobs["constrained"].features == "leaf2" and jobs["constrained"].reservation is None
    assert jobs["exclusive"].exclusive and not jobs["constrained"].exclusive
    assert jobs["memory"].mem_per_node_mb == 64000
    assert jobs["mem-per-cpu"].mem_per_node_mb == 4 * 2000
    assert jobs["a100-only"].gpu_type == "a100"


def test_memory_from_v0040_names():
    data = {"jobs": [{"job_id": 1, "job_state": ["PENDING"], "node_count": {"number": 1},
                      "minimum_memory_per_node": {"set": True, "infinite": False,
                                                  "number": 512},
                      "resv_name": "r1", "submit_time": {"number": 5}}]}
    (job,) = parse_jobs_json(data)
    assert job.mem_per_node_mb == 512 and job.reservation == "r1"


# --------------------------------------------------------------------------------------------
# Dev cluster: two GPU types
# --------------------------------------------------------------------------------------------


def test_dev_cluster_two_gpu_types(tmp_path):
    spec = dc.DevClusterSpec(nodes=6, gpu_types="h100:4,a100:2")
    spec.validate()
    files = dc.render_configs(spec, dc.DevClusterPaths(tmp_path), "pw", "h")
    gres = [ln for ln in files["gres.conf"].splitlines() if ln.startswith("NodeName=")]
    assert gres == [f"NodeName=gn[01-04] Name=gpu Type=h100 File={tmp_path}/gpus/nvidia[0-7]",
                    f"NodeName=gn[05-06] Name=gpu Type=a100 File={tmp_path}/gpus/nvidia[0-7]"]
    nodes = [ln for ln in files["slurm.conf"].splitlines() if ln.startswith("NodeName=")]
    assert "Gres=gpu:h100:8 Feature=h100,leaf1" in nodes[0]
    assert "Gres=gpu:a100:8 Feature=a100,leaf2" in nodes[5]


@pytest.mark.parametrize("value, why", [
    ("h100:4,a100:1", "names 5 nodes; expected --nodes 6"),
    ("h100", r"expected TYPE:NODES\[,TYPE:NODES...\]"),
    ("h 100:6", "got 'h 100:6'"),
    ("h100:0,a100:6", "got 'h100:0'"),
])
def test_dev_cluster_bad_gpu_types(value, why):
    with pytest.raises(DevClusterError, match=why):
        dc.DevClusterSpec(nodes=6, gpu_types=value).validate()


# --------------------------------------------------------------------------------------------
# What keeps the simulator as it was
# --------------------------------------------------------------------------------------------


def test_room_rules_switch_the_per_shape_masks_off():
    inv = cluster()
    assert not has_room_rules(snapshot(inv, [pending("a")]))
    assert has_room_rules(snapshot(inv, [pending("a")], [MAINT]))
    assert not has_room_rules(snapshot(cluster(partitions=PARTS), [pending("a")]))
    assert not job_has_room_rules(pending("a", exclusive=True, closed_partitions=("x",)))
    for change in ({"reservation": "team"}, {"mem_per_node_mb": 1}):
        assert job_has_room_rules(pending("a", **change)), change


def test_pool_key_splits_only_on_what_decides_the_nodes():
    # Jobs that ask for none of the new things share a key exactly when they did before.
    a, b = pending("a"), pending("b", limit=9 * HOUR)
    assert pool_key(a) == pool_key(b)
    assert pool_key(a) != pool_key(pending("c", features="ib"))
    assert pool_key(a) != pool_key(pending("c", closed_partitions=("gpu",)))
    assert pool_key(pending("d", features="[ib|nvl]")) != pool_key(
        pending("e", 2, features="[ib|nvl]"))


def test_reservation_of_licences_and_bad_end():
    (lic,) = parse_reservations("ReservationName=lic StartTime=2026-12-06T22:00:00 "
                                "EndTime=Unknown Nodes=(null) Licenses=matlab:2 Flags=(null)")
    assert (lic.nodes, lic.end_time, lic.flags) == ((), None, ())
    with pytest.raises(SlurmError, match=r"line 1 \(x\): expected EndTime=.*got 'garbage'"):
        parse_reservations("ReservationName=x StartTime=2026-12-06T22:00:00 EndTime=garbage")


def test_shared_nodes_go_to_the_higher_priority_tier_first():
    # gn05-08 are in both partitions; the older job of the lower tier waits (slurm model).
    inv = cluster(partitions=PARTS)
    jobs = [running(f"r{i}", [f"gn0{i}"], 8) for i in range(1, 5)]
    jobs += [dataclasses.replace(pending("old-long", 4, 8, partitions=("long",)),
                                 submit_time=NOW - 500),
             pending("new-short", 4, 8, limit=HOUR, partitions=("short",))]
    got, plan = starts("slurm", snapshot(inv, jobs))
    assert got == {"new-short": ("gn05", "gn06", "gn07", "gn08")}
    assert [e.job_id for e in plan.order][:2] == ["new-short", "old-long"]


def test_devcluster_up_gpu_types_option_errors_in_one_line(tmp_path):
    from click.testing import CliRunner

    from kant_slurm.cli import cli

    r = CliRunner().invoke(cli, ["devcluster", "up", "--nodes", "4", "--gpu-types", "h100:3",
                                 "--dir", str(tmp_path / "dc"), "--no-install"])
    assert r.exit_code == 1
    assert r.output == "error: --gpu-types 'h100:3' names 3 nodes; expected --nodes 4\n"
    assert not (tmp_path / "dc").exists()  # nothing was started or written


def test_memory_taken_this_cycle_counts():
    # Two 1-GPU jobs of 150 GB each do not share a 256 GB node, though it has the GPUs.
    inv = cluster(n=4, memory=[256000] * 4)
    jobs = [pending(f"m{i}", g=1, mem_per_node_mb=150000) for i in range(3)]
    snap = snapshot(inv, jobs + [running("r", ["gn01"], 1), running("r2", ["gn02"], 1)],
                    memory_alloc_mb=np.array([200000, 0, 0, 0], dtype=np.int64))
    for policy in ("fifo", "slurm", "kant"):
        got, _ = starts(policy, snap)
        placed = sorted(n for nodes in got.values() for n in nodes)
        assert placed == ["gn02", "gn03", "gn04"], (policy, got)
