"""Policies registered by name (``fifo``, ``slurm``, ``kant``), as Slurm registers plugins.

A policy is built from the config and then called once per cycle::

    policy = get_policy("kant", config)
    plan = policy.plan(snapshot, now)

It must be pure: no Slurm, no files, no wall clock; ``now`` is its input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..model import ClusterSnapshot
    from .estimate import HistoryEstimator
    from .plan import Plan


class Policy(Protocol):
    name: str

    def plan(self, snapshot: ClusterSnapshot, now: float) -> Plan: ...

    def with_history(self, history: HistoryEstimator | None) -> Policy:
        """Use runtime estimates from past jobs when the config's ``estimator.history`` is on
        (``live_plan`` calls it then); returns the policy itself."""
        ...


PolicyFactory = Callable[..., Policy]
_REGISTRY: dict[str, PolicyFactory] = {}


def register(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    """Class decorator: make a policy available under ``name``."""

    def deco(factory: PolicyFactory) -> PolicyFactory:
        if name in _REGISTRY:
            raise ValueError(f"policy {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def policy_names() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def get_policy(name: str, config=None) -> Policy:
    """Build the policy ``name`` with ``config`` (a KantConfig; defaults when None)."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown policy {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return factory(config)


def _load_builtin() -> None:
    # Imported for their @register side effect; late so that the registry has no import cycle.
    from . import policies  # noqa: F401
    from ..sim import steered  # noqa: F401  (kant-steered: stock Slurm steered by kant)
