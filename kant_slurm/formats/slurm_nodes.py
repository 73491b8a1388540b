"""Nodes, advance reservations, partitions and the switch tree from Slurm's output
(``scontrol show node/reservation/partition -o``, ``sinfo --json``, ``scontrol show topology``).
Pure: no command is run here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import SlurmError
from ..hostlist import expand
from ..model import Partition, Reservation, Topology
from .slurm_values import (
    RESERVED_FLAGS,
    integer,
    parse_duration,
    parse_gpu_gres,
    parse_timestamp,
    schedulable_state,
    scontrol_pairs,
    scontrol_records,
    slurm_text,
    state_words,
    tres_count,
)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeRecord:
    """One node as read from Slurm (before it is split into inventory and usage)."""

    name: str
    state: str
    schedulable: bool
    gpus_total: int
    gpus_alloc: int
    gpu_type: str | None
    cpus_total: int
    cpus_alloc: int
    memory_mb: int
    memory_alloc_mb: int
    features: tuple[str, ...]
    partitions: tuple[str, ...]
    weight: int


def parse_nodes_scontrol(text: str) -> list[NodeRecord]:
    """``scontrol show node -o`` (or ``-d -o``) -> NodeRecords."""
    out = []
    for rec in scontrol_records(text):
        name = rec.get("NodeName")
        if not name:
            continue
        words = state_words(rec.get("State"))
        gpus_total, gtype, _ = parse_gpu_gres(slurm_text(rec.get("Gres")))
        alloc = tres_count(rec.get("AllocTRES"), "gres/gpu")
        if alloc is None:
            alloc = parse_gpu_gres(slurm_text(rec.get("GresUsed")))[0]
        out.append(
            NodeRecord(
                name=name,
                state="+".join(words),
                schedulable=schedulable_state(words),
                gpus_total=gpus_total,
                gpus_alloc=alloc,
                gpu_type=gtype,
                cpus_total=integer(rec.get("CPUTot"), "CPUTot"),
                cpus_alloc=integer(rec.get("CPUAlloc"), "CPUAlloc"),
                memory_mb=integer(rec.get("RealMemory"), "RealMemory"),
                memory_alloc_mb=integer(rec.get("AllocMem"), "AllocMem"),
                features=tuple(f for f in slurm_text(rec.get("AvailableFeatures")).split(",") if f),
                partitions=tuple(p for p in slurm_text(rec.get("Partitions")).split(",") if p),
                weight=integer(rec.get("Weight"), "Weight", 1),
            )
        )
    return out


def _listish(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split(",") if v)
    return tuple(str(v) for v in value if v)


def parse_nodes_json(data: Mapping) -> list[NodeRecord]:
    """``sinfo --json`` / slurmrestd ``/nodes`` -> NodeRecords, one per node.

    Slurm 22.05 (v0.0.38) and slurmrestd list nodes under ``nodes``; ``sinfo --json`` of 24.11
    and later lists sinfo's grouped records under ``sinfo`` instead (see
    :func:`_nodes_from_sinfo_records`).
    """
    if not isinstance(data, Mapping):
        raise SlurmError("sinfo --json: expected a JSON object")
    if isinstance(data.get("sinfo"), list):
        return _nodes_from_sinfo_records(data["sinfo"])
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise SlurmError(
            "sinfo --json: expected a 'nodes' list (Slurm 22.05) or a 'sinfo' list "
            "(Slurm 24.11 and later) in the reply"
        )
    out = []
    for i, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            raise SlurmError(f"sinfo --json: nodes[{i}]: expected an object")
        name = node.get("name")
        if not name:
            raise SlurmError(f"sinfo --json: node #{i} has no name")
        words = state_words(node.get("state"))
        flags = state_words(node.get("state_flags"))
        gpus_total, gtype, _ = parse_gpu_gres(node.get("gres"))
        used, _, used_idx = parse_gpu_gres(node.get("gres_used"))
        tres_used = tres_count(node.get("tres_used"), "gres/gpu")
        if used_idx is not None:
            used = len(used_idx)
        elif tres_used is not None:
            used = tres_used
        out.append(
            NodeRecord(
                name=name,
                state="+".join(words + [f for f in flags if f not in words]),
                schedulable=schedulable_state(words, flags),
                gpus_total=gpus_total,
                gpus_alloc=used,
                gpu_type=gtype,
                cpus_total=integer(node.get("cpus"), f"nodes[{i}].cpus"),
                cpus_alloc=integer(node.get("alloc_cpus"), f"nodes[{i}].alloc_cpus"),
                memory_mb=integer(node.get("real_memory"), f"nodes[{i}].real_memory"),
                memory_alloc_mb=integer(node.get("alloc_memory"), f"nodes[{i}].alloc_memory"),
                features=_listish(node.get("features")),
                partitions=_listish(node.get("partitions")),
                weight=integer(node.get("weight"), f"nodes[{i}].weight", 1),
            )
        )
    return out


def reserved_flag(state: str) -> bool:
    """Whether a node state (``IDLE+MAINTENANCE+RESERVED``, as 22.05 prints a MAINT
    reservation's node, or ``MIXED+RESERVED``) says the node is in an advance reservation."""
    return any(w.startswith(RESERVED_FLAGS) for w in state_words(state))


# --------------------------------------------------------------------------------------------
# Advance reservations
# --------------------------------------------------------------------------------------------

_NO_RESERVATIONS = "No reservations in the system"


def parse_reservations(text: str) -> list[Reservation]:
    """``scontrol show reservation -o`` -> Reservations (none for "No reservations in the
    system"). A record without a name or a readable start is a SlurmError naming its line."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip().startswith(_NO_RESERVATIONS):
            continue
        rec: dict[str, str] = {}
        for k, v in scontrol_pairs(line):
            rec.setdefault(k, v)
        where = f"scontrol show reservation line {n}"
        name = rec.get("ReservationName")
        if not name:
            raise SlurmError(f"{where}: expected ReservationName=..., got {line[:80]!r}")

        def stamp(
            key: str,
            required: bool,
            where: str = where,
            name: str = name,
            rec: dict[str, str] = rec,
        ) -> float | None:
            bad = SlurmError(
                f"{where} ({name}): expected {key}=YYYY-MM-DDTHH:MM:SS, got {rec.get(key)!r}"
            )
            try:
                t = parse_timestamp(rec.get(key))
            except SlurmError:
                raise bad from None
            if t is None and required:
                raise bad
            return t

        def required_stamp(key: str) -> float:
            t = stamp(key, True)
            assert t is not None  # stamp raises when a required time is missing
            return t

        nodes = slurm_text(rec.get("Nodes"))  # none: a reservation of licences or burst buffers
        out.append(
            Reservation(
                name=name,
                start_time=required_stamp("StartTime"),
                # An open-ended reservation prints an unknown end: None.
                end_time=stamp("EndTime", False),
                nodes=tuple(expand(nodes)) if nodes else (),
                flags=tuple(
                    f.strip().upper() for f in slurm_text(rec.get("Flags")).split(",") if f.strip()
                ),
            )
        )
    return out


def _sub(record: Mapping, where: str, *keys: str):
    """``record[k1][k2]...``; a missing level is None, a non-object level is an error."""
    value: Any = record
    for k in keys:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise SlurmError(f"sinfo --json: {where}: expected an object at {k!r}")
        value = value.get(k)
    return value


def _nodes_from_sinfo_records(records: Sequence) -> list[NodeRecord]:
    """The ``sinfo`` list of Slurm 24.11+ -> one NodeRecord per node.

    With ``sinfo -N --json`` (what the backend asks) each record holds one node. Without -N a
    record is one of sinfo's summary lines: its nodes share its state, partition and GRES
    strings, its CPU and memory counts are their sums (split evenly here, the remainder on the
    first nodes), but its features are those of the first node only (recorded on 24.11: idle
    nodes of leaf2..leaf4 in one record saying leaf2), so a grouped node gets no features rather
    than wrong ones. A node in several partitions comes once per partition; its partitions are
    merged into one record.
    """
    if not records:
        # sinfo always prints at least one line for a cluster's nodes: an empty list is a reply
        # cut short, not a cluster without nodes.
        raise SlurmError(
            "sinfo --json: the 'sinfo' list is empty: expected one record per group of nodes"
        )
    by_name: dict[str, NodeRecord] = {}
    for i, rec in enumerate(records):
        where = f"sinfo[{i}]"
        if not isinstance(rec, Mapping):
            raise SlurmError(f"sinfo --json: {where}: expected an object")
        names = _listish(_sub(rec, where, "nodes", "nodes"))
        if not names:
            raise SlurmError(f"sinfo --json: {where}: no node names in 'nodes.nodes'")
        k = len(names)
        words = state_words(_sub(rec, where, "node", "state"))
        base = words[:1]
        gpus_total, gtype, _ = parse_gpu_gres(_sub(rec, where, "gres", "total"))
        used, _, used_idx = parse_gpu_gres(_sub(rec, where, "gres", "used"))
        if used_idx is not None:
            used = len(used_idx)
        cpus_alloc = integer(_sub(rec, where, "cpus", "allocated"), f"{where}.cpus.allocated")
        mem_alloc = integer(_sub(rec, where, "memory", "allocated"), f"{where}.memory.allocated")
        partition = _sub(rec, where, "partition", "name")
        for j, name in enumerate(names):
            old = by_name.get(name)
            parts = (old.partitions if old else ()) + ((str(partition),) if partition else ())
            if old is not None:
                by_name[name] = replace(old, partitions=tuple(dict.fromkeys(parts)))
                continue
            by_name[name] = NodeRecord(
                name=name,
                state="+".join(base + [w for w in words[1:] if w not in base]),
                schedulable=schedulable_state(words),
                gpus_total=gpus_total,
                gpus_alloc=used,
                gpu_type=gtype,
                cpus_total=integer(_sub(rec, where, "cpus", "minimum"), f"{where}.cpus.minimum"),
                cpus_alloc=cpus_alloc // k + (1 if j < cpus_alloc % k else 0),
                memory_mb=integer(_sub(rec, where, "memory", "minimum"), f"{where}.memory.minimum"),
                memory_alloc_mb=mem_alloc // k + (1 if j < mem_alloc % k else 0),
                features=_listish(
                    _sub(rec, where, "features", "active") or _sub(rec, where, "features", "total")
                )
                if k == 1
                else (),
                partitions=tuple(parts),
                weight=integer(_sub(rec, where, "weight", "minimum"), f"{where}.weight.minimum", 1),
            )
    return list(by_name.values())


# --------------------------------------------------------------------------------------------
# Partitions and topology
# --------------------------------------------------------------------------------------------


def parse_partitions_scontrol(text: str) -> list[Partition]:
    """``scontrol show partition -o`` -> Partitions."""
    out = []
    for rec in scontrol_records(text):
        name = rec.get("PartitionName")
        if not name:
            continue
        out.append(
            Partition(
                name=name,
                nodes=tuple(expand(slurm_text(rec.get("Nodes")))),
                default=rec.get("Default", "NO").upper() == "YES",
                max_time=parse_duration(rec.get("MaxTime")),
                priority_tier=integer(rec.get("PriorityTier"), "PriorityTier", 1),
                # DRAIN takes no new submissions but still starts the jobs queued in it; DOWN
                # queues jobs and starts none; INACTIVE does neither.
                up=rec.get("State", "UP").upper() in ("UP", "DRAIN"),
            )
        )
    return out


def parse_topology(text: str, node_order: Sequence[str] | None = None) -> Topology:
    """``scontrol show topology`` (or topology.conf lines) -> Topology."""
    leaf_nodes: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for rec in scontrol_records(text):
        name = rec.get("SwitchName")
        if not name:
            continue
        kids = expand(slurm_text(rec.get("Switches")))
        if kids:
            children[name] = kids
        elif rec.get("Nodes"):
            leaf_nodes[name] = expand(slurm_text(rec.get("Nodes")))
    if not leaf_nodes and not children:
        return Topology.empty()
    return Topology.from_links(leaf_nodes, children, node_order=node_order)
