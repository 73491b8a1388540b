"""Starts-only plans from the compiled walk (:mod:`kant_slurm.engine.fastwalk`).

The simulator's plans read only the starts. When every queued job is of a kind the compiled walk
handles, :func:`compiled_plan` turns the cycle into arrays (one row per job shape), runs the
walk, and builds the plan from its output; reasons are then not worked out.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ...model import ClusterSnapshot, Job
from .. import fastwalk
from ..cycle import Cycle, Selector, describe_nodes
from ..plan import Placement, Plan, Reservation
from ..pools import has_room_rules, job_has_room_rules
from ..select import (
    LIGHTEST_NODE_WHY,
    binpack,
    level_name,
    slurm_cons_tres,
    slurm_lightest_node,
)
from .explain import LazyOrder

if TYPE_CHECKING:  # the policies' base class, which takes this one in
    from .base import QueuePolicy


def _compiled_inputs(policy: QueuePolicy, cycle: Cycle, ctx: dict, jobs, shape_a: np.ndarray):
    """Per shape id: (nodes, GPUs per node, selector kind, usable-mask row) as arrays, and
    the masks; None when a queued shape is not one the compiled walk handles. Kept across
    cycles while the inventory and the schedulable nodes stay the same."""
    inv = cycle.inv
    token = (inv, cycle.schedulable.tobytes())
    if (
        policy._shape_token is None
        or policy._shape_token[0] is not inv
        or policy._shape_token[1] != token[1]
    ):
        policy._shape_token = token
        policy._shape_info = {"rows": {}, "masks": [], "mask_of": {}, "arrays": None}
    info = policy._shape_info
    assert info is not None  # set just above when it was not
    rows = info["rows"]
    present = np.flatnonzero(np.bincount(shape_a)).tolist() if shape_a.size else []
    new = [sid for sid in present if sid not in rows]
    if new:
        kinds: dict[Selector, int] = {
            binpack: (
                fastwalk.KIND_BINPACK_NODE
                if policy.config.placement.single_node == "node"
                else fastwalk.KIND_BINPACK
            ),
            slurm_cons_tres: fastwalk.KIND_SLURM,
            slurm_lightest_node: fastwalk.KIND_SLURM_LIGHTEST,
        }
        for sid in new:
            job = jobs[int(np.argmax(shape_a == sid))]
            kind = kinds.get(policy.selector(job, ctx))
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


def compiled_plan(
    policy: QueuePolicy, snapshot: ClusterSnapshot, now: float, ctx: dict, cycle: Cycle, got
) -> Plan | None:
    """A starts-only plan from the compiled walk, or None (then the Python walk runs)."""
    if not policy.pools_by_shape() or has_room_rules(snapshot):  # masks per job, not shape
        return None
    jobs, est_l, src_l, elig_a, shape_a, est_a = got
    inputs = _compiled_inputs(policy, cycle, ctx, jobs, shape_a)
    if inputs is None:
        return None
    nn_a, g_a, kind_a, mask_a, masks = inputs
    inv = cycle.inv
    levels = _levels_of(inv)
    run_rows, run_off, run_len, pool_idx, pool_g = cycle.running_table()
    window = policy.reservation_window()
    k_max = policy.reservations_k()
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
                policy.max_job_test(),
                policy.strict,
                policy.whole_node_reservations,
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
        policy=policy.name,
        now=now,
        order=LazyOrder(jobs, lambda rank: policy.factors_of(jobs[rank], now, ctx)),
        starts=tuple(starts),
        reservations=tuple(reservations),
        node_tiers=_LazyMapping(lambda: policy.node_tiers(cycle, ctx)),
        blocked=_CompiledReasons(jobs, placed),
        explain=_CompiledReasons(jobs, placed, lines=True),
        stats=stats,
    )


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
    if kind == fastwalk.KIND_SLURM_LIGHTEST:
        return LIGHTEST_NODE_WHY
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
