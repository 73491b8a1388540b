"""Job class from config rules: QOS first, then partition (shared/DESIGN.md, "Cluster model").

A job's class normally comes from its kant tag (SPANK option / job_submit.lua); readers set
``class_source`` to say where it came from. Only jobs still at ``class_source == "default"`` are
touched here, so a tag always wins over a rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..model import Job


def classify_job(job: Job, by_qos, by_partition) -> Job:
    """``job`` with job_class/class_source set from the QOS or partition maps (or unchanged)."""
    if job.class_source != "default":
        return job
    if job.qos and job.qos in by_qos:
        return dataclasses.replace(job, job_class=by_qos[job.qos], class_source="qos")
    for part in job.partitions:
        if part in by_partition:
            return dataclasses.replace(job, job_class=by_partition[part], class_source="partition")
    return job


def make_classifier(config=None) -> Callable[[Job], Job]:
    """A function Job -> Job applying ``config.classes.by_qos`` and ``by_partition``."""
    if config is None:
        from ..config import KantConfig

        config = KantConfig()
    by_qos = dict(config.classes.by_qos)
    by_partition = dict(config.classes.by_partition)
    if not by_qos and not by_partition:
        return lambda job: job

    def classify(job: Job) -> Job:
        return classify_job(job, by_qos, by_partition)

    return classify
