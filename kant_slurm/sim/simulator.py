"""Discrete-event simulator that replays a workload on a virtual cluster through a real policy.

The simulator owns the clock, the node usage and the job states; the policy owns every decision.
Each scheduling cycle it builds a :class:`ClusterSnapshot` from its own usage arrays (copies) and
the immutable :class:`Job` objects it keeps, calls ``policy.plan(snapshot, now)`` and carries out
``plan.starts`` exactly (job, nodes, GPUs per node). It has no placement or ordering logic.

Events
    job submit (from the trace), job end (start + min(run time, time limit); a job reaching its
    limit ends as TIMEOUT, as Slurm kills it), and scheduling cycles.

Cadence (compared with Slurm 22.05)
    Slurm runs its main scheduler when an event (submit, job end) asks for it, no more often
    than ``sched_min_interval``, and a backfill pass every ``bf_interval`` (default 30 s). Our
    policies do both in one ``plan()`` (priority order plus backfill), so the simulator runs one
    cycle per batch of changes: a cycle is due when a job was submitted or ended since the last
    cycle, at ``max(time of the change, last cycle + interval)`` (``interval`` defaults to 30 s,
    Slurm's ``bf_interval``; 0 = a cycle at every change). Events up to the cycle's time are
    applied first. A periodic pass with nothing changed is skipped: a pure plan of an unchanged
    cluster starts nothing new (reservations only move later as time passes). A cycle is also
    skipped when the free GPUs of the whole cluster are fewer than the smallest pending job asks
    for, since no plan could start anything (``skip_full=False`` turns this off, e.g. for
    policies that preempt).

Room for preemption (issue 8)
    A plan that preempts would name victims; the simulator would end them at ``now`` (losing
    the work since their last checkpoint), put them back in ``pending`` with their original
    submit time and count the GPU-hours lost, before carrying out ``starts``. ``skip_full``
    must then be off for policies that preempt. Not built yet.

Determinism
    No wall clock, no hash order: the same workload, cluster, policy and config give the same
    records. Randomness (time-limit model) is drawn before the replay from the seed.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError, SimulationError
from ..model import PENDING, RUNNING, ClusterSnapshot, Inventory, Job

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (jobs finished or started, total jobs)


@dataclass(frozen=True)
class SimSettings:
    """How the simulator runs (see the module docstring for the cadence model)."""

    interval: float = 30.0  # seconds between cycles at most once per change batch
    skip_full: bool = True  # skip cycles in which nothing can possibly start
    fill_until_full: bool = False  # stop at the first cycle that leaves a job pending
    max_cycles: int | None = None  # safety stop for experiments


@dataclass
class SimResult:
    """What one policy's replay produced."""

    policy: str
    records: pd.DataFrame  # the job-record table (kant_slurm.metrics.records)
    end_time: float  # simulated time when the replay stopped
    cycles: int = 0
    cycles_skipped: int = 0
    starts: int = 0
    plan_seconds: float = 0.0  # wall time inside policy.plan
    sim_seconds: float = 0.0  # wall time of the whole replay
    stopped_full: bool = False  # fill-until-full stopped at a job that did not fit
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Workload -> per-job arrays
# --------------------------------------------------------------------------------------------


def job_shapes(gpus: np.ndarray, num_nodes: np.ndarray, node_gpus_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(num_nodes, gpus_per_node) per job on pools whose largest node has ``node_gpus_max`` GPUs.

    A job that fits one node stays on one node; a bigger one takes ceil(gpus / max) nodes with
    the GPUs spread evenly, rounded up (12 GPUs on 8-GPU nodes: 2 x 6). A trace that names the
    node count keeps it.
    """
    gpus = np.asarray(gpus, dtype=np.int64)
    given = np.asarray(num_nodes, dtype=np.int64)
    gmax = np.maximum(np.asarray(node_gpus_max, dtype=np.int64), 1)
    nodes = np.where(given > 0, given, np.maximum(1, -(-gpus // gmax)))
    per_node = -(-gpus // nodes)
    return nodes, per_node


@dataclass
class Workload:
    """A trace prepared for one cluster: per-job arrays and the jobs dropped on the way."""

    table: pd.DataFrame  # trace columns + num_nodes, gpus_per_node resolved
    notes: list[str]


def prepare_workload(jobs: pd.DataFrame, inventory: Inventory) -> Workload:
    """Resolve each job's partition and shape on ``inventory``; drop jobs no pool can ever hold.

    Slurm rejects such jobs at submit ("Requested node configuration is not available"); keeping
    them would block a strict-FIFO queue for ever.
    """
    default = inventory.default_partition
    part = jobs["partition"].replace("", default).fillna(default)
    unknown = sorted(set(part) - set(inventory.partition))
    if unknown:
        first = jobs.loc[part == unknown[0]].iloc[0]
        raise InputError(
            f"trace line {first['line']}: partition {unknown[0]!r} is not in the cluster "
            f"(partitions: {', '.join(inventory.partition)})"
        )
    pool_max = {}
    pool_nodes = {}
    for name, mask in inventory.partition_mask.items():
        g = inventory.gpus_total[mask]
        pool_max[name] = int(g.max()) if len(g) else 0
        pool_nodes[name] = g
    gmax = part.map(pool_max).to_numpy()
    nodes, per_node = job_shapes(jobs["gpus"].to_numpy(), jobs["num_nodes"].to_numpy(), gmax)
    fits = np.zeros(len(jobs), dtype=bool)
    for name, g in pool_nodes.items():
        sel = (part == name).to_numpy()
        if not sel.any():
            continue
        # nodes able to hold gpus_per_node, per distinct per-node size
        for size in np.unique(per_node[sel]):
            able = int((g >= size).sum())
            s2 = sel & (per_node == size)
            fits[s2] = nodes[s2] <= able
    table = jobs.copy()
    table["partition"] = part.to_numpy()
    table["num_nodes"] = nodes
    table["gpus_per_node"] = per_node
    notes = []
    if not fits.all():
        notes.append(f"dropped {int((~fits).sum())} jobs larger than their pool "
                     f"(Slurm rejects them at submit)")
        table = table[fits].reset_index(drop=True)
    rounded = int((table["num_nodes"] * table["gpus_per_node"] != table["gpus"]).sum())
    if rounded:
        notes.append(f"{rounded} multi-node jobs rounded up to equal GPUs per node")
    return Workload(table=table, notes=notes)


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


class Simulator:
    """Replays one workload on one inventory with one policy. Use :meth:`run` once."""

    def __init__(self, inventory: Inventory, workload: Workload, policy, *,
                 settings: SimSettings | None = None,
                 classifier: Callable[[Job], Job] | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.inventory = inventory
        self.workload = workload
        self.policy = policy
        self.settings = settings or SimSettings()
        self.classifier = classifier
        self.progress = progress

    # The loop is long because it is the hot path: attribute look-ups are hoisted into locals.
    def run(self) -> SimResult:  # noqa: C901
        wall0 = time.perf_counter()
        inv = self.inventory
        settings = self.settings
        tab = self.workload.table
        n_jobs = len(tab)
        n_nodes = len(inv)
        policy_name = getattr(self.policy, "name", type(self.policy).__name__)

        submit = tab["submit_time"].to_numpy(dtype=float)
        duration = tab["duration"].to_numpy(dtype=float)
        limit = tab["time_limit"].to_numpy(dtype=float)
        gpus_req = (tab["num_nodes"] * tab["gpus_per_node"]).to_numpy(dtype=np.int64)
        run_for = np.where(np.isnan(limit), duration, np.minimum(duration, limit))
        timed_out = ~np.isnan(limit) & (duration > limit)

        # Per-job results, filled as the replay goes.
        start_t = np.full(n_jobs, np.nan)
        end_t = np.full(n_jobs, np.nan)
        nodes_of: list[tuple[str, ...]] = [()] * n_jobs
        gpus_of: list[tuple[int, ...]] = [()] * n_jobs
        backfilled = np.zeros(n_jobs, dtype=bool)
        estimate = np.full(n_jobs, np.nan)
        estimate_src: list[str] = [""] * n_jobs
        job_class: list[str] = [""] * n_jobs
        class_src: list[str] = [""] * n_jobs
        submitted = np.zeros(n_jobs, dtype=bool)

        gpus_total = inv.gpus_total.astype(np.int32)
        gpus_alloc = np.zeros(n_nodes, dtype=np.int32)
        cpus_alloc = np.zeros(n_nodes, dtype=np.int32)
        state_names = ("IDLE", "MIXED", "ALLOCATED")
        node_state = ["IDLE"] * n_nodes
        zeros_mem = np.zeros(n_nodes, dtype=np.int64)
        zeros_mem.setflags(write=False)
        schedulable = np.ones(n_nodes, dtype=bool)
        schedulable.setflags(write=False)
        weight = np.array(inv.config_weight, dtype=np.int64)
        weight.setflags(write=False)
        index = inv.index
        capacity = int(gpus_total.sum())
        free_total = capacity

        pending: dict[str, Job] = {}
        pending_row: dict[str, int] = {}
        pending_sizes: Counter[int] = Counter()
        running: dict[str, Job] = {}
        running_row: dict[str, int] = {}
        ends: list[tuple[float, int, str]] = []  # (end time, row, job id)

        rows = tab.to_dict("records")
        classifier = self.classifier
        plan_fn = self.policy.plan
        interval = float(settings.interval)

        next_submit = 0
        last_cycle = -math.inf
        dirty_since: float | None = None  # earliest change not yet seen by a cycle
        now = clock = float(submit[0]) if n_jobs else 0.0
        cycles = skipped = starts = 0
        plan_seconds = 0.0
        stopped_full = False
        done = 0
        tick = max(1, n_jobs // 200)
        progress = self.progress

        def set_state(i: int) -> None:
            a = gpus_alloc[i]
            node_state[i] = state_names[0 if a == 0 else (2 if a >= gpus_total[i] else 1)]

        while True:
            t_sub = submit[next_submit] if next_submit < n_jobs else math.inf
            t_end = ends[0][0] if ends else math.inf
            t_cyc = math.inf
            if dirty_since is not None and pending:
                # never before the clock: the change may predate the job now pending
                t_cyc = max(dirty_since, last_cycle + interval, clock)
            now = min(t_sub, t_end, t_cyc)
            if now == math.inf:
                break
            clock = now
            if t_end <= now:
                # Job ends first at equal times: their GPUs are free for this instant's cycle.
                while ends and ends[0][0] <= now:
                    t, r, jid = heapq.heappop(ends)
                    job = running.pop(jid)
                    del running_row[jid]
                    for name, g in zip(job.nodes, job.node_gpus):
                        i = index[name]
                        gpus_alloc[i] -= g
                        set_state(i)
                    free_total += job.gpus
                    end_t[r] = t
                    done += 1
                    if progress and done % tick == 0:
                        progress(done, n_jobs)
                if dirty_since is None:
                    dirty_since = now
                continue
            if t_sub <= now:
                while next_submit < n_jobs and submit[next_submit] <= now:
                    r = next_submit
                    next_submit += 1
                    row = rows[r]
                    cls = row["job_class"]
                    job = Job(
                        job_id=row["job_id"], state=PENDING,
                        num_nodes=int(row["num_nodes"]), gpus_per_node=int(row["gpus_per_node"]),
                        submit_time=float(row["submit_time"]), name=row["name"],
                        user=row["user"], account=row["account"],
                        partitions=(row["partition"],),
                        job_class=cls or "batch", class_source="trace" if cls else "default",
                        time_limit=None if math.isnan(limit[r]) else float(limit[r]),
                    )
                    if classifier is not None:
                        job = classifier(job)
                    job_class[r] = job.job_class
                    class_src[r] = job.class_source
                    submitted[r] = True
                    pending[job.job_id] = job
                    pending_row[job.job_id] = r
                    pending_sizes[int(gpus_req[r])] += 1
                if dirty_since is None:
                    dirty_since = now
                continue
            # A cycle is due now.
            dirty_since = None
            if settings.skip_full and free_total < min(pending_sizes):
                skipped += 1
                if settings.fill_until_full:  # nothing can start: the fill has ended
                    stopped_full = True
                    break
                continue
            last_cycle = now
            cycles += 1
            if settings.max_cycles is not None and cycles > settings.max_cycles:
                break
            snap_gpus = gpus_alloc.copy()
            snap_gpus.setflags(write=False)
            snap_cpus = cpus_alloc.copy()
            snap_cpus.setflags(write=False)
            run_jobs = tuple(running.values())
            pend_jobs = tuple(pending.values())
            snapshot = ClusterSnapshot(
                inventory=inv, gpus_alloc=snap_gpus, cpus_alloc=snap_cpus,
                memory_alloc_mb=zeros_mem, schedulable=schedulable, weight=weight,
                node_state=tuple(node_state), jobs=run_jobs + pend_jobs,
                taken_at=now, source="simulator",
            )
            # The simulator already holds both lists: fill the snapshot's cached properties
            # instead of letting each cycle filter every job by state again.
            snapshot.__dict__["running"] = run_jobs
            snapshot.__dict__["pending"] = pend_jobs
            p0 = time.perf_counter()
            plan = plan_fn(snapshot, now)
            plan_seconds += time.perf_counter() - p0
            for pl in plan.starts:
                jid = pl.job_id
                job = pending.pop(jid, None)
                if job is None:
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s starts job {jid!r}, which is not "
                        f"pending")
                r = pending_row.pop(jid)
                if len(pl.nodes) != len(pl.node_gpus) or sum(pl.node_gpus) != gpus_req[r]:
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s places job {jid!r} "
                        f"({int(gpus_req[r])} GPUs) as {list(zip(pl.nodes, pl.node_gpus))}")
                for name, g in zip(pl.nodes, pl.node_gpus):
                    i = index.get(name)
                    if i is None or gpus_alloc[i] + g > gpus_total[i] or g <= 0:
                        raise SimulationError(
                            f"policy {policy_name!r} at t={now:.0f}s puts {g} GPUs of job {jid!r} "
                            f"on node {name!r}, which has "
                            f"{'no such node' if i is None else int(gpus_total[i] - gpus_alloc[i])}"
                            f" free")
                    gpus_alloc[i] += g
                    set_state(i)
                free_total -= int(gpus_req[r])
                pending_sizes[int(gpus_req[r])] -= 1
                if not pending_sizes[int(gpus_req[r])]:
                    del pending_sizes[int(gpus_req[r])]
                job = dataclasses.replace(job, state=RUNNING, start_time=now,
                                          nodes=tuple(pl.nodes), node_gpus=tuple(pl.node_gpus))
                running[jid] = job
                running_row[jid] = r
                start_t[r] = now
                nodes_of[r] = job.nodes
                gpus_of[r] = job.node_gpus
                backfilled[r] = pl.backfilled
                if pl.runtime_estimate is not None:
                    estimate[r] = pl.runtime_estimate
                estimate_src[r] = pl.estimate_source
                starts += 1
                if math.isfinite(run_for[r]):
                    heapq.heappush(ends, (now + float(run_for[r]), r, jid))
            if settings.fill_until_full and pending:
                stopped_full = True
                break

        wall = time.perf_counter() - wall0
        from ..metrics.records import make_records

        sel = submitted
        state = np.where(~np.isnan(end_t), np.where(timed_out, "TIMEOUT", "COMPLETED"),
                         np.where(~np.isnan(start_t), "RUNNING", "PENDING"))
        records = make_records(
            job_id=tab["job_id"].to_numpy()[sel],
            job_class=np.asarray(job_class, dtype=object)[sel],
            class_source=np.asarray(class_src, dtype=object)[sel],
            user=tab["user"].to_numpy()[sel],
            account=tab["account"].to_numpy()[sel],
            partition=tab["partition"].to_numpy()[sel],
            submit_time=submit[sel],
            start_time=start_t[sel],
            end_time=end_t[sel],
            num_nodes=tab["num_nodes"].to_numpy()[sel],
            gpus=gpus_req[sel],
            nodes=[nodes_of[i] for i in np.nonzero(sel)[0]],
            node_gpus=[gpus_of[i] for i in np.nonzero(sel)[0]],
            time_limit=limit[sel],
            est_runtime=estimate[sel],
            estimate_source=np.asarray(estimate_src, dtype=object)[sel],
            backfilled=backfilled[sel],
            state=state[sel],
            duration=duration[sel],
        )
        if progress:
            progress(n_jobs, n_jobs)
        log.info("%s: %d jobs, %d cycles (%d skipped), plan %.1fs of %.1fs", policy_name,
                 n_jobs, cycles, skipped, plan_seconds, wall)
        return SimResult(
            policy=policy_name, records=records, end_time=float(clock),
            cycles=cycles, cycles_skipped=skipped, starts=starts, plan_seconds=plan_seconds,
            sim_seconds=time.perf_counter() - wall0, stopped_full=stopped_full,
            notes=list(self.workload.notes),
        )
