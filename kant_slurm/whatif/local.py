"""``--backend local``: the cells in a process pool on this machine.

One process per cell at a time (at most ``workers``), each running the cell's missing seeds one
after another. A cell whose process dies or raises is recorded as failed; the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path

from .grid import Cell, Grid
from .runner import error_path, missing_seeds, run_cell, write_json


def _task(out: str, grid_doc: dict, index: int, command: str) -> dict[int, str]:
    grid = Grid.from_dict(grid_doc)
    cell = grid.cells()[index]
    return run_cell(Path(out), grid, cell, command)


def run_local(
    out: Path,
    grid: Grid,
    command: str,
    workers: int,
    progress: Callable[[int, int, int, float], None] | None = None,
) -> dict[int, dict[int, str]]:
    """Run every cell with missing seeds. ``progress(done, failed, total, elapsed_s)`` is
    called as cells finish. Returns cell index -> (seed -> error) for the cells that failed."""
    cells = grid.cells()
    todo: list[Cell] = [c for c in cells if missing_seeds(out, grid, c)]
    failures: dict[int, dict[int, str]] = {}
    t0 = time.monotonic()
    done = len(cells) - len(todo)
    if progress:
        progress(done, 0, len(cells), 0.0)
    if not todo:
        return failures
    if workers <= 1:
        for cell in todo:
            errors = run_cell(out, grid, cell, command)
            done += 1
            if errors:
                failures[cell.index] = errors
            if progress:
                progress(done, len(failures), len(cells), time.monotonic() - t0)
        return failures
    # fork: the children start with kant_slurm already imported (no second import per task).
    ctx = mp.get_context("fork")
    doc = grid.to_dict()
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
        futures = {pool.submit(_task, str(out), doc, c.index, command): c for c in todo}
        for fut in cf.as_completed(futures):
            cell = futures[fut]
            done += 1
            try:
                errors = fut.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker fails its cell only
                errors = {s: f"{type(exc).__name__}: {exc}" for s in missing_seeds(out, grid, cell)}
                for seed, text in errors.items():
                    write_json(
                        error_path(out, cell, seed),
                        {
                            "key": cell.key,
                            "index": cell.index,
                            "seed": seed,
                            "error": text,
                            "command": command,
                        },
                    )
            if errors:
                failures[cell.index] = errors
            if progress:
                progress(done, len(failures), len(cells), time.monotonic() - t0)
    return failures
