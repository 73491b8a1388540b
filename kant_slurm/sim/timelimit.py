"""Time limits for traces that have none: documented, seeded models (``--time-limit-model``).

Backfill schedules on time limits, so a replay needs the limit a user would have asked for.
Only jobs whose trace gives no limit (NaN) get one from the model; a trace's own limits stay.

Models:

``ladder`` (default)
    The user asks for their job's run time times an overestimation factor ``f``, rounded up to
    the next rung of a ladder of common limits (15 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h,
    1 d, 2 d, 3 d, 7 d, 14 d, 30 d, 60 d). ``f`` is log-normal per job with median 2 and
    sigma 0.6, clipped to [1, 10] (users rarely ask for less than they need, often for twice as
    much; batch-system studies find actual/limit around 0.2-0.5). Above the top rung the limit is
    the run time times ``f`` rounded up to a whole day. Drawn with
    ``numpy.random.default_rng(seed)`` in trace order, so a seed gives the same limits.
``exact``
    The limit is the run time (perfect estimates: the best case for backfill).
``fixed:SECONDS``
    Every job gets the same limit (a site default); longer jobs are killed at it (TIMEOUT),
    which shortens them, as on a real cluster.
``none``
    No limit: backfill cannot plan around running jobs (what a site without limits gets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError

LADDER_S = np.array(
    [
        900,
        1800,
        3600,
        7200,
        14400,
        28800,
        43200,
        86400,
        172800,
        259200,
        604800,
        1209600,
        2592000,
        5184000,
    ],
    dtype=float,
)
MODELS = ("ladder", "exact", "fixed:SECONDS", "none")
_DAY = 86400.0


def parse_model(spec: str) -> tuple[str, float | None]:
    """``"ladder"`` -> ("ladder", None); ``"fixed:3600"`` -> ("fixed", 3600.0)."""
    name, _, arg = spec.partition(":")
    if name in ("ladder", "exact", "none") and not arg:
        return name, None
    if name == "fixed":
        try:
            value = float(arg)
        except ValueError:
            value = -1.0
        if value <= 0:
            raise ConfigError(
                f"--time-limit-model fixed:SECONDS needs a positive number of seconds, got {arg!r}"
            )
        return "fixed", value
    raise ConfigError(f"unknown time-limit model {spec!r}; choose one of: {', '.join(MODELS)}")


def ladder_limits(duration: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """The ladder model's limit for each (run time, overestimation factor); pure, vectorised."""
    want = np.asarray(duration, dtype=float) * np.asarray(factor, dtype=float)
    want = np.maximum(want, 1.0)
    pos = np.searchsorted(LADDER_S, want, side="left")
    over = pos >= len(LADDER_S)
    out = LADDER_S[np.minimum(pos, len(LADDER_S) - 1)].copy()
    out[over] = np.ceil(want[over] / _DAY) * _DAY
    return out


def apply_time_limits(jobs: pd.DataFrame, spec: str = "ladder", seed: int = 0) -> pd.DataFrame:
    """A copy of the workload with ``time_limit`` filled where it was NaN, per the model."""
    name, arg = parse_model(spec)
    out = jobs.copy()
    missing = out["time_limit"].isna().to_numpy()
    if not missing.any():
        return out
    duration = out["duration"].to_numpy(dtype=float)
    limits = out["time_limit"].to_numpy(dtype=float).copy()
    finite = np.isfinite(duration)
    if name == "ladder":
        rng = np.random.default_rng(seed)
        # One draw per job in trace order, also for jobs that have a limit, so adding a limit to
        # one job does not shift every other job's draw.
        factor = np.clip(rng.lognormal(mean=np.log(2.0), sigma=0.6, size=len(out)), 1.0, 10.0)
        model = np.full(len(out), np.nan)
        model[finite] = ladder_limits(duration[finite], factor[finite])
    elif name == "exact":
        model = np.where(finite, np.maximum(duration, 1.0), np.nan)
    elif name == "fixed":
        assert arg is not None  # parse_model gives "fixed" its number
        model = np.full(len(out), float(arg))
    else:  # none
        model = np.full(len(out), np.nan)
    limits[missing] = model[missing]
    out["time_limit"] = limits
    return out
