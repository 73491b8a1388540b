"""Job class, preemptibility, SLA and checkpoint interval from config rules (shared/DESIGN.md,
"Cluster model"; issue 8).

A job's class normally comes from its kant tag (SPANK option / job_submit.lua); readers set
``class_source`` to say where it came from. Only jobs still at ``class_source == "default"`` get
a class here (QOS first, then partition), so a tag always wins over a rule.

Then, for every job whatever its class came from (:func:`apply_job_rules`):

- ``preemptible``: its QOS, one of its partitions or its class is listed under ``preemption``
  (``qos``, ``partitions``, ``classes``). Inference jobs are never preemptible. A job a reader
  already marked preemptible stays so (unless it is inference).
- ``sla`` of an inference job: ``sla=`` from its kant tag if the reader did not set it, else
  ``inference.sla``.
- ``checkpoint_interval`` of a preemptible or training job without one: ``ckpt=`` from its
  kant tag, else ``preemption.checkpoint_interval``.

A job that no rule changes is returned as the very same object (the simulator relies on it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..formats.tags import parse_kant_tag
from ..model import Job, replace_job

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class JobRules:
    """The issue-8 per-job rules, taken from a config once."""

    preempt_qos: frozenset[str] = frozenset()
    preempt_partitions: frozenset[str] = frozenset()
    preempt_classes: frozenset[str] = frozenset()
    sla: float = 300.0
    checkpoint_interval: float = 3600.0

    @staticmethod
    def from_config(config) -> JobRules:
        p = config.preemption
        return JobRules(
            frozenset(p.qos),
            frozenset(p.partitions),
            frozenset(p.classes),
            float(config.inference.sla),
            float(p.checkpoint_interval),
        )

    def preemptible(self, job: Job) -> bool:
        """Whether ``job`` may be preempted (inference never)."""
        if job.job_class == "inference":
            return False
        if job.preemptible:
            return True
        return bool(
            (job.qos and job.qos in self.preempt_qos)
            or job.job_class in self.preempt_classes
            or any(p in self.preempt_partitions for p in job.partitions)
        )

    def sla_of(self, job: Job) -> float | None:
        """The job's SLA in seconds (inference only; others None)."""
        if job.job_class != "inference":
            return job.sla
        if job.sla is not None:
            return job.sla
        tag = _tag_field(job, "sla")
        return float(tag) if tag is not None else self.sla

    def checkpoint_of(self, job: Job) -> float:
        """Seconds between the job's checkpoints (its own or its tag's ``ckpt=``, else the
        default)."""
        ci = job.checkpoint_interval
        if ci is None:
            ci = _tag_field(job, "ckpt")
        return float(ci) if ci is not None and ci > 0 else self.checkpoint_interval


def _tag_field(job: Job, field: str) -> int | None:
    """``sla=`` / ``ckpt=`` from the kant tag in the admin comment (a reader may not have
    copied it onto the job)."""
    text = job.admin_comment
    if not text or f"{field}=" not in text:
        return None
    try:
        return parse_kant_tag(text).get(field)
    except Exception as exc:  # InputError: a bad tag must not stop the cycle
        log.warning("job %s: %s (%s ignored)", job.job_id, exc, field)
        return None


def apply_job_rules(job: Job, rules: JobRules) -> Job:
    """``job`` with preemptible, sla and checkpoint_interval set by ``rules`` (or itself)."""
    changes: dict = {}
    pre = rules.preemptible(job)
    if pre != job.preemptible:
        changes["preemptible"] = pre
    if job.job_class == "inference":
        if job.sla is None:
            changes["sla"] = rules.sla_of(job)
    elif (pre or job.job_class == "training") and job.checkpoint_interval is None:
        changes["checkpoint_interval"] = rules.checkpoint_of(job)
    return replace_job(job, **changes) if changes else job


def make_classifier(config=None) -> Callable[[Job], Job]:
    """A function Job -> Job applying ``config.classes.by_qos`` and ``by_partition``, then the
    preemption/SLA/checkpoint rules (:func:`apply_job_rules`)."""
    if config is None:
        from ..config import KantConfig

        config = KantConfig()
    by_qos = dict(config.classes.by_qos)
    by_partition = dict(config.classes.by_partition)
    rules = JobRules.from_config(config)

    if not by_qos and not by_partition:
        return lambda job: apply_job_rules(job, rules)

    def classify(job: Job) -> Job:
        return apply_job_rules(classify_job(job, by_qos, by_partition), rules)

    return classify
