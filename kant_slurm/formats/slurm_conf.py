"""A site's ``slurm.conf`` + ``gres.conf`` + ``topology.conf`` -> :class:`Inventory` (pure).

For offline use (``kant-slurm simulate --slurm-conf``, ``kant-slurm report`` without a live
cluster). Read, as slurmctld reads them:

- ``slurm.conf``: ``NodeName=`` lines (host lists, ``NodeName=DEFAULT``; ``CPUs``,
  ``RealMemory``, ``Gres=gpu[:type]:N``, ``Weight``, ``Feature``/``Features``) and
  ``PartitionName=`` lines (``Nodes`` host list or ``ALL``, ``Default``, ``MaxTime``,
  ``PriorityTier``, ``State``; ``PartitionName=DEFAULT``). ``Include`` files are followed.
  Other keys belong to Slurm and are ignored.
- ``gres.conf`` (beside it): GPU counts and types for nodes whose ``Gres=`` gives none
  (``Count=`` or the number of ``File=`` devices).
- ``topology.conf`` (beside it): ``SwitchName=... Nodes=...`` / ``Switches=...``.

Comments (``#``), line continuations (``\\``) and case-insensitive keys as in slurm.conf(5).
Malformed values raise :class:`InputError` naming the file, the line and the key.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..hostlist import expand
from ..model import Inventory, Partition, Topology
from .slurm_values import parse_duration

_PAIR = re.compile(r"(\S+?)=(\"[^\"]*\"|\S*)")


def conf_lines(text: str, source: str) -> list[tuple[int, str]]:
    """(line number, logical line) with comments stripped and ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    pending, first = "", 0
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not pending:
            first = no
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((first, line))
    if pending.strip():
        out.append((first, pending.strip()))
    return out


def conf_pairs(line: str) -> list[tuple[str, str]]:
    """``NodeName=a[1-2] CPUs=8`` -> [("nodename", "a[1-2]"), ("cpus", "8")] (keys lowercased)."""
    return [(k.lower(), v.strip('"')) for k, v in _PAIR.findall(line)]


def _int(value: str, source: str, line: int, key: str) -> int:
    m = re.fullmatch(r"(\d+)([KMGT]?)", value.strip(), re.IGNORECASE)
    if not m:
        raise InputError(f"{source}:{line}: {key}={value!r}: expected a whole number")
    mult = {"": 1, "k": 1, "m": 1, "g": 1024, "t": 1024 * 1024}[m.group(2).lower()]
    return int(m.group(1)) * mult


def _hosts(value: str, source: str, line: int, key: str) -> list[str]:
    try:
        return list(expand(value))
    except Exception as exc:  # noqa: BLE001 - any hostlist error names the place
        raise InputError(
            f"{source}:{line}: {key}={value!r}: not a Slurm host list ({exc})"
        ) from None


def gpu_gres(value: str, source: str, line: int) -> tuple[int | None, str | None]:
    """``gpu:a100:8,nic:1`` -> (8, "a100"); ``gpu`` alone -> (None, None) (count from gres.conf)."""
    count, gtype = None, None
    value = re.sub(r"\([^)]*\)", "", value)  # drop socket bindings: gpu:4(S:0-1)
    for item in value.split(","):
        parts = item.strip().split(":")
        if parts[0] != "gpu":
            continue
        if len(parts) == 1:
            continue
        if len(parts) == 2:
            if parts[1].isdigit():
                n = int(parts[1])
            else:
                gtype, n = parts[1], None
        else:
            gtype = parts[1]
            n = _int(parts[2], source, line, "Gres") if parts[2] else None
        if n is not None:
            count = (count or 0) + n
    return count, gtype


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def parse_slurm_conf(
    text: str, source: str = "slurm.conf", base: Path | None = None
) -> tuple[list[dict], list[dict]]:
    """Node and partition records (dicts) of slurm.conf text, with ``Include`` followed."""
    nodes: list[dict] = []
    parts: list[dict] = []
    node_default: dict = {}
    part_default: dict = {}
    for line, logical in conf_lines(text, source):
        if logical.lower().startswith("include "):
            inc = Path(logical.split(None, 1)[1].strip())
            if not inc.is_absolute() and base is not None:
                inc = base / inc
            n2, p2 = parse_slurm_conf(_read(inc), str(inc), inc.parent)
            nodes += n2
            parts += p2
            continue
        pairs = conf_pairs(logical)
        if not pairs:
            continue
        key, value = pairs[0]
        rec = dict(pairs[1:]) | {"_line": line, "_source": source}
        if key == "nodename":
            if value.upper() == "DEFAULT":
                node_default |= dict(pairs[1:])
                continue
            nodes.append(node_default | rec | {"nodename": value})
        elif key == "partitionname":
            if value.upper() == "DEFAULT":
                part_default |= dict(pairs[1:])
                continue
            parts.append(part_default | rec | {"partitionname": value})
    return nodes, parts


def parse_gres_conf(text: str, source: str = "gres.conf") -> dict[str, tuple[int, str | None]]:
    """node name (or ``*`` for lines without NodeName) -> (GPU count, type) from gres.conf."""
    out: dict[str, tuple[int, str | None]] = {}
    for line, logical in conf_lines(text, source):
        kv = dict(conf_pairs(logical))
        if kv.get("name") != "gpu":
            continue
        if "count" in kv:
            count = _int(kv["count"], source, line, "Count")
        elif "file" in kv:
            count = len(_hosts(kv["file"], source, line, "File"))
        else:
            count = 1
        names = _hosts(kv["nodename"], source, line, "NodeName") if "nodename" in kv else ["*"]
        for n in names:
            prev = out.get(n, (0, None))
            out[n] = (prev[0] + count, kv.get("type") or prev[1])
    return out


def parse_topology_conf(text: str, nodes: list[str], source: str = "topology.conf") -> Topology:
    """topology.conf text -> Topology over ``nodes`` (unknown nodes are errors)."""
    known = set(nodes)
    leaf_nodes: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for line, logical in conf_lines(text, source):
        kv = dict(conf_pairs(logical))
        if "switchname" not in kv:
            raise InputError(f"{source}:{line}: expected SwitchName=..., got {logical[:40]!r}")
        sw = kv["switchname"]
        if "nodes" in kv:
            members = _hosts(kv["nodes"], source, line, "Nodes")
            unknown = [n for n in members if n not in known]
            if unknown:
                raise InputError(
                    f"{source}:{line}: switch {sw!r} names node {unknown[0]!r}, "
                    f"which slurm.conf does not define"
                )
            leaf_nodes[sw] = members
        if "switches" in kv:
            children[sw] = _hosts(kv["switches"], source, line, "Switches")
        if "nodes" not in kv and "switches" not in kv:
            raise InputError(f"{source}:{line}: switch {sw!r} has neither Nodes= nor Switches=")
    try:
        return Topology.from_links(leaf_nodes, children, node_order=nodes)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def inventory_from_conf(
    slurm_conf: str,
    gres_conf: str | None = None,
    topology_conf: str | None = None,
    *,
    source: str = "slurm.conf",
    base: Path | None = None,
) -> Inventory:
    """Build an Inventory from the three files' text (gres/topology optional)."""
    node_recs, part_recs = parse_slurm_conf(slurm_conf, source, base)
    gres = (
        parse_gres_conf(gres_conf, str(base / "gres.conf") if base else "gres.conf")
        if gres_conf
        else {}
    )
    names: list[str] = []
    gpus: list[int] = []
    cpus: list[int] = []
    mem: list[int] = []
    gtype: list[str | None] = []
    feats: list[tuple[str, ...]] = []
    weight: list[int] = []
    for rec in node_recs:
        src, line = rec["_source"], rec["_line"]
        hosts = _hosts(rec["nodename"], src, line, "NodeName")
        count, kind = gpu_gres(rec.get("gres", ""), src, line)
        n_cpu = _int(rec["cpus"], src, line, "CPUs") if "cpus" in rec else 1
        n_mem = _int(rec["realmemory"], src, line, "RealMemory") if "realmemory" in rec else 1
        w = _int(rec["weight"], src, line, "Weight") if "weight" in rec else 1
        feat = tuple(f for f in (rec.get("features") or rec.get("feature") or "").split(",") if f)
        for h in hosts:
            if h in names:
                raise InputError(f"{src}:{line}: node {h!r} defined twice")
            c, t = count, kind
            if c is None and "gres" in rec:
                g = gres.get(h) or gres.get("*") or (0, None)
                c, t = g[0], t or g[1]
            names.append(h)
            gpus.append(c or 0)
            cpus.append(n_cpu)
            mem.append(n_mem)
            gtype.append(t)
            feats.append(feat)
            weight.append(w)
    if not names:
        raise InputError(f"{source}: no NodeName= lines")
    partitions = []
    for rec in part_recs:
        src, line = rec["_source"], rec["_line"]
        spec = rec.get("nodes", "")
        members = (
            names if spec.upper() == "ALL" else _hosts(spec, src, line, "Nodes") if spec else []
        )
        missing = [m for m in members if m not in set(names)]
        if missing:
            raise InputError(
                f"{src}:{line}: partition {rec['partitionname']!r} names node "
                f"{missing[0]!r}, which no NodeName= line defines"
            )
        max_time = None
        if rec.get("maxtime"):
            try:
                max_time = parse_duration(rec["maxtime"])
            except Exception:  # noqa: BLE001
                raise InputError(
                    f"{src}:{line}: MaxTime={rec['maxtime']!r}: expected [D-]HH:MM:SS or UNLIMITED"
                ) from None
        partitions.append(
            Partition(
                name=rec["partitionname"],
                nodes=tuple(members),
                default=rec.get("default", "NO").upper() == "YES",
                max_time=max_time,
                priority_tier=_int(rec["prioritytier"], src, line, "PriorityTier")
                if "prioritytier" in rec
                else 1,
                up=rec.get("state", "UP").upper() == "UP",
            )
        )
    topology = None
    if topology_conf:
        topology = parse_topology_conf(
            topology_conf, names, str(base / "topology.conf") if base else "topology.conf"
        )
    return Inventory.build(
        names=names,
        gpus_total=gpus,
        cpus_total=cpus,
        memory_mb=mem,
        gpu_type=gtype,
        features=feats,
        partitions=partitions,
        topology=topology,
        config_weight=weight,
    )


def read_slurm_conf(path: str | Path) -> Inventory:
    """Read ``slurm.conf`` and, beside it, ``gres.conf`` and ``topology.conf`` when present."""
    path = Path(path)
    base = path.parent
    gres = base / "gres.conf"
    topo = base / "topology.conf"
    return inventory_from_conf(
        _read(path),
        _read(gres) if gres.exists() else None,
        _read(topo) if topo.exists() else None,
        source=str(path),
        base=base,
    )
