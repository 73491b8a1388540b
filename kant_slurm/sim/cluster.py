"""Virtual clusters for the simulator: a strict YAML cluster spec -> :class:`Inventory`.

The spec (issue 4)::

    name: philly-64x8
    pools:
      - name: gpu            # partition
        gpu_type: v100
        nodes: 64
        gpus_per_node: 8
        cpus_per_node: 64    # optional
        leaf_size: 8         # nodes per leaf switch
        spine_size: 4        # leaf switches per spine (optional)
    inference_zone: {pool: gpu, nodes: 8}   # optional

Nodes are named ``<pool><NNNN>`` (``gpu0001``...), leaf switches ``<pool>-leaf<NN>``, spines
``<pool>-spine<NN>``; when there is more than one spine (or more than one pool) a root switch
``root`` joins them, as a fat tree would. The inference zone is the last ``nodes`` nodes of its
pool (whole leaves at the end of the pool, so the zone does not split the training leaves first).
Unknown keys, wrong types and missing fields raise :class:`ConfigError` naming them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..model import Inventory, Partition, Topology

_POOL_FIELDS: dict[str, tuple[type, bool]] = {
    # key: (type, required)
    "name": (str, True),
    "gpu_type": (str, True),
    "nodes": (int, True),
    "gpus_per_node": (int, True),
    "cpus_per_node": (int, False),
    "memory_mb_per_node": (int, False),
    "leaf_size": (int, True),
    "spine_size": (int, False),
}
_TOP_FIELDS: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "pools": (list, True),
    "inference_zone": (dict, False),
}
_ZONE_FIELDS: dict[str, tuple[type, bool]] = {"pool": (str, True), "nodes": (int, True)}


@dataclass(frozen=True)
class PoolSpec:
    name: str
    gpu_type: str
    nodes: int
    gpus_per_node: int
    leaf_size: int
    cpus_per_node: int = 0
    memory_mb_per_node: int = 0
    spine_size: int | None = None


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed cluster spec and the inventory built from it."""

    name: str
    pools: tuple[PoolSpec, ...]
    inventory: Inventory
    inference_zone: tuple[str, ...] = ()  # node names of the inference zone (may be empty)
    source: str = ""

    @property
    def total_gpus(self) -> int:
        return int(self.inventory.gpus_total.sum())

    def describe(self) -> str:
        """One line: name, nodes x GPUs per pool, leaves."""
        parts = [f"{p.name}: {p.nodes} x {p.gpus_per_node} {p.gpu_type}" for p in self.pools]
        return f"{self.name} ({'; '.join(parts)}; {self.total_gpus} GPUs)"


def _check_fields(obj: Any, fields: dict[str, tuple[type, bool]], where: str) -> dict:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(fields)}")
    for key, (typ, required) in fields.items():
        if key not in obj:
            if required:
                raise ConfigError(f"{where}: missing required key {key!r}")
            continue
        value = obj[key]
        # bool is an int in Python; a spec saying `nodes: true` is still wrong.
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ConfigError(
                f"{where}.{key}: expected {typ.__name__}, got {type(value).__name__} ({value!r})"
            )
        least = 0 if key in ("cpus_per_node", "memory_mb_per_node") else 1
        if typ is int and isinstance(value, int) and value < least:
            raise ConfigError(f"{where}.{key}: must be a positive integer, got {value}")
    return obj


def parse_cluster_spec(data: Any, source: str = "cluster spec") -> ClusterSpec:
    """Validate a cluster spec (already YAML-decoded) and build its inventory."""
    _check_fields(data, _TOP_FIELDS, source)
    if not data["pools"]:
        raise ConfigError(f"{source}.pools: at least one pool is required")
    pools: list[PoolSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["pools"]):
        where = f"{source}.pools[{i}]"
        _check_fields(raw, _POOL_FIELDS, where)
        if raw["name"] in seen:
            raise ConfigError(f"{where}.name: pool {raw['name']!r} defined twice")
        seen.add(raw["name"])
        pools.append(PoolSpec(**raw))
    names: list[str] = []
    gpus: list[int] = []
    cpus: list[int] = []
    mem: list[int] = []
    gtype: list[str] = []
    partitions: list[Partition] = []
    leaf_nodes: dict[str, list[str]] = {}
    switch_children: dict[str, list[str]] = {}
    tops: list[str] = []
    for k, pool in enumerate(pools):
        width = max(4, len(str(pool.nodes)))
        pool_nodes = [f"{pool.name}{i + 1:0{width}d}" for i in range(pool.nodes)]
        names += pool_nodes
        gpus += [pool.gpus_per_node] * pool.nodes
        cpus += [pool.cpus_per_node] * pool.nodes
        mem += [pool.memory_mb_per_node] * pool.nodes
        gtype += [pool.gpu_type] * pool.nodes
        partitions.append(Partition(name=pool.name, nodes=tuple(pool_nodes), default=(k == 0)))
        n_leaves = math.ceil(pool.nodes / pool.leaf_size)
        leaves = [f"{pool.name}-leaf{j + 1:02d}" for j in range(n_leaves)]
        for j, leaf in enumerate(leaves):
            leaf_nodes[leaf] = pool_nodes[j * pool.leaf_size : (j + 1) * pool.leaf_size]
        if pool.spine_size:
            n_spines = math.ceil(n_leaves / pool.spine_size)
            spines = [f"{pool.name}-spine{j + 1:02d}" for j in range(n_spines)]
            for j, spine in enumerate(spines):
                switch_children[spine] = leaves[j * pool.spine_size : (j + 1) * pool.spine_size]
            tops += spines
        else:
            tops += leaves
    if len(tops) > 1:
        switch_children["root"] = tops
    inventory = Inventory.build(
        names=names,
        gpus_total=gpus,
        cpus_total=cpus,
        memory_mb=mem,
        gpu_type=gtype,
        partitions=partitions,
        topology=Topology.from_links(leaf_nodes, switch_children, node_order=names),
    )
    zone: tuple[str, ...] = ()
    if "inference_zone" in data:
        where = f"{source}.inference_zone"
        _check_fields(data["inference_zone"], _ZONE_FIELDS, where)
        zpool, zn = data["inference_zone"]["pool"], data["inference_zone"]["nodes"]
        match = [p for p in partitions if p.name == zpool]
        if not match:
            raise ConfigError(f"{where}.pool: no pool named {zpool!r}; pools: {', '.join(seen)}")
        if zn > len(match[0].nodes):
            raise ConfigError(
                f"{where}.nodes: {zn} is more than pool {zpool!r} has ({len(match[0].nodes)})"
            )
        zone = match[0].nodes[len(match[0].nodes) - zn :]
    return ClusterSpec(
        name=data["name"],
        pools=tuple(pools),
        inventory=inventory,
        inference_zone=zone,
        source=source,
    )


def load_cluster_spec(path: str | Path) -> ClusterSpec:
    """Read and validate a cluster spec YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read cluster spec ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_cluster_spec(data, source=str(path))


def spec_from_inventory(inventory: Inventory, name: str, source: str = "") -> ClusterSpec:
    """Wrap an inventory read elsewhere (slurm.conf) as a spec, one pool per partition."""
    pools = []
    for p in inventory.partitions:
        idx = [inventory.index[n] for n in p.nodes]
        g = inventory.gpus_total[idx] if idx else [0]
        types = {inventory.gpu_type[i] for i in idx} or {None}
        pools.append(
            PoolSpec(
                name=p.name,
                gpu_type=",".join(sorted(str(t) for t in types)),
                nodes=len(idx),
                gpus_per_node=int(max(g)),
                leaf_size=0,
            )
        )
    return ClusterSpec(name=name, pools=tuple(pools), inventory=inventory, source=source)


def bundled_cluster_path() -> Path:
    """The default cluster spec shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "data" / "clusters" / "default.yaml"
