"""Inference SLA attainment, inference waits and preemption losses: table tests with values
computed by hand (metrics/inference.py), and the text table that shows them."""

import math

import numpy as np
import pytest

from kant_slurm.metrics.inference import (inference_wait_cdf, inference_wait_stats,
                                          preemption_stats, sla_attainment)
from kant_slurm.formats.records import make_records
from kant_slurm.metrics.summary import HEADLINE_KEYS, all_metrics
from kant_slurm.model import Inventory, Partition
from kant_slurm.report.tables import inference_table

NAN = float("nan")


def _records():
    # job, class, submit, first start, sla, preemptions, lost GPU-s
    rows = [
        ("I1", "inference", 0, 10, 60, 0, 0),  # waited 10 <= 60: attained
        ("I2", "inference", 0, 100, 60, 0, 0),  # 100 > 60: missed
        ("I3", "inference", 5, NAN, 60, 0, 0),  # never started: missed
        ("I4", "inference", 0, 20, NAN, 0, 0),  # no SLA of its own
        ("I5", "inference", 0, 60, 60, 0, 0),  # exactly 60: attained
        ("T1", "training", 0, 0, NAN, 2, 7200),
        ("T2", "training", 0, 5, NAN, 0, 0),
        ("B1", "batch", 0, 0, NAN, 1, 3600),
    ]
    return make_records(
        job_id=[r[0] for r in rows], job_class=[r[1] for r in rows],
        submit_time=[r[2] for r in rows], start_time=[r[3] for r in rows],
        end_time=[NAN if math.isnan(r[3]) else r[3] + 100 for r in rows],
        gpus=[1] * len(rows), nodes=[() if math.isnan(r[3]) else ("n1",) for r in rows],
        node_gpus=[() if math.isnan(r[3]) else (1,) for r in rows],
        sla=[r[4] for r in rows], preemptions=[r[5] for r in rows],
        preempted_gpu_seconds=[r[6] for r in rows],
    )


@pytest.mark.parametrize("default_sla, jobs, attained, attainment", [
    (None, 4, 2, 0.5),  # I4 has no SLA: left out; I1, I5 of I1, I2, I3, I5
    (30.0, 5, 3, 0.6),  # I4 gets 30 s: 20 <= 30
    (10.0, 5, 2, 0.4),  # I4 gets 10 s: 20 > 10
])
def test_sla_attainment(default_sla, jobs, attained, attainment):
    got = sla_attainment(_records(), default_sla)
    assert got == {"jobs": jobs, "attained": attained, "missed": jobs - attained,
                   "attainment": attainment}


def test_sla_attainment_without_inference_is_nan():
    rec = _records()
    got = sla_attainment(rec[rec["job_class"] != "inference"], 60.0)
    assert got["jobs"] == 0 and math.isnan(got["attainment"])


def test_inference_wait_stats():
    got = inference_wait_stats(_records())
    # started inference waits: 10, 100, 20, 60 -> sorted 10, 20, 60, 100 (linear quantiles)
    assert got["jobs"] == 5 and got["not_started"] == 1
    assert got["p50"] == 40  # between 20 and 60
    assert got["p90"] == pytest.approx(60 + 0.7 * 40)  # position 2.7
    assert got["p99"] == pytest.approx(60 + 0.97 * 40)  # position 2.97
    assert got["max"] == 100 and got["mean"] == 47.5
    w, frac = inference_wait_cdf(_records())
    assert w.tolist() == [10, 20, 60, 100] and frac.tolist() == [0.2, 0.4, 0.6, 0.8]


def test_preemption_stats():
    got = preemption_stats(_records())
    assert got == {
        "preemptions": 3, "preempted_jobs": 2,
        "preempted_gpu_hours": 3.0,  # (7200 + 3600) / 3600
        "training_preempted_gpu_hours": 2.0,
        "training_jobs": 2, "preemptions_per_training_job": 1.0,  # 2 preemptions / 2 jobs
        "max_preemptions_per_job": 2,
    }


def test_records_without_preemption_columns_default_to_none():
    rec = make_records(job_id=["a"], submit_time=[0], gpus=[1], nodes=[("n1",)],
                       node_gpus=[(1,)], start_time=[0], end_time=[5], job_class=["training"])
    assert rec.loc[0, "preemptions"] == 0 and rec.loc[0, "preempted_runs"] == ()
    assert math.isnan(rec.loc[0, "sla"]) and math.isnan(rec.loc[0, "last_start_time"])
    got = preemption_stats(rec)
    assert got["preemptions"] == 0 and got["preemptions_per_training_job"] == 0.0


def test_headline_has_the_issue_keys():
    inv = Inventory.build(["n1"], [8], partitions=[Partition("gpu", ("n1",), True)])
    head, det, _ = all_metrics(_records(), inv)
    assert list(head) == list(HEADLINE_KEYS)
    assert head["inference_sla_attainment"] == 0.5
    assert head["inference_wait_p99_s"] == pytest.approx(98.8)
    assert head["preempted_gpu_hours"] == 3.0 and head["preemptions"] == 3
    assert det["inference"]["missed"] == 2 and det["preemption"]["preempted_jobs"] == 2
    assert det["training"]["wait"]["jobs"] == 2 and det["training"]["wait"]["p50"] == 2.5


def test_inference_table_row():
    details = {"kant": {
        "inference": {"jobs": 200, "attained": 199, "missed": 1, "attainment": 0.995,
                      "wait": {"p50": 0.0, "p90": 30.0, "p99": 240.0, "max": 400.0}},
        "preemption": {"preemptions": 12, "preempted_gpu_hours": 33.25,
                       "preemptions_per_training_job": 0.0025},
        "training": {"wait": {"p50": 600.0, "p99": 7200.0}, "jct": {"mean": 36000.0}},
    }}
    lines = inference_table(details).splitlines()
    assert lines[0].split()[:4] == ["policy", "inference", "SLA", "met"]
    assert lines[1].split() == ["kant", "200", "0.9950", "(1", "missed)", "0s", "30s", "4.0m",
                                "6.7m", "12", "33.2", "0.0025", "10.0m", "2.0h", "10.0h"]


def test_inference_table_without_inference():
    lines = inference_table({"fifo": {}}).splitlines()
    assert lines[1].split()[:3] == ["fifo", "0", "-"]


def test_gfr_inside_and_outside_a_node_set():
    from kant_slurm.metrics.timeline import occupancy

    inv = Inventory.build(["n1", "n2"], [2, 2], partitions=[Partition("gpu", ("n1", "n2"), True)])
    rec = make_records(job_id=["a"], submit_time=[0], start_time=[0], end_time=[100], gpus=[1],
                       nodes=[("n1",)], node_gpus=[(1,)])
    assert occupancy(rec, inv, (0, 100)).gfr.mean() == 0.5  # n1 partly used, n2 idle
    zone = np.array([True, False])
    assert occupancy(rec, inv, (0, 100), nodes=zone).gfr.mean() == 1.0
    assert occupancy(rec, inv, (0, 100), nodes=~zone).gfr.mean() == 0.0
