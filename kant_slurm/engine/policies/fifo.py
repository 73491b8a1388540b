"""The ``fifo`` policy: strict arrival order, first fit by node index, no backfill.

The first job that does not fit blocks everything behind it (the baseline of the Kant paper's
comparisons, arXiv 2510.01256, and of Slurm's ``sched/builtin`` without backfill).
"""

from __future__ import annotations


from .. import scoring
from ..registry import register
from ..select import first_fit
from .base import QueuePolicy


@register("fifo")
class FifoPolicy(QueuePolicy):
    """Strict arrival order, first fit, no backfill."""

    name = "fifo"
    strict = True
    limit_only = True

    def order(self, pending, snapshot, now, ctx):
        jobs = sorted(pending, key=lambda j: scoring.fifo_order_key(j.submit_time, j.job_id))
        return [(j, {"submit_time": j.submit_time}) for j in jobs]

    def static_keys(self, job, snapshot):
        return (job.submit_time,)

    def factors_of(self, job, now, ctx):
        return {"submit_time": job.submit_time}

    def selector(self, job, ctx):
        return first_fit

    def reservations_k(self) -> int:
        return 0
