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
    for, since no plan could start anything (``skip_full=False`` turns this off; see below for
    policies that preempt).

Preemption with requeue (issue 8)
    A plan's ``preemptions`` are carried out before its ``starts`` (which may use the GPUs
    they free). Each victim must be running on exactly the nodes and GPUs the preemption
    names, else :class:`SimulationError`. The victim ends at ``now``: its GPUs and CPUs are
    free at once (no grace time is modelled: the signal-triggered checkpoint a grace time
    allows is not credited). It loses the work since its last checkpoint:
    ``(now - start) mod checkpoint_interval``, or everything since the start when
    ``Job.checkpoint_interval`` is unknown. The GPU-seconds lost are counted per job. It goes
    back to ``pending`` with its original submit time (the records' waits count from the
    trace's submit), its remaining run time = run time - checkpointed work, and its time limit
    unchanged: Slurm requeues a job with the same limit and the new run starts the limit over,
    so a requeued job times out only when its *remaining* work exceeds its limit. As in Slurm
    22.05 (the relaunch credential must outlive the revoke), a requeued job is eligible again
    only ``requeue_delay`` seconds later (``SimSettings.requeue_delay``, 121 s = the default
    ``cred_expire`` 120 s + 1; ``Job.eligible_time`` says so to the policy). Slurm also
    resets the job's SubmitTime to the requeue; the simulator keeps the original one, so a
    policy's age factor keeps counting from the trace's submit (the kant policy's intent).

    A requeue counts as a change (a cycle follows within ``interval``, as after a submit).
    When the policy may preempt (``SimSettings.may_preempt``, else the policy's own
    ``may_preempt`` attribute) and an inference job is pending: a cycle is not skipped as
    "cluster full", and cycles also run without any change, every ``interval`` and at each
    pending inference job's SLA deadline (submit + ``Job.sla``) until the deadline has passed,
    since whether to preempt depends on how long the job has waited.

CPUs
    Each job holds ``cpus_per_node`` CPUs on each of its nodes, from the trace when it has CPU
    counts (column ``cpus_per_node``), else ``SimSettings.cpus_per_task`` (default 1: one task
    per node with Slurm's default of 1 CPU per task, what ``kant-slurm replay`` submits as
    ``--nodes=N --ntasks-per-node=1``). The snapshot's ``cpus_alloc`` follows starts, ends and
    preemptions (the ``slurm`` model's best fit by free CPUs sees real counts), and each Job
    carries its ``cpus_per_node`` so a policy checks CPU room, except when no CPU check can
    fail: a node holds at most one job per GPU, so with CPUs >= GPUs x the largest request on
    every node Jobs say 0 and the policies keep their GPU-only fast paths (same decisions).
    On nodes with an unknown CPU count (0) CPUs are not checked. (Slurm with ``CR_Core`` on
    hyperthreaded nodes rounds a 1-CPU task up to a whole core, 2 CPUs; set ``cpus_per_task``
    to match such a site.)

What the policy is given and asked
    Each snapshot carries the simulator's log of queue changes (``pending_changes``, a
    :class:`~kant_slurm.model.PendingChanges`: jobs that joined and left the queue), so a
    policy keeps its sorted queue from cycle to cycle instead of sorting thousands of pending
    jobs again. A policy that does not preempt is asked for a starts-only plan
    (``QueuePolicy.starts_only``; ``SimSettings.starts_only=False`` turns it off): the replay
    reads nothing but the starts, so reservations are worked out only when a job behind them
    could start, with the same starts as the full plan (a differential test holds both).

Records
    One row per job. ``start_time`` is the job's *first* start (so its wait is the time to the
    first start, which is what an SLA is about); ``last_start_time`` the start of its last
    run, whose nodes are ``nodes``/``node_gpus``; earlier, preempted runs are in
    ``preempted_runs`` (start, end, nodes, GPUs per node), with ``preemptions`` and
    ``preempted_gpu_seconds`` (work lost).

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
from ..formats.records import make_records
from ..model import PENDING, RUNNING, ClusterSnapshot, Inventory, Job, PendingChanges, replace_job
from .workload import Workload

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (jobs finished or started, total jobs)


@dataclass(frozen=True)
class SimSettings:
    """How the simulator runs (see the module docstring for the cadence model)."""

    interval: float = 30.0  # seconds between cycles at most once per change batch
    skip_full: bool = True  # skip cycles in which nothing can possibly start
    fill_until_full: bool = False  # stop at the first cycle that leaves a job pending
    max_cycles: int | None = None  # safety stop for experiments
    cpus_per_task: int = 1  # CPUs per node per job when the trace gives none (one task/node)
    may_preempt: bool | None = None  # None: the policy's ``may_preempt`` attribute (else False)
    requeue_delay: float = 121.0  # seconds a requeued job waits before it is eligible again
    starts_only: bool = True  # let the policy plan only the starts (same starts, faster)
    # Workloads at least this long use the compiled walk once it is ready (the first time numba
    # compiles it, in a child process, 30-60 s; the cache serves later runs). Shorter ones
    # plan in Python, which takes seconds for them. 0: always; a huge number: never.
    compile_min_jobs: int = 20_000

    def __post_init__(self) -> None:
        if self.cpus_per_task < 0:
            raise InputError(f"simulator: cpus_per_task must be >= 0, got {self.cpus_per_task}")
        if self.compile_min_jobs < 0:
            raise InputError(
                f"simulator: compile_min_jobs must be >= 0, got {self.compile_min_jobs}"
            )
        if not self.requeue_delay >= 0:
            raise InputError(
                f"simulator: requeue_delay must be >= 0 seconds, got {self.requeue_delay}"
            )


@dataclass
class SimResult:
    """What one policy's replay produced."""

    policy: str
    records: pd.DataFrame  # the job-record table (kant_slurm.formats.records)
    end_time: float  # simulated time when the replay stopped
    cycles: int = 0
    cycles_skipped: int = 0
    starts: int = 0
    plan_seconds: float = 0.0  # wall time inside policy.plan
    sim_seconds: float = 0.0  # wall time of the whole replay
    stopped_full: bool = False  # fill-until-full stopped at a job that did not fit
    preemptions: int = 0  # victims requeued
    preempt_cycles: int = 0  # cycles run only because an inference job waits (no change)
    compiled_cycles: int = 0  # cycles planned by the compiled walk (engine/fastwalk/)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


class Simulator:
    """Replays one workload on one inventory with one policy. Use :meth:`run` once."""

    def __init__(
        self,
        inventory: Inventory,
        workload: Workload,
        policy,
        *,
        settings: SimSettings | None = None,
        classifier: Callable[[Job], Job] | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.inventory = inventory
        self.workload = workload
        self.policy = policy
        self.settings = settings or SimSettings()
        self.classifier = classifier
        self.progress = progress

    # The loop is long because it is the hot path: attribute look-ups are hoisted into locals.
    def run(self) -> SimResult:
        """Replay the workload through the policy; the records and figures of the run."""
        may_preempt = self.settings.may_preempt
        if may_preempt is None:
            may_preempt = bool(getattr(self.policy, "may_preempt", False))
        # The replay reads only a plan's starts (and preemptions): a policy that can plan just
        # those does (see ``QueuePolicy.starts_only``), unless it preempts, which reads the
        # plan's reservations. The policy's own setting comes back however the run ends.
        starts_only_was = getattr(self.policy, "starts_only", None)
        if starts_only_was is not None and not may_preempt and self.settings.starts_only:
            self.policy.starts_only = True
            if (
                getattr(self.policy, "compiled", False)
                and not getattr(self.policy, "strict", False)
                and len(self.workload.table) >= self.settings.compile_min_jobs
            ):
                # The compiled walk, once ready (a child process compiles it the first time;
                # until then the Python walk plans, with the same starts).
                from ..engine import fastwalk

                fastwalk.start_warm_up()
        try:
            return self._replay(may_preempt)
        finally:
            if starts_only_was is not None:
                self.policy.starts_only = starts_only_was

    def _replay(self, may_preempt: bool) -> SimResult:  # noqa: C901
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
        # Work left per job (shrinks by the checkpointed work when a job is preempted).
        remaining = duration.copy()
        timed_out = ~np.isnan(limit) & (duration > limit)
        cpus_req = np.full(n_jobs, int(settings.cpus_per_task), dtype=np.int64)
        if "cpus_per_node" in tab:
            given = tab["cpus_per_node"].to_numpy(dtype=np.int64)
            cpus_req = np.where(given > 0, given, cpus_req)
        # Jobs tell the policy their CPUs only when CPUs can ever be short: a node holds at most
        # one job per GPU, so with CPUs >= GPUs x the largest request on every node (or CPU
        # counts unknown) no CPU check can fail, and the policy's GPU-only fast paths give the
        # same decisions. ``cpus_alloc`` is tracked either way (best fit by free CPUs sees it).
        cpus_known = np.asarray(inv.cpus_total, dtype=np.int64)
        cpn_max = int(cpus_req.max()) if n_jobs else 0
        cpus_bind = bool(
            (
                (cpus_known > 0)
                & (cpus_known < np.asarray(inv.gpus_total, dtype=np.int64) * cpn_max)
            ).any()
        )
        job_cpus = cpus_req if cpus_bind else np.zeros(n_jobs, dtype=np.int64)

        # Per-job results, filled as the replay goes.
        start_t = np.full(n_jobs, np.nan)  # first start
        last_start_t = np.full(n_jobs, np.nan)
        end_t = np.full(n_jobs, np.nan)
        nodes_of: list[tuple[str, ...]] = [()] * n_jobs
        gpus_of: list[tuple[int, ...]] = [()] * n_jobs
        backfilled = np.zeros(n_jobs, dtype=bool)
        estimate = np.full(n_jobs, np.nan)
        estimate_src: list[str] = [""] * n_jobs
        job_class: list[str] = [""] * n_jobs
        class_src: list[str] = [""] * n_jobs
        sla_of = np.full(n_jobs, np.nan)
        submitted = np.zeros(n_jobs, dtype=bool)
        n_preempted = np.zeros(n_jobs, dtype=np.int64)
        lost_gpu_s = np.zeros(n_jobs)
        earlier_runs: dict[int, list[tuple]] = {}  # row -> preempted runs
        run_gen = np.zeros(n_jobs, dtype=np.int64)  # bumped by a preemption: stale end events
        queued_job: dict[int, Job] = {}  # row -> its pending Job (kept only when preempting)

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
        pending_deadline: dict[str, float] = {}  # inference job id -> submit + SLA (may_preempt)
        pending_inference = 0
        running: dict[str, Job] = {}
        running_row: dict[str, int] = {}
        ends: list[tuple[float, int, int]] = []  # (end time, row, run generation)
        wakeups: list[float] = []  # requeued jobs' eligible times
        job_ids = tab["job_id"].tolist()

        rows = tab.to_dict("records")
        has_service = "service" in tab
        classifier = self.classifier
        plan_fn = self.policy.plan
        interval = float(settings.interval)
        requeue_delay = float(settings.requeue_delay)

        next_submit = 0
        last_cycle = -math.inf
        dirty_since: float | None = None  # earliest change not yet seen by a cycle
        now = clock = float(submit[0]) if n_jobs else 0.0
        cycles = skipped = starts = preemptions = poll_cycles = compiled_cycles = 0
        plan_seconds = 0.0
        stopped_full = False
        done = 0
        tick = max(1, n_jobs // 200)
        progress = self.progress

        def set_state(i: int) -> None:
            a = gpus_alloc[i]
            node_state[i] = state_names[0 if a == 0 else (2 if a >= gpus_total[i] else 1)]

        def release(job: Job, r: int) -> None:
            nonlocal free_total
            cpn = int(cpus_req[r])
            for name, g in zip(job.nodes, job.node_gpus, strict=True):
                i = index[name]
                gpus_alloc[i] -= g
                cpus_alloc[i] -= cpn
                set_state(i)
            free_total += job.gpus

        changes = PendingChanges()  # what the policy's kept queue order is updated from

        def enqueue(job: Job, r: int) -> None:
            nonlocal pending_inference
            pending[job.job_id] = job
            changes.add(job)
            pending_row[job.job_id] = r
            pending_sizes[int(gpus_req[r])] += 1
            if job.job_class == "inference":
                pending_inference += 1
                if may_preempt and job.sla is not None:
                    pending_deadline[job.job_id] = job.submit_time + float(job.sla)

        while True:
            t_sub = submit[next_submit] if next_submit < n_jobs else math.inf
            t_end = ends[0][0] if ends else math.inf
            t_wake = wakeups[0] if wakeups else math.inf
            t_cyc = math.inf
            if dirty_since is not None and pending:
                # never before the clock: the change may predate the job now pending
                t_cyc = max(dirty_since, last_cycle + interval, clock)
            elif pending_deadline:
                # A preempting policy decides by how long inference has waited: poll every
                # interval and at each SLA deadline still ahead of the last cycle.
                ahead = [d for d in pending_deadline.values() if d > last_cycle]
                if ahead:
                    poll = min(ahead)
                    if interval > 0:
                        poll = min(poll, last_cycle + interval)
                    t_cyc = max(poll, clock)
            now = min(t_sub, t_end, t_wake, t_cyc)
            if now == math.inf:
                break
            clock = now
            if t_end <= now:
                # Job ends first at equal times: their GPUs are free for this instant's cycle.
                while ends and ends[0][0] <= now:
                    t, r, gen = heapq.heappop(ends)
                    if gen != run_gen[r]:
                        continue  # the run was preempted: this end is void
                    jid = job_ids[r]
                    job = running.pop(jid)
                    del running_row[jid]
                    release(job, r)
                    end_t[r] = t
                    done += 1
                    if progress and done % tick == 0:
                        progress(done, n_jobs)
                if dirty_since is None:
                    dirty_since = now
                continue
            if t_wake <= now:
                while wakeups and wakeups[0] <= now:
                    heapq.heappop(wakeups)
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
                        job_id=row["job_id"],
                        state=PENDING,
                        num_nodes=int(row["num_nodes"]),
                        gpus_per_node=int(row["gpus_per_node"]),
                        submit_time=float(row["submit_time"]),
                        name=row["name"],
                        user=row["user"],
                        account=row["account"],
                        partitions=(row["partition"],),
                        job_class=cls or "batch",
                        class_source="trace" if cls else "default",
                        time_limit=None if math.isnan(limit[r]) else float(limit[r]),
                        cpus_per_node=int(job_cpus[r]),
                    )
                    if has_service and row["service"]:
                        mpn = int(row["max_per_node"])
                        job = dataclasses.replace(
                            job, service=row["service"], max_per_node=mpn if mpn > 0 else None
                        )
                    if classifier is not None:
                        job = classifier(job)
                    job_class[r] = job.job_class
                    class_src[r] = job.class_source
                    if job.sla is not None:
                        sla_of[r] = float(job.sla)
                    submitted[r] = True
                    if may_preempt:
                        queued_job[r] = job
                    enqueue(job, r)
                if dirty_since is None:
                    dirty_since = now
                continue
            # A cycle is due now.
            polled = dirty_since is None
            dirty_since = None
            if (
                settings.skip_full
                and free_total < min(pending_sizes)
                and not (may_preempt and pending_inference)
            ):
                skipped += 1
                if settings.fill_until_full:  # nothing can start: the fill has ended
                    stopped_full = True
                    break
                continue
            last_cycle = now
            cycles += 1
            poll_cycles += polled
            if settings.max_cycles is not None and cycles > settings.max_cycles:
                break
            snap_gpus = gpus_alloc.copy()
            snap_gpus.setflags(write=False)
            snap_cpus = cpus_alloc.copy()
            snap_cpus.setflags(write=False)
            run_jobs = tuple(running.values())
            pend_jobs = tuple(pending.values())
            snapshot = ClusterSnapshot(
                inventory=inv,
                gpus_alloc=snap_gpus,
                cpus_alloc=snap_cpus,
                memory_alloc_mb=zeros_mem,
                schedulable=schedulable,
                weight=weight,
                node_state=tuple(node_state),
                jobs=run_jobs + pend_jobs,
                taken_at=now,
                source="simulator",
                pending_changes=(changes, len(changes)),
            )
            # The simulator already holds both lists: fill the snapshot's cached properties
            # instead of letting each cycle filter every job by state again.
            snapshot.__dict__["running"] = run_jobs
            snapshot.__dict__["pending"] = pend_jobs
            p0 = time.perf_counter()
            plan = plan_fn(snapshot, now)
            plan_seconds += time.perf_counter() - p0
            compiled_cycles += plan.stats.get("walk") == "compiled"
            changes.trim()  # the policy has read them
            for pe in plan.preemptions:
                jid = pe.job_id
                if jid not in running:
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s preempts job {jid!r}, which is "
                        f"not running"
                    )
                job = running[jid]
                if sorted(zip(pe.nodes, pe.node_gpus, strict=False)) != sorted(
                    zip(job.nodes, job.node_gpus, strict=False)
                ):
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s preempts job {jid!r} as "
                        f"{list(zip(pe.nodes, pe.node_gpus, strict=False))}, but it runs on "
                        f"{list(zip(job.nodes, job.node_gpus, strict=False))}"
                    )
                r = running_row.pop(jid)
                del running[jid]
                release(job, r)
                run_gen[r] += 1
                started_at = job.start_time
                assert started_at is not None  # a running job's start
                ran = now - float(started_at)
                ckpt = job.checkpoint_interval
                lost = math.fmod(ran, ckpt) if ckpt is not None and ckpt > 0 else ran
                remaining[r] -= ran - lost
                lost_gpu_s[r] += lost * job.gpus
                n_preempted[r] += 1
                earlier_runs.setdefault(r, []).append(
                    (float(started_at), now, job.nodes, job.node_gpus)
                )
                preemptions += 1
                again = queued_job.get(r)
                if again is None:  # a preemption the simulator was not told to expect
                    again = dataclasses.replace(
                        job, state=PENDING, start_time=None, nodes=(), node_gpus=(), node_cpus=()
                    )
                if requeue_delay > 0:
                    again = dataclasses.replace(again, eligible_time=now + requeue_delay)
                    heapq.heappush(wakeups, now + requeue_delay)
                enqueue(again, r)
                # A requeue is a change, as a submit is: the next cycle (at most ``interval``
                # on) sees the freed GPUs even if this plan started nothing on them.
                dirty_since = now
            for pl in plan.starts:
                jid = pl.job_id
                if jid not in pending:
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s starts job {jid!r}, which is not "
                        f"pending"
                    )
                job = pending.pop(jid)
                r = pending_row.pop(jid)
                changes.remove(job)
                if len(pl.nodes) != len(pl.node_gpus) or sum(pl.node_gpus) != gpus_req[r]:
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s places job {jid!r} "
                        f"({int(gpus_req[r])} GPUs) as "
                        f"{list(zip(pl.nodes, pl.node_gpus, strict=False))}"
                    )
                if job.eligible_time is not None and job.eligible_time > now:
                    raise SimulationError(
                        f"policy {policy_name!r} at t={now:.0f}s starts job {jid!r}, which is not "
                        f"eligible before t={job.eligible_time:.0f}s"
                    )
                cpn = int(cpus_req[r])
                for name, g in zip(pl.nodes, pl.node_gpus, strict=True):
                    i = index.get(name)
                    if i is None or gpus_alloc[i] + g > gpus_total[i] or g <= 0:
                        raise SimulationError(
                            f"policy {policy_name!r} at t={now:.0f}s puts {g} GPUs of job {jid!r} "
                            f"on node {name!r}, which has "
                            f"{'no such node' if i is None else int(gpus_total[i] - gpus_alloc[i])}"
                            f" free"
                        )
                    gpus_alloc[i] += g
                    cpus_alloc[i] += cpn
                    set_state(i)
                free_total -= int(gpus_req[r])
                pending_sizes[int(gpus_req[r])] -= 1
                if not pending_sizes[int(gpus_req[r])]:
                    del pending_sizes[int(gpus_req[r])]
                if job.job_class == "inference":
                    pending_inference -= 1
                    pending_deadline.pop(jid, None)
                job = replace_job(
                    job,
                    state=RUNNING,
                    start_time=now,
                    nodes=tuple(pl.nodes),
                    node_gpus=tuple(pl.node_gpus),
                )
                running[jid] = job
                running_row[jid] = r
                if math.isnan(start_t[r]):
                    start_t[r] = now
                last_start_t[r] = now
                nodes_of[r] = job.nodes
                gpus_of[r] = job.node_gpus
                backfilled[r] = pl.backfilled
                if pl.runtime_estimate is not None:
                    estimate[r] = pl.runtime_estimate
                estimate_src[r] = pl.estimate_source
                starts += 1
                run_for = remaining[r] if math.isnan(limit[r]) else min(remaining[r], limit[r])
                if math.isfinite(run_for):
                    heapq.heappush(ends, (now + float(run_for), r, int(run_gen[r])))
                if n_preempted[r]:  # a requeued run times out only if its rest exceeds the limit
                    timed_out[r] = not math.isnan(limit[r]) and remaining[r] > limit[r]
            if settings.fill_until_full and pending:
                stopped_full = True
                break
            # Drop the plan before the next cycle: its lazy views hold the policy's queue
            # lists, which the policy would otherwise copy before changing them.
            plan = None

        wall = time.perf_counter() - wall0
        sel = submitted
        rows_sel = np.nonzero(sel)[0]
        is_running = np.zeros(n_jobs, dtype=bool)
        is_running[list(running_row.values())] = True
        state = np.where(
            ~np.isnan(end_t),
            np.where(timed_out, "TIMEOUT", "COMPLETED"),
            np.where(is_running, "RUNNING", "PENDING"),
        )
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
            nodes=[nodes_of[i] for i in rows_sel],
            node_gpus=[gpus_of[i] for i in rows_sel],
            time_limit=limit[sel],
            est_runtime=estimate[sel],
            estimate_source=np.asarray(estimate_src, dtype=object)[sel],
            backfilled=backfilled[sel],
            state=state[sel],
            duration=duration[sel],
            last_start_time=last_start_t[sel],
            preemptions=n_preempted[sel],
            preempted_gpu_seconds=lost_gpu_s[sel],
            preempted_runs=[tuple(earlier_runs.get(int(i), ())) for i in rows_sel],
            sla=sla_of[sel],
        )
        if progress:
            progress(n_jobs, n_jobs)
        log.info(
            "%s: %d jobs, %d cycles (%d skipped), %d preemptions, plan %.1fs of %.1fs",
            policy_name,
            n_jobs,
            cycles,
            skipped,
            preemptions,
            plan_seconds,
            wall,
        )
        return SimResult(
            policy=policy_name,
            records=records,
            end_time=float(clock),
            cycles=cycles,
            cycles_skipped=skipped,
            starts=starts,
            plan_seconds=plan_seconds,
            compiled_cycles=compiled_cycles,
            sim_seconds=time.perf_counter() - wall0,
            stopped_full=stopped_full,
            preemptions=preemptions,
            preempt_cycles=poll_cycles,
            notes=list(self.workload.notes),
        )
