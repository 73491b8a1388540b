"""The parsers on every tested Slurm release's replies to the same workload.

tests/fixtures/slurm-<version>/ were recorded by tests/fixtures/record.sh from a real dev cluster
of each release (16 nodes x 8 h100, leaves of 4): jobs 1 (1 GPU, gn01, kant-tagged inference),
2 (3 GPUs, gn01), 3 (8 GPUs, gn02), 4 (2 x 8, gn03-04, exclusive) running; 5 (16 x 8), 6 (2 GPUs,
nice 100, not on gn01) and 7 (held, 2 x 4 on gn05-06) pending; then 2 and 7 cancelled, 8
(2 GPUs) completed, and everything else cancelled: 5 and 6 while pending. Expected values are
read off the recorded text by hand and are the same for every release.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kant_slurm.errors import SlurmError
from kant_slurm.formats import slurm_jobs, slurm_nodes
from kant_slurm.formats.sacct import parse_sacct, parse_sacct_json

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VERSIONS = ("22.05", "24.11", "26.05")
NEWER = ("24.11", "26.05")
NODES = [f"gn{i:02d}" for i in range(1, 17)]
# 2106-02-07: where Slurm's NO_VAL (4294967294) lands when read as a Unix time.
NO_VAL_TIME = 4294967294


def text(version: str, name: str) -> str:
    return (FIXTURES / f"slurm-{version}" / name).read_text()


def load(version: str, name: str):
    return json.loads(text(version, name))


@pytest.mark.parametrize("version", VERSIONS)
def test_fixtures_are_of_their_release(version):
    if version == "22.05":
        # Recorded before version.txt existed; its JSON says which data parser wrote it.
        assert load(version, "squeue.json")["meta"]["Slurm"]["release"].startswith("22.05.")
    else:
        assert text(version, "version.txt").split() == ["slurm-wlm", f"{version}.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_nodes_from_scontrol(version):
    nodes = slurm_nodes.parse_nodes_scontrol(text(version, "scontrol_show_node.txt"))
    assert [n.name for n in nodes] == NODES
    assert [n.gpus_alloc for n in nodes[:5]] == [4, 8, 8, 8, 0]
    assert [n.cpus_alloc for n in nodes[:5]] == [2, 1, 32, 32, 0]
    assert {n.gpus_total for n in nodes} == {8} and {n.gpu_type for n in nodes} == {"h100"}
    assert [n.features for n in nodes[3:5]] == [("h100", "leaf1"), ("h100", "leaf2")]
    assert nodes[15].features == ("h100", "leaf4") and nodes[0].partitions == ("gpu",)
    assert all(n.schedulable and n.weight == 1 and n.memory_mb == 256000 for n in nodes)


@pytest.mark.parametrize("version", VERSIONS)
def test_nodes_from_per_node_sinfo_json_equal_scontrol(version):
    # 22.05 lists every node under "nodes" with or without -N; 24.11+ needs -N for that.
    name = "sinfo.json" if version == "22.05" else "sinfo_per_node.json"
    from_json = slurm_nodes.parse_nodes_json(load(version, name))
    from_scontrol = slurm_nodes.parse_nodes_scontrol(text(version, "scontrol_show_node.txt"))
    assert sorted(from_json, key=lambda n: n.name) == from_scontrol


@pytest.mark.parametrize("version", NEWER)
def test_grouped_sinfo_json_of_newer_releases(version):
    data = load(version, "sinfo.json")
    assert "nodes" not in data and isinstance(data["sinfo"], list)  # the 24.11 break
    grouped = {n.name: n for n in slurm_nodes.parse_nodes_json(data)}
    exact = {n.name: n
             for n in slurm_nodes.parse_nodes_scontrol(text(version, "scontrol_show_node.txt"))}
    assert sorted(grouped) == NODES
    for name in NODES:
        g, e = grouped[name], exact[name]
        assert (g.gpus_total, g.gpus_alloc, g.cpus_total, g.cpus_alloc, g.memory_mb, g.partitions,
                g.schedulable) == (e.gpus_total, e.gpus_alloc, e.cpus_total, e.cpus_alloc,
                                   e.memory_mb, e.partitions, e.schedulable), name
    # Recorded: the idle gn05-gn16 form one record whose features are gn05's (leaf2) only; a
    # grouped node gets none rather than a wrong leaf. gn01 and gn02 are alone in theirs.
    assert grouped["gn09"].features == () and grouped["gn01"].features == ("h100", "leaf1")


def test_grouped_sinfo_record_splits_its_sums():
    record = {"nodes": {"nodes": ["a1", "a2", "a3"]}, "node": {"state": ["MIXED"]},
              "cpus": {"allocated": 7, "minimum": 32}, "memory": {"allocated": 10, "minimum": 64},
              "gres": {"total": "gpu:a100:4", "used": "gpu:a100:2(IDX:0-1)"},
              "features": {"active": "a100,leafX"}, "weight": {"minimum": 5},
              "partition": {"name": "gpu"}}
    other = dict(record, nodes={"nodes": ["a2"]}, partition={"name": "infer"})
    nodes = slurm_nodes.parse_nodes_json({"sinfo": [record, other]})
    assert [(n.name, n.cpus_alloc, n.memory_alloc_mb, n.gpus_alloc, n.weight) for n in nodes] == [
        ("a1", 3, 4, 2, 5), ("a2", 2, 3, 2, 5), ("a3", 2, 3, 2, 5)]
    assert nodes[1].partitions == ("gpu", "infer") and nodes[0].features == ()


@pytest.mark.parametrize("reply, where", [
    ({"sinfo": [{"nodes": {"nodes": []}}]}, r"sinfo\[0\]: no node names"),
    ({"sinfo": ["gn01"]}, r"sinfo\[0\]: expected an object"),
    ({"sinfo": [{"nodes": "gn01"}]}, r"sinfo\[0\]: expected an object at 'nodes'"),
    ({"sinfo": [{"nodes": {"nodes": ["gn01"]}, "cpus": {"allocated": "many"}}]},
     r"sinfo\[0\]\.cpus\.allocated"),
    ({"meta": {}}, r"'nodes' list \(Slurm 22\.05\) or a 'sinfo' list"),
])
def test_malformed_sinfo_replies_name_the_place(reply, where):
    with pytest.raises(SlurmError, match=where):
        slurm_nodes.parse_nodes_json(reply)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("with_details", [True, False])
def test_jobs_from_squeue_json(version, with_details):
    details = (slurm_jobs.job_gpu_details(text(version, "scontrol_show_job.txt"))
               if with_details else None)
    jobs = {j.job_id: j for j in slurm_jobs.parse_jobs_json(load(version, "squeue.json"), details)}
    assert sorted(jobs) == ["1", "2", "3", "4", "5", "6", "7"]
    one, three, eight, two8 = jobs["1"], jobs["2"], jobs["3"], jobs["4"]
    assert (one.state, one.nodes, one.node_gpus, one.node_gpu_indices) == \
        ("RUNNING", ("gn01",), (1,), ((0,),))
    assert three.node_gpu_indices == ((1, 2, 3),) and three.comment == "three gpus"
    assert (eight.gpus, eight.time_limit, eight.nodes) == (8, 7200, ("gn02",))
    assert two8.nodes == ("gn03", "gn04") and two8.gpus == 16
    assert two8.node_gpu_indices == (tuple(range(8)), tuple(range(8)))
    assert (one.job_class, one.class_source, one.service, one.est_runtime) == \
        ("inference", "tag", "chat", 3600.0)
    assert (two8.job_class, two8.est_runtime) == ("training", 7200.0)
    big, svc, held = jobs["5"], jobs["6"], jobs["7"]
    assert (big.state, big.num_nodes, big.gpus_per_node, big.gpus, big.priority) == \
        ("PENDING", 16, 8, 128, 1050)
    assert big.start_time is None and big.nodes == ()
    assert (svc.nice, svc.excluded_nodes, svc.gpus, svc.job_class) == \
        (100, ("gn01",), 2, "inference")
    assert held.required_nodes == ("gn05", "gn06") and held.gpus == 8 and held.priority == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_exclusive_job_from_squeue_json_and_scontrol(version):
    # 26.05's squeue JSON prints "shared": [] for an --exclusive job; its scontrol says
    # Exclusive=NODE, which the CLI backend reads beside the JSON.
    shown = text(version, "scontrol_show_job.txt")
    jobs = {j.job_id: j for j in slurm_jobs.parse_jobs_json(load(version, "squeue.json"),
                                                        exclusive=slurm_jobs.exclusive_jobs(shown))}
    assert jobs["4"].exclusive and not jobs["1"].exclusive


# sacct: job -> (state, GPUs, nodes); 7 (held, cancelled) is not listed by 24.11 and 26.05.
SACCT = {"1": ("CANCELLED", 1, ("gn01",)), "2": ("CANCELLED", 3, ("gn01",)),
         "3": ("CANCELLED", 8, ("gn02",)), "4": ("CANCELLED", 16, ("gn03", "gn04")),
         "5": ("CANCELLED", 128, ()), "6": ("CANCELLED", 2, ()), "8": ("COMPLETED", 2, ("gn01",))}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("form", ["sacct.json", "sacct.txt"])
def test_sacct_records(version, form):
    frame = parse_sacct(text(version, form), source=form)
    rows = {r.job_id: r for r in frame.itertuples()}
    assert {k: (r.state, r.gpus, tuple(r.nodes)) for k, r in rows.items()} == SACCT
    for k in ("5", "6"):  # cancelled while pending: never started
        assert math.isnan(rows[k].start_time), (k, rows[k].start_time)
    for k in ("1", "2", "3", "4", "8"):
        r = rows[k]
        assert r.submit_time <= r.start_time < r.end_time < NO_VAL_TIME
    assert rows["8"].end_time - rows["8"].start_time == pytest.approx(2, abs=1)


@pytest.mark.parametrize("version", NEWER)
def test_sacct_json_no_val_start_is_no_start(version):
    raw = {str(j["job_id"]): j["time"] for j in load(version, "sacct.json")["jobs"]}
    # The recorded break: 24.11 and 26.05 give a job cancelled while pending start NO_VAL.
    assert raw["5"]["start"] == NO_VAL_TIME and raw["6"]["start"] == NO_VAL_TIME
    frame = parse_sacct_json(text(version, "sacct.json"))
    assert (frame["start_time"].dropna() < NO_VAL_TIME).all()
    assert (frame["duration"].dropna() >= 0).all()


@pytest.mark.parametrize("start, end, expected_start", [
    (4294967294, 1796591827, None),   # NO_VAL: cancelled while pending
    (4294967295, 1796591827, None),   # INFINITE
    ({"set": True, "infinite": False, "number": 1796591802}, 1796591827, 1796591802.0),
    ({"set": False, "infinite": False, "number": 0}, 1796591827, None),
    (0, 0, None),
])
def test_sacct_json_start_sentinels(start, end, expected_start):
    job = {"job_id": 9, "state": {"current": ["CANCELLED"]}, "nodes": "None assigned",
           "time": {"submission": 1796591800, "start": start, "end": end, "limit": 10}}
    row = parse_sacct_json({"jobs": [job]}).iloc[0]
    if expected_start is None:
        assert math.isnan(row.start_time) and math.isnan(row.duration)
    else:
        assert row.start_time == expected_start and row.duration == 25
