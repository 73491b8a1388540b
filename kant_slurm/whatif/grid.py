"""A sweep grid: the file, its checks, and the cells it expands to.

A grid file (YAML, or TOML by its suffix) is one mapping::

    name: bundled-slice            # optional; names the Slurm jobs and the HTML page
    policies: [slurm, kant]        # required: kant-slurm policies
    seeds: [0, 1, 2]               # default [0]: each cell runs every seed
    traces: [bundled]              # default [bundled]: a path (relative to the grid file),
                                   #   or {path: ..., format: sacct}; "bundled" = the Philly slice
    clusters: [bundled]            # default [bundled]: a cluster spec YAML path,
                                   #   or {slurm_conf: path}; "bundled" = the 48 x 8 GPU spec
    config: kant.yaml              # optional: a kant config every cell starts from
    overrides:                     # each key: the list of values to try
      backfill.reservations: [4, 8]        # any kant config key (kant-slurm config show)
      slurm.bf_window: [1440, 2880]        # the slurm model's SchedulerParameters
      sim.time_limit_model: [ladder, exact]  # sim.time_limit_model, sim.steer_interval

A cell is one policy x one value of each override key x one trace x one cluster; it runs every
seed, and its result is the mean and 95% interval over them. Every mistake is a
:class:`GridError` (exit code 2) naming ``file:line``, the key and what is expected; the same
checks as the config loader (unknown key, key given twice, wrong type, not UTF-8).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from . import schedparams

TOP_KEYS = ("name", "policies", "seeds", "traces", "clusters", "config", "overrides")
SIM_KEYS = {
    "sim.time_limit_model": "a time-limit model: ladder, exact, none or fixed:SECONDS",
    "sim.steer_interval": "a number of seconds >= 0 (kant-steered's daemon interval)",
}
BUNDLED = "bundled"
TRACE_FORMATS = ("philly", "swf", "openb", "sacct", "alibaba-inference")


class GridError(UsageError):
    """A grid file that cannot be used (exit code 2, as for a bad option)."""


@dataclass(frozen=True)
class TraceRef:
    path: str  # absolute
    format: str | None = None

    @property
    def label(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class ClusterRef:
    path: str  # absolute
    kind: str = "spec"  # "spec" (cluster YAML) or "slurm_conf"

    @property
    def label(self) -> str:
        return Path(self.path).name if self.kind == "spec" else f"slurm.conf:{self.path}"


@dataclass(frozen=True)
class Cell:
    """One point of the grid (every seed of it runs in the same task)."""

    index: int
    policy: str
    overrides: tuple[tuple[str, Any], ...]
    trace: TraceRef
    cluster: ClusterRef

    def spec(self) -> dict[str, Any]:
        """What the cell is, as plain data (its key is a hash of this; the index is not in it,
        so a reordered grid still finds its finished cells)."""
        return {
            "policy": self.policy,
            "overrides": dict(self.overrides),
            "trace": {"path": self.trace.path, "format": self.trace.format},
            "cluster": {"path": self.cluster.path, "kind": self.cluster.kind},
        }

    @property
    def key(self) -> str:
        text = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self, grid: Grid) -> str:
        """The cell's row name: the policy, and each dimension that varies in the grid."""
        parts = [self.policy]
        parts += [f"{k}={_show(v)}" for k, v in self.overrides if len(grid.values_of(k)) > 1]
        if len(grid.traces) > 1:
            parts.append(f"trace={self.trace.label}")
        if len(grid.clusters) > 1:
            parts.append(f"cluster={self.cluster.label}")
        return " ".join(parts)


@dataclass(frozen=True)
class Grid:
    source: str
    name: str
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    traces: tuple[TraceRef, ...]
    clusters: tuple[ClusterRef, ...]
    overrides: tuple[tuple[str, tuple[Any, ...]], ...]
    config_path: str | None = None

    def values_of(self, key: str) -> tuple[Any, ...]:
        return dict(self.overrides).get(key, ())

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order: trace, cluster, override values (file order), policy."""
        keys = [k for k, _ in self.overrides]
        combos = list(itertools.product(*[v for _, v in self.overrides])) or [()]
        out: list[Cell] = []
        for trace, cluster, combo, policy in itertools.product(
            self.traces, self.clusters, combos, self.policies
        ):
            out.append(Cell(len(out), policy, tuple(zip(keys, combo, strict=True)), trace, cluster))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "policies": list(self.policies),
            "seeds": list(self.seeds),
            "traces": [{"path": t.path, "format": t.format} for t in self.traces],
            "clusters": [{"path": c.path, "kind": c.kind} for c in self.clusters],
            "overrides": [[k, list(v)] for k, v in self.overrides],
            "config": self.config_path,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grid:
        return cls(
            source=data["source"],
            name=data["name"],
            policies=tuple(data["policies"]),
            seeds=tuple(data["seeds"]),
            traces=tuple(TraceRef(t["path"], t["format"]) for t in data["traces"]),
            clusters=tuple(ClusterRef(c["path"], c["kind"]) for c in data["clusters"]),
            overrides=tuple((k, tuple(v)) for k, v in data["overrides"]),
            config_path=data.get("config"),
        )


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


# --------------------------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------------------------


class _Place:
    """``file:line`` of a key path in the grid file."""

    def __init__(self, source: str, lines: Mapping[tuple, int]) -> None:
        self.source = source
        self.lines = lines

    def __call__(self, *path: str) -> str:
        for i in range(len(path), 0, -1):
            if tuple(path[:i]) in self.lines:
                return f"{self.source}:{self.lines[tuple(path[:i])]}"
        return self.source

    def fail(self, path: tuple[str, ...], text: str) -> GridError:
        return GridError(f"{self(*path)}: {'.'.join(path)}: {text}")


def _list(data: Mapping, key: str, place: _Place, default: list) -> list:
    value = data.get(key, default)
    if not isinstance(value, list) or not value:
        raise place.fail((key,), f"expected a non-empty list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: f"the text {value!r}",
        bool: f"{value}",
        type(None): "nothing",
    }.get(type(value), f"{value!r}")


def _resolve(raw: str, base: Path, place: str, what: str) -> str:
    path = (base / raw).resolve()
    if not path.parent.is_dir():
        raise GridError(
            f"{place}: {what} {raw!r}: directory {str(path.parent)!r} does not "
            "exist; expected an existing file (paths are relative to the grid file)"
        )
    if not path.is_file():
        raise GridError(
            f"{place}: {what} {raw!r}: no such file; expected an existing file "
            "(paths are relative to the grid file)"
        )
    return str(path)


def _traces(items: list, base: Path, place: _Place) -> tuple[TraceRef, ...]:
    from ..formats.traces import bundled_trace_path

    out = []
    for item in items:
        if item == BUNDLED:
            out.append(TraceRef(str(bundled_trace_path()), "philly"))
            continue
        fmt = None
        if isinstance(item, dict):
            extra = sorted(set(item) - {"path", "format"})
            if extra or "path" not in item:
                raise place.fail(
                    ("traces",), f"entry {item!r}: expected the keys path and (optional) format"
                )
            fmt = item.get("format")
            if fmt is not None and fmt not in TRACE_FORMATS:
                raise place.fail(
                    ("traces",), f"format {fmt!r}: expected one of " + ", ".join(TRACE_FORMATS)
                )
            item = item["path"]
        if not isinstance(item, str) or not item:
            raise place.fail(
                ("traces",),
                f"entry {_kind(item)}: expected a file path, "
                "'bundled', or {path: ..., format: ...}",
            )
        out.append(TraceRef(_resolve(item, base, place("traces"), "trace"), fmt))
    return tuple(out)


def _clusters(items: list, base: Path, place: _Place) -> tuple[ClusterRef, ...]:
    from ..sim.cluster import bundled_cluster_path

    out = []
    for item in items:
        if item == BUNDLED:
            out.append(ClusterRef(str(bundled_cluster_path())))
        elif isinstance(item, str) and item:
            out.append(ClusterRef(_resolve(item, base, place("clusters"), "cluster spec")))
        elif (
            isinstance(item, dict)
            and set(item) == {"slurm_conf"}
            and isinstance(item["slurm_conf"], str)
        ):
            out.append(
                ClusterRef(
                    _resolve(item["slurm_conf"], base, place("clusters"), "slurm.conf"),
                    "slurm_conf",
                )
            )
        else:
            raise place.fail(
                ("clusters",),
                f"entry {_kind(item)}: expected a cluster spec "
                "path, 'bundled', or {slurm_conf: path}",
            )
    return tuple(out)


def check_override(key: str, value: Any, where: str) -> None:
    """Raise GridError (at ``where``) unless ``value`` is a valid value of ``key``."""
    from ..config import describe_schema

    if key.startswith("slurm."):
        expected = schedparams.check_value(key[len("slurm.") :], value)
        if expected:
            raise GridError(f"{where}: overrides.{key} = {value!r}: expected {expected}")
        return
    if key.startswith("sim."):
        if key not in SIM_KEYS:
            raise GridError(
                f"{where}: unknown key overrides.{key!r}; expected one of " + ", ".join(SIM_KEYS)
            )
        ok = _sim_value_ok(key, value)
        if not ok:
            raise GridError(f"{where}: overrides.{key} = {value!r}: expected {SIM_KEYS[key]}")
        return
    leaves = [row[0] for row in describe_schema()]
    if key not in leaves:
        raise GridError(
            f"{where}: unknown key overrides.{key!r}; expected a kant config key "
            "(kant-slurm config show), slurm.<SchedulerParameter> ("
            + ", ".join(schedparams.MODELLED)
            + ") or "
            + ", ".join(SIM_KEYS)
        )
    from ..config import config_from_dict

    try:
        config_from_dict(nest({key: value}), where)
    except ConfigError as exc:
        raise GridError(str(exc).splitlines()[0]) from None


def _sim_value_ok(key: str, value: Any) -> bool:
    if key == "sim.steer_interval":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    from ..sim.timelimit import parse_model

    try:
        parse_model(value)
    except (ConfigError, AttributeError, TypeError):
        return False
    return isinstance(value, str)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"backfill.reservations": 4}`` -> ``{"backfill": {"reservations": 4}}``."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def parse_grid(
    data: Any, source: str, lines: Mapping[tuple, int] | None = None, base: Path | None = None
) -> Grid:
    """Check a parsed grid mapping and build the :class:`Grid` (``lines``: key path -> line)."""
    from ..engine.registry import policy_names

    place = _Place(source, lines or {})
    if not isinstance(data, dict):
        raise GridError(
            f"{source}: expected a mapping with the keys {', '.join(TOP_KEYS)}, got {_kind(data)}"
        )
    for key in data:
        if key not in TOP_KEYS:
            raise GridError(
                f"{place(str(key))}: unknown key {key!r}; expected one of " + ", ".join(TOP_KEYS)
            )
    base = base or Path(source).resolve().parent
    if "policies" not in data:
        raise GridError(
            f"{source}: policies: missing; expected a list of policies, e.g. "
            "[slurm, kant-steered, kant]"
        )
    policies = _list(data, "policies", place, [])
    known = policy_names()
    for p in policies:
        if p not in known:
            raise place.fail(
                ("policies",), f"unknown policy {p!r}; expected one of " + ", ".join(known)
            )
    if len(set(policies)) != len(policies):
        raise place.fail(("policies",), "a policy is listed twice; expected each once")
    seeds = _list(data, "seeds", place, [0])
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise place.fail(("seeds",), f"{seeds!r}: expected whole numbers >= 0")
    if len(set(seeds)) != len(seeds):
        raise place.fail(("seeds",), "a seed is listed twice; expected each once")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise place.fail(("name",), f"expected a text, got {_kind(name)}")
    config_path = data.get("config")
    if config_path is not None:
        if not isinstance(config_path, str):
            raise place.fail(("config",), f"expected a file path, got {_kind(config_path)}")
        config_path = _resolve(config_path, base, place("config"), "config")
    raw_over = data.get("overrides", {}) or {}
    if not isinstance(raw_over, dict):
        raise place.fail(
            ("overrides",), f"expected a mapping of key: [values], got {_kind(raw_over)}"
        )
    overrides = []
    for key, values in raw_over.items():
        where = place("overrides", key)
        if not isinstance(key, str):
            raise GridError(f"{where}: overrides: key {key!r}: expected a dotted key text")
        if not isinstance(values, list) or not values:
            values = [values]  # one value: the same for every cell
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise GridError(
                f"{where}: overrides.{key}: a value is listed twice; expected each once"
            )
        for v in values:
            check_override(key, v, where)
        overrides.append((key, tuple(values)))
    grid = Grid(
        source=source,
        name=name,
        policies=tuple(policies),
        seeds=tuple(seeds),
        traces=_traces(_list(data, "traces", place, [BUNDLED]), base, place),
        clusters=_clusters(_list(data, "clusters", place, [BUNDLED]), base, place),
        overrides=tuple(overrides),
        config_path=config_path,
    )
    return grid


def load_grid(path: str | Path) -> Grid:
    """Read and check the grid file at ``path`` (GridError on any problem)."""
    from ..config import parse_config_file

    p = Path(path)
    if not p.parent.is_dir():
        raise GridError(
            f"{p}: directory {str(p.parent)!r} does not exist; expected a grid YAML file"
        )
    if not p.is_file():
        raise GridError(f"{p}: no such file; expected a grid YAML file")
    try:
        parsed = parse_config_file(p)
    except ConfigError as exc:
        raise GridError(
            str(exc)
            .replace("a UTF-8 YAML or TOML file", "a UTF-8 grid YAML file")
            .replace(
                "the top level must be a mapping of sections",
                "expected a mapping with the keys " + ", ".join(TOP_KEYS),
            )
        ) from None
    if parsed.duplicates:
        line, text = parsed.duplicates[0]
        raise GridError(f"{p}:{line}: {text}")
    return parse_grid(parsed.data, str(p), parsed.lines, p.resolve().parent)
