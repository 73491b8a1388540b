"""Synthetic snapshots for timing the engine (``kant-slurm bench plan``).

Job shapes (GPUs, duration) are drawn, seeded, from the real Philly trace slice shipped in
``kant_slurm/data/traces`` (attribution in its README). The cluster is N nodes x G GPUs under a
two-level switch tree (leaf groups of ``leaf_size`` nodes, spines of ``spine_size`` leaves), one
partition. Running jobs are placed at random (first fit over a shuffled node order, which
scatters small jobs as a busy cluster does); pending jobs arrived over the past day.

Reading the trace file is the only I/O here; the engine timed by :func:`time_plan` does none.

Measured on the 2-core development machine (shared with other jobs), ``kant``, 8 GPUs per node,
median of 3-5 cycles (wall s / CPU s / peak RSS):

==========================  =========================  ===========================
cluster                     queue                      time
==========================  =========================  ===========================
1,250 nodes                 5,000 pending, 2,000 run   0.85 / 0.82 s / 69 MB
12,500 nodes                20,000 pending, 20,000 run 3.2 / 3.1 s / 162 MB
12,500 nodes (full)         20,000 pending, 79,734 run 7.1 / 7.0 s / 222 MB
625 / 2,500 / 5,000 nodes   5,000 pending, 2,000 run   0.59 / 0.71 / 0.80 s
1,250 nodes                 1,250 / 2,500 / 10,000 /   0.21 / 0.36 / 1.20 / 1.49 s
                            20,000 pending
==========================  =========================  ===========================

The blocked scenario (``--blocked``: running jobs take 97% of the GPUs, 100 gangs of 8-32
whole nodes head a queue of 5,000 on 1,250 nodes; 2026-12-07, the machine shared): ``kant``
0.81 s median (0.53 s CPU), 8 reservations, 252 backfilled starts; the ``slurm`` model 9.8 s,
384 reservations (its K is 500): nearly all of it in the reservation sweeps
(``Cycle._sweep``, 0.1 s per large gang).

Time grows with the jobs placed (about 150 us each: a single-node job is placed from per-leaf
aggregates, O(leaf groups), not O(nodes)) and hardly with nodes; once the cluster is full, more
pending jobs cost about 30 us each (a failed job shape is remembered for the rest of the cycle).
Reservations cost one sweep of the expected ends each (K = 8 by default).
"""

from __future__ import annotations

import csv
import math
import resource
import statistics
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..model import ClusterSnapshot, Inventory, Job, Partition, Topology

if TYPE_CHECKING:
    from .plan import Plan
    from .registry import Policy

# Time limits users typically ask for (seconds): the job's duration rounded up to the next one.
COMMON_LIMITS = (3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0, 72 * 3600.0, 168 * 3600.0)


def default_trace_path() -> Path:
    """The Philly slice shipped in the package."""
    base = resources.files("kant_slurm").joinpath("data/traces")
    for entry in sorted(base.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("philly") and entry.name.endswith(".csv"):
            return Path(str(entry))
    raise InputError("no Philly trace slice in kant_slurm/data/traces; pass --trace FILE")


def read_shapes(path: str | Path) -> np.ndarray:
    """(num_gpus, duration) rows of a Philly-format CSV, as an (n, 2) float array."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"num_gpus", "duration"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                g, d = int(float(row["num_gpus"])), float(row["duration"])
            except (TypeError, ValueError):
                raise InputError(f"{path}:{line}: num_gpus/duration not numbers: {row}") from None
            if g > 0 and d > 0 and math.isfinite(d):
                rows.append((g, d))
    if not rows:
        raise InputError(f"{path}: no job with num_gpus > 0 and duration > 0")
    return np.asarray(rows, dtype=float)


def time_limit_for(duration: float) -> float:
    """The smallest common limit at or above the duration (the largest for longer jobs)."""
    for lim in COMMON_LIMITS:
        if duration <= lim:
            return lim
    return COMMON_LIMITS[-1]


def bench_inventory(
    nodes: int, gpus_per_node: int, leaf_size: int = 16, spine_size: int = 8
) -> Inventory:
    """N nodes x G GPUs, 64 CPUs each, a two-level switch tree, one partition ``gpu``."""
    width = max(4, len(str(nodes)))
    names = [f"n{i:0{width}d}" for i in range(nodes)]
    leaves = {
        f"leaf{j}": names[j * leaf_size : (j + 1) * leaf_size]
        for j in range(math.ceil(nodes / leaf_size))
    }
    leaf_names = list(leaves)
    spines = {
        f"spine{k}": leaf_names[k * spine_size : (k + 1) * spine_size]
        for k in range(math.ceil(len(leaf_names) / spine_size))
    }
    if len(spines) > 1:
        spines["core"] = list(spines)
    topo = Topology.from_links(leaves, spines, node_order=names)
    return Inventory.build(
        names,
        [gpus_per_node] * nodes,
        [64] * nodes,
        [512_000] * nodes,
        gpu_type=["a100"] * nodes,
        partitions=[Partition("gpu", tuple(names), default=True)],
        topology=topo,
    )


def _job_shape(gpus: int, g_per_node: int) -> tuple[int, int]:
    if gpus <= g_per_node:
        return 1, gpus
    return math.ceil(gpus / g_per_node), g_per_node


# The blocked scenario (``bench plan --blocked``): running jobs are drawn until this share of
# the GPUs is taken (the few free GPUs left scattered, as on a busy cluster), and this share
# of the pending jobs are large gangs at the head of the queue (the oldest, multi-node,
# ``training``), which cannot start: each takes a reservation and every later job is a
# backfill test against them.
BLOCKED_FILL = 0.97
BLOCKED_GANG_SHARE = 0.02


def _running_rows(shapes: np.ndarray, rng, running: int | None, fill_gpus: int):
    """Running jobs' shapes: ``running`` draws, or (None) draws until ``fill_gpus`` GPUs are
    taken (the caller stops then); the draws stop at twice that many GPUs, as some do not
    fit the last free GPUs."""
    if running is not None:
        yield from shapes[rng.integers(0, len(shapes), size=running)]
        return
    taken = 0
    while taken < 2 * fill_gpus:
        row = shapes[rng.integers(0, len(shapes))]
        taken += int(row[0])
        yield row


def bench_snapshot(
    nodes: int,
    gpus_per_node: int,
    pending: int,
    running: int,
    seed: int = 0,
    shapes: np.ndarray | None = None,
    now: float = 1_000_000.0,
    blocked: bool = False,
) -> ClusterSnapshot:
    """A snapshot of the requested size with Philly job shapes (seeded).

    ``blocked``: the blocked scenario (see ``BLOCKED_FILL``): running jobs fill the cluster
    (``running`` is ignored) and large gangs head the queue."""
    if shapes is None:
        shapes = read_shapes(default_trace_path())
    rng = np.random.default_rng(seed)
    inv = bench_inventory(nodes, gpus_per_node)
    free = np.full(nodes, gpus_per_node, dtype=np.int64)
    jobs: list[Job] = []
    order = rng.permutation(nodes)
    fill_gpus = int(BLOCKED_FILL * nodes * gpus_per_node)
    rows = _running_rows(shapes, rng, None if blocked else running, fill_gpus)
    placed = drawn = 0
    for k, row in enumerate(rows):
        if blocked and placed >= fill_gpus:
            break
        drawn = k + 1
        g, dur = int(row[0]), float(row[1])
        nn, gpn = _job_shape(min(g, gpus_per_node * nodes), gpus_per_node)
        cand = order[free[order] >= gpn][:nn]
        if len(cand) < nn:
            continue  # the cluster is full for this shape: fewer running jobs
        free[cand] -= gpn
        placed += nn * gpn
        limit = time_limit_for(dur)
        started = now - rng.uniform(0, min(dur, limit) * 0.9)
        jobs.append(
            Job(
                job_id=str(k + 1),
                state="RUNNING",
                num_nodes=nn,
                gpus_per_node=gpn,
                submit_time=started - 60.0,
                start_time=started,
                time_limit=limit,
                nodes=tuple(inv.names[i] for i in cand),
                node_gpus=(gpn,) * nn,
                user=f"u{k % 50}",
                account=f"a{k % 7}",
                job_class="training" if nn > 1 else "batch",
            )
        )
        order = np.roll(order, -int(rng.integers(1, 7)))
    # Pending ids follow every running id drawn (placed or not).
    first_id = (drawn if blocked else running) + 1
    gangs = head_gangs(pending) if blocked else 0
    for k, row in enumerate(shapes[rng.integers(0, len(shapes), size=pending)]):
        g, dur = int(row[0]), float(row[1])
        nn, gpn = _job_shape(min(g, gpus_per_node * nodes), gpus_per_node)
        submit = now - rng.uniform(0, 86400.0)
        if k < gangs:  # a gang of one to four leaves' worth of whole nodes, older than the rest
            nn = min(nodes, int(rng.integers(8, 33)))
            gpn, submit = gpus_per_node, now - 86400.0 - 60.0 * (gangs - k)
        jobs.append(
            Job(
                job_id=str(first_id + k),
                state="PENDING",
                num_nodes=nn,
                gpus_per_node=gpn,
                submit_time=submit,
                time_limit=time_limit_for(dur),
                user=f"u{k % 50}",
                account=f"a{k % 7}",
                job_class="training" if nn > 1 else "batch",
            )
        )
    return ClusterSnapshot.idle(inv, jobs, taken_at=now, source="bench")


def head_gangs(pending: int) -> int:
    """How many large gangs head the queue in the blocked scenario."""
    return min(pending, max(1, round(BLOCKED_GANG_SHARE * pending)))


@dataclass(frozen=True)
class BenchResult:
    nodes: int
    gpus_per_node: int
    pending: int
    running: int
    policy: str
    cycles: int
    median_s: float
    max_s: float
    median_cpu_s: float  # CPU seconds of this process: less sensitive to a shared machine
    peak_rss_mb: float
    started: int
    reservations: int
    blocked: bool = False
    head_gangs: int = 0  # blocked: the large gangs at the head of the queue
    gangs_started: int = 0  # of those, started now (0 when the queue is blocked)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_plan(
    snapshot: ClusterSnapshot, policy: Policy, cycles: int = 5
) -> tuple[list[float], list[float], Plan]:
    """(wall-clock seconds, CPU seconds, last plan) of ``cycles`` (at least one) full planning
    cycles (the bench's own clock; the engine never reads one)."""
    times: list[float] = []
    cpu: list[float] = []
    plan = None
    for _ in range(cycles):
        t0, c0 = time.perf_counter(), time.process_time()
        plan = policy.plan(snapshot, snapshot.taken_at)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if plan is None:
        raise ValueError(f"time_plan: cycles must be at least 1, got {cycles}")
    return times, cpu, plan


def run_bench(
    nodes: int,
    gpus_per_node: int,
    pending: int,
    running: int,
    policy_name: str = "kant",
    cycles: int = 5,
    seed: int = 0,
    config=None,
    trace: str | None = None,
    blocked: bool = False,
) -> BenchResult:
    """Build the snapshot, time ``cycles`` plans, report median/max seconds and peak RSS.
    ``blocked``: the blocked scenario (:func:`bench_snapshot`)."""
    from .registry import get_policy

    shapes = read_shapes(trace) if trace else None
    snap = bench_snapshot(
        nodes, gpus_per_node, pending, running, seed=seed, shapes=shapes, blocked=blocked
    )
    policy = get_policy(policy_name, config)
    times, cpu, plan = time_plan(snap, policy, cycles)
    gangs = head_gangs(pending) if blocked else 0
    gang_ids = {j.job_id for j in sorted(snap.pending, key=lambda j: j.submit_time)[:gangs]}
    return BenchResult(
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        pending=pending,
        running=len(snap.running),
        policy=policy_name,
        cycles=cycles,
        median_s=round(statistics.median(times), 4),
        max_s=round(max(times), 4),
        median_cpu_s=round(statistics.median(cpu), 4),
        peak_rss_mb=round(peak_rss_mb(), 1),
        started=len(plan.starts),
        reservations=len(plan.reservations),
        blocked=blocked,
        head_gangs=gangs,
        gangs_started=sum(1 for p in plan.starts if p.job_id in gang_ids),
    )
