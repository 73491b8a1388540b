"""Parsers of Slurm output, on output recorded from the real 22.05 dev cluster
(tests/fixtures/slurm-22.05/, made by record.sh there) and on v0.0.40 shapes written from the
published schema. Expected values are read off the recorded text by hand."""

import json
from pathlib import Path

import pytest

from kant_slurm.errors import SlurmError
from kant_slurm.formats import slurm_jobs, slurm_nodes, slurm_values, snapshot

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "slurm-22.05"


def text(name):
    return (FIX / name).read_text()


def load(name):
    return json.loads(text(name))


# --- small values -------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (5, 5.0), ("7", 7.0), (None, None), ("", None),
    ({"set": True, "infinite": False, "number": 60}, 60.0),
    ({"set": False, "infinite": False, "number": 0}, None),
    ({"set": True, "infinite": True, "number": 0}, None),
])
def test_number_accepts_plain_and_nested(value, expected):
    assert slurm_values.number(value) == expected


def test_number_rejects_garbage_naming_the_field():
    with pytest.raises(SlurmError, match="time_limit"):
        slurm_values.number({"set": True, "number": "soon"}, "time_limit")


@pytest.mark.parametrize("gres, expected", [
    ("gpu:h100:8", (8, "h100", None)),
    ("gres:gpu:3", (3, None, None)),
    ("gres/gpu:h100:2", (2, "h100", None)),
    ("gpu:h100:3(IDX:1-3)", (3, "h100", (1, 2, 3))),
    ("gpu:h100:2(IDX:0,5)", (2, "h100", (0, 5))),
    ("gpu:h100:0(IDX:N/A)", (0, "h100", None)),
    ("gpu", (1, None, None)),
    ("craynetwork:4,gpu:a100:4(S:0-1)", (4, "a100", None)),
    ("(null)", (0, None, None)),
    ("", (0, None, None)),
])
def test_parse_gpu_gres(gres, expected):
    assert slurm_values.parse_gpu_gres(gres) == expected


@pytest.mark.parametrize("value, seconds", [
    ("01:00:00", 3600.0), ("1-00:00:00", 86400.0), ("30", 1800.0), ("10:30", 630.0),
    ("2-12", 216000.0), ("UNLIMITED", None), ("Partition_Limit", None),
])
def test_parse_duration(value, seconds):
    assert slurm_values.parse_duration(value) == seconds


def test_scontrol_pairs_keep_values_with_spaces_and_repeated_keys():
    line = ("JobId=4 OS=Linux 6.1 #1 SMP AdminComment=kant:workload=training;est=7200 "
            "Nodes=gn[03-04] CPU_IDs=0-31 GRES=gpu:h100:8(IDX:0-7) "
            "Nodes=gn05 GRES=gpu:h100:1(IDX:2)")
    pairs = slurm_values.scontrol_pairs(line)
    assert ("OS", "Linux 6.1 #1 SMP") in pairs
    assert ("AdminComment", "kant:workload=training;est=7200") in pairs
    assert [v for k, v in pairs if k == "Nodes"] == ["gn[03-04]", "gn05"]


# --- recorded 22.05 -----------------------------------------------------------------------

def test_nodes_from_scontrol_and_sinfo_json_agree():
    a = slurm_nodes.parse_nodes_scontrol(text("scontrol_show_node.txt"))
    b = slurm_nodes.parse_nodes_json(load("sinfo.json"))
    assert [n.name for n in a] == [f"gn{i:02d}" for i in range(1, 17)]
    assert a == b
    gn01 = a[0]
    # Recorded: gn01 holds the 1- and 3-GPU jobs, gn02 the 8, gn03-04 the 2x8 (exclusive).
    assert (gn01.gpus_total, gn01.gpus_alloc, gn01.gpu_type, gn01.cpus_alloc) == (8, 4, "h100", 2)
    assert [n.gpus_alloc for n in a[:5]] == [4, 8, 8, 8, 0]
    assert a[2].cpus_alloc == 32 and a[0].features == ("h100", "leaf1") and a[0].weight == 1
    assert all(n.schedulable for n in a)


def test_partitions_and_topology():
    parts = slurm_nodes.parse_partitions_scontrol(text("scontrol_show_partition.txt"))
    assert [(p.name, p.default, p.max_time, len(p.nodes)) for p in parts] == \
        [("gpu", True, None, 16)]
    topo = slurm_nodes.parse_topology(text("scontrol_show_topology.txt"))
    assert [s.name for s in topo.leaf_groups] == ["leaf1", "leaf2", "leaf3", "leaf4"]
    assert topo.switches["spine"].level == 1 and \
        topo.switches["leaf3"].nodes == ("gn09", "gn10", "gn11", "gn12")
    assert topo.chain("gn16") == ("leaf4", "spine")


def test_job_gpu_details_give_exact_indices():
    det = slurm_jobs.job_gpu_details(text("scontrol_show_job.txt"))
    assert det["1"] == [("gn01", 1, (0,))]
    assert det["2"] == [("gn01", 3, (1, 2, 3))]
    assert det["4"] == [("gn03", 8, tuple(range(8))), ("gn04", 8, tuple(range(8)))]
    assert "5" not in det  # pending


def test_jobs_from_squeue_json():
    det = slurm_jobs.job_gpu_details(text("scontrol_show_job.txt"))
    jobs = {j.job_id: j for j in slurm_jobs.parse_jobs_json(load("squeue.json"), det)}
    assert sorted(jobs) == ["1", "2", "3", "4", "5", "6", "7"]
    one, three, eight, two8 = jobs["1"], jobs["2"], jobs["3"], jobs["4"]
    assert (one.state, one.nodes, one.node_gpus, one.node_gpu_indices) == \
        ("RUNNING", ("gn01",), (1,), ((0,),))
    assert three.node_gpu_indices == ((1, 2, 3),) and three.comment == "three gpus"
    assert eight.gpus == 8 and eight.time_limit == 7200
    assert two8.nodes == ("gn03", "gn04") and two8.gpus == 16 and two8.exclusive
    assert (one.job_class, one.class_source, one.service, one.est_runtime) == \
        ("inference", "tag", "chat", 3600.0)
    assert (two8.job_class, two8.est_runtime) == ("training", 7200.0)
    assert three.job_class == "batch" and three.class_source == "default"
    big, svc, held = jobs["5"], jobs["6"], jobs["7"]
    assert (big.state, big.num_nodes, big.gpus_per_node, big.gpus, big.priority) == \
        ("PENDING", 16, 8, 128, 1050)
    assert big.start_time is None and big.nodes == ()
    assert (svc.nice, svc.excluded_nodes, svc.gpus) == (100, ("gn01",), 2)
    assert held.required_nodes == ("gn05", "gn06") and held.gpus == 8
    # Without scontrol's detail the JSON's gres_detail gives the same indices.
    plain = {j.job_id: j for j in slurm_jobs.parse_jobs_json(load("squeue.json"))}
    assert all(plain[k].node_gpu_indices == jobs[k].node_gpu_indices for k in jobs)


def test_snapshot_from_recorded_output():
    nodes = slurm_nodes.parse_nodes_scontrol(text("scontrol_show_node.txt"))
    snap = snapshot.build_snapshot(
        nodes, slurm_nodes.parse_partitions_scontrol(text("scontrol_show_partition.txt")),
        slurm_nodes.parse_topology(text("scontrol_show_topology.txt"), [n.name for n in nodes]),
        slurm_jobs.parse_jobs_json(load("squeue.json"),
                                   slurm_jobs.job_gpu_details(text("scontrol_show_job.txt"))))
    assert int(snap.gpus_alloc.sum()) == 1 + 3 + 8 + 16
    # Node-side allocation equals the sum over running jobs, node by node.
    from kant_slurm.model import ClusterSnapshot
    assert list(ClusterSnapshot.idle(snap.inventory, snap.jobs).gpus_alloc) == list(snap.gpus_alloc)
    # The held job (7, JobHeldUser) is kept apart from the jobs the policies plan.
    assert len(snap.pending) == 2 and len(snap.running) == 4
    assert [(j.job_id, j.slurm_blocked) for j in snap.held] == [("7", "JobHeldUser")]
    assert [j.job_id for j in snap.queued] == ["5", "6", "7"]


def test_malformed_replies_are_errors_naming_the_place():
    with pytest.raises(SlurmError, match="jobs"):
        slurm_jobs.parse_jobs_json({"meta": {}})
    with pytest.raises(SlurmError, match="nodes"):
        slurm_nodes.parse_nodes_json({"sinfo": []})
    with pytest.raises(SlurmError, match=r"jobs\[0\]\.node_count"):
        slurm_jobs.parse_jobs_json(
            {"jobs": [{"job_id": 1, "job_state": "PENDING", "node_count": "many"}]})


# --- v0.0.40 shapes (written from the schema) -----------------------------------------------

def test_v0040_nodes():
    nodes = {n.name: n for n in slurm_nodes.parse_nodes_json(load("nodes-v0.0.40-docs.json"))}
    assert (nodes["gn05"].gpus_alloc, nodes["gn05"].partitions, nodes["gn05"].weight) == \
        (2, ("gpu", "infer"), 10)
    assert not nodes["gn06"].schedulable and nodes["gn06"].state == "IDLE+DRAIN"
    assert nodes["gn07"].schedulable and nodes["gn07"].gpus_alloc == 8
    assert not nodes["gn08"].schedulable and nodes["gn08"].features == ("h100", "leaf2")


def test_v0040_jobs():
    jobs = {j.job_id: j for j in slurm_jobs.parse_jobs_json(load("squeue-v0.0.40-docs.json"))}
    assert sorted(jobs) == ["101", "102", "103"]  # COMPLETED is left out
    svc, train, big = jobs["101"], jobs["102"], jobs["103"]
    assert (svc.node_gpu_indices, svc.time_limit, svc.priority, svc.start_time) == \
        (((4, 5),), 86400.0, 4000, 1700000060.0)
    assert (svc.job_class, svc.service) == ("inference", "chat")
    assert train.exclusive and train.node_gpus == (8, 8) and train.time_limit == 172800.0
    assert (big.gpus_per_node, big.gpus, big.time_limit, big.partitions) == \
        (8, 32, None, ("gpu", "infer"))
    assert big.excluded_nodes == ("gn01", "gn02") and big.nice == 50


@pytest.mark.parametrize("state, schedulable", [
    ("IDLE", True), ("MIXED", True), ("ALLOCATED", True), ("IDLE+PLANNED", True),
    ("MIXED+COMPLETING", True), ("IDLE+DRAIN", False), ("MIXED+DRAIN", False), ("DOWN*", False),
    ("IDLE+NOT_RESPONDING", False), ("INVAL", False), ("idle~", True), ("MAINT+RESERVED", False),
])
def test_schedulable_states(state, schedulable):
    assert slurm_values.schedulable_state(slurm_values.state_words(state)) is schedulable
