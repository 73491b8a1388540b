"""``kant-steered``: the product as a site deploys it, in the simulator (issue 15).

The stock-Slurm model (policy ``slurm``) runs the cluster and makes every start. Every
``steer_interval`` seconds of trace time (the daemon's default interval unless told otherwise)
kant's cycle reads the simulated cluster as Slurm shows it and plans; the live daemon's own
pure code then computes the lever changes (:func:`~kant_slurm.slurm.diff.desired_from_plan`
and :func:`~kant_slurm.slurm.diff.diff` against kant's marks), and they are applied to the
simulated Slurm as ``scontrol update`` would apply them:

- SiteFactor: the job's priority becomes its own priority plus the SiteFactor, which is what
  the ``slurm`` model orders by (Slurm adds SiteFactor to the job's priority);
- node Weight: the snapshot's ``weight``, which the model's node choice reads first;
- pins: the job's ``excluded_nodes`` (ExcNodeList), which bound its node pool;
- preemptions: kant's victims are requeued (the simulator requeues at once, as for ``kant``).

Nothing kant-specific reaches the model any other way: between two steering cycles the model
keeps deciding with the levers last set, as Slurm's scheduler does between two daemon cycles.

Speed: the daemon reads every queued job each cycle; here, with thousands queued and a cycle
every 30 s of trace, that made ``kant-steered`` many times slower than ``slurm``
(benchmarks/README.md). So each cycle after the first gives the diff only the targets that may
need something (the jobs that joined or left the queue, the plan's weights and pins that moved,
what the last diff acted on; see :meth:`SteeredKant._kept_inputs`);
:func:`~kant_slurm.slurm.diff.diff` decides each of them as it does for the daemon. The
unit tests hold it to the whole diff, cycle by cycle.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..engine.policies import KantPolicy, SlurmPolicy
from ..engine.registry import register
from ..model import ClusterSnapshot, Job, PendingChanges, replace_job
from ..slurm import actuator as act
from ..slurm import diff
from ..slurm.state import KINDS, PIN, SITE_FACTOR, WEIGHT, SteerState
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
        self.settings = diff.ActuatorSettings.from_config(self.config)
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
        self._log = PendingChanges()  # changes of ``_shown``, for the policies
        self._kant_seen = 0  # events of ``_log`` kant's policy has read (slurm's reads all)
        # Kept between daemon cycles while the log is followed (see :meth:`_kept_inputs`):
        # each cycle then diffs only the targets that may need something, instead of every
        # queued job (64 x 8 Philly queues up to 12,000 jobs, one cycle per 30 s of trace).
        self._kept = False  # the kept values below are those of the last cycle
        self._want_site: dict[str, int] = {}  # pending job -> the SiteFactor kant wants
        self._entered: set[str] = set()  # jobs that joined the queue since the last cycle
        self._left: set[str] = set()  # jobs that left it since the last cycle
        self._last_desired: diff.Desired | None = None
        self._last_weight: np.ndarray | None = None  # the node Weights shown at the last cycle
        self._last_out: dict[str, set[str]] = {}  # kind -> targets the last diff acted on
        # Kant's queue tier of a job is its class's while quotas are off, so it stays what it
        # was when the job joined the queue; quota tiers move as jobs start (then every
        # cycle reads the whole order, as the daemon does).
        self._tiers_fixed = not self.config.quota.accounts

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
        return replace_job(
            job,
            site_factor=job.site_factor if site is None else site,
            priority=job.priority + (site or 0),
            excluded_nodes=job.excluded_nodes if pin is None else pin,
        )

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
            self._kept = False  # the next daemon cycle reads everything
        self._seen = upto
        base, shown, inner = self._base, self._shown, self._log
        entered, left = self._entered, self._left
        for sign, job in events:
            jid = job.job_id
            if sign > 0:
                base[jid] = job
                shown[jid] = sj = self._steered_job(job)
                inner.add(sj)
                entered.add(jid)
            elif jid in base:
                del base[jid]
                inner.remove(shown.pop(jid))
                left.add(jid)
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
            out = dataclasses.replace(
                snapshot,
                weight=weight,
                jobs=running + pending,
                pending_changes=(self._log, len(self._log)),
            )
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
        if self.settings.slurm_release != self.slurm.release:  # set after __init__ (simulate)
            self.settings = dataclasses.replace(self.settings, slurm_release=self.slurm.release)
        shown = self.shown(snapshot)
        self._kant_seen = len(self._log) if self._log is not None else 0
        plan = self.kant.plan(shown, now)
        kept = (
            self._kept
            and self._tiers_fixed
            and self._outer is not None
            and shown.pending_changes is not None
            and not shown.held
        )
        if kept:
            desired, view, targets = self._kept_inputs(plan, shown, now)
        else:
            desired, view, targets = self._full_inputs(plan, shown)
        d = diff.diff(desired, view, self.marks, self.settings.max_changes, targets)
        if self.check and targets is not None:
            self._check_kept(plan, shown, desired, d)
        act.edit_marks(self.marks, d)
        lever: dict[str, dict[str, Any]] = {
            WEIGHT: self.weights,
            SITE_FACTOR: self.site_factors,
            PIN: self.pins,
        }
        for change in d.changes:
            act.mark_applied(self.marks, change, at=now)
            lever[change.kind][change.target] = change.value
        self.changes_applied += len(d.changes)
        # Levers on jobs that left the queue are gone with them (Slurm forgets them too). A
        # lever is set only on a pending job, so one whose job is not pending now left since
        # the last cycle.
        if kept:
            gone = [j for j in self._left if j not in self._base]
        else:
            pending = {j.job_id for j in snapshot.pending}
            gone = [j for kind in (SITE_FACTOR, PIN) for j in lever[kind] if j not in pending]
        for kind in (SITE_FACTOR, PIN):
            for job_id in gone:
                lever[kind].pop(job_id, None)
        self._relabel({c.target for c in d.changes if c.kind != WEIGHT})
        self._remember(desired, d, shown)
        self.steer_cycles += 1
        return plan

    check = False
    """Test aid: every cycle that diffs only some targets also does the whole diff and checks
    that both give the same changes and edits of the marks (slow; the unit tests set it)."""

    def _full_inputs(self, plan, shown: ClusterSnapshot):
        """Desired values and Slurm's view read from the whole plan and queue (as the daemon
        reads them); no target limit."""
        site_now = {j.job_id: j.site_factor for j in shown.pending}
        view = diff.view_from_snapshot(shown, site_now)
        desired = diff.desired_from_plan(plan, shown, self.settings)
        self._want_site = dict(desired.site_factors)
        return desired, view, None

    def _kept_inputs(self, plan, shown: ClusterSnapshot, now: float):
        """Desired values, Slurm's view and the targets that may need something, from the
        values kept since the last cycle and the queue's changes since.

        A target needs nothing when its wanted value, the value Slurm shows and kant's mark
        are those of the last cycle and the last diff did nothing with it. Between two cycles
        only these change: jobs join and leave the queue (their SiteFactor is wanted from
        their tier, fixed while they wait); the plan's node Weights and pins (a few dozen,
        compared in full); and the targets the last diff changed, deferred or edited.
        """
        settings = self.settings
        want_site = self._want_site
        for jid in self._left:
            want_site.pop(jid, None)
        for jid in self._entered:
            job = self._shown.get(jid)
            if job is not None:
                value = diff.site_factor_of(self.kant.factors_of(job, now, {}), settings)
                if value is not None:
                    want_site[jid] = value
        desired = diff.desired_from_plan(
            plan, shown, settings, site_factors=want_site, pending=self._shown
        )
        names = shown.inventory.names
        view = diff.SlurmView(
            weights={names[i]: int(w) for i, w in enumerate(shown.weight)},
            site_factors=_QueueField(self._shown, "site_factor"),
            pins=_QueueField(self._shown, "excluded_nodes"),
        )
        last = self._last_desired
        assert last is not None  # kept: the last cycle remembered it
        moved = self._entered | self._left
        targets = {kind: set(self._last_out.get(kind, ())) for kind in KINDS}
        targets[SITE_FACTOR] |= moved
        targets[PIN] |= moved | _changed_keys(desired.pins, last.pins)
        targets[WEIGHT] |= _changed_keys(desired.weights, last.weights)
        targets[WEIGHT].update(
            names[i] for i in np.flatnonzero(shown.weight != self._last_weight).tolist()
        )
        return desired, view, targets

    def _remember(self, desired, d, shown: ClusterSnapshot) -> None:
        """Keep what the next cycle's :meth:`_kept_inputs` starts from."""
        out: dict[str, set[str]] = {kind: set() for kind in KINDS}
        for c in (*d.changes, *d.deferred):
            out[c.kind].add(c.target)
        for kind, target, *_ in (*d.forget, *d.adopt):
            out[kind].add(target)
        self._last_out = out
        self._last_desired = desired
        self._last_weight = shown.weight
        self._entered, self._left = set(), set()
        self._kept = self._outer is not None and shown.pending_changes is not None

    def _check_kept(self, plan, shown: ClusterSnapshot, desired, d) -> None:
        full_desired, full_view, _ = self._full_inputs(plan, shown)
        self._want_site = dict(desired.site_factors)  # _full_inputs replaced it
        assert dict(desired.site_factors) == dict(full_desired.site_factors), "SiteFactors"
        assert (desired.weights, desired.pins) == (full_desired.weights, full_desired.pins)
        full = diff.diff(full_desired, full_view, self.marks, self.settings.max_changes)
        assert (d.changes, d.deferred, d.forget, d.adopt) == (
            full.changes,
            full.deferred,
            full.forget,
            full.adopt,
        ), "the diff of some targets"

    def plan(self, snapshot: ClusterSnapshot, now: float):
        self._follow(snapshot)
        preemptions = ()
        if now - self.last_steer >= self.steer_interval and math.isfinite(self.steer_interval):
            preemptions = self.steer(snapshot, now).preemptions
        plan = self.slurm.plan(self.shown(snapshot), now)
        if preemptions:
            taken = {p.job_id for p in plan.preemptions}  # Slurm's own preemption, if on
            plan = dataclasses.replace(
                plan,
                preemptions=tuple(plan.preemptions)
                + tuple(p for p in preemptions if p.job_id not in taken),
            )
        if self._log is not None:  # drop what both policies have read
            self._log.trim(self._kant_seen)
        return plan


def _changed_keys(new, old) -> set[str]:
    """Keys whose value differs between two mappings (or that only one has)."""
    keys = {k for k in new.keys() ^ old.keys()}
    keys.update(k for k, v in new.items() if k in old and old[k] != v)
    return keys


class _QueueField(Mapping):
    """One field of the pending jobs as shown, by job id, read when asked: what
    :func:`~kant_slurm.slurm.diff.view_from_snapshot` gives for a simulator snapshot
    (every queued job is pending, and its SiteFactor is the one shown), without building a
    dict of thousands of jobs each cycle."""

    def __init__(self, jobs: Mapping[str, Job], field: str) -> None:
        self._jobs = jobs
        self._field = field

    def __getitem__(self, job_id: str):
        value = getattr(self._jobs[job_id], self._field)
        return tuple(value) if self._field == "excluded_nodes" else int(value)

    def __contains__(self, job_id) -> bool:
        return job_id in self._jobs

    def __iter__(self):
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)
