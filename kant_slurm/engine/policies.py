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
Node Weight                Weight groups lightest first until they hold the     [1] Weight: "the
                           job; with a tree, every usable node of the lighter   lowest weight
                           groups is taken whole and the tree chooses only      ... first"; [4]
                           within the heaviest group needed (so a lighter node  _eval_nodes_topo
                           in another leaf splits a gang)                       req2_nodes_bitmap
Switch choice              leaves of the lighter nodes first; then leaf by      [4] _topo_choose_
                           leaf: closest to the switches used, then tightest    best_switch,
                           fit (fewest usable nodes that hold the rest; none:   _topo_compare_
                           parents compared, then the biggest); a job never     switches; [5]
                           spans switch fabrics (select._tree_pick)
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
backfill cycles, per-user/partition backfill limits, sockets and GRES binding,
``max_switch_wait`` and ``--switches``, licences, job arrays as a unit, heterogeneous jobs,
``OverSubscribe``. What a live cluster reads beyond that holds for every policy through the
job's pool (:mod:`.pools`): advance reservations, closed partitions (down, MaxTime),
``--constraint``, ``--exclusive`` and memory per node. Preemption is off as in a default
slurm.conf; ``preemption.slurm: true`` adds ``PreemptType=preempt/qos`` with
``PreemptMode=REQUEUE`` for inference jobs (modelled in :mod:`.preempt`). Newer releases (23.x+)
also rank nodes by free GPUs for GPU jobs; 22.05 is what is modelled.

``fifo``
    Strict arrival order, first fit by node index, no backfill: the first job that does not fit
    blocks everything behind it.
"""

from __future__ import annotations

import bisect
import logging
import operator
import sys
import time  # formatting given times only: the engine never reads the clock
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..model import ClusterSnapshot, Job
from . import fastwalk, scoring
from .cycle import Choice, Cycle, RunningTable, Selector, describe_nodes, lookup_ids, shape_key
from .estimate import HistoryEstimator, runtime_estimate
from .plan import Placement, Plan, QueueEntry, Reservation
from .pools import has_room_rules, job_has_room_rules, pool_key, pool_mask, zone_mask
from .registry import register
from .select import binpack, first_fit, level_name, slurm_cons_tres, spread

log = logging.getLogger(__name__)

_refcount = getattr(sys, "getrefcount", None)


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

    @property
    def gates(self) -> bool:
        """Whether gate() may hold a job back (it is asked per job only then)."""
        return False

    starts_only = False
    """Plan only what starts now (the simulator's use): a blocked job's reservation is worked
    out only when a job behind it could start otherwise, and the walk stops once no job
    behind can start. ``Plan.starts`` are those of the full plan; ``Plan.reservations`` holds
    only the reservations that were worked out (``stats["reservations_deferred"]`` counts the
    others), and the other jobs' reasons say so."""

    def __init__(self, config=None, history: HistoryEstimator | None = None) -> None:
        self.config = _config(config)
        self.history = history if self.config.estimator.history else None

    def with_history(self, history: HistoryEstimator | None) -> _QueuePolicy:
        """Use runtime estimates from past jobs (when ``estimator.history`` is on)."""
        self.history = history if self.config.estimator.history else None
        return self

    # -- hooks -------------------------------------------------------------------------
    def order(
        self, pending: Sequence[Job], snapshot: ClusterSnapshot, now: float, ctx: dict
    ) -> list[tuple[Job, dict[str, Any]]]:
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
        return runtime_estimate(
            job,
            use_user=est.use_user_estimate,
            history=self.history,
            unlimited=est.unlimited_runtime,
            limit_only=self.limit_only,
        )

    # -- fast queue order --------------------------------------------------------------
    fast = True
    """Deep-queue fast path: static order keys cached per Job object, numpy sort, early stop
    of the walk once nothing behind can change the plan. ``False`` runs the general path
    (every job through :meth:`order` and the walk); the plans are identical (a test holds it)."""

    def static_keys(self, job: Job, snapshot: ClusterSnapshot) -> tuple[float, ...] | None:
        """Numeric order keys of a job that do not change between cycles (primary first), or
        None when this policy's order is not static here (then :meth:`order` is used)."""
        return None

    def sort_keys(self, keys: np.ndarray, now: float) -> list[np.ndarray]:
        """The per-cycle sort keys (primary first) from the static ones (columns of ``keys``);
        ties are broken by job id, as :func:`scoring._id_key` orders."""
        return [keys[:, c] for c in range(keys.shape[1])]

    def factors_of(self, job: Job, now: float, ctx: dict) -> dict[str, Any]:
        """The order factors shown for a job (as :meth:`order` gives them)."""
        raise NotImplementedError

    def _fast_order(self, pending: Sequence[Job], snapshot: ClusterSnapshot, now: float, ctx: dict):
        """(jobs, runtime estimates, estimate sources (lists), eligible times, shape ids,
        estimates (arrays)), all in queue order, or None when the static order does not
        apply."""
        token = (snapshot.inventory, self.history)
        if snapshot.pending_changes is not None:
            got = self._kept_order(pending, snapshot, now, token)
            if got is not None:
                return got
        table = self._table
        if table is None or table.token[0] is not token[0] or table.token[1] is not token[1]:
            table = self._table = _JobTable(token)
        rows = table.rows(pending, lambda j: self._static_row(j, snapshot))
        if rows is None:
            return None
        keys, est, src, elig, shape, idkeys, idnum = rows
        if len(pending) == 0:
            perm = np.empty(0, dtype=np.int64)
        elif not np.isnan(idnum).any():
            # All ids numeric: the id order is their number, the last sort key.
            cols = self.sort_keys(keys, now)
            perm = np.lexsort([idnum] + cols[::-1])
        else:
            cols = self.sort_keys(keys, now)
            perm = np.lexsort(cols[::-1])
            # Equal keys: job id order (a stable sort by the id key inside each run of ties).
            if perm.size > 1:
                same = np.ones(perm.size - 1, dtype=bool)
                for c in cols:
                    sc = c[perm]
                    same &= sc[1:] == sc[:-1]
                if same.any():
                    edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
                    lo = np.flatnonzero(edges == 1)
                    hi = np.flatnonzero(edges == -1) + 1
                    perm = perm.copy()
                    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
                        run = perm[a:b].tolist()
                        run.sort(key=idkeys.__getitem__)
                        perm[a:b] = run
        jobs = (
            list(operator.itemgetter(*perm.tolist())(pending))
            if perm.size > 1
            else [pending[i] for i in perm.tolist()]
        )
        est = est[perm]
        return jobs, est.tolist(), src[perm].tolist(), elig[perm], shape[perm], est

    def kept_order_valid(self, elig: np.ndarray, now: float) -> bool:
        """Whether the static keys alone (plus the job id) give this cycle's order, so the
        queue kept across cycles is in order (kant: only while no job waits to be eligible)."""
        return True

    def _kept_order(self, pending: Sequence[Job], snapshot: ClusterSnapshot, now: float, token):
        """:meth:`_fast_order` from the queue kept across cycles (:class:`_SortedQueue`),
        updated from the snapshot's change log; None when that does not apply."""
        assert snapshot.pending_changes is not None  # _fast_order calls it only then
        log, upto = snapshot.pending_changes
        q = self._queue
        if (
            q is None
            or q.token[0] is not token[0]
            or q.token[1] is not token[1]
            or q.log is not log
        ):
            q = self._queue = _SortedQueue(token, log)
        if not q.update(pending, upto, lambda j: self._static_row(j, snapshot)):
            return None
        if not self.kept_order_valid(q.elig, now):
            return None
        # Not copies: the queue copies a list before changing it if anything still holds it
        # (see _SortedQueue._own_lists).
        return q.jobs, q.est_l, q.src, q.elig, q.shape, q.est

    _queue: _SortedQueue | None = None

    def _static_row(self, job: Job, snapshot: ClusterSnapshot):
        keys = self.static_keys(job, snapshot)
        if keys is None:
            return None
        est, src = self.estimate(job)
        jid = job.job_id
        return (
            keys,
            est,
            src,
            job.eligible_time if job.eligible_time is not None else np.nan,
            _shape_id(shape_key(job)),
            scoring._id_key(jid),
            float(jid) if jid.isascii() and jid.isdigit() and len(jid) < 16 else np.nan,
        )

    # -- the compiled walk ------------------------------------------------------------
    compiled = True
    """Starts-only plans (the simulator's) walk the queue in compiled code
    (:mod:`.fastwalk`) once it is ready in this process (``fastwalk.prepare()``, or the
    simulator's background compile) and every queued job is of a kind it handles (selector
    E-Binpack or the Slurm model; no CPU counts; no quota gates). Strict order (fifo) stops at
    its first blocked job and keeps the Python walk. ``False`` keeps the Python walk, the
    reference the compiled one is tested against."""

    _shape_info: dict | None = None
    _shape_token = None

    def pools_by_shape(self) -> bool:
        """Whether a job's usable nodes follow from its shape alone and stay the same from
        cycle to cycle (for the same inventory and schedulable nodes): the compiled walk keeps
        one mask per shape across cycles."""
        return True

    def _compiled_inputs(self, cycle: Cycle, ctx: dict, jobs, shape_a: np.ndarray):
        """Per shape id: (nodes, GPUs per node, selector kind, usable-mask row) as arrays, and
        the masks; None when a queued shape is not one the compiled walk handles. Kept across
        cycles while the inventory and the schedulable nodes stay the same."""
        inv = cycle.inv
        token = (inv, cycle.schedulable.tobytes())
        if (
            self._shape_token is None
            or self._shape_token[0] is not inv
            or self._shape_token[1] != token[1]
        ):
            self._shape_token = token
            self._shape_info = {"rows": {}, "masks": [], "mask_of": {}, "arrays": None}
        info = self._shape_info
        rows = info["rows"]
        present = np.flatnonzero(np.bincount(shape_a)).tolist() if shape_a.size else []
        new = [sid for sid in present if sid not in rows]
        if new:
            kinds: dict[Selector, int] = {
                binpack: (
                    fastwalk.KIND_BINPACK_NODE
                    if self.config.placement.single_node == "node"
                    else fastwalk.KIND_BINPACK
                ),
                slurm_cons_tres: fastwalk.KIND_SLURM,
            }
            for sid in new:
                job = jobs[int(np.argmax(shape_a == sid))]
                kind = kinds.get(self.selector(job, ctx))
                if kind is None or job.cpus_per_node > 0 or job_has_room_rules(job):
                    rows[sid] = None
                    continue
                mask = cycle.usable(job)
                m = info["mask_of"].setdefault(mask.tobytes(), len(info["masks"]))
                if m == len(info["masks"]):
                    info["masks"].append(mask)
                rows[sid] = (job.num_nodes, job.gpus_per_node, kind, m)
            arr = np.zeros((4, max(rows) + 1), dtype=np.int64)
            for sid, row in rows.items():
                if row is not None:
                    arr[:, sid] = row
            masks = np.array(info["masks"], dtype=bool).reshape(len(info["masks"]), len(inv))
            info["arrays"] = (arr[0], arr[1], arr[2], arr[3], masks)
        if any(rows[sid] is None for sid in present):
            return None
        return info["arrays"] if present else None

    def _compiled_plan(
        self, snapshot: ClusterSnapshot, now: float, ctx: dict, cycle: Cycle, got
    ) -> Plan | None:
        """A starts-only plan from the compiled walk, or None (then the Python walk runs)."""
        if not self.pools_by_shape() or has_room_rules(snapshot):  # masks per job, not shape
            return None
        jobs, est_l, src_l, elig_a, shape_a, est_a = got
        inputs = self._compiled_inputs(cycle, ctx, jobs, shape_a)
        if inputs is None:
            return None
        nn_a, g_a, kind_a, mask_a, masks = inputs
        inv = cycle.inv
        levels = _levels_of(inv)
        run_rows, run_off, run_len, pool_idx, pool_g = cycle.running_table()
        window = self.reservation_window()
        k_max = self.reservations_k()
        try:
            (s_rank, s_off, s_idx, s_group, s_level, s_bf, r_rank, r_start, r_end, r_off, r_idx) = (
                fastwalk.run(
                    now,
                    cycle.free,
                    cycle.total,
                    cycle.weight,
                    cycle.cpus_free,
                    cycle.has_cpus,
                    levels[0],
                    levels[1],
                    masks,
                    nn_a,
                    g_a,
                    mask_a,
                    kind_a,
                    est_a,
                    elig_a,
                    shape_a,
                    run_rows,
                    run_off,
                    run_len,
                    pool_idx,
                    pool_g,
                    k_max,
                    self.max_job_test(),
                    self.strict,
                    self.whole_node_reservations,
                    now + window if window is not None else np.inf,
                )
            )
        except TypeError as e:  # not the types it was compiled for: nothing was changed yet
            fastwalk.mark_broken(str(e))
            return None
        group_levels = inv.group_levels
        starts = []
        for k, rank in enumerate(s_rank.tolist()):
            job = jobs[rank]
            idx = s_idx[s_off[k] : s_off[k + 1]]
            lv, gi = int(s_level[k]), int(s_group[k])
            group = group_levels[lv][0][gi] if gi >= 0 else None
            starts.append(
                Placement(
                    job_id=job.job_id,
                    nodes=cycle.names_of(idx),
                    node_gpus=(job.gpus_per_node,) * len(idx),
                    backfilled=bool(s_bf[k]),
                    group=group,
                    runtime_estimate=est_l[rank],
                    estimate_source=src_l[rank],
                    why=_compiled_why(int(kind_a[shape_a[rank]]), group, lv, job),
                )
            )
        reservations = []
        for k, rank in enumerate(r_rank.tolist()):
            job = jobs[rank]
            idx = r_idx[r_off[k] : r_off[k + 1]]
            reservations.append(
                Reservation(
                    job_id=job.job_id,
                    start_time=float(r_start[k]),
                    nodes=cycle.names_of(idx),
                    node_gpus=(job.gpus_per_node,) * len(idx),
                    runtime_estimate=float(r_end[k] - r_start[k]),
                    estimate_source=src_l[rank],
                )
            )
        placed = {p.job_id: p for p in starts}
        stats = {
            "pending": len(jobs),
            "running": len(snapshot.running),
            "started": len(starts),
            "backfilled": sum(p.backfilled for p in starts),
            "reservations": len(reservations),
            "blocked": len(jobs) - len(starts),
            "walk": "compiled",
        }
        return Plan(
            policy=self.name,
            now=now,
            order=LazyOrder(jobs, lambda rank: self.factors_of(jobs[rank], now, ctx)),
            starts=tuple(starts),
            reservations=tuple(reservations),
            node_tiers=_LazyMapping(lambda: self.node_tiers(cycle, ctx)),
            blocked=_CompiledReasons(jobs, placed),
            explain=_CompiledReasons(jobs, placed, lines=True),
            stats=stats,
        )

    # -- the cycle ---------------------------------------------------------------------
    SKIP_MIN_QUEUE = 64
    """Queues longer than this pass over runs of memo-decided jobs in one step (``_Skipper``)."""

    _table: _JobTable | None = None
    _run_table: RunningTable | None = None

    def plan(self, snapshot: ClusterSnapshot, now: float) -> Plan:
        """One planning cycle: pure function of ``snapshot`` and ``now``."""
        ctx: dict[str, Any] = {"snapshot": snapshot, "now": now}
        cfg = self.config
        cycle = Cycle(
            snapshot,
            now,
            whole_node_reservations=self.whole_node_reservations,
            reservation_window=self.reservation_window(),
            pool_of=self.pool_of(snapshot, ctx),
            alternatives=cfg.placement.alternatives,
            spread_per_node=cfg.placement.spread_per_node,
            single_node=cfg.placement.single_node,
        )
        rt = self._run_table
        if rt is None or rt.token is not self.history:  # estimates depend on the history
            rt = self._run_table = RunningTable(self.history)
        cycle.load_running(snapshot.running, self.estimate, rt)
        fast = self.fast
        pending = snapshot.pending
        elig_a = None
        got = self._fast_order(pending, snapshot, now, ctx) if fast else None
        if (
            got is not None
            and self.starts_only
            and self.compiled
            and not self.gates
            and not self.strict
            and fastwalk.ready()
        ):
            plan = self._compiled_plan(snapshot, now, ctx, cycle, got)
            if plan is not None:
                return plan
        if got is not None:
            jobs, est_l, src_l, elig_a, shape_a, est_a = got

            def factors(rank: int) -> dict[str, Any]:
                return self.factors_of(jobs[rank], now, ctx)
        else:
            ordered = self.order(pending, snapshot, now, ctx)
            jobs = [j for j, _ in ordered]
            facs = [f for _, f in ordered]

            def factors(rank: int) -> dict[str, Any]:
                return facs[rank]

            est_l = src_l = None
            if fast:
                ests = [self.estimate(j) for j in jobs]
                est_l = [e for e, _ in ests]
                src_l = [s for _, s in ests]
                elig_a = np.array(
                    [np.nan if j.eligible_time is None else j.eligible_time for j in jobs],
                    dtype=float,
                )
                shape_a = np.array([_shape_id(shape_key(j)) for j in jobs], dtype=np.int64)
                est_a = np.asarray(est_l, dtype=float)
        k_max = self.reservations_k()
        depth = self.max_job_test()
        blocked: dict[str, str] = {}
        explain = LazyExplain(self.name, now, k_max, factors)
        reservations = []
        backfills: list[tuple[str, float]] = []  # (job id, expected end) in start order
        res_marks: list[tuple[str, float, int]] = []  # (job id, start, backfills before it)
        first_blocked: str | None = None
        memo_hits = 0
        n_jobs = len(jobs)
        stop = n_jobs  # rank where the walk stopped (the rest: decided without walking)
        if fast and n_jobs:
            # Strict order stops at the first blocked job: no shape tracking needed.
            assert elig_a is not None  # fast: set with the order
            alive = _NoTracker() if self.strict else _ShapeTracker(now, est_a, elig_a, shape_a)
            fail_memo = cycle.fail_memo
            res_memo = cycle.res_memo
        # Deep queue, no gates: runs of jobs that the memos already decide (their shape failed
        # to start with an end at or before theirs, and no reservation is left for them or
        # their shape's search failed for a runtime at or below theirs) are passed over in one
        # array operation instead of one walk step each; their reasons are filled in when read.
        skip = None
        if fast and n_jobs > self.SKIP_MIN_QUEUE and not self.gates and not self.strict:
            skip = _Skipper(self, jobs, now, est_l, src_l, est_a, elig_a, shape_a, k_max, depth)
        # A starts-only plan (the simulator's, which reads nothing but the starts) works out a
        # blocked job's reservation only when a later job could start if it were not there:
        # blocked jobs are queued (ranks, in order) and their reservations made, in that
        # order, just before a job that fits what the reservations made so far leave starts.
        # No job starts while any is queued, so each search sees what it would have seen
        # when the job had its turn: the starts are those of the full plan.
        defer = self.starts_only and fast and not self.strict
        deferred: deque[list] = deque()  # [first rank, end rank, explain record or None]

        def reserve_job(r: int, job: Job, rec: list | None) -> None:
            """The reservation (or why none) of the blocked job at rank ``r``."""
            jid = job.job_id
            line: tuple | str
            if len(cycle.reservations) < k_max:
                est, src = (est_l[r], src_l[r]) if est_l is not None else self.estimate(job)
                res, reason = cycle.reserve(job, est, self.selector(job, ctx))
                if skip is not None:  # its shape's search memo may have changed: mirror it
                    skip.learn(r, cycle)
                if res is not None:
                    record = cycle.reservation_record(res, src)
                    reservations.append(record)
                    if rec is not None:
                        res_marks.append((jid, res.start, len(backfills)))
                    why = f"does not fit now; reserved from {_fmt_time(res.start, now)}"
                    line = (
                        _reservation_lines,
                        record,
                        len(reservations),
                        k_max,
                        cycle.last_reservation_choice.why,
                        now,
                    )
                else:
                    why = line = f"does not fit now; no reservation: {reason}"
            else:
                why = line = (
                    f"does not fit now; no reservation (all {k_max} "
                    f"reservations held by higher-ranked jobs)"
                )
            if rec is None:  # a job the walk passed over
                assert skip is not None  # only the skipper passes jobs over
                skip.set_reason(r, why)
            else:
                blocked[jid] = why
                rec.append(line)

        def resolve(count: int) -> None:
            """Work out the next ``count`` queued reservations, in rank order."""
            while deferred and count > 0:
                if len(cycle.reservations) >= k_max:  # all held: the rest get none
                    for lo, hi, rec in deferred:
                        if rec is None:
                            assert skip is not None  # only the skipper passes jobs over
                            codes = skip.code[lo:hi]
                            codes[codes == skip._DEFERRED] = skip._ALL_HELD
                        else:
                            for r in range(lo, hi):
                                reserve_job(r, jobs[r], rec)
                    deferred.clear()
                    return
                entry = deferred[0]
                r = entry[0]
                if entry[2] is None:
                    # A passed-over run: jobs whose shape's search already failed for a runtime
                    # at or below theirs get that answer from the memo mirror in one step (the
                    # search would return it without a look; nothing changes). Jobs not yet
                    # eligible are passed too, so the rank it stops at is eligible.
                    hi = entry[1]
                    assert skip is not None  # only the skipper passes jobs over
                    r = skip.decided_prefix(r, hi)
                    entry[0] = r
                    if r >= hi:
                        deferred.popleft()
                        continue
                entry[0] += 1
                if entry[0] >= entry[1]:
                    deferred.popleft()
                reserve_job(r, jobs[r], entry[2])
                count -= 1

        rank = -1
        while rank + 1 < n_jobs:
            rank += 1
            if skip is not None and first_blocked is not None:
                # Deferring: a run needs only the start memo; its reservations are queued.
                nxt = skip.run_end(rank, defer or len(cycle.reservations) >= k_max)
                if nxt > rank:
                    memo_hits += skip.take(rank, nxt, alive, fail_memo, res_memo, defer)
                    if defer:
                        deferred.append([rank, nxt, None])
                    rank = nxt - 1
                    if rank + 1 < n_jobs and (
                        (depth and rank + 1 >= depth)
                        or (
                            alive.count == 0
                            and (defer or len(cycle.reservations) >= k_max or alive.res_count == 0)
                        )
                    ):
                        stop = rank + 1
                        break
                    continue
            job = jobs[rank]
            jid = job.job_id
            if est_l is not None:
                est, src = est_l[rank], src_l[rank]
            else:
                est, src = self.estimate(job)
            end = now + est
            rec = explain.new(jid, rank, est, src)
            while True:  # one pass; `break` ends this job's turn
                if depth and rank >= depth and first_blocked is not None:
                    # Past the depth only what the main scheduler starts in order (nothing is
                    # blocked ahead of it) runs; backfill does not look this far.
                    blocked[jid] = f"not tested by backfill this cycle (max_job_test={depth})"
                    rec.append(blocked[jid])
                    break
                if self.strict and first_blocked is not None:
                    blocked[jid] = f"behind {first_blocked} (strict order, no backfill)"
                    rec.append(blocked[jid])
                    break
                if job.eligible_time is not None and job.eligible_time > now:
                    blocked[jid] = f"not eligible before {_fmt_time(job.eligible_time, now)}"
                    rec.append(blocked[jid])
                    break
                gate = self.gate(job, ctx)
                if gate:
                    blocked[jid] = gate
                    rec.append(gate)
                    break
                select = self.selector(job, ctx)
                memo_before = len(cycle.fail_memo)
                choice = cycle.try_start(job, end, select)
                batch = 1
                while choice is not None and deferred:
                    # It fits what the reservations made so far leave: make the queued ones,
                    # a growing batch at a time, until it no longer fits or none is left.
                    resolve(batch)
                    batch *= 2
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
                    break
                if len(cycle.fail_memo) == memo_before:
                    memo_hits += 1
                if first_blocked is None:
                    first_blocked = jid
                if self.strict:
                    blocked[jid] = "does not fit now; strict order: everything behind it waits"
                    rec.append(blocked[jid])
                    break
                if defer:
                    deferred.append([rank, rank + 1, rec])
                else:
                    reserve_job(rank, job, rec)
                break
            if not fast:
                continue
            if skip is not None:
                skip.learn(rank, cycle)
            # Early stop: nothing behind this job can start, reserve or change state.
            alive.passed(rank, fail_memo, res_memo)
            if rank + 1 < n_jobs and (
                (self.strict and first_blocked is not None)
                or (depth and first_blocked is not None and rank + 1 >= depth)
                or (
                    alive.count == 0
                    and (defer or len(cycle.reservations) >= k_max or alive.res_count == 0)
                )
            ):
                stop = rank + 1
                break
        n_deferred = 0
        for lo, hi, rec in deferred:  # never worked out: nothing after them could start
            if rec is not None:
                blocked[jobs[lo].job_id] = _DEFERRED
                rec.append(_DEFERRED)
                n_deferred += 1
            else:
                assert elig_a is not None  # deferring is fast: set with the order
                n_deferred += int(np.count_nonzero(~(elig_a[lo:hi] > now)))
        tail = None
        if stop < n_jobs:
            # Reservations still free at the stop: the walk stopped because every shape ahead
            # failed its reservation search, whose remembered reason is each job's.
            tail_memo = cycle.res_memo if len(cycle.reservations) < k_max else None
            tail = _Tail(
                self,
                jobs,
                stop,
                now,
                ctx,
                depth,
                first_blocked,
                k_max,
                elig_a,
                tail_memo,
                deferred=defer,
            )
            memo_hits += tail.memo_rejects()
            explain.tail = tail
        if skip is not None and skip.count:
            explain.skipped = skip
        for jid, start, first in res_marks:
            explain.records[jid].append((_backfill_summary, backfills, first, start, now))
        tiers = self.node_tiers(cycle, ctx)
        blocked_map = LazyBlocked(
            blocked, tail, skip if skip is not None and skip.count else None, stop
        )
        stats = {
            "pending": n_jobs,
            "running": len(snapshot.running),
            "started": len(cycle.starts),
            "backfilled": len(backfills),
            "reservations": len(reservations),
            "blocked": len(blocked_map),
            "memo_rejects": memo_hits,
            "reservations_deferred": n_deferred,
        }
        return Plan(
            policy=self.name,
            now=now,
            order=LazyOrder(jobs, factors),
            starts=tuple(cycle.starts),
            reservations=tuple(reservations),
            node_tiers=tiers,
            blocked=blocked_map,
            explain=explain,
            stats=stats,
        )


_SHAPE_IDS: dict[tuple, int] = {}

_LEVELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _levels_of(inv) -> tuple[np.ndarray, np.ndarray]:
    """The inventory's topology as (levels x nodes group indices, groups per level)."""
    got = _LEVELS.get(inv)
    if got is None:
        gl = inv.group_levels
        levels = (
            np.array([g for _, g in gl], dtype=np.int64).reshape(len(gl), len(inv))
            if gl
            else np.zeros((0, len(inv)), dtype=np.int64)
        )
        got = _LEVELS[inv] = (levels, np.array([len(n) for n, _ in gl], dtype=np.int64))
    return got


_COMPILED_REASON = (
    "not started this cycle (a starts-only plan from the compiled walk: reasons are not worked out)"
)


def _compiled_why(kind: int, group: str | None, level: int, job: Job) -> str:
    shape = f"{job.num_nodes}x{job.gpus_per_node} GPUs"
    if kind in (fastwalk.KIND_BINPACK, fastwalk.KIND_BINPACK_NODE):
        if job.num_nodes == 1 and kind == fastwalk.KIND_BINPACK_NODE:
            where = f" in leaf group {group}" if group is not None else ""
            return (
                f"E-Binpack: node best-fit: fewest free GPUs that hold {shape}{where}, "
                f"the fullest leaf group among those with such a node"
            )
        if group is None:
            return "E-Binpack: nodes best-fit by free GPUs over the whole pool"
        return (
            f"E-Binpack: {level_name(level)} {group}, the fullest that holds {shape}; "
            f"nodes best-fit by free GPUs"
        )
    # the Slurm model
    if group is None:
        return "no topology: fewest free CPUs first (best fit)"
    return (
        f"lowest switch that fits: {group} ({level_name(level)}, fewest usable "
        f"nodes); nodes in node order (GPUs only checked for sufficiency)"
    )


class _LazyMapping(Mapping):
    """A mapping worked out when first read (the simulator never reads a starts-only plan's
    node tiers)."""

    def __init__(self, make: Callable[[], Mapping]) -> None:
        self._make: Callable[[], Mapping] | None = make
        self._got: Mapping = {}

    def _map(self) -> Mapping:
        if self._make is not None:
            self._got, self._make = self._make(), None
        return self._got

    def __getitem__(self, key):
        return self._map()[key]

    def __iter__(self):
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


class _CompiledReasons(Mapping):
    """``blocked`` (or, with ``lines``, ``explain``) of a compiled starts-only plan: every job
    not started gets the same short reason; the walk does not record why."""

    def __init__(self, jobs, placements: dict, lines: bool = False) -> None:
        self._jobs, self._started = jobs, placements  # job id -> Placement of the starts
        self._lines = lines
        self._ids: set[str] | None = None

    def _keys(self):
        if self._ids is None:
            self._ids = {j.job_id for j in self._jobs}
        return self._ids

    def __getitem__(self, job_id):
        if job_id not in self._keys() or (job_id in self._started and not self._lines):
            raise KeyError(job_id)
        if not self._lines:
            return _COMPILED_REASON
        p = self._started.get(job_id)
        if p is not None:
            return (f"starts now on {describe_nodes(p.nodes, p.node_gpus)}", p.why)
        return (_COMPILED_REASON,)

    def __iter__(self):
        for j in self._jobs:
            if self._lines or j.job_id not in self._started:
                yield j.job_id

    def __len__(self) -> int:
        return len(self._jobs) - (0 if self._lines else len(self._started))


_DEFERRED = (
    "does not fit now; reservation not worked out (a starts-only plan: no job behind "
    "it could start)"
)


def _shape_id(key: tuple) -> int:
    """A small integer per distinct job shape (process-wide, so ids stay valid across cycles)."""
    sid = _SHAPE_IDS.get(key)
    if sid is None:
        sid = _SHAPE_IDS[key] = len(_SHAPE_IDS)
    return sid


class _JobTable:
    """Per-Job static rows (order keys, estimate, eligible time, shape) kept across cycles.

    Jobs are immutable and the simulator passes the same objects cycle after cycle: rows are
    found by ``id(job)`` with a sorted id array. The table holds the previous cycle's jobs, so
    an id seen in it belongs to the very same (still living) object.
    """

    def __init__(self, token) -> None:
        self.token = token
        self.ids = np.empty(0, dtype=np.uint64)
        self.jobs: Sequence[Job] = ()
        self.keys = np.empty((0, 0))
        self.est = np.empty(0)
        self.src = np.empty(0, dtype=object)
        self.elig = np.empty(0)
        self.shape = np.empty(0, dtype=np.int64)
        self.idkeys = np.empty(0, dtype=object)
        self.idnum = np.empty(0)  # the id as a number when it is all digits, else nan
        self.static = True

    def rows(self, pending: Sequence[Job], compute):
        if not self.static:
            return None
        n = len(pending)
        ids, pos, hit = lookup_ids(self.ids, pending)
        miss = np.flatnonzero(~hit).tolist()
        new = []
        for i in miss:
            r = compute(pending[i])
            if r is None:
                self.static = False
                return None
            new.append(r)
        width = len(new[0][0]) if new else self.keys.shape[1] if self.keys.size else 0
        keys = np.empty((n, width))
        est = np.empty(n)
        src = np.empty(n, dtype=object)
        elig = np.empty(n)
        shape = np.empty(n, dtype=np.int64)
        h = np.flatnonzero(hit)
        ph = pos[h]
        if h.size:
            keys[h] = self.keys[ph]
            est[h] = self.est[ph]
            src[h] = self.src[ph]
            elig[h] = self.elig[ph]
            shape[h] = self.shape[ph]
        idkeys = np.empty(n, dtype=object)
        idnum = np.empty(n)
        if h.size:
            idkeys[h] = self.idkeys[ph]
            idnum[h] = self.idnum[ph]
        if miss:
            m = np.asarray(miss)
            keys[m] = [r[0] for r in new]
            est[m] = [r[1] for r in new]
            src[m] = [r[2] for r in new]
            elig[m] = [r[3] for r in new]
            shape[m] = [r[4] for r in new]
            idnum[m] = [r[6] for r in new]
            for i, r in zip(miss, new, strict=True):
                idkeys[i] = r[5]
        srt = np.argsort(ids, kind="stable")
        self.ids = ids[srt]
        self.jobs = pending  # keeps the ids valid
        self.keys, self.est, self.src = keys[srt], est[srt], src[srt]
        self.elig, self.shape, self.idkeys = elig[srt], shape[srt], idkeys[srt]
        self.idnum = idnum[srt]
        return keys, est, src, elig, shape, idkeys, idnum


class _SortedQueue:
    """The pending queue in order, kept across cycles and updated from the snapshot's change
    log (:class:`~kant_slurm.model.PendingChanges`): per cycle the cost is a binary search
    and a block move per job that joined or left, not a sort of the whole queue.

    Order: the static keys, then the job id (``scoring._id_key``, then the id itself), the
    order :meth:`_QueuePolicy._fast_order` sorts into whenever ``kept_order_valid`` holds. Per
    job in that order: the job, its estimate and estimate source (lists), and its estimate,
    eligible time and shape id (arrays, replaced rather than changed in place, so a plan may
    keep them).
    """

    REBUILD = 512  # more changes than this at once: sort the whole queue again

    def __init__(self, token, log) -> None:
        self.token = token
        self.log = log
        self.seen = 0  # log events applied
        self.static = True  # False: the policy's order has no static keys here
        self.valid = False  # the lists below hold the queue as of ``seen``
        self.keys: list[tuple] = []
        self.jobs: list[Job] = []
        self.est_l: list[float] = []
        self.src: list[str] = []
        self._set_cols(np.empty((3, 0)))
        self.key_of: dict[str, tuple] = {}

    def update(self, pending: Sequence[Job], upto: int, compute) -> bool:
        """Bring the queue to the log's first ``upto`` events (the snapshot's ``pending``);
        False when the policy's order is not static (then the caller sorts as before)."""
        if not self.static:
            return False
        events = self.log.since(self.seen, upto)
        self.seen = upto
        ok = self._apply(events, compute) if self.valid and events is not None else None
        if ok is None or (ok and len(self.jobs) != len(pending)):
            ok = self._rebuild(pending, compute)  # cannot follow the log: sort it all again
        self.valid = ok
        return ok

    def _row(self, job: Job, compute):
        r = compute(job)
        if r is None:
            self.static = False
            return None
        return (*r[0], r[5], job.job_id), job, r

    def _apply(self, events, compute) -> bool | None:
        adds: dict[str, Job] = {}
        removes: list[tuple] = []
        key_of = self.key_of
        for sign, job in events:
            jid = job.job_id
            if sign > 0:
                if jid in key_of or jid in adds:
                    return None
                adds[jid] = job
            elif jid in adds:
                del adds[jid]
            else:
                k = key_of.pop(jid, None)
                if k is None:
                    return None
                removes.append(k)
        if len(adds) + len(removes) > self.REBUILD:
            return None
        rows = []
        for job in adds.values():
            row = self._row(job, compute)
            if row is None:
                return False
            rows.append(row)
        keys = self.keys
        if removes or rows:
            self._own_lists()
        cols = self._cols
        if removes:
            pos = sorted((bisect.bisect_left(keys, k) for k in removes), reverse=True)
            for p in pos:
                del keys[p], self.jobs[p], self.est_l[p], self.src[p]
            cols = np.delete(cols, pos, axis=1)
        if rows:
            rows.sort(key=lambda x: x[0])
            at = [bisect.bisect_right(keys, k) for k, _, _ in rows]
            # Highest position first, so each insert leaves the positions still to do valid.
            for p, (k, job, r) in zip(reversed(at), reversed(rows), strict=True):
                keys.insert(p, k)
                self.jobs.insert(p, job)
                self.est_l.insert(p, r[1])
                self.src.insert(p, r[2])
                key_of[job.job_id] = k
            cols = np.insert(
                cols,
                at,
                [
                    [r[1] for _, _, r in rows],
                    [r[3] for _, _, r in rows],
                    [r[4] for _, _, r in rows],
                ],
                axis=1,
            )
        if cols is not self._cols:
            self._set_cols(cols)
        return True

    def _set_cols(self, cols: np.ndarray) -> None:
        # One (3 x jobs) array moved by one insert or delete per cycle instead of three.
        # Shape ids are small integers, exact as floats.
        self._cols = cols
        self.est, self.elig = cols[0], cols[1]
        self.shape = cols[2].astype(np.int64)

    def _own_lists(self) -> None:
        """Copy the job, estimate and source lists before changing them in place if anything
        but this queue holds them: the last plan's lazy views (order, reasons) read the lists
        handed out then. The simulator drops each plan before the next cycle, so the lists are
        usually this queue's alone and thousands of jobs are not copied every cycle. CPython's
        reference count tells; without it, always copy."""
        for name in ("jobs", "est_l", "src"):
            # 3: the instance dict's reference, the local name and getrefcount's argument.
            lst = getattr(self, name)
            if _refcount is None or _refcount(lst) > 3:
                setattr(self, name, list(lst))

    def _rebuild(self, pending: Sequence[Job], compute) -> bool:
        rows = []
        for job in pending:
            row = self._row(job, compute)
            if row is None:
                return False
            rows.append(row)
        rows.sort(key=lambda x: x[0])
        self.keys = [k for k, _, _ in rows]
        self.jobs = [j for _, j, _ in rows]
        self.est_l = [float(r[1]) for _, _, r in rows]
        self.src = [r[2] for _, _, r in rows]
        self._set_cols(
            np.array(
                [self.est_l, [r[3] for _, _, r in rows], [r[4] for _, _, r in rows]], dtype=float
            ).reshape(3, len(rows))
        )
        self.key_of = {j.job_id: k for k, j, _ in rows}
        return True


class _ShapeTracker:
    """How many job shapes ahead in the queue (among eligible jobs) may still start.

    A shape is dead once the cycle's fail memo holds an end at or before the earliest end of
    every job of that shape still ahead (availability only shrinks within a cycle, so those
    jobs fail without a look at the nodes); the memo only goes down and the earliest end ahead
    only goes up, so a dead shape stays dead.
    """

    def __init__(self, now: float, est: np.ndarray, elig: np.ndarray, shape: np.ndarray) -> None:
        cand = ~(elig > now)
        self.cand = cand
        # Linear in the queue (no sort): a shape's positions are found when it is first met.
        per_shape = np.bincount(shape[cand]) if shape.size else np.empty(0, np.int64)
        n_shapes = int(np.count_nonzero(per_shape))
        self.count = n_shapes  # shapes ahead that may still start
        self.res_count = n_shapes  # shapes ahead that may still get a reservation
        self._now = now
        self._est = est
        self._shape = shape
        self._state: dict[int, list] = {}  # shape -> [suffix-min ends, next position, key]

    def passed(self, rank: int, fail_memo: dict, res_memo: dict) -> None:
        """The job at ``rank`` has had its turn."""
        if not self.cand[rank]:
            return
        sid = int(self._shape[rank])
        st = self._state.get(sid)
        if st is None:
            st = self._init_state(sid)
        if not (st[4] or st[5]):
            return
        self._check(st, fail_memo, res_memo)

    def _init_state(self, sid: int) -> list:
        ests = self._est[np.flatnonzero(self.cand & (self._shape == sid))]
        ends = self._now + ests
        # [suffix-min ends, suffix-min runtimes, next position, key, may start, may reserve]
        st = self._state[sid] = [
            np.minimum.accumulate(ends[::-1])[::-1].tolist(),
            np.minimum.accumulate(ests[::-1])[::-1].tolist(),
            0,
            _SHAPE_KEYS[sid],
            True,
            True,
        ]
        return st

    def _check(self, st: list, fail_memo: dict, res_memo: dict) -> None:
        """One more job of the shape has had its turn: is the shape dead now?"""
        st[2] += 1
        p = st[2]
        gone = p >= len(st[0])
        if st[4]:
            m = None if gone else fail_memo.get(st[3])
            if gone or (m is not None and st[0][p] >= m):
                st[4] = False
                self.count -= 1
        if st[5]:
            r = None if gone else res_memo.get(st[3])
            # A reservation search that found nothing is remembered for this shape and
            # answers the same for every job of it running at least as long.
            if gone or (r is not None and r[1] is None and st[1][p] >= r[0]):
                st[5] = False
                self.res_count -= 1

    def passed_many(self, lo: int, hi: int, fail_memo: dict, res_memo: dict) -> None:
        """Ranks ``lo:hi`` have had their turn (the memos unchanged meanwhile): as many
        :meth:`passed` calls, one per shape (deadness only grows with the position)."""
        c = self.cand[lo:hi]
        sh = self._shape[lo:hi][c]
        if sh.size == 0:
            return
        # Shape ids are small integers: a bincount is cheaper than a sort-based unique.
        per = np.bincount(sh)
        sids = np.flatnonzero(per)
        for sid, cnt in zip(sids.tolist(), per[sids].tolist(), strict=True):
            st = self._state.get(sid)
            if st is not None and not (st[4] or st[5]):
                continue
            if st is None:
                self._init_state(sid)
                st = self._state[sid]
            st[2] += cnt - 1
            self._check(st, fail_memo, res_memo)


class _NoTracker:
    """The shape tracker of a strict-order walk (which stops at its first blocked job)."""

    count = res_count = 1

    def passed(self, rank, fail_memo, res_memo) -> None:
        pass

    def passed_many(self, lo, hi, fail_memo, res_memo) -> None:
        pass


class _Skipper:
    """Runs of queued jobs whose turn the memos already decide, passed over in one step.

    A job's turn changes nothing and ends in a memo reject when the cycle's fail memo holds an
    end at or before its own for its shape and either every reservation is taken or its
    shape's reservation search failed for a runtime at or below its estimate (see
    :meth:`~.cycle.Cycle.try_start`, :meth:`~.cycle.Cycle.reserve`); a job not yet eligible
    is passed over in any case. Both memos are mirrored here per shape id, updated after each
    walked job (only that job's shape can change). Reasons are kept as codes and formatted
    when read.
    """

    CHUNK = 256
    _NOT_ELIGIBLE, _ALL_HELD, _WALKED, _DEFERRED = -1, -2, -3, -4

    def __init__(self, policy, jobs, now, est_l, src_l, est, elig, shape, k_max, depth) -> None:
        self.policy, self.jobs, self.now, self.k_max = policy, jobs, now, k_max
        self.est_l, self.src_l = est_l, src_l
        n = len(jobs)
        self.est = est
        self.end = now + self.est
        self.cand = ~(elig > now)
        self.elig = elig
        self.shape = shape
        n_sid = int(shape.max()) + 1 if n else 0
        self.memo_end = np.full(n_sid, np.inf)
        self.res_rt = np.full(n_sid, np.inf)
        self.res_reason = np.full(n_sid, -1, dtype=np.int64)
        self.reasons: list[str] = []
        self.code = np.full(n, self._WALKED, dtype=np.int64)  # per rank; >= 0: reasons[code]
        self.limit = min(n, depth) if depth else n  # the depth cut is the walk's own stop
        self.count = 0
        self._rank: dict[str, int] | None = None

    def learn(self, rank: int, cycle: Cycle) -> None:
        """After a walked job: mirror its shape's memos."""
        sid = int(self.shape[rank])
        key = _SHAPE_KEYS[sid]
        m = cycle.fail_memo.get(key)
        self.memo_end[sid] = np.inf if m is None else m
        f = cycle.res_fail.get(key)
        if f is None:
            self.res_rt[sid] = np.inf
        elif f[0] != self.res_rt[sid]:
            self.res_rt[sid] = f[0]
            self.reasons.append(f"does not fit now; no reservation: {f[1]}")
            self.res_reason[sid] = len(self.reasons) - 1

    def _mask(self, lo: int, hi: int, all_held: bool) -> np.ndarray:
        sh = self.shape[lo:hi]
        dead = self.memo_end[sh] <= self.end[lo:hi]
        if not all_held:
            dead &= self.res_rt[sh] <= self.est[lo:hi]
        return ~self.cand[lo:hi] | dead

    def run_end(self, rank: int, all_held: bool) -> int:
        """The first rank from ``rank`` on whose turn the memos do not decide."""
        self._all_held = all_held
        r = rank
        while r < self.limit:
            hi = min(r + self.CHUNK, self.limit)
            m = self._mask(r, hi, all_held)
            if not m.all():
                return r + int(np.argmin(m))
            r = hi
        return max(r, rank)

    def take(
        self,
        lo: int,
        hi: int,
        alive: _ShapeTracker | _NoTracker,
        fail_memo,
        res_memo,
        deferred: bool = False,
    ) -> int:
        """Pass over ranks ``lo:hi`` (all decided by the memos); returns the memo rejects.
        ``deferred``: their reservations are worked out later (or never), see ``set_reason``."""
        all_held = self._all_held
        el = self.cand[lo:hi]
        sh = self.shape[lo:hi]
        code = np.where(
            el,
            self._DEFERRED if deferred else self._ALL_HELD if all_held else self.res_reason[sh],
            self._NOT_ELIGIBLE,
        )
        self.code[lo:hi] = code
        self.count += hi - lo
        alive.passed_many(lo, hi, fail_memo, res_memo)
        return int(el.sum())

    _all_held = False

    def is_skipped(self, rank: int) -> bool:
        return self.code[rank] != self._WALKED

    def rank_of(self, job_id: str) -> int | None:
        if self._rank is None:
            self._rank = {j.job_id: r for r, j in enumerate(self.jobs)}
        r = self._rank.get(job_id)
        return r if r is not None and self.code[r] != self._WALKED else None

    def decided_prefix(self, lo: int, hi: int) -> int:
        """Give the deferred ranks from ``lo`` on whose reservation search the memo answers
        (not eligible, or their shape's search failed for a runtime at or below theirs) that
        answer, up to the first one it does not; returns that rank (``hi``: all answered)."""
        sh = self.shape[lo:hi]
        failed = self.res_rt[sh] <= self.est[lo:hi]
        done = ~self.cand[lo:hi] | failed
        n = hi - lo if done.all() else int(np.argmin(done))
        if n:
            hit = failed[:n] & self.cand[lo : lo + n]
            codes = self.code[lo : lo + n]
            codes[hit] = self.res_reason[sh[:n][hit]]
        return lo + n

    def set_reason(self, rank: int, reason: str) -> None:
        """The outcome of a passed-over job's reservation, once worked out."""
        self.reasons.append(reason)
        self.code[rank] = len(self.reasons) - 1

    def reason(self, rank: int) -> str:
        c = int(self.code[rank])
        if c == self._DEFERRED:
            return _DEFERRED
        if c == self._NOT_ELIGIBLE:
            return f"not eligible before {_fmt_time(self.jobs[rank].eligible_time, self.now)}"
        if c == self._ALL_HELD:
            return (
                f"does not fit now; no reservation (all {self.k_max} "
                f"reservations held by higher-ranked jobs)"
            )
        return self.reasons[c]


class _ShapeKeys(Mapping):
    def __getitem__(self, sid):
        return self._list()[sid]

    def _list(self):
        lst = self.__dict__.get("lst")
        if lst is None or len(lst) != len(_SHAPE_IDS):
            lst = [None] * len(_SHAPE_IDS)
            for k, v in _SHAPE_IDS.items():
                lst[v] = k
            self.__dict__["lst"] = lst
        return lst

    def __iter__(self):
        return iter(range(len(_SHAPE_IDS)))

    def __len__(self):
        return len(_SHAPE_IDS)


_SHAPE_KEYS = _ShapeKeys()


class _Tail:
    """The jobs after the rank where the walk stopped: their outcome, decided by what the
    walk left behind (nothing after the stop changes state), worked out only when read."""

    def __init__(
        self,
        policy,
        jobs,
        stop,
        now,
        ctx,
        depth,
        first_blocked,
        k_max,
        elig,
        res_memo=None,
        deferred=False,
    ):
        self.policy, self.jobs, self.stop, self.now, self.ctx = policy, jobs, stop, now, ctx
        self.depth, self.first_blocked, self.k_max = depth, first_blocked, k_max
        self.elig = elig
        self.res_memo = res_memo  # per shape (runtime, start, reason); None: all K are held
        self.deferred = deferred  # a starts-only plan: reservations were not worked out
        self._rank: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.jobs) - self.stop

    def ids(self):
        return (j.job_id for j in self.jobs[self.stop :])

    def rank_of(self, job_id: str) -> int | None:
        if self._rank is None:
            self._rank = {j.job_id: r for r, j in enumerate(self.jobs[self.stop :], self.stop)}
        return self._rank.get(job_id)

    def _cut(self, rank: int) -> str | None:
        depth, fb = self.depth, self.first_blocked
        if depth and rank >= depth and fb is not None:
            return f"not tested by backfill this cycle (max_job_test={depth})"
        if self.policy.strict and fb is not None:
            return f"behind {fb} (strict order, no backfill)"
        job = self.jobs[rank]
        if job.eligible_time is not None and job.eligible_time > self.now:
            return f"not eligible before {_fmt_time(job.eligible_time, self.now)}"
        return self.policy.gate(job, self.ctx)

    def reason(self, rank: int) -> str:
        cut = self._cut(rank)
        if cut:
            return cut
        # Its shape failed already (the walk stops only then): a memo reject.
        if self.policy.strict:
            return "does not fit now; strict order: everything behind it waits"
        if self.deferred:
            return _DEFERRED
        job = self.jobs[rank]
        memo = self.res_memo.get(shape_key(job)) if self.res_memo is not None else None
        if memo is not None and memo[1] is None:
            return f"does not fit now; no reservation: {memo[2]}"
        return (
            f"does not fit now; no reservation (all {self.k_max} "
            f"reservations held by higher-ranked jobs)"
        )

    def memo_rejects(self) -> int:
        """Jobs of the tail that reach the start test (and fail on the memo)."""
        n = len(self.jobs)
        depth, fb = self.depth, self.first_blocked
        hi = n
        if depth and fb is not None:
            hi = min(hi, max(depth, self.stop))
        if self.policy.strict and fb is not None:
            hi = self.stop
        if hi <= self.stop:
            return 0
        el = ~(self.elig[self.stop : hi] > self.now)
        if not self.policy.gates:
            return int(el.sum())
        return sum(
            1
            for r in (np.flatnonzero(el) + self.stop).tolist()
            if not self.policy.gate(self.jobs[r], self.ctx)
        )


class LazyOrder(Sequence):
    """``Plan.order``: a QueueEntry per pending job, built only when read."""

    def __init__(self, jobs: list[Job], factors: Callable[[int], dict]) -> None:
        self._jobs = jobs
        self._factors = factors
        self._cache: dict[int, QueueEntry] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(len(self._jobs))))
        if i < 0:
            i += len(self._jobs)
        if not 0 <= i < len(self._jobs):
            raise IndexError(i)
        e = self._cache.get(i)
        if e is None:
            e = self._cache[i] = QueueEntry(self._jobs[i].job_id, i, self._factors(i))
        return e

    def __eq__(self, other):
        if isinstance(other, (LazyOrder, tuple, list)):
            return len(self) == len(other) and all(
                a == b for a, b in zip(self, other, strict=False)
            )
        return NotImplemented

    # Unhashable, as a list or dict is (mypy takes None for a clash with object.__hash__).
    __hash__ = None  # type: ignore[assignment]


class LazyBlocked(Mapping):
    """``Plan.blocked``: the walked jobs' reasons, then the tail's, worked out when read (and
    those of jobs the walk passed over, see ``_Skipper``), in queue order."""

    def __init__(
        self,
        walked: dict[str, str],
        tail: _Tail | None,
        skipped: _Skipper | None = None,
        stop: int = 0,
    ) -> None:
        self._walked = walked
        self._tail = tail
        self._skipped = skipped
        self._stop = stop

    def __getitem__(self, job_id: str) -> str:
        r = self._walked.get(job_id)
        if r is not None:
            return r
        if self._skipped is not None:
            rank = self._skipped.rank_of(job_id)
            if rank is not None:
                return self._skipped.reason(rank)
        if self._tail is not None:
            rank = self._tail.rank_of(job_id)
            if rank is not None:
                return self._tail.reason(rank)
        raise KeyError(job_id)

    def __iter__(self):
        sk = self._skipped
        if sk is None:
            yield from self._walked
        else:
            walked = self._walked
            for r, j in enumerate(sk.jobs[: self._stop]):
                if sk.is_skipped(r) or j.job_id in walked:
                    yield j.job_id
        if self._tail is not None:
            yield from self._tail.ids()

    def __len__(self) -> int:
        return (
            len(self._walked)
            + (self._skipped.count if self._skipped is not None else 0)
            + (len(self._tail) if self._tail is not None else 0)
        )

    def __eq__(self, other):
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    # Unhashable, as a list or dict is (mypy takes None for a clash with object.__hash__).
    __hash__ = None  # type: ignore[assignment]


class LazyExplain(Mapping):
    """``Plan.explain``: job id -> lines of reasoning, formatted only when read.

    The simulator plans hundreds of thousands of cycles and reads none of it; ``plan
    --explain`` reads one job. Items are strings or ``(function, *args)`` that return lines.
    """

    def __init__(
        self, policy: str, now: float, k_max: int, factors: Callable[[int], dict] | None = None
    ) -> None:
        self.policy = policy
        self.records: dict[str, list] = {}
        self._done: dict[str, tuple[str, ...]] = {}
        self._factors = factors
        self.tail: _Tail | None = None  # jobs after the walk's early stop
        self.skipped: _Skipper | None = None  # jobs the walk passed over (memo-decided)

    def new(self, job_id: str, rank: int, est: float, src: str) -> list:
        # The head line is formatted with this explain object, passed when read: a record
        # holding it would make a reference cycle, and the plan (with the kept queue's lists
        # it holds) would live until the garbage collector runs.
        rec: list = [(_head_lines_at, rank, est, src)]
        self.records[job_id] = rec
        return rec

    def _record(self, job_id: str) -> list:
        rec = self.records.get(job_id)
        if rec is not None:
            return rec
        sk = self.skipped
        rank = sk.rank_of(job_id) if sk is not None else None
        if sk is not None and rank is not None:
            return [(_head_lines_at, rank, sk.est_l[rank], sk.src_l[rank]), sk.reason(rank)]
        tail = self.tail
        rank = tail.rank_of(job_id) if tail is not None else None
        if tail is None or rank is None:
            raise KeyError(job_id)
        est, src = tail.policy.estimate(tail.jobs[rank])
        return [(_head_lines_at, rank, est, src), tail.reason(rank)]

    def __getitem__(self, job_id: str) -> tuple[str, ...]:
        out = self._done.get(job_id)
        if out is None:
            lines: list[str] = []
            for item in self._record(job_id):
                if isinstance(item, str):
                    lines.append(item)
                elif item[0] is _head_lines_at:
                    lines.extend(_head_lines_at(self, *item[1:]))
                else:
                    lines.extend(item[0](*item[1:]))
            out = tuple(lines)
            self._done[job_id] = out
        return out

    def __iter__(self):
        sk = self.skipped
        if sk is None:
            yield from self.records
        else:
            records = self.records
            stop = self.tail.stop if self.tail is not None else len(sk.jobs)
            for r, j in enumerate(sk.jobs[:stop]):
                if sk.is_skipped(r) or j.job_id in records:
                    yield j.job_id
        if self.tail is not None:
            yield from self.tail.ids()

    def __len__(self) -> int:
        return (
            len(self.records)
            + (self.skipped.count if self.skipped is not None else 0)
            + (len(self.tail) if self.tail is not None else 0)
        )


def _head_lines_at(explain: LazyExplain, rank, est, src):
    factors = explain._factors
    assert factors is not None  # the walk's explain (the only one with head lines) has them
    return _head_lines(explain.policy, rank, factors(rank), est, src)


def _head_lines(policy, rank, factors, est, src):
    return (
        f"rank {rank} in {policy} order: "
        + ", ".join(f"{k}={_short(v)}" for k, v in factors.items()),
        f"runtime estimate {est:.0f} s from {src}",
    )


def _start_lines(p: Placement):
    out = [f"starts now on {describe_nodes(p.nodes, p.node_gpus)}", f"why: {p.why}"]
    for alt in p.alternatives:
        out.append(
            f"  alternative {alt['group']}: score {alt['score']:.3f}, {alt['free_gpus']} GPUs free"
        )
    return out


def _backfill_note(any_reservation: bool, over: tuple[str, ...], end: float, now: float):
    if not any_reservation:
        return ("backfilled past a blocked job that has no reservation",)
    if not over:
        return (f"backfilled: ends by {_fmt_time(end, now)}, before every reservation starts",)
    return (
        "backfilled: still running when the reservation(s) of "
        + ", ".join(over)
        + " start, so it uses only GPUs they leave spare",
    )


def _reservation_lines(record, n, k_max, why, now):
    return (
        f"does not fit now; reservation {n} of {k_max}: starts "
        f"{_fmt_time(record.start_time, now)} on "
        f"{describe_nodes(record.nodes, record.node_gpus)}",
        f"reserved nodes: {why}",
    )


def _backfill_summary(backfills, first, start, now):
    ahead = [
        f"{jid} (ends {_fmt_time(end, now)}, "
        + ("uses spare room)" if end > start else "before it starts)")
        for jid, end in backfills[first:]
    ]
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

    def static_keys(self, job, snapshot):
        return (job.submit_time,)

    def factors_of(self, job, now, ctx):
        return {"submit_time": job.submit_time}

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
            keyed.append(
                (
                    scoring.slurm_order_key(t, j.priority, j.submit_time, j.job_id),
                    j,
                    {"partition_tier": t, "priority": j.priority, "submit_time": j.submit_time},
                )
            )
        keyed.sort(key=lambda x: x[0])
        return [(j, f) for _, j, f in keyed]

    def _tier(self, job: Job, inv) -> int:
        parts = inv.partition
        default = inv.default_partition
        names = job.partitions or ((default,) if default else ())
        return max((parts[p].priority_tier for p in names if p in parts), default=1)

    def static_keys(self, job, snapshot):
        # The same key as slurm_order_key, minus the job id (ties are broken by it).
        return (-self._tier(job, snapshot.inventory), -job.priority, job.submit_time)

    def factors_of(self, job, now, ctx):
        return {
            "partition_tier": self._tier(job, ctx["snapshot"].inventory),
            "priority": job.priority,
            "submit_time": job.submit_time,
        }

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

    @property
    def may_preempt(self) -> bool:  # the simulator polls while inference waits
        return self.config.preemption.slurm

    def plan(self, snapshot, now):
        self._parts = {p.name: p.max_time for p in snapshot.inventory.partitions}
        plan = super().plan(snapshot, now)
        if self.config.preemption.slurm:  # preempt/qos + REQUEUE model (engine/preempt/slurm.py)
            from .preempt import slurm_preemptions

            plan = slurm_preemptions(snapshot, now, plan, self.config)
        return plan


# ------------------------------------------------------------------------------------ kant


@register("kant")
class KantPolicy(_QueuePolicy):
    """Class tier, quota tier, age; EASY backfill with K reservations; E-Binpack / E-Spread."""

    name = "kant"

    def _zone(self, snapshot: ClusterSnapshot) -> np.ndarray:
        z = self.config.inference_zone
        return zone_mask(snapshot.inventory, z.nodes, z.partition)

    @property
    def may_preempt(self) -> bool:  # the simulator polls while inference waits
        return self.config.preemption.enabled

    def plan(self, snapshot, now):
        plan = super().plan(snapshot, now)
        if self.config.preemption.enabled:  # inference SLA rescue (engine/preempt/kant.py)
            from .preempt import kant_preemptions

            plan = kant_preemptions(snapshot, now, plan, self.config, self._zone(snapshot))
        return plan

    def pools_by_shape(self) -> bool:
        # The elastic zone lends nodes by the job's runtime estimate and the cycle's state.
        return not self.config.inference_zone.elastic

    def pool_of(self, snapshot, ctx):
        if self.config.inference_zone.elastic:  # borrow / lend nodes (engine/zone.py)
            from .zone import elastic_pool_of

            return elastic_pool_of(self, snapshot, ctx)
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
                for n, g in zip(j.nodes, gpus, strict=False):
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
                factors = {
                    "class": j.job_class,
                    "class_tier": ct,
                    "quota_tier": qt,
                    "age_s": age,
                    "quota": quota,
                    "quota_used": used,
                }
            keyed.append((scoring.kant_order_key(ct, qt, age, j.job_id), j, factors))
        keyed.sort(key=lambda x: x[0])
        return [(j, f) for _, j, f in keyed]

    @property
    def gates(self) -> bool:
        return bool(self.config.quota.accounts)

    def kept_order_valid(self, elig, now):
        # The age key is max(0, now - since): jobs not yet eligible all have age 0 and go by
        # job id among the jobs whose ``since`` is now, which no static key can say.
        return not bool((elig > now).any())

    def static_keys(self, job, snapshot):
        cfg = self.config
        if cfg.quota.accounts:
            return None  # quota tiers change as jobs start: the general order
        since = job.eligible_time if job.eligible_time is not None else job.submit_time
        return (scoring.class_tier(job.job_class, cfg.classes.order), since)

    def sort_keys(self, keys, now):
        # kant_order_key without quotas: class tier, quota tier (0 for all), -age.
        return [keys[:, 0], -np.maximum(0.0, now - keys[:, 1])]

    def factors_of(self, job, now, ctx):
        ct = scoring.class_tier(job.job_class, self.config.classes.order)
        return {
            "class": job.job_class,
            "class_tier": ct,
            "quota_tier": scoring.QUOTA_WITHIN,
            "age_s": scoring.age_seconds(now, job.submit_time, job.eligible_time),
        }

    def _fast_order(self, pending, snapshot, now, ctx):
        got = super()._fast_order(pending, snapshot, now, ctx)
        if got is not None:
            ctx["usage"] = defaultdict(int)  # no quotas: order() would leave it empty too
        return got

    def gate(self, job, ctx):
        cfg = self.config
        quota = scoring.quota_for(cfg.quota.accounts, job.account, job.gpu_type)
        if quota is None:
            return None
        used = ctx["usage"].get((job.account, job.gpu_type or "*"), 0)
        if scoring.quota_tier(used, job.gpus, quota, cfg.quota.borrow_limit) == scoring.QUOTA_OVER:
            return (
                f"over the borrowing limit: account {job.account!r} holds {used} of quota "
                f"{quota} ({job.gpu_type or 'any'} GPUs), may reach "
                f"{quota * (1 + cfg.quota.borrow_limit):.0f}"
            )
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
        return dict(zip(inv.names, tiers.tolist(), strict=True))


_ = Choice
