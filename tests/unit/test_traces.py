"""Trace readers (Philly, SWF, openb, sacct), the time-limit model and the cluster spec."""

import math
from pathlib import Path

import numpy as np
import pytest

from kant_slurm.errors import ConfigError, InputError
from kant_slurm.sim.cluster import bundled_cluster_path, load_cluster_spec, parse_cluster_spec
from kant_slurm.sim.timelimit import apply_time_limits, ladder_limits, parse_model
from kant_slurm.formats.traces import (bundled_trace_path, guess_format, read_openb, read_philly,
                                       read_swf, read_trace)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-22.05"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_philly_rows(tmp_path):
    p = _write(tmp_path, "p.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n"
               "2017-10-01 00:00:10,100.0,8,800.0,vcB\n2017-10-01 00:00:00,5.0,1,5.0,vcA\n")
    t = read_philly(p)
    assert t.jobs["job_id"].tolist() == ["2", "1"]  # sorted by submit
    assert t.jobs["submit_time"].tolist() == [0, 10]
    assert t.jobs["gpus"].tolist() == [1, 8]
    assert t.jobs["account"].tolist() == ["vcA", "vcB"]
    assert set(t.jobs["job_class"]) == {"training"}
    assert math.isnan(t.jobs["time_limit"][0])


@pytest.mark.parametrize("row,match", [
    ("2017-13-01 00:00:00,1,1,1,a", r"p.csv:2:1: field 'timestamp'"),
    ("2017-10-01 00:00:00,abc,1,1,a", r"p.csv:2:2: field 'duration': expected a number"),
    ("2017-10-01 00:00:00,1,0,1,a", r"p.csv:2:3: field 'num_gpus': must be >= 1"),
    ("2017-10-01 00:00:00,1,1.5,1,a", r"p.csv:2:3: field 'num_gpus': expected a whole number"),
    ("2017-10-01 00:00:00,1,1,1,a,extra", r"p.csv:2: 6 fields, header has 5"),
])
def test_philly_errors_name_line_and_field(tmp_path, row, match):
    p = _write(tmp_path, "p.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n" + row + "\n")
    with pytest.raises(InputError, match=match):
        read_philly(p)


def test_philly_missing_column(tmp_path):
    p = _write(tmp_path, "p.csv", "timestamp,duration,gpus\n")
    with pytest.raises(InputError, match="p.csv:1: header lacks column 'num_gpus'"):
        read_philly(p)


SWF = """; Version: 2.2
; Computer: test
1 0 5 100 4 -1 -1 4 200 -1 1 3 7 -1 1 -1 -1 -1
2 10 0 -1 2 -1 -1 2 50 -1 0 3 7 -1 1 -1 -1 -1   ; unknown run time: dropped
3 20 0 30 -1 -1 -1 6 -1 -1 1 4 7 -1 1 -1 -1 -1
"""


def test_swf_fields_and_processor_mapping(tmp_path):
    t = read_swf(_write(tmp_path, "w.swf", SWF), procs_per_gpu=4)
    assert t.jobs["job_id"].tolist() == ["1", "3"]
    assert t.jobs["gpus"].tolist() == [1, 2]  # ceil(4/4), ceil(6/4) from requested processors
    assert t.jobs["duration"].tolist() == [100, 30]
    assert t.jobs["time_limit"].tolist()[0] == 200 and math.isnan(t.jobs["time_limit"][1])
    assert t.jobs["user"].tolist() == ["u3", "u4"]
    assert any("dropped 1 jobs" in n for n in t.notes)


def test_swf_wrong_field_count(tmp_path):
    with pytest.raises(InputError, match=r"w.swf:2: 3 fields, SWF has 18"):
        read_swf(_write(tmp_path, "w.swf", "; c\n1 2 3\n"))


def test_swf_bad_number_names_field(tmp_path):
    line = "1 0 5 x 4 -1 -1 4 200 -1 1 3 7 -1 1 -1 -1 -1\n"
    with pytest.raises(InputError, match=r"w.swf:1:4: field 'run_time'"):
        read_swf(_write(tmp_path, "w.swf", line))


OPENB = """name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,\
deletion_time,scheduled_time
p0,1000,100,1,500,,LS,Running,0,100,10
p1,1000,100,0,0,,BE,Running,5,50,5
p2,1000,100,2,1000,,BE,Succeeded,7,,7
"""


def test_openb_arrival_and_fill(tmp_path):
    p = _write(tmp_path, "pods.csv", OPENB)
    t = read_openb(p)
    assert t.jobs["job_id"].tolist() == ["p0", "p2"]
    assert t.jobs["duration"].tolist() == [90, math.inf]
    assert t.jobs["job_class"].tolist() == ["inference", "batch"]
    assert any("1 CPU-only" in n for n in t.notes) and any("1 GPU-sharing" in n for n in t.notes)
    f = read_openb(p, mode="fill")
    assert f.fill_until_full and f.jobs["submit_time"].tolist() == [0, 1]
    assert np.isinf(f.jobs["duration"]).all()


def test_openb_bad_qos(tmp_path):
    p = _write(tmp_path, "pods.csv", OPENB.replace(",LS,", ",XX,"))
    with pytest.raises(InputError, match=r"pods.csv:2:7: field 'qos'"):
        read_openb(p)


def test_sacct_dumps_both_forms_agree():
    js = read_trace(FIXTURES / "sacct.json")
    ps = read_trace(FIXTURES / "sacct.txt", "sacct")
    cols = ["job_id", "duration", "gpus", "num_nodes", "time_limit", "job_class"]
    assert js.jobs[cols].to_dict("list") == ps.jobs[cols].to_dict("list")
    assert js.jobs["job_id"].tolist() == ["1", "2", "3", "4", "8"]
    assert js.jobs["job_class"].tolist() == ["inference", "", "", "training", ""]
    assert js.jobs["num_nodes"].tolist() == [1, 1, 1, 2, 1]


def test_guess_format():
    assert guess_format(bundled_trace_path()) == "philly"
    assert guess_format(FIXTURES / "sacct.json") == "sacct"
    assert guess_format(FIXTURES / "sacct.txt") == "sacct"


def test_bundled_trace_is_the_real_slice():
    t = read_trace(bundled_trace_path())
    assert len(t) == 4758
    assert (bundled_trace_path().parent / "README.md").read_text().count("CC BY 4.0") == 1


# -- time limits ---------------------------------------------------------------------------


def test_ladder_rounds_up_to_common_limits():
    lim = ladder_limits(np.array([100, 1000, 3600, 100000, 6e6]), np.array([2, 2, 1, 1, 1]))
    assert lim.tolist() == [900, 3600, 3600, 172800, 70 * 86400]


def test_time_limit_models_are_seeded_and_keep_trace_limits():
    t = read_trace(bundled_trace_path()).jobs.head(200).copy()
    t.loc[0, "time_limit"] = 123.0
    a = apply_time_limits(t, "ladder", seed=1)
    b = apply_time_limits(t, "ladder", seed=1)
    c = apply_time_limits(t, "ladder", seed=2)
    assert a["time_limit"].tolist() == b["time_limit"].tolist()
    assert a["time_limit"].tolist() != c["time_limit"].tolist()
    assert a.loc[0, "time_limit"] == 123.0
    assert (a["time_limit"] >= a["duration"]).all()  # factor >= 1: no job is killed
    assert (apply_time_limits(t, "exact")["time_limit"].iloc[1:] ==
            t["duration"].iloc[1:].clip(lower=1)).all()
    assert apply_time_limits(t, "fixed:3600")["time_limit"].iloc[1:].eq(3600).all()
    assert apply_time_limits(t, "none")["time_limit"].iloc[1:].isna().all()


@pytest.mark.parametrize("bad", ["fixed:", "fixed:-1", "gauss", "exact:3"])
def test_bad_time_limit_model(bad):
    with pytest.raises(ConfigError, match="time-limit"):
        parse_model(bad)


# -- cluster spec --------------------------------------------------------------------------

SPEC = {"name": "c", "pools": [{"name": "gpu", "gpu_type": "v100", "nodes": 10,
                                "gpus_per_node": 8, "leaf_size": 4, "spine_size": 2}],
        "inference_zone": {"pool": "gpu", "nodes": 2}}


def test_cluster_spec_builds_tree():
    spec = parse_cluster_spec(SPEC)
    inv = spec.inventory
    assert len(inv) == 10 and spec.total_gpus == 80
    assert inv.leaf_names == ("gpu-leaf01", "gpu-leaf02", "gpu-leaf03")
    assert inv.topology.chain("gpu0009") == ("gpu-leaf03", "gpu-spine02", "root")
    assert spec.inference_zone == ("gpu0009", "gpu0010")


@pytest.mark.parametrize("change,match", [
    (lambda s: s.update(extra=1), r"unknown key 'extra'"),
    (lambda s: s["pools"][0].update(colour="red"), r"pools\[0\]: unknown key 'colour'"),
    (lambda s: s["pools"][0].pop("gpus_per_node"),
     r"pools\[0\]: missing required key 'gpus_per_node'"),
    (lambda s: s["pools"][0].update(nodes="64"), r"pools\[0\].nodes: expected int, got str"),
    (lambda s: s["pools"][0].update(nodes=True), r"pools\[0\].nodes: expected int, got bool"),
    (lambda s: s["pools"][0].update(leaf_size=0), r"leaf_size: must be a positive integer"),
    (lambda s: s["inference_zone"].update(pool="x"), r"inference_zone.pool: no pool named 'x'"),
    (lambda s: s["inference_zone"].update(nodes=11), r"inference_zone.nodes: 11 is more"),
])
def test_cluster_spec_errors_name_the_key(change, match):
    import copy

    spec = copy.deepcopy(SPEC)
    change(spec)
    with pytest.raises(ConfigError, match=match):
        parse_cluster_spec(spec, "c.yaml")


def test_bundled_cluster_loads(tmp_path):
    assert load_cluster_spec(bundled_cluster_path()).total_gpus == 384
    bad = _write(tmp_path, "c.yaml", "name: x\npools: [\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML"):
        load_cluster_spec(bad)


def test_sacct_dump_with_a_requeued_job_keeps_each_run(tmp_path):
    # `sacct -D` lists each run of a requeued job under one id (and a controller started with
    # cleared state hands ids out again): each record is a job, the later ones suffixed -runN.
    header = ("JobID|JobIDRaw|JobName|User|Account|Partition|QOS|State|Submit|Start|End|"
              "ElapsedRaw|TimelimitRaw|NNodes|NodeList|AllocTRES|ReqTRES|AdminComment")
    run = ("7|7|train|u|a|gpu|normal|{state}|{sub}|{start}|{end}|{el}|60|1|gn01|"
           "billing=1,cpu=1,gres/gpu=2,node=1|billing=1,cpu=1,gres/gpu=2,node=1|")
    dump = tmp_path / "sacct.txt"
    dump.write_text("\n".join([header,
                               run.format(state="REQUEUED", sub=1000, start=1010, end=1100, el=90),
                               run.format(state="COMPLETED", sub=1000, start=1250, end=1400,
                                          el=150)]) + "\n")
    trace = read_trace(dump, "sacct")
    assert trace.jobs["job_id"].tolist() == ["7", "7-run2"]
    assert trace.jobs["duration"].tolist() == [90.0, 150.0]
    assert any("repeat a job id" in n for n in trace.notes)
