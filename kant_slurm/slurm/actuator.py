"""The actuator: a Plan becomes ``scontrol update`` changes, diffed against what kant set.

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
Slurm shows now give the list of changes. :func:`apply_changes` runs them, writing each mark
to the state file before its ``scontrol`` runs, so a cycle cut short (slurmctld gone, a job
that vanished, a crash) leaves a record the next cycle completes or cleans up.

Preemption (issue 8, site-config/PREEMPTION.md): kant's engine chooses the victims
(``Plan.preemptions``); the actuator carries them out in two steps, each an action rather than
a setting to diff and restore. First ``scancel --signal=USR1 --batch <victim>``: the training
template's batch shell traps it, checkpoints the step and requeues the job itself. Then, on a
later cycle, ``scontrol requeue <victim>`` if that run still holds its nodes once the grace
time is over. Each victim has a :class:`~kant_slurm.slurm.state.PreemptRecord` in the state
file, keyed by the run's start time, written before its command runs, so a cycle cut short
neither signals a run twice nor requeues a later run. :func:`preemption_steps` is the pure
part, :func:`apply_preemptions` runs the steps before the other changes (the preempting job's
pin then waits for the freed nodes). ``reset`` forgets the records: a signal or a requeue
cannot be undone.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engine.plan import Plan
from ..engine.scoring import TIER_PARTLY_USED, tier_weight
from ..errors import InputError, SlurmError, SlurmUnreachable
from ..hostlist import compress, expand
from ..formats.slurm_jobs import parse_sprio_site
from ..formats.slurm_values import parse_timestamp, scontrol_records
from ..model import ClusterSnapshot
from .state import (FOREIGN, KINDS, PIN, REQUEUED, SIGNALLED, SIGNALLING, SITE_FACTOR,
                    WEIGHT, Mark, PreemptRecord, SteerState, classify_value, save_state)

log = logging.getLogger(__name__)

QUOTA_TIERS = 3  # scoring.QUOTA_WITHIN, QUOTA_BORROW, QUOTA_OVER

# The order in which changes are applied (and kept when the per-cycle bound cuts): clearing
# stale pins first (a stale pin holds its job back), then new pins (jobs that start now), then
# queue order, then node weights (they only matter for the next job Slurm places itself).
_KIND_ORDER = {(PIN, "restore"): 0, (PIN, "set"): 1, (SITE_FACTOR, "restore"): 2,
               (SITE_FACTOR, "set"): 3, (WEIGHT, "restore"): 4, (WEIGHT, "set"): 5}


@dataclass(frozen=True)
class ActuatorSettings:
    """The knobs of the actuator (from config sections ``weights`` and ``actuator``)."""

    tier_base: int = 1
    tier_step: int = 10
    site_factor_scale: int = 100_000
    class_levels: int = 4  # classes in config order + 1 for unknown classes
    max_changes: int = 200  # per cycle; 0 = no bound
    best_fit: bool = True  # partly used nodes: Weight + free GPUs (fullest node first)
    pin_jobs: str = "multi-node"  # all | multi-node | none
    # Preemption (issue 8): the signal a victim's batch shell gets (the training template traps
    # USR1), seconds from it to kant's own requeue, new victims signalled per cycle.
    preempt_signal: str = "USR1"
    preempt_grace: float = 120.0
    max_preemptions: int = 8

    @property
    def order_levels(self) -> int:
        return self.class_levels * QUOTA_TIERS

    @staticmethod
    def from_config(config) -> ActuatorSettings:
        act = getattr(config, "actuator", None)
        pre = getattr(config, "preemption", None)
        return ActuatorSettings(
            tier_base=config.weights.tier_base,
            tier_step=config.weights.tier_step,
            site_factor_scale=getattr(act, "site_factor_scale", 100_000),
            class_levels=len(config.classes.order) + 1,
            max_changes=getattr(act, "max_changes", 200),
            best_fit=getattr(config.weights, "best_fit", True),
            pin_jobs=getattr(act, "pin_jobs", "multi-node"),
            preempt_grace=float(getattr(pre, "grace_seconds", 120)),
            max_preemptions=int(getattr(pre, "max_victims", 8)),
        )

    def kant_weights(self, tiers: int = 8) -> set[int]:
        """Every node Weight kant's tiers can produce (used when the state file is lost)."""
        span = self.tier_step if self.best_fit else 1
        return {self.tier_base + t * self.tier_step + s for t in range(tiers) for s in range(span)}

    def is_kant_site_factor(self, value: int) -> bool:
        """Whether a SiteFactor is one kant could have set (used when the state is lost)."""
        return (value > 0 and value % self.site_factor_scale == 0
                and value // self.site_factor_scale < self.order_levels)


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
        return ["scontrol", "update", f"JobId={self.target}",
                f"ExcNodeList={compress(self.value) if self.value else ''}"]

    def command(self) -> str:
        """The exact command, shell-quoted (what --dry-run prints)."""
        return shlex.join(self.argv())

    def to_dict(self) -> dict[str, Any]:
        def plain(v):
            return list(v) if isinstance(v, tuple) else v
        return {"kind": self.kind, "target": self.target, "value": plain(self.value),
                "before": plain(self.before), "orig": plain(self.orig), "action": self.action,
                "reason": self.reason, "command": self.command()}


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
    key = min(int(class_tier), settings.class_levels - 1) * QUOTA_TIERS \
        + min(max(int(quota_tier), 0), QUOTA_TIERS - 1)
    return settings.site_factor_scale * (settings.order_levels - 1 - key)


def site_factor_of(factors: Mapping[str, Any], settings: ActuatorSettings) -> int | None:
    """The SiteFactor a queue entry's factors ask for: its tier's, when they carry
    ``class_tier`` (the kant policy); None for the baselines, which leave SiteFactor alone."""
    if "class_tier" not in factors:
        return None
    return tier_site_factor(factors["class_tier"], factors.get("quota_tier", 0), settings)


def desired_from_plan(plan: Plan, snapshot: ClusterSnapshot, settings: ActuatorSettings, *,
                      site_factors: Mapping[str, int] | None = None,
                      pending: Mapping[str, Any] | None = None) -> Desired:
    """What ``plan`` wants Slurm to show. Pure.

    Order: only from plans whose queue factors carry ``class_tier`` (the kant policy); the
    baselines leave SiteFactor alone. Weights: every node in ``plan.node_tiers``; with
    ``best_fit``, a partly used node's Weight also grows with its free GPUs, so that Slurm,
    which takes the lowest Weight that fits, fills the fullest node first. Pins (``pin_jobs``):
    each started job that is still pending in ``snapshot`` and has no ReqNodeList of its own
    gets every other node of the cluster as its ExcNodeList; with ``multi-node`` only jobs
    of two or more nodes do. Why not pin every job: Slurm keeps starting jobs on its own
    between our read and our update, so a pin is a second or two stale when it lands, and a
    stale pin makes its job wait for a node that is full (on the 32-node dev cluster 98 of 216
    pins had to be cleared as stale). The Weights are read by Slurm when it starts the job,
    so they cannot go stale that way.

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
    weights = {node: tier_weight(int(tier), settings.tier_base, settings.tier_step)
               for node, tier in plan.node_tiers.items()}
    if settings.best_fit and weights:
        inv = snapshot.inventory
        index = inv.index
        for node, tier in plan.node_tiers.items():
            i = index.get(node)
            if tier != TIER_PARTLY_USED or i is None:
                continue
            free = int(inv.gpus_total[i]) - int(snapshot.gpus_alloc[i])
            weights[node] += min(max(free, 0), settings.tier_step - 1)
    if pending is None:
        pending = {j.job_id: j for j in snapshot.pending}
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
        if p.job_id not in preempting and (settings.pin_jobs == "none" or (
                settings.pin_jobs == "multi-node" and len(p.nodes) < 2)):
            continue
        chosen = set(p.nodes)
        pins[p.job_id] = tuple(n for n in names if n not in chosen)
        pin_nodes[p.job_id] = tuple(p.nodes)
    return Desired(weights=weights, site_factors=site, pins=pins, pin_nodes=pin_nodes)


def view_from_snapshot(snapshot: ClusterSnapshot, site_factors: Mapping[str, int],
                       lag_tolerance: int | None = None) -> SlurmView:
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
        site_factors={j.job_id: (int(site_factors[j.job_id]) if j.job_id in site_factors
                                 else None) for j in pending},
        pins={j.job_id: tuple(j.excluded_nodes) for j in pending},
        lagging=frozenset() if lag_tolerance is None else frozenset(
            j.job_id for j in pending if j.factor_priority is not None
            and abs(j.priority - j.factor_priority) >= lag_tolerance),
    )


def _same_pin(a: Sequence[str], b: Sequence[str]) -> bool:
    return sorted(a) == sorted(b)


def diff(desired: Desired, view: SlurmView, state: SteerState, max_changes: int = 0,
         targets: Mapping[str, Iterable[str]] | None = None) -> Diff:
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
        for target in sorted(asked, key=_target_key):
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
                        kind == PIN and _same_pin(shown, mark.set)):
                    foreign = True
                    orig = shown
                    out.adopt.append((kind, target, shown))
                    out.notes.append(f"{kind} of {target} is {_show(shown)}, not kant's "
                                     f"{_show(mark.set)}: someone else set it; kept as the "
                                     f"value to restore")
            if kind == PIN and target in want_all and bool(shown) and (mark is None or foreign) \
                    and not set(shown) <= set(want_all[target]):
                out.notes.append(f"job {target} excludes {compress(shown)} itself, which kant's "
                                 f"choice {compress(desired.pin_nodes.get(target, ()))} "
                                 f"needs: not pinned")
                continue
            if target in want_all:
                want = want_all[target]
                same = _same_pin(shown, want) if kind == PIN else shown == want
                if not same:
                    every.append(Change(kind, target, want, shown, orig, "set",
                                        _reason(kind, desired.pin_nodes.get(target, want))))
                elif kind == SITE_FACTOR and target in view.lagging:
                    if mark is not None and mark.reapplied >= MAX_REAPPLY:
                        out.notes.append(f"job {target}: its priority still lags SiteFactor "
                                         f"{want} after {mark.reapplied} re-applies; left to "
                                         f"Slurm's next priority calculation")
                    else:
                        every.append(Change(kind, target, want, shown, orig, "set",
                                            _LAG_REASON, again=True))
            elif mark is not None:
                same = _same_pin(shown, orig) if kind == PIN else shown == orig
                if same:
                    out.forget.append((kind, target))
                else:
                    every.append(Change(kind, target, orig, shown, orig, "restore",
                                        _restore_reason(kind)))
    # Node weights by value, then node: nodes given the same Weight share one command
    # (best-fit weights interleave values along the node list).
    every.sort(key=lambda c: (_KIND_ORDER[(c.kind, c.action)],
                              c.value if c.kind == WEIGHT else 0, _target_key(c.target)))
    if max_changes and len(every) > max_changes:
        out.changes, out.deferred = every[:max_changes], every[max_changes:]
    else:
        out.changes = every
    return out


@functools.lru_cache(maxsize=1 << 16)  # the same jobs and nodes come back every cycle
def _target_key(target: str) -> tuple:
    # Job ids sort numerically (array tasks after their parent), node names as text.
    m = re.fullmatch(r"(\d+)(?:_(\d+))?", target)
    if m:
        return (0, int(m.group(1)), int(m.group(2) or -1), "")
    return (1, 0, 0, target)


# Re-applies of one job's SiteFactor whose priority lags (see :func:`diff`): Slurm recomputes
# every priority each PriorityCalcPeriod (5 min by default) anyway, which 10 daemon cycles of
# 30 s outlast; a job still lagging then lags for a reason a re-apply does not cure.
MAX_REAPPLY = 10
_LAG_REASON = ("its priority lags its SiteFactor (Slurm's backfill put back an older value): "
               "sent again so that Slurm recomputes it")


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


def marks_from_slurm(view: SlurmView, config_weights: Mapping[str, int],
                     settings: ActuatorSettings) -> SteerState:
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


# ------------------------------------------------------------------------------------------
# Reading what the snapshot lacks
# ------------------------------------------------------------------------------------------


def read_site_factors(runner: Callable[[Sequence[str]], str] | None = None) -> dict[str, int]:
    """SiteFactor of every pending job (squeue's JSON does not carry it in 22.05)."""
    from .backend import run_slurm

    run = runner or run_slurm
    return parse_sprio_site(run(["sprio", "-h", "-o", "%i %S"]))


def parse_config_weights(text: str, where: str = "slurm.conf") -> dict[str, int]:
    """Node Weight per node from slurm.conf text (``NodeName=`` lines; Weight defaults to 1,
    ``NodeName=DEFAULT`` sets later lines' default). Pure. Include files are not followed."""
    weights: dict[str, int] = {}
    default = 1
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line.lower().startswith("nodename="):
            continue
        pairs = dict(p.split("=", 1) for p in line.split() if "=" in p)
        pairs = {k.lower(): v for k, v in pairs.items()}
        w = pairs.get("weight")
        if w is not None and not re.fullmatch(r"\d+", w):
            raise InputError(f"{where}:{n}: Weight={w!r}: expected a non-negative integer")
        name = pairs["nodename"]
        if name.upper() == "DEFAULT":
            if w is not None:
                default = int(w)
            continue
        for node in expand(name):
            weights[node] = int(w) if w is not None else default
    return weights


def slurm_conf_path() -> Path:
    """The slurm.conf Slurm's commands use here (SLURM_CONF, else the Debian default)."""
    return Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf")


def config_weights(path: str | os.PathLike | None = None) -> dict[str, int]:
    """Node weights as slurm.conf declares them (what `reset` restores without a state)."""
    p = Path(path) if path else slurm_conf_path()
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{p}: cannot read slurm.conf for node weights: "
                         f"{exc.strerror or exc}") from None
    return parse_config_weights(text, str(p))


# ------------------------------------------------------------------------------------------
# Applying
# ------------------------------------------------------------------------------------------


def run_scontrol(argv: Sequence[str], timeout: float = 20.0) -> str:
    """Run one scontrol command (argument list, no shell)."""
    from .backend import run_slurm

    return run_slurm(argv, timeout=timeout)


@dataclass
class ApplyResult:
    """What :func:`apply_changes` did."""

    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)  # target gone, refused, ...
    not_run: list[Change] = field(default_factory=list)  # left when slurmctld stopped answering
    unreachable: str | None = None  # the error that stopped the cycle


def edit_marks(state: SteerState, d: Diff) -> None:
    """Apply the diff's bookkeeping edits (no Slurm command) to ``state``."""
    for kind, target in d.forget:
        state.drop(kind, target)
    for kind, target, value in d.adopt:
        mark = state.get(kind, target)
        if mark is not None:
            state.put(kind, target, value, mark.set, at=mark.at, reapplied=mark.reapplied)


def mark_applied(state: SteerState, change: Change, at: float | None = None) -> None:
    """Record that ``change`` is in force: a set is marked (with what to restore), a restore
    unmarked. What :func:`apply_changes` records for each command Slurm accepts."""
    if change.action == "set":
        before = state.get(change.kind, change.target)
        again = (before.reapplied + 1 if before is not None else 1) if change.again else 0
        state.put(change.kind, change.target, change.orig, change.value, at=at,
                  reapplied=again)
    else:
        state.drop(change.kind, change.target)


MAX_GROUP = 100  # targets per grouped command (keeps the command line short)


@dataclass(frozen=True)
class Command:
    """One scontrol command carrying one or more changes: node weights of equal value go in
    one command over a hostlist, SiteFactors of equal value in one over a job list (a few
    commands per cycle instead of one per node or job: each costs a slurmctld RPC, ~0.1 s when
    it is busy)."""

    changes: tuple[Change, ...]

    def argv(self) -> list[str]:
        first = self.changes[0]
        if len(self.changes) == 1:
            return first.argv()
        if first.kind == SITE_FACTOR:
            jobs = ",".join(c.target for c in self.changes)
            return ["scontrol", "update", f"JobId={jobs}", f"SiteFactor={int(first.value)}"]
        nodes = compress([c.target for c in self.changes])
        return ["scontrol", "update", f"NodeName={nodes}", f"Weight={int(first.value)}"]

    def command(self) -> str:
        return shlex.join(self.argv())

    @property
    def reason(self) -> str:
        return self.changes[0].reason


def group_changes(changes: Sequence[Change]) -> list[Command]:
    """Consecutive node-weight (or SiteFactor) changes with the same value and action share one
    command, at most ``MAX_GROUP`` targets each. Pure."""
    out: list[list[Change]] = []
    for ch in changes:
        prev = out[-1][-1] if out else None
        if (prev is not None and ch.kind in (WEIGHT, SITE_FACTOR) and prev.kind == ch.kind
                and ch.value == prev.value and ch.action == prev.action
                and ch.again == prev.again
                and len(out[-1]) < MAX_GROUP):
            out[-1].append(ch)
        else:
            out.append([ch])
    return [Command(tuple(g)) for g in out]


def apply_changes(changes: Sequence[Change], state: SteerState, state_path: str | os.PathLike,
                  runner: Callable[[Sequence[str]], str] = run_scontrol) -> ApplyResult:
    """Run ``changes`` in order (grouped by :func:`group_changes`), keeping ``state`` (and its
    file) true at every step.

    Each mark is written before its command runs (write-ahead); a command Slurm refuses
    (the job started or vanished since the read) takes its marks back, and a refused group of
    nodes is retried node by node so one bad node does not hold back the rest; when slurmctld
    stops answering, the rest is not run and the marks written so far stay: the next cycle
    sees each value as in force or not and completes or cleans up.
    """
    result = ApplyResult()
    queue = list(group_changes(changes))
    done = 0
    while queue:
        cmd = queue.pop(0)
        before = {c.target: state.get(c.kind, c.target) for c in cmd.changes}
        for c in cmd.changes:
            if c.action == "set":
                mark_applied(state, c)
        if any(c.action == "set" for c in cmd.changes):
            save_state(state, state_path)
        try:
            runner(cmd.argv())
        except SlurmUnreachable as exc:
            result.unreachable = str(exc)
            result.not_run = [c for q in [cmd, *queue] for c in q.changes]
            log.error("slurmctld stopped answering after %d of %d changes: %s; the next cycle "
                      "finishes or undoes them", done, len(changes), exc)
            break
        except SlurmError as exc:
            if len(cmd.changes) > 1:
                log.info("%s failed (%s); retrying one by one", cmd.command(), exc)
                for c in cmd.changes:
                    _restore_mark(state, c, before[c.target])
                queue[:0] = [Command((c,)) for c in cmd.changes]
                continue
            ch = cmd.changes[0]
            _restore_mark(state, ch, before[ch.target])
            save_state(state, state_path)
            result.failed.append((ch, str(exc)))
            log.warning("%s failed (%s); left as it was", ch.command(), exc)
            continue
        for c in cmd.changes:
            if c.action == "restore":  # a set was marked before its command ran
                mark_applied(state, c)
            result.applied.append(c)
        done += len(cmd.changes)
        log.info("%s  # %s", cmd.command(), cmd.reason)
    save_state(state, state_path)
    return result


def _restore_mark(state: SteerState, ch: Change, before: Mark | None) -> None:
    if before is None:
        state.drop(ch.kind, ch.target)
    else:
        state.marks[ch.kind][ch.target] = before


# ------------------------------------------------------------------------------------------
# Preemption: signal the victims kant's engine chose, requeue them after the grace time
# ------------------------------------------------------------------------------------------

SIGNAL, REQUEUE = "signal", "requeue"
SIGNAL_NAMES = ("USR1", "USR2", "TERM", "INT", "CONT")


@dataclass(frozen=True)
class PreemptStep:
    """One preemption command: the checkpoint signal to a victim's batch shell, or its requeue."""

    action: str  # SIGNAL or REQUEUE
    job_id: str  # the victim
    for_job: str  # the pending job it makes room for
    start_time: float  # the victim's run this step is for
    nodes: tuple[str, ...] = ()
    signal: str = "USR1"
    lost_gpu_seconds: float = 0.0
    reason: str = ""

    def argv(self) -> list[str]:
        """The command as an argument list (no shell)."""
        if self.action == SIGNAL:
            # --batch: only the batch shell gets it (it traps it and checkpoints the step);
            # with --full the training step would get USR1 too, which kills an untrapped one.
            return ["scancel", f"--signal={self.signal}", "--batch", self.job_id]
        return ["scontrol", "requeue", self.job_id]

    def command(self) -> str:
        return shlex.join(self.argv())

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "job_id": self.job_id, "for_job": self.for_job,
                "start_time": self.start_time, "nodes": list(self.nodes), "signal": self.signal,
                "lost_gpu_seconds": self.lost_gpu_seconds, "reason": self.reason,
                "command": self.command()}


@dataclass
class PreemptDiff:
    """The outcome of :func:`preemption_steps`."""

    steps: list[PreemptStep] = field(default_factory=list)
    deferred: list[PreemptStep] = field(default_factory=list)  # over max_preemptions
    forget: list[str] = field(default_factory=list)  # victims whose record is done
    notes: list[str] = field(default_factory=list)


def _same_run(job, start_time: float) -> bool:
    # squeue's JSON gives whole seconds; a requeued and restarted run starts later.
    return job.start_time is not None and abs(float(job.start_time) - start_time) < 1.0


def preemption_steps(preemptions: Sequence[Any], snapshot: ClusterSnapshot,
                     records: Mapping[str, PreemptRecord], now: float,
                     settings: ActuatorSettings,
                     starts: Mapping[str, Sequence[str]] | None = None) -> PreemptDiff:
    """The preemption commands of this cycle. Pure.

    Records first (victims signalled earlier): a victim that is pending again (it requeued
    itself, as the template does) or runs a later run is done and forgotten; one that is
    neither running nor pending ended after the signal (a batch shell that does not trap the
    signal dies of it) and is requeued at once, unless :func:`apply_preemptions` finds it
    COMPLETED or CANCELLED; one still running after the grace time is requeued, unless the job
    it made room for no longer waits (then it is left to run: the signal cannot be taken
    back, the requeue can be spared), or the plan now starts that job on other nodes without
    this victim (``starts``: job id -> nodes of the plan's starts); a signal whose outcome a
    crash left unknown is sent again (the template ignores repeats).
    Then the plan's new victims: each running one gets the checkpoint signal, at most
    ``settings.max_preemptions`` per cycle; none for a pending job that already has victims
    in progress (kant waits for them to leave before it takes more).
    """
    out = PreemptDiff()
    running = {j.job_id: j for j in snapshot.running}
    pending = {j.job_id for j in snapshot.queued}  # a requeued victim may be held
    startable = {j.job_id for j in snapshot.pending}  # no victim is requeued for a held job
    busy_for: set[str] = set()
    planned_victims = {p.job_id for p in preemptions}
    starts = starts or {}
    for victim, rec in sorted(records.items(), key=lambda kv: _target_key(kv[0])):
        job = running.get(victim)
        step = PreemptStep(REQUEUE, victim, rec.for_job, rec.start_time, rec.nodes, rec.signal,
                           rec.lost_gpu_seconds)
        if victim in pending or (job is not None and not _same_run(job, rec.start_time)) or (
                job is None and rec.status == REQUEUED):
            out.forget.append(victim)
            how = "is pending again" if victim in pending else (
                "runs a later run" if job is not None else "was requeued")
            out.notes.append(f"victim {victim} left its nodes ({how}) "
                             f"{max(0.0, now - rec.signalled_at):.0f}s after the signal")
            continue
        if job is None:
            out.steps.append(replace(step, reason=(
                f"preempt for job {rec.for_job}: it ended after the signal without requeueing "
                f"itself; requeued unless it completed or was cancelled")))
            busy_for.add(rec.for_job)
            continue
        if rec.status == SIGNALLING:
            out.steps.append(replace(step, action=SIGNAL, reason=(
                f"preempt for job {rec.for_job}: the last signal's outcome is unknown, "
                f"sent again")))
            busy_for.add(rec.for_job)
        elif rec.status == REQUEUED:
            out.notes.append(f"victim {victim} requeued {now - (rec.requeued_at or now):.0f}s "
                             f"ago, still on {compress(rec.nodes)}: waiting for it to end")
            busy_for.add(rec.for_job)
        elif now - rec.signalled_at < settings.preempt_grace:
            out.notes.append(f"victim {victim} checkpointing for job {rec.for_job}: "
                             f"{now - rec.signalled_at:.0f}s of {settings.preempt_grace:.0f}s "
                             f"grace")
            busy_for.add(rec.for_job)
        elif rec.for_job not in startable:
            out.forget.append(victim)
            out.notes.append(f"victim {victim}: grace over but job {rec.for_job} no longer "
                             f"waits; not requeued (it got the signal)")
        elif victim not in planned_victims and rec.for_job in starts and \
                not set(starts[rec.for_job]) & set(rec.nodes):
            out.forget.append(victim)
            out.notes.append(f"victim {victim}: grace over but the plan now starts job "
                             f"{rec.for_job} on {compress(starts[rec.for_job])} without it; "
                             f"not requeued (it got the signal)")
        else:
            out.steps.append(replace(step, reason=(
                f"preempt for job {rec.for_job}: still running {now - rec.signalled_at:.0f}s "
                f"after the signal (grace {settings.preempt_grace:.0f}s)")))
            busy_for.add(rec.for_job)
    new = 0
    for p in preemptions:
        if p.job_id in records:
            continue  # in progress (above)
        job = running.get(p.job_id)
        if job is None or job.start_time is None:
            out.notes.append(f"victim {p.job_id} for job {p.for_job} is not running: skipped")
            continue
        if p.for_job in busy_for:
            out.notes.append(f"victim {p.job_id} for job {p.for_job} waits: earlier victims of "
                             f"that job are still leaving")
            continue
        lost_h = p.lost_gpu_seconds / 3600.0
        step = PreemptStep(SIGNAL, p.job_id, p.for_job, float(job.start_time), tuple(p.nodes),
                           settings.preempt_signal, float(p.lost_gpu_seconds),
                           f"preempt for job {p.for_job} on {compress(p.nodes)}: checkpoint "
                           f"then requeue (~{lost_h:.2f} GPU-h since its last checkpoint)"
                           + (f"; {p.why}" if p.why else ""))
        if new >= settings.max_preemptions:
            out.deferred.append(step)
            continue
        out.steps.append(step)
        new += 1
    if out.deferred:
        out.notes.append(f"{len(out.deferred)} more victims deferred to the next cycle "
                         f"(actuator.max_preemptions = {settings.max_preemptions})")
    return out


@dataclass(frozen=True)
class VictimNow:
    """A victim as ``scontrol show job`` shows it right before a preemption command."""

    state: str  # JobState; "" when slurmctld no longer knows the job
    start_time: float | None
    requeue: bool
    exit_code: str = ""


def parse_victim(text: str, job_id: str) -> VictimNow:
    """``scontrol show job -o <id>`` -> its state, start time, Requeue flag, exit code. Pure."""
    for rec in scontrol_records(text):
        if rec.get("JobId") == job_id or rec.get("ArrayJobId") and \
                f"{rec.get('ArrayJobId')}_{rec.get('ArrayTaskId')}" == job_id:
            return VictimNow(state=(rec.get("JobState") or "").upper(),
                             start_time=parse_timestamp(rec.get("StartTime")),
                             requeue=rec.get("Requeue", "0") == "1",
                             exit_code=rec.get("ExitCode", ""))
    raise SlurmError(f"scontrol show job {job_id}: no record of job {job_id} in the reply")


# Job states in which a victim is still on its way out: wait for the next cycle.
_LEAVING = ("COMPLETING", "CONFIGURING", "REQUEUE_FED", "REQUEUE_HOLD", "REQUEUED", "RESIZING",
            "SIGNALING", "STAGE_OUT", "STOPPED", "SUSPENDED")
RUN, WAIT, FORGET = "run", "wait", "forget"


def victim_decision(step: PreemptStep, now: VictimNow | None) -> tuple[str, str]:
    """What to do with ``step`` given the victim's fresh state: (RUN | WAIT | FORGET, why). Pure.

    Signal: only the very run the plan saw, still running and requeueable. Requeue: that run
    still running (grace over), or ended FAILED after the signal (a batch shell killed by a
    signal it does not trap); never a job that COMPLETED its work, was CANCELLED by someone, or
    hit its TIMEOUT; a job still completing is waited for.
    """
    if now is None or not now.state:
        return FORGET, "slurmctld no longer knows the job"
    same = now.start_time is not None and abs(now.start_time - step.start_time) < 1.0
    if now.state == "RUNNING":
        if not same:
            return FORGET, "a later run of it holds the nodes now"
        if step.action == SIGNAL and not now.requeue:
            return FORGET, ("it cannot be requeued (submitted with --no-requeue, and "
                            "JobRequeue=0): not preempted")
        return RUN, ""
    if now.state == "PENDING":
        return FORGET, "it is pending again"
    if now.state in _LEAVING:
        return WAIT, f"it is {now.state}: waiting for it to leave"
    if step.action == REQUEUE and now.state == "FAILED" and same:
        return RUN, ""
    return FORGET, f"it is {now.state} (exit code {now.exit_code or '?'}): left as it is"


@dataclass
class PreemptResult:
    """What :func:`apply_preemptions` did."""

    applied: list[PreemptStep] = field(default_factory=list)
    failed: list[tuple[PreemptStep, str]] = field(default_factory=list)  # signals not sent
    # Requeues found needless at the last look (the victim left by itself): no failure.
    settled: list[tuple[PreemptStep, str]] = field(default_factory=list)
    not_run: list[PreemptStep] = field(default_factory=list)
    unreachable: str | None = None


def _show_victim(runner: Callable[[Sequence[str]], str], job_id: str) -> VictimNow | None:
    try:
        return parse_victim(runner(["scontrol", "show", "job", "-o", job_id]), job_id)
    except SlurmUnreachable:
        raise
    except SlurmError:  # Invalid job id: purged from slurmctld's memory (MinJobAge)
        return None


def apply_preemptions(steps: Sequence[PreemptStep], state: SteerState,
                      state_path: str | os.PathLike,
                      runner: Callable[[Sequence[str]], str] = run_scontrol,
                      clock: Callable[[], float] = time.time) -> PreemptResult:
    """Run the preemption steps, keeping the records in ``state`` (and its file) true.

    Each command is preceded by a fresh look at the victim (``scontrol show job``) and run
    only as :func:`victim_decision` says. A signal's record is written as ``signalling``
    before ``scancel`` runs and as ``signalled`` (the grace time starts) after; a requeue marks
    it ``requeued``. A victim left as it is, or a command Slurm refuses (the job ended since
    the look), drops the record; slurmctld not answering stops the rest.
    """
    result = PreemptResult()
    queue = list(steps)
    while queue:
        step = queue.pop(0)
        try:
            verdict, why = victim_decision(step, _show_victim(runner, step.job_id))
            if verdict == WAIT:
                log.info("victim %s for job %s: %s", step.job_id, step.for_job, why)
                continue
            if verdict == FORGET:
                state.preemptions.pop(step.job_id, None)
                save_state(state, state_path)
                if step.action == SIGNAL:
                    result.failed.append((step, why))
                    log.warning("victim %s for job %s: %s; not signalled", step.job_id,
                                step.for_job, why)
                else:
                    result.settled.append((step, why))
                    log.info("victim %s for job %s: %s; no requeue needed", step.job_id,
                             step.for_job, why)
                continue
            rec = state.preemptions.get(step.job_id)
            if step.action == SIGNAL:
                rec = rec or PreemptRecord(
                    for_job=step.for_job, start_time=step.start_time, nodes=step.nodes,
                    signal=step.signal, lost_gpu_seconds=step.lost_gpu_seconds)
                rec.status = SIGNALLING
                rec.signalled_at = clock()
                state.preemptions[step.job_id] = rec
                save_state(state, state_path)  # write-ahead
                runner(step.argv())
                rec.status, rec.signalled_at = SIGNALLED, clock()
            else:
                runner(step.argv())
                if rec is not None:
                    rec.status, rec.requeued_at = REQUEUED, clock()
        except SlurmUnreachable as exc:
            result.unreachable = str(exc)
            result.not_run = [step, *queue]
            log.error("slurmctld stopped answering during preemption: %s; the next cycle "
                      "goes on from the records", exc)
            break
        except SlurmError as exc:
            state.preemptions.pop(step.job_id, None)
            save_state(state, state_path)
            result.failed.append((step, str(exc)))
            log.warning("%s failed (%s); victim %s forgotten", step.command(), exc, step.job_id)
            continue
        save_state(state, state_path)
        result.applied.append(step)
        log.info("%s  # %s", step.command(), step.reason)
    return result
