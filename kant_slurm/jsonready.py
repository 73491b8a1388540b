"""Values made JSON-ready: shared by the CLI's ``--json`` output and the sweep's result files."""

from __future__ import annotations

import contextlib
import math
from typing import Any


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, NaN/inf as None, tuples as lists and
    dict keys as strings, recursively (JSON has no NaN, and numpy scalars do not serialise)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        with contextlib.suppress(AttributeError, ValueError):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
