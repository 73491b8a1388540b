"""Runtime estimates for backfill: time limit, the user's estimate, or history; never above the
time limit (issue 3, "Runtime estimates").

The source of each estimate travels with it into the Plan (``estimate_source``):
``time_limit``, ``user`` (the kant tag's estimate), ``history`` (past jobs of the same user,
account and job name) or ``default`` (no time limit: ``estimator.unlimited_runtime``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Job


def history_key(user: str, account: str, name: str) -> tuple[str, str, str]:
    return (user or "", account or "", name or "")


@dataclass(frozen=True)
class HistoryEstimator:
    """Per (user, account, job name): a quantile of past runtimes times a margin.

    Built from finished job records (what ``sacct`` or the simulator gives); pure data afterwards.
    """

    estimates: Mapping[tuple[str, str, str], float] = field(default_factory=dict)

    @staticmethod
    def from_records(
        records: Iterable[Mapping[str, Any]],
        min_samples: int = 3,
        quantile: float = 0.9,
        margin: float = 1.1,
    ) -> HistoryEstimator:
        """``records``: mappings with ``user``, ``account``, ``name`` and ``runtime`` seconds
        (``elapsed`` is accepted as a synonym). Records without a runtime are skipped."""
        runs: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        for rec in records:
            rt = rec.get("runtime", rec.get("elapsed"))
            if rt is None:
                continue
            try:
                rt = float(rt)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(rt) or rt < 0:
                continue
            runs[
                history_key(rec.get("user", ""), rec.get("account", ""), rec.get("name", ""))
            ].append(rt)
        out = {}
        for key, vals in runs.items():
            if len(vals) >= min_samples:
                out[key] = float(np.quantile(np.asarray(vals), quantile)) * margin
        return HistoryEstimator(out)

    @staticmethod
    def from_table(
        table, min_samples: int = 3, quantile: float = 0.9, margin: float = 1.1
    ) -> HistoryEstimator:
        """From a job-record table (:mod:`kant_slurm.metrics.records`): finished rows with a
        ``duration``. Tables without a ``name`` column key by user and account only."""
        if table is None or len(table) == 0:
            return HistoryEstimator({})
        done = table[table["duration"].notna()] if "duration" in table else table.iloc[:0]
        names = done["name"] if "name" in done else [""] * len(done)
        recs = (
            {"user": u, "account": a, "name": nm, "runtime": d}
            for u, a, nm, d in zip(
                done["user"], done["account"], names, done["duration"], strict=True
            )
        )
        return HistoryEstimator.from_records(recs, min_samples, quantile, margin)

    def get(self, job: Job) -> float | None:
        """The estimate for the job's (user, account, name), else for (user, account) when the
        records carried no job names."""
        est = self.estimates.get(history_key(job.user, job.account, job.name))
        if est is None and job.name:
            est = self.estimates.get(history_key(job.user, job.account, ""))
        return est


def runtime_estimate(
    job: Job,
    *,
    use_user: bool = True,
    history: HistoryEstimator | None = None,
    unlimited: float = 365 * 86400.0,
    limit_only: bool = False,
) -> tuple[float, str]:
    """(seconds, source) the engine assumes ``job`` runs, capped by its time limit.

    ``limit_only`` is Slurm's view: the time limit, nothing else.
    """
    limit = job.time_limit
    if limit is None or limit <= 0 or not math.isfinite(limit):
        cap, cap_source = float(unlimited), "default"
    else:
        cap, cap_source = float(limit), "time_limit"
    if limit_only:
        return cap, cap_source
    if use_user and job.est_runtime is not None and job.est_runtime > 0:
        return min(float(job.est_runtime), cap), "user"
    if history is not None:
        h = history.get(job)
        if h is not None and h > 0:
            return min(h, cap), "history"
    return cap, cap_source


def expected_end(job: Job, now: float, estimate: float, limit: float | None = None) -> float:
    """When a running job is expected to end: start + estimate; one that has outlived its
    estimate is assumed to run to its time limit, and one past its limit to end at once."""
    start = job.start_time if job.start_time is not None else now
    end = start + estimate
    if end > now:
        return end
    if limit is not None and start + limit > now:
        return start + limit
    return now + 1.0
