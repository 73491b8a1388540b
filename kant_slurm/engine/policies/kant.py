"""The ``kant`` policy: Kant's scheduler (arXiv 2510.01256, shared/DESIGN.md).

- **Order:** class tier (``classes.order``), quota tier (within quota, borrowing, over the
  borrowing limit), then age.
- **Backfill:** EASY with ``backfill.reservations`` = K reservations on runtime estimates (user
  tag, history, time limit; never above the limit), GPU-granular.
- **Placement:** E-Binpack, and E-Spread for inference jobs in the inference zone; other jobs
  stay out of the zone.
- **For the actuator:** node preference tiers (``Plan.node_tiers``), which the daemon turns
  into node Weights.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ...model import ClusterSnapshot, Job
from .. import scoring
from ..pools import pool_key, pool_mask, zone_mask
from ..registry import register
from ..select import binpack, spread
from .base import QueuePolicy


@register("kant")
class KantPolicy(QueuePolicy):
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
            from ..preempt import kant_preemptions

            plan = kant_preemptions(snapshot, now, plan, self.config, self._zone(snapshot))
        return plan

    def pools_by_shape(self) -> bool:
        # The elastic zone lends nodes by the job's runtime estimate and the cycle's state.
        return not self.config.inference_zone.elastic

    def pool_of(self, snapshot, ctx):
        if self.config.inference_zone.elastic:  # borrow / lend nodes (engine/zone.py)
            from ..zone import elastic_pool_of

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
