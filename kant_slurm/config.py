"""The kant-slurm config: one strict schema, defaults shipped in the package.

``load_config(path)`` reads a YAML or TOML file and merges it over
``kant_slurm/data/default-config.yaml``. The result is a tree of frozen dataclasses
(:class:`KantConfig`). Strict, as Slurm is with slurm.conf: an unknown key, a value of the wrong
type or a value out of range is a :class:`~kant_slurm.errors.ConfigError` that names the dotted
key (``backfill.reservations``), the file and what is allowed.

The schema is declared once, as the dataclasses below; each field's ``metadata`` carries its
bounds or allowed values and a one-line help text (``kant-slurm config show`` prints them).
Adding a key is adding a field with a default here and in the shipped YAML.
"""

from __future__ import annotations

import dataclasses
import logging
import os
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
                       "grace_seconds plus one cycle", lo=0.0, hi=1e9))
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


def _check_scalar(value: Any, tp: Any, key: str, meta: Mapping[str, Any], where: str) -> Any:
    given = value  # as written (an int given for a float key is shown as written)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {given!r}: expected {expected}")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer" + _bounds(meta))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number" + _bounds(meta))
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise bad("a string" + (f", one of: {', '.join(meta['choices'])}"
                                    if meta.get("choices") else ""))
        choices = meta.get("choices")
        if choices and value not in choices:
            raise bad(f"one of: {', '.join(choices)}")
        return value
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad(f"{_type_name(tp)}{_bounds(meta)}")
    return value


def _build(cls: type, raw: Any, prefix: str, where: str) -> Any:
    """Validate ``raw`` (a mapping) against dataclass ``cls``; unknown keys are errors."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {prefix or 'top level'} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(
                f"{where}: unknown key {dotted!r}; allowed here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        dotted = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _value(hints[name], raw[name], dotted, f.metadata, where)
    return cls(**kwargs)


def _value(tp: Any, value: Any, key: str, meta: Mapping[str, Any], where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key} = {value!r}: expected a list of strings")
        allowed = meta.get("values")
        if allowed:
            for v in value:
                if v not in allowed:
                    raise ConfigError(f"{where}: {key} = {list(value)!r}: {v!r} is not one "
                                      f"of: {', '.join(allowed)}")
        choices = meta.get("choices")
        if choices:
            if sorted(value) != sorted(choices):
                raise ConfigError(
                    f"{where}: {key} = {list(value)!r}: expected each of "
                    f"{', '.join(choices)} exactly once")
        return tuple(value)
    if origin in (Mapping, dict):
        _, vtp = typing.get_args(tp)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} = {value!r}: expected {_type_name(tp)}")
        out = {}
        for k, v in value.items():
            sub = f"{key}.{k}"
            if not isinstance(k, str):
                raise ConfigError(f"{where}: {sub}: keys must be strings")
            if typing.get_origin(vtp) in (Mapping, dict):
                out[k] = _value(vtp, v, sub, meta, where)
            else:
                allowed = meta.get("values")
                if allowed:
                    if v not in allowed:
                        raise ConfigError(
                            f"{where}: {sub} = {v!r}: expected one of: {', '.join(allowed)}")
                out[k] = _check_scalar(v, vtp, sub, meta, where)
        return MappingProxyType(out)
    return _check_scalar(value, tp, key, meta, where)


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file into a plain mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}:{at} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return dict(data)


def default_config_text() -> str:
    """The shipped defaults, as YAML with comments."""
    return resources.files("kant_slurm").joinpath("data/default-config.yaml").read_text("utf-8")


def config_from_dict(raw: Mapping[str, Any], where: str = "config") -> KantConfig:
    """Validate a mapping merged over the shipped defaults."""
    defaults = yaml.safe_load(default_config_text()) or {}
    return _build(KantConfig, _deep_merge(defaults, raw), "", where)


def load_config(path: str | os.PathLike | None = None) -> KantConfig:
    """The shipped defaults, with ``path`` (YAML or TOML) merged over them.

    With ``path`` None, the file named by ``$KANT_CONFIG`` is used if set, else the defaults.
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return config_from_dict({}, "default-config.yaml")
    return config_from_dict(read_config_file(path), str(path))


def describe_schema() -> list[tuple[str, str, str]]:
    """(dotted key, type and bounds, help) for every leaf key, for docs and ``config show``."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
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
