"""The config schema: one frozen dataclass per section, :class:`KantConfig` for the whole.

Each field's ``metadata`` (:func:`_spec`) carries its bounds or allowed values and a one-line
help text; validation (:mod:`.load`) checks values against them and :func:`describe_schema`
lists them (``kant-slurm config show --schema``). Adding a key is adding a field with a default
here and in the shipped ``kant_slurm/data/default-config.yaml``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..model import JOB_CLASSES

KeyPath = tuple[str, ...]
"""A key's place in the config: ``("backfill", "reservations")``."""


def _spec(
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    values: tuple[str, ...] | None = None,
) -> dict:
    """Field metadata: ``lo``/``hi`` bounds, ``choices`` for a string, ``values`` for the
    values of a mapping (each must be one of them)."""
    return {"help": help, "lo": lo, "hi": hi, "choices": choices, "values": values}


@dataclass(frozen=True)
class ClassesConfig:
    """How jobs get a class and how classes rank in the queue."""

    order: tuple[str, ...] = field(
        default=JOB_CLASSES,
        metadata=_spec(
            "class tiers, first = served first; a permutation of " + ", ".join(JOB_CLASSES),
            choices=JOB_CLASSES,
        ),
    )
    by_qos: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec("QOS name -> class, for jobs without a kant tag", values=JOB_CLASSES),
    )
    by_partition: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec(
            "partition name -> class, for jobs without a tag or mapped QOS", values=JOB_CLASSES
        ),
    )


@dataclass(frozen=True)
class QuotaConfig:
    """Per-account GPU quotas per GPU type and how far an account may borrow beyond them."""

    accounts: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec(
            "account -> {GPU type or '*': GPUs}; account '*' is the default for "
            "accounts not listed; empty = quotas off",
            lo=0,
            hi=10_000_000,
        ),
    )
    borrow_limit: float = field(
        default=1.0,
        metadata=_spec(
            "share of its quota an account may borrow on top of it (1.0 = up to "
            "twice its quota); jobs beyond wait",
            lo=0.0,
            hi=1000.0,
        ),
    )


@dataclass(frozen=True)
class BackfillConfig:
    """EASY backfill with K reservations."""

    reservations: int = field(
        default=8, metadata=_spec("K: how many blocked jobs get a reservation", lo=0, hi=100_000)
    )
    max_job_test: int = field(
        default=0, metadata=_spec("pending jobs looked at per cycle, 0 = all", lo=0, hi=10_000_000)
    )


@dataclass(frozen=True)
class EstimatorConfig:
    """Runtime estimates used for reservations (never above the time limit)."""

    use_user_estimate: bool = field(
        default=True, metadata=_spec("use the user's estimate from the kant tag when present")
    )
    history: bool = field(
        default=False,
        metadata=_spec("estimate from finished jobs of the same user, account and job name"),
    )
    history_min_samples: int = field(
        default=3,
        metadata=_spec("finished jobs needed before history is trusted", lo=1, hi=100_000),
    )
    history_quantile: float = field(
        default=0.9,
        metadata=_spec("quantile of past runtimes used as the estimate", lo=0.0, hi=1.0),
    )
    history_margin: float = field(
        default=1.1, metadata=_spec("factor applied to the history quantile", lo=1.0, hi=100.0)
    )
    unlimited_runtime: float = field(
        default=365 * 86400.0,
        metadata=_spec("seconds assumed for a job without a time limit", lo=1.0, hi=1e10),
    )


@dataclass(frozen=True)
class InferenceZoneConfig:
    """Nodes where inference services are spread (E-Spread); empty = no zone."""

    nodes: str = field(default="", metadata=_spec("Slurm hostlist, e.g. gn[01-04]"))
    partition: str = field(default="", metadata=_spec("or every node of this partition"))
    elastic: bool = field(
        default=False,
        metadata=_spec(
            "borrow general-pool nodes when inference demand exceeds the zone, and "
            "lend idle zone nodes to short jobs (engine/zone.py)"
        ),
    )
    max_borrow_nodes: int = field(
        default=0,
        metadata=_spec("nodes the zone may borrow at once, 0 = no bound", lo=0, hi=1_000_000),
    )
    lend_horizon: float = field(
        default=3600.0,
        metadata=_spec(
            "idle zone nodes are lent only to jobs expected to end within this many "
            "seconds, and only while no inference job waits; 0 = never lend",
            lo=0.0,
            hi=1e9,
        ),
    )


@dataclass(frozen=True)
class WeightsConfig:
    """How node preference tiers become Slurm node Weight (lower Weight = used first)."""

    tier_base: int = field(default=1, metadata=_spec("Weight of tier 0", lo=0, hi=2**31 - 1))
    tier_step: int = field(default=10, metadata=_spec("Weight added per tier", lo=1, hi=2**31 - 1))
    best_fit: bool = field(
        default=True,
        metadata=_spec(
            "within the partly-used tier, add the node's free GPUs (at most "
            "tier_step - 1) to its Weight, so that a job Slurm starts on its own "
            "takes the fullest node that fits (E-Binpack's best fit by GPUs)"
        ),
    )
    deep_queue: float = field(
        default=1.0,
        metadata=_spec(
            "on Slurm 26.05 and later: when the pending jobs ask for at least this many "
            "times the cluster's GPUs, best_fit pauses and partly used nodes share one "
            "Weight, so Slurm fills them in node order (a steadier packing under a deep "
            "queue); 0 = never pause",
            lo=0.0,
            hi=1e6,
        ),
    )


@dataclass(frozen=True)
class PlacementConfig:
    """E-Binpack / E-Spread details."""

    alternatives: int = field(
        default=3, metadata=_spec("alternative groups reported per placement", lo=0, hi=100)
    )
    spread_per_node: int = field(
        default=1,
        metadata=_spec(
            "replicas of one service per node that E-Spread aims for "
            "(a job's max_per_node is a hard cap)",
            lo=1,
            hi=1024,
        ),
    )
    single_node: str = field(
        default="leaf",
        metadata=_spec(
            "E-Binpack for one-node jobs: leaf (the fullest leaf group that fits, then the "
            "node with the fewest free GPUs in it) or node (the node with the fewest free "
            "GPUs that fit, ties to the fullest leaf: lower GFR where the cluster has room, "
            "higher where the queue is deep)",
            choices=("leaf", "node"),
        ),
    )


@dataclass(frozen=True)
class ActuatorConfig:
    """How the actuator steers a live Slurm (``kant-slurm schedule`` / ``daemon``)."""

    max_changes: int = field(
        default=200,
        metadata=_spec(
            "scontrol changes per cycle at most (the rest next cycle); 0 = no bound",
            lo=0,
            hi=1_000_000,
        ),
    )
    site_factor_scale: int = field(
        default=100_000,
        metadata=_spec(
            "SiteFactor step between queue tiers; keep it above the span of the "
            "site's other priority factors",
            lo=1,
            hi=100_000_000,
        ),
    )
    state_file: str = field(
        default="/var/lib/kant-slurm/state.json",
        metadata=_spec("kant's record of what it set (reset restores from it)"),
    )
    lock_file: str = field(
        default="/run/kant-slurm/steer.lock",
        metadata=_spec("lock that keeps a second daemon or cron run out"),
    )
    pin_jobs: str = field(
        default="none",
        metadata=_spec(
            "which jobs the plan starts now get a node pin: none (Slurm places every "
            "job by the node Weights and its switch tree; a job that preemptions make "
            "room for is pinned whatever this says), multi-node, or all; in the "
            "simulated Philly loads pins of multi-node starts did not help on 22.05 and "
            "fragmented more on 26.05 (README, 'Pins, one lever at a time')",
            choices=("all", "multi-node", "none"),
        ),
    )


@dataclass(frozen=True)
class InferenceConfig:
    """Inference services: their start-time SLA (issue 8)."""

    sla: float = field(
        default=300.0,
        metadata=_spec(
            "seconds an inference job may wait to start, for jobs whose kant tag gives no sla=",
            lo=0.0,
            hi=1e9,
        ),
    )


@dataclass(frozen=True)
class PreemptionConfig:
    """Preempting (requeueing) running jobs for inference jobs (issue 8, engine/preempt/).

    A job is preemptible when its QOS, one of its partitions or its class is listed here;
    inference jobs never are.
    """

    enabled: bool = field(
        default=False,
        metadata=_spec("kant: preempt preemptible jobs for an inference job about to miss its SLA"),
    )
    qos: tuple[str, ...] = field(default=(), metadata=_spec("QOS names whose jobs are preemptible"))
    partitions: tuple[str, ...] = field(
        default=(), metadata=_spec("partitions whose jobs are preemptible")
    )
    classes: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            "job classes that are preemptible (never inference)", values=("training", "batch")
        ),
    )
    checkpoint_interval: float = field(
        default=3600.0,
        metadata=_spec(
            "seconds between checkpoints assumed for a job that gives none (work "
            "since the last one is lost)",
            lo=1.0,
            hi=1e9,
        ),
    )
    grace_seconds: int = field(
        default=120,
        metadata=_spec(
            "seconds between the signal and the kill, for the victim to checkpoint "
            "(the actuator; Slurm's GraceTime)",
            lo=0,
            hi=86400,
        ),
    )
    lead_seconds: float = field(
        default=180.0,
        metadata=_spec(
            "kant preempts once an inference job is this close to its SLA deadline "
            "(or past it) and the plan does not start it in time; keep it above "
            "grace_seconds plus one cycle (config check refuses it at or below "
            "grace_seconds)",
            lo=0.0,
            hi=1e9,
        ),
    )
    max_victims: int = field(
        default=8, metadata=_spec("jobs preempted per cycle at most", lo=1, hi=100_000)
    )
    slurm: bool = field(
        default=False,
        metadata=_spec(
            "the slurm policy models PreemptType=preempt/qos with "
            "PreemptMode=REQUEUE: inference jobs preempt preemptible ones at once"
        ),
    )
    slurm_youngest_first: bool = field(
        default=False,
        metadata=_spec(
            "slurm model: PreemptParameters=youngest_first (candidates by start "
            "time, newest first, instead of lowest priority first)"
        ),
    )


@dataclass(frozen=True)
class KantConfig:
    """The whole config (``kant-slurm config show`` prints it merged over the defaults)."""

    policy: str = field(
        default="kant",
        metadata=_spec("policy used by plan and the daemon", choices=("kant", "slurm", "fifo")),
    )
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


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Describing keys (error messages and ``config show --schema``)
# --------------------------------------------------------------------------------------------


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
        tp, str(tp)
    )


def _bounds(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    return ""


def _dotted(path: KeyPath) -> str:
    return ".".join(str(k) for k in path)


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
