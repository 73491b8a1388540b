"""The elastic inference zone (issue 8, ``inference_zone.elastic: true``).

The configured zone (``inference_zone.nodes`` / ``partition``) is where E-Spread places
inference replicas and where training does not go. Elastic, it grows and shrinks per cycle,
from the snapshot alone (the engine keeps no state between cycles):

*Borrowed nodes.* A node outside the zone that runs an inference job is borrowed: it counts as
zone (inference packs onto it, training keeps off) until its inference jobs end, and then it is
general again (returned by itself). When the GPUs asked by the pending, eligible inference jobs
exceed what is free in the zone (borrowed nodes included), more general nodes are borrowed,
until the free GPUs cover the shortfall or the zone holds ``max_borrow_nodes`` borrowed nodes
(0 = no bound). Only nodes of the inference jobs' pools with room for at least the smallest
per-node ask among them are borrowed, ranked by

1. nearness to the zone: the zone's own leaf groups, then leaf groups under the same parent
   switch as a zone leaf, then any other,
2. leaf groups kept whole: a leaf group that is entirely idle (what a large gang waits for) only
   after the partly used ones,
3. the least-used leaf group (fewest allocated GPUs) first, then the least-used node (idle or
   nearly idle first), then node order.

*Lent nodes.* While no inference job is pending (eligible) for the zone, its wholly idle
nodes are lent: a non-inference job whose runtime estimate is at most
``inference_zone.lend_horizon`` seconds may use them (E-Binpack still prefers the fuller general
leaves). The horizon is the documented simplification of "ends before the zone needs the node
back": inference arrivals are not forecast; a lent job is expected back within the horizon, and
when an inference job waits, lending stops at once and a lent job that is preemptible can be
preempted for it (the preemption search ranks zone nodes first).

Pure: a snapshot and the config in, masks out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..model import ClusterSnapshot, Job
from .pools import pool_key, pool_mask


@dataclass(frozen=True)
class ZoneView:
    """The zone for one cycle."""

    zone: np.ndarray  # configured zone plus borrowed nodes
    borrowed: np.ndarray  # general nodes counted as zone this cycle (already used + new)
    newly_borrowed: np.ndarray  # of those, borrowed this cycle for the shortfall
    lendable: np.ndarray  # idle zone nodes short jobs may use this cycle
    demand: int  # GPUs asked by pending eligible inference jobs
    shortfall: int  # demand beyond the zone's free GPUs before borrowing


def zone_view(
    snapshot: ClusterSnapshot,
    base: np.ndarray,
    now: float,
    max_borrow: int = 0,
    lend_horizon: float = 0.0,
) -> ZoneView:
    """Borrowed and lendable nodes for this cycle (module docstring)."""
    inv = snapshot.inventory
    n = len(inv)
    total = np.asarray(inv.gpus_total, dtype=np.int64)
    sched = np.asarray(snapshot.schedulable, dtype=bool)
    free = np.asarray(snapshot.free_gpus, dtype=np.int64)
    used = np.where(sched, np.asarray(snapshot.gpus_alloc, dtype=np.int64), total)  # down: all
    index = inv.index
    borrowed = np.zeros(n, dtype=bool)
    for j in snapshot.running:
        if j.job_class == "inference":
            for name in j.nodes:
                i = index.get(name)
                if i is not None and not base[i]:
                    borrowed[i] = True
    demand = 0
    pools = np.zeros(n, dtype=bool)
    per_node = 0  # the smallest per-node ask among them
    for j in snapshot.pending:
        if j.job_class != "inference":
            continue
        if j.eligible_time is not None and j.eligible_time > now:
            continue
        pm = pool_mask(inv, j)
        if not (pm & base).any():
            continue  # its pool has no zone node: the zone does not serve it
        demand += j.gpus
        pools |= pm
        per_node = j.gpus_per_node if per_node == 0 else min(per_node, j.gpus_per_node)
    zone = base | borrowed
    zone_free = int(np.where(zone & sched, free, 0).sum())
    shortfall = max(0, demand - zone_free)
    new = np.zeros(n, dtype=bool)
    if shortfall > 0:
        room = max_borrow - int(borrowed.sum()) if max_borrow > 0 else n
        cand = np.flatnonzero(pools & sched & ~zone & (free >= max(per_node, 1)))
        if room > 0 and cand.size:
            order = _borrow_order(inv, cand, base, used, total)
            got = 0
            for i in order[:room].tolist():
                if got >= shortfall:
                    break
                new[i] = True
                got += int(free[i])
    lendable = np.zeros(n, dtype=bool)
    if lend_horizon > 0 and demand == 0:
        lendable = base & sched & (free == total) & ~borrowed
    borrowed = borrowed | new
    return ZoneView(
        zone=base | borrowed,
        borrowed=borrowed,
        newly_borrowed=new,
        lendable=lendable,
        demand=demand,
        shortfall=shortfall,
    )


def _borrow_order(
    inv, cand: np.ndarray, base: np.ndarray, used: np.ndarray, total: np.ndarray
) -> np.ndarray:
    """Candidate nodes in borrowing order (module docstring, rules 1-3)."""
    leaf = inv.leaf_index
    n_leaf = len(inv.leaf_names)
    if n_leaf == 0:
        return cand[np.lexsort((cand, used[cand]))]
    lf = np.where(leaf >= 0, leaf, n_leaf)  # nodes under no switch: one extra group
    leaf_used = np.bincount(lf, weights=used, minlength=n_leaf + 1)
    zone_leaf = np.zeros(n_leaf + 1, dtype=bool)
    zone_leaf[lf[base]] = True
    zone_leaf[n_leaf] = False
    # Leaf groups under the same parent switch as a zone leaf.
    near = zone_leaf.copy()
    sw = inv.topology.switches
    names = inv.leaf_names
    parents = {sw[names[k]].parent for k in np.flatnonzero(zone_leaf[:n_leaf]).tolist()}
    parents.discard(None)
    for k, name in enumerate(names):
        if sw[name].parent in parents:
            near[k] = True
    tier = np.where(zone_leaf[lf], 0, np.where(near[lf], 1, 2))
    whole_idle = np.bincount(lf, weights=(used > 0).astype(float), minlength=n_leaf + 1) == 0
    c = cand
    return c[np.lexsort((c, used[c], leaf_used[lf[c]], whole_idle[lf[c]], tier[c]))]


def elastic_pool_of(
    policy, snapshot: ClusterSnapshot, ctx: dict
) -> Callable[[Job], np.ndarray] | None:
    """``KantPolicy.pool_of`` with the elastic zone: sets ``ctx['zone']`` (configured plus
    borrowed nodes), ``ctx['in_zone']`` and ``ctx['zone_view']``."""
    z = policy.config.inference_zone
    base = policy._zone(snapshot)
    inv = snapshot.inventory
    if not base.any():
        ctx["zone"] = base
        ctx["in_zone"] = lambda job: False
        return None
    view = zone_view(snapshot, base, ctx["now"], z.max_borrow_nodes, z.lend_horizon)
    zone = view.zone
    ctx["zone"] = zone
    ctx["zone_view"] = view
    closed = zone & ~view.lendable  # what a job that may borrow a lent node still cannot use
    lending = bool(view.lendable.any())
    horizon = z.lend_horizon
    cache: dict = {}

    def in_zone(job: Job) -> bool:
        return job.job_class == "inference" and bool((pool_mask(inv, job) & zone).any())

    def pool_of(job: Job) -> np.ndarray:
        inference = job.job_class == "inference"
        # A lent node goes to a job expected back within the horizon (the same estimate the
        # cycle uses, so a shorter job never sees fewer nodes than a longer one).
        lent = lending and not inference and policy.estimate(job)[0] <= horizon
        key = (pool_key(job), inference, lent)
        m = cache.get(key)
        if m is None:
            b = pool_mask(inv, job)
            if inference:
                m = b & zone if (b & zone).any() else b
            else:
                rest = b & ~(closed if lent else zone)
                m = rest if rest.any() else b
            cache[key] = m
        return m

    ctx["in_zone"] = in_zone
    return pool_of
