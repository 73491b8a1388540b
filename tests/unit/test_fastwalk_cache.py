"""The compiled walk's on-disk cache is one unit: a change to any module of the package makes
every function compile again (kant_slurm/engine/fastwalk/jit.py says why)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kant_slurm.engine import fastwalk

PACKAGE = Path(fastwalk.__file__).resolve().parent

# Compile (or load) one small function of the copied package and print whether numba took it
# from the cache.
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from fwcopy import select
out = np.empty(4, dtype=np.int64)
got = select._lightest(np.array([0, 8, 8, 8]), 8, np.array([1, 5, 3, 3]), out)
assert got[0] == 1 and out[0] == 2, (got, out)
stats = select._lightest.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def _probe(root: Path) -> tuple[int, int]:
    res = subprocess.run([sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    hits, misses = res.stdout.split()
    return int(hits), int(misses)


@pytest.mark.skipif(not fastwalk.available(), reason="numba is not installed")
def test_a_change_to_any_module_recompiles_every_function(tmp_path):
    copy = tmp_path / "fwcopy"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _probe(tmp_path) == (0, 1)  # compiled, then cached
    assert _probe(tmp_path) == (1, 0)  # loaded from the cache
    # A change to another module of the package, not the one the function is in.
    with open(copy / "walk.py", "a") as f:
        f.write("\n# changed\n")
    assert _probe(tmp_path) == (0, 1)
    assert _probe(tmp_path) == (1, 0)
