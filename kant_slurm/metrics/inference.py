"""Inference start-time SLA and the cost of preemption to training (issue 8).

Definitions (over the job-record table, :mod:`kant_slurm.formats.records`):

- An inference job *attains* its SLA when it started within it: ``first start - submit <= sla``.
  The first start counts (an inference service is not preempted; a requeued one would have
  been serving already). A job that never started missed its SLA. The SLA is the job's own
  (column ``sla``), else ``default_sla``; inference jobs with neither are left out.
  Attainment = attained / inference jobs with an SLA (NaN when there are none).
- Inference wait distribution: p50/p90/p99/max of ``first start - submit`` over inference jobs
  that started (``not_started`` counted apart), as in JWTD.
- Training goodput lost to preemption: the GPU-hours of work that preempted jobs lost since
  their last checkpoint (column ``preempted_gpu_seconds`` / 3600), summed over jobs (the
  ``training`` share is reported too). Preemptions per training job: preemptions of training
  jobs / training jobs (and the most any one job suffered).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..formats.records import wait_s

QUANTILES = (0.5, 0.9, 0.99)


def inference_jobs(records: pd.DataFrame) -> pd.DataFrame:
    """The records of class ``inference``."""
    return records[records["job_class"] == "inference"]


def job_slas(records: pd.DataFrame, default_sla: float | None = None) -> np.ndarray:
    """Each job's SLA in seconds: its own, else ``default_sla``, else NaN."""
    own = (
        records["sla"].to_numpy(dtype=float) if "sla" in records else np.full(len(records), np.nan)
    )
    if default_sla is not None:
        own = np.where(np.isnan(own), float(default_sla), own)
    return own


def sla_attainment(records: pd.DataFrame, default_sla: float | None = None) -> dict[str, float]:
    """Share of inference jobs (with an SLA) that started within it, and the counts."""
    inf = inference_jobs(records)
    sla = job_slas(inf, default_sla)
    has = ~np.isnan(sla)
    wait = wait_s(inf).to_numpy(dtype=float)[has]
    ok = ~np.isnan(wait) & (wait <= sla[has])
    n = int(has.sum())
    return {
        "jobs": n,
        "attained": int(ok.sum()),
        "missed": n - int(ok.sum()),
        "attainment": float(ok.sum() / n) if n else float("nan"),
    }


def inference_wait_stats(records: pd.DataFrame) -> dict[str, float]:
    """Wait to the first start of inference jobs: p50, p90, p99, max, mean and counts."""
    w = wait_s(inference_jobs(records)).to_numpy(dtype=float)
    started = w[~np.isnan(w)]
    out: dict[str, float] = {"jobs": int(len(w)), "not_started": int(len(w) - len(started))}
    if len(started):
        qs = np.quantile(started, QUANTILES)
        out |= {
            "p50": float(qs[0]),
            "p90": float(qs[1]),
            "p99": float(qs[2]),
            "max": float(started.max()),
            "mean": float(started.mean()),
        }
    else:
        out |= {k: float("nan") for k in ("p50", "p90", "p99", "max", "mean")}
    return out


def preemption_stats(records: pd.DataFrame) -> dict[str, float]:
    """Preemptions and the GPU-hours of work they lost, overall and for training jobs."""
    n_pre = (
        records["preemptions"].to_numpy(dtype=np.int64)
        if "preemptions" in records
        else np.zeros(len(records), dtype=np.int64)
    )
    lost = (
        records["preempted_gpu_seconds"].to_numpy(dtype=float)
        if "preempted_gpu_seconds" in records
        else np.zeros(len(records))
    )
    train = (records["job_class"] == "training").to_numpy()
    n_train = int(train.sum())
    return {
        "preemptions": int(n_pre.sum()),
        "preempted_jobs": int((n_pre > 0).sum()),
        "preempted_gpu_hours": float(lost.sum() / 3600.0),
        "training_preempted_gpu_hours": float(lost[train].sum() / 3600.0),
        "training_jobs": n_train,
        "preemptions_per_training_job": float(n_pre[train].sum() / n_train)
        if n_train
        else float("nan"),
        "max_preemptions_per_job": int(n_pre.max()) if len(n_pre) else 0,
    }


def inference_wait_cdf(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(sorted waits of started inference jobs, share of all inference jobs started by then)."""
    w = wait_s(inference_jobs(records)).to_numpy(dtype=float)
    n = len(w)
    w = np.sort(w[~np.isnan(w)])
    return w, (np.arange(1, len(w) + 1) / n if n else np.array([]))
