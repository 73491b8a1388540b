"""Classification rules of issue 8 (engine/classify.py): preemptible, SLA, checkpoint interval."""

from __future__ import annotations

import pytest

from kant_slurm.config import config_from_dict
from kant_slurm.engine.classify import JobRules, apply_job_rules, make_classifier
from kant_slurm.model import Job

CFG = config_from_dict({
    "classes": {"by_qos": {"serve": "inference", "train": "training"}},
    "inference": {"sla": 120},
    "preemption": {"qos": ["train", "scavenger"], "partitions": ["spot"],
                   "checkpoint_interval": 1800},
})


def job(**kw):
    return Job(kw.pop("job_id", "1"), kw.pop("state", "PENDING"), 1, 1, 0.0, **kw)


@pytest.mark.parametrize("kw, preemptible, sla, ckpt", [
    # QOS train -> class training (rule) and preemptible (QOS listed); default checkpoint.
    (dict(qos="train"), True, None, 1800.0),
    # a tagged training job keeps its class; QOS scavenger makes it preemptible.
    (dict(qos="scavenger", job_class="training", class_source="tag"), True, None, 1800.0),
    # partition spot
    (dict(partitions=("spot",)), True, None, 1800.0),
    # its own checkpoint interval is kept
    (dict(qos="train", checkpoint_interval=600.0), True, None, 600.0),
    # inference by QOS: never preemptible (even in a preemptible partition); default SLA
    (dict(qos="serve", partitions=("spot",)), False, 120.0, None),
    # inference with an SLA already set by the reader
    (dict(qos="serve", sla=30.0), False, 30.0, None),
    # inference tagged, sla from the kant tag in the admin comment
    (dict(job_class="inference", class_source="tag",
          admin_comment="kant:workload=inference;sla=45"), False, 45.0, None),
    # a bad tag: logged, the default SLA applies
    (dict(job_class="inference", class_source="tag", admin_comment="kant:workload=x;sla=4"),
     False, 120.0, None),
    # training not listed anywhere: not preemptible, but a checkpoint interval for the sim
    (dict(job_class="training", class_source="trace"), False, None, 1800.0),
    # checkpoint interval from the kant tag when the reader left it unset
    (dict(qos="train", admin_comment="kant:workload=training;ckpt=900"), True, None, 900.0),
    # batch not listed: untouched
    (dict(), False, None, None),
])
def test_rules(kw, preemptible, sla, ckpt):
    out = make_classifier(CFG)(job(**kw))
    assert (out.preemptible, out.sla, out.checkpoint_interval) == (preemptible, sla, ckpt)


def test_unchanged_job_is_the_same_object():
    j = job(job_class="batch")
    assert make_classifier(CFG)(j) is j
    assert make_classifier(config_from_dict({}))(j) is j


def test_preemptible_by_class():
    rules = JobRules.from_config(config_from_dict({"preemption": {"classes": ["batch"]}}))
    assert apply_job_rules(job(), rules).preemptible
    assert not apply_job_rules(job(job_class="training"), rules).preemptible


def test_reader_marked_preemptible_stays_unless_inference():
    rules = JobRules.from_config(config_from_dict({}))
    assert apply_job_rules(job(preemptible=True), rules).preemptible
    assert not apply_job_rules(job(preemptible=True, job_class="inference"), rules).preemptible


def test_checkpoint_of_and_sla_of():
    rules = JobRules.from_config(CFG)
    assert rules.checkpoint_of(job()) == 1800.0
    assert rules.checkpoint_of(job(checkpoint_interval=0.0)) == 1800.0
    assert rules.checkpoint_of(job(checkpoint_interval=60.0)) == 60.0
    assert rules.sla_of(job(job_class="inference")) == 120.0
    assert rules.sla_of(job(job_class="training")) is None
