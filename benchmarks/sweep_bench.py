"""How the local sweep backend scales: an N-cell grid on the bundled slice, one seed per cell,
against N x the single-run time / workers (issue 18's target: at most 1.2 x that).

    python benchmarks/sweep_bench.py --cells 64 --workers 2

The single-run time is measured here first: ``--sample`` cells drawn from the grid (seeded, so
every K and bf_max_job_test can be drawn: they change a run's time), one after another in this
process after one warm-up run, each timed as the sweep times it (reading the trace and cluster
included); their mean is the single-run time. Then ``kant-slurm sweep`` runs the whole grid
in a fresh directory with ``--workers``; its wall time includes starting the command. Prints
figures; asserts nothing.

On a shared machine the wall times depend on what else runs, so CPU times are printed too: the
single runs' process time and the sweep's CPU time (the command and every worker, from
``getrusage(RUSAGE_CHILDREN)``). ``cpu_over_single`` is the sweep's CPU over N x the single
run's: 1.0 means the pool adds no work, and the wall time on ``workers`` idle cores is then
N x single / workers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kant_slurm.whatif.grid import load_grid  # noqa: E402
from kant_slurm.whatif.runner import run_seed  # noqa: E402

RESERVATIONS = (1, 2, 4, 8, 16, 32, 64, 128)
BF_MAX_JOB_TEST = (50, 100, 200, 500)


def grid_yaml(cells: int) -> str:
    """A grid of ``cells`` cells (a multiple of 4): 2 policies x 2 time-limit models x K x
    bf_max_job_test, the last two as long as needed."""
    if cells % 4 or cells < 4:
        raise SystemExit("--cells: a multiple of 4, at least 4")
    rest = cells // 4
    pairs = list(itertools.product(RESERVATIONS, BF_MAX_JOB_TEST))
    if rest > len(pairs):
        raise SystemExit(f"--cells: at most {4 * len(pairs)}")
    n_k = min(len(RESERVATIONS), rest)
    n_b = rest // n_k
    if n_k * n_b != rest:
        raise SystemExit("--cells: 4 x k x b with k <= 8, b <= 4")
    return (f"name: bench-{cells}\npolicies: [slurm, kant]\nseeds: [0]\noverrides:\n"
            "  sim.time_limit_model: [ladder, exact]\n"
            f"  backfill.reservations: {list(RESERVATIONS[:n_k])}\n"
            f"  slurm.bf_max_job_test: {list(BF_MAX_JOB_TEST[:n_b])}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=int, default=12, help="cells timed for the single run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kant-sweep-bench-") as tmp:
        grid_path = Path(tmp) / "grid.yaml"
        grid_path.write_text(grid_yaml(args.cells))
        grid = load_grid(grid_path)
        cells = grid.cells()
        sample = random.Random(0).sample(cells, min(args.sample, len(cells)))
        run_seed(cells[0], grid, 0)  # warm-up: imports, first-use caches
        single, single_cpu = {}, {}
        for cell in sample:
            t0, c0 = time.monotonic(), time.process_time()
            run_seed(cell, grid, 0)
            single[cell.index] = time.monotonic() - t0
            single_cpu[cell.index] = time.process_time() - c0
        single_mean = sum(single.values()) / len(single)
        single_cpu_mean = sum(single_cpu.values()) / len(single_cpu)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "kant_slurm", "sweep", str(grid_path),
                              "--out", str(Path(tmp) / "out"), "--workers", str(args.workers),
                              "--json"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sweep_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if res.returncode != 0:
            raise SystemExit(f"sweep failed ({res.returncode}): {res.stderr[-2000:]}")
        done = json.loads(res.stdout)["cell_counts"]["done"]
    target = len(cells) * single_mean / args.workers * 1.2
    print(json.dumps({
        "cells": len(cells), "cells_done": done, "workers": args.workers,
        "single_run_s": {cells[i].label(grid): round(t, 2) for i, t in sorted(single.items())},
        "single_run_mean_s": round(single_mean, 2), "sweep_wall_s": round(wall, 1),
        "target_s": round(target, 1), "wall_over_ideal": round(
            wall / (len(cells) * single_mean / args.workers), 2),
        "single_run_cpu_mean_s": round(single_cpu_mean, 2), "sweep_cpu_s": round(sweep_cpu, 1),
        "cpu_over_single": round(sweep_cpu / (len(cells) * single_cpu_mean), 2),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}, indent=2))


if __name__ == "__main__":
    main()
