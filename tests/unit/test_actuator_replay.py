"""Pure parts of the live replay: names, compression, sbatch argv, sacct parsing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kant_slurm.errors import InputError, SlurmError
from kant_slurm.devcluster.replay import (compress_workload, compressed_limit_s,
                                          parse_sacct_records, safe_job_name, sbatch_argv)


@pytest.mark.parametrize("trace_id, name", [
    ("42", "kr-42"),
    ("a b;rm -rf /", "kr-a_b_rm_-rf"),
    ("$(reboot)`x`", "kr-reboot_x"),
    ("'\"\n", "kr-job"),
    ("x" * 100, "kr-" + "x" * 37),
])
def test_safe_job_name(trace_id, name):
    assert safe_job_name(trace_id) == name


@pytest.mark.parametrize("limit, speedup, expected", [
    (3600, 60, 60.0),  # 60 s: exactly one minute
    (900, 60, 60.0),  # 15 s -> Slurm's minimum of 1 min
    (3601, 60, 120.0),  # 60.02 s -> rounded up to 2 min
    (86400, 30, 2880.0),  # 48 min
    (math.inf, 60, math.nan),
])
def test_compressed_limit(limit, speedup, expected):
    got = compressed_limit_s(limit, speedup)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_compress_workload():
    jobs = pd.DataFrame({"submit_time": [0.0, 600.0, 1200.0], "duration": [60.0, 7200.0, 300.0],
                         "time_limit": [900.0, 7200.0, np.nan]})
    out, raised = compress_workload(jobs, 60.0, arrival_speedup=120.0)
    assert out["submit_time"].tolist() == [0.0, 5.0, 10.0]  # / 120
    assert out["time_limit"].tolist()[:2] == [60.0, 120.0]  # 15 s -> 1 min; 120 s -> 2 min
    assert math.isnan(out["time_limit"].iloc[2])
    assert out["duration"].tolist() == [1.0, 120.0, 5.0]  # / 60, never above the limit
    assert raised == 1
    with pytest.raises(InputError, match="expected >= 1"):
        compress_workload(jobs, 0.5)


def test_sbatch_argv_is_an_argument_list():
    row = {"job_id": "7;echo", "num_nodes": 2, "gpus_per_node": 8, "time_limit": 120.0,
           "duration": 42.25, "partition": "gpu"}
    assert sbatch_argv(row) == [
        "sbatch", "--parsable", "--job-name=kr-7_echo", "--nodes=2", "--ntasks-per-node=1",
        "--gres=gpu:8", "--output=/dev/null", "--error=/dev/null", "--chdir=/tmp",
        "--partition=gpu", "--time=2", "--wrap=sleep 42.2"]
    with pytest.raises(InputError, match="partition 'a b' is not a Slurm name"):
        sbatch_argv(row | {"partition": "a b"})


SACCT = (
    "101|kr-5|1000|1002|1012|gn[01-02]|billing=2,cpu=2,gres/gpu=16,node=2|COMPLETED|00:02:00|10"
    "|billing=2,cpu=2,gres/gpu=16,node=2|2\n"
    "102|kr-6|1001|Unknown|Unknown|None assigned||CANCELLED by 0|00:01:00|0|cpu=1,gres/gpu=4|1\n"
)


def test_parse_sacct_records():
    rec = parse_sacct_records(SACCT, speedup=60.0, t0=1000.0)
    assert rec["job_id"].tolist() == ["5", "6"]
    a, b = rec.iloc[0], rec.iloc[1]
    assert (a["submit_time"], a["start_time"], a["end_time"]) == (0.0, 120.0, 720.0)
    assert a["nodes"] == ("gn01", "gn02") and a["node_gpus"] == (8, 8) and a["gpus"] == 16
    assert a["time_limit"] == 7200.0 and a["duration"] == 600.0
    assert b["gpus"] == 4 and math.isnan(b["start_time"]) and b["state"] == "CANCELLED"
    with pytest.raises(SlurmError, match="sacct line 1: expected 12"):
        parse_sacct_records("1|2|3\n")


def test_resized_job_records_are_merged():
    text = ("7|kr-5|100|100|130|gn01|gres/gpu=1|RESIZING|00:01:00|30|gres/gpu=1|1\n"
            "7|kr-5|130|130|160|gn01|gres/gpu=1|COMPLETED|00:01:00|30|gres/gpu=1|1\n"
            "8|kr-6|101|102|110|gn02|gres/gpu=2|COMPLETED|00:01:00|8|gres/gpu=2|1\n")
    rec = parse_sacct_records(text, speedup=1.0, t0=100.0)
    assert rec["job_id"].tolist() == ["5", "6"]
    assert (rec["submit_time"].iloc[0], rec["start_time"].iloc[0], rec["end_time"].iloc[0]) == \
        (0.0, 0.0, 60.0)
    assert rec["state"].iloc[0] == "COMPLETED"

