"""A mixed training + inference workload from two real traces (issue 8).

``kant-slurm simulate --trace philly.csv --inference-trace alibaba-dlrm-inference-2025.csv``:
the training trace's jobs plus the inference service instances of the Alibaba trace
(:func:`kant_slurm.formats.traces.read_alibaba_inference`), aligned in time and scaled to the
cluster as follows.

Time alignment (no scaling of time: arrivals and lifetimes stay real)
    The training trace spans ``[0, T]`` (first to last submit). The inference trace's window
    ``[offset, offset + T]`` (``offset`` seconds into its 31 days, default 0) is laid over it:
    an instance alive at ``offset`` (created before it and deleted after it, or never) is part
    of the fleet already serving when the window opens and arrives at 0 with its remaining
    lifetime; an instance created inside the window arrives at ``creation - offset`` with its
    whole lifetime; the rest are outside the window and left out. An instance counts as alive
    from its creation for its lifetime (``deletion - scheduled``; the trace's own scheduling
    wait, zero for the median instance, is not added).

Scaling (whole apps, a seeded choice)
    The Alibaba fleet holds about 3,100 GPUs at any time, more than a cluster on which training
    jobs queue. So only some apps (services) are taken, whole (all their instances, keeping
    replicas and per-node caps together): apps in a random order drawn from
    ``numpy.random.default_rng(seed)`` over the sorted app names, apps that create instances
    inside the window first (the SLA is about arrivals), then the others; an app is added when
    the peak number of GPUs the chosen apps hold at once inside the window stays within
    ``share`` x the cluster's GPUs, else skipped. The notes say which apps, how many instances
    and arrivals, and the peak.

Everything else is the simulator's: classes come from the traces (Philly jobs are
``training``, Alibaba instances ``inference``); SLA, preemptibility and checkpoint intervals
come from the config through the classifier.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from ..errors import InputError
from ..formats.traces import OPTIONAL_COLUMNS, Trace

log = logging.getLogger(__name__)


def window_instances(inference: pd.DataFrame, offset: float, span: float) -> pd.DataFrame:
    """The instances alive in ``[offset, offset + span]``, moved so the window starts at 0.

    Pure: alive at ``offset`` -> submit 0, duration = what is left; created inside -> submit
    ``creation - offset``, duration unchanged; others dropped.
    """
    submit = inference["submit_time"].to_numpy(dtype=float)
    dur = inference["duration"].to_numpy(dtype=float)
    end = submit + dur
    alive = (submit <= offset) & (end > offset)
    inside = (submit > offset) & (submit <= offset + span)
    out = inference[alive | inside].copy()
    s = submit[alive | inside]
    d = dur[alive | inside]
    was_alive = alive[alive | inside]
    out["submit_time"] = np.where(was_alive, 0.0, s - offset)
    out["duration"] = np.where(was_alive, s + d - offset, d)
    return out


def peak_concurrency(
    submit: np.ndarray, duration: np.ndarray, gpus: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """GPUs held at each time of ``grid`` by jobs alive over ``[submit, submit + duration)``."""
    order = np.argsort(grid)
    g = grid[order]
    up = np.searchsorted(g, submit, side="left")
    down = np.searchsorted(g, submit + duration, side="left")
    delta = np.zeros(len(g) + 1)
    np.add.at(delta, up, gpus)
    np.add.at(delta, down, -gpus)
    held = np.cumsum(delta)[:-1]
    out = np.empty(len(g))
    out[order] = held
    return out


def choose_apps(
    instances: pd.DataFrame, budget: int, seed: int, span: float
) -> tuple[list[str], float]:
    """Apps (seeded order, apps with arrivals first) whose instances together never hold more
    than ``budget`` GPUs inside ``[0, span]``; and that peak."""
    apps = sorted(set(instances["service"]))
    rng = np.random.default_rng(seed)
    order = [apps[i] for i in rng.permutation(len(apps))]
    arriving = set(instances.loc[instances["submit_time"] > 0, "service"])
    order = [a for a in order if a in arriving] + [a for a in order if a not in arriving]
    submit = instances["submit_time"].to_numpy(dtype=float)
    dur = np.minimum(instances["duration"].to_numpy(dtype=float), span + 1.0 - submit)
    gpus = instances["gpus"].to_numpy(dtype=float)
    grid = np.unique(np.concatenate([[0.0], submit]))  # the peak is at some arrival
    total = np.zeros(len(grid))
    by_app = instances["service"].to_numpy()
    chosen: list[str] = []
    for app in order:
        sel = by_app == app
        held = peak_concurrency(submit[sel], dur[sel], gpus[sel], grid)
        if (total + held).max() <= budget:
            total += held
            chosen.append(app)
    return chosen, float(total.max()) if len(total) else 0.0


def mix_workload(
    training: Trace,
    inference: Trace,
    cluster_gpus: int,
    *,
    share: float = 0.15,
    seed: int = 0,
    offset: float = 0.0,
) -> Trace:
    """The training trace plus the chosen inference apps' instances, aligned (module doc)."""
    if not 0 < share <= 1:
        raise InputError(
            f"--inference-share: expected a share of the cluster's GPUs in (0, 1], got {share:g}"
        )
    if offset < 0 or not math.isfinite(offset):
        raise InputError(f"--inference-offset: expected seconds >= 0, got {offset:g}")
    if "service" not in inference.jobs:
        raise InputError(
            f"{inference.source}: not an inference-service trace (no service "
            f"column); expected the Alibaba alibaba-dlrm-inference-2025.csv"
        )
    train = training.jobs.copy()
    for col, default in OPTIONAL_COLUMNS.items():
        if col not in train:
            train[col] = default
    span = float(train["submit_time"].max()) if len(train) else 0.0
    inst = window_instances(inference.jobs, offset, span)
    budget = int(math.floor(share * cluster_gpus))
    apps, peak = choose_apps(inst, budget, seed, span) if len(inst) else ([], 0.0)
    picked = inst[inst["service"].isin(apps)]
    clash = set(train["job_id"]) & set(picked["job_id"])
    if clash:
        raise InputError(f"{inference.source}: job id {sorted(clash)[0]!r} is in both traces")
    jobs = pd.concat([train, picked[train.columns]], ignore_index=True)
    jobs = jobs.sort_values(["submit_time", "line"], kind="stable").reset_index(drop=True)
    arrivals = int((picked["submit_time"] > 0).sum())
    notes = (
        list(training.notes)
        + list(inference.notes)
        + [
            f"inference: the window [{offset:g}s, {offset + span:g}s] of {inference.source} laid "
            f"over the training trace's [0, {span:g}s] (no time scaling)",
            f"inference: {len(apps)} of {len(set(inst['service']))} apps in the window (seed "
            f"{seed}, apps with arrivals first), {len(picked):,} instances "
            f"({len(picked) - arrivals:,} serving when the window opens, {arrivals:,} arriving), "
            f"peak {peak:.0f} GPUs <= "
            f"{share:g} x {cluster_gpus:,} GPUs",
        ]
    )
    log.info(
        "mixed workload: %d training jobs + %d inference instances of %d apps",
        len(train),
        len(picked),
        len(apps),
    )
    return Trace(
        jobs=jobs,
        source=f"{training.source} + {inference.source}",
        fmt=f"{training.fmt}+{inference.fmt}",
        epoch=training.epoch,
        notes=notes,
    )
