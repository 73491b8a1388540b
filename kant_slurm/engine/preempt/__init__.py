"""Preemption for inference jobs (issue 8): which running jobs to stop so a pending inference
job starts now. Pure: a snapshot, ``now``, the policy's plan and the config in; the plan with
``preemptions`` and the extra ``starts`` out. No Slurm, no files, no clock.

The simulator carries out ``Plan.preemptions`` first (the victim ends now, loses the work since
its last checkpoint and returns to the queue), then ``starts``; the actuator signals and
requeues the victims (``preemption.grace_seconds`` for them to checkpoint).

Two models, one per policy, each described in its module:

- :mod:`.kant` (:func:`kant_preemptions`): an inference job about to miss its SLA gets the
  least-harm victims (lost work, count, fragmentation, zone, fit);
- :mod:`.slurm` (:func:`slurm_preemptions`, ``preemption.slurm: true``): Slurm's own
  ``PreemptType=preempt/qos`` with ``PreemptMode=REQUEUE``.

Both search over :mod:`.victims` (the running preemptible jobs and the free room as the
search changes it) and end in :func:`.amend.amend_plan`.
"""

from __future__ import annotations

from .kant import kant_preemptions
from .slurm import slurm_preemptions

__all__ = ["kant_preemptions", "slurm_preemptions"]
