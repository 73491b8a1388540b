"""Which nodes a job may use: its pool (partitions open to it, GPU type, --constraint), the
live cluster's rules that change with the snapshot (advance reservations, free memory),
per-cycle node usage.

Pool masks are cached per inventory, since the inventory does not change between cycles and a
cluster has few distinct (partitions, GPU type, constraint) keys. Room masks
(:func:`room_mask`) depend on the snapshot and ``now`` and are cached per snapshot.
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import NoReturn

import numpy as np

from .. import hostlist
from ..errors import ConfigError, InputError
from ..model import ClusterSnapshot, Inventory, Job

log = logging.getLogger(__name__)

_POOL_CACHE: weakref.WeakKeyDictionary[Inventory, dict] = weakref.WeakKeyDictionary()
_ROOM_CACHE: weakref.WeakKeyDictionary[ClusterSnapshot, dict] = weakref.WeakKeyDictionary()


def _cache(inv: Inventory) -> dict:
    try:
        return _POOL_CACHE[inv]
    except KeyError:
        d: dict = {}
        _POOL_CACHE[inv] = d
        return d


def pool_key(job: Job) -> tuple:
    """The part of a job that decides its pool (jobs with the same key see the same nodes).

    The reservation and memory request do not change the pool but do change the room
    (:func:`room_mask`): they are here so that jobs of one shape (cycle.shape_key) see the
    same nodes. All of them are empty in the simulator, which keeps its shapes as they were.
    """
    return (
        job.partitions,
        job.gpu_type,
        job.required_nodes,
        job.excluded_nodes,
        # A matching OR ("[a|b]") means something else for several nodes than for one.
        (job.features, job.num_nodes > 1) if job.features else None,
        job.closed_partitions,
        job.reservation,
        job.mem_per_node_mb,
    )


def pool_mask(inv: Inventory, job: Job) -> np.ndarray:
    """Read-only boolean node mask of the job's pool: its partitions (or the default one) but
    those closed to it, its GPU type if it asks for one, its --constraint, its required nodes
    (if any) minus its excluded nodes. A constraint this module cannot read gives a pool of no
    node (the job is left out of steering: no start, no pin), with one log line."""
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
            # A node in a closed and an open partition of the job stays in its pool.
            if pm is not None and p not in job.closed_partitions:
                mask |= pm
    else:  # an inventory without partitions: every node
        mask = np.ones(n, dtype=bool)
    if job.gpu_type:
        mask &= type_mask(inv, job.gpu_type)
    if job.features:
        try:
            mask &= constraint_mask(inv, job.features, job.num_nodes)
        except InputError as exc:
            log.warning(
                "job %s: %s; it is left out of steering (no start, no pin)", job.job_id, exc
            )
            mask[:] = False
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


# --------------------------------------------------------------------------------------------
# --constraint
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z0-9_.:/+-]+)|(?P<op>[&|()\[\]*]))")


def parse_constraint(text: str) -> tuple:
    """A Slurm ``--constraint`` -> a tree: ``("feature", name)``, ``("&", parts)``,
    ``("|", parts)``, ``("[]", part)`` (a matching OR: every node has the same alternative).

    Read: feature names, ``&`` (AND), ``|`` (OR), parentheses and brackets. Not read (an
    InputError saying so): counts (``a*2``), NOT and other operators, and ``&`` mixed with
    ``|`` at one level without parentheses (Slurm gives them no documented precedence).
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InputError(f"--constraint {text!r}: unexpected {text[pos]!r} at {pos + 1}")
        tokens.append(("name", m.group("name")) if m.group("name") else ("op", m.group("op")))
        pos = m.end()
    if not tokens:
        raise InputError("--constraint '': expected a feature name")
    at = 0

    def fail(what: str) -> NoReturn:
        raise InputError(f"--constraint {text!r}: {what}")

    def expr(close: str | None) -> tuple:
        nonlocal at
        parts = [term()]
        op = None
        while at < len(tokens) and tokens[at] != ("op", close):
            kind, tok = tokens[at]
            if kind != "op" or tok not in "&|":
                fail(f"expected '&' or '|' before {tok!r}")
            if op is not None and tok != op:
                fail("'&' and '|' mixed without parentheses are not read")
            op = tok
            at += 1
            parts.append(term())
        if close is not None:
            if at >= len(tokens):
                fail(f"missing {close!r}")
            at += 1
        return parts[0] if op is None else (op, tuple(parts))

    def term() -> tuple:
        nonlocal at
        if at >= len(tokens):
            fail("expected a feature name at the end")
        kind, tok = tokens[at]
        at += 1
        node: tuple
        if kind == "name":
            node = ("feature", tok)
        elif tok == "(":
            node = expr(")")
        elif tok == "[":
            node = ("[]", expr("]"))
        else:
            fail(f"expected a feature name, got {tok!r}")
        if at < len(tokens) and tokens[at] == ("op", "*"):
            fail("node counts ('*N') are not read")
        return node

    tree = expr(None)
    if at != len(tokens):
        fail(f"unexpected {tokens[at][1]!r}")
    return tree


def constraint_mask(inv: Inventory, text: str, num_nodes: int = 1) -> np.ndarray:
    """Nodes whose features satisfy the constraint (a fresh array). A matching OR for a job of
    several nodes (all nodes the same alternative) is not a node mask: InputError."""
    tree = parse_constraint(text)
    have = inv.features

    def has(name: str) -> np.ndarray:
        key = ("feature", name)
        cache = _cache(inv)
        if key not in cache:
            m = np.fromiter((name in f for f in have), dtype=bool, count=len(inv))
            m.setflags(write=False)
            cache[key] = m
        return cache[key]

    def evaluate(node: tuple) -> np.ndarray:
        kind = node[0]
        if kind == "feature":
            return has(node[1]).copy()
        if kind == "[]":
            inner = node[1]
            if num_nodes > 1 and _has_or(inner):
                raise InputError(
                    f"--constraint {text!r}: a matching OR ('[a|b]') for a job of "
                    f"{num_nodes} nodes is not a node mask"
                )
            return evaluate(inner)
        parts = [evaluate(p) for p in node[1]]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if kind == "&" else (out | p)
        return out

    return evaluate(tree)


def _has_or(node: tuple) -> bool:
    if node[0] == "feature":
        return False
    if node[0] == "[]":
        return _has_or(node[1])
    return node[0] == "|" or any(_has_or(p) for p in node[1])


# --------------------------------------------------------------------------------------------
# The live cluster's rules that change with the snapshot: reservations, free memory
# --------------------------------------------------------------------------------------------


def room_mask(snapshot: ClusterSnapshot, job: Job, now: float) -> np.ndarray | None:
    """Nodes the job may start on now by the live cluster's rules that depend on the snapshot
    and ``now`` (None: no such rule limits it, the simulator's case). Read-only; one object
    per distinct rule set.

    - Advance reservations: a node of a reservation the job does not name is closed to it when
      the job's run, ``now`` to ``now`` + its time limit (no limit: no end), would meet the
      reservation's window. A job naming a reservation runs only on its nodes (with the FLEX
      flag, on other free nodes too), and only once its window is open.
    - Memory: a node needs the job's memory per node free (nodes reporting no memory count
      as enough).

    Rules that follow from the job and the partitions alone (closed partitions, --exclusive)
    are set on the job by the reader (:func:`kant_slurm.slurm.parse.admit_jobs`), so that
    they stay part of the job's pool.
    """
    rules = _rules(snapshot)
    if rules["quiet"] and not job_has_room_rules(job):
        return None  # the simulator's case, asked once per job tried: kept cheap
    limit_end = None if job.time_limit is None else now + job.time_limit
    met = tuple(
        r.name
        for r in snapshot.reservations
        if r.name != job.reservation and r.overlaps(now, limit_end)
    )
    if not (met or job.reservation or job.mem_per_node_mb):
        return None
    own = rules["by_name"].get(job.reservation) if job.reservation else None
    own_open = own is not None and own.active(now)
    key = (met, job.reservation, own_open, job.mem_per_node_mb)
    cache = rules["masks"]
    m = cache.get(key)
    if m is not None:
        return m
    m = np.ones(len(snapshot.inventory), dtype=bool)
    for name in met:
        m &= ~rules["nodes_of"][name]
    if job.reservation:
        if own is None or not own_open:
            m[:] = False  # Slurm holds it until its reservation opens (or exists)
        elif "FLEX" not in own.flags:  # FLEX lets its jobs use nodes outside it as well
            m &= rules["nodes_of"][own.name]
    if job.mem_per_node_mb:
        m &= ~rules["has_memory"] | (rules["free_memory"] >= job.mem_per_node_mb)
    m.setflags(write=False)
    cache[key] = m
    return m


def has_room_rules(snapshot: ClusterSnapshot) -> bool:
    """Whether a rule of :func:`room_mask` that holds for every job (an advance reservation)
    applies in this snapshot; with :func:`job_has_room_rules`, for code that keeps one mask per
    job shape across cycles, which such rules would make wrong."""
    return not _rules(snapshot)["quiet"]


def job_has_room_rules(job: Job) -> bool:
    """Whether :func:`room_mask` limits this job by what it asks for (a reservation, memory),
    whatever the snapshot."""
    return bool(job.reservation or job.mem_per_node_mb)


def _rules(snapshot: ClusterSnapshot) -> dict:
    """Per snapshot, what room_mask reads (worked out once)."""
    try:
        return _ROOM_CACHE[snapshot]
    except KeyError:
        pass
    inv = snapshot.inventory
    n = len(inv)
    nodes_of = {}
    for r in snapshot.reservations:
        nm = np.zeros(n, dtype=bool)
        nm[[inv.index[x] for x in r.nodes if x in inv.index]] = True
        nodes_of[r.name] = nm
    memory = np.asarray(inv.memory_mb, dtype=np.int64)
    rules = {
        "quiet": not snapshot.reservations,
        "by_name": {r.name: r for r in snapshot.reservations},
        "nodes_of": nodes_of,
        "has_memory": memory > 0,
        "free_memory": memory - np.asarray(snapshot.memory_alloc_mb, dtype=np.int64),
        "masks": {},
    }
    _ROOM_CACHE[snapshot] = rules
    return rules


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
                f"(first: {unknown[0]!r})"
            )
        mask[[inv.index[x] for x in names if x in inv.index]] = True
    if partition:
        pm = inv.partition_mask.get(partition)
        if pm is None:
            raise ConfigError(
                f"inference_zone.partition = {partition!r}: no such partition; known: "
                f"{', '.join(p.name for p in inv.partitions) or '(none)'}"
            )
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
