"""The ``SchedulerParameters`` of slurm.conf that the ``slurm`` model understands (pure).

The model (kant_slurm/engine/policies/slurm.py, ``SlurmPolicy``) reads three of Slurm's backfill
parameters; a site's own values make the ``slurm`` run of ``whatif`` its Slurm "as configured",
and a sweep can vary them (grid keys ``slurm.<name>``):

``bf_max_job_test``  jobs the backfill pass tests (the model's depth and reservation count)
``bf_window``        minutes ahead a reservation may be planned (slurm.conf counts minutes)
``bf_interval``      seconds between backfill passes (the simulator's cycle interval; it holds
                     for every policy, as the simulator has one cycle clock)

Every other parameter is Slurm's and not modelled; it is listed as ignored so the user sees
what the replay did not take into account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# name -> (type, lowest allowed value, what it is): slurm.conf(5)'s ranges where it gives one.
MODELLED = {
    "bf_max_job_test": (int, 1, "jobs tested per backfill pass"),
    "bf_window": (int, 1, "minutes ahead a backfill reservation may be planned"),
    "bf_interval": (int, 1, "seconds between backfill passes (the simulator's cycle interval)"),
}


@dataclass(frozen=True)
class SchedulerParameters:
    """The modelled parameters a site sets (absent = Slurm's default) and the rest, ignored."""

    values: Mapping[str, int]
    ignored: tuple[str, ...] = ()

    def describe(self) -> str:
        set_ = ", ".join(f"{k}={v}" for k, v in sorted(self.values.items())) or "Slurm's defaults"
        return set_ + (f" (not modelled: {', '.join(self.ignored)})" if self.ignored else "")


def parse_scheduler_parameters(
    text: str, source: str = "SchedulerParameters"
) -> SchedulerParameters:
    """``bf_window=2880,bf_continue,default_queue_depth=200`` -> the modelled values and the
    names of the others. A modelled parameter with a value that is not a whole number >= its
    minimum raises ValueError naming it (``source`` says where it came from)."""
    values: dict[str, int] = {}
    ignored: list[str] = []
    text = (text or "").strip()
    if text in ("", "(null)"):
        return SchedulerParameters({})
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, raw = item.partition("=")
        name = name.strip().lower()
        if name not in MODELLED:
            ignored.append(name)
            continue
        kind, lo, what = MODELLED[name]
        try:
            value = kind(raw.strip())
        except ValueError:
            value = None
        if value is None or value < lo:
            raise ValueError(f"{source}: {name}={raw!r}: expected a whole number >= {lo} ({what})")
        values[name] = value
    return SchedulerParameters(values, tuple(ignored))


def check_value(name: str, value: Any) -> str | None:
    """None if ``value`` is a valid value of the modelled parameter ``name``, else what is
    expected (for grid errors)."""
    if name not in MODELLED:
        return f"one of the modelled SchedulerParameters: {', '.join(MODELLED)}"
    _, lo, what = MODELLED[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        return f"a whole number >= {lo} ({what})"
    return None


def interval_of(values: Mapping[str, int], default: float) -> float:
    """The simulator's cycle interval: ``bf_interval`` when set, else ``default``."""
    return float(values["bf_interval"]) if "bf_interval" in values else float(default)


def apply_to_policy(policy: Any, values: Mapping[str, int], release: str | None = None) -> None:
    """Set ``bf_max_job_test`` and ``bf_window``, and the Slurm ``release`` when given, on the
    ``slurm`` model inside ``policy`` (the policy itself, or the model a ``kant-steered`` policy
    drives); other policies have no SchedulerParameters and are left as they are."""
    from ..engine.policies import SlurmPolicy

    model = policy if isinstance(policy, SlurmPolicy) else getattr(policy, "slurm", None)
    if not isinstance(model, SlurmPolicy):
        return
    if "bf_max_job_test" in values:
        model.BF_MAX_JOB_TEST = int(values["bf_max_job_test"])
    if "bf_window" in values:
        model.BF_WINDOW_S = int(values["bf_window"]) * 60.0
    if release is not None:
        model.release = release


class PolicySetup:
    """A picklable ``compare_policies(policy_setup=...)`` that applies ``values``."""

    def __init__(self, values: Mapping[str, int], release: str | None = None) -> None:
        self.values = dict(values)
        self.release = release

    def __call__(self, policy: Any) -> None:
        apply_to_policy(policy, self.values, self.release)
