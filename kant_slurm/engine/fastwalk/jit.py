"""numba's ``njit`` for the compiled walk, or nothing: without numba the walk is not used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

njit: Callable[..., Any] | None
try:  # numba is the [sim] extra; without it the Python walk plans every cycle
    from numba import njit as _numba_njit

    njit = _numba_njit
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None


def available() -> bool:
    """Whether the compiled walk can run here (numba imported)."""
    return njit is not None


def jit(fn):
    """Compile ``fn`` with numba (cached on disk, no GIL held) when numba is here."""
    return njit(cache=True, nogil=True)(fn) if njit is not None else fn
