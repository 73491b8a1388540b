"""Preemption for inference jobs (engine/preempt/): hand-built snapshots, hand-computed victims.

Cluster unless said otherwise: two leaf groups of two 8-GPU nodes, leaf1 = gn01, gn02 and
leaf2 = gn03, gn04. ``now`` = 10,000 s, checkpoint interval 3,600 s, so a job started at
``s`` has lost ``GPUs x ((10000 - s) mod 3600)`` GPU-seconds: started 6400 or 2800 -> 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kant_slurm.config import config_from_dict
from kant_slurm.engine.classify import JobRules
from kant_slurm.engine.preempt.victims import lost_gpu_seconds
from kant_slurm.engine.registry import get_policy
from kant_slurm.model import ClusterSnapshot, Job

sys.path.insert(0, str(Path(__file__).parent))
from test_engine_policies import cluster, pending, running  # noqa: E402

NOW = 10_000.0


def cfg(**pre):
    base = {"enabled": True, "classes": ["training"], "slurm": True}
    zone = pre.pop("zone", None)
    raw = {"preemption": base | pre}
    if zone:
        raw["inference_zone"] = {"nodes": zone}
    return config_from_dict(raw)


def train(jid, nodes, gpus, start, **kw):
    return running(jid, nodes, gpus, start=start, job_class="training", **kw)


def infer_run(jid, nodes, gpus, **kw):
    return running(jid, nodes, gpus, start=0.0, job_class="inference", **kw)


def infer(jid, nn, g, submit=NOW - 250.0, sla=300.0, **kw):
    return pending(jid, nn, g, submit=submit, job_class="inference", sla=sla, **kw)


def run(policy, jobs, config, inv=None, now=NOW):
    inv = inv or cluster(leaves=(2, 2))
    return get_policy(policy, config).plan(ClusterSnapshot.idle(inv, jobs), now)


def victims(p):
    return {v.job_id: (v.nodes, v.lost_gpu_seconds) for v in p.preemptions}


def starts(p):
    return {s.job_id: s.nodes for s in p.starts}


FULL_LEAF2 = [infer_run("s3", "gn03", 8), infer_run("s4", "gn04", 8)]


# ------------------------------------------------------------------------- lost work


@pytest.mark.parametrize("start, interval, gpus, lost", [
    (9000.0, 3600.0, 4, 4 * 1000.0),
    (6400.0, 3600.0, 8, 0.0),  # just checkpointed
    (1000.0, 3600.0, 2, 2 * 1800.0),  # 9000 s ran, 2 checkpoints, 1800 s since
    (None, 3600.0, 2, 2 * 3600.0),  # unknown start: a whole interval
])
def test_lost_work_since_last_checkpoint(start, interval, gpus, lost):
    job = Job("t", "RUNNING", 1, gpus, 0.0, nodes=("gn01",), node_gpus=(gpus,),
              start_time=start)
    assert lost_gpu_seconds(job, NOW, interval) == lost


# ------------------------------------------------------------------------- kant victims


KANT_CASES = [
    # (name, running jobs, pending inference jobs, zone, expected victims, expected starts)
    ("fewest GPU-hours lost",
     # gn01: a 4 GPUs lost 4*1000, b 4 GPUs lost 4*3000; gn02: c 8 GPUs lost 8*100.
     [train("a", "gn01", 4, 9000.0), train("b", "gn01", 4, 7000.0),
      train("c", "gn02", 8, 9900.0)] + FULL_LEAF2,
     [infer("i", 1, 4)], None,
     {"c": (("gn02",), 800.0)}, {"i": ("gn02",)}),
    ("fewest jobs when nothing is lost",
     # gn01: a + b (4 + 4, both just checkpointed); gn02: c 8 GPUs, just checkpointed.
     [train("a", "gn01", 4, 6400.0), train("b", "gn01", 4, 2800.0),
      train("c", "gn02", 8, 6400.0)] + FULL_LEAF2,
     [infer("i", 1, 8)], None,
     {"c": (("gn02",), 0.0)}, {"i": ("gn02",)}),
    ("no new fragmentation: a gang victim would leave gn03 half used",
     # g: gang on gn01 + gn03 (4 each); preempting it leaves gn03 at 4/8 (partly used).
     # a on gn02 (4 GPUs): gn02 is full again after. Both lose nothing, both one job.
     [train("g", ("gn01", "gn03"), 4, 6400.0), infer_run("s1", "gn01", 4),
      infer_run("s3", "gn03", 4), train("a", "gn02", 4, 6400.0), infer_run("s2", "gn02", 4),
      infer_run("s4", "gn04", 8)],
     [infer("i", 1, 4)], None,
     {"a": (("gn02",), 0.0)}, {"i": ("gn02",)}),
    ("inside the inference zone first",
     # a on gn01, b on gn03 (a job lent the zone node): same loss, same count, same
     # fragmentation; gn03 is in the zone.
     [train("a", "gn01", 8, 6400.0), infer_run("s2", "gn02", 8), train("b", "gn03", 8, 6400.0),
      infer_run("s4", "gn04", 8)],
     [infer("i", 1, 8)], "gn[03-04]",
     {"b": (("gn03",), 0.0)}, {"i": ("gn03",)}),
    ("a gang victim is preempted whole and all its GPUs count",
     # G on gn01 + gn02 (8 each) lost 16*100 = 1600; t on gn03 lost 8*150 = 1200.
     [train("G", ("gn01", "gn02"), 8, 9900.0), train("t", "gn03", 8, 9850.0),
      infer_run("s4", "gn04", 8)],
     [infer("i", 1, 4)], None,
     {"t": (("gn03",), 1200.0)}, {"i": ("gn03",)}),
    ("the gang when it is the cheapest: both its nodes freed",
     # G on gn01 + gn02 lost 16*10 = 160; t on gn03 lost 8*1000.
     [train("G", ("gn01", "gn02"), 8, 9990.0), train("t", "gn03", 8, 9000.0),
      infer_run("s4", "gn04", 8)],
     [infer("i", 1, 8)], None,
     {"G": (("gn01", "gn02"), 160.0)}, {"i": ("gn01",)}),
    ("never inference, never a non-preemptible job",
     [infer_run("s1", "gn01", 8), running("b", "gn02", 8, start=6400.0, job_class="batch")]
     + FULL_LEAF2,
     [infer("i", 1, 8)], None,
     {}, {}),
    ("free room first: no victim when a node outside the zone has room",
     [infer_run("s1", "gn01", 8), train("a", "gn03", 8, 9999.0)],
     [infer("i", 1, 8)], "gn01",
     {}, {"i": ("gn02",)}),
    ("multi-node inference: two nodes of one leaf group",
     # a (gn01) and b (gn02) lose 8*100 each; c (gn03) and d (gn04) lose 8*50 each:
     # cheaper, and leaf2 holds both.
     [train("a", "gn01", 8, 9900.0), train("b", "gn02", 8, 9900.0),
      train("c", "gn03", 8, 9950.0), train("d", "gn04", 8, 9950.0)],
     [infer("i", 2, 8)], None,
     {"c": (("gn03",), 400.0), "d": (("gn04",), 400.0)}, {"i": ("gn03", "gn04")}),
]


@pytest.mark.parametrize("name, jobs, pend, zone, want_victims, want_starts",
                         KANT_CASES, ids=[c[0] for c in KANT_CASES])
def test_kant_victims(name, jobs, pend, zone, want_victims, want_starts):
    p = run("kant", jobs + pend, cfg(zone=zone))
    assert victims(p) == want_victims
    assert {k: v for k, v in starts(p).items() if k.startswith("i")} == want_starts
    for v in p.preemptions:
        assert v.for_job == "i"
    if want_starts:
        assert "i" not in p.blocked
        assert all(r.job_id != "i" for r in p.reservations)
        assert p.stats["preempted"] == len(want_victims)


def test_freed_gpus_and_started_job_agree():
    jobs = [train("a", "gn01", 4, 9000.0), train("b", "gn01", 4, 7000.0),
            train("c", "gn02", 8, 9900.0)] + FULL_LEAF2 + [infer("i", 1, 4)]
    p = run("kant", jobs, cfg())
    (v,) = p.preemptions
    assert v.node_gpus == (8,)
    (s,) = p.starts
    assert s.node_gpus == (4,)
    assert (s.runtime_estimate, s.estimate_source) == (3600.0, "time_limit")
    assert "SLA rescue: preempts c" in s.why
    assert any("SLA rescue" in line for line in p.explain["i"])


# ------------------------------------------------------------------------- when


def _full():
    return [train("a", "gn01", 8, 9000.0), train("b", "gn02", 8, 9000.0)] + FULL_LEAF2


@pytest.mark.parametrize("pend, config, preempts", [
    # waited 250 of 300 s, lead 180: deadline - lead = submit + 120 <= now -> at risk
    ([infer("i", 1, 8)], cfg(), True),
    # waited 100 of 300: not yet (deadline - lead = submit + 120 > now)
    ([infer("i", 1, 8, submit=NOW - 100.0)], cfg(), False),
    # lead 0: only once the SLA has passed
    ([infer("i", 1, 8, submit=NOW - 250.0)], cfg(lead_seconds=0.0), False),
    ([infer("i", 1, 8, submit=NOW - 300.0)], cfg(lead_seconds=0.0), True),
    # no sla on the job: inference.sla (300) applies
    ([infer("i", 1, 8, sla=None)], cfg(), True),
    # sla 3600: far from its deadline
    ([infer("i", 1, 8, sla=3600.0)], cfg(), False),
    # not eligible yet
    ([infer("i", 1, 8, eligible_time=NOW + 10)], cfg(), False),
    # preemption off
    ([infer("i", 1, 8)], config_from_dict({"preemption": {"classes": ["training"]}}), False),
    # a training job never triggers it
    ([pending("t", 1, 8, submit=0.0, job_class="training")], cfg(), False),
])
def test_when_kant_preempts(pend, config, preempts):
    p = run("kant", _full() + pend, config)
    assert bool(p.preemptions) == preempts


def test_no_preemption_when_the_reservation_meets_the_deadline():
    # a ends at 9000 + 1030 = 10030 (its limit), before the deadline 9750 + 300 = 10050.
    jobs = [train("a", "gn01", 8, 9000.0, limit=1030.0), train("b", "gn02", 8, 9000.0)] \
        + FULL_LEAF2 + [infer("i", 1, 8)]
    p = run("kant", jobs, cfg())
    assert p.preemptions == ()
    assert [r.job_id for r in p.reservations] == ["i"]
    # ... but one ending after the deadline does not rescue it.
    jobs[0] = train("a", "gn01", 8, 9000.0, limit=1100.0)
    assert run("kant", jobs, cfg()).preemptions != ()


def test_victim_bound_per_cycle_earliest_deadline_first():
    jobs = _full() + [infer("late", 1, 8, submit=NOW - 200.0),
                      infer("early", 1, 8, submit=NOW - 290.0)]
    p = run("kant", jobs, cfg(max_victims=1))
    assert [(v.job_id, v.for_job) for v in p.preemptions] == [("a", "early")]
    assert "late" not in starts(p)
    # With the bound used up, free room still rescues: "late" (4 GPUs) fits in the 4 GPUs
    # free on gn02 (outside the zone gn03-04, so the plan did not start it there).
    jobs2 = [train("a", "gn01", 8, 9000.0), infer_run("s2", "gn02", 4), infer_run("z", "gn03", 8),
             infer_run("z4", "gn04", 8), infer("late", 1, 4, submit=NOW - 200.0),
             infer("early", 1, 8, submit=NOW - 290.0)]
    p = run("kant", jobs2, cfg(max_victims=1, zone="gn[03-04]"))
    assert [(v.job_id, v.for_job) for v in p.preemptions] == [("a", "early")]
    assert starts(p) == {"early": ("gn01",), "late": ("gn02",)}
    p = run("kant", jobs, cfg(max_victims=2))
    assert sorted((v.job_id, v.for_job) for v in p.preemptions) == [("a", "early"), ("b", "late")]


def test_preemptible_by_qos_and_partition():
    jobs = [running("q", "gn01", 8, start=9000.0, qos="scavenger"),
            running("p", "gn02", 8, start=9500.0, partitions=("all",))] + FULL_LEAF2 \
        + [infer("i", 1, 8)]
    by_qos = config_from_dict({"preemption": {"enabled": True, "qos": ["scavenger"]}})
    assert victims(run("kant", jobs, by_qos)) == {"q": (("gn01",), 8 * 1000.0)}
    by_part = config_from_dict({"preemption": {"enabled": True, "partitions": ["all"]}})
    # Only p names partition "all" (rules look at the job's own partitions).
    assert victims(run("kant", jobs, by_part)) == {"p": (("gn02",), 8 * 500.0)}


def test_per_service_cap_is_respected():
    # gn01 already runs 2 replicas of "chat" (cap 2): the replica goes to gn02.
    jobs = [running("r1", "gn01", 1, job_class="inference", service="chat"),
            running("r2", "gn01", 1, job_class="inference", service="chat"),
            train("a", "gn01", 6, 6400.0), train("b", "gn02", 8, 9000.0)] + FULL_LEAF2 \
        + [infer("i", 1, 2, service="chat", max_per_node=2)]
    p = run("kant", jobs, cfg())
    assert victims(p) == {"b": (("gn02",), 8 * 1000.0)}
    assert starts(p) == {"i": ("gn02",)}


@pytest.mark.parametrize("policy, want", [
    # gn01 (64 CPUs): a 4 GPUs + 4 CPUs (lost 0), b 4 GPUs + 60 CPUs (lost 4*1000);
    # gn02: c 8 GPUs + 64 CPUs (lost 8*200). The job asks 4 GPUs and 8 CPUs: a alone frees
    # the GPUs but only 4 CPUs; b alone or a+b lose 4000; c loses 1600 -> c.
    ("kant", {"c"}),
    # Slurm: lowest priority first: a (p1) -> gn01 has 4 GPUs, 4 CPUs: no; b (p2) -> gn01 has
    # 8 GPUs, 64 CPUs: fits. Re-sort b, a, c: b alone fits (4 GPUs, 60 CPUs); 3 candidates,
    # one more pass: b again -> victims b.
    ("slurm", {"b"}),
])
def test_cpus_count_too(policy, want):
    jobs = [train("a", "gn01", 4, 6400.0, node_cpus=(4,), cpus_per_node=4, priority=1),
            train("b", "gn01", 4, 9000.0, node_cpus=(60,), cpus_per_node=60, priority=2),
            train("c", "gn02", 8, 9800.0, node_cpus=(64,), cpus_per_node=64, priority=3),
            ] + FULL_LEAF2 + [infer("i", 1, 4, cpus_per_node=8, submit=NOW - 290.0)]
    p = run(policy, jobs, cfg())
    assert {v.job_id for v in p.preemptions} == want


def test_cost_nothing_path_returns_the_same_plan_object():
    from kant_slurm.engine import preempt

    jobs = _full() + [infer("i", 1, 8, submit=NOW - 10.0)]
    snap = ClusterSnapshot.idle(cluster(leaves=(2, 2)), jobs)
    pol = get_policy("kant", None)
    base = pol.plan(snap, NOW)
    assert preempt.kant_preemptions(snap, NOW, base, cfg()) is base


# ------------------------------------------------------------------------- slurm model


SLURM_CASES = [
    ("lowest priority first",
     [train("a", "gn01", 8, 100.0, priority=10), train("b", "gn02", 8, 200.0, priority=5)]
     + FULL_LEAF2, False, {"b"}, ("gn02",)),
    ("youngest first",
     [train("a", "gn01", 8, 100.0, priority=5), train("b", "gn02", 8, 200.0, priority=10)]
     + FULL_LEAF2, True, {"b"}, ("gn02",)),
    ("youngest first off: priority",
     [train("a", "gn01", 8, 100.0, priority=5), train("b", "gn02", 8, 200.0, priority=10)]
     + FULL_LEAF2, False, {"a"}, ("gn01",)),
    # Needs 6 on one node. Pass 1 removes a (2 GPUs, p1): no; b (6, p2): gn01 fits, removed
    # a and b both on it. Re-sort: b first, then a. Pass 2 removes b: fits; 2 candidates <=
    # 2 passes: stop. Only b is preempted (the re-sort spares a).
    ("re-sorted candidates spare a job not needed",
     [train("a", "gn01", 2, 100.0, priority=1), train("b", "gn01", 6, 100.0, priority=2),
      infer_run("s2", "gn02", 8)] + FULL_LEAF2, False, {"b"}, ("gn01",)),
    # Needs 8 on one node; gn01: a (4, p1), c (4, p3); gn02: b (4, p2), d (4, p4).
    # Pass 1: a, b, c removed -> gn01 fits. Re-sort: c, a, b, d. Pass 2: c, a -> fits.
    # Re-sort: a, c, b, d. Pass 3: a, c -> fits, stop: victims a and c (both on gn01).
    ("three passes, victims on the selected node",
     [train("a", "gn01", 4, 100.0, priority=1), train("c", "gn01", 4, 100.0, priority=3),
      train("b", "gn02", 4, 100.0, priority=2), train("d", "gn02", 4, 100.0, priority=4)]
     + FULL_LEAF2, False, {"a", "c"}, ("gn01",)),
]


@pytest.mark.parametrize("name, jobs, youngest, want, nodes", SLURM_CASES,
                         ids=[c[0] for c in SLURM_CASES])
def test_slurm_preempt_qos_model(name, jobs, youngest, want, nodes):
    # No SLA in Slurm: a job that waited 1 s preempts at once.
    pend = [infer("i", 1, 6 if "spare" in name else 8, submit=NOW - 1.0)]
    p = run("slurm", jobs + pend, cfg(slurm_youngest_first=youngest))
    assert {v.job_id for v in p.preemptions} == want
    assert starts(p)["i"] == nodes


def test_slurm_without_the_switch_is_unchanged():
    jobs = _full() + [infer("i", 1, 8, submit=NOW - 1.0)]
    off = config_from_dict({"preemption": {"classes": ["training"]}})
    p = run("slurm", jobs, off)
    assert p.preemptions == () and "i" in p.blocked


def test_rules_from_config():
    r = JobRules.from_config(cfg())
    assert r.preemptible(Job("t", "RUNNING", 1, 1, 0.0, job_class="training"))
    assert not r.preemptible(Job("i", "RUNNING", 1, 1, 0.0, job_class="inference",
                                 preemptible=True))
    assert not r.preemptible(Job("b", "RUNNING", 1, 1, 0.0))


# ------------------------------------------------------------------------- properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_engine_properties import SETTINGS, scenarios  # noqa: E402


@settings(SETTINGS, max_examples=100)
@given(scen=scenarios(), policy=st.sampled_from(["kant", "slurm"]),
       max_victims=st.sampled_from([1, 3, 50]), elastic=st.booleans())
def test_plans_with_preemption_are_consistent(scen, policy, max_victims, elastic):
    import numpy as np

    from kant_slurm.engine.pools import pool_mask

    snap, zone, k_res = scen
    raw = {"inference": {"sla": 0}, "backfill": {"reservations": k_res},
           "preemption": {"enabled": True, "classes": ["training"], "slurm": True,
                          "max_victims": max_victims},
           "inference_zone": {"nodes": zone, "elastic": elastic}}
    p = get_policy(policy, config_from_dict(raw)).plan(snap, snap.taken_at)
    inv = snap.inventory
    jobs = snap.job
    alloc = np.array(snap.gpus_alloc, dtype=np.int64)
    seen = set()
    started_ids = {s.job_id for s in p.starts}
    for v in p.preemptions:
        victim = jobs[v.job_id]
        assert victim.is_running and victim.job_class == "training"
        assert v.job_id not in seen
        seen.add(v.job_id)
        assert v.nodes == victim.nodes  # the whole gang
        assert v.for_job in started_ids and jobs[v.for_job].job_class == "inference"
        assert v.lost_gpu_seconds >= 0
        alloc[inv.nodes_in(v.nodes)] -= np.asarray(v.node_gpus)
    if policy == "kant":
        assert len(p.preemptions) <= max_victims
    for s in p.starts:
        job = jobs[s.job_id]
        assert job.is_pending and len(s.nodes) == job.num_nodes == len(set(s.nodes))
        idx = inv.nodes_in(s.nodes)
        assert snap.schedulable[idx].all()
        assert pool_mask(inv, job)[idx].all()
        alloc[idx] += np.asarray(s.node_gpus)
    assert (alloc <= np.asarray(inv.gpus_total)).all(), "over-allocated after preemption"
    assert (alloc >= 0).all()
    assert not (set(p.blocked) & started_ids)
    assert set(p.blocked) | started_ids == {j.job_id for j in snap.pending}
    assert not any(r.job_id in started_ids for r in p.reservations)
    # per-service caps hold after the plan
    per = {}
    for j in snap.running:
        if j.service and j.job_id not in seen:
            for n in j.nodes:
                per[(j.service, n)] = per.get((j.service, n), 0) + 1
    for s in p.starts:
        job = jobs[s.job_id]
        if job.service:
            for n in s.nodes:
                per[(job.service, n)] = per.get((job.service, n), 0) + 1
                if job.max_per_node and s.job_id in {v.for_job for v in p.preemptions}:
                    assert per[(job.service, n)] <= job.max_per_node
