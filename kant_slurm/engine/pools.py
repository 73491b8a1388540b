"""Which nodes a job may use: its pool (partition and GPU type), per-cycle node usage.

Pool masks are cached per inventory, since the inventory does not change between cycles and a
cluster has few distinct (partitions, GPU type) pairs.
"""

from __future__ import annotations

import weakref

import numpy as np

from .. import hostlist
from ..errors import ConfigError
from ..model import ClusterSnapshot, Inventory, Job

_POOL_CACHE: "weakref.WeakKeyDictionary[Inventory, dict]" = weakref.WeakKeyDictionary()


def _cache(inv: Inventory) -> dict:
    try:
        return _POOL_CACHE[inv]
    except KeyError:
        d: dict = {}
        _POOL_CACHE[inv] = d
        return d


def pool_key(job: Job) -> tuple:
    """The part of a job that decides its pool (jobs with the same key see the same nodes)."""
    return (job.partitions, job.gpu_type, job.required_nodes, job.excluded_nodes)


def pool_mask(inv: Inventory, job: Job) -> np.ndarray:
    """Read-only boolean node mask of the job's pool: its partitions (or the default one), its
    GPU type if it asks for one, its required nodes (if any) minus its excluded nodes."""
    key = ("pool",) + pool_key(job)
    cache = _cache(inv)
    mask = cache.get(key)
    if mask is not None:
        return mask
    n = len(inv)
    parts = job.partitions or ((inv.default_partition,) if inv.default_partition else ())
    if parts:
        mask = np.zeros(n, dtype=bool)
        for p in parts:
            pm = inv.partition_mask.get(p)
            if pm is not None:
                mask |= pm
    else:  # an inventory without partitions: every node
        mask = np.ones(n, dtype=bool)
    if job.gpu_type:
        mask &= type_mask(inv, job.gpu_type)
    if job.required_nodes:
        req = np.zeros(n, dtype=bool)
        idx = [inv.index[x] for x in job.required_nodes if x in inv.index]
        req[idx] = True
        mask &= req
    if job.excluded_nodes:
        idx = [inv.index[x] for x in job.excluded_nodes if x in inv.index]
        mask[idx] = False
    mask.setflags(write=False)
    cache[key] = mask
    return mask


def type_mask(inv: Inventory, gpu_type: str) -> np.ndarray:
    key = ("type", gpu_type)
    cache = _cache(inv)
    if key not in cache:
        m = np.fromiter((t == gpu_type for t in inv.gpu_type), dtype=bool, count=len(inv))
        m.setflags(write=False)
        cache[key] = m
    return cache[key]


def zone_mask(inv: Inventory, nodes: str, partition: str) -> np.ndarray:
    """The inference zone as a node mask (empty config = no node)."""
    key = ("zone", nodes, partition)
    cache = _cache(inv)
    if key in cache:
        return cache[key]
    mask = np.zeros(len(inv), dtype=bool)
    if nodes:
        names = hostlist.expand(nodes)
        unknown = [x for x in names if x not in inv.index]
        if unknown and len(unknown) == len(names):
            raise ConfigError(
                f"inference_zone.nodes = {nodes!r}: none of these nodes is in the cluster "
                f"(first: {unknown[0]!r})")
        mask[[inv.index[x] for x in names if x in inv.index]] = True
    if partition:
        pm = inv.partition_mask.get(partition)
        if pm is None:
            raise ConfigError(
                f"inference_zone.partition = {partition!r}: no such partition; known: "
                f"{', '.join(p.name for p in inv.partitions) or '(none)'}")
        mask |= pm
    mask.setflags(write=False)
    cache[key] = mask
    return mask


def free_cpus(snapshot: ClusterSnapshot) -> np.ndarray:
    """Free CPUs per node, as a fresh writable array (0 where not schedulable)."""
    inv = snapshot.inventory
    return np.where(snapshot.schedulable, inv.cpus_total - snapshot.cpus_alloc, 0).astype(np.int64)


def scratch_free_gpus(snapshot: ClusterSnapshot) -> np.ndarray:
    """Free GPUs per node, as a fresh writable int64 array (the cycle's scratch copy)."""
    return np.array(snapshot.free_gpus, dtype=np.int64)


def running_replicas(snapshot: ClusterSnapshot, service: str) -> np.ndarray:
    """Replicas of ``service`` per node among the snapshot's running jobs (a new array, for
    E-Spread's per-node caps; callers add the starts they plan)."""
    inv = snapshot.inventory
    arr = np.zeros(len(inv), dtype=np.int64)
    index = inv.index
    for j in snapshot.running:
        if j.service == service:
            for n in j.nodes:
                if n in index:
                    arr[index[n]] += 1
    return arr
