"""A plan's views that are built only when read: the order, the blocked reasons, and each
job's explanation lines (``kant-slurm plan --explain``).
"""

from __future__ import annotations

import time  # formatting given times only: the engine never reads the clock

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any


from ...model import Job
from ..cycle import describe_nodes
from ..plan import Placement, QueueEntry

if TYPE_CHECKING:  # the walk's helpers: queue.py formats with this module
    from .queue import Skipper, Tail


def fmt_time(t: float, now: float) -> str:
    """A plan time: epoch seconds of a live cluster as UTC, simulator seconds as they are."""
    if t > 1e9:
        return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))} (now+{t - now:.0f}s)"
    return f"{t:.0f} (now+{t - now:.0f}s)"


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
    those of jobs the walk passed over, see ``Skipper``), in queue order."""

    def __init__(
        self,
        walked: dict[str, str],
        tail: Tail | None,
        skipped: Skipper | None = None,
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
        self.tail: Tail | None = None  # jobs after the walk's early stop
        self.skipped: Skipper | None = None  # jobs the walk passed over (memo-decided)

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


def start_lines(p: Placement):
    out = [f"starts now on {describe_nodes(p.nodes, p.node_gpus)}", f"why: {p.why}"]
    for alt in p.alternatives:
        out.append(
            f"  alternative {alt['group']}: score {alt['score']:.3f}, {alt['free_gpus']} GPUs free"
        )
    return out


def backfill_note(any_reservation: bool, over: tuple[str, ...], end: float, now: float):
    if not any_reservation:
        return ("backfilled past a blocked job that has no reservation",)
    if not over:
        return (f"backfilled: ends by {fmt_time(end, now)}, before every reservation starts",)
    return (
        "backfilled: still running when the reservation(s) of "
        + ", ".join(over)
        + " start, so it uses only GPUs they leave spare",
    )


def reservation_lines(record, n, k_max, why, now):
    return (
        f"does not fit now; reservation {n} of {k_max}: starts "
        f"{fmt_time(record.start_time, now)} on "
        f"{describe_nodes(record.nodes, record.node_gpus)}",
        f"reserved nodes: {why}",
    )


def backfill_summary(backfills, first, start, now):
    ahead = [
        f"{jid} (ends {fmt_time(end, now)}, "
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
