"""Judgments of a config as a whole: the rules between keys that validation enforces
(:data:`CROSS_FIELD_RULES`), and the advice for inference that a valid config may still need
(:func:`inference_advice`).

A rule marked ``steering`` only matters where kant steers a live Slurm; validation checks it
with ``steering=True`` (``kant-slurm config check``).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from .schema import KantConfig, KeyPath


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
            "the inference job's deadline"
        ),
        steering=True,
    ),
)


def inference_advice(config: KantConfig, inference_jobs: int | None = None) -> list[str]:
    """What a config lacks for inference beside training, one line each; [] when nothing. Pure.

    Why: with the defaults (no zone, no preemption) a mixed trace is a trap. On the full Philly
    Sep-Oct on 64 x 8 with the Alibaba inference trace, `kant` met its SLA less often than
    `slurm` and fragmented more (README, "Mixed training and inference"). ``inference_jobs``
    is the count in a workload (simulate); None means a live cluster's config, where the
    classes mapped to inference by QOS or partition tell whether inference runs at all.
    """
    if inference_jobs is None:
        mapped = [
            f"{kind} {name}"
            for kind, table in (
                ("QOS", config.classes.by_qos),
                ("partition", config.classes.by_partition),
            )
            for name, cls in table.items()
            if cls == "inference"
        ]
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
        out.append(
            f"{what} but no inference zone (inference_zone.nodes or .partition): "
            "inference replicas are packed among training jobs and wait for them; "
            "see the README's mixed-cluster config"
        )
    if not config.preemption.enabled:
        out.append(
            f"{what} but preemption.enabled is false: an inference job that finds no "
            "room waits for training jobs to end, whatever its SLA"
        )
    return out
