"""The frozen cluster snapshot that every policy sees (shared/DESIGN.md, "Cluster model").

Two layers, so that the simulator can make a snapshot per scheduling cycle cheaply:

- :class:`Inventory` is what does not change from cycle to cycle: node names, partitions, GPU
  types, capacities, features and the switch tree. It is built once and shared by snapshots.
- :class:`ClusterSnapshot` adds what changes: per-node allocation, state and weight (read-only
  numpy arrays, indexed like ``inventory.names``) and the running and pending jobs.

Nothing here talks to Slurm, reads files or looks at the clock.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np

from .errors import InputError

# The switch tree lives in topology.py; it stays importable from here because the model is the
# package's vocabulary: engine/*, the parsers and the tests import Switch and Topology from it.
from .topology import Switch as Switch
from .topology import Topology as Topology

JOB_CLASSES = ("inference", "training", "batch")
"""Known job classes; ``batch`` is what a job is when nothing says otherwise."""

PENDING = "PENDING"
RUNNING = "RUNNING"


# --------------------------------------------------------------------------------------------
# Inventory (static) and nodes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    nodes: tuple[str, ...]
    default: bool = False
    max_time: float | None = None  # seconds; None = unlimited
    priority_tier: int = 1
    up: bool = True


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node, assembled from a snapshot for printing and tests (the engine uses arrays)."""

    name: str
    index: int
    state: str
    schedulable: bool
    gpu_type: str | None
    gpus_total: int
    gpus_alloc: int
    cpus_total: int
    cpus_alloc: int
    memory_mb: int
    memory_alloc_mb: int
    features: tuple[str, ...]
    partitions: tuple[str, ...]
    weight: int
    leaf_group: str | None
    groups: tuple[str, ...]  # leaf group first, then higher switches

    @property
    def free_gpus(self) -> int:
        return self.gpus_total - self.gpus_alloc if self.schedulable else 0


@dataclass(frozen=True, eq=False)
class Inventory:
    """The static part of a cluster: what each node is and how the switches connect them."""

    names: tuple[str, ...]
    gpus_total: np.ndarray  # int32 per node
    cpus_total: np.ndarray  # int32 per node
    memory_mb: np.ndarray  # int64 per node
    gpu_type: tuple[str | None, ...]
    features: tuple[tuple[str, ...], ...]
    partitions: tuple[Partition, ...]
    topology: Topology = field(default_factory=Topology.empty)
    config_weight: np.ndarray | None = None  # slurm.conf Weight per node (what `reset` restores)

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(set(self.names)) != n:
            raise InputError("inventory: duplicate node names")
        for label in ("gpus_total", "cpus_total", "memory_mb"):
            arr = getattr(self, label)
            if len(arr) != n:
                raise InputError(f"inventory: {label} has {len(arr)} entries for {n} nodes")
            arr.setflags(write=False)
        weight = self.config_weight
        if weight is None:
            weight = np.ones(n, dtype=np.int64)
            object.__setattr__(self, "config_weight", weight)
        weight.setflags(write=False)
        known = set(self.names)
        for p in self.partitions:
            missing = [x for x in p.nodes if x not in known]
            if missing:
                raise InputError(
                    f"inventory: partition {p.name!r} names unknown nodes {missing[:3]}"
                )

    @staticmethod
    def build(
        names: Sequence[str],
        gpus_total: Sequence[int],
        cpus_total: Sequence[int] | None = None,
        memory_mb: Sequence[int] | None = None,
        gpu_type: Sequence[str | None] | None = None,
        features: Sequence[Sequence[str]] | None = None,
        partitions: Sequence[Partition] = (),
        topology: Topology | None = None,
        config_weight: Sequence[int] | None = None,
    ) -> Inventory:
        """Convenience constructor from plain sequences (tests, simulator, readers)."""
        n = len(names)
        return Inventory(
            names=tuple(names),
            gpus_total=np.asarray(gpus_total, dtype=np.int32),
            cpus_total=np.asarray(
                cpus_total if cpus_total is not None else [0] * n, dtype=np.int32
            ),
            memory_mb=np.asarray(memory_mb if memory_mb is not None else [0] * n, dtype=np.int64),
            gpu_type=tuple(gpu_type) if gpu_type is not None else (None,) * n,
            features=tuple(tuple(f) for f in features) if features is not None else ((),) * n,
            partitions=tuple(partitions),
            topology=topology or Topology.empty(),
            config_weight=None if config_weight is None else np.asarray(config_weight, np.int64),
        )

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def index(self) -> Mapping[str, int]:
        """node name -> position in every per-node array."""
        return MappingProxyType({n: i for i, n in enumerate(self.names)})

    @cached_property
    def partition(self) -> Mapping[str, Partition]:
        return MappingProxyType({p.name: p for p in self.partitions})

    @cached_property
    def default_partition(self) -> str | None:
        for p in self.partitions:
            if p.default:
                return p.name
        return self.partitions[0].name if self.partitions else None

    @cached_property
    def node_partitions(self) -> tuple[tuple[str, ...], ...]:
        """Per node, the partitions it belongs to."""
        acc: list[list[str]] = [[] for _ in self.names]
        for p in self.partitions:
            for node in p.nodes:
                acc[self.index[node]].append(p.name)
        return tuple(tuple(a) for a in acc)

    @cached_property
    def partition_mask(self) -> Mapping[str, np.ndarray]:
        """partition name -> boolean node mask."""
        out = {}
        for p in self.partitions:
            mask = np.zeros(len(self.names), dtype=bool)
            mask[[self.index[x] for x in p.nodes]] = True
            mask.setflags(write=False)
            out[p.name] = mask
        return MappingProxyType(out)

    @cached_property
    def group_levels(self) -> tuple[tuple[tuple[str, ...], np.ndarray], ...]:
        """Per topology level (0 = leaf), the group names and each node's group index (-1 = none).

        Levels are Slurm's switch levels. At level L a node's group is the highest switch above it
        whose level is at most L, so a leaf hanging straight under a level-2 root stays its own
        group at level 1 and every level covers every grouped node.
        """
        levels = []
        switches = self.topology.switches
        chains = [self.topology.chain(n) for n in self.names]
        for lv in range(self.topology.max_level + 1):
            names: dict[str, int] = {}
            idx = np.full(len(self.names), -1, dtype=np.int32)
            for i, chain in enumerate(chains):
                # The highest switch of the chain whose level is at most lv (chains go upwards).
                sw = None
                for candidate in chain:
                    if switches[candidate].level > lv:
                        break
                    sw = candidate
                if sw is not None:
                    idx[i] = names.setdefault(sw, len(names))
            idx.setflags(write=False)
            levels.append((tuple(names), idx))
        return tuple(levels)

    @cached_property
    def leaf_index(self) -> np.ndarray:
        """Each node's leaf-group index into ``group_levels[0][0]`` (-1 = under no switch)."""
        if not self.group_levels:
            arr = np.full(len(self.names), -1, dtype=np.int32)
            arr.setflags(write=False)
            return arr
        return self.group_levels[0][1]

    @cached_property
    def leaf_names(self) -> tuple[str, ...]:
        return self.group_levels[0][0] if self.group_levels else ()

    def nodes_in(self, names: Iterable[str]) -> np.ndarray:
        """Indices of the named nodes (raises InputError naming an unknown one)."""
        out = []
        for n in names:
            try:
                out.append(self.index[n])
            except KeyError:
                raise InputError(f"unknown node {n!r}") from None
        return np.asarray(out, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """A running or pending job, as much of it as scheduling needs.

    Times are seconds (epoch for a live cluster, trace seconds in the simulator); ``None`` means
    unknown or unlimited. A pending job asks for ``num_nodes`` x ``gpus_per_node`` GPUs; a running
    one holds ``node_gpus[i]`` GPUs on ``nodes[i]``.
    """

    job_id: str
    state: str  # PENDING or RUNNING
    num_nodes: int
    gpus_per_node: int
    submit_time: float
    name: str = ""
    user: str = ""
    account: str = ""
    partitions: tuple[str, ...] = ()  # empty = the default partition
    qos: str = ""
    job_class: str = "batch"
    # where job_class came from: tag, qos, partition, trace, rule, default
    class_source: str = "default"
    gpu_type: str | None = None  # a GRES type constraint, e.g. "h100"
    cpus_per_node: int = 0
    mem_per_node_mb: int = 0
    time_limit: float | None = None
    est_runtime: float | None = None  # the user's estimate from the kant tag
    start_time: float | None = None
    eligible_time: float | None = None
    nodes: tuple[str, ...] = ()
    node_gpus: tuple[int, ...] = ()
    node_cpus: tuple[int, ...] = ()
    priority: int = 0  # the priority Slurm orders by now (squeue)
    site_factor: int = 0
    # The priority the job's own factors give (sprio, with SiteFactor); None when not read.
    # Slurm's backfill can put back the value ``priority`` had when its cycle began, after a
    # SiteFactor update made during the cycle: the two then differ (see slurm.diff.diff).
    factor_priority: int | None = None
    nice: int = 0
    required_nodes: tuple[str, ...] = ()
    excluded_nodes: tuple[str, ...] = ()
    comment: str = ""
    admin_comment: str = ""
    service: str | None = None  # inference service (replicas of one service spread out)
    max_per_node: int | None = None  # cap on this service's replicas per node
    exclusive: bool = False
    preemptible: bool = False
    features: str | None = None  # the job's --constraint expression, kept verbatim
    reservation: str | None = None  # the advance reservation it runs in (--reservation)
    # Of its partitions, those that will not start it (down, or MaxTime below its time limit);
    # set by the reader of a live cluster.
    closed_partitions: tuple[str, ...] = ()
    # Per node of ``nodes``, the GPU indices Slurm gave (running jobs read from Slurm; else empty).
    node_gpu_indices: tuple[tuple[int, ...], ...] = ()
    # Inference start-time SLA: the longest this job may wait to start, seconds (issue 8).
    sla: float | None = None
    # Seconds between this (training) job's checkpoints: work since the last one is lost if it is
    # preempted. None = unknown (the config default applies).
    checkpoint_interval: float | None = None
    # Why Slurm will not start this pending job now, in Slurm's words (``JobHeldUser``,
    # ``Dependency``, ``QOSGrpGRES``, ``JobArrayTaskLimit``, ...); None when only room and
    # priority stand in its way. kant plans, pins and lifts no job that has one (issue 16).
    slurm_blocked: str | None = None

    @property
    def gpus(self) -> int:
        """GPUs the job holds (running) or asks for (pending)."""
        if self.node_gpus:
            return int(sum(self.node_gpus))
        return self.num_nodes * self.gpus_per_node

    @property
    def is_pending(self) -> bool:
        return self.state == PENDING

    @property
    def is_running(self) -> bool:
        return self.state == RUNNING


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_JOB_VALUES = operator.attrgetter(*_JOB_FIELDS)
_JOB_POS = {name: i for i, name in enumerate(_JOB_FIELDS)}


def replace_job(job: Job, **changes) -> Job:
    """``dataclasses.replace(job, **changes)`` in a third of the time (the simulator makes a
    new Job at every start): every field is an ``__init__`` argument, in field order."""
    values = list(_JOB_VALUES(job))
    for name, value in changes.items():
        pos = _JOB_POS.get(name)
        if pos is None:
            raise TypeError(f"Job has no field {name!r}")
        values[pos] = value
    return Job(*values)


def size_bucket(gpus: int) -> str:
    """The GPU size bucket of shared/DESIGN.md: ``1``, ``2-8``, ``9-64``, ``65+`` (``0`` for
    CPU)."""
    if gpus <= 0:
        return "0"
    if gpus == 1:
        return "1"
    if gpus <= 8:
        return "2-8"
    if gpus <= 64:
        return "9-64"
    return "65+"


SIZE_BUCKETS = ("1", "2-8", "9-64", "65+")


# --------------------------------------------------------------------------------------------
# Advance reservations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reservation:
    """An advance reservation of Slurm (``scontrol show reservation``): from ``start_time`` to
    ``end_time`` (epoch seconds; None = no end) its nodes run only jobs that name it.

    Not to be confused with :class:`kant_slurm.engine.plan.Reservation`, the engine's planned
    start of a blocked job.
    """

    name: str
    start_time: float
    end_time: float | None
    nodes: tuple[str, ...]
    flags: tuple[str, ...] = ()  # MAINT, IGNORE_JOBS, ... as Slurm prints them

    def overlaps(self, start: float, end: float | None) -> bool:
        """Whether ``[start, end)`` (end None = no end) meets the reservation's window."""
        return (end is None or end > self.start_time) and (
            self.end_time is None or start < self.end_time
        )

    def active(self, now: float) -> bool:
        """Whether the window is open at ``now``."""
        return self.overlaps(now, now + 1e-9)


# --------------------------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------------------------


class PendingChanges:
    """An append-only log of pending-queue changes, kept by a producer of successive snapshots
    (the simulator): ``(+1, job)`` when a job joins the queue, ``(-1, job)`` when it leaves.

    A snapshot carries the log and how many of its events it includes, so a policy that keeps
    its queue order from the previous cycle applies the new events (a handful per cycle)
    instead of re-reading and re-sorting thousands of pending jobs. The snapshot's ``pending``
    stays the truth: a policy checks that its queue has as many jobs and rebuilds when not.
    """

    __slots__ = ("events", "base")

    def __init__(self) -> None:
        self.events: list[tuple[int, Job]] = []  # events base, base + 1, ...
        self.base = 0  # events dropped by trim()

    def __len__(self) -> int:
        """Events so far (dropped ones included): what a snapshot says it includes."""
        return self.base + len(self.events)

    def add(self, job: Job) -> None:
        self.events.append((1, job))

    def remove(self, job: Job) -> None:
        self.events.append((-1, job))

    def since(self, seen: int, upto: int) -> list[tuple[int, Job]] | None:
        """Events ``seen`` .. ``upto``; None when some were dropped (read the queue again)."""
        if seen < self.base:
            return None
        return self.events[seen - self.base : upto - self.base]

    def trim(self, upto: int | None = None) -> None:
        """Drop the events before ``upto`` (all when None): those read by every reader, so
        that finished jobs are not kept alive by the log (a reader that fell behind reads the
        whole queue again)."""
        drop = len(self.events) if upto is None else max(0, min(upto - self.base, len(self.events)))
        self.base += drop
        del self.events[:drop]


def _frozen(arr: np.ndarray, dtype) -> np.ndarray:
    out = np.array(arr, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ClusterSnapshot:
    """Everything a policy may look at, at one instant. Immutable.

    Per-node arrays are read-only and indexed like ``inventory.names``. ``taken_at`` is when it
    was read (the engine still takes ``now`` as its own input).
    """

    inventory: Inventory
    gpus_alloc: np.ndarray
    cpus_alloc: np.ndarray
    memory_alloc_mb: np.ndarray
    schedulable: np.ndarray  # bool: the node may take new work (not down, drained, ...)
    weight: np.ndarray  # current node Weight (what Slurm orders by)
    node_state: tuple[str, ...]
    jobs: tuple[Job, ...]
    taken_at: float = 0.0
    source: str = ""  # "slurm-cli", "simulator", "fixture", ...
    # (log, events included): how the pending queue changed since earlier snapshots, when the
    # producer keeps such a log (the simulator). A hint for policies that keep their queue
    # order across cycles; ``pending`` stays the truth. See :class:`PendingChanges`.
    pending_changes: tuple[PendingChanges, int] | None = None
    # Pending jobs that Slurm will not start now (``Job.slurm_blocked`` set: held, dependency,
    # limits, ...). They are kept apart from ``jobs`` so that no policy plans, reserves for or
    # orders them; ``queued`` is every pending job, for counts and for undoing kant's changes.
    held: tuple[Job, ...] = ()
    # Slurm's advance reservations (empty in the simulator): pools.room_mask keeps other jobs
    # off their nodes during their windows and reservation-bound jobs inside them.
    reservations: tuple[Reservation, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.inventory)
        for label in ("gpus_alloc", "cpus_alloc", "memory_alloc_mb", "schedulable", "weight"):
            arr = getattr(self, label)
            if len(arr) != n:
                raise InputError(f"snapshot: {label} has {len(arr)} entries for {n} nodes")
            if arr.flags.writeable:
                object.__setattr__(self, label, _frozen(arr, arr.dtype))
        if len(self.node_state) != n:
            raise InputError(
                f"snapshot: node_state has {len(self.node_state)} entries for {n} nodes"
            )
        over = np.nonzero(self.gpus_alloc > self.inventory.gpus_total)[0]
        if len(over):
            i = int(over[0])
            raise InputError(
                f"snapshot: node {self.inventory.names[i]} has {int(self.gpus_alloc[i])} GPUs "
                f"allocated of {int(self.inventory.gpus_total[i])}"
            )

    @staticmethod
    def idle(
        inventory: Inventory, jobs: Sequence[Job] = (), taken_at: float = 0.0, source: str = ""
    ) -> ClusterSnapshot:
        """A snapshot whose node usage is exactly what ``jobs``' running entries hold."""
        n = len(inventory)
        gpus = np.zeros(n, dtype=np.int32)
        cpus = np.zeros(n, dtype=np.int32)
        for job in jobs:
            if not job.is_running:
                continue
            idx = inventory.nodes_in(job.nodes)
            np.add.at(gpus, idx, np.asarray(job.node_gpus or (job.gpus_per_node,) * len(idx)))
            if job.node_cpus:
                np.add.at(cpus, idx, np.asarray(job.node_cpus))
        return ClusterSnapshot(
            inventory=inventory,
            gpus_alloc=gpus,
            cpus_alloc=cpus,
            memory_alloc_mb=np.zeros(n, dtype=np.int64),
            schedulable=np.ones(n, dtype=bool),
            weight=np.array(inventory.config_weight, dtype=np.int64),
            node_state=tuple("MIXED" if g else "IDLE" for g in gpus),
            jobs=tuple(jobs),
            taken_at=taken_at,
            source=source,
        )

    @cached_property
    def free_gpus(self) -> np.ndarray:
        """Free GPUs per node; 0 on nodes that are not schedulable."""
        free = np.where(self.schedulable, self.inventory.gpus_total - self.gpus_alloc, 0)
        free.setflags(write=False)
        return free

    @cached_property
    def pending(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.is_pending)

    @cached_property
    def running(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.is_running)

    @cached_property
    def queued(self) -> tuple[Job, ...]:
        """Every pending job: those the policies plan, then those Slurm holds back."""
        return self.pending + self.held

    @cached_property
    def job(self) -> Mapping[str, Job]:
        return MappingProxyType({j.job_id: j for j in self.jobs})

    def released(self, job_ids: Iterable[str] | None = None) -> ClusterSnapshot:
        """This snapshot as if the user/admin holds (``JobHeld*``) on ``job_ids`` (all when
        None) were released: a what-if for ``plan --release-held``, and how tests plan a job
        that Slurm keeps pending. kant's own cycles never plan a held job."""
        wanted = None if job_ids is None else set(job_ids)
        take = [
            j
            for j in self.held
            if (j.slurm_blocked or "").startswith("JobHeld")
            and (wanted is None or j.job_id in wanted)
        ]
        if not take:
            return self
        ids = {j.job_id for j in take}
        return dataclasses.replace(
            self,
            jobs=self.jobs + tuple(replace_job(j, slurm_blocked=None) for j in take),
            held=tuple(j for j in self.held if j.job_id not in ids),
        )

    def node(self, name_or_index: str | int) -> NodeView:
        inv = self.inventory
        i = inv.index[name_or_index] if isinstance(name_or_index, str) else int(name_or_index)
        name = inv.names[i]
        chain = inv.topology.chain(name)
        return NodeView(
            name=name,
            index=i,
            state=self.node_state[i],
            schedulable=bool(self.schedulable[i]),
            gpu_type=inv.gpu_type[i],
            gpus_total=int(inv.gpus_total[i]),
            gpus_alloc=int(self.gpus_alloc[i]),
            cpus_total=int(inv.cpus_total[i]),
            cpus_alloc=int(self.cpus_alloc[i]),
            memory_mb=int(inv.memory_mb[i]),
            memory_alloc_mb=int(self.memory_alloc_mb[i]),
            features=inv.features[i],
            partitions=inv.node_partitions[i],
            weight=int(self.weight[i]),
            leaf_group=chain[0] if chain else None,
            groups=chain,
        )

    def nodes(self) -> list[NodeView]:
        return [self.node(i) for i in range(len(self.inventory))]
