"""The walk's deep-queue machinery: the order kept across cycles, memo skips, the early stop.

None of it changes a decision; each class says which work it saves:
- :class:`JobTable` and :class:`SortedQueue`: a job's static order keys and estimates,
  computed once per job object, and the queue order kept across the simulator's cycles;
- :class:`ShapeTracker`: when no job behind can start or reserve any more (early stop);
- :class:`Skipper`: runs of jobs that the cycle's memos already decide, passed in one step;
- :class:`Tail`: the reasons of the jobs after the early stop, worked out when read.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from ...model import Job
from ..cycle import Cycle, lookup_ids, shape_key
from .explain import fmt_time


_refcount = getattr(sys, "getrefcount", None)


_SHAPE_IDS: dict[tuple, int] = {}


DEFERRED_REASON = (
    "does not fit now; reservation not worked out (a starts-only plan: no job behind "
    "it could start)"
)


def shape_id(key: tuple) -> int:
    """A small integer per distinct job shape (process-wide, so ids stay valid across cycles)."""
    sid = _SHAPE_IDS.get(key)
    if sid is None:
        sid = _SHAPE_IDS[key] = len(_SHAPE_IDS)
    return sid


class JobTable:
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


class SortedQueue:
    """The pending queue in order, kept across cycles and updated from the snapshot's change
    log (:class:`~kant_slurm.model.PendingChanges`): per cycle the cost is a binary search
    and a block move per job that joined or left, not a sort of the whole queue.

    Order: the static keys, then the job id (``scoring._id_key``, then the id itself), the
    order :meth:`QueuePolicy._fast_order` sorts into whenever ``kept_order_valid`` holds. Per
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


class ShapeTracker:
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


class NoTracker:
    """The shape tracker of a strict-order walk (which stops at its first blocked job)."""

    count = res_count = 1

    def passed(self, rank, fail_memo, res_memo) -> None:
        pass

    def passed_many(self, lo, hi, fail_memo, res_memo) -> None:
        pass


class Skipper:
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
        alive: ShapeTracker | NoTracker,
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
            return DEFERRED_REASON
        if c == self._NOT_ELIGIBLE:
            return f"not eligible before {fmt_time(self.jobs[rank].eligible_time, self.now)}"
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


class Tail:
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
            return f"not eligible before {fmt_time(job.eligible_time, self.now)}"
        return self.policy.gate(job, self.ctx)

    def reason(self, rank: int) -> str:
        cut = self._cut(rank)
        if cut:
            return cut
        # Its shape failed already (the walk stops only then): a memo reject.
        if self.policy.strict:
            return "does not fit now; strict order: everything behind it waits"
        if self.deferred:
            return DEFERRED_REASON
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
