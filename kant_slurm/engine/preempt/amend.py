"""The policy's plan as preemption reads and amends it.

Preemption helps only jobs the plan blocks for room (:data:`ROOM_REASONS`; a quota gate or an
eligibility time is never overridden), and :func:`amend_plan` adds its preemptions and starts
to the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from ..plan import Placement, Plan, Preemption

ROOM_REASONS = ("does not fit now", "not tested by backfill")
"""How ``Plan.blocked`` reasons begin when room is what blocks the job."""


class _Blocked(Mapping):
    """``plan.blocked`` without the jobs preemption started (the rest stays lazy)."""

    def __init__(self, base: Mapping[str, str], drop: set[str]) -> None:
        self._base, self._drop = base, drop

    def __getitem__(self, k: str) -> str:
        if k in self._drop:
            raise KeyError(k)
        return self._base[k]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._base if k not in self._drop)

    def __len__(self) -> int:
        return len(self._base) - sum(1 for k in self._drop if k in self._base)


def amend_plan(
    plan: Plan, preemptions: list[Preemption], starts: list[Placement], notes: Mapping[str, str]
) -> Plan:
    """``plan`` with ``preemptions`` and the extra ``starts``; their jobs leave ``blocked`` and
    ``reservations``; ``explain`` gets the notes."""
    records = getattr(plan.explain, "records", None)
    if records is not None:
        for jid, line in notes.items():
            rec = records.get(jid)
            if rec is not None:
                rec.append(line)
    if not starts and not preemptions:
        return plan
    drop = {s.job_id for s in starts}
    stats = dict(plan.stats)
    stats["preempted"] = stats.get("preempted", 0) + len(preemptions)
    stats["started"] = stats.get("started", 0) + len(starts)
    if "blocked" in stats:
        stats["blocked"] = max(0, stats["blocked"] - len(drop))
    reservations = tuple(r for r in plan.reservations if r.job_id not in drop)
    if "reservations" in stats:
        stats["reservations"] = len(reservations)
    return dataclasses.replace(
        plan,
        starts=tuple(plan.starts) + tuple(starts),
        reservations=reservations,
        blocked=_Blocked(plan.blocked, drop),
        preemptions=tuple(plan.preemptions) + tuple(preemptions),
        stats=stats,
    )
