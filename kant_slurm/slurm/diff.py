"""What kant wants set in Slurm against what Slurm shows: a Plan becomes the ``scontrol
update`` changes to make, diffed against what kant set. Pure: :mod:`kant_slurm.slurm.actuator`
runs the changes.

Levers (shared/DESIGN.md, "Steering a live Slurm"), all checked on Slurm 22.05:

- queue order through a pending job's ``SiteFactor`` (never ``Priority=``: an administrator's
  priority freezes Slurm's own computation of it for good);
- node ``Weight`` tiers (Slurm fills the lowest weight first), so jobs Slurm starts by itself
  land where E-Binpack would put them;
- a pin for each pending job the plan starts now: ``ExcNodeList`` set to every other node, so
  the job can only start on the chosen ones; a pin whose job the plan no longer starts is
  cleared the next cycle. Not ``ReqNodeList``: on a job that Slurm started between kant's read
  and the update, ``ReqNodeList`` is taken as a resize of the running job (a RESIZING record
  in accounting, its submit time reset), while ``ExcNodeList`` is refused cleanly ("no longer
  pending") and changes nothing. Checked on 22.05.

Order is set by tier, not by rank. Kant's queue is (class tier, quota tier, age); Slurm's
multifactor priority already orders by age, so kant only lifts whole tiers:
``SiteFactor = scale * (levels - 1 - (class_tier * 3 + quota_tier))``. A new job therefore
changes nothing for the others, and a job's SiteFactor changes only when its tier does. With
``scale`` above the rest of the site's priority span the tiers are strict.

:func:`diff` is pure: desired values (from the Plan), kant's marks (the state file) and what
Slurm shows now give the list of changes. :func:`kant_slurm.slurm.actuator.apply_changes` runs
them, writing each mark to the state file before its ``scontrol`` runs, so a cycle cut short
(slurmctld gone, a job that vanished, a crash) leaves a record the next cycle completes or
cleans up.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.plan import Plan
from ..engine.scoring import TIER_PARTLY_USED, tier_weight
from ..engine.select import weight_places_one_node_jobs
from ..hostlist import compress
from ..model import ClusterSnapshot, Job
from .state import FOREIGN, KINDS, PIN, SITE_FACTOR, WEIGHT, SteerState, classify_value


QUOTA_TIERS = 3  # scoring.QUOTA_WITHIN, QUOTA_BORROW, QUOTA_OVER

# The order in which changes are applied (and kept when the per-cycle bound cuts): clearing
# stale pins first (a stale pin holds its job back), then new pins (jobs that start now), then
# queue order, then node weights (they only matter for the next job Slurm places itself).
_KIND_ORDER = {
    (PIN, "restore"): 0,
    (PIN, "set"): 1,
    (SITE_FACTOR, "restore"): 2,
    (SITE_FACTOR, "set"): 3,
    (WEIGHT, "restore"): 4,
    (WEIGHT, "set"): 5,
}


@dataclass(frozen=True)
class ActuatorSettings:
    """The knobs of the actuator (from config sections ``weights`` and ``actuator``)."""

    tier_base: int = 1
    tier_step: int = 10
    site_factor_scale: int = 100_000
    class_levels: int = 4  # classes in config order + 1 for unknown classes
    max_changes: int = 200  # per cycle; 0 = no bound
    best_fit: bool = True  # partly used nodes: Weight + free GPUs (fullest node first)
    # On ``slurm_release`` 26.05 and later, best fit pauses while the pending jobs ask for
    # ``deep_queue`` times the cluster's GPUs or more (0 = never): see :func:`best_fit_now`.
    deep_queue: float = 1.0
    slurm_release: str = "22.05"  # the release that runs, as the ``slurm`` model names it
    pin_jobs: str = "none"  # all | multi-node | none
    # Preemption (issue 8): the signal a victim's batch shell gets (the training template traps
    # USR1), seconds from it to kant's own requeue, new victims signalled per cycle.
    preempt_signal: str = "USR1"
    preempt_grace: float = 120.0
    max_preemptions: int = 8

    @property
    def order_levels(self) -> int:
        return self.class_levels * QUOTA_TIERS

    @staticmethod
    def from_config(config, slurm_release: str = "22.05") -> ActuatorSettings:
        """The settings of ``config`` for a Slurm of ``slurm_release`` (as
        :func:`~kant_slurm.engine.policies.slurm.modelled_release` names it)."""
        act = getattr(config, "actuator", None)
        pre = getattr(config, "preemption", None)
        return ActuatorSettings(
            tier_base=config.weights.tier_base,
            tier_step=config.weights.tier_step,
            site_factor_scale=getattr(act, "site_factor_scale", 100_000),
            class_levels=len(config.classes.order) + 1,
            max_changes=getattr(act, "max_changes", 200),
            best_fit=getattr(config.weights, "best_fit", True),
            deep_queue=float(getattr(config.weights, "deep_queue", 1.0)),
            slurm_release=slurm_release,
            pin_jobs=getattr(act, "pin_jobs", "none"),
            preempt_grace=float(getattr(pre, "grace_seconds", 120)),
            max_preemptions=int(getattr(pre, "max_victims", 8)),
        )

    def kant_weights(self, tiers: int = 8) -> set[int]:
        """Every node Weight kant's tiers can produce (used when the state file is lost)."""
        span = self.tier_step if self.best_fit else 1
        return {self.tier_base + t * self.tier_step + s for t in range(tiers) for s in range(span)}

    def is_kant_site_factor(self, value: int) -> bool:
        """Whether a SiteFactor is one kant could have set (used when the state is lost)."""
        return (
            value > 0
            and value % self.site_factor_scale == 0
            and value // self.site_factor_scale < self.order_levels
        )


@dataclass(frozen=True)
class Desired:
    """What the plan wants Slurm to show: per node Weight, per pending job SiteFactor and pin."""

    weights: Mapping[str, int] = field(default_factory=dict)
    site_factors: Mapping[str, int] = field(default_factory=dict)
    pins: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # job -> ExcNodeList
    pin_nodes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # job -> its nodes

    def of(self, kind: str) -> Mapping[str, Any]:
        return {WEIGHT: self.weights, SITE_FACTOR: self.site_factors, PIN: self.pins}[kind]


@dataclass(frozen=True)
class SlurmView:
    """What Slurm shows now, for the diff: node weights; SiteFactor and ExcNodeList of
    pending jobs (a job that is not pending cannot be steered and is absent here)."""

    weights: Mapping[str, int]
    site_factors: Mapping[str, int | None]  # None: pending but not shown by sprio (held)
    pins: Mapping[str, tuple[str, ...]]  # pending job -> its ExcNodeList
    # Pending jobs whose priority (what Slurm orders by) lags the priority their factors give
    # by half a SiteFactor step or more: see :func:`diff`.
    lagging: frozenset[str] = frozenset()

    def of(self, kind: str) -> Mapping[str, Any]:
        return {WEIGHT: self.weights, SITE_FACTOR: self.site_factors, PIN: self.pins}[kind]


@dataclass(frozen=True)
class Change:
    """One ``scontrol update``: set ``kind`` of ``target`` to ``value``."""

    kind: str
    target: str
    value: Any
    before: Any  # what Slurm showed when the diff was made
    orig: Any  # what `reset` restores (kept in the state file)
    action: str  # "set" (kant's value) or "restore" (back to orig)
    reason: str = ""
    again: bool = False  # the same value sent again, for Slurm to recompute the job's priority

    def argv(self) -> list[str]:
        """The command as an argument list (no shell is involved when it runs)."""
        if self.kind == WEIGHT:
            return ["scontrol", "update", f"NodeName={self.target}", f"Weight={int(self.value)}"]
        if self.kind == SITE_FACTOR:
            return ["scontrol", "update", f"JobId={self.target}", f"SiteFactor={int(self.value)}"]
        return [
            "scontrol",
            "update",
            f"JobId={self.target}",
            f"ExcNodeList={compress(self.value) if self.value else ''}",
        ]

    def command(self) -> str:
        """The exact command, shell-quoted (what --dry-run prints)."""
        return shlex.join(self.argv())

    def to_dict(self) -> dict[str, Any]:
        def plain(v):
            return list(v) if isinstance(v, tuple) else v

        return {
            "kind": self.kind,
            "target": self.target,
            "value": plain(self.value),
            "before": plain(self.before),
            "orig": plain(self.orig),
            "action": self.action,
            "reason": self.reason,
            "command": self.command(),
        }


@dataclass
class Diff:
    """The outcome of :func:`diff`: changes to run now, those the bound defers, and edits of
    the marks that need no command (a job that left the queue, a value someone else set)."""

    changes: list[Change] = field(default_factory=list)
    deferred: list[Change] = field(default_factory=list)
    forget: list[tuple[str, str]] = field(default_factory=list)  # (kind, target)
    adopt: list[tuple[str, str, Any]] = field(default_factory=list)  # (kind, target, new orig)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------
# Pure parts: desired values and the diff
# ------------------------------------------------------------------------------------------


def tier_site_factor(class_tier: int, quota_tier: int, settings: ActuatorSettings) -> int:
    """SiteFactor of a queue tier: higher for earlier tiers, 0 for the last one."""
    key = min(int(class_tier), settings.class_levels - 1) * QUOTA_TIERS + min(
        max(int(quota_tier), 0), QUOTA_TIERS - 1
    )
    return settings.site_factor_scale * (settings.order_levels - 1 - key)


def site_factor_of(factors: Mapping[str, Any], settings: ActuatorSettings) -> int | None:
    """The SiteFactor a queue entry's factors ask for: its tier's, when they carry
    ``class_tier`` (the kant policy); None for the baselines, which leave SiteFactor alone."""
    if "class_tier" not in factors:
        return None
    return tier_site_factor(factors["class_tier"], factors.get("quota_tier", 0), settings)


def desired_from_plan(
    plan: Plan,
    snapshot: ClusterSnapshot,
    settings: ActuatorSettings,
    *,
    site_factors: Mapping[str, int] | None = None,
    pending: Mapping[str, Any] | None = None,
) -> Desired:
    """What ``plan`` wants Slurm to show. Pure.

    Order: only from plans whose queue factors carry ``class_tier`` (the kant policy); the
    baselines leave SiteFactor alone. Weights: every node in ``plan.node_tiers``; with
    ``best_fit``, a partly used node's Weight also grows with its free GPUs, so that Slurm,
    which takes the lowest Weight that fits, fills the fullest node first (paused on 26.05
    under a deep queue: :func:`best_fit_now`). Pins (``pin_jobs``, default ``none``): with
    ``all``, each started job that is still pending in ``snapshot`` and has no ReqNodeList of
    its own gets every other node of the cluster as its ExcNodeList; with ``multi-node`` only
    jobs of two or more nodes do; a job that preemptions make room for always does. Why not
    pin every job: Slurm keeps starting jobs on its own between our read and our update, so a
    pin is a second or two stale when it lands, and a stale pin makes its job wait for a node
    that is full (on the 32-node dev cluster 98 of 216 pins had to be cleared as stale). The
    Weights are read by Slurm when it starts the job, so they cannot go stale that way. Why
    not even the multi-node ones by default: a plan's start is not Slurm's, so a pinned gang
    may wait in Slurm's queue held to nodes others then take; over nine seeds of the Philly
    loads in the simulator such pins moved no figure by more than 0.03x on 22.05, and on
    26.05 raised GFR at 48 and 64 x 8 (0.99x -> 1.08x and 0.77x -> 0.90x of stock; README,
    "Pins, one lever at a time").

    A caller that keeps these between cycles (the simulator, thousands of queued jobs, one
    cycle per 30 s of trace) passes ``site_factors``, the plan's order's SiteFactors as
    :func:`site_factor_of` gives them, and ``pending``, the snapshot's pending jobs by id;
    each is worked out from ``plan`` and ``snapshot`` when not given.
    """
    site = site_factors
    if site is None:
        site = {}
        for entry in plan.order:
            value = site_factor_of(entry.factors, settings)
            if value is not None:
                site[entry.job_id] = value
    if pending is None:
        pending = {j.job_id: j for j in snapshot.pending}
    weights = {
        node: tier_weight(int(tier), settings.tier_base, settings.tier_step)
        for node, tier in plan.node_tiers.items()
    }
    if weights and best_fit_now(settings, pending.values(), snapshot.inventory):
        inv = snapshot.inventory
        index = inv.index
        for node, tier in plan.node_tiers.items():
            i = index.get(node)
            if tier != TIER_PARTLY_USED or i is None:
                continue
            free = int(inv.gpus_total[i]) - int(snapshot.gpus_alloc[i])
            weights[node] += min(max(free, 0), settings.tier_step - 1)
    names = snapshot.inventory.names
    preempting = {p.for_job for p in getattr(plan, "preemptions", ())}
    pins: dict[str, tuple[str, ...]] = {}
    pin_nodes: dict[str, tuple[str, ...]] = {}
    for p in plan.starts:
        job = pending.get(p.job_id)
        if job is None or not p.nodes or job.required_nodes:
            continue
        # A job that preemptions make room for is always pinned: its nodes are held by the
        # victims until they leave, so the pin cannot go stale, and without it another job
        # could take the freed GPUs first.
        if p.job_id not in preempting and (
            settings.pin_jobs == "none" or (settings.pin_jobs == "multi-node" and len(p.nodes) < 2)
        ):
            continue
        chosen = set(p.nodes)
        pins[p.job_id] = tuple(n for n in names if n not in chosen)
        pin_nodes[p.job_id] = tuple(p.nodes)
    return Desired(weights=weights, site_factors=site, pins=pins, pin_nodes=pin_nodes)


def best_fit_now(settings: ActuatorSettings, pending: Iterable[Job], inventory) -> bool:
    """Whether this cycle's Weights order partly used nodes by free GPUs (``best_fit``).

    From Slurm 26.05 a one-node job takes the lowest Weight that fits, with no leaf search
    (``slurm_lightest_node``), so the Weights alone place it. There, while the pending jobs
    ask for ``deep_queue`` times the cluster's GPUs or more, partly used nodes share one Weight
    and Slurm fills them in node order. Why: in the 26.05 model at Philly 48 and 64 x 8 the
    plain best fit fragmented more than stock Slurm on seeds 0-2 of both loads, and the pause
    brought GFR to 0.89x and 0.60x of stock; over seeds 0-8 at 64 x 8 it is 0.90x against 1.12x with
    best fit always, and the 9+ GPU p99 wait 0.98x against 1.15x (README, "Quality of the
    deployed product", "Six more seeds"). A likely
    reason: a best fit of the moment, recomputed every cycle, puts small jobs on whichever
    node has the right hole, and with a deep queue fewer nodes drain whole than under a fixed
    order. With room to spare (96 x 8) best fit is the better packer, and the queue is rarely
    that deep. Before 26.05 the switch tree picks the leaf first and the Weights only order
    nodes inside it; the same pause there made Philly 64 x 8 worse, so it does not apply.
    """
    if not settings.best_fit:
        return False
    if settings.deep_queue <= 0 or not weight_places_one_node_jobs(settings.slurm_release):
        return True
    bound = settings.deep_queue * float(inventory.gpus_total.sum())
    asked = 0
    for job in pending:  # stops as soon as the queue is deep: thousands may be queued
        asked += job.gpus
        if asked >= bound:
            return False
    return True


def site_factors_shown(snapshot: ClusterSnapshot) -> dict[str, int]:
    """The SiteFactor of every pending job sprio showed when ``snapshot`` was read (the reader
    sets ``factor_priority`` with it); jobs sprio leaves out (held) are not in it."""
    return {j.job_id: int(j.site_factor) for j in snapshot.queued if j.factor_priority is not None}


def view_from_snapshot(
    snapshot: ClusterSnapshot, site_factors: Mapping[str, int], lag_tolerance: int | None = None
) -> SlurmView:
    """The :class:`SlurmView` of a snapshot plus the pending jobs' SiteFactors (from sprio).

    With ``lag_tolerance``, a pending job whose priority differs from the priority its factors
    give (``Job.factor_priority``) by that much or more is ``lagging``."""
    names = snapshot.inventory.names
    weights = {names[i]: int(w) for i, w in enumerate(snapshot.weight)}
    # Jobs Slurm holds back are in the view too: kant wants nothing of them, so the diff
    # takes back whatever kant set on one before Slurm held it.
    pending = snapshot.queued
    return SlurmView(
        weights=weights,
        # sprio leaves out jobs with priority 0 (held): their SiteFactor is unknown (None),
        # so the diff neither sets nor forgets it until they are back.
        site_factors={
            j.job_id: (int(site_factors[j.job_id]) if j.job_id in site_factors else None)
            for j in pending
        },
        pins={j.job_id: tuple(j.excluded_nodes) for j in pending},
        lagging=frozenset()
        if lag_tolerance is None
        else frozenset(
            j.job_id
            for j in pending
            if j.factor_priority is not None
            and abs(j.priority - j.factor_priority) >= lag_tolerance
        ),
    )


def _same_pin(a: Sequence[str], b: Sequence[str]) -> bool:
    return sorted(a) == sorted(b)


def diff(
    desired: Desired,
    view: SlurmView,
    state: SteerState,
    max_changes: int = 0,
    targets: Mapping[str, Iterable[str]] | None = None,
) -> Diff:
    """The changes that make Slurm show ``desired``, given kant's marks and Slurm's values. Pure.

    Per target: a value equal to what Slurm shows needs no command (so an unchanged plan
    yields no change); a mark whose target is gone (job started or ended, node removed) is
    forgotten; a mark whose value someone else replaced adopts that value as the one to
    restore; a target kant no longer wants goes back to its original value. A pin keeps a
    user's own ExcNodeList (it must be inside kant's, else the job is not pinned).
    ``max_changes`` > 0 keeps the first that many, in the order pins, order, weights.

    A SiteFactor that Slurm shows as kant wants it, on a job whose priority lags its factors
    (``view.lagging``), is sent again (``again``), at most :data:`MAX_REAPPLY` times per job.
    Why: Slurm's backfill takes each job's priority when its cycle begins and writes it back
    when it reaches the job (``job_ptr->priority = bf_job_priority`` in backfill.c, 22.05 to
    26.05). A SiteFactor update made while backfill yields its locks (``bf_continue``) thus
    leaves the new SiteFactor with the old priority until the next PriorityCalcPeriod, and
    Slurm orders by the old one; an update recomputes it. A priority an administrator set
    does not lag (sprio shows it as it is). Not covered: a job kant restored to its
    original SiteFactor, whose mark is gone once the restore is applied.

    ``targets`` (kind -> targets) limits the diff to those targets, for a caller that knows
    every other one needs nothing: its wanted value, Slurm's value and kant's mark are those
    of an earlier diff that gave it no change, deferral or edit of the marks (the simulator,
    which keeps its queue between cycles). The notes then speak of those targets only.
    """
    out = Diff()
    every: list[Change] = []
    for kind in KINDS:
        want_all = desired.of(kind)
        shown_all = view.of(kind)
        marks = state.marks[kind]
        if targets is None:
            asked = set(want_all) | set(marks)
        else:
            asked = {t for t in targets.get(kind, ()) if t in want_all or t in marks}
        for target in sorted(asked, key=target_key):
            mark = marks.get(target)
            if target not in shown_all:
                if mark is not None:
                    out.forget.append((kind, target))
                continue
            shown = shown_all[target]
            if shown is None:  # pending, but Slurm does not tell the value now: wait
                continue
            orig = shown
            foreign = False
            if mark is not None:
                orig = mark.orig
                if classify_value(mark, shown) == FOREIGN and not (
                    kind == PIN and _same_pin(shown, mark.set)
                ):
                    foreign = True
                    orig = shown
                    out.adopt.append((kind, target, shown))
                    out.notes.append(
                        f"{kind} of {target} is {_show(shown)}, not kant's "
                        f"{_show(mark.set)}: someone else set it; kept as the "
                        f"value to restore"
                    )
            if (
                kind == PIN
                and target in want_all
                and bool(shown)
                and (mark is None or foreign)
                and not set(shown) <= set(want_all[target])
            ):
                out.notes.append(
                    f"job {target} excludes {compress(shown)} itself, which kant's "
                    f"choice {compress(desired.pin_nodes.get(target, ()))} "
                    f"needs: not pinned"
                )
                continue
            if target in want_all:
                want = want_all[target]
                same = _same_pin(shown, want) if kind == PIN else shown == want
                if not same:
                    every.append(
                        Change(
                            kind,
                            target,
                            want,
                            shown,
                            orig,
                            "set",
                            _reason(kind, desired.pin_nodes.get(target, want)),
                        )
                    )
                elif kind == SITE_FACTOR and target in view.lagging:
                    if mark is not None and mark.reapplied >= MAX_REAPPLY:
                        out.notes.append(
                            f"job {target}: its priority still lags SiteFactor "
                            f"{want} after {mark.reapplied} re-applies; left to "
                            f"Slurm's next priority calculation"
                        )
                    else:
                        every.append(
                            Change(kind, target, want, shown, orig, "set", _LAG_REASON, again=True)
                        )
            elif mark is not None:
                same = _same_pin(shown, orig) if kind == PIN else shown == orig
                if same:
                    out.forget.append((kind, target))
                else:
                    every.append(
                        Change(kind, target, orig, shown, orig, "restore", _restore_reason(kind))
                    )
    # Node weights by value, then node: nodes given the same Weight share one command
    # (best-fit weights interleave values along the node list).
    every.sort(
        key=lambda c: (
            _KIND_ORDER[(c.kind, c.action)],
            c.value if c.kind == WEIGHT else 0,
            target_key(c.target),
        )
    )
    if max_changes and len(every) > max_changes:
        out.changes, out.deferred = every[:max_changes], every[max_changes:]
    else:
        out.changes = every
    return out


@functools.lru_cache(maxsize=1 << 16)  # the same jobs and nodes come back every cycle
def target_key(target: str) -> tuple:
    # Job ids sort numerically (array tasks after their parent), node names as text.
    m = re.fullmatch(r"(\d+)(?:_(\d+))?", target)
    if m:
        return (0, int(m.group(1)), int(m.group(2) or -1), "")
    return (1, 0, 0, target)


# Re-applies of one job's SiteFactor whose priority lags (see :func:`diff`): Slurm recomputes
# every priority each PriorityCalcPeriod (5 min by default) anyway, which 10 daemon cycles of
# 30 s outlast; a job still lagging then lags for a reason a re-apply does not cure.
MAX_REAPPLY = 10
_LAG_REASON = (
    "its priority lags its SiteFactor (Slurm's backfill put back an older value): "
    "sent again so that Slurm recomputes it"
)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return compress(value) if value else "(none)"
    return str(value)


def _reason(kind: str, value: Any) -> str:
    if kind == PIN:
        return f"the plan starts it now on {compress(value)} (every other node excluded)"
    if kind == SITE_FACTOR:
        return "its queue tier (class, quota) in kant's order"
    return "node preference tier (partly used nodes and used leaves first)"


def _restore_reason(kind: str) -> str:
    if kind == PIN:
        return "stale pin: the plan no longer starts it now"
    if kind == SITE_FACTOR:
        return "no longer in kant's queue"
    return "no longer tiered by the plan"


def marks_from_slurm(
    view: SlurmView, config_weights: Mapping[str, int], settings: ActuatorSettings
) -> SteerState:
    """Marks rebuilt from what Slurm shows, for a lost or corrupt state file. Pure.

    A node whose Weight differs from slurm.conf's, and a pending job whose SiteFactor is a
    value kant's tiers produce, are taken as kant's. Pins cannot be told from a user's own
    ExcNodeList and are left alone (a stale pin only delays its own job).
    """
    state = SteerState()
    for node, w in view.weights.items():
        conf = config_weights.get(node)
        if conf is not None and w != conf:
            state.put(WEIGHT, node, conf, w)
    for job, sf in view.site_factors.items():
        if sf is not None and settings.is_kant_site_factor(sf):
            state.put(SITE_FACTOR, job, 0, sf)
    return state


def leftovers(state: SteerState, view: SlurmView) -> list[str]:
    """Kant changes Slurm still shows after a reset: one line per mark still in force."""
    left = []
    for kind in KINDS:
        shown_all = view.of(kind)
        for target, mark in state.marks[kind].items():
            if target not in shown_all:
                continue
            shown = shown_all[target]
            if shown is None:
                continue
            same = _same_pin(shown, mark.orig) if kind == PIN else shown == mark.orig
            if not same and classify_value(mark, shown) != FOREIGN:
                left.append(f"{kind} of {target} is {_show(shown)}, expected {_show(mark.orig)}")
    return left
