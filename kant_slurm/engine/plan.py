"""A Plan: what a policy decided for one snapshot. Plain data: printable, diffable, JSON.

The simulator carries out ``starts``; the actuator turns the whole plan into ``scontrol`` changes.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..model import Job


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One pending job's place in the queue and the factors that put it there (like sprio)."""

    job_id: str
    rank: int  # 0 = first
    factors: Mapping[str, Any]  # e.g. {"class_tier": 0, "quota_tier": 1, "age_s": 340.0}


@dataclass(frozen=True, slots=True)
class Placement:
    """A job the plan starts now, on these nodes."""

    job_id: str
    nodes: tuple[str, ...]
    node_gpus: tuple[int, ...]
    backfilled: bool = False  # started ahead of a blocked, higher-ranked job
    group: str | None = None  # the topology group chosen (leaf or higher), if any
    runtime_estimate: float | None = None  # seconds the engine assumed it would run
    estimate_source: str = "time_limit"  # "time_limit", "history", "user", "default"
    why: str = ""  # one line: how the group and nodes were chosen
    alternatives: tuple[Mapping[str, Any], ...] = ()  # other groups considered, with scores


@dataclass(frozen=True, slots=True)
class Reservation:
    """A blocked job's earliest start: nodes held for it from ``start_time``."""

    job_id: str
    start_time: float
    nodes: tuple[str, ...]
    node_gpus: tuple[int, ...]
    runtime_estimate: float | None = None
    estimate_source: str = "time_limit"


@dataclass(frozen=True, slots=True)
class Preemption:
    """A running job the plan stops (requeued) to make room for a pending one (issue 8)."""

    job_id: str  # the victim, running now
    for_job: str  # the pending job it makes room for
    nodes: tuple[str, ...]  # the victim's nodes (a gang victim is preempted whole)
    node_gpus: tuple[int, ...]  # GPUs freed per node
    lost_gpu_seconds: float = 0.0  # estimated work lost since the victim's last checkpoint
    why: str = ""


@dataclass(frozen=True)
class Plan:
    """The outcome of one planning cycle."""

    policy: str
    now: float
    order: Sequence[QueueEntry] = ()  # a tuple, or the policies' LazyOrder
    starts: tuple[Placement, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    node_tiers: Mapping[str, int] = field(default_factory=dict)  # node -> preference tier, 0 best
    blocked: Mapping[str, str] = field(default_factory=dict)  # job id -> why it does not start now
    explain: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # job id -> reasoning
    stats: Mapping[str, Any] = field(default_factory=dict)  # counts and timings of the cycle
    # Running jobs to stop before ``starts`` are carried out; ``starts`` may use their GPUs.
    preemptions: tuple[Preemption, ...] = ()
    # Pending jobs Slurm will not start now -> Slurm's reason; the policy never saw them.
    held: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with stable keys."""
        return {
            "policy": self.policy,
            "now": self.now,
            "order": [asdict(e) | {"factors": dict(e.factors)} for e in self.order],
            "starts": [
                asdict(p) | {"alternatives": [dict(a) for a in p.alternatives]} for p in self.starts
            ],
            "reservations": [asdict(r) for r in self.reservations],
            "node_tiers": dict(self.node_tiers),
            "blocked": dict(self.blocked),
            "explain": {k: list(v) for k, v in self.explain.items()},
            "stats": dict(self.stats),
            "preemptions": [asdict(p) for p in self.preemptions],
            "held": dict(self.held),
        }


def with_held(plan: Plan, held: Sequence[Job]) -> Plan:
    """``plan`` with the pending jobs Slurm holds back (``ClusterSnapshot.held``) in
    ``blocked`` and ``explain``, each with Slurm's own reason. The policy never saw them, so
    they have no place in the order, no start and no reservation."""
    if not held:
        return plan
    blocked = dict(plan.blocked)
    reasons: dict[str, str] = {}
    lines: dict[str, tuple[str, ...]] = {}
    for job in held:
        reason = reasons[job.job_id] = job.slurm_blocked or "?"
        blocked[job.job_id] = f"Slurm will not start it now: {reason}"
        lines[job.job_id] = (
            f"Slurm's reason: {reason} (held, dependency, begin time, limit, reservation or "
            f"array throttle)",
            "not planned: kant gives it no start, pin, reservation or SiteFactor until Slurm "
            "would start it",
        )
    # A ChainMap writes to its first map only: the policy's (possibly lazy, read-only) explain
    # mapping stays unread until asked and is never written.
    below = cast("MutableMapping[str, tuple[str, ...]]", plan.explain)
    return replace(plan, blocked=blocked, explain=ChainMap(lines, below), held=reasons)
