"""Pure parsers of Slurm's output into kant-slurm's model (no command is run here).

Inputs are what the CLI prints: ``squeue --json`` / ``sinfo --json`` (OpenAPI v0.0.38 in Slurm
22.05; v0.0.40+ nest numbers as ``{"set":..,"infinite":..,"number":..}`` and turn states into
lists, both are accepted), and the one-record-per-line text of ``scontrol show node -o``,
``show partition -o``, ``show job -d -o`` and ``show topology``. Tested on output recorded from
the real dev cluster (tests/fixtures/slurm-22.05/).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from ..errors import SlurmError
from ..hostlist import expand
from ..model import (PENDING, RUNNING, ClusterSnapshot, Inventory, Job, Partition, Reservation,
                     Topology)
from .tags import parse_kant_tag

log = logging.getLogger(__name__)

# States and flags of a node that may take no new work. Slurm prints a base state plus flags
# ("IDLE+DRAIN", "MIXED*"); a word matches by prefix, so DRAIN covers DRAINING (still runs its
# jobs, takes no new ones) and DRAINED, FAIL covers FAILING. POWERING_DOWN cannot run jobs until
# it is off; POWER_DOWN is a pending power-off (Slurm gives the node no new work).
# Schedulable on purpose:
# - PLANNED: Slurm's backfill holds the node for a higher-priority pending job. That job is in
#   the snapshot and the engine plans it (and keeps later jobs out of its way) itself; marking
#   the node unschedulable would hide it from that very job.
# - POWERED_DOWN / POWERING_UP (idle~ / idle#): power saving resumes the node when a job is
#   given to it, so it is capacity with a boot delay, not lost capacity.
# - COMPLETING: its last jobs are ending; it takes work again.
# MAINT / RESERVED (the node is in an advance reservation) are unschedulable here; build_snapshot
# opens such a node again when a reservation read beside the nodes covers it, since then
# pools.room_mask keeps other jobs off it and lets the reservation's own jobs in.
_RESERVED_FLAGS = ("MAINT", "RESERVED")
_UNSCHEDULABLE = ("DOWN", "DRAIN", "FAIL", "INVAL", "REBOOT", "POWER_DOWN", "POWERING_DOWN",
                  "NOT_RESPONDING", "FUTURE", "UNKNOWN") + _RESERVED_FLAGS
# sinfo's one-character state suffixes (sinfo(1), NODE STATE CODES), as the flags they stand for.
_SUFFIX_FLAGS = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP",
                 "%": "POWERING_DOWN", "!": "POWER_DOWN", "$": "MAINT", "@": "REBOOT_REQUESTED",
                 "^": "REBOOT_ISSUED", "-": "PLANNED"}


# --------------------------------------------------------------------------------------------
# Small value parsers
# --------------------------------------------------------------------------------------------


def number(value, field: str = "value") -> float | None:
    """A Slurm number: plain, or v0.0.40+ ``{"set": bool, "infinite": bool, "number": n}``.

    Returns None for unset or infinite; raises SlurmError naming ``field`` on anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        if value.get("infinite") or not value.get("set", True):
            return None
        return number(value.get("number"), field)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise SlurmError(f"slurm field {field}: expected a number or {{set, number}}, got {value!r}")


def integer(value, field: str = "value", default: int = 0) -> int:
    n = number(value, field)
    return default if n is None else int(n)


def state_words(value) -> list[str]:
    """``"MIXED+DRAIN"``, ``"mixed"``, ``["MIXED", "DRAIN"]`` -> ``["MIXED", "DRAIN"]``;
    ``"IDLE*"`` -> ``["IDLE", "NOT_RESPONDING"]`` (a suffix becomes its flag)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[+,]", value)
    out: list[str] = []
    for v in value:
        word = str(v).strip()
        base = word.rstrip("*~#!%$@^-")
        if not base:
            continue
        out.append(base.upper())
        # "IDLE*" is a node that does not respond, "idle~" one powered down: keep the flag.
        out.extend(_SUFFIX_FLAGS[c] for c in word[len(base):] if _SUFFIX_FLAGS[c] not in out)
    return out


def schedulable_state(words: Sequence[str], state_flags: Sequence[str] = ()) -> bool:
    """False when the node is down, drained, failing, ... (no new work may land on it)."""
    return not any(w in _UNSCHEDULABLE or w.startswith(_UNSCHEDULABLE)
                   for w in list(words) + list(state_flags))


_GRES_ITEM = re.compile(r"^(?:gres[:/])?(?P<name>[a-zA-Z_]+)(?::(?P<type>[^:(]+?))?"
                        r"(?::(?P<count>\d+))?"
                        r"(?:\((?P<extra>[^)]*)\))?$")


def split_gres(text: str | None) -> list[str]:
    """Split a GRES list on commas outside parentheses (``gpu:h100:2(IDX:0,3)`` stays one)."""
    if not text or text in ("(null)", "N/A"):
        return []
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out if x.strip()]


def parse_gpu_gres(text: str | None) -> tuple[int, str | None, tuple[int, ...] | None]:
    """GPUs in a GRES string: ``gpu:h100:8`` / ``gres/gpu:3`` / ``gpu:h100:3(IDX:1-3)``.

    Returns ``(count, type, indices)``; indices is None when the text has none (or ``N/A``).
    A GPU item written without a count means 1 (Slurm's default).
    """
    total, gtype, indices = 0, None, None
    for item in split_gres(text):
        m = _GRES_ITEM.match(item)
        if not m or m.group("name") != "gpu":
            continue
        typ, count = m.group("type"), m.group("count")
        if typ is not None and typ.isdigit() and count is None:
            typ, count = None, typ  # "gpu:8": the number is the count, not a type
        total += int(count) if count is not None else 1
        gtype = gtype or typ
        extra = m.group("extra") or ""
        if extra.startswith("IDX:"):
            idx = extra[4:]
            if idx and idx != "N/A":
                indices = (indices or ()) + tuple(parse_index_list(idx))
    return total, gtype, indices


def parse_index_list(text: str) -> list[int]:
    """``0-2,5`` -> ``[0, 1, 2, 5]``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def tres_count(text: str | None, key: str) -> int | None:
    """``cpu=2,gres/gpu=4`` -> 4 for key ``gres/gpu`` (None when absent)."""
    for item in (text or "").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            if k.strip() == key:
                m = re.match(r"^(\d+)", v.strip())
                if m:
                    return int(m.group(1))
    return None


def parse_duration(text: str | None) -> float | None:
    """Slurm time ``[D-]HH:MM:SS`` / ``MM:SS`` / minutes -> seconds; UNLIMITED/NONE -> None."""
    if text is None:
        return None
    text = text.strip()
    if text.upper() in ("", "UNLIMITED", "INFINITE", "NONE", "N/A", "PARTITION_LIMIT"):
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        secs = parts[0] * 60 if days == 0 else parts[0] * 3600
    elif len(parts) == 2:
        secs = parts[0] * 60 + parts[1] if days == 0 else parts[0] * 3600 + parts[1] * 60
    elif len(parts) == 3:
        secs = parts[0] * 3600 + parts[1] * 60 + parts[2]
    else:
        raise SlurmError(f"slurm time {text!r}: expected [D-]HH:MM:SS")
    return float(days * 86400 + secs)


def parse_timestamp(text: str | None) -> float | None:
    """``2026-11-21T14:52:23`` (local time, as Slurm prints) -> epoch seconds."""
    if not text or text in ("None", "Unknown", "N/A", "(null)"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise SlurmError(f"slurm timestamp {text!r}: expected YYYY-MM-DDTHH:MM:SS") from None


# --------------------------------------------------------------------------------------------
# scontrol one-line records
# --------------------------------------------------------------------------------------------

_KEY = re.compile(r"(?:(?<=\s)|^)([A-Za-z][A-Za-z0-9_:/]*)=")


def scontrol_pairs(line: str) -> list[tuple[str, str]]:
    """One ``scontrol show ... -o`` line -> ordered ``(key, value)`` pairs (keys may repeat).

    Values run to the next `` Key=``, so values with spaces (``OS=Linux 6.1 #1 SMP``) survive.
    """
    matches = list(_KEY.finditer(line))
    pairs = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        pairs.append((m.group(1), line[m.end():end].strip()))
    return pairs


def scontrol_records(text: str) -> list[dict[str, str]]:
    """Every non-empty line -> a dict of its first occurrence of each key."""
    out = []
    for line in text.splitlines():
        if not line.strip() or "=" not in line:
            continue
        rec: dict[str, str] = {}
        for k, v in scontrol_pairs(line):
            rec.setdefault(k, v)
        out.append(rec)
    return out


def _null(v: str | None) -> str:
    return "" if v in (None, "(null)", "N/A", "None") else v


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
        gpus_total, gtype, _ = parse_gpu_gres(_null(rec.get("Gres")))
        alloc = tres_count(rec.get("AllocTRES"), "gres/gpu")
        if alloc is None:
            alloc = parse_gpu_gres(_null(rec.get("GresUsed")))[0]
        out.append(NodeRecord(
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
            features=tuple(f for f in _null(rec.get("AvailableFeatures")).split(",") if f),
            partitions=tuple(p for p in _null(rec.get("Partitions")).split(",") if p),
            weight=integer(rec.get("Weight"), "Weight", 1),
        ))
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
        raise SlurmError("sinfo --json: expected a 'nodes' list (Slurm 22.05) or a 'sinfo' list "
                         "(Slurm 24.11 and later) in the reply")
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
        out.append(NodeRecord(
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
        ))
    return out


def reserved_flag(state: str) -> bool:
    """Whether a node state (``IDLE+MAINTENANCE+RESERVED``, as 22.05 prints a MAINT
    reservation's node, or ``MIXED+RESERVED``) says the node is in an advance reservation."""
    return any(w.startswith(_RESERVED_FLAGS) for w in state_words(state))


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

        def stamp(key: str, required: bool, where: str = where, name: str = name,
                  rec: dict[str, str] = rec) -> float | None:
            bad = SlurmError(f"{where} ({name}): expected {key}=YYYY-MM-DDTHH:MM:SS, "
                             f"got {rec.get(key)!r}")
            try:
                t = parse_timestamp(rec.get(key))
            except SlurmError:
                raise bad from None
            if t is None and required:
                raise bad
            return t

        nodes = _null(rec.get("Nodes"))  # none: a reservation of licences or burst buffers
        out.append(Reservation(
            name=name,
            start_time=stamp("StartTime", True),
            # An open-ended reservation prints an unknown end: None.
            end_time=stamp("EndTime", False),
            nodes=tuple(expand(nodes)) if nodes else (),
            flags=tuple(f.strip().upper() for f in _null(rec.get("Flags")).split(",")
                        if f.strip()),
        ))
    return out


def _sub(record: Mapping, where: str, *keys: str):
    """``record[k1][k2]...``; a missing level is None, a non-object level is an error."""
    value = record
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
        raise SlurmError("sinfo --json: the 'sinfo' list is empty: expected one record per "
                         "group of nodes")
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
                features=_listish(_sub(rec, where, "features", "active")
                                  or _sub(rec, where, "features", "total")) if k == 1 else (),
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
        out.append(Partition(
            name=name,
            nodes=tuple(expand(_null(rec.get("Nodes")))),
            default=rec.get("Default", "NO").upper() == "YES",
            max_time=parse_duration(rec.get("MaxTime")),
            priority_tier=integer(rec.get("PriorityTier"), "PriorityTier", 1),
            # DRAIN takes no new submissions but still starts the jobs queued in it; DOWN
            # queues jobs and starts none; INACTIVE does neither.
            up=rec.get("State", "UP").upper() in ("UP", "DRAIN"),
        ))
    return out


def admit_jobs(jobs: Iterable[Job], partitions: Sequence[Partition],
               nodes: Sequence[NodeRecord]) -> list[Job]:
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
            members = {x for p in names if p in by_name and p not in closed
                       for x in by_name[p].nodes}
            whole = max((n.gpus_total for n in nodes if n.name in members
                         and (job.gpu_type is None or n.gpu_type == job.gpu_type)), default=0)
            if whole > job.gpus_per_node:
                changes["gpus_per_node"] = whole
        out.append(replace(job, **changes) if changes else job)
    return out


def _admits(part: Partition, job: Job) -> bool:
    if not part.up:
        return False
    return part.max_time is None or job.time_limit is None or job.time_limit <= part.max_time


def parse_topology(text: str, node_order: Sequence[str] | None = None) -> Topology:
    """``scontrol show topology`` (or topology.conf lines) -> Topology."""
    leaf_nodes: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for rec in scontrol_records(text):
        name = rec.get("SwitchName")
        if not name:
            continue
        kids = expand(_null(rec.get("Switches")))
        if kids:
            children[name] = kids
        elif rec.get("Nodes"):
            leaf_nodes[name] = expand(_null(rec.get("Nodes")))
    if not leaf_nodes and not children:
        return Topology.empty()
    return Topology.from_links(leaf_nodes, children, node_order=node_order)


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


def exclusive_jobs(text: str) -> set[str]:
    """``scontrol show job -o`` -> ids of the jobs with ``--exclusive`` (``Exclusive=NODE``,
    ``USER``, ``MCS`` or ``TOPO``). Slurm 26.05's squeue JSON no longer says so (``shared`` is
    empty for such a job); its scontrol does. Releases that print no ``Exclusive=`` add none."""
    out = set()
    for rec in scontrol_records(text):
        if rec.get("Exclusive", "NO").upper() not in ("NO", "") and rec.get("JobId"):
            out.add(rec["JobId"])
    return out


def job_gpu_details(text: str) -> dict[str, list[tuple[str, int, tuple[int, ...]]]]:
    """``scontrol show job -d -o`` -> job id -> [(node, gpus, indices)] for running jobs."""
    out: dict[str, list[tuple[str, int, tuple[int, ...]]]] = {}
    for line in text.splitlines():
        pairs = scontrol_pairs(line)
        if not pairs or pairs[0][0] != "JobId":
            continue
        job_id = pairs[0][1]
        rows: list[tuple[str, int, tuple[int, ...]]] = []
        group: list[str] = []
        for key, value in pairs:
            if key == "Nodes":
                group = expand(_null(value))
            elif key == "GRES" and group:
                count, _, idx = parse_gpu_gres(_null(value))
                for node in group:
                    rows.append((node, count, idx or ()))
                group = []
        if rows:
            out[job_id] = rows
    return out


def _job_state(value) -> str:
    words = state_words(value)
    return words[0] if words else ""


def _gpus_requested(job: Mapping, num_nodes: int) -> tuple[int, str | None]:
    """GPUs per node a job asks for, from tres_per_node, else tres_per_job / tres_req_str."""
    per_node, gtype, _ = parse_gpu_gres(job.get("tres_per_node"))
    if per_node:
        return per_node, gtype
    per_job, gtype, _ = parse_gpu_gres(job.get("tres_per_job"))
    if not per_job:
        per_job = tres_count(job.get("tres_req_str"), "gres/gpu") or 0
    if per_job and num_nodes:
        return -(-per_job // num_nodes), gtype
    return 0, gtype


# Pending reasons under which Slurm starts a job as soon as room and priority allow ("None":
# not looked at yet). Every other reason means Slurm would not start the job now: held
# (JobHeldUser/Admin), Dependency, BeginTime, association and QOS limits (AssocGrp*, AssocMax*,
# QOSGrp*, QOSMax*), PartitionDown/Inactive, ReqNodeNotAvail, Reservation, Licenses,
# JobArrayTaskLimit, ... A reason this list does not know counts as such too: kant would
# rather leave a startable job to Slurm than pin or lift one that Slurm will not start.
STARTABLE_REASONS = frozenset({"None", "Priority", "Resources"})


def slurm_block(reason: str | None, held: bool, eligible_time: float | None) -> str | None:
    """Why Slurm will not start a pending job now (its own reason), or None when only room and
    priority stand in its way. Pure.

    ``eligible_time`` is what Slurm printed: 0 means "not known yet" (a dependency or throttle
    has not been resolved), never "eligible now".
    """
    reason = (reason or "None").strip() or "None"
    if held:
        return reason if reason.startswith("JobHeld") else "JobHeldUser"
    if reason not in STARTABLE_REASONS:
        return reason
    if not eligible_time:
        return "EligibleTimeUnknown"
    return None


def array_tasks(text: str) -> list[int] | None:
    """A pending array's ``array_task_string`` -> its task ids: ``1-3``, ``1-5%1``, ``4,6,8-10``,
    ``0-9:3``. None when the text has another form (the caller keeps the array out of
    steering rather than guess)."""
    text = text.split("%", 1)[0].strip()
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            return None
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        step = int(m.group(3)) if m.group(3) else 1
        if hi < lo or step < 1:
            return None
        out.extend(range(lo, hi + 1, step))
    return out or None


def _array_running(jobs: Sequence[Mapping]) -> dict[int, int]:
    """Array job id -> tasks of it running now (what its ``%`` throttle counts)."""
    out: dict[int, int] = {}
    for job in jobs:
        array_id = integer(job.get("array_job_id"), "array_job_id")
        if array_id and _job_state(job.get("job_state")) == RUNNING:
            out[array_id] = out.get(array_id, 0) + 1
    return out


def parse_jobs_json(data: Mapping, details: Mapping[str, list] | None = None,
                    exclusive: Collection[str] = ()) -> list[Job]:
    """``squeue --json`` -> running and pending Jobs (others are left out).

    ``details`` (from :func:`job_gpu_details`) gives exact per-node GPUs and indices; without
    it they come from the JSON's ``gres_detail``, else an even split. ``exclusive`` (from
    :func:`exclusive_jobs`) names raw job ids run with ``--exclusive`` besides those the JSON's
    ``shared`` says. Each pending job carries
    :attr:`Job.slurm_blocked` from its state reason, hold flag and eligible time; a pending
    array record becomes one Job per task (``8_1``, ``8_2``, ...), and the tasks beyond its
    ``%`` throttle are blocked with ``JobArrayTaskLimit``.
    """
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise SlurmError("squeue --json: no 'jobs' list in the reply")
    out = []
    array_running = _array_running(jobs)
    for i, job in enumerate(jobs):
        state = _job_state(job.get("job_state"))
        if state not in (RUNNING, PENDING):
            continue
        where = f"squeue --json jobs[{i}]"
        job_id = str(integer(job.get("job_id"), f"{where}.job_id"))
        array_task = number(job.get("array_task_id"), f"{where}.array_task_id")
        if array_task is not None and integer(job.get("array_job_id"), "array_job_id"):
            job_id = f"{integer(job.get('array_job_id'), 'array_job_id')}_{int(array_task)}"
        num_nodes = integer(job.get("node_count"), f"{where}.node_count", 1) or 1
        gpn, gtype = _gpus_requested(job, num_nodes)
        nodes: tuple[str, ...] = ()
        node_gpus: tuple[int, ...] = ()
        node_idx: tuple[tuple[int, ...], ...] = ()
        if state == RUNNING:
            nodes = tuple(expand(job.get("nodes") or ""))
            num_nodes = len(nodes) or num_nodes
            rows = (details or {}).get(str(integer(job.get("job_id"), "job_id")))
            if rows:
                per = {n: (c, idx) for n, c, idx in rows}
                node_gpus = tuple(per.get(n, (0, ()))[0] for n in nodes)
                node_idx = tuple(tuple(per.get(n, (0, ()))[1]) for n in nodes)
            elif job.get("gres_detail") and len(job["gres_detail"]) == len(nodes):
                parsed = [parse_gpu_gres(g) for g in job["gres_detail"]]
                node_gpus = tuple(p[0] for p in parsed)
                node_idx = tuple(tuple(p[2] or ()) for p in parsed)
            elif gpn:
                node_gpus = (gpn,) * len(nodes)
            if node_gpus and not gpn:
                gpn = max(node_gpus)
        limit = number(job.get("time_limit"), f"{where}.time_limit")  # minutes
        start = number(job.get("start_time"), f"{where}.start_time")
        admin = job.get("admin_comment") or ""
        eligible = number(job.get("eligible_time"), f"{where}.eligible_time")
        blocked = None
        if state == PENDING:
            held = bool(job.get("hold")) or str(job.get("state_reason") or "").startswith("JobHeld")
            blocked = slurm_block(job.get("state_reason"), held, eligible)
        fields = dict(
            job_id=job_id,
            state=state,
            num_nodes=num_nodes,
            gpus_per_node=gpn,
            submit_time=number(job.get("submit_time"), f"{where}.submit_time") or 0.0,
            name=job.get("name") or "",
            user=job.get("user_name") or str(job.get("user_id") or ""),
            account=job.get("account") or "",
            partitions=tuple(p for p in (job.get("partition") or "").split(",") if p),
            qos=job.get("qos") or "",
            gpu_type=gtype,
            cpus_per_node=((integer(job.get("cpus"), f"{where}.cpus") // num_nodes)
                           if num_nodes else 0),
            time_limit=limit * 60 if limit is not None else None,
            start_time=start if state == RUNNING and start else None,
            eligible_time=eligible or None,
            nodes=nodes,
            node_gpus=node_gpus,
            priority=integer(job.get("priority"), f"{where}.priority"),
            nice=integer(job.get("nice"), f"{where}.nice"),
            required_nodes=tuple(expand(job.get("required_nodes") or "")),
            excluded_nodes=tuple(expand(job.get("excluded_nodes") or "")),
            comment=job.get("comment") or "",
            admin_comment=admin,
            exclusive=_exclusive(job.get("shared")) or str(
                integer(job.get("job_id"), f"{where}.job_id")) in exclusive,
            features=job.get("features") or None,
            reservation=job.get("resv_name") or None,
            mem_per_node_mb=_memory_per_node(job, num_nodes, where),
            node_gpu_indices=node_idx,
            slurm_blocked=blocked,
        )
        task_text = job.get("array_task_string") or ""
        if state == PENDING and task_text:
            out.extend(_array_task_jobs(fields, task_text, job, array_running, where))
        else:
            out.append(apply_tag(Job(**fields)))
    return out


def _array_task_jobs(fields: dict, task_text: str, job: Mapping, array_running: Mapping[int, int],
                     where: str) -> list[Job]:
    """A pending array record -> one Job per task; tasks past the throttle are blocked."""
    array_id = integer(job.get("array_job_id"), f"{where}.array_job_id") or int(fields["job_id"])
    tasks = array_tasks(task_text)
    if tasks is None:
        log.warning("job %s: array tasks %r not understood; leaving it to Slurm",
                    fields["job_id"], task_text)
        return [apply_tag(Job(**(fields | {"slurm_blocked": f"ArrayTasks={task_text}"})))]
    throttle = integer(job.get("array_max_tasks"), f"{where}.array_max_tasks")
    free = max(throttle - array_running.get(array_id, 0), 0) if throttle else len(tasks)
    out = []
    for n, task in enumerate(tasks):
        blocked = fields["slurm_blocked"] or (None if n < free else "JobArrayTaskLimit")
        out.append(apply_tag(Job(**(fields | {"job_id": f"{array_id}_{task}",
                                               "slurm_blocked": blocked}))))
    return out


def _memory_per_node(job: Mapping, num_nodes: int, where: str) -> int:
    """MB per node the job asked for (--mem, or --mem-per-cpu x its CPUs per node); 0 = none.

    The TRES request (``mem=250G``) is not used: with DefMemPerNode=UNLIMITED it shows every
    job asking for whole nodes' memory, which says nothing about what the job needs.
    """
    # v0.0.38 names (22.05) first, then the v0.0.40+ ones.
    per_node = (number(job.get("memory_per_node"), f"{where}.memory_per_node")
                or number(job.get("minimum_memory_per_node"), f"{where}.minimum_memory_per_node"))
    if per_node:
        return int(per_node)
    per_cpu = (number(job.get("memory_per_cpu"), f"{where}.memory_per_cpu")
               or number(job.get("minimum_memory_per_cpu"), f"{where}.minimum_memory_per_cpu"))
    if per_cpu and num_nodes:
        cpus = integer(job.get("cpus"), f"{where}.cpus")
        return int(per_cpu) * max(1, -(-cpus // num_nodes))
    return 0


def _exclusive(shared) -> bool:
    # v0.0.38 prints "none" for --exclusive; v0.0.40+ a list such as ["exclusive"].
    words = [shared] if isinstance(shared, str) else list(shared or [])
    return any(str(w).lower() in ("none", "exclusive") for w in words)


def apply_tag(job: Job) -> Job:
    """Fill class, service, estimate, SLA and checkpoint interval from the kant tag in the
    admin comment.

    A malformed tag is logged and ignored: one bad job must not stop the whole read.
    """
    try:
        tag = parse_kant_tag(job.admin_comment)
    except Exception as exc:  # InputError
        log.warning("job %s: %s (ignored)", job.job_id, exc)
        return job
    if not tag:
        return job
    return replace(
        job,
        job_class=tag["workload"],
        class_source="tag",
        service=tag.get("service", job.service),
        est_runtime=float(tag["est"]) if "est" in tag else job.est_runtime,
        sla=float(tag["sla"]) if "sla" in tag else job.sla,
        checkpoint_interval=float(tag["ckpt"]) if "ckpt" in tag else job.checkpoint_interval,
    )


# --------------------------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------------------------


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
    reservations = tuple(replace(r, nodes=tuple(x for x in r.nodes if x in known))
                         for r in reservations)
    covered = {x for r in reservations if r.active(taken_at) for x in r.nodes}
    schedulable = []
    for n in nodes:
        ok = n.schedulable
        if not ok and reserved_flag(n.state):
            if n.name in covered:
                words = [w for w in state_words(n.state) if not w.startswith(_RESERVED_FLAGS)]
                ok = schedulable_state(words)
            else:
                log.info("node %s is %s but in no open reservation read: kept out of planning",
                         n.name, n.state)
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


def parse_sprio_priorities(text: str) -> dict[str, list[tuple[int, int]]]:
    """``sprio -h -o '%i %S %Y'`` -> {job id: [(SiteFactor, priority), ...]}. Pure.

    A job pending in several partitions has one line, and one priority, per partition."""
    out: dict[str, list[tuple[int, int]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not all(re.fullmatch(r"-?\d+", p) for p in parts[1:]):
            raise SlurmError(f"sprio line {n}: expected 'JOBID SITE PRIORITY', got {line!r}")
        out.setdefault(parts[0], []).append((int(parts[1]), int(parts[2])))
    return out


def parse_sprio_site(text: str) -> dict[str, int]:
    """``sprio -h -o '%i %S'`` -> {job id: SiteFactor}. Pure."""
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise SlurmError(f"sprio line {n}: expected 'JOBID SITE', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out
