"""The kant-slurm config: one strict schema, defaults shipped in the package.

``load_config(path)`` reads a YAML or TOML file and merges it over
``kant_slurm/data/default-config.yaml``. The result is a tree of frozen dataclasses
(:class:`KantConfig`). Strict, as Slurm is with slurm.conf: an unknown key, a key given twice,
a value of the wrong type or out of range, or a file that is not UTF-8 is a
:class:`~kant_slurm.errors.ConfigError` that names the file, the line (YAML through the composed
node tree's marks; TOML from its table headers and ``key =`` lines, else the parent's line), the
dotted key (``backfill.reservations``) and what is allowed. Validation goes on past the first
error: the ConfigError holds every one, one per line, in file order.

Rules between keys are :data:`CROSS_FIELD_RULES`; the ones marked ``steering`` (they only matter
where kant steers a live Slurm) are checked with ``steering=True`` (``kant-slurm config check``).

The schema is declared once, as the dataclasses below; each field's ``metadata`` carries its
bounds or allowed values and a one-line help text (``kant-slurm config show`` prints them).
Adding a key is adding a field with a default here and in the shipped YAML.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import ConfigError
from .model import JOB_CLASSES

log = logging.getLogger(__name__)

CONFIG_ENV = "KANT_CONFIG"
"""Environment variable naming a config file used when no path is given on the command line."""


def _spec(help: str, *, lo: float | None = None, hi: float | None = None,
          choices: tuple[str, ...] | None = None, values: tuple[str, ...] | None = None) -> dict:
    """Field metadata: ``lo``/``hi`` bounds, ``choices`` for a string, ``values`` for the
    values of a mapping (each must be one of them)."""
    return {"help": help, "lo": lo, "hi": hi, "choices": choices, "values": values}


def _map() -> Any:
    return field(default_factory=lambda: MappingProxyType({}))


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassesConfig:
    """How jobs get a class and how classes rank in the queue."""

    order: tuple[str, ...] = field(
        default=JOB_CLASSES,
        metadata=_spec("class tiers, first = served first; a permutation of "
                       + ", ".join(JOB_CLASSES), choices=JOB_CLASSES),
    )
    by_qos: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec("QOS name -> class, for jobs without a kant tag", values=JOB_CLASSES),
    )
    by_partition: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec("partition name -> class, for jobs without a tag or mapped QOS",
                       values=JOB_CLASSES),
    )


@dataclass(frozen=True)
class QuotaConfig:
    """Per-account GPU quotas per GPU type and how far an account may borrow beyond them."""

    accounts: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec("account -> {GPU type or '*': GPUs}; account '*' is the default for "
                       "accounts not listed; empty = quotas off", lo=0, hi=10_000_000),
    )
    borrow_limit: float = field(
        default=1.0,
        metadata=_spec("share of its quota an account may borrow on top of it (1.0 = up to "
                       "twice its quota); jobs beyond wait", lo=0.0, hi=1000.0),
    )


@dataclass(frozen=True)
class BackfillConfig:
    """EASY backfill with K reservations."""

    reservations: int = field(
        default=8, metadata=_spec("K: how many blocked jobs get a reservation", lo=0, hi=100_000))
    max_job_test: int = field(
        default=0, metadata=_spec("pending jobs looked at per cycle, 0 = all", lo=0,
                                  hi=10_000_000))


@dataclass(frozen=True)
class EstimatorConfig:
    """Runtime estimates used for reservations (never above the time limit)."""

    use_user_estimate: bool = field(
        default=True, metadata=_spec("use the user's estimate from the kant tag when present"))
    history: bool = field(
        default=False,
        metadata=_spec("estimate from finished jobs of the same user, account and job name"))
    history_min_samples: int = field(
        default=3, metadata=_spec("finished jobs needed before history is trusted", lo=1,
                                  hi=100_000))
    history_quantile: float = field(
        default=0.9, metadata=_spec("quantile of past runtimes used as the estimate", lo=0.0,
                                    hi=1.0))
    history_margin: float = field(
        default=1.1, metadata=_spec("factor applied to the history quantile", lo=1.0, hi=100.0))
    unlimited_runtime: float = field(
        default=365 * 86400.0,
        metadata=_spec("seconds assumed for a job without a time limit", lo=1.0, hi=1e10))


@dataclass(frozen=True)
class InferenceZoneConfig:
    """Nodes where inference services are spread (E-Spread); empty = no zone."""

    nodes: str = field(default="", metadata=_spec("Slurm hostlist, e.g. gn[01-04]"))
    partition: str = field(default="", metadata=_spec("or every node of this partition"))
    elastic: bool = field(
        default=False,
        metadata=_spec("borrow general-pool nodes when inference demand exceeds the zone, and "
                       "lend idle zone nodes to short jobs (engine/zone.py)"))
    max_borrow_nodes: int = field(
        default=0, metadata=_spec("nodes the zone may borrow at once, 0 = no bound", lo=0,
                                  hi=1_000_000))
    lend_horizon: float = field(
        default=3600.0,
        metadata=_spec("idle zone nodes are lent only to jobs expected to end within this many "
                       "seconds, and only while no inference job waits; 0 = never lend",
                       lo=0.0, hi=1e9))


@dataclass(frozen=True)
class WeightsConfig:
    """How node preference tiers become Slurm node Weight (lower Weight = used first)."""

    tier_base: int = field(default=1, metadata=_spec("Weight of tier 0", lo=0, hi=2**31 - 1))
    tier_step: int = field(default=10, metadata=_spec("Weight added per tier", lo=1,
                                                      hi=2**31 - 1))
    best_fit: bool = field(
        default=True,
        metadata=_spec("within the partly-used tier, add the node's free GPUs (at most "
                       "tier_step - 1) to its Weight, so that a job Slurm starts on its own "
                       "takes the fullest node that fits (E-Binpack's best fit by GPUs)"))


@dataclass(frozen=True)
class PlacementConfig:
    """E-Binpack / E-Spread details."""

    alternatives: int = field(
        default=3, metadata=_spec("alternative groups reported per placement", lo=0, hi=100))
    spread_per_node: int = field(
        default=1, metadata=_spec("replicas of one service per node that E-Spread aims for "
                                  "(a job's max_per_node is a hard cap)", lo=1, hi=1024))


@dataclass(frozen=True)
class ActuatorConfig:
    """How the actuator steers a live Slurm (``kant-slurm schedule`` / ``daemon``)."""

    max_changes: int = field(
        default=200, metadata=_spec("scontrol changes per cycle at most (the rest next cycle); "
                                    "0 = no bound", lo=0, hi=1_000_000))
    site_factor_scale: int = field(
        default=100_000,
        metadata=_spec("SiteFactor step between queue tiers; keep it above the span of the "
                       "site's other priority factors", lo=1, hi=100_000_000))
    state_file: str = field(
        default="/var/lib/kant-slurm/state.json",
        metadata=_spec("kant's record of what it set (reset restores from it)"))
    lock_file: str = field(
        default="/run/kant-slurm/steer.lock",
        metadata=_spec("lock that keeps a second daemon or cron run out"))
    pin_jobs: str = field(
        default="multi-node",
        metadata=_spec("which jobs the plan starts now get a node pin: all, multi-node (single-"
                       "node jobs follow the node Weights, which Slurm reads when it starts "
                       "them, so a pin cannot go stale), or none",
                       choices=("all", "multi-node", "none")))


@dataclass(frozen=True)
class InferenceConfig:
    """Inference services: their start-time SLA (issue 8)."""

    sla: float = field(
        default=300.0,
        metadata=_spec("seconds an inference job may wait to start, for jobs whose kant tag "
                       "gives no sla=", lo=0.0, hi=1e9))


@dataclass(frozen=True)
class PreemptionConfig:
    """Preempting (requeueing) running jobs for inference jobs (issue 8, engine/preempt.py).

    A job is preemptible when its QOS, one of its partitions or its class is listed here;
    inference jobs never are.
    """

    enabled: bool = field(
        default=False,
        metadata=_spec("kant: preempt preemptible jobs for an inference job about to miss its "
                       "SLA"))
    qos: tuple[str, ...] = field(
        default=(), metadata=_spec("QOS names whose jobs are preemptible"))
    partitions: tuple[str, ...] = field(
        default=(), metadata=_spec("partitions whose jobs are preemptible"))
    classes: tuple[str, ...] = field(
        default=(), metadata=_spec("job classes that are preemptible (never inference)",
                                   values=("training", "batch")))
    checkpoint_interval: float = field(
        default=3600.0,
        metadata=_spec("seconds between checkpoints assumed for a job that gives none (work "
                       "since the last one is lost)", lo=1.0, hi=1e9))
    grace_seconds: int = field(
        default=120,
        metadata=_spec("seconds between the signal and the kill, for the victim to checkpoint "
                       "(the actuator; Slurm's GraceTime)", lo=0, hi=86400))
    lead_seconds: float = field(
        default=180.0,
        metadata=_spec("kant preempts once an inference job is this close to its SLA deadline "
                       "(or past it) and the plan does not start it in time; keep it above "
                       "grace_seconds plus one cycle (config check refuses it at or below "
                       "grace_seconds)", lo=0.0, hi=1e9))
    max_victims: int = field(
        default=8, metadata=_spec("jobs preempted per cycle at most", lo=1, hi=100_000))
    slurm: bool = field(
        default=False,
        metadata=_spec("the slurm policy models PreemptType=preempt/qos with "
                       "PreemptMode=REQUEUE: inference jobs preempt preemptible ones at once"))
    slurm_youngest_first: bool = field(
        default=False,
        metadata=_spec("slurm model: PreemptParameters=youngest_first (candidates by start "
                       "time, newest first, instead of lowest priority first)"))


@dataclass(frozen=True)
class KantConfig:
    """The whole config (``kant-slurm config show`` prints it merged over the defaults)."""

    policy: str = field(default="kant", metadata=_spec("policy used by plan and the daemon",
                                                       choices=("kant", "slurm", "fifo")))
    classes: ClassesConfig = field(default_factory=ClassesConfig)
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    backfill: BackfillConfig = field(default_factory=BackfillConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    inference_zone: InferenceZoneConfig = field(default_factory=InferenceZoneConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    actuator: ActuatorConfig = field(default_factory=ActuatorConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    preemption: PreemptionConfig = field(default_factory=PreemptionConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return _to_plain(self)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "a list of strings"
    if origin in (Mapping, dict):
        k, v = typing.get_args(tp)
        return f"a mapping of {_type_name(k)} to {_type_name(v)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping (section)"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp))


def _bounds(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    return ""


KeyPath = tuple[str, ...]
"""A key's place in the config: ``("backfill", "reservations")``."""

_BAD = object()
"""What a validator returns for a value it reported as wrong (the caller builds nothing)."""


class _Problems:
    """Every error of one config, each with the file line its key is on when that is known.

    Validation goes on past the first error so that one ``config check`` shows them all.
    """

    def __init__(self, where: str, lines: Mapping[KeyPath, int] | None = None):
        self.where = where
        self.lines = lines or {}
        self.items: list[tuple[float, int, str]] = []
        self.values: dict[KeyPath, Any] = {}  # every leaf that passed, for cross-field rules

    def line(self, *paths: KeyPath) -> int | None:
        """The line of the first of ``paths`` written in the file, else of the nearest parent
        of the first that has one (a key inside a TOML inline table, a default's section)."""
        for path in paths:
            if path in self.lines:
                return self.lines[path]
        for path in paths:
            for i in range(len(path) - 1, 0, -1):
                if path[:i] in self.lines:
                    return self.lines[path[:i]]
        return None

    def add(self, path: KeyPath, text: str, *more: KeyPath) -> None:
        self.add_at(self.line(path, *more), text)

    def add_at(self, line: int | None, text: str) -> None:
        place = f"{self.where}:{line}" if line else self.where
        # Sorted by line so that a long list reads top to bottom like the file.
        self.items.append((line or float("inf"), len(self.items), f"{place}: {text}"))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("\n".join(text for _, _, text in sorted(self.items)))


def _dotted(path: KeyPath) -> str:
    return ".".join(str(k) for k in path)


def _check_scalar(value: Any, tp: Any, path: KeyPath, meta: Mapping[str, Any],
                  problems: _Problems) -> Any:
    given = value  # as written (an int given for a float key is shown as written)

    def bad(expected: str) -> Any:
        problems.add(path, f"{_dotted(path)} = {given!r}: expected {expected}")
        return _BAD

    if tp is bool:
        if not isinstance(value, bool):
            return bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return bad("an integer" + _bounds(meta))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad("a number" + _bounds(meta))
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            return bad("a string" + (f", one of: {', '.join(meta['choices'])}"
                                     if meta.get("choices") else ""))
        choices = meta.get("choices")
        if choices and value not in choices:
            return bad(f"one of: {', '.join(choices)}")
        return value
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return bad(f"{_type_name(tp)}{_bounds(meta)}")
    return value


def _build(cls: type, raw: Any, prefix: KeyPath, problems: _Problems) -> Any:
    """Validate ``raw`` (a mapping) against dataclass ``cls``; unknown keys are errors."""
    if not isinstance(raw, Mapping):
        problems.add(prefix, f"{_dotted(prefix) or 'top level'} must be a mapping, got {raw!r}")
        return _BAD
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    ok = True
    for key in raw:
        if key not in fields:
            problems.add(prefix + (key,), f"unknown key {_dotted(prefix + (key,))!r}; allowed "
                         f"here: {', '.join(fields)}")
            ok = False
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        kwargs[name] = _value(hints[name], raw[name], prefix + (name,), f.metadata, problems)
        ok = ok and kwargs[name] is not _BAD
    return cls(**kwargs) if ok else _BAD


def _value(tp: Any, value: Any, path: KeyPath, meta: Mapping[str, Any],
           problems: _Problems) -> Any:
    key = _dotted(path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, path, problems)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.add(path, f"{key} = {value!r}: expected a list of strings")
            return _BAD
        allowed = meta.get("values") or ()
        wrong = [v for v in value if allowed and v not in allowed]
        if wrong:
            problems.add(path, f"{key} = {list(value)!r}: {wrong[0]!r} is not one of: "
                         f"{', '.join(allowed)}")
            return _BAD
        choices = meta.get("choices")
        if choices and sorted(value) != sorted(choices):
            problems.add(path, f"{key} = {list(value)!r}: expected each of "
                         f"{', '.join(choices)} exactly once")
            return _BAD
        problems.values[path] = tuple(value)
        return tuple(value)
    if origin in (Mapping, dict):
        _, vtp = typing.get_args(tp)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            problems.add(path, f"{key} = {value!r}: expected {_type_name(tp)}")
            return _BAD
        out = {}
        for k, v in value.items():
            sub = path + (k,)
            if not isinstance(k, str):
                problems.add(sub, f"{_dotted(sub)}: keys must be strings")
                out[k] = _BAD
            elif typing.get_origin(vtp) in (Mapping, dict):
                out[k] = _value(vtp, v, sub, meta, problems)
            elif meta.get("values") and v not in meta["values"]:
                problems.add(sub, f"{_dotted(sub)} = {v!r}: expected one of: "
                             f"{', '.join(meta['values'])}")
                out[k] = _BAD
            else:
                out[k] = _check_scalar(v, vtp, sub, meta, problems)
        if any(v is _BAD for v in out.values()):
            return _BAD
        return MappingProxyType(out)
    checked = _check_scalar(value, tp, path, meta, problems)
    if checked is not _BAD:
        problems.values[path] = checked
    return checked


# --------------------------------------------------------------------------------------------
# Cross-field rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossFieldRule:
    """A rule between keys; ``steering`` rules hold only where kant steers a live Slurm."""

    keys: tuple[KeyPath, ...]
    holds: typing.Callable[..., bool]
    explain: typing.Callable[..., str]
    steering: bool = False


CROSS_FIELD_RULES = (
    # The victim gets grace_seconds to checkpoint before Slurm requeues it, and kant acts once
    # per cycle: preempting any later than grace + a cycle before the deadline misses the SLA.
    # The simulator models no grace time (benchmarks/mixed-kant.yaml runs lead 30 s), hence a
    # steering rule.
    CrossFieldRule(
        keys=(("preemption", "lead_seconds"), ("preemption", "grace_seconds")),
        holds=lambda lead, grace: lead > grace,
        explain=lambda lead, grace: (
            f"preemption.lead_seconds = {lead:g} is not above preemption.grace_seconds = "
            f"{grace:g}: expected more than grace_seconds plus one daemon cycle (--interval, "
            f"30 s by default), e.g. {grace + 60:g}, so that a victim's grace time ends before "
            "the inference job's deadline"),
        steering=True),
)


def _check_cross_fields(problems: _Problems, steering: bool) -> None:
    """Add a problem for every broken rule whose keys all passed their own checks."""
    for rule in CROSS_FIELD_RULES:
        if rule.steering and not steering:
            continue
        if not all(k in problems.values for k in rule.keys):
            continue  # a key already has its own error
        args = [problems.values[k] for k in rule.keys]
        if not rule.holds(*args):
            problems.add(rule.keys[0], rule.explain(*args), *rule.keys[1:])


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Reading files, with the line of every key
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFile:
    """A parsed config file: its plain mapping and the line each key path is on."""

    path: Path
    data: dict[str, Any]
    lines: Mapping[KeyPath, int]
    duplicates: tuple[tuple[int, str], ...] = ()  # (line, message): keys given twice


def _yaml_key_lines(node: yaml.Node, problems: list[tuple[int, str]]) -> dict[KeyPath, int]:
    """The line of every mapping key under ``node``; a key given twice in one mapping is a
    problem (PyYAML would silently keep the last one)."""
    lines: dict[KeyPath, int] = {}

    def walk(n: yaml.Node, path: KeyPath) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in n.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is None:
                    continue  # a complex key: validation reports it
                sub = path + (key,)
                if key in seen:
                    problems.append((line, f"duplicate key {_dotted(sub)!r} (first at line "
                                           f"{seen[key]}); expected each key once"))
                else:
                    seen[key] = line
                # The last one is the value in force: its errors point at it.
                lines[sub] = line
                walk(value_node, sub)
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item, path)

    walk(node, ())
    return lines


_TOML_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_TOML_DOTTED = re.compile(rf"\s*({_TOML_KEY}(?:\s*\.\s*{_TOML_KEY})*)\s*")


def _toml_path(dotted: str) -> KeyPath:
    parts = re.findall(_TOML_KEY, dotted)
    return tuple(tomllib.loads(f"k = {p}")["k"] if p[0] in "\"'" else p for p in parts)


def _toml_keys(text: str) -> typing.Iterator[tuple[KeyPath, int]]:
    """Every table header and ``key =`` of a TOML text as (key path, line), in file order
    (best effort: a key inside an inline table or a multi-line value is not seen)."""
    table: KeyPath = ()
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        header = re.fullmatch(rf"\[\[?{_TOML_DOTTED.pattern}\]\]?\s*(#.*)?", stripped)
        if header:
            table = _toml_path(header.group(1))
            yield table, number
            continue
        assign = re.match(rf"{_TOML_DOTTED.pattern}=", stripped)
        if assign:
            path = table + _toml_path(assign.group(1))
            # A dotted key (quota.borrow_limit = 1) also places its parents.
            for i in range(len(table) + 1, len(path) + 1):
                yield path[:i], number


def _toml_key_lines(text: str) -> dict[KeyPath, int]:
    """The line of each key of a TOML text (a key missing here gets its parent's line)."""
    lines: dict[KeyPath, int] = {}
    for path, number in _toml_keys(text):
        lines.setdefault(path, number)
    return lines


def _toml_error(p: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """tomllib's message with the file:line prefix, naming the key when tomllib refuses a
    key given twice (its message names only line and column)."""
    msg = str(exc)
    at = re.search(r"at line (\d+)", msg)
    if at is None:
        return ConfigError(f"{p}: not valid TOML: {msg}")
    line = int(at.group(1))
    if msg.startswith(("Cannot overwrite a value", "Cannot declare")):
        keys = [k for k, n in _toml_keys(text) if n == line]
        if keys:
            key = _dotted(max(keys, key=len))
            return ConfigError(f"{p}:{line}: duplicate key {key!r} (TOML: {msg}); expected "
                               "each key once")
    return ConfigError(f"{p}:{line}: not valid TOML: {msg}")


def _decode(p: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); expected "
                          "a UTF-8 YAML or TOML file") from None


def parse_config_file(path: str | os.PathLike) -> ConfigFile:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file, keeping the line of every key.

    A file that cannot be read, is not UTF-8 or is not valid YAML/TOML is a
    :class:`ConfigError` naming file and line. A key given twice in one YAML mapping (PyYAML
    keeps the last silently; TOML refuses it itself) is listed in ``duplicates`` so that
    validation reports it with the other errors.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    text = _decode(p, raw)
    data: Any
    if p.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(p, text, exc) from None
        return ConfigFile(p, data, _toml_key_lines(text))
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}"
                          ) from None
    if data is None:
        return ConfigFile(p, {}, {})
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    assert node is not None  # the document (data) was built from it
    duplicates: list[tuple[int, str]] = []
    lines = _yaml_key_lines(node, duplicates)
    return ConfigFile(p, dict(data), lines, tuple(duplicates))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file into a plain mapping (a duplicate key
    is an error)."""
    parsed = parse_config_file(path)
    problems = _Problems(str(path))
    for line, text in parsed.duplicates:
        problems.add_at(line, text)
    problems.raise_if_any()
    return parsed.data


def default_config_text() -> str:
    """The shipped defaults, as YAML with comments."""
    return resources.files("kant_slurm").joinpath("data/default-config.yaml").read_text("utf-8")


def config_from_dict(raw: Mapping[str, Any], where: str = "config", *,
                     lines: Mapping[KeyPath, int] | None = None,
                     duplicates: typing.Sequence[tuple[int, str]] = (),
                     steering: bool = False) -> KantConfig:
    """Validate a mapping merged over the shipped defaults.

    Every error is reported at once, one line each, sorted by the line of its key (``lines``,
    from :func:`parse_config_file`), ``duplicates`` among them. With ``steering``, the
    cross-field rules of live steering are checked too.
    """
    defaults = yaml.safe_load(default_config_text()) or {}
    problems = _Problems(where, lines)
    for line, text in duplicates:
        problems.add_at(line, text)
    config = _build(KantConfig, _deep_merge(defaults, raw), (), problems)
    _check_cross_fields(problems, steering)
    problems.raise_if_any()
    return config


def load_config(path: str | os.PathLike | None = None, *, steering: bool = False) -> KantConfig:
    """The shipped defaults, with ``path`` (YAML or TOML) merged over them.

    With ``path`` None, the file named by ``$KANT_CONFIG`` is used if set, else the defaults.
    ``steering`` adds the cross-field rules that matter where kant steers a live Slurm
    (:data:`CROSS_FIELD_RULES`; ``kant-slurm config check`` applies them).
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return config_from_dict({}, "default-config.yaml", steering=steering)
    parsed = parse_config_file(path)
    return config_from_dict(parsed.data, str(path), lines=parsed.lines,
                            duplicates=parsed.duplicates, steering=steering)


def describe_schema() -> list[tuple[str, str, str]]:
    """(dotted key, type and bounds, help) for every leaf key, for docs and ``config show``."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            tp = hints[f.name]
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                walk(tp, key + ".")
                continue
            meta = f.metadata
            desc = _type_name(tp) + _bounds(meta)
            if meta.get("choices"):
                desc += " (" + "|".join(meta["choices"]) + ")"
            if meta.get("values"):
                desc += " (values: " + "|".join(meta["values"]) + ")"
            rows.append((key, desc, meta.get("help", "")))

    walk(KantConfig, "")
    return rows


# Keep the unused-import checker quiet about names used only in annotations.
_ = types


def inference_advice(config: KantConfig, inference_jobs: int | None = None) -> list[str]:
    """What a config lacks for inference beside training, one line each; [] when nothing. Pure.

    Why: with the defaults (no zone, no preemption) a mixed trace is a trap. On the full Philly
    Sep-Oct on 64 x 8 with the Alibaba inference trace, `kant` met its SLA less often than
    `slurm` and fragmented more (README, "Mixed training and inference"). ``inference_jobs``
    is the count in a workload (simulate); None means a live cluster's config, where the
    classes mapped to inference by QOS or partition tell whether inference runs at all.
    """
    if inference_jobs is None:
        mapped = [f"{kind} {name}" for kind, table in (("QOS", config.classes.by_qos),
                                                      ("partition", config.classes.by_partition))
                  for name, cls in table.items() if cls == "inference"]
        if not mapped:
            return []
        what = f"inference jobs ({', '.join(mapped)})"
    elif inference_jobs <= 0:
        return []
    else:
        what = f"{inference_jobs:,} inference jobs"
    out = []
    zone = config.inference_zone
    if not zone.nodes and not zone.partition:
        out.append(f"{what} but no inference zone (inference_zone.nodes or .partition): "
                   "inference replicas are packed among training jobs and wait for them; "
                   "see the README's mixed-cluster config")
    if not config.preemption.enabled:
        out.append(f"{what} but preemption.enabled is false: an inference job that finds no "
                   "room waits for training jobs to end, whatever its SLA")
    return out
