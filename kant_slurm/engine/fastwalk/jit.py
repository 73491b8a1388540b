"""numba's ``njit`` for the compiled walk, or nothing: without numba the walk is not used.

numba caches each compiled function on disk and reuses it while the function's own source file
is unchanged (same mtime and size). The walk's functions call each other across this package's
modules, so a change to one module (``select.py``) would leave the cached code of another
(``walk.py``, which calls it) in use, out of date, with wrong decisions and no error. The
package is therefore cached as one unit: every function's cache is stamped with a digest of all
of the package's sources (:func:`_stamp_cache_with_package_digest`). Where numba's cache
cannot be stamped so (an API it no longer has), the walk is compiled afresh in each process:
slower to start, never stale.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

njit: Callable[..., Any] | None
try:  # numba is the [sim] extra; without it the Python walk plans every cycle
    from numba import njit as _numba_njit

    njit = _numba_njit
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_DIGEST = hashlib.sha256(
    b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in sorted(PACKAGE_DIR.glob("*.py")))
).hexdigest()


def available() -> bool:
    """Whether the compiled walk can run here (numba imported)."""
    return njit is not None


def _stamp_cache_with_package_digest() -> bool:
    """Make numba stamp the cache of every function of this package with
    :data:`PACKAGE_DIGEST` instead of the stat of its own file; False when this numba has no
    ``CacheImpl._locator_classes`` to hook (then nothing is changed)."""
    try:
        from numba.core.caching import CacheImpl

        classes = list(CacheImpl._locator_classes)
    except (ImportError, AttributeError):
        return False
    here = str(PACKAGE_DIR)

    class PackageStamp:
        _py_file: str

        def get_source_stamp(self):
            path = getattr(self, "_py_file", None)
            if path is not None and os.path.dirname(os.path.abspath(path)) == here:
                return ("kant-slurm fastwalk", PACKAGE_DIGEST)
            return super().get_source_stamp()  # type: ignore[misc]

    if not any(issubclass(c, PackageStamp) for c in classes):
        # Each locator keeps its own rules for where the cache goes; only the stamp changes,
        # and only for this package's files.
        wrapped: list[Any] = [type(c.__name__, (PackageStamp, c), {}) for c in classes]
        CacheImpl._locator_classes = wrapped
    return True


_CACHE = njit is not None and _stamp_cache_with_package_digest()
if njit is not None and not _CACHE:  # pragma: no cover - depends on the numba release
    log.warning("numba's cache cannot be stamped here: the walk compiles in every process")


def jit(fn):
    """Compile ``fn`` with numba (cached on disk as part of this package, no GIL held) when
    numba is here."""
    return njit(cache=_CACHE, nogil=True)(fn) if njit is not None else fn
