"""The frozen :class:`kant_slurm.model.ClusterSnapshot` assembled from parsed nodes,
partitions, switch tree, jobs and reservations. Pure: no command is run here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..errors import SlurmError
from ..model import ClusterSnapshot, Inventory, Job, Partition, Reservation, Topology
from .slurm_nodes import NodeRecord, reserved_flag
from .slurm_values import RESERVED_FLAGS, schedulable_state, state_words

log = logging.getLogger(__name__)


def admit_jobs(
    jobs: Iterable[Job], partitions: Sequence[Partition], nodes: Sequence[NodeRecord]
) -> list[Job]:
    """What the partitions and nodes say about each pending job, set on it (pure):

    - ``closed_partitions``: of its partitions (none named: the default one), those that will
      not start it: not up, or a MaxTime below its time limit (Slurm leaves it pending there
      with PartitionDown / PartitionTimeLimit and may start it in its other partitions). No
      time limit: Slurm gives it the partition's default, within MaxTime.
    - ``--exclusive``: Slurm allocates every GPU of each node to the job (a ``gpu:1``
      exclusive job holds ``gres/gpu=8``, checked on 22.05), so it asks for as many GPUs per
      node as the largest node of its partitions (and GPU type) has: it then fits only on
      nodes with every GPU free, and nothing joins it there.
    """
    by_name = {p.name: p for p in partitions}
    default = next((p.name for p in partitions if p.default), None)
    out = []
    for job in jobs:
        if not job.is_pending:
            out.append(job)
            continue
        names = job.partitions or ((default,) if default else ())
        closed = tuple(p for p in names if p in by_name and not _admits(by_name[p], job))
        changes: dict = {}
        if closed != job.closed_partitions:
            changes["closed_partitions"] = closed
        if job.exclusive:
            members = {
                x for p in names if p in by_name and p not in closed for x in by_name[p].nodes
            }
            whole = max(
                (
                    n.gpus_total
                    for n in nodes
                    if n.name in members and (job.gpu_type is None or n.gpu_type == job.gpu_type)
                ),
                default=0,
            )
            if whole > job.gpus_per_node:
                changes["gpus_per_node"] = whole
        out.append(replace(job, **changes) if changes else job)
    return out


def _admits(part: Partition, job: Job) -> bool:
    if not part.up:
        return False
    return part.max_time is None or job.time_limit is None or job.time_limit <= part.max_time


def build_snapshot(
    nodes: Sequence[NodeRecord],
    partitions: Sequence[Partition],
    topology: Topology,
    jobs: Iterable[Job],
    taken_at: float = 0.0,
    source: str = "slurm-cli",
    classify: Callable[[Job], Job] | None = None,
    reservations: Sequence[Reservation] = (),
) -> ClusterSnapshot:
    """Assemble the frozen snapshot; jobs on unknown nodes are an error naming them. Pending
    jobs that Slurm will not start (``Job.slurm_blocked``) go to ``held``, not ``jobs``.

    A node flagged MAINT or RESERVED (unschedulable as a state) is schedulable again when a
    reservation open at ``taken_at`` covers it and nothing else keeps it out: the reservation
    then says which jobs may use it (:func:`kant_slurm.engine.pools.room_mask`).
    """
    names = [n.name for n in nodes]
    known = set(names)
    reservations = tuple(
        replace(r, nodes=tuple(x for x in r.nodes if x in known)) for r in reservations
    )
    covered = {x for r in reservations if r.active(taken_at) for x in r.nodes}
    schedulable = []
    for n in nodes:
        ok = n.schedulable
        if not ok and reserved_flag(n.state):
            if n.name in covered:
                words = [w for w in state_words(n.state) if not w.startswith(RESERVED_FLAGS)]
                ok = schedulable_state(words)
            else:
                log.info(
                    "node %s is %s but in no open reservation read: kept out of planning",
                    n.name,
                    n.state,
                )
        schedulable.append(ok)
    parts = [replace(p, nodes=tuple(x for x in p.nodes if x in known)) for p in partitions]
    inventory = Inventory.build(
        names=names,
        gpus_total=[n.gpus_total for n in nodes],
        cpus_total=[n.cpus_total for n in nodes],
        memory_mb=[n.memory_mb for n in nodes],
        gpu_type=[n.gpu_type for n in nodes],
        features=[n.features for n in nodes],
        partitions=parts,
        topology=topology,
        config_weight=[n.weight for n in nodes],
    )
    job_list = admit_jobs(jobs, parts, nodes)
    for job in job_list:
        unknown = [n for n in job.nodes if n not in known]
        if unknown:
            raise SlurmError(f"job {job.job_id} runs on nodes Slurm did not list: {unknown[:3]}")
    if classify is not None:
        job_list = [classify(j) for j in job_list]
    held = tuple(j for j in job_list if j.is_pending and j.slurm_blocked)
    if held:
        job_list = [j for j in job_list if not (j.is_pending and j.slurm_blocked)]
    return ClusterSnapshot(
        inventory=inventory,
        gpus_alloc=np.array([min(n.gpus_alloc, n.gpus_total) for n in nodes], dtype=np.int32),
        cpus_alloc=np.array([n.cpus_alloc for n in nodes], dtype=np.int32),
        memory_alloc_mb=np.array([n.memory_alloc_mb for n in nodes], dtype=np.int64),
        schedulable=np.array(schedulable, dtype=bool),
        weight=np.array([n.weight for n in nodes], dtype=np.int64),
        node_state=tuple(n.state for n in nodes),
        jobs=tuple(job_list),
        taken_at=taken_at,
        source=source,
        held=held,
        reservations=reservations,
    )
