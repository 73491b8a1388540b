"""The queue walk that every built-in policy runs, and the hooks a policy fills in.

One cycle (:meth:`QueuePolicy.plan`): order the pending jobs; walk them through a
:class:`~kant_slurm.engine.cycle.Cycle`, where each job starts now, or (blocked) gets a
reservation that later jobs may backfill around; and record why, per job. A policy plugin
subclasses :class:`QueuePolicy` and sets its hooks: the order (``order``, or ``static_keys`` and
``sort_keys`` for the deep-queue fast path), the node selector, the number of reservations and
their window, runtime estimates, gates and node tiers.

The walk has two speed-ups that change no decision (tests hold both to the plain walk):
:mod:`.queue` for deep queues (kept order, memo skips, early stop), and :mod:`.compiled`, which
hands starts-only plans to the numba walk in :mod:`kant_slurm.engine.fastwalk`.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...model import ClusterSnapshot, Job
from .. import fastwalk, scoring
from ..cycle import Cycle, RunningTable, Selector, shape_key
from ..estimate import HistoryEstimator, runtime_estimate
from ..plan import Placement, Plan
from .compiled import compiled_plan
from .explain import (
    LazyBlocked,
    LazyExplain,
    LazyOrder,
    backfill_note,
    backfill_summary,
    fmt_time,
    reservation_lines,
    start_lines,
)
from .queue import (
    DEFERRED_REASON,
    JobTable,
    NoTracker,
    ShapeTracker,
    Skipper,
    SortedQueue,
    Tail,
    shape_id,
)


def _config(config):
    # No file is read here: the dataclass defaults are the shipped defaults (a test holds the
    # two equal).
    if config is None:
        from ...config import KantConfig

        return KantConfig()
    return config


class QueuePolicy:
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

    def with_history(self, history: HistoryEstimator | None) -> QueuePolicy:
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
            table = self._table = JobTable(token)
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
        """:meth:`_fast_order` from the queue kept across cycles (:class:`SortedQueue`),
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
            q = self._queue = SortedQueue(token, log)
        if not q.update(pending, upto, lambda j: self._static_row(j, snapshot)):
            return None
        if not self.kept_order_valid(q.elig, now):
            return None
        # Not copies: the queue copies a list before changing it if anything still holds it
        # (see SortedQueue._own_lists).
        return q.jobs, q.est_l, q.src, q.elig, q.shape, q.est

    _queue: SortedQueue | None = None

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
            shape_id(shape_key(job)),
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
    _shape_token: tuple | None = None

    def pools_by_shape(self) -> bool:
        """Whether a job's usable nodes follow from its shape alone and stay the same from
        cycle to cycle (for the same inventory and schedulable nodes): the compiled walk keeps
        one mask per shape across cycles."""
        return True

    # -- the cycle ---------------------------------------------------------------------
    SKIP_MIN_QUEUE = 64
    """Queues longer than this pass over runs of memo-decided jobs in one step (``Skipper``)."""

    _table: JobTable | None = None
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
            plan = compiled_plan(self, snapshot, now, ctx, cycle, got)
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
                shape_a = np.array([shape_id(shape_key(j)) for j in jobs], dtype=np.int64)
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
            alive = NoTracker() if self.strict else ShapeTracker(now, est_a, elig_a, shape_a)
            fail_memo = cycle.fail_memo
            res_memo = cycle.res_memo
        # Deep queue, no gates: runs of jobs that the memos already decide (their shape failed
        # to start with an end at or before theirs, and no reservation is left for them or
        # their shape's search failed for a runtime at or below theirs) are passed over in one
        # array operation instead of one walk step each; their reasons are filled in when read.
        skip = None
        if fast and n_jobs > self.SKIP_MIN_QUEUE and not self.gates and not self.strict:
            skip = Skipper(self, jobs, now, est_l, src_l, est_a, elig_a, shape_a, k_max, depth)
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
                    why = f"does not fit now; reserved from {fmt_time(res.start, now)}"
                    line = (
                        reservation_lines,
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
                    blocked[jid] = f"not eligible before {fmt_time(job.eligible_time, now)}"
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
                    rec.append((start_lines, placement))
                    if backfilled:
                        over = tuple(r.job_id for r in cycle.reservations if r.start < end)
                        rec.append((backfill_note, bool(cycle.reservations), over, end, now))
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
                blocked[jobs[lo].job_id] = DEFERRED_REASON
                rec.append(DEFERRED_REASON)
                n_deferred += 1
            else:
                assert elig_a is not None  # deferring is fast: set with the order
                n_deferred += int(np.count_nonzero(~(elig_a[lo:hi] > now)))
        tail = None
        if stop < n_jobs:
            # Reservations still free at the stop: the walk stopped because every shape ahead
            # failed its reservation search, whose remembered reason is each job's.
            tail_memo = cycle.res_memo if len(cycle.reservations) < k_max else None
            tail = Tail(
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
            explain.records[jid].append((backfill_summary, backfills, first, start, now))
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
