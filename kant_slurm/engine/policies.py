"""The built-in policies: ``fifo``, ``slurm`` and ``kant`` (issue 3, shared/DESIGN.md).

All three walk an ordered queue through :class:`~.cycle.Cycle`; they differ in the order, in
backfill (none, Slurm's, EASY with K reservations), in runtime estimates and in node choice.

``kant``
    Order: class tier (``classes.order``), quota tier (within quota, borrowing, over the
    borrowing limit), age. EASY backfill with ``backfill.reservations`` = K reservations on
    runtime estimates (user tag / history / time limit, never above the limit), GPU-granular.
    Placement: E-Binpack, and E-Spread for inference jobs in the inference zone. Non-inference
    jobs stay out of the zone. Node preference tiers for the actuator (``Plan.node_tiers``).

``slurm`` -- a model of stock Slurm 22.05 with ``SchedulerType=sched/backfill``,
``SelectType=select/cons_tres``, ``TopologyPlugin=topology/tree`` and default parameters.
Each modelled behaviour and what it rests on (documents fetched with the ``search`` tool):

=========================  ===================================================  ================
Behaviour                  What the model does                                  Rests on
=========================  ===================================================  ================
Queue order                partition PriorityTier (high first), then job        [1] PriorityTier,
                           priority (high first), then submit time and job id.  [6] (priority/
                           The default PriorityType=priority/basic is FIFO; a   basic is FIFO by
                           live snapshot carries Slurm's computed priority,     default)
                           used as is.
Main scheduler             strict priority order; once a job of a partition is  [2] "once any job
                           left pending, later jobs start only through          ... is left
                           backfill                                             pending"
Backfill                   a later job starts only if it does not delay the     [2], [3]
                           expected start of any higher-priority job it tested
Reservations per job       every blocked job tested gets a planned start and    [3] node_space
                           nodes; later jobs may not use those nodes in that    map of node
                           window: whole nodes, not GPU counts                  bitmaps
Depth and window           ``bf_max_job_test`` = 500 jobs tested after the      [3] defaults
                           first blocked one; no reservation beyond             max_backfill_
                           ``bf_window`` = 1 day                                job_cnt=500,
                                                                                backfill_window=
                                                                                86400 s
Runtime                    the time limit only (no estimates); no limit: the    [1] MaxTime, [3]
                           partition's MaxTime, else estimator.unlimited_runtime
Node sufficiency           a node needs enough free GPUs of the asked type      [4] (GPUs only
                           (only checked, not ranked) and CPUs if asked         for sufficiency)
Node Weight                lightest Weight tiers first, heavier ones only if    [1] Weight: "the
                           the lighter cannot hold the job                      lowest weight
                                                                                ... first"
Switch choice              the lowest-level switch that holds the job; among    [5] best fit on
                           those the one with the fewest usable nodes (best     the tree;
                           fit); a job never spans switch fabrics; inside a     _eval_nodes_topo
                           spine: a leaf that holds the rest, else the biggest  [4]
Node order                 with a tree: node order inside the leaf; without:    [4], [5] native
                           fewest free CPUs first (best fit), then node order   best fit
=========================  ===================================================  ================

[1] slurm.conf(5), 22.05: https://slurm.schedmd.com/archive/slurm-22.05-latest/slurm.conf.html
[2] Scheduling Configuration Guide: https://slurm.schedmd.com/sched_config.html
[3] src/plugins/sched/backfill/backfill.c (defaults seen in the compiled plugin's globals)
[4] src/plugins/select/cons_tres/job_test.c: _can_job_run_on_node, _eval_nodes,
    _eval_nodes_topo
[5] Topology Guide: https://slurm.schedmd.com/topology.html; topology.conf(5) 22.05.8
[6] Slurm priority (SLUG'19, SchedMD): priority/basic is FIFO and the default

Left out of the ``slurm`` model: fair-share and the other multifactor terms (the priority is read,
not computed), ``bf_resolution`` rounding (60 s), ``bf_continue``, ``bf_max_time`` and
``bf_yield_interval`` (cycle time limits), ``default_queue_depth`` and the timing of main and
backfill cycles, per-user/partition backfill limits, memory, sockets and GRES binding,
``max_switch_wait`` and ``--switches``, licences, advance reservations, preemption, job arrays
as a unit, heterogeneous jobs, ``OverSubscribe``. Newer releases (23.x+) also rank nodes by free
GPUs for GPU jobs; 22.05 is what is modelled.

``fifo``
    Strict arrival order, first fit by node index, no backfill: the first job that does not fit
    blocks everything behind it.
"""

from __future__ import annotations

import logging
import time  # formatting given times only: the engine never reads the clock
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..model import ClusterSnapshot, Job
from . import scoring
from .cycle import Choice, Cycle, Selector, describe_nodes
from .estimate import HistoryEstimator, runtime_estimate
from .plan import Placement, Plan, QueueEntry
from .pools import pool_key, pool_mask, zone_mask
from .registry import register
from .select import binpack, first_fit, slurm_cons_tres, spread

log = logging.getLogger(__name__)


def _config(config):
    # No file is read here: the dataclass defaults are the shipped defaults (a test holds the
    # two equal).
    if config is None:
        from ..config import KantConfig

        return KantConfig()
    return config


def _fmt_time(t: float, now: float) -> str:
    """A plan time: epoch seconds of a live cluster as UTC, simulator seconds as they are."""
    if t > 1e9:
        return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))} (now+{t - now:.0f}s)"
    return f"{t:.0f} (now+{t - now:.0f}s)"


class _QueuePolicy:
    """A policy that orders the pending queue and walks it through a :class:`Cycle`."""

    name = "base"
    strict = False  # fifo: the first blocked job blocks everything behind it
    whole_node_reservations = False
    limit_only = False  # estimates: the time limit only

    def __init__(self, config=None, history: HistoryEstimator | None = None) -> None:
        self.config = _config(config)
        self.history = history if self.config.estimator.history else None

    def with_history(self, history: HistoryEstimator | None) -> "_QueuePolicy":
        """Use runtime estimates from past jobs (when ``estimator.history`` is on)."""
        self.history = history if self.config.estimator.history else None
        return self

    # -- hooks -------------------------------------------------------------------------
    def order(self, pending: Sequence[Job], snapshot: ClusterSnapshot, now: float,
              ctx: dict) -> list[tuple[Job, dict[str, Any]]]:
        raise NotImplementedError

    def selector(self, job: Job, ctx: dict) -> Selector:
        raise NotImplementedError

    def gate(self, job: Job, ctx: dict) -> str | None:
        """A reason the job may not start this cycle whatever the nodes (None = may)."""
        return None

    def on_start(self, job: Job, ctx: dict) -> None:
        pass

    def reservations_k(self) -> int:
        return self.config.backfill.reservations

    def max_job_test(self) -> int:
        return self.config.backfill.max_job_test

    def reservation_window(self) -> float | None:
        return None

    def pool_of(self, snapshot: ClusterSnapshot, ctx: dict) -> Callable[[Job], np.ndarray] | None:
        return None

    def node_tiers(self, cycle: Cycle, ctx: dict) -> dict[str, int]:
        return {}

    def estimate(self, job: Job) -> tuple[float, str]:
        est = self.config.estimator
        return runtime_estimate(job, use_user=est.use_user_estimate, history=self.history,
                                unlimited=est.unlimited_runtime, limit_only=self.limit_only)

    # -- the cycle ---------------------------------------------------------------------
    def plan(self, snapshot: ClusterSnapshot, now: float) -> Plan:
        """One planning cycle: pure function of ``snapshot`` and ``now``."""
        ctx: dict[str, Any] = {"snapshot": snapshot, "now": now}
        cfg = self.config
        cycle = Cycle(snapshot, now, whole_node_reservations=self.whole_node_reservations,
                      reservation_window=self.reservation_window(),
                      pool_of=self.pool_of(snapshot, ctx),
                      alternatives=cfg.placement.alternatives,
                      spread_per_node=cfg.placement.spread_per_node)
        cycle.load_running(snapshot.running, self.estimate)
        ordered = self.order(snapshot.pending, snapshot, now, ctx)
        k_max = self.reservations_k()
        depth = self.max_job_test()
        order_entries: list[QueueEntry] = []
        blocked: dict[str, str] = {}
        explain = LazyExplain(self.name, now, k_max)
        reservations = []
        backfills: list[tuple[str, float]] = []  # (job id, expected end) in start order
        res_marks: list[tuple[str, float, int]] = []  # (job id, start, backfills before it)
        first_blocked: str | None = None
        memo_hits = 0
        for rank, (job, factors) in enumerate(ordered):
            jid = job.job_id
            order_entries.append(QueueEntry(jid, rank, factors))
            est, src = self.estimate(job)
            end = now + est
            rec = explain.new(jid, rank, factors, est, src)
            if depth and rank >= depth and first_blocked is not None:
                # Past the depth only what the main scheduler starts in order (nothing is
                # blocked ahead of it) runs; backfill does not look this far.
                blocked[jid] = f"not tested by backfill this cycle (max_job_test={depth})"
                rec.append(blocked[jid])
                continue
            if self.strict and first_blocked is not None:
                blocked[jid] = f"behind {first_blocked} (strict order, no backfill)"
                rec.append(blocked[jid])
                continue
            if job.eligible_time is not None and job.eligible_time > now:
                blocked[jid] = f"not eligible before {_fmt_time(job.eligible_time, now)}"
                rec.append(blocked[jid])
                continue
            gate = self.gate(job, ctx)
            if gate:
                blocked[jid] = gate
                rec.append(gate)
                continue
            select = self.selector(job, ctx)
            memo_before = len(cycle.fail_memo)
            choice = cycle.try_start(job, end, select)
            if choice is not None:
                backfilled = first_blocked is not None
                placement = Placement(
                    job_id=jid,
                    nodes=cycle.names_of(choice.idx),
                    node_gpus=tuple(choice.gpus.tolist()),
                    backfilled=backfilled,
                    group=choice.group,
                    runtime_estimate=est,
                    estimate_source=src,
                    why=choice.why,
                    alternatives=choice.alternatives,
                )
                cycle.commit_start(job, choice, end, placement)
                self.on_start(job, ctx)
                rec.append((_start_lines, placement))
                if backfilled:
                    over = tuple(r.job_id for r in cycle.reservations if r.start < end)
                    rec.append((_backfill_note, bool(cycle.reservations), over, end, now))
                    backfills.append((jid, end))
                continue
            if len(cycle.fail_memo) == memo_before:
                memo_hits += 1
            if first_blocked is None:
                first_blocked = jid
            if self.strict:
                blocked[jid] = "does not fit now; strict order: everything behind it waits"
                rec.append(blocked[jid])
                continue
            if len(cycle.reservations) < k_max:
                res, reason = cycle.reserve(job, est, select)
                if res is not None:
                    record = cycle.reservation_record(res, src)
                    reservations.append(record)
                    res_marks.append((jid, res.start, len(backfills)))
                    blocked[jid] = f"does not fit now; reserved from {_fmt_time(res.start, now)}"
                    rec.append((_reservation_lines, record, len(reservations), k_max,
                                cycle.last_reservation_choice.why, now))
                else:
                    blocked[jid] = f"does not fit now; no reservation: {reason}"
                    rec.append(blocked[jid])
            else:
                blocked[jid] = (f"does not fit now; no reservation (all {k_max} "
                                f"reservations held by higher-ranked jobs)")
                rec.append(blocked[jid])
        for jid, start, first in res_marks:
            explain.records[jid].append((_backfill_summary, backfills, first, start, now))
        tiers = self.node_tiers(cycle, ctx)
        stats = {
            "pending": len(ordered),
            "running": len(snapshot.running),
            "started": len(cycle.starts),
            "backfilled": len(backfills),
            "reservations": len(reservations),
            "blocked": len(blocked),
            "memo_rejects": memo_hits,
        }
        return Plan(policy=self.name, now=now, order=tuple(order_entries),
                    starts=tuple(cycle.starts), reservations=tuple(reservations),
                    node_tiers=tiers, blocked=blocked, explain=explain, stats=stats)


class LazyExplain(Mapping):
    """``Plan.explain``: job id -> lines of reasoning, formatted only when read.

    The simulator plans hundreds of thousands of cycles and reads none of it; ``plan
    --explain`` reads one job. Items are strings or ``(function, *args)`` that return lines.
    """

    def __init__(self, policy: str, now: float, k_max: int) -> None:
        self.policy = policy
        self.records: dict[str, list] = {}
        self._done: dict[str, tuple[str, ...]] = {}

    def new(self, job_id: str, rank: int, factors: dict, est: float, src: str) -> list:
        rec: list = [(_head_lines, self.policy, rank, factors, est, src)]
        self.records[job_id] = rec
        return rec

    def __getitem__(self, job_id: str) -> tuple[str, ...]:
        out = self._done.get(job_id)
        if out is None:
            lines: list[str] = []
            for item in self.records[job_id]:
                if isinstance(item, str):
                    lines.append(item)
                else:
                    lines.extend(item[0](*item[1:]))
            out = tuple(lines)
            self._done[job_id] = out
        return out

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def _head_lines(policy, rank, factors, est, src):
    return (f"rank {rank} in {policy} order: "
            + ", ".join(f"{k}={_short(v)}" for k, v in factors.items()),
            f"runtime estimate {est:.0f} s from {src}")


def _start_lines(p: Placement):
    out = [f"starts now on {describe_nodes(p.nodes, p.node_gpus)}", f"why: {p.why}"]
    for alt in p.alternatives:
        out.append(f"  alternative {alt['group']}: score {alt['score']:.3f}, "
                   f"{alt['free_gpus']} GPUs free")
    return out


def _backfill_note(any_reservation: bool, over: tuple[str, ...], end: float, now: float):
    if not any_reservation:
        return ("backfilled past a blocked job that has no reservation",)
    if not over:
        return (f"backfilled: ends by {_fmt_time(end, now)}, before every reservation starts",)
    return ("backfilled: still running when the reservation(s) of " + ", ".join(over)
            + " start, so it uses only GPUs they leave spare",)


def _reservation_lines(record, n, k_max, why, now):
    return (f"does not fit now; reservation {n} of {k_max}: starts "
            f"{_fmt_time(record.start_time, now)} on "
            f"{describe_nodes(record.nodes, record.node_gpus)}",
            f"reserved nodes: {why}")


def _backfill_summary(backfills, first, start, now):
    ahead = [f"{jid} (ends {_fmt_time(end, now)}, "
             + ("uses spare room)" if end > start else "before it starts)")
             for jid, end in backfills[first:]]
    if not ahead:
        return ("no job backfills ahead of it this cycle",)
    more = f" ... ({len(ahead)} jobs)" if len(ahead) > 20 else ""
    return ("may backfill ahead of it without delaying it: " + ", ".join(ahead[:20]) + more,)


def _short(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 1)
    return v


# ------------------------------------------------------------------------------------ fifo


@register("fifo")
class FifoPolicy(_QueuePolicy):
    """Strict arrival order, first fit, no backfill."""

    name = "fifo"
    strict = True
    limit_only = True

    def order(self, pending, snapshot, now, ctx):
        jobs = sorted(pending, key=lambda j: scoring.fifo_order_key(j.submit_time, j.job_id))
        return [(j, {"submit_time": j.submit_time}) for j in jobs]

    def selector(self, job, ctx):
        return first_fit

    def reservations_k(self) -> int:
        return 0


# ----------------------------------------------------------------------------------- slurm


@register("slurm")
class SlurmPolicy(_QueuePolicy):
    """Stock Slurm 22.05 sched/backfill + select/cons_tres + topology/tree (module docstring)."""

    name = "slurm"
    whole_node_reservations = True
    limit_only = True
    BF_MAX_JOB_TEST = 500  # slurm.conf(5) SchedulerParameters bf_max_job_test default
    BF_WINDOW_S = 1440 * 60.0  # bf_window default: 1440 minutes

    def order(self, pending, snapshot, now, ctx):
        inv = snapshot.inventory
        parts = inv.partition
        default = inv.default_partition

        def tier(job: Job) -> int:
            names = job.partitions or ((default,) if default else ())
            return max((parts[p].priority_tier for p in names if p in parts), default=1)

        keyed = []
        for j in pending:
            t = tier(j)
            keyed.append((scoring.slurm_order_key(t, j.priority, j.submit_time, j.job_id), j,
                          {"partition_tier": t, "priority": j.priority,
                           "submit_time": j.submit_time}))
        keyed.sort(key=lambda x: x[0])
        return [(j, f) for _, j, f in keyed]

    def selector(self, job, ctx):
        return slurm_cons_tres

    def reservations_k(self) -> int:
        return self.BF_MAX_JOB_TEST

    def max_job_test(self) -> int:
        return self.BF_MAX_JOB_TEST

    def reservation_window(self) -> float | None:
        return self.BF_WINDOW_S

    def estimate(self, job: Job) -> tuple[float, str]:
        # Slurm has no runtime estimate: the time limit, or the partition's MaxTime.
        if job.time_limit is None or job.time_limit <= 0:
            inv_parts = self._parts
            for p in job.partitions:
                mt = inv_parts.get(p)
                if mt:
                    return float(mt), "partition_max_time"
        return super().estimate(job)

    def plan(self, snapshot, now):
        self._parts = {p.name: p.max_time for p in snapshot.inventory.partitions}
        return super().plan(snapshot, now)


# ------------------------------------------------------------------------------------ kant


@register("kant")
class KantPolicy(_QueuePolicy):
    """Class tier, quota tier, age; EASY backfill with K reservations; E-Binpack / E-Spread."""

    name = "kant"

    def _zone(self, snapshot: ClusterSnapshot) -> np.ndarray:
        z = self.config.inference_zone
        return zone_mask(snapshot.inventory, z.nodes, z.partition)

    def pool_of(self, snapshot, ctx):
        zone = self._zone(snapshot)
        ctx["zone"] = zone
        inv = snapshot.inventory
        if not zone.any():
            ctx["in_zone"] = lambda job: False
            return None
        cache: dict = {}

        def in_zone(job: Job) -> bool:
            return job.job_class == "inference" and bool((pool_mask(inv, job) & zone).any())

        def pool_of(job: Job) -> np.ndarray:
            key = (pool_key(job), job.job_class == "inference")
            m = cache.get(key)
            if m is None:
                base = pool_mask(inv, job)
                if job.job_class == "inference":
                    m = base & zone if (base & zone).any() else base
                else:
                    rest = base & ~zone
                    m = rest if rest.any() else base
                cache[key] = m
            return m

        ctx["in_zone"] = in_zone
        return pool_of

    def order(self, pending, snapshot, now, ctx):
        cfg = self.config
        accounts = cfg.quota.accounts
        usage: dict[tuple[str, str], int] = defaultdict(int)
        if accounts:
            inv = snapshot.inventory
            index = inv.index
            for j in snapshot.running:
                gpus = j.node_gpus or (j.gpus_per_node,) * len(j.nodes)
                for n, g in zip(j.nodes, gpus):
                    t = inv.gpu_type[index[n]] if n in index else None
                    usage[(j.account, t or "*")] += int(g)
                    if t:
                        usage[(j.account, "*")] += int(g)
        ctx["usage"] = usage
        keyed = []
        order = cfg.classes.order
        tiers = {c: scoring.class_tier(c, order) for c in order}  # class_tier, as a lookup
        last = len(order)
        borrow = cfg.quota.borrow_limit
        for j in pending:
            ct = tiers.get(j.job_class, last)
            quota = scoring.quota_for(accounts, j.account, j.gpu_type) if accounts else None
            age = scoring.age_seconds(now, j.submit_time, j.eligible_time)
            if quota is None:
                qt = scoring.QUOTA_WITHIN
                factors = {"class": j.job_class, "class_tier": ct, "quota_tier": qt, "age_s": age}
            else:
                used = usage.get((j.account, j.gpu_type or "*"), 0)
                qt = scoring.quota_tier(used, j.gpus, quota, borrow)
                factors = {"class": j.job_class, "class_tier": ct, "quota_tier": qt,
                           "age_s": age, "quota": quota, "quota_used": used}
            keyed.append((scoring.kant_order_key(ct, qt, age, j.job_id), j, factors))
        keyed.sort(key=lambda x: x[0])
        return [(j, f) for _, j, f in keyed]

    def gate(self, job, ctx):
        cfg = self.config
        quota = scoring.quota_for(cfg.quota.accounts, job.account, job.gpu_type)
        if quota is None:
            return None
        used = ctx["usage"].get((job.account, job.gpu_type or "*"), 0)
        if scoring.quota_tier(used, job.gpus, quota, cfg.quota.borrow_limit) == scoring.QUOTA_OVER:
            return (f"over the borrowing limit: account {job.account!r} holds {used} of quota "
                    f"{quota} ({job.gpu_type or 'any'} GPUs), may reach "
                    f"{quota * (1 + cfg.quota.borrow_limit):.0f}")
        return None

    def on_start(self, job, ctx):
        if self.config.quota.accounts:
            ctx["usage"][(job.account, job.gpu_type or "*")] += job.gpus
            if job.gpu_type:
                ctx["usage"][(job.account, "*")] += job.gpus

    def selector(self, job, ctx):
        if job.num_nodes == 1 and ctx["in_zone"](job):
            return spread
        return binpack

    def node_tiers(self, cycle, ctx):
        inv = cycle.inv
        snap = cycle.snapshot
        alloc = np.where(cycle.schedulable, cycle.total - cycle.free, snap.gpus_alloc)
        tiers = scoring.node_tiers(alloc, cycle.total, inv.leaf_index, ctx["zone"])
        return dict(zip(inv.names, tiers.tolist()))


_ = Choice
