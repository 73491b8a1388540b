"""Option groups shared by several commands (reusable decorators, as sqlite-utils does)."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def json_option(f):
    """``--json``: machine-readable output with stable keys instead of the table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def _clean(value: Any) -> Any:
    # NaN/inf are not JSON; numpy scalars are not JSON-serialisable either.
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:
            value = value.item()
        except (AttributeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (NaN becomes null, numpy numbers become plain)."""
    click.echo(json.dumps(_clean(data), indent=2, sort_keys=False))
