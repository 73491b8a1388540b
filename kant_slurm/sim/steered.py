"""``kant-steered``: the product as a site deploys it, in the simulator (issue 15).

The stock-Slurm model (policy ``slurm``) runs the cluster and makes every start. Every
``steer_interval`` seconds of trace time (the daemon's default interval unless told otherwise)
kant's cycle reads the simulated cluster as Slurm shows it and plans; the live daemon's own
pure code then computes the lever changes (:func:`~kant_slurm.slurm.actuator.desired_from_plan`
and :func:`~kant_slurm.slurm.actuator.diff` against kant's marks), and they are applied to the
simulated Slurm as ``scontrol update`` would apply them:

- SiteFactor: the job's priority becomes its own priority plus the SiteFactor, which is what
  the ``slurm`` model orders by (Slurm adds SiteFactor to the job's priority);
- node Weight: the snapshot's ``weight``, which the model's node choice reads first;
- pins: the job's ``excluded_nodes`` (ExcNodeList), which bound its node pool;
- preemptions: kant's victims are requeued (the simulator requeues at once, as for ``kant``).

Nothing kant-specific reaches the model any other way: between two steering cycles the model
keeps deciding with the levers last set, as Slurm's scheduler does between two daemon cycles.
"""

from __future__ import annotations

import dataclasses
import math

from ..engine.policies import KantPolicy, SlurmPolicy
from ..engine.registry import register
from ..model import ClusterSnapshot, Job, PendingChanges, replace_job
from ..slurm import actuator as act
from ..slurm.state import PIN, SITE_FACTOR, WEIGHT, SteerState
from ..steer import DAEMON_INTERVAL_S


@register("kant-steered")
class SteeredKant:
    """Stock Slurm (the ``slurm`` model) steered by kant's daemon through its levers."""

    name = "kant-steered"

    def __init__(self, config=None, steer_interval: float = DAEMON_INTERVAL_S) -> None:
        self.slurm = SlurmPolicy(config)
        self.config = self.slurm.config
        self.kant = KantPolicy(self.config)
        # The actuator reads the order, the node tiers and the starts, which a starts-only plan
        # gives as the full plan does; kant's preemptions read the reservations too.
        self.kant.starts_only = not self.kant.may_preempt
        self.settings = act.ActuatorSettings.from_config(self.config)
        if not steer_interval >= 0:
            raise ValueError(f"steer interval must be >= 0 seconds, got {steer_interval}")
        self.steer_interval = float(steer_interval)
        self.marks = SteerState()  # the daemon's state file
        self.weights: dict[str, int] = {}  # node -> Weight kant set, in force
        self.site_factors: dict[str, int] = {}  # pending job -> SiteFactor in force
        self.pins: dict[str, tuple[str, ...]] = {}  # pending job -> ExcNodeList in force
        self.last_steer = -math.inf
        self.steer_cycles = 0
        self.changes_applied = 0
        # The pending queue as shown, followed through the producer's change log (the
        # simulator's) so that the inner policies keep their sorted queues between cycles.
        self._outer: PendingChanges | None = None  # the producer's log being followed
        self._seen = 0  # its events read so far
        self._base: dict[str, Job] = {}  # pending job id -> the producer's Job
        self._shown: dict[str, Job] = {}  # pending job id -> that Job with the levers
        self._log: PendingChanges | None = None  # changes of ``_shown``, for the policies
        self._kant_seen = 0  # events of ``_log`` kant's policy has read (slurm's reads all)

    # The simulator sets these on the policy that makes the starts.
    @property
    def starts_only(self) -> bool:
        return self.slurm.starts_only

    @starts_only.setter
    def starts_only(self, value: bool) -> None:
        self.slurm.starts_only = value

    @property
    def compiled(self) -> bool:
        return self.slurm.compiled

    @property
    def strict(self) -> bool:
        return self.slurm.strict

    @property
    def may_preempt(self) -> bool:
        return self.kant.may_preempt or self.slurm.may_preempt

    def with_history(self, history):
        self.kant.with_history(history)
        return self

    def _steered_job(self, job: Job) -> Job:
        """A pending job as Slurm shows it with kant's SiteFactor and pin in force."""
        jid = job.job_id
        site, pin = self.site_factors.get(jid), self.pins.get(jid)
        if site is None and pin is None:
            return job
        return replace_job(job, site_factor=job.site_factor if site is None else site,
                           priority=job.priority + (site or 0),
                           excluded_nodes=job.excluded_nodes if pin is None else pin)

    def _follow(self, snapshot: ClusterSnapshot) -> bool:
        """Bring the pending jobs as shown up to ``snapshot`` through its change log, logging
        each change for the inner policies' kept queues; False when there is no log to follow
        (then :meth:`shown` rebuilds them from the snapshot)."""
        if snapshot.pending_changes is None:
            return False
        log, upto = snapshot.pending_changes
        events = log.since(self._seen, upto) if log is self._outer else None
        if events is None:  # a new run, or a log we fell behind on: start over from the queue
            self._outer, self._base, self._shown = log, {}, {}
            self._log = PendingChanges()
            events = [(1, j) for j in snapshot.pending]
        self._seen = upto
        base, shown, inner = self._base, self._shown, self._log
        for sign, job in events:
            jid = job.job_id
            if sign > 0:
                base[jid] = job
                shown[jid] = sj = self._steered_job(job)
                inner.add(sj)
            elif jid in base:
                del base[jid]
                inner.remove(shown.pop(jid))
        return True

    def _relabel(self, job_ids) -> None:
        """Jobs whose levers changed: their shown versions replace the old ones (in place, so
        the queue's order of arrival is kept)."""
        if self._outer is None:
            return
        for jid in job_ids:
            old = self._shown.get(jid)
            if old is None:
                continue
            new = self._steered_job(self._base[jid])
            if new is not old:
                self._log.remove(old)
                self._log.add(new)
                self._shown[jid] = new

    def shown(self, snapshot: ClusterSnapshot) -> ClusterSnapshot:
        """``snapshot`` as Slurm shows it with kant's levers in force."""
        weight = snapshot.weight
        if self.weights:
            weight = weight.copy()
            index = snapshot.inventory.index
            for node, w in self.weights.items():
                weight[index[node]] = w
        if self._outer is not None and snapshot.pending_changes is not None:
            pending = tuple(self._shown.values())
            running = snapshot.running
            out = dataclasses.replace(snapshot, weight=weight, jobs=running + pending,
                                      pending_changes=(self._log, len(self._log)))
            out.__dict__["running"], out.__dict__["pending"] = running, pending
            return out
        if not (self.site_factors or self.pins) and weight is snapshot.weight:
            return snapshot
        jobs = tuple(self._steered_job(j) if j.is_pending else j for j in snapshot.jobs)
        # The jobs changed identity: policies that keep their queue between cycles read it
        # again (pending_changes describes the producer's Job objects, not these).
        return dataclasses.replace(snapshot, weight=weight, jobs=jobs, pending_changes=None)

    def steer(self, snapshot: ClusterSnapshot, now: float):
        """One daemon cycle on the simulated Slurm: plan, diff, apply; kant's plan."""
        self.last_steer = now
        shown = self.shown(snapshot)
        self._kant_seen = len(self._log) if self._log is not None else 0
        plan = self.kant.plan(shown, now)
        site_now = {j.job_id: j.site_factor for j in shown.pending}
        view = act.view_from_snapshot(shown, site_now)
        desired = act.desired_from_plan(plan, shown, self.settings)
        d = act.diff(desired, view, self.marks, self.settings.max_changes)
        act.edit_marks(self.marks, d)
        lever = {WEIGHT: self.weights, SITE_FACTOR: self.site_factors, PIN: self.pins}
        for change in d.changes:
            act.mark_applied(self.marks, change, at=now)
            lever[change.kind][change.target] = change.value
        self.changes_applied += len(d.changes)
        # Levers on jobs that left the queue are gone with them (Slurm forgets them too).
        pending = {j.job_id for j in snapshot.pending}
        for kind in (SITE_FACTOR, PIN):
            for job_id in [j for j in lever[kind] if j not in pending]:
                del lever[kind][job_id]
        self._relabel({c.target for c in d.changes if c.kind != WEIGHT})
        self.steer_cycles += 1
        return plan

    def plan(self, snapshot: ClusterSnapshot, now: float):
        self._follow(snapshot)
        preemptions = ()
        if now - self.last_steer >= self.steer_interval and math.isfinite(self.steer_interval):
            preemptions = self.steer(snapshot, now).preemptions
        plan = self.slurm.plan(self.shown(snapshot), now)
        if preemptions:
            taken = {p.job_id for p in plan.preemptions}  # Slurm's own preemption, if on
            plan = dataclasses.replace(plan, preemptions=tuple(plan.preemptions) + tuple(
                p for p in preemptions if p.job_id not in taken))
        if self._log is not None:  # drop what both policies have read
            self._log.trim(self._kant_seen)
        return plan
