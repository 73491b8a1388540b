"""Occupancy over time, built vectorised from the job-record table (an event sweep in numpy).

Every quantity is a step function of time: a :class:`Timeline` holds the breakpoints and the
value on each interval. Per-node quantities (is the node partly used? its stranded free GPUs)
are swept per node first: events sorted by (node, time), a running sum per node gives each
node's allocation after each event, the per-node figure's change at that event is
``f(after) - f(before)``, and a second sort by time sums those changes over the cluster.
No Python loop runs per event, so a 100k-job, 10k-GPU history takes well under a second.

Definitions (shared/DESIGN.md, "Metrics"); only GPU nodes count; the simulator's nodes are
always schedulable, and a sacct window uses the inventory as it is now:

- GAR(t) = allocated GPUs / GPUs
- GFR(t) = partly allocated nodes / GPU nodes
- stranded share(t) = free GPUs on partly used nodes / free GPUs (0 when nothing is free)
- leaf stranded share(t) = free GPUs in partly used leaf groups / free GPUs
- SOR = integral of allocated GPUs / integral of min(GPUs, demand), demand(t) = GPUs of jobs
  submitted and not ended (running + pending)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import Inventory
from ..formats.records import explode_nodes, last_start


@dataclass(frozen=True)
class Timeline:
    """A step function: ``values[i]`` holds on ``[times[i], times[i + 1])``."""

    times: np.ndarray  # k + 1 increasing breakpoints
    values: np.ndarray  # k values

    @property
    def span(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0

    def integral(self) -> float:
        return float(np.sum(self.values * np.diff(self.times)))

    def mean(self) -> float:
        """Time-weighted mean (NaN over an empty window)."""
        span = self.span
        if span <= 0:
            return float("nan")
        return self.integral() / span

    def quantile(self, q: float) -> float:
        """Time-weighted quantile: the value the function is at or below for share ``q`` of the
        time (the median of samples taken at a fine, even interval)."""
        dt = np.diff(self.times)
        keep = dt > 0
        if not keep.any():
            return float("nan")
        vals, dt = self.values[keep], dt[keep]
        order = np.argsort(vals, kind="stable")
        cum = np.cumsum(dt[order])
        pos = int(np.searchsorted(cum, q * cum[-1], side="left"))
        return float(vals[order][min(pos, len(vals) - 1)])

    def at(self, ts) -> np.ndarray:
        """Values at the given times (the interval each falls in; the last value past the end)."""
        pos = np.searchsorted(self.times, np.asarray(ts, dtype=float), side="right") - 1
        return self.values[np.clip(pos, 0, len(self.values) - 1)]

    def binned(self, width: float) -> tuple[np.ndarray, np.ndarray]:
        """(bin starts, mean value per bin) over bins of ``width`` seconds: for plots."""
        if self.span <= 0:
            return np.array([]), np.array([])
        edges = np.arange(self.times[0], self.times[-1] + width, width)
        edges[-1] = min(edges[-1], self.times[-1])
        cum = np.concatenate([[0.0], np.cumsum(self.values * np.diff(self.times))])
        area = np.interp(edges, self.times, cum)
        widths = np.diff(edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.diff(area) / widths
        return edges[:-1], means

    def ratio(self, other: Timeline, empty: float = 0.0) -> Timeline:
        """This / other on the same breakpoints (``empty`` where other is 0)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where(
                other.values > 0, self.values / np.where(other.values > 0, other.values, 1), empty
            )
        return Timeline(self.times, vals)


def _value_on_grid(
    grid: np.ndarray, times: np.ndarray, deltas: np.ndarray, base: float
) -> np.ndarray:
    """The step function base + sum(deltas of events at or before t), at grid[:-1]."""
    if len(times) == 0:
        return np.full(len(grid) - 1, float(base))
    order = np.argsort(times, kind="stable")
    ct = times[order]
    cs = np.cumsum(deltas[order].astype(float))
    pos = np.searchsorted(ct, grid[:-1], side="right")
    out = np.full(len(grid) - 1, float(base))
    has = pos > 0
    out[has] += cs[pos[has] - 1]
    return out


def _group_sweep(
    group: np.ndarray,
    times: np.ndarray,
    deltas: np.ndarray,
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    total: np.ndarray,
) -> np.ndarray:
    """Per event, the change of ``f(alloc of its group, group total)`` caused by the event."""
    if len(times) == 0:
        return np.zeros(0)
    order = np.lexsort((times, group))
    g, d = group[order], deltas[order].astype(np.int64)
    cum = np.cumsum(d)
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    starts = np.maximum.accumulate(np.where(first, np.arange(len(g)), 0))
    before_start = cum[starts] - d[starts]  # running sum just before each group's first event
    after = cum - before_start
    before = after - d
    tot = total[g]
    change = f(after, tot) - f(before, tot)
    out = np.empty(len(times))
    out[order] = change
    return out


def _partial(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return ((a > 0) & (a < t)).astype(float)


def _stranded(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where((a > 0) & (a < t), t - a, 0).astype(float)


def _leaf_stranded(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(a > 0, t - a, 0).astype(float)


@dataclass(frozen=True)
class Occupancy:
    """The occupancy timelines of one window (and one pool, or the whole cluster)."""

    window: tuple[float, float]
    capacity: int  # GPUs
    gpu_nodes: int
    allocated: Timeline  # GPUs allocated
    partial_nodes: Timeline
    stranded_free: Timeline  # free GPUs on partly used nodes
    leaf_stranded_free: Timeline  # free GPUs in partly used leaf groups
    demand: Timeline  # GPUs of running + pending jobs

    @property
    def free(self) -> Timeline:
        return Timeline(self.allocated.times, self.capacity - self.allocated.values)

    @property
    def gar(self) -> Timeline:
        return Timeline(
            self.allocated.times,
            self.allocated.values / self.capacity
            if self.capacity
            else np.full(len(self.allocated.values), np.nan),
        )

    @property
    def gfr(self) -> Timeline:
        return Timeline(
            self.partial_nodes.times,
            self.partial_nodes.values / self.gpu_nodes
            if self.gpu_nodes
            else np.full(len(self.partial_nodes.values), np.nan),
        )

    @property
    def stranded_share(self) -> Timeline:
        return self.stranded_free.ratio(self.free)

    @property
    def leaf_stranded_share(self) -> Timeline:
        return self.leaf_stranded_free.ratio(self.free)

    @property
    def sor(self) -> float:
        """allocated GPU-time / min(capacity, demand) GPU-time (NaN without demand)."""
        cap = np.minimum(self.demand.values, self.capacity)
        denom = float(np.sum(cap * np.diff(self.demand.times)))
        return self.allocated.integral() / denom if denom > 0 else float("nan")


def _preempted_allocations(
    records: pd.DataFrame, index
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(start, end, node index, GPUs) per node of every preempted run, or None if none."""
    if "preempted_runs" not in records:
        return None
    runs = [run for runs in records["preempted_runs"] if runs for run in runs]
    if not runs:
        return None
    s, e, idx, g = [], [], [], []
    for start, end, nodes, gpus in runs:
        for name, n in zip(nodes, gpus, strict=False):
            try:
                idx.append(index[name])
            except KeyError:
                raise InputError(f"job records: node {name!r} is not in the inventory") from None
            s.append(start)
            e.append(end)
            g.append(n)
    return (
        np.asarray(s, dtype=float),
        np.asarray(e, dtype=float),
        np.asarray(idx, dtype=np.int64),
        np.asarray(g, dtype=np.int64),
    )


def default_window(records: pd.DataFrame) -> tuple[float, float]:
    """First submit to the last known event (end, start or submit)."""
    if records.empty:
        return (0.0, 0.0)
    t0 = float(records["submit_time"].min())
    t1 = float(
        np.nanmax(
            np.concatenate(
                [
                    records["end_time"].to_numpy(),
                    last_start(records).to_numpy(),
                    records["submit_time"].to_numpy(),
                ]
            )
        )
    )
    return (t0, t1)


def scheduling_window(records: pd.DataFrame) -> tuple[float, float]:
    """First submit to the last start: the span in which a scheduler had choices to make.

    After the last job starts nothing a policy does changes occupancy; including the drain tail
    (a 50-day job of a 3-day trace) would compare policies mostly on the tail.
    """
    if records.empty:
        return (0.0, 0.0)
    t0 = float(records["submit_time"].min())
    starts = last_start(records).to_numpy(dtype=float)  # a requeued job's restart counts
    t1 = float(np.nanmax(starts)) if not np.isnan(starts).all() else t0
    return (t0, max(t1, float(records["submit_time"].max())))


def occupancy(
    records: pd.DataFrame,
    inventory: Inventory,
    window: tuple[float, float] | None = None,
    pool: str | None = None,
    nodes: np.ndarray | None = None,
) -> Occupancy:
    """Build the occupancy timelines of ``records`` on ``inventory`` over ``window``.

    Jobs still running at the window's end (NaN end) run to it; jobs that never started pend to
    it. Only nodes with GPUs count; ``pool`` restricts to one partition's nodes and jobs;
    ``nodes`` (a boolean mask over the inventory) to those nodes, e.g. inside or outside the
    inference zone (demand, hence SOR, still counts every job).
    """
    t0, t1 = window if window is not None else default_window(records)
    node_mask = inventory.gpus_total > 0
    if nodes is not None:
        node_mask = node_mask & np.asarray(nodes, dtype=bool)
    if pool is not None:
        node_mask = node_mask & inventory.partition_mask[pool]
        records = records[records["partition"] == pool]
    gtot = inventory.gpus_total.astype(np.int64)
    capacity = int(gtot[node_mask].sum())
    n_nodes = int(node_mask.sum())

    # A preempted job's last run is on ``nodes`` from its last start; its earlier runs come
    # from ``preempted_runs``.
    start = last_start(records).to_numpy(dtype=float)
    end = records["end_time"].to_numpy(dtype=float)
    submit = records["submit_time"].to_numpy(dtype=float)
    end_or_t1 = np.where(np.isnan(end), t1, end)

    rows, idx, g = explode_nodes(records, inventory.index)
    keep = node_mask[idx] & ~np.isnan(start[rows])
    rows, idx, g = rows[keep], idx[keep], g[keep]
    s, e = start[rows], end_or_t1[rows]
    extra = _preempted_allocations(records, inventory.index)
    if extra is not None:
        xs, xe, xidx, xg = extra
        keep = node_mask[xidx]
        s = np.concatenate([s, xs[keep]])
        e = np.concatenate([e, xe[keep]])
        idx = np.concatenate([idx, xidx[keep]])
        g = np.concatenate([g, xg[keep]])
        rows = np.concatenate([rows, np.full(int(keep.sum()), -1)])
    live = e > s  # zero-length allocations change nothing
    rows, idx, g, s, e = rows[live], idx[live], g[live], s[live], e[live]
    # Node events: +g at start, -g at end (clipped into the window).
    ev_node = np.concatenate([idx, idx])
    ev_time = np.clip(np.concatenate([s, e]), t0, t1)
    ev_delta = np.concatenate([g, -g])

    grid = np.unique(
        np.concatenate([[t0, t1], ev_time, np.clip(submit, t0, t1), np.clip(end_or_t1, t0, t1)])
    )
    grid = grid[(grid >= t0) & (grid <= t1)]
    if len(grid) < 2:
        grid = np.array([t0, t1 if t1 > t0 else t0 + 1.0])

    allocated = _value_on_grid(grid, ev_time, ev_delta, 0)
    partial = _value_on_grid(
        grid, ev_time, _group_sweep(ev_node, ev_time, ev_delta, _partial, gtot), 0
    )
    stranded = _value_on_grid(
        grid, ev_time, _group_sweep(ev_node, ev_time, ev_delta, _stranded, gtot), 0
    )
    leaf = inventory.leaf_index
    if (leaf >= 0).any():
        in_leaf = leaf[ev_node] >= 0
        leaf_tot = np.bincount(
            leaf[node_mask & (leaf >= 0)],
            weights=gtot[node_mask & (leaf >= 0)],
            minlength=int(leaf.max()) + 1,
        ).astype(np.int64)
        leaf_str = _value_on_grid(
            grid,
            ev_time[in_leaf],
            _group_sweep(
                leaf[ev_node[in_leaf]].astype(np.int64),
                ev_time[in_leaf],
                ev_delta[in_leaf],
                _leaf_stranded,
                leaf_tot,
            ),
            0,
        )
    else:
        leaf_str = np.zeros(len(grid) - 1)
    # Demand: a job asks for its GPUs from submit until it ends (or the window closes).
    dg = records["gpus"].to_numpy(dtype=float)
    d_time = np.clip(np.concatenate([submit, end_or_t1]), t0, t1)
    demand = _value_on_grid(grid, d_time, np.concatenate([dg, -dg]), 0)
    return Occupancy(
        window=(t0, t1),
        capacity=capacity,
        gpu_nodes=n_nodes,
        allocated=Timeline(grid, allocated),
        partial_nodes=Timeline(grid, partial),
        stranded_free=Timeline(grid, stranded),
        leaf_stranded_free=Timeline(grid, leaf_str),
        demand=Timeline(grid, demand),
    )


def utilization_over_time(occ: Occupancy, bin_s: float = 3600.0) -> pd.DataFrame:
    """Per bin of ``bin_s`` seconds: mean GAR, GFR, stranded share and demand (GPUs).

    Utilization over time for plots and CSV: columns ``time`` (bin start), ``gar``, ``gfr``,
    ``stranded_share``, ``leaf_stranded_share``, ``demand_gpus``.
    """
    starts, gar = occ.gar.binned(bin_s)
    _, gfr = occ.gfr.binned(bin_s)
    _, stranded = occ.stranded_share.binned(bin_s)
    _, leaf = occ.leaf_stranded_share.binned(bin_s)
    _, demand = occ.demand.binned(bin_s)
    return pd.DataFrame(
        {
            "time": starts,
            "gar": gar,
            "gfr": gfr,
            "stranded_share": stranded,
            "leaf_stranded_share": leaf,
            "demand_gpus": demand,
        }
    )
